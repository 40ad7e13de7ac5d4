/*
 * envelope: the queue's record of a message besides its content, and its
 * text form on disk (docs/queue-format.md has the format with an example).
 *
 *   envelope_format()   struct -> "bridgehead-envelope 1" ... "end".
 *   envelope_parse()    the reverse; refuses another version (naming it),
 *                       unknown keys, a missing end marker (torn write),
 *                       duplicate single-valued keys, bad numbers and times.
 *   envelope_clear()    free everything an envelope owns.
 *   envelope_add_rcpt(), envelope_add_attempt()   grow the lists.
 *   envelope_notify_words(), envelope_rcpt_state_name(),
 *   envelope_body_name(), envelope_ret_name(), envelope_state(),
 *   envelope_time_format()   words and times for display.
 *
 * The format is line based: "key value", one per line.  Values hold any
 * byte but NUL; '%', CR, LF, the other control bytes and DEL are written as
 * %XX (and a space at either end of a value, so editors cannot lose it).
 * The list lines (rcpt, attempt) are space-separated fields, so a space
 * inside a field is %20 too.  Bytes >= 0x80 (UTF-8) are written as they
 * are, so a `cat` shows them.  Parsing is strict: this is our own format
 * and anything unexpected means corruption, which the spool moves aside.
 *
 * RFC 3461 (DSN): NOTIFY is stored as its words, ORCPT and ENVID as the
 * xtext the client sent.
 */
#include "queue/envelope.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define ENVELOPE_MAGIC "bridgehead-envelope"

/*
 * Values of enum smtp_body, enum smtp_ret and the SMTP_NOTIFY_* bits from
 * src/smtp/command.h, repeated here because the queue does not depend on
 * the protocol module.  Keep the two in step.
 */
#define ENV_NOTIFY_NEVER 0x1
#define ENV_NOTIFY_SUCCESS 0x2
#define ENV_NOTIFY_FAILURE 0x4
#define ENV_NOTIFY_DELAY 0x8

static const char *const body_names[] = {"none", "7bit", "8bitmime",
					 "binarymime"};
static const char *const ret_names[] = {"none", "full", "hdrs"};
static const char *const state_names[] = {"pending", "delivered", "failed"};

static const struct {
	unsigned bit;
	const char *word;
} notify_words[] = {
	{ENV_NOTIFY_NEVER, "NEVER"},
	{ENV_NOTIFY_SUCCESS, "SUCCESS"},
	{ENV_NOTIFY_FAILURE, "FAILURE"},
	{ENV_NOTIFY_DELAY, "DELAY"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- words */

const char *
envelope_notify_words(unsigned notify, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < NELEM(notify_words); i++) {
		if ((notify & notify_words[i].bit) == 0)
			continue;
		size_t wl = strlen(notify_words[i].word);
		size_t need = wl + (o > 0 ? 1 : 0);
		if (o + need + 1 > len)
			break;
		if (o > 0)
			buf[o++] = ',';
		memcpy(buf + o, notify_words[i].word, wl);
		o += wl;
		buf[o] = '\0';
	}
	return buf;
}

const char *
envelope_rcpt_state_name(enum envelope_rcpt_state state)
{
	if ((size_t)state < NELEM(state_names))
		return state_names[state];
	return "unknown";
}

const char *
envelope_body_name(int body)
{
	if (body >= 0 && (size_t)body < NELEM(body_names))
		return body_names[body];
	return "unknown";
}

const char *
envelope_ret_name(int ret)
{
	if (ret >= 0 && (size_t)ret < NELEM(ret_names))
		return ret_names[ret];
	return "unknown";
}

const char *
envelope_state(const struct envelope *env, time_t now)
{
	if (env->held)
		return "held";
	if (env->n_attempts > 0 || env->next_attempt > now)
		return "deferred";
	return "active";
}

const char *
envelope_time_format(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0)
		return buf;
	if (gmtime_r(&t, &tm) == NULL) {
		buf[0] = '\0';
		return buf;
	}
	int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
	return buf;
}

/* --------------------------------------------------------------- lists */

/*
 * The lists grow one element at a time: the struct has no capacity field
 * and callers may have built the arrays themselves.  With at most a few
 * thousand recipients the copying realloc() may do costs nothing visible.
 */
int
envelope_add_rcpt(struct envelope *env, const char *address, unsigned notify,
		  const char *orcpt)
{
	if (address == NULL || *address == '\0') {
		errno = EINVAL;
		return -1;
	}
	struct envelope_rcpt *r =
		realloc(env->rcpts, (env->n_rcpts + 1) * sizeof *r);
	if (r == NULL)
		return -1;
	env->rcpts = r;
	struct envelope_rcpt *nr = &r[env->n_rcpts];
	memset(nr, 0, sizeof *nr);
	nr->address = strdup(address);
	nr->orcpt = orcpt != NULL ? strdup(orcpt) : NULL;
	if (nr->address == NULL || (orcpt != NULL && nr->orcpt == NULL)) {
		free(nr->address);
		free(nr->orcpt);
		errno = ENOMEM;
		return -1;
	}
	nr->notify = notify;
	nr->state = ENVELOPE_RCPT_PENDING;
	env->n_rcpts++;
	return 0;
}

int
envelope_add_attempt(struct envelope *env, time_t at, const char *host,
		     const char *reply)
{
	struct envelope_attempt *a =
		realloc(env->attempts, (env->n_attempts + 1) * sizeof *a);
	if (a == NULL)
		return -1;
	env->attempts = a;
	struct envelope_attempt *na = &a[env->n_attempts];
	memset(na, 0, sizeof *na);
	na->at = at;
	na->host = host != NULL ? strdup(host) : NULL;
	na->reply = reply != NULL ? strdup(reply) : NULL;
	if ((host != NULL && na->host == NULL) ||
	    (reply != NULL && na->reply == NULL)) {
		free(na->host);
		free(na->reply);
		errno = ENOMEM;
		return -1;
	}
	env->n_attempts++;
	return 0;
}

void
envelope_clear(struct envelope *env)
{
	free(env->sender);
	free(env->envid);
	free(env->message_id);
	free(env->listener);
	free(env->client_addr);
	free(env->helo);
	free(env->tls_version);
	free(env->tls_cipher);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].last_reply);
	}
	free(env->rcpts);
	for (size_t i = 0; i < env->n_attempts; i++) {
		free(env->attempts[i].host);
		free(env->attempts[i].reply);
	}
	free(env->attempts);
	memset(env, 0, sizeof *env);
}

/* -------------------------------------------------------------- format */

struct obuf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

static void
obuf_put(struct obuf *b, const void *p, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
obuf_str(struct obuf *b, const char *s)
{
	obuf_put(b, s, strlen(s));
}

/*
 * Escape one value.  list: the value is one space-separated field of a
 * list line, so every space is escaped; otherwise only a space at either
 * end is (trailing blanks are easy to lose).
 */
static void
obuf_value(struct obuf *b, const char *s, bool list)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool esc = c == '%' || c < 0x20 || c == 0x7f ||
			   (c == ' ' && (list || i == 0 || i == n - 1));
		if (!esc) {
			obuf_put(b, &s[i], 1);
			continue;
		}
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		obuf_put(b, e, 3);
	}
}

static void
obuf_kv(struct obuf *b, const char *key, const char *value)
{
	obuf_str(b, key);
	if (*value != '\0') { /* "sender" alone: the null path */
		obuf_put(b, " ", 1);
		obuf_value(b, value, false);
	}
	obuf_put(b, "\n", 1);
}

static void
obuf_kv_u64(struct obuf *b, const char *key, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	obuf_kv(b, key, num);
}

static void
obuf_kv_time(struct obuf *b, const char *key, time_t t)
{
	char ts[ENVELOPE_TIME_MAX];
	obuf_kv(b, key, envelope_time_format(t, ts, sizeof ts));
}

/* " name=value" as a field of a list line. */
static void
obuf_field(struct obuf *b, const char *name, const char *value)
{
	obuf_put(b, " ", 1);
	obuf_str(b, name);
	obuf_put(b, "=", 1);
	obuf_value(b, value, true);
}

static void
format_rcpt(struct obuf *b, const struct envelope_rcpt *r)
{
	char words[ENVELOPE_NOTIFY_WORDS_MAX];

	obuf_str(b, "rcpt ");
	obuf_value(b, r->address, true);
	if (r->notify != 0)
		obuf_field(
			b, "notify",
			envelope_notify_words(r->notify, words, sizeof words));
	if (r->orcpt != NULL)
		obuf_field(b, "orcpt", r->orcpt);
	obuf_field(b, "state", envelope_rcpt_state_name(r->state));
	if (r->last_reply != NULL)
		obuf_field(b, "reply", r->last_reply);
	obuf_put(b, "\n", 1);
}

static void
format_attempt(struct obuf *b, const struct envelope_attempt *a)
{
	char ts[ENVELOPE_TIME_MAX];

	obuf_str(b, "attempt ");
	obuf_str(b, envelope_time_format(a->at, ts, sizeof ts));
	if (a->host != NULL)
		obuf_field(b, "host", a->host);
	if (a->reply != NULL)
		obuf_field(b, "reply", a->reply);
	obuf_put(b, "\n", 1);
}

char *
envelope_format(const struct envelope *env, size_t *len)
{
	struct obuf b = {0};
	char hdr[64];

	snprintf(hdr, sizeof hdr, "%s %d\n", ENVELOPE_MAGIC, ENVELOPE_VERSION);
	obuf_str(&b, hdr);
	obuf_kv(&b, "id", env->id);
	obuf_kv_time(&b, "received", env->received);
	obuf_kv(&b, "sender", env->sender != NULL ? env->sender : "");
	obuf_kv_u64(&b, "size", env->size);
	obuf_kv(&b, "body", envelope_body_name(env->body));
	obuf_kv(&b, "smtputf8", env->smtputf8 ? "yes" : "no");
	obuf_kv(&b, "ret", envelope_ret_name(env->ret));
	if (env->envid != NULL)
		obuf_kv(&b, "envid", env->envid);
	if (env->message_id != NULL)
		obuf_kv(&b, "message-id", env->message_id);
	if (env->listener != NULL)
		obuf_kv(&b, "listener", env->listener);
	if (env->client_addr != NULL)
		obuf_kv(&b, "client-addr", env->client_addr);
	if (env->client_port != 0)
		obuf_kv_u64(&b, "client-port", env->client_port);
	if (env->helo != NULL)
		obuf_kv(&b, "helo", env->helo);
	if (env->tls_version != NULL)
		obuf_kv(&b, "tls-version", env->tls_version);
	if (env->tls_cipher != NULL)
		obuf_kv(&b, "tls-cipher", env->tls_cipher);
	if (env->next_attempt != 0)
		obuf_kv_time(&b, "next-attempt", env->next_attempt);
	obuf_kv(&b, "held", env->held ? "yes" : "no");
	for (size_t i = 0; i < env->n_rcpts; i++)
		format_rcpt(&b, &env->rcpts[i]);
	for (size_t i = 0; i < env->n_attempts; i++)
		format_attempt(&b, &env->attempts[i]);
	obuf_str(&b, "end\n");
	if (b.failed) {
		free(b.data);
		errno = ENOMEM;
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.data;
}

/* --------------------------------------------------------------- parse */

struct pctx {
	struct envelope *env;
	size_t lineno;
	char *err;
	size_t errlen;
};

static int perr(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
perr(struct pctx *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p->lineno > 0)
		snprintf(p->err, p->errlen, "line %zu: %s", p->lineno, msg);
	else
		snprintf(p->err, p->errlen, "%s", msg);
	return -1;
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

/* Undo obuf_value(): a malloc'd NUL-terminated copy, or NULL after perr(). */
static char *
decode(struct pctx *p, const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL) {
		perr(p, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			perr(p, "unescaped control byte 0x%02x", c);
			goto fail;
		}
		if (c != '%') {
			out[o++] = (char)c;
			continue;
		}
		int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			perr(p, "bad %%-escape");
			goto fail;
		}
		if (hi == 0 && lo == 0) {
			perr(p, "%%00: values cannot hold NUL");
			goto fail;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

static int
parse_u64(struct pctx *p, const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || (n > 1 && s[0] == '0'))
		return perr(p, "bad number '%.*s'", (int)(n > 24 ? 24 : n), s);
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return perr(p, "bad number '%.*s'",
				    (int)(n > 24 ? 24 : n), s);
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return perr(p, "number '%.*s' is too large",
				    (int)(n > 24 ? 24 : n), s);
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ", a real date, UTC. */
static int
parse_time(struct pctx *p, const char *s, size_t n, time_t *out)
{
	struct tm tm = {0}, back;
	int y, mo, d, h, mi, se;

	if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':' || s[19] != 'Z' || digits(s, 4, &y) ||
	    digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
	    digits(s + 17, 2, &se))
		goto bad;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	/* timegm() normalises Feb 30 into March: compare to refuse it. */
	if (gmtime_r(&t, &back) == NULL || back.tm_year != y - 1900 ||
	    back.tm_mon != mo - 1 || back.tm_mday != d || back.tm_hour != h ||
	    back.tm_min != mi || back.tm_sec != se)
		goto bad;
	*out = t;
	return 0;
bad:
	return perr(p, "bad time '%.*s' (want YYYY-MM-DDTHH:MM:SSZ)",
		    (int)(n > 32 ? 32 : n), s);
}

static int
parse_word(struct pctx *p, const char *what, const char *s, size_t n,
	   const char *const *names, size_t n_names, int *out)
{
	for (size_t i = 0; i < n_names; i++) {
		if (strlen(names[i]) == n && strncmp(names[i], s, n) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return perr(p, "bad %s '%.*s'", what, (int)(n > 32 ? 32 : n), s);
}

static int
parse_bool(struct pctx *p, const char *s, size_t n, bool *out)
{
	static const char *const words[] = {"no", "yes"};
	int v = 0;
	if (parse_word(p, "yes/no value", s, n, words, 2, &v) != 0)
		return -1;
	*out = v == 1;
	return 0;
}

static int
parse_notify(struct pctx *p, const char *s, size_t n, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		size_t k;
		for (k = 0; k < NELEM(notify_words); k++) {
			if (strlen(notify_words[k].word) == j - i &&
			    strncasecmp(notify_words[k].word, s + i, j - i) ==
				    0)
				break;
		}
		if (k == NELEM(notify_words))
			return perr(p, "bad NOTIFY word '%.*s'",
				    (int)(j - i > 32 ? 32 : j - i), s + i);
		bits |= notify_words[k].bit;
		i = j + 1;
	}
	*out = bits;
	return 0;
}

/* A string value into *slot (single-valued key). */
static int
set_str(struct pctx *p, char **slot, const char *v, size_t n)
{
	char *s = decode(p, v, n);
	if (s == NULL)
		return -1;
	free(*slot);
	*slot = s;
	return 0;
}

static int
key_id(struct pctx *p, const char *v, size_t n)
{
	if (n == 0 || n > ENVELOPE_ID_MAX)
		return perr(p, "bad id length %zu", n);
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		      (c >= 'a' && c <= 'z')))
			return perr(p, "bad character in id");
	}
	memcpy(p->env->id, v, n);
	p->env->id[n] = '\0';
	return 0;
}

static int
key_received(struct pctx *p, const char *v, size_t n)
{
	return parse_time(p, v, n, &p->env->received);
}

static int
key_sender(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->sender, v, n);
}

static int
key_size(struct pctx *p, const char *v, size_t n)
{
	return parse_u64(p, v, n, UINT64_MAX, &p->env->size);
}

static int
key_body(struct pctx *p, const char *v, size_t n)
{
	return parse_word(p, "body", v, n, body_names, NELEM(body_names),
			  &p->env->body);
}

static int
key_smtputf8(struct pctx *p, const char *v, size_t n)
{
	return parse_bool(p, v, n, &p->env->smtputf8);
}

static int
key_ret(struct pctx *p, const char *v, size_t n)
{
	return parse_word(p, "ret", v, n, ret_names, NELEM(ret_names),
			  &p->env->ret);
}

static int
key_envid(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->envid, v, n);
}

static int
key_message_id(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->message_id, v, n);
}

static int
key_listener(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->listener, v, n);
}

static int
key_client_addr(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->client_addr, v, n);
}

static int
key_client_port(struct pctx *p, const char *v, size_t n)
{
	uint64_t port;
	if (parse_u64(p, v, n, 65535, &port) != 0)
		return -1;
	p->env->client_port = (unsigned)port;
	return 0;
}

static int
key_helo(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->helo, v, n);
}

static int
key_tls_version(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->tls_version, v, n);
}

static int
key_tls_cipher(struct pctx *p, const char *v, size_t n)
{
	return set_str(p, &p->env->tls_cipher, v, n);
}

static int
key_next_attempt(struct pctx *p, const char *v, size_t n)
{
	return parse_time(p, v, n, &p->env->next_attempt);
}

static int
key_held(struct pctx *p, const char *v, size_t n)
{
	return parse_bool(p, v, n, &p->env->held);
}

/*
 * A list line: "FIRST name=value name=value ...".  Splits at single
 * spaces; calls field(name, value) for each named field after the first.
 */
struct field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

#define LIST_FIELDS_MAX 8

static int
split_fields(struct pctx *p, const char *v, size_t n, size_t *first_len,
	     struct field *fields, size_t *n_fields)
{
	size_t i = 0;

	while (i < n && v[i] != ' ')
		i++;
	*first_len = i;
	*n_fields = 0;
	while (i < n) {
		i++; /* the space */
		size_t start = i;
		while (i < n && v[i] != ' ')
			i++;
		const char *eq = memchr(v + start, '=', i - start);
		if (eq == NULL || eq == v + start)
			return perr(p, "bad field '%.*s' (want name=value)",
				    (int)(i - start > 32 ? 32 : i - start),
				    v + start);
		if (*n_fields == LIST_FIELDS_MAX)
			return perr(p, "too many fields");
		struct field *f = &fields[(*n_fields)++];
		f->name = v + start;
		f->name_len = (size_t)(eq - (v + start));
		f->value = eq + 1;
		f->value_len = (size_t)(v + i - (eq + 1));
		for (size_t k = 0; k + 1 < *n_fields; k++) {
			if (fields[k].name_len == f->name_len &&
			    memcmp(fields[k].name, f->name, f->name_len) == 0)
				return perr(p, "field '%.*s' given twice",
					    (int)(f->name_len > 32
							  ? 32
							  : f->name_len),
					    f->name);
		}
	}
	return 0;
}

static bool
field_is(const struct field *f, const char *name)
{
	return strlen(name) == f->name_len &&
	       memcmp(f->name, name, f->name_len) == 0;
}

static int
rcpt_field(struct pctx *p, struct envelope_rcpt *r, const struct field *f)
{
	if (field_is(f, "notify"))
		return parse_notify(p, f->value, f->value_len, &r->notify);
	if (field_is(f, "orcpt"))
		return set_str(p, &r->orcpt, f->value, f->value_len);
	if (field_is(f, "reply"))
		return set_str(p, &r->last_reply, f->value, f->value_len);
	if (field_is(f, "state")) {
		int st = 0;
		if (parse_word(p, "recipient state", f->value, f->value_len,
			       state_names, NELEM(state_names), &st) != 0)
			return -1;
		r->state = (enum envelope_rcpt_state)st;
		return 0;
	}
	return perr(p, "unknown recipient field '%.*s'",
		    (int)(f->name_len > 32 ? 32 : f->name_len), f->name);
}

static int
key_rcpt(struct pctx *p, const char *v, size_t n)
{
	struct field fields[LIST_FIELDS_MAX];
	size_t first, n_fields;

	if (split_fields(p, v, n, &first, fields, &n_fields) != 0)
		return -1;
	if (first == 0)
		return perr(p, "empty recipient address");
	char *addr = decode(p, v, first);
	if (addr == NULL)
		return -1;
	int rc = envelope_add_rcpt(p->env, addr, 0, NULL);
	free(addr);
	if (rc != 0)
		return perr(p, "out of memory");
	struct envelope_rcpt *r = &p->env->rcpts[p->env->n_rcpts - 1];
	for (size_t i = 0; i < n_fields; i++) {
		if (rcpt_field(p, r, &fields[i]) != 0)
			return -1;
	}
	return 0;
}

static int
key_attempt(struct pctx *p, const char *v, size_t n)
{
	struct field fields[LIST_FIELDS_MAX];
	size_t first, n_fields;
	time_t at;

	if (split_fields(p, v, n, &first, fields, &n_fields) != 0 ||
	    parse_time(p, v, first, &at) != 0)
		return -1;
	if (envelope_add_attempt(p->env, at, NULL, NULL) != 0)
		return perr(p, "out of memory");
	struct envelope_attempt *a = &p->env->attempts[p->env->n_attempts - 1];
	for (size_t i = 0; i < n_fields; i++) {
		const struct field *f = &fields[i];
		int rc;
		if (field_is(f, "host"))
			rc = set_str(p, &a->host, f->value, f->value_len);
		else if (field_is(f, "reply"))
			rc = set_str(p, &a->reply, f->value, f->value_len);
		else
			rc = perr(p, "unknown attempt field '%.*s'",
				  (int)(f->name_len > 32 ? 32 : f->name_len),
				  f->name);
		if (rc != 0)
			return -1;
	}
	return 0;
}

enum key_flags {
	KEY_SINGLE = 0x1,   /* may appear once */
	KEY_REQUIRED = 0x2, /* must appear */
};

static const struct key {
	const char *name;
	int flags;
	int (*parse)(struct pctx *p, const char *v, size_t n);
} keys[] = {
	{"id", KEY_SINGLE | KEY_REQUIRED, key_id},
	{"received", KEY_SINGLE | KEY_REQUIRED, key_received},
	{"sender", KEY_SINGLE | KEY_REQUIRED, key_sender},
	{"size", KEY_SINGLE | KEY_REQUIRED, key_size},
	{"body", KEY_SINGLE, key_body},
	{"smtputf8", KEY_SINGLE, key_smtputf8},
	{"ret", KEY_SINGLE, key_ret},
	{"envid", KEY_SINGLE, key_envid},
	{"message-id", KEY_SINGLE, key_message_id},
	{"listener", KEY_SINGLE, key_listener},
	{"client-addr", KEY_SINGLE, key_client_addr},
	{"client-port", KEY_SINGLE, key_client_port},
	{"helo", KEY_SINGLE, key_helo},
	{"tls-version", KEY_SINGLE, key_tls_version},
	{"tls-cipher", KEY_SINGLE, key_tls_cipher},
	{"next-attempt", KEY_SINGLE, key_next_attempt},
	{"held", KEY_SINGLE, key_held},
	{"rcpt", KEY_REQUIRED, key_rcpt},
	{"attempt", 0, key_attempt},
};

/* The first line: "bridgehead-envelope 1". */
static int
parse_magic(struct pctx *p, const char *line, size_t n)
{
	char shown[64];
	size_t ml = strlen(ENVELOPE_MAGIC);

	if (n <= ml + 1 || memcmp(line, ENVELOPE_MAGIC, ml) != 0 ||
	    line[ml] != ' ')
		return perr(p, "not a bridgehead envelope (first line '%s')",
			    log_escape(shown, sizeof shown, line, n));
	uint64_t version;
	const char *v = line + ml + 1;
	size_t vl = n - ml - 1;
	if (parse_u64(p, v, vl, UINT32_MAX, &version) != 0)
		return perr(p, "bad envelope version '%s'",
			    log_escape(shown, sizeof shown, v, vl));
	if (version != ENVELOPE_VERSION)
		return perr(p,
			    "envelope version %llu is not supported (this "
			    "program reads version %d)",
			    (unsigned long long)version, ENVELOPE_VERSION);
	return 0;
}

static int
parse_line(struct pctx *p, const char *line, size_t n, unsigned *seen)
{
	char shown[48];
	const char *sp = memchr(line, ' ', n);
	size_t kl = sp != NULL ? (size_t)(sp - line) : n;
	const char *v = sp != NULL ? sp + 1 : line + n;
	size_t vl = sp != NULL ? n - kl - 1 : 0;

	for (size_t i = 0; i < NELEM(keys); i++) {
		if (strlen(keys[i].name) != kl ||
		    memcmp(keys[i].name, line, kl) != 0)
			continue;
		if ((keys[i].flags & KEY_SINGLE) && (*seen & (1u << i)))
			return perr(p, "key '%s' given twice", keys[i].name);
		*seen |= 1u << i;
		return keys[i].parse(p, v, vl);
	}
	if (kl == 0)
		return perr(p, "empty line");
	return perr(p, "unknown key '%s'",
		    log_escape(shown, sizeof shown, line, kl));
}

static int
parse_lines(struct pctx *p, const char *text, size_t len)
{
	unsigned seen = 0;
	size_t pos = 0;
	bool ended = false;

	if (memchr(text, '\0', len) != NULL)
		return perr(p, "NUL byte in envelope");
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		const char *line = text + pos;
		p->lineno++;
		pos += n + (nl != NULL ? 1 : 0);
		if (ended)
			return perr(p, "data after the end marker");
		if (p->lineno == 1) {
			if (parse_magic(p, line, n) != 0)
				return -1;
			continue;
		}
		if (n == 3 && memcmp(line, "end", 3) == 0) {
			ended = true;
			continue;
		}
		/* A last line without its newline was cut short. */
		if (nl == NULL)
			break;
		if (parse_line(p, line, n, &seen) != 0)
			return -1;
	}
	p->lineno = 0;
	if (!ended)
		return perr(p, "no end marker: the envelope is incomplete "
			       "(torn write)");
	for (size_t i = 0; i < NELEM(keys); i++) {
		if ((keys[i].flags & KEY_REQUIRED) && !(seen & (1u << i)))
			return perr(p, "missing key '%s'", keys[i].name);
	}
	return 0;
}

int
envelope_parse(const char *text, size_t len, struct envelope *env, char *err,
	       size_t errlen)
{
	struct pctx p = {env, 0, err, errlen};

	if (errlen > 0)
		err[0] = '\0';
	if (len == 0) {
		perr(&p, "empty envelope");
		return -1;
	}
	if (parse_lines(&p, text, len) != 0) {
		envelope_clear(env);
		return -1;
	}
	return 0;
}
