/*
 * tracking: the message tracking log, state_dir/log/tracking.jsonl, one JSON
 * object per line (DESIGN.md "Logs"): ts (RFC 3339), event, id, message_id,
 * from, rcpt (array), connector, host, addr, reply, tls
 * ({"version","cipher","peer","verified"} or null; "client_certificate"
 * inside it when we presented one), and "tls_note" when mail went in clear
 * text under tls = may although TLS was tried (a failed handshake).
 *
 *   tracking_open()      open (create) the log for appending: 0, or -1
 *                        with errno.  Calling it again reopens (rotation).
 *   tracking_received()  the event for a message just committed.
 *   tracking_event()     any other event (delivered, deferred, deleted, ...).
 *   tracking_close().
 * Events while the log is not open are dropped; write errors are logged.
 *
 * Lines ("received" has size, client, helo, listener instead of
 * connector, host, addr, reply; every key is always present, null when
 * unknown):
 *   {"ts":"2026-12-03T17:00:00.123Z","event":"delivered","id":"...",
 *    "message_id":"<...>","from":"a@b","rcpt":["c@d"],"connector":"out",
 *    "host":"smarthost.example.net","addr":"203.0.113.10",
 *    "reply":"250 2.0.0 ok","tls":{"version":"TLSv1.3","cipher":"...",
 *    "peer":"CN=...","verified":true}}
 *
 * Each event is one write(2) of one line (O_APPEND), so lines never
 * interleave.  Strings are JSON-escaped; invalid UTF-8 is escaped too.
 */
#ifndef BH_QUEUE_TRACKING_H
#define BH_QUEUE_TRACKING_H

#include <stdbool.h>

#include "queue/envelope.h"

struct tracking_info {
	const char *event;		/* "delivered", "deferred", ... */
	const char *connector;		/* or NULL */
	const char *host;		/* or NULL */
	const char *addr;		/* or NULL */
	const char *reply;		/* or NULL */
	const char *const *rcpts;	/* or NULL: all recipients of env */
	size_t n_rcpts;
	const char *tls_version;	/* NULL: tls is null */
	const char *tls_cipher;
	const char *tls_peer;
	bool tls_verified;
	const char *tls_client_cert;	/* what we presented (subject, SANs) or NULL */
	const char *tls_note;		/* why the mail went in clear text, or NULL */
};

int tracking_open(const char *state_dir);
void tracking_received(const struct envelope *env);
void tracking_event(const struct envelope *env, const struct tracking_info *info);
void tracking_close(void);

#endif
