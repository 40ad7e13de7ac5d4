/*
 * msghdr: watch the header section of a message as it streams (RFC 5322),
 * resumably, to learn what the relay needs without holding the message:
 * the Message-ID, whether a header field holds non-ASCII bytes (RFC 6532,
 * the content test for SMTPUTF8), and where the header section ends.
 *
 *   smtp_msghdr_init(), smtp_msghdr_feed()  fed the decoded message (CRLF),
 *       in pieces of any size; only the header section is looked at.
 *
 * message_id is the first Message-ID field's msg-id ("<...>", unfolded,
 * surrounding blanks and any trailing comment dropped); it stays "" when
 * that field holds no well-formed msg-id (visible ASCII or valid UTF-8,
 * no blanks or angle brackets inside) or one longer than
 * SMTP_MESSAGE_ID_MAX.  Later Message-ID fields are ignored.  header_size
 * counts the header section including the empty line that ends it; a
 * message without an empty line is all header.
 */
#ifndef BH_SMTP_MSGHDR_H
#define BH_SMTP_MSGHDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_MESSAGE_ID_MAX 255

struct smtp_msghdr {
	int state;			/* private */
	size_t field_len;		/* private */
	char field[1024];		/* private: start of the current field */
	unsigned flags;			/* private */
	bool in_body;			/* blank line seen */
	bool header_utf8;		/* a header byte >= 0x80 */
	uint64_t header_size;
	char message_id[SMTP_MESSAGE_ID_MAX + 1];	/* "<...>" or "" */
};

void smtp_msghdr_init(struct smtp_msghdr *h);
void smtp_msghdr_feed(struct smtp_msghdr *h, const uint8_t *data, size_t len);

#endif
