/*
 * fuzz_datadec: libFuzzer harness for the DATA/BDAT decoder.
 *
 * Input: byte 0 bit 0 selects raw (BDAT) mode and bits 1-5 a small line
 * bound (0: the default); byte 1 seeds the split points and the output
 * space per call (2..9 bytes, each in its own exact-size allocation so
 * that any write past outcap is caught); the rest is the stream.
 * Checks: the split run gives the same output, faults, end and consumed
 * count as the one-shot run; the end is exactly the first CR LF "." CR LF
 * (the first CR LF may be the virtual one before the data); in DATA mode
 * the output never holds a bare CR or LF, and with no fault it is free of
 * them by construction (cases C03, C04); raw mode copies the input; NUL and
 * 8-bit flags match the input; size counts the output.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/datadec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	uint8_t *out;
	size_t outlen, consumed;
	struct smtp_datadec dec;
};

static void
setup(struct smtp_datadec *dec, bool raw, size_t long_max)
{
	smtp_datadec_init(dec, raw);
	if (long_max != 0)
		dec->long_line_max = long_max;
}

static void
one_shot(const uint8_t *in, size_t len, bool raw, size_t long_max,
	 struct run *r)
{
	size_t cap = 2 * len + 2, got;

	setup(&r->dec, raw, long_max);
	r->out = malloc(cap);
	if (r->out == NULL)
		abort();
	r->consumed = smtp_datadec_feed(&r->dec, in, len, r->out, cap, &got);
	r->outlen = got;
	if (raw)
		smtp_datadec_finish(&r->dec);
	/* Enough space: only the end of data stops it early. */
	if (r->consumed != len && !r->dec.done)
		abort();
}

static void
split(const uint8_t *in, size_t len, bool raw, size_t long_max, uint32_t seed,
      struct run *r)
{
	size_t pos = 0;

	setup(&r->dec, raw, long_max);
	r->out = malloc(2 * len + 2);
	r->outlen = 0;
	if (r->out == NULL)
		abort();
	while (pos < len && !r->dec.done) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 13;
		size_t cap = 2 + (seed >> 8) % 8;
		size_t got;
		if (n > len - pos)
			n = len - pos;
		uint8_t *out = malloc(cap); /* exact: ASan catches overflow */
		if (out == NULL)
			abort();
		size_t used =
			smtp_datadec_feed(&r->dec, in + pos, n, out, cap, &got);
		if (used > n || got > cap ||
		    (used == 0 && got == 0 && !r->dec.done))
			abort();
		if (r->outlen + got > 2 * len + 2)
			abort();
		memcpy(r->out + r->outlen, out, got);
		free(out);
		r->outlen += got;
		pos += used;
	}
	r->consumed = pos;
	if (raw)
		smtp_datadec_finish(&r->dec);
}

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

static bool
any_high(const uint8_t *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (s[k] >= 0x80)
			return true;
	return false;
}

static void
check_canonical(const uint8_t *s, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (s[k] == '\r' && (k + 1 == n || s[k + 1] != '\n'))
			abort();
		if (s[k] == '\n' && (k == 0 || s[k - 1] != '\r'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a, b;

	if (size < 2)
		return 0;
	bool raw = data[0] & 1;
	size_t long_max = (data[0] >> 1) & 0x1f;
	const uint8_t *in = data + 2;
	size_t len = size - 2;

	one_shot(in, len, raw, long_max, &a);
	split(in, len, raw, long_max, data[1], &b);
	if (a.outlen != b.outlen || memcmp(a.out, b.out, a.outlen) != 0 ||
	    a.consumed != b.consumed || a.dec.faults != b.dec.faults ||
	    a.dec.done != b.dec.done || a.dec.eight_bit != b.dec.eight_bit ||
	    a.dec.size != b.dec.size) {
		fprintf(stderr, "fuzz_datadec: split run differs\n");
		abort();
	}
	if (a.dec.size != a.outlen)
		abort();
	if (raw) {
		if (a.dec.done || a.consumed != len || a.outlen != len ||
		    memcmp(a.out, in, len) != 0)
			abort();
		if (((a.dec.faults & SMTP_DATA_FAULT_NUL) != 0) !=
		    (memchr(in, 0, len) != NULL))
			abort();
		if (a.dec.eight_bit != any_high(in, len))
			abort();
		if (a.dec.faults == 0)
			check_canonical(a.out, a.outlen);
	} else {
		bool done;
		size_t end = model_end(in, len, &done);
		if (a.dec.done != done || a.consumed != end)
			abort();
		check_canonical(a.out, a.outlen);
		if (((a.dec.faults & SMTP_DATA_FAULT_NUL) != 0) !=
		    (memchr(in, 0, end) != NULL))
			abort();
		if (a.dec.eight_bit != any_high(in, end))
			abort();
		if (a.outlen > 2 * end)
			abort();
	}
	free(a.out);
	free(b.out);
	return 0;
}
