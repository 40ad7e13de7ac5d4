"""
C18 -- DSN parameters: accept them, keep them, act right when the next hop
has no DSN.

Intake side (passing the parameters on, or making "relayed"/failure
notices, is delivery: not in this release): EHLO lists DSN; every command
of the case gets 250 (`ORCPT=rfc822;root` is valid xtext, `+2B` is the
xtext of `+`); the envelope keeps RET=HDRS, ENVID=QQ314159, and each
recipient's own NOTIFY and ORCPT unchanged (xtext as sent; the addr-type
keyword's case may be normalised).
"""

import bhtest


def test_dsn_parameters_kept(server):
    srv = server()
    c = srv.client()
    assert "DSN" in c.ehlo().keywords()
    c.expect("MAIL FROM:<sender@example.org> RET=HDRS ENVID=QQ314159", 250)
    c.expect("RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net", 250)
    c.expect("RCPT TO:<b@example.net> NOTIFY=NEVER", 250)
    c.expect("RCPT TO:<c@example.net> ORCPT=rfc822;root", 250)
    c.expect("RCPT TO:<d@example.net> notify=delay ORCPT=RFC822;d+2Bx@example.net", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
    qid = bhtest.queue_id(c.reply())
    c.quit()

    env = srv.envelope(qid)
    assert str(env.ret).upper() == "HDRS", f"RET: {env.ret!r}"
    assert env.envid == "QQ314159", f"ENVID: {env.envid!r}"
    assert env.addresses == ["a@example.net", "b@example.net", "c@example.net", "d@example.net"], env

    def orcpt(r):
        if r["orcpt"] is None:
            return None
        kind, _, xtext = r["orcpt"].partition(";")
        return kind.lower() + ";" + xtext
    got = [(r["notify"], orcpt(r)) for r in env.rcpts]
    assert got == [
        (["FAILURE", "SUCCESS"], "rfc822;a@example.net"),
        (["NEVER"], None),
        ([], "rfc822;root"),
        (["DELAY"], "rfc822;d+2Bx@example.net"),
    ], got
