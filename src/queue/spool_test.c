/*
 * spool_test: the queue on disk.  Commit then load; recovery of
 * half-written states made by hand; 200 concurrent commits sharing
 * directory fsyncs; the BRIDGEHEAD_FAULT seam (nothing half-committed is
 * left behind); queue ids; the read-only CLI open; asynchronous envelope
 * updates (batched, racing with deletes, under injected faults).  Each test
 * works in its own directory under $TMPDIR.  Failures print got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "queue/commit.h"
#include "queue/qid.h"
#include "queue/spool.h"

struct fixture {
	char dir[256];
	struct event_base *base;
};

static int
rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return unlink(path);
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
	return rmdir(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/spool_test.XXXXXX",
		 tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->base = event_base_new();
	unsetenv("BRIDGEHEAD_FAULT");
	*state = f;
	return f->base != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	event_base_free(f->base);
	rm_rf(f->dir);
	free(f);
	unsetenv("BRIDGEHEAD_FAULT");
	return 0;
}

/* Names in dir/queue/sub, sorted, joined with spaces. */
static void
listing(const struct fixture *f, const char *sub, char *out, size_t len)
{
	char path[512];
	char *names[4096];
	size_t n = 0, o = 0;

	snprintf(path, sizeof path, "%s/queue/%s", f->dir, sub);
	out[0] = '\0';
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL && n < 4096) {
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
			continue;
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(names[j], names[i]) < 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(out + o, len - o, "%s%s", i ? " " : "",
				 names[i]);
		if (w > 0 && (size_t)w < len - o)
			o += (size_t)w;
		free(names[i]);
	}
}

static size_t
count_files(const struct fixture *f, const char *sub)
{
	char path[512];
	size_t n = 0;
	snprintf(path, sizeof path, "%s/queue/%s", f->dir, sub);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Files in dir/queue/sub whose name starts with id. */
static size_t
count_id(const struct fixture *f, const char *sub, const char *id)
{
	char path[512];
	size_t n = 0;
	snprintf(path, sizeof path, "%s/queue/%s", f->dir, sub);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, id, strlen(id)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
write_file(const struct fixture *f, const char *sub, const char *name,
	   const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/queue/%s/%s", f->dir, sub, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
fill_env(struct envelope *env, const char *id, const char *sender)
{
	memset(env, 0, sizeof *env);
	snprintf(env->id, sizeof env->id, "%s", id);
	env->received = time(NULL);
	env->sender = strdup(sender);
	env->size = 0;
	assert_int_equal(envelope_add_rcpt(env, "rcpt@example.net", 0x6,
					   "rfc822;rcpt@example.net"),
			 0);
}

struct result {
	int calls;
	int error;
	char id[QID_MAX + 1];
};

/*
 * Run the loop until *count reaches want.  Not event_base_dispatch(): the
 * spool's idle timer would keep it going a second longer.
 */
static void
run_until(struct event_base *base, const int *count, int want)
{
	for (int i = 0; *count < want && i < 100000; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(*count, want);
}

static void
on_commit(void *arg, const char *id, int error)
{
	struct result *r = arg;
	r->calls++;
	r->error = error;
	snprintf(r->id, sizeof r->id, "%s", id);
}

/* New message with content, committed; runs the loop until called back. */
static struct result
commit_one(struct fixture *f, struct spool *spool, const char *content,
	   size_t len, char *id_out)
{
	struct result r = {0};
	struct envelope env;
	struct spool_msg *msg = spool_msg_new(spool);
	assert_non_null(msg);
	const char *id = spool_msg_id(msg);
	if (id_out != NULL)
		snprintf(id_out, QID_MAX + 1, "%s", id);
	int wrc = spool_msg_write(msg, content, len);
	fill_env(&env, id, "sender@example.org");
	env.size = spool_msg_size(msg);
	spool_msg_commit(msg, &env, on_commit, &r);
	envelope_clear(&env);
	(void)wrc;
	/* The callback never runs before the loop does. */
	assert_int_equal(r.calls, 0);
	run_until(f->base, &r.calls, 1);
	return r;
}

static char *
read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, fp);
	fclose(fp);
	buf[got] = '\0';
	*len = got;
	return buf;
}

/* ------------------------------------------------------------------ */

static void
test_commit_load_delete(void **state)
{
	struct fixture *f = *state;
	char err[256], id[QID_MAX + 1], path[512], listed[1024];
	struct stat st;

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	if (spool == NULL)
		print_error("spool_open: %s\n", err);
	assert_non_null(spool);
	/* 200 KiB: buffered pieces, full-buffer flushes and a tail. */
	size_t len = 200 * 1024 + 17;
	char *content = malloc(len);
	for (size_t i = 0; i < len; i++)
		content[i] = (char)('a' + i % 26);
	struct result r = commit_one(f, spool, content, len, id);
	if (r.error != 0)
		print_error("commit: got error %s want 0\n", strerror(r.error));
	assert_int_equal(r.error, 0);
	assert_string_equal(r.id, id);
	assert_int_equal(strlen(id), QID_LEN);

	char want[256];
	snprintf(want, sizeof want, "%s.env %s.msg", id, id);
	listing(f, "active", listed, sizeof listed);
	if (strcmp(listed, want) != 0)
		print_error("active/: got '%s' want '%s'\n", listed, want);
	assert_string_equal(listed, want);
	assert_int_equal(count_id(f, "incoming", id), 0);

	/* The content, byte for byte, private to the server. */
	assert_int_equal(spool_content_path(spool, id, path, sizeof path), 0);
	size_t got_len;
	char *got = read_all(path, &got_len);
	assert_non_null(got);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, content, len);
	free(got);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/queue/active", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	struct envelope env = {0};
	assert_int_equal(spool_load(spool, id, &env), 0);
	assert_string_equal(env.id, id);
	assert_string_equal(env.sender, "sender@example.org");
	assert_int_equal(env.size, len);
	assert_int_equal(env.n_rcpts, 1);
	assert_int_equal(env.rcpts[0].notify, 0x6);

	/* An update is durable and visible; the content stays. */
	assert_int_equal(envelope_add_attempt(&env, time(NULL),
					      "smarthost.example.net",
					      "451 4.3.0 later"),
			 0);
	env.next_attempt = time(NULL) + 60;
	assert_int_equal(spool_update(spool, &env), 0);
	envelope_clear(&env);
	assert_int_equal(spool_load(spool, id, &env), 0);
	assert_int_equal(env.n_attempts, 1);
	assert_string_equal(env.attempts[0].reply, "451 4.3.0 later");
	assert_int_equal(count_id(f, "incoming", id), 0);

	assert_int_equal(spool_delete(spool, id), 0);
	/* The envelope goes at once; the content with the worker's fsync. */
	assert_int_equal(count_id(f, "active", id) <= 1, 1);
	snprintf(path, sizeof path, "%s/queue/active/%s.env", f->dir, id);
	assert_int_equal(stat(path, &st), -1);
	for (int i = 0; count_id(f, "active", id) > 0 && i < 1000; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
	listing(f, "active", listed, sizeof listed);
	assert_string_equal(listed, "");
	/* Gone: load, delete and update say ENOENT; update brings nothing back.
	 */
	struct envelope none = {0};
	errno = 0;
	assert_int_equal(spool_load(spool, id, &none), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(spool_delete(spool, id), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(spool_update(spool, &env), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_files(f, "active"), 0);
	assert_int_equal(count_id(f, "incoming", id), 0);
	envelope_clear(&env);

	struct spool_stats stats;
	spool_stats(spool, &stats);
	assert_int_equal(stats.commits, 1);
	assert_int_equal(stats.failures, 0);
	spool_close(spool);
	/* The stock of empty files made after the commit goes with close. */
	assert_int_equal(count_files(f, "incoming"), 0);
	free(content);
}

static void
test_abort(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	struct spool_msg *msg = spool_msg_new(spool);
	assert_non_null(msg);
	assert_int_equal(spool_msg_write(msg, "x", 1), 0);
	assert_int_equal(count_files(f, "incoming"), 1);
	spool_msg_abort(msg);
	assert_int_equal(count_files(f, "incoming"), 0);
	assert_int_equal(count_files(f, "active"), 0);
	spool_close(spool);
}

static int
count_each(const struct envelope *env, void *arg)
{
	(void)env;
	(*(int *)arg)++;
	return 0;
}

#define GOOD_ENV(id)                                                           \
	"bridgehead-envelope 1\nid " id "\nreceived 2026-12-03T17:00:00Z\n"    \
	"sender s@example.org\nsize 5\nrcpt r@example.net state=pending\n"     \
	"end\n"

static void
test_recover(void **state)
{
	struct fixture *f = *state;
	char err[256], id[QID_MAX + 1], listed[2048], want[2048];

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	struct result r = commit_one(f, spool, "hello", 5, id);
	assert_int_equal(r.error, 0);
	/* Too late once messages were made: incoming/ is in use. */
	errno = 0;
	assert_int_equal(spool_recover(spool, NULL, NULL), -1);
	assert_int_equal(errno, EBUSY);
	spool_close(spool);
	spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);

	/* Half-written states, by hand. */
	write_file(f, "incoming", "AAAAAAAAAAAAAAA1.msg", "partial");
	write_file(f, "incoming", "AAAAAAAAAAAAAAA1.env", "bridgehead-env");
	write_file(f, "active", "BBBBBBBBBBBBBBB1.msg", "no envelope");
	write_file(f, "active", "CCCCCCCCCCCCCCC1.msg", "torn");
	write_file(f, "active", "CCCCCCCCCCCCCCC1.env",
		   "bridgehead-envelope 1\nid CCCCCCCCCCCCCCC1\nsen");
	write_file(f, "active", "DDDDDDDDDDDDDDD1.env",
		   GOOD_ENV("DDDDDDDDDDDDDDD1"));
	write_file(f, "active", "EEEEEEEEEEEEEEE1.msg", "other id");
	write_file(f, "active", "EEEEEEEEEEEEEEE1.env",
		   GOOD_ENV("FFFFFFFFFFFFFFF1"));
	write_file(f, "active", "GGGGGGGGGGGGGGG1.msg", "future");
	write_file(f, "active", "GGGGGGGGGGGGGGG1.env",
		   "bridgehead-envelope 9\nend\n");
	write_file(f, "active", "junk.txt", "stray");
	write_file(f, "active", "HHHHHHHHHHHHHHH1.env.1", "stray too");
	write_file(f, "corrupt", "junk.txt", "an older stray");
	/* A good pair written by hand sorts next to a stray: still kept. */
	write_file(f, "active", "HHHHHHHHHHHHHHH1.msg", "kept");
	write_file(f, "active", "HHHHHHHHHHHHHHH1.env",
		   GOOD_ENV("HHHHHHHHHHHHHHH1"));

	size_t n_messages = 99, n_corrupt = 99;
	assert_int_equal(spool_recover(spool, &n_messages, &n_corrupt), 0);

	listing(f, "incoming", listed, sizeof listed);
	assert_string_equal(listed, "");
	snprintf(want, sizeof want,
		 "%s.env %s.msg HHHHHHHHHHHHHHH1.env HHHHHHHHHHHHHHH1.msg", id,
		 id);
	listing(f, "active", listed, sizeof listed);
	if (strcmp(listed, want) != 0)
		print_error("active/: got '%s'\n          want '%s'\n", listed,
			    want);
	assert_string_equal(listed, want);
	listing(f, "corrupt", listed, sizeof listed);
	const char *want_corrupt = "CCCCCCCCCCCCCCC1.env CCCCCCCCCCCCCCC1.msg "
				   "DDDDDDDDDDDDDDD1.env EEEEEEEEEEEEEEE1.env "
				   "EEEEEEEEEEEEEEE1.msg GGGGGGGGGGGGGGG1.env "
				   "GGGGGGGGGGGGGGG1.msg "
				   "HHHHHHHHHHHHHHH1.env.1 junk.txt junk.txt.1";
	if (strcmp(listed, want_corrupt) != 0)
		print_error("corrupt/: got '%s'\n           want '%s'\n",
			    listed, want_corrupt);
	assert_string_equal(listed, want_corrupt);
	if (n_messages != 2 || n_corrupt != 9)
		print_error("counts: got %zu messages %zu corrupt, want 2 and "
			    "9\n",
			    n_messages, n_corrupt);
	assert_int_equal(n_messages, 2);
	assert_int_equal(n_corrupt, 9);

	/* Nothing in corrupt/ is ever overwritten: the older stray is there. */
	char path[512];
	size_t len;
	snprintf(path, sizeof path, "%s/queue/corrupt/junk.txt", f->dir);
	char *text = read_all(path, &len);
	assert_string_equal(text, "an older stray");
	free(text);

	int seen = 0;
	assert_int_equal(spool_foreach(spool, count_each, &seen), 0);
	assert_int_equal(seen, 2);
	spool_close(spool);
}

/* ------------------------------------------------------- group commit */

#define CONCURRENT 200

struct group {
	int done;
	int failed;
};

static void
on_group_commit(void *arg, const char *id, int error)
{
	struct group *g = arg;
	(void)id;
	g->done++;
	if (error != 0) {
		print_error("%s: got error %s want 0\n", id, strerror(error));
		g->failed++;
	}
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	char err[256], body[4096];
	struct group g = {0};
	struct spool_stats stats;

	memset(body, 'x', sizeof body);
	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	double t0 = now_s();
	for (int i = 0; i < CONCURRENT; i++) {
		struct envelope env;
		struct spool_msg *msg = spool_msg_new(spool);
		assert_non_null(msg);
		assert_int_equal(spool_msg_write(msg, body, sizeof body), 0);
		fill_env(&env, spool_msg_id(msg), "s@example.org");
		env.size = sizeof body;
		spool_msg_commit(msg, &env, on_group_commit, &g);
		envelope_clear(&env);
	}
	run_until(f->base, &g.done, CONCURRENT);
	double t = now_s() - t0;
	assert_int_equal(g.done, CONCURRENT);
	assert_int_equal(g.failed, 0);
	assert_int_equal(count_files(f, "active"), 2 * CONCURRENT);
	spool_stats(spool, &stats);
	print_message("%d commits of 4 KiB in %.3f s (%.0f/s), %llu fsyncs "
		      "of active/\n",
		      CONCURRENT, t, CONCURRENT / t,
		      (unsigned long long)stats.dir_fsyncs);
	assert_int_equal(stats.commits, CONCURRENT);
	assert_true(stats.dir_fsyncs >= 1);
	assert_true(stats.dir_fsyncs <= CONCURRENT);

	int seen = 0;
	assert_int_equal(spool_foreach(spool, count_each, &seen), 0);
	assert_int_equal(seen, CONCURRENT);
	/* Messages made now come from the stock the workers filled. */
	struct spool_msg *msg = spool_msg_new(spool);
	assert_non_null(msg);
	assert_true(count_files(f, "incoming") > 1);
	spool_msg_abort(msg);
	spool_close(spool);
	assert_int_equal(count_files(f, "incoming"), 0);
}

/* A second after the last commit the stock is gone; it comes back. */
static void
test_stock_idle(void **state)
{
	struct fixture *f = *state;
	char err[256], id[QID_MAX + 1];

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	assert_int_equal(commit_one(f, spool, "a", 1, id).error, 0);
	/* Only the idle timer is left: dispatch returns once it fired. */
	double t0 = now_s();
	event_base_dispatch(f->base);
	assert_true(now_s() - t0 >= 0.9);
	assert_int_equal(count_files(f, "incoming"), 0);
	/* Made on the loop now; the stock follows the next commit. */
	assert_int_equal(commit_one(f, spool, "b", 1, id).error, 0);
	for (int i = 0; count_files(f, "incoming") == 0 && i < 200; i++)
		usleep(10000);
	assert_true(count_files(f, "incoming") > 0);
	assert_int_equal(count_files(f, "active"), 4);
	spool_close(spool);
	assert_int_equal(count_files(f, "incoming"), 0);
}

/* spool_close() runs the callbacks of commits still in flight. */
static void
test_close_drains(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct group g = {0};

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	for (int i = 0; i < 20; i++) {
		struct envelope env;
		struct spool_msg *msg = spool_msg_new(spool);
		assert_non_null(msg);
		assert_int_equal(spool_msg_write(msg, "abc", 3), 0);
		fill_env(&env, spool_msg_id(msg), "s@example.org");
		spool_msg_commit(msg, &env, on_group_commit, &g);
		envelope_clear(&env);
	}
	spool_close(spool);
	assert_int_equal(g.done, 20);
	assert_int_equal(g.failed, 0);
	assert_int_equal(count_files(f, "active"), 40);
}

/* Directory group commit alone: waiters share fsyncs, errors reach all. */
struct dirsync_arg {
	struct commit_dirsync *ds;
	int result;
};

static int fake_sync_calls;
static int fake_sync_error;

static int
fake_sync(void *arg, int fd)
{
	(void)arg;
	(void)fd;
	__atomic_add_fetch(&fake_sync_calls, 1, __ATOMIC_SEQ_CST);
	usleep(2000);
	return fake_sync_error;
}

static void *
dirsync_waiter(void *p)
{
	struct dirsync_arg *a = p;
	a->result = commit_dirsync_wait(a->ds);
	return NULL;
}

static void
test_dirsync(void **state)
{
	(void)state;
	static const struct {
		int error;
		int threads;
	} cases[] = {{0, 1}, {0, 50}, {EIO, 50}};

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct commit_dirsync ds;
		pthread_t th[64];
		struct dirsync_arg args[64];

		fake_sync_calls = 0;
		fake_sync_error = cases[c].error;
		assert_int_equal(commit_dirsync_init(&ds, -1, fake_sync, NULL),
				 0);
		for (int i = 0; i < cases[c].threads; i++) {
			args[i].ds = &ds;
			args[i].result = -1;
			assert_int_equal(pthread_create(&th[i], NULL,
							dirsync_waiter,
							&args[i]),
					 0);
		}
		for (int i = 0; i < cases[c].threads; i++) {
			pthread_join(th[i], NULL);
			if (args[i].result != cases[c].error)
				print_error("case %zu waiter %d: got %d want "
					    "%d\n",
					    c, i, args[i].result,
					    cases[c].error);
			assert_int_equal(args[i].result, cases[c].error);
		}
		/* Every waiter is covered; no more fsyncs than waiters. */
		assert_true(fake_sync_calls >= 1);
		assert_true(fake_sync_calls <= cases[c].threads);
		assert_int_equal(commit_dirsync_count(&ds),
				 (uint64_t)fake_sync_calls);
		print_message("dirsync: %d waiters, %d fsyncs\n",
			      cases[c].threads, fake_sync_calls);
		commit_dirsync_destroy(&ds);
	}
}

/* ----------------------------------------------------------- faults */

static const struct fault_case {
	const char *spec;
	size_t len;	      /* bytes written before commit */
	int want_write_errno; /* errno of spool_msg_write, 0: succeeds */
	int want;	      /* the callback's error */
} fault_cases[] = {
	{"spool_write:ENOSPC", 100, 0, ENOSPC},
	{"spool_write:ENOSPC", 70000, ENOSPC, ENOSPC},
	{"spool_write:EDQUOT", 100, 0, EDQUOT},
	/* The message is written; the envelope's write fails. */
	{"spool_write:ENOSPC:1", 100, 0, ENOSPC},
	{"spool_fsync:EIO", 100, 0, EIO},
	/* Message and envelope fsync'd; the fsync of active/ fails. */
	{"spool_fsync:EIO:2", 100, 0, EIO},
	{"spool_rename:EIO", 100, 0, EIO},
	/* The message is renamed into active/; the envelope is not. */
	{"spool_rename:EIO:1", 100, 0, EIO},
	{"other_module:EIO,spool_write:5", 100, 0, 5},
};

static void
test_faults(void **state)
{
	struct fixture *f = *state;
	char err[256];

	for (size_t c = 0; c < sizeof fault_cases / sizeof fault_cases[0];
	     c++) {
		const struct fault_case *fc = &fault_cases[c];
		struct result r = {0};
		struct envelope env;
		char *content = calloc(1, fc->len);

		setenv("BRIDGEHEAD_FAULT", fc->spec, 1);
		struct spool *spool =
			spool_open(f->dir, f->base, err, sizeof err);
		if (spool == NULL)
			print_error("%s: spool_open: %s\n", fc->spec, err);
		assert_non_null(spool);
		struct spool_msg *msg = spool_msg_new(spool);
		assert_non_null(msg);
		errno = 0;
		int wrc = spool_msg_write(msg, content, fc->len);
		int werr = wrc == 0 ? 0 : errno;
		if (werr != fc->want_write_errno)
			print_error("%s: write: got %d want %d\n", fc->spec,
				    werr, fc->want_write_errno);
		assert_int_equal(werr, fc->want_write_errno);
		if (werr != 0) {
			/* Sticky: later writes fail the same way. */
			errno = 0;
			assert_int_equal(spool_msg_write(msg, "x", 1), -1);
			assert_int_equal(errno, werr);
		}
		fill_env(&env, spool_msg_id(msg), "s@example.org");
		spool_msg_commit(msg, &env, on_commit, &r);
		envelope_clear(&env);
		run_until(f->base, &r.calls, 1);
		if (r.error != fc->want)
			print_error("%s: got error %d (%s) want %d\n", fc->spec,
				    r.error, strerror(r.error), fc->want);
		assert_int_equal(r.error, fc->want);
		/* Nothing half-committed anywhere. */
		size_t na = count_files(f, "active");
		size_t ni = count_id(f, "incoming", r.id);
		if (na != 0 || ni != 0)
			print_error("%s: left %zu in active/, %zu in "
				    "incoming/\n",
				    fc->spec, na, ni);
		assert_int_equal(na, 0);
		assert_int_equal(ni, 0);
		struct spool_stats stats;
		spool_stats(spool, &stats);
		assert_int_equal(stats.failures, 1);
		spool_close(spool);
		assert_int_equal(count_files(f, "incoming"), 0);
		free(content);
	}
	unsetenv("BRIDGEHEAD_FAULT");
}

static void
test_fault_create(void **state)
{
	struct fixture *f = *state;
	char err[256];

	setenv("BRIDGEHEAD_FAULT", "spool_create:EROFS", 1);
	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	errno = 0;
	assert_null(spool_msg_new(spool));
	assert_int_equal(errno, EROFS);
	spool_close(spool);
}

static void
test_fault_spec_errors(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *spec;
		const char *want;
	} cases[] = {
		{"spool_wirte:EIO", "unknown operation 'spool_wirte'"},
		{"spool_write", "needs an errno"},
		{"spool_write:EWHAT", "needs an errno"},
		{"spool_write:EIO:x", "bad count 'x'"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char err[256] = "";
		setenv("BRIDGEHEAD_FAULT", cases[c].spec, 1);
		struct spool *spool =
			spool_open(f->dir, f->base, err, sizeof err);
		if (spool != NULL || strstr(err, cases[c].want) == NULL)
			print_error("%s: got '%s' want '%s'\n", cases[c].spec,
				    err, cases[c].want);
		assert_null(spool);
		assert_non_null(strstr(err, cases[c].want));
	}
	unsetenv("BRIDGEHEAD_FAULT");
}

/* ------------------------------------------------------------ updates */

#define UPD_N 64

struct upd_result {
	int calls;
	int error;
};

static void
on_update(void *arg, const char *id, int error)
{
	struct upd_result *u = arg;
	(void)id;
	u->calls++;
	u->error = error;
}

/* Commit n messages; their ids into ids[]. */
static void
commit_many(struct fixture *f, struct spool *spool, size_t n,
	    char ids[][QID_MAX + 1])
{
	for (size_t i = 0; i < n; i++) {
		struct result r = commit_one(f, spool, "x\r\n", 3, ids[i]);
		assert_int_equal(r.error, 0);
	}
}

/* The envelope of id with one more attempt whose reply names `tag`. */
static void
env_with_attempt(struct spool *spool, const char *id, const char *tag,
		 struct envelope *env)
{
	memset(env, 0, sizeof *env);
	assert_int_equal(spool_load(spool, id, env), 0);
	assert_int_equal(
		envelope_add_attempt(env, time(NULL), "mx.example.net", tag),
		0);
	env->next_attempt = time(NULL) + 300;
}

static bool
file_in(const struct fixture *f, const char *sub, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/queue/%s/%s", f->dir, sub, name);
	return stat(path, &st) == 0;
}

/* Files named ID.upd in incoming/ (none may outlive an update). */
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
 * Many updates at once: every callback 0 and after the loop returned,
 * each envelope durable with its attempt, nothing left in incoming/, the
 * active/ fsyncs shared.
 */
static void
test_update_async(void **state)
{
	struct fixture *f = *state;
	char err[256], ids[UPD_N][QID_MAX + 1];
	struct upd_result u[UPD_N];
	int calls = 0;

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	commit_many(f, spool, UPD_N, ids);
	struct spool_stats before, after;
	spool_stats(spool, &before);
	memset(u, 0, sizeof u);
	for (size_t i = 0; i < UPD_N; i++) {
		struct envelope env;
		env_with_attempt(spool, ids[i], "451 4.4.1 async", &env);
		assert_int_equal(
			spool_update_async(spool, &env, on_update, &u[i]), 0);
		envelope_clear(&env); /* formatted already */
		assert_int_equal(u[i].calls, 0);
	}
	for (int round = 0; calls < UPD_N && round < 100000; round++) {
		event_base_loop(f->base, EVLOOP_ONCE);
		calls = 0;
		for (size_t i = 0; i < UPD_N; i++)
			calls += u[i].calls;
	}
	assert_int_equal(calls, UPD_N);
	for (size_t i = 0; i < UPD_N; i++) {
		struct envelope env = {0};
		if (u[i].calls != 1 || u[i].error != 0)
			print_error("%s: got calls=%d error=%d want 1, 0\n",
				    ids[i], u[i].calls, u[i].error);
		assert_int_equal(u[i].error, 0);
		assert_int_equal(spool_load(spool, ids[i], &env), 0);
		assert_int_equal(env.n_attempts, 1);
		assert_string_equal(env.attempts[0].reply, "451 4.4.1 async");
		envelope_clear(&env);
	}
	assert_int_equal(count_upd(f), 0);
	spool_stats(spool, &after);
	assert_int_equal(after.updates - before.updates, UPD_N);
	assert_int_equal(after.update_failures, 0);
	uint64_t syncs = after.dir_fsyncs - before.dir_fsyncs;
	if (syncs < 1 || syncs > UPD_N)
		print_error("active/ fsyncs: got %llu want 1..%d\n",
			    (unsigned long long)syncs, UPD_N);
	assert_true(syncs >= 1 && syncs <= UPD_N);
	/* A bad id is refused at once, without a callback. */
	struct envelope bad = {0};
	snprintf(bad.id, sizeof bad.id, "../x");
	struct upd_result ub = {0};
	errno = 0;
	assert_int_equal(spool_update_async(spool, &bad, on_update, &ub), -1);
	assert_int_equal(errno, EINVAL);
	spool_close(spool);
	assert_int_equal(ub.calls, 0);
}

/*
 * Updates racing with deletes, in every order the pool allows: a message
 * deleted before its update reports ENOENT; one deleted while its update
 * runs reports 0 or ENOENT; in every case a deleted message stays deleted
 * (no envelope comes back, nothing is left anywhere).  The untouched ones
 * are updated.  Several rounds, to meet the worker at different points.
 */
static void
test_update_delete_race(void **state)
{
	struct fixture *f = *state;
	char err[256], ids[UPD_N][QID_MAX + 1];
	struct upd_result u[UPD_N];

	struct spool *spool = spool_open(f->dir, f->base, err, sizeof err);
	assert_non_null(spool);
	for (int round = 0; round < 5; round++) {
		commit_many(f, spool, UPD_N, ids);
		memset(u, 0, sizeof u);
		for (size_t i = 0; i < UPD_N; i++) {
			struct envelope env;
			env_with_attempt(spool, ids[i], "451 race", &env);
			if (i % 4 == 0) /* deleted first: always ENOENT */
				assert_int_equal(spool_delete(spool, ids[i]),
						 0);
			assert_int_equal(spool_update_async(spool, &env,
							    on_update, &u[i]),
					 0);
			envelope_clear(&env);
			/* Deleted while its update is out (or after). */
			if (i % 4 == 1)
				assert_int_equal(spool_delete(spool, ids[i]),
						 0);
		}
		int calls = 0;
		for (int k = 0; calls < UPD_N && k < 100000; k++) {
			event_base_loop(f->base, EVLOOP_ONCE);
			calls = 0;
			for (size_t i = 0; i < UPD_N; i++)
				calls += u[i].calls;
		}
		assert_int_equal(calls, UPD_N);
		for (size_t i = 0; i < UPD_N; i++) {
			struct envelope env = {0};
			int want = i % 4 == 0 ? ENOENT : 0;
			bool deleted = i % 4 <= 1;
			if (u[i].calls != 1 ||
			    (u[i].error != want &&
			     !(i % 4 == 1 && u[i].error == ENOENT)))
				print_error("round %d %s (%zu): got calls=%d "
					    "error=%d want 1, %d\n",
					    round, ids[i], i % 4, u[i].calls,
					    u[i].error, want);
			assert_int_equal(u[i].calls, 1);
			if (i % 4 == 1)
				assert_true(u[i].error == 0 ||
					    u[i].error == ENOENT);
			else
				assert_int_equal(u[i].error, want);
			errno = 0;
			int rc = spool_load(spool, ids[i], &env);
			if (deleted) {
				/* Its content may wait for the worker. */
				char ename[QID_MAX + 8];
				snprintf(ename, sizeof ename, "%.*s.env",
					 QID_MAX, ids[i]);
				bool back = file_in(f, "active", ename);
				if (rc == 0 || back)
					print_error("round %d %s: deleted, "
						    "but back in active/\n",
						    round, ids[i]);
				assert_int_equal(rc, -1);
				assert_int_equal(errno, ENOENT);
				assert_false(back);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(env.n_attempts, 1);
				envelope_clear(&env);
				assert_int_equal(spool_delete(spool, ids[i]),
						 0);
			}
		}
		assert_int_equal(count_upd(f), 0);
		/* Let the deletes of this round finish. */
		for (int k = 0; count_files(f, "active") > 0 && k < 10000; k++)
			event_base_loop(f->base, EVLOOP_ONCE);
		assert_int_equal(count_files(f, "active"), 0);
	}
	struct spool_stats st;
	spool_stats(spool, &st);
	assert_int_equal(st.update_failures, 0); /* ENOENT is no failure */
	spool_close(spool);
}

/*
 * BRIDGEHEAD_FAULT on the update path, synchronous (the CLI's, no pool)
 * and asynchronous (the server's) alike: the errno comes back, the old
 * envelope stays readable, no ID.upd is left.  The message is committed
 * before the fault is armed.
 */
static const struct {
	const char *spec;
	int want;
	bool maybe_new; /* the exchange happened; only active/'s fsync failed */
} upd_faults[] = {
	{"spool_write:ENOSPC", ENOSPC, false},
	{"spool_fsync:EIO", EIO, false},
	{"spool_rename:EROFS", EROFS, false},
	{"spool_fsync:EIO:1", EIO, true},
};

static void
test_update_faults(void **state)
{
	struct fixture *f = *state;
	char err[256], id[QID_MAX + 1];

	for (size_t c = 0; c < sizeof upd_faults / sizeof upd_faults[0]; c++) {
		for (int async = 0; async < 2; async++) {
			unsetenv("BRIDGEHEAD_FAULT");
			struct spool *spool =
				spool_open(f->dir, f->base, err, sizeof err);
			assert_non_null(spool);
			assert_int_equal(commit_one(f, spool, "x", 1, id).error,
					 0);
			spool_close(spool);
			setenv("BRIDGEHEAD_FAULT", upd_faults[c].spec, 1);
			spool = spool_open(f->dir, async ? f->base : NULL, err,
					   sizeof err);
			assert_non_null(spool);
			struct envelope env;
			env_with_attempt(spool, id, "451 fault", &env);
			int got;
			if (async) {
				struct upd_result u = {0};
				assert_int_equal(spool_update_async(spool, &env,
								    on_update,
								    &u),
						 0);
				run_until(f->base, &u.calls, 1);
				got = u.error;
				struct spool_stats st;
				spool_stats(spool, &st);
				assert_int_equal(st.update_failures, 1);
				assert_int_equal(st.updates, 0);
			} else {
				errno = 0;
				got = spool_update(spool, &env) == 0 ? 0
								     : errno;
			}
			envelope_clear(&env);
			if (got != upd_faults[c].want)
				print_error("%s (%s): got %d want %d\n",
					    upd_faults[c].spec,
					    async ? "async" : "sync", got,
					    upd_faults[c].want);
			assert_int_equal(got, upd_faults[c].want);
			assert_int_equal(spool_load(spool, id, &env), 0);
			if (!upd_faults[c].maybe_new)
				assert_int_equal(env.n_attempts, 0);
			envelope_clear(&env);
			assert_int_equal(count_upd(f), 0);
			assert_int_equal(count_id(f, "active", id), 2);
			unsetenv("BRIDGEHEAD_FAULT");
			assert_int_equal(spool_delete(spool, id), 0);
			spool_close(spool);
		}
	}
}

/* ------------------------------------------------------------ the rest */

static void
test_nocreate(void **state)
{
	struct fixture *f = *state;
	char err[256], missing[512], want[600];

	snprintf(missing, sizeof missing, "%s/none", f->dir);
	assert_null(spool_open_flags(missing, NULL, SPOOL_NOCREATE, err,
				     sizeof err));
	snprintf(want, sizeof want, "no queue at %s/queue", missing);
	assert_string_equal(err, want);
	struct stat st;
	assert_int_equal(stat(missing, &st), -1);

	/* Created by a server once, then readable without a base. */
	struct spool *spool = spool_open(missing, NULL, err, sizeof err);
	assert_non_null(spool);
	spool_close(spool);
	spool = spool_open_flags(missing, NULL, SPOOL_NOCREATE, err,
				 sizeof err);
	assert_non_null(spool);
	int seen = 0;
	assert_int_equal(spool_foreach(spool, count_each, &seen), 0);
	assert_int_equal(seen, 0);
	spool_close(spool);

	/* A state_dir whose parent is missing: a clear error. */
	snprintf(missing, sizeof missing, "%s/a/b", f->dir);
	assert_null(spool_open(missing, NULL, err, sizeof err));
	assert_non_null(strstr(err, "cannot create"));
}

static void
test_ids(void **state)
{
	(void)state;
	enum { N = 10000 };
	static char ids[N][QID_LEN + 1];

	for (int i = 0; i < N; i++) {
		assert_int_equal(qid_new(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), QID_LEN);
		assert_true(spool_id_valid(ids[i]));
	}
	/* Unique. */
	for (int i = 0; i < N; i++) {
		for (int j = i + 1; j < N; j++) {
			if (strcmp(ids[i], ids[j]) == 0)
				print_error("duplicate id %s\n", ids[i]);
			assert_int_not_equal(strcmp(ids[i], ids[j]), 0);
		}
	}
	/* Time-ordered as strings. */
	char a[QID_LEN + 1], b[QID_LEN + 1];
	assert_int_equal(qid_new(a), 0);
	usleep(2000);
	assert_int_equal(qid_new(b), 0);
	if (strcmp(a, b) >= 0)
		print_error("got %s >= %s, want earlier < later\n", a, b);
	assert_true(strcmp(a, b) < 0);

	static const struct {
		const char *id;
		int valid;
	} cases[] = {
		{"0RZk3m9aB7cDeFgH", 1},
		{"abcdefgh", 1},
		{"abcdefg", 0},
		{"0123456789abcdefghijABCDEFGHIJ01", 1},
		{"0123456789abcdefghijABCDEFGHIJ012", 0},
		{"abcd-efgh", 0},
		{"abcdefgh.env", 0},
		{"../../etc/passwd", 0},
		{"", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = spool_id_valid(cases[i].id);
		if (got != cases[i].valid)
			print_error("'%s': got %d want %d\n", cases[i].id, got,
				    cases[i].valid);
		assert_int_equal(got, cases[i].valid);
	}
	assert_false(spool_id_valid(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_load_delete, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_drains, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stock_idle, setup,
						teardown),
		cmocka_unit_test(test_dirsync),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_create, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fault_spec_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_update_async, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_update_delete_race, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_update_faults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nocreate, setup, teardown),
		cmocka_unit_test(test_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
