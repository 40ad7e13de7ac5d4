/*
 * tracking_test: the tracking log's line format (every key, null when
 * unknown, one line per event, RFC 3339 ts with milliseconds), the files'
 * modes, and the JSON escaping of hostile strings: quotes, backslashes,
 * control bytes, valid UTF-8 kept, invalid UTF-8 (stray bytes, overlong
 * forms, surrogates, beyond U+10FFFF) as \u00XX.  Failures print got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/jsonw.h"
#include "queue/tracking.h"

static const struct esc_case {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen */
	const char *want;
} esc_cases[] = {
	{"plain", "sender@example.org", 0, "\"sender@example.org\""},
	{"empty", "", 0, "\"\""},
	{"quote and backslash", "\"a\\b\"@x", 0, "\"\\\"a\\\\b\\\"@x\""},
	{"crlf tab", "a\r\nb\tc", 0, "\"a\\r\\nb\\tc\""},
	{"controls and DEL", "\x01\x1b[0m\x7f", 0,
	 "\"\\u0001\\u001b[0m\\u007f\""},
	{"NUL inside", "a\0b", 3, "\"a\\u0000b\""},
	{"utf-8 kept", "δοκιμή@例子.广告 😀", 0, "\"δοκιμή@例子.广告 😀\""},
	{"stray byte",
	 "a\xff"
	 "b",
	 0, "\"a\\u00ffb\""},
	{"lone continuation", "\x80", 0, "\"\\u0080\""},
	{"overlong slash", "\xc0\xaf", 0, "\"\\u00c0\\u00af\""},
	{"overlong 3-byte", "\xe0\x80\xaf", 0, "\"\\u00e0\\u0080\\u00af\""},
	{"surrogate", "\xed\xa0\x80", 0, "\"\\u00ed\\u00a0\\u0080\""},
	{"beyond U+10FFFF", "\xf4\x90\x80\x80", 0,
	 "\"\\u00f4\\u0090\\u0080\\u0080\""},
	{"truncated sequence", "\xe6\x97", 0, "\"\\u00e6\\u0097\""},
	{"latin-1 text", "caf\xe9", 0, "\"caf\\u00e9\""},
	{"max code point", "\xf4\x8f\xbf\xbf", 0, "\"\xf4\x8f\xbf\xbf\""},
};

static void
test_escaping(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t i = 0; i < sizeof esc_cases / sizeof esc_cases[0]; i++) {
		const struct esc_case *c = &esc_cases[i];
		struct jsonw w;
		jsonw_init(&w);
		jsonw_string(&w, c->in, c->len ? c->len : strlen(c->in));
		const char *got = jsonw_text(&w, NULL);
		if (got == NULL || strcmp(got, c->want) != 0) {
			print_error("%s: got %s want %s\n", c->name,
				    got ? got : "(null)", c->want);
			failed++;
		}
		jsonw_free(&w);
	}
	assert_int_equal(failed, 0);
}

static void
test_structure(void **state)
{
	(void)state;
	struct jsonw w;

	jsonw_init(&w);
	jsonw_begin_array(&w);
	jsonw_begin_object(&w);
	jsonw_key(&w, "a");
	jsonw_u64(&w, 18446744073709551615u);
	jsonw_key(&w, "b");
	jsonw_begin_array(&w);
	jsonw_bool(&w, true);
	jsonw_null(&w);
	jsonw_cstr(&w, NULL);
	jsonw_time(&w, 1796317200);
	jsonw_end_array(&w);
	jsonw_key(&w, "c");
	jsonw_begin_object(&w);
	jsonw_end_object(&w);
	jsonw_end_object(&w);
	jsonw_begin_array(&w);
	jsonw_end_array(&w);
	jsonw_end_array(&w);
	const char *want = "[{\"a\":18446744073709551615,\"b\":[true,null,null,"
			   "\"2026-12-03T17:00:00Z\"],\"c\":{}},[]]";
	const char *got = jsonw_text(&w, NULL);
	if (got == NULL || strcmp(got, want) != 0)
		print_error("got %s\nwant %s\n", got ? got : "(null)", want);
	assert_string_equal(got, want);
	jsonw_free(&w);

	/* Unbalanced use is refused rather than written. */
	jsonw_init(&w);
	jsonw_end_object(&w);
	assert_null(jsonw_text(&w, NULL));
	jsonw_free(&w);
}

/* ----------------------------------------------------------- the log */

struct fixture {
	char dir[256];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/tracking_test.XXXXXX",
		 tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[512];
	tracking_close();
	snprintf(path, sizeof path, "%s/log/tracking.jsonl", f->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/log", f->dir);
	rmdir(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static char *
read_log(const struct fixture *f, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/log/tracking.jsonl", f->dir);
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, fp);
	buf[*len] = '\0';
	fclose(fp);
	return buf;
}

static void
make_env(struct envelope *env)
{
	memset(env, 0, sizeof *env);
	snprintf(env->id, sizeof env->id, "%s", "0RZk3m9aB7cDeFgH");
	env->sender = strdup("\"odd \\\" one\"@example.org");
	env->message_id = strdup("<1@client.example.org>");
	env->size = 4096;
	env->client_addr = strdup("198.51.100.7");
	env->helo = strdup("client\x01\xff.example.org");
	env->listener = strdup("smtp");
	env->tls_version = strdup("TLSv1.3");
	env->tls_cipher = strdup("TLS_AES_256_GCM_SHA384");
	assert_int_equal(envelope_add_rcpt(env, "a@example.net", 0, NULL), 0);
	assert_int_equal(envelope_add_rcpt(env, "δ@example.net", 0, NULL), 0);
}

/* {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ", at the start; returns the rest. */
static const char *
skip_ts(const char *line)
{
	const char *p = "{\"ts\":\"";
	assert_memory_equal(line, p, strlen(p));
	const char *ts = line + strlen(p);
	const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
	for (size_t i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd') {
			if (ts[i] < '0' || ts[i] > '9')
				print_error("ts: got %.24s want %s\n", ts,
					    shape);
			assert_true(ts[i] >= '0' && ts[i] <= '9');
		} else {
			assert_int_equal(ts[i], shape[i]);
		}
	}
	assert_int_equal(ts[24], '"');
	assert_int_equal(ts[25], ',');
	return ts + 26;
}

static void
expect_line(const char *name, const char *line, size_t len, const char *want)
{
	const char *rest = skip_ts(line);
	size_t rlen = len - (size_t)(rest - line);
	if (strlen(want) != rlen || memcmp(rest, want, rlen) != 0) {
		print_error("%s:\ngot  %.*s\nwant %s\n", name, (int)rlen, rest,
			    want);
		fail();
	}
}

static void
test_log(void **state)
{
	struct fixture *f = *state;
	struct envelope env;
	struct stat st;
	char path[512];
	size_t len;

	assert_int_equal(tracking_open(f->dir), 0);
	snprintf(path, sizeof path, "%s/log", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	snprintf(path, sizeof path, "%s/log/tracking.jsonl", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	make_env(&env);
	tracking_received(&env);

	const char *some[] = {"δ@example.net"};
	struct tracking_info delivered = {
		.event = "delivered",
		.connector = "out",
		.host = "smarthost.example.net",
		.addr = "203.0.113.10",
		.reply = "250 2.0.0 Ok: queued as X1",
		.rcpts = some,
		.n_rcpts = 1,
		.tls_version = "TLSv1.2",
		.tls_cipher = "ECDHE-RSA-AES128-GCM-SHA256",
		.tls_peer = "CN=smarthost.example.net",
		.tls_verified = true,
	};
	tracking_event(&env, &delivered);

	/* A clear-text deferral with nothing else known; a null sender. */
	free(env.sender);
	env.sender = strdup("");
	free(env.message_id);
	env.message_id = NULL;
	struct tracking_info deferred = {.event = "deferred",
					 .reply = "421 4.3.2 busy\r\n"};
	tracking_event(&env, &deferred);

	/* Closed: dropped, not written. */
	tracking_close();
	tracking_event(&env, &deferred);
	/* Reopened: appended. */
	assert_int_equal(tracking_open(f->dir), 0);
	struct tracking_info deleted = {.event = "deleted"};
	tracking_event(&env, &deleted);

	char *text = read_log(f, &len);
	assert_non_null(text);
	const char *want[] = {
		"\"event\":\"received\",\"id\":\"0RZk3m9aB7cDeFgH\","
		"\"message_id\":\"<1@client.example.org>\","
		"\"from\":\"\\\"odd \\\\\\\" one\\\"@example.org\","
		"\"rcpt\":[\"a@example.net\",\"δ@example.net\"],\"size\":4096,"
		"\"client\":\"198.51.100.7\","
		"\"helo\":\"client\\u0001\\u00ff.example.org\","
		"\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":"
		"\"TLS_AES_256_GCM_SHA384\",\"peer\":null,\"verified\":false},"
		"\"listener\":\"smtp\"}",
		"\"event\":\"delivered\",\"id\":\"0RZk3m9aB7cDeFgH\","
		"\"message_id\":\"<1@client.example.org>\","
		"\"from\":\"\\\"odd \\\\\\\" one\\\"@example.org\","
		"\"rcpt\":[\"δ@example.net\"],\"connector\":\"out\","
		"\"host\":\"smarthost.example.net\",\"addr\":\"203.0.113.10\","
		"\"reply\":\"250 2.0.0 Ok: queued as X1\","
		"\"tls\":{\"version\":\"TLSv1.2\",\"cipher\":"
		"\"ECDHE-RSA-AES128-GCM-SHA256\",\"peer\":"
		"\"CN=smarthost.example.net\",\"verified\":true}}",
		"\"event\":\"deferred\",\"id\":\"0RZk3m9aB7cDeFgH\","
		"\"message_id\":null,\"from\":\"\","
		"\"rcpt\":[\"a@example.net\",\"δ@example.net\"],"
		"\"connector\":null,\"host\":null,\"addr\":null,"
		"\"reply\":\"421 4.3.2 busy\\r\\n\",\"tls\":null}",
		"\"event\":\"deleted\",\"id\":\"0RZk3m9aB7cDeFgH\","
		"\"message_id\":null,\"from\":\"\","
		"\"rcpt\":[\"a@example.net\",\"δ@example.net\"],"
		"\"connector\":null,\"host\":null,\"addr\":null,"
		"\"reply\":null,\"tls\":null}",
	};
	size_t n_want = sizeof want / sizeof want[0];
	size_t line = 0;
	const char *p = text;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line is complete */
		if (line < n_want) {
			char name[32];
			snprintf(name, sizeof name, "line %zu", line + 1);
			expect_line(name, p, (size_t)(nl - p), want[line]);
		}
		line++;
		p = nl + 1;
	}
	if (line != n_want)
		print_error("got %zu lines want %zu\n", line, n_want);
	assert_int_equal(line, n_want);
	free(text);
	envelope_clear(&env);
}

/* Without a state directory, open says so and events are dropped. */
static void
test_open_missing(void **state)
{
	struct fixture *f = *state;
	char path[512];
	snprintf(path, sizeof path, "%s/nowhere", f->dir);
	assert_int_equal(tracking_open(path), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_structure),
		cmocka_unit_test_setup_teardown(test_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
