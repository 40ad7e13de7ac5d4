/*
 * msghdr: follow the header section (RFC 5322 2.2, 3.6.4) of a message as
 * it streams past, to learn its Message-ID, whether a header holds 8-bit
 * bytes (RFC 6532: the message then needs SMTPUTF8 downstream, case C10),
 * and how large the header section is.
 *
 *   smtp_msghdr_init()  before the first byte.
 *   smtp_msghdr_feed()  any piece of the decoded message; a no-op once the
 *       body has started.
 *
 * Only the first sizeof h->field bytes of each field are kept (unfolded:
 * the CR LF before a continuation line is dropped, its blanks kept), which
 * bounds memory whatever the peer sends; a Message-ID that does not fit
 * is simply not learned.  Pure: no allocation, no I/O.
 */
#include "smtp/msghdr.h"

#include <string.h>

#include "smtp/address.h" /* smtp_utf8_valid() */

enum mh_state {
	MH_LINE_START, /* at the start of a header line */
	MH_FIELD,      /* inside a header line */
	MH_BLANK_CR,   /* a CR at a line start: maybe the empty line */
	MH_BODY,       /* the empty line was seen */
};

#define MH_F_MSGID_DONE 0x1 /* the first Message-ID field was handled */

static const char msgid_name[] = "message-id";
#define MSGID_NAME_LEN (sizeof msgid_name - 1)

void
smtp_msghdr_init(struct smtp_msghdr *h)
{
	memset(h, 0, sizeof *h);
	h->state = MH_LINE_START;
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Is the field kept so far a Message-ID field?  Returns the offset of its
 * value (after the colon) or 0.  RFC 5322 4.5.3 (obsolete syntax) allows
 * blanks before the colon.
 */
static size_t
msgid_value_offset(const struct smtp_msghdr *h)
{
	size_t i;

	if (h->field_len <= MSGID_NAME_LEN)
		return 0;
	for (i = 0; i < MSGID_NAME_LEN; i++)
		if (lower((unsigned char)h->field[i]) !=
		    (unsigned char)msgid_name[i])
			return 0;
	while (i < h->field_len && is_wsp((unsigned char)h->field[i]))
		i++;
	return i < h->field_len && h->field[i] == ':' ? i + 1 : 0;
}

/*
 * msg-id = "<" id-left "@" id-right ">" (RFC 5322 3.6.4), taken loosely:
 * visible ASCII or well-formed UTF-8, no blanks or angle brackets inside.
 * Returns true when the field is decided (found, or can never be found).
 */
static bool
msgid_extract(struct smtp_msghdr *h, size_t off, bool complete)
{
	const char *v = h->field + off;
	size_t n = h->field_len - off, i = 0, start;

	while (i < n && is_wsp((unsigned char)v[i]))
		i++;
	if (i == n)
		return complete || h->field_len == sizeof h->field;
	if (v[i] != '<')
		return true;
	start = i++;
	for (; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '>')
			break;
		if (c <= ' ' || c == '<' || c == 127)
			return true;
	}
	if (i == n) /* no '>' yet: a continuation line may bring it */
		return complete || h->field_len == sizeof h->field;
	n = i + 1 - start;
	/* It goes into logs and JSON: well-formed UTF-8 only (RFC 6532). */
	if (n > 2 && n <= SMTP_MESSAGE_ID_MAX &&
	    smtp_utf8_valid(v + start, n)) {
		memcpy(h->message_id, v + start, n);
		h->message_id[n] = '\0';
	}
	return true;
}

/*
 * At the end of a header line (complete: no continuation can follow).
 * Only the first Message-ID field counts.
 */
static void
field_line_end(struct smtp_msghdr *h, bool complete)
{
	size_t off;

	if (h->flags & MH_F_MSGID_DONE)
		return;
	off = msgid_value_offset(h);
	if (off == 0)
		return;
	if (msgid_extract(h, off, complete) || complete)
		h->flags |= MH_F_MSGID_DONE;
}

/*
 * Keep the start of the field, without CRs: the CR of a CR LF may arrive
 * in one piece and its LF in the next, and a stray CR is no part of a
 * value anyway.
 */
static void
field_keep(struct smtp_msghdr *h, const uint8_t *s, size_t n)
{
	while (n > 0 && h->field_len < sizeof h->field) {
		const uint8_t *cr = memchr(s, '\r', n);
		size_t run = cr != NULL ? (size_t)(cr - s) : n;
		size_t room = sizeof h->field - h->field_len;
		size_t k = run < room ? run : room;

		memcpy(h->field + h->field_len, s, k);
		h->field_len += k;
		if (cr == NULL || k < run)
			return;
		s += run + 1;
		n -= run + 1;
	}
}

static void
mark_8bit(struct smtp_msghdr *h, const uint8_t *s, size_t n)
{
	uint8_t any = 0;

	if (h->header_utf8)
		return;
	for (size_t k = 0; k < n; k++)
		any |= s[k];
	h->header_utf8 = (any & 0x80) != 0;
}

/* Inside a header line: keep text up to the LF; returns bytes used. */
static size_t
feed_field(struct smtp_msghdr *h, const uint8_t *s, size_t n)
{
	const uint8_t *lf = memchr(s, '\n', n);
	size_t run = lf != NULL ? (size_t)(lf - s) : n;

	mark_8bit(h, s, run);
	field_keep(h, s, run);
	if (lf == NULL) {
		/* A message may end without CR LF (BDAT): learn it now. */
		field_line_end(h, false);
		return n;
	}
	field_line_end(h, false);
	h->state = MH_LINE_START;
	return run + 1;
}

/* At a line start: a continuation, a new field, or the empty line. */
static size_t
feed_line_start(struct smtp_msghdr *h, const uint8_t *s)
{
	if (is_wsp(s[0])) {
		h->state = MH_FIELD; /* folded: same field */
		return 0;
	}
	/* Whatever comes now ends the previous field. */
	field_line_end(h, true);
	h->field_len = 0;
	if (s[0] == '\r') {
		h->state = MH_BLANK_CR;
		return 1;
	}
	if (s[0] == '\n') {
		h->state = MH_BODY; /* lenient: bare LF empty line */
		h->in_body = true;
		return 1;
	}
	h->state = MH_FIELD;
	return 0;
}

void
smtp_msghdr_feed(struct smtp_msghdr *h, const uint8_t *data, size_t len)
{
	size_t i = 0, used;

	while (i < len && h->state != MH_BODY) {
		switch (h->state) {
		case MH_LINE_START:
			used = feed_line_start(h, data + i);
			break;
		case MH_BLANK_CR:
			if (data[i] == '\n') {
				h->state = MH_BODY;
				h->in_body = true;
				used = 1;
			} else {
				h->state = MH_FIELD; /* a stray CR */
				used = 0;
			}
			break;
		default:
			used = feed_field(h, data + i, len - i);
			break;
		}
		h->header_size += used;
		i += used;
	}
}
