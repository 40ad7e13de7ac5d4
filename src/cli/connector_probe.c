/*
 * connector_probe: `bridgehead connector test NAME [--json]` (DESIGN.md,
 * issue "connector test"): talk to every next hop of a connector the way
 * delivery would -- EHLO, STARTTLS per the connector's TLS policy -- and
 * show what was found: the capabilities, the certificate chain, the
 * verification result, the TLS protocol and cipher.  QUIT follows; no mail
 * is sent.
 *
 *   cli_connector_test()  exit 0 when mail would flow through at least
 *                         one next hop under the policy, 1 otherwise,
 *                         2 for an unknown connector.
 *
 * It runs its own event loop with the delivery code itself (smtpc plan,
 * walk and session in probe mode): one SMTP client, not a second one.
 * A "may" next hop whose handshake fails is tried again in clear text,
 * as delivery would.  A connector that routes by MX is tested against the
 * first domain of its address spaces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli/cli.h"
#include "net/dns.h"
#include "queue/jsonw.h"
#include "smtp/reply.h"
#include "smtpc/plan.h"
#include "smtpc/session.h"
#include "smtpc/tlspolicy.h"
#include "util/log.h"

struct probe {
	struct event_base *base;
	struct dns *dns;
	struct smtpc_tls *tls;
	struct smtpc_plan plan;
	struct smtpc_walk *walk;
	struct smtpc_sess_list sessions;
	struct smtpc_sess *sess;
	struct smtpc_hop hop;
	bool json;
	struct jsonw jw;
	unsigned tried;
	unsigned ok;
	bool done;
};

static void probe_next(struct probe *p);

/* "PIPELINING", "SIZE 10485760", ...: the EHLO lines after the first. */
static void
probe_caps(struct probe *p, const struct smtp_reply_reader *rr, const char *key,
	   const char *label)
{
	const char *t = rr->text, *end = rr->text + rr->text_len;
	const char *nl = memchr(t, '\n', rr->text_len);

	if (p->json) {
		jsonw_key(&p->jw, key);
		jsonw_begin_array(&p->jw);
	} else {
		printf("  %s: %.*s\n", label,
		       (int)(nl != NULL ? nl - t : (long)rr->text_len), t);
		printf("   ");
	}
	while (nl != NULL && nl < end) {
		const char *line = nl + 1;
		nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((nl != NULL ? nl : end) - line);
		char esc[600];
		log_escape(esc, sizeof esc, line, len);
		if (p->json)
			jsonw_string(&p->jw, line, len);
		else
			printf(" %s", esc);
	}
	if (p->json)
		jsonw_end_array(&p->jw);
	else
		printf("\n");
}

static void
probe_tls(struct probe *p, struct smtpc_sess *s)
{
	const char *ver = smtpc_sess_tls_version(s);
	const char *chain = smtpc_sess_chain(s);

	if (p->json) {
		jsonw_key(&p->jw, "tls");
		if (ver == NULL) {
			jsonw_null(&p->jw);
			return;
		}
		jsonw_begin_object(&p->jw);
		jsonw_key(&p->jw, "version");
		jsonw_cstr(&p->jw, ver);
		jsonw_key(&p->jw, "cipher");
		jsonw_cstr(&p->jw, smtpc_sess_tls_cipher(s));
		jsonw_key(&p->jw, "peer");
		jsonw_cstr(&p->jw, smtpc_sess_tls_peer(s));
		jsonw_key(&p->jw, "verified");
		jsonw_bool(&p->jw, smtpc_sess_tls_verified(s));
		jsonw_key(&p->jw, "verify_result");
		jsonw_cstr(&p->jw, smtpc_sess_tls_verify_reason(s));
		jsonw_key(&p->jw, "client_certificate");
		jsonw_cstr(&p->jw, smtpc_sess_client_cert(s));
		jsonw_key(&p->jw, "chain");
		jsonw_begin_array(&p->jw);
		for (const char *c = chain; *c != '\0';) {
			const char *nl = strchr(c, '\n');
			size_t len = nl != NULL ? (size_t)(nl - c) : strlen(c);
			jsonw_string(&p->jw, c, len);
			c += len + (nl != NULL);
		}
		jsonw_end_array(&p->jw);
		jsonw_end_object(&p->jw);
		return;
	}
	if (ver == NULL) {
		printf("  TLS: none\n");
		return;
	}
	printf("  TLS: %s %s\n", ver, smtpc_sess_tls_cipher(s));
	printf("  certificate chain:\n");
	for (const char *c = chain; *c != '\0';) {
		const char *nl = strchr(c, '\n');
		size_t len = nl != NULL ? (size_t)(nl - c) : strlen(c);
		printf("    %.*s\n", (int)len, c);
		c += len + (nl != NULL);
	}
	printf("  verification: %s\n",
	       smtpc_sess_tls_verified(s) ? "ok (chain and name)"
					  : smtpc_sess_tls_verify_reason(s));
	if (smtpc_sess_client_cert(s) != NULL)
		printf("  client certificate: %s\n", smtpc_sess_client_cert(s));
}

/* One next hop's outcome, printed; then the next one. */
static void
probe_report(struct probe *p, struct smtpc_sess *s, bool ok, const char *reason)
{
	p->tried++;
	if (ok)
		p->ok++;
	if (p->json) {
		jsonw_begin_object(&p->jw);
		jsonw_key(&p->jw, "host");
		jsonw_cstr(&p->jw, p->hop.name);
		jsonw_key(&p->jw, "addr");
		jsonw_cstr(&p->jw, p->hop.addr);
	} else {
		printf("next hop %s[%s]:%u\n", p->hop.name, p->hop.ip,
		       p->hop.port);
	}
	if (s != NULL && smtpc_sess_ehlo_clear(s) != NULL)
		probe_caps(p, smtpc_sess_ehlo_clear(s), "capabilities_clear",
			   "EHLO in clear text");
	if (s != NULL && smtpc_sess_ehlo(s) != NULL)
		probe_caps(p, smtpc_sess_ehlo(s), "capabilities",
			   smtpc_sess_ehlo_clear(s) != NULL ? "EHLO inside TLS"
							    : "EHLO");
	if (s != NULL)
		probe_tls(p, s);
	if (p->json) {
		jsonw_key(&p->jw, "mail_would_flow");
		jsonw_bool(&p->jw, ok);
		jsonw_key(&p->jw, "reason");
		jsonw_cstr(&p->jw, ok ? NULL : reason);
		jsonw_end_object(&p->jw);
	} else {
		printf("  result: %s%s\n",
		       ok ? "mail would flow" : "no mail would flow: ",
		       ok ? "" : reason);
	}
	fflush(stdout);
}

static void
probe_sess_cb(struct smtpc_sess *s, enum smtpc_sess_event ev, void *arg)
{
	struct probe *p = arg;

	p->sess = NULL;
	if (ev == SMTPC_SESS_READY) {
		probe_report(p, s, true, NULL);
		smtpc_sess_close(s);
		probe_next(p);
		return;
	}
	bool clear = smtpc_sess_retry_clear(s);
	char reason[SMTPC_REPLY_MAX];
	snprintf(reason, sizeof reason, "%s", smtpc_sess_reason(s));
	probe_report(p, s, false, reason);
	smtpc_sess_close(s);
	if (clear) {
		char err[SMTPC_REPLY_MAX];
		if (!p->json)
			printf("  (tls may: trying again without STARTTLS)\n");
		p->sess = smtpc_sess_new(p->base, &p->sessions, p->tls, &p->hop,
					 &p->plan.policy, true, true,
					 probe_sess_cb, p, err, sizeof err);
		if (p->sess != NULL)
			return;
		probe_report(p, NULL, false, err);
	}
	probe_next(p);
}

static void
probe_resume(void *arg)
{
	probe_next(arg);
}

static void
probe_next(struct probe *p)
{
	char err[SMTPC_REPLY_MAX];

	for (;;) {
		enum smtpc_walk_status st = smtpc_walk_next(p->walk, &p->hop);
		if (st == SMTPC_WALK_PENDING)
			return;
		if (st == SMTPC_WALK_END) {
			const char *enh, *why;
			smtpc_walk_failure(p->walk, &enh, &why);
			if (p->tried == 0) {
				if (p->json) {
					jsonw_begin_object(&p->jw);
					jsonw_key(&p->jw, "host");
					jsonw_null(&p->jw);
					jsonw_key(&p->jw, "mail_would_flow");
					jsonw_bool(&p->jw, false);
					jsonw_key(&p->jw, "reason");
					jsonw_cstr(&p->jw, why);
					jsonw_end_object(&p->jw);
				} else {
					printf("no next hop: %s\n", why);
				}
			}
			p->done = true;
			/* Lingering QUITs finish, then the loop ends. */
			return;
		}
		p->sess = smtpc_sess_new(p->base, &p->sessions, p->tls, &p->hop,
					 &p->plan.policy, false, true,
					 probe_sess_cb, p, err, sizeof err);
		if (p->sess != NULL)
			return;
		probe_report(p, NULL, false, err);
		smtpc_walk_set_reason(p->walk, err);
	}
}

/* The domain to look up for an MX-routed connector. */
static const char *
probe_domain(const struct conf_connector *c)
{
	for (size_t i = 0; i < c->n_address_spaces; i++) {
		const char *pat = c->address_spaces[i].pattern;
		if (strcmp(pat, "*") == 0)
			continue;
		return strncmp(pat, "*.", 2) == 0 ? pat + 2 : pat;
	}
	return NULL;
}

int
cli_connector_test(const struct conf *conf, const char *name, bool json)
{
	const struct conf_connector *c = conf_connector_find(conf, name);
	struct probe p = {.json = json};
	char err[512];
	int status = CLI_FAILED;

	if (c == NULL) {
		fprintf(stderr, "bridgehead: no connector named '%s'\n", name);
		return CLI_USAGE;
	}
	const char *domain = probe_domain(c);
	if (c->dns && domain == NULL) {
		fprintf(stderr,
			"bridgehead: connector '%s' routes by MX for every "
			"domain: there is no next hop to test\n",
			c->name);
		return CLI_FAILED;
	}
	if (smtpc_plan_make(&p.plan, conf, c->name, domain, err, sizeof err) ==
	    -1) {
		fprintf(stderr, "bridgehead: %s\n", err);
		return CLI_FAILED;
	}
	p.base = event_base_new();
	p.tls = smtpc_tls_new(conf->state_dir);
	if (p.base == NULL || p.tls == NULL) {
		fprintf(stderr, "bridgehead: out of memory\n");
		goto out;
	}
	p.dns = dns_new(p.base, NULL, err, sizeof err);
	if (p.dns == NULL && !json)
		printf("(no DNS resolver: %s; only addresses can be tried)\n",
		       err);
	p.walk = smtpc_walk_new(p.dns, &p.plan, probe_resume, &p);
	if (p.walk == NULL) {
		fprintf(stderr, "bridgehead: out of memory\n");
		goto out;
	}
	if (json) {
		jsonw_init(&p.jw);
		jsonw_begin_object(&p.jw);
		jsonw_key(&p.jw, "connector");
		jsonw_cstr(&p.jw, c->name);
		jsonw_key(&p.jw, "tls");
		jsonw_cstr(&p.jw, conf_connector_tls_name(c->tls));
		jsonw_key(&p.jw, "next_hops");
		jsonw_begin_array(&p.jw);
	} else {
		printf("connector %s (tls %s)\n", c->name,
		       conf_connector_tls_name(c->tls));
	}
	probe_next(&p);
	while (!p.done || p.sessions.n > 0) {
		if (event_base_loop(p.base, EVLOOP_ONCE) != 0)
			break;
	}
	status = p.ok > 0 ? CLI_OK : CLI_FAILED;
	if (json) {
		jsonw_end_array(&p.jw);
		jsonw_key(&p.jw, "mail_would_flow");
		jsonw_bool(&p.jw, p.ok > 0);
		jsonw_end_object(&p.jw);
		size_t len;
		const char *text = jsonw_text(&p.jw, &len);
		if (text == NULL) {
			fprintf(stderr, "bridgehead: out of memory\n");
			status = CLI_FAILED;
		} else {
			printf("%s\n", text);
		}
		jsonw_free(&p.jw);
	} else {
		printf("%s\n", p.ok > 0 ? "mail would flow"
					: "no next hop would take mail");
	}
out:
	while (p.sessions.head != NULL)
		smtpc_sess_free(p.sessions.head);
	smtpc_walk_free(p.walk);
	if (p.dns != NULL)
		dns_free(p.dns);
	smtpc_tls_free(p.tls);
	if (p.base != NULL)
		event_base_free(p.base);
	smtpc_plan_clear(&p.plan);
	return status;
}
