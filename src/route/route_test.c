/*
 * route_test: table-driven tests of route_lookup(), route_is_source() and
 * route_key() against a configuration model built by hand (a unit test
 * links only src/route and src/util, not the loader).  Each failing row
 * prints what it got and what it wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "route/route.h"

/* Up to four address spaces and four source bridgeheads per connector. */
struct spec {
	const char *name;
	const char *spaces[4];
	unsigned costs[4]; /* 0: 1 */
	const char *sources[4];
};

#define MAX_CONNECTORS 8

struct model {
	struct conf conf;
	struct conf_connector connectors[MAX_CONNECTORS];
	struct conf_address_space spaces[MAX_CONNECTORS][4];
	char *sources[MAX_CONNECTORS][4];
};

/* The model is static storage: the test strings outlive it. */
static void
build(struct model *m, const char *server_name, const struct spec *specs,
      size_t n)
{
	memset(m, 0, sizeof *m);
	m->conf.server_name = (char *)(uintptr_t)server_name;
	m->conf.connectors = m->connectors;
	m->conf.n_connectors = n;
	for (size_t i = 0; i < n; i++) {
		struct conf_connector *c = &m->connectors[i];
		c->name = (char *)(uintptr_t)specs[i].name;
		c->address_spaces = m->spaces[i];
		c->source_bridgeheads = m->sources[i];
		for (size_t j = 0; j < 4 && specs[i].spaces[j] != NULL; j++) {
			m->spaces[i][j].pattern =
				(char *)(uintptr_t)specs[i].spaces[j];
			m->spaces[i][j].cost =
				specs[i].costs[j] ? specs[i].costs[j] : 1;
			c->n_address_spaces = j + 1;
		}
		for (size_t j = 0; j < 4 && specs[i].sources[j] != NULL; j++) {
			m->sources[i][j] =
				(char *)(uintptr_t)specs[i].sources[j];
			c->n_source_bridgeheads = j + 1;
		}
	}
}

/* One routing table used by most rows. */
/* clang-format off */
static const struct spec table[] = {
	{ "all", { "*" }, { 0 }, { 0 } },
	{ "sub", { "*.example.com" }, { 0 }, { 0 } },
	{ "deep", { "*.eu.example.com" }, { 0 }, { 0 } },
	{ "exact", { "example.com", "example.org" }, { 0, 5 }, { 0 } },
	{ "cheap-org", { "example.org" }, { 2 }, { 0 } },
	{ "tie1", { "tie.test" }, { 3 }, { 0 } },
	{ "tie2", { "tie.test" }, { 3 }, { 0 } },
	{ "cheapall", { "*", "net.test" }, { 10, 1 }, { 0 } },
};
/* clang-format on */

struct lookup_case {
	const char *domain;
	const char *want; /* NULL: no connector */
};

/* clang-format off */
static const struct lookup_case lookup_cases[] = {
	/* exact beats *.domain beats * */
	{ "example.com", "exact" },
	{ "a.example.com", "sub" },
	{ "b.a.example.com", "sub" },
	{ "x.eu.example.com", "deep" },	/* longer suffix wins */
	{ "eu.example.com", "sub" },	/* *.eu.example.com: subdomains only */
	{ "xexample.com", "all" },	/* not a subdomain */
	{ "example.net", "all" },
	/* case and the trailing dot */
	{ "EXAMPLE.COM", "exact" },
	{ "Example.Com.", "exact" },
	{ "A.Example.COM.", "sub" },
	{ "X.EU.EXAMPLE.COM", "deep" },
	/* equal specificity: the lowest cost, then the first defined */
	{ "example.org", "cheap-org" },
	{ "tie.test", "tie1" },
	{ "net.test", "cheapall" },
	/* address literals and empty names: only "*" */
	{ "[192.0.2.1]", "all" },
	{ "[IPv6:2001:db8::1]", "all" },
	{ "", "all" },
	{ "com", "all" },
};
/* clang-format on */

static void
test_lookup(void **state)
{
	struct model m;
	int failures = 0;

	(void)state;
	build(&m, "bh1.example.com", table, sizeof table / sizeof table[0]);
	for (size_t i = 0; i < sizeof lookup_cases / sizeof lookup_cases[0];
	     i++) {
		const struct lookup_case *t = &lookup_cases[i];
		const struct conf_connector *c =
			route_lookup(&m.conf, t->domain);
		const char *got = c != NULL ? c->name : "(none)";
		const char *want = t->want != NULL ? t->want : "(none)";
		if (strcmp(got, want) != 0) {
			print_error("route_lookup(\"%s\"): got %s, want %s\n",
				    t->domain, got, want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Without a "*" connector, unmatched domains and literals go by MX. */
/* clang-format off */
static const struct spec no_default[] = {
	{ "MicrosoftOnline", { "contoso1.microsoftonline.com" }, { 0 },
	  { "bh1.contoso.com" } },
	{ "partners", { "*.partner.test", "partner.test" }, { 5, 5 }, { 0 } },
	{ "partners-cheap", { "*.partner.test" }, { 1 }, { 0 } },
};

static const struct lookup_case no_default_cases[] = {
	{ "contoso1.microsoftonline.com", "MicrosoftOnline" },
	{ "CONTOSO1.MicrosoftOnline.com.", "MicrosoftOnline" },
	{ "contoso2.microsoftonline.com", NULL },
	{ "microsoftonline.com", NULL },
	{ "x.contoso1.microsoftonline.com", NULL },
	{ "[192.0.2.1]", NULL },
	{ "partner.test", "partners" },
	{ "a.partner.test", "partners-cheap" },
	{ "example.com", NULL },
	{ "", NULL },
};
/* clang-format on */

static void
test_lookup_without_default(void **state)
{
	struct model m;
	int failures = 0;

	(void)state;
	build(&m, "bh1.contoso.com", no_default,
	      sizeof no_default / sizeof no_default[0]);
	for (size_t i = 0;
	     i < sizeof no_default_cases / sizeof no_default_cases[0]; i++) {
		const struct lookup_case *t = &no_default_cases[i];
		const struct conf_connector *c =
			route_lookup(&m.conf, t->domain);
		const char *got = c != NULL ? c->name : "(none)";
		const char *want = t->want != NULL ? t->want : "(none)";
		if (strcmp(got, want) != 0) {
			print_error("route_lookup(\"%s\"): got %s, want %s\n",
				    t->domain, got, want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void
test_lookup_empty(void **state)
{
	struct model m;

	(void)state;
	build(&m, "bh1.example.com", NULL, 0);
	assert_null(route_lookup(&m.conf, "example.com"));
	assert_null(route_lookup(&m.conf, "[192.0.2.1]"));
	assert_null(route_lookup(NULL, "example.com"));
	assert_null(route_lookup(&m.conf, NULL));
}

struct source_case {
	const char *server_name;
	const char *sources[4];
	bool want;
};

/* clang-format off */
static const struct source_case source_cases[] = {
	{ "bh1.contoso.com", { 0 }, true },	/* empty list: every node */
	{ "bh1.contoso.com", { "bh1.contoso.com" }, true },
	{ "BH1.Contoso.COM", { "bh1.contoso.com" }, true },
	{ "bh1.contoso.com", { "BH1.CONTOSO.COM." }, true },
	{ "bh1.contoso.com.", { "bh1.contoso.com" }, true },
	{ "bh2.contoso.com", { "bh1.contoso.com" }, false },
	{ "bh2.contoso.com", { "bh1.contoso.com", "bh2.contoso.com" }, true },
	{ "bh1.contoso.co", { "bh1.contoso.com" }, false },
	{ "bh1.contoso.com", { "bh1.contoso.co" }, false },
	{ "h1.contoso.com", { "bh1.contoso.com" }, false },
};
/* clang-format on */

static void
test_is_source(void **state)
{
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof source_cases / sizeof source_cases[0];
	     i++) {
		const struct source_case *t = &source_cases[i];
		struct spec s = {"c", {"*"}, {0}, {0}};
		struct model m;
		memcpy(s.sources, t->sources, sizeof s.sources);
		build(&m, t->server_name, &s, 1);
		bool got = route_is_source(&m.conf, &m.connectors[0]);
		if (got != t->want) {
			print_error("route_is_source(%s, [%s%s%s]): got %d, "
				    "want %d\n",
				    t->server_name,
				    t->sources[0] ? t->sources[0] : "",
				    t->sources[1] ? ", " : "",
				    t->sources[1] ? t->sources[1] : "", got,
				    t->want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
	/* MX routing (no connector) is done by every node itself. */
	assert_true(route_is_source(NULL, NULL));
}

struct key_case {
	const char *domain;
	size_t outlen;
	int want_len;
	const char *want;
};

/* clang-format off */
static const struct key_case key_cases[] = {
	{ "contoso1.microsoftonline.com", 64, 25, "connector:MicrosoftOnline" },
	{ "Contoso1.MicrosoftOnline.COM.", 64, 25,
	  "connector:MicrosoftOnline" },
	{ "Example.COM", 64, 14, "mx:example.com" },
	{ "example.com.", 64, 14, "mx:example.com" },
	{ "[192.0.2.1]", 64, 14, "mx:[192.0.2.1]" },
	{ "partner.test", 64, 18, "connector:partners" },
	/* too small: exactly one byte short, and far too small */
	{ "example.com", 14, -1, "" },
	{ "example.com", 15, 14, "mx:example.com" },
	{ "partner.test", 18, -1, "" },
	{ "partner.test", 19, 18, "connector:partners" },
	{ "example.com", 1, -1, "" },
};
/* clang-format on */

static void
test_key(void **state)
{
	struct model m;
	int failures = 0;

	(void)state;
	build(&m, "bh1.contoso.com", no_default,
	      sizeof no_default / sizeof no_default[0]);
	for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
		const struct key_case *t = &key_cases[i];
		char out[64];
		memset(out, 'X', sizeof out);
		int got = route_key(&m.conf, t->domain, out, t->outlen);
		if (got != t->want_len || strcmp(out, t->want) != 0) {
			print_error("route_key(\"%s\", %zu): got %d \"%.*s\", "
				    "want %d \"%s\"\n",
				    t->domain, t->outlen, got,
				    (int)strnlen(out, sizeof out), out,
				    t->want_len, t->want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
	assert_int_equal(route_key(&m.conf, "example.com", NULL, 10), -1);
}

/* Recipients of one message, split by key: equal keys share a route. */
static void
test_key_splits_recipients(void **state)
{
	static const char *const rcpt_domains[] = {
		"contoso1.microsoftonline.com",
		"CONTOSO1.microsoftonline.com",
		"example.com",
		"Example.Com.",
		"partner.test",
		"a.partner.test",
	};
	/* Which earlier recipient each one travels with (-1: a new route). */
	static const int want_with[] = {-1, 0, -1, 2, -1, -1};
	char keys[6][300];
	struct model m;
	int failures = 0;

	(void)state;
	build(&m, "bh1.contoso.com", no_default,
	      sizeof no_default / sizeof no_default[0]);
	for (size_t i = 0; i < 6; i++) {
		assert_true(route_key(&m.conf, rcpt_domains[i], keys[i],
				      sizeof keys[i]) > 0);
		int with = -1;
		for (size_t j = 0; j < i && with == -1; j++)
			if (strcmp(keys[i], keys[j]) == 0)
				with = (int)j;
		if (with != want_with[i]) {
			print_error("%s (key %s): travels with %d, want %d\n",
				    rcpt_domains[i], keys[i], with,
				    want_with[i]);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_lookup_without_default),
		cmocka_unit_test(test_lookup_empty),
		cmocka_unit_test(test_is_source),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_key_splits_recipients),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
