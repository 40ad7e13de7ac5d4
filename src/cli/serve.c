/*
 * serve: `bridgehead serve [-c FILE] [--foreground] [-v]`, the server.
 *
 *   cli_serve()  load the configuration (exit 2 on an error), open the
 *                queue and recover it, open the tracking log, load the
 *                installed certificate (none: STARTTLS is not offered; a
 *                broken one: exit 1 naming the file), bind every listener
 *                (a bind error names the listener and its address: exit 1),
 *                log "bridgehead VERSION ready", and run the loop.
 *
 * Logging: --foreground logs to stderr; otherwise to syslog (facility
 * mail), the process staying attached to its parent either way (systemd
 * Type=simple).  Start-up errors always reach stderr as one sentence.
 *
 * Signals (handled on the loop):
 *   SIGTERM, SIGINT  stop accepting, let sessions finish what they are
 *                    doing (a message being committed still gets its 250),
 *                    close the others with 421, wait for the queue's
 *                    commits (spool_close), exit 0.  A second signal, or
 *                    SHUTDOWN_GRACE_S seconds, cuts the wait short.
 *   SIGHUP           reload the installed certificate: new connections get
 *                    the new one, sessions in progress keep theirs (SSL_CTX
 *                    reference counts); if it fails to load the old one
 *                    stays and the log says why.
 *   SIGPIPE          ignored (writes report EPIPE instead).
 *
 * The open-file limit is raised to its hard maximum at start: every
 * session is a descriptor.  Privileges are not dropped yet.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "net/tls.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "smtpd/smtpd.h"
#include "util/log.h"

#define SHUTDOWN_GRACE_S 30

struct serve {
	struct event_base *base;
	struct conf *conf;
	struct spool *spool;
	struct smtpd *smtpd;
	bool foreground;
	bool stopping;
	struct event *ev_term;
	struct event *ev_int;
	struct event *ev_hup;
	struct event *ev_grace;
};

static const struct option serve_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"foreground", no_argument, NULL, 'f'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static void
serve_usage(FILE *out)
{
	fprintf(out,
		"usage: bridgehead serve [-c FILE] [--foreground] [-v]\n"
		"\n"
		"Runs the SMTP server: every [listener] of the configuration, "
		"the queue\n"
		"under state_dir/queue, the tracking log under state_dir/log.\n"
		"STARTTLS is offered once a certificate is installed "
		"(bridgehead cert\n"
		"selfsign or bridgehead cert install).\n"
		"\n"
		"  -c, --config FILE  the configuration file (default "
		"$BRIDGEHEAD_CONFIG,\n"
		"                     else /etc/bridgehead/bridgehead.conf)\n"
		"  -f, --foreground   log to stderr instead of syslog\n"
		"  -v, --verbose      log debug lines too\n"
		"\n"
		"SIGTERM/SIGINT stop it (exit 0 once the messages being "
		"received are\n"
		"safe); SIGHUP reloads the certificate.\n");
}

/* A start-up error: one sentence on stderr, and in the log when that is
 * syslog. */
static void serve_error(const struct serve *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
serve_error(const struct serve *sv, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "bridgehead: %s\n", msg);
	if (!sv->foreground)
		log_warn("%s", msg);
}

static void
serve_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t before = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open-file limit from %llu: %s",
			 (unsigned long long)before, strerror(errno));
	else
		log_debug("open-file limit raised from %llu to %llu",
			  (unsigned long long)before,
			  (unsigned long long)rl.rlim_cur);
}

/* Load the installed certificate: 0 (ctx or NULL: none), -1 on an error. */
static int
serve_load_tls(const struct conf *conf, SSL_CTX **ctx, char *err, size_t errlen)
{
	err[0] = '\0';
	*ctx = tls_server_ctx_load_installed(conf->state_dir, err, errlen);
	return *ctx == NULL && err[0] != '\0' ? -1 : 0;
}

static void
serve_on_hup(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;
	char err[1024];
	SSL_CTX *ctx;

	(void)fd;
	(void)what;
	if (serve_load_tls(sv->conf, &ctx, err, sizeof err) < 0) {
		log_warn("reload: the certificate did not load, keeping the "
			 "previous one: %s",
			 err);
		return;
	}
	if (ctx == NULL && smtpd_tls(sv->smtpd) != NULL)
		log_warn("reload: no certificate is installed any more; "
			 "STARTTLS is no longer offered");
	else if (ctx == NULL)
		log_info(
			"reload: no certificate installed; STARTTLS stays off");
	else
		log_info("reload: certificate loaded; new sessions use it");
	smtpd_set_tls(sv->smtpd, ctx);
	SSL_CTX_free(ctx); /* the server holds its own reference */
}

static void
serve_drained(void *arg)
{
	struct serve *sv = arg;

	log_info("all sessions closed");
	event_base_loopexit(sv->base, NULL);
}

static void
serve_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;

	(void)fd;
	(void)what;
	log_warn("%zu sessions still open after %d s; closing them",
		 smtpd_sessions(sv->smtpd), SHUTDOWN_GRACE_S);
	event_base_loopexit(sv->base, NULL);
}

static void
serve_on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;
	struct timeval tv = {SHUTDOWN_GRACE_S, 0};

	(void)what;
	if (sv->stopping) {
		log_warn("signal %s again: exiting now", strsignal((int)sig));
		event_base_loopexit(sv->base, NULL);
		return;
	}
	sv->stopping = true;
	log_info("signal %s: stopping", strsignal((int)sig));
	evtimer_add(sv->ev_grace, &tv);
	smtpd_shutdown(sv->smtpd, serve_drained, sv);
}

static void
serve_listeners_text(const struct conf *conf, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < conf->n_listeners && o < len; i++) {
		int n = snprintf(buf + o, len - o, "%s%s:%s", i ? "," : "",
				 conf->listeners[i].name,
				 conf->listeners[i].address);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

/* Everything after the configuration: 0, or the exit status. */
static int
serve_start(struct serve *sv)
{
	char err[1024];
	size_t n_messages = 0, n_corrupt = 0;
	SSL_CTX *ctx = NULL;

	sv->base = event_base_new();
	if (sv->base == NULL) {
		serve_error(sv, "cannot start the event loop");
		return CLI_FAILED;
	}
	sv->spool = spool_open(sv->conf->state_dir, sv->base, err, sizeof err);
	if (sv->spool == NULL) {
		serve_error(sv, "cannot open the queue: %s", err);
		return CLI_FAILED;
	}
	if (spool_recover(sv->spool, &n_messages, &n_corrupt) < 0) {
		serve_error(sv, "cannot recover the queue under %s/queue: %s",
			    sv->conf->state_dir, strerror(errno));
		return CLI_FAILED;
	}
	log_info("queue recovered: messages=%zu corrupt=%zu", n_messages,
		 n_corrupt);
	if (tracking_open(sv->conf->state_dir) < 0) {
		serve_error(sv, "cannot open the tracking log under %s/log: %s",
			    sv->conf->state_dir, strerror(errno));
		return CLI_FAILED;
	}
	if (serve_load_tls(sv->conf, &ctx, err, sizeof err) < 0) {
		serve_error(sv, "cannot load the installed certificate: %s",
			    err);
		return CLI_FAILED;
	}
	if (ctx == NULL)
		log_info("no certificate installed: STARTTLS is not offered "
			 "(bridgehead cert selfsign or cert install)");
	sv->smtpd =
		smtpd_new(sv->base, sv->conf, sv->spool, ctx, err, sizeof err);
	SSL_CTX_free(ctx);
	if (sv->smtpd == NULL) {
		serve_error(sv, "%s", err);
		return CLI_FAILED;
	}
	sv->ev_term = evsignal_new(sv->base, SIGTERM, serve_on_stop, sv);
	sv->ev_int = evsignal_new(sv->base, SIGINT, serve_on_stop, sv);
	sv->ev_hup = evsignal_new(sv->base, SIGHUP, serve_on_hup, sv);
	sv->ev_grace = evtimer_new(sv->base, serve_on_grace, sv);
	if (sv->ev_term == NULL || sv->ev_int == NULL || sv->ev_hup == NULL ||
	    sv->ev_grace == NULL || evsignal_add(sv->ev_term, NULL) < 0 ||
	    evsignal_add(sv->ev_int, NULL) < 0 ||
	    evsignal_add(sv->ev_hup, NULL) < 0) {
		serve_error(sv, "cannot install the signal handlers");
		return CLI_FAILED;
	}
	return 0;
}

static void
serve_stop(struct serve *sv)
{
	/* Sessions first (open messages are aborted), then the commits. */
	smtpd_free(sv->smtpd);
	if (sv->spool != NULL)
		spool_close(sv->spool);
	tracking_close();
	struct event *evs[] = {sv->ev_term, sv->ev_int, sv->ev_hup,
			       sv->ev_grace};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (sv->base != NULL)
		event_base_free(sv->base);
	conf_free(sv->conf);
}

/* Options: 0 to go on, else the exit status (--help, usage errors). */
static int
serve_parse_args(int argc, char **argv, struct serve *sv, const char **config,
		 bool *verbose)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:fvh", serve_options, NULL)) !=
	       -1) {
		switch (c) {
		case 'c':
			*config = optarg;
			break;
		case 'f':
			sv->foreground = true;
			break;
		case 'v':
			*verbose = true;
			break;
		case 'h':
			serve_usage(stdout);
			return -1;
		case ':':
			fprintf(stderr,
				"bridgehead serve: option '%s' needs a "
				"value\n",
				argv[optind - 1]);
			serve_usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr,
				"bridgehead serve: unknown option '%s'\n",
				argv[optind - 1]);
			serve_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bridgehead serve: unexpected argument '%s'\n",
			argv[optind]);
		serve_usage(stderr);
		return CLI_USAGE;
	}
	return 0;
}

int
cli_serve(int argc, char **argv)
{
	struct serve sv = {0};
	const char *config = NULL;
	bool verbose = false;
	char listeners[1024];
	int rc;

	rc = serve_parse_args(argc, argv, &sv, &config, &verbose);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	sv.conf = cli_load_conf(config);
	if (sv.conf == NULL)
		return CLI_USAGE;
	log_init("bridgehead", sv.foreground, verbose);
	signal(SIGPIPE, SIG_IGN);
	serve_raise_nofile();
	rc = serve_start(&sv);
	if (rc == 0) {
		serve_listeners_text(sv.conf, listeners, sizeof listeners);
		log_info("bridgehead %s ready listeners=%s", BRIDGEHEAD_VERSION,
			 listeners);
		if (event_base_dispatch(sv.base) < 0) {
			log_warn("event loop failed");
			rc = CLI_FAILED;
		}
		log_info("bridgehead stopped");
	}
	serve_stop(&sv);
	return rc;
}
