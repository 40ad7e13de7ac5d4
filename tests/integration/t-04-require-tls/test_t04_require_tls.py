"""
t-04 require-tls: a `tls = require` listener refuses MAIL before STARTTLS
with `530 5.7.0`, and takes the whole transaction after STARTTLS and a new
EHLO (DESIGN.md "Inbound").
"""

import re

import bhtest


def test_mail_before_starttls_refused(server):
    srv = server(tls="require")
    c = srv.client()
    r = c.ehlo()
    assert "STARTTLS" in r.keywords(), f"require listener does not offer STARTTLS: {r}"
    c.expect("MAIL FROM:<sender@example.org>", 530, "5.7.0")
    # Nothing was opened: a RCPT now has no transaction to join.
    r = c.cmd("RCPT TO:<user@example.com>")
    assert r.code in (503, 530), f"RCPT without a transaction: {r}"
    r = c.cmd("DATA")
    assert r.code in (503, 530, 554), f"DATA without a transaction: {r}"
    c.quit()
    assert srv.queue_ids() == []


def test_after_starttls_accepted(server):
    srv = server(tls="require")
    c = srv.client()
    c.ehlo()
    c.starttls()
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords(), f"STARTTLS offered again inside TLS: {r}"
    qid = c.mail(rcpts=("user@example.com",), content=b"Subject: require\r\n\r\nsecret\r\n")
    version, cipher = c.tls_version, c.tls_cipher
    c.quit()
    assert qid in srv.queue_ids()
    header, rest = bhtest.split_received(srv.message(qid))
    assert rest == b"Subject: require\r\n\r\nsecret\r\n"
    text = bhtest.unfold(header)
    assert re.search(r"\bwith ESMTPS\b", text) and version in text and cipher in text, text


def test_mail_after_starttls_without_ehlo_refused(server):
    """STARTTLS forgets the EHLO: MAIL right after the handshake is 503."""
    srv = server(tls="require")
    c = srv.client()
    c.ehlo()
    c.starttls()
    c.expect("MAIL FROM:<sender@example.org>", 503, "5.5.1")
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.quit()
