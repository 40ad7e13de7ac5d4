"""
C27 -- Greeting delay and very slow peers.

The relay's outbound timeouts are fixed (greeting 5 min, reply to the final
dot 10 min), so the long waits of the case are scaled down where the case
allows it and kept at full length in tests marked `slow` (run with
BRIDGEHEAD_SLOW=1).
  - A: the fake host accepts, waits 3 s, sends "220-a\\r\\n", waits 2 s,
    sends "220 b\\r\\n" (slow: 30 s and 10 s): the relay sends nothing before
    the final 220 line and delivers.
  - B: tarpit, every reply one byte per second with short replies (slow:
    one byte every 2 s): delivered -- the relay's timeouts are per read,
    not a short overall deadline (the session lasts over 30 s).
  - C (slow): the host never sends a byte: the relay gives up (greeting
    timeout, at most about 5 minutes), the message stays queued with a
    `deferred` event and is delivered by the retry.
  - D (slow): the reply to the final dot comes after 8 minutes: the relay
    waits (RFC 5321 4.5.3.2.6: 10 minutes) and the message is delivered
    once, never bounced.
  - E (inbound, command_timeout = 5s, max_sessions_per_ip = 20): a client
    sending its EHLO one byte a second is dropped with 421 4.4.2 after
    the command timeout; 200 silent connections from 127.0.0.2 get at most
    20 banners; meanwhile a normal client's message is received and
    delivered.
"""

import socket
import threading
import time

import pytest

import bhtest
import fakehost as F

pytest_plugins = ["fakehost"]


def deliver_through(server, fh, content, timeout):
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1s"))
    qid = F.submit(srv, content=content)
    ev = F.wait_event(srv, qid, "delivered", timeout=timeout)[0]
    tx = fh.wait_complete(1, timeout=10)[0]
    assert bhtest.split_received(tx.content)[1] == content
    assert len(fh.complete()) == 1, fh.transactions()
    assert F.events(srv, qid, "bounced") == []
    bhtest.wait_until(lambda: srv.queue_ids() == [], 10, what="an empty queue")
    return srv, qid, ev, tx


@pytest.mark.parametrize("first,second", [
    (3, 2),
    pytest.param(30, 10, marks=pytest.mark.slow),
])
def test_a_greeting_delay(server, fakehost, first, second):
    fh = fakehost(default=F.Script(F.Sleep(first), F.Send(b"220-a\r\n"), F.Sleep(second),
                                   F.Send(b"220 b\r\n"), F.Esmtp(greet=False)))
    srv, qid, ev, tx = deliver_through(server, fh, b"Subject: c27 A\r\n\r\nlate greeting\r\n",
                                       timeout=first + second + 30)
    s = tx.session
    greeting_done = [t for t, w, d in s.log if w == "H<" and d == b"220 b\r\n"][0]
    assert s.first_time("R>") >= greeting_done, "the relay spoke before the last greeting line"
    assert s.number == 0, f"the relay gave up on the delayed greeting: {fh.sessions}"


@pytest.mark.parametrize("per_byte", [
    1.0,
    pytest.param(2.0, marks=pytest.mark.slow),
])
def test_b_tarpit(server, fakehost, per_byte):
    fh = fakehost(default=F.Esmtp(trickle=per_byte, greeting=b"220 x\r\n", ehlo_reply=b"250 x\r\n",
                                  mail_reply=b"250 ok\r\n", rcpt_reply=b"250 ok\r\n",
                                  data_reply=b"354 go\r\n", dot_reply=b"250 ok\r\n"))
    srv, qid, ev, tx = deliver_through(server, fh, b"Subject: c27 B\r\n\r\ntarpit\r\n",
                                       timeout=60 * per_byte + 60)
    s = tx.session
    assert s.number == 0, f"the relay gave up on the tarpit: {fh.sessions}"
    last = [t for t, w, d in s.log if w == "H<"][-1]
    assert last - s.started >= 30 * per_byte, "the tarpit was not slow?"


@pytest.mark.slow
def test_c_silent_host(server, fakehost):
    fh = fakehost(plan=[F.Script(F.Drain(420))])
    srv = server(extra_conf=F.connector_conf(fh, tls="none", retry="1s"))
    content = b"Subject: c27 C\r\n\r\nsilent host\r\n"
    qid = F.submit(srv, content=content)
    deferred = F.wait_event(srv, qid, "deferred", timeout=360)[0]
    first = fh.wait_sessions(1, timeout=30)[0]
    assert first.closed_by == "peer", f"the relay did not give up: {first}"
    assert first.received() == b"", f"the relay spoke before any greeting: {first.received()!r}"
    assert first.ended - first.started <= 330, "gave up later than the 5-minute greeting timeout"
    assert "time" in (deferred.get("reply") or "").lower(), deferred
    F.wait_event(srv, qid, "delivered", timeout=30)
    assert len(fh.complete()) == 1
    assert F.events(srv, qid, "bounced") == []


@pytest.mark.slow
def test_d_eight_minutes_for_the_final_reply(server, fakehost):
    def late(s, tx):
        time.sleep(480)
        return b"250 2.0.0 ok\r\n"
    fh = fakehost(default=F.Esmtp(dot_reply=late))
    srv, qid, ev, tx = deliver_through(server, fh, b"Subject: c27 D\r\n\r\nslow dot\r\n", timeout=560)
    assert ev["reply"].startswith("250 2.0.0 ok"), ev
    assert tx.session.number == 0 and len(fh.transactions()) == 1, fh.transactions()


def slow_ehlo(port, result):
    """Sends the EHLO line one byte a second; records replies and timing."""
    c = bhtest.Client(port)
    got, t0 = b"", time.monotonic()
    try:
        for b in b"EHLO client.example.org\r\n":
            c.send(bytes([b]))
            kind, data = c.wait_input(1.0)
            got += data
            if kind == "eof":
                break
        else:
            kind, data = c.wait_input(5.0)
            got += data
        if kind != "eof":
            kind = "eof" if c.closed_within(3) else kind
        result.update(got=got, closed=(kind == "eof"), seconds=time.monotonic() - t0)
    finally:
        c.close()


def flood(port, n, result):
    socks, banners = [], 0
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        for s in socks:
            s.settimeout(2)
            try:
                if s.recv(512).startswith(b"220"):
                    banners += 1
            except OSError:
                pass
        result.update(connected=len(socks), banners=banners)
        time.sleep(2)
    finally:
        for s in socks:
            s.close()


def test_e_slow_and_idle_clients(server, fakehost):
    fh = fakehost()
    srv = server(listener_options={"command_timeout": "5s", "max_sessions_per_ip": "20"},
                 extra_conf=F.connector_conf(fh, tls="none"))
    slow, flooded = {}, {}
    threads = [threading.Thread(target=slow_ehlo, args=(srv.port, slow)),
               threading.Thread(target=flood, args=(srv.port, 200, flooded))]
    for t in threads:
        t.start()
    time.sleep(1)
    content = b"Subject: c27 E\r\n\r\nmeanwhile\r\n"
    qid = F.submit(srv, content=content)
    F.wait_event(srv, qid, "delivered", timeout=30)
    for t in threads:
        t.join(60)
    assert flooded["banners"] <= 20, f"{flooded['banners']} idle connections from one address served"
    assert slow.get("closed"), f"the slow client was not dropped: {slow}"
    assert b"421 4.4.2" in slow["got"], f"no 421 4.4.2 for the slow client: {slow}"
    assert slow["seconds"] < 20, f"dropped only after {slow['seconds']:.1f}s (command timeout 5s)"
    assert bhtest.split_received(fh.wait_complete(1)[0].content)[1] == content
