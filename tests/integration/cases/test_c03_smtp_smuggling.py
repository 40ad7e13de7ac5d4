"""
C03 -- SMTP smuggling: a bare-LF "end of data" inside DATA.

Checked for `\\n.\\r\\n`, `\\n.\\n` and `\\r\\n.\\n` in the middle of the
data, each in a fresh session, all in one write: exactly one reply to the
whole write; either (a) a refusal (5xx after the final dot, or 5xx/421 and a
close) with nothing queued, or (b) one 250 and one stored message in which
`MAIL FROM:<ceo@example.org>` and `smuggled` are body text and every line
ends in CRLF.  Never two 250s, never a separate message `Subject: two`.
(Receiving side only; what a smart host would see follows from what is
stored.)
"""

import pytest

import bhtest

TAIL = (b"MAIL FROM:<ceo@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"
        b"From: ceo@example.org\r\nSubject: two\r\n\r\nsmuggled\r\n.\r\n")
HEAD = b"From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: one\r\n\r\nfirst body"


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\n.\n", b"\r\n.\n"],
                         ids=["LF.CRLF", "LF.LF", "CRLF.LF"])
def test_bare_lf_end_of_data(server, fake_end):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(HEAD + fake_end + TAIL)
    r = c.reply()
    kind, data = c.wait_input(1.0)
    assert kind in ("quiet", "eof"), f"a second reply to one write: {r} then {data!r}"
    ids = srv.queue_ids()
    if r.code == 250:
        qid = bhtest.queue_id(r)
        assert ids == [qid], f"want exactly one queued message, got {ids}"
        _, rest = bhtest.split_received(srv.message(qid))
        assert b"MAIL FROM:<ceo@example.org>" in rest and b"smuggled" in rest, rest
        assert not bhtest.has_bare_cr_or_lf(rest), f"stored message has bare CR/LF: {rest!r}"
        assert rest.startswith(b"From: sender@example.org\r\n"), rest
    else:
        assert 500 <= r.code <= 599 or r.code == 421, f"want 5xx, 421 or 250, got {r}"
        assert ids == [], f"refused but queued {ids}"
    if kind == "quiet":
        c.quit()
    for qid in srv.queue_ids():
        head = bhtest.split_received(srv.message(qid))[1].split(b"\r\n\r\n", 1)[0]
        assert b"Subject: two" not in head, f"{qid}: the smuggled message was queued on its own"
