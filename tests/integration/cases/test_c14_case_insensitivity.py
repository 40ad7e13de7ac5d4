"""
C14 -- Case-insensitivity of verbs, parameters and domains.

The client is not a relay client (relay_networks = 10.0.0.0/8, the test
connects from 127.0.0.1), so only the accepted domain example.com is taken.
Checked: lower/mixed-case verbs and parameters and an upper-case accepted
domain get 250, 250, 250, 250 (not "relay access denied"), 354, 250, 221;
`StartTLS` in a second session gets 220; the envelope keeps the local parts
`Mixed.Case` and `Sender` with their case (the domain may be lower-cased).
(What the smart host receives is the delivery side: not in this release.)
"""

import bhtest


def test_case_insensitive_dialogue(server):
    srv = server(relay_networks="10.0.0.0/8")
    c = srv.client()
    c.expect("ehlo client.example.org", 250)
    c.expect("mail FROM:<Sender@Example.ORG> body=8bitmime size=100", 250)
    c.expect("rcpt to:<Mixed.Case@EXAMPLE.COM>", 250)
    c.expect("Rcpt To:<other@Example.Com>", 250)
    c.expect("data", 354)
    c.send(b"Subject: case\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.expect("quit", 221)
    c.close()

    env = srv.envelope(qid)
    sender = bhtest.parse_path(env.sender)
    assert sender[0] == "Sender" and sender[1].lower() == "example.org", env
    got = [bhtest.parse_path(a) for a in env.addresses]
    assert [(l, d.lower()) for l, d in got] == [("Mixed.Case", "example.com"), ("other", "example.com")], got

    c = srv.client()
    c.expect("ehlo client.example.org", 250)
    c.expect("StartTLS", 220)
    c.tls_upgrade()
    c.expect("ehlo client.example.org", 250)
    c.quit()
