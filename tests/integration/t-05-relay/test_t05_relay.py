"""
t-05 relay: the relay decision (DESIGN.md "Words": accepted domain, relay
client).  From a client outside relay_networks, recipients in an accepted
domain get 250 and every foreign final domain is refused -- `554 5.7.1`, or
for forms that are not addresses at all 501 -- including the classic
open-relay tricks: quoted `@` in the local part, source routes, address
literals, bang paths, a trailing dot.  From a relay client, foreign
domains get 250.  Never a 250 for a foreign final domain from a non-relay
client, and an accepted recipient is stored in the accepted domain.
"""

import bhtest

NON_RELAY = "10.0.0.0/8"   # excludes 127.0.0.1, where the tests connect from

FOREIGN = [
    # (RCPT path, acceptable codes)
    ("user@foreign.example", (554,)),
    ("user@FOREIGN.example", (554,)),
    ('"user@foreign"@foreign.example', (554,)),
    ("@example.com:user@foreign.example", (554,)),
    ("@example.com,@other.example:user@foreign.example", (554, 501)),
    ("user@[127.0.0.1]", (554,)),
    ("user@[IPv6:::1]", (554,)),
    ("foreign.example!user", (501, 554)),
    ("user@foreign.example.", (501, 554)),
    ("user@example.com.foreign.example", (554,)),
    ("user@sub.example.com", (554,)),
]


def session(srv):
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    return c


def test_foreign_refused_from_non_relay_client(server):
    srv = server(relay_networks=NON_RELAY)
    failures = []
    for path, codes in FOREIGN:
        c = session(srv)
        r = c.cmd(f"RCPT TO:<{path}>")
        if r.code not in codes:
            failures.append(f"RCPT TO:<{path}>: want one of {codes}, got {r}")
        elif r.code == 554 and r.enhanced != "5.7.1":
            failures.append(f"RCPT TO:<{path}>: relay refusal wants 5.7.1, got {r}")
        # No recipient was taken: DATA has nothing to send to.
        r = c.cmd("DATA")
        if r.code not in (503, 554):
            failures.append(f"DATA after RCPT TO:<{path}>: want 503/554, got {r}")
        if r.code == 354:
            c.send(b"Subject: open relay\r\n\r\nx\r\n.\r\n")
            failures.append(f"message to <{path}> answered {c.reply()}")
        c.quit()
    assert not failures, "\n".join(failures)
    assert srv.queue_ids() == []


def test_accepted_domain_from_non_relay_client(server):
    srv = server(relay_networks=NON_RELAY)
    c = session(srv)
    c.expect("RCPT TO:<user@example.com>", 250)
    c.expect("RCPT TO:<Other.User@EXAMPLE.COM>", 250)
    c.expect("RCPT TO:<user@foreign.example>", 554, "5.7.1")
    c.expect("DATA", 354)
    c.send(bhtest.data_block(b"Subject: relay\r\n\r\nx\r\n"))
    qid = bhtest.queue_id(c.reply())
    c.quit()
    env = srv.envelope(qid)
    assert [bhtest.parse_path(a)[1].lower() for a in env.addresses] == ["example.com", "example.com"], env


def test_percent_hack_stays_in_accepted_domain(server):
    """user%foreign.example@example.com is a local part of example.com:
    taking it is fine, routing it to foreign.example is not."""
    srv = server(relay_networks=NON_RELAY)
    c = session(srv)
    r = c.cmd("RCPT TO:<user%foreign.example@example.com>")
    assert r.code == 250 or 500 <= r.code <= 599, r
    if r.code == 250:
        c.expect("DATA", 354)
        c.send(bhtest.data_block(b"Subject: percent\r\n\r\nx\r\n"))
        qid = bhtest.queue_id(c.reply())
        env = srv.envelope(qid)
        assert [bhtest.parse_path(a) for a in env.addresses] == [("user%foreign.example", "example.com")], env
    c.quit()


def test_foreign_accepted_from_relay_client(server):
    srv = server(relay_networks="127.0.0.0/8")
    c = session(srv)
    c.expect("RCPT TO:<user@foreign.example>", 250)
    c.expect("RCPT TO:<user@[192.0.2.1]>", 250)
    c.expect("DATA", 354)
    c.send(bhtest.data_block(b"Subject: relay client\r\n\r\nx\r\n"))
    qid = bhtest.queue_id(c.reply())
    c.quit()
    env = srv.envelope(qid)
    assert env.addresses == ["user@foreign.example", "user@[192.0.2.1]"], env
