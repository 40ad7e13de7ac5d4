"""
C05 -- Commands and data pipelined after DATA.

Checked:
  A (every RCPT refused, body pipelined): 250 to MAIL, 501/550/553 to the
    bad RCPT, DATA refused (554 5.5.1 or 503 5.5.1); then either
    554 5.5.0 / 421 4.5.0 and a close, or the body lines are answered as
    commands without ever opening a transaction (the pipelined RCPT gets
    503 5.5.1, no 354, no 250 after the refusal).  Nothing is queued.
  B (valid recipient, body pipelined before 354): either 250, 250, 354,
    250, 221 with one message `Subject: pipelined` queued, or 250, 250,
    554 5.5.0 and a close with nothing queued.  Never a 500 per body line.
  Replies come in the order of the commands.
(Receiving side only.)
"""

import bhtest


def read_until_end(c):
    """Every reply until 221 or the connection closes."""
    out = []
    while True:
        try:
            r = c.reply(timeout=5)
        except bhtest.ConnectionClosed:
            return out, "closed"
        out.append(r)
        if r.code == 221:
            return out, "quit"


def test_a_all_rcpt_refused_body_pipelined(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<no-at-sign>\r\nDATA\r\n"
           b"Subject: x\r\n\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\nstuffed\r\n.\r\nQUIT\r\n")
    replies, end = read_until_end(c)
    codes = [r.code for r in replies]
    assert len(replies) >= 3, f"replies: {replies}"
    assert codes[0] == 250, f"MAIL: {replies[0]}"
    assert codes[1] in (501, 550, 553), f"RCPT TO:<no-at-sign>: {replies[1]}"
    assert (codes[2], replies[2].enhanced) in ((554, "5.5.1"), (503, "5.5.1")), f"DATA: {replies[2]}"
    rest = replies[3:]
    if rest and (rest[0].code, rest[0].enhanced) in ((554, "5.5.0"), (421, "4.5.0")):
        assert len(rest) == 1 and end == "closed", f"after {rest[0]} the server must close: {rest}"
    else:
        assert end == "quit", f"session ended without 221: {replies}"
        for r in rest[:-1]:
            assert 500 <= r.code <= 599, f"body line answered {r} (a transaction was opened)"
        assert any(r.code == 503 and r.enhanced == "5.5.1" for r in rest), (
            f"the pipelined RCPT should get 503 5.5.1: {rest}")
    assert srv.queue_ids() == []


def test_b_body_pipelined_before_354(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"
           b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    replies, end = read_until_end(c)
    codes = [r.code for r in replies]
    assert 500 not in codes, f"a body line was taken as a command: {replies}"
    if codes == [250, 250, 354, 250, 221]:
        qid = bhtest.queue_id(replies[3])
        assert srv.queue_ids() == [qid]
        assert bhtest.split_received(srv.message(qid))[1] == b"Subject: pipelined\r\n\r\nbody\r\n"
    else:
        assert codes == [250, 250, 554] and replies[2].enhanced == "5.5.0" and end == "closed", (
            f"want 250 250 354 250 221, or 250 250 554 5.5.0 and close; got {replies} ({end})")
        assert srv.queue_ids() == []
