/*
 * route: which connector carries the mail for a recipient domain
 * (DESIGN.md "Connectors"; issue "Route per recipient").
 *
 *   route_lookup()     the connector whose address space matches the
 *                      domain most specifically: an exact "example.com"
 *                      beats any "*.suffix", a longer "*.suffix" beats a
 *                      shorter one, and any of them beats "*"; between
 *                      equally specific matches the lowest cost wins, then
 *                      the connector defined first.  NULL: no connector,
 *                      the mail goes by MX.
 *   route_is_source()  may this node send through the connector itself
 *                      (its [server] name among source_bridgeheads, or
 *                      that list empty)?
 *   route_key()        "connector:NAME" or "mx:DOMAIN": recipients with
 *                      different keys travel in different transactions.
 *
 * Domains compare case-insensitively (RFC 5321 2.4) and one trailing dot
 * of an absolute name is ignored.  An address literal ("[192.0.2.1]",
 * "[IPv6:...]", RFC 5321 4.1.3) has no labels to match a domain pattern,
 * so only "*" catches it; only dns = yes routing then sends to the literal
 * address itself (DESIGN.md "Configuration").
 *
 * The configuration model is read-only here; nothing is allocated, so a
 * lookup per recipient costs a walk over the address spaces and no more.
 */
#include "route/route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* How specifically an address space matched: higher is more specific. */
struct match {
	int kind;      /* MATCH_NONE .. MATCH_EXACT */
	size_t suffix; /* for MATCH_SUFFIX: length of the suffix */
	unsigned cost;
};

enum {
	MATCH_NONE,
	MATCH_ANY,    /* "*" */
	MATCH_SUFFIX, /* "*.example.com" */
	MATCH_EXACT,  /* "example.com" */
};

/* The length of a name without one trailing dot ("example.com."). */
static size_t
name_len(const char *name)
{
	size_t len = strlen(name);

	if (len > 1 && name[len - 1] == '.')
		len--;
	return len;
}

static bool
is_literal(const char *domain)
{
	return domain[0] == '[';
}

/*
 * Does pattern match domain (dlen bytes, trailing dot already dropped)?
 * "*.example.com" takes subdomains only: "a.example.com" and
 * "b.a.example.com", never "example.com" itself nor "xexample.com".
 */
static struct match
match_space(const struct conf_address_space *as, const char *domain,
	    size_t dlen)
{
	struct match m = {MATCH_NONE, 0, as->cost};
	const char *pat = as->pattern;
	size_t plen = name_len(pat);

	if (strcmp(pat, "*") == 0) {
		m.kind = MATCH_ANY;
		return m;
	}
	if (dlen == 0 || is_literal(domain))
		return m;
	if (pat[0] == '*' && pat[1] == '.') {
		const char *suffix = pat + 2;
		size_t slen = plen - 2;
		if (dlen > slen + 1 && domain[dlen - slen - 1] == '.' &&
		    strncasecmp(domain + dlen - slen, suffix, slen) == 0) {
			m.kind = MATCH_SUFFIX;
			m.suffix = slen;
		}
		return m;
	}
	if (plen == dlen && strncasecmp(pat, domain, dlen) == 0)
		m.kind = MATCH_EXACT;
	return m;
}

/* Is a strictly better than b?  Ties keep the earlier connector. */
static bool
better(const struct match *a, const struct match *b)
{
	if (a->kind != b->kind)
		return a->kind > b->kind;
	if (a->kind == MATCH_SUFFIX && a->suffix != b->suffix)
		return a->suffix > b->suffix;
	return a->cost < b->cost;
}

const struct conf_connector *
route_lookup(const struct conf *conf, const char *domain)
{
	const struct conf_connector *best = NULL;
	struct match best_m = {MATCH_NONE, 0, 0};
	size_t dlen;

	if (conf == NULL || domain == NULL)
		return NULL;
	dlen = name_len(domain);
	for (size_t i = 0; i < conf->n_connectors; i++) {
		const struct conf_connector *c = &conf->connectors[i];
		for (size_t j = 0; j < c->n_address_spaces; j++) {
			struct match m = match_space(&c->address_spaces[j],
						     domain, dlen);
			if (m.kind == MATCH_NONE)
				continue;
			if (best == NULL || better(&m, &best_m)) {
				best = c;
				best_m = m;
			}
		}
	}
	return best;
}

/* Node names compare as domains: any case, one trailing dot ignored. */
static bool
same_name(const char *a, const char *b)
{
	size_t al = name_len(a), bl = name_len(b);

	return al == bl && strncasecmp(a, b, al) == 0;
}

bool
route_is_source(const struct conf *conf, const struct conf_connector *connector)
{
	/* No connector: MX routing, which every node does itself. */
	if (connector == NULL || connector->n_source_bridgeheads == 0)
		return true;
	if (conf == NULL || conf->server_name == NULL)
		return false;
	for (size_t i = 0; i < connector->n_source_bridgeheads; i++)
		if (same_name(conf->server_name,
			      connector->source_bridgeheads[i]))
			return true;
	return false;
}

/*
 * The MX key names the domain in one spelling (lower case, no trailing
 * dot), so "Example.COM" and "example.com." share one transaction.
 */
int
route_key(const struct conf *conf, const char *domain, char *out, size_t outlen)
{
	const struct conf_connector *c = route_lookup(conf, domain);
	static const char mx[] = "mx:";
	size_t dlen, need;
	int n;

	if (out == NULL || outlen == 0 || domain == NULL)
		return -1;
	if (c != NULL) {
		n = snprintf(out, outlen, "connector:%s", c->name);
		if (n < 0 || (size_t)n >= outlen) {
			out[0] = '\0';
			return -1;
		}
		return n;
	}
	dlen = name_len(domain);
	need = sizeof mx - 1 + dlen;
	if (need >= outlen || need > (size_t)0x7fffffff) {
		out[0] = '\0';
		return -1;
	}
	memcpy(out, mx, sizeof mx - 1);
	for (size_t i = 0; i < dlen; i++) {
		unsigned char ch = (unsigned char)domain[i];
		out[sizeof mx - 1 + i] =
			(char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
	out[need] = '\0';
	return (int)need;
}
