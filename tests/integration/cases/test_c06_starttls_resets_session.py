"""
C06 -- STARTTLS resets the session; RSET resets only the transaction.

Checked: the whole dialogue of the case, one line after the previous reply,
with exactly the replies it lists -- RSET and NOOP before EHLO 250; EHLO
250; STARTTLS 220; MAIL without a new EHLO 503 5.5.1; EHLO 250 without
STARTTLS in the list; STARTTLS again 503 5.5.1; RSET 250; MAIL/RCPT 250
(RSET kept the EHLO); EHLO in mid-transaction 250 and it ends the
transaction, so DATA gets 503 5.5.1; then MAIL, RCPT, DATA 354, 250, QUIT
221.  The queued message's Received: header names three.example.org and the
TLS protocol and cipher, and nothing from before TLS.
(The client-side half of the case concerns delivery: not in this release.)
"""

import re

import bhtest


def test_full_dialogue(server):
    srv = server()
    c = srv.client()
    c.expect("RSET", 250)
    c.expect("NOOP", 250)
    r = c.expect("EHLO one.example.org", 250)
    assert "STARTTLS" in r.keywords(), r
    c.expect("STARTTLS", 220)
    c.tls_upgrade()
    c.expect("MAIL FROM:<sender@example.org>", 503, "5.5.1")
    r = c.expect("EHLO two.example.org", 250)
    assert "STARTTLS" not in r.keywords(), f"STARTTLS still listed inside TLS: {r}"
    c.expect("STARTTLS", 503, "5.5.1")
    c.expect("RSET", 250)
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("EHLO three.example.org", 250)
    c.expect("DATA", 503, "5.5.1")
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: state\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    version, cipher = c.tls_version, c.tls_cipher
    c.expect("QUIT", 221)
    c.close()

    text = bhtest.unfold(bhtest.split_received(srv.message(qid))[0])
    assert "three.example.org" in text, text
    assert "one.example.org" not in text and "two.example.org" not in text, text
    assert re.search(r"\bwith ESMTPS\b", text) and version in text and cipher in text, text
    env = srv.envelope(qid)
    assert env.addresses == ["rcpt@example.net"], env
    assert (env.tls_version, env.tls_cipher) == (version, cipher), env
