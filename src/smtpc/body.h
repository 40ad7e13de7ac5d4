/*
 * body: the message as it goes out after DATA (RFC 5321 4.5.2): every line
 * CRLF-terminated and dot-stuffed, then the terminator "\r\n.\r\n".
 * Pure: bytes in, bytes out, state kept between chunks, no I/O.
 *
 *   smtpc_body_init()    before the first chunk.
 *   smtpc_body_encode()  one chunk of the stored message into out; out
 *                        needs SMTPC_BODY_OUT_MAX(len) bytes.
 *   smtpc_body_finish()  the end: a CRLF when the message did not end in
 *                        one, then ".\r\n" (so the peer sees "\r\n.\r\n").
 *   smtpc_body_has_8bit()  does a chunk hold a byte >= 0x80?
 *
 * The stored message is already canonical (CRLF lines, case C04), but a
 * bare CR or LF must never reach the next hop whatever the file holds:
 * each becomes CRLF here, so a damaged file cannot end the data early on
 * a lenient peer (SMTP smuggling, outbound half).
 */
#ifndef BH_SMTPC_BODY_H
#define BH_SMTPC_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Worst case: every byte a bare LF at a line start ("\r\n" + "." each). */
#define SMTPC_BODY_OUT_MAX(len) (3 * (len) + 8)

struct smtpc_body {
	bool line_start; /* the next byte begins a line */
	bool cr;	 /* a CR was read, its LF not yet seen */
	uint64_t bare;	 /* bare CR/LF turned into CRLF (for the log) */
};

void smtpc_body_init(struct smtpc_body *b);
/* Returns the number of bytes written to out. */
size_t smtpc_body_encode(struct smtpc_body *b, const uint8_t *in, size_t len,
			 uint8_t *out);
size_t smtpc_body_finish(struct smtpc_body *b, uint8_t *out);
bool smtpc_body_has_8bit(const uint8_t *in, size_t len);

#endif
