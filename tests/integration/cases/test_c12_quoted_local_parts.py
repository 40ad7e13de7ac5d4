"""
C12 -- Quoted local parts: accept, route by the real domain, quote again
when forwarding.

Intake side: every MAIL/RCPT of the case gets 250.  The case's input has
seven paths -- the quoted sender and six recipients (the case text counts
"seven RCPT paths" including the sender; its "fourth RCPT" is the fourth
command, i.e. the third recipient, `"x> NOTIFY=SUCCESS ORCPT=...@example.com"`).
The envelope stores six recipients, all in example.net, with the same
local parts once unquoted; quoting is kept wherever the local part is not
a dot-atom (space, `@`, `"`, `\\`, `>`, `..`); `"plain"` may become
`plain`.  The recipient with `NOTIFY=` and `ORCPT=` inside its quotes is
one address in example.net with no NOTIFY and no ORCPT of its own.
(Quoting on the wire to a smart host is the delivery side: not in this
release; it is formatted from this envelope.)
"""

import re

import bhtest

RCPTS = [
    # (wire form sent, local part it denotes)
    (b'"odd user"@example.net', "odd user"),
    (b'"a@b"@example.net', "a@b"),
    (b'"x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com"@example.net',
     "x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com"),
    (b'"foo..bar"@example.net', "foo..bar"),
    (b'"back\\\\slash\\"quote"@example.net', 'back\\slash"quote'),
    (b'"plain"@example.net', "plain"),
]

DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def assert_wire_form(addr):
    """An unquoted local part must be a dot-atom (RFC 5321 4.1.2)."""
    if addr.startswith('"'):
        return
    local = addr.rpartition("@")[0]
    assert DOT_ATOM.match(local), f"unquoted local part that needs quoting: {addr!r}"


def test_quoted_local_parts(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect(b'MAIL FROM:<"sender name"@example.org>', 250)
    for wire, _ in RCPTS:
        c.expect(b"RCPT TO:<" + wire + b">", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: quoted\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()

    env = srv.envelope(qid)
    assert bhtest.parse_path(env.sender) == ("sender name", "example.org"), env
    assert_wire_form(env.sender)
    assert len(env.rcpts) == 6, f"want six recipients, got {env.addresses}"
    got = [bhtest.parse_path(a) for a in env.addresses]
    assert got == [(local, "example.net") for _, local in RCPTS], got
    for a in env.addresses:
        assert_wire_form(a)
    tricky = env.rcpts[2]
    assert tricky["notify"] == [] and tricky["orcpt"] is None, f"parameters taken from inside quotes: {tricky}"
    for r in env.rcpts:
        assert r["notify"] == [] and r["orcpt"] is None, r
