"""
C17 -- Too many recipients from a client.

With the listener's recipient limit at 100 (`max_recipients = 100`): one
write with MAIL, 150 RCPT lines and DATA gets 250, 250 for r001..r100,
`452 4.5.3` for r101..r150 (never a 5xx, never a refusal of the whole
transaction), 354, and 250 after the message; the envelope holds exactly
r001..r100.  A second transaction for r101..r150 is accepted and holds
exactly those.  (Each recipient getting one copy at the smart host is the
delivery side: not in this release; it follows from the two envelopes.)
"""

import bhtest

ALL = [f"r{i:03d}@example.net" for i in range(1, 151)]


def test_recipient_limit(server):
    srv = server(listener_options={"max_recipients": "100"})
    c = srv.client()
    c.ehlo()
    c.send(b"MAIL FROM:<sender@example.org>\r\n"
           + b"".join(f"RCPT TO:<{a}>\r\n".encode() for a in ALL) + b"DATA\r\n")
    replies = c.replies(152)
    assert replies[0].code == 250, replies[0]
    for a, r in zip(ALL[:100], replies[1:101]):
        assert r.code == 250, f"{a}: {r}"
    for a, r in zip(ALL[100:], replies[101:151]):
        assert (r.code, r.enhanced) == (452, "4.5.3"), f"{a}: want 452 4.5.3, got {r}"
    assert replies[151].code == 354, f"DATA: {replies[151]}"
    c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
    first = bhtest.queue_id(c.reply())
    second = c.mail(rcpts=ALL[100:], content=b"Subject: the rest\r\n\r\nx\r\n")
    c.quit()
    assert srv.envelope(first).addresses == ALL[:100]
    assert srv.envelope(second).addresses == ALL[100:]
