/*
 * serve: `bridgehead serve [-c FILE] [--foreground] [-v]`, the server.
 *
 *   cli_serve()  load the configuration (exit 2 on an error), write the
 *                pid file (another server on the same state_dir: exit 1
 *                naming it), open the queue and recover it, open the
 *                tracking log, start the resolver, the delivery engine
 *                (smtpc) and the scheduler (every queued message is
 *                scheduled again), load the installed certificate (none:
 *                STARTTLS is not offered; a broken one: exit 1 naming the
 *                file), bind every listener (a bind error names the
 *                listener and its address: exit 1), log "bridgehead
 *                VERSION ready", and run the loop.  Each message the
 *                listeners commit goes to the scheduler (smtpd_set_queued).
 *
 * Logging: --foreground logs to stderr; otherwise to syslog (facility
 * mail), the process staying attached to its parent either way (systemd
 * Type=simple).  Start-up errors always reach stderr as one sentence.
 *
 * Signals (handled on the loop):
 *   SIGTERM, SIGINT  stop accepting and start no new delivery; let
 *                    sessions finish what they are doing (a message being
 *                    committed still gets its 250), close the others with
 *                    421; give deliveries in flight DELIVERY_GRACE_S
 *                    seconds, then close them (smtpc_free reports them as
 *                    temporary failures: their envelopes are updated);
 *                    wait for the queue's commits (spool_close), remove
 *                    the pid file, exit 0.  A second signal, or
 *                    SHUTDOWN_GRACE_S seconds, cuts the wait short.
 *   SIGHUP           reload the configuration file: connectors and queue
 *                    settings apply to the next deliveries (smtpc and the
 *                    scheduler get the new model); listeners are not bound
 *                    again (a change is logged: it needs a restart).  A
 *                    configuration with an error, or another state_dir,
 *                    is logged and the running one stays.  Then the
 *                    installed certificate is reloaded: new connections
 *                    get the new one, sessions in progress keep theirs
 *                    (SSL_CTX reference counts); if it fails to load the
 *                    old one stays and the log says why.  Logs
 *                    "reload ok connectors=N" or the error.
 *   SIGUSR1          `bridgehead queue flush [ID]`: every file in
 *                    state_dir/queue/flush/ names a message to try now
 *                    ("ALL": every message); they are read and removed.
 *                    The same files are read once at start.
 *   SIGPIPE          ignored (writes report EPIPE instead).
 *
 * Configuration lifetime: sessions (smtpd) keep pointers into the model
 * they started with, and delivery jobs name connectors of the model they
 * were routed with.  Rather than count references, every model loaded is
 * kept until exit (a few KiB each; reloads are rare) and freed at the end.
 *
 * The open-file limit is raised to its hard maximum at start: every
 * session is a descriptor.  Privileges are not dropped yet.
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "net/dns.h"
#include "net/tls.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "route/route.h"
#include "smtpc/smtpc.h"
#include "smtpd/smtpd.h"
#include "util/log.h"
#include "util/pidfile.h"

#define SHUTDOWN_GRACE_S 30
#define DELIVERY_GRACE_S 5
#define FLUSH_DIR "queue/flush"

struct serve {
	struct event_base *base;
	struct conf *conf;	 /* the current model */
	struct conf **old_confs; /* earlier models, kept until exit */
	size_t n_old_confs;
	struct spool *spool;
	struct smtpd *smtpd;
	struct dns *dns;
	struct smtpc *smtpc;
	struct scheduler *sched;
	bool foreground;
	bool stopping;
	bool drained;	  /* no session left */
	bool pid_written; /* ours to remove */
	time_t stop_at;
	struct event *ev_term;
	struct event *ev_int;
	struct event *ev_hup;
	struct event *ev_usr1;
	struct event *ev_grace;
	struct event *ev_wait; /* polls deliveries in flight while stopping */
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
		"safe); SIGHUP reloads the configuration and the certificate; "
		"SIGUSR1\n"
		"tries the messages named in state_dir/queue/flush/ now "
		"(bridgehead\n"
		"queue flush).\n");
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

/* ------------------------------------------------------------ delivery */

/* The scheduler's routing: route.h, for one recipient domain. */
static int
serve_route(const struct conf *conf, const char *domain, char *key,
	    size_t keylen, const struct conf_connector **connector)
{
	*connector = route_lookup(conf, domain);
	return route_key(conf, domain, key, keylen) < 0 ? -1 : 0;
}

static void
serve_deliver(void *arg, const struct smtpc_job *job, smtpc_done_cb *cb,
	      void *cb_arg)
{
	smtpc_deliver(arg, job, cb, cb_arg);
}

/*
 * `queue flush`: the files in state_dir/queue/flush/ name what to try now.
 * Each is removed once read; "ALL" makes every message due.
 */
static void
serve_flush_requests(struct serve *sv)
{
	char path[4096];
	struct dirent *de;
	size_t files = 0, msgs = 0;

	snprintf(path, sizeof path, "%s/%s", sv->conf->state_dir, FLUSH_DIR);
	DIR *dir = opendir(path);
	if (dir == NULL) {
		if (errno != ENOENT)
			log_warn("flush: cannot read %s: %s", path,
				 strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		const char *name = de->d_name;
		if (name[0] == '.')
			continue;
		if (unlinkat(dirfd(dir), name, 0) < 0)
			log_warn("flush: cannot remove %s/%s: %s", path, name,
				 strerror(errno));
		files++;
		if (strcmp(name, "ALL") == 0)
			msgs += scheduler_flush(sv->sched, NULL);
		else if (spool_id_valid(name))
			msgs += scheduler_flush(sv->sched, name);
	}
	closedir(dir);
	if (files > 0)
		log_info("flush: requests=%zu messages=%zu", files, msgs);
}

static void
serve_on_usr1(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve_flush_requests(arg);
}

/* -------------------------------------------------------------- reload */

static bool
serve_listeners_same(const struct conf *a, const struct conf *b)
{
	if (a->n_listeners != b->n_listeners)
		return false;
	for (size_t i = 0; i < a->n_listeners; i++) {
		const struct conf_listener *x = &a->listeners[i],
					   *y = &b->listeners[i];
		if (strcmp(x->name, y->name) != 0 ||
		    strcmp(x->address, y->address) != 0 || x->tls != y->tls ||
		    x->max_message_size != y->max_message_size ||
		    x->max_recipients != y->max_recipients ||
		    x->max_sessions != y->max_sessions ||
		    x->max_sessions_per_ip != y->max_sessions_per_ip ||
		    x->command_timeout_s != y->command_timeout_s ||
		    x->data_timeout_s != y->data_timeout_s)
			return false;
	}
	return true;
}

/* The configuration file again: 0 (now current) or -1 (the old stays). */
static int
serve_reload_conf(struct serve *sv)
{
	char err[1024];
	struct conf *conf = conf_load(sv->conf->path, err, sizeof err);

	if (conf == NULL) {
		log_warn("reload failed, keeping the running configuration: %s",
			 err);
		return -1;
	}
	struct conf **v =
		realloc(sv->old_confs, (sv->n_old_confs + 1) * sizeof *v);
	if (v == NULL) {
		log_warn("reload failed, keeping the running configuration: "
			 "out of memory");
		conf_free(conf);
		return -1;
	}
	sv->old_confs = v;
	if (strcmp(sv->conf->state_dir, conf->state_dir) != 0) {
		/* The queue, the pid file and the logs live there. */
		log_warn("reload failed, keeping the running configuration: "
			 "state_dir changed from %s to %s, which needs a "
			 "restart",
			 sv->conf->state_dir, conf->state_dir);
		conf_free(conf);
		return -1;
	}
	sv->old_confs[sv->n_old_confs++] = sv->conf;
	if (!serve_listeners_same(sv->conf, conf))
		log_warn("reload: the listener settings changed; they take "
			 "effect at the next restart");
	/* smtpd keeps the model it was started with (listeners). */
	sv->conf = conf;
	smtpc_set_conf(sv->smtpc, conf);
	scheduler_set_conf(sv->sched, conf);
	return 0;
}

static void
serve_on_hup(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;
	char err[1024];
	SSL_CTX *ctx;

	(void)fd;
	(void)what;
	bool conf_ok = serve_reload_conf(sv) == 0;
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
	if (conf_ok)
		log_info("reload ok connectors=%zu", sv->conf->n_connectors);
}

/* ---------------------------------------------------------------- stop */

/* Exit once no session is left and deliveries ended or ran out of time. */
static void
serve_check_stopped(struct serve *sv)
{
	if (!sv->drained)
		return;
	size_t jobs = scheduler_in_flight(sv->sched);
	if (jobs == 0 || time(NULL) >= sv->stop_at + DELIVERY_GRACE_S) {
		if (jobs > 0)
			log_info("%zu deliveries still running after %d s; "
				 "closing them",
				 jobs, DELIVERY_GRACE_S);
		event_base_loopexit(sv->base, NULL);
		return;
	}
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(sv->ev_wait, &tv);
}

static void
serve_on_wait(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve_check_stopped(arg);
}

static void
serve_drained(void *arg)
{
	struct serve *sv = arg;

	log_info("all sessions closed");
	sv->drained = true;
	serve_check_stopped(sv);
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
	sv->stop_at = time(NULL);
	log_info("signal %s: stopping", strsignal((int)sig));
	scheduler_stop(sv->sched);
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

/* --------------------------------------------------------------- start */

static int
serve_open_queue(struct serve *sv)
{
	char err[1024];
	size_t n_messages = 0, n_corrupt = 0;

	sv->spool = spool_open(sv->conf->state_dir, sv->base, err, sizeof err);
	if (sv->spool == NULL) {
		serve_error(sv, "cannot open the queue: %s", err);
		return CLI_FAILED;
	}
	/* After spool_open made state_dir, before anything is changed. */
	if (pidfile_write(sv->conf->state_dir, err, sizeof err) < 0) {
		serve_error(sv, "%s", err);
		return CLI_FAILED;
	}
	sv->pid_written = true;
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
	return 0;
}

/* The resolver, the delivery engine, the scheduler and its queue. */
static int
serve_start_delivery(struct serve *sv)
{
	char err[1024];
	size_t n = 0;

	/* [dns] unbound_config, or the system resolver (NULL); a reload
	 * keeps the resolver it started with. */
	sv->dns = dns_new(sv->base, sv->conf->dns_unbound_config, err,
			  sizeof err);
	if (sv->dns == NULL) {
		serve_error(sv, "cannot start the resolver: %s", err);
		return CLI_FAILED;
	}
	dns_set_timeout(sv->dns, sv->conf->dns_timeout_s * 1000u);
	sv->smtpc = smtpc_new(sv->base, sv->conf, sv->dns, err, sizeof err);
	if (sv->smtpc == NULL) {
		serve_error(sv, "cannot start delivery: %s", err);
		return CLI_FAILED;
	}
	const struct scheduler_ops ops = {
		.route = serve_route,
		.deliver = serve_deliver,
		.deliver_arg = sv->smtpc,
		.retry_delay = conf_retry_delay,
	};
	sv->sched = scheduler_new(sv->base, sv->conf, sv->spool, &ops);
	if (sv->sched == NULL) {
		serve_error(sv, "cannot start the scheduler: out of memory");
		return CLI_FAILED;
	}
	if (scheduler_load(sv->sched, &n) < 0) {
		serve_error(sv, "cannot read the queue under %s/queue: %s",
			    sv->conf->state_dir, strerror(errno));
		return CLI_FAILED;
	}
	log_info("scheduler: messages=%zu", n);
	serve_flush_requests(sv); /* requests left from before the start */
	return 0;
}

static int
serve_signals(struct serve *sv)
{
	sv->ev_term = evsignal_new(sv->base, SIGTERM, serve_on_stop, sv);
	sv->ev_int = evsignal_new(sv->base, SIGINT, serve_on_stop, sv);
	sv->ev_hup = evsignal_new(sv->base, SIGHUP, serve_on_hup, sv);
	sv->ev_usr1 = evsignal_new(sv->base, SIGUSR1, serve_on_usr1, sv);
	sv->ev_grace = evtimer_new(sv->base, serve_on_grace, sv);
	sv->ev_wait = evtimer_new(sv->base, serve_on_wait, sv);
	if (sv->ev_term == NULL || sv->ev_int == NULL || sv->ev_hup == NULL ||
	    sv->ev_usr1 == NULL || sv->ev_grace == NULL ||
	    sv->ev_wait == NULL || evsignal_add(sv->ev_term, NULL) < 0 ||
	    evsignal_add(sv->ev_int, NULL) < 0 ||
	    evsignal_add(sv->ev_hup, NULL) < 0 ||
	    evsignal_add(sv->ev_usr1, NULL) < 0) {
		serve_error(sv, "cannot install the signal handlers");
		return CLI_FAILED;
	}
	return 0;
}

/* Everything after the configuration: 0, or the exit status. */
static int
serve_start(struct serve *sv)
{
	char err[1024];
	SSL_CTX *ctx = NULL;
	int rc;

	sv->base = event_base_new();
	if (sv->base == NULL) {
		serve_error(sv, "cannot start the event loop");
		return CLI_FAILED;
	}
	/* Signals first: a SIGHUP or SIGUSR1 during start-up must not kill. */
	if ((rc = serve_signals(sv)) != 0)
		return rc;
	if ((rc = serve_open_queue(sv)) != 0 ||
	    (rc = serve_start_delivery(sv)) != 0)
		return rc;
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
	smtpd_set_queued(sv->smtpd, scheduler_queued, sv->sched);
	return 0;
}

static void
serve_stop(struct serve *sv)
{
	/* Sessions first (open messages are aborted). */
	if (sv->smtpd != NULL)
		smtpd_free(sv->smtpd);
	if (sv->sched != NULL)
		scheduler_stop(sv->sched);
	/* Deliveries in flight come back as temporary failures: the
	 * scheduler records them (spool_update) or queues notices. */
	if (sv->smtpc != NULL)
		smtpc_free(sv->smtpc);
	if (sv->dns != NULL)
		dns_free(sv->dns);
	/* The commits (notices included) call back into the scheduler. */
	if (sv->spool != NULL)
		spool_close(sv->spool);
	scheduler_free(sv->sched);
	tracking_close();
	if (sv->pid_written)
		pidfile_remove(sv->conf->state_dir);
	struct event *evs[] = {sv->ev_term, sv->ev_int,	  sv->ev_hup,
			       sv->ev_usr1, sv->ev_grace, sv->ev_wait};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (sv->base != NULL)
		event_base_free(sv->base);
	for (size_t i = 0; i < sv->n_old_confs; i++)
		conf_free(sv->old_confs[i]);
	free(sv->old_confs);
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
