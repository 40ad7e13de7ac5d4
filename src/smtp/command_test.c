/*
 * command_test: table-driven tests of the command splitter and of MAIL and
 * RCPT arguments (RFC 5321, 1870, 6152, 3030, 6531, 3461, 4954; cases
 * C05, C11, C12, C13, C14, C15, C16, C18).  Each parse result is written
 * as one canonical line ("from=<...> size=... body=...") or as the reply
 * ("501 5.5.4"), so a failing row prints got and want side by side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/command.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1

struct cmd_case {
	const char *line;
	size_t len;
	int rc;
	enum smtp_verb verb;
	const char *args;
};

/* clang-format off */
static const struct cmd_case cmd_cases[] = {
	{S("EHLO client.example.org"), 0, SMTP_VERB_EHLO, "client.example.org"},
	{S("ehlo client.example.org"), 0, SMTP_VERB_EHLO, "client.example.org"},
	{S("HELO x"), 0, SMTP_VERB_HELO, "x"},
	{S("mail FROM:<a@b>"), 0, SMTP_VERB_MAIL, "FROM:<a@b>"},
	{S("Rcpt To:<a@b>   "), 0, SMTP_VERB_RCPT, "To:<a@b>"},
	{S("RCPT    TO:<a@b>"), 0, SMTP_VERB_RCPT, "TO:<a@b>"},
	{S("DATA"), 0, SMTP_VERB_DATA, ""},
	{S("data "), 0, SMTP_VERB_DATA, ""},
	{S("BDAT 100 LAST"), 0, SMTP_VERB_BDAT, "100 LAST"},
	{S("RSET"), 0, SMTP_VERB_RSET, ""},
	{S("NOOP hello"), 0, SMTP_VERB_NOOP, "hello"},
	{S("quit"), 0, SMTP_VERB_QUIT, ""},
	{S("VRFY x"), 0, SMTP_VERB_VRFY, "x"},
	{S("EXPN x"), 0, SMTP_VERB_EXPN, "x"},
	{S("HELP"), 0, SMTP_VERB_HELP, ""},
	{S("StartTLS"), 0, SMTP_VERB_STARTTLS, ""},
	{S("AUTH PLAIN"), 0, SMTP_VERB_AUTH, "PLAIN"},
	{S("AUTH PLAIN dGVzdA== \t"), 0, SMTP_VERB_AUTH, "PLAIN dGVzdA=="},
	/* The verb must be followed by a space or the end. */
	{S("MAIL:FROM:<a@b>"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("MAILFROM:<a@b>"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("STARTTLSX"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("DAT"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("QUIT\r"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("MAIL\tFROM:<a@b>"), 0, SMTP_VERB_UNKNOWN, ""},
	{S("XFOO bar"), 0, SMTP_VERB_UNKNOWN, "bar"},
	{S("Subject: x"), 0, SMTP_VERB_UNKNOWN, "x"},
	/* Not commands at all. */
	{S(""), -1, SMTP_VERB_UNKNOWN, ""},
	{S(" "), -1, SMTP_VERB_UNKNOWN, ""},
	{S(" QUIT"), -1, SMTP_VERB_UNKNOWN, ""},
	{S("QUIT\0"), -1, SMTP_VERB_UNKNOWN, ""},
	{S("MAIL FROM:<a@b>\0RCPT TO:<c@d>"), -1, SMTP_VERB_UNKNOWN, ""},
	{S("\0"), -1, SMTP_VERB_UNKNOWN, ""},
	{S("D\xc3\x84TA"), -1, SMTP_VERB_UNKNOWN, ""},
	{S("\xff"), -1, SMTP_VERB_UNKNOWN, ""},
};
/* clang-format on */

static void
test_command_table(void **state)
{
	char g[200], w[200];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct smtp_command cmd;
		int rc = smtp_command_parse(c->line, c->len, &cmd);
		bool ok = rc == c->rc;
		if (ok && rc == 0)
			ok = cmd.verb == c->verb &&
			     cmd.args_len == strlen(c->args) &&
			     memcmp(cmd.args, c->args, cmd.args_len) == 0 &&
			     cmd.args >= c->line &&
			     cmd.args + cmd.args_len <= c->line + c->len;
		if (ok)
			continue;
		failed++;
		print_error(
			"row %zu \"%s\": got rc=%d verb=%d args=\"%s\" want "
			"rc=%d verb=%d args=\"%s\"\n",
			i, log_escape(g, sizeof g, c->line, c->len), rc,
			cmd.verb,
			log_escape(w, sizeof w, cmd.args,
				   rc == 0 ? cmd.args_len : 0),
			c->rc, c->verb, c->args);
	}
	assert_int_equal(failed, 0);
}

/* One line that says everything a parse produced. */
static void
describe_addr(char *buf, size_t len, const struct smtp_address *a)
{
	char e[600];

	if (a->is_null)
		snprintf(buf, len, "<>");
	else if (a->is_postmaster)
		snprintf(buf, len, "<%s>(postmaster)", a->local);
	else
		snprintf(buf, len, "<%s|%s>%s",
			 log_escape(e, sizeof e, a->local, strlen(a->local)),
			 a->domain, a->utf8 ? "(utf8)" : "");
}

static const char *const body_names[] = {"", " body=7BIT", " body=8BITMIME",
					 " body=BINARYMIME"};
static const char *const ret_names[] = {"", " ret=FULL", " ret=HDRS"};

static void
describe_mail(char *buf, size_t len, int rc, const struct smtp_mail *m,
	      const struct smtp_reply *err)
{
	char from[700], size[40] = "";

	if (rc != 0) {
		snprintf(buf, len, "%d %s", err->code, err->enhanced);
		return;
	}
	describe_addr(from, sizeof from, &m->from);
	if (m->has_size)
		snprintf(size, sizeof size, " size=%llu",
			 (unsigned long long)m->size);
	snprintf(buf, len, "from=%s%s%s%s%s%s%s", from, size,
		 body_names[m->body], m->smtputf8 ? " smtputf8" : "",
		 ret_names[m->ret], m->envid[0] != '\0' ? " envid=" : "",
		 m->envid);
}

struct mail_case {
	const char *args;
	size_t len;
	bool chunking;
	const char *want;
};

/* clang-format off */
static const struct mail_case mail_cases[] = {
	{S("FROM:<sender@example.org>"), false, "from=<sender|example.org>"},
	/* C15: a space after the colon is tolerated. */
	{S("FROM: <sender@example.org>"), false, "from=<sender|example.org>"},
	{S("FROM:   <sender@example.org>"), false, "from=<sender|example.org>"},
	/* C14: keywords and values in any case; address case kept. */
	{S("from:<Sender@Example.ORG> body=8bitmime size=100"), false,
	 "from=<Sender|Example.ORG> size=100 body=8BITMIME"},
	/* C13: the null path, and junk after it. */
	{S("FROM:<>"), false, "from=<>"},
	{S("FROM:<> SIZE=1000"), false, "from=<> size=1000"},
	{S("FROM:<>>>>"), false, "501 5.1.7"},
	{S("FROM:<sender@example.org>>"), false, "501 5.1.7"},
	{S("FROM:<sender@example.org> <other@example.org>"), false,
	 "501 5.5.4"},
	{S("FROM:<sender@example.org>\tSIZE=1"), false, "501 5.1.7"},
	{S("FROM:<sender@example.org>SIZE=1"), false, "501 5.1.7"},
	{S("FROM:<\"sender name\"@example.org>"), false,
	 "from=<sender name|example.org>"},
	{S("FROM:<postmaster>"), false, "501 5.1.7"},
	{S("FROM:<@relay.example:a@b.example>"), false, "from=<a|b.example>"},
	/* The verb's argument itself. */
	{S(""), false, "501 5.5.4"},
	{S("FROM"), false, "501 5.5.4"},
	{S("FROM <a@b>"), false, "501 5.5.4"},
	{S("FROM :<a@b>"), false, "501 5.5.4"},
	{S("FRM:<a@b>"), false, "501 5.5.4"},
	{S("TO:<a@b>"), false, "501 5.5.4"},
	{S("FROM:"), false, "501 5.1.7"},
	{S("FROM:a@b"), false, "501 5.1.7"},
	{S("FROM:<a@b"), false, "501 5.1.7"},
	{S("FROM:<a b@c>"), false, "501 5.1.7"},
	/* C16: SIZE. */
	{S("FROM:<a@b> SIZE=20000000"), false, "from=<a|b> size=20000000"},
	{S("FROM:<a@b> SIZE=0"), false, "from=<a|b> size=0"},
	{S("FROM:<a@b> SIZE=000123"), false, "from=<a|b> size=123"},
	{S("FROM:<a@b> SIZE=9223372036854775807"), false,
	 "from=<a|b> size=9223372036854775807"},
	{S("FROM:<a@b> SIZE=9223372036854775808"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=18446744073709551616"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=184467440737095516160"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=abc"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=-1"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=+1"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1k"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE="), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1 SIZE=2"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1 size=1"), false, "501 5.5.4"},
	/* C11: BODY. */
	{S("FROM:<a@b> BODY=8BITMIME"), false, "from=<a|b> body=8BITMIME"},
	{S("FROM:<a@b> BODY=7BIT"), false, "from=<a|b> body=7BIT"},
	{S("FROM:<a@b> body=8bitmime"), false, "from=<a|b> body=8BITMIME"},
	{S("FROM:<a@b> BODY=BINARYMIME"), false, "501 5.5.4"},
	{S("FROM:<a@b> BODY=BINARYMIME"), true, "from=<a|b> body=BINARYMIME"},
	{S("FROM:<a@b> BODY=FOO"), false, "501 5.5.4"},
	{S("FROM:<a@b> BODY=8BIT"), false, "501 5.5.4"},
	{S("FROM:<a@b> BODY="), false, "501 5.5.4"},
	{S("FROM:<a@b> BODY"), false, "501 5.5.4"},
	{S("FROM:<a@b> BODY=7BIT BODY=7BIT"), false, "501 5.5.4"},
	/* C10: SMTPUTF8. */
	{S("FROM:<sender@example.org> SMTPUTF8"), false,
	 "from=<sender|example.org> smtputf8"},
	{S("FROM:<a@b> smtputf8"), false, "from=<a|b> smtputf8"},
	{S("FROM:<a@b> SMTPUTF8=yes"), false, "501 5.5.4"},
	{S("FROM:<a@b> SMTPUTF8="), false, "501 5.5.4"},
	{S("FROM:<j\xc3\xb6rg@example.net>"), false, "553 5.6.7"},
	{S("FROM:<j\xc3\xb6rg@example.net> SMTPUTF8"), false,
	 "from=<j\\xc3\\xb6rg|example.net>(utf8) smtputf8"},
	{S("FROM:<j\xc3rg@example.net> SMTPUTF8"), false, "501 5.1.7"},
	/* C18: RET, ENVID. */
	{S("FROM:<sender@example.org> RET=HDRS ENVID=QQ314159"), false,
	 "from=<sender|example.org> ret=HDRS envid=QQ314159"},
	{S("FROM:<a@b> ret=full"), false, "from=<a|b> ret=FULL"},
	{S("FROM:<a@b> RET=BOTH"), false, "501 5.5.4"},
	{S("FROM:<a@b> RET"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=a+2Bb+3D"), false, "from=<a|b> envid=a+2Bb+3D"},
	{S("FROM:<a@b> ENVID=a+2bb"), false, "from=<a|b> envid=a+2bb"},
	{S("FROM:<a@b> ENVID=a+2"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=a+"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=a+G0"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=a=b"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=\xc3\xb6"), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID="), false, "501 5.5.4"},
	{S("FROM:<a@b> ENVID=x ENVID=y"), false, "501 5.5.4"},
	/* AUTH (RFC 4954): accepted, not used. */
	{S("FROM:<a@b> AUTH=<>"), false, "from=<a|b>"},
	{S("FROM:<a@b> AUTH=user+40example.com"), false, "from=<a|b>"},
	{S("FROM:<a@b> AUTH="), false, "501 5.5.4"},
	{S("FROM:<a@b> AUTH"), false, "501 5.5.4"},
	{S("FROM:<a@b> AUTH=a+zz"), false, "501 5.5.4"},
	/* Unknown and malformed parameters. */
	{S("FROM:<a@b> FOO=bar"), false, "555 5.5.4"},
	{S("FROM:<a@b> X-FOO"), false, "555 5.5.4"},
	{S("FROM:<a@b> NOTIFY=NEVER"), false, "555 5.5.4"},
	{S("FROM:<a@b> =x"), false, "501 5.5.4"},
	{S("FROM:<a@b> -X"), false, "501 5.5.4"},
	{S("FROM:<a@b> A_B=1"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1\x01"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1\x7f"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1\0"), false, "501 5.5.4"},
	{S("FROM:<a@b> SIZE=1\t"), false, "501 5.5.4"},
	/* Several parameters, several spaces. */
	{S("FROM:<a@b>  SIZE=1   BODY=7BIT  "), false,
	 "from=<a|b> size=1 body=7BIT"},
	{S("FROM:<a@b> SIZE=1 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x AUTH=<>"),
	 false, "from=<a|b> size=1 body=8BITMIME smtputf8 ret=FULL envid=x"},
};
/* clang-format on */

static void
test_mail_table(void **state)
{
	char got[2048], in[600];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		const struct mail_case *c = &mail_cases[i];
		struct smtp_mail m;
		struct smtp_reply err = {0, NULL, NULL};
		int rc =
			smtp_mail_parse(c->args, c->len, c->chunking, &m, &err);
		describe_mail(got, sizeof got, rc, &m, &err);
		bool ok = strcmp(got, c->want) == 0;
		if (ok && rc != 0)
			ok = err.text != NULL && err.text[0] != '\0';
		if (ok)
			continue;
		failed++;
		print_error("row %zu \"%s\"\n  got  %s\n  want %s\n", i,
			    log_escape(in, sizeof in, c->args, c->len), got,
			    c->want);
	}
	assert_int_equal(failed, 0);
}

static void
describe_rcpt(char *buf, size_t len, int rc, const struct smtp_rcpt *r,
	      const struct smtp_reply *err)
{
	char to[700], notify[64] = "";

	if (rc != 0) {
		snprintf(buf, len, "%d %s", err->code, err->enhanced);
		return;
	}
	describe_addr(to, sizeof to, &r->to);
	if (r->notify != 0)
		snprintf(notify, sizeof notify, " notify=%s%s%s%s",
			 r->notify & SMTP_NOTIFY_NEVER ? "N" : "",
			 r->notify & SMTP_NOTIFY_SUCCESS ? "S" : "",
			 r->notify & SMTP_NOTIFY_FAILURE ? "F" : "",
			 r->notify & SMTP_NOTIFY_DELAY ? "D" : "");
	snprintf(buf, len, "to=%s%s%s%s", to, notify,
		 r->orcpt[0] != '\0' ? " orcpt=" : "", r->orcpt);
}

struct rcpt_case {
	const char *args;
	size_t len;
	const char *want;
};

/* clang-format off */
static const struct rcpt_case rcpt_cases[] = {
	{S("TO:<rcpt@example.net>"), "to=<rcpt|example.net>"},
	{S("TO: <rcpt@example.net>"), "to=<rcpt|example.net>"},
	{S("TO: <r2@example.net> NOTIFY=FAILURE"), "to=<r2|example.net> notify=F"},
	{S("to:<Mixed.Case@EXAMPLE.COM>"), "to=<Mixed.Case|EXAMPLE.COM>"},
	{S("TO:<>"), "501 5.1.3"},
	{S("TO:<> NOTIFY=NEVER"), "501 5.1.3"},
	{S("TO:<postmaster>"), "to=<postmaster>(postmaster)"},
	{S("TO:<Postmaster>"), "to=<Postmaster>(postmaster)"},
	{S("TO:<no-at-sign>"), "501 5.1.3"},
	{S("TO:<a@b>>"), "501 5.1.3"},
	{S("TO:<a@b> <c@d>"), "501 5.5.4"},
	{S("TO:<a@b"), "501 5.1.3"},
	{S("TO:a@b"), "501 5.1.3"},
	{S("TO:"), "501 5.1.3"},
	{S("TO"), "501 5.5.4"},
	{S("FROM:<a@b>"), "501 5.5.4"},
	{S("T0:<a@b>"), "501 5.5.4"},
	{S("TO:<j\xc3\xb6rg@example.net>"), "to=<j\\xc3\\xb6rg|example.net>(utf8)"},
	/* C12: the quoted part is one address in example.net, no params. */
	{S("TO:<\"x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com\"@example.net>"),
	 "to=<x> NOTIFY=SUCCESS ORCPT=rfc822;spy@example.com|example.net>"},
	{S("TO:<\"odd user\"@example.net>"), "to=<odd user|example.net>"},
	{S("TO:<\"a@b\"@example.net>"), "to=<a@b|example.net>"},
	/* C18: DSN parameters. */
	{S("TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net"),
	 "to=<a|example.net> notify=SF orcpt=rfc822;a@example.net"},
	{S("TO:<b@example.net> NOTIFY=NEVER"), "to=<b|example.net> notify=N"},
	{S("TO:<c@example.net> ORCPT=rfc822;root"),
	 "to=<c|example.net> orcpt=rfc822;root"},
	{S("TO:<d@example.net> notify=delay ORCPT=RFC822;d+2Bx@example.net"),
	 "to=<d|example.net> notify=D orcpt=RFC822;d+2Bx@example.net"},
	{S("TO:<a@b> NOTIFY=DELAY,FAILURE"), "to=<a|b> notify=FD"},
	{S("TO:<a@b> NOTIFY=success,failure,delay"), "to=<a|b> notify=SFD"},
	{S("TO:<a@b> NOTIFY=NEVER,SUCCESS"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=FAILURE,NEVER"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY="), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=SUCCESS,"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=,SUCCESS"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=SUCCESS,,DELAY"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=ALWAYS"), "501 5.5.4"},
	{S("TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc822"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=;a@b"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc822;"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc.822;a"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc822;a+ZZ"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc822;j\xc3\xb6rg@x"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=utf-8;j\xc3\xb6rg@x"),
	 "to=<a|b> orcpt=utf-8;j\xc3\xb6rg@x"},
	{S("TO:<a@b> ORCPT=utf-8;j\xc3rg@x"), "501 5.5.4"},
	{S("TO:<a@b> ORCPT=rfc822;a ORCPT=rfc822;b"), "501 5.5.4"},
	{S("TO:<a@b> SIZE=1"), "555 5.5.4"},
	{S("TO:<a@b> BODY=8BITMIME"), "555 5.5.4"},
};
/* clang-format on */

static void
test_rcpt_table(void **state)
{
	char got[2048], in[600];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_rcpt r;
		struct smtp_reply err = {0, NULL, NULL};
		int rc = smtp_rcpt_parse(c->args, c->len, &r, &err);
		describe_rcpt(got, sizeof got, rc, &r, &err);
		bool ok = strcmp(got, c->want) == 0;
		if (ok && rc != 0)
			ok = err.text != NULL && err.text[0] != '\0';
		if (ok)
			continue;
		failed++;
		print_error("row %zu \"%s\"\n  got  %s\n  want %s\n", i,
			    log_escape(in, sizeof in, c->args, c->len), got,
			    c->want);
	}
	assert_int_equal(failed, 0);
}

/* Builds "<prefix><n x ch><suffix>" in buf. */
static size_t
build(char *buf, size_t cap, const char *prefix, char ch, size_t n,
      const char *suffix)
{
	size_t p = strlen(prefix), s = strlen(suffix);

	assert_true(p + n + s < cap);
	memcpy(buf, prefix, p);
	memset(buf + p, ch, n);
	memcpy(buf + p + n, suffix, s);
	return p + n + s;
}

/* Bounds: ENVID 100, ORCPT 500, path 256 (C07). */
static void
test_length_limits(void **state)
{
	char buf[2048];
	struct smtp_mail m;
	struct smtp_rcpt r;
	struct smtp_reply err;
	size_t n;

	(void)state;
	n = build(buf, sizeof buf, "FROM:<a@b> ENVID=", 'e', SMTP_ENVID_MAX,
		  "");
	assert_int_equal(smtp_mail_parse(buf, n, false, &m, &err), 0);
	assert_int_equal(strlen(m.envid), SMTP_ENVID_MAX);
	n = build(buf, sizeof buf, "FROM:<a@b> ENVID=", 'e', SMTP_ENVID_MAX + 1,
		  "");
	assert_int_equal(smtp_mail_parse(buf, n, false, &m, &err), -1);
	assert_int_equal(err.code, 501);

	n = build(buf, sizeof buf, "TO:<a@b> ORCPT=rfc822;", 'o',
		  SMTP_ORCPT_MAX - 7, "");
	assert_int_equal(smtp_rcpt_parse(buf, n, &r, &err), 0);
	assert_int_equal(strlen(r.orcpt), SMTP_ORCPT_MAX);
	n = build(buf, sizeof buf, "TO:<a@b> ORCPT=rfc822;", 'o',
		  SMTP_ORCPT_MAX - 6, "");
	assert_int_equal(smtp_rcpt_parse(buf, n, &r, &err), -1);
	assert_int_equal(err.code, 501);

	/* C07 A: a 600-octet local part: path too long. */
	n = build(buf, sizeof buf, "TO:<", 'a', 600, "@example.net>");
	assert_int_equal(smtp_rcpt_parse(buf, n, &r, &err), -1);
	assert_int_equal(err.code, 501);
	assert_string_equal(err.enhanced, "5.1.3");
	assert_non_null(strstr(err.text, "path too long"));
	n = build(buf, sizeof buf, "FROM:<", 'a', 600, "@example.net>");
	assert_int_equal(smtp_mail_parse(buf, n, false, &m, &err), -1);
	assert_int_equal(err.code, 501);
	assert_string_equal(err.enhanced, "5.1.7");
	assert_non_null(strstr(err.text, "path too long"));
	/* C07: 64-octet local part, 256-octet path: fine. */
	n = build(buf, sizeof buf, "TO:<", 'a', 64, "@");
	for (size_t k = 0; k < 191; k++)
		buf[n++] = (k % 64 == 63) ? '.' : 'b';
	buf[n++] = '>';
	assert_int_equal(smtp_rcpt_parse(buf, n, &r, &err), 0);
}

/* Every reply has a code, an enhanced code of the same class, a text. */
static void
test_replies_complete(void **state)
{
	char in[600];

	(void)state;
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		struct smtp_mail m;
		struct smtp_reply err = {0, NULL, NULL};
		if (smtp_mail_parse(mail_cases[i].args, mail_cases[i].len,
				    mail_cases[i].chunking, &m, &err) == 0)
			continue;
		if (err.code < 500 || err.code > 599 || err.enhanced == NULL ||
		    err.enhanced[0] != '5' || err.text == NULL)
			print_error(
				"mail row %zu \"%s\": incomplete reply\n", i,
				log_escape(in, sizeof in, mail_cases[i].args,
					   mail_cases[i].len));
		assert_in_range(err.code, 500, 599);
		assert_non_null(err.enhanced);
		assert_int_equal(err.enhanced[0], '5');
		assert_non_null(err.text);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_table),
		cmocka_unit_test(test_mail_table),
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_replies_complete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
