"""
C26 -- Replies split over packets.

The fake smart host sends each piece of the case in its own send(), 200 ms
apart (Nagle off), and 2 s between "2" and "50 2.0.0 queued as X1\\r\\n".
Checked:
  - the relay sends nothing before the greeting's CRLF is complete;
  - it sees PIPELINING although the keyword was split, and pipelines MAIL,
    RCPT and DATA (the script answers only once all three are read);
  - it sends the message only after the split "354" and counts it
    delivered only after the whole final reply: the `delivered` event is
    written after the last piece went out, and names that reply.
Variant W: every reply line ends in a bare LF: the relay accepts that or
gives up with a protocol error and defers -- it never hangs.
"""

import datetime

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]


def ts(ev):
    return datetime.datetime.fromisoformat(ev["ts"].replace("Z", "+00:00")).timestamp()


def script():
    return F.Script(
        F.Send("220 smart", "host.example.net ESMTP\r", "\n", pause=0.2),
        F.Expect(rb"EHLO bh1\.example\.com\r\n", timeout=30),
        F.Send("250-smarthost.example.net\r\n250-PIPEL", "INING\r\n250-SIZE 10485760\r\n250 8BITMIME",
               "\r\n", pause=0.2),
        F.Expect(rb"MAIL FROM:<sender@example\.org>[^\r\n]*\r\n", timeout=30),
        F.Expect(rb"RCPT TO:<rcpt@example\.net>[^\r\n]*\r\n", timeout=10),
        F.Expect(rb"DATA\r\n", timeout=10),
        F.Send("250 2.1.0 ok\r\n25", "0 2.1.5 ok\r\n354 go\r\n", pause=0.2),
        F.Data("2", "50 2.0.0 queued as X1\r\n", pause=2.0, timeout=30),
        F.Esmtp(greet=False))


def test_split_replies(server, fakehost):
    fh = fakehost(default=script())
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    content = b"Subject: c26\r\n\r\nsplit replies\r\n"
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered", timeout=30)[0]
    tx = fh.wait_complete(1)[0]
    s = tx.session
    assert s.errors == [], s.errors
    sent = [(t, d) for t, w, d in s.log if w == "H<"]
    first_in = s.first_time("R>")
    assert first_in >= sent[2][0], "the relay spoke before the greeting's CRLF"
    last_piece = sent[-1]
    assert last_piece[1] == b"50 2.0.0 queued as X1\r\n", sent
    assert ts(ev) >= last_piece[0] - 0.01, (
        f"delivered at {ev['ts']}, before the last piece of the reply ({last_piece[0]})")
    assert "X1" in ev.get("reply", ""), ev
    # After DATA nothing but the message until the 354 was complete.
    data_time = [t for t, w, d in s.log if w == "R>" and b"DATA\r\n" in d][0]
    body_times = [t for t, w, d in s.log if w == "R>" and b"c26" in d]
    assert body_times and body_times[0] >= sent[7][0], "message sent before the split 354 was complete"
    assert data_time <= sent[6][0], "MAIL, RCPT and DATA were not pipelined"
    assert bhtest.split_received(tx.content)[1] == content
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_w_bare_lf_replies(server, fakehost):
    fh = fakehost(default=F.Esmtp(bare_lf=True))
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1s"))
    qid = F.submit(srv, content=b"Subject: c26 W\r\n\r\nbare LF replies\r\n")

    def outcome():
        return [e for e in F.events(srv, qid) if e.get("event") in ("deferred", "delivered", "bounced")]
    ev = bhtest.wait_until(outcome, 30, what="a delivered or deferred event (the relay hangs)")[0]
    assert ev["event"] in ("delivered", "deferred"), ev
    if ev["event"] == "delivered":
        assert len(fh.complete()) == 1
    else:
        assert qid in srv.queue_ids()
        s = fh.wait_sessions(1, timeout=30)[0]   # the relay gave up: closed
        assert s.closed_by is not None
