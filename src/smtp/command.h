/*
 * command: SMTP command lines (RFC 5321 4.1) and the ESMTP parameters of
 * MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8
 * (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461).  Pure functions.
 *
 *   smtp_command_parse()  verb (case-insensitive) and argument text.
 *   smtp_mail_parse()     "FROM:<path> params" into struct smtp_mail.
 *   smtp_rcpt_parse()     "TO:<path> params" into struct smtp_rcpt.
 *
 * A space after the colon is tolerated (real senders do it, case C15).
 * A malformed command yields the reply to send in struct smtp_reply.
 */
#ifndef BH_SMTP_COMMAND_H
#define BH_SMTP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/address.h"

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
};

/* A reply: code, enhanced status code (RFC 3463), text.  Static strings. */
struct smtp_reply {
	int code;
	const char *enhanced;	/* "5.5.4" */
	const char *text;
};

struct smtp_command {
	enum smtp_verb verb;
	const char *args;	/* after the verb and its spaces; not NUL-terminated */
	size_t args_len;	/* trailing spaces removed */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME,
		 SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

#define SMTP_ENVID_MAX 100	/* RFC 3461 4.4: 100 chars of xtext */
#define SMTP_ORCPT_MAX 500	/* RFC 3461 4.2: addr-type;xtext */

struct smtp_mail {
	struct smtp_address from;
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];	/* xtext as sent; "" if none */
};

struct smtp_rcpt {
	struct smtp_address to;
	unsigned notify;		/* SMTP_NOTIFY_* bits; 0 if none */
	char orcpt[SMTP_ORCPT_MAX + 1];	/* "rfc822;xtext" as sent; "" if none */
};

/* 0 on success; -1 if the line is not a command (empty, NUL, non-ASCII verb). */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *out);

/*
 * 0 on success; -1 with *err set to the reply for the client.
 * chunking: BODY=BINARYMIME is allowed only when CHUNKING is offered.
 */
int smtp_mail_parse(const char *args, size_t len, bool chunking,
		    struct smtp_mail *out, struct smtp_reply *err);
int smtp_rcpt_parse(const char *args, size_t len, struct smtp_rcpt *out,
		    struct smtp_reply *err);

#endif
