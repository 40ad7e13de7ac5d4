"""
One server per queue: a second `serve` on the same state_dir (another
port, or the same one) is refused before it touches the queue, and the
first server's transactions in progress are not disturbed.
"""

import subprocess
import bhtest


def test_second_server_on_same_state_dir_is_refused(server):
    first = server()
    c = bhtest.Client(first.port)
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")

    # Same state_dir, another listener port.
    other = first.conf_path.parent / "other.conf"
    text = first.conf_path.read_text().replace(
        f":{first.port}", f":{bhtest.free_port()}")
    other.write_text(text)
    p = subprocess.run([first.binary, "serve", "-c", str(other), "--foreground"],
                       capture_output=True, timeout=30, env=first._env())
    assert p.returncode == 1, p
    assert b"in use by another running server" in p.stderr, p.stderr

    # The first server's message in flight still commits.
    c.send(b"second half\r\n.\r\n")
    reply = c.reply()
    assert reply.code == 250, reply
    qid = bhtest.queue_id(reply)
    assert qid in [m["id"] for m in first.queue_list()]
    c.quit()
