"""
t-12 delivery: the scheduler, bounces and `queue flush` against a real
smart host (python3-aiosmtpd on 127.0.0.1, no TLS), through connectors.

  - delivered: a message to two recipients reaches the smart host once,
    leaves the queue, and the tracking log has `delivered` with the
    connector, host, address and the smart host's reply.
  - smart host down: the message is deferred (tracking `deferred`, queue
    list says deferred), still queued after a restart of bridgehead, and
    delivered after the smart host is back and `queue flush` ran --
    exactly once per recipient.  `queue flush` with no server running
    exits 1.
  - 550 to one recipient: the other is delivered; a DSN goes to the
    sender through the same smart host with MAIL FROM:<> and a
    multipart/report naming the refused recipient with status 5.1.1.
  - C29 A: the null sender and a 550: no DSN at all, the queue empty,
    tracking `bounced` with "no notice, null sender".
  - C18 (2): NOTIFY=SUCCESS toward a smart host without DSN: a notice
    with Action: relayed, the original envelope id and recipient, none for
    the NOTIFY=NEVER recipient.
  - C29 B and C: the notice itself refused → dropped, no third notice,
    the queue empty; a Return-Path: <> header does not change where the
    notice goes.
  - SIGHUP: a connector changed in the file takes effect ("reload ok
    connectors=N"); a broken file is logged and the running one stays.
  - a second server on the same state_dir exits 1; SIGTERM while a
    delivery hangs still exits 0 within seconds, the message deferred.
  - expiry: queue_lifetime = 2s and a next hop that refuses connections: the
    recipient expires (tracking `expired`) and a DSN with status 4.4.7
    reaches the sender through the other connector.
"""

import email
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import bhtest

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - Debian's python3 has it
    Controller = None

pytestmark = pytest.mark.skipif(Controller is None, reason="aiosmtpd missing")

SENDER = "sender@example.org"


class SmartHost:
    """aiosmtpd on a fixed port: records transactions; refuses gone*@."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.transactions = []  # (mail_from, [rcpts], content bytes)
        self.mails = []  # every MAIL FROM address, accepted or not
        self.controller = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mails.append(address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone"):
            return "550 5.1.1 <%s>: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.transactions.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: taken"

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def got(self):
        with self.lock:
            return list(self.transactions)

    def wait(self, n, timeout=20):
        return bhtest.wait_until(lambda: len(self.got()) >= n or None, timeout,
                                 what=f"{n} transactions at the smart host")


@pytest.fixture
def smarthost():
    made = []

    def make(port=None, start=True):
        sh = SmartHost(port or bhtest.free_port())
        made.append(sh)
        if start:
            sh.start()
        return sh

    yield make
    for sh in made:
        sh.stop()


def connector_conf(port, retry="1h", lifetime="5d", dead_port=None):
    lines = [
        "[queue]",
        f"retry_schedule = {retry}",
        f"queue_lifetime = {lifetime}",
        "",
        "[connector out]",
        "address_space = *",
        f"smart_hosts = [127.0.0.1]:{port}",
        "tls = none",
        "",
    ]
    if dead_port is not None:
        lines += [
            "[connector dead]",
            "address_space = example.net",
            f"smart_hosts = [127.0.0.1]:{dead_port}",
            "tls = none",
            "",
        ]
    return "\n".join(lines)


def send(srv, sender=SENDER, rcpts=("rcpt@example.net",), subject="t12"):
    c = srv.client()
    c.ehlo()
    qid = c.mail(sender=sender, rcpts=rcpts,
                 content=f"Subject: {subject}\r\nFrom: <{sender}>\r\n\r\nbody of {subject}\r\n".encode())
    c.quit()
    return qid


def events(srv, qid, event):
    return [e for e in srv.tracking() if e.get("id") == qid and e.get("event") == event]


def wait_queue_empty(srv, timeout=20):
    bhtest.wait_until(lambda: srv.queue_ids() == [] or None, timeout, what="an empty queue")


def test_delivered(server, smarthost):
    sh = smarthost()
    srv = server(cert=False, extra_conf=connector_conf(sh.port))
    qid = send(srv, rcpts=("a@example.net", "b@example.net"))
    sh.wait(1)
    wait_queue_empty(srv)
    got = sh.got()
    assert len(got) == 1, got
    mail_from, rcpts, content = got[0]
    assert mail_from == SENDER
    assert sorted(rcpts) == ["a@example.net", "b@example.net"]
    assert content.startswith(b"Received: "), content[:200]
    assert b"body of t12" in content
    ev = srv.tracking_event(qid, "delivered")
    assert ev["connector"] == "out", ev
    assert ev["host"], ev
    assert ev["addr"] and "127.0.0.1" in ev["addr"], ev
    assert ev["reply"] and "250" in ev["reply"], ev
    assert ev["tls"] is None, ev
    delivered = [r for e in events(srv, qid, "delivered") for r in e["rcpt"]]
    assert sorted(delivered) == ["a@example.net", "b@example.net"], delivered


def test_down_restart_flush(server, smarthost):
    sh = smarthost(start=False)  # nothing listens on its port yet
    srv = server(cert=False, extra_conf=connector_conf(sh.port, retry="1h"))
    qid = send(srv, rcpts=("a@example.net", "b@example.net"))
    srv.tracking_event(qid, "deferred")
    bhtest.wait_until(lambda: [e for e in srv.queue_list()
                               if e["id"] == qid and e["state"] == "deferred"
                               and e["attempts"] == 1] or None,
                      10, what="queue list: deferred after one attempt")

    srv.stop()
    p = srv.cli("queue", "flush", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert b"no server" in p.stderr, p.stderr
    assert srv.queue_ids() == [qid]

    srv.start()
    sh.start()
    time.sleep(1)  # the next retry is an hour away: nothing moves by itself
    assert sh.got() == []
    assert srv.queue_ids() == [qid]
    p = srv.cli("queue", "flush", qid)
    assert qid.encode() in p.stdout, p.stdout
    sh.wait(1)
    wait_queue_empty(srv)
    time.sleep(1)
    got = sh.got()
    assert len(got) == 1, got
    assert sorted(got[0][1]) == ["a@example.net", "b@example.net"]
    env_attempts = [e for e in srv.tracking() if e.get("id") == qid and e["event"] == "deferred"]
    assert len(env_attempts) >= 1


def test_flush_all(server, smarthost):
    sh = smarthost(start=False)
    srv = server(cert=False, extra_conf=connector_conf(sh.port, retry="1h"))
    ids = [send(srv, rcpts=(f"r{i}@example.net",), subject=f"m{i}") for i in range(3)]
    for qid in ids:
        srv.tracking_event(qid, "deferred")
    sh.start()
    p = srv.cli("queue", "flush")
    assert b"all" in p.stdout, p.stdout
    sh.wait(3)
    wait_queue_empty(srv)
    assert sorted(r for _, rs, _ in sh.got() for r in rs) == [f"r{i}@example.net" for i in range(3)]


def test_550_dsn_to_sender(server, smarthost):
    sh = smarthost()
    srv = server(cert=False, extra_conf=connector_conf(sh.port))
    qid = send(srv, rcpts=("ok@example.net", "gone@example.net"))
    sh.wait(2)
    wait_queue_empty(srv)
    time.sleep(0.5)
    got = sh.got()
    assert len(got) == 2, [(f, r) for f, r, _ in got]
    original = [t for t in got if t[0] == SENDER]
    dsn = [t for t in got if t[0] in ("", "<>")]
    assert len(original) == 1 and original[0][1] == ["ok@example.net"], got
    assert len(dsn) == 1, got
    assert dsn[0][1] == [SENDER]
    text = dsn[0][2]
    assert b"\r\n" in text and not bhtest.has_bare_cr_or_lf(text)
    msg = email.message_from_bytes(text)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["To"] == f"<{SENDER}>"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"], parts
    status = text.decode()
    assert "Final-Recipient: rfc822; gone@example.net" in status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1" in status
    assert "ok@example.net" not in status.split("message/delivery-status")[1].split("message/rfc822")[0]
    bounced = events(srv, qid, "bounced")
    assert bounced and bounced[0]["rcpt"] == ["gone@example.net"], bounced


def test_c29a_null_sender_no_dsn(server, smarthost):
    sh = smarthost()
    srv = server(cert=False, extra_conf=connector_conf(sh.port))
    qid = send(srv, sender="", rcpts=("gone@example.net",))
    ev = srv.tracking_event(qid, "bounced")
    assert "no notice, null sender" in ev["reply"], ev
    wait_queue_empty(srv)
    time.sleep(1)
    assert sh.got() == [], sh.got()
    assert srv.queue_ids() == []


def test_expiry_dsn_447(server, smarthost):
    sh = smarthost()
    # example.net goes to a port where nothing listens: refused, deferred.
    dead = bhtest.free_port()
    srv = server(cert=False, extra_conf=connector_conf(
        sh.port, retry="1s", lifetime="2s", dead_port=dead))
    qid = send(srv, rcpts=("late@example.net",))
    srv.tracking_event(qid, "deferred", timeout=10)
    ev = srv.tracking_event(qid, "expired", timeout=30)
    assert ev["rcpt"] == ["late@example.net"], ev
    sh.wait(1, timeout=30)
    wait_queue_empty(srv, timeout=30)
    got = sh.got()
    assert len(got) == 1 and got[0][0] in ("", "<>") and got[0][1] == [SENDER], got
    text = got[0][2].decode()
    assert "Status: 4.4.7" in text
    assert "Final-Recipient: rfc822; late@example.net" in text
    assert "Action: failed" in text


def rcpt_dialog(srv, sender, rcpts, params="", content=b"Subject: dsn\r\n\r\nbody\r\n"):
    """A transaction with RCPT parameters: rcpts is [(address, params)]."""
    c = srv.client()
    c.ehlo()
    c.expect(f"MAIL FROM:<{sender}>{' ' + params if params else ''}", 250)
    for addr, p in rcpts:
        c.expect(f"RCPT TO:<{addr}>{' ' + p if p else ''}", 250)
    c.expect("DATA", 354)
    c.send(bhtest.data_block(content))
    qid = bhtest.queue_id(c.reply(timeout=60))
    c.quit()
    return qid


def test_c18_relayed_notice(server, smarthost):
    sh = smarthost()  # aiosmtpd offers no DSN
    srv = server(cert=False, extra_conf=connector_conf(sh.port))
    rcpt_dialog(srv, SENDER, [
        ("a@example.net", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net"),
        ("b@example.net", "NOTIFY=NEVER"),
        ("c@example.net", "ORCPT=rfc822;root"),
    ], params="RET=HDRS ENVID=QQ314159")
    sh.wait(2)
    wait_queue_empty(srv)
    time.sleep(0.5)
    got = sh.got()
    assert len(got) == 2, [(f, r) for f, r, _ in got]
    dsn = [t for t in got if t[0] in ("", "<>")]
    assert len(dsn) == 1 and dsn[0][1] == [SENDER], got
    text = dsn[0][2].decode()
    report = text.split("message/delivery-status")[1]
    assert "Original-Envelope-Id: QQ314159" in report
    assert "Original-Recipient: rfc822;a@example.net" in report
    assert "Final-Recipient: rfc822; a@example.net" in report
    assert "Action: relayed" in report
    assert "b@example.net" not in report and "c@example.net" not in report
    assert "Content-Type: text/rfc822-headers" in text  # RET=HDRS


def test_c29_notice_refused_is_dropped(server, smarthost):
    sh = smarthost()
    srv = server(cert=False, extra_conf=connector_conf(sh.port))
    sender = "gone-sender@example.org"  # the smart host refuses it too
    qid = rcpt_dialog(srv, sender, [("gone@example.net", "")],
                      content=b"Return-Path: <>\r\nSubject: c29\r\n\r\nbody\r\n")
    srv.tracking_event(qid, "bounced")
    bhtest.wait_until(lambda: len(sh.mails) >= 2 or None, 20, what="two transactions")
    wait_queue_empty(srv)
    time.sleep(1.5)
    # C: the notice went to the envelope sender despite Return-Path: <>.
    assert sh.mails == [sender, "<>"], sh.mails
    assert sh.got() == []
    notice = [e for e in srv.tracking() if e["event"] == "bounced" and e["id"] != qid]
    assert len(notice) == 1 and notice[0]["rcpt"] == [sender], notice
    assert "no notice, null sender" in notice[0]["reply"], notice
    assert srv.queue_ids() == []


def test_sighup_reload(server, smarthost):
    sh = smarthost()
    dead = bhtest.free_port()
    srv = server(cert=False, extra_conf=connector_conf(dead, retry="1h"))
    qid = send(srv)
    srv.tracking_event(qid, "deferred")
    conf = srv.conf_path.read_text()
    srv.conf_path.write_text(conf + "\n[nonsense]\n")
    os.kill(srv.pid, signal.SIGHUP)
    bhtest.wait_until(lambda: "reload failed" in srv.stderr() or None, 10,
                      what="reload failed in the log")
    srv.conf_path.write_text(conf.replace(f"[127.0.0.1]:{dead}", f"[127.0.0.1]:{sh.port}"))
    os.kill(srv.pid, signal.SIGHUP)
    bhtest.wait_until(lambda: "reload ok connectors=1" in srv.stderr() or None, 10,
                      what="reload ok in the log")
    srv.cli("queue", "flush", qid)
    sh.wait(1)
    wait_queue_empty(srv)


def test_second_server_refused(server):
    srv = server(cert=False, extra_conf=connector_conf(bhtest.free_port()))
    p = subprocess.run([srv.binary, "serve", "-c", str(srv.conf_path), "--foreground"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert str(srv.pid).encode() in p.stderr or b"running" in p.stderr, p.stderr
    assert srv.running()


def test_sigterm_during_delivery(server):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        srv = server(cert=False, extra_conf=connector_conf(silent.getsockname()[1]))
        qid = send(srv)
        conn, _ = silent.accept()  # the delivery is under way, unanswered
        t0 = time.monotonic()
        assert srv.stop() == 0
        assert time.monotonic() - t0 < 15
        conn.close()
    finally:
        silent.close()
    env = srv.queue_show(qid)
    assert env["attempts"] and env["recipients"][0]["state"] == "pending", env
