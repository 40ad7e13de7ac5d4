/*
 * scheduler_test: the scheduler against a real spool in a temporary
 * folder and a fake delivery (the ops seam) that answers each recipient
 * by its local part: ok* delivered, gone* 550 5.1.1, anything else 451.
 * Table-driven: recipients grouped by route into jobs, envelope states
 * and attempts after the answers, removal when nothing is pending, a
 * notice (multipart/report from <>) for failures and expiry, none for a
 * null sender, a message deleted behind the scheduler's back dropped.
 * Also the domain of stored addresses with quoted local parts, and the
 * index by id through its growth.  The envelope rewrite on the spool's
 * pool: no second attempt while it is out, a failed rewrite (injected)
 * keeps the message, a delete during the attempt drops it.
 * Failures print got/want.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "queue/scheduler.h"
#include "queue/spool.h"

/* ------------------------------------------------------------ domain */

static void
test_rcpt_domain(void **state)
{
	static const struct {
		const char *address, *want;
	} cases[] = {
		{"a@example.net", "example.net"},
		{"\"a@b\"@example.net", "example.net"},
		{"\"a\\\"@b\"@example.net", "example.net"},
		{"a@b@example.net", "example.net"},
		{"user@[192.0.2.1]", "[192.0.2.1]"},
		{"postmaster", NULL},
		{"\"x@y\"", NULL},
		{"a@", NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = scheduler_rcpt_domain(cases[i].address);
		if ((got == NULL) != (cases[i].want == NULL) ||
		    (got != NULL && strcmp(got, cases[i].want) != 0))
			fail_msg("%s: got %s want %s", cases[i].address,
				 got ? got : "(null)",
				 cases[i].want ? cases[i].want : "(null)");
	}
}

/* ------------------------------------------------------------ fakes */

struct fake {
	struct event_base *base;
	char jobs[512]; /* "domain/connector(n) ..." in dispatch order */
	size_t n_jobs;
	/* Hooks around the first answer (tests of the rewrite). */
	struct spool *delete_before;   /* delete delete_id before answering */
	struct scheduler *flush_after; /* flush delete_id right after */
	const char *hook_id;
	size_t flushed;
	bool hooked;
};

struct answer {
	struct fake *fake;
	smtpc_done_cb *cb;
	void *arg;
	const struct smtpc_job *job;
};

static int
fake_route(const struct conf *conf, const char *domain, char *key,
	   size_t keylen, const struct conf_connector **connector)
{
	(void)conf;
	*connector = NULL;
	return snprintf(key, keylen, "mx:%s", domain) < (int)keylen ? 0 : -1;
}

static unsigned
fake_delay(const struct conf *conf, unsigned attempt)
{
	(void)conf;
	(void)attempt;
	return 60;
}

static void
fake_answer(evutil_socket_t fd, short what, void *arg)
{
	struct answer *a = arg;
	const struct smtpc_job *job = a->job;
	struct smtpc_rcpt_result rs[16];

	(void)fd;
	(void)what;
	assert_true(job->n_rcpts <= 16);
	for (size_t k = 0; k < job->n_rcpts; k++) {
		const char *addr = job->env->rcpts[job->rcpts[k]].address;
		memset(&rs[k], 0, sizeof rs[k]);
		if (strncmp(addr, "ok", 2) == 0 || addr[0] == '"') {
			rs[k].status = SMTPC_DELIVERED;
			rs[k].code = 250;
			rs[k].reply = "2.0.0 ok";
		} else if (strncmp(addr, "gone", 4) == 0) {
			rs[k].status = SMTPC_PERMFAIL;
			rs[k].code = 550;
			snprintf(rs[k].enhanced, sizeof rs[k].enhanced,
				 "5.1.1");
			rs[k].reply = "5.1.1 no such user";
		} else {
			rs[k].status = SMTPC_TEMPFAIL;
			rs[k].code = 451;
			rs[k].reply = "4.3.0 try later";
		}
	}
	struct smtpc_result res = {.rcpts = rs,
				   .host = "smart.example.net",
				   .addr = "192.0.2.25:25",
				   .peer_dsn = true};
	struct fake *f = a->fake;
	bool hook = !f->hooked;
	f->hooked = true;
	if (hook && f->delete_before != NULL)
		assert_int_equal(spool_delete(f->delete_before, f->hook_id), 0);
	a->cb(a->arg, job, &res);
	/* The attempt is over; its rewrite is out on the pool. */
	if (hook && f->flush_after != NULL)
		f->flushed = scheduler_flush(f->flush_after, f->hook_id);
	free(a);
}

static void
fake_deliver(void *arg, const struct smtpc_job *job, smtpc_done_cb *cb,
	     void *cb_arg)
{
	struct fake *f = arg;
	struct answer *a = calloc(1, sizeof *a);
	size_t l = strlen(f->jobs);

	assert_non_null(a);
	snprintf(f->jobs + l, sizeof f->jobs - l, "%s%s/%s(%zu)",
		 f->n_jobs ? " " : "", job->domain,
		 job->connector ? job->connector : "-", job->n_rcpts);
	f->n_jobs++;
	a->fake = f;
	a->cb = cb;
	a->arg = cb_arg;
	a->job = job;
	/* Answer on the loop, as smtpc does. */
	assert_int_equal(
		event_base_once(f->base, -1, EV_TIMEOUT, fake_answer, a, NULL),
		0);
}

/* ------------------------------------------------------------ spool */

struct fixture {
	char dir[256];
	struct event_base *base;
	struct spool *spool;
	struct conf conf;
	struct fake fake;
	struct scheduler *s;
};

static void
rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL) {
		unlink(path);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		char sub[1024];
		snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	rmdir(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];
	size_t n, c;
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof f->dir, "%s/scheduler_test.XXXXXX",
		 tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->base = event_base_new();
	unsetenv("BRIDGEHEAD_FAULT");
	f->spool = spool_open(f->dir, f->base, err, sizeof err);
	if (f->spool == NULL || spool_recover(f->spool, &n, &c) < 0)
		return -1;
	f->conf.server_name = "bh1.example.com";
	f->conf.state_dir = f->dir;
	f->conf.queue_lifetime_s = 5 * 86400;
	f->fake.base = f->base;
	struct scheduler_ops ops = {
		.route = fake_route,
		.deliver = fake_deliver,
		.deliver_arg = &f->fake,
		.retry_delay = fake_delay,
	};
	f->s = scheduler_new(f->base, &f->conf, f->spool, &ops);
	*state = f;
	return f->s != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	scheduler_stop(f->s);
	spool_close(f->spool);
	scheduler_free(f->s);
	event_base_free(f->base);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void
run_loop(struct fixture *f, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static void
committed(void *arg, const char *id, int error)
{
	(void)id;
	*(int *)arg = error == 0 ? 1 : -1;
}

/* Commit a message; its id into id. */
static void
put_message(struct fixture *f, const char *sender, const char *const *rcpts,
	    time_t received, char *id)
{
	static const char body[] = "Subject: test\r\n\r\nbody\r\n";
	struct envelope env = {0};
	int done = 0;

	struct spool_msg *msg = spool_msg_new(f->spool);
	assert_non_null(msg);
	assert_int_equal(spool_msg_write(msg, body, sizeof body - 1), 0);
	snprintf(env.id, sizeof env.id, "%s", spool_msg_id(msg));
	env.received = received;
	env.sender = strdup(sender);
	env.size = sizeof body - 1;
	for (size_t i = 0; rcpts[i] != NULL; i++)
		assert_int_equal(envelope_add_rcpt(&env, rcpts[i], 0, NULL), 0);
	snprintf(id, ENVELOPE_ID_MAX + 1, "%s", env.id);
	spool_msg_commit(msg, &env, committed, &done);
	envelope_clear(&env);
	for (int i = 0; i < 500 && done == 0; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	for (int i = 0; i < 200 && done == 0; i++) {
		usleep(10000);
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(done, 1);
}

struct find_dsn {
	char id[ENVELOPE_ID_MAX + 1];
	char to[256];
	size_t n;
};

static int
find_dsn_each(const struct envelope *env, void *arg)
{
	struct find_dsn *d = arg;
	if (env->sender[0] == '\0') {
		d->n++;
		snprintf(d->id, sizeof d->id, "%s", env->id);
		snprintf(d->to, sizeof d->to, "%s",
			 env->n_rcpts ? env->rcpts[0].address : "");
	}
	return 0;
}

static char *
read_content(struct fixture *f, const char *id)
{
	char path[1024];
	assert_int_equal(spool_content_path(f->spool, id, path, sizeof path),
			 0);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	char *text = calloc(1, 65536);
	size_t n = fread(text, 1, 65535, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

/* ------------------------------------------------------------ cases */

struct sched_case {
	const char *name;
	const char *sender;
	const char *rcpts[6];
	time_t age;	   /* seconds since received */
	unsigned lifetime; /* 0: 5 days */
	const char *want_jobs;
	bool want_left;		 /* the message stays queued */
	const char *want_states; /* "delivered failed pending" if left */
	const char *want_dsn;	 /* substring of the notice, NULL: none */
};

static const struct sched_case cases[] = {
	{
		.name = "mixed results",
		.sender = "sender@example.org",
		.rcpts = {"ok1@x.example", "gone@x.example", "later@y.example"},
		/* the notice itself is tried too (and deferred) */
		.want_jobs = "x.example/-(2) y.example/-(1) example.org/-(1)",
		.want_left = true,
		.want_states = "delivered failed pending",
		.want_dsn = "\r\nStatus: 5.1.1\r\n",
	},
	{
		.name = "all delivered",
		.sender = "sender@example.org",
		.rcpts = {"ok1@x.example", "ok2@Y.example", "ok3@y.EXAMPLE"},
		.want_jobs = "x.example/-(1) Y.example/-(2)",
		.want_left = false,
	},
	{
		.name = "quoted local part with @",
		.sender = "sender@example.org",
		.rcpts = {"\"a@b\"@z.example"},
		.want_jobs = "z.example/-(1)",
		.want_left = false,
	},
	{
		.name = "null sender: no notice",
		.sender = "",
		.rcpts = {"gone@x.example"},
		.want_jobs = "x.example/-(1)",
		.want_left = false,
	},
	{
		.name = "expired: notice 4.4.7, no attempt",
		.sender = "sender@example.org",
		.rcpts = {"later@x.example"},
		.age = 100,
		.lifetime = 10,
		.want_jobs = "example.org/-(1)",
		.want_left = false,
		.want_dsn = "\r\nStatus: 4.4.7\r\n",
	},
	{
		.name = "no domain: fails without a job",
		.sender = "sender@example.org",
		.rcpts = {"postmaster", "later@x.example"},
		.want_jobs = "x.example/-(1) example.org/-(1)",
		.want_left = true,
		.want_states = "failed pending",
		.want_dsn = "\r\nStatus: 5.1.3\r\n",
	},
};

static void
states_text(const struct envelope *env, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < env->n_rcpts; i++)
		o += (size_t)snprintf(
			out + o, len - o, "%s%s", i ? " " : "",
			envelope_rcpt_state_name(env->rcpts[i].state));
}

static void
run_case(const struct sched_case *c)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1];
	size_t n;

	assert_int_equal(setup((void **)&f), 0);
	if (c->lifetime != 0)
		f->conf.queue_lifetime_s = c->lifetime;
	put_message(f, c->sender, c->rcpts, time(NULL) - c->age, id);
	assert_int_equal(scheduler_load(f->s, &n), 0);
	assert_int_equal(n, 1);
	run_loop(f, 300);
	if (strcmp(f->fake.jobs, c->want_jobs) != 0)
		fail_msg("%s: jobs: got '%s' want '%s'", c->name, f->fake.jobs,
			 c->want_jobs);
	assert_int_equal(scheduler_in_flight(f->s), 0);

	struct envelope env = {0};
	int rc = spool_load(f->spool, id, &env);
	if (c->want_left) {
		char states[256];
		if (rc != 0)
			fail_msg("%s: message gone: %s", c->name,
				 strerror(errno));
		states_text(&env, states, sizeof states);
		if (strcmp(states, c->want_states) != 0)
			fail_msg("%s: states: got '%s' want '%s'", c->name,
				 states, c->want_states);
		if (env.n_attempts != 1 || env.next_attempt < time(NULL) + 50 ||
		    env.next_attempt > time(NULL) + 61)
			fail_msg("%s: attempts %zu next in %lld s, want 1 and "
				 "60",
				 c->name, env.n_attempts,
				 (long long)(env.next_attempt - time(NULL)));
		envelope_clear(&env);
	} else if (rc == 0 || errno != ENOENT) {
		fail_msg("%s: still queued (rc %d)", c->name, rc);
	}

	struct find_dsn d = {0};
	assert_int_equal(spool_foreach(f->spool, find_dsn_each, &d), 0);
	if (c->want_dsn == NULL) {
		/* the null-sender message itself is gone; nothing else */
		if (d.n != 0)
			fail_msg("%s: got %zu notices, want none", c->name,
				 d.n);
	} else {
		if (d.n != 1)
			fail_msg("%s: got %zu notices, want 1", c->name, d.n);
		if (strcmp(d.to, c->sender) != 0)
			fail_msg("%s: notice to <%s>, want <%s>", c->name, d.to,
				 c->sender);
		char *text = read_content(f, d.id);
		if (strstr(text, "multipart/report; "
				 "report-type=delivery-status") == NULL ||
		    strstr(text, c->want_dsn) == NULL)
			fail_msg("%s: notice lacks '%s':\n%s", c->name,
				 c->want_dsn, text);
		free(text);
	}
	teardown((void **)&f);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
}

/* A message deleted from the command line before its attempt. */
static void
test_deleted(void **state)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1];
	size_t n;
	const char *rcpts[] = {"ok@x.example", NULL};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	put_message(f, "s@example.org", rcpts, time(NULL), id);
	assert_int_equal(scheduler_load(f->s, &n), 0);
	assert_int_equal(spool_delete(f->spool, id), 0);
	run_loop(f, 200);
	if (f->fake.n_jobs != 0 || scheduler_messages(f->s) != 0)
		fail_msg("jobs %zu messages %zu, want 0 and 0", f->fake.n_jobs,
			 scheduler_messages(f->s));
	teardown((void **)&f);
}

/* flush makes a deferred message due now; a second attempt follows. */
static void
test_flush(void **state)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1];
	size_t n;
	const char *rcpts[] = {"later@x.example", NULL};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	put_message(f, "s@example.org", rcpts, time(NULL), id);
	assert_int_equal(scheduler_load(f->s, &n), 0);
	run_loop(f, 200);
	assert_int_equal(f->fake.n_jobs, 1);
	assert_int_equal(scheduler_flush(f->s, "NoSuchMessage1"), 0);
	assert_int_equal(scheduler_flush(f->s, id), 1);
	run_loop(f, 200);
	assert_int_equal(f->fake.n_jobs, 2);
	struct envelope env = {0};
	assert_int_equal(spool_load(f->spool, id, &env), 0);
	if (env.n_attempts != 2)
		fail_msg("attempts: got %zu want 2", env.n_attempts);
	envelope_clear(&env);
	teardown((void **)&f);
}

/* ID.upd files in incoming/: none may outlive a rewrite. */
static size_t
count_upd(const struct fixture *f)
{
	char path[512];
	size_t n = 0;
	snprintf(path, sizeof path, "%s/queue/incoming", f->dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".upd") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * A flush while the rewrite of a deferred message is out finds it but
 * starts no attempt: the message is not due again before the rewrite is
 * back (then at its next time, 60 s away).
 */
static void
test_no_attempt_while_updating(void **state)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1];
	size_t n;
	const char *rcpts[] = {"later@x.example", NULL};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	put_message(f, "s@example.org", rcpts, time(NULL), id);
	f->fake.flush_after = f->s;
	f->fake.hook_id = id;
	assert_int_equal(scheduler_load(f->s, &n), 0);
	run_loop(f, 300);
	if (f->fake.flushed != 1 || f->fake.n_jobs != 1)
		fail_msg("flushed %zu jobs %zu, want 1 and 1", f->fake.flushed,
			 f->fake.n_jobs);
	assert_int_equal(scheduler_messages(f->s), 1);
	struct envelope env = {0};
	assert_int_equal(spool_load(f->spool, id, &env), 0);
	if (env.n_attempts != 1 || env.next_attempt < time(NULL) + 50)
		fail_msg("attempts %zu next in %lld s, want 1 and 60",
			 env.n_attempts,
			 (long long)(env.next_attempt - time(NULL)));
	envelope_clear(&env);
	assert_int_equal(count_upd(f), 0);
	/* Back and waiting: a flush now does start one. */
	assert_int_equal(scheduler_flush(f->s, id), 1);
	run_loop(f, 300);
	assert_int_equal(f->fake.n_jobs, 2);
	teardown((void **)&f);
}

/* Deleted while its attempt runs: the rewrite says ENOENT, it is dropped. */
static void
test_deleted_during_attempt(void **state)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1];
	size_t n;
	const char *rcpts[] = {"later@x.example", NULL};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	put_message(f, "s@example.org", rcpts, time(NULL), id);
	f->fake.delete_before = f->spool;
	f->fake.hook_id = id;
	assert_int_equal(scheduler_load(f->s, &n), 0);
	run_loop(f, 300);
	assert_int_equal(f->fake.n_jobs, 1);
	if (scheduler_messages(f->s) != 0)
		fail_msg("messages: got %zu want 0", scheduler_messages(f->s));
	struct envelope env = {0};
	errno = 0;
	assert_int_equal(spool_load(f->spool, id, &env), -1);
	assert_int_equal(errno, ENOENT);
	teardown((void **)&f);
}

/*
 * The rewrite fails (injected: the exchange into active/, after the two
 * renames of the commit): the message stays indexed and on disk with its
 * old envelope, nothing is left in incoming/, and it is tried again.
 */
static void
test_update_fails(void **state)
{
	struct fixture *f;
	char id[ENVELOPE_ID_MAX + 1], err[256];
	size_t n, c;
	const char *rcpts[] = {"later@x.example", NULL};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	/* Reopen the spool with the fault armed. */
	scheduler_free(f->s);
	spool_close(f->spool);
	setenv("BRIDGEHEAD_FAULT", "spool_rename:EIO:2", 1);
	f->spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(f->spool);
	assert_int_equal(spool_recover(f->spool, &n, &c), 0);
	struct scheduler_ops ops = {
		.route = fake_route,
		.deliver = fake_deliver,
		.deliver_arg = &f->fake,
		.retry_delay = fake_delay,
	};
	f->s = scheduler_new(f->base, &f->conf, f->spool, &ops);
	assert_non_null(f->s);
	put_message(f, "s@example.org", rcpts, time(NULL), id);
	assert_int_equal(scheduler_load(f->s, &n), 0);
	run_loop(f, 300);
	assert_int_equal(f->fake.n_jobs, 1);
	assert_int_equal(scheduler_messages(f->s), 1);
	struct envelope env = {0};
	assert_int_equal(spool_load(f->spool, id, &env), 0);
	if (env.n_attempts != 0)
		fail_msg("attempts on disk: got %zu want 0 (the old envelope)",
			 env.n_attempts);
	envelope_clear(&env);
	assert_int_equal(count_upd(f), 0);
	struct spool_stats st;
	spool_stats(f->spool, &st);
	assert_int_equal(st.update_failures, 1);
	assert_int_equal(scheduler_flush(f->s, id), 1);
	run_loop(f, 300);
	assert_int_equal(f->fake.n_jobs, 2);
	assert_int_equal(scheduler_messages(f->s), 1);
	unsetenv("BRIDGEHEAD_FAULT");
	teardown((void **)&f);
}

/* The index by id across its growth; unknown ids are dropped at start. */
static void
test_index(void **state)
{
	struct fixture *f;
	struct envelope env = {0};

	(void)state;
	assert_int_equal(setup((void **)&f), 0);
	env.sender = "s@example.org";
	for (int i = 0; i < 1000; i++) {
		snprintf(env.id, sizeof env.id, "IndexTest%05d", i);
		scheduler_queued(f->s, &env);
	}
	scheduler_queued(f->s, &env); /* the same id again: kept once */
	if (scheduler_messages(f->s) != 1000)
		fail_msg("messages: got %zu want 1000",
			 scheduler_messages(f->s));
	assert_int_equal(scheduler_flush(f->s, "IndexTest00500"), 1);
	assert_int_equal(scheduler_flush(f->s, "IndexTest01000"), 0);
	assert_int_equal(scheduler_flush(f->s, NULL), 1000);
	run_loop(f, 300); /* none is in the spool: each is dropped */
	if (scheduler_messages(f->s) != 0 || f->fake.n_jobs != 0)
		fail_msg("after the attempts: messages %zu jobs %zu, want 0 0",
			 scheduler_messages(f->s), f->fake.n_jobs);
	assert_int_equal(scheduler_flush(f->s, "IndexTest00500"), 0);
	teardown((void **)&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcpt_domain),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_deleted),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_no_attempt_while_updating),
		cmocka_unit_test(test_deleted_during_attempt),
		cmocka_unit_test(test_update_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
