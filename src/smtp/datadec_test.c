/*
 * datadec_test: the DATA decoder, table-driven (cases C03, C04, C08, C09,
 * RFC 5321 4.1.1.4 and 4.5.2, RFC 3030 for raw mode).  Every row is run
 * one-shot, one byte at a time, two at a time, in pseudo-random pieces,
 * and with tiny output buffers; all runs must give the same output, faults
 * and end.  A differential test then checks random inputs against a
 * simple whole-buffer model of the rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/datadec.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1
#define LF_ SMTP_DATA_FAULT_BARE_LF
#define CR_ SMTP_DATA_FAULT_BARE_CR
#define NUL_ SMTP_DATA_FAULT_NUL
#define LONG_ SMTP_DATA_FAULT_LONG_LINE
#define CANARY 0xa5
#define OUT_MAX 8192

struct result {
	uint8_t out[OUT_MAX];
	size_t outlen;
	size_t consumed;
	unsigned faults;
	bool done;
	bool eight_bit;
	uint64_t size;
};

static uint32_t
lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/*
 * Decode in[0..len): input in pieces of `chunk` bytes (0: random 1..16),
 * output space of `outcap` bytes per call (0: random 2..9), as a session
 * would; the decoder must never write past the space it is given.
 */
static void
decode(const uint8_t *in, size_t len, bool raw, size_t long_max, size_t chunk,
       size_t outcap, uint32_t seed, struct result *r)
{
	struct smtp_datadec dec;
	uint8_t out[64 + 16];
	size_t pos = 0;

	smtp_datadec_init(&dec, raw);
	if (long_max != 0)
		dec.long_line_max = long_max;
	memset(r, 0, sizeof *r);
	while (pos < len && !dec.done) {
		size_t n = chunk != 0 ? chunk : 1 + lcg(&seed) % 16;
		size_t cap = outcap != 0 ? outcap : 2 + lcg(&seed) % 8;
		size_t got;
		if (n > len - pos)
			n = len - pos;
		if (cap > 64)
			cap = 64;
		/* Resubmit the unconsumed rest of this piece until taken. */
		size_t piece_end = pos + n;
		while (pos < piece_end && !dec.done) {
			memset(out, CANARY, sizeof out);
			size_t used = smtp_datadec_feed(&dec, in + pos,
							piece_end - pos, out,
							cap, &got);
			assert_true(used <= piece_end - pos);
			assert_true(got <= cap);
			for (size_t k = cap; k < sizeof out; k++)
				assert_int_equal(out[k], CANARY);
			assert_true(used > 0 || got > 0 || dec.done);
			assert_true(r->outlen + got <= sizeof r->out);
			memcpy(r->out + r->outlen, out, got);
			r->outlen += got;
			pos += used;
		}
	}
	if (raw)
		smtp_datadec_finish(&dec);
	r->consumed = pos;
	r->faults = dec.faults;
	r->done = dec.done;
	r->eight_bit = dec.eight_bit;
	r->size = dec.size;
	/* Feeding after the end does nothing. */
	if (dec.done) {
		size_t got = 99;
		assert_int_equal(smtp_datadec_feed(&dec,
						   (const uint8_t *)"x\r\n", 3,
						   out, sizeof out, &got),
				 0);
		assert_int_equal(got, 0);
	}
}

struct dd_case {
	const char *in;
	size_t len;
	bool raw;
	size_t long_max; /* 0: default */
	const char *out;
	size_t outlen;
	unsigned faults;
	bool done;
	size_t consumed; /* (size_t)-1: all of it */
	bool eight_bit;
};

#define ALL ((size_t)-1)

/* clang-format off */
static const struct dd_case dd_cases[] = {
	{S("Subject: x\r\n\r\nbody\r\n.\r\n"), false, 0,
	 S("Subject: x\r\n\r\nbody\r\n"), 0, true, ALL, false},
	{S(".\r\n"), false, 0, S(""), 0, true, ALL, false},
	{S("\r\n.\r\n"), false, 0, S("\r\n"), 0, true, ALL, false},
	{S("..\r\n.\r\n"), false, 0, S(".\r\n"), 0, true, ALL, false},
	{S(".x\r\n.\r\n"), false, 0, S("x\r\n"), 0, true, ALL, false},
	{S("a\r\n..\r\n.\r\n"), false, 0, S("a\r\n.\r\n"), 0, true, ALL, false},
	{S("a\r\n. \r\n.\r\n"), false, 0, S("a\r\n \r\n"), 0, true, ALL, false},
	{S("a.\r\n.b\r\n.\r\n"), false, 0, S("a.\r\nb\r\n"), 0, true, ALL,
	 false},
	/* C04: stuffed dots come out unstuffed, once. */
	{S("Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n"), false,
	 0, S("Subject: dots\r\n\r\n.leading dot\r\n..\r\nend\r\n"), 0, true,
	 ALL, false},
	/* Bytes after the terminator are not ours (pipelined QUIT). */
	{S("a\r\n.\r\nQUIT\r\n"), false, 0, S("a\r\n"), 0, true, 6, false},
	{S(".\r\n.\r\n"), false, 0, S(""), 0, true, 3, false},
	/* C03: only CR LF . CR LF ends the data. */
	{S("From: s@example.org\r\n\r\nfirst body\n.\r\nMAIL FROM:<ceo@example.org>"
	   "\r\nDATA\r\nSubject: two\r\n\r\nsmuggled\r\n.\r\n"),
	 false, 0,
	 S("From: s@example.org\r\n\r\nfirst body\r\n.\r\nMAIL FROM:<ceo@example"
	   ".org>\r\nDATA\r\nSubject: two\r\n\r\nsmuggled\r\n"),
	 LF_, true, ALL, false},
	{S("x\r\n\r\nfirst body\n.\nMAIL FROM:<ceo@example.org>\r\n\r\nsmuggled"
	   "\r\n.\r\n"),
	 false, 0,
	 S("x\r\n\r\nfirst body\r\n.\r\nMAIL FROM:<ceo@example.org>\r\n\r\nsmu"
	   "ggled\r\n"),
	 LF_, true, ALL, false},
	{S("x\r\n\r\nfirst body\r\n.\nMAIL FROM:<ceo@example.org>\r\n\r\nsmuggl"
	   "ed\r\n.\r\n"),
	 false, 0,
	 S("x\r\n\r\nfirst body\r\n.\r\nMAIL FROM:<ceo@example.org>\r\n\r\nsmu"
	   "ggled\r\n"),
	 LF_, true, ALL, false},
	{S("a\r.\r\nb\r\n.\r\n"), false, 0, S("a\r\n.\r\nb\r\n"), CR_, true,
	 ALL, false},
	{S("a\r\n.\rb\r\n.\r\n"), false, 0, S("a\r\n\r\nb\r\n"), CR_, true, ALL,
	 false},
	{S("a\r\n.\r\r\n.\r\n"), false, 0, S("a\r\n\r\n\r\n"), CR_, true, ALL,
	 false},
	{S(".\n.\r\n"), false, 0, S(".\r\n.\r\n"), LF_, false, ALL, false},
	{S("\n.\r\n"), false, 0, S("\r\n.\r\n"), LF_, false, ALL, false},
	{S("a\n.\n"), false, 0, S("a\r\n.\r\n"), LF_, false, ALL, false},
	{S("\r\r\n.\r\n"), false, 0, S("\r\n\r\n"), CR_, true, ALL, false},
	/* C04 "mixed": bare LF and CR are faults, written as CR LF. */
	{S("Subject: mixed\r\n\r\nline one\nline two\rline three\r\n.\r\n"),
	 false, 0,
	 S("Subject: mixed\r\n\r\nline one\r\nline two\r\nline three\r\n"),
	 LF_ | CR_, true, ALL, false},
	/* C09: NUL bytes are kept, and flagged. */
	{S("Subject: nul\r\n\r\nbefore\0after\r\nsecond line\r\n.\r\n"), false,
	 0, S("Subject: nul\r\n\r\nbefore\0after\r\nsecond line\r\n"), NUL_, true,
	 ALL, false},
	{S("\0\r\n.\r\n"), false, 0, S("\0\r\n"), NUL_, true, ALL, false},
	{S(".\0\r\n.\r\n"), false, 0, S("\0\r\n"), NUL_, true, ALL, false},
	/* C11: 8-bit bytes. */
	{S("Gr\xc3\xbc\xc3\x9f" "e\r\n.\r\n"), false, 0,
	 S("Gr\xc3\xbc\xc3\x9f" "e\r\n"), 0, true, ALL, true},
	{S("\xff\r\n.\r\n"), false, 0, S("\xff\r\n"), 0, true, ALL, true},
	/* Unfinished data: a pending CR or dot is not written yet. */
	{S("abc\r\n"), false, 0, S("abc\r\n"), 0, false, ALL, false},
	{S("abc"), false, 0, S("abc"), 0, false, ALL, false},
	{S("abc\r"), false, 0, S("abc"), 0, false, ALL, false},
	{S("abc\r\n."), false, 0, S("abc\r\n"), 0, false, ALL, false},
	{S("abc\r\n.\r"), false, 0, S("abc\r\n"), 0, false, ALL, false},
	{S(""), false, 0, S(""), 0, false, ALL, false},
	/* Line length (C08): the bound is on the decoded line. */
	{S("0123456789\r\n.\r\n"), false, 10, S("0123456789\r\n"), 0, true, ALL,
	 false},
	{S(".0123456789\r\n.\r\n"), false, 10, S("0123456789\r\n"), 0, true,
	 ALL, false},
	{S("0123456789A\r\n.\r\n"), false, 10, S("0123456789A\r\n"), LONG_,
	 true, ALL, false},
	{S("0123456789\n0123456789\r0123456789\r\n.\r\n"), false, 10,
	 S("0123456789\r\n0123456789\r\n0123456789\r\n"), LF_ | CR_, true, ALL,
	 false},
	/* Raw (BDAT): bytes as they are, faults recorded, no terminator. */
	{S("a\r\nb\r\n"), true, 0, S("a\r\nb\r\n"), 0, false, ALL, false},
	{S("a\r\n.\r\nb\r\n"), true, 0, S("a\r\n.\r\nb\r\n"), 0, false, ALL,
	 false},
	{S("..\r\n"), true, 0, S("..\r\n"), 0, false, ALL, false},
	{S("a\nb"), true, 0, S("a\nb"), LF_, false, ALL, false},
	{S("a\rb"), true, 0, S("a\rb"), CR_, false, ALL, false},
	{S("a\r"), true, 0, S("a\r"), CR_, false, ALL, false},
	{S("\r\r\n"), true, 0, S("\r\r\n"), CR_, false, ALL, false},
	{S("a\0b\r\n"), true, 0, S("a\0b\r\n"), NUL_, false, ALL, false},
	{S("\n"), true, 0, S("\n"), LF_, false, ALL, false},
	{S("\x80"), true, 0, S("\x80"), 0, false, ALL, true},
	{S("0123456789\r\n0123456789"), true, 10,
	 S("0123456789\r\n0123456789"), 0, false, ALL, false},
	{S("0123456789A\r\n"), true, 10, S("0123456789A\r\n"), LONG_, false, ALL,
	 false},
};
/* clang-format on */

static bool
same(const struct result *r, const struct dd_case *c, size_t consumed)
{
	return r->outlen == c->outlen &&
	       memcmp(r->out, c->out, c->outlen) == 0 &&
	       r->faults == c->faults && r->done == c->done &&
	       r->consumed == consumed && r->eight_bit == c->eight_bit &&
	       r->size == r->outlen;
}

static void
report(size_t i, const char *how, const struct result *r,
       const struct dd_case *c, size_t consumed)
{
	static char a[OUT_MAX * 4], b[OUT_MAX * 4];

	print_error("row %zu (%s) in=\"%s\"\n", i, how,
		    log_escape(a, sizeof a, c->in, c->len));
	print_error("  got  out=\"%s\" faults=%#x done=%d consumed=%zu 8bit=%d "
		    "size=%llu\n",
		    log_escape(a, sizeof a, r->out, r->outlen), r->faults,
		    r->done, r->consumed, r->eight_bit,
		    (unsigned long long)r->size);
	print_error(
		"  want out=\"%s\" faults=%#x done=%d consumed=%zu 8bit=%d\n",
		log_escape(b, sizeof b, c->out, c->outlen), c->faults, c->done,
		consumed, c->eight_bit);
}

static void
test_table_all_splits(void **state)
{
	static const size_t chunks[] = {4096, 1, 2, 3, 5};
	static const size_t outcaps[] = {4096, 2, 3};
	static struct result r;
	int failed = 0;
	char how[64];

	(void)state;
	for (size_t i = 0; i < sizeof dd_cases / sizeof dd_cases[0]; i++) {
		const struct dd_case *c = &dd_cases[i];
		size_t consumed = c->consumed == ALL ? c->len : c->consumed;
		for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
			for (size_t o = 0;
			     o < sizeof outcaps / sizeof outcaps[0]; o++) {
				decode((const uint8_t *)c->in, c->len, c->raw,
				       c->long_max, chunks[k], outcaps[o], 0,
				       &r);
				if (same(&r, c, consumed))
					continue;
				failed++;
				snprintf(how, sizeof how,
					 "chunk=%zu outcap=%zu", chunks[k],
					 outcaps[o]);
				report(i, how, &r, c, consumed);
			}
		}
		for (uint32_t seed = 1; seed <= 50; seed++) {
			decode((const uint8_t *)c->in, c->len, c->raw,
			       c->long_max, 0, 0, seed, &r);
			if (same(&r, c, consumed))
				continue;
			failed++;
			snprintf(how, sizeof how, "random seed=%u", seed);
			report(i, how, &r, c, consumed);
		}
	}
	assert_int_equal(failed, 0);
}

/* C08: 998, 1100 and 1500-octet lines pass intact with the default bound. */
static void
test_long_lines_kept(void **state)
{
	static uint8_t in[4096];
	static struct result r;
	size_t n = 0;
	static const size_t lens[] = {1100, 1500, 998};

	(void)state;
	for (size_t k = 0; k < 3; k++) {
		memset(in + n, 'x' + (int)k, lens[k]);
		n += lens[k];
		in[n++] = '\r';
		in[n++] = '\n';
	}
	memcpy(in + n, ".\r\n", 3);
	decode(in, n + 3, false, 0, 4096, 4096, 0, &r);
	assert_true(r.done);
	assert_int_equal(r.faults, 0);
	assert_int_equal(r.outlen, n);
	assert_memory_equal(r.out, in, n);
	decode(in, n + 3, false, 0, 7, 3, 0, &r);
	assert_int_equal(r.outlen, n);
	assert_memory_equal(r.out, in, n);
	/* The default bound is SMTP_DATA_LONG_LINE_MAX. */
	struct smtp_datadec dec;
	smtp_datadec_init(&dec, false);
	assert_int_equal(dec.long_line_max, SMTP_DATA_LONG_LINE_MAX);
	static uint8_t big[SMTP_DATA_LONG_LINE_MAX + 1], out[1024];
	size_t got, pos = 0;
	memset(big, 'y', sizeof big);
	while (pos < SMTP_DATA_LONG_LINE_MAX)
		pos += smtp_datadec_feed(&dec, big + pos,
					 SMTP_DATA_LONG_LINE_MAX - pos, out,
					 sizeof out, &got);
	assert_int_equal(dec.faults, 0);
	assert_int_equal(dec.line_len, SMTP_DATA_LONG_LINE_MAX);
	smtp_datadec_feed(&dec, big, 1, out, sizeof out, &got);
	assert_int_equal(dec.faults, SMTP_DATA_FAULT_LONG_LINE);
}

/*
 * The rules, written the simple way over a whole buffer: the data ends at
 * the first CR LF "." CR LF (the first CR LF may be the virtual one).
 * Returns the consumed length, or len when there is no end.
 */
static size_t
model_end(const uint8_t *in, size_t len, bool *done)
{
	*done = true;
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t k = 0; k + 5 <= len; k++)
		if (memcmp(in + k, "\r\n.\r\n", 5) == 0)
			return k + 5;
	*done = false;
	return len;
}

/* Faults in body[0..n): n excludes the terminator's ".\r\n". */
static unsigned
model_faults(const uint8_t *body, size_t n, bool done)
{
	unsigned f = 0;

	for (size_t k = 0; k < n; k++) {
		if (body[k] == '\0')
			f |= NUL_;
		if (body[k] == '\n' && (k == 0 || body[k - 1] != '\r'))
			f |= LF_;
		/* A CR at the very end of unfinished data is still pending. */
		if (body[k] == '\r' && k + 1 < n && body[k + 1] != '\n')
			f |= CR_;
		if (body[k] == '\r' && k + 1 == n && done)
			f |= CR_;
	}
	return f;
}

/* Fault-free decoding: lines split at CR LF, a leading dot removed. */
static size_t
model_output(const uint8_t *body, size_t n, bool done, uint8_t *out)
{
	size_t o = 0, k = 0;

	while (k < n) {
		const uint8_t *cr = NULL;
		for (size_t j = k; j + 1 < n; j++)
			if (body[j] == '\r' && body[j + 1] == '\n') {
				cr = body + j;
				break;
			}
		size_t end = cr != NULL ? (size_t)(cr - body) : n;
		size_t start = k;
		if (body[start] == '.' &&
		    (end > start + 1 || cr != NULL || done))
			start++;
		else if (body[start] == '.' && cr == NULL)
			start = end; /* a lone pending dot */
		size_t stop = end;
		if (cr == NULL && stop > start && body[stop - 1] == '\r')
			stop--; /* a pending CR */
		if (cr == NULL && !done && end == start + 1 && body[k] == '.' &&
		    body[end - 1] == '\r')
			stop = start;
		memcpy(out + o, body + start, stop - start);
		o += stop - start;
		if (cr == NULL)
			break;
		out[o++] = '\r';
		out[o++] = '\n';
		k = end + 2;
	}
	return o;
}

static void
test_random_against_model(void **state)
{
	static const uint8_t alphabet[] = {'a',	 '.',  '.',  '\r', '\r',
					   '\n', '\n', '\0', 0x80, ' '};
	static uint8_t in[48], want[256];
	static struct result one, split;
	uint32_t seed = 12345;
	int failed = 0;

	(void)state;
	for (int iter = 0; iter < 200000 && failed < 5; iter++) {
		size_t len = lcg(&seed) % sizeof in;
		for (size_t k = 0; k < len; k++)
			in[k] = alphabet[lcg(&seed) % sizeof alphabet];
		bool done;
		size_t end = model_end(in, len, &done);
		size_t body = done ? end - 3 : end;
		if (done && end == 3)
			body = 0;
		unsigned faults = model_faults(in, body, done);
		bool eight = memchr(in, 0x80, body) != NULL;

		decode(in, len, false, 0, 4096, 4096, 0, &one);
		decode(in, len, false, 0, 0, 0, seed, &split);
		bool ok = one.done == done && one.consumed == end &&
			  one.faults == faults && one.eight_bit == eight &&
			  split.done == one.done &&
			  split.consumed == one.consumed &&
			  split.faults == one.faults &&
			  split.outlen == one.outlen &&
			  memcmp(split.out, one.out, one.outlen) == 0;
		/* Output line ends are always CR LF. */
		for (size_t k = 0; k < one.outlen; k++) {
			if (one.out[k] == '\r' &&
			    (k + 1 == one.outlen || one.out[k + 1] != '\n'))
				ok = false;
			if (one.out[k] == '\n' &&
			    (k == 0 || one.out[k - 1] != '\r'))
				ok = false;
		}
		size_t wlen = 0;
		if (faults == 0 &&
		    !(!done && body > 0 && in[body - 1] == '\r')) {
			wlen = model_output(in, body, done, want);
			ok = ok && one.outlen == wlen &&
			     memcmp(one.out, want, wlen) == 0;
		}
		if (ok)
			continue;
		failed++;
		char a[256], b[1024], w[1024];
		print_error("in=\"%s\"\n  got  out=\"%s\" done=%d consumed=%zu "
			    "faults=%#x 8bit=%d (split: done=%d faults=%#x)\n"
			    "  want out=\"%s\" done=%d consumed=%zu faults=%#x "
			    "8bit=%d\n",
			    log_escape(a, sizeof a, in, len),
			    log_escape(b, sizeof b, one.out, one.outlen),
			    one.done, one.consumed, one.faults, one.eight_bit,
			    split.done, split.faults,
			    log_escape(w, sizeof w, want, wlen), done, end,
			    faults, eight);
	}
	assert_int_equal(failed, 0);
}

/* Raw mode: a CR at the end of one chunk and LF at the start of the next. */
static void
test_raw_chunks(void **state)
{
	struct smtp_datadec dec;
	uint8_t out[16];
	size_t got;

	(void)state;
	smtp_datadec_init(&dec, true);
	assert_int_equal(smtp_datadec_feed(&dec, (const uint8_t *)"ab\r", 3,
					   out, sizeof out, &got),
			 3);
	assert_int_equal(got, 3);
	assert_int_equal(dec.faults, 0);
	assert_int_equal(smtp_datadec_feed(&dec, (const uint8_t *)"\ncd\r", 4,
					   out, sizeof out, &got),
			 4);
	assert_int_equal(dec.faults, 0);
	assert_int_equal(dec.size, 7);
	smtp_datadec_finish(&dec);
	assert_int_equal(dec.faults, SMTP_DATA_FAULT_BARE_CR);
	assert_false(dec.done);

	/* finish() in DATA mode changes nothing. */
	smtp_datadec_init(&dec, false);
	smtp_datadec_feed(&dec, (const uint8_t *)"a\r", 2, out, sizeof out,
			  &got);
	smtp_datadec_finish(&dec);
	assert_int_equal(dec.faults, 0);

	/* Raw output space limits what is taken. */
	smtp_datadec_init(&dec, true);
	assert_int_equal(smtp_datadec_feed(&dec, (const uint8_t *)"abcdef", 6,
					   out, 4, &got),
			 4);
	assert_int_equal(got, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_all_splits),
		cmocka_unit_test(test_long_lines_kept),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_raw_chunks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
