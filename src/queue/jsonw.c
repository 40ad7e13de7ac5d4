/*
 * jsonw: JSON writer with escaping of untrusted bytes.  See jsonw.h.
 */
#include "queue/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

void
jsonw_init(struct jsonw *w)
{
	memset(w, 0, sizeof *w);
	w->first[0] = true;
}

void
jsonw_free(struct jsonw *w)
{
	free(w->data);
	memset(w, 0, sizeof *w);
}

void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 512;
		while (w->len + n + 1 > cap)
			cap *= 2;
		char *d = realloc(w->data, cap);
		if (d == NULL) {
			w->failed = true;
			return;
		}
		w->data = d;
		w->cap = cap;
	}
	memcpy(w->data + w->len, s, n);
	w->len += n;
	w->data[w->len] = '\0';
}

/* A comma before every value but the first of its container. */
static void
jsonw_sep(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (!w->first[w->depth])
		jsonw_raw(w, ",", 1);
	w->first[w->depth] = false;
}

static void
jsonw_open(struct jsonw *w, const char *c)
{
	jsonw_sep(w);
	if (w->depth + 1 >= JSONW_DEPTH) {
		w->failed = true;
		return;
	}
	jsonw_raw(w, c, 1);
	w->first[++w->depth] = true;
}

static void
jsonw_close(struct jsonw *w, const char *c)
{
	if (w->depth == 0) {
		w->failed = true;
		return;
	}
	w->depth--;
	jsonw_raw(w, c, 1);
}

void
jsonw_begin_object(struct jsonw *w)
{
	jsonw_open(w, "{");
}

void
jsonw_end_object(struct jsonw *w)
{
	jsonw_close(w, "}");
}

void
jsonw_begin_array(struct jsonw *w)
{
	jsonw_open(w, "[");
}

void
jsonw_end_array(struct jsonw *w)
{
	jsonw_close(w, "]");
}

/*
 * Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

static void
jsonw_escaped(struct jsonw *w, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t run = i;
		/* Copy plain printable ASCII in one go. */
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f &&
		       s[run] != '"' && s[run] != '\\')
			run++;
		jsonw_raw(w, str + i, run - i);
		i = run;
		if (i == n)
			break;
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jsonw_raw(w, e, 2);
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t ul = utf8_len(s + i, n - i);
			if (ul > 0) {
				jsonw_raw(w, str + i, ul);
				i += ul;
				continue;
			}
		}
		const char *shortform = c == '\n'   ? "\\n"
					: c == '\r' ? "\\r"
					: c == '\t' ? "\\t"
						    : NULL;
		if (shortform != NULL) {
			jsonw_raw(w, shortform, 2);
		} else {
			/* Controls, DEL, and bytes outside valid UTF-8. */
			char e[6] = {'\\', 'u',		'0',
				     '0',  hex[c >> 4], hex[c & 15]};
			jsonw_raw(w, e, 6);
		}
		i++;
	}
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	jsonw_sep(w);
	jsonw_raw(w, "\"", 1);
	jsonw_escaped(w, key, strlen(key));
	jsonw_raw(w, "\":", 2);
	w->after_key = true;
}

void
jsonw_string(struct jsonw *w, const char *s, size_t len)
{
	jsonw_sep(w);
	jsonw_raw(w, "\"", 1);
	jsonw_escaped(w, s, len);
	jsonw_raw(w, "\"", 1);
}

void
jsonw_cstr(struct jsonw *w, const char *s)
{
	if (s == NULL)
		jsonw_null(w);
	else
		jsonw_string(w, s, strlen(s));
}

void
jsonw_u64(struct jsonw *w, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	jsonw_sep(w);
	jsonw_raw(w, num, (size_t)n);
}

void
jsonw_bool(struct jsonw *w, bool v)
{
	jsonw_sep(w);
	jsonw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void
jsonw_null(struct jsonw *w)
{
	jsonw_sep(w);
	jsonw_raw(w, "null", 4);
}

void
jsonw_time(struct jsonw *w, time_t t)
{
	char ts[ENVELOPE_TIME_MAX];
	jsonw_cstr(w, envelope_time_format(t, ts, sizeof ts));
}

const char *
jsonw_text(const struct jsonw *w, size_t *len)
{
	if (w->failed || w->data == NULL)
		return NULL;
	if (len != NULL)
		*len = w->len;
	return w->data;
}
