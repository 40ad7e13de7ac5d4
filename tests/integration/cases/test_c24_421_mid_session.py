"""
C24 -- 421 in the middle of a session.

The first connection to the fake smart host fails one way; every later one
is a normal smart host.  The message has one recipient; retry_schedule is
2s, 4s.  The failing host does not offer PIPELINING.
  A: "421 4.3.2 too busy\\r\\n" as greeting, then close.
  B: 250 to MAIL, "421 4.7.0 try again later\\r\\n" to RCPT, close.
  C: "421 4.4.2 timeout\\r\\n" after the message and the final dot, close.
  D: the connection closed right after the final dot, no reply.
  E: "421 4.3.0 ...\\r\\n" to MAIL, the connection left open.
Checked for each:
  - a `deferred` event whose reply carries the 421 (D: says the
    connection was lost), the message still queued, no DSN, no bounce;
  - after the 421 the relay sends nothing more on that connection and does
    not reuse it (E: the relay closes it);
  - the retry comes no earlier than the schedule (2s) and delivers the
    message once, byte-exact; the queue is empty afterwards.
"""

import re

import pytest

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

# Without PIPELINING every command after a 421 is one the relay chose to
# send after reading it.
NO_PIPELINING = ("SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES")

RUNS = {
    "A": (dict(greeting=b"421 4.3.2 too busy\r\n"), r"(?:^|\s)421 4\.3\.2 too busy"),
    "B": (dict(rcpt_reply=b"421 4.7.0 try again later\r\n"), r"(?:^|\s)421 4\.7\.0 try again later"),
    "C": (dict(dot_reply=b"421 4.4.2 timeout\r\n"), r"(?:^|\s)421 4\.4\.2 timeout"),
    "D": (dict(dot_reply=F.CLOSE), r"(?i)connection|lost|closed|eof|reset"),
    "E": (dict(mail_reply=b"421 4.3.0 not now\r\n", keep_open_after_421=True), r"(?:^|\s)421 4\.3\.0 not now"),
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_421_defers_and_retry_delivers(server, fakehost, run):
    opts, want = RUNS[run]
    fh = fakehost(plan=[F.Esmtp(extensions=NO_PIPELINING, **opts)])
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="2s, 4s"))
    content = f"Subject: c24 {run}\r\n\r\n421 run {run}\r\n".encode()
    qid = F.submit(srv, content=content)
    deferred = F.wait_event(srv, qid, "deferred", timeout=30)[0]
    assert re.search(want, deferred.get("reply") or ""), f"deferred reply: {deferred}"
    assert deferred.get("connector") == "out", deferred
    first = fh.wait_sessions(1, timeout=30)[0]
    if run != "D":
        assert first.after_421 == b"", f"the relay sent {first.after_421!r} after the 421"
    if run == "E":
        assert first.closed_by == "peer", f"the relay did not close after 421 to MAIL: {first}"
    assert len(first.transactions) <= 1, f"connection reused after the failure: {first}"
    delivered = F.wait_event(srv, qid, "delivered", timeout=30)[0]
    assert delivered.get("reply", "").startswith("250"), delivered
    sessions = fh.sessions
    good = [s for s in sessions if any(t.complete for t in s.transactions)]
    assert len(good) == 1, f"want one delivering session: {sessions}"
    gap = good[0].started - first.ended
    assert gap >= 1.8, f"retried {gap:.2f}s after the failure; the schedule says 2s"
    done = fh.complete()
    assert len(done) == 1, done
    assert bhtest.split_received(done[0].content)[1] == content
    for t in fh.transactions():
        assert t.mail_from == "sender@example.org", f"a notice was sent: {t}"
    assert F.events(srv, qid, "bounced") == [], F.events(srv, qid)
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
