"""
C19 -- The smart host sends an incomplete certificate chain.

The fake smart host's certificate for smarthost.example.net is signed by
the test CA's intermediate; the relay's CA bundle (tls_ca_file) holds the
root only.  Checked:
  - verify, leaf only: after STARTTLS no MAIL (no AUTH, no data, nothing in
    clear text on that connection); the message stays queued and is
    retried; the `deferred` event names the missing issuer; no bounce.
  - may, leaf only: delivered over TLS, the tracking event says
    tls.verified = false.
  - control, leaf + intermediate under verify: delivered, tls.verified =
    true, the peer subject names smarthost.example.net.
"""

import re

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]


def relay(server, fh, tls, ca):
    return server(extra_conf=F.connector_conf(fh, tls=tls, ca=ca.root, match=F.SMART_HOST,
                                              retry="1s"))


def test_verify_leaf_only_is_deferred_and_retried(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec(chain=False)))
    srv = relay(server, fh, "verify", test_ca)
    content = b"Subject: c19 verify\r\n\r\nleaf only\r\n"
    qid = F.submit(srv, content=content)
    deferred = F.wait_event(srv, qid, "deferred", timeout=30, n=2)
    sessions = fh.wait_sessions(2)
    for s in sessions:
        assert "STARTTLS" in s.verbs(), f"no STARTTLS under verify: {s}"
        after = s.verbs()[s.verbs().index("STARTTLS") + 1:]
        assert after in ([], ["QUIT"]), f"commands after the failed verification: {s}"
        assert not s.transactions, f"a transaction after the failed verification: {s}"
        clear = s.received_after_tls_failure()
        if clear is not None:
            assert not re.search(rb"(?i)(EHLO|HELO|MAIL|RCPT|DATA|AUTH|QUIT)\b", clear), (
                f"clear-text commands after the failed handshake: {clear!r}")
    for ev in deferred:
        assert re.search(r"(?i)issuer", ev.get("reply") or ""), (
            f"the deferred event does not name the missing issuer: {ev}")
    assert [ln for ln in srv.stderr().splitlines() if qid in ln and re.search(r"(?i)issuer", ln)], (
        "the log does not name the missing issuer")
    assert fh.transactions() == [], fh.transactions()
    assert F.events(srv, qid, "bounced") == [], F.events(srv, qid)
    assert F.events(srv, qid, "delivered") == [], F.events(srv, qid)
    assert qid in srv.queue_ids()


def test_may_leaf_only_delivered_unverified(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec(chain=False)))
    srv = relay(server, fh, "may", test_ca)
    content = b"Subject: c19 may\r\n\r\nleaf only, may\r\n"
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered")[0]
    tx = fh.wait_complete(1)[0]
    assert tx.tls is not None and tx.tls["version"].startswith("TLSv1."), tx
    _, rest = bhtest.split_received(tx.content)
    assert rest == content, rest
    tls = ev.get("tls")
    assert isinstance(tls, dict), f"delivered event without tls: {ev}"
    assert tls.get("verified") is False, f"want verified: false, got {ev}"
    assert tls.get("version") == tx.tls["version"], ev
    assert tls.get("cipher") == tx.tls["cipher"], ev
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_control_full_chain_verified(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec(chain=True)))
    srv = relay(server, fh, "verify", test_ca)
    content = b"Subject: c19 control\r\n\r\nleaf and intermediate\r\n"
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered")[0]
    tx = fh.wait_complete(1)[0]
    assert tx.tls is not None, tx
    _, rest = bhtest.split_received(tx.content)
    assert rest == content, rest
    tls = ev.get("tls")
    assert isinstance(tls, dict) and tls.get("verified") is True, f"want verified: true, got {ev}"
    assert F.SMART_HOST in (tls.get("peer") or ""), f"peer subject: {ev}"
    assert ev.get("connector") == "out", ev
    assert ev.get("reply", "").startswith("250"), ev
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
