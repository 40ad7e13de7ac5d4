"""
C10 -- SMTPUTF8 end to end, and a next hop without SMTPUTF8.

Intake side (the choice of next hop is delivery: not in this release):
EHLO lists SMTPUTF8 and 8BITMIME; `MAIL FROM:<...> SMTPUTF8` and a RCPT
with a UTF-8 local part get 250; the message is stored byte-exact; and the
envelope records "needs SMTPUTF8" from the content -- false for A (ASCII
message, parameter declared), true for B (UTF-8 recipient and To: header).
"""

import bhtest


def send(srv, rcpt, content):
    c = srv.client()
    r = c.ehlo()
    assert {"SMTPUTF8", "8BITMIME"} <= r.keywords(), f"EHLO: {r}"
    c.expect("MAIL FROM:<sender@example.org> SMTPUTF8", 250)
    c.expect(b"RCPT TO:<" + rcpt + b">", 250)
    c.expect("DATA", 354)
    c.send(bhtest.data_block(content))
    qid = bhtest.queue_id(c.reply())
    c.quit()
    _, rest = bhtest.split_received(srv.message(qid))
    assert rest == content
    return srv.envelope(qid)


def test_a_ascii_message_does_not_need_smtputf8(server):
    srv = server()
    env = send(srv, b"rcpt@example.net", b"Subject: ascii\r\n\r\nhello\r\n")
    assert env.smtputf8 is False, f"ASCII message marked as needing SMTPUTF8: {env}"
    assert env.addresses == ["rcpt@example.net"]


def test_b_utf8_recipient_needs_smtputf8(server):
    srv = server()
    env = send(srv, b"j\xc3\xb6rg@example.net",
               b"To: j\xc3\xb6rg@example.net\r\nSubject: utf8\r\n\r\nhello\r\n")
    assert env.smtputf8 is True, f"UTF-8 recipient not marked as needing SMTPUTF8: {env}"
    assert env.addresses == ["j\u00f6rg@example.net"], env
