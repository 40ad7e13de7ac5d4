"""
C07 -- Overlong command lines and input without line ends.

Checked:
  A: a 624-octet RCPT line gets 500 5.5.2 or 501 5.1.3 and the next RCPT
     gets 250; a 256-octet path with a 64-octet local part gets 250.
  B: a 512-octet prefix ending in `>` followed by `RCPT TO:<spy@...>` on
     the same line gets one 5xx reply only, and spy@example.net is never
     accepted (DATA then has no recipient).
  C: 16 MiB of `A` without CR or LF after EHLO: the server's resident
     memory grows by less than 8 MiB, the client gets 500 5.5.2 or 421, and a
     second client's transaction meanwhile is received normally.
"""

import threading
import time

import bhtest

MiB = 1024 * 1024


def test_a_overlong_rcpt_then_normal(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    line = b"RCPT TO:<" + b"a" * 600 + b"@example.net>"
    assert len(line) + 2 == 624
    r = c.cmd(line)
    assert (r.code, r.enhanced) in ((500, "5.5.2"), (501, "5.1.3")), f"624-octet RCPT: {r}"
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    local = "l" * 64
    domain = "a" * 58 + "." + "b" * 58 + "." + "c" * 59 + ".example.net"
    path = f"{local}@{domain}"
    assert len(path) + 2 == 256
    c.expect(f"RCPT TO:<{path}>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: c07 a\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()
    assert srv.envelope(qid).addresses == ["rcpt@example.net", path]


def test_b_overlong_line_never_split(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    first = b"RCPT TO:<" + b"a" * 490 + b"@example.net>"
    assert len(first) == 512
    r = c.cmd(first + b"RCPT TO:<spy@example.net>")
    assert 500 <= r.code <= 599, f"overlong line: want one 5xx, got {r}"
    kind, data = c.wait_input(0.5)
    assert kind == "quiet", f"a second reply to one line: {data!r}"
    r = c.cmd("DATA")
    assert r.code in (503, 554), f"DATA: spy@example.net must not have been accepted: {r}"
    c.quit()
    assert srv.queue_ids() == []


def test_c_endless_line_bounded_memory(server):
    srv = server(env=bhtest.lean_allocator_env())
    warm = srv.client()
    warm.ehlo()
    warm.mail()
    warm.quit()
    base = srv.rss_kib()
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], srv.rss_kib())
            except (OSError, AssertionError):
                return
            time.sleep(0.005)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    flooder = srv.client()
    flooder.ehlo()
    other_qid = []

    def other_client():
        o = srv.client()
        o.ehlo()
        other_qid.append(o.mail(content=b"Subject: meanwhile\r\n\r\nserved\r\n"))
        o.quit()
    other = threading.Thread(target=other_client)
    try:
        block = b"A" * MiB
        for n in range(16):
            if n == 4:
                other.start()
            flooder.send(block)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        r = flooder.reply(timeout=30)
    finally:
        other.join(60)
        time.sleep(0.2)
        done.set()
        watcher.join()
        flooder.close()
    assert r.code in (500, 421), f"16 MiB line: want 500 5.5.2 or 421, got {r}"
    if r.code == 500:
        assert r.enhanced == "5.5.2", r
    growth = (peak[0] - base) / 1024
    assert growth < 8, f"VmRSS grew by {growth:.1f} MiB ({base} -> {peak[0]} KiB)"
    assert other_qid and other_qid[0] in srv.queue_ids(), "the other client's message was not received"
