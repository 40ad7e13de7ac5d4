/*
 * sink: `bridgehead sink --listen ADDR:PORT --dir DIR [--fqdn NAME]
 * [--tls off|offer|require|implicit] [-v]`, a test smart host in the
 * manner of Postfix's smtp-sink, built from the server's own parts: it
 * accepts mail for any domain from anyone, over STARTTLS when offered,
 * and writes each message to DIR/mail/ID.eml.
 *
 *   cli_sink()  check the options (exit 2 naming the one at fault), write
 *               DIR/sink.conf and load it with conf_load() like any
 *               configuration, make a self-signed certificate for the
 *               name the first time (cert_key_new/cert_selfsign/
 *               cert_store_install, as `cert selfsign` does), open and
 *               recover the queue in DIR/queue, start smtpd on the one
 *               listener, and run until SIGINT or SIGTERM (exit 0).
 *
 * The folder:
 *   DIR/sink.conf       rewritten at every start from the options:
 *                       server name (--fqdn, default sink.localdomain),
 *                       state_dir = DIR, relay_networks = 0.0.0.0/0, ::/0
 *                       (everyone may send to any domain: a sink for tests,
 *                       to be bound to loopback), one listener [listener
 *                       sink] with tls = --tls (default offer) and
 *                       max_message_size = 100M
 *   DIR/pki/            its certificate (CN and DNS name = the server name)
 *   DIR/queue/          the queue, used only between commit and hand-over
 *   DIR/log/tracking.jsonl  the tracking log ("received" events)
 *   DIR/mail/ID.eml     every message, as stored: our Received: header,
 *                       then the content byte for byte as it arrived
 *
 * How a message leaves the queue (smtpd_set_queued): once its commit is
 * durable, the content active/ID.msg is hard-linked to mail/ID.eml,
 * mail/ is fsync'd, and only then is the queue entry deleted
 * (spool_delete).  A crash in between leaves the message in the queue;
 * at the next start every queued message is handed over the same way
 * (a mail/ID.eml that is already the same file counts as done), so
 * nothing accepted is ever lost and none is written twice.  A failed
 * hand-over (disk full, ...) is logged and the message stays queued for
 * the next start.
 *
 * Each message handed over prints one line to stdout (flushed):
 *   ID from=<SENDER> to=<RCPT>[,<RCPT>...] size=N tls=VERSION/CIPHER
 * with tls=none for clear text; addresses are escaped as in the log.
 * The human log goes to stderr.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "cert/selfsign.h"
#include "cert/store.h"
#include "net/tls.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "smtpd/smtpd.h"
#include "util/log.h"

#define SINK_FQDN_DEFAULT "sink.localdomain"
#define SINK_TLS_DEFAULT "offer"
#define SINK_CONF_NAME "sink.conf"
#define SINK_MAIL_DIR "mail"
#define SINK_GRACE_S 10
#define SINK_ADDR_MAX 1024 /* one escaped address on the stdout line */

enum { OPT_LISTEN = 256, OPT_DIR, OPT_FQDN, OPT_TLS };

struct sink_opts {
	const char *listen;
	const char *dir;
	const char *fqdn;
	const char *tls;
	bool verbose;
};

struct sink {
	struct sink_opts opts;
	char dir[PATH_MAX]; /* absolute */
	struct event_base *base;
	struct conf *conf;
	struct spool *spool;
	struct smtpd *smtpd;
	int mail_fd; /* DIR/mail */
	bool stopping;
	bool closing; /* tearing down: commits reported now stay queued */
	bool stdout_broken;
	unsigned long handed, kept;
	struct event *ev_term;
	struct event *ev_int;
	struct event *ev_grace;
};

static const struct option sink_options[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"dir", required_argument, NULL, OPT_DIR},
	{"fqdn", required_argument, NULL, OPT_FQDN},
	{"tls", required_argument, NULL, OPT_TLS},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static void
sink_usage(FILE *out)
{
	fprintf(out,
		"usage: bridgehead sink --listen ADDR:PORT --dir DIR "
		"[--fqdn NAME]\n"
		"                       [--tls off|offer|require|implicit] "
		"[-v]\n"
		"\n"
		"A test smart host: accepts mail for any domain from any "
		"client and writes\n"
		"each message to DIR/mail/ID.eml (with our Received: header), "
		"printing one\n"
		"line per message on stdout:\n"
		"  ID from=<SENDER> to=<RCPT>[,<RCPT>] size=N "
		"tls=VERSION/CIPHER|none\n"
		"It runs the server's own SMTP code and queue from "
		"DIR/sink.conf (written\n"
		"at each start) and makes a self-signed certificate for NAME "
		"in DIR/pki the\n"
		"first time, so it offers STARTTLS.  Bind it to loopback: it "
		"relays for anyone.\n"
		"\n"
		"  --listen ADDR:PORT  where to listen: 127.0.0.1:2526, "
		"[::1]:2526\n"
		"  --dir DIR           its folder (made if missing)\n"
		"  --fqdn NAME         its name: banner, EHLO and "
		"certificate\n"
		"                      (default %s)\n"
		"  --tls WORD          STARTTLS: off, offer (default), "
		"require;\n"
		"                      or implicit (TLS from the first byte)\n"
		"  -v, --verbose       log debug lines too\n"
		"\n"
		"It takes no -c: its configuration is DIR/sink.conf.  "
		"SIGINT/SIGTERM stop it\n"
		"(exit 0); exit status 1 when it cannot start, 2 on a usage "
		"error.\n",
		SINK_FQDN_DEFAULT);
}

static int
sink_usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "bridgehead sink: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n");
	sink_usage(stderr);
	return CLI_USAGE;
}

/* Options: -1 to go on, else the exit status (--help, usage errors). */
static int
sink_parse_args(int argc, char **argv, struct sink_opts *o)
{
	int c;

	optind = 0; /* glibc: start afresh on this argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:vh", sink_options, NULL)) !=
	       -1) {
		switch (c) {
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_DIR:
			o->dir = optarg;
			break;
		case OPT_FQDN:
			o->fqdn = optarg;
			break;
		case OPT_TLS:
			o->tls = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			sink_usage(stdout);
			return CLI_OK;
		case 'c':
			return sink_usage_error(
				"%s takes no configuration file: it writes "
				"its own, DIR/sink.conf",
				"sink");
		case ':':
			return sink_usage_error("option '%s' needs a value",
						argv[optind - 1]);
		default:
			return sink_usage_error("unknown option '%s'",
						argv[optind - 1]);
		}
	}
	if (optind < argc)
		return sink_usage_error("unexpected argument '%s'",
					argv[optind]);
	return -1;
}

/* The values go into sink.conf: each is checked here so that an error
 * names the option, not a line of a file the user never wrote. */
static int
sink_check_opts(struct sink_opts *o)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	char why[256];

	if (o->listen == NULL)
		return sink_usage_error("%s is required", "--listen ADDR:PORT");
	if (o->dir == NULL || o->dir[0] == '\0')
		return sink_usage_error("%s is required", "--dir DIR");
	if (conf_parse_listen_address(o->listen, &sa, &salen, why,
				      sizeof why) == -1) {
		fprintf(stderr, "bridgehead sink: --listen: %s\n", why);
		return CLI_USAGE;
	}
	if (o->fqdn == NULL)
		o->fqdn = SINK_FQDN_DEFAULT;
	if (cert_fqdn_check(o->fqdn, why, sizeof why) == -1) {
		fprintf(stderr,
			"bridgehead sink: --fqdn '%s' is not a valid DNS "
			"name: %s\n",
			o->fqdn, why);
		return CLI_USAGE;
	}
	if (o->tls == NULL)
		o->tls = SINK_TLS_DEFAULT;
	static const char *const words[] = {"off", "offer", "require",
					    "implicit"};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcmp(o->tls, words[i]) == 0)
			return -1;
	fprintf(stderr,
		"bridgehead sink: --tls '%s' must be off, offer, require or "
		"implicit\n",
		o->tls);
	return CLI_USAGE;
}

/* mkdir -p, 0755 for what it makes.  0, or -1 with errno. */
static int
sink_mkdirs(const char *path)
{
	char p[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char keep = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) == -1 && errno != EEXIST)
			return -1;
		p[i] = keep;
	}
	struct stat st;
	if (stat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* DIR made if missing, and its absolute path into sk->dir. */
static int
sink_prepare_dir(struct sink *sk)
{
	if (sink_mkdirs(sk->opts.dir) == -1 ||
	    realpath(sk->opts.dir, sk->dir) == NULL) {
		fprintf(stderr, "bridgehead sink: --dir %s: %s\n", sk->opts.dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* 0, or -1 with errno; a fully-written file or none under the name. */
static int
sink_write_file(const char *path, const char *tmp, const char *text)
{
	size_t len = strlen(text), off = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd == -1)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int saved = w < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			errno = saved;
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (rename(tmp, path) == -1) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/*
 * DIR/sink.conf from the options (checked already).  state_dir is "."
 * (relative paths are relative to the file's folder), so that DIR itself
 * never has to be quoted into the file.
 */
static int
sink_write_conf(const struct sink *sk, char *path, size_t pathlen)
{
	char text[2048], tmp[PATH_MAX];
	int n = snprintf(
		text, sizeof text,
		"# Written by `bridgehead sink` at every start, from its "
		"options;\n"
		"# changes here are lost.\n"
		"\n"
		"[server]\n"
		"name = %s\n"
		"state_dir = .\n"
		"# A sink for tests: any client may send to any domain.\n"
		"relay_networks = 0.0.0.0/0, ::/0\n"
		"\n"
		"[listener sink]\n"
		"address = %s\n"
		"tls = %s\n"
		"max_message_size = 100M\n",
		sk->opts.fqdn, sk->opts.listen, sk->opts.tls);
	if (n < 0 || (size_t)n >= sizeof text) {
		fprintf(stderr, "bridgehead sink: the options do not fit in "
				"a configuration file\n");
		return -1;
	}
	int a = snprintf(path, pathlen, "%s/%s", sk->dir, SINK_CONF_NAME);
	int b = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", sk->dir,
			 SINK_CONF_NAME);
	if (a < 0 || (size_t)a >= pathlen || b < 0 || (size_t)b >= sizeof tmp) {
		fprintf(stderr, "bridgehead sink: --dir %s: path too long\n",
			sk->dir);
		return -1;
	}
	if (sink_write_file(path, tmp, text) == -1) {
		fprintf(stderr, "bridgehead sink: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* The certificate: the installed one, else a new self-signed one. */
static int
sink_ensure_cert(const struct sink *sk)
{
	char cert[PATH_MAX], key[PATH_MAX], err[1024];
	const char *state_dir = sk->conf->state_dir;
	const char *name = sk->conf->server_name;

	if (cert_store_find(state_dir, cert, sizeof cert, key, sizeof key, err,
			    sizeof err) == 0)
		return 0;
	if (err[0] != '\0') {
		fprintf(stderr, "bridgehead sink: %s\n", err);
		return -1;
	}
	int rc = -1;
	EVP_PKEY *pkey = cert_key_new(err, sizeof err);
	X509 *x = pkey != NULL ? cert_selfsign(pkey, name, CERT_DAYS_DEFAULT,
					       err, sizeof err)
			       : NULL;
	if (x == NULL)
		fprintf(stderr, "bridgehead sink: %s\n", err);
	else if (cert_store_install(state_dir, x, NULL, pkey, err,
				    sizeof err) == -1)
		fprintf(stderr,
			"bridgehead sink: cannot install a certificate in "
			"%s/pki: %s\n",
			sk->dir, err);
	else
		rc = 0;
	X509_free(x);
	EVP_PKEY_free(pkey);
	if (rc == 0)
		log_info("made a self-signed certificate for %s in %s/pki",
			 name, sk->dir);
	return rc;
}

/* ------------------------------------------------------------ hand-over */

/* "<a>,<b>" of the recipients, escaped; cut with "..." when too long. */
static void
sink_rcpts_text(const struct envelope *env, char *buf, size_t len)
{
	char one[SINK_ADDR_MAX];
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const char *a = env->rcpts[i].address;
		log_escape(one, sizeof one, a, strlen(a));
		int n = snprintf(buf + o, len - o, "%s<%s>", i ? "," : "", one);
		if (n < 0 || (size_t)n >= len - o) {
			/* Cut: end the line with "..." instead. */
			if (len >= 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		o += (size_t)n;
	}
}

/* The stdout line of one message. */
static void
sink_print(struct sink *sk, const struct envelope *env)
{
	char from[SINK_ADDR_MAX], tls[256];
	char *to = malloc(64 * 1024);

	if (to == NULL) {
		log_warn("%s: out of memory for its stdout line", env->id);
		return;
	}
	log_escape(from, sizeof from, env->sender, strlen(env->sender));
	sink_rcpts_text(env, to, 64 * 1024);
	if (env->tls_version != NULL)
		snprintf(tls, sizeof tls, "%s/%s", env->tls_version,
			 env->tls_cipher != NULL ? env->tls_cipher : "-");
	else
		snprintf(tls, sizeof tls, "none");
	int rc = printf("%s from=<%s> to=%s size=%" PRIu64 " tls=%s\n", env->id,
			from, to, env->size, tls);
	free(to);
	if ((rc < 0 || fflush(stdout) == EOF) && !sk->stdout_broken) {
		/* The mail is safe in mail/; only the report is lost. */
		sk->stdout_broken = true;
		log_warn("cannot write to stdout: %s; messages are still "
			 "written to %s/%s",
			 strerror(errno), sk->dir, SINK_MAIL_DIR);
	}
}

/*
 * Is mail/NAME already the file at content (same inode)?  Then a crash
 * came between the link and the delete of an earlier hand-over.
 */
static bool
sink_same_file(const struct sink *sk, const char *content, const char *name)
{
	struct stat a, b;

	return stat(content, &a) == 0 &&
	       fstatat(sk->mail_fd, name, &b, 0) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Link the content into mail/, make the link durable, drop the entry.
 * 0, or -1 (logged; the message stays queued). */
static int
sink_take(struct sink *sk, const struct envelope *env)
{
	char content[PATH_MAX], name[ENVELOPE_ID_MAX + 8];

	snprintf(name, sizeof name, "%s.eml", env->id);
	if (spool_content_path(sk->spool, env->id, content, sizeof content) ==
	    -1) {
		log_warn("%s: no content path: %s; left in the queue", env->id,
			 strerror(errno));
		return -1;
	}
	if (linkat(AT_FDCWD, content, sk->mail_fd, name, 0) == -1 &&
	    !(errno == EEXIST && sink_same_file(sk, content, name))) {
		log_warn("%s: cannot link %s to %s/%s/%s: %s; left in the "
			 "queue until the next start",
			 env->id, content, sk->dir, SINK_MAIL_DIR, name,
			 strerror(errno));
		return -1;
	}
	/*
	 * The name in mail/ must be on disk before the queue lets go.  The
	 * fsync runs on the loop: this is a test host, where one message
	 * at a time on the disk is simpler than a pool and fast enough.
	 */
	if (fsync(sk->mail_fd) == -1) {
		log_warn("%s: fsync of %s/%s: %s; left in the queue until the "
			 "next start",
			 env->id, sk->dir, SINK_MAIL_DIR, strerror(errno));
		return -1;
	}
	if (spool_delete(sk->spool, env->id) == -1 && errno != ENOENT)
		log_warn("%s: written to %s/%s/%s but not removed from the "
			 "queue: %s (it is written again, as the same file, at "
			 "the next start)",
			 env->id, sk->dir, SINK_MAIL_DIR, name,
			 strerror(errno));
	log_info("%s: stored file=%s/%s/%s size=%" PRIu64, env->id, sk->dir,
		 SINK_MAIL_DIR, name, env->size);
	sink_print(sk, env);
	return 0;
}

static void
sink_on_queued(void *arg, const struct envelope *env)
{
	struct sink *sk = arg;

	if (sk->closing) {
		/* The spool is being closed under us: the next start. */
		log_info("%s: committed while stopping; stays queued for the "
			 "next start",
			 env->id);
		sk->kept++;
		return;
	}
	if (sink_take(sk, env) == 0)
		sk->handed++;
	else
		sk->kept++;
}

struct sink_ids {
	char (*ids)[ENVELOPE_ID_MAX + 1];
	size_t n, cap;
	bool nomem;
};

static int
sink_collect(const struct envelope *env, void *arg)
{
	struct sink_ids *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->ids, cap * sizeof l->ids[0]);
		if (p == NULL) {
			l->nomem = true;
			return 1;
		}
		l->ids = p;
		l->cap = cap;
	}
	memcpy(l->ids[l->n++], env->id, sizeof l->ids[0]);
	return 0;
}

/*
 * At start: messages still queued (a crash or a failed hand-over last
 * time) go to mail/ now.  The ids are collected first: the walk must not
 * see its own deletes.
 */
static int
sink_sweep(struct sink *sk)
{
	struct sink_ids l = {0};

	if (spool_foreach(sk->spool, sink_collect, &l) != 0 || l.nomem) {
		fprintf(stderr,
			"bridgehead sink: cannot list the queue in %s/queue: "
			"%s\n",
			sk->dir, l.nomem ? strerror(ENOMEM) : strerror(errno));
		free(l.ids);
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct envelope env = {0};
		if (spool_load(sk->spool, l.ids[i], &env) == -1) {
			log_warn("%s: cannot read its envelope: %s; left in "
				 "the queue",
				 l.ids[i], strerror(errno));
			continue;
		}
		sink_on_queued(sk, &env);
		envelope_clear(&env);
	}
	if (l.n > 0)
		log_info("queue: %zu messages found at start handed over", l.n);
	free(l.ids);
	return 0;
}

static int
sink_open_mail(struct sink *sk)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s", sk->dir, SINK_MAIL_DIR);

	if (n < 0 || (size_t)n >= sizeof path) {
		fprintf(stderr, "bridgehead sink: --dir %s: path too long\n",
			sk->dir);
		return -1;
	}
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "bridgehead sink: cannot make %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	sk->mail_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sk->mail_fd == -1) {
		fprintf(stderr, "bridgehead sink: cannot open %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- signals */

static void
sink_drained(void *arg)
{
	struct sink *sk = arg;

	event_base_loopexit(sk->base, NULL);
}

static void
sink_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct sink *sk = arg;

	(void)fd;
	(void)what;
	log_warn("%zu sessions still open after %d s; closing them",
		 smtpd_sessions(sk->smtpd), SINK_GRACE_S);
	event_base_loopexit(sk->base, NULL);
}

static void
sink_on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct sink *sk = arg;
	struct timeval tv = {SINK_GRACE_S, 0};

	(void)what;
	if (sk->stopping) {
		log_warn("signal %s again: exiting now", strsignal((int)sig));
		event_base_loopexit(sk->base, NULL);
		return;
	}
	sk->stopping = true;
	log_info("signal %s: stopping", strsignal((int)sig));
	evtimer_add(sk->ev_grace, &tv);
	smtpd_shutdown(sk->smtpd, sink_drained, sk);
}

/* ---------------------------------------------------------- start, stop */

static int
sink_start_server(struct sink *sk)
{
	char err[1024];
	SSL_CTX *ctx = NULL;

	if (strcmp(sk->opts.tls, "off") != 0) {
		if (sink_ensure_cert(sk) == -1)
			return -1;
		err[0] = '\0';
		ctx = tls_server_ctx_load_installed(sk->conf->state_dir, err,
						    sizeof err);
		if (ctx == NULL) {
			fprintf(stderr,
				"bridgehead sink: cannot load the certificate "
				"in %s/pki: %s\n",
				sk->dir, err[0] ? err : "not installed");
			return -1;
		}
	}
	sk->smtpd =
		smtpd_new(sk->base, sk->conf, sk->spool, ctx, err, sizeof err);
	SSL_CTX_free(ctx);
	if (sk->smtpd == NULL) {
		fprintf(stderr, "bridgehead sink: %s\n", err);
		return -1;
	}
	smtpd_set_queued(sk->smtpd, sink_on_queued, sk);
	return 0;
}

static int
sink_start_signals(struct sink *sk)
{
	sk->ev_term = evsignal_new(sk->base, SIGTERM, sink_on_stop, sk);
	sk->ev_int = evsignal_new(sk->base, SIGINT, sink_on_stop, sk);
	sk->ev_grace = evtimer_new(sk->base, sink_on_grace, sk);
	if (sk->ev_term == NULL || sk->ev_int == NULL || sk->ev_grace == NULL ||
	    evsignal_add(sk->ev_term, NULL) < 0 ||
	    evsignal_add(sk->ev_int, NULL) < 0) {
		fprintf(stderr, "bridgehead sink: cannot install the signal "
				"handlers\n");
		return -1;
	}
	return 0;
}

/* Everything after the options; 0 or -1 (the error printed). */
static int
sink_start(struct sink *sk)
{
	char path[PATH_MAX], err[1024];
	size_t n_messages = 0, n_corrupt = 0;

	if (sink_prepare_dir(sk) == -1 ||
	    sink_write_conf(sk, path, sizeof path) == -1)
		return -1;
	sk->conf = conf_load(path, err, sizeof err);
	if (sk->conf == NULL) {
		fprintf(stderr, "bridgehead sink: %s\n", err);
		return -1;
	}
	if (sink_open_mail(sk) == -1)
		return -1;
	sk->base = event_base_new();
	if (sk->base == NULL) {
		fprintf(stderr, "bridgehead sink: cannot start the event "
				"loop\n");
		return -1;
	}
	sk->spool = spool_open(sk->conf->state_dir, sk->base, err, sizeof err);
	if (sk->spool == NULL) {
		fprintf(stderr, "bridgehead sink: cannot open the queue: %s\n",
			err);
		return -1;
	}
	if (spool_recover(sk->spool, &n_messages, &n_corrupt) == -1) {
		fprintf(stderr,
			"bridgehead sink: cannot recover the queue in "
			"%s/queue: %s\n",
			sk->dir, strerror(errno));
		return -1;
	}
	if (tracking_open(sk->conf->state_dir) == -1) {
		fprintf(stderr,
			"bridgehead sink: cannot open the tracking log in "
			"%s/log: %s\n",
			sk->dir, strerror(errno));
		return -1;
	}
	if (sink_sweep(sk) == -1 || sink_start_server(sk) == -1)
		return -1;
	return sink_start_signals(sk);
}

static void
sink_stop(struct sink *sk)
{
	/*
	 * Commits still pending report while the sessions and the spool
	 * close; those messages stay queued (see sink_on_queued).
	 */
	sk->closing = true;
	if (sk->smtpd != NULL)
		smtpd_free(sk->smtpd);
	if (sk->spool != NULL)
		spool_close(sk->spool);
	tracking_close();
	struct event *evs[] = {sk->ev_term, sk->ev_int, sk->ev_grace};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (sk->base != NULL)
		event_base_free(sk->base);
	if (sk->mail_fd >= 0)
		close(sk->mail_fd);
	conf_free(sk->conf);
}

int
cli_sink(int argc, char **argv)
{
	struct sink sk = {.mail_fd = -1};
	int rc;

	rc = sink_parse_args(argc, argv, &sk.opts);
	if (rc != -1)
		return rc;
	rc = sink_check_opts(&sk.opts);
	if (rc != -1)
		return rc;
	log_init("bridgehead-sink", true, sk.opts.verbose);
	signal(SIGPIPE, SIG_IGN);
	rc = CLI_FAILED;
	if (sink_start(&sk) == 0) {
		log_info("bridgehead sink ready listen=%s tls=%s name=%s "
			 "mail=%s/%s",
			 sk.opts.listen, sk.opts.tls, sk.conf->server_name,
			 sk.dir, SINK_MAIL_DIR);
		if (event_base_dispatch(sk.base) < 0)
			log_warn("event loop failed");
		else
			rc = CLI_OK;
		log_info("bridgehead sink stopped handed=%lu kept=%lu",
			 sk.handed, sk.kept);
	}
	sink_stop(&sk);
	return rc;
}
