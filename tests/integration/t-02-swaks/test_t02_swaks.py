"""
t-02 swaks: the swaks client against bridgehead with STARTTLS (`--tls`),
with PIPELINING (`--pipeline`), with `--protocol ESMTPS`, and with implicit
TLS (`--tls-on-connect` against a `tls = implicit` listener).

Checked: swaks exits 0, the final dot gets `250 2.0.0 ... queued as ID`, the
queue lists ID, the stored message carries swaks' unique header, and its
Received: header says `with ESMTPS` and names the TLS version and cipher
swaks negotiated.
"""

import re
import shutil
import subprocess
import uuid

import pytest

import bhtest

TLS_RE = re.compile(r"TLS started with cipher (TLSv1(?:\.\d)?):([A-Z0-9_-]+)")


def swaks(srv, *extra):
    assert shutil.which("swaks"), "swaks is not installed"
    tag = uuid.uuid4().hex
    cmd = ["swaks", "--server", f"127.0.0.1:{srv.port}", "--to", "user@example.com",
           "--from", "a@example.org", "--helo", "client.example.org",
           "--header", f"X-Test-Tag: {tag}", "--timeout", "20", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{out}"
    return tag, out


def queued_id(out):
    ids = re.findall(r"<[-~]\s+250[ -]2\.0\.0 .*queued as ([0-9A-Za-z]{8,32})\b", out)
    assert len(ids) == 1, f"want one '250 2.0.0 ... queued as ID' in swaks output:\n{out}"
    return ids[0]


def check_tls_message(srv, tag, out):
    qid = queued_id(out)
    assert qid in srv.queue_ids(), f"{qid} not in queue list"
    m = TLS_RE.search(out)
    assert m, f"swaks did not report a TLS session:\n{out}"
    version, cipher = m.groups()
    header, rest = bhtest.split_received(srv.message(qid))
    assert f"X-Test-Tag: {tag}".encode() in rest, "stored message lacks swaks' header"
    text = bhtest.unfold(header)
    assert re.search(r"\bwith ESMTPS\b", text), f"Received: not 'with ESMTPS': {text}"
    assert version in text and cipher in text, f"Received: lacks {version} {cipher}: {text}"
    return qid


def test_swaks_starttls(server):
    srv = server()
    tag, out = swaks(srv, "--tls")
    check_tls_message(srv, tag, out)


def test_swaks_pipeline_starttls(server):
    srv = server()
    tag, out = swaks(srv, "--tls", "--pipeline")
    assert re.search(r"<~\s+250[ -]PIPELINING", out), f"PIPELINING not offered inside TLS:\n{out}"
    check_tls_message(srv, tag, out)


def test_swaks_pipeline_plain(server):
    srv = server()
    tag, out = swaks(srv, "--pipeline")
    assert re.search(r"<-\s+250[ -]PIPELINING", out), f"PIPELINING not offered:\n{out}"
    qid = queued_id(out)
    header, rest = bhtest.split_received(srv.message(qid))
    assert f"X-Test-Tag: {tag}".encode() in rest
    assert re.search(r"\bwith ESMTP(?![A-Z])", bhtest.unfold(header))


def test_swaks_protocol_esmtps(server):
    srv = server()
    tag, out = swaks(srv, "--protocol", "ESMTPS", "--port", str(srv.port))
    check_tls_message(srv, tag, out)


def test_swaks_tls_on_connect(server):
    srv = server(tls="implicit")
    tag, out = swaks(srv, "--tls-on-connect")
    check_tls_message(srv, tag, out)
    assert not re.search(r"250[ -]STARTTLS", out), f"implicit TLS listener offers STARTTLS:\n{out}"


@pytest.mark.parametrize("tls", ["offer", "implicit"])
def test_swaks_no_tls_refused_where_needed(server, tls):
    """A clear-text swaks against an implicit-TLS listener cannot talk SMTP
    (no plaintext banner); against an offer listener it works."""
    srv = server(tls=tls)
    cmd = ["swaks", "--server", f"127.0.0.1:{srv.port}", "--to", "user@example.com",
           "--from", "a@example.org", "--timeout", "3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if tls == "offer":
        assert p.returncode == 0, p.stdout + p.stderr
    else:
        assert p.returncode != 0, f"clear-text SMTP worked on an implicit TLS listener:\n{p.stdout}"
        assert srv.queue_ids() == []
