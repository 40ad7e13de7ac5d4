/*
 * received: the Received: trace field (RFC 5321 4.4) for an accepted
 * message.  See received.h.  The shape, one clause per folded line:
 *
 *   Received: from client.example.org ([198.51.100.7])
 *   	by bh1.example.com (bridgehead) with ESMTPS id 0123456789abcdef
 *   	(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384)
 *   	for <rcpt@example.net>; Tue, 03 Dec 2024 17:00:00 +0000
 *
 * "from" names the EHLO argument and, in the comment, the address the
 * connection came from (no reverse DNS: the relay does not look it up);
 * "for" appears only with a single recipient, so that one copy's header
 * never lists the other recipients (RFC 5321 7.2).
 */
#include "smtpd/received.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct out {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->overflow = true;
		return;
	}
	o->len += (size_t)n;
}

/* Peer text inside a header: printable ASCII without comment syntax. */
static void
safe_copy(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;

	for (; src != NULL && src[i] != '\0' && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x21 || c > 0x7e || c == '(' || c == ')' ||
			  c == '\\')
				 ? '?'
				 : (char)c;
	}
	dst[i] = '\0';
}

const char *
smtpd_received_with(bool ehlo, bool tls, bool smtputf8)
{
	if (smtputf8)
		return tls ? "UTF8SMTPS" : "UTF8SMTP";
	if (tls)
		return "ESMTPS";
	return ehlo ? "ESMTP" : "SMTP";
}

int
smtpd_received_format(const struct smtpd_received *r, char *out, size_t outlen)
{
	struct out o = {out, outlen, 0, outlen == 0};
	char helo[256];
	char date[64];
	struct tm tm;

	safe_copy(helo, sizeof helo, r->helo);
	if (localtime_r(&r->when, &tm) == NULL ||
	    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		return -1;

	out_printf(&o, "Received: from %s (%s%s%s])\r\n",
		   helo[0] != '\0' ? helo : "unknown", "[",
		   r->ipv6 ? "IPv6:" : "", r->addr);
	out_printf(&o, "\tby %s (bridgehead) with %s id %s\r\n", r->by, r->with,
		   r->id);
	if (r->tls_version != NULL)
		out_printf(&o, "\t(version=%s cipher=%s)\r\n", r->tls_version,
			   r->tls_cipher != NULL ? r->tls_cipher : "unknown");
	if (r->rcpt != NULL && strpbrk(r->rcpt, "\r\n") == NULL)
		out_printf(&o, "\tfor <%s>; %s\r\n", r->rcpt, date);
	else
		out_printf(&o, "\t; %s\r\n", date);
	if (o.overflow)
		return -1;
	return (int)o.len;
}
