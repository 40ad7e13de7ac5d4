/*
 * smtpc_test: table-driven tests of the pure parts of smtpc -- the body
 * encoder (dot-stuffing, CRLF canonical form, the terminator; every input
 * also fed split at every byte) and the delivery plan and its walk over
 * next hops (smart hosts with their ports, source bridgeheads, MX
 * routing, address literals, DNS outcomes).  A unit test links only
 * src/smtpc and src/util: the configuration lookups and DNS are fakes
 * here (link seams), and the socket, TLS and reply-reader functions that
 * sessions use abort the test if anything reaches them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cert/store.h"
#include "net/dns.h"
#include "net/io.h"
#include "net/tls.h"
#include "queue/envelope.h"
#include "route/route.h"
#include "smtp/reply.h"
#include "smtpc/body.h"
#include "smtpc/hop.h"
#include "smtpc/plan.h"
#include "smtpc/session.h"

/* ------------------------------------------------------------ link seams */

static const struct conf_connector *fake_connector;
static bool fake_is_source = true;

const struct conf_connector *
conf_connector_find(const struct conf *conf, const char *name)
{
	(void)conf;
	if (fake_connector != NULL && strcmp(fake_connector->name, name) == 0)
		return fake_connector;
	return NULL;
}

bool
route_is_source(const struct conf *conf, const struct conf_connector *c)
{
	(void)conf;
	(void)c;
	return fake_is_source;
}

/* DNS: the lookup is recorded; the test answers it. */
struct dns_query {
	int dummy;
};
static struct dns_query fake_query;
static dns_callback *fake_cb;
static void *fake_arg;
static char fake_asked[300];
static int fake_cancelled;

static struct dns_query *
fake_lookup(const char *kind, const char *name, dns_callback *cb, void *arg)
{
	snprintf(fake_asked, sizeof fake_asked, "%s %s", kind, name);
	fake_cb = cb;
	fake_arg = arg;
	return &fake_query;
}

struct dns_query *
dns_lookup_mx(struct dns *dns, const char *domain, dns_callback *cb, void *arg)
{
	(void)dns;
	return fake_lookup("mx", domain, cb, arg);
}

struct dns_query *
dns_lookup_host(struct dns *dns, const char *host, dns_callback *cb, void *arg)
{
	(void)dns;
	return fake_lookup("host", host, cb, arg);
}

void
dns_cancel(struct dns_query *q)
{
	(void)q;
	fake_cancelled++;
}

/* Not reached by these tests: sessions, TLS, replies, certificates. */
#define UNUSED_SEAM(name) fail_msg("%s called", name)

struct io *
io_connect(struct event_base *b, const struct sockaddr *sa, socklen_t l,
	   io_callback *cb, void *arg)
{
	(void)b, (void)sa, (void)l, (void)cb, (void)arg;
	UNUSED_SEAM("io_connect");
	return NULL;
}
void
io_free(struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_free");
}
int
io_start_tls_client(struct io *io, SSL_CTX *c, const char *n)
{
	(void)io, (void)c, (void)n;
	UNUSED_SEAM("io_start_tls_client");
	return -1;
}
SSL *
io_ssl(struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_ssl");
	return NULL;
}
const char *
io_tls_version(const struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_tls_version");
	return NULL;
}
const char *
io_tls_cipher(const struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_tls_cipher");
	return NULL;
}
const uint8_t *
io_data(const struct io *io, size_t *len)
{
	(void)io, (void)len;
	UNUSED_SEAM("io_data");
	return NULL;
}
void
io_drop(struct io *io, size_t n)
{
	(void)io, (void)n;
	UNUSED_SEAM("io_drop");
}
size_t
io_discarded(const struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_discarded");
	return 0;
}
int
io_write(struct io *io, const void *d, size_t l)
{
	(void)io, (void)d, (void)l;
	UNUSED_SEAM("io_write");
	return -1;
}
size_t
io_queued(const struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_queued");
	return 0;
}
void
io_set_timeout(struct io *io, int ms)
{
	(void)io, (void)ms;
	UNUSED_SEAM("io_set_timeout");
}
void
io_set_lowat(struct io *io, size_t l)
{
	(void)io, (void)l;
	UNUSED_SEAM("io_set_lowat");
}
const char *
io_error(const struct io *io)
{
	(void)io;
	UNUSED_SEAM("io_error");
	return NULL;
}
SSL_CTX *
tls_client_ctx_new(char *err, size_t len)
{
	(void)err, (void)len;
	UNUSED_SEAM("tls_client_ctx_new");
	return NULL;
}
int
tls_ctx_use_certificate(SSL_CTX *c, const char *a, const char *b, char *e,
			size_t l)
{
	(void)c, (void)a, (void)b, (void)e, (void)l;
	UNUSED_SEAM("tls_ctx_use_certificate");
	return -1;
}
const char *
tls_log_errors(const char *w, char *b, size_t l)
{
	(void)w, (void)b, (void)l;
	UNUSED_SEAM("tls_log_errors");
	return NULL;
}
int
cert_store_find(const char *s, char *c, size_t cl, char *k, size_t kl, char *e,
		size_t el)
{
	(void)s, (void)c, (void)cl, (void)k, (void)kl, (void)e, (void)el;
	UNUSED_SEAM("cert_store_find");
	return -1;
}
const char *
envelope_notify_words(unsigned n, char *b, size_t l)
{
	(void)n, (void)b, (void)l;
	UNUSED_SEAM("envelope_notify_words");
	return NULL;
}
void
smtp_reply_reader_init(struct smtp_reply_reader *r)
{
	(void)r;
	UNUSED_SEAM("smtp_reply_reader_init");
}
enum smtp_reply_status
smtp_reply_next(struct smtp_reply_reader *r, const uint8_t *d, size_t l,
		size_t *c)
{
	(void)r, (void)d, (void)l, (void)c;
	UNUSED_SEAM("smtp_reply_next");
	return SMTP_REPLY_BAD;
}
bool
smtp_reply_ehlo_has(const struct smtp_reply_reader *r, const char *k,
		    const char **p, size_t *pl)
{
	(void)r, (void)k, (void)p, (void)pl;
	UNUSED_SEAM("smtp_reply_ehlo_has");
	return false;
}

/* ------------------------------------------------------------------ body */

struct body_case {
	const char *name;
	const char *in;
	const char *want; /* the wire form, terminator included */
	unsigned bare;
};

static const struct body_case body_cases[] = {
	{"empty", "", ".\r\n", 0},
	{"one line", "a\r\n", "a\r\n.\r\n", 0},
	{"no final CRLF", "a", "a\r\n.\r\n", 0},
	{"leading dots", ".x\r\n..\r\n.\r\n", "..x\r\n...\r\n..\r\n.\r\n", 0},
	{"dot inside a line", "a.b\r\n. \r\n", "a.b\r\n.. \r\n.\r\n", 0},
	{"bare LF", "a\nb\r\n", "a\r\nb\r\n.\r\n", 1},
	{"bare CR", "a\rb\r\n", "a\r\nb\r\n.\r\n", 1},
	{"smuggling LF.CRLF", "a\n.\r\nMAIL\r\n", "a\r\n..\r\nMAIL\r\n.\r\n",
	 1},
	{"CR at the end", "a\r", "a\r\n.\r\n", 1},
	{"CRCRLF", "a\r\r\n", "a\r\n\r\n.\r\n", 1},
	{"dot after bare CR", "x\r.y\r\n", "x\r\n..y\r\n.\r\n", 1},
	{"blank lines", "\r\n\r\n", "\r\n\r\n.\r\n", 0},
	{"8-bit kept",
	 "Gr\xc3\xbc\xc3\x9f"
	 "e\r\n",
	 "Gr\xc3\xbc\xc3\x9f"
	 "e\r\n.\r\n",
	 0},
};

/* Encode in, cut into pieces of step bytes (0: whole). */
static size_t
body_run(const char *in, size_t step, uint8_t *out, unsigned *bare)
{
	struct smtpc_body b;
	size_t len = strlen(in), o = 0;

	smtpc_body_init(&b);
	if (step == 0)
		step = len > 0 ? len : 1;
	for (size_t i = 0; i < len; i += step) {
		size_t n = len - i < step ? len - i : step;
		o += smtpc_body_encode(&b, (const uint8_t *)in + i, n, out + o);
	}
	o += smtpc_body_finish(&b, out + o);
	*bare = (unsigned)b.bare;
	return o;
}

static void
test_body_table(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
		const struct body_case *t = &body_cases[i];
		size_t len = strlen(t->in);
		for (size_t step = 0; step <= len; step++) {
			uint8_t out[SMTPC_BODY_OUT_MAX(64)];
			unsigned bare;
			size_t n = body_run(t->in, step, out, &bare);
			if (n != strlen(t->want) ||
			    memcmp(out, t->want, n) != 0 || bare != t->bare) {
				print_error("%s (pieces of %zu): got \"%.*s\" "
					    "bare=%u, want \"%s\" bare=%u\n",
					    t->name, step, (int)n, out, bare,
					    t->want, t->bare);
				failed++;
			}
		}
	}
	assert_int_equal(failed, 0);
}

/* The worst case fits the bound SMTPC_BODY_OUT_MAX promises. */
static void
test_body_bound(void **state)
{
	(void)state;
	char in[65];
	uint8_t out[SMTPC_BODY_OUT_MAX(64)];
	unsigned bare;

	memset(in, '\n', 64);
	in[64] = '\0';
	size_t n = body_run(in, 0, out, &bare);
	assert_true(n <= SMTPC_BODY_OUT_MAX(64));
	assert_int_equal(bare, 64);
	assert_true(smtpc_body_has_8bit((const uint8_t *)"a\x80", 2));
	assert_false(smtpc_body_has_8bit((const uint8_t *)"abc\r\n", 5));
}

/* ------------------------------------------------------------------ plan */

static struct conf test_conf = {
	.server_name = "bh1.example.com",
	.state_dir = "/nonexistent",
};

struct plan_case {
	const char *name;
	bool have_connector;
	bool dns;
	bool is_source;
	const char *smart[3];
	unsigned smart_port[3];
	unsigned port;
	const char *domain;
	const char *want_key;
	const char *want_names; /* "host:port,host:port" */
	bool want_mx;
	enum conf_connector_tls want_tls;
};

static const struct plan_case plan_cases[] = {
	{"smart hosts with ports",
	 true,
	 false,
	 true,
	 {"mail.example.net", "192.0.2.1", "relay.example.net"},
	 {0, 2525, 0},
	 587,
	 "example.net",
	 "connector:out",
	 "mail.example.net:587,192.0.2.1:2525,relay.example.net:587",
	 false,
	 CONF_CONNECTOR_TLS_VERIFY},
	{"default port 25",
	 true,
	 false,
	 true,
	 {"mail.example.net"},
	 {0},
	 0,
	 "example.net",
	 "connector:out",
	 "mail.example.net:25",
	 false,
	 CONF_CONNECTOR_TLS_VERIFY},
	{"not a source: via bridgeheads, tls may",
	 true,
	 false,
	 false,
	 {"mail.example.net"},
	 {0},
	 587,
	 "example.net",
	 "via:out",
	 "bh2.example.com:25,bh3.example.com:25",
	 false,
	 CONF_CONNECTOR_TLS_MAY},
	{"connector with dns = yes",
	 true,
	 true,
	 true,
	 {NULL},
	 {0},
	 0,
	 "example.net",
	 "connector:out/mx:example.net",
	 "",
	 true,
	 CONF_CONNECTOR_TLS_VERIFY},
	{"no connector: MX, tls may",
	 false,
	 false,
	 true,
	 {NULL},
	 {0},
	 0,
	 "example.org",
	 "mx:example.org",
	 "",
	 true,
	 CONF_CONNECTOR_TLS_MAY},
};

static char *bridgeheads[] = {"bh2.example.com", "bh3.example.com"};
static char *matches[] = {"mx.example.net"};

static void
test_plan_table(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++) {
		const struct plan_case *t = &plan_cases[i];
		struct conf_host hosts[3];
		struct conf_connector c = {
			.name = "out",
			.smart_hosts = hosts,
			.dns = t->dns,
			.source_bridgeheads = bridgeheads,
			.n_source_bridgeheads = 2,
			.tls = CONF_CONNECTOR_TLS_VERIFY,
			.tls_match = matches,
			.n_tls_match = 1,
			.port = t->port,
			.max_connections = 7,
			.tls_client_certificate = true,
		};
		for (size_t k = 0; k < 3 && t->smart[k] != NULL; k++) {
			hosts[k] = (struct conf_host){
				.host = (char *)(uintptr_t)t->smart[k],
				.port = t->smart_port[k],
			};
			c.n_smart_hosts = k + 1;
		}
		fake_connector = t->have_connector ? &c : NULL;
		fake_is_source = t->is_source;
		struct smtpc_plan p;
		char err[200];
		int r = smtpc_plan_make(&p, &test_conf,
					t->have_connector ? "out" : NULL,
					t->domain, err, sizeof err);
		assert_int_equal(r, 0);
		char names[300] = "";
		size_t off = 0;
		for (size_t k = 0; k < p.n_names; k++)
			off += (size_t)snprintf(
				names + off, sizeof names - off, "%s%s:%u",
				k ? "," : "", p.names[k].host, p.names[k].port);
		if (strcmp(p.key, t->want_key) != 0 ||
		    strcmp(names, t->want_names) != 0 || p.mx != t->want_mx ||
		    p.policy.tls != t->want_tls ||
		    strcmp(p.policy.helo, "bh1.example.com") != 0 ||
		    p.max_conns != (t->have_connector ? 7u : 20u)) {
			print_error(
				"%s: got key=%s names=%s mx=%d tls=%d "
				"max=%u; want key=%s names=%s mx=%d tls=%d\n",
				t->name, p.key, names, p.mx, p.policy.tls,
				p.max_conns, t->want_key, t->want_names,
				t->want_mx, t->want_tls);
			failed++;
		}
		smtpc_plan_clear(&p);
	}
	fake_connector = NULL;
	fake_is_source = true;
	assert_int_equal(failed, 0);
}

static void
test_plan_unknown_connector(void **state)
{
	(void)state;
	struct smtpc_plan p;
	char err[200];

	fake_connector = NULL;
	assert_int_equal(smtpc_plan_make(&p, &test_conf, "gone", "example.net",
					 err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "gone"));
}

/* ------------------------------------------------------------------ walk */

static int resumed;

static void
on_resume(void *arg)
{
	(void)arg;
	resumed++;
}

static struct dns_addr
v4(const char *ip)
{
	struct dns_addr a = {.salen = sizeof(struct sockaddr_in)};
	struct sockaddr_in *s = (struct sockaddr_in *)&a.sa;
	s->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &s->sin_addr);
	return a;
}

/* Smart hosts: an address needs no DNS; a name is looked up, all its
 * addresses are tried in order; a failed lookup moves on. */
static void
test_walk_smart_hosts(void **state)
{
	(void)state;
	struct smtpc_plan p = {.key = "connector:out"};
	struct smtpc_plan_name names[] = {
		{"192.0.2.1", 2525},
		{"mail.example.net", 25},
		{"down.example.net", 25},
	};
	p.names = names;
	p.n_names = 3;
	struct dns *dns = (struct dns *)&fake_query; /* never looked into */
	struct smtpc_walk *w = smtpc_walk_new(dns, &p, on_resume, NULL);
	struct smtpc_hop hop;

	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.addr, "192.0.2.1:2525");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_PENDING);
	assert_string_equal(fake_asked, "host mail.example.net");
	struct dns_addr addrs[] = {v4("198.51.100.1"), v4("198.51.100.2")};
	struct dns_host h = {
		.name = "mail.example.net", .addrs = addrs, .n_addrs = 2};
	struct dns_result ok = {.status = DNS_OK, .hosts = &h, .n_hosts = 1};
	resumed = 0;
	fake_cb(fake_arg, &ok);
	assert_int_equal(resumed, 1);
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.addr, "198.51.100.1:25");
	assert_string_equal(hop.name, "mail.example.net");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.addr, "198.51.100.2:25");
	smtpc_walk_set_reason(w, "connect: Connection refused");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_PENDING);
	assert_string_equal(fake_asked, "host down.example.net");
	struct dns_result nx = {.status = DNS_NXDOMAIN,
				.reason = "down.example.net: no such domain"};
	fake_cb(fake_arg, &nx);
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_END);
	const char *enh, *why;
	/* A smart host's name failing is not the recipient's problem. */
	assert_int_equal(smtpc_walk_failure(w, &enh, &why), SMTPC_TEMPFAIL);
	assert_non_null(strstr(why, "no such domain"));
	smtpc_walk_free(w);
}

struct mx_case {
	const char *name;
	enum dns_status status;
	enum smtpc_status want;
	const char *want_enhanced;
};

static const struct mx_case mx_cases[] = {
	{"NXDOMAIN", DNS_NXDOMAIN, SMTPC_PERMFAIL, "5.1.2"},
	{"NODATA", DNS_NODATA, SMTPC_PERMFAIL, "5.1.2"},
	{"null MX", DNS_NULLMX, SMTPC_PERMFAIL, "5.1.10"},
	{"SERVFAIL", DNS_TEMPFAIL, SMTPC_TEMPFAIL, "4.4.3"},
};

static void
test_walk_mx_failures(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t i = 0; i < sizeof mx_cases / sizeof mx_cases[0]; i++) {
		const struct mx_case *t = &mx_cases[i];
		struct smtpc_plan p = {.mx = true, .domain = "example.org"};
		struct smtpc_walk *w = smtpc_walk_new((struct dns *)&fake_query,
						      &p, on_resume, NULL);
		struct smtpc_hop hop;
		assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_PENDING);
		assert_string_equal(fake_asked, "mx example.org");
		struct dns_result r = {.status = t->status, .reason = t->name};
		fake_cb(fake_arg, &r);
		const char *enh, *why;
		enum smtpc_walk_status st = smtpc_walk_next(w, &hop);
		enum smtpc_status got = smtpc_walk_failure(w, &enh, &why);
		if (st != SMTPC_WALK_END || got != t->want ||
		    strcmp(enh, t->want_enhanced) != 0) {
			print_error("%s: got walk=%d status=%d %s, want END "
				    "%d %s\n",
				    t->name, st, got, enh, t->want,
				    t->want_enhanced);
			failed++;
		}
		smtpc_walk_free(w);
	}
	assert_int_equal(failed, 0);
}

/* MX hosts in order with port 25; an address literal needs no DNS. */
static void
test_walk_mx_and_literal(void **state)
{
	(void)state;
	struct smtpc_plan p = {.mx = true, .domain = "example.org"};
	struct smtpc_walk *w =
		smtpc_walk_new((struct dns *)&fake_query, &p, on_resume, NULL);
	struct smtpc_hop hop;

	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_PENDING);
	struct dns_addr a1[] = {v4("203.0.113.1")};
	struct dns_addr a2[] = {v4("203.0.113.2")};
	struct dns_host hosts[] = {
		{.name = "mx1.example.org",
		 .preference = 10,
		 .addrs = a1,
		 .n_addrs = 1},
		{.name = "mx2.example.org",
		 .preference = 20,
		 .addrs = a2,
		 .n_addrs = 1},
	};
	struct dns_result ok = {.status = DNS_OK, .hosts = hosts, .n_hosts = 2};
	fake_cb(fake_arg, &ok);
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.name, "mx1.example.org");
	assert_string_equal(hop.addr, "203.0.113.1:25");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.name, "mx2.example.org");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_END);
	smtpc_walk_free(w);

	struct smtpc_plan lit = {.mx = true, .domain = "[IPv6:2001:db8::5]"};
	fake_asked[0] = '\0';
	w = smtpc_walk_new(NULL, &lit, on_resume, NULL);
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_HOP);
	assert_string_equal(hop.addr, "[2001:db8::5]:25");
	assert_string_equal(fake_asked, "");
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_END);
	smtpc_walk_free(w);
}

/* Freeing a walk with a lookup under way cancels the lookup. */
static void
test_walk_free_cancels(void **state)
{
	(void)state;
	struct smtpc_plan_name names[] = {{"mail.example.net", 25}};
	struct smtpc_plan p = {.names = names, .n_names = 1};
	struct smtpc_walk *w =
		smtpc_walk_new((struct dns *)&fake_query, &p, on_resume, NULL);
	struct smtpc_hop hop;

	fake_cancelled = 0;
	assert_int_equal(smtpc_walk_next(w, &hop), SMTPC_WALK_PENDING);
	smtpc_walk_free(w);
	assert_int_equal(fake_cancelled, 1);
}

/* ---------------------------------------------------------------- results */

struct result_case {
	int code;
	const char *enhanced;
	const char *text;
	int want_code;
	const char *want_enhanced;
	const char *want_reply;
};

static const struct result_case result_cases[] = {
	/* a peer's reply, as the reply reader gave it */
	{550, "5.1.1", "550 5.1.1 no such user", 550, "5.1.1",
	 "550 5.1.1 no such user"},
	/* a local reason gets its status code in front */
	{0, "5.6.7", "no SMTPUTF8", 0, "5.6.7", "5.6.7 no SMTPUTF8"},
	/* a host's refusal as the reason: the peer's codes count */
	{0, "4.4.1", "421 4.3.2 too busy", 421, "4.3.2", "421 4.3.2 too busy"},
	{0, "4.4.1", "554 no service", 554, "", "554 no service"},
	{0, "4.4.1", "421", 421, "", "421"},
	/* already carrying a status code: not doubled */
	{0, "4.4.1", "4.7.5 TLS failed", 0, "4.4.1", "4.7.5 TLS failed"},
	/* digits that are not a code */
	{0, "4.4.1", "4210 bytes lost", 0, "4.4.1", "4.4.1 4210 bytes lost"},
	{0, "", "connection lost", 0, "", "connection lost"},
};

static void
test_result_set(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t i = 0; i < sizeof result_cases / sizeof result_cases[0];
	     i++) {
		const struct result_case *t = &result_cases[i];
		struct smtpc_rcpt_result r;
		char buf[SMTPC_REPLY_MAX];
		smtpc_result_set(&r, buf, SMTPC_TEMPFAIL, t->code, t->enhanced,
				 t->text);
		if (r.code != t->want_code ||
		    strcmp(r.enhanced, t->want_enhanced) != 0 ||
		    strcmp(r.reply, t->want_reply) != 0) {
			print_error("\"%s\": got %d \"%s\" \"%s\", want %d "
				    "\"%s\" \"%s\"\n",
				    t->text, r.code, r.enhanced, r.reply,
				    t->want_code, t->want_enhanced,
				    t->want_reply);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_table),
		cmocka_unit_test(test_body_bound),
		cmocka_unit_test(test_plan_table),
		cmocka_unit_test(test_plan_unknown_connector),
		cmocka_unit_test(test_walk_smart_hosts),
		cmocka_unit_test(test_walk_mx_failures),
		cmocka_unit_test(test_walk_mx_and_literal),
		cmocka_unit_test(test_walk_free_cancels),
		cmocka_unit_test(test_result_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
