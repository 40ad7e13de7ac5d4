/*
 * commit: worker pool with completions posted to the event loop, and the
 * leader/follower group commit of a directory fsync.  See commit.h for the
 * contract; this file explains the threading.
 *
 * Threads touch only: the job FIFO and the done list (pool->lock), the
 * eventfd (write), and whatever job->run() touches.  libevent is used on
 * the loop thread alone, so the base needs no locking of its own.
 */
#include "queue/commit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/log.h"

struct commit_pool {
	struct event_base *base;
	commit_run_fn *run;
	commit_after_fn *after;
	void *run_arg;
	struct event *ev; /* EV_READ on efd, added while jobs are pending */
	int efd;
	unsigned max_threads;
	unsigned n_threads;
	pthread_t *threads;

	pthread_mutex_t lock;		/* guards everything below */
	pthread_cond_t cond;		/* work arrived, or stopping */
	struct commit_job *head, *tail; /* to run, FIFO */
	size_t queued;			/* jobs in that FIFO */
	struct commit_job *done;	/* finished, newest first */
	bool stopping;

	size_t pending; /* loop thread only */
};

/* ---------------------------------------------------------------- pool */

/*
 * How many jobs one worker takes: its share of the queue, at least one.
 * Taking everything would leave the other threads idle; taking one at a
 * time would cost a journal commit per message.
 */
static size_t
commit_batch_size(const struct commit_pool *pool)
{
	size_t n = (pool->queued + pool->n_threads - 1) / pool->n_threads;
	if (n > COMMIT_BATCH_MAX)
		n = COMMIT_BATCH_MAX;
	return n > 0 ? n : 1;
}

static void *
commit_worker(void *arg)
{
	struct commit_pool *pool = arg;
	struct commit_job *batch[COMMIT_BATCH_MAX];
	const uint64_t one = 1;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->head == NULL)
			break; /* stopping, and nothing left to run */
		size_t want = commit_batch_size(pool), n = 0;
		while (n < want && pool->head != NULL) {
			batch[n++] = pool->head;
			pool->head = pool->head->next;
		}
		if (pool->head == NULL)
			pool->tail = NULL;
		pool->queued -= n;
		pthread_mutex_unlock(&pool->lock);

		pool->run(pool->run_arg, batch, n);

		pthread_mutex_lock(&pool->lock);
		for (size_t i = 0; i < n; i++) {
			batch[i]->next = pool->done;
			pool->done = batch[i];
		}
		/*
		 * An eventfd write fails only when the counter would pass
		 * 2^64-2, and the loop resets it on every wake-up.
		 */
		(void)!write(pool->efd, &one, sizeof one);
		if (pool->after != NULL) {
			pthread_mutex_unlock(&pool->lock);
			pool->after(pool->run_arg, n);
			pthread_mutex_lock(&pool->lock);
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Run done() for everything finished; on the loop thread. */
static void
commit_pool_reap(struct commit_pool *pool)
{
	uint64_t count;

	if (read(pool->efd, &count, sizeof count) < 0 && errno != EAGAIN)
		log_warn("commit: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&pool->lock);
	struct commit_job *list = pool->done;
	pool->done = NULL;
	pthread_mutex_unlock(&pool->lock);

	/* Newest first -> completion order. */
	struct commit_job *fifo = NULL;
	while (list != NULL) {
		struct commit_job *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo != NULL) {
		struct commit_job *job = fifo;
		fifo = job->next;
		pool->pending--;
		job->done(job); /* may submit more work */
	}
	if (pool->pending == 0 && pool->ev != NULL)
		event_del(pool->ev);
}

static void
commit_pool_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	commit_pool_reap(arg);
}

struct commit_pool *
commit_pool_new(struct event_base *base, unsigned threads, commit_run_fn *run,
		commit_after_fn *after, void *arg)
{
	struct commit_pool *pool = calloc(1, sizeof *pool);

	if (pool == NULL)
		return NULL;
	pool->base = base;
	pool->run = run;
	pool->after = after;
	pool->run_arg = arg;
	pool->max_threads = threads > 0 ? threads : COMMIT_THREADS_DEFAULT;
	pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->efd < 0)
		goto fail;
	pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST,
			     commit_pool_event, pool);
	if (pool->ev == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	return pool;
fail:;
	int saved = errno;
	if (pool->efd >= 0)
		close(pool->efd);
	free(pool);
	errno = saved;
	return NULL;
}

/*
 * The threads start on the first submit, all at once.  Signals stay with
 * the loop thread: workers are created with every signal blocked.
 */
static int
commit_pool_start(struct commit_pool *pool)
{
	sigset_t all, old;
	int err = 0;

	pool->threads = calloc(pool->max_threads, sizeof *pool->threads);
	if (pool->threads == NULL)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	while (pool->n_threads < pool->max_threads) {
		err = pthread_create(&pool->threads[pool->n_threads], NULL,
				     commit_worker, pool);
		if (err != 0)
			break;
		pool->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pool->n_threads == 0) {
		free(pool->threads);
		pool->threads = NULL;
		errno = err;
		return -1;
	}
	if (err != 0)
		log_warn("commit: started %u of %u threads: %s",
			 pool->n_threads, pool->max_threads, strerror(err));
	return 0;
}

static void
commit_pool_track(struct commit_pool *pool)
{
	if (pool->pending++ == 0)
		event_add(pool->ev, NULL);
}

int
commit_pool_submit(struct commit_pool *pool, struct commit_job *job)
{
	if (pool->n_threads == 0 && commit_pool_start(pool) != 0)
		return -1;
	job->next = NULL;
	commit_pool_track(pool);
	pthread_mutex_lock(&pool->lock);
	if (pool->tail != NULL)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pool->queued++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

void
commit_pool_post(struct commit_pool *pool, struct commit_job *job)
{
	const uint64_t one = 1;

	commit_pool_track(pool);
	pthread_mutex_lock(&pool->lock);
	job->next = pool->done;
	pool->done = job;
	(void)!write(pool->efd, &one, sizeof one);
	pthread_mutex_unlock(&pool->lock);
}

size_t
commit_pool_pending(const struct commit_pool *pool)
{
	return pool->pending;
}

void
commit_pool_free(struct commit_pool *pool)
{
	if (pool == NULL)
		return;
	/* Drain: every submitted job gets its done() before we go. */
	while (pool->pending > 0) {
		struct pollfd pfd = {.fd = pool->efd, .events = POLLIN};
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			panic("commit: poll: %s", strerror(errno));
		commit_pool_reap(pool);
	}
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	event_free(pool->ev);
	close(pool->efd);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool);
}

/* ------------------------------------------------------------- dirsync */

int
commit_dirsync_init(struct commit_dirsync *ds, int fd,
		    int (*sync)(void *arg, int fd), void *arg)
{
	memset(ds, 0, sizeof *ds);
	ds->fd = fd;
	ds->sync = sync;
	ds->arg = arg;
	int err = pthread_mutex_init(&ds->lock, NULL);
	if (err == 0) {
		err = pthread_cond_init(&ds->cond, NULL);
		if (err != 0)
			pthread_mutex_destroy(&ds->lock);
	}
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

void
commit_dirsync_destroy(struct commit_dirsync *ds)
{
	pthread_mutex_destroy(&ds->lock);
	pthread_cond_destroy(&ds->cond);
}

int
commit_dirsync_wait(struct commit_dirsync *ds)
{
	int result;

	pthread_mutex_lock(&ds->lock);
	/* An fsync running now may have started before our rename. */
	uint64_t target = ds->started + 1;
	while (ds->done < target) {
		if (ds->running) {
			pthread_cond_wait(&ds->cond, &ds->lock);
			continue;
		}
		/* Leader: this fsync covers every rename done so far. */
		uint64_t gen = ++ds->started;
		ds->running = true;
		pthread_mutex_unlock(&ds->lock);
		int err = ds->sync(ds->arg, ds->fd);
		pthread_mutex_lock(&ds->lock);
		ds->running = false;
		ds->done = gen;
		if (err != 0) {
			ds->failed = gen;
			ds->failed_error = err;
		}
		pthread_cond_broadcast(&ds->cond);
	}
	result = ds->failed >= target ? ds->failed_error : 0;
	pthread_mutex_unlock(&ds->lock);
	return result;
}

uint64_t
commit_dirsync_count(struct commit_dirsync *ds)
{
	pthread_mutex_lock(&ds->lock);
	uint64_t n = ds->done;
	pthread_mutex_unlock(&ds->lock);
	return n;
}
