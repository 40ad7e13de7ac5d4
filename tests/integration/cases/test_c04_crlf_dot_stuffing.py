"""
C04 -- What the relay sends must be canonical CRLF and dot-stuffed.

Intake side only (forwarding to a smart host is not part of this release):
the stored message is what the relay will send from, so it must be
dot-unstuffed and CRLF-only -- `..leading dot` is stored as `.leading dot`,
`...` as `..` -- and a message with bare LF / bare CR in its data
("mixed") is refused with a 5xx and nothing is queued.
"""

import bhtest


def test_dots_unstuffed_and_crlf_only(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()
    _, rest = bhtest.split_received(srv.message(qid))
    assert rest == b"Subject: dots\r\n\r\n.leading dot\r\n..\r\nend\r\n", f"stored {rest!r}"
    assert not bhtest.has_bare_cr_or_lf(srv.message(qid))


def test_mixed_line_ends_refused(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: mixed\r\n\r\nline one\nline two\rline three\r\n.\r\n")
    r = c.reply()
    assert 500 <= r.code <= 599, f"mixed line ends: want 5xx, got {r}"
    assert srv.queue_ids() == []
    # The session is still in step: the refusal came after the final dot.
    qid = c.mail(content=b"Subject: after\r\n\r\nclean\r\n")
    c.quit()
    assert srv.queue_ids() == [qid]
