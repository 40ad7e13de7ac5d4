"""
C13 -- Null reverse-path and junk around the path.

Checked: `MAIL FROM:<>` 250, RCPT 250, DATA 354, 250, and the envelope
keeps the null sender (not MAILER-DAEMON, not `<@>`); `MAIL FROM:<>
SIZE=1000` 250; `RCPT TO:<>` 501 5.1.3; `RCPT TO:<postmaster>` 250;
`MAIL FROM:<>>>>>`, `MAIL FROM:<sender@example.org>>` and
`MAIL FROM:<sender@example.org> <other@example.org>` 501.  RSET between
the transactions.  (That no DSN is made for the null sender is the
delivery side: not in this release.)
"""

import bhtest


def test_null_sender_and_junk(server):
    srv = server()
    c = srv.client()
    c.ehlo()
    c.expect("MAIL FROM:<>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: notice\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.expect("RSET", 250)

    c.expect("MAIL FROM:<> SIZE=1000", 250)
    c.expect("RCPT TO:<>", 501, "5.1.3")
    c.expect("RCPT TO:<postmaster>", 250)
    c.expect("RSET", 250)

    for junk in ("MAIL FROM:<>>>>>", "MAIL FROM:<sender@example.org>>",
                 "MAIL FROM:<sender@example.org> <other@example.org>"):
        r = c.cmd(junk)
        assert r.code == 501, f"{junk!r}: want 501, got {r}"
        # Refused: no transaction is open.
        c.expect("RCPT TO:<rcpt@example.net>", 503)
        c.expect("RSET", 250)
    c.quit()

    assert srv.queue_ids() == [qid]
    env = srv.envelope(qid)
    assert env.sender == "", f"null sender stored as {env.sender!r}"
    ev = srv.tracking_event(qid)
    assert ev["from"] == "", f"tracking from for the null sender: {ev['from']!r}"
