"""
C22 -- TLS-1.0-only and other old smart hosts; opportunistic fallback.

  A: the fake smart host offers STARTTLS, answers 220, then speaks only
     TLS 1.0 with RSA key exchange (3DES where this OpenSSL has it).
  B: after 220 to STARTTLS it sends "220 smarthost.example.net ESMTP\\r\\n"
     in clear text instead of a ServerHello.
  C: A and B under `tls = encrypt`.
The smart host stays broken the same way on every connection.  Checked:
  - A, B under `may`: the connection whose handshake failed carries no
    SMTP command in clear text after the failure; a new connection without
    STARTTLS delivers the message (tls null in the `delivered` event); the
    tracking log says there was a fallback and why.
  - C: no transaction at all, `deferred` events, the message kept and
    retried, no bounce.
"""

import json
import re

import pytest

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

COMMANDS = rb"(?i)(EHLO|HELO|MAIL|RCPT|DATA|AUTH|RSET|QUIT)\b"


def broken_host(kind, leaf):
    if kind == "A":
        return F.Esmtp(tls=leaf.old_tls_spec())
    return F.Esmtp(tls=leaf.spec(), starttls_plaintext=b"220 smarthost.example.net ESMTP\r\n")


def event_text(ev):
    """The values of an event that can say why (not the tls object)."""
    return json.dumps({k: v for k, v in ev.items() if k not in ("tls", "ts", "id", "rcpt", "from")})


def check_failed_sessions(sessions):
    failed = [s for s in sessions if "STARTTLS" in s.verbs()]
    for s in failed:
        assert s.tls_failed_at is not None, f"the handshake did not fail? {s}"
        clear = s.received_after_tls_failure()
        assert not re.search(COMMANDS, clear), f"clear-text command after the failed handshake: {clear!r}"
        assert not s.transactions, s
    return failed


def fallback_delivery(server, fakehost, test_ca, kind):
    fh = fakehost(default=broken_host(kind, test_ca.leaf()))
    srv = server(extra_conf=F.connector_conf(fh, tls="may", retry="1s"))
    content = f"Subject: c22 {kind}\r\n\r\nfallback\r\n".encode()
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered", timeout=40)[0]
    tx = fh.wait_complete(1)[0]
    return fh, srv, qid, ev, tx, content


@pytest.mark.parametrize("kind", ["A", "B"])
def test_may_falls_back_to_clear_text(server, fakehost, test_ca, kind):
    fh, srv, qid, ev, tx, content = fallback_delivery(server, fakehost, test_ca, kind)
    assert bhtest.split_received(tx.content)[1] == content
    assert tx.tls is None, f"delivered over TLS? {tx}"
    assert "STARTTLS" not in tx.session.verbs(), f"STARTTLS on the fallback connection: {tx.session}"
    assert ev.get("tls") is None, f"delivered in clear text but tls is {ev.get('tls')}"
    failed = check_failed_sessions(fh.sessions[:tx.session.number])
    assert failed, f"no connection tried STARTTLS first: {fh.sessions}"
    assert len(fh.complete()) == 1
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


@pytest.mark.parametrize("kind", ["A", "B"])
def test_may_fallback_recorded_in_tracking_log(server, fakehost, test_ca, kind):
    fh, srv, qid, ev, tx, content = fallback_delivery(server, fakehost, test_ca, kind)
    said = [e for e in F.events(srv, qid) if e.get("event") != "received"
            and re.search(r"(?i)handshake|tls|ssl|starttls|clear|fallback|protocol", event_text(e))]
    assert said, f"the tracking log does not record the fallback and why: {F.events(srv, qid)}"


@pytest.mark.parametrize("kind", ["A", "B"])
def test_encrypt_never_clear_text(server, fakehost, test_ca, kind):
    fh = fakehost(default=broken_host(kind, test_ca.leaf()))
    srv = server(extra_conf=F.connector_conf(fh, tls="encrypt", retry="1s"))
    qid = F.submit(srv, content=f"Subject: c22 C{kind}\r\n\r\nnever clear\r\n".encode())
    deferred = F.wait_event(srv, qid, "deferred", timeout=40, n=2)
    sessions = fh.wait_sessions(2)
    for s in sessions:
        assert "STARTTLS" in s.verbs(), f"a connection without STARTTLS under encrypt: {s}"
    check_failed_sessions(sessions)
    assert fh.transactions() == [], fh.transactions()
    for ev in deferred:
        assert re.search(r"(?i)handshake|tls|ssl|protocol|wrong version|packet", event_text(ev)), ev
    assert F.events(srv, qid, "delivered") == [] and F.events(srv, qid, "bounced") == []
    assert qid in srv.queue_ids()
