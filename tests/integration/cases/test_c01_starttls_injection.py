"""
C01 -- Plaintext commands pipelined behind STARTTLS must be thrown away.

Checked (the NO STARTTLS probe, server side):
  - `STARTTLS\\r\\nEHLO injected.example.org\\r\\n` in one write gets either
    `220 2.0.0` with nothing after it, or a 4xx/5xx and a close;
  - after the handshake nothing arrives for 3 seconds (an unprompted 250
    would mean the injected EHLO ran);
  - the message then sent has a Received: header naming client.example.org,
    never injected.example.org;
  - MAIL and RCPT pipelined behind STARTTLS are never executed;
  - bytes that are not a ClientHello arriving right behind STARTTLS neither
    crash nor hang the server.
"""

import bhtest


def test_injected_ehlo_is_discarded(server):
    srv = server()
    c = srv.client()
    assert "STARTTLS" in c.ehlo().keywords()
    c.send(b"STARTTLS\r\nEHLO injected.example.org\r\n")
    r = c.reply()
    if r.code != 220:
        assert 400 <= r.code <= 599, f"STARTTLS with pipelined plaintext: {r}"
        assert c.closed_within(5), "refused STARTTLS injection but kept the connection"
        assert srv.queue_ids() == []
        return
    assert r.enhanced == "2.0.0", f"want 220 2.0.0, got {r}"
    c.tls_upgrade()             # asserts no plaintext followed the 220
    kind, data = c.wait_input(3.0)
    assert kind == "quiet", f"after the handshake the server sent {kind} {data!r} unprompted"
    r = c.ehlo("client.example.org")
    assert "injected" not in r.text, r
    qid = c.mail(content=b"Subject: c01\r\n\r\nx\r\n")
    c.quit()
    text = bhtest.unfold(bhtest.split_received(srv.message(qid))[0])
    assert "client.example.org" in text, text
    assert "injected.example.org" not in text, text


def test_pipelined_mail_rcpt_never_executed(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<spy@example.net>\r\n")
    r = c.reply()
    if r.code != 220:
        assert 400 <= r.code <= 599, r
        assert c.closed_within(5)
        assert srv.queue_ids() == []
        return
    c.tls_upgrade()
    kind, data = c.wait_input(1.0)
    assert kind == "quiet", f"unprompted {kind} {data!r} after the handshake"
    c.ehlo()
    # No transaction may be open: the pipelined MAIL was thrown away.
    c.expect("RCPT TO:<rcpt@example.net>", 503, "5.5.1")
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: c01 b\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()
    env = srv.envelope(qid)
    assert env.addresses == ["rcpt@example.net"], env
    assert env.sender == "sender@example.org", env


def test_junk_between_starttls_and_220(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.send(b"STARTTLS\r\n")
    c.send(b"this is not a TLS ClientHello\r\n")
    try:
        r = c.reply()
        assert r.code == 220 or 400 <= r.code <= 599, r
    except bhtest.ConnectionClosed:
        pass
    finally:
        c.close()
    assert srv.running(), "server died"
    again = srv.client()
    again.ehlo()
    again.starttls()
    again.ehlo()
    again.quit()
