/*
 * plan: next hops of a job and the walk over them (see plan.h; RFC 5321
 * 5.1 for MX order, which dns.c applies).
 *
 * The walk resolves one name at a time, lazily: a second smart host is
 * looked up only when the first failed.  A host given as an address
 * needs no DNS.  DNS answers for the whole MX set come in one lookup.
 */
#include "smtpc/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/dns.h"
#include "route/route.h"
#include "smtpc/hop.h"

#define WALK_HOPS_MAX 64

struct smtpc_walk {
	struct dns *dns;
	const struct smtpc_plan *plan;
	smtpc_walk_resume *resume;
	void *arg;
	struct dns_query *q;
	size_t name_idx;
	bool mx_done;
	struct smtpc_hop hops[WALK_HOPS_MAX];
	size_t n_hops, hop_idx;
	enum smtpc_status fail;
	char enhanced[16];
	char reason[512];
};

static void __attribute__((format(printf, 3, 4)))
say(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

static int
plan_add_name(struct smtpc_plan *p, const char *host, unsigned port)
{
	struct smtpc_plan_name *n =
		realloc(p->names, (p->n_names + 1) * sizeof *n);
	if (n == NULL)
		return -1;
	p->names = n;
	n[p->n_names].host = strdup(host);
	if (n[p->n_names].host == NULL)
		return -1;
	n[p->n_names].port = port;
	p->n_names++;
	return 0;
}

static int
plan_dup(const char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) == NULL ? -1 : 0;
}

static int
plan_policy(struct smtpc_plan *p, const struct conf *conf,
	    const struct conf_connector *c, bool via)
{
	struct smtpc_policy *pol = &p->policy;

	pol->tls = CONF_CONNECTOR_TLS_MAY;
	pol->client_cert = true;
	if (plan_dup(&pol->helo, conf->server_name) == -1)
		return -1;
	if (c == NULL || via)
		return 0; /* MX, or a hand-over to a source bridgehead */
	pol->tls = c->tls;
	pol->client_cert = c->tls_client_certificate;
	if (plan_dup(&pol->tls_ca_file, c->tls_ca_file) == -1 ||
	    plan_dup(&pol->auth_username, c->auth_username) == -1 ||
	    plan_dup(&pol->auth_password_file, c->auth_password_file) == -1)
		return -1;
	if (c->n_tls_match > 0) {
		pol->tls_match = calloc(c->n_tls_match, sizeof(char *));
		if (pol->tls_match == NULL)
			return -1;
		for (size_t i = 0; i < c->n_tls_match; i++) {
			pol->tls_match[i] = strdup(c->tls_match[i]);
			if (pol->tls_match[i] == NULL)
				return -1;
			pol->n_tls_match++;
		}
	}
	return 0;
}

int
smtpc_plan_make(struct smtpc_plan *p, const struct conf *conf,
		const char *connector, const char *domain, char *err,
		size_t errlen)
{
	const struct conf_connector *c = NULL;
	bool via = false;

	memset(p, 0, sizeof *p);
	p->max_conns = 20;
	say(p->domain, sizeof p->domain, "%s", domain != NULL ? domain : "");
	if (connector != NULL) {
		c = conf_connector_find(conf, connector);
		if (c == NULL) {
			say(err, errlen, "connector '%s' is not configured",
			    connector);
			return -1;
		}
		say(p->connector, sizeof p->connector, "%s", c->name);
		if (c->max_connections > 0)
			p->max_conns = c->max_connections;
		via = !route_is_source(conf, c);
	}
	if (plan_policy(p, conf, c, via) == -1)
		goto nomem;
	if (via) {
		say(p->key, sizeof p->key, "via:%s", c->name);
		for (size_t i = 0; i < c->n_source_bridgeheads; i++) {
			if (plan_add_name(p, c->source_bridgeheads[i], 25) ==
			    -1)
				goto nomem;
		}
	} else if (c != NULL && !c->dns) {
		say(p->key, sizeof p->key, "connector:%s", c->name);
		unsigned port = c->port != 0 ? c->port : 25;
		for (size_t i = 0; i < c->n_smart_hosts; i++) {
			const struct conf_host *h = &c->smart_hosts[i];
			if (plan_add_name(p, h->host,
					  h->port != 0 ? h->port : port) == -1)
				goto nomem;
		}
	} else {
		p->mx = true;
		if (c != NULL)
			say(p->key, sizeof p->key, "connector:%s/mx:%s",
			    c->name, p->domain);
		else
			say(p->key, sizeof p->key, "mx:%s", p->domain);
	}
	return 0;
nomem:
	say(err, errlen, "out of memory");
	smtpc_plan_clear(p);
	return -1;
}

void
smtpc_plan_clear(struct smtpc_plan *p)
{
	struct smtpc_policy *pol = &p->policy;

	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i].host);
	free(p->names);
	for (size_t i = 0; i < pol->n_tls_match; i++)
		free(pol->tls_match[i]);
	free(pol->tls_match);
	free((char *)(uintptr_t)pol->helo);
	free((char *)(uintptr_t)pol->tls_ca_file);
	free((char *)(uintptr_t)pol->auth_username);
	free((char *)(uintptr_t)pol->auth_password_file);
	memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ walk */

struct smtpc_walk *
smtpc_walk_new(struct dns *dns, const struct smtpc_plan *plan,
	       smtpc_walk_resume *resume, void *arg)
{
	struct smtpc_walk *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->dns = dns;
	w->plan = plan;
	w->resume = resume;
	w->arg = arg;
	w->fail = SMTPC_TEMPFAIL;
	say(w->enhanced, sizeof w->enhanced, "4.4.1");
	say(w->reason, sizeof w->reason, "no next hop");
	return w;
}

void
smtpc_walk_free(struct smtpc_walk *w)
{
	if (w == NULL)
		return;
	if (w->q != NULL)
		dns_cancel(w->q);
	free(w);
}

void
smtpc_walk_set_reason(struct smtpc_walk *w, const char *reason)
{
	say(w->reason, sizeof w->reason, "%s", reason);
	say(w->enhanced, sizeof w->enhanced, "4.4.1");
	w->fail = SMTPC_TEMPFAIL;
}

enum smtpc_status
smtpc_walk_failure(const struct smtpc_walk *w, const char **enhanced,
		   const char **reason)
{
	*enhanced = w->enhanced;
	*reason = w->reason;
	return w->fail;
}

static void
walk_add(struct smtpc_walk *w, const struct dns_host *h, unsigned port)
{
	for (size_t i = 0; i < h->n_addrs && w->n_hops < WALK_HOPS_MAX; i++) {
		const struct dns_addr *a = &h->addrs[i];
		smtpc_hop_set(&w->hops[w->n_hops++], h->name,
			      (const struct sockaddr *)&a->sa, a->salen, port);
	}
}

static void
walk_dns_done(void *arg, const struct dns_result *r)
{
	struct smtpc_walk *w = arg;
	const struct smtpc_plan *p = w->plan;
	bool mx = w->q != NULL && p->mx && !w->mx_done;

	w->q = NULL;
	w->n_hops = w->hop_idx = 0;
	if (mx)
		w->mx_done = true;
	if (r->status == DNS_OK) {
		unsigned port = mx ? 25 : p->names[w->name_idx - 1].port;
		for (size_t i = 0; i < r->n_hosts; i++)
			walk_add(w, &r->hosts[i], port);
		if (w->n_hops == 0)
			say(w->reason, sizeof w->reason,
			    "no address for the next hop");
	} else {
		const char *what =
			mx ? p->domain : p->names[w->name_idx - 1].host;
		if (r->reason != NULL)
			say(w->reason, sizeof w->reason, "DNS: %s", r->reason);
		else
			say(w->reason, sizeof w->reason,
			    "DNS: %s: lookup failed", what);
		/* Only the recipient domain's own answer is permanent. */
		if (mx && r->status != DNS_TEMPFAIL) {
			w->fail = SMTPC_PERMFAIL;
			say(w->enhanced, sizeof w->enhanced, "%s",
			    r->status == DNS_NULLMX ? "5.1.10" : "5.1.2");
		} else {
			say(w->enhanced, sizeof w->enhanced, "4.4.3");
		}
	}
	w->resume(w->arg);
}

/* The recipient domain is an address literal: "[192.0.2.1]". */
static bool
walk_literal_domain(struct smtpc_walk *w)
{
	const char *d = w->plan->domain;
	size_t n = strlen(d);
	char inner[256];

	if (n < 3 || d[0] != '[' || d[n - 1] != ']' || n - 2 >= sizeof inner)
		return false;
	memcpy(inner, d + 1, n - 2);
	inner[n - 2] = '\0';
	if (smtpc_hop_numeric(&w->hops[0], inner, 25))
		w->n_hops = 1;
	else
		say(w->reason, sizeof w->reason, "bad address literal %s", d);
	return true;
}

enum smtpc_walk_status
smtpc_walk_next(struct smtpc_walk *w, struct smtpc_hop *hop)
{
	const struct smtpc_plan *p = w->plan;

	for (;;) {
		if (w->q != NULL)
			return SMTPC_WALK_PENDING;
		if (w->hop_idx < w->n_hops) {
			*hop = w->hops[w->hop_idx++];
			return SMTPC_WALK_HOP;
		}
		if (w->fail == SMTPC_PERMFAIL)
			return SMTPC_WALK_END;
		if (p->mx) {
			if (w->mx_done)
				return SMTPC_WALK_END;
			if (walk_literal_domain(w)) {
				w->mx_done = true;
				continue;
			}
			if (w->dns == NULL) {
				say(w->reason, sizeof w->reason,
				    "no DNS resolver");
				return SMTPC_WALK_END;
			}
			w->q = dns_lookup_mx(w->dns, p->domain, walk_dns_done,
					     w);
			if (w->q == NULL) {
				w->mx_done = true;
				say(w->reason, sizeof w->reason,
				    "DNS lookup of %s could not start",
				    p->domain);
				return SMTPC_WALK_END;
			}
			continue;
		}
		if (w->name_idx >= p->n_names)
			return SMTPC_WALK_END;
		const struct smtpc_plan_name *n = &p->names[w->name_idx++];
		w->n_hops = w->hop_idx = 0;
		if (smtpc_hop_numeric(&w->hops[0], n->host, n->port)) {
			w->n_hops = 1;
			continue;
		}
		if (w->dns == NULL) {
			say(w->reason, sizeof w->reason,
			    "no DNS resolver for %s", n->host);
			continue;
		}
		w->q = dns_lookup_host(w->dns, n->host, walk_dns_done, w);
		if (w->q == NULL)
			say(w->reason, sizeof w->reason,
			    "DNS lookup of %s could not start", n->host);
	}
}
