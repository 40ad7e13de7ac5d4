/*
 * fuzz_command: libFuzzer harness for smtp_command_parse() and the MAIL
 * and RCPT argument parsers with their ESMTP parameters.
 *
 * Input: byte 0 picks the parser (and CHUNKING for MAIL), the rest is the
 * text, in a buffer of its exact size.  Checks: arguments stay inside the
 * line; every refusal is a complete 5xx reply with an enhanced code; every
 * accepted MAIL/RCPT, written back the way the relay sends it on (address
 * re-quoted, one space before each parameter), parses to the same result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const struct smtp_reply *r)
{
	if (r->code < 500 || r->code > 599 || r->enhanced == NULL ||
	    r->text == NULL || r->enhanced[0] != '5' || r->text[0] == '\0')
		abort();
}

/* Appends with a hard bound; the buffers below are large enough. */
static void
add(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len + n >= cap)
		abort();
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

static size_t
add_path(char *buf, size_t cap, size_t len, const struct smtp_address *a)
{
	char wire[1024];

	if (smtp_address_format(a, wire, sizeof wire) < 0)
		abort();
	add(buf, cap, &len, "<");
	add(buf, cap, &len, wire);
	add(buf, cap, &len, ">");
	return len;
}

static void
mail_again(const struct smtp_mail *m, bool chunking)
{
	static const char *const body[] = {"", " BODY=7BIT", " BODY=8BITMIME",
					   " BODY=BINARYMIME"};
	static const char *const ret[] = {"", " RET=FULL", " RET=HDRS"};
	char buf[2048], num[32];
	size_t len = 0;
	struct smtp_mail m2;
	struct smtp_reply err;

	add(buf, sizeof buf, &len, "FROM:");
	len = add_path(buf, sizeof buf, len, &m->from);
	if (m->has_size) {
		snprintf(num, sizeof num, " SIZE=%llu",
			 (unsigned long long)m->size);
		add(buf, sizeof buf, &len, num);
	}
	add(buf, sizeof buf, &len, body[m->body]);
	if (m->smtputf8)
		add(buf, sizeof buf, &len, " SMTPUTF8");
	add(buf, sizeof buf, &len, ret[m->ret]);
	if (m->envid[0] != '\0') {
		add(buf, sizeof buf, &len, " ENVID=");
		add(buf, sizeof buf, &len, m->envid);
	}
	if (smtp_mail_parse(buf, len, chunking, &m2, &err) != 0) {
		/* Re-quoting may push a path over the limit; nothing else. */
		if (strstr(err.text, "too long") != NULL)
			return;
		fprintf(stderr, "fuzz_command: \"%s\" refused: %d %s %s\n", buf,
			err.code, err.enhanced, err.text);
		abort();
	}
	if (strcmp(m->from.local, m2.from.local) != 0 ||
	    strcmp(m->from.domain, m2.from.domain) != 0 ||
	    m->from.is_null != m2.from.is_null || m->has_size != m2.has_size ||
	    m->size != m2.size || m->body != m2.body ||
	    m->smtputf8 != m2.smtputf8 || m->ret != m2.ret ||
	    strcmp(m->envid, m2.envid) != 0)
		abort();
}

static void
rcpt_again(const struct smtp_rcpt *r)
{
	char buf[2048];
	size_t len = 0;
	struct smtp_rcpt r2;
	struct smtp_reply err;

	add(buf, sizeof buf, &len, "TO:");
	len = add_path(buf, sizeof buf, len, &r->to);
	if (r->notify & SMTP_NOTIFY_NEVER)
		add(buf, sizeof buf, &len, " NOTIFY=NEVER");
	else if (r->notify != 0) {
		const char *sep = " NOTIFY=";
		if (r->notify & SMTP_NOTIFY_SUCCESS) {
			add(buf, sizeof buf, &len, sep);
			add(buf, sizeof buf, &len, "SUCCESS");
			sep = ",";
		}
		if (r->notify & SMTP_NOTIFY_FAILURE) {
			add(buf, sizeof buf, &len, sep);
			add(buf, sizeof buf, &len, "FAILURE");
			sep = ",";
		}
		if (r->notify & SMTP_NOTIFY_DELAY) {
			add(buf, sizeof buf, &len, sep);
			add(buf, sizeof buf, &len, "DELAY");
		}
	}
	if (r->orcpt[0] != '\0') {
		add(buf, sizeof buf, &len, " ORCPT=");
		add(buf, sizeof buf, &len, r->orcpt);
	}
	if (smtp_rcpt_parse(buf, len, &r2, &err) != 0) {
		if (strstr(err.text, "too long") != NULL)
			return;
		fprintf(stderr, "fuzz_command: \"%s\" refused: %d %s %s\n", buf,
			err.code, err.enhanced, err.text);
		abort();
	}
	if (strcmp(r->to.local, r2.to.local) != 0 ||
	    strcmp(r->to.domain, r2.to.domain) != 0 ||
	    r->to.is_postmaster != r2.to.is_postmaster ||
	    r->notify != r2.notify || strcmp(r->orcpt, r2.orcpt) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] % 4;
	size_t len = size - 1;
	char *s = malloc(len > 0 ? len : 1);
	struct smtp_reply err;

	if (s == NULL)
		return 0;
	memcpy(s, data + 1, len);
	if (which == 0) {
		struct smtp_command cmd;
		int rc = smtp_command_parse(s, len, &cmd);
		if (rc == 0 &&
		    (len == 0 || memchr(s, '\0', len) != NULL || cmd.args < s ||
		     cmd.args + cmd.args_len > s + len))
			abort();
		if (rc != 0 && rc != -1)
			abort();
		if (rc == 0 && cmd.verb == SMTP_VERB_MAIL) {
			struct smtp_mail m;
			if (smtp_mail_parse(cmd.args, cmd.args_len, true, &m,
					    &err) != 0)
				check_reply(&err);
		}
	} else if (which <= 2) {
		struct smtp_mail m;
		bool chunking = which == 2;
		if (smtp_mail_parse(s, len, chunking, &m, &err) == 0) {
			if (strlen(m.envid) > SMTP_ENVID_MAX ||
			    m.from.is_postmaster ||
			    (m.from.utf8 && !m.smtputf8) ||
			    (m.body == SMTP_BODY_BINARYMIME && !chunking))
				abort();
			mail_again(&m, chunking);
		} else {
			check_reply(&err);
		}
	} else {
		struct smtp_rcpt r;
		if (smtp_rcpt_parse(s, len, &r, &err) == 0) {
			if (strlen(r.orcpt) > SMTP_ORCPT_MAX || r.to.is_null ||
			    ((r.notify & SMTP_NOTIFY_NEVER) &&
			     r.notify != SMTP_NOTIFY_NEVER))
				abort();
			rcpt_again(&r);
		} else {
			check_reply(&err);
		}
	}
	free(s);
	return 0;
}
