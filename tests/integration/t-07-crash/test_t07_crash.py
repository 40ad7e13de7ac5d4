"""
t-07 crash: kill -9 while mail is coming in (DESIGN.md "Queue and
durability", case C28).

Several client threads send messages with unique Message-IDs without pause,
half of them over STARTTLS.  The server is killed with SIGKILL at random
moments (BH_CRASH_ROUNDS times, default 12, each after 0.2-1.5 s) and
restarted on the same state directory.  Every message that got `250` is
recorded with its queue id and the SHA-256 of its content.  At the end the
server is killed and restarted once more, and:

  - every acknowledged message is in `queue list`, whole (the stored content
    after the Received: header hashes equal);
  - every message in the queue, acknowledged or not, is one that was sent
    and is whole (never truncated);
  - every queue entry has its content and envelope; `queue show` reads them;
  - recovery emptied queue/incoming/ (only fresh, empty files of the
    spool's stock may appear there) and queue/corrupt/ has nothing;
  - every line of the tracking log is JSON.
"""

import hashlib
import os
import random
import re
import socket
import ssl
import threading
import time
import uuid

import bhtest

ROUNDS = int(os.environ.get("BH_CRASH_ROUNDS", "12"))
WORKERS = 4


def make_message(worker, n, rnd):
    mid = f"{worker}.{n}.{uuid.uuid4().hex}@crash.example.org"
    lines = rnd.randint(1, 3000)
    body = b"".join(b"line %06d of message %s %s\r\n" % (i, mid.encode(), b"x" * rnd.randint(0, 60))
                    for i in range(lines))
    content = (f"From: sender@example.org\r\nTo: user@example.com\r\n"
               f"Message-ID: <{mid}>\r\nSubject: crash {n}\r\n\r\n").encode() + body
    return mid, content


class Traffic:
    def __init__(self, srv):
        self.srv = srv
        self.lock = threading.Lock()
        self.sent = {}       # message id -> sha256 of every message ever sent
        self.acked = {}      # queue id -> (message id, sha256)
        self.errors = []     # unexpected replies (not connection loss)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(w,), daemon=True)
                        for w in range(WORKERS)]

    def worker(self, w):
        rnd = random.Random(w * 7919 + int(time.time()))
        n = 0
        while not self.stop.is_set():
            try:
                c = bhtest.Client(self.srv.port, timeout=10)
            except (OSError, bhtest.ConnectionClosed, socket.timeout, ssl.SSLError):
                time.sleep(0.02)
                continue
            except AssertionError as e:
                with self.lock:
                    self.errors.append(f"banner: {e}")
                time.sleep(0.05)
                continue
            try:
                c.ehlo()
                if w % 2:
                    c.starttls()
                    c.ehlo()
                for _ in range(rnd.randint(1, 4)):
                    if self.stop.is_set():
                        break
                    n += 1
                    mid, content = make_message(w, n, rnd)
                    digest = hashlib.sha256(content).hexdigest()
                    with self.lock:
                        self.sent[mid] = digest
                    qid = c.mail(sender="sender@example.org", rcpts=("user@example.com",),
                                 content=content)
                    with self.lock:
                        self.acked[qid] = (mid, digest)
                c.quit()
            except (OSError, bhtest.ConnectionClosed, socket.timeout, ssl.SSLError):
                pass    # the server was killed under us
            except AssertionError as e:
                with self.lock:
                    self.errors.append(str(e))
            finally:
                c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def message_id(content):
    m = re.search(rb"(?im)^Message-ID: <([^>]+)>\r\n", content.split(b"\r\n\r\n", 1)[0] + b"\r\n")
    return m.group(1).decode() if m else None


def test_kill9_while_receiving(server):
    srv = server()
    rnd = random.Random()
    with Traffic(srv) as traffic:
        for _ in range(ROUNDS):
            time.sleep(rnd.uniform(0.2, 1.5))
            srv.kill()
            srv.start()
        time.sleep(rnd.uniform(0.2, 1.5))
    before = srv.spool_files("incoming")
    srv.kill()
    srv.start()

    assert not traffic.errors, "unexpected replies while running:\n" + "\n".join(traffic.errors[:20])
    assert len(traffic.acked) >= ROUNDS, f"only {len(traffic.acked)} messages acknowledged in {ROUNDS} rounds"

    srv.check_incoming_recovered(before)
    assert srv.spool_files("corrupt") == [], f"files moved to corrupt/: {srv.spool_files('corrupt')}"

    ids = srv.queue_ids()
    assert len(ids) == len(set(ids)), "queue list repeats ids"
    missing = sorted(set(traffic.acked) - set(ids))
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"

    active = set(srv.spool_files("active"))
    for qid in ids:
        assert f"{qid}.msg" in active and f"{qid}.env" in active, f"{qid}: half-written queue entry"
    stray = {f.rsplit(".", 1)[0] for f in active} - set(ids)
    assert not stray, f"files in active/ that queue list does not show: {sorted(stray)[:5]}"

    for qid in ids:
        _, content = bhtest.split_received(srv.message(qid))
        mid = message_id(content)
        assert mid in traffic.sent, f"{qid}: stored message has unknown Message-ID {mid!r}"
        assert hashlib.sha256(content).hexdigest() == traffic.sent[mid], f"{qid} ({mid}): stored content truncated or changed"
        if qid in traffic.acked:
            assert traffic.acked[qid][0] == mid, f"{qid}: holds {mid}, but was acknowledged for {traffic.acked[qid][0]}"

    for qid in rnd.sample(ids, min(40, len(ids))):
        env = srv.envelope(qid)
        assert env.addresses == ["user@example.com"], f"{qid}: {env}"
    srv.tracking()
    print(f"{ROUNDS} kills, {len(traffic.sent)} messages sent, {len(traffic.acked)} acknowledged, "
          f"{len(ids)} queued")
