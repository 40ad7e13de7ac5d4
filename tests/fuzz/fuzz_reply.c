/*
 * fuzz_reply: libFuzzer harness for the client's reply reader.
 *
 * Input: byte 0 seeds the split points, the rest is what a next hop sends.
 * The stream read whole and read in pieces must give the same replies
 * (code, enhanced code, text) and stop at the same place; every reply has
 * a code 200-599, text within bounds and NUL-free, an enhanced code of the
 * reply's class; EHLO lookups stay inside the text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIG_MAX 64

struct sig {
	int code[SIG_MAX];
	char enhanced[SIG_MAX][SMTP_REPLY_ENHANCED_MAX + 1];
	size_t text_len[SIG_MAX];
	unsigned long text_hash[SIG_MAX];
	size_t n;
	int end; /* 0 more, 1 bad */
	size_t left;
};

static unsigned long
hash(const char *s, size_t n)
{
	unsigned long h = 5381;

	for (size_t i = 0; i < n; i++)
		h = h * 33 + (unsigned char)s[i];
	return h;
}

static void
check(const struct smtp_reply_reader *r)
{
	if (r->code < 200 || r->code > 599 ||
	    r->text_len > SMTP_REPLY_TEXT_MAX ||
	    strlen(r->text) != r->text_len || r->nlines == 0)
		abort();
	if (r->enhanced[0] != '\0' && r->enhanced[0] != '0' + r->code / 100)
		abort();
	const char *p;
	size_t plen;
	if (smtp_reply_ehlo_has(r, "SIZE", &p, &plen) &&
	    (p < r->text || p + plen > r->text + r->text_len))
		abort();
}

static void
run(const uint8_t *in, size_t len, uint32_t seed, bool whole, struct sig *s)
{
	static struct smtp_reply_reader r;
	static uint8_t buf[1 << 16];
	size_t blen = 0, pos = 0;

	smtp_reply_reader_init(&r);
	memset(s, 0, sizeof *s);
	while (pos < len && s->end == 0) {
		seed = seed * 1103515245u + 12345u;
		size_t n = whole ? len : 1 + (seed >> 16) % 17;
		if (n > len - pos)
			n = len - pos;
		if (blen + n > sizeof buf)
			abort();
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			size_t used;
			enum smtp_reply_status st =
				smtp_reply_next(&r, buf, blen, &used);
			if (used > blen)
				abort();
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (st == SMTP_REPLY_BAD) {
				s->end = 1;
				break;
			}
			if (st == SMTP_REPLY_NEED_MORE)
				break;
			check(&r);
			if (s->n < SIG_MAX) {
				s->code[s->n] = r.code;
				memcpy(s->enhanced[s->n], r.enhanced,
				       sizeof r.enhanced);
				s->text_len[s->n] = r.text_len;
				s->text_hash[s->n] = hash(r.text, r.text_len);
			}
			s->n++;
		}
	}
	s->left = blen;
}

static struct sig a, b;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1 << 15))
		return 0;
	run(data + 1, size - 1, data[0], true, &a);
	run(data + 1, size - 1, data[0], false, &b);
	if (a.n != b.n || a.end != b.end || (a.end == 0 && a.left != b.left))
		abort();
	for (size_t i = 0; i < a.n && i < SIG_MAX; i++)
		if (a.code[i] != b.code[i] ||
		    strcmp(a.enhanced[i], b.enhanced[i]) != 0 ||
		    a.text_len[i] != b.text_len[i] ||
		    a.text_hash[i] != b.text_hash[i])
			abort();
	return 0;
}
