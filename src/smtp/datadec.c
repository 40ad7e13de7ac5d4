/*
 * datadec: decode the DATA stream (RFC 5321 4.1.1.4, 4.5.2) into the
 * message as stored, resumably: the input may be split anywhere.
 *
 *   smtp_datadec_init()    start a message (DATA, or raw BDAT chunks).
 *   smtp_datadec_feed()    decode a piece; stops at the end of data.
 *   smtp_datadec_finish()  BDAT LAST: a trailing lone CR is a fault.
 *
 * The only end of data is CR LF "." CR LF, where the first CR LF may be the
 * virtual one before the first line (RFC 5321 4.1.1.4).  A line that starts
 * with "." after a real CR LF loses that dot (4.5.2).  Everything else is
 * text: a dot after a bare LF is neither unstuffed nor a terminator, so
 * "\n.\r\n", "\r\n.\n" and "\n.\n" never end the data (SMTP smuggling,
 * CVE-2023-51764, cases C03/C04).
 *
 * Faults (bare LF, bare CR, NUL, overlong line) are recorded and decoding
 * goes on to the real end, so that the session can refuse the message
 * after reading all of it (C08).  A bare LF or bare CR is written out as
 * CR LF, so the output has canonical line ends even for a faulty message;
 * NUL bytes and long lines are kept as they are (C09).  Raw mode copies
 * bytes unchanged and records the same faults.
 *
 * Work is done on runs of text (memchr, memcpy), not byte by byte; one
 * step writes at most two bytes, so outcap >= 2 always makes progress.
 */
#include "smtp/datadec.h"

#include <stdint.h>
#include <string.h>

enum dd_state {
	DD_BOL,	   /* at a line start after CR LF (or the start) */
	DD_DOT,	   /* "." at a line start, not yet written */
	DD_DOT_CR, /* "." CR at a line start, nothing written */
	DD_TEXT,   /* inside a line */
	DD_CR,	   /* a CR inside a line, not yet written */
	DD_DONE,   /* terminator consumed */
	DD_RAW,	   /* raw: inside a line */
	DD_RAW_CR, /* raw: the last byte was a CR */
};

void
smtp_datadec_init(struct smtp_datadec *dec, bool raw)
{
	memset(dec, 0, sizeof *dec);
	dec->raw = raw;
	dec->state = raw ? DD_RAW : DD_BOL;
	dec->long_line_max = SMTP_DATA_LONG_LINE_MAX;
}

static size_t
long_line_max(const struct smtp_datadec *dec)
{
	return dec->long_line_max != 0 ? dec->long_line_max
				       : SMTP_DATA_LONG_LINE_MAX;
}

/* n more bytes on the current line; flag it once it is over the bound. */
static void
line_grow(struct smtp_datadec *dec, size_t n)
{
	size_t max = long_line_max(dec);

	/* Saturate: the length only matters up to the bound. */
	if (dec->line_len <= max)
		dec->line_len = n > SIZE_MAX - dec->line_len
					? SIZE_MAX
					: dec->line_len + n;
	if (dec->line_len > max)
		dec->faults |= SMTP_DATA_FAULT_LONG_LINE;
}

/* NUL and 8-bit checks on a run of bytes about to be copied. */
static void
check_run(struct smtp_datadec *dec, const uint8_t *s, size_t n)
{
	if (!(dec->faults & SMTP_DATA_FAULT_NUL) && memchr(s, 0, n) != NULL)
		dec->faults |= SMTP_DATA_FAULT_NUL;
	if (!dec->eight_bit) {
		uint8_t any = 0;
		for (size_t k = 0; k < n; k++)
			any |= s[k];
		dec->eight_bit = (any & 0x80) != 0;
	}
}

/* Length of the run of line text (no CR, no LF) at s[0..n). */
static size_t
text_run_len(const uint8_t *s, size_t n)
{
	const uint8_t *lf = memchr(s, '\n', n);
	size_t end = lf != NULL ? (size_t)(lf - s) : n;
	const uint8_t *cr = memchr(s, '\r', end);

	return cr != NULL ? (size_t)(cr - s) : end;
}

struct dd_io {
	const uint8_t *in;
	size_t inlen, i;
	uint8_t *out;
	size_t cap, o;
};

static bool
emit_crlf(struct dd_io *io)
{
	if (io->cap - io->o < 2)
		return false;
	io->out[io->o++] = '\r';
	io->out[io->o++] = '\n';
	return true;
}

/*
 * One step of the DATA state machine: consume zero or one byte, or a run
 * of text.  Returns false when the output is full (nothing done).  A step
 * that consumes nothing changes the state, so the loop always advances.
 */
static bool
dd_step(struct smtp_datadec *dec, struct dd_io *io)
{
	uint8_t c = io->in[io->i];
	size_t n;

	switch (dec->state) {
	case DD_BOL:
		if (c == '.') {
			dec->state = DD_DOT;
			io->i++;
		} else {
			dec->state = DD_TEXT;
		}
		return true;
	case DD_DOT:
		if (c == '\r') {
			dec->state = DD_DOT_CR;
			io->i++;
		} else if (c == '\n') {
			/* "." bare LF: not an end; keep the dot as text. */
			if (io->o == io->cap)
				return false;
			io->out[io->o++] = '.';
			line_grow(dec, 1);
			dec->state = DD_TEXT;
		} else {
			dec->state = DD_TEXT; /* the stuffed dot goes */
		}
		return true;
	case DD_DOT_CR:
		if (c == '\n') {
			io->i++;
			dec->state = DD_DONE;
			dec->done = true;
			return true;
		}
		/* "." CR then something else: a bare CR; the dot goes. */
		if (!emit_crlf(io))
			return false;
		dec->faults |= SMTP_DATA_FAULT_BARE_CR;
		dec->line_len = 0;
		dec->state = DD_TEXT;
		return true;
	case DD_CR:
		if (!emit_crlf(io))
			return false;
		dec->line_len = 0;
		if (c == '\n') {
			io->i++;
			dec->state = DD_BOL;
		} else {
			dec->faults |= SMTP_DATA_FAULT_BARE_CR;
			dec->state = DD_TEXT;
		}
		return true;
	case DD_TEXT:
		if (c == '\r') {
			io->i++;
			dec->state = DD_CR;
			return true;
		}
		if (c == '\n') {
			if (!emit_crlf(io))
				return false;
			dec->faults |= SMTP_DATA_FAULT_BARE_LF;
			dec->line_len = 0;
			io->i++;
			return true;
		}
		n = io->inlen - io->i;
		if (n > io->cap - io->o)
			n = io->cap - io->o;
		n = text_run_len(io->in + io->i, n);
		if (n == 0)
			return false; /* output full */
		check_run(dec, io->in + io->i, n);
		memcpy(io->out + io->o, io->in + io->i, n);
		line_grow(dec, n);
		io->i += n;
		io->o += n;
		return true;
	default:
		return false;
	}
}

/*
 * Raw (BDAT): copy, and look at line ends only to record faults.  The CR
 * state carries over between calls: a CR ending one chunk and the LF
 * starting the next are a proper line end.
 */
static void
raw_scan(struct smtp_datadec *dec, const uint8_t *s, size_t n)
{
	size_t k = 0;

	check_run(dec, s, n);
	while (k < n) {
		if (dec->state == DD_RAW_CR) {
			if (s[k] == '\n') {
				dec->line_len = 0;
				k++;
			} else {
				dec->faults |= SMTP_DATA_FAULT_BARE_CR;
			}
			dec->state = DD_RAW;
			continue;
		}
		size_t run = text_run_len(s + k, n - k);
		line_grow(dec, run);
		k += run;
		if (k == n)
			break;
		if (s[k] == '\r') {
			dec->state = DD_RAW_CR;
		} else {
			dec->faults |= SMTP_DATA_FAULT_BARE_LF;
			dec->line_len = 0;
		}
		k++;
	}
}

static size_t
raw_feed(struct smtp_datadec *dec, const uint8_t *in, size_t inlen,
	 uint8_t *out, size_t outcap, size_t *outlen)
{
	size_t n = inlen < outcap ? inlen : outcap;

	if (n > 0) {
		raw_scan(dec, in, n);
		memcpy(out, in, n);
	}
	dec->size += n;
	*outlen = n;
	return n;
}

size_t
smtp_datadec_feed(struct smtp_datadec *dec, const uint8_t *in, size_t inlen,
		  uint8_t *out, size_t outcap, size_t *outlen)
{
	struct dd_io io = {in, inlen, 0, out, outcap, 0};

	*outlen = 0;
	if (dec->done)
		return 0;
	if (dec->raw)
		return raw_feed(dec, in, inlen, out, outcap, outlen);
	while (io.i < io.inlen && !dec->done)
		if (!dd_step(dec, &io))
			break;
	dec->size += io.o;
	*outlen = io.o;
	return io.i;
}

void
smtp_datadec_finish(struct smtp_datadec *dec)
{
	if (dec->raw && dec->state == DD_RAW_CR) {
		dec->faults |= SMTP_DATA_FAULT_BARE_CR;
		dec->state = DD_RAW;
	}
}
