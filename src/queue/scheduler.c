/*
 * scheduler: the in-memory index of the queue and the delivery attempts
 * (see scheduler.h for the rules).
 *
 *   scheduler_new(), scheduler_load(), scheduler_queued(),
 *   scheduler_set_conf(), scheduler_flush(), scheduler_stop(),
 *   scheduler_in_flight(), scheduler_messages(), scheduler_free(),
 *   scheduler_rcpt_domain().
 *
 * Each indexed message is in one state:
 *
 *   WAITING   a timer runs until its next attempt
 *   READY     due, waiting for a job slot (the ready list, FIFO)
 *   RUNNING   its envelope is loaded and its jobs are out (or its notice
 *             is being committed)
 *   UPDATING  the attempt is over and its envelope is being rewritten
 *             on the spool's pool (spool_update_async): neither timed,
 *             nor ready, nor flushable until the result is back
 *   HELD      held: never tried until released (not yet by any command)
 *
 * The index (a list for order and a hash table by id) keeps only the
 * id, the due time and a timer; the envelope is
 * read from the spool when an attempt starts and dropped when it ends, so
 * a large queue costs little memory, and a message deleted from the
 * command line is noticed (ENOENT) instead of being resurrected.
 *
 * Order of writes when an attempt ends (at least once, never lost): a
 * notice is committed first; only then is the original removed or its
 * envelope rewritten.  A crash in between sends the notice again, never
 * loses it.  A notice that cannot be queued (disk full) puts its failed
 * recipients back to pending, so the next attempt fails and notifies
 * again.  Jobs start from a zero-time event, never from inside a job's
 * callback, so a burst of immediate failures does not recurse.
 */
#include "queue/scheduler.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "queue/bounce.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "util/log.h"

#define ROUTE_KEY_MAX 600
#define PATH_MAX_Q 4096
#define NOTIFY_SUCCESS 0x2 /* SMTP_NOTIFY_SUCCESS of src/smtp/command.h */

enum msg_state {
	MSG_WAITING,
	MSG_READY,
	MSG_RUNNING,
	MSG_UPDATING,
	MSG_HELD,
};

static const char *const msg_state_names[] = {"waiting", "ready", "running",
					      "updating", "held"};

/* A recipient to name in the notice; strings owned. */
struct sched_dsn {
	size_t rcpt;
	enum bounce_outcome outcome;
	char status[16];
	char *remote_mta;
	char *diagnostic;
};

struct sched_job {
	struct sched_msg *msg;
	char key[ROUTE_KEY_MAX];
	char *connector; /* owned copy, or NULL */
	char *domain;	 /* owned copy */
	size_t *rcpts;
	size_t n_rcpts;
	struct smtpc_job job;
};

struct sched_msg {
	TAILQ_ENTRY(sched_msg) all;
	TAILQ_ENTRY(sched_msg) ready;
	struct sched_msg *hnext; /* next in its hash bucket */
	struct scheduler *s;
	char id[ENVELOPE_ID_MAX + 1];
	time_t due;
	enum msg_state state;
	struct event *timer;

	/* While RUNNING. */
	struct envelope env;
	char *content_path;
	struct sched_job *jobs;
	size_t n_jobs;
	size_t jobs_out;
	bool dispatching;
	struct sched_dsn *dsn;
	size_t n_dsn;
	char *att_host;	 /* the next hop of the last deferral */
	char *att_reply; /* its reason */

	/* While UPDATING: the outcome to log and apply once it is back. */
	time_t next;
	size_t pending;
};

TAILQ_HEAD(msg_list, sched_msg);

struct scheduler {
	struct event_base *base;
	const struct conf *conf;
	struct spool *spool;
	struct scheduler_ops ops;
	struct msg_list all;
	struct msg_list ready;
	struct sched_msg **buckets; /* by id: n_buckets, a power of two */
	size_t n_buckets;
	size_t n_msgs;
	size_t in_flight;
	size_t updating; /* envelope rewrites out on the spool's pool */
	bool stopping;
	struct event *pump; /* starts READY messages from the loop */
};

static void sched_start(struct sched_msg *m);
static void sched_finish(struct sched_msg *m);

/* ------------------------------------------------------------ helpers */

const char *
scheduler_rcpt_domain(const char *address)
{
	const char *at = NULL;
	bool quoted = false;

	for (const char *p = address; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++; /* quoted-pair: the next byte is literal */
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
set_str(char **slot, const char *v)
{
	char *copy = dup_or_null(v);
	if (v != NULL && copy == NULL)
		return; /* out of memory: keep the old text */
	free(*slot);
	*slot = copy;
}

/* "550 5.1.1 text" from a result (the text may already hold the code). */
static void
reply_text(const struct smtpc_rcpt_result *r, char *buf, size_t len)
{
	const char *text = r->reply != NULL ? r->reply : "";
	char code[8];

	snprintf(code, sizeof code, "%d", r->code);
	bool has_enhanced =
		r->enhanced[0] != '\0' &&
		strncmp(text, r->enhanced, strlen(r->enhanced)) != 0;
	if (r->code == 0 && has_enhanced) /* a local reason with its code */
		snprintf(buf, len, "%s %s", r->enhanced, text);
	else if (r->code == 0 || strncmp(text, code, 3) == 0)
		snprintf(buf, len, "%s", text);
	else if (has_enhanced)
		snprintf(buf, len, "%d %s %s", r->code, r->enhanced, text);
	else
		snprintf(buf, len, "%d %s", r->code, text);
}

/* ------------------------------------------------------------ index */

/* FNV-1a: ids are random enough; this only spreads them. */
static size_t
id_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

static struct sched_msg **
bucket_of(struct scheduler *s, const char *id)
{
	return &s->buckets[id_hash(id) & (s->n_buckets - 1)];
}

/* Keep about one message per bucket: a large queue loads in linear time. */
static int
index_grow(struct scheduler *s)
{
	size_t n = s->n_buckets ? s->n_buckets * 2 : 256;
	struct sched_msg **b = calloc(n, sizeof *b);
	struct sched_msg *m;

	if (b == NULL)
		return -1;
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = n;
	TAILQ_FOREACH(m, &s->all, all)
	{
		struct sched_msg **slot = bucket_of(s, m->id);
		m->hnext = *slot;
		*slot = m;
	}
	return 0;
}

static void
index_remove(struct scheduler *s, struct sched_msg *m)
{
	for (struct sched_msg **p = bucket_of(s, m->id); *p != NULL;
	     p = &(*p)->hnext) {
		if (*p == m) {
			*p = m->hnext;
			return;
		}
	}
}

static void
sched_arm(struct sched_msg *m, time_t due)
{
	time_t now = time(NULL);
	struct timeval tv = {due > now ? due - now : 0, 0};

	m->due = due;
	m->state = MSG_WAITING;
	if (!m->s->stopping)
		evtimer_add(m->timer, &tv);
}

static void
sched_drop(struct sched_msg *m)
{
	struct scheduler *s = m->s;

	if (m->state == MSG_READY)
		TAILQ_REMOVE(&s->ready, m, ready);
	index_remove(s, m);
	TAILQ_REMOVE(&s->all, m, all);
	s->n_msgs--;
	event_free(m->timer);
	envelope_clear(&m->env);
	free(m->content_path);
	free(m);
}

static void
sched_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sched_msg *m = arg;
	struct scheduler *s = m->s;

	(void)fd;
	(void)what;
	if (s->stopping || m->state != MSG_WAITING)
		return;
	if (s->in_flight >= SCHEDULER_MAX_JOBS) {
		m->state = MSG_READY;
		TAILQ_INSERT_TAIL(&s->ready, m, ready);
		return;
	}
	sched_start(m);
}

/* Start READY messages while job slots are free. */
static void
sched_on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_msg *m;

	(void)fd;
	(void)what;
	while (!s->stopping && s->in_flight < SCHEDULER_MAX_JOBS &&
	       (m = TAILQ_FIRST(&s->ready)) != NULL) {
		TAILQ_REMOVE(&s->ready, m, ready);
		m->state = MSG_WAITING;
		sched_start(m);
	}
}

static struct sched_msg *
sched_find(struct scheduler *s, const char *id)
{
	if (s->n_buckets == 0)
		return NULL;
	for (struct sched_msg *m = *bucket_of(s, id); m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* Index a message, due at `due` (0: now). */
static int
sched_add(struct scheduler *s, const char *id, time_t due, bool held)
{
	if (sched_find(s, id) != NULL)
		return 0;
	if (s->n_msgs >= s->n_buckets && index_grow(s) < 0)
		return -1;
	struct sched_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		return -1;
	m->s = s;
	snprintf(m->id, sizeof m->id, "%s", id);
	m->timer = evtimer_new(s->base, sched_on_timer, m);
	if (m->timer == NULL) {
		free(m);
		errno = ENOMEM;
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->all, m, all);
	struct sched_msg **slot = bucket_of(s, m->id);
	m->hnext = *slot;
	*slot = m;
	s->n_msgs++;
	if (held)
		m->state = MSG_HELD;
	else
		sched_arm(m, due);
	return 0;
}

/* ---------------------------------------------------------- tracking */

static void
track(const struct sched_msg *m, const struct sched_job *j,
      const struct smtpc_result *res, const char *event, const char *reply,
      const char *const *rcpts, size_t n)
{
	struct tracking_info info = {
		.event = event,
		.connector = j != NULL ? j->connector : NULL,
		.host = res != NULL ? res->host : NULL,
		.addr = res != NULL ? res->addr : NULL,
		.reply = reply,
		.rcpts = rcpts,
		.n_rcpts = n,
	};
	if (res != NULL && res->tls_version != NULL) {
		info.tls_version = res->tls_version;
		info.tls_cipher = res->tls_cipher;
		info.tls_peer = res->tls_peer;
		info.tls_verified = res->tls_verified;
		info.tls_client_cert = res->client_cert;
	}
	if (res != NULL)
		info.tls_note = res->tls_note;
	tracking_event(&m->env, &info);
}

static const char *
status_event(enum smtpc_status st)
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

/*
 * One tracking event per outcome and reply: recipients of a job that got
 * the same answer share a line.
 */
static void
track_job(const struct sched_msg *m, const struct sched_job *j,
	  const struct smtpc_result *res)
{
	const char **names = calloc(j->n_rcpts, sizeof *names);
	bool *done = calloc(j->n_rcpts, sizeof *done);
	char reply[1200], other[1200];

	if (names == NULL || done == NULL) {
		free(names);
		free(done);
		log_warn("%s: tracking events lost: out of memory", m->id);
		return;
	}
	for (size_t k = 0; k < j->n_rcpts; k++) {
		if (done[k])
			continue;
		const struct smtpc_rcpt_result *r = &res->rcpts[k];
		size_t n = 0;
		reply_text(r, reply, sizeof reply);
		for (size_t q = k; q < j->n_rcpts; q++) {
			if (done[q] || res->rcpts[q].status != r->status)
				continue;
			reply_text(&res->rcpts[q], other, sizeof other);
			if (strcmp(reply, other) != 0)
				continue;
			done[q] = true;
			names[n++] = m->env.rcpts[j->rcpts[q]].address;
		}
		if (r->status == SMTPC_PERMFAIL && m->env.sender[0] == '\0') {
			/* C29: a bounce is never bounced; say so. */
			size_t l = strlen(reply);
			snprintf(reply + l, sizeof reply - l,
				 " (no notice, null sender)");
		}
		track(m, j, res, status_event(r->status), reply, names, n);
	}
	free(names);
	free(done);
}

/* ------------------------------------------------------------ results */

static void
add_dsn(struct sched_msg *m, size_t rcpt, enum bounce_outcome outcome,
	const char *status, const char *host, const char *diag)
{
	if (!bounce_wanted(&m->env, rcpt, outcome))
		return;
	struct sched_dsn *v = realloc(m->dsn, (m->n_dsn + 1) * sizeof *v);
	if (v == NULL) {
		log_warn("%s: out of memory: no notice for recipient %zu",
			 m->id, rcpt);
		return;
	}
	m->dsn = v;
	struct sched_dsn *d = &v[m->n_dsn++];
	memset(d, 0, sizeof *d);
	d->rcpt = rcpt;
	d->outcome = outcome;
	snprintf(d->status, sizeof d->status, "%s", status ? status : "");
	d->remote_mta = dup_or_null(host);
	d->diagnostic = dup_or_null(diag);
}

static void
free_dsn(struct sched_msg *m)
{
	for (size_t i = 0; i < m->n_dsn; i++) {
		free(m->dsn[i].remote_mta);
		free(m->dsn[i].diagnostic);
	}
	free(m->dsn);
	m->dsn = NULL;
	m->n_dsn = 0;
}

static void
apply_rcpt(struct sched_msg *m, size_t idx, const struct smtpc_rcpt_result *r,
	   const struct smtpc_result *res)
{
	struct envelope_rcpt *er = &m->env.rcpts[idx];
	char reply[1200];

	reply_text(r, reply, sizeof reply);
	set_str(&er->last_reply, reply);
	switch (r->status) {
	case SMTPC_DELIVERED:
		er->state = ENVELOPE_RCPT_DELIVERED;
		/* RFC 3461 / C18 (2): the next hop will not report success. */
		if ((er->notify & NOTIFY_SUCCESS) && !res->peer_dsn)
			add_dsn(m, idx, BOUNCE_RELAYED, "2.0.0", res->host,
				reply);
		break;
	case SMTPC_PERMFAIL:
		er->state = ENVELOPE_RCPT_FAILED;
		add_dsn(m, idx, BOUNCE_FAILED, r->enhanced, res->host, reply);
		break;
	case SMTPC_TEMPFAIL:
		set_str(&m->att_host, res->host);
		set_str(&m->att_reply, reply);
		break;
	}
}

static void
sched_job_done(void *arg, const struct smtpc_job *job,
	       const struct smtpc_result *res)
{
	struct sched_job *j = arg;
	struct sched_msg *m = j->msg;
	struct scheduler *s = m->s;
	size_t counts[3] = {0, 0, 0};

	(void)job;
	for (size_t k = 0; k < j->n_rcpts; k++) {
		apply_rcpt(m, j->rcpts[k], &res->rcpts[k], res);
		if ((unsigned)res->rcpts[k].status < 3)
			counts[res->rcpts[k].status]++;
	}
	track_job(m, j, res);
	log_info("%s: route=%s delivered=%zu deferred=%zu failed=%zu host=%s",
		 m->id, j->key, counts[SMTPC_DELIVERED], counts[SMTPC_TEMPFAIL],
		 counts[SMTPC_PERMFAIL], res->host != NULL ? res->host : "-");
	s->in_flight--;
	m->jobs_out--;
	if (!TAILQ_EMPTY(&s->ready) && !s->stopping)
		event_active(s->pump, EV_TIMEOUT, 0);
	if (m->jobs_out == 0 && !m->dispatching)
		sched_finish(m);
}

/* ------------------------------------------------------------ attempt */

static void
free_jobs(struct sched_msg *m)
{
	for (size_t i = 0; i < m->n_jobs; i++) {
		free(m->jobs[i].connector);
		free(m->jobs[i].domain);
		free(m->jobs[i].rcpts);
	}
	free(m->jobs);
	m->jobs = NULL;
	m->n_jobs = 0;
}

/* A recipient that cannot be routed fails at once, without a job. */
static void
fail_local(struct sched_msg *m, size_t idx, const char *status, const char *why)
{
	struct envelope_rcpt *er = &m->env.rcpts[idx];
	const char *name = er->address;
	char reply[512];

	snprintf(reply, sizeof reply, "%s%s", why,
		 m->env.sender[0] == '\0' ? " (no notice, null sender)" : "");
	er->state = ENVELOPE_RCPT_FAILED;
	set_str(&er->last_reply, why);
	track(m, NULL, NULL, "bounced", reply, &name, 1);
	add_dsn(m, idx, BOUNCE_FAILED, status, NULL, why);
}

static struct sched_job *
job_for(struct sched_msg *m, const char *key, const char *domain,
	const struct conf_connector *c)
{
	for (size_t i = 0; i < m->n_jobs; i++)
		if (strcasecmp(m->jobs[i].key, key) == 0)
			return &m->jobs[i];
	struct sched_job *v = realloc(m->jobs, (m->n_jobs + 1) * sizeof *v);
	if (v == NULL)
		return NULL;
	m->jobs = v;
	struct sched_job *j = &v[m->n_jobs];
	memset(j, 0, sizeof *j);
	snprintf(j->key, sizeof j->key, "%s", key);
	j->domain = strdup(domain);
	j->connector = c != NULL ? strdup(c->name) : NULL;
	if (j->domain == NULL || (c != NULL && j->connector == NULL)) {
		free(j->domain);
		free(j->connector);
		return NULL;
	}
	m->n_jobs++;
	return j;
}

static int
job_add_rcpt(struct sched_job *j, size_t idx)
{
	size_t *v = realloc(j->rcpts, (j->n_rcpts + 1) * sizeof *v);
	if (v == NULL)
		return -1;
	j->rcpts = v;
	j->rcpts[j->n_rcpts++] = idx;
	return 0;
}

/*
 * Group the pending recipients by route.  A route by MX (no connector, or
 * a connector with dns = yes) is also split per domain: the job names one
 * domain whose exchangers it looks up.  -1: out of memory.
 */
static int
group_rcpts(struct sched_msg *m)
{
	const struct conf *conf = m->s->conf;
	char key[ROUTE_KEY_MAX];

	for (size_t i = 0; i < m->env.n_rcpts; i++) {
		if (m->env.rcpts[i].state != ENVELOPE_RCPT_PENDING)
			continue;
		const char *domain =
			scheduler_rcpt_domain(m->env.rcpts[i].address);
		if (domain == NULL) {
			fail_local(m, i, "5.1.3",
				   "no domain in the address: this relay "
				   "delivers nothing locally");
			continue;
		}
		const struct conf_connector *c = NULL;
		if (m->s->ops.route(conf, domain, key, sizeof key, &c) < 0) {
			fail_local(m, i, "5.1.2",
				   "the domain is too long to "
				   "route");
			continue;
		}
		if (c == NULL || c->dns) {
			size_t l = strlen(key);
			snprintf(key + l, sizeof key - l, "/%s", domain);
			for (char *p = key + l; *p != '\0'; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
		}
		struct sched_job *j = job_for(m, key, domain, c);
		if (j == NULL || job_add_rcpt(j, i) < 0)
			return -1;
	}
	return 0;
}

static void
dispatch(struct sched_msg *m)
{
	struct scheduler *s = m->s;

	m->dispatching = true;
	m->jobs_out = m->n_jobs;
	s->in_flight += m->n_jobs;
	for (size_t i = 0; i < m->n_jobs; i++) {
		struct sched_job *j = &m->jobs[i];
		j->msg = m;
		j->job = (struct smtpc_job){
			.env = &m->env,
			.content_path = m->content_path,
			.rcpts = j->rcpts,
			.n_rcpts = j->n_rcpts,
			.domain = j->domain,
			.connector = j->connector,
		};
		s->ops.deliver(s->ops.deliver_arg, &j->job, sched_job_done, j);
	}
	m->dispatching = false;
	if (m->jobs_out == 0)
		sched_finish(m);
}

/* Every pending recipient fails: the queue lifetime is over. */
static void
expire(struct sched_msg *m, time_t now)
{
	char why[1400];
	const char *last_host =
		m->env.n_attempts > 0
			? m->env.attempts[m->env.n_attempts - 1].host
			: NULL;

	for (size_t i = 0; i < m->env.n_rcpts; i++) {
		struct envelope_rcpt *er = &m->env.rcpts[i];
		if (er->state != ENVELOPE_RCPT_PENDING)
			continue;
		const char *name = er->address;
		snprintf(why, sizeof why,
			 "4.4.7 message expired after %lld s in the queue%s%s",
			 (long long)(now - m->env.received),
			 er->last_reply != NULL ? "; last reply: " : "",
			 er->last_reply != NULL ? er->last_reply : "");
		er->state = ENVELOPE_RCPT_FAILED;
		track(m, NULL, NULL, "expired", why, &name, 1);
		add_dsn(m, i, BOUNCE_FAILED, "4.4.7", last_host, why);
		set_str(&er->last_reply, why);
	}
	log_info("%s: expired", m->id);
}

static void
sched_start(struct sched_msg *m)
{
	struct scheduler *s = m->s;
	char path[PATH_MAX_Q];

	m->state = MSG_RUNNING;
	memset(&m->env, 0, sizeof m->env);
	if (spool_load(s->spool, m->id, &m->env) < 0) {
		int e = errno;
		memset(&m->env, 0, sizeof m->env);
		if (e == ENOENT) {
			log_info("%s: no longer in the queue", m->id);
			sched_drop(m);
			return;
		}
		log_warn("%s: cannot read the envelope, trying later: %s",
			 m->id, strerror(e));
		sched_arm(m, time(NULL) + s->ops.retry_delay(s->conf, 0));
		return;
	}
	if (m->env.held) {
		envelope_clear(&m->env);
		m->state = MSG_HELD;
		return;
	}
	time_t now = time(NULL);
	if (spool_content_path(s->spool, m->id, path, sizeof path) != 0 ||
	    (m->content_path = strdup(path)) == NULL) {
		log_warn("%s: out of memory, trying later", m->id);
		envelope_clear(&m->env);
		sched_arm(m, now + s->ops.retry_delay(s->conf, 0));
		return;
	}
	if (now - m->env.received > (time_t)s->conf->queue_lifetime_s) {
		expire(m, now);
		sched_finish(m);
		return;
	}
	if (group_rcpts(m) < 0) {
		log_warn("%s: out of memory grouping recipients, trying "
			 "later",
			 m->id);
		free_jobs(m);
		set_str(&m->att_reply, "out of memory");
		sched_finish(m);
		return;
	}
	dispatch(m);
}

/* ------------------------------------------------------------ the end */

static void
end_attempt(struct sched_msg *m)
{
	free_jobs(m);
	free_dsn(m);
	free(m->att_host);
	free(m->att_reply);
	m->att_host = m->att_reply = NULL;
	free(m->content_path);
	m->content_path = NULL;
	envelope_clear(&m->env);
	memset(&m->env, 0, sizeof m->env);
}

static time_t
next_due(const struct sched_msg *m, time_t now)
{
	const struct scheduler *s = m->s;
	unsigned attempt =
		m->env.n_attempts > 0 ? (unsigned)(m->env.n_attempts - 1) : 0;
	time_t next = now + (time_t)s->ops.retry_delay(s->conf, attempt);
	time_t deadline =
		m->env.received + (time_t)s->conf->queue_lifetime_s + 1;

	/* Expire on time rather than at the next scheduled retry. */
	if (next > deadline)
		next = deadline > now ? deadline : now;
	return next;
}

/*
 * The envelope rewrite is back (UPDATING).  Failed: the index keeps the
 * message and its next time; the file keeps the old envelope, so the
 * next attempt may come early or try a recipient again, never lose it.
 */
static void
sched_update_result(struct sched_msg *m, int error)
{
	char ts[ENVELOPE_TIME_MAX];

	if (error == ENOENT) {
		log_info("%s: deleted during its attempt; dropped", m->id);
		sched_drop(m);
		return;
	}
	if (error != 0)
		log_warn("%s: cannot rewrite the envelope (recipients may be "
			 "tried again): %s",
			 m->id, strerror(error));
	log_info("%s: deferred pending=%zu next=%s", m->id, m->pending,
		 envelope_time_format(m->next, ts, sizeof ts));
	sched_arm(m, m->next);
}

/* spool_update_async()'s callback, on the loop. */
static void
sched_updated(void *arg, const char *id, int error)
{
	struct sched_msg *m = arg;

	(void)id;
	m->s->updating--;
	sched_update_result(m, error);
}

/* The notice is safe (or could not be made): remove or reschedule. */
static void
sched_settle(struct sched_msg *m)
{
	struct scheduler *s = m->s;
	size_t pending = 0;
	time_t now = time(NULL);

	for (size_t i = 0; i < m->env.n_rcpts; i++)
		if (m->env.rcpts[i].state == ENVELOPE_RCPT_PENDING)
			pending++;
	if (pending == 0) {
		if (spool_delete(s->spool, m->id) < 0 && errno != ENOENT)
			log_warn("%s: cannot remove it from the queue: %s",
				 m->id, strerror(errno));
		else
			log_info("%s: done, removed from the queue", m->id);
		end_attempt(m);
		sched_drop(m);
		return;
	}
	if (envelope_add_attempt(&m->env, now, m->att_host,
				 m->att_reply != NULL ? m->att_reply
						      : "deferred") < 0)
		log_warn("%s: out of memory recording the attempt", m->id);
	m->next = next_due(m, now);
	m->pending = pending;
	m->env.next_attempt = m->next;
	/* Durable, on the spool's pool; the envelope is formatted already. */
	int rc = spool_update_async(s->spool, &m->env, sched_updated, m);
	int err = errno;
	end_attempt(m);
	m->state = MSG_UPDATING;
	if (rc == 0) {
		s->updating++;
		return;
	}
	sched_update_result(m, err);
}

static void
sched_dsn_queued(void *arg, const struct envelope *dsn, int error)
{
	struct sched_msg *m = arg;
	struct scheduler *s = m->s;

	if (error != 0) {
		log_warn("%s: the delivery notice could not be queued, the "
			 "failed recipients stay queued: %s",
			 m->id, strerror(error));
		for (size_t i = 0; i < m->n_dsn; i++)
			if (m->dsn[i].outcome == BOUNCE_FAILED)
				m->env.rcpts[m->dsn[i].rcpt].state =
					ENVELOPE_RCPT_PENDING;
	} else {
		log_info("%s: notice %s queued for <%s> recipients=%zu", m->id,
			 dsn->id, m->env.sender, m->n_dsn);
		if (sched_add(s, dsn->id, 0, false) < 0)
			log_warn("%s: out of memory: notice %s waits for the "
				 "next start",
				 m->id, dsn->id);
	}
	sched_settle(m);
}

/* Every job is back: queue the notice if any, then settle. */
static void
sched_finish(struct sched_msg *m)
{
	struct scheduler *s = m->s;

	if (m->n_dsn == 0) {
		sched_settle(m);
		return;
	}
	struct bounce_rcpt *br = calloc(m->n_dsn, sizeof *br);
	if (br != NULL) {
		for (size_t i = 0; i < m->n_dsn; i++)
			br[i] = (struct bounce_rcpt){
				.rcpt = m->dsn[i].rcpt,
				.outcome = m->dsn[i].outcome,
				.status = m->dsn[i].status,
				.remote_mta = m->dsn[i].remote_mta,
				.diagnostic = m->dsn[i].diagnostic,
			};
		struct bounce b = {
			.reporting_mta = s->conf->server_name,
			.env = &m->env,
			.content_path = m->content_path,
			.rcpts = br,
			.n_rcpts = m->n_dsn,
			.now = time(NULL),
		};
		int rc = bounce_queue(s->spool, &b, sched_dsn_queued, m);
		free(br);
		if (rc == 0)
			return; /* sched_dsn_queued() goes on */
	}
	sched_dsn_queued(m, NULL, errno != 0 ? errno : ENOMEM);
}

/* ------------------------------------------------------------ public */

struct scheduler *
scheduler_new(struct event_base *base, const struct conf *conf,
	      struct spool *spool, const struct scheduler_ops *ops)
{
	struct scheduler *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->base = base;
	s->conf = conf;
	s->spool = spool;
	s->ops = *ops;
	TAILQ_INIT(&s->all);
	TAILQ_INIT(&s->ready);
	s->pump = event_new(base, -1, 0, sched_on_pump, s);
	if (s->pump == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static int
load_each(const struct envelope *env, void *arg)
{
	struct scheduler *s = arg;

	for (size_t i = 0; i < env->n_rcpts; i++) {
		if (env->rcpts[i].state == ENVELOPE_RCPT_PENDING)
			return sched_add(s, env->id, env->next_attempt,
					 env->held) < 0;
	}
	/* Nothing pending: its end was not recorded; finish it now. */
	return sched_add(s, env->id, 0, env->held) < 0;
}

int
scheduler_load(struct scheduler *s, size_t *n)
{
	int rc = spool_foreach(s->spool, load_each, s);
	*n = s->n_msgs;
	return rc != 0 ? -1 : 0;
}

void
scheduler_queued(void *arg, const struct envelope *env)
{
	struct scheduler *s = arg;

	if (sched_add(s, env->id, env->next_attempt, env->held) < 0)
		log_warn("%s: out of memory: not scheduled before the next "
			 "start",
			 env->id);
}

void
scheduler_set_conf(struct scheduler *s, const struct conf *conf)
{
	s->conf = conf;
}

static void
flush_one(struct sched_msg *m)
{
	if (m->state == MSG_WAITING) {
		evtimer_del(m->timer);
		sched_arm(m, 0);
	}
	log_debug("%s: flush state=%s", m->id, msg_state_names[m->state]);
}

size_t
scheduler_flush(struct scheduler *s, const char *id)
{
	struct sched_msg *m;
	size_t n = 0;

	if (id != NULL) {
		m = sched_find(s, id);
		if (m == NULL)
			return 0;
		flush_one(m);
		return 1;
	}
	TAILQ_FOREACH(m, &s->all, all)
	{
		flush_one(m);
		n++;
	}
	return n;
}

void
scheduler_stop(struct scheduler *s)
{
	struct sched_msg *m;

	s->stopping = true;
	TAILQ_FOREACH(m, &s->all, all)
	evtimer_del(m->timer);
	event_del(s->pump);
}

size_t
scheduler_in_flight(const struct scheduler *s)
{
	return s->in_flight;
}

size_t
scheduler_messages(const struct scheduler *s)
{
	return s->n_msgs;
}

void
scheduler_free(struct scheduler *s)
{
	struct sched_msg *m;

	if (s == NULL)
		return;
	/* Their callbacks would find the index gone: spool_close() first. */
	if (s->updating > 0)
		panic("scheduler: freed with %zu envelope updates in flight",
		      s->updating);
	while ((m = TAILQ_FIRST(&s->all)) != NULL) {
		if (m->state == MSG_RUNNING)
			log_warn("%s: still in an attempt at exit", m->id);
		end_attempt(m);
		sched_drop(m);
	}
	event_free(s->pump);
	free(s->buckets);
	free(s);
}
