/*
 * bounce: delivery status notifications, RFC 3464 (the report format) and
 * RFC 3461 (NOTIFY, RET, ENVID, ORCPT), queued like any other message.
 *
 *   bounce_wanted()  the NOTIFY rules for one recipient and one outcome.
 *   bounce_format()  the multipart/report text (CRLF line ends).
 *   bounce_queue()   format it and commit it from <> to the original
 *                    sender through the spool; callback on the loop.
 *
 * The report is built in memory: the human-readable part, the
 * delivery-status part, then the original (whole up to BOUNCE_FULL_MAX
 * bytes under RET=FULL or without RET; else, or under RET=HDRS, its
 * header section up to BOUNCE_HEADERS_MAX).  So a notice costs at most
 * about BOUNCE_FULL_MAX bytes of memory while it is formatted.
 *
 * An internationalised recipient (RFC 6531) is reported the RFC 6533
 * way: "utf-8" address type, message/global-delivery-status, the
 * original as message/global (or message/global-headers).
 *
 * Peer-supplied text (a remote reply, an address) enters the report's
 * header-like fields only as printable ASCII on one line, cut at
 * FIELD_MAX bytes: a reply with CR or LF can never add a field or a MIME
 * boundary of its own.  ENVID and ORCPT are xtext (RFC 3461 4); the report
 * shows them decoded (RFC 3464 2.2.1, 2.3.1).
 */
#include "queue/bounce.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool.h"
#include "util/log.h"

/* The SMTP_NOTIFY_* bits and enum smtp_body/smtp_ret values of
 * src/smtp/command.h (the queue does not depend on the protocol module). */
#define NOTIFY_NEVER 0x1
#define NOTIFY_SUCCESS 0x2
#define NOTIFY_FAILURE 0x4
#define BODY_8BITMIME 2
#define RET_HDRS 2

#define FIELD_MAX 900 /* bytes of peer text in one field (line limit 998) */

bool
bounce_wanted(const struct envelope *env, size_t rcpt,
	      enum bounce_outcome outcome)
{
	if (env->sender == NULL || env->sender[0] == '\0')
		return false; /* RFC 5321 6.1: never notify the null path */
	if (rcpt >= env->n_rcpts)
		return false;
	unsigned notify = env->rcpts[rcpt].notify;
	if (notify & NOTIFY_NEVER)
		return false;
	if (outcome == BOUNCE_RELAYED)
		return (notify & NOTIFY_SUCCESS) != 0;
	/* RFC 3461 4.1: without NOTIFY, failures are reported. */
	return notify == 0 || (notify & NOTIFY_FAILURE) != 0;
}

/* ------------------------------------------------------------- text */

/* Printable ASCII on one line; anything else becomes '?'. */
static void
put_clean(FILE *out, const char *s, size_t max)
{
	for (size_t i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		fputc(c >= 0x20 && c < 0x7f ? c : '?', out);
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* UTF-8 kept (addresses were checked at receipt); control bytes '?'. */
static void
put_utf8(FILE *out, const char *s, size_t max)
{
	for (size_t i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		fputc(c >= 0x20 && c != 0x7f ? c : '?', out);
	}
}

static bool
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/*
 * RFC 6533: an internationalised address is reported as "utf-8" in a
 * message/global-delivery-status part (and the original as message/global).
 */
static bool
report_global(const struct bounce *b)
{
	for (size_t i = 0; i < b->n_rcpts; i++)
		if (!is_ascii(b->env->rcpts[b->rcpts[i].rcpt].address))
			return true;
	return false;
}

/* "<addr>" in the human-readable part. */
static void
put_address(FILE *out, const char *address, bool global)
{
	if (global)
		put_utf8(out, address, FIELD_MAX);
	else
		put_clean(out, address, FIELD_MAX);
}

/* xtext "+XX" decoded, then cleaned like any peer text. */
static void
put_xtext(FILE *out, const char *s)
{
	char dec[FIELD_MAX + 1];
	size_t o = 0;

	for (size_t i = 0; s[i] != '\0' && o < FIELD_MAX; i++) {
		int hi, lo;
		if (s[i] == '+' && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			dec[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			dec[o++] = s[i];
		}
	}
	dec[o] = '\0';
	put_clean(out, dec, FIELD_MAX);
}

/* RFC 5322 3.3 date-time in UTC: "Thu, 03 Dec 2026 17:00:00 +0000". */
static const char *
rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
		return buf;
	}
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return buf;
}

static const char *
default_status(enum bounce_outcome outcome)
{
	return outcome == BOUNCE_RELAYED ? "2.0.0" : "5.0.0";
}

/* A status code as RFC 3463 spells it (class.subject.detail), else NULL. */
static const char *
valid_status(const char *s)
{
	size_t i = 0, dots = 0, digits = 0;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return NULL;
	for (i = 0; s[i] != '\0' && i < 16; i++) {
		if (s[i] == '.') {
			if (digits == 0)
				return NULL;
			dots++;
			digits = 0;
		} else if (s[i] >= '0' && s[i] <= '9') {
			if (++digits > 3)
				return NULL;
		} else {
			return NULL;
		}
	}
	return dots == 2 && digits > 0 && s[i] == '\0' ? s : NULL;
}

static const char *
rcpt_status(const struct bounce_rcpt *r)
{
	const char *s = valid_status(r->status);
	return s != NULL ? s : default_status(r->outcome);
}

/* --------------------------------------------------------- original */

struct original {
	char *text;
	size_t len;
	bool headers_only; /* only the header section is attached */
	bool too_large;	   /* ... because the message was over the bound */
	bool cut;	   /* the header section itself was cut */
};

/* End of the header section: the offset after the empty line, or len. */
static size_t
header_end(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '\r' && s[1] == '\n')
		return 0; /* no header section at all */
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\n')
			continue;
		if (s[i + 1] == '\n')
			return i + 1;
		if (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n')
			return i + 1;
	}
	return len;
}

static int
read_original(const char *path, bool want_full, struct original *o)
{
	memset(o, 0, sizeof *o);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	size_t want = BOUNCE_HEADERS_MAX;
	if (want_full && (uint64_t)st.st_size <= BOUNCE_FULL_MAX)
		want = (size_t)st.st_size;
	else if (want_full)
		o->too_large = true;
	o->text = malloc(want + 3);
	if (o->text == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	while (o->len < want) {
		ssize_t n = read(fd, o->text + o->len, want - o->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			free(o->text);
			o->text = NULL;
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		o->len += (size_t)n;
	}
	close(fd);
	o->headers_only = !want_full || o->too_large;
	if (o->headers_only) {
		size_t end = header_end(o->text, o->len);
		o->cut = end == o->len && o->len == BOUNCE_HEADERS_MAX &&
			 (uint64_t)st.st_size > BOUNCE_HEADERS_MAX;
		o->len = end;
		if (o->cut) { /* end on a whole line */
			while (o->len > 0 && o->text[o->len - 1] != '\n')
				o->len--;
		}
	}
	/* The part must end with a line break before the boundary. */
	if (o->len > 0 && o->text[o->len - 1] != '\n') {
		o->text[o->len++] = '\r';
		o->text[o->len++] = '\n';
	}
	return 0;
}

/* ----------------------------------------------------------- report */

static bool
any_failed(const struct bounce *b)
{
	for (size_t i = 0; i < b->n_rcpts; i++)
		if (b->rcpts[i].outcome == BOUNCE_FAILED)
			return true;
	return false;
}

static void
write_headers(FILE *out, const struct bounce *b, const char *boundary,
	      bool global)
{
	char date[64];

	fputs("From: Mail Delivery System <MAILER-DAEMON@", out);
	put_clean(out, b->reporting_mta, 255);
	fputs(">\r\nTo: <", out);
	/* The sender as it came in MAIL FROM (RFC 5321 syntax already). */
	fputs(b->env->sender, out);
	fprintf(out, ">\r\nSubject: %s\r\n",
		any_failed(b) ? "Undelivered Mail Returned to Sender"
			      : "Successful Mail Delivery Report");
	fprintf(out, "Date: %s\r\n", rfc5322_date(b->now, date, sizeof date));
	fprintf(out, "Message-ID: <%lld.%s@", (long long)b->now, b->env->id);
	put_clean(out, b->reporting_mta, 255);
	fputs(">\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n",
	      out);
	fprintf(out,
		"Content-Type: multipart/report; "
		"report-type=%sdelivery-status;\r\n\tboundary=\"%s\"\r\n\r\n",
		global ? "global-" : "", boundary);
	fputs("This is a MIME-encapsulated message.\r\n\r\n", out);
}

static void
write_human(FILE *out, const struct bounce *b, const struct original *o,
	    bool global)
{
	fprintf(out,
		"Content-Type: text/plain; charset=%s\r\n"
		"Content-Description: Notification\r\n\r\n",
		global ? "utf-8" : "us-ascii");
	fputs("This is the mail system at host ", out);
	put_clean(out, b->reporting_mta, 255);
	fputs(".\r\n\r\n", out);
	if (any_failed(b))
		fputs("Your message could not be delivered to one or more "
		      "recipients.\r\nIt is attached below.\r\n\r\n",
		      out);
	else
		fputs("Your message was handed to a next hop that does not "
		      "send delivery\r\nnotifications; this is the last "
		      "notice you will get about it.\r\n\r\n",
		      out);
	for (size_t i = 0; i < b->n_rcpts; i++) {
		const struct bounce_rcpt *r = &b->rcpts[i];
		fputs("<", out);
		put_address(out, b->env->rcpts[r->rcpt].address, global);
		fputs(">: ", out);
		if (r->outcome == BOUNCE_RELAYED)
			fputs("relayed", out);
		else
			fputs("failed", out);
		if (r->remote_mta != NULL) {
			fputs(", host ", out);
			put_clean(out, r->remote_mta, 255);
			fputs(" said", out);
		}
		if (r->diagnostic != NULL) {
			fputs(": ", out);
			put_clean(out, r->diagnostic, FIELD_MAX);
		}
		fputs("\r\n", out);
	}
	if (o->too_large)
		fprintf(out,
			"\r\nThe message was larger than %d bytes: only its "
			"header section is attached.\r\n",
			BOUNCE_FULL_MAX);
	if (o->cut)
		fprintf(out, "\r\nIts header section was cut at %d bytes.\r\n",
			BOUNCE_HEADERS_MAX);
	fputs("\r\n", out);
}

static void
write_status(FILE *out, const struct bounce *b, bool global)
{
	char date[64];

	fprintf(out,
		"Content-Type: message/%sdelivery-status\r\n"
		"Content-Description: Delivery report\r\n\r\n",
		global ? "global-" : "");
	fputs("Reporting-MTA: dns; ", out);
	put_clean(out, b->reporting_mta, 255);
	fputs("\r\n", out);
	if (b->env->envid != NULL) {
		fputs("Original-Envelope-Id: ", out);
		put_xtext(out, b->env->envid);
		fputs("\r\n", out);
	}
	fprintf(out, "Arrival-Date: %s\r\n",
		rfc5322_date(b->env->received, date, sizeof date));
	for (size_t i = 0; i < b->n_rcpts; i++) {
		const struct bounce_rcpt *r = &b->rcpts[i];
		const struct envelope_rcpt *er = &b->env->rcpts[r->rcpt];
		fputs("\r\n", out);
		if (er->orcpt != NULL) {
			fputs("Original-Recipient: ", out);
			put_xtext(out, er->orcpt);
			fputs("\r\n", out);
		}
		if (is_ascii(er->address)) {
			fputs("Final-Recipient: rfc822; ", out);
			put_clean(out, er->address, FIELD_MAX);
		} else {
			fputs("Final-Recipient: utf-8; ", out);
			put_utf8(out, er->address, FIELD_MAX);
		}
		fprintf(out, "\r\nAction: %s\r\nStatus: %s\r\n",
			r->outcome == BOUNCE_RELAYED ? "relayed" : "failed",
			rcpt_status(r));
		if (r->remote_mta != NULL) {
			fputs("Remote-MTA: dns; ", out);
			put_clean(out, r->remote_mta, 255);
			fputs("\r\n", out);
		}
		if (r->diagnostic != NULL) {
			fputs("Diagnostic-Code: smtp; ", out);
			put_clean(out, r->diagnostic, FIELD_MAX);
			fputs("\r\n", out);
		}
	}
	fputs("\r\n", out);
}

static void
write_original(FILE *out, const struct original *o, bool global)
{
	if (o->headers_only)
		fprintf(out,
			"Content-Type: %s\r\n"
			"Content-Description: Undelivered Message "
			"Headers\r\n\r\n",
			global ? "message/global-headers"
			       : "text/rfc822-headers");
	else
		fprintf(out,
			"Content-Type: %s\r\n"
			"Content-Description: Undelivered Message\r\n\r\n",
			global ? "message/global" : "message/rfc822");
	fwrite(o->text, 1, o->len, out);
}

char *
bounce_format(const struct bounce *b, const char *boundary, size_t *len)
{
	char made[96];
	struct original o;
	char *text = NULL;
	size_t tlen = 0;

	if (boundary == NULL) {
		snprintf(made, sizeof made, "%s.%lld/", b->env->id,
			 (long long)b->now);
		size_t ml = strlen(made);
		for (size_t i = 0; b->reporting_mta[i] != '\0' &&
				   ml + 1 < sizeof made && i < 60;
		     i++) {
			char c = b->reporting_mta[i];
			bool ok = (c >= 'a' && c <= 'z') ||
				  (c >= 'A' && c <= 'Z') ||
				  (c >= '0' && c <= '9') || c == '.' ||
				  c == '-';
			made[ml++] = ok ? c : '_';
		}
		made[ml] = '\0';
		boundary = made;
	}
	bool full = b->env->ret != RET_HDRS;
	bool global = report_global(b);
	if (read_original(b->content_path, full, &o) < 0)
		return NULL;
	FILE *out = open_memstream(&text, &tlen);
	if (out == NULL) {
		free(o.text);
		return NULL;
	}
	write_headers(out, b, boundary, global);
	fprintf(out, "--%s\r\n", boundary);
	write_human(out, b, &o, global);
	fprintf(out, "--%s\r\n", boundary);
	write_status(out, b, global);
	fprintf(out, "--%s\r\n", boundary);
	write_original(out, &o, global);
	fprintf(out, "\r\n--%s--\r\n", boundary);
	free(o.text);
	if (ferror(out)) {
		fclose(out);
		free(text);
		errno = ENOMEM;
		return NULL;
	}
	if (fclose(out) != 0) {
		free(text);
		errno = ENOMEM;
		return NULL;
	}
	*len = tlen;
	return text;
}

/* ------------------------------------------------------------ queue */

struct bounce_commit {
	struct envelope env;
	bounce_queued_cb *cb;
	void *arg;
};

static void
bounce_committed(void *arg, const char *id, int error)
{
	struct bounce_commit *bc = arg;

	(void)id;
	bc->cb(bc->arg, &bc->env, error);
	envelope_clear(&bc->env);
	free(bc);
}

static bool
has_8bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* The notice's envelope: from <>, to the original sender. */
static int
bounce_envelope(struct envelope *env, const struct bounce *b, const char *id,
		const char *text, size_t len)
{
	const struct envelope *orig = b->env;

	memset(env, 0, sizeof *env);
	snprintf(env->id, sizeof env->id, "%s", id);
	env->received = b->now;
	env->sender = strdup("");
	env->body = has_8bit(text, len) ? BODY_8BITMIME : 0;
	/* An internationalised sender address needs SMTPUTF8 on the way. */
	env->smtputf8 = has_8bit(orig->sender, strlen(orig->sender)) ||
			(orig->smtputf8 && env->body == BODY_8BITMIME);
	env->size = len;
	char mid[ENVELOPE_ID_MAX + 300];
	snprintf(mid, sizeof mid, "<%lld.%s@%s>", (long long)b->now, orig->id,
		 b->reporting_mta);
	env->message_id = strdup(mid);
	if (env->sender == NULL || env->message_id == NULL ||
	    envelope_add_rcpt(env, orig->sender, 0, NULL) < 0) {
		envelope_clear(env);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int
bounce_queue(struct spool *spool, const struct bounce *b, bounce_queued_cb *cb,
	     void *arg)
{
	size_t len;
	char *text = bounce_format(b, NULL, &len);
	if (text == NULL)
		return -1;
	struct spool_msg *msg = spool_msg_new(spool);
	if (msg == NULL) {
		int e = errno;
		free(text);
		errno = e;
		return -1;
	}
	struct bounce_commit *bc = calloc(1, sizeof *bc);
	if (bc == NULL || spool_msg_write(msg, text, len) < 0 ||
	    bounce_envelope(&bc->env, b, spool_msg_id(msg), text, len) < 0) {
		int e = errno != 0 ? errno : ENOMEM;
		free(bc);
		free(text);
		spool_msg_abort(msg);
		errno = e;
		return -1;
	}
	free(text);
	bc->cb = cb;
	bc->arg = arg;
	spool_msg_commit(msg, &bc->env, bounce_committed, bc);
	return 0;
}
