"""
C29 -- Bounce loops: never bounce a bounce; notices go out with the null
sender.

The fake smart host answers "550 5.1.1 ..." to RCPT TO:<gone@example.net>
(and in B to RCPT TO:<sender@example.org>, the notice's recipient).
retry_schedule = 1s; "ten minutes later" is scaled to a few seconds of
quiet.  Checked:
  - A: from <>: the message is bounced (tracking `bounced` with the 550 and
    a note that no notice is made for the null sender), no notice at all,
    the queue empty, the host saw one transaction.
  - B: exactly one notice, "MAIL FROM:<>" to sender@example.org, a
    multipart/report; report-type=delivery-status naming gone@example.net,
    Status 5.1.1 and the remote reply; it is refused too and dropped (no
    third transaction, no notice to <>); queue empty; two transactions.
  - C: a header "Return-Path: <>" changes nothing: the notice goes to the
    envelope sender.
"""

import email
import email.policy
import re
import time

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]

GONE = b"550 5.1.1 <gone@example.net>: no such user\r\n"


def relay(server, fh):
    return server(extra_conf=F.connector_conf(fh, tls="none", retry="1s"))


def quiet(fh, seconds=5):
    """Waits until the host has seen no new transaction for `seconds`."""
    n = len(fh.transactions())
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.2)
        if len(fh.transactions()) != n:
            n = len(fh.transactions())
            deadline = time.time() + seconds
    return fh.transactions()


def check_notice(tx, to, failed, status, diagnostic):
    """tx is an RFC 3464 notice from <> to `to` about `failed`."""
    assert tx.mail_from == "", f"notice not from the null sender: {tx.mail_line!r}"
    assert [a for a, _ in tx.rcpts] == [to], tx
    assert tx.content is not None, f"the notice's data never came: {tx}"
    msg = email.message_from_bytes(tx.content, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    text = tx.content.decode("utf-8", "replace")
    assert re.search(r"(?im)^Final-Recipient:\s*rfc822;\s*" + re.escape(failed), text), text
    assert re.search(r"(?im)^Status:\s*" + re.escape(status), text), text
    assert re.search(r"(?im)^Action:\s*failed", text), text
    assert re.search(r"(?im)^Diagnostic-Code:\s*smtp;\s*" + re.escape(diagnostic), text), text


def test_a_null_sender_never_bounced(server, fakehost):
    fh = fakehost(default=F.Esmtp(rcpt_reply={"gone@example.net": GONE}))
    srv = relay(server, fh)
    qid = F.submit(srv, sender="", rcpts=("gone@example.net",),
                   content=b"Subject: c29 A\r\n\r\nfrom the null sender\r\n")
    ev = F.wait_event(srv, qid, "bounced")[0]
    assert re.search(r"(?:^|\s)550 5\.1\.1 ", ev.get("reply") or ""), ev
    assert re.search(r"(?i)null sender", " ".join(str(v) for v in ev.values())), (
        f"the bounced event does not say that no notice is made (null sender): {ev}")
    txs = quiet(fh)
    assert len(txs) == 1, f"want only the original transaction: {txs}"
    assert txs[0].mail_from == "" and txs[0].rcpts[0][0] == "gone@example.net", txs
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_b_one_notice_then_double_bounce_dropped(server, fakehost):
    fh = fakehost(default=F.Esmtp(rcpt_reply={"gone@example.net": GONE,
                                               "sender@example.org": b"550 5.1.1 no such sender\r\n"}))
    srv = relay(server, fh)
    qid = F.submit(srv, rcpts=("gone@example.net",), content=b"Subject: c29 B\r\n\r\nx\r\n")
    F.wait_event(srv, qid, "bounced")
    fh.wait(lambda: len(fh.transactions()) >= 2, 30, "the notice")
    txs = quiet(fh)
    assert len(txs) == 2, f"want the original and one notice: {txs}"
    assert txs[0].mail_from == "sender@example.org", txs
    notice = txs[1]
    assert notice.mail_from == "" and [a for a, _ in notice.rcpts] == ["sender@example.org"], notice
    assert notice.data is None, "the refused notice still sent data"
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
    dsn = [e for e in srv.tracking() if e.get("id") != qid and e.get("event") == "bounced"]
    assert dsn and dsn[0].get("rcpt") == ["sender@example.org"], f"the double bounce is not logged: {srv.tracking()}"


def test_b_notice_content(server, fakehost):
    """The notice of B, accepted this time so its content can be read."""
    fh = fakehost(default=F.Esmtp(rcpt_reply={"gone@example.net": GONE}))
    srv = relay(server, fh)
    qid = F.submit(srv, rcpts=("gone@example.net",), content=b"Subject: c29 B2\r\n\r\nx\r\n")
    F.wait_event(srv, qid, "bounced")
    fh.wait(lambda: [t for t in fh.complete() if t.mail_from == ""], 30, "the notice")
    txs = quiet(fh)
    notices = [t for t in txs if t.mail_from == ""]
    assert len(notices) == 1, txs
    check_notice(notices[0], "sender@example.org", "gone@example.net", "5.1.1",
                 "550 5.1.1 <gone@example.net>: no such user")
    assert b"Subject: c29 B2" in notices[0].content, "the original header section is not returned"
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")


def test_c_return_path_header_does_not_decide(server, fakehost):
    fh = fakehost(default=F.Esmtp(rcpt_reply={"gone@example.net": GONE}))
    srv = relay(server, fh)
    qid = F.submit(srv, rcpts=("gone@example.net",),
                   content=b"Return-Path: <>\r\nSubject: c29 C\r\n\r\nx\r\n")
    F.wait_event(srv, qid, "bounced")
    fh.wait(lambda: [t for t in fh.complete() if t.mail_from == ""], 30, "the notice")
    txs = quiet(fh)
    notices = [t for t in txs if t.mail_from == ""]
    assert len(notices) == 1, txs
    check_notice(notices[0], "sender@example.org", "gone@example.net", "5.1.1",
                 "550 5.1.1 <gone@example.net>: no such user")
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
