/*
 * tracking: the message tracking log, state_dir/log/tracking.jsonl.  One
 * JSON object per line (JSON Lines), written with a single write(2) on an
 * O_APPEND descriptor, so that the server and a CLI command appending at
 * the same time never interleave within a line.  See tracking.h.
 *
 * Every line has the same keys for its kind of event, null when unknown,
 * so that readers can index them without checking:
 *   received: ts event id message_id from rcpt size client helo tls listener
 *   others:   ts event id message_id from rcpt connector host addr reply tls
 * ts is RFC 3339 UTC with milliseconds; tls is {"version", "cipher",
 * "peer", "verified"} or null.  Strings go through jsonw (escaping, invalid
 * UTF-8 as \u00XX), so each line is valid JSON whatever a peer sent.
 *
 * The log is created 0640 in log/ (0750).  When root creates them (a CLI
 * command run as root before the server ever started) they are given to
 * the owner of state_dir, or the server could not append later.
 */
#include "queue/tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/jsonw.h"
#include "util/log.h"

static int tracking_fd = -1;

/* Root-created files go to the owner of state_dir (see above). */
static void
tracking_give(int fd, const char *path, const struct stat *owner)
{
	if (geteuid() != 0 || owner->st_uid == 0)
		return;
	int rc = fd >= 0 ? fchown(fd, owner->st_uid, owner->st_gid)
			 : chown(path, owner->st_uid, owner->st_gid);
	if (rc != 0)
		log_warn("tracking: cannot give %s to uid %u: %s", path,
			 (unsigned)owner->st_uid, strerror(errno));
}

static char *
tracking_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(len);
	if (p != NULL)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

int
tracking_open(const char *state_dir)
{
	struct stat owner;
	char *dir = NULL, *file = NULL;
	int fd = -1;

	if (stat(state_dir, &owner) != 0)
		return -1;
	dir = tracking_path(state_dir, "log");
	file = dir != NULL ? tracking_path(dir, "tracking.jsonl") : NULL;
	if (file == NULL)
		goto fail;
	if (mkdir(dir, 0750) == 0)
		tracking_give(-1, dir, &owner);
	else if (errno != EEXIST)
		goto fail;
	fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(file,
			  O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
			  0640);
		if (fd >= 0)
			tracking_give(fd, file, &owner);
		else if (errno == EEXIST) /* created meanwhile */
			fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC);
	}
	if (fd < 0)
		goto fail;
	/* A reopen (after log rotation) replaces the old descriptor. */
	if (tracking_fd >= 0)
		close(tracking_fd);
	tracking_fd = fd;
	free(dir);
	free(file);
	return 0;
fail:;
	int saved = errno;
	free(dir);
	free(file);
	errno = saved;
	return -1;
}

void
tracking_close(void)
{
	if (tracking_fd >= 0)
		close(tracking_fd);
	tracking_fd = -1;
}

static void
tracking_ts(struct jsonw *w)
{
	struct timespec ts;
	struct tm tm;
	char buf[96]; /* 85: the widest the compiler can imagine */

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	jsonw_key(w, "ts");
	jsonw_cstr(w, buf);
}

/* ts, event, id, message_id, from: the start of every line. */
static void
tracking_head(struct jsonw *w, const char *event, const struct envelope *env)
{
	jsonw_begin_object(w);
	tracking_ts(w);
	jsonw_key(w, "event");
	jsonw_cstr(w, event);
	jsonw_key(w, "id");
	jsonw_cstr(w, env->id);
	jsonw_key(w, "message_id");
	jsonw_cstr(w, env->message_id);
	jsonw_key(w, "from");
	jsonw_cstr(w, env->sender != NULL ? env->sender : "");
}

static void
tracking_env_rcpts(struct jsonw *w, const struct envelope *env)
{
	jsonw_key(w, "rcpt");
	jsonw_begin_array(w);
	for (size_t i = 0; i < env->n_rcpts; i++)
		jsonw_cstr(w, env->rcpts[i].address);
	jsonw_end_array(w);
}

static void
tracking_tls(struct jsonw *w, const char *version, const char *cipher,
	     const char *peer, bool verified, const char *client_cert)
{
	jsonw_key(w, "tls");
	if (version == NULL) {
		jsonw_null(w);
		return;
	}
	jsonw_begin_object(w);
	jsonw_key(w, "version");
	jsonw_cstr(w, version);
	jsonw_key(w, "cipher");
	jsonw_cstr(w, cipher);
	jsonw_key(w, "peer");
	jsonw_cstr(w, peer);
	jsonw_key(w, "verified");
	jsonw_bool(w, verified);
	/* Certificate-based connectors at the next hop identify us by it
	 * (case C30): the log shows what was presented. */
	if (client_cert != NULL) {
		jsonw_key(w, "client_certificate");
		jsonw_cstr(w, client_cert);
	}
	jsonw_end_object(w);
}

/* One line, one write(2). */
static void
tracking_write(struct jsonw *w, const struct envelope *env)
{
	size_t len;

	jsonw_end_object(w);
	jsonw_raw(w, "\n", 1);
	const char *line = jsonw_text(w, &len);
	if (line == NULL) {
		log_warn("%s: tracking: out of memory", env->id);
		return;
	}
	if (tracking_fd < 0)
		return;
	ssize_t n;
	do
		n = write(tracking_fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return;
	log_warn("%s: tracking log write: %s", env->id,
		 n < 0 ? strerror(errno) : "short write");
	/* End a torn line, so that the next event starts on its own. */
	if (n > 0)
		(void)!write(tracking_fd, "\n", 1);
}

void
tracking_received(const struct envelope *env)
{
	struct jsonw w;

	jsonw_init(&w);
	tracking_head(&w, "received", env);
	tracking_env_rcpts(&w, env);
	jsonw_key(&w, "size");
	jsonw_u64(&w, env->size);
	jsonw_key(&w, "client");
	jsonw_cstr(&w, env->client_addr);
	jsonw_key(&w, "helo");
	jsonw_cstr(&w, env->helo);
	/* Inbound: the client presented no certificate we checked. */
	tracking_tls(&w, env->tls_version, env->tls_cipher, NULL, false, NULL);
	jsonw_key(&w, "listener");
	jsonw_cstr(&w, env->listener);
	tracking_write(&w, env);
	jsonw_free(&w);
}

void
tracking_event(const struct envelope *env, const struct tracking_info *info)
{
	struct jsonw w;

	jsonw_init(&w);
	tracking_head(&w, info->event, env);
	if (info->rcpts != NULL) {
		jsonw_key(&w, "rcpt");
		jsonw_begin_array(&w);
		for (size_t i = 0; i < info->n_rcpts; i++)
			jsonw_cstr(&w, info->rcpts[i]);
		jsonw_end_array(&w);
	} else {
		tracking_env_rcpts(&w, env);
	}
	jsonw_key(&w, "connector");
	jsonw_cstr(&w, info->connector);
	jsonw_key(&w, "host");
	jsonw_cstr(&w, info->host);
	jsonw_key(&w, "addr");
	jsonw_cstr(&w, info->addr);
	jsonw_key(&w, "reply");
	jsonw_cstr(&w, info->reply);
	tracking_tls(&w, info->tls_version, info->tls_cipher, info->tls_peer,
		     info->tls_verified, info->tls_client_cert);
	if (info->tls_note != NULL) {
		jsonw_key(&w, "tls_note");
		jsonw_cstr(&w, info->tls_note);
	}
	tracking_write(&w, env);
	jsonw_free(&w);
}
