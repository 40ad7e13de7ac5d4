/*
 * queue: the `bridgehead queue` command group.
 *
 *   cli_queue()  dispatches the subcommands:
 *     list [--json]        one message per line, oldest first: id,
 *                          received time, size, sender, number of
 *                          recipients, state (active, deferred, held).
 *                          --json: an array of objects.
 *     show ID [--json]     the whole envelope in readable form (sender,
 *                          recipients with their DSN parameters, client,
 *                          EHLO name, TLS, attempts and replies) and the
 *                          message's header section.  --json: one object.
 *     delete ID            remove the message and log a `deleted` event in
 *                          the tracking log.
 *     flush [ID]           ask the running server to try every message (or
 *                          that one) now: an empty file named ID (or ALL)
 *                          in state_dir/queue/flush/, made atomically, then
 *                          SIGUSR1 to the server of the pid file.  No
 *                          server running: exit 1.
 *   `--help` on `queue` and on each subcommand; `-c FILE` before the
 *   command words, after `queue`, or among a subcommand's options.
 *
 * These read and change the spool files directly (queue/spool.h, opened
 * without creating anything), which is safe beside a running server:
 * the envelope is the commit point and delete removes it first, and the
 * server never brings a deleted envelope back.
 *
 * Exit status (DESIGN.md): 0 ok; 1 operational failure (no queue, no such
 * message, a file unreadable); 2 usage or configuration error.  Every
 * error is one sentence on stderr naming the object at fault.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/envelope.h"
#include "queue/jsonw.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "util/log.h"
#include "util/pidfile.h"

#define QUEUE_HEADERS_MAX (64 * 1024) /* bytes of header section shown */

enum { OPT_JSON = 256 };

struct queue_opts {
	const char *config;
	bool json;
};

/* ---------------------------------------------------------------- usage */

static void
usage_queue(FILE *out)
{
	fprintf(out,
		"usage: bridgehead queue COMMAND [-c FILE] [OPTIONS]\n"
		"\n"
		"commands:\n"
		"  list [--json]       the queued messages, oldest first\n"
		"  show ID [--json]    one message: envelope and header "
		"section\n"
		"  delete ID           remove one message\n"
		"  flush [ID]          try every message (or one) now\n"
		"\n"
		"  -c, --config FILE   the configuration file (default "
		"$BRIDGEHEAD_CONFIG,\n"
		"                      else /etc/bridgehead/bridgehead.conf)\n"
		"\n"
		"'bridgehead queue COMMAND --help' tells more.\n");
}

static void
usage_list(FILE *out)
{
	fprintf(out,
		"usage: bridgehead queue list [--json] [-c FILE]\n"
		"\n"
		"Prints one line per queued message, oldest first, without a "
		"header:\n"
		"  ID  RECEIVED  SIZE  <SENDER>  RECIPIENTS  STATE\n"
		"RECEIVED is RFC 3339 UTC, SIZE in bytes, <> is the null "
		"sender, STATE is\n"
		"active (waiting for its first or next attempt now), deferred "
		"(tried, or\n"
		"waiting until a later attempt) or held.\n"
		"\n"
		"  --json    an array of objects: id, received, size, sender, "
		"recipients\n"
		"            (address, notify, orcpt, state), state, attempts "
		"(a count),\n"
		"            message_id\n"
		"  -c FILE   the configuration file\n"
		"\n"
		"Exit status: 0 listed (an empty queue prints nothing), 1 no "
		"queue or it\n"
		"cannot be read, 2 usage or configuration error.\n");
}

static void
usage_show(FILE *out)
{
	fprintf(out,
		"usage: bridgehead queue show ID [--json] [-c FILE]\n"
		"\n"
		"Shows one queued message: its state, when it was received, "
		"its size,\n"
		"sender, Message-ID, DSN parameters, the client's address and "
		"EHLO name,\n"
		"the TLS protocol and cipher it came with (or none), every "
		"recipient with\n"
		"NOTIFY, ORCPT, state and last reply, every delivery attempt "
		"with its\n"
		"reply, and the message's header section (at most %d KiB).\n"
		"\n"
		"  --json    the same as one JSON object (attempts as an "
		"array, "
		"headers\n"
		"            as one string)\n"
		"  -c FILE   the configuration file\n"
		"\n"
		"Exit status: 0 shown, 1 no such message or it cannot be read, "
		"2 usage\n"
		"or configuration error.\n",
		QUEUE_HEADERS_MAX / 1024);
}

static void
usage_delete(FILE *out)
{
	fprintf(out,
		"usage: bridgehead queue delete ID [-c FILE]\n"
		"\n"
		"Removes one message from the queue without delivering it and "
		"without a\n"
		"notice to the sender, and writes a 'deleted' event to the "
		"tracking log.\n"
		"\n"
		"  -c FILE   the configuration file\n"
		"\n"
		"Exit status: 0 deleted, 1 no such message or it cannot be "
		"removed, 2\n"
		"usage or configuration error (ID is 8 to 32 letters and "
		"digits).\n");
}

static void
usage_flush(FILE *out)
{
	fprintf(out,
		"usage: bridgehead queue flush [ID] [-c FILE]\n"
		"\n"
		"Asks the running server to try every queued message now, or "
		"only the\n"
		"message ID, instead of waiting for its next retry.  The "
		"request is a file\n"
		"in state_dir/queue/flush/ and a SIGUSR1 to the server; the "
		"server reads\n"
		"and removes it.\n"
		"\n"
		"  -c FILE   the configuration file\n"
		"\n"
		"Exit status: 0 requested, 1 no server running or no such "
		"message, 2\n"
		"usage or configuration error (ID is 8 to 32 letters and "
		"digits).\n");
}

/* ------------------------------------------------------------- options */

/*
 * Options of one command level.  Returns -1 to go on, else the exit
 * status (help printed, or a usage error).  `+` for the group level: stop
 * at the subcommand, so that `queue -c F list --json` parses in two steps.
 */
static int
parse_options(int argc, char **argv, const char *who,
	      const struct option *allowed, void (*usage)(FILE *), bool group,
	      struct queue_opts *o)
{
	int ch;

	optind = 0; /* glibc: start afresh on this argv */
	opterr = 0; /* our own messages, naming the command */
	while ((ch = getopt_long(argc, argv, group ? "+:c:h" : ":c:h", allowed,
				 NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr,
				"bridgehead %s: option '%s' needs a value\n",
				who, argv[optind - 1]);
			usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "bridgehead %s: unknown option '%s'\n",
				who, argv[optind - 1]);
			usage(stderr);
			return CLI_USAGE;
		}
	}
	return -1;
}

/* Exactly n positional arguments after the options. */
static int
check_args(int argc, char **argv, const char *who, void (*usage)(FILE *), int n)
{
	if (argc - optind < n) {
		fprintf(stderr, "bridgehead %s: missing the message ID\n", who);
		usage(stderr);
		return CLI_USAGE;
	}
	if (argc - optind > n) {
		fprintf(stderr, "bridgehead %s: unexpected argument '%s'\n",
			who, argv[optind + n]);
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}

static int
check_id(const char *who, const char *id)
{
	if (spool_id_valid(id))
		return -1;
	char shown[80];
	fprintf(stderr,
		"bridgehead %s: '%s' is not a queue ID (8 to 32 letters and "
		"digits)\n",
		who, log_escape(shown, sizeof shown, id, strlen(id)));
	return CLI_USAGE;
}

/*
 * The configuration, then the spool without creating anything.  -1 to go
 * on, else the exit status (the error printed).
 */
static int
open_queue(const char *who, const struct queue_opts *o, struct conf **conf,
	   struct spool **spool)
{
	char err[1024];

	*conf = cli_load_conf(o->config);
	if (*conf == NULL)
		return CLI_USAGE;
	*spool = spool_open_flags((*conf)->state_dir, NULL, SPOOL_NOCREATE, err,
				  sizeof err);
	if (*spool == NULL) {
		fprintf(stderr, "bridgehead %s: %s\n", who, err);
		conf_free(*conf);
		return CLI_FAILED;
	}
	return -1;
}

static int
finish_output(const char *who)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "bridgehead %s: cannot write the output: %s\n",
			who, strerror(errno));
		return CLI_FAILED;
	}
	return CLI_OK;
}

/*
 * Peer-supplied text on a terminal: one line, no control bytes (an ESC
 * could rewrite the screen); tabs only where asked (folded header lines).
 * UTF-8 and other bytes >= 0x80 stay.
 */
static void
put_text(FILE *out, const char *s, size_t n, bool tabs)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\t' && tabs)
			fputc(c, out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else if (c == '\\')
			fputs("\\\\", out);
		else
			fputc(c, out);
	}
}

static void
put_str(FILE *out, const char *s)
{
	put_text(out, s, strlen(s), false);
}

/* ---------------------------------------------------------------- list */

struct entry {
	time_t received;
	char id[ENVELOPE_ID_MAX + 1];
	char *text; /* the line, or the JSON object */
};

struct entries {
	struct entry *v;
	size_t n, cap;
	bool json;
	time_t now;
	int error; /* ENOMEM */
};

static void
json_notify(struct jsonw *w, unsigned notify)
{
	char words[ENVELOPE_NOTIFY_WORDS_MAX];
	envelope_notify_words(notify, words, sizeof words);
	jsonw_begin_array(w);
	for (char *p = words; *p != '\0';) {
		char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		jsonw_string(w, p, len);
		p += len + (comma != NULL ? 1 : 0);
	}
	jsonw_end_array(w);
}

static void
json_rcpts(struct jsonw *w, const struct envelope *env, bool with_reply)
{
	jsonw_key(w, "recipients");
	jsonw_begin_array(w);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];
		jsonw_begin_object(w);
		jsonw_key(w, "address");
		jsonw_cstr(w, r->address);
		jsonw_key(w, "notify");
		json_notify(w, r->notify);
		jsonw_key(w, "orcpt");
		jsonw_cstr(w, r->orcpt);
		jsonw_key(w, "state");
		jsonw_cstr(w, envelope_rcpt_state_name(r->state));
		if (with_reply) {
			jsonw_key(w, "last_reply");
			jsonw_cstr(w, r->last_reply);
		}
		jsonw_end_object(w);
	}
	jsonw_end_array(w);
}

/* id, received, size, sender, state, message_id: shared by list and show. */
static void
json_common(struct jsonw *w, const struct envelope *env, time_t now)
{
	jsonw_key(w, "id");
	jsonw_cstr(w, env->id);
	jsonw_key(w, "received");
	jsonw_time(w, env->received);
	jsonw_key(w, "size");
	jsonw_u64(w, env->size);
	jsonw_key(w, "sender");
	jsonw_cstr(w, env->sender);
	jsonw_key(w, "state");
	jsonw_cstr(w, envelope_state(env, now));
	jsonw_key(w, "message_id");
	jsonw_cstr(w, env->message_id);
}

static char *
list_json(const struct envelope *env, time_t now)
{
	struct jsonw w;

	jsonw_init(&w);
	jsonw_begin_object(&w);
	json_common(&w, env, now);
	json_rcpts(&w, env, false);
	jsonw_key(&w, "attempts");
	jsonw_u64(&w, env->n_attempts);
	jsonw_end_object(&w);
	const char *json = jsonw_text(&w, NULL);
	char *text = json != NULL ? strdup(json) : NULL;
	jsonw_free(&w);
	return text;
}

static char *
list_line(const struct envelope *env, time_t now)
{
	char ts[ENVELOPE_TIME_MAX];
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		return NULL;
	fprintf(out, "%s  %s  %llu  <", env->id,
		envelope_time_format(env->received, ts, sizeof ts),
		(unsigned long long)env->size);
	put_str(out, env->sender);
	fprintf(out, ">  %zu  %s", env->n_rcpts, envelope_state(env, now));
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int
list_each(const struct envelope *env, void *arg)
{
	struct entries *es = arg;

	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 64;
		struct entry *v = realloc(es->v, cap * sizeof *v);
		if (v == NULL) {
			es->error = ENOMEM;
			return 1;
		}
		es->v = v;
		es->cap = cap;
	}
	struct entry *e = &es->v[es->n];
	e->received = env->received;
	memcpy(e->id, env->id, sizeof e->id);
	e->text = es->json ? list_json(env, es->now) : list_line(env, es->now);
	if (e->text == NULL) {
		es->error = ENOMEM;
		return 1;
	}
	es->n++;
	return 0;
}

/* Oldest first; the id (time-ordered too) breaks ties. */
static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->received != y->received)
		return x->received < y->received ? -1 : 1;
	return strcmp(x->id, y->id);
}

static const struct option list_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int
queue_list(int argc, char **argv, struct queue_opts *o)
{
	struct conf *conf;
	struct entries es = {0};

	int rc = parse_options(argc, argv, "queue list", list_options,
			       usage_list, false, o);
	if (rc == -1)
		rc = check_args(argc, argv, "queue list", usage_list, 0);
	if (rc != -1)
		return rc;
	struct spool *spool;
	rc = open_queue("queue list", o, &conf, &spool);
	if (rc != -1)
		return rc;
	es.json = o->json;
	es.now = time(NULL);
	rc = spool_foreach(spool, list_each, &es);
	if (rc != 0 || es.error != 0) {
		fprintf(stderr,
			"bridgehead queue list: cannot read the queue in "
			"%s/queue: %s\n",
			conf->state_dir, strerror(es.error ? es.error : errno));
		rc = CLI_FAILED;
	} else {
		if (es.n > 1) /* qsort(NULL, 0, ...) is undefined */
			qsort(es.v, es.n, sizeof *es.v, entry_cmp);
		if (es.json)
			fputs("[", stdout);
		for (size_t i = 0; i < es.n; i++) {
			if (es.json)
				printf("%s\n  %s", i ? "," : "", es.v[i].text);
			else
				printf("%s\n", es.v[i].text);
		}
		if (es.json)
			fputs(es.n ? "\n]\n" : "]\n", stdout);
		rc = finish_output("queue list");
	}
	for (size_t i = 0; i < es.n; i++)
		free(es.v[i].text);
	free(es.v);
	spool_close(spool);
	conf_free(conf);
	return rc;
}

/* ---------------------------------------------------------------- show */

/*
 * The header section of the stored message: up to the first empty line,
 * at most QUEUE_HEADERS_MAX bytes.  *cut: it went on beyond that.
 */
static char *
read_headers(struct spool *spool, const char *id, size_t *len, bool *cut)
{
	char path[4096];
	char line[1024];
	size_t cap = 0;
	char *text = NULL;
	bool at_line_start = true;

	*len = 0;
	*cut = false;
	if (spool_content_path(spool, id, path, sizeof path) != 0)
		return NULL;
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	while (fgets(line, sizeof line, fp) != NULL) {
		size_t n = strlen(line);
		/* An empty line ends the header section (RFC 5322 2.1). */
		if (at_line_start &&
		    (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0))
			break;
		at_line_start = n > 0 && line[n - 1] == '\n';
		if (*len + n > QUEUE_HEADERS_MAX) {
			*cut = true;
			break;
		}
		if (*len + n + 1 > cap) {
			cap = cap ? cap * 2 : 4096;
			char *t = realloc(text, cap);
			if (t == NULL) {
				free(text);
				fclose(fp);
				errno = ENOMEM;
				return NULL;
			}
			text = t;
		}
		memcpy(text + *len, line, n);
		*len += n;
		text[*len] = '\0';
	}
	int err = ferror(fp) ? EIO : 0;
	fclose(fp);
	if (err != 0) {
		free(text);
		errno = err;
		return NULL;
	}
	if (text == NULL)
		text = strdup("");
	return text;
}

static void
show_field(const char *name, const char *value)
{
	printf("%-13s", name);
	if (value != NULL)
		put_str(stdout, value);
	else
		fputs("-", stdout);
	fputc('\n', stdout);
}

static void
show_text(const struct envelope *env, time_t now, const char *headers,
	  size_t hlen, bool cut, const char *content_error)
{
	char ts[ENVELOPE_TIME_MAX], words[ENVELOPE_NOTIFY_WORDS_MAX];

	show_field("id", env->id);
	printf("%-13s%s", "state", envelope_state(env, now));
	if (env->next_attempt > now)
		printf(", next attempt %s",
		       envelope_time_format(env->next_attempt, ts, sizeof ts));
	fputc('\n', stdout);
	show_field("received",
		   envelope_time_format(env->received, ts, sizeof ts));
	printf("%-13s%llu bytes\n", "size", (unsigned long long)env->size);
	printf("%-13s<", "sender");
	put_str(stdout, env->sender);
	printf(">%s\n", env->sender[0] == '\0' ? " (null sender)" : "");
	show_field("message-id", env->message_id);
	printf("%-13sbody %s, smtputf8 %s, ret %s, envid ", "parameters",
	       envelope_body_name(env->body), env->smtputf8 ? "yes" : "no",
	       envelope_ret_name(env->ret));
	put_str(stdout, env->envid != NULL ? env->envid : "-");
	fputc('\n', stdout);
	printf("%-13s", "client");
	put_str(stdout, env->client_addr != NULL ? env->client_addr : "-");
	if (env->client_port != 0)
		printf(" port %u", env->client_port);
	fputs(", ehlo ", stdout);
	put_str(stdout, env->helo != NULL ? env->helo : "-");
	fputc('\n', stdout);
	show_field("listener", env->listener);
	if (env->tls_version != NULL) {
		printf("%-13s", "tls");
		put_str(stdout, env->tls_version);
		fputc(' ', stdout);
		put_str(stdout,
			env->tls_cipher != NULL ? env->tls_cipher : "-");
		fputc('\n', stdout);
	} else {
		show_field("tls", "none");
	}
	if (env->held)
		show_field("held", "yes");
	printf("%-13s%zu\n", "recipients", env->n_rcpts);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];
		fputs("  <", stdout);
		put_str(stdout, r->address);
		printf(">  %s", envelope_rcpt_state_name(r->state));
		if (r->notify != 0)
			printf("  notify=%s",
			       envelope_notify_words(r->notify, words,
						     sizeof words));
		if (r->orcpt != NULL) {
			fputs("  orcpt=", stdout);
			put_str(stdout, r->orcpt);
		}
		fputc('\n', stdout);
		if (r->last_reply != NULL) {
			fputs("    last reply: ", stdout);
			put_str(stdout, r->last_reply);
			fputc('\n', stdout);
		}
	}
	printf("%-13s%zu\n", "attempts", env->n_attempts);
	for (size_t i = 0; i < env->n_attempts; i++) {
		const struct envelope_attempt *a = &env->attempts[i];
		printf("  %s  ", envelope_time_format(a->at, ts, sizeof ts));
		put_str(stdout, a->host != NULL ? a->host : "-");
		fputs(": ", stdout);
		put_str(stdout, a->reply != NULL ? a->reply : "-");
		fputc('\n', stdout);
	}
	if (content_error != NULL) {
		printf("headers      (unreadable: %s)\n", content_error);
		return;
	}
	fputs("headers\n", stdout);
	for (size_t i = 0; i < hlen;) {
		const char *nl = memchr(headers + i, '\n', hlen - i);
		size_t n = nl != NULL ? (size_t)(nl - (headers + i)) : hlen - i;
		size_t shown = n > 0 && headers[i + n - 1] == '\r' ? n - 1 : n;
		fputs("  ", stdout);
		put_text(stdout, headers + i, shown, true);
		fputc('\n', stdout);
		i += n + (nl != NULL ? 1 : 0);
	}
	if (cut)
		printf("  (cut at %d KiB)\n", QUEUE_HEADERS_MAX / 1024);
}

static int
show_json(const struct envelope *env, time_t now, const char *headers,
	  size_t hlen, bool cut)
{
	struct jsonw w;

	jsonw_init(&w);
	jsonw_begin_object(&w);
	json_common(&w, env, now);
	jsonw_key(&w, "next_attempt");
	if (env->next_attempt != 0)
		jsonw_time(&w, env->next_attempt);
	else
		jsonw_null(&w);
	jsonw_key(&w, "held");
	jsonw_bool(&w, env->held);
	jsonw_key(&w, "body");
	jsonw_cstr(&w, envelope_body_name(env->body));
	jsonw_key(&w, "smtputf8");
	jsonw_bool(&w, env->smtputf8);
	jsonw_key(&w, "ret");
	jsonw_cstr(&w, envelope_ret_name(env->ret));
	jsonw_key(&w, "envid");
	jsonw_cstr(&w, env->envid);
	jsonw_key(&w, "client");
	jsonw_begin_object(&w);
	jsonw_key(&w, "addr");
	jsonw_cstr(&w, env->client_addr);
	jsonw_key(&w, "port");
	jsonw_u64(&w, env->client_port);
	jsonw_key(&w, "helo");
	jsonw_cstr(&w, env->helo);
	jsonw_end_object(&w);
	jsonw_key(&w, "listener");
	jsonw_cstr(&w, env->listener);
	jsonw_key(&w, "tls");
	if (env->tls_version != NULL) {
		jsonw_begin_object(&w);
		jsonw_key(&w, "version");
		jsonw_cstr(&w, env->tls_version);
		jsonw_key(&w, "cipher");
		jsonw_cstr(&w, env->tls_cipher);
		jsonw_end_object(&w);
	} else {
		jsonw_null(&w);
	}
	json_rcpts(&w, env, true);
	jsonw_key(&w, "attempts");
	jsonw_begin_array(&w);
	for (size_t i = 0; i < env->n_attempts; i++) {
		jsonw_begin_object(&w);
		jsonw_key(&w, "at");
		jsonw_time(&w, env->attempts[i].at);
		jsonw_key(&w, "host");
		jsonw_cstr(&w, env->attempts[i].host);
		jsonw_key(&w, "reply");
		jsonw_cstr(&w, env->attempts[i].reply);
		jsonw_end_object(&w);
	}
	jsonw_end_array(&w);
	jsonw_key(&w, "headers");
	if (headers != NULL)
		jsonw_string(&w, headers, hlen);
	else
		jsonw_null(&w);
	jsonw_key(&w, "headers_cut");
	jsonw_bool(&w, cut);
	jsonw_end_object(&w);
	const char *text = jsonw_text(&w, NULL);
	if (text == NULL) {
		jsonw_free(&w);
		fprintf(stderr, "bridgehead queue show: out of memory\n");
		return CLI_FAILED;
	}
	printf("%s\n", text);
	jsonw_free(&w);
	return CLI_OK;
}

/* Load id, or say why not: ENOENT is "no message", the rest unreadable. */
static int
load_message(const char *who, struct spool *spool, const char *id,
	     struct envelope *env)
{
	if (spool_load(spool, id, env) == 0)
		return 0;
	if (errno == ENOENT)
		fprintf(stderr, "bridgehead %s: no message %s in the queue\n",
			who, id);
	else if (errno == EBADMSG)
		fprintf(stderr,
			"bridgehead %s: the envelope of %s is unreadable (the "
			"server moves it to queue/corrupt/ when it starts)\n",
			who, id);
	else
		fprintf(stderr, "bridgehead %s: cannot read message %s: %s\n",
			who, id, strerror(errno));
	return -1;
}

static const struct option show_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int
queue_show(int argc, char **argv, struct queue_opts *o)
{
	struct conf *conf;
	struct envelope env = {0};
	size_t hlen = 0;
	bool cut = false;

	int rc = parse_options(argc, argv, "queue show", show_options,
			       usage_show, false, o);
	if (rc == -1)
		rc = check_args(argc, argv, "queue show", usage_show, 1);
	if (rc == -1)
		rc = check_id("queue show", argv[optind]);
	if (rc != -1)
		return rc;
	const char *id = argv[optind];
	struct spool *spool;
	rc = open_queue("queue show", o, &conf, &spool);
	if (rc != -1)
		return rc;
	if (load_message("queue show", spool, id, &env) != 0) {
		spool_close(spool);
		conf_free(conf);
		return CLI_FAILED;
	}
	char *headers = read_headers(spool, id, &hlen, &cut);
	int content_errno = headers == NULL ? errno : 0;
	time_t now = time(NULL);
	if (o->json) {
		rc = show_json(&env, now, headers, hlen, cut);
	} else {
		show_text(&env, now, headers, hlen, cut,
			  headers == NULL ? strerror(content_errno) : NULL);
		rc = CLI_OK;
	}
	if (rc == CLI_OK)
		rc = finish_output("queue show");
	/* An envelope without its content is a fault worth an exit status. */
	if (rc == CLI_OK && headers == NULL) {
		fprintf(stderr,
			"bridgehead queue show: the content of %s is "
			"unreadable: %s\n",
			id, strerror(content_errno));
		rc = CLI_FAILED;
	}
	free(headers);
	envelope_clear(&env);
	spool_close(spool);
	conf_free(conf);
	return rc;
}

/* -------------------------------------------------------------- delete */

static const struct option delete_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int
queue_delete(int argc, char **argv, struct queue_opts *o)
{
	struct conf *conf;
	struct envelope env = {0};

	int rc = parse_options(argc, argv, "queue delete", delete_options,
			       usage_delete, false, o);
	if (rc == -1)
		rc = check_args(argc, argv, "queue delete", usage_delete, 1);
	if (rc == -1)
		rc = check_id("queue delete", argv[optind]);
	if (rc != -1)
		return rc;
	const char *id = argv[optind];
	struct spool *spool;
	rc = open_queue("queue delete", o, &conf, &spool);
	if (rc != -1)
		return rc;

	/* The envelope, for the tracking event; a corrupt one still goes. */
	if (spool_load(spool, id, &env) != 0) {
		if (errno != EBADMSG) {
			load_message("queue delete", spool, id, &env);
			rc = CLI_FAILED;
			goto out;
		}
		memset(&env, 0, sizeof env);
		snprintf(env.id, sizeof env.id, "%s", id);
	}
	if (spool_delete(spool, id) != 0) {
		if (errno == ENOENT)
			fprintf(stderr,
				"bridgehead queue delete: no message "
				"%s in the queue\n",
				id);
		else
			fprintf(stderr,
				"bridgehead queue delete: cannot remove "
				"%s from %s/queue/active: %s\n",
				id, conf->state_dir, strerror(errno));
		rc = CLI_FAILED;
		goto out;
	}
	printf("deleted %s\n", id);
	rc = finish_output("queue delete");
	if (tracking_open(conf->state_dir) != 0) {
		fprintf(stderr,
			"bridgehead queue delete: %s was deleted, but the "
			"tracking log %s/log/tracking.jsonl cannot be opened: "
			"%s\n",
			id, conf->state_dir, strerror(errno));
		rc = CLI_FAILED;
		goto out;
	}
	struct tracking_info info = {.event = "deleted",
				     .reply = "deleted by the administrator"};
	tracking_event(&env, &info);
	tracking_close();
out:
	envelope_clear(&env);
	spool_close(spool);
	conf_free(conf);
	return rc;
}

/* --------------------------------------------------------------- flush */

static const struct option flush_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/*
 * state_dir/queue/flush/NAME, empty, made under a temporary name and
 * renamed so that the server never sees a request half made.
 */
static int
flush_request(const char *state_dir, const char *name)
{
	char dir[4096], tmp[4200], path[4200];

	snprintf(dir, sizeof dir, "%s/queue/flush", state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "bridgehead queue flush: cannot make %s: %s\n",
			dir, strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof tmp, "%s/.%s.%ld", dir, name, (long)getpid());
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "bridgehead queue flush: cannot write %s: %s\n",
			path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
queue_flush(int argc, char **argv, struct queue_opts *o)
{
	struct conf *conf;
	struct spool *spool;
	struct envelope env = {0};

	int rc = parse_options(argc, argv, "queue flush", flush_options,
			       usage_flush, false, o);
	if (rc == -1 && argc - optind > 1) {
		fprintf(stderr,
			"bridgehead queue flush: unexpected argument '%s'\n",
			argv[optind + 1]);
		usage_flush(stderr);
		rc = CLI_USAGE;
	}
	const char *id = argc - optind == 1 ? argv[optind] : NULL;
	if (rc == -1 && id != NULL)
		rc = check_id("queue flush", id);
	if (rc != -1)
		return rc;
	rc = open_queue("queue flush", o, &conf, &spool);
	if (rc != -1)
		return rc;
	rc = CLI_FAILED;
	if (id != NULL && load_message("queue flush", spool, id, &env) != 0)
		goto out;
	if (pidfile_running(conf->state_dir) == 0) {
		fprintf(stderr,
			"bridgehead queue flush: no server is running on %s\n",
			conf->state_dir);
		goto out;
	}
	if (flush_request(conf->state_dir, id != NULL ? id : "ALL") < 0)
		goto out;
	if (pidfile_signal(conf->state_dir, SIGUSR1) < 0) {
		if (errno == EPERM)
			fprintf(stderr,
				"bridgehead queue flush: not allowed to signal "
				"the server of %s\n",
				conf->state_dir);
		else
			fprintf(stderr,
				"bridgehead queue flush: no server is running "
				"on %s\n",
				conf->state_dir);
		goto out;
	}
	printf("flush requested: %s\n", id != NULL ? id : "all messages");
	rc = finish_output("queue flush");
out:
	envelope_clear(&env);
	spool_close(spool);
	conf_free(conf);
	return rc;
}

/* ------------------------------------------------------------ dispatch */

static const struct option group_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const struct {
	const char *name;
	int (*run)(int argc, char **argv, struct queue_opts *o);
} queue_commands[] = {
	{"list", queue_list},
	{"show", queue_show},
	{"delete", queue_delete},
	{"flush", queue_flush},
};

int
cli_queue(int argc, char **argv)
{
	struct queue_opts o = {0};

	int rc = parse_options(argc, argv, "queue", group_options, usage_queue,
			       true, &o);
	if (rc != -1)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "bridgehead queue: missing a command (list, "
				"show, delete, flush)\n");
		usage_queue(stderr);
		return CLI_USAGE;
	}
	const char *word = argv[optind];
	for (size_t i = 0; i < sizeof queue_commands / sizeof queue_commands[0];
	     i++) {
		if (strcmp(word, queue_commands[i].name) == 0)
			return queue_commands[i].run(argc - optind,
						     argv + optind, &o);
	}
	char shown[80];
	fprintf(stderr,
		"bridgehead queue: unknown command '%s' (list, show, "
		"delete, flush)\n",
		log_escape(shown, sizeof shown, word, strlen(word)));
	usage_queue(stderr);
	return CLI_USAGE;
}
