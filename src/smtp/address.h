/*
 * address: RFC 5321 paths and mailboxes (4.1.2), with RFC 6531 UTF-8.
 *
 *   smtp_address_parse_path()  parse "<...>" at the start of a string: a
 *       mailbox, the null path "<>" (when allowed), or "<postmaster>";
 *       an obsolete source route "<@a,@b:user@d>" is accepted and dropped.
 *       Quoted local parts are decoded (quotes and backslashes removed);
 *       the domain is the part after the last '@' outside quotes.
 *   smtp_address_format()  write "local@domain" for the wire, quoting the
 *       local part again when it needs it (space, '@', '"', '\\', '>', "..",
 *       leading/trailing dot, other specials).
 *   smtp_domain_valid()  a DNS name or an address literal "[1.2.3.4]",
 *       "[IPv6:...]".  Labels are letters, digits, hyphens (not first or
 *       last) and, for RFC 6531 U-labels, UTF-8; 1-63 octets each, 255 in
 *       all; no trailing dot.
 *   smtp_utf8_valid()  well-formed UTF-8 (RFC 3629: no overlong forms, no
 *       surrogates, nothing above U+10FFFF).
 *
 * The parser never reads past len and never allocates.  Everything between
 * '<' and '>' must be valid UTF-8; a byte >= 0x80 sets ->utf8 and it is the
 * caller's business to require SMTPUTF8 for it (553 5.6.7).
 */
#ifndef BH_SMTP_ADDRESS_H
#define BH_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_PATH_MAX 256	/* RFC 5321 4.5.3.1.3, octets inside <> */
#define SMTP_LOCAL_MAX 256	/* decoded local part (lenient: not 64) */
#define SMTP_DOMAIN_MAX 255

struct smtp_address {
	char local[SMTP_LOCAL_MAX + 1];		/* decoded; NUL never inside */
	char domain[SMTP_DOMAIN_MAX + 1];	/* as sent (case kept) */
	bool is_null;		/* <> */
	bool is_postmaster;	/* <postmaster> without a domain */
	bool utf8;		/* non-ASCII bytes in local part or domain */
};

enum smtp_address_error {
	SMTP_ADDRESS_OK = 0,
	SMTP_ADDRESS_SYNTAX,		/* 501 5.1.3 / 5.1.7 */
	SMTP_ADDRESS_TOO_LONG,		/* 501 5.1.3 path too long */
	SMTP_ADDRESS_NULL_NOT_ALLOWED,	/* 501 5.1.3 */
};

/*
 * Parse a path at s[0..len).  On success *consumed is the number of bytes
 * up to and including '>'.  allow_null: "<>" is valid (MAIL FROM).
 */
enum smtp_address_error smtp_address_parse_path(const char *s, size_t len,
						bool allow_null,
						struct smtp_address *out,
						size_t *consumed);

/*
 * Returns the length written (without NUL); -1 if it does not fit or the
 * local part holds a control byte.  The null path is written as "".
 */
int smtp_address_format(const struct smtp_address *addr, char *out,
			size_t outlen);

bool smtp_domain_valid(const char *domain, size_t len);

bool smtp_utf8_valid(const void *s, size_t len);

#endif
