"""
t-11 smtpc: the SMTP client and delivery engine against fake smart hosts
(fakehost: scriptable ESMTP servers with TLS from a test CA).

Deliveries go through the relay end to end (client -> bridgehead ->
fake smart host); `connector test` probes the same hosts without mail.
Checked: per-recipient mixed results in one transaction, pipelining and
its absence, a lone refusal set (no DATA), byte-exact bodies with dot
stuffing and CRLF only, connection reuse with RSET, the TLS policies
(encrypt without STARTTLS, verify against the test CA with tls_match, a
bare IP without tls_match), the client certificate, SMTPUTF8 / 8BITMIME
needed but not offered, DSN parameters only toward a DSN peer.
"""

import json
import re

import pytest

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]


def tx_of(fh, n=1):
    return fh.wait_complete(n)[n - 1]


def verbs(session):
    return [c.split(b" ", 1)[0].split(b":", 1)[0].rstrip(b"\r\n").upper().decode()
            for c in session.commands]


def outcome(srv, qid, n=1):
    def done():
        evs = [e for e in F.events(srv, qid) if e.get("event") in ("delivered", "deferred", "bounced")]
        return evs if len(evs) >= n else None
    return bhtest.wait_until(done, 30, what=f"{n} outcome event(s) of {qid}")


# ------------------------------------------------------------- transactions

def test_mixed_recipient_results_in_one_transaction(server, fakehost):
    fh = fakehost(default=F.Esmtp(rcpt_reply={
        "temp@example.net": b"450 4.2.1 mailbox busy\r\n",
        "gone@example.net": b"550 5.1.1 no such user\r\n",
    }))
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1h"))
    qid = F.submit(srv, rcpts=("ok@example.net", "temp@example.net", "gone@example.net"),
                   content=b"Subject: mixed\r\n\r\nmixed\r\n")
    evs = outcome(srv, qid, 3)
    by = {e["event"]: e for e in evs}
    assert set(by) == {"delivered", "deferred", "bounced"}, evs
    assert by["delivered"]["rcpt"] == ["ok@example.net"], evs
    assert by["deferred"]["rcpt"] == ["temp@example.net"], evs
    assert by["deferred"]["reply"].startswith("450 4.2.1"), evs
    assert by["bounced"]["rcpt"] == ["gone@example.net"], evs
    assert by["bounced"]["reply"].startswith("550 5.1.1"), evs
    tx = tx_of(fh)
    assert tx.accepted == ["ok@example.net"], tx
    # C15: no space after the colon; SIZE because the peer offers it.
    assert re.fullmatch(rb"MAIL FROM:<sender@example\.org> SIZE=\d+\r\n", tx.mail_line), tx.mail_line
    # RFC 2920: MAIL, the RCPTs and DATA leave in one write.
    s = tx.session
    chunk = [d for _, w, d in s.log if w == "R>" and b"MAIL FROM" in d][0]
    assert chunk.count(b"RCPT TO:") == 3 and chunk.endswith(b"DATA\r\n"), chunk


def test_step_by_step_without_pipelining(server, fakehost):
    fh = fakehost(default=F.Esmtp(extensions=("SIZE 10485760", "8BITMIME"),
                                  rcpt_reply={"b@example.net": b"550 5.1.1 no\r\n"}))
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1h"))
    qid = F.submit(srv, rcpts=("a@example.net", "b@example.net"))
    outcome(srv, qid, 2)
    s = tx_of(fh).session
    assert verbs(s)[:5] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"], s.commands
    # Each command waited for the reply before it: one command per write.
    for _, w, d in s.log:
        if w == "R>" and d[:4] in (b"MAIL", b"RCPT", b"DATA"):
            assert d.count(b"\r\n") == 1, d


@pytest.mark.parametrize("pipelining", [True, False])
def test_no_recipient_accepted_sends_no_message(server, fakehost, pipelining):
    exts = ("PIPELINING", "8BITMIME") if pipelining else ("8BITMIME",)
    fh = fakehost(default=F.Esmtp(extensions=exts, rcpt_reply=b"550 5.1.1 no such user\r\n"))
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1h"))
    qid = F.submit(srv, rcpts=("x@example.net", "y@example.net"))
    evs = outcome(srv, qid, 1)
    assert {e["event"] for e in evs} == {"bounced"}, evs
    s = fh.sessions[0]
    assert fh.complete() == [], fh.transactions()
    if not pipelining:
        assert "DATA" not in verbs(s), s.commands
    # Pipelined, DATA went out with the RCPTs and got 554: nothing follows.
    assert not any(t.data for t in fh.transactions() if t.mail_from), fh.transactions()


def test_body_byte_exact_and_dot_stuffed(server, fakehost):
    fh = fakehost(default=F.Esmtp())
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    content = (b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nmiddle\r\n"
               b"\r\n.\r\n. \r\nend without dot\r\n")
    qid = F.submit(srv, content=content)
    F.wait_event(srv, qid, "delivered")
    tx = tx_of(fh)
    stored_received, rest = bhtest.split_received(tx.content)
    assert rest == content
    assert tx.data == bhtest.dot_stuff(tx.content) + b".\r\n", tx.data
    assert not bhtest.has_bare_cr_or_lf(tx.data)
    assert tx.data.endswith(b"\r\n.\r\n")


def test_connection_reused_with_rset(server, fakehost):
    fh = fakehost(default=F.Esmtp())
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    q1 = F.submit(srv, content=b"Subject: one\r\n\r\n1\r\n")
    F.wait_event(srv, q1, "delivered")
    q2 = F.submit(srv, content=b"Subject: two\r\n\r\n2\r\n")
    F.wait_event(srv, q2, "delivered")
    assert len(fh.sessions) == 1, f"not reused: {fh.sessions}"
    s = fh.sessions[0]
    v = verbs(s)
    assert v.count("MAIL") == 2, s.commands
    second = [i for i, x in enumerate(v) if x == "MAIL"][1]
    assert v[second - 1] == "RSET", s.commands
    assert v.count("EHLO") == 1, s.commands


# ---------------------------------------------------------------- TLS policy

def test_encrypt_without_starttls_defers_and_sends_nothing(server, fakehost):
    fh = fakehost(default=F.Esmtp())
    srv = server(extra_conf=F.connector_conf(fh, tls="encrypt", retry="1h"))
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "deferred")[0]
    assert re.search(r"(?i)starttls", ev["reply"]), ev
    fh.wait_sessions(1)
    assert set(verbs(fh.sessions[0])) <= {"EHLO", "QUIT"}, fh.sessions[0].commands
    assert qid in srv.queue_ids()


def test_verify_with_test_ca_and_tls_match(server, fakehost, test_ca):
    leaf = test_ca.leaf()
    fh = fakehost(default=F.Esmtp(tls=leaf.spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root,
                                             match=F.SMART_HOST))
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "delivered")[0]
    assert ev["tls"]["verified"] is True, ev
    assert ev["tls"]["version"] in ("TLSv1.2", "TLSv1.3"), ev
    tx = tx_of(fh)
    assert tx.tls is not None
    v = verbs(tx.session)
    assert v[:3] == ["EHLO", "STARTTLS", "EHLO"], tx.session.commands


def test_verify_bare_ip_without_tls_match_defers(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root, retry="1h"))
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "deferred")[0]
    assert re.search(r"TLS verification failed", ev["reply"]), ev
    fh.wait_sessions(1)
    assert "MAIL" not in verbs(fh.sessions[0]), fh.sessions[0].commands


def test_verify_wrong_name_defers(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf("other.example.org").spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root,
                                             match=F.SMART_HOST, retry="1h"))
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "deferred")[0]
    assert re.search(r"(?i)hostname mismatch", ev["reply"]), ev
    assert fh.transactions() == []


def test_client_certificate_presented(server, fakehost, test_ca):
    box = {}
    spec = test_ca.leaf().spec(request_client_cert=True,
                               client_ca=lambda: F.installed_cert(box["srv"]))
    fh = fakehost(default=F.Esmtp(tls=spec))
    srv = box["srv"] = server(extra_conf=F.connector_conf(fh, tls="encrypt"))
    qid = F.submit(srv)
    F.wait_event(srv, qid, "delivered")
    tx = tx_of(fh)
    assert bhtest.SERVER_NAME in json.dumps(tx.session.tls), tx.session.tls
    assert tx.session.commands[0] == f"EHLO {bhtest.SERVER_NAME}\r\n".encode()


def test_no_client_certificate_when_disabled(server, fakehost, test_ca):
    box = {}
    spec = test_ca.leaf().spec(request_client_cert=True,
                               client_ca=lambda: F.installed_cert(box["srv"]))
    fh = fakehost(default=F.Esmtp(tls=spec))
    srv = box["srv"] = server(extra_conf=F.connector_conf(
        fh, tls="encrypt", extra=["tls_client_certificate = no"]))
    qid = F.submit(srv)
    F.wait_event(srv, qid, "delivered")
    tx = tx_of(fh)
    assert bhtest.SERVER_NAME not in json.dumps(tx.session.tls), tx.session.tls


# --------------------------------------------------- what the peer must offer

def test_smtputf8_needed_but_not_offered_bounces_5_6_7(server, fakehost):
    fh = fakehost(default=F.Esmtp())
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    c = srv.client()
    c.ehlo()
    qid = c.mail(rcpts=("j\u00f6rg@example.net",),
                 content="To: j\u00f6rg@example.net\r\nSubject: utf8\r\n\r\nx\r\n".encode(),
                 params="SMTPUTF8")
    c.quit()
    ev = F.wait_event(srv, qid, "bounced")[0]
    assert "5.6.7" in ev["reply"], ev
    assert not any(t.mail_from == "sender@example.org" for t in fh.transactions()), fh.transactions()


def test_smtputf8_passed_on_when_offered(server, fakehost):
    fh = fakehost(default=F.Esmtp(extensions=("PIPELINING", "8BITMIME", "SMTPUTF8")))
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    c = srv.client()
    c.ehlo()
    content = "To: j\u00f6rg@example.net\r\nSubject: utf8\r\n\r\nx\r\n".encode()
    qid = c.mail(rcpts=("j\u00f6rg@example.net",), content=content, params="SMTPUTF8")
    c.quit()
    F.wait_event(srv, qid, "delivered")
    tx = tx_of(fh)
    assert b" SMTPUTF8" in tx.mail_line, tx.mail_line
    assert tx.rcpts[0][0] == "j\u00f6rg@example.net"
    assert bhtest.split_received(tx.content)[1] == content


def test_8bit_to_7bit_peer_bounces_5_6_3(server, fakehost):
    fh = fakehost(default=F.Esmtp(extensions=("PIPELINING",)))
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    c = srv.client()
    c.ehlo()
    qid = c.mail(content=b"Subject: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n", params="BODY=8BITMIME")
    c.quit()
    ev = F.wait_event(srv, qid, "bounced")[0]
    assert "5.6.3" in ev["reply"], ev
    assert not any(t.mail_from == "sender@example.org" for t in fh.transactions())


@pytest.mark.parametrize("dsn", [True, False])
def test_dsn_parameters_only_to_dsn_peer(server, fakehost, dsn):
    exts = ("PIPELINING", "8BITMIME") + (("DSN",) if dsn else ())
    fh = fakehost(default=F.Esmtp(extensions=exts))
    srv = server(extra_conf=F.connector_conf(fh, tls="none"))
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org> RET=HDRS ENVID=QQ314159", 250)
    c.expect("RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net", 250)
    c.expect("DATA", 354)
    c.send(bhtest.data_block(b"Subject: dsn\r\n\r\nx\r\n"))
    qid = bhtest.queue_id(c.reply())
    c.quit()
    F.wait_event(srv, qid, "delivered")
    tx = tx_of(fh)
    rcpt = [l for l in tx.session.commands if l.startswith(b"RCPT")][0]
    if dsn:
        assert b"RET=HDRS" in tx.mail_line and b"ENVID=QQ314159" in tx.mail_line, tx.mail_line
        assert rcpt == b"RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net\r\n", rcpt
    else:
        assert b"RET=" not in tx.mail_line and b"ENVID" not in tx.mail_line, tx.mail_line
        assert rcpt == b"RCPT TO:<a@example.net>\r\n", rcpt


def test_second_smart_host_after_refused_greeting(server, fakehost):
    bad = fakehost(default=F.Esmtp(greeting=b"554 5.7.1 no service\r\n"))
    good = fakehost(default=F.Esmtp())
    conf = F.connector_conf(f"{bad.address}, {good.address}", tls="none")
    srv = server(extra_conf=conf)
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "delivered")[0]
    assert ev["addr"].endswith(f":{good.port}"), ev
    bad.wait_sessions(1)
    assert set(verbs(bad.sessions[0])) <= {"QUIT"}, bad.sessions[0].commands


# ------------------------------------------------------------ connector test

def connector_test(srv, *args):
    p = srv.cli("connector", "test", "out", *args, check=False)
    err = p.stderr.decode(errors="replace")
    if p.returncode == 2 and re.search(r"(?i)unknown|usage", err):
        pytest.skip(f"`connector test` is not dispatched yet: {err.strip()}")
    return p


def test_connector_test_verify_ok(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root, match=F.SMART_HOST))
    p = connector_test(srv)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert "STARTTLS" in out and "PIPELINING" in out, out
    assert re.search(r"TLSv1\.[23]", out), out
    assert "Bridgehead Test Intermediate CA" in out, out
    assert "mail would flow" in out
    fh.wait_sessions(1)
    assert "MAIL" not in verbs(fh.sessions[0])
    assert verbs(fh.sessions[0])[-1] == "QUIT", fh.sessions[0].commands


def test_connector_test_json_self_signed_fails_verify(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.selfsigned().spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="verify", ca=test_ca.root, match=F.SMART_HOST))
    p = connector_test(srv, "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["mail_would_flow"] is False
    hop = doc["next_hops"][0]
    assert hop["tls"]["verified"] is False, hop
    assert re.search(r"(?i)self.signed", hop["reason"]), hop


def test_connector_test_no_starttls(server, fakehost):
    fh = fakehost(default=F.Esmtp())
    srv = server(extra_conf=F.connector_conf(fh, tls="encrypt"))
    p = connector_test(srv)
    assert p.returncode == 1, p.stdout
    assert re.search(r"(?i)does not offer STARTTLS", p.stdout.decode())


def test_connector_test_may_broken_handshake_falls_back(server, fakehost, test_ca):
    fh = fakehost(default=F.Esmtp(tls=test_ca.leaf().old_tls_spec()))
    srv = server(extra_conf=F.connector_conf(fh, tls="may"))
    p = connector_test(srv)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    assert re.search(r"(?i)handshake failed", out), out
    fh.wait_sessions(2)
    assert "STARTTLS" not in verbs(fh.sessions[1]), fh.sessions[1].commands


# ------------------------------------------------------ AUTH and concurrency

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_over_tls_password_read_at_use(server, fakehost, test_ca, tmp_path, mech):
    import base64
    pw = tmp_path / "password"
    pw.write_text("s3cret\n")
    b64 = lambda s: base64.b64encode(s).decode()
    if mech == "PLAIN":
        plain = re.escape(b64(b"\0relay-user\0s3cret"))
        auth = [F.Expect(rf"AUTH PLAIN {plain}\r\n"),
                F.Send("235 2.7.0 ok\r\n")]
    else:
        auth = [F.Expect(r"AUTH LOGIN\r\n"), F.Send("334 VXNlcm5hbWU6\r\n"),
                F.Expect(rf"{re.escape(b64(b'relay-user'))}\r\n"), F.Send("334 UGFzc3dvcmQ6\r\n"),
                F.Expect(rf"{re.escape(b64(b's3cret'))}\r\n"), F.Send("235 2.7.0 ok\r\n")]
    script = F.Script(
        F.Send("220 smarthost.example.net ESMTP\r\n"),
        F.Expect(r"EHLO bh1\.example\.com\r\n"),
        # AUTH offered in clear text must not be used there.
        F.Send("250-smarthost.example.net\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"),
        F.Expect(r"STARTTLS\r\n"), F.Send("220 2.0.0 go\r\n"),
        F.Tls(test_ca.leaf().spec()),
        F.Expect(r"EHLO bh1\.example\.com\r\n"),
        F.Send(f"250-smarthost.example.net\r\n250 AUTH {mech}\r\n"),
        *auth,
        F.Expect(r"MAIL FROM:<sender@example\.org>\r\n"), F.Send("250 2.1.0 ok\r\n"),
        F.Expect(r"RCPT TO:<rcpt@example\.net>\r\n"), F.Send("250 2.1.5 ok\r\n"),
        F.Expect(r"DATA\r\n"), F.Send("354 go\r\n"),
        F.Data("250 2.0.0 queued\r\n"),
        F.Expect(r"QUIT\r\n"), F.Send("221 bye\r\n"))
    fh = fakehost(plan=[script])
    srv = server(extra_conf=F.connector_conf(
        fh, tls="encrypt", extra=["auth_username = relay-user", f"auth_password_file = {pw}"]))
    qid = F.submit(srv)
    ev = F.wait_event(srv, qid, "delivered")[0]
    assert ev["reply"].startswith("250 2.0.0"), ev
    assert fh.sessions[0].errors == [], fh.sessions[0].errors
    assert "s3cret" not in srv.stderr(), "the password reached the log"


def test_max_connections_limits_concurrency(server, fakehost):
    fh = fakehost(default=F.Esmtp(reply_delay=0.2))
    srv = server(extra_conf=F.connector_conf(fh, tls="none", extra=["max_connections = 1"]))
    qids = [F.submit(srv, content=f"Subject: n{i}\r\n\r\n{i}\r\n".encode()) for i in range(4)]
    for q in qids:
        F.wait_event(srv, q, "delivered", timeout=60)
    assert len(fh.complete()) == 4
    spans = sorted((s.started, s.ended or 1e12) for s in fh.sessions)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert b0 >= a1, f"two connections at once with max_connections = 1: {spans}"
