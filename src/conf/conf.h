/*
 * conf: the configuration model, its parser (inih) and its checks.
 *
 *   conf_load()   read the main file and connectors.d/NAME.conf beside it;
 *                 every error names file, line and key; nothing is half-set.
 *   conf_load_replacing()  the same, with connectors.d/NAME.conf read
 *                 from another file (or left out): a change, proven first.
 *   conf_free()   release a model.
 *   conf_print()  the effective configuration (defaults filled in), in the
 *                 file syntax, for `bridgehead config check`.
 *   conf_domain_accepted()  is a recipient domain one of accepted_domains?
 *   conf_relay_client()     is a client address inside relay_networks?
 *   conf_parse_size(), conf_parse_duration()  "35M", "5m" and friends.
 *   conf_parse_cidr(), conf_parse_listen_address(), conf_parse_host(),
 *   conf_parse_address_space(), conf_parse_domain(), conf_valid_name()
 *                 the value checks the loader uses, for the command line
 *                 (`connector add`) to check options the same way.
 *   conf_format_size(), conf_format_duration()  the reverse: "35M", "5m".
 *   conf_listener_tls_name(), conf_connector_tls_name(),
 *   conf_connector_tls_from_name()  enum <-> configuration word.
 *   conf_connector_find()   a connector by name (case-insensitive).
 *   conf_print_connector()  one [connector NAME] section, as in
 *                 connectors.d/NAME.conf; conf_load() reads it back.
 *   conf_retry_delay()      the wait before retry number N.
 *
 * Relative paths (state_dir) are taken relative to the directory of the
 * main configuration file and stored absolute.  The model is read-only once
 * loaded; a reload builds a new one.
 */
#ifndef BH_CONF_CONF_H
#define BH_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

enum conf_listener_tls {
	CONF_LISTENER_TLS_OFF,
	CONF_LISTENER_TLS_OFFER,
	CONF_LISTENER_TLS_REQUIRE,
	CONF_LISTENER_TLS_IMPLICIT,
};

enum conf_connector_tls {
	CONF_CONNECTOR_TLS_NONE,
	CONF_CONNECTOR_TLS_MAY,
	CONF_CONNECTOR_TLS_ENCRYPT,
	CONF_CONNECTOR_TLS_VERIFY,
};

/* An address/prefix pair: 10.0.0.0/8, ::1/128. */
struct conf_cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order, 4 or 16 bytes used */
	unsigned prefix;
};

struct conf_listener {
	char *name;			/* [listener NAME] */
	char *address;			/* as written: "0.0.0.0:25" */
	struct sockaddr_storage sa;	/* parsed, numeric only */
	socklen_t salen;
	enum conf_listener_tls tls;	/* default offer */
	uint64_t max_message_size;	/* default 35M */
	unsigned max_recipients;	/* default 1000 */
	unsigned max_sessions;		/* default 10000 */
	unsigned max_sessions_per_ip;	/* default 100 */
	unsigned command_timeout_s;	/* default 300 */
	unsigned data_timeout_s;	/* default 600: whole-idle bound in DATA */
};

/* An address space entry: "example.com", "*.example.com", "*"; cost >= 1. */
struct conf_address_space {
	char *pattern;		/* lower-cased */
	unsigned cost;		/* default 1 */
};

struct conf_host {
	char *host;		/* name or IP literal (without brackets) */
	unsigned port;		/* 0: the connector's port */
	bool literal;		/* given as [ip] */
};

struct conf_connector {
	char *name;
	char *file;			/* where it is defined */
	int line;			/* line of its section header */
	struct conf_address_space *address_spaces;
	size_t n_address_spaces;
	struct conf_host *smart_hosts;
	size_t n_smart_hosts;
	bool dns;			/* MX routing instead of smart hosts */
	char **source_bridgeheads;	/* empty: every node */
	size_t n_source_bridgeheads;
	enum conf_connector_tls tls;	/* default may */
	char **tls_match;
	size_t n_tls_match;
	char *tls_ca_file;
	unsigned port;			/* default 25 */
	unsigned max_connections;	/* default 20 */
	char *auth_username;
	char *auth_password_file;
	bool tls_client_certificate;	/* default yes */
};

struct conf {
	char *path;			/* main file, absolute */
	char *dir;			/* its directory */

	/* [server] */
	char *server_name;		/* FQDN; default: gethostname() */
	char *state_dir;		/* absolute */
	char **accepted_domains;	/* lower-cased; "*.d" for subdomains */
	size_t n_accepted_domains;
	struct conf_cidr *relay_networks;
	size_t n_relay_networks;
	char *user;			/* default "bridgehead" */

	/* [queue] */
	unsigned *retry_schedule_s;	/* default 1m,5m,15m,30m,1h */
	size_t n_retry_schedule;
	unsigned queue_lifetime_s;	/* default 5d */

	struct conf_listener *listeners;	/* at least one */
	size_t n_listeners;
	struct conf_connector *connectors;
	size_t n_connectors;

	/* [metrics] */
	char *metrics_address;		/* as written; NULL: no metrics */
	struct sockaddr_storage metrics_sa;
	socklen_t metrics_salen;

	/* [dns] */
	char *dns_unbound_config;	/* absolute; NULL: resolv.conf, hosts */
	unsigned dns_timeout_s;		/* one lookup at most; default 30 */
};

/*
 * Load path.  On failure returns NULL and writes one sentence into err:
 * "FILE:LINE: [section] key 'x': reason" (or "FILE: reason" when no line
 * applies).  Not thread-safe: inih is configured through its globals.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
/*
 * As conf_load(), but connectors.d/NAME.conf is read from file instead
 * (file NULL: as if NAME.conf did not exist), in its place in name order;
 * errors and conf_connector.file still name connectors.d/NAME.conf.  The
 * configuration a change to that file would give, loaded before the change
 * is made (`bridgehead connector add|set|remove`).
 */
struct conf *conf_load_replacing(const char *path, const char *name,
				 const char *file, char *err, size_t errlen);
void conf_free(struct conf *conf);
void conf_print(const struct conf *conf, FILE *out);

/* domain: as received (any case); address literals "[1.2.3.4]" never match. */
bool conf_domain_accepted(const struct conf *conf, const char *domain);
bool conf_relay_client(const struct conf *conf, const struct sockaddr *sa);

/* 0 on success; -1 on a malformed or out-of-range value. */
int conf_parse_size(const char *text, uint64_t *out);
int conf_parse_duration(const char *text, unsigned *seconds);

/*
 * The value checks below return 0, or -1 with one phrase naming the value
 * and what is wrong with it in err ("'10.0.0.1/8' has host bits set");
 * err may be NULL.
 */

/* "10.0.0.0/8", "::1/128", a bare address (/32, /128); ::ffff:a.b.c.d/N
 * with N >= 96 is stored as IPv4. */
int conf_parse_cidr(const char *text, struct conf_cidr *out, char *err,
		    size_t errlen);
/* "127.0.0.1:25", "*:25" (0.0.0.0), "[::1]:25": numeric only. */
int conf_parse_listen_address(const char *text, struct sockaddr_storage *sa,
			      socklen_t *salen, char *err, size_t errlen);
/* "host", "host:port", "192.0.2.1", "[192.0.2.1]:2525", "[2001:db8::1]";
 * out->host is allocated (free it). */
int conf_parse_host(const char *text, struct conf_host *out, char *err,
		    size_t errlen);
/* "example.com", "*.example.com", "*", each with an optional ";COST"
 * (1-100); out->pattern is allocated, lower-cased. */
int conf_parse_address_space(const char *text, struct conf_address_space *out,
			     char *err, size_t errlen);

#define CONF_DOMAIN_FQDN 0x1	   /* at least two labels */
#define CONF_DOMAIN_SUBDOMAINS 0x2 /* "*.example.com" allowed */
#define CONF_DOMAIN_ANY 0x4	   /* "*" allowed */
/* A DNS name (letters, digits, '-'; labels of 1-63; 253 at most); one
 * trailing dot is dropped; written lower-cased into out (256 bytes do). */
int conf_parse_domain(const char *text, unsigned flags, char *out,
		      size_t outlen, char *err, size_t errlen);
/* A listener or connector name: [A-Za-z0-9][A-Za-z0-9._-]*, 64 at most
 * (it is also a file name in connectors.d/). */
bool conf_valid_name(const char *name);

/* Largest exact unit: 36700160 -> "35M", 300 -> "5m".  Returns buf. */
char *conf_format_size(uint64_t bytes, char *buf, size_t len);
char *conf_format_duration(unsigned seconds, char *buf, size_t len);

const char *conf_listener_tls_name(enum conf_listener_tls tls);
const char *conf_connector_tls_name(enum conf_connector_tls tls);
/* "none" | "may" | "encrypt" | "verify" (any case); 0 or -1. */
int conf_connector_tls_from_name(const char *word,
				 enum conf_connector_tls *out);

const struct conf_connector *conf_connector_find(const struct conf *conf,
						 const char *name);
void conf_print_connector(const struct conf_connector *c, FILE *out);

/* Seconds to wait before retry number attempt (0: after the first
 * failure): retry_schedule[attempt], then its last entry repeated. */
unsigned conf_retry_delay(const struct conf *conf, unsigned attempt);

#endif
