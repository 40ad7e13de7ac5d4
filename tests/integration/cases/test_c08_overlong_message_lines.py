"""
C08 -- Overlong lines inside the message.

Intake side: the relay reads the whole data up to `\\r\\n.\\r\\n` before it
replies (no reply while data is arriving); our server keeps lines up to
64 KiB intact, so the message with a ~1100-octet To: line, a 1500-octet body
line and a 998-octet line gets 250 and is stored byte for byte -- no line
cut, folded or shortened.  (Folding the To: header when forwarding to a
strict smart host is the delivery side: not in this release.)
"""

import bhtest


def test_long_lines_stored_intact(server):
    srv = server()
    to = b"To: " + b", ".join(b"r%03d@example.net" % i for i in range(1, 61))
    assert 1000 < len(to) < 1200
    content = (b"From: sender@example.org\r\n" + to + b"\r\nSubject: long\r\n\r\n"
               + b"x" * 1500 + b"\r\n" + b"y" * 998 + b"\r\nend\r\n")
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    cut = content.index(b"end\r\n")
    c.send(content[:cut])
    kind, data = c.wait_input(0.5)
    assert kind == "quiet", f"server answered in the middle of the data: {kind} {data!r}"
    c.send(content[cut:] + b".\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()
    _, rest = bhtest.split_received(srv.message(qid))
    assert rest == content, "stored message differs from what was sent"
    assert max(len(line) for line in rest.split(b"\r\n")) == 1500
