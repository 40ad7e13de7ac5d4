"""
fakehost: a scriptable fake smart host -- the peer that bridgehead
delivers to in the end-to-end tests -- and a test CA made with openssl.

  FakeHost(plan=[...], default=Esmtp(...))
              a TCP server on 127.0.0.1 (a free port), one thread per
              connection.  Connection number n (0-based) is handled by
              plan[n], later ones by `default`.  A handler is either
              an Esmtp (a real-looking ESMTP server) or a Script (a list of
              byte-exact steps, which may end by handing over to an Esmtp).
              Everything is recorded: fh.sessions (one Session per
              connection: every byte in each direction with its time, the
              command lines, TLS facts, errors), fh.transactions() (every
              MAIL transaction of every session).  fh.port, fh.close();
              a context manager.
  Esmtp(...)  EHLO/HELO with chosen extensions, STARTTLS (TlsSpec), MAIL,
              RCPT with per-recipient programmable replies, DATA collected
              byte-exact, BDAT, RSET, NOOP, QUIT; a reply delay, bare-LF
              line ends, one-byte-at-a-time replies (tarpit), 421 closing
              (or not), clear text instead of a ServerHello, MAIL refused
              before TLS (require_tls).  A reply given as a callable is
              computed per command; CLOSE closes without replying.
  Script steps
              Send(*pieces, pause=0)   each piece in its own send(), with a
                                       pause between pieces (Nagle off)
              Expect(regex)            read one line; it must match
              Data(*pieces, pause=0)   read a message up to CRLF.CRLF (the
                                       transaction of the lines Expect saw)
                                       and answer with pieces
              Tls(TlsSpec)             server-side TLS handshake
              Sleep(seconds)           send nothing for a while
              Drain(timeout)           read until the peer closes
              Close()                  close the connection
              Esmtp(...)               the rest of the session
  TlsSpec(cert, key, ...)  server certificate (the file's whole chain is
              sent), protocol bounds, ciphers, and optionally a client
              certificate request (the subject and names presented are
              recorded; client_ca says which certificates are trusted).
  TestCA      root CA -> intermediate -> leaves, made with the openssl
              command in a temporary directory: leaf(name), expired(name),
              selfsigned(name); each gives key, cert (leaf only), chain
              (leaf + intermediate); Leaf.spec(), Leaf.old_tls_spec().
  helpers     connector_conf() (the [queue] and [connector] sections toward
              a fake host), submit() (one message through the relay),
              events()/wait_event() (tracking events of a message),
              installed_cert(), name_matches().

A test module that says `pytest_plugins = ["fakehost"]` gets the fixtures
`test_ca` (the CA, made once per run) and `fakehost` (a factory; every
host is closed at teardown), and tests marked `slow` are deselected unless
BRIDGEHEAD_SLOW=1.

TLS runs over memory BIOs (ssl.SSLObject), so the raw socket stays ours:
what arrives after a failed handshake, or plaintext pipelined behind
STARTTLS, is seen and recorded rather than swallowed by a TLS layer.
"""

import atexit
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

try:
    from cryptography import x509 as _x509
except ImportError:  # parsed from getpeercert() then
    _x509 = None

SMART_HOST = "smarthost.example.net"
CLOSE = object()          # a reply that closes the connection instead
MAX_DATA = 64 * 1024 * 1024


class ScriptError(Exception):
    """The peer did not do what the script expected."""


class PeerClosed(Exception):
    pass


# ---------------------------------------------------------------- TLS

class TlsSpec:
    """How the fake host does its side of a TLS handshake."""

    def __init__(self, cert, key, *, min_version=None, max_version=None,
                 ciphers=None, request_client_cert=False, client_ca=None,
                 timeout=30.0):
        self.cert = str(cert)
        self.key = str(key)
        self.min_version = min_version
        self.max_version = max_version
        self.ciphers = ciphers
        self.request_client_cert = request_client_cert
        self.client_ca = client_ca
        self.timeout = timeout

    def context(self, session):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        if self.min_version is not None:
            ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        ctx.load_cert_chain(self.cert, self.key)
        if self.request_client_cert:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            cas = self.client_ca() if callable(self.client_ca) else self.client_ca
            for ca in ([cas] if isinstance(cas, (str, Path)) else cas or []):
                ctx.load_verify_locations(str(ca))

        def sni(_obj, name, _ctx):
            session.tls["sni"] = name
        ctx.sni_callback = sni
        return ctx


def cert_names(der):
    """(subject as text, [dNSName SANs]) of a DER certificate."""
    if der is None:
        return None, []
    if _x509 is None:
        return "(unparsed)", []
    c = _x509.load_der_x509_certificate(der)
    try:
        sans = c.extensions.get_extension_for_class(
            _x509.SubjectAlternativeName).value.get_values_for_type(_x509.DNSName)
    except _x509.ExtensionNotFound:
        sans = []
    return c.subject.rfc4514_string(), list(sans)


def name_matches(pattern, name):
    """RFC 6125 matching: exact (any case) or '*.' for one left label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, dot, rest = name.partition(".")
        return bool(head) and dot == "." and rest == pattern[2:]
    return pattern == name


# ---------------------------------------------------------------- a session

class Transaction:
    """One MAIL transaction as the fake host saw it."""

    def __init__(self, session, mail_line):
        self.session = session
        self.mail_line = mail_line            # raw, with its line end
        m = re.match(rb"(?i)MAIL FROM:\s*<([^>]*)>(.*?)\r?\n?$", mail_line)
        self.mail_from = m.group(1).decode("utf-8", "replace") if m else None
        self.mail_params = m.group(2).decode("utf-8", "replace").strip() if m else ""
        self.mail_reply = None
        self.rcpts = []                       # [(address, reply bytes)]
        self.data = None                      # wire bytes after 354, incl. ".\r\n"
        self.content = None                   # un-stuffed, without the final dot
        self.bdat = False
        self.reply = None                     # reply to the end of data
        self.complete = False                 # a 2xx was sent for the data
        self.tls = dict(session.tls) if session.tls.get("version") else None

    @property
    def accepted(self):
        return [a for a, r in self.rcpts if r is not None and r[:1] == b"2"]

    def __repr__(self):
        return (f"<Transaction from={self.mail_from!r} rcpts={self.rcpts!r} "
                f"complete={self.complete} tls={self.tls and self.tls.get('version')}>")


class Session:
    """Everything seen on one connection."""

    def __init__(self, host, number, sock, peer):
        self.host = host
        self.number = number
        self.sock = sock
        self.peer = peer
        self.started = time.time()
        self.ended = None
        self.log = []              # [(time.time(), "R>" or "H<", bytes)]
        self.commands = []         # command lines as received (with line end)
        self.tls = {}              # version, cipher, sni, client_subject, client_sans, ...
        self.tls_error = None
        self.transactions = []
        self.errors = []           # script mismatches, protocol errors
        self.pipelined_after_starttls = b""
        self.tls_failed_at = None  # index into log where a handshake failed
        self.closed_by = None      # "peer" | "host"
        self.after_421 = None      # bytes received after a 421 was sent, None if none sent
        self._buf = b""
        self._ssl = None
        self._in = None
        self._out = None
        self._lock = threading.Lock()

    # -- what tests look at
    def received(self):
        return b"".join(d for _, w, d in self.log if w == "R>")

    def sent(self):
        return b"".join(d for _, w, d in self.log if w == "H<")

    def received_after_tls_failure(self):
        """Raw bytes the peer sent after a failed handshake (None: none failed)."""
        if self.tls_failed_at is None:
            return None
        return b"".join(d for _, w, d in self.log[self.tls_failed_at:] if w == "R>")

    def first_time(self, direction):
        for t, w, _ in self.log:
            if w == direction:
                return t
        return None

    def verbs(self):
        return [c.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode("ascii", "replace")
                for c in self.commands]

    def __repr__(self):
        return (f"<Session {self.number} commands={self.commands!r} tls={self.tls!r} "
                f"tls_error={self.tls_error!r} errors={self.errors!r} closed_by={self.closed_by}>")

    # -- raw I/O
    def _record(self, direction, data):
        with self._lock:
            self.log.append((time.time(), direction, data))

    def _recv_raw(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as e:
            raise PeerClosed(str(e))
        return data

    def _fill(self, timeout):
        """More bytes into the buffer (plain or decrypted)."""
        if self._ssl is None:
            data = self._recv_raw(timeout)
            if not data:
                raise PeerClosed("eof")
            self._record("R>", data)
            self._buf += data
            return
        while True:
            try:
                data = self._ssl.read(65536)
            except ssl.SSLWantReadError:
                self._flush_tls()
                raw = self._recv_raw(timeout)
                if not raw:
                    raise PeerClosed("eof")
                self._in.write(raw)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                raise PeerClosed("tls closed")
            except ssl.SSLError as e:
                raise PeerClosed(f"tls error: {e}")
            if not data:
                raise PeerClosed("tls closed")
            self._record("R>", data)
            self._buf += data
            return

    def _flush_tls(self):
        out = self._out.read()
        if out:
            self.sock.sendall(out)

    def send(self, data):
        """data in one send() (one TLS record under TLS)."""
        self._record("H<", data)
        if self._ssl is None:
            self.sock.sendall(data)
        else:
            self._ssl.write(data)
            self._flush_tls()

    def readline(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self._buf:
            if len(self._buf) > 100000:
                raise ScriptError(f"no line end in {len(self._buf)} bytes")
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no complete line")
            self._fill(left)
        i = self._buf.index(b"\n") + 1
        line, self._buf = self._buf[:i], self._buf[i:]
        return line

    def read_exact(self, n, timeout):
        deadline = time.time() + timeout
        while len(self._buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("short read")
            self._fill(left)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read_data(self, timeout):
        """Bytes up to and including the CRLF.CRLF end of data."""
        deadline = time.time() + timeout
        while True:
            if self._buf.startswith(b".\r\n"):
                end = 3
                break
            i = self._buf.find(b"\r\n.\r\n")
            if i >= 0:
                end = i + 5
                break
            if len(self._buf) > MAX_DATA:
                raise ScriptError("message too big")
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no end of data")
            self._fill(left)
        data, self._buf = self._buf[:end], self._buf[end:]
        return data

    def drain(self, timeout):
        """Read until the peer closes or timeout; True if it closed."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return False
            try:
                self._fill(left)
            except socket.timeout:
                return False
            except PeerClosed:
                return True

    def start_tls(self, spec):
        """Server-side handshake; True on success (facts in self.tls).  On
        failure the connection stays plain: what follows is recorded."""
        ok = self._handshake(spec)
        if not ok:
            self.tls_failed_at = len(self.log)
            self._ssl = None
        return ok

    def _handshake(self, spec):
        if self._buf:
            self.pipelined_after_starttls += self._buf
            self._buf = b""
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            obj = spec.context(self).wrap_bio(self._in, self._out, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.tls_error = f"context: {e}"
            return False
        deadline = time.time() + spec.timeout
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                try:
                    self._flush_tls()
                    left = deadline - time.time()
                    if left <= 0:
                        raise socket.timeout("handshake timeout")
                    raw = self._recv_raw(left)
                except (socket.timeout, PeerClosed, OSError) as e:
                    self.tls_error = f"handshake: {e}"
                    return False
                if not raw:
                    self.tls_error = "handshake: peer closed"
                    return False
                self._in.write(raw)
            except ssl.SSLError as e:
                self.tls_error = f"handshake: {e}"
                try:
                    self._flush_tls()      # our alert
                except OSError:
                    pass
                return False
        self._flush_tls()
        self._ssl = obj
        der = obj.getpeercert(binary_form=True)
        subject, sans = cert_names(der)
        self.tls.update(version=obj.version(), cipher=obj.cipher()[0],
                        client_subject=subject, client_sans=sans,
                        client_cert=der is not None)
        return True

    def close(self):
        try:
            if self._ssl is not None:
                try:
                    self._ssl.unwrap()
                except (ssl.SSLError, ValueError):
                    pass
                try:
                    self._flush_tls()
                except OSError:
                    pass
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the ESMTP engine

def _reply_bytes(value, *args):
    if callable(value):
        value = value(*args)
    if isinstance(value, str):
        value = value.encode()
    return value


class Esmtp:
    """A real-looking ESMTP server; every reply can be replaced."""

    def __init__(self, *, name=SMART_HOST, greeting=None, greet=True,
                 extensions=("PIPELINING", "SIZE 10485760", "8BITMIME",
                             "ENHANCEDSTATUSCODES"),
                 extensions_tls=None, tls=None, require_tls=False,
                 ehlo_reply=None, mail_reply=b"250 2.1.0 Ok\r\n",
                 rcpt_reply=b"250 2.1.5 Ok\r\n", data_reply=b"354 End data with <CR><LF>.<CR><LF>\r\n",
                 dot_reply=None, reply_delay=0.0, bare_lf=False,
                 trickle=None, keep_open_after_421=False, timeout=600.0,
                 starttls_plaintext=None):
        self.name = name
        self.greeting = greeting if greeting is not None else f"220 {name} ESMTP fakehost\r\n".encode()
        self.greet = greet
        self.extensions = list(extensions)
        self.extensions_tls = list(extensions_tls) if extensions_tls is not None else None
        self.tls = tls
        self.require_tls = require_tls
        self.ehlo_reply = ehlo_reply
        self.mail_reply = mail_reply
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.dot_reply = dot_reply
        self.reply_delay = reply_delay
        self.bare_lf = bare_lf
        self.trickle = trickle            # seconds between single bytes
        self.keep_open_after_421 = keep_open_after_421
        self.timeout = timeout
        # Bytes sent in clear text instead of a ServerHello after 220.
        self.starttls_plaintext = starttls_plaintext

    # -- replies
    def _send(self, s, data):
        """Sends a reply; False if the session must end."""
        if data is CLOSE:
            s.errors.append("closed instead of replying (scripted)")
            return False
        if self.bare_lf:
            data = data.replace(b"\r\n", b"\n")
        if self.reply_delay:
            time.sleep(self.reply_delay)
        if self.trickle:
            for i in range(len(data)):
                s.send(data[i:i + 1])
                if i + 1 < len(data):
                    time.sleep(self.trickle)
        else:
            s.send(data)
        if data[:3] == b"421":
            s.after_421 = b""
            if not self.keep_open_after_421:
                return False
        return True

    def _ehlo(self, s, tls_active):
        if self.ehlo_reply is not None:
            return _reply_bytes(self.ehlo_reply, s)
        exts = self.extensions_tls if tls_active and self.extensions_tls is not None else self.extensions
        exts = list(exts)
        if self.tls is not None and not tls_active:
            exts.append("STARTTLS")
        lines = [self.name] + exts
        out = b""
        for i, ln in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out += f"250{sep}{ln}\r\n".encode()
        return out

    def run(self, s):
        if self.greet and not self._send(s, self.greeting):
            return
        state = {"ehlo": False, "tx": None, "tls": bool(s.tls.get("version"))}
        while True:
            try:
                line = s.readline(self.timeout)
            except (socket.timeout, ScriptError) as e:
                s.errors.append(f"reading a command: {e}")
                return
            if s.after_421 is not None:
                s.after_421 += line
            s.commands.append(line)
            if not self._command(s, line, state):
                return

    def _command(self, s, line, st):
        text = line.rstrip(b"\r\n")
        verb = text.split(b" ", 1)[0].split(b":", 1)[0].upper()
        arg = text[len(verb):].strip()
        if not line.endswith(b"\r\n"):
            s.errors.append(f"command line without CRLF: {line!r}")
        if verb in (b"EHLO", b"HELO"):
            st["ehlo"], st["tx"] = True, None
            if verb == b"HELO":
                return self._send(s, f"250 {self.name}\r\n".encode())
            return self._send(s, self._ehlo(s, st["tls"]))
        if verb == b"STARTTLS":
            if self.tls is None or st["tls"]:
                return self._send(s, b"502 5.5.1 STARTTLS not available\r\n")
            if not self._send(s, b"220 2.0.0 Ready to start TLS\r\n"):
                return False
            if self.starttls_plaintext is not None:
                try:
                    s._fill(30)                  # the ClientHello
                except (socket.timeout, PeerClosed):
                    pass
                s.tls_error = "clear text sent instead of a ServerHello"
                s.tls_failed_at = len(s.log)
                s._buf = b""
                s.send(self.starttls_plaintext)
                s.drain(10)
                return False
            if not s.start_tls(self.tls):
                s.drain(10)                      # record what comes after
                return False
            st.update(tls=True, ehlo=False, tx=None)
            return True
        if verb == b"QUIT":
            self._send(s, b"221 2.0.0 Bye\r\n")
            return False
        if verb == b"NOOP":
            return self._send(s, b"250 2.0.0 Ok\r\n")
        if verb == b"RSET":
            st["tx"] = None
            return self._send(s, b"250 2.0.0 Ok\r\n")
        if verb == b"MAIL":
            if not st["ehlo"]:
                return self._send(s, b"503 5.5.1 EHLO first\r\n")
            if self.require_tls and not st["tls"]:
                return self._send(s, b"530 5.7.0 Must issue a STARTTLS command first\r\n")
            if st["tx"] is not None:
                return self._send(s, b"503 5.5.1 Nested MAIL command\r\n")
            tx = Transaction(s, line)
            s.transactions.append(tx)
            s.host._notify()
            reply = _reply_bytes(self.mail_reply, s, tx)
            tx.mail_reply = reply
            if reply is not CLOSE and reply[:1] == b"2":
                st["tx"] = tx
            return self._send(s, reply)
        if verb == b"RCPT":
            tx = st["tx"]
            if tx is None:
                return self._send(s, b"503 5.5.1 MAIL first\r\n")
            m = re.match(rb"(?i)TO:\s*<([^>]*)>", arg)
            addr = m.group(1).decode("utf-8", "replace") if m else arg.decode("utf-8", "replace")
            if isinstance(self.rcpt_reply, dict):
                reply = _reply_bytes(self.rcpt_reply.get(addr.lower(), b"250 2.1.5 Ok\r\n"), s, tx, addr)
            else:
                reply = _reply_bytes(self.rcpt_reply, s, tx, addr)
            tx.rcpts.append((addr, None if reply is CLOSE else reply))
            s.host._notify()
            return self._send(s, reply)
        if verb == b"DATA":
            tx = st["tx"]
            if tx is None or not tx.accepted:
                return self._send(s, b"554 5.5.1 No valid recipients\r\n")
            reply = _reply_bytes(self.data_reply, s, tx)
            if not self._send(s, reply):
                return False
            if reply[:3] != b"354":
                st["tx"] = None
                return True
            try:
                tx.data = s.read_data(self.timeout)
            except (socket.timeout, ScriptError, PeerClosed) as e:
                s.errors.append(f"reading data: {e}")
                return False
            body = tx.data[:-3] if tx.data != b".\r\n" else b""
            tx.content = re.sub(rb"(?m)^\.", b"", body) if body else b""
            return self._end_data(s, st, tx)
        if verb == b"BDAT":
            tx = st["tx"]
            m = re.match(rb"(\d+)( +LAST)?$", arg, re.I)
            if m is None:
                return self._send(s, b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")
            try:
                chunk = s.read_exact(int(m.group(1)), self.timeout)
            except (socket.timeout, PeerClosed) as e:
                s.errors.append(f"reading BDAT: {e}")
                return False
            if tx is None or not tx.accepted:
                return self._send(s, b"503 5.5.1 No valid recipients\r\n")
            tx.bdat = True
            tx.data = (tx.data or b"") + chunk
            if not m.group(2):
                return self._send(s, b"250 2.0.0 Ok chunk\r\n")
            tx.content = tx.data
            return self._end_data(s, st, tx)
        return self._send(s, b"500 5.5.2 Command not recognised\r\n")

    def _end_data(self, s, st, tx):
        st["tx"] = None
        n = sum(len(x.transactions) for x in s.host.sessions)
        reply = _reply_bytes(self.dot_reply, s, tx) if self.dot_reply is not None \
            else f"250 2.0.0 Ok: queued as FH{n:04d}\r\n".encode()
        tx.reply = None if reply is CLOSE else reply
        tx.complete = reply is not CLOSE and reply[:1] == b"2"
        s.host._notify()
        return self._send(s, reply)


# ---------------------------------------------------------------- scripts

class Send:
    def __init__(self, *pieces, pause=0.0):
        self.pieces = [p.encode() if isinstance(p, str) else p for p in pieces]
        self.pause = pause

    def run(self, s):
        for i, p in enumerate(self.pieces):
            if i and self.pause:
                time.sleep(self.pause)
            s.send(p)


class Expect:
    def __init__(self, regex, timeout=600.0):
        self.regex = re.compile(regex if isinstance(regex, bytes) else regex.encode())
        self.timeout = timeout

    def run(self, s):
        line = s.readline(self.timeout)
        s.commands.append(line)
        if not self.regex.fullmatch(line):
            raise ScriptError(f"expected {self.regex.pattern!r}, got {line!r}")


class Tls:
    def __init__(self, spec):
        self.spec = spec

    def run(self, s):
        if not s.start_tls(self.spec):
            raise ScriptError(f"TLS handshake failed: {s.tls_error}")


class Sleep:
    def __init__(self, seconds):
        self.seconds = seconds

    def run(self, s):
        time.sleep(self.seconds)


class Drain:
    def __init__(self, timeout=30.0):
        self.timeout = timeout

    def run(self, s):
        if s.drain(self.timeout):
            raise PeerClosed("eof")
        s.errors.append(f"peer still connected after {self.timeout}s")


class Data:
    """Read a message up to CRLF.CRLF (after the MAIL/RCPT/DATA lines seen
    by Expect steps), record it as a transaction, answer with pieces."""

    def __init__(self, *pieces, pause=0.0, timeout=600.0):
        self.reply = Send(*pieces, pause=pause)
        self.timeout = timeout

    def run(self, s):
        mails = [i for i, c in enumerate(s.commands) if c[:5].upper() == b"MAIL "]
        if not mails:
            raise ScriptError("data without MAIL")
        tx = Transaction(s, s.commands[mails[-1]])
        for c in s.commands[mails[-1] + 1:]:
            m = re.match(rb"(?i)RCPT TO:\s*<([^>]*)>", c)
            if m:
                tx.rcpts.append((m.group(1).decode("utf-8", "replace"), b"250"))
        s.transactions.append(tx)
        tx.data = s.read_data(self.timeout)
        body = tx.data[:-3] if tx.data != b".\r\n" else b""
        tx.content = re.sub(rb"(?m)^\.", b"", body) if body else b""
        self.reply.run(s)
        tx.reply = b"".join(self.reply.pieces)
        tx.complete = tx.reply[:1] == b"2"
        s.host._notify()


class Close:
    def run(self, s):
        raise _Done()


class _Done(Exception):
    pass


class Script:
    """Steps run in order; an error ends the connection and is recorded."""

    def __init__(self, *steps):
        self.steps = steps

    def run(self, s):
        for step in self.steps:
            if isinstance(step, Esmtp):
                step.run(s)
                return
            step.run(s)


# ---------------------------------------------------------------- the server

class FakeHost:
    """The fake smart host: plan[n] handles connection n, then default."""

    def __init__(self, plan=(), default=None, name=SMART_HOST):
        self.plan = list(plan)
        self.default = default if default is not None else Esmtp(name=name)
        self.sessions = []
        self._cond = threading.Condition()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self.port = self._lsock.getsockname()[1]
        self._stop = False
        self._threads = []
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def address(self):
        return f"[127.0.0.1]:{self.port}"

    def _notify(self):
        with self._cond:
            self._cond.notify_all()

    def _accept_loop(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                sock, peer = self._lsock.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                n = len(self.sessions)
                s = Session(self, n, sock, peer)
                self.sessions.append(s)
                self._cond.notify_all()
            handler = self.plan[n] if n < len(self.plan) else self.default
            t = threading.Thread(target=self._serve, args=(s, handler), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s, handler):
        try:
            handler.run(s)
            s.closed_by = s.closed_by or "host"
        except _Done:
            s.closed_by = "host"
        except PeerClosed:
            s.closed_by = "peer"
        except (ScriptError, socket.timeout, OSError, ssl.SSLError) as e:
            s.errors.append(f"{type(e).__name__}: {e}")
            s.closed_by = "host"
        finally:
            # After a 421 (or any close of ours) note whether the peer
            # sent more before it closed too.
            if s.after_421 is not None and s.closed_by != "peer":
                try:
                    s.sock.shutdown(socket.SHUT_WR)      # our close, seen at once
                except OSError:
                    pass
                s.drain(2.0)
                s.after_421 = s.after_421 + s._buf
            s.close()
            s.ended = time.time()
            self._notify()

    # -- waiting and looking
    def wait(self, pred, timeout, what="condition"):
        deadline = time.time() + timeout
        with self._cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"fake host: timed out after {timeout}s waiting for {what}; "
                                         f"sessions: {self.sessions!r}")
                self._cond.wait(min(left, 0.2))

    def wait_sessions(self, n, timeout=30, ended=True):
        """The first n sessions, once they exist (and, by default, ended)."""
        def ready():
            if len(self.sessions) < n:
                return None
            first = self.sessions[:n]
            if ended and any(s.ended is None for s in first):
                return None
            return first
        return self.wait(ready, timeout, f"{n} session(s){' to end' if ended else ''}")

    def transactions(self):
        return [t for s in list(self.sessions) for t in list(s.transactions)]

    def complete(self):
        return [t for t in self.transactions() if t.complete]

    def wait_complete(self, n=1, timeout=30):
        """The first n transactions that got a 2xx to their data."""
        return self.wait(lambda: len(self.complete()) >= n and self.complete()[:n],
                         timeout, f"{n} delivered transaction(s)")

    def close(self):
        self._stop = True
        self._accepter.join(2)
        try:
            self._lsock.close()
        except OSError:
            pass
        for s in list(self.sessions):
            if s.ended is None:
                try:
                    s.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in self._threads:
            t.join(5)


# ---------------------------------------------------------------- test CA

class Leaf:
    def __init__(self, key, cert, chain, name):
        self.key, self.cert, self.chain, self.name = key, cert, chain, name

    def spec(self, chain=True, **kw):
        return TlsSpec(self.chain if chain else self.cert, self.key, **kw)

    def old_tls_spec(self):
        """A server that speaks TLS 1.0 only, with RSA key exchange and
        3DES where this OpenSSL still has it (else AES-CBC)."""
        for ciphers in ("DES-CBC3-SHA:@SECLEVEL=0", "AES128-SHA:@SECLEVEL=0"):
            spec = self.spec(min_version=ssl.TLSVersion.TLSv1,
                             max_version=ssl.TLSVersion.TLSv1, ciphers=ciphers)
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(ciphers)
                return spec
            except ssl.SSLError:
                continue
        raise AssertionError("this OpenSSL has no TLS 1.0 cipher for the old-peer tests")


_EXT = """\
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::BH_SAN
[ca]
default_ca = own
[own]
dir = .
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
"""


class TestCA:
    """Root -> intermediate -> leaves, made with openssl in directory d."""

    __test__ = False

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ext.cnf").write_text(_EXT)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1000\n")
        (self.dir / "issued").mkdir(exist_ok=True)
        self._cache = {}
        self.root = self.dir / "root.pem"
        self.root_key = self.dir / "root.key"
        self.intermediate = self.dir / "int.pem"
        self.intermediate_key = self.dir / "int.key"
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.root_key,
                      "-out", self.root, "-subj", "/O=Bridgehead Tests/CN=Bridgehead Test Root CA",
                      "-days", "3650", "-config", "ext.cnf", "-extensions", "v3_ca")
        self._openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                      self.intermediate_key, "-out", "int.csr",
                      "-subj", "/O=Bridgehead Tests/CN=Bridgehead Test Intermediate CA")
        self._openssl("x509", "-req", "-in", "int.csr", "-CA", self.root, "-CAkey", self.root_key,
                      "-set_serial", "2", "-days", "3650", "-out", self.intermediate,
                      "-extfile", "ext.cnf", "-extensions", "v3_ca")

    def _openssl(self, *args, san="DNS:unused.invalid"):
        env = dict(os.environ, BH_SAN=san)
        p = subprocess.run(["openssl", *map(str, args)], cwd=self.dir, env=env,
                           capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"openssl {' '.join(map(str, args))}: {p.stderr.decode(errors='replace')}")
        return p

    def _new_leaf(self, tag, name, sans, sign):
        key, csr, cert = (self.dir / f"{tag}.key", self.dir / f"{tag}.csr", self.dir / f"{tag}.pem")
        san = ",".join(f"DNS:{n}" for n in (sans or [name]))
        self._openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                      "-subj", f"/CN={name}")
        sign(csr, cert, san)
        chain = self.dir / f"{tag}.chain.pem"
        chain.write_bytes(cert.read_bytes() + self.intermediate.read_bytes())
        return Leaf(key, cert, chain, name)

    def _cached(self, tag, make):
        if tag not in self._cache:
            self._cache[tag] = make()
        return self._cache[tag]

    def leaf(self, name=SMART_HOST, sans=None):
        """A valid leaf for name, signed by the intermediate."""
        tag = "leaf-" + re.sub(r"[^A-Za-z0-9.-]", "_", name + "-" + ",".join(sans or []))

        def sign(csr, cert, san):
            self._openssl("x509", "-req", "-in", csr, "-CA", self.intermediate,
                          "-CAkey", self.intermediate_key, "-CAcreateserial", "-days", "825",
                          "-out", cert, "-extfile", "ext.cnf", "-extensions", "leaf", san=san)
        return self._cached(tag, lambda: self._new_leaf(tag, name, sans, sign))

    def expired(self, name=SMART_HOST):
        """A leaf for name, signed by the intermediate, expired in 2020."""
        tag = "expired-" + name

        def sign(csr, cert, san):
            self._openssl("ca", "-batch", "-config", "ext.cnf", "-cert", self.intermediate,
                          "-keyfile", self.intermediate_key, "-in", csr, "-out", cert,
                          "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                          "-extfile", "ext.cnf", "-extensions", "leaf", "-notext", san=san)
        return self._cached(tag, lambda: self._new_leaf(tag, name, None, sign))

    def selfsigned(self, name=SMART_HOST):
        """A self-signed leaf for name (no CA involved)."""
        tag = "selfsigned-" + name

        def make():
            key, cert = self.dir / f"{tag}.key", self.dir / f"{tag}.pem"
            self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                          "-out", cert, "-subj", f"/CN={name}", "-days", "825",
                          "-addext", f"subjectAltName=DNS:{name}",
                          "-addext", "extendedKeyUsage=serverAuth,clientAuth")
            return Leaf(key, cert, cert, name)
        return self._cached(tag, make)


_CA = None
_CA_LOCK = threading.Lock()


def get_test_ca():
    """The test CA of this process (made once, removed at exit)."""
    global _CA
    with _CA_LOCK:
        if _CA is None:
            d = tempfile.mkdtemp(prefix="bh-testca-")
            atexit.register(shutil.rmtree, d, True)
            _CA = TestCA(d)
        return _CA


# ---------------------------------------------------------------- relay set-up helpers

def connector_conf(fh, tls="may", ca=None, match=None, name="out", retry="1s",
                   lifetime=None, extra=()):
    """[queue] and [connector NAME] (address space *) toward fake host fh."""
    lines = ["[queue]", f"retry_schedule = {retry}"]
    if lifetime:
        lines.append(f"queue_lifetime = {lifetime}")
    lines += ["", f"[connector {name}]", "address_space = *",
              f"smart_hosts = {fh.address if isinstance(fh, FakeHost) else fh}",
              f"tls = {tls}"]
    if ca is not None:
        lines.append(f"tls_ca_file = {ca}")
    if match is not None:
        lines.append(f"tls_match = {match}")
    lines += list(extra)
    return "\n".join(lines) + "\n"


def events(srv, qid, kind=None):
    """Tracking events of message qid (of one kind)."""
    return [e for e in srv.tracking()
            if e.get("id") == qid and (kind is None or e.get("event") == kind)]


def wait_event(srv, qid, kind, timeout=30, n=1):
    """Waits for the n-th tracking event `kind` of qid; returns them all."""
    deadline = time.time() + timeout
    while True:
        evs = events(srv, qid, kind)
        if len(evs) >= n:
            return evs
        if time.time() >= deadline:
            raise AssertionError(f"no {n} '{kind}' event(s) for {qid} within {timeout}s; "
                                 f"tracking: {events(srv, qid)!r}")
        time.sleep(0.05)


def submit(srv, sender="sender@example.org", rcpts=("rcpt@example.net",),
           content=b"Subject: test\r\n\r\nbody\r\n"):
    """One message through the relay's listener; returns its queue id."""
    c = srv.client()
    try:
        c.ehlo()
        qid = c.mail(sender=sender, rcpts=rcpts, content=content)
        c.quit()
    finally:
        c.close()
    return qid


def installed_cert(srv):
    """Path of the certificate the relay has installed now."""
    return srv.state_dir / "pki" / "current" / "cert.pem"


# ---------------------------------------------------------------- pytest plugin

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test, run only with BRIDGEHEAD_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BRIDGEHEAD_SLOW") == "1":
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def test_ca():
    return get_test_ca()


@pytest.fixture
def fakehost():
    made = []

    def make(*args, **kw):
        fh = FakeHost(*args, **kw)
        made.append(fh)
        return fh
    yield make
    for fh in made:
        fh.close()
