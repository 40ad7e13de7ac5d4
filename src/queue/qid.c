/*
 * qid: queue ids, time-ordered prefix plus random suffix.  See qid.h.
 */
#include "queue/qid.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ASCII order, so that the fixed-width time prefix sorts as text. */
static const char qid_alphabet[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define QID_TIME_DIGITS 9
#define QID_RAND_DIGITS (QID_LEN - QID_TIME_DIGITS)

static void
qid_base62(char *out, size_t digits, uint64_t v)
{
	for (size_t i = digits; i > 0; i--) {
		out[i - 1] = qid_alphabet[v % 62];
		v /= 62;
	}
}

int
qid_new(char id[QID_LEN + 1])
{
	struct timespec ts;
	uint64_t rnd;
	size_t got = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t usec =
		(uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* Blocks only until the kernel pool is first initialised at boot. */
	while (got < sizeof rnd) {
		ssize_t n = getrandom((char *)&rnd + got, sizeof rnd - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	qid_base62(id, QID_TIME_DIGITS, usec);
	/* 62^7 < 2^64: the modulo bias is far below anything measurable. */
	qid_base62(id + QID_TIME_DIGITS, QID_RAND_DIGITS, rnd);
	id[QID_LEN] = '\0';
	return 0;
}

bool
qid_valid(const char *id, size_t len)
{
	if (len < QID_MIN || len > QID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		      (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}
