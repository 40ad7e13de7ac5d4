/*
 * address_test: table-driven tests of the path parser, the wire formatter,
 * domain and UTF-8 checks (RFC 5321 4.1.2, 4.1.3, 4.5.3.1; RFC 6531;
 * cases C07, C12, C13).  Each failing row prints what it got and wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/address.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *
show(char *buf, size_t buflen, const char *s, size_t n)
{
	return log_escape(buf, buflen, s, n);
}

static const char *
err_name(enum smtp_address_error e)
{
	switch (e) {
	case SMTP_ADDRESS_OK:
		return "OK";
	case SMTP_ADDRESS_SYNTAX:
		return "SYNTAX";
	case SMTP_ADDRESS_TOO_LONG:
		return "TOO_LONG";
	case SMTP_ADDRESS_NULL_NOT_ALLOWED:
		return "NULL_NOT_ALLOWED";
	}
	return "?";
}

#define F_NULL 0x1
#define F_PM 0x2
#define F_UTF8 0x4

struct parse_case {
	const char *in;
	size_t len;
	bool allow_null;
	enum smtp_address_error want;
	const char *local; /* decoded */
	const char *domain;
	unsigned flags;
	size_t consumed;
};

/* clang-format off */
static const struct parse_case parse_cases[] = {
	{S("<a@b.example>"), false, SMTP_ADDRESS_OK, "a", "b.example", 0, 13},
	{S("<Sender@Example.ORG>"), false, SMTP_ADDRESS_OK, "Sender",
	 "Example.ORG", 0, 20},
	{S("<>"), true, SMTP_ADDRESS_OK, "", "", F_NULL, 2},
	{S("<>"), false, SMTP_ADDRESS_NULL_NOT_ALLOWED, "", "", 0, 0},
	{S("<> SIZE=1000"), true, SMTP_ADDRESS_OK, "", "", F_NULL, 2},
	{S("<>>>>"), true, SMTP_ADDRESS_OK, "", "", F_NULL, 2},
	{S("<postmaster>"), false, SMTP_ADDRESS_OK, "postmaster", "", F_PM, 12},
	{S("<PostMaster>"), false, SMTP_ADDRESS_OK, "PostMaster", "", F_PM, 12},
	{S("<postmaster@example.com>"), false, SMTP_ADDRESS_OK, "postmaster",
	 "example.com", 0, 24},
	{S("<postmast>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	/* C12: quoted local parts. */
	{S("<\"sender name\"@example.org>"), false, SMTP_ADDRESS_OK,
	 "sender name", "example.org", 0, 27},
	{S("<\"a@b\"@example.net>"), false, SMTP_ADDRESS_OK, "a@b",
	 "example.net", 0, 19},
	{S("<\"x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com\"@example.net>"),
	 false, SMTP_ADDRESS_OK, "x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com",
	 "example.net", 0, 62},
	{S("<\"foo..bar\"@example.net>"), false, SMTP_ADDRESS_OK, "foo..bar",
	 "example.net", 0, 24},
	{S("<\"back\\\\slash\\\"quote\"@example.net>"), false, SMTP_ADDRESS_OK,
	 "back\\slash\"quote", "example.net", 0, 34},
	{S("<\"plain\"@example.net>"), false, SMTP_ADDRESS_OK, "plain",
	 "example.net", 0, 21},
	{S("<\"\"@example.net>"), false, SMTP_ADDRESS_OK, "", "example.net", 0,
	 16},
	{S("<\"a>b\"@example.net> NOTIFY=NEVER"), false, SMTP_ADDRESS_OK, "a>b",
	 "example.net", 0, 19},
	{S("<\"abc>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<\"abc\\"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<\"a\\\x01\"@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<\"a\tb\"@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<\"a\"b@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<\"a\0b\"@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	/* Source routes are checked and dropped. */
	{S("<@a.example,@b.example:user@c.example>"), false, SMTP_ADDRESS_OK,
	 "user", "c.example", 0, 38},
	{S("<@a.example:user@c.example>"), false, SMTP_ADDRESS_OK, "user",
	 "c.example", 0, 27},
	{S("<@a.example:postmaster>"), false, SMTP_ADDRESS_OK, "postmaster", "",
	 F_PM, 23},
	{S("<@a..example:user@c.example>"), false, SMTP_ADDRESS_SYNTAX, "", "",
	 0, 0},
	{S("<@a.example,user@c.example>"), false, SMTP_ADDRESS_SYNTAX, "", "",
	 0, 0},
	{S("<@a.example:>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<@:a@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	/* RFC 6531 UTF-8. */
	{S("<j\xc3\xb6rg@example.net>"), false, SMTP_ADDRESS_OK, "j\xc3\xb6rg",
	 "example.net", F_UTF8, 19},
	{S("<user@\xc3\xa9xample.net>"), false, SMTP_ADDRESS_OK, "user",
	 "\xc3\xa9xample.net", F_UTF8, 19},
	{S("<\"j\xc3\xb6 rg\"@example.net>"), false, SMTP_ADDRESS_OK,
	 "j\xc3\xb6 rg", "example.net", F_UTF8, 22},
	{S("<j\xc3rg@example.net>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<j\xc0\xafrg@example.net>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0,
	 0},
	{S("<j\xed\xa0\x80@example.net>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0,
	 0},
	/* Address literals. */
	{S("<a@[192.0.2.1]>"), false, SMTP_ADDRESS_OK, "a", "[192.0.2.1]", 0,
	 15},
	{S("<a@[IPv6:2001:db8::1]>"), false, SMTP_ADDRESS_OK, "a",
	 "[IPv6:2001:db8::1]", 0, 22},
	{S("<a@[ipv6:::ffff:192.0.2.1]>"), false, SMTP_ADDRESS_OK, "a",
	 "[ipv6:::ffff:192.0.2.1]", 0, 27},
	{S("<a@[IPv6:2001:db8::g]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[300.1.1.1]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[1.2.3]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[2001:db8::1]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[tag:foo]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[]>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@[1.2.3.4]x>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	/* Domains. */
	{S("<a@b>"), false, SMTP_ADDRESS_OK, "a", "b", 0, 5},
	{S("<a@b.example.>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@.b.example>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b..example>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@-b.example>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b-.example>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b_c.example>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@xn--bcher-kva.example>"), false, SMTP_ADDRESS_OK, "a",
	 "xn--bcher-kva.example", 0, 25},
	/* Dot-strings. */
	{S("<first.last+tag@example.com>"), false, SMTP_ADDRESS_OK,
	 "first.last+tag", "example.com", 0, 28},
	{S("<!#$%&'*+-/=?^_`{|}~@example.com>"), false, SMTP_ADDRESS_OK,
	 "!#$%&'*+-/=?^_`{|}~", "example.com", 0, 33},
	{S("<.a@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a.@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a..b@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a b@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("< a@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b >"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a(b)@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a\x01@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a\0b@c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b\0c>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<@>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<@b>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	/* Framing: only the path is consumed; junk is the caller's. */
	{S("a@b"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S(""), true, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<"), true, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
	{S("<a@b>>"), false, SMTP_ADDRESS_OK, "a", "b", 0, 5},
	{S("<a@b> <c@d>"), false, SMTP_ADDRESS_OK, "a", "b", 0, 5},
	{S("<<a@b>>"), false, SMTP_ADDRESS_SYNTAX, "", "", 0, 0},
};
/* clang-format on */

static void
test_parse_table(void **state)
{
	char g[600], w[600];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0];
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		struct smtp_address a;
		size_t used = 999;
		enum smtp_address_error e = smtp_address_parse_path(
			c->in, c->len, c->allow_null, &a, &used);
		unsigned flags = (a.is_null ? F_NULL : 0) |
				 (a.is_postmaster ? F_PM : 0) |
				 (a.utf8 ? F_UTF8 : 0);
		bool ok = e == c->want;
		if (ok && e == SMTP_ADDRESS_OK)
			ok = strcmp(a.local, c->local) == 0 &&
			     strcmp(a.domain, c->domain) == 0 &&
			     flags == c->flags && used == c->consumed;
		if (ok && e != SMTP_ADDRESS_OK)
			ok = used == 0;
		if (ok)
			continue;
		failed++;
		print_error("row %zu in=\"%s\"\n", i,
			    show(g, sizeof g, c->in, c->len));
		print_error("  got  %s local=\"%s\" domain=\"%s\" flags=%u "
			    "consumed=%zu\n",
			    err_name(e),
			    show(g, sizeof g, a.local, strlen(a.local)),
			    show(w, sizeof w, a.domain, strlen(a.domain)),
			    flags, used);
		print_error("  want %s local=\"%s\" domain=\"%s\" flags=%u "
			    "consumed=%zu\n",
			    err_name(c->want),
			    show(g, sizeof g, c->local, strlen(c->local)),
			    show(w, sizeof w, c->domain, strlen(c->domain)),
			    c->flags, c->consumed);
	}
	assert_int_equal(failed, 0);
}

/* Build "<" local "@" labels ">" with exactly `inner` octets inside <>. */
static size_t
make_path(char *buf, size_t cap, size_t local_len, size_t inner)
{
	size_t o = 0, dom = inner - local_len - 1;

	assert_true(inner + 3 < cap);
	buf[o++] = '<';
	memset(buf + o, 'a', local_len);
	o += local_len;
	buf[o++] = '@';
	/* labels of up to 63 'b', separated by dots, never ending in '.' */
	for (size_t k = 0; k < dom; k++)
		buf[o++] = (k % 64 == 63 && k + 1 < dom) ? '.' : 'b';
	buf[o++] = '>';
	buf[o] = '\0';
	return o;
}

static void
test_path_length(void **state)
{
	char buf[2048];
	struct smtp_address a;
	size_t used, n;

	(void)state;
	/* C07: 256 octets with a 64-octet local part is within limits. */
	n = make_path(buf, sizeof buf, 64, SMTP_PATH_MAX);
	assert_int_equal(smtp_address_parse_path(buf, n, false, &a, &used),
			 SMTP_ADDRESS_OK);
	assert_int_equal(used, n);
	assert_int_equal(strlen(a.local), 64);
	/* One more octet: too long. */
	n = make_path(buf, sizeof buf, 64, SMTP_PATH_MAX + 1);
	assert_int_equal(smtp_address_parse_path(buf, n, false, &a, &used),
			 SMTP_ADDRESS_TOO_LONG);
	assert_int_equal(used, 0);
	/* C07 A: a 600-octet local part. */
	n = make_path(buf, sizeof buf, 600, 600 + 1 + 11);
	assert_int_equal(smtp_address_parse_path(buf, n, false, &a, &used),
			 SMTP_ADDRESS_TOO_LONG);
	/* No '>' at all, long: too long, not syntax, and no read past n. */
	memset(buf, 'a', sizeof buf);
	buf[0] = '<';
	assert_int_equal(smtp_address_parse_path(buf, 1000, false, &a, &used),
			 SMTP_ADDRESS_TOO_LONG);
	/* Exactly SMTP_PATH_MAX octets and no '>': syntax (truncated). */
	assert_int_equal(smtp_address_parse_path(buf, SMTP_PATH_MAX + 1, false,
						 &a, &used),
			 SMTP_ADDRESS_SYNTAX);
	/* A 250-byte quoted local part (decoded limit is 256). */
	n = 0;
	buf[n++] = '<';
	buf[n++] = '"';
	memset(buf + n, 'q', 250);
	n += 250;
	memcpy(buf + n, "\"@b>", 4);
	n += 4;
	assert_int_equal(smtp_address_parse_path(buf, n, false, &a, &used),
			 SMTP_ADDRESS_OK);
	assert_int_equal(strlen(a.local), 250);
}

struct label_case {
	size_t label;
	bool ok;
};

static void
test_label_length(void **state)
{
	static const struct label_case cases[] = {
		{1, true}, {63, true}, {64, false}};
	char buf[300];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = 0;
		buf[n++] = '<';
		buf[n++] = 'x';
		buf[n++] = '@';
		memset(buf + n, 'l', cases[i].label);
		n += cases[i].label;
		memcpy(buf + n, ".example>", 9);
		n += 9;
		struct smtp_address a;
		size_t used;
		enum smtp_address_error e =
			smtp_address_parse_path(buf, n, false, &a, &used);
		if ((e == SMTP_ADDRESS_OK) != cases[i].ok)
			print_error("label %zu: got %s want %s\n",
				    cases[i].label, err_name(e),
				    cases[i].ok ? "OK" : "SYNTAX");
		assert_int_equal(e == SMTP_ADDRESS_OK, cases[i].ok);
	}
}

struct format_case {
	const char *local;
	const char *domain;
	unsigned flags;
	const char *want; /* NULL: -1 */
};

/* clang-format off */
static const struct format_case format_cases[] = {
	{"a", "b.example", 0, "a@b.example"},
	{"odd user", "example.net", 0, "\"odd user\"@example.net"},
	{"a@b", "example.net", 0, "\"a@b\"@example.net"},
	{"foo..bar", "example.net", 0, "\"foo..bar\"@example.net"},
	{"back\\slash\"quote", "example.net", 0,
	 "\"back\\\\slash\\\"quote\"@example.net"},
	{"x> NOTIFY=SUCCESS", "example.net", 0,
	 "\"x> NOTIFY=SUCCESS\"@example.net"},
	{"plain", "example.net", 0, "plain@example.net"},
	{".a", "x", 0, "\".a\"@x"},
	{"a.", "x", 0, "\"a.\"@x"},
	{"", "x", 0, "\"\"@x"},
	{"a,b", "x", 0, "\"a,b\"@x"},
	{"a.b-c+d", "x", 0, "a.b-c+d@x"},
	{"j\xc3\xb6rg", "example.net", F_UTF8, "j\xc3\xb6rg@example.net"},
	{"", "", F_NULL, ""},
	{"postmaster", "", F_PM, "postmaster"},
	{"Postmaster", "", F_PM, "Postmaster"},
	{"a\x01", "x", 0, NULL},
	{"a\x7f", "x", 0, NULL},
	{"a\tb", "x", 0, NULL},
};
/* clang-format on */

static void
test_format_table(void **state)
{
	char out[600];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0];
	     i++) {
		const struct format_case *c = &format_cases[i];
		struct smtp_address a;
		memset(&a, 0, sizeof a);
		snprintf(a.local, sizeof a.local, "%s", c->local);
		snprintf(a.domain, sizeof a.domain, "%s", c->domain);
		a.is_null = c->flags & F_NULL;
		a.is_postmaster = c->flags & F_PM;
		a.utf8 = c->flags & F_UTF8;
		int n = smtp_address_format(&a, out, sizeof out);
		bool ok = c->want == NULL ? n == -1
					  : n == (int)strlen(c->want) &&
						    strcmp(out, c->want) == 0;
		if (ok)
			continue;
		failed++;
		print_error("row %zu: got %d \"%s\" want \"%s\"\n", i, n,
			    n >= 0 ? out : "(-1)",
			    c->want != NULL ? c->want : "(-1)");
	}
	assert_int_equal(failed, 0);
}

static void
test_format_bounds(void **state)
{
	struct smtp_address a;
	char out[16];

	(void)state;
	memset(&a, 0, sizeof a);
	snprintf(a.local, sizeof a.local, "abc");
	snprintf(a.domain, sizeof a.domain, "example"); /* 11 with "@" */
	assert_int_equal(smtp_address_format(&a, out, 12), 11);
	assert_string_equal(out, "abc@example");
	memset(out, 'Z', sizeof out);
	assert_int_equal(smtp_address_format(&a, out, 11), -1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(out[11], 'Z'); /* nothing written past outlen */
	assert_int_equal(smtp_address_format(&a, out, 0), -1);
	a.is_null = true;
	assert_int_equal(smtp_address_format(&a, out, 1), 0);
	assert_string_equal(out, "");
}

/* Every path that parses formats to a path that parses to the same. */
static void
test_round_trip(void **state)
{
	char wire[600], path[600];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0];
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		struct smtp_address a, b;
		size_t used;
		if (c->want != SMTP_ADDRESS_OK)
			continue;
		if (smtp_address_parse_path(c->in, c->len, true, &a, &used) !=
		    SMTP_ADDRESS_OK)
			continue;
		int n = smtp_address_format(&a, wire, sizeof wire);
		assert_true(n >= 0);
		int m = snprintf(path, sizeof path, "<%s>", wire);
		enum smtp_address_error e = smtp_address_parse_path(
			path, (size_t)m, true, &b, &used);
		if (e == SMTP_ADDRESS_OK && strcmp(a.local, b.local) == 0 &&
		    strcmp(a.domain, b.domain) == 0 && a.is_null == b.is_null &&
		    a.is_postmaster == b.is_postmaster && used == (size_t)m)
			continue;
		failed++;
		print_error(
			"row %zu: formatted \"%s\" reparsed %s local=\"%s\" "
			"want local=\"%s\"\n",
			i, wire, err_name(e), b.local, a.local);
	}
	assert_int_equal(failed, 0);
}

struct domain_case {
	const char *in;
	size_t len;
	bool ok;
};

/* clang-format off */
static const struct domain_case domain_cases[] = {
	{S("example.com"), true},
	{S("EXAMPLE.COM"), true},
	{S("a"), true},
	{S("a-b.c"), true},
	{S("123.example"), true},
	{S("\xc3\xa9xample.net"), true},
	{S("[192.0.2.1]"), true},
	{S("[IPv6:::1]"), true},
	{S("[IPv6:2001:db8:0:0:0:0:0:1]"), true},
	{S(""), false},
	{S("."), false},
	{S("example.com."), false},
	{S("a..b"), false},
	{S("-a.b"), false},
	{S("a-.b"), false},
	{S("a b"), false},
	{S("a_b"), false},
	{S("a\0b"), false},
	{S("\xc3"), false},
	{S("[192.0.2.1"), false},
	{S("192.0.2.1]"), false},
	{S("[192.0.2.256]"), false},
	{S("[IPv6:1.2.3.4]"), false},
	{S("[IPv6:]"), false},
	{S("[1.2.3.4\0]"), false},
	{S("[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]"),
	 false},
};
/* clang-format on */

static void
test_domain_table(void **state)
{
	char g[300];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof domain_cases / sizeof domain_cases[0];
	     i++) {
		const struct domain_case *c = &domain_cases[i];
		bool got = smtp_domain_valid(c->in, c->len);
		if (got == c->ok)
			continue;
		failed++;
		print_error("row %zu \"%s\": got %d want %d\n", i,
			    show(g, sizeof g, c->in, c->len), got, c->ok);
	}
	/* 255 octets in all is the limit. */
	char d[300];
	memset(d, 'a', sizeof d);
	for (size_t k = 63; k < sizeof d; k += 64)
		d[k] = '.';
	assert_true(smtp_domain_valid(d, 255));
	assert_false(smtp_domain_valid(d, 256));
	assert_false(smtp_domain_valid(NULL, 0));
	assert_int_equal(failed, 0);
}

/* clang-format off */
static const struct domain_case utf8_cases[] = {
	{S(""), true},
	{S("ascii"), true},
	{S("\xc3\xb6"), true},
	{S("\xe2\x82\xac"), true},
	{S("\xf0\x9f\x98\x80"), true},
	{S("\xf4\x8f\xbf\xbf"), true},	/* U+10FFFF */
	{S("\xc0\x80"), false},		/* overlong NUL */
	{S("\xc1\xbf"), false},
	{S("\xe0\x80\x80"), false},
	{S("\xe0\x9f\xbf"), false},	/* overlong U+07FF */
	{S("\xf0\x8f\xbf\xbf"), false},	/* overlong U+FFFF */
	{S("\xed\xa0\x80"), false},	/* surrogate */
	{S("\xed\xbf\xbf"), false},
	{S("\xf4\x90\x80\x80"), false},	/* > U+10FFFF */
	{S("\xf5\x80\x80\x80"), false},
	{S("\xe2\x82"), false},		/* truncated */
	{S("\x80"), false},
	{S("a\xc3"), false},
	{S("\xc3\x28"), false},
};
/* clang-format on */

static void
test_utf8_table(void **state)
{
	char g[100];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
		const struct domain_case *c = &utf8_cases[i];
		bool got = smtp_utf8_valid(c->in, c->len);
		if (got == c->ok)
			continue;
		failed++;
		print_error("row %zu \"%s\": got %d want %d\n", i,
			    show(g, sizeof g, c->in, c->len), got, c->ok);
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_path_length),
		cmocka_unit_test(test_label_length),
		cmocka_unit_test(test_format_table),
		cmocka_unit_test(test_format_bounds),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_domain_table),
		cmocka_unit_test(test_utf8_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
