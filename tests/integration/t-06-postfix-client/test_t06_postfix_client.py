"""
t-06 postfix-client: a real Postfix as the sending MTA.

A private Postfix instance (its own config_directory, queue_directory and
data_directory in a temporary folder, no listener of its own) relays all
its mail to bridgehead (`relayhost = [127.0.0.1]:PORT`) with
`smtp_tls_security_level = encrypt`.  A message injected with
`sendmail -i -C DIR` (a lone dot line is content) must arrive in bridgehead's queue within 30 s, over TLS
(its Received: header says `with ESMTPS` and names TLSv1.3 or TLSv1.2),
with its body intact, and Postfix must log it as sent with bridgehead's
queue id.  The instance runs as root (Postfix's master needs it); a Postfix
that cannot start fails the test with the reason.
"""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

import bhtest

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class Postfix:
    """A private Postfix instance that relays everything to one host."""

    def __init__(self, relay_port):
        self.dir = Path(tempfile.mkdtemp(prefix="bh-pf-"))
        os.chmod(self.dir, 0o755)
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.data = self.dir / "data"
        self.maillog = self.dir / "maillog"
        for d in (self.etc, self.spool, self.data):
            d.mkdir()
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        (self.etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.spool}
data_directory = {self.data}
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = pf-itest
maillog_file = {self.maillog}
maillog_file_prefixes = {self.dir}
myhostname = pf.example.org
mydomain = example.org
myorigin = example.org
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
default_transport = smtp
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 1
smtp_helo_name = pf.example.org
""")
        (self.etc / "master.cf").write_text(MASTER_CF)
        self.started = False

    def log(self):
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return "(no maillog)"

    def postfix(self, *args):
        return run(["postfix", "-c", str(self.etc), *args])

    def start(self):
        p = self.postfix("check")
        assert p.returncode == 0, f"postfix check: exit {p.returncode}\n{p.stdout}{p.stderr}\n{self.log()}"
        p = self.postfix("start")
        assert p.returncode == 0, f"postfix start: exit {p.returncode}\n{p.stdout}{p.stderr}\n{self.log()}"
        self.started = True
        bhtest.wait_until(lambda: self.postfix("status").returncode == 0, 15,
                          what="the Postfix master to run")

    def stop(self):
        if not self.started:
            return
        p = self.postfix("stop")
        if p.returncode != 0:
            pidfile = self.spool / "pid" / "master.pid"
            try:
                os.kill(int(pidfile.read_text().split()[0]), 9)
            except (OSError, ValueError):
                pass
        self.started = False

    def sendmail(self, sender, rcpt, message):
        p = subprocess.run(["sendmail", "-i", "-C", str(self.etc), "-f", sender, rcpt],
                           input=message, capture_output=True, timeout=30)
        assert p.returncode == 0, f"sendmail: exit {p.returncode}\n{p.stdout}{p.stderr}\n{self.log()}"

    def flush(self):
        p = run(["postqueue", "-c", str(self.etc), "-f"])
        assert p.returncode == 0, f"postqueue -f: exit {p.returncode}\n{p.stdout}{p.stderr}"


@pytest.fixture
def postfix_client(request):
    if os.geteuid() != 0:
        pytest.fail("t-06 needs root: a private Postfix master runs as root")
    for tool in ("postfix", "sendmail", "postqueue"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (Debian package postfix)")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        pytest.fail("no 'postfix' user: the postfix package is not installed properly")
    made = []

    def make(relay_port):
        pf = Postfix(relay_port)
        made.append(pf)
        pf.start()
        return pf
    yield make
    for pf in made:
        pf.stop()
        failed = getattr(getattr(request.node, "bh_rep_call", None), "failed", False)
        if failed:
            print(f"--- Postfix maillog ({pf.maillog}) ---\n{pf.log()}")
        else:
            shutil.rmtree(pf.dir, ignore_errors=True)


def test_postfix_relays_over_tls(server, postfix_client):
    srv = server()
    pf = postfix_client(srv.port)
    tag = uuid.uuid4().hex
    body = f"This message came through a private Postfix instance.\nTag {tag}\n.\nA lone dot above.\n"
    message = (f"From: a@example.org\nTo: user@example.com\nSubject: t-06 {tag}\n"
               f"Message-ID: <{tag}@example.org>\n\n{body}").encode()
    pf.sendmail("a@example.org", "user@example.com", message)
    pf.flush()

    def arrived():
        for qid in srv.queue_ids():
            if tag.encode() in srv.message(qid):
                return qid
        return None
    try:
        qid = bhtest.wait_until(arrived, 30, interval=0.2, what="the message from Postfix")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- Postfix maillog ---\n{pf.log()}") from None

    header, rest = bhtest.split_received(srv.message(qid))
    text = bhtest.unfold(header)
    assert re.search(r"\bwith ESMTPS\b", text), f"not received over TLS: {text}"
    assert re.search(r"TLSv1\.[23]\b", text), f"Received: names no TLS 1.2/1.3: {text}"
    assert "pf.example.org" in text, f"Received: does not name Postfix's EHLO name: {text}"
    assert rest.endswith(bhtest.canonical(body.encode())), "body not intact"
    assert not bhtest.has_bare_cr_or_lf(rest)

    ev = srv.tracking_event(qid, "received")
    assert ev["from"] == "a@example.org" and ev["rcpt"] == ["user@example.com"], ev
    assert isinstance(ev["tls"], dict) and re.match(r"TLSv1\.[23]$", ev["tls"]["version"]), ev
    assert (ev.get("message_id") or "").strip("<>") == f"{tag}@example.org", ev

    def postfix_says_sent():
        return re.search(rf"status=sent \(250 2\.0\.0 .*queued as {qid}\)", pf.log())
    bhtest.wait_until(postfix_says_sent, 10, interval=0.2,
                      what=f"Postfix to log status=sent with queued as {qid}")
    assert re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23]",
                     pf.log()), pf.log()
