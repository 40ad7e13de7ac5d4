/*
 * scheduler: when each queued message is tried, along which routes, and
 * what its results do to the queue (retries, bounces, removal).
 *
 *   scheduler_new()       an empty index on the loop.  Routing and
 *                         delivery come in as functions (ops): the server
 *                         passes route_lookup/route_key and smtpc_deliver,
 *                         the unit tests pass fakes.
 *   scheduler_load()      at start, after spool_recover(): every message
 *                         with pending recipients, due at its next_attempt.
 *   scheduler_queued()    the smtpd hook (smtpd_queued_cb): a message just
 *                         committed, due now.
 *   scheduler_set_conf()  a reloaded configuration for the next attempts.
 *   scheduler_flush()     every message (id NULL) or one, due now.
 *   scheduler_stop()      no new attempt from now on (shutting down).
 *   scheduler_in_flight() delivery jobs running.
 *   scheduler_free()      after spool_close() (which runs the callbacks
 *                         of envelope rewrites still in flight).
 *
 * A due message is read back from its envelope (the file is the truth: a
 * `queue delete` from the command line makes spool_load or spool_update
 * fail with ENOENT and the message is dropped from the index).  Its
 * pending recipients are grouped by route, one delivery job per group.
 * Results: DELIVERED → delivered (tracking "delivered"); PERMFAIL → failed
 * ("bounced") and a notice (queue/bounce); TEMPFAIL → stays pending
 * ("deferred").  Once every job of the message is back: nothing pending →
 * the message is removed (after its notice is safely queued); else the
 * attempt is recorded, the next one set by the retry schedule, and the
 * envelope rewritten (spool_update_async: on the spool's commit pool,
 * batched with the commits; the loop does not wait).  Until that rewrite
 * is back the message is neither tried nor flushed; if it fails, the
 * failure is logged and the message kept (the old envelope may bring an
 * early retry or a recipient tried twice, never a loss); ENOENT (deleted
 * meanwhile) drops it.  After queue_lifetime the pending recipients fail
 * with "expired" and status 4.4.7.  A message is never in two attempts at
 * once; at most SCHEDULER_MAX_JOBS jobs run at a time (a message with
 * several routes may pass the bound by its number of routes).
 */
#ifndef BH_QUEUE_SCHEDULER_H
#define BH_QUEUE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "queue/envelope.h"
#include "smtpc/smtpc.h"

struct event_base;
struct spool;
struct scheduler;

#define SCHEDULER_MAX_JOBS 100

struct scheduler_ops {
	/*
	 * The route of a recipient domain: its key (route_key) into key, and
	 * the connector that carries it (NULL: MX).  0, or -1 when the key
	 * does not fit.
	 */
	int (*route)(const struct conf *conf, const char *domain, char *key,
		     size_t keylen, const struct conf_connector **connector);
	/* Run a job (smtpc_deliver); cb exactly once, possibly at once. */
	void (*deliver)(void *deliver_arg, const struct smtpc_job *job,
			smtpc_done_cb *cb, void *cb_arg);
	void *deliver_arg;
	/* conf_retry_delay(). */
	unsigned (*retry_delay)(const struct conf *conf, unsigned attempt);
};

/* conf must stay valid until scheduler_set_conf() replaces it. */
struct scheduler *scheduler_new(struct event_base *base,
				const struct conf *conf, struct spool *spool,
				const struct scheduler_ops *ops);
/* 0, or -1 with errno (the queue cannot be read). n: messages indexed. */
int scheduler_load(struct scheduler *s, size_t *n);
void scheduler_queued(void *arg, const struct envelope *env);
void scheduler_set_conf(struct scheduler *s, const struct conf *conf);
/* Number of messages made due (0: none, or no such id in the index). */
size_t scheduler_flush(struct scheduler *s, const char *id);
void scheduler_stop(struct scheduler *s);
size_t scheduler_in_flight(const struct scheduler *s);
size_t scheduler_messages(const struct scheduler *s);
void scheduler_free(struct scheduler *s);

/*
 * The domain of a stored recipient address (wire form, quotes kept): the
 * part after the last '@' outside a quoted string.  NULL if there is none.
 */
const char *scheduler_rcpt_domain(const char *address);

#endif
