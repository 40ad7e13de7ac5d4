/*
 * envelope_test: round trips of the envelope text format (odd addresses,
 * UTF-8, the null path, 1000 recipients, DSN parameters, every escape) and
 * one case per parse error.  Failures print got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue/envelope.h"

/* The SMTP_NOTIFY_* bits of src/smtp/command.h. */
#define NEVER 0x1
#define SUCCESS 0x2
#define FAILURE 0x4
#define DELAY 0x8

static void
set(char **slot, const char *v)
{
	free(*slot);
	*slot = v != NULL ? strdup(v) : NULL;
	assert_true(v == NULL || *slot != NULL);
}

static void
base_env(struct envelope *env, const char *sender)
{
	memset(env, 0, sizeof *env);
	snprintf(env->id, sizeof env->id, "%s", "0RZk3m9aB7cDeFgH");
	env->received = 1796317200; /* 2026-12-03T17:00:00Z */
	set(&env->sender, sender);
	env->size = 4096;
}

/* Builders, one per round-trip case. */
static void
mk_minimal(struct envelope *env)
{
	base_env(env, "sender@example.org");
	assert_int_equal(envelope_add_rcpt(env, "rcpt@example.net", 0, NULL),
			 0);
}

static void
mk_full(struct envelope *env)
{
	base_env(env, "sender@example.org");
	env->body = 2;
	env->smtputf8 = true;
	env->ret = 2;
	set(&env->envid, "QQ+2B314159");
	set(&env->message_id, "<20261203170000.1@client.example.org>");
	set(&env->listener, "smtp");
	set(&env->client_addr, "2001:db8::7");
	env->client_port = 49152;
	set(&env->helo, "client.example.org");
	set(&env->tls_version, "TLSv1.3");
	set(&env->tls_cipher, "TLS_AES_256_GCM_SHA384");
	env->next_attempt = 1796317500;
	env->held = true;
	assert_int_equal(envelope_add_rcpt(env, "a@example.net",
					   SUCCESS | FAILURE | DELAY,
					   "rfc822;a@example.net"),
			 0);
	assert_int_equal(envelope_add_rcpt(env, "b@example.net", NEVER, ""), 0);
	env->rcpts[1].state = ENVELOPE_RCPT_DELIVERED;
	set(&env->rcpts[1].last_reply, "250 2.0.0 Ok: queued as X1");
	assert_int_equal(envelope_add_rcpt(env, "c@example.net", 0, NULL), 0);
	env->rcpts[2].state = ENVELOPE_RCPT_FAILED;
	set(&env->rcpts[2].last_reply,
	    "550 5.1.1 <c@example.net>: no such user");
	assert_int_equal(envelope_add_attempt(env, 1796317260,
					      "smarthost.example.net",
					      "451 4.3.0 try again later"),
			 0);
	assert_int_equal(
		envelope_add_attempt(env, 1796317300, NULL, "connection lost"),
		0);
	assert_int_equal(envelope_add_attempt(env, 1796317400, NULL, NULL), 0);
}

static void
mk_quoted(struct envelope *env)
{
	base_env(env, "\"john  doe\"@example.org");
	set(&env->helo, " spaced helo ");
	assert_int_equal(
		envelope_add_rcpt(env, "\"a b\"@example.net", SUCCESS, NULL),
		0);
	assert_int_equal(envelope_add_rcpt(env,
					   "\"q\\\"uote\\\\d\"@example.net", 0,
					   "rfc822;\"q\\\"uote\"@x"),
			 0);
	assert_int_equal(envelope_add_rcpt(env, "\"x=y z\"@example.net", 0,
					   "rfc822;a=b c"),
			 0);
}

static void
mk_utf8(struct envelope *env)
{
	base_env(env, "用户@例子.广告");
	env->smtputf8 = true;
	set(&env->helo, "почта.рф");
	assert_int_equal(
		envelope_add_rcpt(env, "δοκιμή@παράδειγμα.δοκιμή", 0, NULL), 0);
	/* Not UTF-8 at all: still any byte but NUL. */
	assert_int_equal(
		envelope_add_rcpt(env, "\xff\xfe@example.net", 0, NULL), 0);
}

static void
mk_null_sender(struct envelope *env)
{
	base_env(env, "");
	assert_int_equal(
		envelope_add_rcpt(env, "postmaster@example.net", NEVER, NULL),
		0);
}

static void
mk_escapes(struct envelope *env)
{
	base_env(env, "100%@example.org");
	set(&env->message_id, "<a\tb%20c@x>");
	set(&env->listener, "");
	assert_int_equal(envelope_add_rcpt(env, "r@example.net", 0, NULL), 0);
	set(&env->rcpts[0].last_reply,
	    "451-4.3.0 first line\r\n451 4.3.0 second\x7f\x01 line");
	assert_int_equal(envelope_add_attempt(env, 0, "h%st", "a\nb"), 0);
}

static void
mk_many(struct envelope *env)
{
	base_env(env, "list@example.org");
	for (int i = 0; i < 1000; i++) {
		char addr[64];
		snprintf(addr, sizeof addr, "r%04d@example.net", i);
		assert_int_equal(
			envelope_add_rcpt(env, addr, (unsigned)(i % 16), NULL),
			0);
	}
}

static void
mk_all_notify(struct envelope *env)
{
	base_env(env, "s@example.org");
	for (unsigned bits = 0; bits < 16; bits++) {
		char addr[32], orcpt[64];
		snprintf(addr, sizeof addr, "n%u@example.net", bits);
		snprintf(orcpt, sizeof orcpt, "rfc822;n%u+2B@example.net",
			 bits);
		assert_int_equal(envelope_add_rcpt(env, addr, bits,
						   bits % 2 ? orcpt : NULL),
				 0);
	}
}

static const struct rt_case {
	const char *name;
	void (*build)(struct envelope *env);
} rt_cases[] = {
	{"minimal", mk_minimal},
	{"every field", mk_full},
	{"quoted local parts", mk_quoted},
	{"utf-8 and raw bytes", mk_utf8},
	{"null sender", mk_null_sender},
	{"escapes", mk_escapes},
	{"1000 recipients", mk_many},
	{"all NOTIFY combinations", mk_all_notify},
};

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

#define CHECK_STR(what, got, want)                                             \
	do {                                                                   \
		if (!streq_null(got, want)) {                                  \
			print_error("%s: %s: got '%s' want '%s'\n", name,      \
				    what, (got) ? (got) : "(null)",            \
				    (want) ? (want) : "(null)");               \
			return 0;                                              \
		}                                                              \
	} while (0)

#define CHECK_NUM(what, got, want)                                             \
	do {                                                                   \
		if ((long long)(got) != (long long)(want)) {                   \
			print_error("%s: %s: got %lld want %lld\n", name,      \
				    what, (long long)(got),                    \
				    (long long)(want));                        \
			return 0;                                              \
		}                                                              \
	} while (0)

static int
env_equal(const char *name, const struct envelope *got,
	  const struct envelope *want)
{
	CHECK_STR("id", got->id, want->id);
	CHECK_NUM("received", got->received, want->received);
	CHECK_STR("sender", got->sender, want->sender);
	CHECK_NUM("size", got->size, want->size);
	CHECK_NUM("body", got->body, want->body);
	CHECK_NUM("smtputf8", got->smtputf8, want->smtputf8);
	CHECK_NUM("ret", got->ret, want->ret);
	CHECK_STR("envid", got->envid, want->envid);
	CHECK_STR("message_id", got->message_id, want->message_id);
	CHECK_STR("listener", got->listener, want->listener);
	CHECK_STR("client_addr", got->client_addr, want->client_addr);
	CHECK_NUM("client_port", got->client_port, want->client_port);
	CHECK_STR("helo", got->helo, want->helo);
	CHECK_STR("tls_version", got->tls_version, want->tls_version);
	CHECK_STR("tls_cipher", got->tls_cipher, want->tls_cipher);
	CHECK_NUM("next_attempt", got->next_attempt, want->next_attempt);
	CHECK_NUM("held", got->held, want->held);
	CHECK_NUM("n_rcpts", got->n_rcpts, want->n_rcpts);
	for (size_t i = 0; i < want->n_rcpts; i++) {
		const struct envelope_rcpt *g = &got->rcpts[i];
		const struct envelope_rcpt *w = &want->rcpts[i];
		CHECK_STR("rcpt address", g->address, w->address);
		CHECK_NUM("rcpt notify", g->notify, w->notify);
		CHECK_STR("rcpt orcpt", g->orcpt, w->orcpt);
		CHECK_NUM("rcpt state", g->state, w->state);
		CHECK_STR("rcpt reply", g->last_reply, w->last_reply);
	}
	CHECK_NUM("n_attempts", got->n_attempts, want->n_attempts);
	for (size_t i = 0; i < want->n_attempts; i++) {
		const struct envelope_attempt *g = &got->attempts[i];
		const struct envelope_attempt *w = &want->attempts[i];
		CHECK_NUM("attempt at", g->at, w->at);
		CHECK_STR("attempt host", g->host, w->host);
		CHECK_STR("attempt reply", g->reply, w->reply);
	}
	return 1;
}

static void
test_round_trips(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t c = 0; c < sizeof rt_cases / sizeof rt_cases[0]; c++) {
		struct envelope want, got = {0};
		char err[256];
		size_t len, len2;

		rt_cases[c].build(&want);
		char *text = envelope_format(&want, &len);
		assert_non_null(text);
		assert_int_equal(strlen(text), len);
		if (envelope_parse(text, len, &got, err, sizeof err) != 0) {
			print_error("%s: parse failed: %s\n--- text:\n%s",
				    rt_cases[c].name, err, text);
			failed++;
		} else if (!env_equal(rt_cases[c].name, &got, &want)) {
			print_error("--- text:\n%s", text);
			failed++;
		} else {
			/* The text form is canonical: formatting again gives
			 * the same bytes. */
			char *again = envelope_format(&got, &len2);
			assert_non_null(again);
			if (len2 != len || memcmp(again, text, len) != 0) {
				print_error("%s: second format differs:\n"
					    "got:\n%s\nwant:\n%s",
					    rt_cases[c].name, again, text);
				failed++;
			}
			free(again);
		}
		free(text);
		envelope_clear(&got);
		envelope_clear(&want);
	}
	assert_int_equal(failed, 0);
}

/* The exact text of a small envelope: what docs/queue-format.md shows. */
static void
test_exact_text(void **state)
{
	(void)state;
	struct envelope env;
	size_t len;

	base_env(&env, "\"john doe\"@example.org");
	set(&env.client_addr, "192.0.2.7");
	assert_int_equal(envelope_add_rcpt(&env, "\"a b\"@example.net",
					   SUCCESS | FAILURE,
					   "rfc822;a+20b@example.net"),
			 0);
	set(&env.rcpts[0].last_reply, "451 4.4.1 no answer");
	assert_int_equal(envelope_add_attempt(&env, 1796317260,
					      "smarthost.example.net",
					      "451 4.4.1 no answer"),
			 0);
	char *text = envelope_format(&env, &len);
	const char *want = "bridgehead-envelope 1\n"
			   "id 0RZk3m9aB7cDeFgH\n"
			   "received 2026-12-03T17:00:00Z\n"
			   "sender \"john doe\"@example.org\n"
			   "size 4096\n"
			   "body none\n"
			   "smtputf8 no\n"
			   "ret none\n"
			   "client-addr 192.0.2.7\n"
			   "held no\n"
			   "rcpt \"a%20b\"@example.net notify=SUCCESS,FAILURE "
			   "orcpt=rfc822;a+20b@example.net state=pending "
			   "reply=451%204.4.1%20no%20answer\n"
			   "attempt 2026-12-03T17:01:00Z "
			   "host=smarthost.example.net "
			   "reply=451%204.4.1%20no%20answer\n"
			   "end\n";
	if (strcmp(text, want) != 0)
		print_error("got:\n%s\nwant:\n%s", text, want);
	assert_string_equal(text, want);
	free(text);
	envelope_clear(&env);
}

#define HEAD "bridgehead-envelope 1\n"
#define REQ                                                                    \
	"id 0RZk3m9aB7cDeFgH\nreceived 2026-12-03T17:00:00Z\n"                 \
	"sender s@example.org\nsize 10\n"
#define RCPT "rcpt r@example.net state=pending\n"

static const struct err_case {
	const char *name;
	const char *text;
	size_t len;	  /* 0: strlen(text) */
	const char *want; /* substring of the error */
} err_cases[] = {
	{"empty", "", 0, "empty envelope"},
	{"not an envelope", "hello\n" REQ RCPT "end\n", 0,
	 "not a bridgehead envelope"},
	{"version 2", "bridgehead-envelope 2\n" REQ RCPT "end\n", 0,
	 "version 2 is not supported"},
	{"version garbage", "bridgehead-envelope x\n" REQ RCPT "end\n", 0,
	 "bad envelope version"},
	{"unknown key", HEAD REQ RCPT "colour blue\nend\n", 0,
	 "line 7: unknown key 'colour'"},
	{"missing end", HEAD REQ RCPT, 0, "no end marker"},
	{"torn line", HEAD REQ "rcpt r@exa", 0, "no end marker"},
	{"torn end", HEAD REQ RCPT "en", 0, "no end marker"},
	{"data after end", HEAD REQ RCPT "end\nsize 3\n", 0,
	 "after the end marker"},
	{"duplicate sender", HEAD REQ "sender x@example.org\n" RCPT "end\n", 0,
	 "line 6: key 'sender' given twice"},
	{"duplicate held", HEAD REQ "held no\nheld yes\n" RCPT "end\n", 0,
	 "key 'held' given twice"},
	{"missing sender",
	 HEAD "id 0RZk3m9aB7cDeFgH\nreceived 2026-12-03T17:00:00Z\n"
	      "size 1\n" RCPT "end\n",
	 0, "missing key 'sender'"},
	{"no recipient", HEAD REQ "end\n", 0, "missing key 'rcpt'"},
	{"duplicate size", HEAD REQ "size 12x\n" RCPT "end\n", 0,
	 "given twice"},
	{"bad size", HEAD "size 12x\n" REQ RCPT "end\n", 0, "bad number '12x'"},
	{"negative size", HEAD "size -1\n" REQ RCPT "end\n", 0,
	 "bad number '-1'"},
	{"leading zero", HEAD "size 012\n" REQ RCPT "end\n", 0,
	 "bad number '012'"},
	{"huge size", HEAD "size 99999999999999999999\n" REQ RCPT "end\n", 0,
	 "too large"},
	{"empty size", HEAD "size\n" REQ RCPT "end\n", 0, "bad number"},
	{"port too large", HEAD REQ "client-port 65536\n" RCPT "end\n", 0,
	 "too large"},
	{"bad time", HEAD "received 2026-02-30T00:00:00Z\n" RCPT "end\n", 0,
	 "bad time"},
	{"time without Z", HEAD "received 2026-12-03T17:00:00\n" RCPT "end\n",
	 0, "bad time"},
	{"bad id", HEAD "id abc-def\n" RCPT "end\n", 0, "bad character in id"},
	{"long id", HEAD "id 012345678901234567890123456789012\n" RCPT "end\n",
	 0, "bad id length"},
	{"bad escape", HEAD REQ "helo a%G1\n" RCPT "end\n", 0, "bad %-escape"},
	{"short escape", HEAD REQ "helo a%4\n" RCPT "end\n", 0, "bad %-escape"},
	{"escaped NUL", HEAD REQ "helo a%00b\n" RCPT "end\n", 0,
	 "cannot hold NUL"},
	{"raw NUL", HEAD REQ "helo a\0b\n" RCPT "end\n",
	 sizeof(HEAD REQ "helo a\0b\n" RCPT "end\n") - 1, "NUL byte"},
	{"raw CR", HEAD REQ "helo a\rb\n" RCPT "end\n", 0,
	 "unescaped control byte 0x0d"},
	{"empty line", HEAD REQ "\n" RCPT "end\n", 0, "empty line"},
	{"bad body", HEAD REQ "body 9bit\n" RCPT "end\n", 0, "bad body"},
	{"bad bool", HEAD REQ "held maybe\n" RCPT "end\n", 0,
	 "bad yes/no value"},
	{"unknown rcpt field", HEAD REQ "rcpt r@x colour=red\nend\n", 0,
	 "unknown recipient field 'colour'"},
	{"rcpt field without =", HEAD REQ "rcpt r@x pending\nend\n", 0,
	 "want name=value"},
	{"rcpt field twice",
	 HEAD REQ "rcpt r@x state=pending state=failed\n"
		  "end\n",
	 0, "given twice"},
	{"bad notify", HEAD REQ "rcpt r@x notify=SUCCESS,SOMETIMES\nend\n", 0,
	 "bad NOTIFY word 'SOMETIMES'"},
	{"bad state", HEAD REQ "rcpt r@x state=lost\nend\n", 0,
	 "bad recipient state"},
	{"empty rcpt", HEAD REQ "rcpt  state=pending\nend\n", 0,
	 "empty recipient address"},
	{"bad attempt time", HEAD REQ RCPT "attempt yesterday\nend\n", 0,
	 "bad time"},
	{"unknown attempt field",
	 HEAD REQ RCPT "attempt 2026-12-03T17:00:00Z "
		       "port=25\nend\n",
	 0, "unknown attempt field 'port'"},
};

static void
test_parse_errors(void **state)
{
	(void)state;
	int failed = 0;

	for (size_t c = 0; c < sizeof err_cases / sizeof err_cases[0]; c++) {
		const struct err_case *e = &err_cases[c];
		struct envelope env = {0};
		char err[256] = "";
		size_t len = e->len ? e->len : strlen(e->text);

		int rc = envelope_parse(e->text, len, &env, err, sizeof err);
		if (rc == 0) {
			print_error("%s: parse accepted it; want error '%s'\n",
				    e->name, e->want);
			failed++;
		} else if (strstr(err, e->want) == NULL) {
			print_error("%s: got error '%s' want '%s'\n", e->name,
				    err, e->want);
			failed++;
		}
		/* A failed parse leaves nothing allocated. */
		if (rc != 0 && (env.sender != NULL || env.rcpts != NULL)) {
			print_error("%s: envelope not cleared\n", e->name);
			failed++;
		}
		envelope_clear(&env);
	}
	assert_int_equal(failed, 0);
}

/* "end" as the very last bytes, without a newline, is complete. */
static void
test_end_without_newline(void **state)
{
	(void)state;
	const char *text = HEAD REQ RCPT "end";
	struct envelope env = {0};
	char err[256];

	int rc = envelope_parse(text, strlen(text), &env, err, sizeof err);
	if (rc != 0)
		print_error("got error '%s' want success\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(env.rcpts[0].address, "r@example.net");
	envelope_clear(&env);
}

static void
test_notify_words(void **state)
{
	(void)state;
	static const struct {
		unsigned bits;
		const char *want;
	} cases[] = {
		{0, ""},
		{NEVER, "NEVER"},
		{SUCCESS | DELAY, "SUCCESS,DELAY"},
		{DELAY | FAILURE | SUCCESS, "SUCCESS,FAILURE,DELAY"},
		{0xf0 | FAILURE, "FAILURE"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[ENVELOPE_NOTIFY_WORDS_MAX];
		const char *got =
			envelope_notify_words(cases[i].bits, buf, sizeof buf);
		if (strcmp(got, cases[i].want) != 0)
			print_error("bits %#x: got '%s' want '%s'\n",
				    cases[i].bits, got, cases[i].want);
		assert_string_equal(got, cases[i].want);
	}
	/* A buffer too small cuts at a word boundary. */
	char small[10];
	assert_string_equal(
		envelope_notify_words(SUCCESS | FAILURE, small, sizeof small),
		"SUCCESS");
}

static void
test_state(void **state)
{
	(void)state;
	struct envelope env;

	mk_minimal(&env);
	assert_string_equal(envelope_state(&env, 1000), "active");
	env.next_attempt = 2000;
	assert_string_equal(envelope_state(&env, 1000), "deferred");
	assert_string_equal(envelope_state(&env, 2000), "active");
	assert_int_equal(envelope_add_attempt(&env, 900, NULL, "x"), 0);
	assert_string_equal(envelope_state(&env, 3000), "deferred");
	env.held = true;
	assert_string_equal(envelope_state(&env, 3000), "held");
	envelope_clear(&env);
}

static void
test_add_rcpt_refuses_empty(void **state)
{
	(void)state;
	struct envelope env = {0};
	assert_int_equal(envelope_add_rcpt(&env, "", 0, NULL), -1);
	assert_int_equal(env.n_rcpts, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_exact_text),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_end_without_newline),
		cmocka_unit_test(test_notify_words),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_add_rcpt_refuses_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
