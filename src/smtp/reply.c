/*
 * reply: the client side's reply reader (RFC 5321 4.2, RFC 2034).
 *
 *   smtp_reply_reader_init()  empty reader.
 *   smtp_reply_next()  consume complete reply lines from the start of the
 *       input until a reply is whole; bounded per line and in total.
 *   smtp_reply_ehlo_has()  look up an extension on an EHLO reply.
 *
 * Replies come from a next hop we do not control, possibly hostile or
 * broken: the code is taken only from a complete last line, every line of
 * a reply must repeat the first line's code (a reply that switches codes
 * half-way is refused rather than guessed at), and nothing is stored past
 * the fixed buffers.  A NUL byte in reply text is stored as '?' so the
 * text stays one C string for logs and DSNs.
 */
#include "smtp/reply.h"

#include <string.h>

void
smtp_reply_reader_init(struct smtp_reply_reader *r)
{
	memset(r, 0, sizeof *r);
}

static void
reply_reset(struct smtp_reply_reader *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	r->text_len = 0;
	r->text[0] = '\0';
	r->truncated = false;
	r->complete = false;
}

static bool
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* 1*3DIGIT at t[*i..n); advances *i. */
static bool
digits3(const uint8_t *t, size_t n, size_t *i)
{
	size_t start = *i;

	while (*i < n && *i - start < 4 && is_digit(t[*i]))
		(*i)++;
	return *i > start && *i - start <= 3;
}

/*
 * RFC 3463 status-code = class "." subject "." detail, at the start of
 * the text and followed by a space or the end; its class must be the
 * reply's (RFC 2034 3).  The first line that has one sets it.
 */
static void
enhanced_parse(struct smtp_reply_reader *r, const uint8_t *t, size_t n)
{
	size_t i = 2;

	if (r->enhanced[0] != '\0' || n < 5 || t[0] != '0' + r->code / 100 ||
	    t[1] != '.')
		return;
	if (!digits3(t, n, &i) || i >= n || t[i] != '.')
		return;
	i++;
	if (!digits3(t, n, &i) || (i < n && t[i] != ' '))
		return;
	memcpy(r->enhanced, t, i);
	r->enhanced[i] = '\0';
}

/* Append one line's text, '\n' between lines, cut at the bound. */
static void
text_add(struct smtp_reply_reader *r, const uint8_t *t, size_t n)
{
	if (r->nlines > 1) {
		if (r->text_len == SMTP_REPLY_TEXT_MAX) {
			r->truncated = true;
			return;
		}
		r->text[r->text_len++] = '\n';
	}
	size_t room = SMTP_REPLY_TEXT_MAX - r->text_len;
	if (n > room) {
		n = room;
		r->truncated = true;
	}
	for (size_t i = 0; i < n; i++)
		r->text[r->text_len + i] = t[i] != '\0' ? (char)t[i] : '?';
	r->text_len += n;
	r->text[r->text_len] = '\0';
}

/*
 * One complete line (CR LF or bare LF removed).  Returns 1 for the last
 * line of the reply, 0 for a continuation, -1 when malformed.
 */
static int
reply_line(struct smtp_reply_reader *r, const uint8_t *line, size_t n)
{
	int code;

	if (n < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return -1;
	if (n > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -1;
	r->code = code;
	r->nlines++;
	const uint8_t *t = n > 3 ? line + 4 : line + n;
	size_t tn = n > 3 ? n - 4 : 0;
	enhanced_parse(r, t, tn);
	text_add(r, t, tn);
	return n == 3 || line[3] == ' ';
}

enum smtp_reply_status
smtp_reply_next(struct smtp_reply_reader *r, const uint8_t *data, size_t len,
		size_t *consumed)
{
	size_t pos = 0;

	*consumed = 0;
	if (r->complete)
		reply_reset(r);
	for (;;) {
		size_t avail = len - pos;
		size_t window = avail < SMTP_REPLY_LINE_MAX + 2
					? avail
					: SMTP_REPLY_LINE_MAX + 2;
		const uint8_t *lf =
			window > 0 ? memchr(data + pos, '\n', window) : NULL;
		if (lf == NULL) {
			*consumed = pos;
			if (avail > SMTP_REPLY_LINE_MAX + 1 ||
			    (avail == SMTP_REPLY_LINE_MAX + 1 &&
			     data[len - 1] != '\r'))
				return SMTP_REPLY_BAD;
			return SMTP_REPLY_NEED_MORE;
		}
		size_t n = (size_t)(lf - (data + pos));
		size_t next = pos + n + 1;
		if (n > 0 && data[pos + n - 1] == '\r')
			n--;
		if (n > SMTP_REPLY_LINE_MAX)
			return SMTP_REPLY_BAD;
		int last = reply_line(r, data + pos, n);
		if (last < 0)
			return SMTP_REPLY_BAD;
		pos = next;
		*consumed = pos;
		if (last) {
			r->complete = true;
			return SMTP_REPLY_DONE;
		}
	}
}

static bool
word_ieq(const char *s, const char *word, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s[i],
			      b = (unsigned char)word[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

bool
smtp_reply_ehlo_has(const struct smtp_reply_reader *r, const char *keyword,
		    const char **param, size_t *param_len)
{
	size_t klen = strlen(keyword);
	const char *p = memchr(r->text, '\n', r->text_len);
	const char *end = r->text + r->text_len;

	/* The first line is the server's name and greeting: skip it. */
	while (p != NULL && p < end) {
		const char *line = p + 1;
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *stop = nl != NULL ? nl : end;
		size_t n = (size_t)(stop - line);

		if (n >= klen && word_ieq(line, keyword, klen) &&
		    (n == klen || line[klen] == ' ')) {
			size_t skip = n == klen ? klen : klen + 1;
			if (param != NULL)
				*param = line + skip;
			if (param_len != NULL)
				*param_len = n - skip;
			return true;
		}
		p = nl;
	}
	return false;
}
