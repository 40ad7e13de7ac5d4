/*
 * envelope: what the queue knows about a message besides its content, and
 * its on-disk text format (readable with cat; see docs/queue-format.md).
 *
 *   envelope_format()  the text form, versioned, ending in an end marker.
 *   envelope_parse()   the reverse; refuses unknown versions, missing end
 *                      marker (a torn write), malformed lines.
 *   envelope_clear()   free what an envelope owns.
 *   envelope_add_rcpt(), envelope_add_attempt()  grow the lists.
 *   envelope_notify_words()  NOTIFY bits as the RFC 3461 words.
 *   envelope_rcpt_state_name(), envelope_body_name(), envelope_ret_name():
 *                      the words the text format uses, for display.
 *   envelope_state()   "held", "deferred" or "active", for queue listings
 *                      and status counters (one definition for all).
 *   envelope_time_format()  a time_t as RFC 3339 UTC ("...T17:00:00Z").
 *
 * Every string is owned by the envelope (malloc'd).  Values may hold any
 * byte except NUL (quoted local parts, UTF-8): the format escapes them.
 */
#ifndef BH_QUEUE_ENVELOPE_H
#define BH_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ENVELOPE_VERSION 1
#define ENVELOPE_ID_MAX 32

enum envelope_rcpt_state {
	ENVELOPE_RCPT_PENDING,
	ENVELOPE_RCPT_DELIVERED,
	ENVELOPE_RCPT_FAILED,
};

struct envelope_rcpt {
	char *address;			/* "local@domain" wire form (quoted) */
	unsigned notify;		/* SMTP_NOTIFY_* bits, 0 if none */
	char *orcpt;			/* "rfc822;xtext" or NULL */
	enum envelope_rcpt_state state;
	char *last_reply;		/* last reply for this recipient or NULL */
};

struct envelope_attempt {
	time_t at;
	char *host;			/* next hop, or NULL */
	char *reply;			/* what happened */
};

struct envelope {
	char id[ENVELOPE_ID_MAX + 1];
	time_t received;		/* when the 250 was due */
	char *sender;			/* wire form; "" for the null path */
	int body;			/* enum smtp_body */
	bool smtputf8;			/* needs SMTPUTF8 (content-decided) */
	int ret;			/* enum smtp_ret */
	char *envid;			/* xtext or NULL */
	uint64_t size;			/* bytes of the stored message */
	char *message_id;		/* or NULL */
	char *listener;			/* which listener took it */
	char *client_addr;		/* "192.0.2.7" / "2001:db8::1" */
	unsigned client_port;
	char *helo;			/* EHLO/HELO name as given */
	char *tls_version;		/* "TLSv1.3" or NULL: no TLS */
	char *tls_cipher;		/* or NULL */
	time_t next_attempt;		/* 0: as soon as possible */
	bool held;
	struct envelope_rcpt *rcpts;
	size_t n_rcpts;
	struct envelope_attempt *attempts;
	size_t n_attempts;
};

/* Returns a malloc'd NUL-terminated text and its length, or NULL (ENOMEM). */
char *envelope_format(const struct envelope *env, size_t *len);

/* 0 on success; -1 and a sentence in err.  *env must be zeroed first. */
int envelope_parse(const char *text, size_t len, struct envelope *env,
		   char *err, size_t errlen);

void envelope_clear(struct envelope *env);

/* Copies the strings.  0 or -1 (ENOMEM). */
int envelope_add_rcpt(struct envelope *env, const char *address,
		      unsigned notify, const char *orcpt);
int envelope_add_attempt(struct envelope *env, time_t at, const char *host,
			 const char *reply);

/*
 * "SUCCESS,FAILURE" (RFC 3461 words, in the order NEVER, SUCCESS, FAILURE,
 * DELAY), "" for 0.  Bits other than the four SMTP_NOTIFY_* ones are not
 * stored.  Returns buf; 32 bytes are always enough.
 */
#define ENVELOPE_NOTIFY_WORDS_MAX 32
const char *envelope_notify_words(unsigned notify, char *buf, size_t len);
const char *envelope_rcpt_state_name(enum envelope_rcpt_state state);
const char *envelope_body_name(int body);	/* "none", "7bit", ... */
const char *envelope_ret_name(int ret);		/* "none", "full", "hdrs" */

/*
 * "held" when held; "deferred" when an attempt was made or the next one is
 * later than now; else "active".
 */
const char *envelope_state(const struct envelope *env, time_t now);

/* "2026-12-03T17:00:00Z" into buf (at least 21 bytes); returns buf. */
#define ENVELOPE_TIME_MAX 32
const char *envelope_time_format(time_t t, char *buf, size_t len);

#endif
