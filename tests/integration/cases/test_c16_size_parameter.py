"""
C16 -- SIZE: declared too big, declared too small, malformed.

With max_message_size = 10M (EHLO lists `SIZE 10485760`):
  A: `SIZE=20000000` gets 552 5.3.4 at MAIL; no transaction, so RCPT 503.
  B: `SIZE=1000` then 12 MiB of 76-character lines: no reply while the data
     arrives, 552 5.3.4 after the final dot, nothing queued, resident memory
     grows by less than 8 MiB (the stream is not held), and the next
     transaction on the same connection gets its normal replies.
  C: SIZE=abc, SIZE=-1, SIZE=, SIZE=184467440737095516160, SIZE=1 SIZE=2
     each get 501 5.5.4 (no crash, no wrap-around); SIZE=0 gets 250.
"""

import threading
import time

import bhtest

MiB = 1024 * 1024


def test_a_declared_too_big(server):
    srv = server()
    c = srv.client()
    r = c.ehlo()
    assert "SIZE 10485760" in [t.upper() for t in r.texts[1:]], r
    c.expect("MAIL FROM:<sender@example.org> SIZE=20000000", 552, "5.3.4")
    c.expect("RCPT TO:<rcpt@example.net>", 503)
    c.quit()


def test_b_declared_too_small(server):
    srv = server(env=bhtest.lean_allocator_env())
    warm = srv.client()
    warm.ehlo()
    warm_id = warm.mail()
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
    try:
        c = srv.client()
        c.ehlo()
        c.expect("MAIL FROM:<sender@example.org> SIZE=1000", 250)
        c.expect("RCPT TO:<rcpt@example.net>", 250)
        c.expect("DATA", 354)
        line = b"abcdefghij" * 7 + b"klmn\r\n"     # 76 characters and CRLF
        mib = line * (MiB // len(line))
        c.send(b"Subject: too big\r\n\r\n")
        for _ in range(12):
            c.send(mib)
        kind, data = c.wait_input(0.5)
        assert kind == "quiet", f"reply before the end of data: {kind} {data!r}"
        c.send(b".\r\n")
        r = c.reply(timeout=60)
    finally:
        done.set()
        watcher.join()
    assert (r.code, r.enhanced) == (552, "5.3.4"), f"12 MiB with SIZE=1000: {r}"
    assert srv.queue_ids() == [warm_id]
    growth = (peak[0] - base) / 1024
    assert growth < 8, f"VmRSS grew by {growth:.1f} MiB while refusing a 12 MiB message"
    qid = c.mail(content=b"Subject: next\r\n\r\nfine\r\n")
    c.quit()
    assert sorted(srv.queue_ids()) == sorted([warm_id, qid])


def test_c_malformed_sizes(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    for bad in ("SIZE=abc", "SIZE=-1", "SIZE=", "SIZE=184467440737095516160", "SIZE=1 SIZE=2"):
        c.expect(f"MAIL FROM:<sender@example.org> {bad}", 501, "5.5.4")
        c.expect("RSET", 250)
    c.expect("MAIL FROM:<sender@example.org> SIZE=0", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.quit()
    assert srv.running()
