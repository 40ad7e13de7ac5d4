/*
 * bounce_test: the NOTIFY rules (a table) and the DSN text, parsed back:
 * CRLF line ends only, the boundary opening each of three parts and
 * closing once, the fields RFC 3464 requires in each place, xtext
 * decoded, peer text kept to one printable line, RET=HDRS versus FULL,
 * and the header-only fallback for large originals.  Failures print
 * got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/bounce.h"

#define NEVER 0x1
#define SUCCESS 0x2
#define FAILURE 0x4
#define DELAY 0x8
#define RET_FULL 1
#define RET_HDRS 2

#define BOUNDARY "TESTBOUNDARY"

/* ------------------------------------------------------------ wanted */

static void
test_wanted(void **state)
{
	static const struct {
		const char *sender;
		unsigned notify;
		enum bounce_outcome outcome;
		bool want;
	} cases[] = {
		{"a@example.org", 0, BOUNCE_FAILED, true},
		{"a@example.org", FAILURE, BOUNCE_FAILED, true},
		{"a@example.org", SUCCESS | FAILURE, BOUNCE_FAILED, true},
		{"a@example.org", NEVER, BOUNCE_FAILED, false},
		{"a@example.org", DELAY, BOUNCE_FAILED, false},
		{"a@example.org", SUCCESS, BOUNCE_FAILED, false},
		{"a@example.org", 0, BOUNCE_RELAYED, false},
		{"a@example.org", SUCCESS, BOUNCE_RELAYED, true},
		{"a@example.org", FAILURE, BOUNCE_RELAYED, false},
		{"", 0, BOUNCE_FAILED, false},
		{"", FAILURE, BOUNCE_FAILED, false},
		{"", SUCCESS, BOUNCE_RELAYED, false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct envelope env = {0};
		env.sender = strdup(cases[i].sender);
		assert_non_null(env.sender);
		assert_int_equal(envelope_add_rcpt(&env, "r@example.net",
						   cases[i].notify, NULL),
				 0);
		bool got = bounce_wanted(&env, 0, cases[i].outcome);
		if (got != cases[i].want)
			fail_msg("case %zu: sender <%s> notify %#x outcome %d: "
				 "got %d want %d",
				 i, cases[i].sender, cases[i].notify,
				 cases[i].outcome, got, cases[i].want);
		envelope_clear(&env);
	}
}

/* ------------------------------------------------------------ format */

struct fmt_case {
	const char *name;
	int ret;
	const char *envid;
	const char *orcpt;
	const char *content; /* NULL: a large one is made */
	enum bounce_outcome outcome;
	const char *status;
	const char *diag;
	/* expectations */
	const char *want[12];	 /* substrings that must appear */
	const char *unwanted[4]; /* substrings that must not */
	const char *third_type;	 /* Content-Type of the third part */
	const char *rcpt;	 /* NULL: gone@example.net */
	const char *part2_type;	 /* NULL: message/delivery-status */
};

static const struct fmt_case fmt_cases[] = {
	{
		.name = "full, 5.1.1, envid and orcpt decoded",
		.ret = RET_FULL,
		.envid = "QQ+2B314159",
		.orcpt = "rfc822;d+2Bx@example.net",
		.content = "Subject: hi\r\nFrom: a@example.org\r\n\r\nbody "
			   "line\r\n",
		.outcome = BOUNCE_FAILED,
		.status = "5.1.1",
		.diag = "550 5.1.1 no such user",
		.want = {"\r\nReporting-MTA: dns; bh1.example.com\r\n",
			 "\r\nOriginal-Envelope-Id: QQ+314159\r\n",
			 "\r\nArrival-Date: Thu, 03 Dec 2026 17:00:00 "
			 "+0000\r\n",
			 "\r\nOriginal-Recipient: rfc822;d+x@example.net\r\n",
			 "\r\nFinal-Recipient: rfc822; gone@example.net\r\n",
			 "\r\nAction: failed\r\n", "\r\nStatus: 5.1.1\r\n",
			 "\r\nRemote-MTA: dns; smart.example.net\r\n",
			 "\r\nDiagnostic-Code: smtp; 550 5.1.1 no such "
			 "user\r\n",
			 "\r\nbody line\r\n",
			 "Subject: Undelivered Mail Returned to Sender\r\n",
			 "\r\nAuto-Submitted: auto-replied\r\n"},
		.third_type = "message/rfc822",
	},
	{
		.name = "hdrs: header section only",
		.ret = RET_HDRS,
		.content = "Subject: hi\r\n\r\nsecret body\r\n",
		.outcome = BOUNCE_FAILED,
		.status = NULL,
		.diag = "550 rejected",
		.want = {"\r\nStatus: 5.0.0\r\n", "\r\nSubject: hi\r\n"},
		.unwanted = {"secret body", "Original-Envelope-Id",
			     "Original-Recipient"},
		.third_type = "text/rfc822-headers",
	},
	{
		.name = "a reply cannot add fields",
		.ret = 0,
		.content = "Subject: x\r\n\r\nb\r\n",
		.outcome = BOUNCE_FAILED,
		.status = "5.7.1\r\nX: y",
		.diag = "550 bad\r\nX-Injected: yes\r\n--" BOUNDARY "--",
		.want = {"\r\nStatus: 5.0.0\r\n",
			 "Diagnostic-Code: smtp; 550 bad?"
			 "?X-Injected: yes?"
			 "?--"},
		.unwanted = {"\r\nX-Injected", "\r\nX: y"},
		.third_type = "message/rfc822",
	},
	{
		.name = "relayed (NOTIFY=SUCCESS, next hop without DSN)",
		.ret = 0,
		.content = "Subject: x\r\n\r\nb\r\n",
		.outcome = BOUNCE_RELAYED,
		.status = "2.0.0",
		.diag = "250 2.0.0 ok",
		.want = {"\r\nAction: relayed\r\n", "\r\nStatus: 2.0.0\r\n",
			 "Subject: Successful Mail Delivery Report\r\n"},
		.unwanted = {"Action: failed"},
		.third_type = "message/rfc822",
	},
	{
		.name = "UTF-8 recipient: RFC 6533 global report",
		.ret = 0,
		.rcpt = "us\xc3\xa9r@example.net",
		.content = "Subject: x\r\n\r\nb\r\n",
		.outcome = BOUNCE_FAILED,
		.status = "5.1.1",
		.diag = "550 5.1.1 unknown",
		.want = {"\r\nFinal-Recipient: utf-8; "
			 "us\xc3\xa9r@example.net\r\n",
			 "<us\xc3\xa9r@example.net>: failed",
			 "Content-Type: message/global-delivery-status\r\n",
			 "charset=utf-8"},
		.unwanted = {"rfc822; us"},
		.part2_type = "message/global-delivery-status",
		.third_type = "message/global",
	},
	{
		.name = "large original: headers only, said so",
		.ret = RET_FULL,
		.content = NULL,
		.outcome = BOUNCE_FAILED,
		.status = "4.4.7",
		.diag = "4.4.7 message expired",
		.want = {"\r\nStatus: 4.4.7\r\n",
			 "only its header section is attached.\r\n",
			 "\r\nSubject: big\r\n"},
		.unwanted = {"XXXXXXXXXXXXXXXX"},
		.third_type = "text/rfc822-headers",
	},
};

static char *
write_content(const struct fmt_case *c, char *path, size_t len)
{
	snprintf(path, len, "/tmp/bounce_test.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	if (c->content != NULL) {
		size_t n = strlen(c->content);
		assert_int_equal(write(fd, c->content, n), (ssize_t)n);
	} else {
		const char *h = "Subject: big\r\n\r\n";
		assert_int_equal(write(fd, h, strlen(h)), (ssize_t)strlen(h));
		char line[1002];
		memset(line, 'X', 1000);
		line[1000] = '\r';
		line[1001] = '\n';
		for (size_t i = 0; i < BOUNCE_FULL_MAX / 1000 + 10; i++)
			assert_int_equal(write(fd, line, sizeof line),
					 (ssize_t)sizeof line);
	}
	close(fd);
	return path;
}

/* Every LF preceded by CR; no bare CR. */
static void
check_crlf(const char *name, const char *t, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (t[i] == '\n' && (i == 0 || t[i - 1] != '\r'))
			fail_msg("%s: bare LF at %zu", name, i);
		if (t[i] == '\r' && (i + 1 >= len || t[i + 1] != '\n'))
			fail_msg("%s: bare CR at %zu", name, i);
	}
}

/* Count lines equal to s. */
static size_t
count_lines(const char *t, const char *s)
{
	size_t n = 0, l = strlen(s);
	for (const char *p = t; (p = strstr(p, s)) != NULL; p += l)
		if ((p == t || p[-1] == '\n') &&
		    (p[l] == '\r' && p[l + 1] == '\n'))
			n++;
	return n;
}

/* The Content-Type line of part number k (1-based). */
static void
part_type(const char *t, int k, char *out, size_t outlen)
{
	const char *p = t;
	out[0] = '\0';
	for (int i = 0; i < k; i++) {
		p = strstr(p, "\r\n--" BOUNDARY "\r\n");
		if (p == NULL)
			return;
		p += strlen("\r\n--" BOUNDARY "\r\n");
	}
	if (strncmp(p, "Content-Type: ", 14) != 0)
		return;
	p += 14;
	const char *e = strpbrk(p, ";\r");
	snprintf(out, outlen, "%.*s", (int)(e - p), p);
}

static void
test_format(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof fmt_cases / sizeof fmt_cases[0]; i++) {
		const struct fmt_case *c = &fmt_cases[i];
		struct envelope env = {0};
		char path[64];
		snprintf(env.id, sizeof env.id, "0RZk3m9aB7cDeFgH");
		env.received = 1796317200; /* 2026-12-03T17:00:00Z */
		env.sender = strdup("sender@example.org");
		env.ret = c->ret;
		env.envid = c->envid ? strdup(c->envid) : NULL;
		assert_int_equal(envelope_add_rcpt(&env,
						   c->rcpt ? c->rcpt
							   : "gone@example.net",
						   0, c->orcpt),
				 0);
		write_content(c, path, sizeof path);
		struct bounce_rcpt r = {
			.rcpt = 0,
			.outcome = c->outcome,
			.status = c->status,
			.remote_mta = "smart.example.net",
			.diagnostic = c->diag,
		};
		struct bounce b = {
			.reporting_mta = "bh1.example.com",
			.env = &env,
			.content_path = path,
			.rcpts = &r,
			.n_rcpts = 1,
			.now = 1796317260,
		};
		size_t len = 0;
		char *t = bounce_format(&b, BOUNDARY, &len);
		unlink(path);
		assert_non_null(t);
		assert_int_equal(strlen(t), len);
		check_crlf(c->name, t, len);
		char mp[200];
		snprintf(mp, sizeof mp,
			 "Content-Type: multipart/report; "
			 "report-type=%s;\r\n\tboundary=\"" BOUNDARY "\"\r\n",
			 c->part2_type != NULL ? c->part2_type + 8
					       : "delivery-status");
		if (strstr(t, mp) == NULL)
			fail_msg("%s: no '%s' in:\n%.600s", c->name, mp, t);
		const char *head = "From: Mail Delivery System "
				   "<MAILER-DAEMON@bh1.example.com>\r\nTo: "
				   "<sender@example.org>\r\n";
		if (strncmp(t, head, strlen(head)) != 0)
			fail_msg("%s: From/To: got %.100s", c->name, t);
		size_t opens = count_lines(t, "--" BOUNDARY);
		size_t closes = count_lines(t, "--" BOUNDARY "--");
		if (opens != 3 || closes != 1)
			fail_msg("%s: boundaries: got %zu open %zu close, want "
				 "3 and 1",
				 c->name, opens, closes);
		const char *end = "\r\n--" BOUNDARY "--\r\n";
		if (len < strlen(end) ||
		    strcmp(t + len - strlen(end), end) != 0)
			fail_msg("%s: does not end with the closing boundary",
				 c->name);
		char type[64];
		part_type(t, 1, type, sizeof type);
		if (strcmp(type, "text/plain") != 0)
			fail_msg("%s: part 1: got %s want text/plain", c->name,
				 type);
		part_type(t, 2, type, sizeof type);
		const char *want2 = c->part2_type ? c->part2_type
						  : "message/delivery-status";
		if (strcmp(type, want2) != 0)
			fail_msg("%s: part 2: got %s want %s", c->name, type,
				 want2);
		part_type(t, 3, type, sizeof type);
		if (strcmp(type, c->third_type) != 0)
			fail_msg("%s: part 3: got %s want %s", c->name, type,
				 c->third_type);
		for (size_t k = 0; k < 12 && c->want[k] != NULL; k++)
			if (strstr(t, c->want[k]) == NULL)
				fail_msg("%s: missing '%s' in:\n%.3000s",
					 c->name, c->want[k], t);
		for (size_t k = 0; k < 4 && c->unwanted[k] != NULL; k++)
			if (strstr(t, c->unwanted[k]) != NULL)
				fail_msg("%s: unexpected '%s'", c->name,
					 c->unwanted[k]);
		free(t);
		envelope_clear(&env);
	}
}

static void
test_unreadable_original(void **state)
{
	struct envelope env = {0};
	(void)state;
	env.sender = strdup("s@example.org");
	assert_int_equal(envelope_add_rcpt(&env, "r@example.net", 0, NULL), 0);
	struct bounce_rcpt r = {.rcpt = 0, .outcome = BOUNCE_FAILED};
	struct bounce b = {.reporting_mta = "bh1.example.com",
			   .env = &env,
			   .content_path = "/nonexistent/bounce_test.msg",
			   .rcpts = &r,
			   .n_rcpts = 1};
	size_t len;
	assert_null(bounce_format(&b, BOUNDARY, &len));
	envelope_clear(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_unreadable_original),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
