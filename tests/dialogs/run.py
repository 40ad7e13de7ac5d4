#!/usr/bin/python3
"""
Protocol dialogues against a real `bridgehead serve`.

Each tests/dialogs/*.dialog file is one scenario: a few configuration
directives, then steps run in order on one connection (or several, with
R:).  For each file the runner writes a private configuration (server name
bh1.example.com, accepted domain example.com, relay_networks 127.0.0.0/8,
one listener on a free port of 127.0.0.1, tls = offer, a self-signed
certificate), starts the server in the foreground, runs the steps, stops it
with SIGTERM and requires exit status 0.

File syntax (one item per line; '#' starts a comment line):

  @server KEY = VALUE     a [server] setting (replaces the default)
  @listener KEY = VALUE   a [listener smtp] setting
  @cert no                no certificate: STARTTLS is not offered

  C: BYTES        send BYTES in one write.  C escapes (\\r \\n \\t \\0 \\\\
                  \\xNN); {N*TEXT} is TEXT N times, with %i in TEXT the
                  1-based repetition number in three digits.
  S: EXPECT       read one complete (multi-line) reply; S*N: reads N
                  replies, each checked.  EXPECT is terms joined by " && ":
                    250 2.1.5   the last line starts with this text
                    /REGEX/     found in the reply (all lines)
                    !/REGEX/    not found in the reply
  T: starttls     TLS handshake on this connection (after a 220)
  X: closed       the server closes the connection (no more replies)
  X: quiet SECS   nothing arrives for SECS seconds
  R: reconnect    close this connection and open a new one (read its 220
                  with S:)
  R: new [ADDR]   open another connection (from source address ADDR, e.g.
                  127.0.0.3) and talk on it; the earlier ones stay open
                  (and silent) until the dialogue ends
  W: SECS         sleep
  Q: N            the queue (active/) holds N messages now
  M: EXPECT       the message named by the last "queued as ID" reply:
                  /REGEX/ or !/REGEX/ terms against its stored bytes
  E: EXPECT       the same against its envelope file (queue/active/ID.env)
  L: /REGEX/      the server's log matches (waits up to 5 s)

Usage: run.py [--bin PATH] [--keep] [FILE.dialog ...]   (default: all)
The binary is --bin, else $BRIDGEHEAD_BIN, else build/bridgehead.
Exit status 0 when every dialogue passed.  Only the standard library.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVER_NAME = "bh1.example.com"
REPLY_TIMEOUT = 15.0
QUEUED_RE = re.compile(rb"queued as ([0-9A-Za-z]{8,32})")


class DialogError(AssertionError):
    pass


# ---------------------------------------------------------------- parsing

def unescape(text):
    """C escapes of a C: line to bytes."""
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c != 0x5C or i + 1 == len(raw):
            out.append(c)
            i += 1
            continue
        n = chr(raw[i + 1])
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0",
                  "\\": b"\\", '"': b'"'}
        if n in simple:
            out += simple[n]
            i += 2
        elif n == "x" and i + 3 < len(raw) + 1:
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            raise DialogError(f"unknown escape \\{n} in {text!r}")
    return bytes(out)


def expand(text):
    """{N*TEXT} repetitions, %i = the repetition number."""
    def rep(m):
        count, body = int(m.group(1)), m.group(2)
        return "".join(body.replace("%i", f"{k:03d}") for k in range(1, count + 1))
    return re.sub(r"\{(\d+)\*([^{}]*)\}", rep, text)


class Step:
    def __init__(self, lineno, kind, arg, count=1):
        self.lineno = lineno
        self.kind = kind
        self.arg = arg
        self.count = count


class Dialog:
    def __init__(self, path):
        self.path = Path(path)
        self.server = {}
        self.listener = {}
        self.cert = True
        self.steps = []
        for lineno, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("@"):
                self._directive(lineno, line)
                continue
            m = re.match(r"^([CSTXRWQMEL])(\*(\d+))?:\s?(.*)$", line)
            if not m:
                raise DialogError(f"{self.path.name}:{lineno}: cannot parse {line!r}")
            kind, count, arg = m.group(1), int(m.group(3) or 1), m.group(4)
            if kind == "C":
                arg = unescape(expand(arg))
            self.steps.append(Step(lineno, kind, arg, count))

    def _directive(self, lineno, line):
        m = re.match(r"^@(server|listener)\s+(\w+)\s*=\s*(.*)$", line)
        if m:
            (self.server if m.group(1) == "server" else self.listener)[m.group(2)] = m.group(3)
        elif re.match(r"^@cert\s+no\s*$", line):
            self.cert = False
        else:
            raise DialogError(f"{self.path.name}:{lineno}: unknown directive {line!r}")


# ---------------------------------------------------------------- server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(explicit=None):
    for cand in (explicit, os.environ.get("BRIDGEHEAD_BIN"),
                 str(REPO / "build" / "bridgehead")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise DialogError("bridgehead binary not found: run make or set BRIDGEHEAD_BIN")


class Server:
    def __init__(self, binary, dialog):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="bh-dialog-"))
        self.port = free_port()
        self.state = self.dir / "state"
        self.conf = self.dir / "bridgehead.conf"
        self.log = self.dir / "server.log"
        self.tls = dialog.listener.get("tls", "offer")
        server = {"name": SERVER_NAME, "state_dir": str(self.state),
                  "accepted_domains": "example.com",
                  "relay_networks": "127.0.0.0/8"}
        server.update(dialog.server)
        listener = {"address": f"127.0.0.1:{self.port}", "tls": "offer"}
        listener.update(dialog.listener)
        lines = ["[server]"] + [f"{k} = {v}" for k, v in server.items()]
        lines += ["", "[listener smtp]"] + [f"{k} = {v}" for k, v in listener.items()]
        # Queued mail goes by MX: a local resolver answers every name with
        # 127.0.0.1 (nothing on port 25), so it is deferred and stays
        # queued for the dialog to inspect, and nothing needs the Internet.
        unbound = self.dir / "unbound.conf"
        unbound.write_text('server:\n\tlocal-zone: "." redirect\n'
                           '\tlocal-data: ". 300 IN A 127.0.0.1"\n')
        lines += ["", "[dns]", f"unbound_config = {unbound}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None
        if dialog.cert:
            self._cli("cert", "selfsign", "--fqdn", SERVER_NAME)

    def _cli(self, *args):
        p = subprocess.run([self.binary, *args, "-c", str(self.conf)],
                           capture_output=True, timeout=60)
        if p.returncode != 0:
            raise DialogError(f"bridgehead {' '.join(args)}: exit {p.returncode}: "
                              f"{p.stderr.decode(errors='replace')}")

    def start(self):
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen([self.binary, "serve", "-c", str(self.conf),
                                      "--foreground", "-v"],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf)
        logf.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise DialogError(f"server exited with {self.proc.returncode} at start:\n"
                                  + self.log_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise DialogError("server does not listen:\n" + self.log_text())
                time.sleep(0.02)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return f"server died by itself with status {self.proc.returncode}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "server did not exit within 40 s of SIGTERM"
        return None if rc == 0 else f"server exited with status {rc} after SIGTERM"

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def queued(self):
        d = self.state / "queue" / "active"
        return sorted(p.stem for p in d.glob("*.env")) if d.is_dir() else []

    def message(self, qid):
        return (self.state / "queue" / "active" / f"{qid}.msg").read_bytes()

    def envelope(self, qid):
        return (self.state / "queue" / "active" / f"{qid}.env").read_bytes()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- client

class Conn:
    def __init__(self, port, implicit_tls, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        if implicit_tls:
            self.starttls()

    def starttls(self):
        if self.buf:
            raise DialogError(f"plaintext after the 220 to STARTTLS: {self.buf!r}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=SERVER_NAME)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise DialogError(f"no complete reply within {REPLY_TIMEOUT} s; buffered {self.buf[:200]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise DialogError(f"no complete reply within {REPLY_TIMEOUT} s; buffered {self.buf[:200]!r}")
        except (ConnectionResetError, ssl.SSLError) as e:
            raise DialogError(f"connection lost ({e}); buffered {self.buf[:200]!r}")
        if not chunk:
            raise DialogError(f"connection closed; buffered {self.buf[:200]!r}")
        self.buf += chunk

    def reply(self):
        deadline = time.monotonic() + REPLY_TIMEOUT
        lines = []
        while True:
            while b"\n" not in self.buf:
                self._fill(deadline)
            i = self.buf.index(b"\n")
            line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
            if not line.endswith(b"\r\n"):
                raise DialogError(f"reply line not ended by CRLF: {line!r}")
            line = line[:-2]
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                raise DialogError(f"malformed reply line {line!r}")
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def wait(self, seconds):
        """'eof', 'quiet' or the bytes that arrived."""
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return "quiet"
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return "eof"
        return chunk if chunk else "eof"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- running

def check_terms(expect, text, last_line):
    """None if text satisfies every term of expect, else why not."""
    for term in [t.strip() for t in expect.split(" && ")]:
        if term.startswith("!/") and term.endswith("/"):
            if re.search(term[2:-1], text, re.S):
                return f"matches {term[1:]}"
        elif term.startswith("/") and term.endswith("/") and len(term) > 1:
            if not re.search(term[1:-1], text, re.S):
                return f"does not match {term}"
        elif not last_line.startswith(term):
            return f"does not start with {term!r}"
    return None


class Runner:
    def __init__(self, dialog, server):
        self.d = dialog
        self.srv = server
        self.conn = None
        self.kept = []
        self.last_id = None

    def fail(self, step, msg):
        raise DialogError(f"{self.d.path.name}:{step.lineno}: {msg}")

    def connect(self, step=None, keep=False, source=None):
        if self.conn and keep:
            self.kept.append(self.conn)
        elif self.conn:
            self.conn.close()
        self.conn = None
        try:
            self.conn = Conn(self.srv.port, self.srv.tls == "implicit", source)
        except (OSError, ssl.SSLError) as e:
            where = f"{self.d.path.name}:{step.lineno}" if step else self.d.path.name
            raise DialogError(f"{where}: cannot connect: {e}")

    def run(self):
        self.connect()
        try:
            for step in self.d.steps:
                getattr(self, "step_" + step.kind)(step)
        finally:
            for c in self.kept + [self.conn]:
                if c:
                    c.close()

    def step_C(self, step):
        try:
            self.conn.send(step.arg)
        except OSError as e:
            self.fail(step, f"send failed: {e}")

    def step_S(self, step):
        for n in range(step.count):
            try:
                lines = self.conn.reply()
            except DialogError as e:
                self.fail(step, f"reply {n + 1} of {step.count}: want {step.arg!r}, got {e}")
            text = "\n".join(ln.decode("latin-1") for ln in lines)
            why = check_terms(step.arg, text, lines[-1].decode("latin-1"))
            if why:
                self.fail(step, f"reply {n + 1} of {step.count}: got {text!r}, want {step.arg!r} ({why})")
            m = QUEUED_RE.search(b"\n".join(lines))
            if m and lines[-1].startswith(b"250"):
                self.last_id = m.group(1).decode()

    def step_T(self, step):
        try:
            self.conn.starttls()
        except (ssl.SSLError, OSError) as e:
            self.fail(step, f"TLS handshake failed: {e}")

    def step_X(self, step):
        words = step.arg.split()
        if words[0] == "closed":
            deadline = time.monotonic() + REPLY_TIMEOUT
            while time.monotonic() < deadline:
                got = self.conn.wait(max(0.05, deadline - time.monotonic()))
                if got == "eof":
                    return
                if got != "quiet":
                    self.fail(step, f"want the connection closed, got data {got[:200]!r}")
            self.fail(step, f"connection still open after {REPLY_TIMEOUT} s")
        elif words[0] == "quiet":
            got = self.conn.wait(float(words[1]))
            if got != "quiet":
                self.fail(step, f"want nothing for {words[1]} s, got {got if got == 'eof' else got[:200]!r}")
        else:
            self.fail(step, f"unknown X: {step.arg!r}")

    def step_R(self, step):
        words = step.arg.split()
        if not words or words[0] not in ("reconnect", "new") or \
                (words[0] == "reconnect" and len(words) > 1) or len(words) > 2:
            self.fail(step, f"unknown R: {step.arg!r}")
        self.connect(step, keep=words[0] == "new",
                     source=words[1] if len(words) > 1 else None)

    def step_W(self, step):
        time.sleep(float(step.arg))

    def step_Q(self, step):
        got = self.srv.queued()
        if len(got) != int(step.arg):
            self.fail(step, f"queue holds {len(got)} messages {got}, want {step.arg}")

    def step_M(self, step):
        if not self.last_id:
            self.fail(step, "no 'queued as ID' reply seen yet")
        data = self.srv.message(self.last_id).decode("latin-1")
        why = check_terms(step.arg, data, data)
        if why:
            self.fail(step, f"message {self.last_id}: {why}; stored:\n{data[:2000]}")

    def step_E(self, step):
        if not self.last_id:
            self.fail(step, "no 'queued as ID' reply seen yet")
        data = self.srv.envelope(self.last_id).decode("latin-1")
        why = check_terms(step.arg, data, data)
        if why:
            self.fail(step, f"envelope {self.last_id}: {why}; stored:\n{data}")

    def step_L(self, step):
        want = step.arg.strip()
        assert want.startswith("/") and want.endswith("/"), want
        deadline = time.monotonic() + 5
        while not re.search(want[1:-1], self.srv.log_text(), re.M):
            if time.monotonic() > deadline:
                self.fail(step, f"server log does not match {want}")
            time.sleep(0.05)


def run_dialog(path, binary=None, keep=False):
    """Runs one dialogue file; raises DialogError (with the server log) on
    failure."""
    dialog = Dialog(path)
    srv = Server(find_binary(binary), dialog)
    problem = None
    try:
        srv.start()
        try:
            Runner(dialog, srv).run()
        except DialogError as e:
            problem = str(e)
    finally:
        stop_problem = srv.stop()
    if stop_problem and not problem:
        problem = f"{dialog.path.name}: {stop_problem}"
    if problem:
        log = srv.log_text()
        if not keep:
            srv.cleanup()
        raise DialogError(f"{problem}\n--- server log ({srv.dir}) ---\n{log[-6000:]}")
    if not keep:
        srv.cleanup()


def main(argv):
    binary, keep, files = None, False, []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--bin":
            binary = args.pop(0)
        elif a == "--keep":
            keep = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            files.append(a)
    if not files:
        files = sorted(str(p) for p in HERE.glob("*.dialog"))
    failed = 0
    for f in files:
        t0 = time.monotonic()
        try:
            run_dialog(f, binary, keep)
            print(f"ok   {Path(f).name} ({time.monotonic() - t0:.1f} s)")
        except DialogError as e:
            failed += 1
            print(f"FAIL {Path(f).name}\n{e}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
