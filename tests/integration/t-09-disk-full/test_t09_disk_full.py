"""
t-09 disk-full: the queue's fault-injection seam (BRIDGEHEAD_FAULT in the
server's environment: spool_write:ENOSPC, spool_fsync:EIO,
spool_rename:EIO) makes every commit fail the way a full or broken disk
would.

Checked: the final dot gets `452 4.3.1` for ENOSPC and `451 4.3.0` for EIO
-- never 250, never 5xx; nothing of the message is left in queue/active or
queue/incoming; no `received` tracking event; the session and the server go
on (RSET/NOOP on the same connection, a new session gets 220); after a
clean stop queue/incoming/ is empty (nothing of the refused messages
leaked; the spool's stock of empty files is removed at close).
"""

import uuid

import pytest

import bhtest

FAULTS = [
    ("spool_write:ENOSPC", 452, "4.3.1"),
    ("spool_fsync:EIO", 451, "4.3.0"),
    ("spool_rename:EIO", 451, "4.3.0"),
]


@pytest.mark.parametrize("fault,code,enhanced", FAULTS, ids=[f for f, _, _ in FAULTS])
def test_disk_fault_answers_4xx_and_leaves_nothing(server, fault, code, enhanced):
    srv = server(env={"BRIDGEHEAD_FAULT": fault})
    c = srv.client()
    c.ehlo()
    for attempt in range(2):
        tag = f"disk-fault-{uuid.uuid4().hex}".encode()
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<user@example.com>", 250)
        c.expect("DATA", 354)
        c.send(bhtest.data_block(b"Subject: disk\r\nX-Tag: " + tag + b"\r\n\r\n"
                                 + b"some text\r\n" * 2000))
        r = c.reply(timeout=30)
        assert (r.code, r.enhanced) == (code, enhanced), f"{fault}, message {attempt + 1}: want {code} {enhanced}, got {r}"
        assert srv.spool_files("active") == [], f"{fault}: left in active/: {srv.spool_files('active')}"
        left = srv.files_containing(tag)
        assert not left, f"{fault}: the refused message is still in the spool: {left}"
    c.expect("RSET", 250)
    c.expect("NOOP", 250)
    c.quit()
    assert srv.queue_ids() == []
    assert [e for e in srv.tracking() if e.get("event") == "received"] == []
    # The server keeps serving.
    again = srv.client()
    again.ehlo()
    again.quit()
    assert srv.running()
    # A clean stop leaves incoming/ empty: no file of a refused message leaked.
    assert srv.stop() == 0
    assert srv.spool_files("incoming") == [], srv.spool_files("incoming")
