"""
C15 -- A space after the colon in MAIL FROM / RCPT TO.

Intake side: `MAIL FROM: <...>`, `RCPT TO: <...>` and `RCPT TO: <...>
NOTIFY=FAILURE` are tolerated (250, 250, 250, 354, 250), and the envelope
holds the plain paths (no space, no brackets) with r2's NOTIFY=FAILURE, so
what goes to the next hop can be written without the space.  (The exact
commands sent to a strict smart host are the delivery side: not in this
release.)
"""

import bhtest


def test_space_tolerated(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM: <sender@example.org>", 250)
    c.expect("RCPT TO: <rcpt@example.net>", 250)
    c.expect("RCPT TO: <r2@example.net> NOTIFY=FAILURE", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: space\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()
    env = srv.envelope(qid)
    assert env.sender == "sender@example.org", env
    assert env.addresses == ["rcpt@example.net", "r2@example.net"], env
    assert env.rcpts[0]["notify"] == [] and env.rcpts[1]["notify"] == ["FAILURE"], env
