"""
C30 -- Exchange Online as smart host: the certificate-based connector must
match.

A fake Exchange-Online-like smart host (connector `eo`, address space *,
`tls = verify` against the test CA, tls_match smarthost.example.net)
requires STARTTLS, sends a TLS CertificateRequest (it trusts the
certificate the relay has installed, so what it checks is the name) and
accepts RCPT to outside domains only when the client certificate's CN or
a SAN dNSName matches bh1.example.com ("*.example.com" matches one
label); example.com, its accepted domain, is always accepted.  Otherwise
RCPT gets "550 5.7.64 TenantAttribution; Relay Access Denied\\r\\n".
  - A: the certificate from `bridgehead cert selfsign --fqdn
    bh1.example.com` is presented; sender@example.com -> rcpt@example.net
    is delivered; EHLO names bh1.example.com; the host saw SAN
    bh1.example.com.
  - B: `tls_client_certificate = no`: no client certificate, 550 5.7.64.
  - C: a renewed certificate (`cert selfsign --fqdn mail.example.com`):
    550 5.7.64.
  - B, C: the refusal is permanent: one notice to sender@example.com
    (Status 5.7.64, Remote-MTA, the reply as Diagnostic-Code), no retry of
    the original; the tracking log shows what certificate was presented
    (C: its name mail.example.com).
  - D: as A for a notice (MAIL FROM:<>): delivered.
"""

import email
import email.policy
import re
import time

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

REFUSAL = b"550 5.7.64 TenantAttribution; Relay Access Denied\r\n"
ORG = "bh1.example.com"


def cert_matches(s):
    names = list(s.tls.get("client_sans") or [])
    m = re.search(r"(?:^|,)CN=([^,]+)", s.tls.get("client_subject") or "")
    if m:
        names.append(m.group(1))
    return any(F.name_matches(n, ORG) for n in names)


def eo_rcpt(s, tx, addr):
    domain = addr.rpartition("@")[2].lower()
    if domain == "example.com" or cert_matches(s):
        return b"250 2.1.5 Recipient OK\r\n"
    return REFUSAL


def eo_relay(server, fakehost, test_ca, *, client_cert=True, fqdn=None):
    holder = {}
    spec = test_ca.leaf().spec(request_client_cert=True,
                               client_ca=lambda: [F.installed_cert(holder["srv"])])
    fh = fakehost(default=F.Esmtp(tls=spec, require_tls=True, rcpt_reply=eo_rcpt))
    extra = [] if client_cert else ["tls_client_certificate = no"]
    srv = server(start=False, extra_conf=F.connector_conf(
        fh, tls="verify", ca=test_ca.root, match=F.SMART_HOST, name="eo", retry="1s", extra=extra))
    holder["srv"] = srv
    if fqdn is not None:
        srv.cli("cert", "selfsign", "--fqdn", fqdn)
    srv.start()
    return fh, srv


def quiet(fh, seconds=4):
    n = len(fh.transactions())
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.2)
        if len(fh.transactions()) != n:
            n = len(fh.transactions())
            deadline = time.time() + seconds
    return fh.transactions()


def delivered_with_certificate(srv, fh, sender, content):
    qid = F.submit(srv, sender=sender, content=content)
    ev = F.wait_event(srv, qid, "delivered")[0]
    tx = fh.wait_complete(1)[0]
    s = tx.session
    assert s.verbs()[:3] == ["EHLO", "STARTTLS", "EHLO"], s
    assert s.commands[0] == s.commands[2] == b"EHLO bh1.example.com\r\n", s.commands
    assert s.tls.get("client_cert"), f"no client certificate presented: {s.tls}"
    assert ORG in s.tls["client_sans"], f"client certificate names: {s.tls}"
    assert tx.mail_from == sender, tx
    assert bhtest.split_received(tx.content)[1] == content
    assert ev["connector"] == "eo" and ev["tls"] and ev["tls"].get("verified") is True, ev
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_a_installed_certificate_is_presented(server, fakehost, test_ca):
    fh, srv = eo_relay(server, fakehost, test_ca)
    delivered_with_certificate(srv, fh, "sender@example.com", b"Subject: c30 A\r\n\r\nx\r\n")


def test_d_notice_with_null_sender(server, fakehost, test_ca):
    fh, srv = eo_relay(server, fakehost, test_ca)
    delivered_with_certificate(srv, fh, "", b"Subject: c30 D\r\n\r\na notice\r\n")


def refused_and_noticed(srv, fh):
    qid = F.submit(srv, sender="sender@example.com", content=b"Subject: c30\r\n\r\nx\r\n")
    ev = F.wait_event(srv, qid, "bounced")[0]
    assert re.search(r"(?:^|\s)550 5\.7\.64 TenantAttribution", ev.get("reply") or ""), ev
    fh.wait(lambda: [t for t in fh.complete() if t.mail_from == ""], 30, "the notice")
    txs = quiet(fh)
    originals = [t for t in txs if t.mail_from == "sender@example.com"]
    assert len(originals) == 1, f"the permanent refusal was retried: {txs}"
    assert originals[0].rcpts == [("rcpt@example.net", REFUSAL)], originals
    notices = [t for t in txs if t.mail_from == ""]
    assert len(notices) == 1 and notices[0].complete, txs
    n = notices[0]
    assert [a for a, _ in n.rcpts] == ["sender@example.com"], n
    msg = email.message_from_bytes(n.content, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    text = n.content.decode("utf-8", "replace")
    assert re.search(r"(?im)^Status:\s*5\.7\.64", text), text
    assert re.search(r"(?im)^Remote-MTA:\s*dns;", text), text
    assert re.search(r"(?im)^Diagnostic-Code:\s*smtp;\s*550 5\.7\.64 TenantAttribution", text), text
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
    return qid, ev, originals[0]


def test_b_no_client_certificate(server, fakehost, test_ca):
    fh, srv = eo_relay(server, fakehost, test_ca, client_cert=False)
    qid, ev, tx = refused_and_noticed(srv, fh)
    assert not tx.session.tls.get("client_cert"), tx.session.tls


def test_c_renewed_certificate_with_another_name(server, fakehost, test_ca):
    fh, srv = eo_relay(server, fakehost, test_ca, fqdn="mail.example.com")
    qid, ev, tx = refused_and_noticed(srv, fh)
    assert tx.session.tls.get("client_sans") == ["mail.example.com"], tx.session.tls


def test_c_tracking_names_presented_certificate(server, fakehost, test_ca):
    fh, srv = eo_relay(server, fakehost, test_ca, fqdn="mail.example.com")
    qid = F.submit(srv, sender="sender@example.com", content=b"Subject: c30 C2\r\n\r\nx\r\n")
    ev = F.wait_event(srv, qid, "bounced")[0]
    values = " ".join(str(v) for k, v in ev.items() if k not in ("rcpt", "from"))
    assert "mail.example.com" in values, (
        f"the bounced event does not record the client certificate presented: {ev}")
