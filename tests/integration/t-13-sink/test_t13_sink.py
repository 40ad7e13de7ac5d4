"""
t-13 sink: `bridgehead sink`, the test smart host, with real clients.

  - smtplib sends corpus messages over STARTTLS (the sink's certificate
    checked against itself, for the name sink.localdomain, as a connector
    with `tls = verify` does): each lands in DIR/mail/ID.eml as our
    Received: header (naming the TLS version and cipher) followed by the
    bytes sent, byte for byte; the sink prints exactly
    `ID from=<S> to=<R1>,<R2> size=N tls=VERSION/CIPHER` for it; the queue
    in DIR/queue/active is empty again.
  - --tls off: no STARTTLS offered, `tls=none`, the null sender `from=<>`.
  - SIGTERM (and SIGINT) stop it with exit status 0, queue/incoming/ empty;
    a second start keeps its certificate and rewrites DIR/sink.conf.
  - a message it cannot put into mail/ (mail/ on another filesystem, so
    the hard link fails) stays queued, is logged, and is handed over at the
    next start, printed then.
  - usage errors (missing --dir, bad --listen, bad --fqdn, bad --tls, -c)
    exit 2 naming the option, and start nothing.
  - the `make run` setup (a copy of run/ on free ports): start.sh starts
    the sink and the relay, a message sent to the relay over STARTTLS
    arrives in sink-state/mail/ over verified TLS, the sink's line is on
    start.sh's output, the relay's tracking log has `delivered`; Ctrl-C
    (SIGINT to the group) stops both, exit 0.
"""

import os
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import bhtest
from bhtest import CORPUS

SINK_NAME = "sink.localdomain"
SENDER = "a@example.org"
RCPTS = ["user@example.net", "other@sub.example.com"]
HELO = "client.example.org"

HANDFUL = [
    "001-py-msg_01.eml",                     # bare LF
    "018-py-msg_26.eml",                     # CRLF, base64 attachment
    "041-mikel-mail-empty_group_lists.eml",  # lines starting with a dot
    "121-rspamd-numeric_urls.eml",           # bare CR
]


class Sink:
    """One `bridgehead sink` process in its own folder."""

    def __init__(self, tls="offer", fqdn=None, directory=None):
        self.binary = bhtest.find_binary()
        assert self.binary, "bridgehead binary not found: run `make` or set BRIDGEHEAD_BIN"
        self.top = Path(tempfile.mkdtemp(prefix="bh-sink-"))
        self.dir = Path(directory) if directory else self.top / "sink"
        self.port = bhtest.free_port()
        self.tls = tls
        self.fqdn = fqdn
        self.out_path = self.top / "stdout.txt"
        self.err_path = self.top / "stderr.txt"
        self.proc = None

    def args(self):
        a = [self.binary, "sink", "--listen", f"127.0.0.1:{self.port}",
             "--dir", str(self.dir), "--tls", self.tls]
        if self.fqdn:
            a += ["--fqdn", self.fqdn]
        return a

    def start(self):
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"sink exited with {self.proc.returncode} at start:\n{self.stderr()}")
            try:
                bhtest.socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                pass
            assert time.monotonic() < deadline, f"sink not listening after 20 s:\n{self.stderr()}"
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM):
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"sink did not exit within 20 s of {sig!r}:\n{self.stderr()}")
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def lines(self):
        return [ln for ln in self.stdout().splitlines() if ln]

    def line_for(self, qid, timeout=10):
        def find():
            return next((ln for ln in self.lines() if ln.split(" ", 1)[0] == qid), None)
        return bhtest.wait_until(find, timeout, what=f"the sink's line for {qid}")

    def mail(self, qid, timeout=10):
        path = self.dir / "mail" / f"{qid}.eml"
        bhtest.wait_until(path.exists, timeout, what=f"{path}")
        return path.read_bytes()

    def queue_files(self, name):
        d = self.dir / "queue" / name
        return sorted(os.listdir(d)) if d.is_dir() else []

    def cert_path(self):
        return self.dir / "pki" / "current" / "cert.pem"

    def verifying_context(self):
        """A client context that trusts only the sink's certificate and
        checks its name: what `tls = verify` with tls_ca_file does."""
        ctx = ssl.create_default_context(cafile=str(self.cert_path()))
        ctx.check_hostname = True
        return ctx

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture
def sinks(request):
    made = []

    def make(start=True, **kw):
        s = Sink(**kw)
        made.append(s)
        return s.start() if start else s

    yield make
    for s in made:
        if s.proc is not None:
            rc = s.stop()
            assert rc == 0, f"sink exited {rc} after SIGTERM:\n{s.stderr()}"
        failed = getattr(request.node, "bh_rep_call", None)
        if not os.environ.get("BH_KEEP") and not (failed and failed.failed):
            s.cleanup()
    for n, s in enumerate(made, 1):
        if hasattr(request.node, "bh_rep_call") and request.node.bh_rep_call.failed:
            print(f"--- sink {n} stderr ({s.dir}) ---\n{s.stderr()[-5000:]}")


class RecordingSMTP(smtplib.SMTP):
    def data(self, msg):
        code, text = super().data(msg)
        self.data_reply = (code, text)
        return code, text


def queued_id(smtp):
    code, text = smtp.data_reply
    assert code == 250, f"final dot: want 250, got {code} {text!r}"
    m = bhtest.QUEUE_ID_RE.search(text)
    assert m, f"no 'queued as ID' in {text!r}"
    return m.group(1).decode()


def expected_line(qid, sender, rcpts, size, tls):
    to = ",".join(f"<{r}>" for r in rcpts)
    return f"{qid} from=<{sender}> to={to} size={size} tls={tls}"


def check_stored(stored, sent, tls):
    header, rest = bhtest.split_received(stored)
    assert rest == sent, (
        f"mail/ID.eml differs from what was sent after the Received: header "
        f"(got {len(rest)} bytes, want {len(sent)})")
    text = bhtest.unfold(header)
    assert f"by {SINK_NAME}" in text, f"Received: does not name the sink: {text}"
    if tls:
        assert "ESMTPS" in text and tls[0] in text and tls[1] in text, (
            f"Received: does not name {tls}: {text}")
    else:
        assert "TLS" not in text, f"clear text, but Received: names TLS: {text}"


def test_starttls_messages(sinks):
    """Corpus messages over verified STARTTLS: mail/ID.eml, the line, an
    empty queue."""
    sink = sinks()
    smtp = RecordingSMTP("127.0.0.1", sink.port, local_hostname=HELO, timeout=30)
    smtp.ehlo()
    assert smtp.has_extn("starttls"), "the sink does not offer STARTTLS"
    # The sink's own certificate is its trust anchor, and names it;
    # smtplib checks the name it connected to, so tell it the sink's name.
    smtp._host = SINK_NAME
    smtp.starttls(context=sink.verifying_context())
    smtp.sock.getpeercert()  # verified, or starttls() raised
    tls = (smtp.sock.version(), smtp.sock.cipher()[0])
    smtp.ehlo()
    sent = []
    for name in HANDFUL:
        content = bhtest.canonical((CORPUS / name).read_bytes())
        opts = ["BODY=8BITMIME"] if any(b >= 0x80 for b in content) else []
        refused = smtp.sendmail(SENDER, RCPTS, content, opts)
        assert refused == {}, f"{name}: refused {refused}"
        sent.append((name, queued_id(smtp), content))
    smtp.quit()

    for name, qid, content in sent:
        stored = sink.mail(qid)
        try:
            check_stored(stored, content, tls)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
        want = expected_line(qid, SENDER, RCPTS, len(stored), f"{tls[0]}/{tls[1]}")
        got = sink.line_for(qid)
        assert got == want, f"stdout line:\n got  {got!r}\n want {want!r}"
    assert len(sink.lines()) == len(HANDFUL), f"more lines than messages:\n{sink.stdout()}"
    bhtest.wait_until(lambda: sink.queue_files("active") == [], 10,
                      what="queue/active/ to be empty")
    assert sorted(os.listdir(sink.dir / "mail")) == sorted(f"{q}.eml" for _, q, _ in sent)


def test_clear_text_null_sender(sinks):
    """--tls off: no STARTTLS; a bounce-like message from <>; tls=none."""
    sink = sinks(tls="off", fqdn=SINK_NAME)
    c = bhtest.Client(sink.port)
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords(), f"--tls off but STARTTLS offered: {r}"
    content = b"Subject: bounce\r\n\r\n.leading dot\r\nbody\r\n"
    c.expect("MAIL FROM:<>", 250)
    c.expect("RCPT TO:<postmaster@anywhere.example>", 250)
    c.expect("DATA", 354)
    c.send(bhtest.data_block(content))
    qid = bhtest.queue_id(c.reply(timeout=30))
    c.quit()
    stored = sink.mail(qid)
    check_stored(stored, content, None)
    assert sink.line_for(qid) == expected_line(qid, "", ["postmaster@anywhere.example"],
                                               len(stored), "none")
    assert not (sink.dir / "pki").exists(), "--tls off made a certificate"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_cleanly(sinks, sig):
    """Exit 0 on the signal, nothing left in incoming/; a restart keeps the
    certificate and rewrites sink.conf from the new options."""
    sink = sinks()
    cert = sink.cert_path().read_bytes()
    c = bhtest.Client(sink.port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    qid = c.mail(rcpts=("x@example.net",))
    c.quit()
    sink.line_for(qid)
    rc = sink.stop(sig)
    assert rc == 0, f"exit status {rc} after {sig!r}:\n{sink.stderr()}"
    assert sink.queue_files("incoming") == [], f"incoming/ not empty: {sink.queue_files('incoming')}"
    assert sink.queue_files("active") == [], f"active/ not empty: {sink.queue_files('active')}"

    sink.port = bhtest.free_port()
    sink.start()
    assert sink.cert_path().read_bytes() == cert, "a restart made a new certificate"
    assert f"127.0.0.1:{sink.port}" in (sink.dir / "sink.conf").read_text()
    assert (sink.dir / "mail" / f"{qid}.eml").exists()


def test_failed_handover_waits_for_next_start(sinks):
    """mail/ on another filesystem: the hard link fails (EXDEV); the
    message stays queued and is handed over at the next start."""
    other = Path("/dev/shm")
    sink = sinks(start=False)
    sink.dir.mkdir(parents=True)
    if not other.is_dir() or other.stat().st_dev == sink.dir.stat().st_dev:
        pytest.skip("no second filesystem to put mail/ on")
    elsewhere = Path(tempfile.mkdtemp(prefix="bh-sink-mail-", dir=other))
    try:
        (sink.dir / "mail").symlink_to(elsewhere)
        sink.start()
        c = bhtest.Client(sink.port)
        c.ehlo()
        qid = c.mail(rcpts=("y@example.net",))
        c.quit()
        bhtest.wait_until(lambda: qid in sink.stderr(), 10, what="the log line")
        bhtest.wait_until(lambda: re.search(rf"{qid}: cannot link .* left in the queue", sink.stderr()),
                          10, what="the failed hand-over in the log")
        assert sink.lines() == [], f"a line for a message not handed over: {sink.stdout()}"
        assert f"{qid}.env" in sink.queue_files("active"), "the message left the queue"
        assert sink.stop() == 0

        (sink.dir / "mail").unlink()
        sink.start()
        stored = sink.mail(qid)
        assert sink.line_for(qid) == expected_line(qid, "sender@example.org", ["y@example.net"],
                                                   len(stored), "none")
        assert bhtest.split_received(stored)[1] == b"Subject: test\r\n\r\nbody\r\n"
        bhtest.wait_until(lambda: sink.queue_files("active") == [], 10,
                          what="queue/active/ to be empty")
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


@pytest.mark.parametrize("args,names", [
    (["--listen", "127.0.0.1:2526"], "--dir"),
    (["--dir", "D"], "--listen"),
    (["--listen", "localhost:25", "--dir", "D"], "--listen"),
    (["--listen", "127.0.0.1:2526", "--dir", "D", "--fqdn", "bad_name"], "--fqdn"),
    (["--listen", "127.0.0.1:2526", "--dir", "D", "--tls", "maybe"], "--tls"),
    (["--listen", "127.0.0.1:2526", "--dir", "D", "-c", "x.conf"], "sink.conf"),
    (["--listen", "127.0.0.1:2526", "--dir", "D", "extra"], "extra"),
], ids=["no-dir", "no-listen", "listen-name", "fqdn", "tls", "config", "extra"])
def test_usage_errors(args, names, tmp_path):
    binary = bhtest.find_binary()
    args = [str(tmp_path / "d") if a == "D" else a for a in args]
    p = subprocess.run([binary, "sink", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, f"sink {args}: want exit 2, got {p.returncode}\n{p.stderr}"
    first = p.stderr.splitlines()[0] if p.stderr else ""
    assert first.startswith("bridgehead sink: ") and names in first, (
        f"sink {args}: the error does not name {names}: {p.stderr!r}")
    assert not (tmp_path / "d").exists(), "a usage error made the folder"


def test_help():
    p = subprocess.run([bhtest.find_binary(), "sink", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0
    assert "--listen ADDR:PORT" in p.stdout and "DIR/mail/ID.eml" in p.stdout


def test_make_run_delivers_to_the_sink(tmp_path):
    """run/start.sh on a copy of run/ (free ports): a message sent to the
    relay over STARTTLS leaves through connector local-sink over verified
    TLS and arrives in sink-state/mail/; Ctrl-C stops both, exit 0."""
    binary = bhtest.find_binary()
    run = tmp_path / "run"
    shutil.copytree(bhtest.REPO / "run", run,
                    ignore=shutil.ignore_patterns("state", "sink-state"))
    relay_port, sink_port = bhtest.free_port(), bhtest.free_port()
    conf = run / "bridgehead.conf"
    text = conf.read_text()
    assert "address = 127.0.0.1:2525" in text, "run/bridgehead.conf does not listen on 127.0.0.1:2525"
    conf.write_text(text.replace("address = 127.0.0.1:2525", f"address = 127.0.0.1:{relay_port}"))
    connector = run / "connectors.d" / "local-sink.conf"
    text = connector.read_text()
    assert "smart_hosts = [127.0.0.1]:2526" in text, "local-sink.conf does not point at the sink"
    assert re.search(r"(?m)^tls = verify$", text), "local-sink.conf is not tls = verify"
    connector.write_text(text.replace("[127.0.0.1]:2526", f"[127.0.0.1]:{sink_port}"))

    out_path = tmp_path / "start.out"
    env = dict(os.environ, BRIDGEHEAD_SINK_LISTEN=f"127.0.0.1:{sink_port}")
    env.pop("BRIDGEHEAD_CONFIG", None)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(["sh", str(run / "start.sh"), binary], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    output = lambda: out_path.read_text(errors="replace")
    try:
        def relay_up():
            assert proc.poll() is None, f"start.sh exited with {proc.returncode}:\n{output()}"
            try:
                bhtest.socket.create_connection(("127.0.0.1", relay_port), timeout=1).close()
                return True
            except OSError:
                return False
        bhtest.wait_until(relay_up, 30, what="the relay to listen")
        assert "sink-state/mail/ID.eml" in output(), f"start.sh does not say where mail arrives:\n{output()}"

        content = bhtest.canonical((CORPUS / "018-py-msg_26.eml").read_bytes())
        smtp = RecordingSMTP("127.0.0.1", relay_port, local_hostname=HELO, timeout=30)
        smtp.starttls(context=bhtest.tls_client_context())
        smtp.ehlo()
        smtp.sendmail(SENDER, ["user@example.test"], content)
        relay_id = queued_id(smtp)
        smtp.quit()

        mail = run / "sink-state" / "mail"
        files = bhtest.wait_until(lambda: sorted(mail.glob("*.eml")) if mail.is_dir() else [],
                                  30, what=f"a message in {mail}\n{output()}")
        assert len(files) == 1, f"want one message in {mail}, got {files}"
        sink_id = files[0].stem
        sink_header, rest = bhtest.split_received(files[0].read_bytes())
        relay_header, rest = bhtest.split_received(rest)
        assert rest == content, "the message arrived changed (beyond two Received: headers)"
        assert "by sink.localdomain" in bhtest.unfold(sink_header)
        assert "ESMTPS" in bhtest.unfold(sink_header), "relay -> sink was not over TLS"
        assert "by bridgehead.localdomain" in bhtest.unfold(relay_header)

        line = bhtest.wait_until(
            lambda: next((ln for ln in output().splitlines() if ln.startswith(sink_id + " ")), None),
            10, what="the sink's line on start.sh's output")
        assert re.fullmatch(rf"{sink_id} from=<{SENDER}> to=<user@example\.test> "
                            rf"size={files[0].stat().st_size} tls=TLSv1\.[23]/\S+", line), line

        def delivered():
            log = run / "state" / "log" / "tracking.jsonl"
            for ln in (log.read_text().splitlines() if log.exists() else []):
                ev = bhtest.json.loads(ln)
                if ev.get("id") == relay_id and ev.get("event") == "delivered":
                    return ev
            return None
        ev = bhtest.wait_until(delivered, 10, what="the delivered event")
        assert ev["connector"] == "local-sink", ev
        assert ev["tls"] and ev["tls"]["verified"] is True, f"not verified TLS: {ev}"
        assert sink_id in (ev.get("reply") or ""), f"reply does not name the sink's id: {ev}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
            try:
                rc = proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"start.sh did not stop on SIGINT:\n{output()}")
        else:
            rc = proc.returncode
    assert rc == 0, f"start.sh exited {rc} after Ctrl-C:\n{output()}"
    try:
        os.killpg(proc.pid, 0)
        raise AssertionError(f"processes of start.sh still run after it exited:\n{output()}")
    except ProcessLookupError:
        pass
    assert "bridgehead sink stopped" in (run / "sink-state" / "sink.log").read_text()
