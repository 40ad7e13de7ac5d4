/*
 * spool: the queue on disk and the one durable-write path of a message
 * (docs/queue-format.md).  See spool.h for the public functions.
 *
 * Commit protocol, per message (cases C28: a 250 only after all of it):
 *   1. incoming/ID.msg, created O_EXCL 0600, is handed out by
 *      spool_msg_new() and filled by spool_msg_write() (64 KiB buffer,
 *      allocated on first use);
 *   2. on a worker: flush ID.msg, write incoming/ID.env (the envelope
 *      text), fsync ID.msg, fsync ID.env;
 *   3. rename ID.msg, then ID.env, into active/ (RENAME_NOREPLACE: an id
 *      collision is an error, never an overwrite);
 *   4. wait for an fsync of active/ that started after the renames
 *      (group commit, commit.h);
 *   5. post the result to the loop, which calls the callback.
 * The envelope in active/ is the commit point: recovery drops an ID.msg
 * without one, and spool_delete() removes it first.  On any failure the
 * files of the message are removed from incoming/ and active/ (envelope
 * first) and the callback gets the errno.
 *
 * Envelope updates take the same path, in the same batches (one job kind
 * among commit, delete and update): incoming/ID.upd is written in step 2
 * and fsync'd with the others, exchanged with active/ID.env in step 3
 * (RENAME_EXCHANGE: ENOENT if the message was deleted, so a deleted
 * message never comes back), and covered by the shared fsync of active/
 * in step 4; the old envelope, now incoming/ID.upd, is then removed.
 * spool_update() runs that batch code for one job on the calling thread;
 * spool_update_async() submits the job to the pool.
 *
 * The stock.  Creating a file is a directory operation, and directory
 * operations wait for the filesystem journal, which the commit threads keep
 * busy: measured, an openat(O_CREAT) on the loop thread took a third of a
 * millisecond under load -- most of the loop's time.  So the workers also
 * create the files: after each batch they top up a small stock of empty
 * incoming/ID.msg files (open descriptors), and spool_msg_new() takes one
 * without a system call.  Only when the stock is empty (at start, or after
 * a burst) does it create one itself.  The stock exists only under load:
 * one second after the last commit, the loop removes it (and workers stop
 * adding to it until a message is made again), so that an idle queue's
 * incoming/ holds exactly the messages being received.  An id is made when
 * its file is created, at most a second before its message arrives; ids
 * still sort roughly by time.  Stock files are ordinary never-committed
 * files: spool_close() removes them, recovery does after a crash.
 *
 * Everything here runs on the loop thread except spool_commit_batch() and
 * spool_commit_after() (the stock's refill), which touch only their own
 * messages, the directory descriptors (read-only after open), the fault
 * counters (atomics), the dirsync (its mutex), the stock (its mutex) and
 * env_lock (the update's fallback without RENAME_EXCHANGE).
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "queue/commit.h"
#include "queue/qid.h"
#include "util/log.h"

#define SPOOL_BUF_SIZE (64 * 1024)
#define SPOOL_ENV_MAX (16 * 1024 * 1024) /* far above 1000 recipients */
#define SPOOL_NAME_MAX (QID_MAX + 8)	 /* "ID.msg" */
#define SPOOL_CREATE_TRIES 8
#define SPOOL_STOCK_MAX 32
#define SPOOL_STOCK_IDLE_MS 1000

enum spool_op {
	SPOOL_OP_CREATE,
	SPOOL_OP_WRITE,
	SPOOL_OP_FSYNC,
	SPOOL_OP_RENAME,
	SPOOL_OP_COUNT,
};

static const char *const spool_op_names[SPOOL_OP_COUNT] = {
	"spool_create",
	"spool_write",
	"spool_fsync",
	"spool_rename",
};

struct spool_fault {
	bool armed;
	int error;
	unsigned long after;
	atomic_ulong calls;
};

struct spool_stock_file {
	char id[QID_MAX + 1];
	int fd;
};

struct spool {
	char *queue_dir; /* state_dir/queue */
	int incoming_fd;
	int active_fd;
	int corrupt_fd;
	struct commit_pool *pool;	   /* NULL without an event base */
	struct commit_dirsync active_sync; /* with or without a pool */
	bool sync_ready;		   /* active_sync and env_lock made */
	bool stock_ready;		   /* stock_lock made (with a pool) */
	/*
	 * Held around the removal of an envelope (spool_delete) and around
	 * an update's check-then-rename where RENAME_EXCHANGE is missing, so
	 * that an update never brings back an envelope deleted meanwhile.
	 */
	pthread_mutex_t env_lock;
	struct spool_fault faults[SPOOL_OP_COUNT];
	pthread_mutex_t stock_lock; /* with a pool only */
	struct spool_stock_file stock[SPOOL_STOCK_MAX];
	size_t n_stock;
	bool stock_closed;	  /* idle: workers add nothing */
	struct event *stock_idle; /* loop timer: drop the stock when idle */
	bool used;		  /* a message was made: too late to recover */
	uint64_t commits;	  /* loop thread */
	uint64_t failures;	  /* loop thread */
	uint64_t updates;	  /* loop thread: spool_update_async() */
	uint64_t update_failures; /* loop thread: ENOENT not counted */
};

enum spool_job_kind {
	SPOOL_JOB_COMMIT, /* a new message: spool_msg_commit() */
	SPOOL_JOB_DELETE, /* the tail of spool_delete() */
	SPOOL_JOB_UPDATE, /* a new envelope: spool_update(_async)() */
};

struct spool_msg {
	struct commit_job job; /* first: the pool hands the job back */
	struct spool *spool;
	char id[QID_MAX + 1];
	enum spool_job_kind kind;
	int fd;
	int env_fd;	/* worker only */
	bool msg_moved; /* worker only: renamed into active/ */
	bool env_moved;
	char *buf;
	size_t buflen;
	uint64_t size;
	int error; /* sticky errno */
	char *env_text;
	size_t env_len;
	spool_commit_cb *cb;
	void *arg;
	int result;
	const char *failed_op;
};

enum spool_name_kind { SPOOL_NAME_OTHER, SPOOL_NAME_MSG, SPOOL_NAME_ENV };

static commit_run_fn spool_commit_batch;
static void spool_stock_idle(evutil_socket_t fd, short what, void *arg);
static void spool_stock_drop(struct spool *spool,
			     const struct spool_stock_file *files, size_t n);
static commit_after_fn spool_commit_after;

/* ------------------------------------------------------------- helpers */

/* "ID.msg" / "ID.env" with a valid id; id gets the id part. */
static enum spool_name_kind
spool_name_kind(const char *name, char id[QID_MAX + 1])
{
	size_t n = strlen(name);

	if (n < 5 || name[n - 4] != '.' || !qid_valid(name, n - 4))
		return SPOOL_NAME_OTHER;
	memcpy(id, name, n - 4);
	id[n - 4] = '\0';
	if (strcmp(name + n - 3, "msg") == 0)
		return SPOOL_NAME_MSG;
	if (strcmp(name + n - 3, "env") == 0)
		return SPOOL_NAME_ENV;
	return SPOOL_NAME_OTHER;
}

static void
spool_name(char *out, size_t len, const char *id, const char *ext)
{
	int n = snprintf(out, len, "%s.%s", id, ext);
	if (n < 0 || (size_t)n >= len)
		panic("spool: name of %s.%s does not fit", id, ext);
}

/* The seam of BRIDGEHEAD_FAULT: -1 with errno when op is to fail now. */
static int
spool_fault(struct spool *spool, enum spool_op op)
{
	struct spool_fault *f = &spool->faults[op];

	if (!f->armed)
		return 0;
	if (atomic_fetch_add(&f->calls, 1) < f->after)
		return 0;
	errno = f->error;
	return -1;
}

static int
spool_write_all(struct spool *spool, int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		if (spool_fault(spool, SPOOL_OP_WRITE) != 0)
			return -1;
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) { /* a regular file never does this */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
spool_fsync_fd(struct spool *spool, int fd)
{
	if (spool_fault(spool, SPOOL_OP_FSYNC) != 0)
		return -1;
	while (fsync(fd) != 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* The fsync that commit_dirsync_wait() runs: 0 or errno. */
static int
spool_dirsync_fn(void *arg, int fd)
{
	return spool_fsync_fd(arg, fd) == 0 ? 0 : errno;
}

/* Rename that never replaces an existing file. */
static int
spool_rename_noreplace(int from_fd, const char *from, int to_fd, const char *to)
{
	struct stat st;

	if (renameat2(from_fd, from, to_fd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A filesystem without RENAME_NOREPLACE: ids are unique anyway. */
	if (fstatat(to_fd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(from_fd, from, to_fd, to);
}

/* The same for the commit path, where BRIDGEHEAD_FAULT applies. */
static int
spool_rename_new(struct spool *spool, int from_fd, const char *from, int to_fd,
		 const char *to)
{
	if (spool_fault(spool, SPOOL_OP_RENAME) != 0)
		return -1;
	return spool_rename_noreplace(from_fd, from, to_fd, to);
}

static bool
spool_exists(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Whole file dirfd/name into a malloc'd NUL-terminated buffer. */
static int
spool_read_file(int dirfd, const char *name, size_t max, char **text,
		size_t *len)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	size_t cap = (size_t)st.st_size;
	char *buf = malloc(cap + 1);
	if (buf == NULL)
		goto fail;
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			goto fail;
		}
		if (n == 0)
			break; /* shrank meanwhile: parse what is there */
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return 0;
fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Names in a directory, without "." and "..". */
static int
spool_list_dir(int dirfd, char ***names, size_t *n_names)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	char **list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (dir == NULL) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nl = realloc(list, ncap * sizeof *nl);
			if (nl == NULL)
				goto fail;
			list = nl;
			cap = ncap;
		}
		list[n] = strdup(de->d_name);
		if (list[n] == NULL)
			goto fail;
		n++;
	}
	if (errno != 0)
		goto fail;
	closedir(dir);
	*names = list;
	*n_names = n;
	return 0;
fail:;
	int saved = errno;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	closedir(dir);
	errno = saved;
	return -1;
}

static void
spool_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ------------------------------------------------------- open and close */

static const struct {
	const char *name;
	int value;
} spool_errnos[] = {
	{"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EIO", EIO},
	{"EROFS", EROFS},   {"EACCES", EACCES}, {"EPERM", EPERM},
	{"EMFILE", EMFILE}, {"ENFILE", ENFILE}, {"ENOMEM", ENOMEM},
	{"EFBIG", EFBIG},   {"EEXIST", EEXIST}, {"ENOENT", ENOENT},
};

static int
spool_parse_errno(const char *s)
{
	for (size_t i = 0; i < sizeof spool_errnos / sizeof spool_errnos[0];
	     i++) {
		if (strcmp(s, spool_errnos[i].name) == 0)
			return spool_errnos[i].value;
	}
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 4095)
		return -1;
	return (int)v;
}

/* One "OP:ERRNO[:AFTER]" item; ops of other modules are left alone. */
static int
spool_fault_item(struct spool *spool, char *item, char *err, size_t errlen)
{
	char *save = NULL;
	char *op = strtok_r(item, ":", &save);
	char *errname = strtok_r(NULL, ":", &save);
	char *after = strtok_r(NULL, ":", &save);
	int e;
	size_t i;

	if (op == NULL || strncmp(op, "spool_", 6) != 0)
		return 0;
	for (i = 0; i < SPOOL_OP_COUNT; i++) {
		if (strcmp(op, spool_op_names[i]) == 0)
			break;
	}
	if (i == SPOOL_OP_COUNT) {
		snprintf(err, errlen,
			 "BRIDGEHEAD_FAULT: unknown operation '%s' "
			 "(spool_create, "
			 "spool_write, spool_fsync, spool_rename)",
			 op);
		return -1;
	}
	if (errname == NULL || (e = spool_parse_errno(errname)) < 0) {
		snprintf(err, errlen,
			 "BRIDGEHEAD_FAULT: '%s' needs an errno such as ENOSPC",
			 op);
		return -1;
	}
	unsigned long n = 0;
	if (after != NULL) {
		char *end;
		errno = 0;
		n = strtoul(after, &end, 10);
		if (errno != 0 || end == after || *end != '\0' ||
		    strtok_r(NULL, ":", &save) != NULL) {
			snprintf(err, errlen,
				 "BRIDGEHEAD_FAULT: bad count '%s' for '%s'",
				 after, op);
			return -1;
		}
	}
	spool->faults[i].armed = true;
	spool->faults[i].error = e;
	spool->faults[i].after = n;
	atomic_store(&spool->faults[i].calls, 0);
	log_warn("fault injection: %s fails with %s after %lu calls", op,
		 strerror(e), n);
	return 0;
}

static int
spool_fault_parse(struct spool *spool, char *err, size_t errlen)
{
	const char *spec = getenv("BRIDGEHEAD_FAULT");

	if (spec == NULL || *spec == '\0')
		return 0;
	char *copy = strdup(spec);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char *save = NULL;
	int rc = 0;
	for (char *item = strtok_r(copy, ",", &save); item != NULL && rc == 0;
	     item = strtok_r(NULL, ",", &save))
		rc = spool_fault_item(spool, item, err, errlen);
	free(copy);
	return rc;
}

static int
spool_fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* mkdir that accepts an existing directory; fsyncs parent on creation. */
static int
spool_mkdir(const char *path, const char *parent, mode_t mode, char *err,
	    size_t errlen)
{
	struct stat st;

	if (mkdir(path, mode) == 0) {
		if (spool_fsync_path(parent) != 0) {
			snprintf(err, errlen, "cannot fsync %s: %s", parent,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		return -1;
	}
	return 0;
}

static char *
spool_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(len);
	if (p != NULL)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

static int
spool_open_dirs(struct spool *spool, const char *state_dir, bool create,
		char *err, size_t errlen)
{
	static const char *const subdirs[] = {"incoming", "active", "corrupt"};
	int *fds[] = {&spool->incoming_fd, &spool->active_fd,
		      &spool->corrupt_fd};

	if (create) {
		char *parent = strdup(state_dir);
		if (parent == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		char *slash = strrchr(parent, '/');
		if (slash == NULL)
			snprintf(parent, strlen(parent) + 1, ".");
		else
			slash[slash == parent ? 1 : 0] = '\0';
		/* Group-readable: log/ and the control socket live there. */
		int rc = spool_mkdir(state_dir, parent, 0750, err, errlen);
		free(parent);
		if (rc != 0 || spool_mkdir(spool->queue_dir, state_dir, 0700,
					   err, errlen) != 0)
			return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		char *path = spool_path(spool->queue_dir, subdirs[i]);
		if (path == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (create && spool_mkdir(path, spool->queue_dir, 0700, err,
					  errlen) != 0) {
			free(path);
			return -1;
		}
		*fds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*fds[i] < 0) {
			if (errno == ENOENT && !create)
				snprintf(err, errlen, "no queue at %s",
					 spool->queue_dir);
			else
				snprintf(err, errlen, "cannot open %s: %s",
					 path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
	}
	return 0;
}

struct spool *
spool_open_flags(const char *state_dir, struct event_base *base, int flags,
		 char *err, size_t errlen)
{
	struct spool *spool = calloc(1, sizeof *spool);

	if (spool == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	spool->incoming_fd = spool->active_fd = spool->corrupt_fd = -1;
	spool->queue_dir = spool_path(state_dir, "queue");
	if (spool->queue_dir == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (spool_fault_parse(spool, err, errlen) != 0 ||
	    spool_open_dirs(spool, state_dir, !(flags & SPOOL_NOCREATE), err,
			    errlen) != 0)
		goto fail;
	/* The durable-write path is the same with or without a pool. */
	if (commit_dirsync_init(&spool->active_sync, spool->active_fd,
				spool_dirsync_fn, spool) != 0) {
		snprintf(err, errlen, "cannot start the commit: %s",
			 strerror(errno));
		goto fail;
	}
	if (pthread_mutex_init(&spool->env_lock, NULL) != 0) {
		commit_dirsync_destroy(&spool->active_sync);
		snprintf(err, errlen, "cannot start the commit: out of memory");
		goto fail;
	}
	spool->sync_ready = true;
	if (base != NULL) {
		/* One server per queue: a second one would clean incoming/
		 * under the first one's feet.  The lock lives as long as
		 * the descriptor, so it cannot outlive a crash. */
		if (flock(spool->incoming_fd, LOCK_EX | LOCK_NB) != 0) {
			snprintf(err, errlen,
				 errno == EWOULDBLOCK
					 ? "the queue in %s is in use by "
					   "another running server"
					 : "cannot lock the queue in %s: %s",
				 spool->queue_dir, strerror(errno));
			goto fail;
		}
		pthread_mutex_init(&spool->stock_lock, NULL);
		spool->stock_ready = true;
		spool->stock_idle = evtimer_new(base, spool_stock_idle, spool);
		if (spool->stock_idle == NULL) {
			snprintf(err, errlen,
				 "cannot start the commit: out of "
				 "memory");
			goto fail;
		}
		spool->pool = commit_pool_new(base, COMMIT_THREADS_DEFAULT,
					      spool_commit_batch,
					      spool_commit_after, spool);
		if (spool->pool == NULL) {
			snprintf(err, errlen, "cannot start the commit: %s",
				 strerror(errno));
			goto fail;
		}
	}
	return spool;
fail:
	spool_close(spool);
	return NULL;
}

struct spool *
spool_open(const char *state_dir, struct event_base *base, char *err,
	   size_t errlen)
{
	return spool_open_flags(state_dir, base, 0, err, errlen);
}

void
spool_close(struct spool *spool)
{
	if (spool == NULL)
		return;
	commit_pool_free(spool->pool); /* runs pending callbacks first */
	if (spool->stock_idle != NULL)
		event_free(spool->stock_idle);
	spool_stock_drop(spool, spool->stock, spool->n_stock);
	if (spool->stock_ready)
		pthread_mutex_destroy(&spool->stock_lock);
	if (spool->sync_ready) {
		commit_dirsync_destroy(&spool->active_sync);
		pthread_mutex_destroy(&spool->env_lock);
	}
	if (spool->incoming_fd >= 0)
		close(spool->incoming_fd);
	if (spool->active_fd >= 0)
		close(spool->active_fd);
	if (spool->corrupt_fd >= 0)
		close(spool->corrupt_fd);
	free(spool->queue_dir);
	free(spool);
}

void
spool_stats(struct spool *spool, struct spool_stats *stats)
{
	stats->commits = spool->commits;
	stats->failures = spool->failures;
	stats->updates = spool->updates;
	stats->update_failures = spool->update_failures;
	stats->dir_fsyncs = spool->sync_ready
				    ? commit_dirsync_count(&spool->active_sync)
				    : 0;
}

/* ------------------------------------------------------------- recover */

/* Move dir/name to corrupt/, never replacing anything there. */
static int
spool_move_corrupt(struct spool *spool, const char *name, const char *why)
{
	char target[NAME_MAX + 1];

	for (unsigned i = 0; i < 1000; i++) {
		if (i == 0)
			snprintf(target, sizeof target, "%s", name);
		else
			snprintf(target, sizeof target, "%.200s.%u", name, i);
		if (spool_rename_noreplace(spool->active_fd, name,
					   spool->corrupt_fd, target) == 0) {
			char shown[256];
			log_warn("spool: moved %s to corrupt/%s: %s",
				 log_escape(shown, sizeof shown, name,
					    strlen(name)),
				 target, why);
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	char shown[256];
	log_warn("spool: cannot move %s to corrupt/ (%s), left in active/: %s",
		 log_escape(shown, sizeof shown, name, strlen(name)), why,
		 strerror(errno));
	return -1;
}

static void
spool_clear_incoming(struct spool *spool)
{
	char **names;
	size_t n;

	if (spool_list_dir(spool->incoming_fd, &names, &n) != 0) {
		log_warn("spool: cannot read %s/incoming: %s", spool->queue_dir,
			 strerror(errno));
		return;
	}
	size_t removed = 0;
	for (size_t i = 0; i < n; i++) {
		char shown[256];
		log_escape(shown, sizeof shown, names[i], strlen(names[i]));
		if (unlinkat(spool->incoming_fd, names[i], 0) == 0) {
			log_debug("spool: removed incoming/%s", shown);
			removed++;
		} else {
			log_warn("spool: cannot remove incoming/%s: %s", shown,
				 strerror(errno));
		}
	}
	/* Messages cut off before their 250, and unused stock files. */
	if (removed > 0)
		log_info("spool: removed %zu never-committed files from "
			 "incoming/",
			 removed);
	spool_free_names(names, n);
}

/* An ID.env with its ID.msg: keep it if it parses and names itself. */
static bool
spool_check_pair(struct spool *spool, const char *id, char *why, size_t len)
{
	char name[SPOOL_NAME_MAX], perr[256];
	struct envelope env = {0};
	char *text;
	size_t tlen;

	spool_name(name, sizeof name, id, "env");
	if (spool_read_file(spool->active_fd, name, SPOOL_ENV_MAX, &text,
			    &tlen) != 0) {
		snprintf(why, len, "unreadable envelope: %s", strerror(errno));
		return false;
	}
	int rc = envelope_parse(text, tlen, &env, perr, sizeof perr);
	free(text);
	if (rc != 0) {
		snprintf(why, len, "unreadable envelope: %s", perr);
		return false;
	}
	bool same = strcmp(env.id, id) == 0;
	if (!same)
		snprintf(why, len, "envelope names another id (%s)", env.id);
	envelope_clear(&env);
	return same;
}

/* active/ID.env: keep it with its ID.msg, or move it aside. */
static void
spool_recover_env(struct spool *spool, const char *name, const char *id,
		  size_t *messages, size_t *corrupt)
{
	char mname[SPOOL_NAME_MAX], why[320];

	spool_name(mname, sizeof mname, id, "msg");
	if (!spool_exists(spool->active_fd, mname)) {
		*corrupt += spool_move_corrupt(spool, name,
					       "envelope without message") == 0;
		return;
	}
	if (spool_check_pair(spool, id, why, sizeof why)) {
		(*messages)++;
		return;
	}
	*corrupt += spool_move_corrupt(spool, name, why) == 0;
	*corrupt += spool_move_corrupt(spool, mname,
				       "its envelope is unreadable") == 0;
}

/* active/ID.msg: without an envelope it was never acknowledged. */
static void
spool_recover_msg(struct spool *spool, const char *name, const char *id)
{
	char ename[SPOOL_NAME_MAX];

	spool_name(ename, sizeof ename, id, "env");
	if (!spool_exists(spool->active_fd, name) ||
	    spool_exists(spool->active_fd, ename))
		return; /* moved with its envelope, or kept with it */
	if (spool_exists(spool->corrupt_fd, ename)) {
		/* Its envelope went to corrupt/ but it could not follow. */
		log_warn("%s: message left in active/ beside a corrupt "
			 "envelope",
			 id);
		return;
	}
	if (unlinkat(spool->active_fd, name, 0) == 0)
		log_info("%s: removed message without envelope (never "
			 "committed)",
			 id);
	else
		log_warn("%s: cannot remove active/%s: %s", id, name,
			 strerror(errno));
}

int
spool_recover(struct spool *spool, size_t *n_messages, size_t *n_corrupt)
{
	char **names;
	size_t n, messages = 0, corrupt = 0;
	char id[QID_MAX + 1];

	/* incoming/ is about to be emptied: nothing of ours may be there. */
	if (spool->used) {
		errno = EBUSY;
		return -1;
	}
	spool_clear_incoming(spool);
	if (spool_list_dir(spool->active_fd, &names, &n) != 0)
		return -1;
	/* Envelopes first, so that a message is judged with its envelope. */
	for (size_t i = 0; i < n; i++) {
		enum spool_name_kind kind = spool_name_kind(names[i], id);
		if (kind == SPOOL_NAME_ENV)
			spool_recover_env(spool, names[i], id, &messages,
					  &corrupt);
		else if (kind == SPOOL_NAME_OTHER)
			corrupt += spool_move_corrupt(
					   spool, names[i],
					   "not a queue file name") == 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (spool_name_kind(names[i], id) == SPOOL_NAME_MSG)
			spool_recover_msg(spool, names[i], id);
	}
	spool_free_names(names, n);
	/* Make the clean-up itself durable before delivery starts. */
	int dirs[] = {spool->incoming_fd, spool->active_fd, spool->corrupt_fd};
	for (size_t i = 0; i < 3; i++) {
		if (fsync(dirs[i]) != 0)
			log_warn("spool: fsync of %s: %s", spool->queue_dir,
				 strerror(errno));
	}
	if (n_messages != NULL)
		*n_messages = messages;
	if (n_corrupt != NULL)
		*n_corrupt = corrupt;
	return 0;
}

/* ------------------------------------------------------------ messages */

/* A new incoming/ID.msg: 0 and its descriptor, or -1 with errno. */
static int
spool_create_file(struct spool *spool, char id[QID_MAX + 1], int *fd)
{
	char name[SPOOL_NAME_MAX];

	for (int tries = 0; tries < SPOOL_CREATE_TRIES; tries++) {
		if (qid_new(id) != 0)
			return -1;
		spool_name(name, sizeof name, id, "msg");
		if (spool_fault(spool, SPOOL_OP_CREATE) != 0)
			return -1;
		*fd = openat(spool->incoming_fd, name,
			     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

/* Close and remove stock files (given out of the stock already). */
static void
spool_stock_drop(struct spool *spool, const struct spool_stock_file *files,
		 size_t n)
{
	char name[SPOOL_NAME_MAX];

	for (size_t i = 0; i < n; i++) {
		spool_name(name, sizeof name, files[i].id, "msg");
		close(files[i].fd);
		(void)unlinkat(spool->incoming_fd, name, 0);
	}
}

/* Loop timer: no commit for a while, so no stock either. */
static void
spool_stock_idle(evutil_socket_t fd, short what, void *arg)
{
	struct spool *spool = arg;
	struct spool_stock_file files[SPOOL_STOCK_MAX];

	(void)fd;
	(void)what;
	pthread_mutex_lock(&spool->stock_lock);
	size_t n = spool->n_stock;
	memcpy(files, spool->stock, n * sizeof files[0]);
	spool->n_stock = 0;
	spool->stock_closed = true;
	pthread_mutex_unlock(&spool->stock_lock);
	spool_stock_drop(spool, files, n);
}

/* On a worker, after a batch: up to want more files in the stock. */
static void
spool_stock_refill(struct spool *spool, size_t want)
{
	for (size_t i = 0; i < want; i++) {
		struct spool_stock_file f;
		pthread_mutex_lock(&spool->stock_lock);
		bool full = spool->stock_closed ||
			    spool->n_stock >= SPOOL_STOCK_MAX;
		pthread_mutex_unlock(&spool->stock_lock);
		/* A failure here is the loop's to report, when it creates. */
		if (full || spool_create_file(spool, f.id, &f.fd) != 0)
			return;
		pthread_mutex_lock(&spool->stock_lock);
		full = spool->stock_closed || spool->n_stock >= SPOOL_STOCK_MAX;
		if (!full)
			spool->stock[spool->n_stock++] = f;
		pthread_mutex_unlock(&spool->stock_lock);
		if (full) { /* filled or closed meanwhile */
			spool_stock_drop(spool, &f, 1);
			return;
		}
	}
}

/* The newest file of the stock, if any. */
static bool
spool_stock_take(struct spool *spool, struct spool_msg *msg)
{
	bool got = false;

	if (spool->pool == NULL)
		return false;
	pthread_mutex_lock(&spool->stock_lock);
	spool->stock_closed = false; /* busy again */
	if (spool->n_stock > 0) {
		struct spool_stock_file *f = &spool->stock[--spool->n_stock];
		memcpy(msg->id, f->id, sizeof msg->id);
		msg->fd = f->fd;
		got = true;
	}
	pthread_mutex_unlock(&spool->stock_lock);
	return got;
}

struct spool_msg *
spool_msg_new(struct spool *spool)
{
	struct spool_msg *msg = calloc(1, sizeof *msg);

	if (msg == NULL)
		return NULL;
	msg->spool = spool;
	msg->fd = -1;
	msg->env_fd = -1;
	spool->used = true;
	if (spool_stock_take(spool, msg) ||
	    spool_create_file(spool, msg->id, &msg->fd) == 0)
		return msg;
	int saved = errno;
	log_warn("spool: cannot create a message in %s/incoming: %s",
		 spool->queue_dir, strerror(saved));
	free(msg);
	errno = saved;
	return NULL;
}

const char *
spool_msg_id(const struct spool_msg *msg)
{
	return msg->id;
}

uint64_t
spool_msg_size(const struct spool_msg *msg)
{
	return msg->size;
}

static int
spool_msg_flush(struct spool_msg *msg)
{
	if (msg->buflen == 0)
		return 0;
	if (spool_write_all(msg->spool, msg->fd, msg->buf, msg->buflen) != 0)
		return -1;
	msg->buflen = 0;
	return 0;
}

static int
spool_msg_fail(struct spool_msg *msg)
{
	msg->error = errno;
	log_warn("%s: cannot write message: %s", msg->id, strerror(errno));
	return -1;
}

int
spool_msg_write(struct spool_msg *msg, const void *data, size_t len)
{
	const char *p = data;

	if (msg->error != 0) {
		errno = msg->error;
		return -1;
	}
	msg->size += len;
	while (len > 0) {
		if (msg->buf == NULL) {
			/* Large pieces go straight through, unbuffered. */
			if (len >= SPOOL_BUF_SIZE) {
				if (spool_write_all(msg->spool, msg->fd, p,
						    len) != 0)
					return spool_msg_fail(msg);
				return 0;
			}
			msg->buf = malloc(SPOOL_BUF_SIZE);
			if (msg->buf == NULL)
				return spool_msg_fail(msg);
		}
		size_t n = SPOOL_BUF_SIZE - msg->buflen;
		if (n > len)
			n = len;
		memcpy(msg->buf + msg->buflen, p, n);
		msg->buflen += n;
		p += n;
		len -= n;
		if (msg->buflen == SPOOL_BUF_SIZE && spool_msg_flush(msg) != 0)
			return spool_msg_fail(msg);
	}
	return 0;
}

static void
spool_msg_free(struct spool_msg *msg)
{
	if (msg->fd >= 0)
		close(msg->fd);
	free(msg->buf);
	free(msg->env_text);
	free(msg);
}

void
spool_msg_abort(struct spool_msg *msg)
{
	char name[SPOOL_NAME_MAX];

	if (msg == NULL)
		return;
	spool_name(name, sizeof name, msg->id, "msg");
	if (unlinkat(msg->spool->incoming_fd, name, 0) != 0 && errno != ENOENT)
		log_warn("%s: cannot remove incoming/%s: %s", msg->id, name,
			 strerror(errno));
	spool_msg_free(msg);
}

/* Remove every file of a failed commit, the envelope first. */
static void
spool_commit_undo(struct spool_msg *msg, bool msg_moved, bool env_moved)
{
	struct spool *spool = msg->spool;
	char mname[SPOOL_NAME_MAX], ename[SPOOL_NAME_MAX];

	spool_name(mname, sizeof mname, msg->id, "msg");
	spool_name(ename, sizeof ename, msg->id, "env");
	if (env_moved)
		(void)unlinkat(spool->active_fd, ename, 0);
	if (msg_moved)
		(void)unlinkat(spool->active_fd, mname, 0);
	(void)unlinkat(spool->incoming_fd, ename, 0);
	(void)unlinkat(spool->incoming_fd, mname, 0);
	/*
	 * Best effort: if this fsync fails too, a crash may bring the
	 * complete, fsync'd message back; that is a duplicate delivery of a
	 * message the client will send again, never a loss.
	 */
	if (env_moved || msg_moved)
		(void)fsync(spool->active_fd);
}

/* Create and write incoming/ID.env; its descriptor, or -1 with errno. */
static int
spool_write_env(struct spool_msg *msg, const char *name)
{
	struct spool *spool = msg->spool;
	int fd = openat(spool->incoming_fd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		msg->failed_op = "create envelope";
		return -1;
	}
	if (spool_write_all(spool, fd, msg->env_text, msg->env_len) != 0) {
		int saved = errno;
		msg->failed_op = "write envelope";
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* fsync then close; the first error wins. */
static int
spool_sync_close(struct spool_msg *msg, int fd, int err, const char *what)
{
	if (fd < 0)
		return err;
	if (err == 0 && spool_fsync_fd(msg->spool, fd) != 0) {
		err = errno;
		msg->failed_op = what;
	}
	/* close() can report a late write error (NFS, quotas). */
	if (close(fd) != 0 && err == 0) {
		err = errno;
		msg->failed_op = "close";
	}
	return err;
}

/* Step 2 for one message, up to the writes: both files written. */
static void
spool_commit_write(struct spool_msg *msg, const char *ename)
{
	if (msg->error != 0) {
		msg->result = msg->error;
		msg->failed_op = "write";
		return;
	}
	if (spool_msg_flush(msg) != 0) {
		msg->result = errno;
		msg->failed_op = "write";
		return;
	}
	msg->env_fd = spool_write_env(msg, ename);
	if (msg->env_fd < 0) {
		msg->result = errno;
		return;
	}
	/*
	 * Start writeback of both now, so that the first fsync of the batch
	 * finds every block allocated in the running journal transaction and
	 * commits them all; the later fsyncs then have little left to do.
	 * Errors show up in fsync().
	 */
	(void)sync_file_range(msg->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	(void)sync_file_range(msg->env_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* Step 2 for an update: incoming/ID.upd written (a stale one replaced). */
static void
spool_update_write(struct spool_msg *msg, const char *tname)
{
	(void)unlinkat(msg->spool->incoming_fd, tname, 0);
	msg->env_fd = spool_write_env(msg, tname);
	if (msg->env_fd < 0) {
		msg->result = errno;
		return;
	}
	(void)sync_file_range(msg->env_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/*
 * Step 3 for an update: exchange incoming/ID.upd with active/ID.env.  An
 * exchange needs both names, so it fails with ENOENT when the message was
 * deleted meanwhile, instead of bringing back an envelope without its
 * content.  Where the filesystem cannot exchange, the check and the rename
 * run under env_lock, which spool_delete() holds to remove the envelope
 * (that closes the race within this process; a `queue delete` from the
 * command line at that very moment could still lose to it there).
 */
static void
spool_update_rename(struct spool_msg *msg, const char *tname, const char *ename)
{
	struct spool *spool = msg->spool;
	struct stat st;

	msg->failed_op = "replace envelope";
	if (spool_fault(spool, SPOOL_OP_RENAME) != 0) {
		msg->result = errno;
		return;
	}
	if (renameat2(spool->incoming_fd, tname, spool->active_fd, ename,
		      RENAME_EXCHANGE) == 0) {
		msg->failed_op = NULL;
		return;
	}
	if (errno != EINVAL && errno != ENOSYS) {
		msg->result = errno;
		return;
	}
	pthread_mutex_lock(&spool->env_lock);
	int rc = fstatat(spool->active_fd, ename, &st, AT_SYMLINK_NOFOLLOW);
	if (rc == 0)
		rc = renameat(spool->incoming_fd, tname, spool->active_fd,
			      ename);
	msg->result = rc == 0 ? 0 : errno;
	pthread_mutex_unlock(&spool->env_lock);
	if (rc == 0)
		msg->failed_op = NULL;
}

/* Step 3 for one message: into active/, the content first. */
static void
spool_commit_rename(struct spool_msg *msg, const char *mname, const char *ename)
{
	struct spool *spool = msg->spool;

	if (spool_rename_new(spool, spool->incoming_fd, mname, spool->active_fd,
			     mname) != 0) {
		msg->result = errno;
		msg->failed_op = "rename message";
		return;
	}
	msg->msg_moved = true;
	if (spool_rename_new(spool, spool->incoming_fd, ename, spool->active_fd,
			     ename) != 0) {
		msg->result = errno;
		msg->failed_op = "rename envelope";
		return;
	}
	msg->env_moved = true;
}

/* A delete's content, once its envelope is gone; on a worker. */
static void
spool_delete_content(struct spool_msg *msg, const char *mname)
{
	if (unlinkat(msg->spool->active_fd, mname, 0) != 0 && errno != ENOENT) {
		msg->result = errno;
		msg->failed_op = "remove content";
	}
}

/*
 * On a worker thread: steps 2-4 of the protocol for a batch.  Each phase
 * runs over the whole batch before the next: both files of every message
 * are written before any is fsync'd, so that on a journaling filesystem
 * the first fsync commits the blocks of all of them and a batch costs
 * about one journal commit for the files and one (shared) for active/,
 * however many messages it holds.
 */
static void
spool_commit_batch(void *arg, struct commit_job **jobs, size_t n)
{
	struct spool *spool = arg;
	char mname[SPOOL_NAME_MAX], ename[SPOOL_NAME_MAX];
	char tname[SPOOL_NAME_MAX];
	bool renamed = false;

	for (size_t i = 0; i < n; i++) {
		struct spool_msg *msg = (struct spool_msg *)jobs[i];
		if (msg->kind == SPOOL_JOB_COMMIT) {
			spool_name(ename, sizeof ename, msg->id, "env");
			spool_commit_write(msg, ename);
		} else if (msg->kind == SPOOL_JOB_UPDATE) {
			spool_name(tname, sizeof tname, msg->id, "upd");
			spool_update_write(msg, tname);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct spool_msg *msg = (struct spool_msg *)jobs[i];
		if (msg->kind == SPOOL_JOB_DELETE)
			continue;
		msg->result =
			spool_sync_close(msg, msg->fd, msg->result, "fsync");
		msg->fd = -1;
		msg->result = spool_sync_close(msg, msg->env_fd, msg->result,
					       "fsync envelope");
		msg->env_fd = -1;
		free(msg->buf);
		msg->buf = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct spool_msg *msg = (struct spool_msg *)jobs[i];
		if (msg->result != 0)
			continue;
		spool_name(mname, sizeof mname, msg->id, "msg");
		spool_name(ename, sizeof ename, msg->id, "env");
		spool_name(tname, sizeof tname, msg->id, "upd");
		if (msg->kind == SPOOL_JOB_DELETE)
			spool_delete_content(msg, mname);
		else if (msg->kind == SPOOL_JOB_UPDATE)
			spool_update_rename(msg, tname, ename);
		else
			spool_commit_rename(msg, mname, ename);
		renamed = renamed || msg->result == 0;
	}
	int derr = renamed ? commit_dirsync_wait(&spool->active_sync) : 0;
	for (size_t i = 0; i < n; i++) {
		struct spool_msg *msg = (struct spool_msg *)jobs[i];
		if (msg->result == 0 && derr != 0) {
			msg->result = derr;
			msg->failed_op = "fsync active/";
		}
		if (msg->kind == SPOOL_JOB_COMMIT && msg->result != 0)
			spool_commit_undo(msg, msg->msg_moved, msg->env_moved);
		if (msg->kind == SPOOL_JOB_UPDATE) {
			/* The old envelope, or the new one that failed. */
			spool_name(tname, sizeof tname, msg->id, "upd");
			(void)unlinkat(spool->incoming_fd, tname, 0);
		}
	}
}

/* After a batch was reported: one file more than it used, up to the max. */
static void
spool_commit_after(void *arg, size_t n)
{
	spool_stock_refill(arg, n + 1);
}

/* On the loop thread: an update's result. */
static void
spool_update_done(struct spool_msg *msg)
{
	struct spool *spool = msg->spool;

	if (msg->result == 0) {
		spool->updates++;
	} else if (msg->result != ENOENT) {
		spool->update_failures++;
		log_warn("%s: envelope update failed: op=%s error=%s", msg->id,
			 msg->failed_op != NULL ? msg->failed_op : "queue",
			 strerror(msg->result));
	}
	msg->cb(msg->arg, msg->id, msg->result);
	spool_msg_free(msg);
}

/* On the loop thread: report. */
static void
spool_commit_done(struct commit_job *job)
{
	struct spool_msg *msg = (struct spool_msg *)job;
	struct spool *spool = msg->spool;

	if (msg->kind == SPOOL_JOB_UPDATE) {
		spool_update_done(msg);
		return;
	}
	if (msg->kind == SPOOL_JOB_DELETE) {
		if (msg->result != 0)
			log_warn("%s: delete: op=%s error=%s (the content is "
				 "removed at next start; a crash may bring the "
				 "message back)",
				 msg->id, msg->failed_op,
				 strerror(msg->result));
		spool_msg_free(msg);
		return;
	}
	if (msg->result != 0) {
		spool->failures++;
		log_warn("%s: commit failed: op=%s error=%s", msg->id,
			 msg->failed_op != NULL ? msg->failed_op : "queue",
			 strerror(msg->result));
	} else {
		spool->commits++;
	}
	/* Each commit pushes the stock's idle timeout further out. */
	struct timeval idle = {SPOOL_STOCK_IDLE_MS / 1000,
			       (SPOOL_STOCK_IDLE_MS % 1000) * 1000};
	evtimer_add(spool->stock_idle, &idle);
	msg->cb(msg->arg, msg->id, msg->result);
	spool_msg_free(msg);
}

void
spool_msg_commit(struct spool_msg *msg, const struct envelope *env,
		 spool_commit_cb *cb, void *arg)
{
	struct spool *spool = msg->spool;

	if (spool->pool == NULL)
		panic("spool: commit of %s without an event base", msg->id);
	if (strcmp(env->id, msg->id) != 0)
		panic("spool: commit of %s with the envelope of %s", msg->id,
		      env->id);
	msg->cb = cb;
	msg->arg = arg;
	msg->job.done = spool_commit_done;
	if (msg->error == 0) {
		msg->env_text = envelope_format(env, &msg->env_len);
		if (msg->env_text == NULL)
			msg->error = ENOMEM;
	}
	if (commit_pool_submit(spool->pool, &msg->job) == 0)
		return;
	/* No worker at all: fail here, report on the loop as promised. */
	msg->failed_op = "start commit threads";
	msg->result = errno;
	if (msg->fd >= 0) {
		close(msg->fd);
		msg->fd = -1;
	}
	spool_commit_undo(msg, false, false);
	commit_pool_post(spool->pool, &msg->job);
}

/* ------------------------------------------------ committed messages */

int
spool_id_valid(const char *id)
{
	return id != NULL && qid_valid(id, strlen(id));
}

int
spool_content_path(struct spool *spool, const char *id, char *path,
		   size_t pathlen)
{
	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	int n = snprintf(path, pathlen, "%s/active/%s.msg", spool->queue_dir,
			 id);
	if (n < 0 || (size_t)n >= pathlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
spool_load(struct spool *spool, const char *id, struct envelope *env)
{
	char name[SPOOL_NAME_MAX], perr[256];
	char *text;
	size_t len;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	spool_name(name, sizeof name, id, "env");
	if (spool_read_file(spool->active_fd, name, SPOOL_ENV_MAX, &text,
			    &len) != 0)
		return -1;
	int rc = envelope_parse(text, len, env, perr, sizeof perr);
	free(text);
	if (rc != 0) {
		log_warn("%s: unreadable envelope: %s", id, perr);
		errno = EBADMSG;
		return -1;
	}
	if (strcmp(env->id, id) != 0) {
		log_warn("%s: envelope names another id (%s)", id, env->id);
		envelope_clear(env);
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

int
spool_foreach(struct spool *spool,
	      int (*each)(const struct envelope *env, void *arg), void *arg)
{
	char **names;
	size_t n;
	char id[QID_MAX + 1];
	int rc = 0;

	if (spool_list_dir(spool->active_fd, &names, &n) != 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct envelope env = {0};
		if (spool_name_kind(names[i], id) != SPOOL_NAME_ENV)
			continue;
		/* Gone meanwhile (delivered, deleted) or unreadable (logged).
		 */
		if (spool_load(spool, id, &env) != 0)
			continue;
		rc = each(&env, arg);
		envelope_clear(&env);
	}
	spool_free_names(names, n);
	return rc;
}

int
spool_delete(struct spool *spool, const char *id)
{
	char mname[SPOOL_NAME_MAX], ename[SPOOL_NAME_MAX];

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	spool_name(mname, sizeof mname, id, "msg");
	spool_name(ename, sizeof ename, id, "env");
	/*
	 * The envelope is the commit point: without it the message is gone.
	 * env_lock: see spool_update_rename().
	 */
	pthread_mutex_lock(&spool->env_lock);
	int rc = unlinkat(spool->active_fd, ename, 0);
	int saved = errno;
	pthread_mutex_unlock(&spool->env_lock);
	if (rc != 0) {
		errno = saved;
		return -1;
	}
	/*
	 * With a pool, the content and the fsync of active/ go to a worker
	 * and share its directory fsync: the loop does not wait for a disk
	 * flush per delivered message.  Until that fsync a crash may bring
	 * the message back -- delivered twice, never lost.
	 */
	if (spool->pool != NULL) {
		struct spool_msg *job = calloc(1, sizeof *job);
		if (job != NULL) {
			job->spool = spool;
			job->kind = SPOOL_JOB_DELETE;
			job->fd = job->env_fd = -1;
			memcpy(job->id, id, strlen(id) + 1);
			job->job.done = spool_commit_done;
			if (commit_pool_submit(spool->pool, &job->job) == 0)
				return 0;
			free(job);
		}
	}
	if (unlinkat(spool->active_fd, mname, 0) != 0 && errno != ENOENT)
		log_warn("%s: cannot remove active/%s (removed at next start): "
			 "%s",
			 id, mname, strerror(errno));
	if (spool_fsync_fd(spool, spool->active_fd) != 0)
		log_warn("%s: fsync of active/ after delete: %s (a crash may "
			 "bring the message back)",
			 id, strerror(errno));
	return 0;
}

/* An update job with its envelope formatted; NULL with errno. */
static struct spool_msg *
spool_update_job(struct spool *spool, const struct envelope *env)
{
	if (!spool_id_valid(env->id)) {
		errno = EINVAL;
		return NULL;
	}
	struct spool_msg *job = calloc(1, sizeof *job);
	if (job == NULL)
		return NULL;
	job->spool = spool;
	job->kind = SPOOL_JOB_UPDATE;
	job->fd = job->env_fd = -1;
	memcpy(job->id, env->id, strlen(env->id) + 1);
	job->env_text = envelope_format(env, &job->env_len);
	if (job->env_text == NULL) {
		free(job);
		errno = ENOMEM;
		return NULL;
	}
	job->job.done = spool_commit_done;
	return job;
}

/* The same path as the pool's, run here for one envelope. */
int
spool_update(struct spool *spool, const struct envelope *env)
{
	struct spool_msg *job = spool_update_job(spool, env);

	if (job == NULL)
		return -1;
	struct commit_job *jobs[1] = {&job->job};
	spool_commit_batch(spool, jobs, 1);
	int err = job->result;
	spool_msg_free(job);
	errno = err;
	return err == 0 ? 0 : -1;
}

int
spool_update_async(struct spool *spool, const struct envelope *env,
		   spool_commit_cb *cb, void *arg)
{
	if (spool->pool == NULL)
		panic("spool: update of %s without an event base", env->id);
	struct spool_msg *job = spool_update_job(spool, env);
	if (job == NULL)
		return -1;
	job->cb = cb;
	job->arg = arg;
	if (commit_pool_submit(spool->pool, &job->job) == 0)
		return 0;
	/* No worker at all: report on the loop as promised. */
	job->failed_op = "start commit threads";
	job->result = errno;
	commit_pool_post(spool->pool, &job->job);
	return 0;
}
