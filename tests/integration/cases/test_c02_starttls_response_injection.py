"""
C02 -- The smart host's reply to STARTTLS is followed by forged replies.

The fake smart host (valid certificate for smarthost.example.net from the
test CA; connector `tls = encrypt`) answers STARTTLS with, in one write:
"220 2.0.0 go ahead\\r\\n250-evil.example\\r\\n250 AUTH PLAIN\\r\\n250 2.1.0 ok
\\r\\n250 2.1.5 ok\\r\\n354 go\\r\\n250 2.0.0 queued\\r\\n", then does the handshake
and answers every command honestly, 1 s late.  Every connection does the
same.  Checked:
  - the relay sends nothing between STARTTLS and the handshake, and inside
    TLS starts again with "EHLO bh1.example.com\\r\\n";
  - it never sends AUTH;
  - either it discards the forged lines and delivers: one complete
    transaction inside TLS (EHLO, MAIL, RCPT, DATA, the message, the dot),
    no command answered by a forged line (no unknown-command replies from
    the host), and the `delivered` event names the real reply "250 2.0.0
    Ok: queued as FH..." -- or it treats the bytes as a protocol violation:
    no transaction, the message deferred and still queued.
"""

import re

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

INJECTED = (b"220 2.0.0 go ahead\r\n250-evil.example\r\n250 AUTH PLAIN\r\n250 2.1.0 ok\r\n"
            b"250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued\r\n")


def injecting_host(leaf):
    return F.Script(
        F.Send(b"220 smarthost.example.net ESMTP\r\n"),
        F.Expect(rb"EHLO bh1\.example\.com\r\n", timeout=30),
        F.Send(b"250-smarthost.example.net\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
        F.Expect(rb"STARTTLS\r\n", timeout=30),
        F.Send(INJECTED),
        F.Tls(leaf.spec()),
        F.Esmtp(greet=False, reply_delay=1.0,
                extensions=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")))


def test_forged_replies_after_220_are_discarded(server, fakehost, test_ca):
    fh = fakehost(default=injecting_host(test_ca.leaf()))
    srv = server(extra_conf=F.connector_conf(fh, tls="encrypt", retry="1s"))
    content = b"Subject: c02\r\n\r\nresponse injection\r\n"
    qid = F.submit(srv, content=content)

    def outcome():
        return [e for e in F.events(srv, qid) if e.get("event") in ("delivered", "deferred", "bounced")]
    ev = bhtest.wait_until(outcome, 40, what="a delivered or deferred event")[0]
    assert ev["event"] in ("delivered", "deferred"), ev
    for s in fh.sessions:
        assert "AUTH" not in s.verbs(), f"AUTH sent because of a forged line: {s}"
        assert s.pipelined_after_starttls == b"", f"bytes behind STARTTLS: {s.pipelined_after_starttls!r}"
        assert not [e for e in s.errors if "expected" in e], f"script mismatch: {s.errors}"
        if s.tls.get("version"):
            after = s.commands[2:]
            assert after and after[0] == b"EHLO bh1.example.com\r\n", f"no EHLO first inside TLS: {s}"
            assert b"500 5.5.2" not in s.sent(), f"a command was out of step: {s.commands}"
    if ev["event"] == "delivered":
        tx = fh.wait_complete(1)[0]
        assert tx.tls is not None, tx
        verbs = tx.session.verbs()
        assert verbs[:6] == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA"], tx.session
        assert bhtest.split_received(tx.content)[1] == content
        assert re.search(r"^250 2\.0\.0 Ok: queued as FH\d+", ev.get("reply", "")), (
            f"delivered on a reply that is not the real one: {ev}")
        assert ev["tls"] and ev["tls"].get("version") == tx.tls["version"], ev
        assert len(fh.complete()) == 1
        bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
    else:
        assert fh.transactions() == [], fh.transactions()
        assert qid in srv.queue_ids()
