/*
 * datadec: the DATA decoder (RFC 5321 4.1.1.4, 4.5.2), resumable and pure.
 *
 *   smtp_datadec_init()  start a message.
 *   smtp_datadec_feed()  decode input bytes into the message as it will be
 *       stored: dot-unstuffed, every line ending in CRLF; stops after the
 *       terminator <CRLF>.<CRLF>, which is the ONLY end of data: "\n.\r\n",
 *       "\r\n.\n", "\n.\n" are not (SMTP smuggling, cases C03/C04).
 *   In raw mode (BDAT chunks, RFC 3030) there is no terminator and no dot
 *   handling, but the same faults are recorded.
 *
 * Faults do not stop decoding (the whole message is read before the reply,
 * case C08); they are recorded in ->faults and the caller refuses the
 * message after the end: bare LF, bare CR, NUL byte, a line longer than
 * long_line_max.  Output bytes of a faulty message are still produced (the
 * caller discards them).  Lines over 998 octets up to long_line_max are kept
 * intact.  ->size counts every decoded byte.
 */
#ifndef BH_SMTP_DATADEC_H
#define BH_SMTP_DATADEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_DATA_LONG_LINE_MAX 65536	/* "generous bound" on one line */

#define SMTP_DATA_FAULT_BARE_LF   0x1
#define SMTP_DATA_FAULT_BARE_CR   0x2
#define SMTP_DATA_FAULT_NUL       0x4
#define SMTP_DATA_FAULT_LONG_LINE 0x8

struct smtp_datadec {
	int state;		/* private */
	bool raw;		/* BDAT: no dots, no terminator */
	bool done;		/* terminator seen */
	unsigned faults;	/* SMTP_DATA_FAULT_* */
	uint64_t size;		/* decoded bytes so far */
	size_t line_len;	/* current line length */
	size_t long_line_max;
	bool eight_bit;		/* a byte >= 0x80 was seen */
};

void smtp_datadec_init(struct smtp_datadec *dec, bool raw);

/*
 * Decode in[0..inlen) into out (at most outcap bytes; outcap >= 2 needed).
 * Returns the number of input bytes consumed; *outlen the bytes written.
 * Stops early when out is full or when the terminator was consumed
 * (dec->done).  The terminator's final ".\r\n" is not output; the CRLF
 * before the dot is, as the end of the last line.
 */
size_t smtp_datadec_feed(struct smtp_datadec *dec, const uint8_t *in,
			 size_t inlen, uint8_t *out, size_t outcap,
			 size_t *outlen);

/*
 * Raw mode only, at the end of the last chunk: records a fault if the
 * message ended in a CR waiting for its LF.
 */
void smtp_datadec_finish(struct smtp_datadec *dec);

#endif
