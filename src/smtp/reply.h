/*
 * reply: read SMTP replies (RFC 5321 4.2, 4.2.1; RFC 3463 and RFC 2034
 * enhanced status codes) as a client sees them, resumably and bounded.
 * Pure: no sockets, no allocation.
 *
 *   smtp_reply_reader_init()  before the first reply.
 *   smtp_reply_next()  read lines from the start of data[0..len) until one
 *       whole reply is complete (its last line "ddd SP text" or "ddd").
 *   smtp_reply_ehlo_has()  is an extension keyword on an EHLO reply's
 *       lines (any line after the first, any case), and its parameters.
 *
 * A reply counts only once its last line is complete: a reply split over
 * packets is never acted on early (case C26); continuation lines must all
 * carry the same code, else the reply is refused (C25); bare LF line ends
 * are accepted (C26 W).  Every line must be at most SMTP_REPLY_LINE_MAX
 * octets; longer, or not "ddd" + SP/"-"/end, is SMTP_REPLY_BAD: the caller
 * gives up on that connection.  Text beyond SMTP_REPLY_TEXT_MAX is cut
 * (->truncated); the code and enhanced code are always right.
 *
 * The caller drops *consumed bytes after each call; after DONE the reader
 * starts the next reply by itself:
 *
 *	st = smtp_reply_next(&rr, buf, len, &used);
 *	drop used bytes;
 *	if (st == SMTP_REPLY_DONE)  act on rr.code, rr.enhanced, rr.text
 *	if (st == SMTP_REPLY_BAD)   protocol error: defer, close
 *	if (st == SMTP_REPLY_NEED_MORE) wait for input
 */
#ifndef BH_SMTP_REPLY_H
#define BH_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048   /* one line, CRLF excluded (RFC: 512) */
#define SMTP_REPLY_TEXT_MAX 4096   /* all lines' text */
#define SMTP_REPLY_ENHANCED_MAX 11 /* "5.123.123" + room */

enum smtp_reply_status {
	SMTP_REPLY_NEED_MORE, /* no complete reply yet; drop *consumed */
	SMTP_REPLY_DONE,      /* a whole reply is in the reader */
	SMTP_REPLY_BAD,	      /* malformed or overlong: stop reading */
};

struct smtp_reply_reader {
	int code;				    /* 200..599 once DONE */
	char enhanced[SMTP_REPLY_ENHANCED_MAX + 1]; /* "2.0.0" or "" */
	size_t nlines;
	size_t text_len;
	/* Each line's text (after "ddd-" / "ddd "), joined by '\n'. */
	char text[SMTP_REPLY_TEXT_MAX + 1];
	bool truncated; /* text was cut */
	bool complete;	/* private */
};

void smtp_reply_reader_init(struct smtp_reply_reader *r);

enum smtp_reply_status smtp_reply_next(struct smtp_reply_reader *r,
				       const uint8_t *data, size_t len,
				       size_t *consumed);

/*
 * After DONE for an EHLO: true when a line after the first starts with
 * keyword (case-insensitive) followed by a space or the end of the line.
 * param/param_len (may be NULL) get the rest of that line, e.g. "10485760"
 * for SIZE; "" when there is none.
 */
bool smtp_reply_ehlo_has(const struct smtp_reply_reader *r, const char *keyword,
			 const char **param, size_t *param_len);

#endif
