"""
t-01 smtplib: Python's smtplib as a client, in clear text and with STARTTLS.

Checked for every message: the 250 to the final dot reads `queued as ID`;
`queue list` shows ID; the stored content is exactly what went over the
wire, de-stuffed, after one prepended Received: header; that header says
`with ESMTPS` and names the TLS version and cipher when TLS was used (and
`with ESMTP` otherwise); `queue show ID` gives the same TLS facts; the
tracking log has a `received` event with the id, from, rcpt array and a tls
object (null without TLS).  The last test sends all 128 corpus messages.
"""

import datetime
import email
import email.policy
import re
import smtplib

import pytest

import bhtest
from bhtest import CORPUS

SENDER = "a@example.org"
RCPT = "user@example.com"
HELO = "client.example.org"

HANDFUL = [
    "001-py-msg_01.eml",                          # bare LF
    "018-py-msg_26.eml",                          # CRLF, base64 attachment
    "041-mikel-mail-empty_group_lists.eml",       # lines starting with a dot
    "105-spamassassin-nice-crlf-endings.eml",
    "111-spamassassin-nice-spf6-received-spf-crlf2.eml",  # mixed line ends
    "121-rspamd-numeric_urls.eml",                # bare CR
]


class RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that remembers the bytes it sent as message and the
    reply to the final dot (sendmail() itself does not return it)."""

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        self.sent = msg if isinstance(msg, bytes) else None
        return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)

    def data(self, msg):
        code, text = super().data(msg)
        self.data_reply = (code, text)
        return code, text


def data_queue_id(smtp):
    code, text = smtp.data_reply
    assert code == 250, f"final dot: want 250, got {code} {text!r}"
    assert text.startswith(b"2.0.0"), f"final dot: want 2.0.0, got {text!r}"
    m = bhtest.QUEUE_ID_RE.search(text)
    assert m, f"no 'queued as ID' in {text!r}"
    return m.group(1).decode()


def connect(srv, tls):
    smtp = RecordingSMTP("127.0.0.1", srv.port, local_hostname=HELO, timeout=30)
    smtp.ehlo()
    if tls:
        assert smtp.has_extn("starttls"), "STARTTLS not offered with a certificate"
        smtp.starttls(context=bhtest.tls_client_context())
        smtp.ehlo()
        assert not smtp.has_extn("starttls"), "STARTTLS offered again inside TLS"
    return smtp


def mail_options(smtp, content):
    opts = []
    if any(b >= 0x80 for b in content):
        opts.append("BODY=8BITMIME")
        head = content.split(b"\r\n\r\n", 1)[0]
        if any(b >= 0x80 for b in head) and smtp.has_extn("smtputf8"):
            opts.append("SMTPUTF8")
    return opts


def expected_stored(sent):
    """What the server must store after its Received: header: the bytes
    sent (smtplib adds a final CRLF when missing)."""
    return sent if sent.endswith(b"\r\n") else sent + b"\r\n"


def header_message_id(content):
    head = content.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"(?im)^message-id:[ \t]*(.*(?:\r\n[ \t].*)*)", head)
    if not m:
        return None
    return re.sub(rb"\s+", b"", m.group(1)).decode("utf-8", "replace").strip("<>")


def check_received_header(header, tls):
    text = bhtest.unfold(header)
    assert f"by {bhtest.SERVER_NAME}" in text, f"Received: without 'by {bhtest.SERVER_NAME}': {text}"
    assert HELO in text, f"Received: does not name the EHLO name {HELO}: {text}"
    if tls:
        version, cipher = tls
        # RFC 3848 / RFC 6531 3.7.4: ESMTPS, or UTF8SMTPS when SMTPUTF8 was used.
        assert re.search(r"\bwith (?:ESMTPS|UTF8SMTPS)\b", text), f"TLS session but not 'with ESMTPS': {text}"
        assert version in text, f"Received: does not name {version}: {text}"
        assert cipher in text, f"Received: does not name the cipher {cipher}: {text}"
    else:
        assert re.search(r"\bwith (?:ESMTP|UTF8SMTP)(?![A-Z])", text), f"clear-text session but not 'with ESMTP': {text}"
        assert "TLS" not in text, f"clear-text session but Received: mentions TLS: {text}"


def check_queued(srv, qid, sent, tls, ids=None):
    """Everything t-01 asserts about one accepted message."""
    ids = ids if ids is not None else srv.queue_ids()
    assert qid in ids, f"queue list does not show {qid}: {ids}"
    header, rest = bhtest.split_received(srv.message(qid))
    want = expected_stored(sent)
    assert rest == want, (
        f"{qid}: stored content differs from what was sent "
        f"(got {len(rest)} bytes, want {len(want)}; first difference at "
        f"{next((i for i, (a, b) in enumerate(zip(rest, want)) if a != b), min(len(rest), len(want)))})")
    assert rest.count(b"Received:") == want.count(b"Received:"), "more than one Received: added"
    check_received_header(header, tls)

    env = srv.envelope(qid)
    if tls:
        assert (env.tls_version, env.tls_cipher) == tls, f"queue show TLS facts: got {env}, want {tls}"
    else:
        assert not env.tls_version and not env.tls_cipher, f"queue show has TLS facts for clear text: {env}"

    ev = srv.tracking_event(qid, "received")
    datetime.datetime.fromisoformat(ev["ts"].replace("Z", "+00:00"))
    assert ev["from"] == SENDER, f"tracking from: got {ev['from']!r}"
    assert ev["rcpt"] == [RCPT], f"tracking rcpt: got {ev['rcpt']!r}"
    if tls:
        assert isinstance(ev["tls"], dict), f"tracking tls: want object, got {ev['tls']!r}"
        assert (ev["tls"]["version"], ev["tls"]["cipher"]) == tls, f"tracking tls: got {ev['tls']!r}, want {tls}"
    else:
        assert "tls" in ev and ev["tls"] is None, f"tracking tls: want null, got {ev.get('tls')!r}"
    mid = header_message_id(want)
    if mid:
        assert (ev.get("message_id") or "").strip("<>") == mid, (
            f"tracking message_id: got {ev.get('message_id')!r}, want {mid!r}")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_send_message(server, tls):
    """send_message() of a handful of parsed corpus messages."""
    srv = server()
    smtp = connect(srv, tls)
    facts = (smtp.sock.version(), smtp.sock.cipher()[0]) if tls else None
    queued = []
    for name in HANDFUL:
        msg = email.message_from_bytes((CORPUS / name).read_bytes(), policy=email.policy.compat32)
        refused = smtp.send_message(msg, from_addr=SENDER, to_addrs=[RCPT],
                                    mail_options=mail_options(smtp, msg.as_bytes()))
        assert refused == {}
        queued.append((name, data_queue_id(smtp), smtp.sent))
    smtp.quit()
    ids = srv.queue_ids()
    assert len(set(q for _, q, _ in queued)) == len(HANDFUL), f"queue ids not unique: {queued}"
    for name, qid, sent in queued:
        check_queued(srv, qid, sent, facts, ids)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_sendmail_raw_bytes(server, tls):
    """sendmail() with raw corpus bytes in canonical CRLF form."""
    srv = server()
    smtp = connect(srv, tls)
    facts = (smtp.sock.version(), smtp.sock.cipher()[0]) if tls else None
    for name in HANDFUL:
        content = bhtest.canonical((CORPUS / name).read_bytes())
        smtp.sendmail(SENDER, [RCPT], content, mail_options(smtp, content))
        check_queued(srv, data_queue_id(smtp), content, facts)
    smtp.quit()


def test_whole_corpus(server):
    """All 128 corpus messages over four connections (two with STARTTLS),
    each stored intact."""
    files = sorted(CORPUS.glob("*.eml"))
    assert len(files) == 128, f"corpus has {len(files)} messages, want 128"
    srv = server()
    queued = []
    for part in range(4):
        tls = part % 2 == 1
        smtp = connect(srv, tls)
        facts = (smtp.sock.version(), smtp.sock.cipher()[0]) if tls else None
        for path in files[part::4]:
            content = bhtest.canonical(path.read_bytes())
            smtp.sendmail(SENDER, [RCPT], content, mail_options(smtp, content))
            queued.append((path.name, data_queue_id(smtp), content, facts))
        smtp.quit()
    ids = srv.queue_ids()
    assert len(ids) == 128, f"queue list shows {len(ids)} messages, want 128"
    assert len({q for _, q, _, _ in queued}) == 128, "queue ids not unique"
    for name, qid, content, facts in queued:
        try:
            check_queued(srv, qid, content, facts, ids)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
