"""
C21 -- Expired or self-signed smart host certificate: defer, never fail the
client.

Connector `tls = verify` against the test CA.  The fake smart host presents
(a) an expired certificate signed by the test CA, (b) a self-signed one,
(c) a valid one.  Checked:
  - the client gets `250 2.0.0 ... queued as ID` in all three runs;
  - (a), (b): after the handshake no MAIL, AUTH or data, nothing in clear
    text; the message stays queued; `deferred` events say "expired" /
    "self-signed" (OpenSSL's words); the retries keep to the schedule
    (1s, then 2s); no bounce and no DSN while the queue lifetime lasts;
  - (c): delivered, verified.
  - once the queue lifetime (4 s here) runs out: an `expired` event and
    one notice from <> to the sender in the queue (it cannot leave either:
    the smart host is still untrusted).
"""

import re

import pytest

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]


def relay(server, fh, ca):
    return server(extra_conf=F.connector_conf(fh, tls="verify", ca=ca.root, match=F.SMART_HOST,
                                              retry="1s, 2s"))


@pytest.mark.parametrize("kind,why", [("expired", r"(?i)expired"),
                                      ("selfsigned", r"(?i)self[- ]signed")])
def test_bad_certificate_defers(server, fakehost, test_ca, kind, why):
    leaf = test_ca.expired() if kind == "expired" else test_ca.selfsigned()
    fh = fakehost(default=F.Esmtp(tls=leaf.spec()))
    srv = relay(server, fh, test_ca)
    qid = F.submit(srv, content=f"Subject: c21 {kind}\r\n\r\nx\r\n".encode())   # asserts the 250
    deferred = F.wait_event(srv, qid, "deferred", timeout=40, n=3)
    sessions = fh.wait_sessions(3)
    for s in sessions:
        verbs = s.verbs()
        assert "STARTTLS" in verbs, f"no STARTTLS under verify: {s}"
        assert verbs[verbs.index("STARTTLS") + 1:] in ([], ["QUIT"]), (
            f"commands after the failed verification (closing or QUIT allowed): {s}")
        clear = s.received_after_tls_failure()
        if clear is not None:
            assert not re.search(rb"(?i)(EHLO|HELO|MAIL|RCPT|DATA|AUTH)\b", clear), clear
    for ev in deferred:
        assert re.search(why, ev.get("reply") or ""), f"deferred event does not say why: {ev}"
    # The schedule: 1s after the first failure, 2s after the second.
    gaps = [sessions[i + 1].started - sessions[i].ended for i in range(2)]
    assert gaps[0] >= 0.8 and gaps[1] >= 1.8, f"retries faster than the schedule 1s, 2s: {gaps}"
    assert fh.transactions() == [], "a transaction reached the smart host"
    assert F.events(srv, qid, "bounced") == [] and F.events(srv, qid, "expired") == [], F.events(srv, qid)
    assert qid in srv.queue_ids()


def test_valid_certificate_delivers(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec()))
    srv = relay(server, fh, test_ca)
    content = b"Subject: c21 valid\r\n\r\nx\r\n"
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered")[0]
    assert ev["tls"] and ev["tls"].get("verified") is True, ev
    tx = fh.wait_complete(1)[0]
    assert bhtest.split_received(tx.content)[1] == content
    assert tx.tls is not None
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_bad_certificate_expires_into_one_notice(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.expired().spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root, match=F.SMART_HOST,
                                             retry="1s", lifetime="4s"))
    qid = F.submit(srv, content=b"Subject: c21 lifetime\r\n\r\nx\r\n")
    F.wait_event(srv, qid, "expired", timeout=30)
    assert F.events(srv, qid, "delivered") == [], F.events(srv, qid)

    def notices():
        out = []
        for other in srv.queue_ids():
            env = srv.envelope(other)
            if other != qid and env.sender in ("", None):
                out.append(env)
        return out
    found = bhtest.wait_until(notices, 10, what="the notice in the queue")
    assert len(found) == 1 and found[0].addresses == ["sender@example.org"], found
    assert qid not in srv.queue_ids()
    assert fh.transactions() == [], "something was sent to the untrusted smart host"
