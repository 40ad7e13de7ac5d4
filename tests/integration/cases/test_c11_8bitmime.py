"""
C11 -- 8BITMIME: accept the BODY parameter; never send raw 8-bit to a
7-bit hop.

Intake side (conversion for a 7-bit next hop is delivery: not in this
release): `BODY=8BITMIME`, `BODY=7BIT` and `body=8bitmime` get 250 and the
8-bit body is stored unchanged; `BODY=BINARYMIME` (CHUNKING not offered)
and `BODY=FOO` get 501 5.5.4 or 555 5.5.4.
"""

import bhtest

CONTENT = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\nSubject: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n")


def test_body_parameters(server):
    srv = server()
    c = srv.client()
    r = c.ehlo()
    assert "8BITMIME" in r.keywords(), r
    chunking = "CHUNKING" in r.keywords()
    for param in ("BODY=8BITMIME", "BODY=7BIT", "body=8bitmime"):
        c.expect(f"MAIL FROM:<sender@example.org> {param}", 250)
        c.expect("RCPT TO:<rcpt@example.net>", 250)
        c.expect("DATA", 354)
        c.send(bhtest.data_block(CONTENT))
        qid = bhtest.queue_id(c.reply())
        assert bhtest.split_received(srv.message(qid))[1] == CONTENT, f"{param}: body changed"
    bad = ["BODY=FOO"] + ([] if chunking else ["BODY=BINARYMIME"])
    for param in bad:
        r = c.cmd(f"MAIL FROM:<sender@example.org> {param}")
        assert (r.code, r.enhanced) in ((501, "5.5.4"), (555, "5.5.4")), f"{param}: {r}"
        c.expect("RSET", 250)
    c.quit()
    assert len(srv.queue_ids()) == 3
