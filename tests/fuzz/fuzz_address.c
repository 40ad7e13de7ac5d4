/*
 * fuzz_address: libFuzzer harness for the path parser and formatter.
 *
 * Input: byte 0 bit 0 is allow_null, the rest is the path text, copied to
 * a buffer of its exact size so that a read past len is caught.  Checks:
 * consumed ends on the closing '>', the decoded parts are NUL-terminated
 * inside their arrays, the domain is valid, and format -> parse gives the
 * same address back (what the relay sends on is what it understood, case
 * C12).  smtp_domain_valid() and smtp_utf8_valid() run on the raw bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_parsed(const char *s, size_t len, bool allow_null,
	     const struct smtp_address *a, size_t used)
{
	if (used < 2 || used > len || s[0] != '<' || s[used - 1] != '>')
		abort();
	if (used - 2 > SMTP_PATH_MAX)
		abort();
	if (memchr(a->local, '\0', sizeof a->local) == NULL ||
	    memchr(a->domain, '\0', sizeof a->domain) == NULL)
		abort();
	if (a->is_null && (!allow_null || used != 2))
		abort();
	if (!a->is_null && !a->is_postmaster &&
	    !smtp_domain_valid(a->domain, strlen(a->domain)))
		abort();
}

static void
round_trip(const struct smtp_address *a)
{
	char wire[SMTP_LOCAL_MAX * 2 + SMTP_DOMAIN_MAX + 8];
	char path[sizeof wire + 2];
	struct smtp_address b;
	size_t used;

	int n = smtp_address_format(a, wire, sizeof wire);
	if (n < 0 || (size_t)n != strlen(wire))
		abort();
	path[0] = '<';
	memcpy(path + 1, wire, (size_t)n);
	path[n + 1] = '>';
	enum smtp_address_error e =
		smtp_address_parse_path(path, (size_t)n + 2, true, &b, &used);
	/* Quoting can make a near-limit path too long; nothing else. */
	if (e == SMTP_ADDRESS_TOO_LONG)
		return;
	if (e != SMTP_ADDRESS_OK || used != (size_t)n + 2 ||
	    strcmp(a->local, b.local) != 0 ||
	    strcmp(a->domain, b.domain) != 0 || a->is_null != b.is_null ||
	    a->is_postmaster != b.is_postmaster || a->utf8 != b.utf8) {
		fprintf(stderr, "fuzz_address: \"%s\" does not parse back\n",
			wire);
		abort();
	}
	/* A too-small buffer fails cleanly. */
	if (n > 0 && smtp_address_format(a, wire, (size_t)n) != -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_address a;
	size_t used;

	if (size < 1)
		return 0;
	bool allow_null = data[0] & 1;
	size_t len = size - 1;
	char *s = malloc(len > 0 ? len : 1);
	if (s == NULL)
		return 0;
	memcpy(s, data + 1, len);

	enum smtp_address_error e =
		smtp_address_parse_path(s, len, allow_null, &a, &used);
	if (e == SMTP_ADDRESS_OK) {
		check_parsed(s, len, allow_null, &a, used);
		round_trip(&a);
	} else if (used != 0) {
		abort();
	}
	bool dv = smtp_domain_valid(s, len);
	if (dv && (len == 0 || len > SMTP_DOMAIN_MAX ||
		   memchr(s, '\0', len) != NULL || !smtp_utf8_valid(s, len)))
		abort();
	free(s);
	return 0;
}
