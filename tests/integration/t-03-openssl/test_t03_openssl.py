"""
t-03 openssl: `openssl s_client -starttls smtp` against bridgehead.

Checked: the default handshake works and presents a certificate with
CN bh1.example.com; TLS 1.2 and TLS 1.3 work; TLS 1.1 is refused even by a
client willing to use it (SECLEVEL=0); without an installed certificate the
EHLO reply does not list STARTTLS and STARTTLS is refused (502/503/454/5xx)
while the session goes on.
"""

import re
import shutil
import subprocess

import pytest


def s_client(srv, *extra):
    assert shutil.which("openssl"), "openssl is not installed"
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{srv.port}",
           "-brief", *extra]
    p = subprocess.run(cmd, input=b"QUIT\r\n", capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def test_default_handshake_and_certificate(server):
    srv = server()
    rc, out = s_client(srv)
    assert rc == 0, out
    assert "CONNECTION ESTABLISHED" in out, out
    m = re.search(r"Peer certificate: (.*)", out)
    assert m, out
    assert re.search(r"\bCN ?= ?bh1\.example\.com\b", m.group(1)), f"certificate subject: {m.group(1)}"
    assert re.search(r"Protocol version: TLSv1\.[23]\b", out), out


@pytest.mark.parametrize("flag,version", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls12_and_tls13(server, flag, version):
    srv = server()
    rc, out = s_client(srv, flag)
    assert rc == 0, out
    assert f"Protocol version: {version}" in out, out


def test_tls11_refused(server):
    srv = server()
    rc, out = s_client(srv, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, f"TLS 1.1 handshake succeeded:\n{out}"
    assert "CONNECTION ESTABLISHED" not in out, out
    # The refusal is the server's (alert 70), not a client that cannot do 1.1.
    assert "alert protocol version" in out, out
    # The server is still serving after the failed handshake.
    c = srv.client()
    c.ehlo()
    c.quit()


def test_no_certificate_no_starttls(server):
    srv = server(cert=False)
    c = srv.client()
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords(), f"STARTTLS offered without a certificate: {r}"
    r = c.cmd("STARTTLS")
    assert r.code in (454, 502, 503) or 500 <= r.code <= 599, f"STARTTLS without certificate: {r}"
    # The session goes on in clear text.
    qid = c.mail(rcpts=("user@example.com",))
    c.quit()
    assert qid in srv.queue_ids()
    rc, out = s_client(srv)
    assert rc != 0 and "CONNECTION ESTABLISHED" not in out, out
