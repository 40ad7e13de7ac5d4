"""
C23 -- Clients whose TLS handshake fails on our listener.

Listener `tls = offer` with the relay's self-signed certificate; each run
on a new connection after EHLO and STARTTLS -> 220.  Checked:
  - A: a client offering only TLS 1.0 gets a protocol-version alert; the
    failure is logged with the client address; the same client then sends
    a message in clear text, which is accepted and delivered (`offer` does
    not require TLS).
  - B: "MAIL FROM:<sender@example.org>\\r\\n" instead of a ClientHello: the
    connection is closed, the command is never answered as SMTP, the relay
    keeps serving other clients.
  - C: half a ClientHello, then silence: the relay gives up after its
    handshake timeout (bounded here by command_timeout = 5s, the case
    allows at most the 5-minute command timeout) and frees the connection.
  - D: the client aborts the handshake with a fatal "unknown CA" alert: the
    connection is closed, the relay keeps serving.
  - 200 rounds of A, B and D and a few of C: the server does not crash and
    holds no more descriptors afterwards than before (LeakSanitizer checks
    memory at the clean stop of a sanitizer build).
  - E: on a `tls = require` listener, MAIL before STARTTLS gets 530 5.7.0.
"""

import os
import re
import ssl
import time

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

TIMEOUT_S = 5


def relay(server, fh=None, **kw):
    extra = F.connector_conf(fh, tls="may") if fh is not None else ""
    return server(listener_options={"command_timeout": f"{TIMEOUT_S}s"}, extra_conf=extra, **kw)


def starttls_220(srv):
    c = srv.client()
    c.ehlo()
    c.expect("STARTTLS", 220, "2.0.0")
    return c


def old_client_context():
    ctx = bhtest.tls_client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1,
                                    seclevel0=True)
    try:
        ctx.set_ciphers("DES-CBC3-SHA:@SECLEVEL=0")
    except ssl.SSLError:
        ctx.set_ciphers("AES128-SHA:@SECLEVEL=0")
    return ctx


def client_hello():
    """The bytes of a real TLS ClientHello."""
    ctx = bhtest.tls_client_context()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=None)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16", hello[:10]
    return hello


def round_a(srv):
    c = starttls_220(srv)
    try:
        c.tls_upgrade(old_client_context())
    except ssl.SSLError as e:
        return str(e)
    finally:
        c.close()
    raise AssertionError("a TLS 1.0-only handshake succeeded")


def round_b(srv):
    c = starttls_220(srv)
    try:
        c.send(b"MAIL FROM:<sender@example.org>\r\n")
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kind, data = c.wait_input(deadline - time.monotonic())
            if kind == "eof":
                break
            got += data
        else:
            raise AssertionError(f"connection still open 10s after a non-TLS reply to 220; got {got!r}")
        assert not re.search(rb"(^|\n)[0-9]{3}[ -]", got), f"the MAIL was answered as SMTP: {got!r}"
    finally:
        c.close()


def round_d(srv, ca):
    c = starttls_220(srv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(ca.root))      # not the relay's issuer
    try:
        c.tls_upgrade(ctx)
        raise AssertionError("the handshake verified against an unrelated CA")
    except ssl.SSLCertVerificationError:
        pass
    finally:
        c.close()


def fds(srv):
    return len(os.listdir(f"/proc/{srv.pid}/fd"))


def still_serving(srv):
    c = srv.client()
    c.ehlo()
    c.quit()


def test_a_old_client_then_clear_text(server, fakehost):
    fh = fakehost()
    srv = relay(server, fh)
    err = round_a(srv)
    assert re.search(r"(?i)protocol.version|unsupported protocol|no protocols", err), err
    bhtest.wait_until(lambda: [ln for ln in srv.stderr().splitlines()
                               if "127.0.0.1" in ln and re.search(r"(?i)tls|handshake|ssl", ln)],
                      5, what="a log line naming the client address and the TLS failure")
    content = b"Subject: c23 A\r\n\r\nclear text retry\r\n"
    qid = F.submit(srv, content=content)
    F.wait_event(srv, qid, "delivered")
    tx = fh.wait_complete(1)[0]
    assert bhtest.split_received(tx.content)[1] == content


def test_b_smtp_instead_of_client_hello(server):
    srv = relay(server)
    round_b(srv)
    assert srv.running()
    still_serving(srv)
    assert srv.queue_ids() == []


def test_c_half_client_hello(server):
    srv = relay(server)
    c = starttls_220(srv)
    hello = client_hello()
    c.send(hello[:len(hello) // 2])
    t0 = time.monotonic()
    assert c.closed_within(TIMEOUT_S + 15), "the relay still waits for the rest of the ClientHello"
    took = time.monotonic() - t0
    assert took >= TIMEOUT_S - 1, f"gave up after {took:.1f}s, before the timeout"
    c.close()
    still_serving(srv)


def test_d_unknown_ca_alert(server, test_ca):
    srv = relay(server)
    round_d(srv, test_ca)
    assert srv.running()
    still_serving(srv)


def test_many_rounds_no_leak(server, test_ca):
    srv = relay(server)
    still_serving(srv)
    before = fds(srv)
    for _ in range(200):
        round_a(srv)
        round_b(srv)
        round_d(srv, test_ca)
    # A few half handshakes at once, each left to time out.
    halves = []
    for _ in range(5):
        c = starttls_220(srv)
        c.send(client_hello()[:40])
        halves.append(c)
    for c in halves:
        assert c.closed_within(TIMEOUT_S + 15)
        c.close()
    still_serving(srv)
    bhtest.wait_until(lambda: fds(srv) <= before, 10,
                      what=f"descriptors back to {before} (now {fds(srv)})")
    assert srv.running()


def test_e_require_mail_before_starttls(server):
    srv = server(tls="require")
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 530, "5.7.0")
    c.quit()
    assert srv.queue_ids() == []
