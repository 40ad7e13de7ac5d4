/*
 * line_test: the command line reader, driven as a session would drive it
 * (a bounded buffer, input arriving in pieces of every size), table-driven.
 * Each input's events ("L[text]" per line, "T" per overlong line, "R<n>"
 * for bytes left waiting) must be the same whatever the split (case C07).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/line.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1
#define EVENTS_MAX 8192

struct events {
	char text[EVENTS_MAX];
	size_t len;
};

static void
ev_add(struct events *ev, const char *s, size_t n)
{
	assert_true(ev->len + n < sizeof ev->text);
	memcpy(ev->text + ev->len, s, n);
	ev->len += n;
	ev->text[ev->len] = '\0';
}

static void
ev_line(struct events *ev, const uint8_t *line, size_t n)
{
	char esc[4096];

	ev_add(ev, "L[", 2);
	log_escape(esc, sizeof esc, line, n);
	ev_add(ev, esc, strlen(esc));
	ev_add(ev, "]", 1);
}

/* Next split size: a fixed chunk, or pseudo-random when chunk == 0. */
static size_t
next_chunk(size_t chunk, uint32_t *seed)
{
	if (chunk != 0)
		return chunk;
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % 17;
}

/*
 * Feed in[0..len) through a buffer of bufcap bytes, chunk bytes at a time,
 * running the documented caller loop; record the events.
 */
static void
drive(const char *in, size_t len, size_t max, size_t bufcap, size_t chunk,
      uint32_t seed, struct events *ev)
{
	struct smtp_line_reader r = {max, false};
	uint8_t buf[8192];
	size_t blen = 0, pos = 0;

	assert_true(bufcap <= sizeof buf);
	ev->len = 0;
	ev->text[0] = '\0';
	while (pos < len) {
		size_t n = next_chunk(chunk, &seed);
		if (n > len - pos)
			n = len - pos;
		if (n > bufcap - blen)
			n = bufcap - blen;
		/* A full buffer with no progress would be a reader bug. */
		assert_true(n > 0);
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			size_t used, linelen;
			enum smtp_line_status st =
				smtp_line_next(&r, buf, blen, &used, &linelen);
			assert_true(used <= blen);
			if (st == SMTP_LINE_OK)
				ev_line(ev, buf, linelen);
			else if (st == SMTP_LINE_TOO_LONG)
				ev_add(ev, "T", 1);
			else
				assert_true(used == 0 || r.discarding ||
					    buf[used - 1] == '\n');
			if (st != SMTP_LINE_NEED_MORE)
				assert_true(used > 0);
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (used == 0 || blen == 0)
				break;
		}
	}
	if (blen > 0) {
		char tail[32];
		int k = snprintf(tail, sizeof tail, "R%zu", blen);
		ev_add(ev, tail, (size_t)k);
	}
}

struct line_case {
	const char *in;
	size_t len;
	size_t max;
	const char *want;
};

/* clang-format off */
static const struct line_case line_cases[] = {
	{S("QUIT\r\n"), 0, "L[QUIT]"},
	{S("QUIT\n"), 0, "L[QUIT]"},
	{S("A\r\nB\r\n"), 0, "L[A]L[B]"},
	{S("\r\n"), 0, "L[]"},
	{S("\n\n"), 0, "L[]L[]"},
	{S("a\0b\r\n"), 0, "L[a\\x00b]"},
	{S("abc\r\r\n"), 0, "L[abc\\x0d]"},
	{S("a\rb\r\n"), 0, "L[a\\x0db]"},
	{S("abc"), 0, "R3"},
	{S("abc\r"), 0, "R4"},
	{S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"), 0,
	 "L[EHLO x]L[MAIL FROM:<a@b>]L[RCPT TO:<c@d>]L[DATA]"},
	/* Bound 10: ten octets are fine, eleven are not. */
	{S("0123456789\r\n"), 10, "L[0123456789]"},
	{S("0123456789\n"), 10, "L[0123456789]"},
	{S("0123456789A\r\n"), 10, "T"},
	{S("0123456789A\n"), 10, "T"},
	{S("0123456789\rX\r\n"), 10, "T"},
	{S("0123456789\r\r\n"), 10, "T"},
	{S("0123456789ABCDEF\r\nQUIT\r\n"), 10, "TL[QUIT]"},
	{S("0123456789ABCDEF\r\nQUIT"), 10, "TR4"},
	{S("0123456789ABCDEF"), 10, "T"},
	{S("0123456789ABCDEF\r"), 10, "T"},
	/* C07 B: the tail of an overlong line is never a command. */
	{S("RCPT TO:<aaaaa>RCPT TO:<spy@x>\r\nNOOP\r\n"), 10, "TL[NOOP]"},
	{S("RCPT TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	   "aaaaaaaaaaaaaaaaaaaaaa>RCPT TO:<spy@x>\r\nNOOP\r\n"),
	 10, "TL[NOOP]"},
	{S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nOK\nxxxxxxxxxx"
	   "xxxxxx\r\n\r\n"),
	 10, "TL[OK]TL[]"},
};
/* clang-format on */

static void
check_case(const struct line_case *c, size_t i, size_t bufcap, size_t chunk,
	   uint32_t seed, int *failed)
{
	struct events ev;
	char in[600];
	size_t max = c->max != 0 ? c->max : SMTP_LINE_MAX;

	if (bufcap < max + 2)
		bufcap = max + 2;
	drive(c->in, c->len, c->max, bufcap, chunk, seed, &ev);
	if (strcmp(ev.text, c->want) == 0)
		return;
	(*failed)++;
	print_error("row %zu \"%s\" bufcap=%zu chunk=%zu seed=%u\n  got  %s\n"
		    "  want %s\n",
		    i, log_escape(in, sizeof in, c->in, c->len), bufcap, chunk,
		    seed, ev.text, c->want);
}

static void
test_line_table_splits(void **state)
{
	static const size_t chunks[] = {1, 2, 3, 5, 7, 11, 4096};
	static const size_t bufcaps[] = {0, 13, 64, 8192};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof line_cases / sizeof line_cases[0]; i++) {
		for (size_t b = 0; b < sizeof bufcaps / sizeof bufcaps[0];
		     b++) {
			for (size_t k = 0; k < sizeof chunks / sizeof chunks[0];
			     k++)
				check_case(&line_cases[i], i, bufcaps[b],
					   chunks[k], 0, &failed);
			for (uint32_t seed = 1; seed <= 20; seed++)
				check_case(&line_cases[i], i, bufcaps[b], 0,
					   seed, &failed);
		}
	}
	assert_int_equal(failed, 0);
}

/* The default bound: SMTP_LINE_MAX octets plus CR LF is one line. */
static void
test_default_bound(void **state)
{
	static char in[SMTP_LINE_MAX + 64];
	struct events ev;
	char want[16];

	(void)state;
	memset(in, 'a', sizeof in);
	memcpy(in + SMTP_LINE_MAX, "\r\nQUIT\r\n", 8);
	drive(in, SMTP_LINE_MAX + 8, 0, SMTP_LINE_MAX + 2, 4096, 0, &ev);
	assert_int_equal(ev.len, 2 + SMTP_LINE_MAX * 1 + 1 + 7);
	assert_memory_equal(ev.text + 2 + SMTP_LINE_MAX, "]L[QUIT]", 8);

	memset(in, 'a', sizeof in);
	memcpy(in + SMTP_LINE_MAX + 1, "\r\nQUIT\r\n", 8);
	drive(in, SMTP_LINE_MAX + 9, 0, SMTP_LINE_MAX + 2, 1, 0, &ev);
	snprintf(want, sizeof want, "TL[QUIT]");
	assert_string_equal(ev.text, want);
}

/* C07 C: megabytes without LF; one report, nothing kept. */
static void
test_endless_line(void **state)
{
	struct smtp_line_reader r = {0, false};
	static uint8_t chunk[65536];
	size_t used, linelen, reports = 0;

	(void)state;
	memset(chunk, 'A', sizeof chunk);
	for (int k = 0; k < 256; k++) { /* 16 MiB */
		size_t off = 0;
		while (off < sizeof chunk) {
			size_t n = sizeof chunk - off;
			if (n > SMTP_LINE_MAX + 2)
				n = SMTP_LINE_MAX + 2;
			enum smtp_line_status st = smtp_line_next(
				&r, chunk + off, n, &used, &linelen);
			assert_int_not_equal(st, SMTP_LINE_OK);
			if (st == SMTP_LINE_TOO_LONG)
				reports++;
			assert_true(used > 0);
			off += used;
		}
	}
	assert_int_equal(reports, 1);
	assert_true(r.discarding);
	assert_int_equal(smtp_line_next(&r, (const uint8_t *)"x\nQUIT\n", 7,
					&used, &linelen),
			 SMTP_LINE_NEED_MORE);
	assert_int_equal(used, 2);
	assert_false(r.discarding);
	assert_int_equal(smtp_line_next(&r, (const uint8_t *)"QUIT\n", 5, &used,
					&linelen),
			 SMTP_LINE_OK);
	assert_int_equal(linelen, 4);
	assert_int_equal(smtp_line_next(&r, NULL, 0, &used, &linelen),
			 SMTP_LINE_NEED_MORE);
	assert_int_equal(used, 0);
}

/* A huge bound must not wrap around when the CR LF is added to it. */
static void
test_huge_bound(void **state)
{
	struct smtp_line_reader r = {SIZE_MAX, false};
	size_t used, linelen;

	(void)state;
	assert_int_equal(
		smtp_line_next(&r, (const uint8_t *)"abc", 3, &used, &linelen),
		SMTP_LINE_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(smtp_line_next(&r, (const uint8_t *)"abc\r\nx", 6,
					&used, &linelen),
			 SMTP_LINE_OK);
	assert_int_equal(linelen, 3);
	assert_int_equal(used, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_table_splits),
		cmocka_unit_test(test_default_bound),
		cmocka_unit_test(test_endless_line),
		cmocka_unit_test(test_huge_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
