/*
 * conf_value: the configuration's value syntax, checked one value at a
 * time, and the two questions the server asks of the loaded model.
 *
 *   conf_parse_size()      "35M": a number, optional K, M or G (1024-based).
 *   conf_parse_duration()  "5m": a number, optional s, m, h or d.
 *   conf_parse_cidr()      "10.0.0.0/8", "::1/128", a bare address.
 *   conf_parse_listen_address()  "0.0.0.0:25", "*:25", "[::]:25".
 *   conf_parse_host()      smart hosts: "host", "host:port", "[ip]:port".
 *   conf_parse_address_space()   "example.com;10", "*.example.com", "*".
 *   conf_parse_domain()    DNS names (RFC 1035 2.3.1 "preferred syntax",
 *                          RFC 1123 2.1 leading digits), lower-cased.
 *   conf_valid_name()      listener and connector names.
 *   conf_format_size(), conf_format_duration()  the reverse of the parsers.
 *   conf_domain_accepted() is a recipient domain one of accepted_domains?
 *   conf_relay_client()    is a client address inside relay_networks?
 *   conf_retry_delay()     retry_schedule, its last entry repeated.
 *
 * Every parser is pure (no allocation except the documented strings, no
 * global state), so the unit tests drive them through tables.  Errors are
 * a phrase naming the value; the loader prefixes file, line and key.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOMAIN_MAX 253
#define LABEL_MAX 63
#define NAME_MAX_LEN 64
#define COST_MAX 100

struct unit {
	char suffix;
	uint64_t factor;
};

static const struct unit size_units[] = {
	{ 'K', 1024ULL },	     { 'k', 1024ULL },
	{ 'M', 1024ULL * 1024 },     { 'm', 1024ULL * 1024 },
	{ 'G', 1024ULL * 1024 * 1024 }, { 'g', 1024ULL * 1024 * 1024 },
	{ 0, 0 },
};

/* Lower case only: "5M" would read as minutes to some and months to others. */
static const struct unit duration_units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 0, 0 },
};

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Digits, then at most one unit letter; the product must not exceed max.
 * No sign, no space, no fraction: "1.5G" and " 5m" are mistakes to report,
 * not to guess at.
 */
static int
parse_scaled(const char *text, const struct unit *units, uint64_t max,
	     uint64_t *out)
{
	uint64_t n = 0;
	const char *s = text;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	uint64_t factor = 1;
	if (*s != '\0') {
		const struct unit *u;
		for (u = units; u->suffix != 0; u++)
			if (u->suffix == *s)
				break;
		if (u->suffix == 0 || s[1] != '\0')
			return -1;
		factor = u->factor;
	}
	if (n > max / factor)
		return -1;
	*out = n * factor;
	return 0;
}

int
conf_parse_size(const char *text, uint64_t *out)
{
	if (text == NULL)
		return -1;
	return parse_scaled(text, size_units, UINT64_MAX, out);
}

int
conf_parse_duration(const char *text, unsigned *seconds)
{
	uint64_t v;

	if (text == NULL ||
	    parse_scaled(text, duration_units, UINT_MAX, &v) == -1)
		return -1;
	*seconds = (unsigned)v;
	return 0;
}

static char *
format_scaled(uint64_t v, const struct unit *units, size_t n_units, char *buf,
	      size_t len)
{
	/* units[] is ascending; take the largest factor that divides v. */
	for (size_t i = n_units; i-- > 0;) {
		if (v != 0 && v % units[i].factor == 0) {
			snprintf(buf, len, "%llu%c",
				 (unsigned long long)(v / units[i].factor),
				 units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

char *
conf_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const struct unit up[] = {
		{ 'K', 1024ULL },
		{ 'M', 1024ULL * 1024 },
		{ 'G', 1024ULL * 1024 * 1024 },
	};
	return format_scaled(bytes, up, 3, buf, len);
}

char *
conf_format_duration(unsigned seconds, char *buf, size_t len)
{
	if (seconds == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	return format_scaled(seconds, duration_units, 4, buf, len);
}

/* A TCP port: 1-65535, decimal digits only. */
static int
parse_port(const char *text, unsigned *port, char *err, size_t errlen)
{
	unsigned long v = 0;
	const char *s = text;

	if (*s == '\0') {
		seterr(err, errlen, "the port is missing");
		return -1;
	}
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s)) {
			seterr(err, errlen, "port '%s' is not a number", text);
			return -1;
		}
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 65535)
			break;
	}
	if (v == 0 || v > 65535) {
		seterr(err, errlen, "port %s is out of range (1-65535)", text);
		return -1;
	}
	*port = (unsigned)v;
	return 0;
}

static int
ipv4_literal(const char *text, uint8_t out[4])
{
	return inet_pton(AF_INET, text, out) == 1 ? 0 : -1;
}

static int
ipv6_literal(const char *text, uint8_t out[16])
{
	return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

static bool
ipv4_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a, prefix, sizeof prefix) == 0;
}

/* Are all bits after the first prefix bits zero? */
static bool
host_bits_clear(const uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t bit = prefix; bit < len * 8; bit++)
		if (addr[bit / 8] & (0x80u >> (bit % 8)))
			return false;
	return true;
}

static void
clear_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t bit = prefix; bit < len * 8; bit++)
		addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
}

int
conf_parse_cidr(const char *text, struct conf_cidr *out, char *err,
		size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	struct conf_cidr c;
	size_t bytes;

	memset(&c, 0, sizeof c);
	if (alen == 0 || alen >= sizeof addr) {
		seterr(err, errlen, "'%s' is not an address or network", text);
		return -1;
	}
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (ipv4_literal(addr, c.addr) == 0) {
		c.family = AF_INET;
		bytes = 4;
	} else if (ipv6_literal(addr, c.addr) == 0) {
		c.family = AF_INET6;
		bytes = 16;
	} else {
		seterr(err, errlen,
		       "'%s' is not an IPv4 or IPv6 address or network", text);
		return -1;
	}
	c.prefix = (unsigned)(bytes * 8);
	if (slash != NULL) {
		const char *p = slash + 1;
		unsigned long v = 0;
		size_t digits = strspn(p, "0123456789");
		if (digits == 0 || digits > 3 || p[digits] != '\0') {
			seterr(err, errlen, "'%s' has a malformed prefix length",
			       text);
			return -1;
		}
		v = strtoul(p, NULL, 10);
		if (v > bytes * 8) {
			seterr(err, errlen,
			       "'%s': the prefix length is larger than %zu",
			       text, bytes * 8);
			return -1;
		}
		c.prefix = (unsigned)v;
	}
	if (!host_bits_clear(c.addr, bytes, c.prefix)) {
		char net[INET6_ADDRSTRLEN];
		uint8_t masked[16];
		memcpy(masked, c.addr, sizeof masked);
		clear_host_bits(masked, bytes, c.prefix);
		inet_ntop(c.family, masked, net, sizeof net);
		seterr(err, errlen, "'%s' has host bits set (the network is %s/%u)",
		       text, net, c.prefix);
		return -1;
	}
	/* Clients on a dual-stack socket show up as ::ffff:a.b.c.d; the
	 * matcher compares those as IPv4, so keep such networks as IPv4. */
	if (c.family == AF_INET6 && ipv4_mapped(c.addr) && c.prefix >= 96) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.prefix -= 96;
	}
	*out = c;
	return 0;
}

int
conf_parse_listen_address(const char *text, struct sockaddr_storage *sa,
			  socklen_t *salen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_text;
	size_t hlen;
	unsigned port;
	bool bracket = text[0] == '[';

	if (bracket) {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':') {
			seterr(err, errlen,
			       "'%s' is not [IPv6]:port (a ']' and a port "
			       "must follow the address)", text);
			return -1;
		}
		hlen = (size_t)(close - text - 1);
		if (hlen >= sizeof host)
			hlen = sizeof host - 1;
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL) {
			seterr(err, errlen,
			       "'%s' has no port (write host:port)", text);
			return -1;
		}
		if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
			seterr(err, errlen,
			       "'%s': an IPv6 address must be written in "
			       "brackets, as [addr]:port", text);
			return -1;
		}
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof host)
			hlen = sizeof host - 1;
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		port_text = colon + 1;
	}
	if (parse_port(port_text, &port, err, errlen) == -1)
		return -1;

	memset(sa, 0, sizeof *sa);
	if (bracket) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			seterr(err, errlen,
			       "'%s' is not a numeric IPv6 address", host);
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*salen = sizeof *s6;
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	if (strcmp(host, "*") == 0) {
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
		seterr(err, errlen,
		       "'%s' is not a numeric IPv4 address, '*' or [IPv6] "
		       "(listeners take no host names)", host);
		return -1;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*salen = sizeof *s4;
	return 0;
}

static bool
ldh(unsigned char c)
{
	return isalnum(c) || c == '-';
}

/* Checks one label sequence (no wildcard) of len bytes. */
static int
check_labels(const char *text, const char *name, size_t len, char *err,
	     size_t errlen)
{
	size_t start = 0;
	bool last_numeric = true;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '.') {
			if (!ldh((unsigned char)name[i])) {
				seterr(err, errlen,
				       "'%s' is not a domain name (only letters, "
				       "digits and '-' in labels)", text);
				return -1;
			}
			continue;
		}
		size_t llen = i - start;
		if (llen == 0) {
			seterr(err, errlen,
			       "'%s' is not a domain name (empty label)", text);
			return -1;
		}
		if (llen > LABEL_MAX) {
			seterr(err, errlen,
			       "'%s' is not a domain name (a label is longer "
			       "than %d characters)", text, LABEL_MAX);
			return -1;
		}
		if (name[start] == '-' || name[i - 1] == '-') {
			seterr(err, errlen,
			       "'%s' is not a domain name (a label starts or "
			       "ends with '-')", text);
			return -1;
		}
		last_numeric = strspn(name + start, "0123456789") >= llen;
		start = i + 1;
	}
	/* RFC 1123 2.1: the top label is never all digits, so this is an
	 * address, not a name. */
	if (last_numeric) {
		seterr(err, errlen,
		       "'%s' is not a domain name (it looks like an IP address)",
		       text);
		return -1;
	}
	return 0;
}

int
conf_parse_domain(const char *text, unsigned flags, char *out, size_t outlen,
		  char *err, size_t errlen)
{
	size_t len = strlen(text);
	const char *name = text;
	size_t prefix = 0;

	if (len == 0) {
		seterr(err, errlen, "the domain name is empty");
		return -1;
	}
	if (strcmp(text, "*") == 0) {
		if (!(flags & CONF_DOMAIN_ANY)) {
			seterr(err, errlen, "'*' is not allowed here");
			return -1;
		}
		if (outlen < 2) {
			seterr(err, errlen, "'*' does not fit");
			return -1;
		}
		memcpy(out, "*", 2);
		return 0;
	}
	if (strncmp(text, "*.", 2) == 0) {
		if (!(flags & CONF_DOMAIN_SUBDOMAINS)) {
			seterr(err, errlen,
			       "'%s': a wildcard is not allowed here", text);
			return -1;
		}
		name += 2;
		prefix = 2;
		len -= 2;
	}
	if (len > 1 && name[len - 1] == '.')
		len--;
	if (len > DOMAIN_MAX) {
		seterr(err, errlen,
		       "'%.40s...' is longer than %d characters", text,
		       DOMAIN_MAX);
		return -1;
	}
	if (check_labels(text, name, len, err, errlen) == -1)
		return -1;
	if ((flags & CONF_DOMAIN_FQDN) && memchr(name, '.', len) == NULL) {
		seterr(err, errlen,
		       "'%s' is not a fully qualified domain name (it has no dot)",
		       text);
		return -1;
	}
	if (prefix + len + 1 > outlen) {
		seterr(err, errlen, "'%s' does not fit", text);
		return -1;
	}
	memcpy(out, text, prefix);
	for (size_t i = 0; i < len; i++)
		out[prefix + i] = (char)tolower((unsigned char)name[i]);
	out[prefix + len] = '\0';
	return 0;
}

bool
conf_valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_LEN || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static int
parse_bracketed_host(const char *text, struct conf_host *out, char *err,
		     size_t errlen)
{
	char lit[INET6_ADDRSTRLEN + 1];
	uint8_t a[16];
	const char *close = strchr(text, ']');

	if (close == NULL) {
		seterr(err, errlen, "'%s' has no closing ']'", text);
		return -1;
	}
	size_t len = (size_t)(close - text - 1);
	if (len == 0 || len >= sizeof lit) {
		seterr(err, errlen, "'%s' is not [IP address]", text);
		return -1;
	}
	memcpy(lit, text + 1, len);
	lit[len] = '\0';
	if (ipv4_literal(lit, a) == -1 && ipv6_literal(lit, a) == -1) {
		seterr(err, errlen,
		       "'%s': only an IPv4 or IPv6 address goes in brackets",
		       text);
		return -1;
	}
	if (close[1] == ':') {
		if (parse_port(close + 2, &out->port, err, errlen) == -1)
			return -1;
	} else if (close[1] != '\0') {
		seterr(err, errlen, "'%s': unexpected text after ']'", text);
		return -1;
	}
	out->literal = true;
	out->host = strdup(lit);
	return out->host != NULL ? 0 : -1;
}

int
conf_parse_host(const char *text, struct conf_host *out, char *err,
		size_t errlen)
{
	char name[DOMAIN_MAX + 2];
	uint8_t a[4];
	const char *colon;
	size_t len;

	memset(out, 0, sizeof *out);
	if (text[0] == '[')
		return parse_bracketed_host(text, out, err, errlen);
	colon = strchr(text, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		seterr(err, errlen,
		       "'%s': an IPv6 address must be written in brackets, as "
		       "[addr] or [addr]:port", text);
		return -1;
	}
	len = colon != NULL ? (size_t)(colon - text) : strlen(text);
	if (len == 0 || len >= sizeof name) {
		seterr(err, errlen, "'%s' is not a host name", text);
		return -1;
	}
	memcpy(name, text, len);
	name[len] = '\0';
	if (colon != NULL &&
	    parse_port(colon + 1, &out->port, err, errlen) == -1)
		return -1;
	if (ipv4_literal(name, a) == 0) {
		out->host = strdup(name);
		return out->host != NULL ? 0 : -1;
	}
	char lower[DOMAIN_MAX + 2];
	if (conf_parse_domain(name, 0, lower, sizeof lower, err, errlen) == -1)
		return -1;
	out->host = strdup(lower);
	return out->host != NULL ? 0 : -1;
}

static void
trim_copy(char *dst, size_t dstlen, const char *src, size_t len)
{
	while (len > 0 && isspace((unsigned char)*src)) {
		src++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)src[len - 1]))
		len--;
	if (len >= dstlen)
		len = dstlen - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int
conf_parse_address_space(const char *text, struct conf_address_space *out,
			 char *err, size_t errlen)
{
	char pattern[DOMAIN_MAX + 4];
	char lower[DOMAIN_MAX + 4];
	const char *semi = strchr(text, ';');
	size_t plen = semi != NULL ? (size_t)(semi - text) : strlen(text);
	unsigned long cost = 1;

	memset(out, 0, sizeof *out);
	if (plen >= sizeof pattern) {
		seterr(err, errlen, "'%.40s...' is too long", text);
		return -1;
	}
	trim_copy(pattern, sizeof pattern, text, plen);
	if (conf_parse_domain(pattern, CONF_DOMAIN_SUBDOMAINS | CONF_DOMAIN_ANY,
			      lower, sizeof lower, err, errlen) == -1)
		return -1;
	if (semi != NULL) {
		char c[16];
		trim_copy(c, sizeof c, semi + 1, strlen(semi + 1));
		size_t digits = strspn(c, "0123456789");
		if (digits == 0 || digits > 3 || c[digits] != '\0' ||
		    (cost = strtoul(c, NULL, 10)) < 1 || cost > COST_MAX) {
			seterr(err, errlen,
			       "'%s': the cost after ';' must be a number from "
			       "1 to %d", text, COST_MAX);
			return -1;
		}
	}
	out->pattern = strdup(lower);
	if (out->pattern == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	out->cost = (unsigned)cost;
	return 0;
}

const char *
conf_listener_tls_name(enum conf_listener_tls tls)
{
	switch (tls) {
	case CONF_LISTENER_TLS_OFF:
		return "off";
	case CONF_LISTENER_TLS_OFFER:
		return "offer";
	case CONF_LISTENER_TLS_REQUIRE:
		return "require";
	case CONF_LISTENER_TLS_IMPLICIT:
		return "implicit";
	}
	return "?";
}

const char *
conf_connector_tls_name(enum conf_connector_tls tls)
{
	switch (tls) {
	case CONF_CONNECTOR_TLS_NONE:
		return "none";
	case CONF_CONNECTOR_TLS_MAY:
		return "may";
	case CONF_CONNECTOR_TLS_ENCRYPT:
		return "encrypt";
	case CONF_CONNECTOR_TLS_VERIFY:
		return "verify";
	}
	return "?";
}

int
conf_connector_tls_from_name(const char *word, enum conf_connector_tls *out)
{
	static const enum conf_connector_tls all[] = {
		CONF_CONNECTOR_TLS_NONE, CONF_CONNECTOR_TLS_MAY,
		CONF_CONNECTOR_TLS_ENCRYPT, CONF_CONNECTOR_TLS_VERIFY,
	};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (strcasecmp(word, conf_connector_tls_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}

const struct conf_connector *
conf_connector_find(const struct conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->n_connectors; i++)
		if (strcasecmp(conf->connectors[i].name, name) == 0)
			return &conf->connectors[i];
	return NULL;
}

unsigned
conf_retry_delay(const struct conf *conf, unsigned attempt)
{
	if (conf->n_retry_schedule == 0)
		return 300;
	if (attempt >= conf->n_retry_schedule)
		attempt = (unsigned)(conf->n_retry_schedule - 1);
	return conf->retry_schedule_s[attempt];
}

bool
conf_domain_accepted(const struct conf *conf, const char *domain)
{
	char d[DOMAIN_MAX + 2];
	size_t len;

	if (domain == NULL || domain[0] == '\0' || domain[0] == '[')
		return false;
	len = strlen(domain);
	if (domain[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof d)
		return false;
	for (size_t i = 0; i < len; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[len] = '\0';

	for (size_t i = 0; i < conf->n_accepted_domains; i++) {
		const char *e = conf->accepted_domains[i];
		if (strncmp(e, "*.", 2) == 0) {
			/* "*.example.com": subdomains only, any depth. */
			const char *suffix = e + 1;
			size_t slen = strlen(suffix);
			if (len > slen && strcmp(d + len - slen, suffix) == 0)
				return true;
		} else if (strcmp(e, d) == 0) {
			return true;
		}
	}
	return false;
}

static bool
cidr_contains(const struct conf_cidr *c, const uint8_t *addr)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

bool
conf_relay_client(const struct conf *conf, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		memcpy(addr, &s4->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
			(const struct sockaddr_in6 *)sa;
		memcpy(addr, &s6->sin6_addr, 16);
		family = AF_INET6;
		if (ipv4_mapped(addr)) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < conf->n_relay_networks; i++) {
		const struct conf_cidr *c = &conf->relay_networks[i];
		if (c->family == family && cidr_contains(c, addr))
			return true;
	}
	return false;
}
