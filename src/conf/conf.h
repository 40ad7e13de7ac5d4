/*
 * conf: the configuration model, its parser (inih) and its checks.
 *
 *   conf_load()   read the main file and connectors.d/NAME.conf beside it;
 *                 every error names file, line and key; nothing is half-set.
 *   conf_free()   release a model.
 *   conf_print()  the effective configuration (defaults filled in), in the
 *                 file syntax, for `bridgehead config check`.
 *   conf_domain_accepted()  is a recipient domain one of accepted_domains?
 *   conf_relay_client()     is a client address inside relay_networks?
 *   conf_parse_size(), conf_parse_duration()  "35M", "5m" and friends.
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
};

/*
 * Load path.  On failure returns NULL and writes one sentence into err:
 * "FILE:LINE: key 'x': reason" (or "FILE: reason" when no line applies).
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf *conf);
void conf_print(const struct conf *conf, FILE *out);

/* domain: as received (any case); address literals "[1.2.3.4]" never match. */
bool conf_domain_accepted(const struct conf *conf, const char *domain);
bool conf_relay_client(const struct conf *conf, const struct sockaddr *sa);

/* 0 on success; -1 on a malformed or out-of-range value. */
int conf_parse_size(const char *text, uint64_t *out);
int conf_parse_duration(const char *text, unsigned *seconds);

#endif
