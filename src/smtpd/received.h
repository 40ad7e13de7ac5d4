/*
 * received: the Received: header field the server prepends to every
 * message it accepts (RFC 5321 4.4, trace information), naming the TLS
 * protocol and cipher when TLS was used (DESIGN.md "Logs").
 *
 *   smtpd_received_format()  the whole field, folded, ending in CRLF.
 *   smtpd_received_with()    the "with" protocol keyword: SMTP, ESMTP,
 *                            ESMTPS (RFC 3848), UTF8SMTP, UTF8SMTPS
 *                            (RFC 6531 3.7.3).
 *
 * Pure: no allocation, no I/O.  Client-supplied text (the EHLO name) is
 * made safe for a header: bytes outside printable ASCII and the comment
 * delimiters become '?'.
 */
#ifndef BH_SMTPD_RECEIVED_H
#define BH_SMTPD_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Longest field smtpd_received_format() can produce. */
#define SMTPD_RECEIVED_MAX 2048

struct smtpd_received {
	const char *helo; /* EHLO/HELO argument; NULL or "" if none */
	const char *addr; /* client address, "192.0.2.7" or "2001:db8::1" */
	bool ipv6;	  /* addr is IPv6: written [IPv6:addr] */
	const char *by;	  /* our name ([server] name) */
	const char *with; /* smtpd_received_with() */
	const char *id;	  /* queue id */
	const char *tls_version; /* NULL without TLS */
	const char *tls_cipher;
	const char *rcpt; /* the recipient when there is exactly one */
	time_t when;
};

/*
 * Writes the field, lines folded with CRLF TAB, ending in CRLF, and a NUL.
 * Returns its length, or -1 if it does not fit in outlen.
 */
int smtpd_received_format(const struct smtpd_received *r, char *out,
			  size_t outlen);

const char *smtpd_received_with(bool ehlo, bool tls, bool smtputf8);

#endif
