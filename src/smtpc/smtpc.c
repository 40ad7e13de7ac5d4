/*
 * smtpc: the delivery engine (see smtpc.h): jobs, destinations with their
 * concurrency limits and connection pools, and the walk over next hops.
 *
 * A destination is one plan key ("connector:NAME", "via:NAME",
 * "mx:DOMAIN") under one configuration generation.  It counts its open
 * connections (connecting, busy or idle in its pool) against
 * max_connections; jobs beyond the limit wait in its FIFO.  A connection
 * that finished a job goes straight to the next waiting job of its
 * destination (RSET, then MAIL), else to the pool, where it is QUIT after
 * its idle timeout (the session's) or at the limit of messages per
 * connection.  A reload starts a new generation: old destinations take no
 * new jobs, their idle connections are closed, and they go away with
 * their last connection.
 *
 * Every job's callback runs exactly once and always from the loop (a
 * zero-delay event when the outcome is known at once).
 */
#include "smtpc/smtpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "smtpc/plan.h"
#include "smtpc/session.h"
#include "smtpc/tlspolicy.h"
#include "util/log.h"

struct dest;

struct job {
	struct job *prev, *next; /* all jobs */
	struct job *wnext;	 /* the destination's wait FIFO */
	struct smtpc *smtpc;
	struct dest *dest;
	struct smtpc_job job;
	smtpc_done_cb *cb;
	void *arg;
	struct smtpc_txn txn;
	struct smtpc_rcpt_result *results;
	char (*replies)[SMTPC_REPLY_MAX];
	char *final;
	struct smtpc_walk *walk;
	struct smtpc_sess *sess;
	bool holds_slot;
	bool reused; /* the session came from the pool */
	struct smtpc_hop last_hop;
	bool have_hop;
	struct event *ev_later;
	enum smtpc_status later_status;
	char later_enhanced[16];
	char reason[SMTPC_REPLY_MAX];
	char tls_note[SMTPC_REPLY_MAX];
};

struct dest {
	struct dest *next;
	struct smtpc *smtpc;
	unsigned gen;
	struct smtpc_plan plan;
	unsigned conns;
	struct smtpc_sess *idle[64];
	size_t n_idle;
	struct job *whead, *wtail;
};

struct smtpc {
	struct event_base *base;
	const struct conf *conf;
	struct dns *dns;
	struct smtpc_tls *tls;
	struct smtpc_sess_list sessions;
	struct dest *dests;
	struct job *jobs;
	unsigned gen;
	bool closing;
};

static void job_next_hop(struct job *j);
static void dest_kick(struct dest *d);
static void job_sess_cb(struct smtpc_sess *s, enum smtpc_sess_event ev,
			void *arg);

static void __attribute__((format(printf, 3, 4)))
say(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------- destinations */

static void
dest_free_if_done(struct dest *d)
{
	struct smtpc *e = d->smtpc;

	if (d->gen == e->gen || d->conns > 0 || d->whead != NULL)
		return;
	for (struct dest **pp = &e->dests; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	smtpc_plan_clear(&d->plan);
	free(d);
}

static void
dest_idle_remove(struct dest *d, struct smtpc_sess *s)
{
	for (size_t i = 0; i < d->n_idle; i++) {
		if (d->idle[i] == s) {
			d->idle[i] = d->idle[--d->n_idle];
			return;
		}
	}
}

/* A connection of d is gone: its slot may start a waiting job. */
static void
dest_release(struct dest *d)
{
	d->conns--;
	dest_kick(d);
	dest_free_if_done(d);
}

static void
idle_sess_cb(struct smtpc_sess *s, enum smtpc_sess_event ev, void *arg)
{
	struct dest *d = arg;

	(void)ev; /* only FAILED can come from an idle session */
	dest_idle_remove(d, s);
	smtpc_sess_close(s);
	dest_release(d);
}

static void
dest_close_idle(struct dest *d)
{
	while (d->n_idle > 0) {
		struct smtpc_sess *s = d->idle[--d->n_idle];
		smtpc_sess_close(s);
		d->conns--;
	}
}

static struct dest *
dest_get(struct smtpc *e, const struct smtpc_job *job, char *err, size_t errlen)
{
	struct smtpc_plan plan;

	if (smtpc_plan_make(&plan, e->conf, job->connector, job->domain, err,
			    errlen) == -1)
		return NULL;
	for (struct dest *d = e->dests; d != NULL; d = d->next) {
		if (d->gen == e->gen && strcmp(d->plan.key, plan.key) == 0) {
			smtpc_plan_clear(&plan);
			return d;
		}
	}
	struct dest *d = calloc(1, sizeof *d);
	if (d == NULL) {
		smtpc_plan_clear(&plan);
		say(err, errlen, "out of memory");
		return NULL;
	}
	d->smtpc = e;
	d->gen = e->gen;
	d->plan = plan;
	d->next = e->dests;
	e->dests = d;
	return d;
}

/* ------------------------------------------------------------------ jobs */

static const char *
status_word(enum smtpc_status st)
{
	switch (st) {
	case SMTPC_DELIVERED:
		return "delivered";
	case SMTPC_PERMFAIL:
		return "bounced";
	case SMTPC_TEMPFAIL:
		break;
	}
	return "deferred";
}

static void
job_free(struct job *j)
{
	struct smtpc *e = j->smtpc;

	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		e->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	smtpc_walk_free(j->walk);
	if (j->ev_later != NULL)
		event_free(j->ev_later);
	free(j->results);
	free(j->replies);
	free(j->final);
	free(j);
}

/* Report, log and forget the job.  Its slot, if any, was handled. */
static void
job_report(struct job *j, struct smtpc_sess *s)
{
	struct smtpc_result res = {.rcpts = j->results};
	const struct smtpc_hop *hop =
		s != NULL ? smtpc_sess_hop(s)
			  : (j->have_hop ? &j->last_hop : NULL);

	if (hop != NULL) {
		res.host = hop->name;
		res.addr = hop->addr;
	}
	if (s != NULL) {
		res.tls_version = smtpc_sess_tls_version(s);
		res.tls_cipher = smtpc_sess_tls_cipher(s);
		res.tls_peer = smtpc_sess_tls_peer(s);
		res.tls_verified = smtpc_sess_tls_verified(s);
		res.client_cert = smtpc_sess_client_cert(s);
		res.peer_dsn = j->txn.peer_dsn;
	}
	if (j->tls_note[0] != '\0' && res.tls_version == NULL) {
		res.tls_note = j->tls_note;
		log_info("%s: %s", j->job.env->id, j->tls_note);
	}
	const struct envelope *env = j->job.env;
	for (size_t i = 0; i < j->job.n_rcpts; i++) {
		const struct smtpc_rcpt_result *r = &j->results[i];
		char port[16] = "";
		if (hop != NULL)
			say(port, sizeof port, ":%u", hop->port);
		log_info("%s: %s to=<%s> relay=%s%s%s%s%s tls=%s%s%s "
			 "verified=%s reply=\"%s\"",
			 env->id, status_word(r->status),
			 env->rcpts[j->job.rcpts[i]].address,
			 hop != NULL ? hop->name : "none",
			 hop != NULL ? "[" : "", hop != NULL ? hop->ip : "",
			 hop != NULL ? "]" : "", port,
			 res.tls_version != NULL ? res.tls_version : "none",
			 res.tls_cipher != NULL ? "/" : "",
			 res.tls_cipher != NULL ? res.tls_cipher : "",
			 res.tls_verified ? "yes" : "no", r->reply);
	}
	j->cb(j->arg, &j->job, &res);
	job_free(j);
}

/* Every recipient gets one local result, then the job is reported. */
static void
job_fail_all(struct job *j, enum smtpc_status st, const char *enhanced,
	     const char *reason)
{
	for (size_t i = 0; i < j->job.n_rcpts; i++)
		smtpc_result_set(&j->results[i], j->replies[i], st, 0, enhanced,
				 reason);
	job_report(j, NULL);
}

static void
job_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd;
	(void)what;
	job_fail_all(j, j->later_status, j->later_enhanced, j->reason);
}

/*
 * The same, from the loop: the outcome may be known inside
 * smtpc_deliver() (a connector without hosts, no socket), and the
 * callback must never run from there.
 */
static void
job_fail_later(struct job *j, enum smtpc_status st, const char *enhanced,
	       const char *reason)
{
	struct timeval now = {0, 0};

	j->later_status = st;
	say(j->later_enhanced, sizeof j->later_enhanced, "%s", enhanced);
	if (reason != j->reason)
		say(j->reason, sizeof j->reason, "%s", reason);
	if (j->ev_later == NULL)
		j->ev_later = evtimer_new(j->smtpc->base, job_later_cb, j);
	if (j->ev_later == NULL || evtimer_add(j->ev_later, &now) == -1) {
		/* No event to wait for: report now rather than never. */
		job_fail_all(j, st, enhanced, reason);
		return;
	}
}

/* The job gives back its slot (no session kept). */
static void
job_release_slot(struct job *j)
{
	if (j->holds_slot) {
		j->holds_slot = false;
		struct dest *d = j->dest;
		j->dest = NULL;
		dest_release(d);
	}
}

static void
job_walk_resume(void *arg)
{
	job_next_hop(arg);
}

/* Connect to the next hop; at the end, every recipient fails. */
static void
job_next_hop(struct job *j)
{
	struct smtpc *e = j->smtpc;
	struct dest *d = j->dest;
	struct smtpc_hop hop;
	char err[SMTPC_REPLY_MAX];

	if (j->walk == NULL) {
		j->walk = smtpc_walk_new(e->dns, &d->plan, job_walk_resume, j);
		if (j->walk == NULL) {
			job_release_slot(j);
			job_fail_later(j, SMTPC_TEMPFAIL, "4.3.0",
				       "out of memory");
			return;
		}
	}
	for (;;) {
		enum smtpc_walk_status st = smtpc_walk_next(j->walk, &hop);
		if (st == SMTPC_WALK_PENDING)
			return;
		if (st == SMTPC_WALK_END) {
			const char *enh, *why;
			enum smtpc_status fs =
				smtpc_walk_failure(j->walk, &enh, &why);
			char reason[SMTPC_REPLY_MAX];
			say(reason, sizeof reason, "%s", why);
			job_release_slot(j);
			job_fail_later(j, fs, enh, reason);
			return;
		}
		j->last_hop = hop;
		j->have_hop = true;
		bool skip = d->plan.policy.tls == CONF_CONNECTOR_TLS_MAY &&
			    smtpc_tls_failed_recently(e->tls, hop.addr);
		if (skip)
			say(j->tls_note, sizeof j->tls_note,
			    "STARTTLS not tried with %s: a TLS handshake with "
			    "it failed within the last hour; sent in clear "
			    "text",
			    hop.addr);
		j->sess = smtpc_sess_new(e->base, &e->sessions, e->tls, &hop,
					 &d->plan.policy, skip, false,
					 job_sess_cb, j, err, sizeof err);
		if (j->sess != NULL)
			return;
		log_warn("%s: %s", j->job.env->id, err);
		smtpc_walk_set_reason(j->walk, err);
	}
}

static void
job_start_txn(struct job *j)
{
	j->txn = (struct smtpc_txn){
		.env = j->job.env,
		.content_path = j->job.content_path,
		.rcpts = j->job.rcpts,
		.n_rcpts = j->job.n_rcpts,
		.results = j->results,
		.replies = j->replies,
		.final = j->final,
	};
	smtpc_sess_start(j->sess, &j->txn);
}

/* Run a job that holds a slot: a pooled connection, else a new one. */
static void
job_run(struct job *j)
{
	struct dest *d = j->dest;

	j->holds_slot = true;
	if (d->n_idle > 0) {
		struct smtpc_sess *s = d->idle[--d->n_idle];
		d->conns--; /* the job's slot is the connection's */
		j->sess = s;
		j->reused = true;
		smtpc_sess_set_cb(s, job_sess_cb, j);
		job_start_txn(j);
		return;
	}
	j->reused = false;
	job_next_hop(j);
}

/* Slots free: start waiting jobs. */
static void
dest_kick(struct dest *d)
{
	while (d->whead != NULL &&
	       (d->conns < d->plan.max_conns || d->n_idle > 0)) {
		struct job *j = d->whead;
		d->whead = j->wnext;
		if (d->whead == NULL)
			d->wtail = NULL;
		j->wnext = NULL;
		d->conns++; /* with an idle one, job_run takes it over */
		job_run(j);
	}
}

/* The job is done with its session: pass it on, pool it or close it. */
static void
job_leave_session(struct job *j, struct smtpc_sess *s)
{
	struct dest *d = j->dest;
	struct smtpc *e = j->smtpc;

	j->sess = NULL;
	j->holds_slot = false;
	j->dest = NULL;
	if (!smtpc_sess_reusable(s) || d->gen != e->gen || e->closing ||
	    d->n_idle == sizeof d->idle / sizeof d->idle[0]) {
		smtpc_sess_close(s);
		dest_release(d);
		return;
	}
	/* Into the pool; a waiting job takes it at once. */
	d->idle[d->n_idle++] = s;
	smtpc_sess_set_cb(s, idle_sess_cb, d);
	dest_kick(d);
}

static void
job_sess_cb(struct smtpc_sess *s, enum smtpc_sess_event ev, void *arg)
{
	struct job *j = arg;

	switch (ev) {
	case SMTPC_SESS_READY:
		job_start_txn(j);
		return;
	case SMTPC_SESS_TXN_DONE: {
		struct dest *d = j->dest;
		job_report(j, s);
		/* j is gone; hand the session on. */
		struct job tmp = {.dest = d, .smtpc = d->smtpc};
		job_leave_session(&tmp, s);
		return;
	}
	case SMTPC_SESS_FAILED: {
		bool clear = smtpc_sess_retry_clear(s);
		if (j->walk != NULL)
			smtpc_walk_set_reason(j->walk, smtpc_sess_reason(s));
		if (clear)
			say(j->tls_note, sizeof j->tls_note,
			    "TLS handshake with %s failed (%s); sent in clear "
			    "text",
			    j->last_hop.addr, smtpc_sess_reason(s));
		smtpc_sess_close(s);
		j->sess = NULL;
		if (j->reused) {
			/* A pooled connection broke: start afresh. */
			j->reused = false;
			job_next_hop(j);
			return;
		}
		if (clear) {
			/* "may": the same host again, in clear text (C22). */
			struct smtpc *e = j->smtpc;
			char err[SMTPC_REPLY_MAX];
			log_info("%s: TLS handshake with %s failed; trying "
				 "again without TLS",
				 j->job.env->id, j->last_hop.addr);
			j->sess = smtpc_sess_new(
				e->base, &e->sessions, e->tls, &j->last_hop,
				&j->dest->plan.policy, true, false, job_sess_cb,
				j, err, sizeof err);
			if (j->sess != NULL)
				return;
		}
		job_next_hop(j);
		return;
	}
	}
}

/* ---------------------------------------------------------------- public */

struct smtpc *
smtpc_new(struct event_base *base, const struct conf *conf, struct dns *dns,
	  char *err, size_t errlen)
{
	struct smtpc *e = calloc(1, sizeof *e);
	if (e == NULL) {
		say(err, errlen, "out of memory");
		return NULL;
	}
	e->base = base;
	e->conf = conf;
	e->dns = dns;
	e->tls = smtpc_tls_new(conf->state_dir);
	if (e->tls == NULL) {
		free(e);
		say(err, errlen, "out of memory");
		return NULL;
	}
	return e;
}

void
smtpc_set_conf(struct smtpc *e, const struct conf *conf)
{
	e->conf = conf;
	e->gen++;
	smtpc_tls_reset(e->tls, conf->state_dir);
	struct dest *next;
	for (struct dest *d = e->dests; d != NULL; d = next) {
		next = d->next;
		dest_close_idle(d);
		dest_free_if_done(d);
	}
}

void
smtpc_deliver(struct smtpc *e, const struct smtpc_job *job, smtpc_done_cb *cb,
	      void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	size_t n = job->n_rcpts;

	if (j == NULL ||
	    (j->results = calloc(n + 1, sizeof *j->results)) == NULL ||
	    (j->replies = calloc(n + 1, sizeof *j->replies)) == NULL ||
	    (j->final = calloc(n + 1, 1)) == NULL) {
		/* Nothing to report through: the scheduler's job stays
		 * in flight, so say it loudly. */
		log_warn("%s: out of memory starting a delivery", job->env->id);
		if (j != NULL) {
			free(j->results);
			free(j->replies);
			free(j->final);
			free(j);
		}
		panic("smtpc: out of memory");
	}
	j->smtpc = e;
	j->job = *job;
	j->cb = cb;
	j->arg = arg;
	j->next = e->jobs;
	if (e->jobs != NULL)
		e->jobs->prev = j;
	e->jobs = j;

	j->dest = e->closing ? NULL
			     : dest_get(e, job, j->reason, sizeof j->reason);
	if (e->closing)
		say(j->reason, sizeof j->reason, "shutting down");
	if (j->dest == NULL) {
		job_fail_later(j, SMTPC_TEMPFAIL, "4.3.0", j->reason);
		return;
	}
	struct dest *d = j->dest;
	if (d->n_idle > 0 || d->conns < d->plan.max_conns) {
		d->conns++;
		job_run(j);
		return;
	}
	if (d->wtail != NULL)
		d->wtail->wnext = j;
	else
		d->whead = j;
	d->wtail = j;
}

size_t
smtpc_sessions(const struct smtpc *e)
{
	return e->sessions.n;
}

void
smtpc_free(struct smtpc *e)
{
	if (e == NULL)
		return;
	e->closing = true;
	/* Jobs in flight: TEMPFAIL "shutting down", each reported once. */
	while (e->jobs != NULL) {
		struct job *j = e->jobs;
		if (j->sess != NULL) {
			smtpc_sess_free(j->sess);
			j->sess = NULL;
		}
		j->holds_slot = false;
		j->dest = NULL;
		job_fail_all(j, SMTPC_TEMPFAIL, "4.3.2", "shutting down");
	}
	while (e->sessions.head != NULL)
		smtpc_sess_free(e->sessions.head);
	while (e->dests != NULL) {
		struct dest *d = e->dests;
		e->dests = d->next;
		smtpc_plan_clear(&d->plan);
		free(d);
	}
	smtpc_tls_free(e->tls);
	free(e);
}
