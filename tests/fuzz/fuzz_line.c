/*
 * fuzz_line: libFuzzer harness for smtp_line_next().
 *
 * Input: byte 0 picks the line bound (1..64, or the default), byte 1 seeds
 * the split points, the rest is the stream.  The stream is fed through a
 * buffer of exactly max + 2 bytes in pieces, with the caller loop that
 * line.h documents, and the events must equal a whole-stream model: every
 * LF-terminated line of at most max octets (one CR before the LF dropped)
 * is a line, every longer one is exactly one "too long" and nothing else
 * (case C07).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/line.h"

#define EV_MAX (1 << 16)

struct events {
	uint8_t buf[EV_MAX];
	size_t len;
	size_t n; /* number of events */
};

static void
ev_put(struct events *ev, uint8_t tag, const uint8_t *s, size_t n)
{
	uint8_t hdr[1 + sizeof(size_t)];

	hdr[0] = tag;
	memcpy(hdr + 1, &n, sizeof n);
	if (ev->len + sizeof hdr + n > sizeof ev->buf)
		abort(); /* inputs are far smaller than this */
	memcpy(ev->buf + ev->len, hdr, sizeof hdr);
	if (n > 0)
		memcpy(ev->buf + ev->len + sizeof hdr, s, n);
	ev->len += sizeof hdr + n;
	ev->n++;
}

static void
model(const uint8_t *in, size_t len, size_t max, struct events *ev)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\n')
			continue;
		size_t n = i - start;
		if (n > 0 && in[i - 1] == '\r')
			n--;
		if (n > max)
			ev_put(ev, 'T', NULL, 0);
		else
			ev_put(ev, 'L', in + start, n);
		start = i + 1;
	}
	size_t rest = len - start;
	if (rest > max + 1 || (rest == max + 1 && in[len - 1] != '\r'))
		ev_put(ev, 'T', NULL, 0);
}

static struct events got, want;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max = data[0] % 65;
	uint32_t seed = data[1];
	const uint8_t *in = data + 2;
	size_t len = size - 2;
	struct smtp_line_reader r = {max, false};
	size_t eff = max != 0 ? max : SMTP_LINE_MAX;
	size_t cap = eff + 2, blen = 0, pos = 0;
	uint8_t *buf = malloc(cap); /* exact size: ASan sees overreads */

	if (buf == NULL)
		return 0;
	got.len = got.n = want.len = want.n = 0;
	model(in, len, eff, &want);
	while (pos < len) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 23;
		if (n > len - pos)
			n = len - pos;
		if (n > cap - blen)
			n = cap - blen;
		if (n == 0)
			abort(); /* full buffer and no progress */
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			size_t used, linelen;
			enum smtp_line_status st =
				smtp_line_next(&r, buf, blen, &used, &linelen);
			if (used > blen)
				abort();
			if (st == SMTP_LINE_OK) {
				if (linelen > eff || linelen >= used ||
				    memchr(buf, '\n', linelen) != NULL)
					abort();
				ev_put(&got, 'L', buf, linelen);
			} else if (st == SMTP_LINE_TOO_LONG) {
				ev_put(&got, 'T', NULL, 0);
			}
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (used == 0 || blen == 0)
				break;
		}
	}
	free(buf);
	if (got.n != want.n || got.len != want.len ||
	    memcmp(got.buf, want.buf, got.len) != 0) {
		fprintf(stderr, "fuzz_line: %zu events, model says %zu\n",
			got.n, want.n);
		abort();
	}
	return 0;
}
