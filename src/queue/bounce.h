/*
 * bounce: delivery status notifications (RFC 3464, RFC 3461) for the
 * recipients of a queued message that failed (or were relayed to a next
 * hop without DSN support while NOTIFY=SUCCESS was asked), queued as new
 * messages from the null sender to the original envelope sender.
 *
 *   bounce_wanted()  does a recipient get a notice for this outcome?
 *                    Never for the null sender (RFC 5321 6.1: no bounce
 *                    of a bounce), never under NOTIFY=NEVER, on failure
 *                    only when NOTIFY is absent or names FAILURE, on a
 *                    relay only when it names SUCCESS.  Header fields
 *                    (Return-Path, From) never decide anything here.
 *   bounce_format()  the notice as text: a multipart/report;
 *                    report-type=delivery-status message with a
 *                    human-readable part, a message/delivery-status part,
 *                    and the original as message/rfc822 (RET=FULL or no
 *                    RET; only its header section when it is larger than
 *                    BOUNCE_FULL_MAX, said in the notice) or
 *                    text/rfc822-headers (RET=HDRS).  CRLF line ends.
 *   bounce_queue()   format it and commit it through the spool with
 *                    sender <> and the original sender as recipient; the
 *                    callback gets the new envelope once it is durable.
 *
 * Every peer-supplied text (replies, addresses) is made 7-bit and one
 * line before it enters a header field of the report; an
 * internationalised recipient address is kept as UTF-8 and reported the
 * RFC 6533 way (utf-8 address type, message/global-delivery-status,
 * message/global).
 */
#ifndef BH_QUEUE_BOUNCE_H
#define BH_QUEUE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue/envelope.h"

struct spool;

/* Originals larger than this are returned as their header section only. */
#define BOUNCE_FULL_MAX (1024 * 1024)
/* A header section longer than this is cut (and the notice says so). */
#define BOUNCE_HEADERS_MAX (256 * 1024)

enum bounce_outcome {
	BOUNCE_FAILED,	/* Action: failed */
	BOUNCE_RELAYED, /* Action: relayed (next hop without DSN) */
};

struct bounce_rcpt {
	size_t rcpt; /* index into env->rcpts */
	enum bounce_outcome outcome;
	const char *status;	/* enhanced code "5.1.1"; NULL or "": default */
	const char *remote_mta; /* next hop name, or NULL */
	const char *diagnostic; /* "550 5.1.1 no such user", or NULL */
};

struct bounce {
	const char *reporting_mta;  /* [server] name */
	const struct envelope *env; /* the original message */
	const char *content_path;   /* its stored content */
	const struct bounce_rcpt *rcpts;
	size_t n_rcpts;
	time_t now;
};

bool bounce_wanted(const struct envelope *env, size_t rcpt,
		   enum bounce_outcome outcome);

/*
 * A malloc'd text and its length, or NULL with errno (the original cannot
 * be read, ENOMEM).  boundary: the MIME boundary to use (tests), or NULL
 * for one made from the queue id and the time.
 */
char *bounce_format(const struct bounce *b, const char *boundary, size_t *len);

/* The notice's envelope (valid during the call); error 0 or an errno. */
typedef void bounce_queued_cb(void *arg, const struct envelope *dsn, int error);

/*
 * 0: the commit is under way and cb runs later on the loop, exactly once.
 * -1 with errno: nothing was queued and cb never runs.  Needs a spool
 * opened with an event base.
 */
int bounce_queue(struct spool *spool, const struct bounce *b,
		 bounce_queued_cb *cb, void *arg);

#endif
