"""
bhtest: what the end-to-end tests share -- a bridgehead server under test,
a byte-exact SMTP client, and helpers to look at what the server stored.

  Server      writes a bridgehead.conf in a private directory, optionally
              makes a self-signed certificate (`cert selfsign`), runs
              `bridgehead serve --foreground` with stderr captured to a file,
              stops it with SIGTERM (exit status 0 expected) or SIGKILL, and
              reads the queue (`queue list/show --json`, the spool files) and
              the tracking log.
  Client      a raw socket: sends exact bytes in one write, reads one complete
              (multi-line) reply with a timeout, upgrades the same socket to
              TLS after 220 (no certificate check: the server's certificate is
              self-signed).
  helpers     canonical CRLF form, dot stuffing, splitting off the Received:
              header the server prepends, queue ids from 250 replies,
              envelope access independent of its on-disk spelling.

The server binary comes from $BRIDGEHEAD_BIN (set by `make test`), else
build/bridgehead or build-itest/bridgehead in the repository.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CORPUS = FIXTURES / "corpus"

SERVER_NAME = "bh1.example.com"
QUEUE_ID_RE = re.compile(rb"queued as ([0-9A-Za-z]{8,32})(?![0-9A-Za-z])")
ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

CRLF = b"\r\n"


# Every name is 127.0.0.1 (no MX: the implicit MX, port 25).
UNBOUND_LOCAL = """server:
\tlocal-zone: "." redirect
\tlocal-data: ". 300 IN A 127.0.0.1"
"""


def find_binary():
    """Absolute path of the bridgehead binary, or None."""
    env = os.environ.get("BRIDGEHEAD_BIN")
    if env:
        return env
    for cand in ("build/bridgehead", "build-itest/bridgehead"):
        p = REPO / cand
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sanitizer_env(*options):
    """ASAN_OPTIONS with options added (ignored by a build without
    AddressSanitizer)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": ":".join([o for o in opts.split(":") if o] + list(options))}


def lean_allocator_env():
    """Server environment for memory measurements: under AddressSanitizer
    freed memory sits in a quarantine that counts as resident; keep it small
    so the measurement is of the server, not of the sanitizer."""
    return sanitizer_env("quarantine_size_mb=1")


# ---------------------------------------------------------------- messages

def canonical(raw):
    """raw with every line end as CRLF and a final CRLF (what a correct
    client puts on the wire before dot stuffing)."""
    out = re.sub(rb"\r\n|\r|\n", CRLF, raw)
    if out and not out.endswith(CRLF):
        out += CRLF
    return out


def dot_stuff(data):
    """RFC 5321 4.5.2 transparency for CRLF data."""
    return re.sub(rb"(?m)^\.", b"..", data)


def data_block(content):
    """content (CRLF, ending in CRLF) as sent after 354, with the final dot."""
    assert content.endswith(CRLF) or content == b""
    return dot_stuff(content) + b".\r\n"


def split_received(stored):
    """(Received: header incl. continuation lines, rest) of a stored message."""
    assert stored.startswith(b"Received:"), (
        f"stored message does not start with a Received: header: {stored[:200]!r}")
    pos = stored.index(b"\r\n") + 2
    while stored[pos:pos + 1] in (b" ", b"\t"):
        nxt = stored.index(b"\r\n", pos)
        pos = nxt + 2
    return stored[:pos], stored[pos:]


def unfold(header):
    """One header field as one line of text."""
    return re.sub(rb"\r\n[ \t]+", b" ", header).rstrip(b"\r\n").decode(
        "utf-8", "replace")


def queue_id(reply):
    """The id of a `250 2.0.0 Ok: queued as ID` reply (asserted)."""
    assert reply.code == 250, f"want 250 queued, got {reply}"
    assert reply.enhanced == "2.0.0", f"want 2.0.0, got {reply}"
    m = QUEUE_ID_RE.search(reply.raw)
    assert m, f"no 'queued as ID' in {reply}"
    return m.group(1).decode()


def has_bare_cr_or_lf(data):
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


# ---------------------------------------------------------------- client

class ConnectionClosed(Exception):
    pass


class Reply:
    """One SMTP reply: code and its raw lines (without CRLF)."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    @property
    def raw(self):
        return b"\r\n".join(self.lines) + b"\r\n"

    @property
    def texts(self):
        return [ln[4:].decode("utf-8", "replace") for ln in self.lines]

    @property
    def text(self):
        return "\n".join(self.texts)

    @property
    def enhanced(self):
        m = ENHANCED_RE.match(self.texts[-1])
        return m.group(0) if m else None

    def keywords(self):
        """EHLO keywords (upper case) of a multi-line 250 reply."""
        return {t.split()[0].upper() for t in self.texts[1:] if t.split()}

    def __repr__(self):
        return f"<Reply {self.raw!r}>"

    __str__ = __repr__


def tls_client_context(minimum=None, maximum=None, seclevel0=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class Client:
    """A byte-exact SMTP client on one socket (plain, then maybe TLS)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None,
                 tls=False, banner=True):
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.banner = None
        if tls:
            self.tls_upgrade()
        if banner:
            self.banner = self.reply()
            assert self.banner.code == 220, f"banner: {self.banner}"

    # -- raw I/O
    def send(self, data):
        """data in one write (one send call when it fits the socket buffer)."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"no complete reply; buffered: {self.buf[:300]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise socket.timeout(f"no complete reply; buffered: {self.buf[:300]!r}")
        if not chunk:
            raise ConnectionClosed(f"connection closed; buffered: {self.buf[:300]!r}")
        self.buf += chunk

    def _line(self, deadline):
        while b"\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\n")
        line = self.buf[:i + 1]
        self.buf = self.buf[i + 1:]
        assert line.endswith(b"\r\n"), f"reply line not ended by CRLF: {line!r}"
        return line[:-2]

    def reply(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        while True:
            line = self._line(deadline)
            assert len(line) >= 3 and line[:3].isdigit(), f"malformed reply line {line!r}"
            assert len(line) == 3 or line[3:4] in (b" ", b"-"), f"malformed reply line {line!r}"
            if lines:
                assert line[:3] == lines[0][:3], f"codes differ in one reply: {lines + [line]!r}"
            lines.append(line)
            if len(line) == 3 or line[3:4] == b" ":
                return Reply(lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.reply(timeout)

    def expect(self, line, code, enhanced=None, timeout=None):
        r = self.cmd(line, timeout)
        assert r.code == code, f"{line!r}: want {code} {enhanced or ''}, got {r}"
        if enhanced is not None:
            assert r.enhanced == enhanced, f"{line!r}: want {code} {enhanced}, got {r}"
        return r

    def wait_input(self, seconds):
        """What arrives within seconds: ('data', bytes), ('eof', b'') or
        ('quiet', b'').  Bytes already buffered count as data."""
        if self.buf:
            data, self.buf = self.buf, b""
            return ("data", data)
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return ("quiet", b"")
        except (ConnectionResetError, ssl.SSLError):
            return ("eof", b"")
        if not chunk:
            return ("eof", b"")
        return ("data", chunk)

    def closed_within(self, seconds):
        """True if the server closes the connection within seconds (data
        arriving first is read and ignored)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            kind, _ = self.wait_input(max(0.01, deadline - time.monotonic()))
            if kind == "eof":
                return True
        return False

    # -- SMTP steps
    def ehlo(self, name="client.example.org"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, f"EHLO: {r}"
        return r

    def tls_upgrade(self, ctx=None):
        """TLS handshake on the existing socket (after 220 to STARTTLS)."""
        assert self.buf == b"", f"plaintext after the 220 to STARTTLS: {self.buf!r}"
        ctx = ctx or tls_client_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)

    def starttls(self, ctx=None):
        r = self.expect("STARTTLS", 220)
        self.tls_upgrade(ctx)
        return r

    @property
    def tls_version(self):
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    @property
    def tls_cipher(self):
        return self.sock.cipher()[0] if isinstance(self.sock, ssl.SSLSocket) else None

    def mail(self, sender="sender@example.org", rcpts=("rcpt@example.net",),
             content=b"Subject: test\r\n\r\nbody\r\n", params=""):
        """One whole transaction; returns the queue id of the 250."""
        self.expect(f"MAIL FROM:<{sender}>{' ' + params if params else ''}", 250)
        for r in rcpts:
            self.expect(f"RCPT TO:<{r}>", 250)
        self.expect("DATA", 354)
        self.send(data_block(content))
        return queue_id(self.reply(timeout=60))

    def quit(self):
        try:
            r = self.cmd("QUIT")
            assert r.code == 221, f"QUIT: {r}"
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- server

def _current_user():
    return pwd.getpwuid(os.geteuid()).pw_name


class Server:
    """One bridgehead instance in its own directory."""

    def __init__(self, *, tls="offer", cert=True, relay_networks="127.0.0.0/8",
                 accepted_domains="example.com", max_message_size="10M",
                 listener_options=None, extra_conf="", env=None, wrapper=None,
                 address="127.0.0.1", port=None):
        binary = find_binary()
        if binary is None:
            raise AssertionError(
                "bridgehead binary not found: run `make` or set BRIDGEHEAD_BIN")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="bh-"))
        os.chmod(self.dir, 0o755)
        self.conf_path = self.dir / "bridgehead.conf"
        self.state_dir = self.dir / "state"
        self.stderr_path = self.dir / "stderr.log"
        self.address = address
        self.port = port or free_port()
        self.tls = tls
        self.env = dict(env or {})
        self.wrapper = list(wrapper or [])
        self.proc = None
        self.starts = 0
        self.problems = []
        lines = [
            "[server]",
            f"name = {SERVER_NAME}",
            f"state_dir = {self.state_dir}",
            f"accepted_domains = {accepted_domains}",
            f"relay_networks = {relay_networks}",
            f"user = {_current_user()}",
            "",
            "[listener smtp]",
            f"address = {address}:{self.port}",
            f"tls = {tls}",
            f"max_message_size = {max_message_size}",
        ]
        for k, v in (listener_options or {}).items():
            lines.append(f"{k} = {v}")
        lines.append("")
        if extra_conf:
            lines.append(extra_conf)
        if "[dns]" not in extra_conf:
            # Mail the tests do not route through a connector goes by MX.
            # With the system resolver it would bounce (example.com has a
            # null MX; a sandbox may answer NXDOMAIN) and the notices would
            # add messages to the queue.  A local resolver instead answers
            # every name with 127.0.0.1, where nothing listens on port 25:
            # such messages are deferred and stay queued, as these tests
            # expect, and no test needs the Internet.
            unbound = self.dir / "unbound.conf"
            unbound.write_text(UNBOUND_LOCAL)
            lines += ["[dns]", f"unbound_config = {unbound}", ""]
        self.conf_path.write_text("\n".join(lines) + "\n")
        if cert:
            self.selfsign()

    # -- processes
    def cli(self, *args, check=True, timeout=60):
        p = subprocess.run([self.binary, *args, "-c", str(self.conf_path)],
                           capture_output=True, timeout=timeout,
                           env=self._env())
        if check:
            assert p.returncode == 0, (
                f"bridgehead {' '.join(args)}: exit {p.returncode}\n"
                f"stdout: {p.stdout.decode(errors='replace')}\n"
                f"stderr: {p.stderr.decode(errors='replace')}")
        return p

    def selfsign(self):
        return self.cli("cert", "selfsign", "--fqdn", SERVER_NAME)

    def _env(self):
        env = dict(os.environ)
        env.pop("BRIDGEHEAD_CONFIG", None)
        env.update(self.env)
        return env

    def start(self, timeout=20):
        assert self.proc is None, "server already running"
        self.starts += 1
        with open(self.stderr_path, "ab") as f:
            f.write(f"=== start {self.starts} ===\n".encode())
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [*self.wrapper, self.binary, "serve", "-c", str(self.conf_path),
                 "--foreground"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env=self._env(), start_new_session=True)
        finally:
            err.close()
        self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise AssertionError(
                    f"bridgehead serve exited with {rc} at start:\n{self.stderr()}")
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"bridgehead does not accept on port {self.port} after {timeout}s:\n"
                    f"{self.stderr()}")
            time.sleep(0.02)

    @property
    def pid(self):
        """The pid of the bridgehead process itself (under a wrapper too)."""
        assert self.proc is not None, "server not running"
        if not self.wrapper:
            return self.proc.pid

        def child():
            try:
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            except OSError:
                return None
            return int(kids[0]) if kids else None
        return wait_until(child, 10, what="the wrapped server process")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status (asserted 0 by the fixture)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.problems.append(f"server exited by itself with status {rc}")
            self.proc = None
            return rc
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.problems.append(f"server did not exit within {timeout}s of SIGTERM")
            rc = None
        if rc is not None and rc != 0:
            self.problems.append(f"server exited with status {rc} after SIGTERM")
        if rc == 0:
            # The spool removes its stock of empty incoming files when it
            # closes; anything else there was leaked by a failed message.
            left = self.spool_files("incoming")
            if left:
                self.problems.append(f"queue/incoming/ not empty after a clean stop: {left[:5]}")
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(20)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def rss_kib(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the queue
    def queue_list(self):
        p = self.cli("queue", "list", "--json")
        data = json.loads(p.stdout)
        assert isinstance(data, list), f"queue list --json is not an array: {data!r}"
        return data

    def queue_ids(self):
        ids = []
        for e in self.queue_list():
            assert isinstance(e, dict) and "id" in e, f"queue list entry without id: {e!r}"
            ids.append(e["id"])
        return ids

    def queue_show(self, qid):
        p = self.cli("queue", "show", "--json", qid)
        data = json.loads(p.stdout)
        assert isinstance(data, dict), f"queue show --json is not an object: {data!r}"
        return data

    def spool_dir(self, name):
        return self.state_dir / "queue" / name

    def spool_files(self, name):
        d = self.spool_dir(name)
        return sorted(os.listdir(d)) if d.is_dir() else []

    def files_containing(self, marker, dirs=("incoming", "active")):
        """Spool files (dir/name) whose bytes contain marker."""
        found = []
        for d in dirs:
            for name in self.spool_files(d):
                try:
                    if marker in (self.spool_dir(d) / name).read_bytes():
                        found.append(f"{d}/{name}")
                except FileNotFoundError:
                    pass
        return found

    def check_incoming_recovered(self, before):
        """After a restart: no incoming/ file from before it survived
        recovery, and whatever is there now is an empty file of the
        spool's stock (ids made for messages still to come)."""
        now = self.spool_files("incoming")
        stale = set(now) & set(before)
        assert not stale, f"incoming/ files from before the restart survived recovery: {sorted(stale)[:5]}"
        for name in now:
            try:
                size = (self.spool_dir("incoming") / name).stat().st_size
            except FileNotFoundError:
                continue
            assert size == 0, f"incoming/{name} has {size} bytes right after start"

    def message(self, qid):
        """Stored content of a committed message (with its Received:)."""
        return (self.spool_dir("active") / f"{qid}.msg").read_bytes()

    def envelope_text(self, qid):
        return (self.spool_dir("active") / f"{qid}.env").read_bytes()

    def envelope(self, qid):
        return Envelope(self.queue_show(qid))

    # -- the tracking log
    def tracking(self):
        path = self.state_dir / "log" / "tracking.jsonl"
        if not path.exists():
            return []
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), (
            f"tracking.jsonl ends in a partial line: {data[-200:]!r}")
        events = []
        for n, line in enumerate(data.split(b"\n")[:-1], 1):
            try:
                ev = json.loads(line)
            except ValueError as e:
                raise AssertionError(f"tracking.jsonl line {n} is not JSON ({e}): {line!r}")
            assert isinstance(ev, dict), f"tracking.jsonl line {n} is not an object: {line!r}"
            events.append(ev)
        return events

    def tracking_event(self, qid, event="received", timeout=10):
        def find():
            for ev in self.tracking():
                if ev.get("id") == qid and ev.get("event") == event:
                    return ev
            return None
        return wait_until(find, timeout, what=f"tracking event {event} for {qid}")

    def client(self, **kw):
        return Client(self.port, host=self.address, tls=(self.tls == "implicit"), **kw)


# ---------------------------------------------------------------- envelope

def _pick(d, *names, default=None):
    for n in names:
        if n in d:
            return d[n]
    return default


class Envelope:
    """The envelope of a queued message as `queue show --json` reports it."""

    def __init__(self, data):
        self.data = data
        tls = _pick(data, "tls")
        if isinstance(tls, dict):
            self.tls_version = _pick(tls, "version")
            self.tls_cipher = _pick(tls, "cipher")
        else:
            self.tls_version = _pick(data, "tls_version")
            self.tls_cipher = _pick(data, "tls_cipher")
        self.sender = _pick(data, "from", "sender")
        self.smtputf8 = _pick(data, "smtputf8")
        self.ret = _pick(data, "ret")
        self.envid = _pick(data, "envid")
        self.body = _pick(data, "body")
        client = _pick(data, "client")
        self.helo = _pick(client if isinstance(client, dict) else data, "helo")
        rcpts = _pick(data, "recipients", "rcpt", "rcpts")
        assert isinstance(rcpts, list), f"no recipient list in queue show: {data!r}"
        self.rcpts = []
        for r in rcpts:
            if isinstance(r, str):
                r = {"address": r}
            notify = _pick(r, "notify")
            if isinstance(notify, str):
                notify = [n for n in re.split(r"[,\s]+", notify) if n]
            self.rcpts.append({
                "address": _pick(r, "address", "addr", "rcpt", "to"),
                "notify": sorted(n.upper() for n in (notify or [])),
                "orcpt": _pick(r, "orcpt") or None,
            })

    @property
    def addresses(self):
        return [r["address"] for r in self.rcpts]

    def __repr__(self):
        return f"<Envelope {json.dumps(self.data)}>"


def parse_path(addr):
    """(local part without quoting, domain) of a wire-form address."""
    if addr.startswith('"'):
        i, local = 1, []
        while addr[i] != '"':
            if addr[i] == "\\":
                i += 1
            local.append(addr[i])
            i += 1
        rest = addr[i + 1:]
        assert rest.startswith("@") or rest == "", f"bad address {addr!r}"
        return "".join(local), rest[1:]
    local, _, domain = addr.rpartition("@")
    if not local:
        return domain, ""
    return local, domain
