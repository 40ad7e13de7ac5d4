/*
 * line: find SMTP command lines in an input buffer, resumably, with a hard
 * bound on their length (RFC 5321 4.5.3.1.4; the bound is ours to choose and
 * larger, for ESMTP parameters).  Pure: no sockets, no allocation.
 *
 *   smtp_line_next()  look for the next command line in data[0..len).
 *
 * A line ends at LF; a CR right before it is dropped.  A line that grows past
 * max without LF is reported once as SMTP_LINE_TOO_LONG; the reader then
 * discards input up to and including the next LF, so that no part of an
 * overlong line is ever executed as a command of its own (cases C07).
 *
 * The caller drops *consumed bytes after every call, whatever the status,
 * and calls again while bytes remain and the last call consumed some: a
 * NEED_MORE that ends a discarded line may leave a whole command behind it
 * (e.g. "...overlong tail\r\nQUIT\r\n" arriving in one read).  The input
 * buffer needs room for max + 2 bytes (the line and its CR LF).
 *
 *	for (;;) {
 *		st = smtp_line_next(&r, buf, len, &used, &n);
 *		if (st == SMTP_LINE_OK)		   run the command buf[0..n)
 *		else if (st == SMTP_LINE_TOO_LONG) reply 500 5.5.2
 *		drop used bytes from buf;
 *		if (used == 0 || len == 0)	   wait for more input
 *	}
 */
#ifndef BH_SMTP_LINE_H
#define BH_SMTP_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LINE_MAX 2048	/* command line bound, CRLF excluded */

enum smtp_line_status {
	SMTP_LINE_NEED_MORE,	/* no complete line yet; *consumed bytes may be dropped */
	SMTP_LINE_OK,		/* data[0..*linelen) is a line; drop *consumed */
	SMTP_LINE_TOO_LONG,	/* over max: reply 500 5.5.2 once; drop *consumed */
};

struct smtp_line_reader {
	size_t max;		/* 0 means SMTP_LINE_MAX */
	bool discarding;	/* inside an overlong line, waiting for its LF */
};

enum smtp_line_status smtp_line_next(struct smtp_line_reader *reader,
				     const uint8_t *data, size_t len,
				     size_t *consumed, size_t *linelen);

#endif
