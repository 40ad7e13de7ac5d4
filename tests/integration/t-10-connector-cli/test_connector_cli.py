"""
t-10 connector CLI: `bridgehead connector add|set|list|show|remove`
(DESIGN.md "Command line", "Configuration", reference scenario steps 4-5).

  - the reference scenario's two commands, word for word, and what they
    leave in connectors.d/ and in `config check`;
  - add/set/list/show/remove round trips: set changes only the options
    given, list options replace the list, --dns and --smart-host switch the
    routing mode, remove deletes the file;
  - every kind of refused value exits 2 with one sentence naming the option
    and leaves connectors.d/ byte for byte as it was (or absent, if it was);
  - a connector of the main file is not changed by set/remove: exit 2 and
    the sentence says FILE:LINE;
  - a running server is told to reload (SIGHUP through the pid file) and
    logs that it did.
"""

import json
import os
import re
import subprocess
import time

import pytest

import bhtest

REF_ADD = ["connector", "add", "MicrosoftOnline", "--smart-host",
           "mail.global.frontbridge.com", "--address-space",
           "contoso1.microsoftonline.com", "--bridgehead", "bh1.contoso.com"]
REF_SET = ["connector", "set", "MicrosoftOnline", "--tls", "encrypt"]

NOT_RUNNING = "no server is running; it takes effect at start"
RELOADS = "the running server reloads it"


def offline(server, **kw):
    """A server directory with its configuration, not started."""
    return server(start=False, cert=False, **kw)


def dropins(srv):
    return srv.conf_path.parent / "connectors.d"


def snapshot(srv):
    """Every file of connectors.d/ (hidden ones too) with its bytes and
    mode, or None when the directory does not exist."""
    d = dropins(srv)
    if not d.exists():
        return None
    out = {".": oct(d.stat().st_mode)}
    for name in sorted(os.listdir(d)):
        p = d / name
        out[name] = (p.read_bytes(), oct(p.stat().st_mode))
    return out


def show(srv, name):
    p = srv.cli("connector", "show", name, "--json")
    data = json.loads(p.stdout)
    assert isinstance(data, dict), f"show --json is not an object: {data!r}"
    return data


def listing(srv):
    p = srv.cli("connector", "list", "--json")
    data = json.loads(p.stdout)
    assert isinstance(data, list), f"list --json is not an array: {data!r}"
    return data


def refused(srv, *args):
    """Runs a command that must be refused; returns its stderr."""
    p = srv.cli(*args, check=False)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2, (
        f"bridgehead {' '.join(args)}: want exit 2, got {p.returncode}\n"
        f"stdout: {p.stdout!r}\nstderr: {err}")
    assert err.strip(), f"bridgehead {' '.join(args)}: no error message"
    return err


# ---------------------------------------------------------------- scenario

def test_reference_scenario(server):
    srv = offline(server)
    p = srv.cli(*REF_ADD)
    out = p.stdout.decode()
    assert "MicrosoftOnline" in out and NOT_RUNNING in out, out
    path = dropins(srv) / "MicrosoftOnline.conf"
    assert path.is_file()
    assert oct(dropins(srv).stat().st_mode & 0o777) == oct(0o755)

    c = show(srv, "MicrosoftOnline")
    assert c["name"] == "MicrosoftOnline"
    assert c["address_spaces"] == [{"pattern": "contoso1.microsoftonline.com", "cost": 1}]
    assert c["smart_hosts"] == ["mail.global.frontbridge.com"]
    assert c["dns"] is False
    assert c["source_bridgeheads"] == ["bh1.contoso.com"]
    assert c["tls"] == "may", "a new connector starts at tls = may (DESIGN.md)"
    assert c["file"] == str(path)

    srv.cli(*REF_SET)
    c2 = show(srv, "MicrosoftOnline")
    assert c2["tls"] == "encrypt"
    assert {k: v for k, v in c2.items() if k != "tls"} == \
        {k: v for k, v in c.items() if k != "tls"}, "set changed more than --tls"

    # The file is what the server reads: `config check` shows it.
    chk = srv.cli("config", "check").stdout.decode()
    sec = chk[chk.index("[connector MicrosoftOnline]"):]
    assert re.search(r"(?m)^tls = encrypt$", sec), chk
    assert re.search(r"(?m)^smart_hosts = mail\.global\.frontbridge\.com$", sec), chk
    assert f"# from {path}:" in chk
    # No temporary file left behind.
    assert sorted(os.listdir(dropins(srv))) == ["MicrosoftOnline.conf"]


def test_global_config_option_before_the_command(server):
    srv = offline(server)
    p = subprocess.run([srv.binary, "-c", str(srv.conf_path), *REF_ADD],
                       capture_output=True, env=srv._env(), timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([srv.binary, "-c", str(srv.conf_path), "connector", "list"],
                       capture_output=True, env=srv._env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith("MicrosoftOnline "), p.stdout
    # and $BRIDGEHEAD_CONFIG
    env = srv._env()
    env["BRIDGEHEAD_CONFIG"] = str(srv.conf_path)
    p = subprocess.run([srv.binary, "connector", "show", "MicrosoftOnline"],
                       capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"[connector MicrosoftOnline]" in p.stdout


# ---------------------------------------------------------------- round trips

def test_add_every_option_then_show_and_list(server, tmp_path):
    srv = offline(server)
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n")
    pw = tmp_path / "password"
    pw.write_text("s3cret-never-shown\n")
    srv.cli("connector", "add", "partners",
            "--address-space", "partner.example;5,*.partner.example",
            "--address-space", "Other.Example.",
            "--smart-host", "[192.0.2.7]:2525", "--smart-host", "relay.example.net:587,relay2.example.net",
            "--bridgehead", "bh1.example.com,BH2.example.com",
            "--tls", "verify", "--port", "26",
            "--tls-match", "relay.example.net", "--tls-match", "*.example.net",
            "--tls-ca-file", str(ca),
            "--auth-username", "relay-user", "--auth-password-file", str(pw),
            "--client-certificate", "no", "--max-connections", "7")
    c = show(srv, "partners")
    want = {
        "name": "partners",
        "address_spaces": [{"pattern": "partner.example", "cost": 5},
                           {"pattern": "*.partner.example", "cost": 1},
                           {"pattern": "other.example", "cost": 1}],
        "smart_hosts": ["[192.0.2.7]:2525", "relay.example.net:587", "relay2.example.net"],
        "dns": False,
        "source_bridgeheads": ["bh1.example.com", "bh2.example.com"],
        "tls": "verify",
        "tls_match": ["relay.example.net", "*.example.net"],
        "tls_ca_file": str(ca),
        "port": 26,
        "max_connections": 7,
        "auth_username": "relay-user",
        "tls_client_certificate": False,
        "file": str(dropins(srv) / "partners.conf"),
    }
    for k, v in want.items():
        assert c.get(k) == v, f"{k}: got {c.get(k)!r}, want {v!r}"
    assert listing(srv) == [c]

    line = srv.cli("connector", "list").stdout.decode()
    assert line.count("\n") == 1, line
    for part in ("partners", "partner.example;5", "relay.example.net:587", "tls=verify",
                 "bh2.example.com", str(dropins(srv) / "partners.conf")):
        assert part in line, f"{part!r} not in the list line {line!r}"

    text = srv.cli("connector", "show", "partners").stdout.decode()
    for key in ("address_space", "smart_hosts", "dns", "source_bridgeheads", "tls",
                "tls_match", "tls_ca_file", "port", "max_connections",
                "auth_username", "auth_password_file", "tls_client_certificate"):
        assert re.search(rf"(?m)^{key} = ", text), f"show lacks {key}:\n{text}"
    # The password itself is never printed, nor written into connectors.d.
    for out in (text, json.dumps(listing(srv)), srv.cli("config", "check").stdout.decode(),
                (dropins(srv) / "partners.conf").read_text()):
        assert "s3cret" not in out


def test_set_changes_only_what_is_given(server):
    srv = offline(server)
    srv.cli("connector", "add", "out", "--address-space", "a.example,b.example;3",
            "--smart-host", "h1.example.net,h2.example.net", "--bridgehead", "bh1.example.com",
            "--tls", "encrypt", "--max-connections", "9")
    before = show(srv, "out")

    steps = [
        (["--port", "2525"], {"port": 2525}),
        (["--address-space", "c.example"], {"address_spaces": [{"pattern": "c.example", "cost": 1}]}),
        (["--smart-host", "h3.example.net"], {"smart_hosts": ["h3.example.net"]}),
        (["--dns"], {"dns": True, "smart_hosts": []}),
        (["--smart-host", "h4.example.net:2526"], {"dns": False, "smart_hosts": ["h4.example.net:2526"]}),
        (["--bridgehead", ""], {"source_bridgeheads": []}),
        (["--bridgehead", "bh2.example.com", "--bridgehead", "bh3.example.com"],
         {"source_bridgeheads": ["bh2.example.com", "bh3.example.com"]}),
        (["--tls", "VERIFY", "--tls-match", "*.example.net"], {"tls": "verify", "tls_match": ["*.example.net"]}),
        (["--client-certificate", "no"], {"tls_client_certificate": False}),
        (["--max-connections", "1"], {"max_connections": 1}),
        (["--tls", "none"], {"tls": "none"}),
    ]
    cur = before
    for args, changed in steps:
        p = srv.cli("connector", "set", "out", *args)
        assert NOT_RUNNING in p.stdout.decode()
        got = show(srv, "out")
        want = dict(cur, **changed)
        assert got == want, f"set {args}: got {got}, want {want}"
        cur = got
    assert sorted(os.listdir(dropins(srv))) == ["out.conf"]


def test_set_finds_the_name_in_any_case(server):
    srv = offline(server)
    srv.cli(*REF_ADD)
    srv.cli("connector", "set", "microsoftonline", "--tls", "verify")
    assert show(srv, "MICROSOFTONLINE")["tls"] == "verify"
    assert sorted(os.listdir(dropins(srv))) == ["MicrosoftOnline.conf"]


def test_remove(server):
    srv = offline(server)
    srv.cli(*REF_ADD)
    srv.cli("connector", "add", "other", "--address-space", "*", "--dns")
    p = srv.cli("connector", "remove", "MicrosoftOnline")
    assert NOT_RUNNING in p.stdout.decode()
    assert [c["name"] for c in listing(srv)] == ["other"]
    assert sorted(os.listdir(dropins(srv))) == ["other.conf"]
    err = refused(srv, "connector", "remove", "MicrosoftOnline")
    assert "MicrosoftOnline" in err
    err = refused(srv, "connector", "show", "MicrosoftOnline")
    assert "MicrosoftOnline" in err


def test_list_empty_and_order(server):
    srv = offline(server)
    assert srv.cli("connector", "list").stdout == b""
    assert listing(srv) == []
    for name in ("zeta", "Alpha", "mid"):
        srv.cli("connector", "add", name, "--address-space", f"{name.lower()}.example", "--dns")
    # connectors.d loads in file name order (C locale), and so do they list
    assert [c["name"] for c in listing(srv)] == ["Alpha", "mid", "zeta"]


def test_help(server):
    srv = offline(server)
    for sub in ([], ["add"], ["set"], ["list"], ["show"], ["remove"], ["test"]):
        p = srv.cli("connector", *sub, "--help")
        assert p.stdout.startswith(b"usage: bridgehead connector"), p.stdout


# ---------------------------------------------------------------- refusals

MAIN_CONNECTOR = """[connector main1]
address_space = main.example
smart_hosts = mx.main.example
"""

# (arguments, a word the one-sentence error must contain)
REFUSED = [
    (["connector", "add", "x", "--address-space", "a..example", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "a.example;0", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "a.example;101", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "a.example,,b.example", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "a.example,A.example.", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "exa_mple.com", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "*.*.example", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "", "--dns"], "--address-space"),
    (["connector", "add", "x", "--dns"], "--address-space"),
    (["connector", "add", "x", "--address-space", "a.example"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--smart-host", "h.example"], "--dns"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "*.h.example"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "h.example:0"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "h.example:65536"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "h.example:smtp"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "2001:db8::1"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "[not-an-ip]"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--smart-host", "h.example,h.example"], "--smart-host"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--port", "0"], "--port"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--port", "65536"], "--port"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--port", "25a"], "--port"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls", "required"], "--tls"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls", "may", "--tls", "encrypt"], "--tls"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--bridgehead", "bh1"], "--bridgehead"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--bridgehead", "-bh.example.com"], "--bridgehead"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls-match", "bad name"], "--tls-match"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls-ca-file", "/nonexistent/ca.pem"], "--tls-ca-file"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls-ca-file", "/"], "--tls-ca-file"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--max-connections", "0"], "--max-connections"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--client-certificate", "maybe"], "--client-certificate"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--auth-username", "u",
      "--auth-password-file", "/etc/hostname"], "--auth-username"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls", "may", "--auth-username", "u",
      "--auth-password-file", "/etc/hostname"], "encrypt"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls", "encrypt",
      "--auth-username", "u"], "--auth-password-file"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--tls", "encrypt",
      "--auth-username", "u #x", "--auth-password-file", "/etc/hostname"], "--auth-username"),
    (["connector", "add", "bad/name", "--address-space", "a.example", "--dns"], "bad/name"),
    (["connector", "add", ".hidden", "--address-space", "a.example", "--dns"], ".hidden"),
    (["connector", "add", "x" * 65, "--address-space", "a.example", "--dns"], "x" * 65),
    (["connector", "add", "EXISTING", "--address-space", "a.example", "--dns"], "existing"),
    (["connector", "add", "MAIN1", "--address-space", "a.example", "--dns"], "main1"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "--bogus"], "--bogus"),
    (["connector", "add", "x", "--address-space", "a.example", "--dns", "extra-word"], "extra-word"),
    (["connector", "set", "existing", "--port", "0"], "--port"),
    (["connector", "set", "existing", "--address-space", ""], "--address-space"),
    (["connector", "set", "existing", "--smart-host", ""], "--smart-host"),
    (["connector", "set", "existing", "--tls", "may"], "encrypt"),
    (["connector", "set", "existing", "--auth-username", ""], "--auth"),
    (["connector", "set", "existing"], "nothing to change"),
    (["connector", "set", "nosuch", "--tls", "verify"], "nosuch"),
    (["connector", "set", "main1", "--tls", "verify"], "bridgehead.conf:"),
    (["connector", "remove", "main1"], "bridgehead.conf:"),
    (["connector", "remove", "nosuch"], "nosuch"),
    (["connector", "list", "--tls", "may"], "add and set"),
    (["connector", "frobnicate"], "frobnicate"),
]


def make_existing(srv, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    srv.cli("connector", "add", "existing", "--address-space", "e.example", "--smart-host",
            "h.example.net", "--tls", "encrypt", "--auth-username", "u",
            "--auth-password-file", str(pw))


def test_refused_values_leave_connectors_d_unchanged(server, tmp_path):
    srv = offline(server, extra_conf=MAIN_CONNECTOR)
    make_existing(srv, tmp_path)
    before = snapshot(srv)
    assert before is not None
    failures = []
    for args, word in REFUSED:
        p = srv.cli(*args, check=False)
        err = p.stderr.decode(errors="replace")
        first = err.splitlines()[0] if err else ""
        if p.returncode != 2:
            failures.append(f"{args}: exit {p.returncode}, want 2 (stderr {err!r})")
        elif word.lower() not in first.lower():
            failures.append(f"{args}: the first line of stderr does not name {word!r}: {err!r}")
        if snapshot(srv) != before:
            failures.append(f"{args}: connectors.d/ changed")
            before = snapshot(srv)
    assert not failures, "\n".join(failures)


def test_refused_add_does_not_create_connectors_d(server):
    srv = offline(server)
    for args, _ in REFUSED:
        if args[1] == "add" and "EXISTING" not in args and "MAIN1" not in args:
            srv.cli(*args, check=False)
            assert not dropins(srv).exists(), f"{args} made connectors.d/"
    # A configuration that does not load (here: a bad value added to the
    # main file by hand) refuses every change as well.
    srv.cli(*REF_ADD)
    with open(srv.conf_path, "a") as f:
        f.write("\n[connector extra]\naddress_space = x.example\nsmart_hosts = nosuch..host\n")
    before = snapshot(srv)
    err = refused(srv, *REF_SET)
    assert "bridgehead.conf:" in err
    assert snapshot(srv) == before


def test_set_on_main_file_connector_names_file_and_line(server):
    srv = offline(server, extra_conf=MAIN_CONNECTOR)
    lines = srv.conf_path.read_text().splitlines()
    line = lines.index("[connector main1]") + 1
    for args in (["connector", "set", "main1", "--tls", "encrypt"],
                 ["connector", "set", "MAIN1", "--port", "26"],
                 ["connector", "remove", "main1"]):
        err = refused(srv, *args)
        assert f"{srv.conf_path}:{line}" in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not dropins(srv).exists()
    c = show(srv, "main1")
    assert c["tls"] == "may" and c["port"] == 25
    assert c["file"] == str(srv.conf_path)


def test_stale_temporary_file_is_replaced(server):
    srv = offline(server)
    d = dropins(srv)
    d.mkdir()
    (d / ".MicrosoftOnline.conf.tmp").write_text("[connector garbage\n")
    srv.cli(*REF_ADD)
    assert sorted(os.listdir(d)) == ["MicrosoftOnline.conf"]


def test_a_broken_dropin_blocks_changes(server):
    srv = offline(server)
    srv.cli(*REF_ADD)
    (dropins(srv) / "broken.conf").write_text("[connector broken]\naddress_space = b.example\n")
    before = snapshot(srv)
    err = refused(srv, *REF_SET)
    assert "broken.conf" in err
    err = refused(srv, "connector", "add", "x", "--address-space", "x.example", "--dns")
    assert "broken.conf" in err
    assert snapshot(srv) == before


# ---------------------------------------------------------------- running server

def reload_lines(srv):
    """The server's "reload ok connectors=N" lines (N of each)."""
    return [int(m.group(1)) for m in
            re.finditer(r"reload ok connectors=(\d+)", srv.stderr())]


def wait_reload(srv, before, connectors, what):
    """Waits for a reload line after the first `before` ones; returns the
    new count of lines."""
    lines = bhtest.wait_until(lambda: len(reload_lines(srv)) > before and reload_lines(srv),
                              10, what=f"the server logging its reload after {what}")
    assert lines[-1] == connectors, (
        f"after {what}: the server reloaded with {lines[-1]} connectors, want {connectors}")
    return len(lines)


def test_running_server_is_told_to_reload(server):
    srv = server(cert=False, extra_conf=MAIN_CONNECTOR)
    if not (srv.state_dir / "bridgehead.pid").exists():
        pytest.skip("serve does not write state_dir/bridgehead.pid: the CLI "
                    "cannot find it to signal")
    n = len(reload_lines(srv))
    p = srv.cli(*REF_ADD)
    assert RELOADS in p.stdout.decode(), p.stdout
    n = wait_reload(srv, n, 2, "connector add")
    p = srv.cli(*REF_SET)
    assert RELOADS in p.stdout.decode(), p.stdout
    n = wait_reload(srv, n, 2, "connector set")
    # Still serving.
    c = srv.client()
    c.ehlo()
    c.quit()
    p = srv.cli("connector", "remove", "MicrosoftOnline")
    assert RELOADS in p.stdout.decode(), p.stdout
    n = wait_reload(srv, n, 1, "connector remove")
    assert srv.running()
    # A refused change does not signal it.
    refused(srv, "connector", "set", "nosuch", "--tls", "verify")
    refused(srv, "connector", "set", "main1", "--tls", "verify")
    time.sleep(0.5)
    assert len(reload_lines(srv)) == n
    assert "reload failed" not in srv.stderr()


# ---------------------------------------------------------------- test

def fake_next_hop():
    """A one-connection SMTP peer without STARTTLS on a free port of
    127.0.0.1; returns (port, the lines it received)."""
    import socket
    import threading
    port = bhtest.free_port()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen()
    got = []

    def serve():
        c, _ = ls.accept()
        ls.close()
        f = c.makefile("rb")
        c.sendall(b"220 hop.example ESMTP\r\n")
        for line in f:
            got.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                c.sendall(b"250-hop.example\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 bye\r\n")
                break
            else:
                c.sendall(b"502 5.5.2 not in a probe\r\n")
        c.close()
    threading.Thread(target=serve, daemon=True).start()
    return port, got


def test_connector_test_runs_the_probe(server):
    srv = offline(server)
    port, got = fake_next_hop()
    srv.cli("connector", "add", "hop", "--address-space", "hop.example",
            "--smart-host", f"[127.0.0.1]:{port}")
    p = srv.cli("connector", "test", "hop", "--json", check=False, timeout=90)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["mail_would_flow"] is True, data
    # EHLO and QUIT, never a transaction.
    verbs = [ln[:4].upper() for ln in got]
    assert verbs[0] == b"EHLO" and verbs[-1] == b"QUIT", got
    assert b"MAIL" not in verbs and b"DATA" not in verbs, got
    err = refused(srv, "connector", "test", "nosuch")
    assert "nosuch" in err
    err = refused(srv, "connector", "test", "hop", "--tls", "none")
    assert "add and set" in err
