/*
 * reply_test: the client's reply reader, table-driven (RFC 5321 4.2,
 * RFC 2034; cases C25 multi-line replies, C26 replies split over packets
 * and bare-LF replies).  Each stream is read whole, one byte at a time and
 * in pseudo-random pieces; the replies seen ("code|enhanced|text" each,
 * then "BAD" or "+n" for n bytes left waiting) must not depend on the split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1

struct seen {
	char text[16384];
	size_t len;
};

static void
seen_add(struct seen *s, const char *text)
{
	size_t n = strlen(text);

	assert_true(s->len + n < sizeof s->text);
	memcpy(s->text + s->len, text, n + 1);
	s->len += n;
}

static uint32_t
lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

static void
drive(const char *in, size_t len, size_t chunk, uint32_t seed, struct seen *out)
{
	static struct smtp_reply_reader r;
	static uint8_t buf[16384];
	static char esc[SMTP_REPLY_TEXT_MAX * 4 + 8];
	static char one[sizeof esc + 32];
	size_t blen = 0, pos = 0;
	bool bad = false;

	smtp_reply_reader_init(&r);
	out->len = 0;
	out->text[0] = '\0';
	while (pos < len && !bad) {
		size_t n = chunk != 0 ? chunk : 1 + lcg(&seed) % 13;
		if (n > len - pos)
			n = len - pos;
		assert_true(blen + n <= sizeof buf);
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			size_t used;
			enum smtp_reply_status st =
				smtp_reply_next(&r, buf, blen, &used);
			assert_true(used <= blen);
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (st == SMTP_REPLY_BAD) {
				seen_add(out, "BAD");
				bad = true;
				break;
			}
			if (st == SMTP_REPLY_NEED_MORE)
				break;
			assert_int_equal(strlen(r.text), r.text_len);
			log_escape(esc, sizeof esc, r.text, r.text_len);
			snprintf(one, sizeof one, "%d|%s|%s;", r.code,
				 r.enhanced, esc);
			seen_add(out, one);
		}
	}
	if (!bad && blen > 0) {
		char tail[32];
		snprintf(tail, sizeof tail, "+%zu", blen);
		seen_add(out, tail);
	}
}

struct reply_case {
	const char *in;
	size_t len;
	const char *want;
};

/* clang-format off */
static const struct reply_case reply_cases[] = {
	{S("220 smarthost.example.net ESMTP\r\n"),
	 "220||smarthost.example.net ESMTP;"},
	{S("250 2.1.0 ok\r\n"), "250|2.1.0|2.1.0 ok;"},
	{S("250\r\n"), "250||;"},
	{S("250 \r\n"), "250||;"},
	/* C25: multi-line replies are one reply each. */
	{S("220-smarthost.example.net ESMTP\r\n220-second greeting line\r\n"
	   "220 ready\r\n"),
	 "220||smarthost.example.net ESMTP\\x0asecond greeting line\\x0aready;"},
	{S("250-2.1.5 first line\r\n250 2.1.5 recipient ok\r\n"),
	 "250|2.1.5|2.1.5 first line\\x0a2.1.5 recipient ok;"},
	{S("250-2.0.0 queued\r\n250 2.0.0 as X1\r\n"),
	 "250|2.0.0|2.0.0 queued\\x0a2.0.0 as X1;"},
	{S("250-x\r\n250\r\n"), "250||x\\x0a;"},
	/* C25 V: the codes of one reply must agree. */
	{S("220-hello\r\n554 5.7.1 no service for you\r\n"), "BAD"},
	/* Pipelined replies (C26), and the rest kept. */
	{S("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
	 "250|2.1.0|2.1.0 ok;250|2.1.5|2.1.5 ok;354||go;"},
	{S("250 2.1.0 ok\r\n25"), "250|2.1.0|2.1.0 ok;+2"},
	{S("250-a\r\n250-b"), "+5"},
	{S("250 ok"), "+6"},
	/* C26 W: bare LF line ends. */
	{S("220 smarthost ESMTP\n250-smarthost\n250-PIPELINING\n250 SIZE 1\n"),
	 "220||smarthost ESMTP;250||smarthost\\x0aPIPELINING\\x0aSIZE 1;"},
	/* Enhanced codes: the class must match, digits bounded. */
	{S("550 5.1.1 user unknown\r\n"), "550|5.1.1|5.1.1 user unknown;"},
	{S("550 4.1.1 odd\r\n"), "550||4.1.1 odd;"},
	{S("550 5.1.1234 x\r\n"), "550||5.1.1234 x;"},
	{S("550 5.123.123\r\n"), "550|5.123.123|5.123.123;"},
	{S("550 5.1.1x\r\n"), "550||5.1.1x;"},
	{S("550 5.1\r\n"), "550||5.1;"},
	{S("450-first line\r\n450 4.2.0 second\r\n"),
	 "450|4.2.0|first line\\x0a4.2.0 second;"},
	/* Malformed. */
	{S("25 ok\r\n"), "BAD"},
	{S("2500 ok\r\n"), "BAD"},
	{S("150 ok\r\n"), "BAD"},
	{S("650 ok\r\n"), "BAD"},
	{S("abc ok\r\n"), "BAD"},
	{S("250_ok\r\n"), "BAD"},
	{S("\r\n"), "BAD"},
	{S("250 ok\r\nHTTP/1.1 400\r\n"), "250||ok;BAD"},
	{S("250 a\0b\r\n"), "250||a?b;"},
};
/* clang-format on */

static void
test_reply_table(void **state)
{
	static const size_t chunks[] = {4096, 1, 2, 3};
	static struct seen got;
	static char in[2048];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0];
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		for (size_t k = 0; k < 4 + 20; k++) {
			size_t chunk = k < 4 ? chunks[k] : 0;
			drive(c->in, c->len, chunk, (uint32_t)k, &got);
			if (strcmp(got.text, c->want) == 0)
				continue;
			failed++;
			print_error(
				"row %zu \"%s\" chunk=%zu seed=%zu\n  got  %s\n"
				"  want %s\n",
				i, log_escape(in, sizeof in, c->in, c->len),
				chunk, k, got.text, c->want);
		}
	}
	assert_int_equal(failed, 0);
}

/* Lines and text are bounded. */
static void
test_reply_bounds(void **state)
{
	static uint8_t buf[3 * SMTP_REPLY_TEXT_MAX];
	static struct smtp_reply_reader r;
	size_t used, n;

	(void)state;
	/* A line of exactly SMTP_REPLY_LINE_MAX octets is fine. */
	memset(buf, 'x', SMTP_REPLY_LINE_MAX);
	memcpy(buf, "250 ", 4);
	memcpy(buf + SMTP_REPLY_LINE_MAX, "\r\n", 2);
	smtp_reply_reader_init(&r);
	assert_int_equal(
		smtp_reply_next(&r, buf, SMTP_REPLY_LINE_MAX + 2, &used),
		SMTP_REPLY_DONE);
	assert_int_equal(used, SMTP_REPLY_LINE_MAX + 2);
	/* One more octet is not, with or without its LF yet. */
	memset(buf, 'x', SMTP_REPLY_LINE_MAX + 1);
	memcpy(buf, "250 ", 4);
	smtp_reply_reader_init(&r);
	assert_int_equal(
		smtp_reply_next(&r, buf, SMTP_REPLY_LINE_MAX + 1, &used),
		SMTP_REPLY_BAD);
	memcpy(buf + SMTP_REPLY_LINE_MAX + 1, "\r\n", 2);
	smtp_reply_reader_init(&r);
	assert_int_equal(
		smtp_reply_next(&r, buf, SMTP_REPLY_LINE_MAX + 3, &used),
		SMTP_REPLY_BAD);
	/* "max octets + CR" may still be a good line. */
	memset(buf, 'x', SMTP_REPLY_LINE_MAX);
	memcpy(buf, "250 ", 4);
	buf[SMTP_REPLY_LINE_MAX] = '\r';
	smtp_reply_reader_init(&r);
	assert_int_equal(
		smtp_reply_next(&r, buf, SMTP_REPLY_LINE_MAX + 1, &used),
		SMTP_REPLY_NEED_MORE);
	/* Many continuation lines: the text is cut, the reply still read. */
	n = 0;
	for (int k = 0; k < 300; k++) {
		memcpy(buf + n, "250-abcdefghijklmnopqrstuvwxyz\r\n", 32);
		n += 32;
	}
	memcpy(buf + n, "250 2.0.0 end\r\n", 15);
	n += 15;
	smtp_reply_reader_init(&r);
	assert_int_equal(smtp_reply_next(&r, buf, n, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, n);
	assert_int_equal(r.nlines, 301);
	assert_true(r.truncated);
	assert_int_equal(r.text_len, SMTP_REPLY_TEXT_MAX);
	assert_int_equal(strlen(r.text), SMTP_REPLY_TEXT_MAX);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "2.0.0");
	/* The next reply starts clean. */
	assert_int_equal(
		smtp_reply_next(&r, (const uint8_t *)"221 bye\r\n", 9, &used),
		SMTP_REPLY_DONE);
	assert_false(r.truncated);
	assert_string_equal(r.text, "bye");
	assert_int_equal(r.nlines, 1);
}

struct ehlo_case {
	const char *keyword;
	bool has;
	const char *param;
};

static void
test_ehlo_has(void **state)
{
	static const char reply[] =
		"250-smarthost.example.net STARTTLS-LIKE NAME\r\n"
		"250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n"
		"250-auth PLAIN LOGIN\r\n250-STARTTLSX\r\n250 starttls\r\n";
	/* clang-format off */
	static const struct ehlo_case cases[] = {
		{"STARTTLS", true, ""},	/* found on the last line (C25) */
		{"PIPELINING", true, ""},
		{"SIZE", true, "10485760"},
		{"8BITMIME", true, ""},
		{"AUTH", true, "PLAIN LOGIN"},
		{"SMTPUTF8", false, NULL},
		{"SIZ", false, NULL},
		{"smarthost.example.net", false, NULL},	/* first line skipped */
		{"DSN", false, NULL},
	};
	/* clang-format on */
	struct smtp_reply_reader r;
	size_t used;
	int failed = 0;

	(void)state;
	smtp_reply_reader_init(&r);
	assert_int_equal(smtp_reply_next(&r, (const uint8_t *)reply,
					 sizeof reply - 1, &used),
			 SMTP_REPLY_DONE);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = NULL;
		size_t plen = 0;
		bool has = smtp_reply_ehlo_has(&r, cases[i].keyword, &p, &plen);
		bool ok = has == cases[i].has;
		if (ok && has)
			ok = plen == strlen(cases[i].param) &&
			     memcmp(p, cases[i].param, plen) == 0;
		if (ok)
			continue;
		failed++;
		print_error("%s: got %d \"%.*s\" want %d \"%s\"\n",
			    cases[i].keyword, has, (int)plen,
			    p != NULL ? p : "", cases[i].has,
			    cases[i].param ? cases[i].param : "");
	}
	assert_true(smtp_reply_ehlo_has(&r, "size", NULL, NULL));
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_bounds),
		cmocka_unit_test(test_ehlo_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
