"""
C25 -- Multi-line replies from the smart host.

The fake smart host (connector `tls = may`) sends, each reply in one write:
a three-line 220 greeting; an EHLO reply with STARTTLS on its last line;
after TLS an EHLO reply with PIPELINING on a middle line; "250\\r\\n" (code
only) to MAIL; two-line 250 to RCPT; 354; a two-line 250 to the final dot.
Checked:
  - nothing is sent before the greeting's last line; the commands are
    EHLO, STARTTLS, EHLO (inside TLS), MAIL, RCPT, DATA -- nothing else
    (no command was taken as answered by a line of a multi-line reply);
  - the message arrives byte-exact over TLS and the `delivered` event
    carries the two-line 250's code and enhanced code.
Variant V: greeting "220-hello\\r\\n554 5.7.1 no service for you\\r\\n": the
last line's code counts: no EHLO (QUIT allowed), the message deferred or
bounced with the 554 as diagnostic.
"""

import re

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

GREETING = b"220-smarthost.example.net ESMTP\r\n220-second greeting line\r\n220 ready\r\n"
EHLO_CLEAR = b"250-smarthost.example.net\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
EHLO_TLS = b"250-smarthost.example.net\r\n250-PIPELINING\r\n250 SIZE 10485760\r\n"


def test_multiline_replies(server, fakehost, test_ca):
    host = F.Esmtp(greeting=GREETING, tls=test_ca.leaf().spec(),
                   ehlo_reply=lambda s: EHLO_TLS if s.tls.get("version") else EHLO_CLEAR,
                   mail_reply=b"250\r\n",
                   rcpt_reply=b"250-2.1.5 first line\r\n250 2.1.5 recipient ok\r\n",
                   data_reply=b"354 go ahead\r\n",
                   dot_reply=b"250-2.0.0 queued\r\n250 2.0.0 as X1\r\n")
    fh = fakehost(default=host)
    srv = server(extra_conf=F.connector_conf(fh, tls="may"))
    content = b"Subject: c25\r\n\r\nmulti-line replies\r\n"
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered")[0]
    tx = fh.wait_complete(1)[0]
    s = tx.session
    assert s.commands[0] == b"EHLO bh1.example.com\r\n", s.commands
    assert s.commands[1] == b"STARTTLS\r\n", s.commands
    assert s.commands[2] == b"EHLO bh1.example.com\r\n", s.commands
    assert re.fullmatch(rb"MAIL FROM:<sender@example\.org>[^\r\n]*\r\n", s.commands[3]), s.commands
    assert re.fullmatch(rb"RCPT TO:<rcpt@example\.net>[^\r\n]*\r\n", s.commands[4]), s.commands
    assert s.commands[5] == b"DATA\r\n", s.commands
    assert set(s.verbs()[6:]) <= {"QUIT", "RSET", "NOOP"}, s.commands
    assert tx.tls is not None, tx
    assert bhtest.split_received(tx.content)[1] == content
    assert ev["reply"].startswith("250") and "2.0.0" in ev["reply"], ev
    assert len(fh.complete()) == 1
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def v_run(server, fakehost):
    fh = fakehost(default=F.Esmtp(greeting=b"220-hello\r\n554 5.7.1 no service for you\r\n"))
    srv = server(extra_conf=F.connector_conf(fh, tls="may", retry="1s"))
    qid = F.submit(srv, content=b"Subject: c25 V\r\n\r\nx\r\n")

    def outcome():
        return [e for e in F.events(srv, qid) if e.get("event") in ("deferred", "bounced", "delivered")]
    ev = bhtest.wait_until(outcome, 30, what="a deferred or bounced event")[0]
    return fh, srv, qid, ev


def test_v_refusal_on_last_greeting_line(server, fakehost):
    fh, srv, qid, ev = v_run(server, fakehost)
    assert ev["event"] in ("deferred", "bounced"), ev
    fh.wait_sessions(1)
    for s in fh.sessions:
        assert set(s.verbs()) <= {"QUIT"}, f"the relay went on after a 554 greeting: {s}"
    assert fh.transactions() == [] or all(t.mail_from == "" for t in fh.transactions())
    if ev["event"] == "deferred":
        assert qid in srv.queue_ids()


def test_v_554_is_the_diagnostic(server, fakehost):
    fh, srv, qid, ev = v_run(server, fakehost)
    assert re.search(r"(?:^|\s)554 5\.7\.1", ev.get("reply") or ""), f"want the 554 as reason: {ev}"
