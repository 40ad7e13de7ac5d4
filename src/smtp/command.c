/*
 * command: split an SMTP command line into verb and arguments, and parse
 * the arguments of MAIL and RCPT with their ESMTP parameters.
 *
 *   smtp_command_parse()  verb (case-insensitive, RFC 5321 2.4) and args.
 *   smtp_mail_parse()     "FROM:<path> [SP params]": SIZE (RFC 1870),
 *                         BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531),
 *                         RET and ENVID (RFC 3461), AUTH (RFC 4954).
 *   smtp_rcpt_parse()     "TO:<path> [SP params]": NOTIFY, ORCPT (RFC 3461).
 *
 * Every refusal comes with a reply from the static table below: 501 for
 * malformed input, 555 for an unknown parameter (RFC 5321 4.1.1.11), 553
 * 5.6.7 for a non-ASCII sender without SMTPUTF8.  The parsers are pure:
 * no allocation, no I/O, never a read past len.  Input is hostile: junk
 * after the path must never be read as a second address or parameter
 * (cases C12, C13), numbers must not wrap (C16).
 */
#include "smtp/command.h"

#include <string.h>

/* clang-format off */
/* The replies, one per way a MAIL or RCPT argument can be wrong. */
static const struct smtp_reply r_mail_syntax = {
	501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"};
static const struct smtp_reply r_rcpt_syntax = {
	501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]"};
static const struct smtp_reply r_sender_syntax = {
	501, "5.1.7", "Bad sender address syntax"};
static const struct smtp_reply r_sender_too_long = {
	501, "5.1.7", "Sender path too long"};
static const struct smtp_reply r_sender_junk = {
	501, "5.1.7", "Junk after the sender address"};
static const struct smtp_reply r_sender_no_domain = {
	501, "5.1.7", "Sender address must have a domain"};
static const struct smtp_reply r_sender_utf8 = {
	553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8"};
static const struct smtp_reply r_rcpt_addr_syntax = {
	501, "5.1.3", "Bad recipient address syntax"};
static const struct smtp_reply r_rcpt_too_long = {
	501, "5.1.3", "Recipient path too long"};
static const struct smtp_reply r_rcpt_null = {
	501, "5.1.3", "Null recipient address not allowed"};
static const struct smtp_reply r_rcpt_junk = {
	501, "5.1.3", "Junk after the recipient address"};
static const struct smtp_reply r_param_malformed = {
	501, "5.5.4", "Malformed parameter"};
static const struct smtp_reply r_param_unknown = {
	555, "5.5.4", "Unsupported parameter"};
static const struct smtp_reply r_param_dup = {
	501, "5.5.4", "Duplicate parameter"};
static const struct smtp_reply r_size_bad = {
	501, "5.5.4", "Bad SIZE value"};
static const struct smtp_reply r_body_bad = {
	501, "5.5.4", "Bad BODY value"};
static const struct smtp_reply r_body_binary = {
	501, "5.5.4", "BODY=BINARYMIME requires CHUNKING"};
static const struct smtp_reply r_smtputf8_value = {
	501, "5.5.4", "SMTPUTF8 takes no value"};
static const struct smtp_reply r_ret_bad = {
	501, "5.5.4", "Bad RET value"};
static const struct smtp_reply r_envid_bad = {
	501, "5.5.4", "Bad ENVID value"};
static const struct smtp_reply r_auth_bad = {
	501, "5.5.4", "Bad AUTH value"};
static const struct smtp_reply r_notify_bad = {
	501, "5.5.4", "Bad NOTIFY value"};
static const struct smtp_reply r_orcpt_bad = {
	501, "5.5.4", "Bad ORCPT value"};
/* clang-format on */

/* clang-format off */
static const struct {
	const char *name;
	size_t len;
	enum smtp_verb verb;
} verbs[] = {
	{"HELO", 4, SMTP_VERB_HELO},
	{"EHLO", 4, SMTP_VERB_EHLO},
	{"MAIL", 4, SMTP_VERB_MAIL},
	{"RCPT", 4, SMTP_VERB_RCPT},
	{"DATA", 4, SMTP_VERB_DATA},
	{"BDAT", 4, SMTP_VERB_BDAT},
	{"RSET", 4, SMTP_VERB_RSET},
	{"NOOP", 4, SMTP_VERB_NOOP},
	{"QUIT", 4, SMTP_VERB_QUIT},
	{"VRFY", 4, SMTP_VERB_VRFY},
	{"EXPN", 4, SMTP_VERB_EXPN},
	{"HELP", 4, SMTP_VERB_HELP},
	{"STARTTLS", 8, SMTP_VERB_STARTTLS},
	{"AUTH", 4, SMTP_VERB_AUTH},
};
/* clang-format on */

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of s[0..n) with the NUL-terminated word. */
static bool
word_ieq(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n && word[i] != '\0'; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)word[i]))
			return false;
	return i == n && word[i] == '\0';
}

int
smtp_command_parse(const char *line, size_t len, struct smtp_command *out)
{
	size_t v = 0, a, e;

	out->verb = SMTP_VERB_UNKNOWN;
	out->args = line;
	out->args_len = 0;
	/* A NUL anywhere makes the line unusable: C string handling later
	 * on would see a different line than the one we checked. */
	if (len == 0 || memchr(line, '\0', len) != NULL)
		return -1;
	while (v < len && line[v] != ' ')
		if ((unsigned char)line[v++] >= 0x80)
			return -1;
	if (v == 0)
		return -1;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		if (v == verbs[i].len && word_ieq(line, v, verbs[i].name)) {
			out->verb = verbs[i].verb;
			break;
		}
	}
	for (a = v; a < len && line[a] == ' '; a++)
		;
	for (e = len; e > a && (line[e - 1] == ' ' || line[e - 1] == '\t'); e--)
		;
	out->args = line + a;
	out->args_len = e - a;
	return 0;
}

/* One ESMTP parameter: keyword [ "=" value ] (RFC 5321 4.1.2). */
struct param {
	const char *key;
	size_t key_len;
	const char *value; /* NULL when there is no '=' */
	size_t value_len;
};

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/*
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value =
 * 1*(%d33-60 / %d62-126), extended by RFC 6531 with UTF-8 (checked by the
 * parameters that allow it).  False when the token is not a parameter at
 * all, e.g. a second "<path>".
 */
static bool
param_split(const char *tok, size_t n, struct param *p)
{
	const char *eq = memchr(tok, '=', n);
	size_t klen = eq != NULL ? (size_t)(eq - tok) : n;

	if (klen == 0 || !is_alnum((unsigned char)tok[0]))
		return false;
	for (size_t i = 1; i < klen; i++)
		if (!is_alnum((unsigned char)tok[i]) && tok[i] != '-')
			return false;
	p->key = tok;
	p->key_len = klen;
	p->value = NULL;
	p->value_len = 0;
	if (eq == NULL)
		return true;
	p->value = eq + 1;
	p->value_len = n - klen - 1;
	for (size_t i = 0; i < p->value_len; i++) {
		unsigned char c = (unsigned char)p->value[i];
		if (c < 33 || c == '=' || c == 127)
			return false;
	}
	return true;
}

/* A parameter handler returns NULL when the value is good. */
typedef const struct smtp_reply *(*param_fn)(const struct param *p, void *ctx);

struct param_def {
	const char *name;
	param_fn fn;
};

/*
 * Walk the parameters after the path: each one is preceded by one or more
 * spaces.  Unknown keyword: 555; a keyword twice: 501.
 */
static const struct smtp_reply *
params_parse(const char *s, size_t len, const struct param_def *defs,
	     size_t ndefs, void *ctx)
{
	unsigned seen = 0;
	size_t i = 0;

	while (i < len) {
		size_t start;
		struct param p;
		size_t d;

		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		for (start = i; i < len && s[i] != ' '; i++)
			;
		if (!param_split(s + start, i - start, &p))
			return &r_param_malformed;
		for (d = 0; d < ndefs; d++)
			if (word_ieq(p.key, p.key_len, defs[d].name))
				break;
		if (d == ndefs)
			return &r_param_unknown;
		if (seen & (1u << d))
			return &r_param_dup;
		seen |= 1u << d;
		const struct smtp_reply *err = defs[d].fn(&p, ctx);
		if (err != NULL)
			return err;
	}
	return NULL;
}

static bool
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	       (c >= 'a' && c <= 'f');
}

/*
 * xtext (RFC 3461 4): xchar = %d33-42 / %d44-60 / %d62-126 ("+" and "="
 * excluded), hexchar = "+" 2HEXDIG.  RFC 3461 wants upper-case hex; lower
 * case is accepted since it decodes unambiguously.  utf8: bytes >= 0x80
 * are allowed too (RFC 6533 utf-8-addr-unitext), if well-formed.
 */
static bool
xtext_valid(const char *s, size_t n, bool utf8)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (n - i < 3 || !is_hex((unsigned char)s[i + 1]) ||
			    !is_hex((unsigned char)s[i + 2]))
				return false;
			i += 2;
		} else if (c >= 0x80) {
			if (!utf8)
				return false;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return !utf8 || smtp_utf8_valid(s, n);
}

/* RFC 1870: 1*DIGIT; refuse anything that does not fit in 63 bits. */
static const struct smtp_reply *
mail_size(const struct param *p, void *ctx)
{
	struct smtp_mail *m = ctx;
	uint64_t v = 0;
	const uint64_t limit = UINT64_C(0x7fffffffffffffff);

	if (p->value == NULL || p->value_len == 0)
		return &r_size_bad;
	for (size_t i = 0; i < p->value_len; i++) {
		unsigned char c = (unsigned char)p->value[i];
		if (c < '0' || c > '9')
			return &r_size_bad;
		if (v > (limit - (c - '0')) / 10)
			return &r_size_bad;
		v = v * 10 + (c - '0');
	}
	m->has_size = true;
	m->size = v;
	return NULL;
}

static const struct smtp_reply *
mail_body(const struct param *p, void *ctx)
{
	struct smtp_mail *m = ctx;

	/* BINARYMIME is checked against CHUNKING once all are parsed. */
	if (p->value == NULL)
		return &r_body_bad;
	if (word_ieq(p->value, p->value_len, "7BIT"))
		m->body = SMTP_BODY_7BIT;
	else if (word_ieq(p->value, p->value_len, "8BITMIME"))
		m->body = SMTP_BODY_8BITMIME;
	else if (word_ieq(p->value, p->value_len, "BINARYMIME"))
		m->body = SMTP_BODY_BINARYMIME;
	else
		return &r_body_bad;
	return NULL;
}

static const struct smtp_reply *
mail_smtputf8(const struct param *p, void *ctx)
{
	struct smtp_mail *m = ctx;

	if (p->value != NULL)
		return &r_smtputf8_value;
	m->smtputf8 = true;
	return NULL;
}

static const struct smtp_reply *
mail_ret(const struct param *p, void *ctx)
{
	struct smtp_mail *m = ctx;

	if (p->value != NULL && word_ieq(p->value, p->value_len, "FULL"))
		m->ret = SMTP_RET_FULL;
	else if (p->value != NULL && word_ieq(p->value, p->value_len, "HDRS"))
		m->ret = SMTP_RET_HDRS;
	else
		return &r_ret_bad;
	return NULL;
}

/* RFC 3461 4.4: ENVID=xtext, at most 100 characters. */
static const struct smtp_reply *
mail_envid(const struct param *p, void *ctx)
{
	struct smtp_mail *m = ctx;

	if (p->value == NULL || p->value_len == 0 ||
	    p->value_len > SMTP_ENVID_MAX ||
	    !xtext_valid(p->value, p->value_len, false))
		return &r_envid_bad;
	memcpy(m->envid, p->value, p->value_len);
	m->envid[p->value_len] = '\0';
	return NULL;
}

/*
 * RFC 4954 5: AUTH=<mailbox as xtext> or AUTH=<>.  We do not act on it
 * (it only matters between trusting peers), but it must be well-formed.
 */
static const struct smtp_reply *
mail_auth(const struct param *p, void *ctx)
{
	(void)ctx;
	if (p->value == NULL || p->value_len == 0)
		return &r_auth_bad;
	if (p->value_len == 2 && p->value[0] == '<' && p->value[1] == '>')
		return NULL;
	return xtext_valid(p->value, p->value_len, true) ? NULL : &r_auth_bad;
}

/* clang-format off */
static const struct param_def mail_params[] = {
	{"SIZE", mail_size},	 {"BODY", mail_body}, {"SMTPUTF8", mail_smtputf8},
	{"RET", mail_ret},	 {"ENVID", mail_envid}, {"AUTH", mail_auth},
};
/* clang-format on */

/* "FROM:" / "TO:" then optional spaces (tolerated, case C15). */
static bool
skip_prefix(const char *s, size_t len, const char *word, size_t *pos)
{
	size_t n = strlen(word);

	if (len < n || !word_ieq(s, n, word))
		return false;
	while (n < len && s[n] == ' ')
		n++;
	*pos = n;
	return true;
}

static int
fail(struct smtp_reply *err, const struct smtp_reply *r)
{
	*err = *r;
	return -1;
}

int
smtp_mail_parse(const char *args, size_t len, bool chunking,
		struct smtp_mail *out, struct smtp_reply *err)
{
	size_t pos, used;
	const struct smtp_reply *r;

	memset(out, 0, sizeof *out);
	if (!skip_prefix(args, len, "FROM:", &pos))
		return fail(err, &r_mail_syntax);
	switch (smtp_address_parse_path(args + pos, len - pos, true, &out->from,
					&used)) {
	case SMTP_ADDRESS_OK:
		break;
	case SMTP_ADDRESS_TOO_LONG:
		return fail(err, &r_sender_too_long);
	default:
		return fail(err, &r_sender_syntax);
	}
	/* RFC 5321 4.5.1: <postmaster> is a forward-path only. */
	if (out->from.is_postmaster)
		return fail(err, &r_sender_no_domain);
	pos += used;
	if (pos < len && args[pos] != ' ')
		return fail(err, &r_sender_junk);
	r = params_parse(args + pos, len - pos, mail_params,
			 sizeof mail_params / sizeof mail_params[0], out);
	if (r != NULL)
		return fail(err, r);
	if (out->body == SMTP_BODY_BINARYMIME && !chunking)
		return fail(err, &r_body_binary);
	/* RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter. */
	if (out->from.utf8 && !out->smtputf8)
		return fail(err, &r_sender_utf8);
	return 0;
}

/* RFC 3461 4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY. */
static const struct smtp_reply *
rcpt_notify(const struct param *p, void *ctx)
{
	struct smtp_rcpt *r = ctx;
	size_t i = 0;
	unsigned bits = 0;

	if (p->value == NULL || p->value_len == 0)
		return &r_notify_bad;
	while (i <= p->value_len) {
		const char *w = p->value + i;
		const char *comma = memchr(w, ',', p->value_len - i);
		size_t n =
			comma != NULL ? (size_t)(comma - w) : p->value_len - i;

		if (word_ieq(w, n, "NEVER"))
			bits |= SMTP_NOTIFY_NEVER;
		else if (word_ieq(w, n, "SUCCESS"))
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (word_ieq(w, n, "FAILURE"))
			bits |= SMTP_NOTIFY_FAILURE;
		else if (word_ieq(w, n, "DELAY"))
			bits |= SMTP_NOTIFY_DELAY;
		else
			return &r_notify_bad; /* also an empty item */
		i += n + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return &r_notify_bad;
	r->notify = bits;
	return NULL;
}

/*
 * RFC 3461 4.2: ORCPT=addr-type ";" xtext, addr-type an atom ("rfc822",
 * "utf-8").  Kept as sent.  Only the syntax is checked: "rfc822;root" is
 * a valid original recipient (case C18).  For addr-type utf-8 (RFC 6533)
 * the value may carry UTF-8.
 */
static const struct smtp_reply *
rcpt_orcpt(const struct param *p, void *ctx)
{
	struct smtp_rcpt *r = ctx;
	const char *semi;
	size_t tlen;

	if (p->value == NULL || p->value_len > SMTP_ORCPT_MAX)
		return &r_orcpt_bad;
	semi = memchr(p->value, ';', p->value_len);
	if (semi == NULL)
		return &r_orcpt_bad;
	tlen = (size_t)(semi - p->value);
	if (tlen == 0 || tlen + 1 == p->value_len)
		return &r_orcpt_bad;
	for (size_t i = 0; i < tlen; i++)
		if (!is_alnum((unsigned char)p->value[i]) && p->value[i] != '-')
			return &r_orcpt_bad;
	if (!xtext_valid(semi + 1, p->value_len - tlen - 1,
			 word_ieq(p->value, tlen, "utf-8")))
		return &r_orcpt_bad;
	memcpy(r->orcpt, p->value, p->value_len);
	r->orcpt[p->value_len] = '\0';
	return NULL;
}

/* clang-format off */
static const struct param_def rcpt_params[] = {
	{"NOTIFY", rcpt_notify},
	{"ORCPT", rcpt_orcpt},
};
/* clang-format on */

int
smtp_rcpt_parse(const char *args, size_t len, struct smtp_rcpt *out,
		struct smtp_reply *err)
{
	size_t pos, used;
	const struct smtp_reply *r;

	memset(out, 0, sizeof *out);
	if (!skip_prefix(args, len, "TO:", &pos))
		return fail(err, &r_rcpt_syntax);
	switch (smtp_address_parse_path(args + pos, len - pos, false, &out->to,
					&used)) {
	case SMTP_ADDRESS_OK:
		break;
	case SMTP_ADDRESS_TOO_LONG:
		return fail(err, &r_rcpt_too_long);
	case SMTP_ADDRESS_NULL_NOT_ALLOWED:
		return fail(err, &r_rcpt_null);
	default:
		return fail(err, &r_rcpt_addr_syntax);
	}
	pos += used;
	if (pos < len && args[pos] != ' ')
		return fail(err, &r_rcpt_junk);
	r = params_parse(args + pos, len - pos, rcpt_params,
			 sizeof rcpt_params / sizeof rcpt_params[0], out);
	if (r != NULL)
		return fail(err, r);
	return 0;
}
