"""
t-08 limits: load and size limits that must not take the server down.

  - 300 concurrent idle sessions (from five loopback addresses, 60 each, so
    a per-address limit of 100 is not what is tested) all get their 220,
    and a normal transaction from another address is served meanwhile.
  - A 15 MiB message declared SIZE=1000 is read to the end without a reply,
    then refused with `552 5.3.4`; nothing is queued; the next transaction
    on the same connection works (case C16 B).
  - A client sending a 16 MiB line without LF in command mode gets
    `500 5.5.2` or `421`, and the server's resident memory (VmRSS) grows by
    less than 20 MiB meanwhile (case C07 C).
"""

import threading
import time

import bhtest

MiB = 1024 * 1024


class RssWatch:
    """Samples the server's VmRSS every few milliseconds in a thread."""

    def __init__(self, srv):
        self.srv = srv
        self.base = srv.rss_kib()
        self.peak = self.base
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.srv.rss_kib())
            except (OSError, AssertionError):
                return
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    @property
    def growth_mib(self):
        return (self.peak - self.base) / 1024


def test_300_idle_sessions_and_one_transaction(server):
    srv = server()
    idle = []
    try:
        for n in range(300):
            idle.append(bhtest.Client(srv.port, source=f"127.0.0.{2 + n // 60}", timeout=10))
        c = bhtest.Client(srv.port, source="127.0.1.1")
        c.ehlo()
        content = b"Subject: while 300 sessions idle\r\n\r\nserved\r\n"
        qid = c.mail(rcpts=("user@example.com",), content=content)
        c.quit()
        assert bhtest.split_received(srv.message(qid))[1] == content
        # The idle sessions are still there and answer.
        for s in idle[::30]:
            s.expect("NOOP", 250)
    finally:
        for s in idle:
            s.close()


def test_oversized_message_refused_after_dot(server):
    srv = server()
    c = srv.client()
    r = c.ehlo()
    assert any(t.upper() == "SIZE 10485760" for t in r.texts[1:]), f"EHLO lacks SIZE 10485760: {r}"
    c.expect("MAIL FROM:<sender@example.org> SIZE=1000", 250)
    c.expect("RCPT TO:<user@example.com>", 250)
    c.expect("DATA", 354)
    line = b"0123456789" * 7 + b"abcd\r\n"          # 76 characters
    chunk = b"Subject: big\r\n\r\n" + line * (MiB // len(line))
    for _ in range(14):
        c.send(chunk)
    kind, data = c.wait_input(0.5)
    assert kind == "quiet", f"server answered while data was arriving: {kind} {data!r}"
    c.send(chunk + b".\r\n")
    r = c.reply(timeout=60)
    assert (r.code, r.enhanced) == (552, "5.3.4"), f"15 MiB message: want 552 5.3.4, got {r}"
    assert srv.queue_ids() == []
    assert srv.files_containing(b"Subject: big\r\n") == []
    # The same connection goes on with a normal transaction.
    qid = c.mail(rcpts=("user@example.com",), content=b"Subject: after\r\n\r\nsmall\r\n")
    c.quit()
    assert srv.queue_ids() == [qid]


def test_memory_bounded_on_endless_command_line(server):
    srv = server(env=bhtest.lean_allocator_env())
    warm = srv.client()
    warm.ehlo()
    warm.mail(rcpts=("user@example.com",))
    warm.quit()

    c = srv.client()
    c.ehlo()
    block = b"A" * MiB
    with RssWatch(srv) as watch:
        try:
            for _ in range(16):
                c.send(block)
        except (BrokenPipeError, ConnectionResetError):
            pass    # a server that answered 421 and closed
        r = c.reply(timeout=30)
        time.sleep(0.2)
    assert r.code in (500, 421), f"16 MiB line: want 500 5.5.2 or 421, got {r}"
    if r.code == 500:
        assert r.enhanced == "5.5.2", f"want 500 5.5.2, got {r}"
    assert watch.growth_mib < 20, f"VmRSS grew by {watch.growth_mib:.1f} MiB ({watch.base} -> {watch.peak} KiB)"
    c.close()
    # The server still serves.
    other = srv.client()
    other.ehlo()
    other.quit()
