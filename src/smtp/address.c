/*
 * address: parse RFC 5321 paths (4.1.2) with the RFC 6531 UTF-8 extension,
 * check domains, and write an address back in wire form.
 *
 *   smtp_address_parse_path()  "<...>" at the start of a string into a
 *       struct smtp_address: null path, <postmaster>, or mailbox (a source
 *       route is checked and dropped); quoted local parts decoded.
 *   smtp_address_format()  "local@domain", quoting the local part again
 *       when it is not a dot-atom.
 *   smtp_domain_valid()  a DNS name (A- or U-labels) or an address literal.
 *   smtp_utf8_valid()  well-formed UTF-8.
 *
 * The input is peer-controlled.  The closing '>' is found with quotes and
 * backslashes respected, so "x> NOTIFY=..."@example.net is one address in
 * example.net (case C12), and the domain is always what follows the '@'
 * after the local part.  Nothing here reads past len, writes into the
 * input, or allocates.
 */
#include "smtp/address.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#define ADDR_LITERAL_MAX 63 /* "IPv6:" + the longest IPv6 text form */
#define LABEL_MAX 63

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5321 atext (RFC 5322 3.2.3) plus RFC 6531 UTF8-non-ascii. */
static bool
is_atext(unsigned char c)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";

	if (is_alpha(c) || is_digit(c) || c >= 0x80)
		return true;
	return c != '\0' && memchr(specials, c, sizeof specials - 1) != NULL;
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8. */
static bool
is_qtext(unsigned char c)
{
	return (c >= 32 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

static bool
ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

bool
smtp_utf8_valid(const void *buf, size_t len)
{
	const unsigned char *s = buf;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false; /* continuation, 0xc0/0xc1, > 0xf4 */
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates, beyond Unicode. */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * One DNS label: Let-dig [Ldh-str] (RFC 5321 4.1.2), or a U-label's UTF-8
 * bytes (RFC 6531 3.3).  The caller checked UTF-8 well-formedness.
 */
static bool
label_valid(const unsigned char *l, size_t n, bool *utf8)
{
	if (n == 0 || n > LABEL_MAX)
		return false;
	if (l[0] == '-' || l[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = l[i];
		if (c >= 0x80)
			*utf8 = true;
		else if (!is_alpha(c) && !is_digit(c) && c != '-')
			return false;
	}
	return true;
}

static bool
dns_name_valid(const char *d, size_t len, bool *utf8)
{
	const unsigned char *s = (const unsigned char *)d;
	size_t start = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	/* An empty last label is a trailing dot: not allowed in SMTP. */
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!label_valid(s + start, i - start, utf8))
			return false;
		start = i + 1;
	}
	return true;
}

/*
 * address-literal (RFC 5321 4.1.3): "[" IPv4 "]" or "[IPv6:" IPv6 "]".
 * General-address-literal tags are refused: nothing could route them.
 * inet_pton needs a NUL-terminated string, so the text is copied first.
 */
static bool
literal_valid(const char *d, size_t len)
{
	char text[ADDR_LITERAL_MAX + 1];
	unsigned char bin[16];

	if (len < 3 || d[0] != '[' || d[len - 1] != ']')
		return false;
	d++;
	len -= 2;
	if (len > ADDR_LITERAL_MAX || memchr(d, '\0', len) != NULL)
		return false;
	if (len > 5 && ascii_ieq(d, "IPv6:", 5)) {
		memcpy(text, d + 5, len - 5);
		text[len - 5] = '\0';
		return inet_pton(AF_INET6, text, bin) == 1;
	}
	memcpy(text, d, len);
	text[len] = '\0';
	return inet_pton(AF_INET, text, bin) == 1;
}

static bool
domain_check(const char *d, size_t len, bool *utf8)
{
	if (len > 0 && d[0] == '[')
		return literal_valid(d, len);
	return dns_name_valid(d, len, utf8);
}

bool
smtp_domain_valid(const char *domain, size_t len)
{
	bool utf8 = false;

	if (domain == NULL || !smtp_utf8_valid(domain, len))
		return false;
	return domain_check(domain, len, &utf8);
}

/*
 * Find the '>' that closes the path opened by s[0] == '<', honouring
 * quoted strings and their backslash escapes.  The scan stops once the
 * path is longer than SMTP_PATH_MAX: an overlong path is refused as such,
 * whatever follows it.
 */
static enum smtp_address_error
path_find_end(const char *s, size_t len, size_t *end)
{
	bool quoted = false;

	for (size_t i = 1; i < len; i++) {
		if (i - 1 > SMTP_PATH_MAX)
			return SMTP_ADDRESS_TOO_LONG;
		char c = s[i];
		if (quoted) {
			if (c == '\\')
				i++; /* the escaped byte, checked later */
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == '>') {
			*end = i;
			return SMTP_ADDRESS_OK;
		}
	}
	return len > SMTP_PATH_MAX + 1 ? SMTP_ADDRESS_TOO_LONG
				       : SMTP_ADDRESS_SYNTAX;
}

/*
 * A-d-l (RFC 5321 4.1.2): "@" Domain *( "," "@" Domain ) ":".  Obsolete
 * source routing; each domain must still be well-formed, then the route
 * is forgotten (RFC 5321 appendix C: relays SHOULD strip it).
 */
static bool
skip_source_route(const char *p, size_t n, size_t *pos)
{
	size_t i = 0;
	bool utf8 = false;

	for (;;) {
		if (i >= n || p[i] != '@')
			return false;
		size_t start = ++i;
		while (i < n && p[i] != ',' && p[i] != ':')
			i++;
		if (i >= n || !domain_check(p + start, i - start, &utf8))
			return false;
		if (p[i++] == ':') {
			*pos = i;
			return true;
		}
	}
}

/* Dot-string: Atom *("." Atom).  Returns false on syntax error. */
static bool
parse_dot_string(const char *p, size_t n, size_t *pos, char *out,
		 size_t *outlen)
{
	size_t i = *pos, o = 0;
	bool need_atext = true; /* at the start or right after a dot */

	while (i < n && p[i] != '@') {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (need_atext)
				return false; /* leading dot or ".." */
			need_atext = true;
		} else if (is_atext(c)) {
			need_atext = false;
		} else {
			return false;
		}
		if (o >= SMTP_LOCAL_MAX)
			return false;
		out[o++] = (char)c;
		i++;
	}
	if (need_atext)
		return false; /* empty or trailing dot */
	*pos = i;
	*outlen = o;
	return true;
}

/* Quoted-string: DQUOTE *QcontentSMTP DQUOTE, decoded into out. */
static bool
parse_quoted_string(const char *p, size_t n, size_t *pos, char *out,
		    size_t *outlen)
{
	size_t i = *pos + 1, o = 0;

	for (;;) {
		if (i >= n)
			return false;
		unsigned char c = (unsigned char)p[i++];
		if (c == '"')
			break;
		if (c == '\\') {
			/* quoted-pairSMTP: %d92 %d32-126 only. */
			if (i >= n)
				return false;
			c = (unsigned char)p[i++];
			if (c < 32 || c > 126)
				return false;
		} else if (!is_qtext(c)) {
			return false;
		}
		if (o >= SMTP_LOCAL_MAX)
			return false;
		out[o++] = (char)c;
	}
	*pos = i;
	*outlen = o;
	return true;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ). */
static enum smtp_address_error
parse_mailbox(const char *p, size_t n, struct smtp_address *out)
{
	size_t i = 0, local_len;
	bool ok;

	if (n > 0 && p[0] == '"')
		ok = parse_quoted_string(p, n, &i, out->local, &local_len);
	else
		ok = parse_dot_string(p, n, &i, out->local, &local_len);
	if (!ok || i >= n || p[i] != '@')
		return SMTP_ADDRESS_SYNTAX;
	i++;
	if (!domain_check(p + i, n - i, &out->utf8))
		return SMTP_ADDRESS_SYNTAX;
	out->local[local_len] = '\0';
	memcpy(out->domain, p + i, n - i);
	out->domain[n - i] = '\0';
	for (size_t k = 0; k < local_len && !out->utf8; k++)
		out->utf8 = (unsigned char)out->local[k] >= 0x80;
	return SMTP_ADDRESS_OK;
}

enum smtp_address_error
smtp_address_parse_path(const char *s, size_t len, bool allow_null,
			struct smtp_address *out, size_t *consumed)
{
	size_t end, pos = 0;
	enum smtp_address_error err;

	memset(out, 0, sizeof *out);
	*consumed = 0;
	if (s == NULL || len == 0 || s[0] != '<')
		return SMTP_ADDRESS_SYNTAX;
	if ((err = path_find_end(s, len, &end)) != SMTP_ADDRESS_OK)
		return err;
	const char *p = s + 1;
	size_t n = end - 1;
	if (n > SMTP_PATH_MAX)
		return SMTP_ADDRESS_TOO_LONG;
	if (n == 0) {
		if (!allow_null)
			return SMTP_ADDRESS_NULL_NOT_ALLOWED;
		out->is_null = true;
		*consumed = end + 1;
		return SMTP_ADDRESS_OK;
	}
	if (!smtp_utf8_valid(p, n))
		return SMTP_ADDRESS_SYNTAX;
	if (p[0] == '@' && !skip_source_route(p, n, &pos))
		return SMTP_ADDRESS_SYNTAX;
	p += pos;
	n -= pos;
	/* RFC 5321 4.5.1: "<Postmaster>" without a domain, any case. */
	if (n == 10 && ascii_ieq(p, "postmaster", 10)) {
		memcpy(out->local, p, n);
		out->local[n] = '\0';
		out->is_postmaster = true;
		*consumed = end + 1;
		return SMTP_ADDRESS_OK;
	}
	if ((err = parse_mailbox(p, n, out)) != SMTP_ADDRESS_OK) {
		memset(out, 0, sizeof *out);
		return err;
	}
	*consumed = end + 1;
	return SMTP_ADDRESS_OK;
}

/*
 * A bounded writer: any overflow (or unwritable input) is remembered and
 * reported at the end.
 */
struct writer {
	char *buf;
	size_t cap, len;
	bool overflow;
};

static void
put(struct writer *w, const char *s, size_t n)
{
	if (w->overflow || w->cap - w->len <= n) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static bool
is_dot_atom(const char *s, size_t n)
{
	bool need_atext = true;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (need_atext)
				return false;
			need_atext = true;
		} else if (is_atext((unsigned char)s[i])) {
			need_atext = false;
		} else {
			return false;
		}
	}
	return !need_atext;
}

static void
put_local(struct writer *w, const char *local)
{
	size_t n = strlen(local);

	/* Control bytes cannot be sent even quoted (quoted-pairSMTP). */
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)local[i] < 32 || local[i] == 127) {
			w->overflow = true;
			return;
		}
	}
	if (is_dot_atom(local, n)) {
		put(w, local, n);
		return;
	}
	put(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (local[i] == '"' || local[i] == '\\')
			put(w, "\\", 1);
		put(w, local + i, 1);
	}
	put(w, "\"", 1);
}

int
smtp_address_format(const struct smtp_address *addr, char *out, size_t outlen)
{
	struct writer w = {out, outlen, 0, false};

	if (outlen == 0)
		return -1;
	if (addr->is_postmaster) {
		put(&w, addr->local, strlen(addr->local));
	} else if (!addr->is_null) {
		put_local(&w, addr->local);
		put(&w, "@", 1);
		put(&w, addr->domain, strlen(addr->domain));
	}
	if (w.overflow) {
		out[0] = '\0';
		return -1;
	}
	out[w.len] = '\0';
	return (int)w.len;
}
