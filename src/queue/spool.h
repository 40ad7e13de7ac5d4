/*
 * spool: the on-disk queue under state_dir/queue and its durable-write path.
 *
 *   queue/incoming/   messages being received (ID.msg, ID.env temp files)
 *   queue/active/     committed messages: ID.msg (content), ID.env (envelope)
 *   queue/corrupt/    files found unreadable at start, moved aside, never deleted
 *
 * A message is committed when its envelope exists in active/: the commit
 * writes and fsyncs ID.msg and ID.env in incoming/, renames ID.msg then
 * ID.env into active/, and fsyncs active/.  Only then does the callback
 * report success, and only then may the server answer 250 (cases C28).
 * Commits run on a small pool of threads and share the directory fsync
 * (group commit); callbacks run on the event loop thread.
 *
 *   spool_open()         open (create) the folders; base may be NULL for CLI use.
 *                        With a base (a server), the queue is locked: a second
 *                        server on the same state_dir is refused.
 *   spool_recover()      at start: empty incoming/, drop an ID.msg without
 *                        envelope, move unreadable envelopes to corrupt/.
 *   spool_msg_new()      start a message in incoming/ with a fresh queue id.
 *   spool_msg_write()    append content (buffered); errors are sticky.
 *   spool_msg_abort()    remove it.
 *   spool_msg_commit()   make it durable, then call back on the loop.
 *   spool_foreach(), spool_load(), spool_delete(), spool_content_path():
 *                        for the CLI and the scheduler.
 *   spool_update()       rewrite a committed envelope durably (attempts,
 *                        recipient states, next attempt, held); blocks.
 *   spool_update_async() the same on the pool, batched with the commits
 *                        (shares their fsync of active/); calls back on
 *                        the loop.  Both run the one durable-write path.
 *   spool_open_flags()   spool_open() with SPOOL_NOCREATE for the CLI:
 *                        "no queue at PATH" instead of creating one.
 *   spool_msg_size()     bytes written so far (for env->size).
 *   spool_stats()        commits, updates and directory fsyncs so far.
 *
 * Threads: every function runs on the loop thread (or in the CLI); only
 * the commit work runs on the pool.  Without an event base (CLI use) no
 * thread is ever started and spool_msg_commit() must not be called.
 * spool_close() first runs the callbacks of every pending commit, so
 * messages still being written must be aborted before it.  With a base,
 * the spool also keeps a timer on it for a second after each commit (it
 * drops pre-made files when idle), and spool_delete() leaves the removal
 * of the content and the fsync of active/ to the pool.
 *
 * Fault injection (tests only).  BRIDGEHEAD_FAULT, read by spool_open(), is
 * a comma-separated list of OP:ERRNO[:AFTER]: the AFTER first calls of OP
 * succeed (default 0), every later one fails with ERRNO (a name such as
 * ENOSPC, EDQUOT, EIO, EROFS, EACCES, or a number).  OP is one of
 *   spool_create  creating incoming/ID.msg (spool_msg_new)
 *   spool_write   any write(2) of message content or an envelope
 *   spool_fsync   any fsync(2) of a queue file or directory
 *   spool_rename  any rename(2) into active/ (an update's exchange too)
 * e.g. BRIDGEHEAD_FAULT=spool_write:ENOSPC makes every commit fail with
 * ENOSPC (the server answers 452 4.3.1) and leaves nothing in the queue.
 * A malformed value makes spool_open() fail, naming it.
 */
#ifndef BH_QUEUE_SPOOL_H
#define BH_QUEUE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

struct event_base;
struct spool;
struct spool_msg;

/* error: 0 on success, else an errno value (ENOSPC, EIO, ...). */
typedef void spool_commit_cb(void *arg, const char *id, int error);

struct spool *spool_open(const char *state_dir, struct event_base *base,
			 char *err, size_t errlen);
#define SPOOL_NOCREATE 0x1	/* the queue must exist already */
struct spool *spool_open_flags(const char *state_dir, struct event_base *base,
			       int flags, char *err, size_t errlen);
void spool_close(struct spool *spool);

/*
 * Once, right after spool_open() and before the first spool_msg_new():
 * EBUSY after that.  0, or -1 with errno when a folder cannot be read.
 * n_messages: committed messages found; n_corrupt: files moved to
 * corrupt/ (each logged).
 */
int spool_recover(struct spool *spool, size_t *n_messages, size_t *n_corrupt);

/* NULL with errno set on failure. */
struct spool_msg *spool_msg_new(struct spool *spool);
const char *spool_msg_id(const struct spool_msg *msg);
/* 0, or -1 with errno (sticky: later writes fail too). */
int spool_msg_write(struct spool_msg *msg, const void *data, size_t len);
uint64_t spool_msg_size(const struct spool_msg *msg);
void spool_msg_abort(struct spool_msg *msg);
/*
 * Takes ownership of msg.  env->id must equal the message id; env is
 * formatted before this returns (the caller may free it afterwards).
 * cb runs later on the loop thread, exactly once, even on failure; on
 * failure nothing of the message is left in active/.
 */
void spool_msg_commit(struct spool_msg *msg, const struct envelope *env,
		      spool_commit_cb *cb, void *arg);

/* Calls each() for every committed message, in no order; stops if it returns non-zero. */
int spool_foreach(struct spool *spool,
		  int (*each)(const struct envelope *env, void *arg), void *arg);
/* 0, or -1 with errno (ENOENT: no such message). */
int spool_load(struct spool *spool, const char *id, struct envelope *env);
int spool_delete(struct spool *spool, const char *id);
int spool_content_path(struct spool *spool, const char *id, char *path,
		       size_t pathlen);

/* Is id a well-formed queue id (8-32 of [0-9A-Za-z])? */
int spool_id_valid(const char *id);

/*
 * Replace the envelope of a committed message (same id): written to
 * incoming/ID.upd and fsync'd, exchanged atomically with active/ID.env,
 * active/ fsync'd.  Blocks for those fsyncs.  0, or -1 with errno (ENOENT:
 * the message is gone -- a deleted message is never brought back).  At
 * most one update of an id at a time (sync or async).
 */
int spool_update(struct spool *spool, const struct envelope *env);

/*
 * The same on the commit pool (a spool with an event base only): env is
 * formatted before this returns (the caller may change or free it), the
 * write, fsync and exchange run on a worker, batched with commits, and the
 * fsync of active/ is shared with them.  cb(arg, id, error) then runs on
 * the loop thread, exactly once: error 0 (durable), ENOENT (the message
 * was deleted before the exchange: nothing was written back), or the
 * errno of the failed step (the old envelope stays, logged).  A delete
 * after the exchange wins as usual.  Returns 0 when cb will be called, or
 * -1 with errno (EINVAL: bad id; ENOMEM) and cb is never called.
 * spool_close() runs the callbacks of updates still in flight.
 */
int spool_update_async(struct spool *spool, const struct envelope *env,
		       spool_commit_cb *cb, void *arg);

struct spool_stats {
	uint64_t commits;	/* successful commits */
	uint64_t failures;	/* failed commits */
	uint64_t dir_fsyncs;	/* fsyncs of active/ (grouped) */
	uint64_t updates;	/* successful spool_update_async() */
	uint64_t update_failures; /* failed ones, ENOENT not counted */
};
void spool_stats(struct spool *spool, struct spool_stats *stats);

#endif
