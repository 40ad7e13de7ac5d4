/*
 * connector: the `bridgehead connector` command group (DESIGN.md "Command
 * line", "Configuration").
 *
 *   cli_connector()  `connector add NAME ...`, `connector set NAME ...`,
 *                    `connector list [--json]`, `connector show NAME
 *                    [--json]`, `connector remove NAME`, `connector
 *                    test NAME [--json]` (the probe itself is
 *                    cli_connector_test(), connector_probe.c).
 *
 * A connector made here lives in connectors.d/NAME.conf beside the main
 * configuration file, one [connector NAME] section per file; the main file
 * is never written.  `set` and `remove` refuse a connector of the main file
 * and say where it is.
 *
 * A change is all or nothing: every option value is checked with the
 * configuration module's own parsers (domain and host syntax, port range,
 * TLS level, names), then the new file is written as a temporary file in
 * connectors.d/ (.NAME.conf.tmp, which the loader skips), fsync'd, and the
 * whole configuration is loaded as it would be with it in place
 * (conf_load_replacing()); only if that loads, and gives back exactly the
 * connector asked for, is the file renamed into place and the directory
 * fsync'd.  Any failure removes the temporary file (and connectors.d/ if
 * this command made it), so connectors.d/ stays byte for byte as it was.
 * Concurrent changes are serialised by an flock() on connectors.d/.
 *
 * Afterwards a running server (state_dir/bridgehead.pid) gets SIGHUP and
 * reloads.  Exit status: 0 done, 1 the change is made but the server could
 * not be told, 2 usage or configuration error (nothing changed).
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "queue/jsonw.h"
#include "util/pidfile.h"

#define MAX_ITEMS 4096 /* elements of one list option, as the loader */
#define ERR_LEN 1024

enum sub { SUB_ADD, SUB_SET, SUB_LIST, SUB_SHOW, SUB_REMOVE, SUB_TEST };

/* The values of a list option, split at commas, in the order given. */
struct list {
	char **items;
	size_t n;
	bool given; /* an empty value clears the list */
};

struct opts {
	enum sub sub;
	const char *cmd; /* "connector add", for messages */
	const char *config;
	const char *name;
	bool json;
	unsigned changes; /* options that change a connector */

	struct list spaces, hosts, bridgeheads, tls_match;
	bool dns;
	const char *tls, *port, *tls_ca_file, *auth_username,
		*auth_password_file, *client_certificate, *max_connections;
};

enum {
	OPT_ADDRESS_SPACE = 256,
	OPT_SMART_HOST,
	OPT_DNS,
	OPT_BRIDGEHEAD,
	OPT_TLS,
	OPT_PORT,
	OPT_TLS_MATCH,
	OPT_TLS_CA_FILE,
	OPT_AUTH_USERNAME,
	OPT_AUTH_PASSWORD_FILE,
	OPT_CLIENT_CERTIFICATE,
	OPT_MAX_CONNECTIONS,
	OPT_JSON,
};

static const struct option long_options[] = {
	{"address-space", required_argument, NULL, OPT_ADDRESS_SPACE},
	{"smart-host", required_argument, NULL, OPT_SMART_HOST},
	{"dns", no_argument, NULL, OPT_DNS},
	{"bridgehead", required_argument, NULL, OPT_BRIDGEHEAD},
	{"tls", required_argument, NULL, OPT_TLS},
	{"port", required_argument, NULL, OPT_PORT},
	{"tls-match", required_argument, NULL, OPT_TLS_MATCH},
	{"tls-ca-file", required_argument, NULL, OPT_TLS_CA_FILE},
	{"auth-username", required_argument, NULL, OPT_AUTH_USERNAME},
	{"auth-password-file", required_argument, NULL, OPT_AUTH_PASSWORD_FILE},
	{"client-certificate", required_argument, NULL, OPT_CLIENT_CERTIFICATE},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"json", no_argument, NULL, OPT_JSON},
	{"config", required_argument, NULL, 'c'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Help. */

#define USAGE_LINE                                                             \
	"usage: bridgehead connector add|set|list|show|remove|test ... "       \
	"(bridgehead connector --help)\n"

static const char options_help[] =
	"  --address-space DOMAIN[;COST]  example.com, *.example.com "
	"(subdomains)\n"
	"                         or *; cost 1-100 (default 1); repeat or "
	"use commas\n"
	"  --smart-host HOST[:PORT]  next hops in order: name, IP or "
	"[IP]:PORT\n"
	"  --dns                  send to the domain's MX hosts instead\n"
	"  --bridgehead NAME      source bridgeheads allowed to send through "
	"it\n"
	"                         (default: every node)\n"
	"  --tls none|may|encrypt|verify  outbound TLS policy (new "
	"connectors: may)\n"
	"  --port N               port of the next hops (default 25)\n"
	"  --tls-match NAME       names accepted in the next hop's "
	"certificate\n"
	"  --tls-ca-file FILE     CA bundle for verify (default: the system "
	"store)\n"
	"  --auth-username NAME --auth-password-file FILE\n"
	"                         AUTH over TLS (needs --tls encrypt or "
	"verify)\n"
	"  --client-certificate yes|no  present our certificate (default "
	"yes)\n"
	"  --max-connections N    connections at once (default 20)\n"
	"  -c, --config FILE      the configuration file (default "
	"$BRIDGEHEAD_CONFIG,\n"
	"                         else /etc/bridgehead/bridgehead.conf)\n";

static void
usage_group(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector add NAME --address-space "
		"DOMAIN[;COST]...\n"
		"                 (--smart-host HOST[:PORT]... | --dns) "
		"[options]\n"
		"       bridgehead connector set NAME [options]\n"
		"       bridgehead connector list [--json]\n"
		"       bridgehead connector show NAME [--json]\n"
		"       bridgehead connector remove NAME\n"
		"       bridgehead connector test NAME [--json]\n"
		"\n"
		"Connectors route mail: the recipient domains of their address "
		"spaces go to\n"
		"their smart hosts (or MX hosts) under their TLS policy.  add, "
		"set and remove\n"
		"write connectors.d/NAME.conf beside the configuration file "
		"and tell a\n"
		"running server to reload; test talks to its next hops without "
		"sending\n"
		"mail.  'bridgehead connector SUBCOMMAND --help' tells "
		"more.\n");
}

static void
usage_add(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector add NAME --address-space "
		"DOMAIN[;COST]...\n"
		"           (--smart-host HOST[:PORT]... | --dns) [options]\n"
		"\n"
		"Writes connectors.d/NAME.conf after checking every value and "
		"loading the\n"
		"whole configuration with it; nothing changes on an error "
		"(exit "
		"2).  NAME:\n"
		"letters, digits, '.', '_', '-', 64 at most.\n\n%s",
		options_help);
}

static void
usage_set(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector set NAME [options]\n"
		"\n"
		"Changes only the options given, in connectors.d/NAME.conf.  A "
		"list option\n"
		"replaces the whole list; an empty value ('') clears "
		"--bridgehead,\n"
		"--tls-match, --tls-ca-file and (both together) the "
		"authentication.\n"
		"--smart-host switches to smart hosts, --dns to MX routing.  A "
		"connector\n"
		"defined in the main file is changed there (exit 2).\n\n%s",
		options_help);
}

static void
usage_list(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector list [--json] [-c FILE]\n"
		"\n"
		"One line per connector: name, address spaces, next hops, TLS "
		"policy,\n"
		"source bridgeheads and where it is defined.  --json: an array "
		"of objects.\n");
}

static void
usage_show(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector show NAME [--json] [-c FILE]\n"
		"\n"
		"Every key of the connector, defaults included, in the file "
		"syntax (or as\n"
		"a JSON object).  The password stays in its file.\n");
}

static void
usage_remove(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector remove NAME [-c FILE]\n"
		"\n"
		"Deletes connectors.d/NAME.conf and tells a running server to "
		"reload.\n");
}

static void
usage_test(FILE *out)
{
	fprintf(out,
		"usage: bridgehead connector test NAME [--json] [-c FILE]\n"
		"\n"
		"Connects to each next hop of the connector, does EHLO and "
		"STARTTLS as its\n"
		"TLS policy says, prints the capabilities, the certificate "
		"chain, the\n"
		"verification result, the TLS protocol and cipher, and QUITs "
		"without sending\n"
		"mail.  Exit status: 0 mail would flow, 1 it would not, 2 no "
		"such connector\n"
		"or a configuration error.\n");
}

static void (*const usages[])(FILE *) = {
	[SUB_ADD] = usage_add,	     [SUB_SET] = usage_set,
	[SUB_LIST] = usage_list,     [SUB_SHOW] = usage_show,
	[SUB_REMOVE] = usage_remove, [SUB_TEST] = usage_test,
};

/* Options. */

static void
list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	*l = (struct list){NULL, 0, false};
}

static void
opts_free(struct opts *o)
{
	list_free(&o->spaces);
	list_free(&o->hosts);
	list_free(&o->bridgeheads);
	list_free(&o->tls_match);
}

/* Appends the comma-separated elements of value, blanks trimmed. */
static int
list_add(struct opts *o, struct list *l, const char *opt, const char *value)
{
	const char *s = value;

	l->given = true;
	if (value[strspn(value, " \t")] == '\0')
		return 0; /* '': clear (checked per option later) */
	for (size_t k = 1;; k++) {
		const char *end = strchr(s, ',');
		size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
		while (len > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			fprintf(stderr,
				"bridgehead %s: --%s '%s': element %zu is "
				"empty\n",
				o->cmd, opt, value, k);
			return -1;
		}
		if (l->n == MAX_ITEMS) {
			fprintf(stderr,
				"bridgehead %s: --%s: more than %d values\n",
				o->cmd, opt, MAX_ITEMS);
			return -1;
		}
		char **a = realloc(l->items, (l->n + 1) * sizeof *a);
		if (a == NULL || (a[l->n] = strndup(s, len)) == NULL) {
			if (a != NULL)
				l->items = a;
			fprintf(stderr, "bridgehead %s: out of memory\n",
				o->cmd);
			return -1;
		}
		l->items = a;
		l->n++;
		if (end == NULL)
			return 0;
		s = end + 1;
	}
}

static int
single(struct opts *o, const char **dst, const char *opt, const char *value)
{
	if (*dst != NULL) {
		fprintf(stderr,
			"bridgehead %s: --%s is given twice ('%s', "
			"'%s')\n",
			o->cmd, opt, *dst, value);
		return -1;
	}
	*dst = value;
	return 0;
}

/* The long option name of a code, for messages. */
static const char *
opt_name(int code)
{
	for (const struct option *p = long_options; p->name != NULL; p++)
		if (p->val == code)
			return p->name;
	return "?";
}

static int
take_option(struct opts *o, int ch, const char *arg)
{
	const char *n = opt_name(ch);

	if (ch != OPT_JSON)
		o->changes++;
	switch (ch) {
	case OPT_ADDRESS_SPACE:
		return list_add(o, &o->spaces, n, arg);
	case OPT_SMART_HOST:
		return list_add(o, &o->hosts, n, arg);
	case OPT_BRIDGEHEAD:
		return list_add(o, &o->bridgeheads, n, arg);
	case OPT_TLS_MATCH:
		return list_add(o, &o->tls_match, n, arg);
	case OPT_DNS:
		o->dns = true;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_TLS:
		return single(o, &o->tls, n, arg);
	case OPT_PORT:
		return single(o, &o->port, n, arg);
	case OPT_TLS_CA_FILE:
		return single(o, &o->tls_ca_file, n, arg);
	case OPT_AUTH_USERNAME:
		return single(o, &o->auth_username, n, arg);
	case OPT_AUTH_PASSWORD_FILE:
		return single(o, &o->auth_password_file, n, arg);
	case OPT_CLIENT_CERTIFICATE:
		return single(o, &o->client_certificate, n, arg);
	case OPT_MAX_CONNECTIONS:
		return single(o, &o->max_connections, n, arg);
	}
	return -1;
}

/*
 * getopt_long over the words after the subcommand, options and the NAME
 * in any order.  Returns -1 to go on, else the exit status.
 */
static int
parse_sub_options(struct opts *o, int argc, char **argv)
{
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", long_options, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'h':
			usages[o->sub](stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr,
				"bridgehead %s: option '%s' needs a "
				"value\n",
				o->cmd, argv[optind - 1]);
			return CLI_USAGE;
		case '?':
			fprintf(stderr, "bridgehead %s: unknown option '%s'\n",
				o->cmd, argv[optind - 1]);
			usages[o->sub](stderr);
			return CLI_USAGE;
		default:
			if (take_option(o, ch, optarg) == -1)
				return CLI_USAGE;
			break;
		}
	}
	return -1;
}

/* NAME, and which options a subcommand takes. */
static int
check_words(struct opts *o, int argc, char **argv)
{
	bool wants_name = o->sub != SUB_LIST;
	bool modifies = o->sub == SUB_ADD || o->sub == SUB_SET;
	bool prints =
		o->sub == SUB_LIST || o->sub == SUB_SHOW || o->sub == SUB_TEST;
	int left = argc - optind;

	if (left > (wants_name ? 1 : 0)) {
		fprintf(stderr, "bridgehead %s: unexpected argument '%s'\n",
			o->cmd, argv[optind + (wants_name ? 1 : 0)]);
		return CLI_USAGE;
	}
	if (wants_name && left == 0) {
		fprintf(stderr,
			"bridgehead %s: the connector NAME is "
			"missing\n",
			o->cmd);
		usages[o->sub](stderr);
		return CLI_USAGE;
	}
	if (wants_name) {
		o->name = argv[optind];
		if (!conf_valid_name(o->name)) {
			fprintf(stderr,
				"bridgehead %s: '%s' is not a valid connector "
				"name (letters, digits, '.', '_', '-'; "
				"starting with a letter or digit; 64 at "
				"most)\n",
				o->cmd, o->name);
			return CLI_USAGE;
		}
	}
	if (!modifies && o->changes > 0) {
		fprintf(stderr,
			"bridgehead %s: connector options go with add "
			"and set only\n",
			o->cmd);
		return CLI_USAGE;
	}
	if (!prints && o->json) {
		fprintf(stderr,
			"bridgehead %s: --json goes with list, show and "
			"test only\n",
			o->cmd);
		return CLI_USAGE;
	}
	if (o->sub == SUB_SET && o->changes == 0) {
		fprintf(stderr,
			"bridgehead %s: nothing to change (give at "
			"least one option)\n",
			o->cmd);
		return CLI_USAGE;
	}
	return -1;
}

/* The connector model: copies, comparison, freeing. */

static void
strings_free(char **a, size_t n)
{
	for (size_t i = 0; a != NULL && i < n; i++)
		free(a[i]);
	free(a);
}

static void
connector_free(struct conf_connector *c)
{
	free(c->name);
	free(c->file);
	for (size_t i = 0; i < c->n_address_spaces; i++)
		free(c->address_spaces[i].pattern);
	free(c->address_spaces);
	for (size_t i = 0; i < c->n_smart_hosts; i++)
		free(c->smart_hosts[i].host);
	free(c->smart_hosts);
	strings_free(c->source_bridgeheads, c->n_source_bridgeheads);
	strings_free(c->tls_match, c->n_tls_match);
	free(c->tls_ca_file);
	free(c->auth_username);
	free(c->auth_password_file);
	memset(c, 0, sizeof *c);
}

static int
dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst != NULL ? 0 : -1;
}

static int
strings_copy(char ***dst, size_t *dn, char *const *src, size_t n)
{
	*dst = NULL;
	*dn = 0;
	if (n == 0)
		return 0;
	if ((*dst = calloc(n, sizeof **dst)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (((*dst)[i] = strdup(src[i])) == NULL)
			return -1;
		*dn = i + 1;
	}
	return 0;
}

/* A deep copy; on failure dst holds what was copied (free it). */
static int
connector_copy(struct conf_connector *dst, const struct conf_connector *src)
{
	*dst = *src;
	dst->name = dst->file = dst->tls_ca_file = NULL;
	dst->auth_username = dst->auth_password_file = NULL;
	dst->address_spaces = NULL;
	dst->n_address_spaces = 0;
	dst->smart_hosts = NULL;
	dst->n_smart_hosts = 0;
	if (dup_opt(&dst->name, src->name) || dup_opt(&dst->file, src->file) ||
	    dup_opt(&dst->tls_ca_file, src->tls_ca_file) ||
	    dup_opt(&dst->auth_username, src->auth_username) ||
	    dup_opt(&dst->auth_password_file, src->auth_password_file) ||
	    strings_copy(&dst->source_bridgeheads, &dst->n_source_bridgeheads,
			 src->source_bridgeheads, src->n_source_bridgeheads) ||
	    strings_copy(&dst->tls_match, &dst->n_tls_match, src->tls_match,
			 src->n_tls_match))
		return -1;
	if (src->n_address_spaces > 0) {
		dst->address_spaces = calloc(src->n_address_spaces,
					     sizeof(*src->address_spaces));
		if (dst->address_spaces == NULL)
			return -1;
		for (size_t i = 0; i < src->n_address_spaces; i++) {
			dst->address_spaces[i].cost =
				src->address_spaces[i].cost;
			if (dup_opt(&dst->address_spaces[i].pattern,
				    src->address_spaces[i].pattern))
				return -1;
			dst->n_address_spaces = i + 1;
		}
	}
	if (src->n_smart_hosts > 0) {
		dst->smart_hosts =
			calloc(src->n_smart_hosts, sizeof(*src->smart_hosts));
		if (dst->smart_hosts == NULL)
			return -1;
		for (size_t i = 0; i < src->n_smart_hosts; i++) {
			dst->smart_hosts[i] = src->smart_hosts[i];
			dst->smart_hosts[i].host = NULL;
			if (dup_opt(&dst->smart_hosts[i].host,
				    src->smart_hosts[i].host))
				return -1;
			dst->n_smart_hosts = i + 1;
		}
	}
	return 0;
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
strings_eq(char *const *a, size_t an, char *const *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Is the connector read back from the file the one that was written? */
static bool
connector_eq(const struct conf_connector *a, const struct conf_connector *b)
{
	if (!str_eq(a->name, b->name) || a->dns != b->dns || a->tls != b->tls ||
	    a->port != b->port || a->max_connections != b->max_connections ||
	    a->tls_client_certificate != b->tls_client_certificate ||
	    !str_eq(a->tls_ca_file, b->tls_ca_file) ||
	    !str_eq(a->auth_username, b->auth_username) ||
	    !str_eq(a->auth_password_file, b->auth_password_file) ||
	    !strings_eq(a->source_bridgeheads, a->n_source_bridgeheads,
			b->source_bridgeheads, b->n_source_bridgeheads) ||
	    !strings_eq(a->tls_match, a->n_tls_match, b->tls_match,
			b->n_tls_match) ||
	    a->n_address_spaces != b->n_address_spaces ||
	    a->n_smart_hosts != b->n_smart_hosts)
		return false;
	for (size_t i = 0; i < a->n_address_spaces; i++)
		if (strcmp(a->address_spaces[i].pattern,
			   b->address_spaces[i].pattern) != 0 ||
		    a->address_spaces[i].cost != b->address_spaces[i].cost)
			return false;
	for (size_t i = 0; i < a->n_smart_hosts; i++)
		if (strcmp(a->smart_hosts[i].host, b->smart_hosts[i].host) !=
			    0 ||
		    a->smart_hosts[i].port != b->smart_hosts[i].port ||
		    a->smart_hosts[i].literal != b->smart_hosts[i].literal)
			return false;
	return true;
}

/* Applying the options: each value checked as the loader checks it. */

static int
value_error(const struct opts *o, int code, const char *why)
{
	fprintf(stderr, "bridgehead %s: --%s: %s\n", o->cmd, opt_name(code),
		why);
	return -1;
}

static int
apply_spaces(const struct opts *o, struct conf_connector *c)
{
	struct conf_address_space *a;
	char err[ERR_LEN];

	if (!o->spaces.given)
		return 0;
	if (o->spaces.n == 0)
		return value_error(o, OPT_ADDRESS_SPACE,
				   "a connector needs at least one address "
				   "space");
	if ((a = calloc(o->spaces.n, sizeof *a)) == NULL)
		return value_error(o, OPT_ADDRESS_SPACE, "out of memory");
	for (size_t i = 0; i < c->n_address_spaces; i++)
		free(c->address_spaces[i].pattern);
	free(c->address_spaces);
	c->address_spaces = a;
	c->n_address_spaces = 0;
	for (size_t i = 0; i < o->spaces.n; i++) {
		if (conf_parse_address_space(o->spaces.items[i], &a[i], err,
					     sizeof err) == -1)
			return value_error(o, OPT_ADDRESS_SPACE, err);
		c->n_address_spaces = i + 1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(a[j].pattern, a[i].pattern) == 0) {
				snprintf(err, sizeof err,
					 "'%s' is listed twice", a[i].pattern);
				return value_error(o, OPT_ADDRESS_SPACE, err);
			}
		}
	}
	return 0;
}

static bool
same_host(const struct conf_host *a, const struct conf_host *b)
{
	return strcasecmp(a->host, b->host) == 0 && a->port == b->port;
}

static int
apply_hosts(const struct opts *o, struct conf_connector *c)
{
	struct conf_host *a;
	char err[ERR_LEN];

	if (o->dns && o->hosts.given)
		return value_error(o, OPT_DNS,
				   "--smart-host and --dns exclude each other; "
				   "give one");
	if (o->dns) {
		for (size_t i = 0; i < c->n_smart_hosts; i++)
			free(c->smart_hosts[i].host);
		free(c->smart_hosts);
		c->smart_hosts = NULL;
		c->n_smart_hosts = 0;
		c->dns = true;
		return 0;
	}
	if (!o->hosts.given)
		return 0;
	if (o->hosts.n == 0)
		return value_error(
			o, OPT_SMART_HOST,
			"the list of smart hosts is empty (use --dns "
			"for MX routing)");
	if ((a = calloc(o->hosts.n, sizeof *a)) == NULL)
		return value_error(o, OPT_SMART_HOST, "out of memory");
	for (size_t i = 0; i < c->n_smart_hosts; i++)
		free(c->smart_hosts[i].host);
	free(c->smart_hosts);
	c->smart_hosts = a;
	c->n_smart_hosts = 0;
	c->dns = false;
	for (size_t i = 0; i < o->hosts.n; i++) {
		err[0] = '\0';
		if (conf_parse_host(o->hosts.items[i], &a[i], err,
				    sizeof err) == -1) {
			free(a[i].host);
			return value_error(o, OPT_SMART_HOST,
					   err[0] ? err : "out of memory");
		}
		c->n_smart_hosts = i + 1;
		for (size_t j = 0; j < i; j++) {
			if (same_host(&a[j], &a[i])) {
				snprintf(err, sizeof err,
					 "'%s' is listed twice",
					 o->hosts.items[i]);
				return value_error(o, OPT_SMART_HOST, err);
			}
		}
	}
	return 0;
}

/* A list of DNS names (--bridgehead, --tls-match); '' empties it. */
static int
apply_names(const struct opts *o, int code, const struct list *l,
	    unsigned flags, char ***arr, size_t *n)
{
	char **a = NULL;
	char err[ERR_LEN], name[256];

	if (!l->given)
		return 0;
	if (l->n > 0 && (a = calloc(l->n, sizeof *a)) == NULL)
		return value_error(o, code, "out of memory");
	strings_free(*arr, *n);
	*arr = a;
	*n = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (conf_parse_domain(l->items[i], flags, name, sizeof name,
				      err, sizeof err) == -1)
			return value_error(o, code, err);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(a[j], name) == 0) {
				snprintf(err, sizeof err,
					 "'%s' is listed twice", l->items[i]);
				return value_error(o, code, err);
			}
		}
		if ((a[i] = strdup(name)) == NULL)
			return value_error(o, code, "out of memory");
		*n = i + 1;
	}
	return 0;
}

static int
apply_number(const struct opts *o, int code, const char *value, unsigned min,
	     unsigned max, unsigned *out)
{
	char err[ERR_LEN];
	unsigned long v = 0;

	if (value == NULL)
		return 0;
	if (value[0] == '\0' || strspn(value, "0123456789") != strlen(value)) {
		snprintf(err, sizeof err, "'%s' is not a whole number", value);
		return value_error(o, code, err);
	}
	for (const char *s = value; *s != '\0' && v <= max; s++)
		v = v * 10 + (unsigned long)(*s - '0');
	if (v < min || v > max) {
		snprintf(err, sizeof err, "%s is out of range (%u-%u)", value,
			 min, max);
		return value_error(o, code, err);
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * A value written as "key = value" must read back the same: no control
 * characters, no blanks at either end (inih trims them), no " #" (a
 * comment to our reader).
 */
static const char *
unsafe_value(const char *v)
{
	size_t len = strlen(v);

	for (const char *s = v; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return "has control characters";
		if (*s == '#' && s > v && (s[-1] == ' ' || s[-1] == '\t'))
			return "has ' #', which starts a comment in the "
			       "configuration";
	}
	if (len > 0 && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' ||
			v[len - 1] == '\t'))
		return "starts or ends with a blank";
	if (v[0] == '#' || v[0] == ';')
		return "starts with a comment character";
	return NULL;
}

/*
 * A file option: '' clears it; otherwise an existing, readable regular
 * file, stored absolute (a relative name is taken from the current
 * directory, as the person typing it means it).
 */
static int
apply_file(const struct opts *o, int code, const char *value, char **dst)
{
	char err[ERR_LEN], cwd[PATH_MAX];
	struct stat st;
	const char *bad;
	char *abs;

	if (value == NULL)
		return 0;
	if (value[0] == '\0') {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	if ((bad = unsafe_value(value)) != NULL) {
		snprintf(err, sizeof err, "the file name '%s' %s", value, bad);
		return value_error(o, code, err);
	}
	if (stat(value, &st) == -1) {
		snprintf(err, sizeof err, "cannot use '%s': %s", value,
			 strerror(errno));
		return value_error(o, code, err);
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, sizeof err, "'%s' is not a regular file", value);
		return value_error(o, code, err);
	}
	if (access(value, R_OK) == -1) {
		snprintf(err, sizeof err, "cannot read '%s': %s", value,
			 strerror(errno));
		return value_error(o, code, err);
	}
	if (value[0] == '/') {
		abs = strdup(value);
	} else {
		if (getcwd(cwd, sizeof cwd) == NULL)
			return value_error(o, code,
					   "the current directory is unknown");
		size_t cl = strlen(cwd), vl = strlen(value);
		if (cl + 1 + vl + 1 > PATH_MAX)
			return value_error(o, code, "the path is too long");
		abs = malloc(cl + 1 + vl + 1);
		if (abs != NULL) {
			memcpy(abs, cwd, cl);
			abs[cl] = '/';
			memcpy(abs + cl + 1, value, vl + 1);
		}
	}
	if (abs == NULL)
		return value_error(o, code, "out of memory");
	free(*dst);
	*dst = abs;
	return 0;
}

static int
apply_auth(const struct opts *o, struct conf_connector *c)
{
	char err[ERR_LEN];
	const char *bad;

	if (o->auth_username != NULL) {
		free(c->auth_username);
		c->auth_username = NULL;
		if (o->auth_username[0] != '\0') {
			if (strlen(o->auth_username) > 255)
				return value_error(o, OPT_AUTH_USERNAME,
						   "the user name is longer "
						   "than 255");
			if ((bad = unsafe_value(o->auth_username)) != NULL) {
				snprintf(err, sizeof err,
					 "the user name '%s' %s",
					 o->auth_username, bad);
				return value_error(o, OPT_AUTH_USERNAME, err);
			}
			c->auth_username = strdup(o->auth_username);
			if (c->auth_username == NULL)
				return value_error(o, OPT_AUTH_USERNAME,
						   "out of memory");
		}
	}
	return apply_file(o, OPT_AUTH_PASSWORD_FILE, o->auth_password_file,
			  &c->auth_password_file);
}

static int
apply_scalars(const struct opts *o, struct conf_connector *c)
{
	char err[ERR_LEN];

	if (o->tls != NULL &&
	    conf_connector_tls_from_name(o->tls, &c->tls) == -1) {
		snprintf(err, sizeof err,
			 "'%s' is not one of none, may, encrypt, verify",
			 o->tls);
		return value_error(o, OPT_TLS, err);
	}
	if (o->client_certificate != NULL) {
		if (strcasecmp(o->client_certificate, "yes") == 0) {
			c->tls_client_certificate = true;
		} else if (strcasecmp(o->client_certificate, "no") == 0) {
			c->tls_client_certificate = false;
		} else {
			snprintf(err, sizeof err, "'%s' is neither yes nor no",
				 o->client_certificate);
			return value_error(o, OPT_CLIENT_CERTIFICATE, err);
		}
	}
	if (apply_number(o, OPT_PORT, o->port, 1, 65535, &c->port) == -1 ||
	    apply_number(o, OPT_MAX_CONNECTIONS, o->max_connections, 1, 10000,
			 &c->max_connections) == -1)
		return -1;
	return apply_file(o, OPT_TLS_CA_FILE, o->tls_ca_file, &c->tls_ca_file);
}

/* What no single option can tell: the connector as a whole. */
static int
check_whole(const struct opts *o, const struct conf_connector *c)
{
	if (c->n_address_spaces == 0)
		return value_error(o, OPT_ADDRESS_SPACE,
				   "missing; a connector needs at least one "
				   "address space");
	if (c->n_smart_hosts == 0 && !c->dns)
		return value_error(o, OPT_SMART_HOST,
				   "missing; give --smart-host HOST[:PORT] or "
				   "--dns");
	if (c->auth_username != NULL && c->auth_password_file == NULL)
		return value_error(o, OPT_AUTH_USERNAME,
				   "needs --auth-password-file as well");
	if (c->auth_username == NULL && c->auth_password_file != NULL)
		return value_error(o, OPT_AUTH_PASSWORD_FILE,
				   "needs --auth-username as well");
	if (c->auth_username != NULL && c->tls != CONF_CONNECTOR_TLS_ENCRYPT &&
	    c->tls != CONF_CONNECTOR_TLS_VERIFY) {
		char err[ERR_LEN];
		snprintf(err, sizeof err,
			 "authentication needs --tls encrypt or verify (a "
			 "password is never sent in clear text); the "
			 "connector's TLS policy is %s",
			 conf_connector_tls_name(c->tls));
		return value_error(o,
				   o->auth_username != NULL ? OPT_AUTH_USERNAME
							    : OPT_TLS,
				   err);
	}
	return 0;
}

static int
apply_options(const struct opts *o, struct conf_connector *c)
{
	if (apply_spaces(o, c) == -1 || apply_hosts(o, c) == -1 ||
	    apply_names(o, OPT_BRIDGEHEAD, &o->bridgeheads, CONF_DOMAIN_FQDN,
			&c->source_bridgeheads,
			&c->n_source_bridgeheads) == -1 ||
	    apply_names(o, OPT_TLS_MATCH, &o->tls_match, CONF_DOMAIN_SUBDOMAINS,
			&c->tls_match, &c->n_tls_match) == -1 ||
	    apply_scalars(o, c) == -1 || apply_auth(o, c) == -1)
		return -1;
	return check_whole(o, c);
}

/* connectors.d/: where, locking, writing. */

struct change {
	const struct opts *o;
	char parent[PATH_MAX]; /* the directory of the main file */
	char dir[PATH_MAX];    /* .../connectors.d */
	char path[PATH_MAX];   /* .../connectors.d/NAME.conf */
	char tmp[PATH_MAX];    /* .../connectors.d/.NAME.conf.tmp */
	int dirfd;
	bool made_dir;
	bool io_failed;	   /* the disk, not the request: exit 1 */
	struct conf *conf; /* loaded under the lock */
};

static int fail(const struct opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
fail(const struct opts *o, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bridgehead %s: ", o->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* As the loader joins them (conf.c join_path), so paths compare equal. */
static int
join(char *out, size_t len, const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	int n = snprintf(out, len, "%s%s%s", dir,
			 dl > 0 && dir[dl - 1] == '/' ? "" : "/", name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
change_paths(struct change *ch, const struct conf *conf, const char *name)
{
	char fname[NAME_MAX + 1], tname[NAME_MAX + 1];

	snprintf(fname, sizeof fname, "%s.conf", name);
	snprintf(tname, sizeof tname, ".%s.conf.tmp", name);
	snprintf(ch->parent, sizeof ch->parent, "%s", conf->dir);
	if (join(ch->dir, sizeof ch->dir, conf->dir, "connectors.d") == -1 ||
	    join(ch->path, sizeof ch->path, ch->dir, fname) == -1 ||
	    join(ch->tmp, sizeof ch->tmp, ch->dir, tname) == -1)
		return fail(ch->o, "the path of connectors.d/ is too long");
	return 0;
}

/* A failure of the disk or the system, not of the request. */
static int io_fail(struct change *ch, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
io_fail(struct change *ch, const char *fmt, ...)
{
	va_list ap;

	ch->io_failed = true;
	fprintf(stderr, "bridgehead %s: ", ch->o->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * connectors.d/ made if missing (0755, made durable in its parent), opened
 * and locked against a concurrent change.
 */
static int
open_dir(struct change *ch, const struct conf *conf, bool create)
{
	if (create && mkdir(ch->dir, 0755) == 0) {
		ch->made_dir = true;
		if (chmod(ch->dir, 0755) == -1 || fsync_dir(conf->dir) == -1)
			return io_fail(ch, "cannot make %s: %s", ch->dir,
				       strerror(errno));
	} else if (create && errno != EEXIST) {
		return io_fail(ch, "cannot make %s: %s", ch->dir,
			       strerror(errno));
	}
	ch->dirfd = open(ch->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ch->dirfd == -1)
		return io_fail(ch, "cannot open %s: %s", ch->dir,
			       strerror(errno));
	if (flock(ch->dirfd, LOCK_EX) == -1)
		return io_fail(ch, "cannot lock %s: %s", ch->dir,
			       strerror(errno));
	return 0;
}

/* Undo what a failed change left: the temporary file, a new directory. */
static void
change_close(struct change *ch, bool failed)
{
	if (failed) {
		unlink(ch->tmp);
		if (ch->made_dir && rmdir(ch->dir) == 0)
			fsync_dir(ch->parent);
	}
	if (ch->dirfd != -1)
		close(ch->dirfd);
	ch->dirfd = -1;
	conf_free(ch->conf);
	ch->conf = NULL;
}

/* The connector's file text: a note, then conf_print_connector(). */
static char *
render(const struct conf_connector *c, size_t *len)
{
	char *text = NULL;
	FILE *mem = open_memstream(&text, len);

	if (mem == NULL)
		return NULL;
	fprintf(mem,
		"# Connector %s, written by `bridgehead connector`; change it "
		"with\n# `bridgehead connector set %s ...`.\n",
		c->name, c->name);
	conf_print_connector(c, mem);
	if (fclose(mem) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
write_tmp(struct change *ch, const struct conf_connector *c)
{
	size_t len = 0;
	char *text = render(c, &len);
	int fd, rc = -1;

	if (text == NULL)
		return fail(ch->o, "out of memory");
	fd = open(ch->tmp,
		  O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd == -1) {
		io_fail(ch, "cannot create %s: %s", ch->tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0644) == -1 || write_all(fd, text, len) == -1 ||
	    fsync(fd) == -1) {
		io_fail(ch, "cannot write %s: %s", ch->tmp, strerror(errno));
		close(fd);
		goto out;
	}
	if (close(fd) == -1) {
		io_fail(ch, "cannot write %s: %s", ch->tmp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

/*
 * The whole configuration as it will be: it must load, and hold the
 * connector exactly as intended (a value the file syntax would bend is
 * caught here, not after the server read it).
 */
static int
prove(struct change *ch, const char *name, const struct conf_connector *want)
{
	char err[ERR_LEN];
	struct conf *after = conf_load_replacing(ch->conf->path, name,
						 want != NULL ? ch->tmp : NULL,
						 err, sizeof err);
	int rc = 0;

	if (after == NULL)
		return fail(ch->o,
			    "refused: with this change the configuration "
			    "would not load: %s",
			    err);
	if (want != NULL) {
		const struct conf_connector *got =
			conf_connector_find(after, name);
		if (got == NULL || !connector_eq(got, want) ||
		    strcmp(got->file, ch->path) != 0)
			rc = fail(ch->o,
				  "refused: %s does not read back as "
				  "written",
				  ch->path);
	} else if (conf_connector_find(after, name) != NULL) {
		rc = fail(ch->o,
			  "refused: connector %s would still be "
			  "defined after removing %s",
			  name, ch->path);
	}
	conf_free(after);
	return rc;
}

static int
commit(struct change *ch)
{
	if (rename(ch->tmp, ch->path) == -1)
		return io_fail(ch, "cannot rename %s to %s: %s", ch->tmp,
			       ch->path, strerror(errno));
	if (fsync(ch->dirfd) == -1)
		return io_fail(ch, "%s is written but fsync of %s failed: %s",
			       ch->path, ch->dir, strerror(errno));
	return 0;
}

/* Tell a running server; returns the exit status. */
static int
tell_server(const struct opts *o, const struct conf *conf)
{
	if (pidfile_signal(conf->state_dir, SIGHUP) == 0) {
		printf("the running server reloads it\n");
		return CLI_OK;
	}
	if (errno == ESRCH) {
		printf("no server is running; it takes effect at start\n");
		return CLI_OK;
	}
	fprintf(stderr,
		"bridgehead %s: the change is written, but the running server "
		"could not be told to reload (%s); send it SIGHUP as its "
		"user\n",
		o->cmd, strerror(errno));
	return CLI_FAILED;
}

/* Is a connector in its own connectors.d file (which set/remove touch)? */
static int
check_in_dropin(const struct change *ch, const struct conf_connector *c)
{
	if (strcmp(c->file, ch->path) == 0)
		return 0;
	return fail(ch->o,
		    "connector %s is defined in %s:%d, not in connectors.d/; "
		    "change it there",
		    c->name, c->file, c->line);
}

/* add, set, remove. */

/*
 * The connector asked for: a new one with the defaults (tls = may until
 * TLS is enabled on it, DESIGN.md "Outbound TLS policy") or a copy of the
 * existing one, with the options applied.  c is to be freed either way.
 */
static int
build(const struct opts *o, const struct conf_connector *old,
      struct conf_connector *c)
{
	memset(c, 0, sizeof *c);
	if (old != NULL) {
		if (connector_copy(c, old) == -1)
			return fail(o, "out of memory");
	} else {
		c->tls = CONF_CONNECTOR_TLS_MAY;
		c->port = 25;
		c->max_connections = 20;
		c->tls_client_certificate = true;
		if ((c->name = strdup(o->name)) == NULL)
			return fail(o, "out of memory");
		if (!o->spaces.given)
			return value_error(o, OPT_ADDRESS_SPACE,
					   "missing; a connector needs at "
					   "least one address space");
		if (!o->hosts.given && !o->dns)
			return value_error(o, OPT_SMART_HOST,
					   "missing; give --smart-host "
					   "HOST[:PORT] or --dns");
	}
	return apply_options(o, c);
}

/* Every value checked before anything is touched. */
static int
preflight(const struct opts *o, const struct conf_connector *old)
{
	struct conf_connector c;
	int rc = build(o, old, &c);

	connector_free(&c);
	return rc;
}

/* add or set, under the lock: old is NULL for add. */
static int
do_write(struct change *ch, const struct conf_connector *old)
{
	struct conf_connector c;
	int rc = -1;

	if (build(ch->o, old, &c) == 0 && write_tmp(ch, &c) == 0 &&
	    prove(ch, c.name, &c) == 0 && commit(ch) == 0)
		rc = 0;
	connector_free(&c);
	return rc;
}

static int
do_remove(struct change *ch, const struct conf_connector *old)
{
	if (check_in_dropin(ch, old) == -1 || prove(ch, old->name, NULL) == -1)
		return -1;
	if (unlink(ch->path) == -1)
		return io_fail(ch, "cannot remove %s: %s", ch->path,
			       strerror(errno));
	if (fsync(ch->dirfd) == -1)
		return io_fail(ch, "%s is removed but fsync of %s failed: %s",
			       ch->path, ch->dir, strerror(errno));
	return 0;
}

static const char *const done_words[] = {
	[SUB_ADD] = "added",
	[SUB_SET] = "changed",
	[SUB_REMOVE] = "removed",
};

/*
 * Before anything is touched: the configuration loads, the connector
 * exists (set, remove) or does not (add) and lives in connectors.d/, and
 * every option value is valid.
 */
static int
check_request(struct change *ch, const struct conf *conf, char *name,
	      size_t namelen)
{
	const struct opts *o = ch->o;
	const struct conf_connector *old = conf_connector_find(conf, o->name);

	if (o->sub == SUB_ADD && old != NULL)
		return fail(o, "a connector named %s already exists (%s:%d)",
			    old->name, old->file, old->line);
	if (o->sub != SUB_ADD && old == NULL)
		return fail(o,
			    "no connector named %s (bridgehead connector "
			    "list)",
			    o->name);
	/* set and remove act on the file as the connector spells its name. */
	snprintf(name, namelen, "%s", old != NULL ? old->name : o->name);
	if (change_paths(ch, conf, name) == -1)
		return -1;
	if (old != NULL && check_in_dropin(ch, old) == -1)
		return -1;
	return o->sub == SUB_REMOVE ? 0 : preflight(o, old);
}

/*
 * Check, lock connectors.d/, load again under the lock (the state the
 * change applies to, whatever another change did meanwhile), change,
 * unlock, tell the server.
 */
static int
run_change(const struct opts *o)
{
	struct change ch = {.o = o, .dirfd = -1};
	struct conf *first = cli_load_conf(o->config);
	const struct conf_connector *old = NULL;
	char name[128];
	int rc;

	if (first == NULL)
		return CLI_USAGE;
	rc = check_request(&ch, first, name, sizeof name);
	if (rc == 0)
		rc = open_dir(&ch, first, o->sub == SUB_ADD);
	conf_free(first);
	if (rc == 0 && (ch.conf = cli_load_conf(o->config)) == NULL)
		rc = -1;
	if (rc == 0) {
		old = conf_connector_find(ch.conf, name);
		if (o->sub == SUB_ADD && old != NULL)
			rc = fail(o,
				  "a connector named %s already exists "
				  "(%s:%d)",
				  old->name, old->file, old->line);
		else if (o->sub != SUB_ADD && old == NULL)
			rc = fail(o, "no connector named %s any more", name);
		else if (old != NULL)
			rc = check_in_dropin(&ch, old);
	}
	if (rc == 0)
		rc = o->sub == SUB_REMOVE ? do_remove(&ch, old)
					  : do_write(&ch, old);
	if (rc == -1) {
		rc = ch.io_failed ? CLI_FAILED : CLI_USAGE;
		change_close(&ch, true);
		return rc;
	}
	printf("connector %s %s: %s\n", name, done_words[o->sub], ch.path);
	struct conf *conf = ch.conf;
	ch.conf = NULL;
	change_close(&ch, false);
	rc = tell_server(o, conf);
	conf_free(conf);
	return rc;
}

/* list and show. */

static void
format_host(const struct conf_host *h, char *buf, size_t len)
{
	if (h->literal && h->port != 0)
		snprintf(buf, len, "[%s]:%u", h->host, h->port);
	else if (h->literal)
		snprintf(buf, len, "[%s]", h->host);
	else if (h->port != 0)
		snprintf(buf, len, "%s:%u", h->host, h->port);
	else
		snprintf(buf, len, "%s", h->host);
}

static void
print_line(const struct conf_connector *c, FILE *out)
{
	char host[300];

	fprintf(out, "%s address_space=", c->name);
	for (size_t i = 0; i < c->n_address_spaces; i++)
		fprintf(out, "%s%s;%u", i > 0 ? "," : "",
			c->address_spaces[i].pattern,
			c->address_spaces[i].cost);
	fprintf(out, " next_hops=");
	if (c->dns)
		fprintf(out, "mx");
	for (size_t i = 0; i < c->n_smart_hosts; i++) {
		format_host(&c->smart_hosts[i], host, sizeof host);
		fprintf(out, "%s%s", i > 0 ? "," : "", host);
	}
	fprintf(out,
		" tls=%s source_bridgeheads=", conf_connector_tls_name(c->tls));
	if (c->n_source_bridgeheads == 0)
		fprintf(out, "any");
	for (size_t i = 0; i < c->n_source_bridgeheads; i++)
		fprintf(out, "%s%s", i > 0 ? "," : "",
			c->source_bridgeheads[i]);
	fprintf(out, " defined=%s:%d\n", c->file, c->line);
}

static void
json_strings(struct jsonw *w, const char *key, char *const *a, size_t n)
{
	jsonw_key(w, key);
	jsonw_begin_array(w);
	for (size_t i = 0; i < n; i++)
		jsonw_cstr(w, a[i]);
	jsonw_end_array(w);
}

static void
json_connector(struct jsonw *w, const struct conf_connector *c)
{
	char host[300];

	jsonw_begin_object(w);
	jsonw_key(w, "name");
	jsonw_cstr(w, c->name);
	jsonw_key(w, "address_spaces");
	jsonw_begin_array(w);
	for (size_t i = 0; i < c->n_address_spaces; i++) {
		jsonw_begin_object(w);
		jsonw_key(w, "pattern");
		jsonw_cstr(w, c->address_spaces[i].pattern);
		jsonw_key(w, "cost");
		jsonw_u64(w, c->address_spaces[i].cost);
		jsonw_end_object(w);
	}
	jsonw_end_array(w);
	jsonw_key(w, "smart_hosts");
	jsonw_begin_array(w);
	for (size_t i = 0; i < c->n_smart_hosts; i++) {
		format_host(&c->smart_hosts[i], host, sizeof host);
		jsonw_cstr(w, host);
	}
	jsonw_end_array(w);
	jsonw_key(w, "dns");
	jsonw_bool(w, c->dns);
	json_strings(w, "source_bridgeheads", c->source_bridgeheads,
		     c->n_source_bridgeheads);
	jsonw_key(w, "tls");
	jsonw_cstr(w, conf_connector_tls_name(c->tls));
	json_strings(w, "tls_match", c->tls_match, c->n_tls_match);
	jsonw_key(w, "tls_ca_file");
	jsonw_cstr(w, c->tls_ca_file);
	jsonw_key(w, "port");
	jsonw_u64(w, c->port);
	jsonw_key(w, "max_connections");
	jsonw_u64(w, c->max_connections);
	jsonw_key(w, "auth_username");
	jsonw_cstr(w, c->auth_username); /* never the password */
	jsonw_key(w, "tls_client_certificate");
	jsonw_bool(w, c->tls_client_certificate);
	jsonw_key(w, "file");
	jsonw_cstr(w, c->file);
	jsonw_key(w, "line");
	jsonw_u64(w, (uint64_t)(c->line > 0 ? c->line : 0));
	jsonw_end_object(w);
}

static int
flush_out(const struct opts *o)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "bridgehead %s: writing the output: %s\n",
			o->cmd, strerror(errno));
		return CLI_FAILED;
	}
	return CLI_OK;
}

static int
print_json(const struct opts *o, const struct conf *conf,
	   const struct conf_connector *only)
{
	struct jsonw w;
	size_t len;
	const char *text;

	jsonw_init(&w);
	if (only != NULL) {
		json_connector(&w, only);
	} else {
		jsonw_begin_array(&w);
		for (size_t i = 0; i < conf->n_connectors; i++)
			json_connector(&w, &conf->connectors[i]);
		jsonw_end_array(&w);
	}
	text = jsonw_text(&w, &len);
	if (text == NULL) {
		jsonw_free(&w);
		fprintf(stderr, "bridgehead %s: out of memory\n", o->cmd);
		return CLI_FAILED;
	}
	fwrite(text, 1, len, stdout);
	fputc('\n', stdout);
	jsonw_free(&w);
	return flush_out(o);
}

static int
run_print(const struct opts *o)
{
	struct conf *conf = cli_load_conf(o->config);
	const struct conf_connector *c = NULL;
	int rc;

	if (conf == NULL)
		return CLI_USAGE;
	if (o->sub == SUB_SHOW &&
	    (c = conf_connector_find(conf, o->name)) == NULL) {
		fail(o, "no connector named %s (bridgehead connector list)",
		     o->name);
		conf_free(conf);
		return CLI_USAGE;
	}
	if (o->json) {
		rc = print_json(o, conf, c);
	} else if (c != NULL) {
		printf("# defined at %s:%d\n", c->file, c->line);
		conf_print_connector(c, stdout);
		rc = flush_out(o);
	} else {
		for (size_t i = 0; i < conf->n_connectors; i++)
			print_line(&conf->connectors[i], stdout);
		if (conf->n_connectors == 0 && isatty(STDOUT_FILENO))
			fprintf(stderr, "no connectors: every domain goes by "
					"MX\n");
		rc = flush_out(o);
	}
	conf_free(conf);
	return rc;
}

/* test: the probe (connector_probe.c) against the configuration. */
static int
run_test(const struct opts *o)
{
	struct conf *conf = cli_load_conf(o->config);
	int rc;

	if (conf == NULL)
		return CLI_USAGE;
	rc = cli_connector_test(conf, o->name, o->json);
	conf_free(conf);
	return rc;
}

static int
run(const struct opts *o)
{
	switch (o->sub) {
	case SUB_LIST:
	case SUB_SHOW:
		return run_print(o);
	case SUB_TEST:
		return run_test(o);
	case SUB_ADD:
	case SUB_SET:
	case SUB_REMOVE:
		break;
	}
	return run_change(o);
}

/* The command group. */

static const struct {
	const char *word;
	enum sub sub;
} subs[] = {
	{"add", SUB_ADD},   {"set", SUB_SET},	    {"list", SUB_LIST},
	{"show", SUB_SHOW}, {"remove", SUB_REMOVE}, {"test", SUB_TEST},
};

/* Options before the subcommand: -c FILE and --help only. */
static int
parse_group_options(int argc, char **argv, const char **config)
{
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:c:h", long_options, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			*config = optarg;
			break;
		case 'h':
			usage_group(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr,
				"bridgehead connector: option '%s' "
				"needs a value\n" USAGE_LINE,
				argv[optind - 1]);
			return CLI_USAGE;
		default:
			fprintf(stderr,
				"bridgehead connector: option '%s' "
				"goes after the subcommand\n" USAGE_LINE,
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	return -1;
}

int
cli_connector(int argc, char **argv)
{
	struct opts o = {0};
	char cmd[32];
	int rc = parse_group_options(argc, argv, &o.config);
	size_t s;

	if (rc != -1)
		return rc;
	if (optind >= argc) {
		fprintf(stderr,
			"bridgehead connector: a subcommand is needed "
			"(add, set, list, show, remove, test)\n" USAGE_LINE);
		return CLI_USAGE;
	}
	for (s = 0; s < sizeof subs / sizeof subs[0]; s++)
		if (strcmp(argv[optind], subs[s].word) == 0)
			break;
	if (s == sizeof subs / sizeof subs[0]) {
		fprintf(stderr,
			"bridgehead connector: unknown subcommand "
			"'%s'\n" USAGE_LINE,
			argv[optind]);
		return CLI_USAGE;
	}
	o.sub = subs[s].sub;
	snprintf(cmd, sizeof cmd, "connector %s", subs[s].word);
	o.cmd = cmd;
	argc -= optind;
	argv += optind;
	rc = parse_sub_options(&o, argc, argv);
	if (rc == -1)
		rc = check_words(&o, argc, argv);
	if (rc == -1)
		rc = run(&o);
	opts_free(&o);
	return rc;
}
