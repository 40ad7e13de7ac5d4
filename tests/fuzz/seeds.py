#!/usr/bin/python3
"""Writes the seed corpora tests/fuzz/corpus/<harness>/ from the inputs of
the unit tests (cases C03, C04, C07, C09, C12-C16, C18, C25, C26).  Each file starts
with the harness's control bytes (see the comment atop each fuzz_*.c)."""
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(harness, blobs):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    for b in blobs:
        name = hashlib.sha1(b).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)


line_inputs = [
    b"QUIT\r\n", b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
    b"a\0b\r\n", b"abc\r\r\n", b"0123456789ABCDEF\r\nQUIT\r\n",
    b"RCPT TO:<aaaaa>RCPT TO:<spy@x>\r\nNOOP\r\n", b"abc\r", b"\n\n",
    b"RCPT TO:<" + b"a" * 600 + b"@example.net>\r\nRCPT TO:<r@example.net>\r\n",
]
write("fuzz_line", [bytes([m, 7]) + s for s in line_inputs for m in (0, 10)])

paths = [
    b"<a@b.example>", b"<>", b"<postmaster>", b"<PostMaster>",
    b'<"sender name"@example.org>', b'<"a@b"@example.net>',
    b'<"x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com"@example.net>',
    b'<"foo..bar"@example.net>', b'<"back\\\\slash\\"quote"@example.net>',
    b"<@a.example,@b.example:user@c.example>", b"<j\xc3\xb6rg@example.net>",
    b"<user@\xc3\xa9xample.net>", b"<a@[192.0.2.1]>",
    b"<a@[IPv6:2001:db8::1]>", b"<a@[ipv6:::ffff:192.0.2.1]>", b"<a@b>>",
    b"<a@b> <c@d>", b"<>>>>", b'<"abc\\', b"<a@b.example.>",
    b"<!#$%&'*+-/=?^_`{|}~@example.com>", b"<" + b"a" * 64 + b"@" + b"b" * 63 + b">",
]
write("fuzz_address", [bytes([n]) + p for p in paths for n in (0, 1)])

commands = [
    b"EHLO client.example.org", b"mail FROM:<a@b>", b"Rcpt To:<a@b>   ",
    b"StartTLS", b"BDAT 100 LAST", b"QUIT\0", b"D\xc3\x84TA",
    b"MAIL FROM:<sender@example.org> SIZE=1000 BODY=8BITMIME",
]
mails = [
    b"FROM:<sender@example.org>", b"FROM: <sender@example.org>",
    b"from:<Sender@Example.ORG> body=8bitmime size=100", b"FROM:<> SIZE=1000",
    b"FROM:<>>>>", b"FROM:<sender@example.org> <other@example.org>",
    b"FROM:<a@b> SIZE=184467440737095516160", b"FROM:<a@b> SIZE=1 SIZE=2",
    b"FROM:<a@b> SIZE=0", b"FROM:<a@b> BODY=BINARYMIME",
    b"FROM:<j\xc3\xb6rg@example.net> SMTPUTF8",
    b"FROM:<sender@example.org> RET=HDRS ENVID=QQ314159",
    b"FROM:<a@b> ENVID=a+2Bb+3D AUTH=<>", b"FROM:<a@b> FOO=bar",
    b'FROM:<"sender name"@example.org> SMTPUTF8 RET=FULL',
]
rcpts = [
    b"TO:<rcpt@example.net>", b"TO: <r2@example.net> NOTIFY=FAILURE",
    b"TO:<>", b"TO:<postmaster>",
    b'TO:<"x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com"@example.net>',
    b"TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net",
    b"TO:<b@example.net> NOTIFY=NEVER", b"TO:<c@example.net> ORCPT=rfc822;root",
    b"TO:<d@example.net> notify=delay ORCPT=RFC822;d+2Bx@example.net",
    b"TO:<a@b> ORCPT=utf-8;j\xc3\xb6rg@x", b"TO:<a@b> NOTIFY=NEVER,SUCCESS",
]
write("fuzz_command", [b"\0" + c for c in commands] +
      [bytes([n]) + m for m in mails for n in (1, 2)] +
      [b"\3" + r for r in rcpts])

data = [
    b"Subject: x\r\n\r\nbody\r\n.\r\n", b".\r\n", b"..\r\n.\r\n",
    b"Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n",
    b"From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: one\r\n\r\n"
    b"first body\n.\r\nMAIL FROM:<ceo@example.org>\r\nRCPT TO:<rcpt@example.net>"
    b"\r\nDATA\r\nFrom: ceo@example.org\r\nSubject: two\r\n\r\nsmuggled\r\n.\r\n",
    b"x\r\n\r\nfirst body\n.\nMAIL FROM:<ceo@example.org>\r\n.\r\n",
    b"x\r\n\r\nfirst body\r\n.\nMAIL FROM:<ceo@example.org>\r\n.\r\n",
    b"Subject: mixed\r\n\r\nline one\nline two\rline three\r\n.\r\n",
    b"Subject: nul\r\n\r\nbefore\0after\r\nsecond line\r\n.\r\n",
    b"Gr\xc3\xbc\xc3\x9fe\r\n.\r\n", b"a\r\n.\r\nQUIT\r\n", b"a\r\n.\rb\r\n.\r\n",
    b"0123456789A\r\n.\r\n", b"a\r", b"\r\r\n.\r\n",
]
write("fuzz_datadec", [bytes([f, 3]) + d for d in data for f in (0, 1, 20)])

headers = [
    b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody\r\n",
    b"Message-ID:\r\n <fold@example.com>\r\n\r\n",
    b"Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n",
    b"Message-ID: <a@b> (comment)\r\n\r\n", b"MESSAGE-ID :  <x@y>  \r\n\r\n",
    b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nbody", b"Message-ID: <a@b>",
    b"Message-ID: <" + b"i" * 300 + b"@x>\r\n\r\n", b"\r\nMessage-ID: <a@b>\r\n",
]
write("fuzz_msghdr", [b"\5" + h for h in headers])

replies = [
    b"220 smarthost.example.net ESMTP\r\n",
    b"220-smarthost.example.net ESMTP\r\n220-second greeting line\r\n220 ready\r\n",
    b"250-smarthost.example.net\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
    b"250-8BITMIME\r\n250 STARTTLS\r\n",
    b"250\r\n250-2.1.5 first line\r\n250 2.1.5 recipient ok\r\n354 go ahead\r\n",
    b"220-hello\r\n554 5.7.1 no service for you\r\n",
    b"250 2.1.0 ok\r\n25", b"220 smarthost ESMTP\n250-x\n250 SIZE 1\n",
    b"550 5.1.1 user unknown\r\n421 4.3.2 too busy\r\n",
]
write("fuzz_reply", [b"\x09" + r for r in replies])
