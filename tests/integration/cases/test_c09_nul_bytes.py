"""
C09 -- NUL bytes in the message body.

Checked: `before\\0after\\r\\nsecond line` in the data gets either a 5xx
after the final dot with nothing queued (our server's choice: NUL is a
fault of the data) or 250 with the body stored byte-exact; in no case a
truncated message (nothing stored that lacks `second line`), and the
session stays in step (a normal transaction follows on the same
connection).
"""

import bhtest


def test_nul_refused_or_kept_whole(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: nul\r\n\r\nbefore\0after\r\nsecond line\r\n.\r\n")
    r = c.reply()
    if r.code == 250:
        qid = bhtest.queue_id(r)
        _, rest = bhtest.split_received(srv.message(qid))
        assert rest == b"Subject: nul\r\n\r\nbefore\0after\r\nsecond line\r\n", f"stored {rest!r}"
    else:
        assert 500 <= r.code <= 599, f"want 5xx after the dot or 250, got {r}"
        assert srv.queue_ids() == []
    for qid in srv.queue_ids():
        assert b"second line\r\n" in srv.message(qid), f"{qid}: truncated at the NUL"
    after = c.mail(content=b"Subject: after nul\r\n\r\nok\r\n")
    c.quit()
    assert after in srv.queue_ids()
