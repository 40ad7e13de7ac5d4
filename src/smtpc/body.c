/*
 * body: dot-stuffing and CRLF canonical form of outgoing message data
 * (see body.h; RFC 5321 4.5.2 transparency, 2.3.8 line ends).
 */
#include "smtpc/body.h"

void
smtpc_body_init(struct smtpc_body *b)
{
	b->line_start = true;
	b->cr = false;
	b->bare = 0;
}

/* The end of a line: CRLF, and the next byte begins a line. */
static size_t
body_eol(struct smtpc_body *b, uint8_t *out)
{
	out[0] = '\r';
	out[1] = '\n';
	b->line_start = true;
	return 2;
}

size_t
smtpc_body_encode(struct smtpc_body *b, const uint8_t *in, size_t len,
		  uint8_t *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];

		if (b->cr) {
			b->cr = false;
			o += body_eol(b, out + o);
			if (c == '\n')
				continue;
			b->bare++; /* a CR alone ended a line */
		}
		if (c == '\r') {
			b->cr = true; /* decided by the next byte */
			continue;
		}
		if (c == '\n') {
			b->bare++; /* LF without CR */
			o += body_eol(b, out + o);
			continue;
		}
		if (b->line_start && c == '.')
			out[o++] = '.'; /* RFC 5321 4.5.2 */
		b->line_start = false;
		out[o++] = c;
	}
	return o;
}

size_t
smtpc_body_finish(struct smtpc_body *b, uint8_t *out)
{
	size_t o = 0;

	if (b->cr) {
		b->cr = false;
		b->bare++;
		o += body_eol(b, out + o);
	}
	if (!b->line_start)
		o += body_eol(b, out + o);
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	return o;
}

bool
smtpc_body_has_8bit(const uint8_t *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (in[i] & 0x80)
			return true;
	}
	return false;
}
