/*
 * msghdr_test: the header watcher, table-driven (RFC 5322 2.2.3 folding,
 * 3.6.4 Message-ID; RFC 6532 8-bit headers, case C10).  Every row is fed
 * whole, one byte at a time, and in pseudo-random pieces; the results
 * must not depend on the split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/msghdr.h"
#include "util/log.h"

#define S(lit) lit, sizeof(lit) - 1

struct mh_case {
	const char *in;
	size_t len;
	size_t header_size; /* (size_t)-1: all of the input */
	const char *message_id;
	bool header_utf8;
	bool in_body;
};

#define ALL ((size_t)-1)

/* clang-format off */
static const struct mh_case mh_cases[] = {
	{S("Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody\r\n"), 33, "<a@b>",
	 false, true},
	{S("message-id:<A@B>\r\n\r\n"), ALL, "<A@B>", false, true},
	{S("MESSAGE-ID :  <x@y>  \r\n\r\n"), ALL, "<x@y>", false, true},
	{S("Message-ID:\r\n <fold@example.com>\r\n\r\n"), ALL,
	 "<fold@example.com>", false, true},
	{S("Message-ID:\r\n\t<t@x>\r\nX: y\r\n\r\n"), ALL, "<t@x>", false, true},
	{S("Message-ID:\r\n\r\n <late@x>\r\n"), 15, "", false, true},
	{S("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n"), ALL,
	 "<first@x>", false, true},
	{S("Message-ID: garbage\r\nMessage-ID: <second@x>\r\n\r\n"), ALL, "",
	 false, true},
	{S("Message-ID: <a@b> (comment)\r\n\r\n"), ALL, "<a@b>", false, true},
	{S("Message-ID: <a b@c>\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID: <>\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID: <a@b\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID: <a@b\r\n c>\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID: <a\0b@c>\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID: <a<b@c>\r\n\r\n"), ALL, "", false, true},
	{S("Message-IDX: <a@b>\r\n\r\n"), ALL, "", false, true},
	{S("X-Message-ID: <a@b>\r\n\r\n"), ALL, "", false, true},
	{S("Message-ID <a@b>\r\n\r\n"), ALL, "", false, true},
	{S("Resent-Message-ID: <r@x>\r\nMessage-ID: <m@x>\r\n\r\n"), ALL,
	 "<m@x>", false, true},
	{S("Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"), 14, "", false, true},
	/* No empty line: all header, fine. */
	{S("Subject: x\r\nMessage-ID: <a@b>\r\n"), ALL, "<a@b>", false, false},
	{S("Message-ID: <a@b>"), ALL, "<a@b>", false, false},
	{S("Subject: x"), ALL, "", false, false},
	{S(""), ALL, "", false, false},
	{S("\r\n"), ALL, "", false, true},
	{S("\r\nMessage-ID: <a@b>\r\n"), 2, "", false, true},
	/* RFC 6532: 8-bit in a header, not in the body. */
	{S("Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\nbody"), 20, "", true, true},
	{S("Subject: x\r\n\r\n\xc3\xbc"), 14, "", false, true},
	{S("Subject: x\r\n \xc3\xbc\r\n\r\n"), ALL, "", true, true},
	{S("Message-ID: <\xc3\xbc@x>\r\n\r\n"), ALL, "<\xc3\xbc@x>", true, true},
	{S("Message-ID: <\xc3@x>\r\n\r\n"), ALL, "", true, true},
	{S("Message-ID: <\xc0\xbc@x>\r\n\r\n"), ALL, "", true, true},
	/* Odd line ends from a faulty message must not confuse it. */
	{S("Message-ID: <a@b>\n\nbody"), 19, "<a@b>", false, true},
	{S("Subject: x\r\rMessage-ID: <a@b>\r\n\r\n"), ALL, "", false, true},
};
/* clang-format on */

static uint32_t
lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

static void
feed_split(struct smtp_msghdr *h, const char *in, size_t len, size_t chunk,
	   uint32_t seed)
{
	size_t pos = 0;

	smtp_msghdr_init(h);
	while (pos < len) {
		size_t n = chunk != 0 ? chunk : 1 + lcg(&seed) % 9;
		if (n > len - pos)
			n = len - pos;
		smtp_msghdr_feed(h, (const uint8_t *)in + pos, n);
		pos += n;
	}
}

static bool
check(const struct smtp_msghdr *h, const struct mh_case *c, size_t i,
      const char *how)
{
	size_t want_size = c->header_size == ALL ? c->len : c->header_size;
	char in[4096], g[600], w[600];

	if (strcmp(h->message_id, c->message_id) == 0 &&
	    h->header_utf8 == c->header_utf8 && h->in_body == c->in_body &&
	    h->header_size == want_size)
		return true;
	print_error(
		"row %zu (%s) in=\"%s\"\n  got  id=\"%s\" utf8=%d body=%d "
		"size=%llu\n  want id=\"%s\" utf8=%d body=%d size=%zu\n",
		i, how, log_escape(in, sizeof in, c->in, c->len),
		log_escape(g, sizeof g, h->message_id, strlen(h->message_id)),
		h->header_utf8, h->in_body, (unsigned long long)h->header_size,
		log_escape(w, sizeof w, c->message_id, strlen(c->message_id)),
		c->header_utf8, c->in_body, want_size);
	return false;
}

static void
test_table_all_splits(void **state)
{
	static const size_t chunks[] = {4096, 1, 2, 3};
	static struct smtp_msghdr h;
	int failed = 0;
	char how[32];

	(void)state;
	for (size_t i = 0; i < sizeof mh_cases / sizeof mh_cases[0]; i++) {
		for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
			feed_split(&h, mh_cases[i].in, mh_cases[i].len,
				   chunks[k], 0);
			snprintf(how, sizeof how, "chunk=%zu", chunks[k]);
			failed += !check(&h, &mh_cases[i], i, how);
		}
		for (uint32_t seed = 1; seed <= 30; seed++) {
			feed_split(&h, mh_cases[i].in, mh_cases[i].len, 0,
				   seed);
			snprintf(how, sizeof how, "seed=%u", seed);
			failed += !check(&h, &mh_cases[i], i, how);
		}
	}
	assert_int_equal(failed, 0);
}

/* Builds "Message-ID: <" + n x 'i' + "@x>\r\n\r\n"; returns its length. */
static size_t
long_id(char *buf, size_t cap, size_t n)
{
	size_t o = 0;

	assert_true(n + 32 < cap);
	memcpy(buf, "Message-ID: <", 13);
	o = 13;
	memset(buf + o, 'i', n);
	o += n;
	memcpy(buf + o, "@x>\r\n\r\n", 7);
	return o + 7;
}

static void
test_message_id_bounds(void **state)
{
	static char buf[8192];
	static struct smtp_msghdr h;
	size_t len;

	(void)state;
	/* "<" + n + "@x>" is n + 4 octets: the largest kept is 255. */
	len = long_id(buf, sizeof buf, SMTP_MESSAGE_ID_MAX - 4);
	feed_split(&h, buf, len, 1, 0);
	assert_int_equal(strlen(h.message_id), SMTP_MESSAGE_ID_MAX);
	assert_true(h.in_body);
	len = long_id(buf, sizeof buf, SMTP_MESSAGE_ID_MAX - 3);
	feed_split(&h, buf, len, 4096, 0);
	assert_string_equal(h.message_id, "");
	assert_true(h.in_body);
	/* Longer than the field buffer: not learned, nothing overflows. */
	len = long_id(buf, sizeof buf, 5000);
	feed_split(&h, buf, len, 7, 0);
	assert_string_equal(h.message_id, "");
	assert_true(h.in_body);
	assert_int_equal(h.header_size, len);
	/* Blanks longer than the field buffer before the id. */
	memcpy(buf, "Message-ID:", 11);
	memset(buf + 11, ' ', 3000);
	memcpy(buf + 3011, "<a@b>\r\n\r\n", 9);
	feed_split(&h, buf, 3020, 0, 3);
	assert_string_equal(h.message_id, "");
	/* A huge field before it does not hide the Message-ID. */
	memcpy(buf, "X-Long: ", 8);
	memset(buf + 8, 'z', 5000);
	memcpy(buf + 5008, "\r\nMessage-ID: <ok@x>\r\n\r\n", 24);
	feed_split(&h, buf, 5032, 0, 5);
	assert_string_equal(h.message_id, "<ok@x>");
	assert_int_equal(h.header_size, 5032);
}

/* Once in the body, feeding is a no-op. */
static void
test_body_ignored(void **state)
{
	static struct smtp_msghdr h;
	static const char body[] = "Message-ID: <late@x>\r\n\xff\r\n";

	(void)state;
	smtp_msghdr_init(&h);
	smtp_msghdr_feed(&h, (const uint8_t *)"A: b\r\n\r\n", 8);
	assert_true(h.in_body);
	smtp_msghdr_feed(&h, (const uint8_t *)body, sizeof body - 1);
	assert_string_equal(h.message_id, "");
	assert_false(h.header_utf8);
	assert_int_equal(h.header_size, 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_all_splits),
		cmocka_unit_test(test_message_id_bounds),
		cmocka_unit_test(test_body_ignored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
