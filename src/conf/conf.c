/*
 * conf: the loader.  Reads the main configuration file and every
 * connectors.d/NAME.conf beside it into one struct conf, checking each value
 * as it is read and each section as it ends, so that every error can name
 * its file, line, section and key.
 *
 *   conf_load()  main file + connectors.d/NAME.conf (sorted) -> struct conf,
 *                or NULL and one sentence "FILE:LINE: [section] key 'x':
 *                reason"; nothing half-built survives a failure.
 *   conf_load_replacing()  the same with connectors.d/NAME.conf read from
 *                another file, or left out: what a change to that file would
 *                load to, proven before the change is made.
 *   conf_free()  release a model (NULL is fine).
 *
 * Parsing is inih's (ini_parse_stream) with our own line reader in front.
 * The reader counts lines (Debian's libinih is built without
 * INI_HANDLER_LINENO), refuses over-long lines and NUL bytes instead of
 * letting inih split or cut them, strips '#' comments (at the start of a
 * line or after white space; inih's own inline ';' comments are switched
 * off because ';' separates the cost in "address_space = a.com;10"), and
 * sees every [section] header, even one with no keys, so a section defined
 * twice is caught.  inih then hands each "key = value" (trimmed) to
 * handle_key(), which looks the key up in the table of its section.
 *
 * Value syntax lives in conf_value.c, printing in conf_print.c.  The model
 * is read-only once loaded; a reload builds a new one and frees the old.
 */
#include "conf/conf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX_LINE 8192	/* bytes per line, newline included */
#define CONF_MAX_LIST 4096	/* elements in one list value */
#define CONF_MAX_LISTENERS 64
#define CONF_MAX_CONNECTORS 4096
#define CONF_MAX_KEYS 16	/* keys in the largest section table */
#define WHY_LEN 512

#define DEFAULT_STATE_DIR "/var/lib/bridgehead"
#define DEFAULT_USER "bridgehead"

enum section_kind {
	SEC_NONE,
	SEC_SERVER,
	SEC_QUEUE,
	SEC_LISTENER,
	SEC_CONNECTOR,
	SEC_METRICS,
	SEC_DNS,
};

struct parse;

/* A key: its setter checks the value and stores it, or explains in why. */
struct key {
	const char *name;
	int (*set)(struct parse *p, const char *value, char *why, size_t len);
	bool empty_ok;	/* an empty value is meaningful (an empty list) */
};

struct section {
	const char *type;
	enum section_kind kind;
	bool named;
	const struct key *keys;
	size_t n_keys;
	int (*end)(struct parse *p);	/* checks across keys */
};

/* Where add_name() puts a list of DNS names; flags as conf_parse_domain(). */
struct name_list {
	char ***arr;
	size_t *count;
	unsigned flags;
};

struct parse {
	struct conf *conf;
	const char *file;	/* as shown in errors */
	const char *abs_file;	/* as stored in struct conf_connector */
	const char *read_file;	/* read instead of abs_file when set */
	FILE *fp;
	int lineno;
	bool failed;
	char *err;
	size_t errlen;

	const char *want_connector;	/* connectors.d mode: its NAME */
	/* conf_load_replacing(): connectors.d/NAME.conf read from file. */
	const char *replace_name;
	const char *replace_file;	/* NULL: as if NAME.conf were gone */
	int n_sections;			/* headers seen in this file */

	/* The section being read. */
	const struct section *sec;
	size_t index;			/* listener or connector */
	int section_line;
	char label[96];			/* "[listener smtp]" */
	int key_line[CONF_MAX_KEYS];	/* 0: not set in this section */

	/* Sections of the main file that may appear once. */
	int server_line, queue_line, metrics_line, dns_line;
	int metrics_address_line;
	int listener_line[CONF_MAX_LISTENERS];

	struct name_list names;		/* the list set_names() is filling */
};

/* Error reporting. */

static void
perr(struct parse *p, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * The one sentence: "FILE:LINE: [section] key 'x': reason".  Only the
 * first error is kept; later ones are consequences.
 */
static void
perr(struct parse *p, int line, const char *key, const char *fmt, ...)
{
	char reason[WHY_LEN];
	char where[32] = "";
	char what[WHY_LEN] = "";
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof where, ":%d", line);
	/* "[listener smtp] key 'tls': ", "[bogus]: ", "key 'x': " or "". */
	if (key != NULL)
		snprintf(what, sizeof what, "%s%skey '%.64s': ", p->label,
			 p->label[0] != '\0' ? " " : "", key);
	else if (p->label[0] != '\0')
		snprintf(what, sizeof what, "%s: ", p->label);
	snprintf(p->err, p->errlen, "%s%s: %s%s", p->file, where, what,
		 reason);
}

/* Small helpers for setters. */

static void
why(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
why(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static struct conf_listener *
cur_listener(struct parse *p)
{
	return &p->conf->listeners[p->index];
}

static struct conf_connector *
cur_connector(struct parse *p)
{
	return &p->conf->connectors[p->index];
}

static int
set_string(char **dst, const char *value, char *w, size_t len)
{
	*dst = strdup(value);
	if (*dst == NULL) {
		why(w, len, "out of memory");
		return -1;
	}
	return 0;
}

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if (iscntrl((unsigned char)*s))
			return true;
	return false;
}

static char *
join_path(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	bool slash = dl > 0 && dir[dl - 1] == '/';
	char *s = malloc(dl + nl + 2);

	if (s == NULL)
		return NULL;
	memcpy(s, dir, dl);
	if (!slash)
		s[dl++] = '/';
	memcpy(s + dl, name, nl + 1);
	return s;
}

/* Relative paths are relative to the directory of the main file. */
static int
set_path(struct parse *p, char **dst, const char *value, char *w, size_t len)
{
	if (has_control(value) || strlen(value) >= PATH_MAX) {
		why(w, len, "'%s' is not a usable path", value);
		return -1;
	}
	if (value[0] == '/') {
		*dst = strdup(value);
	} else {
		while (value[0] == '.' && value[1] == '/')
			value += 2;
		*dst = join_path(p->conf->dir, value[0] != '\0' ? value : ".");
	}
	if (*dst == NULL) {
		why(w, len, "out of memory");
		return -1;
	}
	size_t l = strlen(*dst);
	while (l > 1 && (*dst)[l - 1] == '/')
		(*dst)[--l] = '\0';
	return 0;
}

static int
parse_uint(const char *value, unsigned min, unsigned max, unsigned *out,
	   char *w, size_t len)
{
	unsigned long long v = 0;

	if (value[0] == '\0' || strspn(value, "0123456789") != strlen(value)) {
		why(w, len, "'%s' is not a whole number", value);
		return -1;
	}
	for (const char *s = value; *s != '\0'; s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			break;
	}
	if (v < min || v > max) {
		why(w, len, "%s is out of range (%u-%u)", value, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int
parse_yesno(const char *value, bool *out, char *w, size_t len)
{
	if (strcasecmp(value, "yes") == 0) {
		*out = true;
	} else if (strcasecmp(value, "no") == 0) {
		*out = false;
	} else {
		why(w, len, "'%s' is neither yes nor no", value);
		return -1;
	}
	return 0;
}

/* A size, or the reason it is not one: malformed or too large. */
static int
parse_size(const char *value, uint64_t min, uint64_t *out, char *w,
	   size_t len)
{
	char buf[32];
	size_t digits = strspn(value, "0123456789");

	if (conf_parse_size(value, out) == -1) {
		if (digits > 0 && (value[digits] == '\0' ||
				   (strchr("KMGkmg", value[digits]) != NULL &&
				    value[digits + 1] == '\0')))
			why(w, len, "%s is too large", value);
		else
			why(w, len, "'%s' is not a size (a number with an "
				    "optional K, M or G suffix)", value);
		return -1;
	}
	if (*out < min) {
		why(w, len, "%s is below the minimum of %s", value,
		    conf_format_size(min, buf, sizeof buf));
		return -1;
	}
	return 0;
}

static int
parse_duration(const char *value, unsigned *out, char *w, size_t len)
{
	size_t digits = strspn(value, "0123456789");

	if (conf_parse_duration(value, out) == -1) {
		if (digits > 0 && (value[digits] == '\0' ||
				   (strchr("smhd", value[digits]) != NULL &&
				    value[digits + 1] == '\0')))
			why(w, len, "%s is too large", value);
		else
			why(w, len, "'%s' is not a duration (a number with "
				    "an optional s, m, h or d suffix)", value);
		return -1;
	}
	if (*out == 0) {
		why(w, len, "the duration must be at least 1s");
		return -1;
	}
	return 0;
}

/*
 * Lists: comma-separated, blanks around elements trimmed.  each() is
 * called with the element, its position and the list's length (known up
 * front, so arrays are allocated once).  An empty list is zero elements;
 * an empty element ("a,,b", "a,") is an error.
 */
typedef int (*list_fn)(struct parse *p, const char *item, size_t i,
		       size_t n, char *w, size_t len);

static size_t
list_count(const char *value)
{
	size_t n = 1;

	if (value[0] == '\0')
		return 0;
	for (const char *s = value; *s != '\0'; s++)
		n += *s == ',';
	return n;
}

static int
for_each_item(struct parse *p, const char *value, list_fn each, char *w,
	      size_t len)
{
	size_t n = list_count(value);
	const char *s = value;
	char item[CONF_MAX_LINE];

	if (n > CONF_MAX_LIST) {
		why(w, len, "the list has more than %d elements", CONF_MAX_LIST);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *end = strchr(s, ',');
		size_t l = end != NULL ? (size_t)(end - s) : strlen(s);
		while (l > 0 && isspace((unsigned char)*s)) {
			s++;
			l--;
		}
		while (l > 0 && isspace((unsigned char)s[l - 1]))
			l--;
		if (l == 0) {
			why(w, len, "element %zu of the list is empty", i + 1);
			return -1;
		}
		memcpy(item, s, l);
		item[l] = '\0';
		if (each(p, item, i, n, w, len) == -1)
			return -1;
		s = end != NULL ? end + 1 : s + l;
	}
	return 0;
}

static void *
alloc_list(size_t n, size_t size, char *w, size_t len)
{
	void *a = calloc(n > 0 ? n : 1, size);

	if (a == NULL)
		why(w, len, "out of memory");
	return a;
}

/* [server] */

static int
set_server_name(struct parse *p, const char *value, char *w, size_t len)
{
	char name[256];

	if (conf_parse_domain(value, CONF_DOMAIN_FQDN, name, sizeof name, w,
			      len) == -1)
		return -1;
	return set_string(&p->conf->server_name, name, w, len);
}

static int
set_state_dir(struct parse *p, const char *value, char *w, size_t len)
{
	return set_path(p, &p->conf->state_dir, value, w, len);
}

static int
add_accepted_domain(struct parse *p, const char *item, size_t i, size_t n,
		    char *w, size_t len)
{
	struct conf *c = p->conf;
	char d[256];

	(void)n;
	if (strcmp(item, "*") == 0) {
		why(w, len, "'*' would accept mail for every domain "
			    "(an open relay); list the domains");
		return -1;
	}
	if (conf_parse_domain(item, CONF_DOMAIN_SUBDOMAINS, d, sizeof d, w,
			      len) == -1)
		return -1;
	if (set_string(&c->accepted_domains[i], d, w, len) == -1)
		return -1;
	c->n_accepted_domains = i + 1;
	return 0;
}

static int
set_accepted_domains(struct parse *p, const char *value, char *w, size_t len)
{
	size_t n = list_count(value);

	p->conf->accepted_domains = alloc_list(n, sizeof(char *), w, len);
	if (p->conf->accepted_domains == NULL)
		return -1;
	return for_each_item(p, value, add_accepted_domain, w, len);
}

static int
add_relay_network(struct parse *p, const char *item, size_t i, size_t n,
		  char *w, size_t len)
{
	(void)n;
	if (conf_parse_cidr(item, &p->conf->relay_networks[i], w, len) == -1)
		return -1;
	p->conf->n_relay_networks = i + 1;
	return 0;
}

static int
set_relay_networks(struct parse *p, const char *value, char *w, size_t len)
{
	size_t n = list_count(value);

	p->conf->relay_networks =
		alloc_list(n, sizeof(struct conf_cidr), w, len);
	if (p->conf->relay_networks == NULL)
		return -1;
	return for_each_item(p, value, add_relay_network, w, len);
}

static int
set_user(struct parse *p, const char *value, char *w, size_t len)
{
	size_t l = strlen(value);

	/* The portable user name set (POSIX 3.437), no leading '-'. */
	if (l > 32 || value[0] == '-' ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyz"
			  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != l) {
		why(w, len, "'%s' is not a valid user name", value);
		return -1;
	}
	return set_string(&p->conf->user, value, w, len);
}

static const struct key server_keys[] = {
	{ "name", set_server_name, false },
	{ "state_dir", set_state_dir, false },
	{ "accepted_domains", set_accepted_domains, true },
	{ "relay_networks", set_relay_networks, true },
	{ "user", set_user, false },
};

/* [queue] */

static int
add_retry(struct parse *p, const char *item, size_t i, size_t n, char *w,
	  size_t len)
{
	(void)n;
	if (parse_duration(item, &p->conf->retry_schedule_s[i], w, len) == -1)
		return -1;
	p->conf->n_retry_schedule = i + 1;
	return 0;
}

static int
set_retry_schedule(struct parse *p, const char *value, char *w, size_t len)
{
	size_t n = list_count(value);

	p->conf->retry_schedule_s = alloc_list(n, sizeof(unsigned), w, len);
	if (p->conf->retry_schedule_s == NULL)
		return -1;
	return for_each_item(p, value, add_retry, w, len);
}

static int
set_queue_lifetime(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_duration(value, &p->conf->queue_lifetime_s, w, len);
}

static const struct key queue_keys[] = {
	{ "retry_schedule", set_retry_schedule, false },
	{ "queue_lifetime", set_queue_lifetime, false },
};

/* [listener NAME] */

static int
set_listener_address(struct parse *p, const char *value, char *w,
		     size_t len)
{
	struct conf_listener *l = cur_listener(p);

	if (conf_parse_listen_address(value, &l->sa, &l->salen, w, len) == -1)
		return -1;
	return set_string(&l->address, value, w, len);
}

static int
set_listener_tls(struct parse *p, const char *value, char *w, size_t len)
{
	static const enum conf_listener_tls all[] = {
		CONF_LISTENER_TLS_OFF, CONF_LISTENER_TLS_OFFER,
		CONF_LISTENER_TLS_REQUIRE, CONF_LISTENER_TLS_IMPLICIT,
	};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (strcasecmp(value, conf_listener_tls_name(all[i])) == 0) {
			cur_listener(p)->tls = all[i];
			return 0;
		}
	}
	why(w, len, "'%s' is not one of off, offer, require, implicit", value);
	return -1;
}

static int
set_max_message_size(struct parse *p, const char *value, char *w, size_t len)
{
	/* RFC 5321 4.5.3.1.7: at least 64K octets of message content. */
	return parse_size(value, 64 * 1024, &cur_listener(p)->max_message_size,
			  w, len);
}

static int
set_max_recipients(struct parse *p, const char *value, char *w, size_t len)
{
	/* RFC 5321 4.5.3.1.8: a server accepts at least 100 recipients. */
	return parse_uint(value, 100, 1000000, &cur_listener(p)->max_recipients,
			  w, len);
}

static int
set_max_sessions(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_uint(value, 1, 1000000, &cur_listener(p)->max_sessions, w,
			  len);
}

static int
set_max_sessions_per_ip(struct parse *p, const char *value, char *w,
			size_t len)
{
	return parse_uint(value, 1, 1000000,
			  &cur_listener(p)->max_sessions_per_ip, w, len);
}

static int
set_command_timeout(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_duration(value, &cur_listener(p)->command_timeout_s, w,
			      len);
}

static int
set_data_timeout(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_duration(value, &cur_listener(p)->data_timeout_s, w, len);
}

static const struct key listener_keys[] = {
	{ "address", set_listener_address, false },
	{ "tls", set_listener_tls, false },
	{ "max_message_size", set_max_message_size, false },
	{ "max_recipients", set_max_recipients, false },
	{ "max_sessions", set_max_sessions, false },
	{ "max_sessions_per_ip", set_max_sessions_per_ip, false },
	{ "command_timeout", set_command_timeout, false },
	{ "data_timeout", set_data_timeout, false },
};

/* [connector NAME] */

static int
add_address_space(struct parse *p, const char *item, size_t i, size_t n,
		  char *w, size_t len)
{
	struct conf_connector *c = cur_connector(p);
	struct conf_address_space *as = &c->address_spaces[i];

	(void)n;
	if (conf_parse_address_space(item, as, w, len) == -1)
		return -1;
	c->n_address_spaces = i + 1;
	for (size_t j = 0; j < i; j++) {
		if (strcmp(c->address_spaces[j].pattern, as->pattern) == 0) {
			why(w, len, "'%s' is listed twice", as->pattern);
			return -1;
		}
	}
	return 0;
}

static int
set_address_space(struct parse *p, const char *value, char *w, size_t len)
{
	struct conf_connector *c = cur_connector(p);

	c->address_spaces = alloc_list(list_count(value),
				       sizeof(struct conf_address_space), w,
				       len);
	if (c->address_spaces == NULL)
		return -1;
	return for_each_item(p, value, add_address_space, w, len);
}

static int
add_smart_host(struct parse *p, const char *item, size_t i, size_t n,
	       char *w, size_t len)
{
	struct conf_connector *c = cur_connector(p);

	(void)n;
	if (conf_parse_host(item, &c->smart_hosts[i], w, len) == -1) {
		free(c->smart_hosts[i].host);
		c->smart_hosts[i].host = NULL;
		if (w[0] == '\0')
			why(w, len, "out of memory");
		return -1;
	}
	c->n_smart_hosts = i + 1;
	return 0;
}

static int
set_smart_hosts(struct parse *p, const char *value, char *w, size_t len)
{
	struct conf_connector *c = cur_connector(p);

	c->smart_hosts =
		alloc_list(list_count(value), sizeof(struct conf_host), w, len);
	if (c->smart_hosts == NULL)
		return -1;
	return for_each_item(p, value, add_smart_host, w, len);
}

static int
set_dns(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_yesno(value, &cur_connector(p)->dns, w, len);
}

static int
add_name(struct parse *p, const char *item, size_t i, size_t n, char *w,
	 size_t len)
{
	char d[256];

	(void)n;
	if (conf_parse_domain(item, p->names.flags, d, sizeof d, w, len) == -1)
		return -1;
	if (set_string(&(*p->names.arr)[i], d, w, len) == -1)
		return -1;
	*p->names.count = i + 1;
	return 0;
}

static int
set_names(struct parse *p, char ***arr, size_t *count, unsigned flags,
	  const char *value, char *w, size_t len)
{
	*arr = alloc_list(list_count(value), sizeof(char *), w, len);
	if (*arr == NULL)
		return -1;
	p->names = (struct name_list){ arr, count, flags };
	return for_each_item(p, value, add_name, w, len);
}

static int
set_source_bridgeheads(struct parse *p, const char *value, char *w,
		       size_t len)
{
	struct conf_connector *c = cur_connector(p);

	return set_names(p, &c->source_bridgeheads, &c->n_source_bridgeheads,
			 CONF_DOMAIN_FQDN, value, w, len);
}

static int
set_connector_tls(struct parse *p, const char *value, char *w, size_t len)
{
	if (conf_connector_tls_from_name(value, &cur_connector(p)->tls) == 0)
		return 0;
	why(w, len, "'%s' is not one of none, may, encrypt, verify", value);
	return -1;
}

static int
set_tls_match(struct parse *p, const char *value, char *w, size_t len)
{
	struct conf_connector *c = cur_connector(p);

	return set_names(p, &c->tls_match, &c->n_tls_match,
			 CONF_DOMAIN_SUBDOMAINS, value, w, len);
}

static int
set_tls_ca_file(struct parse *p, const char *value, char *w, size_t len)
{
	return set_path(p, &cur_connector(p)->tls_ca_file, value, w, len);
}

static int
set_connector_port(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_uint(value, 1, 65535, &cur_connector(p)->port, w, len);
}

static int
set_max_connections(struct parse *p, const char *value, char *w, size_t len)
{
	return parse_uint(value, 1, 10000, &cur_connector(p)->max_connections,
			  w, len);
}

static int
set_auth_username(struct parse *p, const char *value, char *w, size_t len)
{
	if (has_control(value) || strlen(value) > 255) {
		why(w, len, "the user name has control characters or is "
			    "longer than 255");
		return -1;
	}
	return set_string(&cur_connector(p)->auth_username, value, w, len);
}

static int
set_auth_password_file(struct parse *p, const char *value, char *w,
		       size_t len)
{
	return set_path(p, &cur_connector(p)->auth_password_file, value, w,
			len);
}

static int
set_tls_client_certificate(struct parse *p, const char *value, char *w,
			   size_t len)
{
	return parse_yesno(value, &cur_connector(p)->tls_client_certificate, w,
			   len);
}

/* Indices into connector_keys[], for the checks in end_connector(). */
enum {
	CK_ADDRESS_SPACE,
	CK_SMART_HOSTS,
	CK_DNS,
	CK_SOURCE_BRIDGEHEADS,
	CK_TLS,
	CK_TLS_MATCH,
	CK_TLS_CA_FILE,
	CK_PORT,
	CK_MAX_CONNECTIONS,
	CK_AUTH_USERNAME,
	CK_AUTH_PASSWORD_FILE,
	CK_TLS_CLIENT_CERTIFICATE,
};

static const struct key connector_keys[] = {
	[CK_ADDRESS_SPACE] = { "address_space", set_address_space, false },
	[CK_SMART_HOSTS] = { "smart_hosts", set_smart_hosts, false },
	[CK_DNS] = { "dns", set_dns, false },
	[CK_SOURCE_BRIDGEHEADS] = { "source_bridgeheads",
				    set_source_bridgeheads, true },
	[CK_TLS] = { "tls", set_connector_tls, false },
	[CK_TLS_MATCH] = { "tls_match", set_tls_match, true },
	[CK_TLS_CA_FILE] = { "tls_ca_file", set_tls_ca_file, false },
	[CK_PORT] = { "port", set_connector_port, false },
	[CK_MAX_CONNECTIONS] = { "max_connections", set_max_connections,
				 false },
	[CK_AUTH_USERNAME] = { "auth_username", set_auth_username, false },
	[CK_AUTH_PASSWORD_FILE] = { "auth_password_file",
				    set_auth_password_file, false },
	[CK_TLS_CLIENT_CERTIFICATE] = { "tls_client_certificate",
					set_tls_client_certificate, false },
};

/* [metrics] */

static int
set_metrics_address(struct parse *p, const char *value, char *w, size_t len)
{
	struct conf *c = p->conf;

	if (conf_parse_listen_address(value, &c->metrics_sa, &c->metrics_salen,
				      w, len) == -1)
		return -1;
	p->metrics_address_line = p->lineno;
	return set_string(&c->metrics_address, value, w, len);
}

static const struct key metrics_keys[] = {
	{ "address", set_metrics_address, false },
};

/* [dns] */

/*
 * An unbound configuration file (local-zone, forward-zone, ...): it must
 * exist and be a readable file now, or the server would start without a
 * resolver.  Its syntax is libunbound's to judge when the server starts.
 */
static int
set_dns_unbound_config(struct parse *p, const char *value, char *w,
		       size_t len)
{
	char **dst = &p->conf->dns_unbound_config;
	struct stat st;
	FILE *fp;

	if (set_path(p, dst, value, w, len) == -1)
		return -1;
	fp = fopen(*dst, "r");
	if (fp == NULL) {
		why(w, len, "cannot read %s: %s", *dst, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		why(w, len, "%s is not a regular file", *dst);
		return -1;
	}
	fclose(fp);
	return 0;
}

static int
set_dns_timeout(struct parse *p, const char *value, char *w, size_t len)
{
	unsigned *t = &p->conf->dns_timeout_s;

	if (parse_duration(value, t, w, len) == -1)
		return -1;
	if (*t > 600) {
		why(w, len, "%s is above the maximum of 10m", value);
		return -1;
	}
	return 0;
}

static const struct key dns_keys[] = {
	{ "unbound_config", set_dns_unbound_config, false },
	{ "timeout", set_dns_timeout, false },
};

/* Checks when a section ends: what one key alone cannot tell. */

static bool
same_port(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_port ==
		       ((const struct sockaddr_in *)b)->sin_port;
	return ((const struct sockaddr_in6 *)a)->sin6_port ==
	       ((const struct sockaddr_in6 *)b)->sin6_port;
}

/* 0: distinct; 1: the same address; 2: one is the wildcard of the other. */
static int
addresses_clash(const struct sockaddr_storage *a,
		const struct sockaddr_storage *b)
{
	static const uint8_t any[16];
	const uint8_t *x, *y;
	size_t n;

	if (!same_port(a, b))
		return 0;
	if (a->ss_family == AF_INET) {
		x = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
		y = (const uint8_t *)&((const struct sockaddr_in *)b)->sin_addr;
		n = 4;
	} else {
		x = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
		y = ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr;
		n = 16;
	}
	if (memcmp(x, y, n) == 0)
		return 1;
	/* bind() refuses 127.0.0.1:25 next to 0.0.0.0:25 (EADDRINUSE). */
	if (memcmp(x, any, n) == 0 || memcmp(y, any, n) == 0)
		return 2;
	return 0;
}

static int
end_listener(struct parse *p)
{
	struct conf_listener *l = cur_listener(p);

	if (l->address == NULL) {
		perr(p, p->section_line, "address",
		     "missing; every listener needs one");
		return -1;
	}
	for (size_t i = 0; i < p->index; i++) {
		const struct conf_listener *o = &p->conf->listeners[i];
		int clash = addresses_clash(&l->sa, &o->sa);
		if (clash == 1) {
			perr(p, p->key_line[0], "address",
			     "%s is already the address of [listener %s]",
			     l->address, o->name);
			return -1;
		}
		if (clash == 2) {
			perr(p, p->key_line[0], "address",
			     "%s overlaps the address %s of [listener %s]",
			     l->address, o->address, o->name);
			return -1;
		}
	}
	return 0;
}

static int
end_connector(struct parse *p)
{
	struct conf_connector *c = cur_connector(p);
	const int *kl = p->key_line;

	if (c->n_address_spaces == 0) {
		perr(p, p->section_line, "address_space",
		     "missing; a connector needs at least one address space");
		return -1;
	}
	if (c->n_smart_hosts > 0 && c->dns) {
		perr(p, kl[CK_DNS], "dns",
		     "dns = yes and smart_hosts (line %d) exclude each "
		     "other; use one", kl[CK_SMART_HOSTS]);
		return -1;
	}
	if (c->n_smart_hosts == 0 && !c->dns) {
		perr(p, kl[CK_SMART_HOSTS] > 0 ? kl[CK_SMART_HOSTS]
					       : p->section_line,
		     "smart_hosts",
		     "missing; a connector needs smart_hosts or dns = yes");
		return -1;
	}
	if ((c->auth_username == NULL) != (c->auth_password_file == NULL)) {
		bool user = c->auth_username != NULL;
		perr(p, kl[user ? CK_AUTH_USERNAME : CK_AUTH_PASSWORD_FILE],
		     user ? "auth_username" : "auth_password_file",
		     "needs %s as well", user ? "auth_password_file"
					      : "auth_username");
		return -1;
	}
	if (c->auth_username != NULL && c->tls != CONF_CONNECTOR_TLS_ENCRYPT &&
	    c->tls != CONF_CONNECTOR_TLS_VERIFY) {
		perr(p, kl[CK_AUTH_USERNAME], "auth_username",
		     "authentication needs tls = encrypt or verify "
		     "(a password is never sent in clear text), not %s",
		     conf_connector_tls_name(c->tls));
		return -1;
	}
	return 0;
}

static int
end_metrics(struct parse *p)
{
	if (p->conf->metrics_address == NULL) {
		perr(p, p->section_line, "address",
		     "missing; [metrics] needs address = HOST:PORT");
		return -1;
	}
	return 0;
}

static const struct section sections[] = {
	{ "server", SEC_SERVER, false, server_keys,
	  sizeof server_keys / sizeof server_keys[0], NULL },
	{ "queue", SEC_QUEUE, false, queue_keys,
	  sizeof queue_keys / sizeof queue_keys[0], NULL },
	{ "listener", SEC_LISTENER, true, listener_keys,
	  sizeof listener_keys / sizeof listener_keys[0], end_listener },
	{ "connector", SEC_CONNECTOR, true, connector_keys,
	  sizeof connector_keys / sizeof connector_keys[0], end_connector },
	{ "metrics", SEC_METRICS, false, metrics_keys,
	  sizeof metrics_keys / sizeof metrics_keys[0], end_metrics },
	{ "dns", SEC_DNS, false, dns_keys,
	  sizeof dns_keys / sizeof dns_keys[0], NULL },
};

static int
end_section(struct parse *p)
{
	if (p->sec == NULL || p->sec->end == NULL)
		return 0;
	return p->sec->end(p);
}

/* Section headers. */

static int
new_listener(struct parse *p, const char *name)
{
	struct conf *c = p->conf;

	for (size_t i = 0; i < c->n_listeners; i++) {
		if (strcasecmp(c->listeners[i].name, name) == 0) {
			perr(p, p->lineno, NULL, "already defined at line %d",
			     p->listener_line[i]);
			return -1;
		}
	}
	if (c->n_listeners == CONF_MAX_LISTENERS) {
		perr(p, p->lineno, NULL, "more than %d listeners",
		     CONF_MAX_LISTENERS);
		return -1;
	}
	struct conf_listener *a =
		realloc(c->listeners, (c->n_listeners + 1) * sizeof *a);
	if (a == NULL) {
		perr(p, p->lineno, NULL, "out of memory");
		return -1;
	}
	c->listeners = a;
	struct conf_listener *l = &a[c->n_listeners];
	memset(l, 0, sizeof *l);
	l->tls = CONF_LISTENER_TLS_OFFER;
	l->max_message_size = 35 * 1024 * 1024;
	l->max_recipients = 1000;
	l->max_sessions = 10000;
	l->max_sessions_per_ip = 100;
	l->command_timeout_s = 300;
	l->data_timeout_s = 600;
	p->index = c->n_listeners++;
	p->listener_line[p->index] = p->lineno;
	l->name = strdup(name);
	if (l->name == NULL) {
		perr(p, p->lineno, NULL, "out of memory");
		return -1;
	}
	return 0;
}

static int
new_connector(struct parse *p, const char *name)
{
	struct conf *c = p->conf;

	for (size_t i = 0; i < c->n_connectors; i++) {
		const struct conf_connector *o = &c->connectors[i];
		if (strcasecmp(o->name, name) == 0) {
			perr(p, p->lineno, NULL, "already defined at %s:%d",
			     o->file, o->line);
			return -1;
		}
	}
	if (c->n_connectors == CONF_MAX_CONNECTORS) {
		perr(p, p->lineno, NULL, "more than %d connectors",
		     CONF_MAX_CONNECTORS);
		return -1;
	}
	struct conf_connector *a =
		realloc(c->connectors, (c->n_connectors + 1) * sizeof *a);
	if (a == NULL) {
		perr(p, p->lineno, NULL, "out of memory");
		return -1;
	}
	c->connectors = a;
	struct conf_connector *k = &a[c->n_connectors];
	memset(k, 0, sizeof *k);
	k->tls = CONF_CONNECTOR_TLS_MAY;
	k->port = 25;
	k->max_connections = 20;
	k->tls_client_certificate = true;
	k->line = p->lineno;
	p->index = c->n_connectors++;
	k->name = strdup(name);
	k->file = strdup(p->abs_file);
	if (k->name == NULL || k->file == NULL) {
		perr(p, p->lineno, NULL, "out of memory");
		return -1;
	}
	return 0;
}

/* A section that may appear once in the main file. */
static int
single_section(struct parse *p, int *seen)
{
	if (*seen > 0) {
		perr(p, p->lineno, NULL, "section already defined at line %d",
		     *seen);
		return -1;
	}
	*seen = p->lineno;
	return 0;
}

static int
open_section(struct parse *p, const struct section *s, const char *name)
{
	if (p->want_connector != NULL) {
		if (s->kind != SEC_CONNECTOR || p->n_sections > 1) {
			perr(p, p->lineno, NULL,
			     "a connectors.d file holds exactly one "
			     "[connector %s] section and nothing else",
			     p->want_connector);
			return -1;
		}
		if (strcmp(name, p->want_connector) != 0) {
			perr(p, p->lineno, NULL,
			     "the connector name must be the file name: "
			     "[connector %s]", p->want_connector);
			return -1;
		}
	}
	switch (s->kind) {
	case SEC_SERVER:
		return single_section(p, &p->server_line);
	case SEC_QUEUE:
		return single_section(p, &p->queue_line);
	case SEC_METRICS:
		return single_section(p, &p->metrics_line);
	case SEC_DNS:
		return single_section(p, &p->dns_line);
	case SEC_LISTENER:
		return new_listener(p, name);
	case SEC_CONNECTOR:
		return new_connector(p, name);
	case SEC_NONE:
		break;
	}
	return -1;
}

/*
 * "[type]" or "[type NAME]", comments already stripped.  Called by the
 * reader for every header line, before inih sees it.
 */
static int
begin_section(struct parse *p, const char *line)
{
	char inner[CONF_MAX_LINE];
	const char *close = strrchr(line, ']');
	const struct section *s = NULL;

	if (end_section(p) == -1)
		return -1;
	p->sec = NULL;
	p->label[0] = '\0';
	memset(p->key_line, 0, sizeof p->key_line);
	p->section_line = p->lineno;
	p->n_sections++;

	if (close == NULL || close[1 + strspn(close + 1, " \t\r\n")] != '\0') {
		perr(p, p->lineno, NULL,
		     "malformed section header (expected [type] or "
		     "[type NAME] alone on its line)");
		return -1;
	}
	size_t len = (size_t)(close - line - 1);
	memcpy(inner, line + 1, len);
	inner[len] = '\0';

	char *type = inner + strspn(inner, " \t");
	size_t tlen = strcspn(type, " \t");
	char *name = type + tlen;
	name += strspn(name, " \t");
	type[tlen] = '\0';
	size_t nlen = strlen(name);
	while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
		name[--nlen] = '\0';

	snprintf(p->label, sizeof p->label, "[%s%s%.64s]", type,
		 nlen > 0 ? " " : "", name);
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strcmp(type, sections[i].type) == 0)
			s = &sections[i];
	if (s == NULL) {
		perr(p, p->lineno, NULL,
		     "unknown section (expected [server], [queue], "
		     "[listener NAME], [connector NAME], [metrics] or "
		     "[dns])");
		return -1;
	}
	if (s->named && nlen == 0) {
		perr(p, p->lineno, NULL, "a %s needs a name: [%s NAME]",
		     s->type, s->type);
		return -1;
	}
	if (!s->named && nlen > 0) {
		perr(p, p->lineno, NULL, "[%s] takes no name", s->type);
		return -1;
	}
	if (s->named && !conf_valid_name(name)) {
		perr(p, p->lineno, NULL,
		     "'%s' is not a valid name (letters, digits, '.', '_', "
		     "'-'; starting with a letter or digit; 64 at most)",
		     name);
		return -1;
	}
	if (open_section(p, s, name) == -1)
		return -1;
	p->sec = s;
	return 0;
}

/* The line reader in front of inih. */

/* '#' starts a comment at the start of a line or after a blank. */
static void
strip_comment(char *line)
{
	for (char *s = line; *s != '\0'; s++) {
		if (*s == '#' && (s == line || *(s - 1) == ' ' ||
				  *(s - 1) == '\t')) {
			s[0] = '\n';
			s[1] = '\0';
			return;
		}
	}
}

static char *
read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t n = 0, max = num > 2 ? (size_t)num - 1 : 1;
	int c = EOF;

	if (p->failed)
		return NULL;
	while (n < max && (c = getc(p->fp)) != EOF) {
		if (c == '\0') {
			p->label[0] = '\0';
			perr(p, p->lineno + 1, NULL, "the line has a NUL byte");
			return NULL;
		}
		str[n++] = (char)c;
		if (c == '\n')
			break;
	}
	if (n == 0)
		return NULL;	/* end of file or read error: see ferror() */
	str[n] = '\0';
	p->lineno++;
	if (str[n - 1] != '\n' && n == max) {
		int next = getc(p->fp);
		if (next != EOF) {
			p->label[0] = '\0';
			perr(p, p->lineno, NULL,
			     "the line is longer than %zu bytes", max - 1);
			return NULL;
		}
	}
	strip_comment(str);

	const char *s = str;
	if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;	/* inih skips a UTF-8 BOM too */
	while (isspace((unsigned char)*s))	/* as inih's lskip() */
		s++;
	if (*s == '[' && begin_section(p, s) == -1)
		return NULL;
	return str;
}

static int
handle_key(void *user, const char *section, const char *name,
	   const char *value)
{
	struct parse *p = user;
	char w[WHY_LEN] = "";
	size_t k;

	(void)section;	/* the reader keeps the section, with its line */
	if (p->failed)
		return 0;
	if (p->sec == NULL) {
		perr(p, p->lineno, name,
		     "outside any section (put it under a [section] header)");
		return 0;
	}
	for (k = 0; k < p->sec->n_keys; k++)
		if (strcmp(p->sec->keys[k].name, name) == 0)
			break;
	if (k == p->sec->n_keys) {
		perr(p, p->lineno, name, "unknown key");
		return 0;
	}
	if (p->key_line[k] > 0) {
		perr(p, p->lineno, name, "already set at line %d",
		     p->key_line[k]);
		return 0;
	}
	p->key_line[k] = p->lineno;
	if (value[0] == '\0' && !p->sec->keys[k].empty_ok) {
		perr(p, p->lineno, name, "a value is required");
		return 0;
	}
	if (p->sec->keys[k].set(p, value, w, sizeof w) == -1) {
		perr(p, p->lineno, name, "%s", w[0] != '\0' ? w : "bad value");
		return 0;
	}
	return 1;
}

/* Files. */

static char ini_comment_prefixes[] = ";#";

static void
configure_inih(void)
{
	ini_allow_multiline = false;	/* an indented line is a key too */
	ini_allow_bom = true;
	ini_start_comment_prefixes = ini_comment_prefixes;
	ini_allow_inline_comments = false;	/* "a.com;10"; '#' is ours */
	ini_use_stack = true;			/* buffer of ini_max_line */
	ini_max_line = CONF_MAX_LINE;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;
}

static FILE *
open_regular(struct parse *p)
{
	struct stat st;
	FILE *fp = fopen(p->read_file != NULL ? p->read_file : p->abs_file,
			 "r");

	if (fp == NULL) {
		perr(p, 0, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		perr(p, 0, NULL, "not a regular file");
		fclose(fp);
		return NULL;
	}
	return fp;
}

static int
parse_file(struct parse *p)
{
	int rc;

	p->fp = open_regular(p);
	if (p->fp == NULL)
		return -1;
	p->lineno = 0;
	p->n_sections = 0;
	p->sec = NULL;
	p->label[0] = '\0';
	rc = ini_parse_stream(read_line, p, handle_key, p);
	if (!p->failed && ferror(p->fp)) {
		p->label[0] = '\0';
		perr(p, 0, NULL, "read error after line %d: %s", p->lineno,
		     strerror(errno));
	}
	fclose(p->fp);
	p->fp = NULL;
	if (p->failed)
		return -1;
	if (rc == -2) {
		perr(p, 0, NULL, "out of memory");
		return -1;
	}
	if (rc != 0) {
		p->label[0] = '\0';
		perr(p, rc, NULL,
		     "expected 'key = value', a [section] header or a comment");
		return -1;
	}
	return end_section(p);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
conf_file_name(const struct dirent *d)
{
	size_t l = strlen(d->d_name);

	/* Hidden names are editor and atomic-write temporaries. */
	return d->d_name[0] != '.' && l > 5 &&
	       strcmp(d->d_name + l - 5, ".conf") == 0;
}

/*
 * connectors.d/fname; read from read_from instead when given (the file a
 * change would put there), but named and recorded as connectors.d/fname.
 */
static int
load_dropin(struct parse *p, const char *shown_dir, const char *abs_dir,
	    const char *fname, const char *read_from)
{
	char stem[NAME_MAX + 1];
	size_t sl = strlen(fname) - 5;
	char *shown = join_path(shown_dir, fname);
	char *abs = join_path(abs_dir, fname);
	char *from = read_from != NULL ? strdup(read_from) : NULL;
	int rc = -1;

	if (shown == NULL || abs == NULL ||
	    (read_from != NULL && from == NULL)) {
		perr(p, 0, NULL, "out of memory");
		goto out;
	}
	memcpy(stem, fname, sl);
	stem[sl] = '\0';
	p->file = shown;
	p->abs_file = abs;
	p->read_file = from;
	p->label[0] = '\0';
	if (!conf_valid_name(stem)) {
		perr(p, 0, NULL,
		     "'%s' is not a valid connector name (letters, digits, "
		     "'.', '_', '-'; 64 at most)", stem);
		goto out;
	}
	p->want_connector = stem;
	if (parse_file(p) == -1)
		goto out;
	if (p->n_sections == 0) {
		perr(p, 0, NULL,
		     "no [connector %s] section; a connectors.d file holds "
		     "exactly one, named after the file", stem);
		goto out;
	}
	rc = 0;
out:
	/* Both names die here; an error has already been written out. */
	p->file = NULL;
	p->abs_file = NULL;
	p->read_file = NULL;
	p->want_connector = NULL;
	free(shown);
	free(abs);
	free(from);
	return rc;
}

/*
 * Does the replacement file of conf_load_replacing() go before the
 * directory entry fname (NULL: the end of the list)?  Files load in name
 * order, and so does the replacement, so that connectors keep the order
 * they will have once the change is made.
 */
static bool
replacement_due(const struct parse *p, const char *fname, bool done)
{
	char rname[NAME_MAX + 1];

	if (p->replace_name == NULL || p->replace_file == NULL || done)
		return false;
	if (fname == NULL)
		return true;
	snprintf(rname, sizeof rname, "%s.conf", p->replace_name);
	return strcmp(rname, fname) < 0;
}

static bool
is_replaced(const struct parse *p, const char *fname)
{
	size_t nl;

	if (p->replace_name == NULL)
		return false;
	nl = strlen(p->replace_name);
	return strncmp(fname, p->replace_name, nl) == 0 &&
	       strcmp(fname + nl, ".conf") == 0;
}

/* The replacement in its place among the n sorted directory entries. */
static int
load_dropin_list(struct parse *p, const char *shown_dir, const char *abs_dir,
		 struct dirent **list, int n)
{
	char rname[NAME_MAX + 1];
	bool done = false;
	int rc = 0;

	if (p->replace_name != NULL)
		snprintf(rname, sizeof rname, "%s.conf", p->replace_name);
	for (int i = 0; i <= n && rc == 0; i++) {
		const char *fname = i < n ? list[i]->d_name : NULL;
		if (replacement_due(p, fname, done)) {
			done = true;
			rc = load_dropin(p, shown_dir, abs_dir, rname,
					 p->replace_file);
			if (rc == -1)
				break;
		}
		if (fname == NULL)
			break;
		if (is_replaced(p, fname)) {
			if (p->replace_file != NULL && !done) {
				done = true;
				rc = load_dropin(p, shown_dir, abs_dir, fname,
						 p->replace_file);
			}
			continue;
		}
		rc = load_dropin(p, shown_dir, abs_dir, fname, NULL);
	}
	return rc;
}

static int
load_dropins(struct parse *p, const char *shown_main)
{
	const char *slash = strrchr(shown_main, '/');
	char shown_dir[PATH_MAX], *abs_dir = join_path(p->conf->dir,
						      "connectors.d");
	struct dirent **list = NULL;
	int n, rc = 0;

	if (abs_dir == NULL) {
		perr(p, 0, NULL, "out of memory");
		return -1;
	}
	if (slash != NULL)
		snprintf(shown_dir, sizeof shown_dir, "%.*s/connectors.d",
			 (int)(slash - shown_main), shown_main);
	else
		snprintf(shown_dir, sizeof shown_dir, "connectors.d");
	n = scandir(abs_dir, &list, conf_file_name, by_name);
	if (n == -1) {
		if (errno != ENOENT) {
			p->file = shown_dir;
			p->label[0] = '\0';
			perr(p, 0, NULL, "cannot read the directory: %s",
			     strerror(errno));
			rc = -1;
		} else {
			/* No connectors.d yet: the replacement alone. */
			rc = load_dropin_list(p, shown_dir, abs_dir, NULL, 0);
		}
		free(abs_dir);
		return rc;
	}
	rc = load_dropin_list(p, shown_dir, abs_dir, list, n);
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	free(abs_dir);
	return rc;
}

/* Defaults that depend on the host, and checks across the whole file. */

static int
default_server_name(struct parse *p)
{
	char host[256], name[256], w[WHY_LEN];

	if (gethostname(host, sizeof host) == -1)
		host[0] = '\0';
	host[sizeof host - 1] = '\0';
	if (conf_parse_domain(host, CONF_DOMAIN_FQDN, name, sizeof name, w,
			      sizeof w) == -1) {
		snprintf(p->label, sizeof p->label, "[server]");
		perr(p, 0, "name",
		     "not set, and this host's name '%s' is not a fully "
		     "qualified domain name; set name to the FQDN of this "
		     "bridgehead", host);
		return -1;
	}
	p->conf->server_name = strdup(name);
	return p->conf->server_name != NULL ? 0 : -1;
}

static int
finish(struct parse *p)
{
	struct conf *c = p->conf;

	p->label[0] = '\0';
	if (c->n_listeners == 0) {
		perr(p, 0, NULL,
		     "no [listener NAME] section; at least one is required");
		return -1;
	}
	for (size_t i = 0; c->metrics_address != NULL && i < c->n_listeners;
	     i++) {
		const struct conf_listener *l = &c->listeners[i];
		if (addresses_clash(&c->metrics_sa, &l->sa) != 0) {
			snprintf(p->label, sizeof p->label, "[metrics]");
			perr(p, p->metrics_address_line, "address",
			     "%s clashes with the address %s of [listener %s]",
			     c->metrics_address, l->address, l->name);
			return -1;
		}
	}
	if (c->server_name == NULL && default_server_name(p) == -1)
		return -1;
	if (c->state_dir == NULL &&
	    (c->state_dir = strdup(DEFAULT_STATE_DIR)) == NULL)
		return -1;
	if (c->user == NULL && (c->user = strdup(DEFAULT_USER)) == NULL)
		return -1;
	if (c->n_retry_schedule == 0) {
		static const unsigned def[] = { 60, 300, 900, 1800, 3600 };
		free(c->retry_schedule_s);
		c->retry_schedule_s = malloc(sizeof def);
		if (c->retry_schedule_s == NULL)
			return -1;
		memcpy(c->retry_schedule_s, def, sizeof def);
		c->n_retry_schedule = sizeof def / sizeof def[0];
	}
	return 0;
}

static int
set_paths(struct conf *c, const char *path)
{
	if (path[0] == '/') {
		c->path = strdup(path);
	} else {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof cwd) == NULL)
			return -1;
		c->path = join_path(cwd, path);
	}
	if (c->path == NULL)
		return -1;
	const char *slash = strrchr(c->path, '/');
	size_t len = slash == c->path ? 1 : (size_t)(slash - c->path);
	c->dir = strndup(c->path, len);
	return c->dir != NULL ? 0 : -1;
}

static struct conf *
load(const char *path, const char *replace_name, const char *replace_file,
     char *err, size_t errlen)
{
	struct parse *p = calloc(1, sizeof *p);
	struct conf *conf = calloc(1, sizeof *conf);
	char scratch[8];

	if (err == NULL || errlen == 0) {
		err = scratch;
		errlen = sizeof scratch;
	}
	err[0] = '\0';
	if (p == NULL || conf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	p->conf = conf;
	p->err = err;
	p->errlen = errlen;
	p->file = path;
	p->replace_name = replace_name;
	p->replace_file = replace_file;
	conf->queue_lifetime_s = 5 * 86400;
	conf->dns_timeout_s = 30;
	if (set_paths(conf, path) == -1) {
		snprintf(err, errlen, "%s: cannot make the path absolute: %s",
			 path, strerror(errno));
		goto fail;
	}
	configure_inih();
	p->abs_file = conf->path;
	if (parse_file(p) == -1 || load_dropins(p, path) == -1)
		goto fail;
	p->file = path;
	if (finish(p) == -1) {
		if (!p->failed)
			snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	free(p);
	return conf;
fail:
	free(p);
	conf_free(conf);
	return NULL;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	return load(path, NULL, NULL, err, errlen);
}

struct conf *
conf_load_replacing(const char *path, const char *name, const char *file,
		    char *err, size_t errlen)
{
	if (name == NULL || !conf_valid_name(name)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "'%s' is not a valid connector "
					      "name", name != NULL ? name : "");
		return NULL;
	}
	return load(path, name, file, err, errlen);
}

static void
free_strings(char **a, size_t n)
{
	for (size_t i = 0; a != NULL && i < n; i++)
		free(a[i]);
	free(a);
}

static void
free_connector(struct conf_connector *c)
{
	free(c->name);
	free(c->file);
	for (size_t i = 0; c->address_spaces != NULL &&
			   i < c->n_address_spaces; i++)
		free(c->address_spaces[i].pattern);
	free(c->address_spaces);
	for (size_t i = 0; c->smart_hosts != NULL && i < c->n_smart_hosts; i++)
		free(c->smart_hosts[i].host);
	free(c->smart_hosts);
	free_strings(c->source_bridgeheads, c->n_source_bridgeheads);
	free_strings(c->tls_match, c->n_tls_match);
	free(c->tls_ca_file);
	free(c->auth_username);
	free(c->auth_password_file);
}

void
conf_free(struct conf *conf)
{
	if (conf == NULL)
		return;
	free(conf->path);
	free(conf->dir);
	free(conf->server_name);
	free(conf->state_dir);
	free_strings(conf->accepted_domains, conf->n_accepted_domains);
	free(conf->relay_networks);
	free(conf->user);
	free(conf->retry_schedule_s);
	for (size_t i = 0; i < conf->n_listeners; i++) {
		free(conf->listeners[i].name);
		free(conf->listeners[i].address);
	}
	free(conf->listeners);
	for (size_t i = 0; i < conf->n_connectors; i++)
		free_connector(&conf->connectors[i]);
	free(conf->connectors);
	free(conf->metrics_address);
	free(conf->dns_unbound_config);
	free(conf);
}
