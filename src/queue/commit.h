/*
 * commit: the threads that make messages durable, and the group commit of
 * a directory fsync.  Used by the spool; knows nothing of mail.
 *
 * Pool.  A fixed set of worker threads (created on the first submit, all
 * signals blocked) takes jobs from a FIFO and runs them in batches: a
 * worker takes what is queued, up to COMMIT_BATCH_MAX and spread over the
 * threads, and calls the pool's run() on the batch -- so that under load
 * one journal commit makes many messages durable.  Then it hands the jobs
 * back to the event loop (and calls after(), for housekeeping): it appends them
 * to a "done" list and bumps an eventfd that a libevent event on the loop's
 * base watches; the loop callback calls job->done() for each, in completion
 * order.  There is never a thread per message.
 *
 *   commit_pool_new()     a pool on base (threads come later).
 *   commit_pool_submit()  queue a job: run() on a worker, then done() on
 *                         the loop.  -1 with errno if no thread could start.
 *   commit_pool_post()    skip run(): done() on the loop, later (for jobs
 *                         that failed before they reached a worker).
 *   commit_pool_pending() jobs submitted or posted whose done() has not run.
 *   commit_pool_free()    run every pending job to its done() (blocking),
 *                         then stop and join the threads.
 *
 * Directory group commit.  Renaming a file into a directory is durable only
 * once the directory is fsync'd, and that fsync costs about as much as one
 * for a file.  commit_dirsync_wait() returns once an fsync of the directory
 * that *started after the call* has completed: the first caller that finds
 * no fsync running starts one (leader); the others wait for it (followers).
 * Callers that arrive while an fsync runs wait for the next one, which
 * covers all of them at once.  Generations under one mutex:
 *   started: number of the latest fsync begun; done: latest finished;
 *   failed:  latest that failed, and its errno.
 * A caller needs generation target = started + 1 (taken under the lock,
 * after its rename); it is satisfied when done >= target, and it fails if
 * any fsync in [target, done] failed (failed >= target) -- conservative:
 * after a failed fsync Linux may report success for later ones although
 * the entries were never written.
 *
 *   commit_dirsync_init(), commit_dirsync_destroy()
 *   commit_dirsync_wait()   0 or the errno of the fsync that covered us.
 *   commit_dirsync_count()  how many fsyncs ran (for tests and metrics).
 */
#ifndef BH_QUEUE_COMMIT_H
#define BH_QUEUE_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct commit_pool;

struct commit_job {
	struct commit_job *next;	      /* the pool's */
	void (*done)(struct commit_job *job); /* on the loop thread */
};

#define COMMIT_THREADS_DEFAULT 8
#define COMMIT_BATCH_MAX 32

/* On a worker thread: make jobs[0..n-1] durable (1 <= n <= COMMIT_BATCH_MAX).
 */
typedef void commit_run_fn(void *arg, struct commit_job **jobs, size_t n);
/*
 * On a worker thread, after a batch of n was handed back to the loop:
 * housekeeping that should not delay the results (may be NULL).
 */
typedef void commit_after_fn(void *arg, size_t n);

/* NULL with errno. */
struct commit_pool *commit_pool_new(struct event_base *base, unsigned threads,
				    commit_run_fn *run, commit_after_fn *after,
				    void *arg);
int commit_pool_submit(struct commit_pool *pool, struct commit_job *job);
void commit_pool_post(struct commit_pool *pool, struct commit_job *job);
size_t commit_pool_pending(const struct commit_pool *pool);
void commit_pool_free(struct commit_pool *pool);

struct commit_dirsync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;
	int (*sync)(void *arg, int fd); /* 0 or an errno value */
	void *arg;
	uint64_t started;
	uint64_t done;
	uint64_t failed;
	int failed_error;
	bool running;
};

/* sync: the fsync to run (a seam for fault injection); 0 or an errno value. */
int commit_dirsync_init(struct commit_dirsync *ds, int fd,
			int (*sync)(void *arg, int fd), void *arg);
void commit_dirsync_destroy(struct commit_dirsync *ds);
int commit_dirsync_wait(struct commit_dirsync *ds);
uint64_t commit_dirsync_count(struct commit_dirsync *ds);

#endif
