/*
 * jsonw: a small JSON writer into a growing buffer, for the tracking log
 * and the --json output of the queue commands.  It places the commas
 * itself; strings are escaped so that every output is valid JSON whatever
 * bytes the peer sent (RFC 8259): '"', '\' and control bytes are escaped,
 * valid UTF-8 is kept, and each byte that is not part of valid UTF-8
 * becomes \u00XX (the byte as a Latin-1 code point, so nothing is lost).
 *
 *   jsonw_init(), jsonw_free()
 *   jsonw_begin_object(), jsonw_end_object(), jsonw_begin_array(),
 *   jsonw_end_array(), jsonw_key()      structure
 *   jsonw_string(), jsonw_cstr() (NULL -> null), jsonw_u64(), jsonw_bool(),
 *   jsonw_null(), jsonw_time()  values
 *   jsonw_text()   the result (NULL if memory ran out), NUL-terminated.
 */
#ifndef BH_QUEUE_JSONW_H
#define BH_QUEUE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define JSONW_DEPTH 16

struct jsonw {
	char *data;
	size_t len;
	size_t cap;
	bool failed; /* out of memory, or nesting too deep */
	unsigned depth;
	bool first[JSONW_DEPTH];
	bool after_key;
};

void jsonw_init(struct jsonw *w);
void jsonw_free(struct jsonw *w);
void jsonw_begin_object(struct jsonw *w);
void jsonw_end_object(struct jsonw *w);
void jsonw_begin_array(struct jsonw *w);
void jsonw_end_array(struct jsonw *w);
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_string(struct jsonw *w, const char *s, size_t len);
void jsonw_cstr(struct jsonw *w, const char *s);
void jsonw_u64(struct jsonw *w, uint64_t v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* RFC 3339 UTC string, "2026-12-03T17:00:00Z". */
void jsonw_time(struct jsonw *w, time_t t);
/* Append raw bytes (a newline after a line, ...). */
void jsonw_raw(struct jsonw *w, const char *s, size_t len);
const char *jsonw_text(const struct jsonw *w, size_t *len);

#endif
