/*
 * fuzz_msghdr: libFuzzer harness for the header watcher.
 *
 * Input: byte 0 seeds the split points, the rest is the message.  The
 * message fed whole and fed in pieces must give the same result; the
 * Message-ID is "" or "<...>" within SMTP_MESSAGE_ID_MAX, without blanks,
 * valid UTF-8; header_size never exceeds the input and is the whole input
 * while no empty line was seen; header_utf8 matches the header bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"
#include "smtp/msghdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_msghdr whole, pieces;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = data[0];
	size_t len = size - 1, pos = 0;
	uint8_t *in = malloc(len > 0 ? len : 1); /* exact size */

	if (in == NULL)
		return 0;
	memcpy(in, data + 1, len);
	smtp_msghdr_init(&whole);
	smtp_msghdr_feed(&whole, in, len);
	smtp_msghdr_init(&pieces);
	while (pos < len) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 11;
		if (n > len - pos)
			n = len - pos;
		smtp_msghdr_feed(&pieces, in + pos, n);
		pos += n;
	}
	if (strcmp(whole.message_id, pieces.message_id) != 0 ||
	    whole.in_body != pieces.in_body ||
	    whole.header_utf8 != pieces.header_utf8 ||
	    whole.header_size != pieces.header_size) {
		fprintf(stderr, "fuzz_msghdr: split run differs\n");
		abort();
	}
	size_t idlen = strnlen(whole.message_id, sizeof whole.message_id);
	if (idlen > SMTP_MESSAGE_ID_MAX)
		abort();
	if (idlen > 0 && (idlen < 3 || whole.message_id[0] != '<' ||
			  whole.message_id[idlen - 1] != '>'))
		abort();
	for (size_t k = 0; k < idlen; k++)
		if ((unsigned char)whole.message_id[k] <= ' ')
			abort();
	if (!smtp_utf8_valid(whole.message_id, idlen))
		abort();
	if (whole.header_size > len ||
	    (!whole.in_body && whole.header_size != len))
		abort();
	bool high = false;
	for (size_t k = 0; k < whole.header_size; k++)
		high |= in[k] >= 0x80;
	if (high != whole.header_utf8)
		abort();
	free(in);
	return 0;
}
