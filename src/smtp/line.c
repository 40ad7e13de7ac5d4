/*
 * line: cut SMTP command lines out of an input buffer, with a hard bound.
 *
 *   smtp_line_next()  the next line at the start of data[0..len), or "need
 *       more", or "too long" (reported once per overlong line).
 *
 * The reader keeps one bit of state: whether it is throwing away the rest
 * of an overlong line.  While it does, every byte up to and including the
 * next LF is dropped, so the tail of an overlong line is never taken for a
 * command of its own (case C07: a reader that cuts at its limit would run
 * "RCPT TO:<spy@...>" hidden at octet 512).  The caller's buffer therefore
 * never has to hold more than max + 2 bytes.  Pure: no I/O, no allocation.
 */
#include "smtp/line.h"

#include <stdint.h>
#include <string.h>

static size_t
line_max(const struct smtp_line_reader *reader)
{
	if (reader->max == 0)
		return SMTP_LINE_MAX;
	/* max + 2 must not wrap around. */
	return reader->max < SIZE_MAX / 2 ? reader->max : SIZE_MAX / 2;
}

/* Drop bytes up to and including the LF that ends an overlong line. */
static enum smtp_line_status
line_discard(struct smtp_line_reader *reader, const uint8_t *data, size_t len,
	     size_t *consumed)
{
	const uint8_t *lf = memchr(data, '\n', len);

	if (lf == NULL) {
		*consumed = len;
	} else {
		*consumed = (size_t)(lf - data) + 1;
		reader->discarding = false;
	}
	return SMTP_LINE_NEED_MORE;
}

enum smtp_line_status
smtp_line_next(struct smtp_line_reader *reader, const uint8_t *data, size_t len,
	       size_t *consumed, size_t *linelen)
{
	size_t max = line_max(reader);
	size_t window, n;
	const uint8_t *lf;

	*consumed = 0;
	*linelen = 0;
	if (len == 0)
		return SMTP_LINE_NEED_MORE;
	if (reader->discarding)
		return line_discard(reader, data, len, consumed);

	/* A line of max octets may still be followed by CR LF. */
	window = len < max + 2 ? len : max + 2;
	lf = memchr(data, '\n', window);
	if (lf != NULL) {
		n = (size_t)(lf - data);
		*consumed = n + 1;
		if (n > 0 && data[n - 1] == '\r')
			n--;
		if (n > max)
			return SMTP_LINE_TOO_LONG; /* ended: no discard */
		*linelen = n;
		return SMTP_LINE_OK;
	}
	/*
	 * No LF yet.  The line is certainly too long once more than max
	 * octets are here and they are not "max octets + CR" waiting for LF.
	 */
	if (len > max + 1 || (len == max + 1 && data[max] != '\r')) {
		lf = memchr(data + window, '\n', len - window);
		if (lf != NULL) {
			*consumed = (size_t)(lf - data) + 1;
		} else {
			*consumed = len;
			reader->discarding = true;
		}
		return SMTP_LINE_TOO_LONG;
	}
	return SMTP_LINE_NEED_MORE;
}
