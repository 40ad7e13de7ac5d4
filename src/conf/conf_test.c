/*
 * conf_test: table-driven tests of the configuration module: value syntax
 * (sizes, durations, CIDRs, listener addresses, smart hosts, domains,
 * address spaces), accepted-domain and relay-network matching, whole files
 * (defaults, comments, connectors.d, every kind of rejected file with its
 * file:line message) and the conf_print() -> conf_load() round trip.
 * Files are written to a mkdtemp() folder that is removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"

/* Temporary folders. */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
make_dir(void)
{
	char *d = strdup("/tmp/bh-conf-test.XXXXXX");

	assert_non_null(d);
	if (mkdtemp(d) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return d;
}

static void
write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		fail_msg("fopen %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
write_text(const char *dir, const char *name, const char *text)
{
	write_file(dir, name, text, strlen(text));
}

static void
make_subdir(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (mkdir(path, 0700) == -1)
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

static struct conf *
load_in(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/bridgehead.conf", dir);
	return conf_load(path, err, errlen);
}

/* Replace "@F@" in want by path: the expected messages carry the file. */
static void
expand(char *out, size_t len, const char *want, const char *path)
{
	const char *at = strstr(want, "@F@");

	if (at == NULL)
		snprintf(out, len, "%s", want);
	else
		snprintf(out, len, "%.*s%s%s", (int)(at - want), want, path,
			 at + 3);
}

/* Sizes and durations. */

struct size_case {
	const char *text;
	int rc;
	uint64_t value;
};

static void
test_sizes(void **state)
{
	static const struct size_case cases[] = {
		{ "0", 0, 0 },
		{ "1", 0, 1 },
		{ "1K", 0, 1024 },
		{ "1k", 0, 1024 },
		{ "35M", 0, 35ULL * 1024 * 1024 },
		{ "2G", 0, 2ULL * 1024 * 1024 * 1024 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "17179869183G", 0, 17179869183ULL * 1024 * 1024 * 1024 },
		{ "18446744073709551616", -1, 0 },
		{ "17179869184G", -1, 0 },
		{ "99999999999999999999K", -1, 0 },
		{ "", -1, 0 },
		{ "M", -1, 0 },
		{ "1.5M", -1, 0 },
		{ "-1", -1, 0 },
		{ "+1", -1, 0 },
		{ " 1", -1, 0 },
		{ "1 M", -1, 0 },
		{ "1MB", -1, 0 },
		{ "1T", -1, 0 },
		{ "10X", -1, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 0;
		int rc = conf_parse_size(cases[i].text, &v);
		if (rc != cases[i].rc || (rc == 0 && v != cases[i].value))
			fail_msg("conf_parse_size(\"%s\"): got %d/%llu, want "
				 "%d/%llu", cases[i].text, rc,
				 (unsigned long long)v, cases[i].rc,
				 (unsigned long long)cases[i].value);
	}
}

struct duration_case {
	const char *text;
	int rc;
	unsigned value;
};

static void
test_durations(void **state)
{
	static const struct duration_case cases[] = {
		{ "0", 0, 0 },
		{ "30", 0, 30 },
		{ "30s", 0, 30 },
		{ "5m", 0, 300 },
		{ "1h", 0, 3600 },
		{ "5d", 0, 432000 },
		{ "4294967295", 0, 4294967295U },
		{ "49710d", 0, 49710U * 86400U },
		{ "4294967296", -1, 0 },
		{ "49711d", -1, 0 },
		{ "71582789m", -1, 0 },
		{ "", -1, 0 },
		{ "m", -1, 0 },
		{ "5M", -1, 0 },
		{ "1h30m", -1, 0 },
		{ "1.5h", -1, 0 },
		{ "-5m", -1, 0 },
		{ "5 m", -1, 0 },
		{ "5w", -1, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned v = 0;
		int rc = conf_parse_duration(cases[i].text, &v);
		if (rc != cases[i].rc || (rc == 0 && v != cases[i].value))
			fail_msg("conf_parse_duration(\"%s\"): got %d/%u, want "
				 "%d/%u", cases[i].text, rc, v, cases[i].rc,
				 cases[i].value);
	}
}

struct format_case {
	uint64_t value;
	const char *want;
};

static void
test_format(void **state)
{
	static const struct format_case sizes[] = {
		{ 0, "0" },
		{ 1000, "1000" },
		{ 1024, "1K" },
		{ 1536, "1536" },
		{ 35ULL * 1024 * 1024, "35M" },
		{ 3ULL * 1024 * 1024 * 1024, "3G" },
		{ 1025ULL * 1024, "1025K" },
	};
	static const struct format_case durations[] = {
		{ 0, "0s" },
		{ 90, "90s" },
		{ 300, "5m" },
		{ 7200, "2h" },
		{ 5400, "90m" },
		{ 86400, "1d" },
		{ 432000, "5d" },
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		conf_format_size(sizes[i].value, buf, sizeof buf);
		if (strcmp(buf, sizes[i].want) != 0)
			fail_msg("conf_format_size(%llu): got %s, want %s",
				 (unsigned long long)sizes[i].value, buf,
				 sizes[i].want);
		uint64_t back;
		assert_int_equal(conf_parse_size(buf, &back), 0);
		assert_true(back == sizes[i].value);
	}
	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		conf_format_duration((unsigned)durations[i].value, buf,
				     sizeof buf);
		if (strcmp(buf, durations[i].want) != 0)
			fail_msg("conf_format_duration(%llu): got %s, want %s",
				 (unsigned long long)durations[i].value, buf,
				 durations[i].want);
		unsigned back;
		assert_int_equal(conf_parse_duration(buf, &back), 0);
		assert_true(back == durations[i].value);
	}
}

/* CIDRs. */

struct cidr_case {
	const char *text;
	const char *want;	/* "family addr/prefix" or an error substring */
	int rc;
};

static void
test_cidrs(void **state)
{
	static const struct cidr_case cases[] = {
		{ "10.0.0.0/8", "4 10.0.0.0/8", 0 },
		{ "0.0.0.0/0", "4 0.0.0.0/0", 0 },
		{ "192.0.2.1", "4 192.0.2.1/32", 0 },
		{ "192.0.2.128/25", "4 192.0.2.128/25", 0 },
		{ "::1", "6 ::1/128", 0 },
		{ "::1/128", "6 ::1/128", 0 },
		{ "fe80::/10", "6 fe80::/10", 0 },
		{ "2001:db8::/32", "6 2001:db8::/32", 0 },
		{ "::ffff:10.0.0.0/104", "4 10.0.0.0/8", 0 },
		{ "::ffff:192.0.2.7", "4 192.0.2.7/32", 0 },
		{ "10.0.0.1/8", "'10.0.0.1/8' has host bits set (the network "
				"is 10.0.0.0/8)", -1 },
		{ "fe80::1/10", "has host bits set", -1 },
		{ "10.0.0.0/33", "prefix length is larger than 32", -1 },
		{ "::/129", "prefix length is larger than 128", -1 },
		{ "10.0.0.0/", "malformed prefix", -1 },
		{ "10.0.0.0/x", "malformed prefix", -1 },
		{ "10.0.0.0/08x", "malformed prefix", -1 },
		{ "10.0.0.0/-1", "malformed prefix", -1 },
		{ "300.0.0.0/8", "not an IPv4 or IPv6", -1 },
		{ "10/8", "not an IPv4 or IPv6", -1 },
		{ "example.com/24", "not an IPv4 or IPv6", -1 },
		{ "/8", "not an address", -1 },
		{ "", "not an address", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conf_cidr c;
		char err[256] = "", got[300], a[INET6_ADDRSTRLEN];
		int rc = conf_parse_cidr(cases[i].text, &c, err, sizeof err);
		if (rc == 0) {
			inet_ntop(c.family, c.addr, a, sizeof a);
			snprintf(got, sizeof got, "%d %s/%u",
				 c.family == AF_INET ? 4 : 6, a, c.prefix);
		} else {
			snprintf(got, sizeof got, "%s", err);
		}
		if (rc != cases[i].rc || strstr(got, cases[i].want) == NULL)
			fail_msg("conf_parse_cidr(\"%s\"): got %d \"%s\", want "
				 "%d \"%s\"", cases[i].text, rc, got,
				 cases[i].rc, cases[i].want);
	}
}

/* Listener addresses. */

struct listen_case {
	const char *text;
	const char *want;	/* "addr port" or an error substring */
	int rc;
};

static void
test_listen_addresses(void **state)
{
	static const struct listen_case cases[] = {
		{ "0.0.0.0:25", "0.0.0.0 25", 0 },
		{ "*:25", "0.0.0.0 25", 0 },
		{ "127.0.0.1:2525", "127.0.0.1 2525", 0 },
		{ "[::1]:587", "[::1] 587", 0 },
		{ "[::]:25", "[::] 25", 0 },
		{ "127.0.0.1:65535", "127.0.0.1 65535", 0 },
		{ "127.0.0.1", "has no port", -1 },
		{ "127.0.0.1:", "port is missing", -1 },
		{ "127.0.0.1:0", "port 0 is out of range", -1 },
		{ "127.0.0.1:70000", "port 70000 is out of range", -1 },
		{ "127.0.0.1:99999999999999999999", "out of range", -1 },
		{ "127.0.0.1:2x", "port '2x' is not a number", -1 },
		{ "127.0.0.1:-25", "not a number", -1 },
		{ "::1:25", "must be written in brackets", -1 },
		{ "[::1]", "a port must follow", -1 },
		{ "[::1]25", "a port must follow", -1 },
		{ "[127.0.0.1]:25", "not a numeric IPv6 address", -1 },
		{ "localhost:25", "not a numeric IPv4 address", -1 },
		{ "mail.example.com:25", "listeners take no host names", -1 },
		{ "127.1:25", "not a numeric IPv4 address", -1 },
		{ ":25", "not a numeric IPv4 address", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = 0;
		char err[256] = "", got[300], a[INET6_ADDRSTRLEN];
		int rc = conf_parse_listen_address(cases[i].text, &sa, &salen,
						   err, sizeof err);
		if (rc == 0 && sa.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
			snprintf(got, sizeof got, "%s %u", a,
				 ntohs(s4->sin_port));
			assert_int_equal(salen, sizeof *s4);
		} else if (rc == 0) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
			snprintf(got, sizeof got, "[%s] %u", a,
				 ntohs(s6->sin6_port));
			assert_int_equal(salen, sizeof *s6);
		} else {
			snprintf(got, sizeof got, "%s", err);
		}
		if (rc != cases[i].rc || strstr(got, cases[i].want) == NULL)
			fail_msg("conf_parse_listen_address(\"%s\"): got %d "
				 "\"%s\", want %d \"%s\"", cases[i].text, rc,
				 got, cases[i].rc, cases[i].want);
	}
}

/* Smart hosts. */

struct host_case {
	const char *text;
	const char *want;	/* "host port literal" or an error substring */
	int rc;
};

static void
test_hosts(void **state)
{
	static const struct host_case cases[] = {
		{ "mail.example.com", "mail.example.com 0 0", 0 },
		{ "Mail.Example.COM:587", "mail.example.com 587 0", 0 },
		{ "smarthost", "smarthost 0 0", 0 },
		{ "192.0.2.1", "192.0.2.1 0 0", 0 },
		{ "192.0.2.1:2525", "192.0.2.1 2525 0", 0 },
		{ "[192.0.2.1]:2525", "192.0.2.1 2525 1", 0 },
		{ "[2001:db8::1]", "2001:db8::1 0 1", 0 },
		{ "[2001:db8::1]:26", "2001:db8::1 26 1", 0 },
		{ "2001:db8::1", "must be written in brackets", -1 },
		{ "[mail.example.com]", "only an IPv4 or IPv6 address", -1 },
		{ "[192.0.2.1", "no closing", -1 },
		{ "[192.0.2.1]x", "unexpected text after", -1 },
		{ "[]:25", "not [IP address]", -1 },
		{ "mail.example.com:0", "out of range", -1 },
		{ "mail.example.com:", "port is missing", -1 },
		{ "bad_host.example.com", "not a domain name", -1 },
		{ ":25", "not a host name", -1 },
		{ "1.2.3", "looks like an IP address", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conf_host h;
		char err[256] = "", got[300];
		int rc = conf_parse_host(cases[i].text, &h, err, sizeof err);
		if (rc == 0)
			snprintf(got, sizeof got, "%s %u %d", h.host, h.port,
				 h.literal);
		else
			snprintf(got, sizeof got, "%s", err);
		free(h.host);
		if (rc != cases[i].rc || strstr(got, cases[i].want) == NULL)
			fail_msg("conf_parse_host(\"%s\"): got %d \"%s\", want "
				 "%d \"%s\"", cases[i].text, rc, got,
				 cases[i].rc, cases[i].want);
	}
}

/* Domains and address spaces. */

struct domain_case {
	const char *text;
	unsigned flags;
	const char *want;	/* the stored form or an error substring */
	int rc;
};

#define LABEL63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"

static void
test_domains(void **state)
{
	static const struct domain_case cases[] = {
		{ "Example.COM", 0, "example.com", 0 },
		{ "example.com.", 0, "example.com", 0 },
		{ "localhost", 0, "localhost", 0 },
		{ "xn--bcher-kva.example", 0, "xn--bcher-kva.example", 0 },
		{ "3com.com", 0, "3com.com", 0 },
		{ LABEL63 ".com", 0, LABEL63 ".com", 0 },
		{ "*.Example.com", CONF_DOMAIN_SUBDOMAINS, "*.example.com", 0 },
		{ "*", CONF_DOMAIN_ANY, "*", 0 },
		{ "bh1.example.com", CONF_DOMAIN_FQDN, "bh1.example.com", 0 },
		{ "localhost", CONF_DOMAIN_FQDN, "not a fully qualified", -1 },
		{ "*.example.com", 0, "a wildcard is not allowed", -1 },
		{ "*", CONF_DOMAIN_SUBDOMAINS, "'*' is not allowed", -1 },
		{ "*.", CONF_DOMAIN_SUBDOMAINS, "empty label", -1 },
		{ "a..b", 0, "empty label", -1 },
		{ ".a.b", 0, "empty label", -1 },
		{ ".", 0, "empty label", -1 },
		{ "example.com..", 0, "empty label", -1 },
		{ "-a.com", 0, "starts or ends with '-'", -1 },
		{ "a-.com", 0, "starts or ends with '-'", -1 },
		{ "a_b.com", 0, "only letters, digits and '-'", -1 },
		{ "a b.com", 0, "only letters, digits and '-'", -1 },
		{ "ex*ample.com", CONF_DOMAIN_SUBDOMAINS, "only letters", -1 },
		{ "*.*.com", CONF_DOMAIN_SUBDOMAINS, "only letters", -1 },
		{ "1.2.3.4", 0, "looks like an IP address", -1 },
		{ "[1.2.3.4]", 0, "only letters", -1 },
		{ LABEL63 "x.com", 0, "longer than 63", -1 },
		{ "", 0, "empty", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[256] = "", err[256] = "";
		int rc = conf_parse_domain(cases[i].text, cases[i].flags, out,
					   sizeof out, err, sizeof err);
		const char *got = rc == 0 ? out : err;
		bool ok = rc == 0 ? strcmp(got, cases[i].want) == 0
				  : strstr(got, cases[i].want) != NULL;
		if (rc != cases[i].rc || !ok)
			fail_msg("conf_parse_domain(\"%s\", %u): got %d \"%s\", "
				 "want %d \"%s\"", cases[i].text,
				 cases[i].flags, rc, got, cases[i].rc,
				 cases[i].want);
	}

	/* 253 characters is the limit (RFC 1035 2.3.4 less the dots). */
	char longname[300];
	size_t n = 0;
	while (n + 10 < 253) {
		memcpy(longname + n, "abcdefghi.", 10);
		n += 10;
	}
	memcpy(longname + n, "abc", 3);	/* 250 + 3 = 253 */
	longname[n + 3] = '\0';
	char out[256], err[256];
	assert_int_equal(conf_parse_domain(longname, 0, out, sizeof out, err,
					   sizeof err), 0);
	longname[n + 3] = 'd';
	longname[n + 4] = '\0';
	assert_int_equal(conf_parse_domain(longname, 0, out, sizeof out, err,
					   sizeof err), -1);
	assert_non_null(strstr(err, "longer than 253"));
}

struct space_case {
	const char *text;
	const char *want;	/* "pattern cost" or an error substring */
	int rc;
};

static void
test_address_spaces(void **state)
{
	static const struct space_case cases[] = {
		{ "contoso1.microsoftonline.com",
		  "contoso1.microsoftonline.com 1", 0 },
		{ "a.com;10", "a.com 10", 0 },
		{ "*.B.com ; 5", "*.b.com 5", 0 },
		{ "*", "* 1", 0 },
		{ "*;100", "* 100", 0 },
		{ "a.com;0", "cost after ';' must be a number from 1 to 100",
		  -1 },
		{ "a.com;101", "from 1 to 100", -1 },
		{ "a.com;", "from 1 to 100", -1 },
		{ "a.com;x", "from 1 to 100", -1 },
		{ "a.com;1;2", "from 1 to 100", -1 },
		{ ";5", "empty", -1 },
		{ "a_b.com;5", "not a domain name", -1 },
		{ "[192.0.2.1]", "not a domain name", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conf_address_space as;
		char err[256] = "", got[300];
		int rc = conf_parse_address_space(cases[i].text, &as, err,
						  sizeof err);
		if (rc == 0)
			snprintf(got, sizeof got, "%s %u", as.pattern, as.cost);
		else
			snprintf(got, sizeof got, "%s", err);
		free(as.pattern);
		if (rc != cases[i].rc || strstr(got, cases[i].want) == NULL)
			fail_msg("conf_parse_address_space(\"%s\"): got %d "
				 "\"%s\", want %d \"%s\"", cases[i].text, rc,
				 got, cases[i].rc, cases[i].want);
	}
}

static void
test_names(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "smtp", true },
		{ "MicrosoftOnline", true },
		{ "out-1.b_2", true },
		{ "9", true },
		{ "", false },
		{ "-x", false },
		{ ".hidden", false },
		{ "a b", false },
		{ "a/b", false },
		{ "ab\xc3\xa9", false },
	};
	char name[80];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (conf_valid_name(cases[i].name) != cases[i].ok)
			fail_msg("conf_valid_name(\"%s\"): got %d, want %d",
				 cases[i].name, !cases[i].ok, cases[i].ok);
	/* 64 characters at most. */
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_true(conf_valid_name(name));
	name[64] = 'a';
	name[65] = '\0';
	assert_false(conf_valid_name(name));
}

/* Matching. */

static void
test_domain_accepted(void **state)
{
	char *domains[] = { "example.com", "*.sub.org", "*.example.com" };
	struct conf c = { .accepted_domains = domains,
			  .n_accepted_domains = 3 };
	static const struct {
		const char *domain;
		bool want;
	} cases[] = {
		{ "example.com", true },
		{ "EXAMPLE.Com", true },
		{ "example.com.", true },
		{ "a.example.com", true },
		{ "sub.org", false },
		{ "x.sub.org", true },
		{ "X.Y.Sub.Org.", true },
		{ "xsub.org", false },
		{ ".sub.org", false },
		{ "example.co", false },
		{ "example.com.evil.net", false },
		{ "[192.0.2.1]", false },
		{ "[IPv6:2001:db8::1]", false },
		{ "", false },
		{ ".", false },
		{ NULL, false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool got = conf_domain_accepted(&c, cases[i].domain);
		if (got != cases[i].want)
			fail_msg("conf_domain_accepted(\"%s\"): got %d, want %d",
				 cases[i].domain ? cases[i].domain : "(null)",
				 got, cases[i].want);
	}
	struct conf none = { 0 };
	assert_false(conf_domain_accepted(&none, "example.com"));
}

static void
sockaddr_of(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return;
	}
	if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
		fail_msg("bad test address %s", text);
	s6->sin6_family = AF_INET6;
}

static void
test_relay_client(void **state)
{
	static const char *nets[] = { "127.0.0.0/8", "10.1.0.0/16", "::1/128",
				      "2001:db8::/32", "192.0.2.128/25",
				      "::ffff:198.51.100.0/120" };
	struct conf_cidr cidrs[6];
	struct conf c = { .relay_networks = cidrs, .n_relay_networks = 6 };
	static const struct {
		const char *addr;
		bool want;
	} cases[] = {
		{ "127.0.0.1", true },
		{ "127.255.255.255", true },
		{ "128.0.0.1", false },
		{ "10.1.255.1", true },
		{ "10.2.0.1", false },
		{ "192.0.2.129", true },
		{ "192.0.2.127", false },
		{ "198.51.100.7", true },
		{ "198.51.101.7", false },
		{ "::1", true },
		{ "::2", false },
		{ "2001:db8:1::5", true },
		{ "2001:db9::5", false },
		{ "::ffff:127.0.0.1", true },
		{ "::ffff:10.2.0.1", false },
		{ "::ffff:198.51.100.9", true },
		{ "::127.0.0.1", false },	/* IPv4-compatible, not mapped */
	};
	(void)state;
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(conf_parse_cidr(nets[i], &cidrs[i], NULL, 0), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		sockaddr_of(cases[i].addr, &ss);
		bool got = conf_relay_client(&c, (struct sockaddr *)&ss);
		if (got != cases[i].want)
			fail_msg("conf_relay_client(%s): got %d, want %d",
				 cases[i].addr, got, cases[i].want);
	}
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_false(conf_relay_client(&c, (struct sockaddr *)&un));
	assert_false(conf_relay_client(&c, NULL));

	struct conf_cidr all;
	assert_int_equal(conf_parse_cidr("0.0.0.0/0", &all, NULL, 0), 0);
	struct conf any = { .relay_networks = &all, .n_relay_networks = 1 };
	struct sockaddr_storage ss;
	sockaddr_of("203.0.113.9", &ss);
	assert_true(conf_relay_client(&any, (struct sockaddr *)&ss));
	sockaddr_of("2001:db8::9", &ss);
	assert_false(conf_relay_client(&any, (struct sockaddr *)&ss));
}

/* Whole files. */

static const char full_conf[] =
	"\xEF\xBB\xBF# a complete configuration\n"
	"; a semicolon comment at the start of a line\n"
	"[server]\n"
	"name = BH1.Example.COM               # FQDN\n"
	"state_dir = state/\n"
	"accepted_domains = example.com, *.Example.com,example.org\n"
	"relay_networks = 127.0.0.0/8, ::1/128,10.0.0.0/8\n"
	"\n"
	"user = mail\n"
	"\n"
	"[queue]\n"
	"retry_schedule = 1m, 10m,2h\n"
	"queue_lifetime = 3d\n"
	"\n"
	"[listener smtp]   # the MX\n"
	"address = 0.0.0.0:25\n"
	"tls = Require\n"
	"max_message_size = 10M\n"
	"max_recipients = 200\n"
	"  max_sessions = 50\n"
	"max_sessions_per_ip = 5\n"
	"command_timeout = 2m\n"
	"data_timeout = 900\n"
	"\n"
	"[listener submission]\n"
	"address = [::1]:587\n"
	"\n"
	"[metrics]\n"
	"address = 127.0.0.1:9325\n"
	"\n"
	"[connector MicrosoftOnline]\n"
	"address_space = contoso1.microsoftonline.com;10, *.contoso.net\n"
	"smart_hosts = mail.global.frontbridge.com, [192.0.2.1]:2525\n"
	"source_bridgeheads = bh1.example.com, bh2.example.com\n"
	"tls = verify\n"
	"tls_match = *.frontbridge.com\n"
	"tls_ca_file = /etc/ssl/certs/ca-certificates.crt\n"
	"port = 587\n"
	"max_connections = 4\n"
	"auth_username = relay@example.com\n"
	"auth_password_file = ./secret\n"
	"tls_client_certificate = no\n"
	"\n"
	"[connector internet]\n"
	"address_space = *\n"
	"dns = yes\n";

/* dir: where the file is; orig: where its relative paths were resolved. */
static void
check_full(const struct conf *c, const char *dir, const char *orig)
{
	char want[PATH_MAX];

	assert_string_equal(c->server_name, "bh1.example.com");
	snprintf(want, sizeof want, "%s/state", orig);
	assert_string_equal(c->state_dir, want);
	snprintf(want, sizeof want, "%s/bridgehead.conf", dir);
	assert_string_equal(c->path, want);
	assert_string_equal(c->dir, dir);
	assert_int_equal(c->n_accepted_domains, 3);
	assert_string_equal(c->accepted_domains[1], "*.example.com");
	assert_int_equal(c->n_relay_networks, 3);
	assert_int_equal(c->relay_networks[1].family, AF_INET6);
	assert_int_equal(c->relay_networks[2].prefix, 8);
	assert_string_equal(c->user, "mail");
	assert_int_equal(c->n_retry_schedule, 3);
	assert_int_equal(c->retry_schedule_s[1], 600);
	assert_int_equal(c->retry_schedule_s[2], 7200);
	assert_int_equal(c->queue_lifetime_s, 3 * 86400);

	assert_int_equal(c->n_listeners, 2);
	const struct conf_listener *l = &c->listeners[0];
	assert_string_equal(l->name, "smtp");
	assert_string_equal(l->address, "0.0.0.0:25");
	assert_int_equal(l->sa.ss_family, AF_INET);
	assert_int_equal(l->tls, CONF_LISTENER_TLS_REQUIRE);
	assert_true(l->max_message_size == 10 * 1024 * 1024);
	assert_int_equal(l->max_recipients, 200);
	assert_int_equal(l->max_sessions, 50);
	assert_int_equal(l->max_sessions_per_ip, 5);
	assert_int_equal(l->command_timeout_s, 120);
	assert_int_equal(l->data_timeout_s, 900);
	l = &c->listeners[1];
	assert_int_equal(l->sa.ss_family, AF_INET6);
	assert_int_equal(l->salen, sizeof(struct sockaddr_in6));
	/* Defaults from conf.h. */
	assert_int_equal(l->tls, CONF_LISTENER_TLS_OFFER);
	assert_true(l->max_message_size == 35 * 1024 * 1024);
	assert_int_equal(l->max_recipients, 1000);
	assert_int_equal(l->max_sessions, 10000);
	assert_int_equal(l->max_sessions_per_ip, 100);
	assert_int_equal(l->command_timeout_s, 300);
	assert_int_equal(l->data_timeout_s, 600);

	assert_string_equal(c->metrics_address, "127.0.0.1:9325");
	assert_int_equal(c->metrics_sa.ss_family, AF_INET);

	assert_int_equal(c->n_connectors, 2);
	const struct conf_connector *k = conf_connector_find(c, "microsoftonline");
	assert_non_null(k);
	assert_string_equal(k->name, "MicrosoftOnline");
	assert_int_equal(k->n_address_spaces, 2);
	assert_string_equal(k->address_spaces[0].pattern,
			    "contoso1.microsoftonline.com");
	assert_int_equal(k->address_spaces[0].cost, 10);
	assert_string_equal(k->address_spaces[1].pattern, "*.contoso.net");
	assert_int_equal(k->address_spaces[1].cost, 1);
	assert_int_equal(k->n_smart_hosts, 2);
	assert_string_equal(k->smart_hosts[0].host,
			    "mail.global.frontbridge.com");
	assert_int_equal(k->smart_hosts[0].port, 0);
	assert_string_equal(k->smart_hosts[1].host, "192.0.2.1");
	assert_int_equal(k->smart_hosts[1].port, 2525);
	assert_true(k->smart_hosts[1].literal);
	assert_false(k->dns);
	assert_int_equal(k->n_source_bridgeheads, 2);
	assert_int_equal(k->tls, CONF_CONNECTOR_TLS_VERIFY);
	assert_int_equal(k->n_tls_match, 1);
	assert_string_equal(k->tls_ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_int_equal(k->port, 587);
	assert_int_equal(k->max_connections, 4);
	assert_string_equal(k->auth_username, "relay@example.com");
	snprintf(want, sizeof want, "%s/secret", orig);
	assert_string_equal(k->auth_password_file, want);
	assert_false(k->tls_client_certificate);
	if (strcmp(dir, orig) == 0)	/* the printout has its own lines */
		assert_int_equal(k->line, 31);

	k = conf_connector_find(c, "internet");
	assert_non_null(k);
	assert_true(k->dns);
	assert_int_equal(k->n_smart_hosts, 0);
	assert_int_equal(k->tls, CONF_CONNECTOR_TLS_MAY);
	assert_int_equal(k->port, 25);
	assert_int_equal(k->max_connections, 20);
	assert_true(k->tls_client_certificate);
	assert_null(k->tls_ca_file);
	assert_null(conf_connector_find(c, "nothing"));
}

static void
test_full_file(void **state)
{
	char *dir = make_dir();
	char err[512] = "";

	(void)state;
	write_text(dir, "bridgehead.conf", full_conf);
	struct conf *c = load_in(dir, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load: %s", err);
	check_full(c, dir, dir);
	conf_free(c);
	rm_tree(dir);
	free(dir);
}

static void
test_defaults(void **state)
{
	char *dir = make_dir();
	char err[512] = "";

	(void)state;
	write_text(dir, "bridgehead.conf",
		   "[server]\nname = bh1.example.com\n"
		   "[listener smtp]\naddress = 127.0.0.1:2525\n");
	struct conf *c = load_in(dir, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load: %s", err);
	assert_string_equal(c->state_dir, "/var/lib/bridgehead");
	assert_string_equal(c->user, "bridgehead");
	assert_int_equal(c->n_accepted_domains, 0);
	assert_int_equal(c->n_relay_networks, 0);
	assert_int_equal(c->n_retry_schedule, 5);
	static const unsigned sched[] = { 60, 300, 900, 1800, 3600 };
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(c->retry_schedule_s[i], sched[i]);
	assert_int_equal(conf_retry_delay(c, 0), 60);
	assert_int_equal(conf_retry_delay(c, 4), 3600);
	assert_int_equal(conf_retry_delay(c, 100), 3600);
	assert_int_equal(c->queue_lifetime_s, 5 * 86400);
	assert_null(c->metrics_address);
	assert_int_equal(c->n_connectors, 0);
	conf_free(c);

	/* No name: the host name, if it is an FQDN; otherwise an error
	 * saying so. */
	write_text(dir, "bridgehead.conf",
		   "[listener smtp]\naddress = 127.0.0.1:2525\n");
	char host[256] = "";
	gethostname(host, sizeof host);
	c = load_in(dir, err, sizeof err);
	if (strchr(host, '.') != NULL) {
		if (c == NULL)
			fail_msg("conf_load with host name %s: %s", host, err);
		assert_non_null(c->server_name);
		conf_free(c);
	} else {
		assert_null(c);
		if (strstr(err, "[server] key 'name': not set") == NULL)
			fail_msg("got \"%s\", want the missing name", err);
	}
	rm_tree(dir);
	free(dir);
}

/* Print, load the printout elsewhere, print again: the same text. */
static char *
print_to_string(const struct conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	conf_print(c, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
test_round_trip(void **state)
{
	char *dir = make_dir(), *dir2 = make_dir();
	char err[512] = "";

	(void)state;
	write_text(dir, "bridgehead.conf", full_conf);
	struct conf *c = load_in(dir, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load: %s", err);
	char *first = print_to_string(c);

	write_text(dir2, "bridgehead.conf", first);
	struct conf *c2 = load_in(dir2, err, sizeof err);
	if (c2 == NULL)
		fail_msg("conf_load of the printout: %s\n%s", err, first);
	/* The printout holds absolute paths, so it means the same thing
	 * from another folder. */
	check_full(c2, dir2, dir);
	char *second = print_to_string(c2);
	/* Only the "# from FILE:LINE" comments differ. */
	char *a = first, *b = second;
	while (*a != '\0' && *b != '\0') {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		if (strncmp(a, "# from ", 7) != 0 &&
		    (la != lb || memcmp(a, b, la) != 0))
			fail_msg("round trip: got \"%.*s\", want \"%.*s\"",
				 (int)lb, b, (int)la, a);
		a += la + (a[la] != '\0');
		b += lb + (b[lb] != '\0');
	}
	assert_true(*a == '\0' && *b == '\0');
	assert_non_null(strstr(first, "address_space = contoso1.microsoftonline"
				      ".com;10, *.contoso.net;1\n"));
	assert_non_null(strstr(first, "max_message_size = 35M\n"));
	assert_non_null(strstr(first, "retry_schedule = 1m, 10m, 2h\n"));
	assert_non_null(strstr(first, "smart_hosts = mail.global.frontbridge"
				      ".com, [192.0.2.1]:2525\n"));
	free(first);
	free(second);
	conf_free(c);
	conf_free(c2);
	rm_tree(dir);
	rm_tree(dir2);
	free(dir);
	free(dir2);
}

static const char base_conf[] = "[server]\n"
				"name = bh1.example.com\n"
				"[listener smtp]\n"
				"address = 127.0.0.1:2525\n"
				"[connector main]\n"
				"address_space = example.net\n"
				"smart_hosts = mx.example.net\n";

static void
test_connectors_d(void **state)
{
	char *dir = make_dir();
	char err[512] = "", path[PATH_MAX];

	(void)state;
	write_text(dir, "bridgehead.conf", base_conf);
	make_subdir(dir, "connectors.d");
	write_text(dir, "connectors.d/zeta.conf",
		   "# written by connector add\n"
		   "[connector zeta]\naddress_space = z.example\n"
		   "smart_hosts = [192.0.2.9]:26\ntls = encrypt\n");
	write_text(dir, "connectors.d/alpha.conf",
		   "[connector alpha]\naddress_space = *\ndns = yes\n");
	write_text(dir, "connectors.d/.zeta.conf.tmp", "garbage");
	write_text(dir, "connectors.d/.hidden.conf", "garbage");
	write_text(dir, "connectors.d/README", "garbage");
	make_subdir(dir, "connectors.d/old");

	struct conf *c = load_in(dir, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load: %s", err);
	assert_int_equal(c->n_connectors, 3);
	assert_string_equal(c->connectors[0].name, "main");
	assert_string_equal(c->connectors[0].file, c->path);
	assert_int_equal(c->connectors[0].line, 5);
	/* Sorted by file name. */
	assert_string_equal(c->connectors[1].name, "alpha");
	assert_string_equal(c->connectors[2].name, "zeta");
	snprintf(path, sizeof path, "%s/connectors.d/zeta.conf", dir);
	assert_string_equal(c->connectors[2].file, path);
	assert_int_equal(c->connectors[2].line, 2);
	assert_int_equal(c->connectors[2].tls, CONF_CONNECTOR_TLS_ENCRYPT);
	assert_int_equal(c->connectors[2].smart_hosts[0].port, 26);

	/* What `connector add` would write reads back the same. */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	conf_print_connector(&c->connectors[2], f);
	assert_int_equal(fclose(f), 0);
	write_text(dir, "connectors.d/zeta.conf", buf);
	free(buf);
	conf_free(c);
	c = load_in(dir, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load after conf_print_connector: %s", err);
	assert_int_equal(c->connectors[2].tls, CONF_CONNECTOR_TLS_ENCRYPT);
	assert_string_equal(c->connectors[2].smart_hosts[0].host, "192.0.2.9");
	assert_true(c->connectors[2].smart_hosts[0].literal);
	conf_free(c);
	rm_tree(dir);
	free(dir);
}

/*
 * conf_load_replacing(): connectors.d/NAME.conf read from another file, or
 * left out, in its place in file-name order; the rest as conf_load().
 */
struct replace_case {
	const char *name;
	const char *text;	/* the replacement; NULL: NAME.conf left out */
	const char *want;	/* connector names in order, or NULL: error */
	const char *want_err;	/* a part of the error (@F@: the file) */
};

static const struct replace_case replace_cases[] = {
	{ "zeta", "[connector zeta]\naddress_space = z.example\ndns = yes\n"
		  "tls = verify\n",
	  "main,alpha,zeta", NULL },
	{ "mid", "[connector mid]\naddress_space = m.example\ndns = yes\n",
	  "main,alpha,mid,zeta", NULL },
	{ "Zz", "[connector Zz]\naddress_space = zz.example\ndns = yes\n",
	  "main,Zz,alpha,zeta", NULL },
	{ "zz", "[connector zz]\naddress_space = zz.example\ndns = yes\n",
	  "main,alpha,zeta,zz", NULL },
	{ "zeta", NULL, "main,alpha", NULL },
	{ "alpha", NULL, "main,zeta", NULL },
	{ "nosuch", NULL, "main,alpha,zeta", NULL },
	{ "mid", "[connector mid]\naddress_space = m.example\n", NULL,
	  "@F@/connectors.d/mid.conf:1: [connector mid] key 'smart_hosts': "
	  "missing" },
	{ "mid", "[connector other]\naddress_space = m.example\ndns = yes\n",
	  NULL, "@F@/connectors.d/mid.conf:1: [connector other]: the "
		"connector name must be the file name" },
	{ "ALPHA", "[connector ALPHA]\naddress_space = a.example\ndns = yes\n",
	  /* ALPHA.conf sorts first: alpha.conf is the duplicate */
	  NULL, "@F@/connectors.d/alpha.conf:1: [connector alpha]: already "
		"defined at " },
	{ "Main", "[connector Main]\naddress_space = a.example\ndns = yes\n",
	  NULL, "[connector Main]: already defined at @F@/bridgehead.conf:5" },
	{ "zeta", "[connector zeta]\naddress_space = z.example\ndns = yes\n"
		  "auth_username = u\nauth_password_file = /p\n",
	  NULL, "@F@/connectors.d/zeta.conf:4: [connector zeta] key "
		"'auth_username': authentication needs tls = encrypt" },
	{ "../evil", "[connector x]\n", NULL, "not a valid connector name" },
	{ "", "[connector x]\n", NULL, "not a valid connector name" },
};

static void
names_of(const struct conf *c, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < c->n_connectors && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 i > 0 ? "," : "", c->connectors[i].name);
}

static void
check_replacing(const char *dir, const struct replace_case *t, int *failures)
{
	char main_path[PATH_MAX], repl[PATH_MAX], err[512] = "";
	char got[256], want_err[512];

	snprintf(main_path, sizeof main_path, "%s/bridgehead.conf", dir);
	snprintf(repl, sizeof repl, "%s/replacement", dir);
	if (t->text != NULL)
		write_text(dir, "replacement", t->text);
	struct conf *c = conf_load_replacing(
		main_path, t->name, t->text != NULL ? repl : NULL, err,
		sizeof err);
	if (t->want != NULL) {
		if (c == NULL) {
			print_error("replace %s: got error %s, want %s\n",
				    t->name, err, t->want);
			(*failures)++;
			return;
		}
		names_of(c, got, sizeof got);
		if (strcmp(got, t->want) != 0) {
			print_error("replace %s: got %s, want %s\n", t->name,
				    got, t->want);
			(*failures)++;
		}
		for (size_t i = 0; i < c->n_connectors; i++) {
			/* Read from the replacement, named as the drop-in. */
			if (strstr(c->connectors[i].file, "replacement")) {
				print_error("replace %s: file %s\n", t->name,
					    c->connectors[i].file);
				(*failures)++;
			}
		}
		conf_free(c);
		return;
	}
	expand(want_err, sizeof want_err, t->want_err, dir);
	if (c != NULL || strstr(err, want_err) == NULL) {
		print_error("replace %s: got %s \"%s\", want error \"%s\"\n",
			    t->name, c != NULL ? "a model" : "error", err,
			    want_err);
		(*failures)++;
	}
	conf_free(c);
}

static void
test_load_replacing(void **state)
{
	char *dir = make_dir();
	char main_path[PATH_MAX], repl[PATH_MAX], err[512] = "";
	int failures = 0;

	(void)state;
	write_text(dir, "bridgehead.conf", base_conf);
	make_subdir(dir, "connectors.d");
	write_text(dir, "connectors.d/zeta.conf",
		   "[connector zeta]\naddress_space = z.example\n"
		   "smart_hosts = [192.0.2.9]:26\n");
	write_text(dir, "connectors.d/alpha.conf",
		   "[connector alpha]\naddress_space = *\ndns = yes\n");
	for (size_t i = 0; i < sizeof replace_cases / sizeof replace_cases[0];
	     i++)
		check_replacing(dir, &replace_cases[i], &failures);

	/* The replaced file is read from the replacement, not from disk. */
	snprintf(main_path, sizeof main_path, "%s/bridgehead.conf", dir);
	snprintf(repl, sizeof repl, "%s/replacement", dir);
	write_text(dir, "replacement",
		   "[connector zeta]\naddress_space = z.example\n"
		   "dns = yes\ntls = verify\n");
	struct conf *c = conf_load_replacing(main_path, "zeta", repl, err,
					     sizeof err);
	if (c == NULL)
		fail_msg("conf_load_replacing: %s", err);
	const struct conf_connector *z = conf_connector_find(c, "zeta");
	assert_non_null(z);
	assert_int_equal(z->tls, CONF_CONNECTOR_TLS_VERIFY);
	assert_true(z->dns);
	assert_int_equal(z->n_smart_hosts, 0);
	char want_file[PATH_MAX];
	snprintf(want_file, sizeof want_file, "%s/connectors.d/zeta.conf",
		 dir);
	assert_string_equal(z->file, want_file);
	conf_free(c);

	/* No connectors.d/ at all: the replacement alone. */
	rm_tree(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_text(dir, "bridgehead.conf", base_conf);
	write_text(dir, "replacement",
		   "[connector new]\naddress_space = n.example\ndns = yes\n");
	c = conf_load_replacing(main_path, "new", repl, err, sizeof err);
	if (c == NULL)
		fail_msg("conf_load_replacing without connectors.d: %s", err);
	char got[256];
	names_of(c, got, sizeof got);
	assert_string_equal(got, "main,new");
	conf_free(c);
	c = conf_load_replacing(main_path, "main", NULL, err, sizeof err);
	assert_non_null(c); /* main is in the main file: not left out */
	names_of(c, got, sizeof got);
	assert_string_equal(got, "main");
	conf_free(c);

	rm_tree(dir);
	free(dir);
	assert_int_equal(failures, 0);
}

/* Rejected files: the text, and the message (with @F@ for the file). */
struct bad_case {
	const char *name;
	const char *text;
	const char *want;
};

static const struct bad_case bad_cases[] = {
	{ "unknown section", "[server]\nname = a.b\n[bogus]\n",
	  "@F@:3: [bogus]: unknown section" },
	{ "unknown key", "[server]\nnmae = a.b\n",
	  "@F@:2: [server] key 'nmae': unknown key" },
	{ "duplicate key", "[server]\nname = a.b\n\nname = c.d\n",
	  "@F@:4: [server] key 'name': already set at line 2" },
	{ "key outside section", "name = a.b\n",
	  "@F@:1: key 'name': outside any section" },
	{ "no equals", "[server]\nname\n",
	  "@F@:2: expected 'key = value'" },
	{ "empty value", "[server]\nname =\n",
	  "@F@:2: [server] key 'name': a value is required" },
	{ "empty value with comment", "[server]\nname = # FQDN\n",
	  "@F@:2: [server] key 'name': a value is required" },
	{ "server twice", "[server]\n[queue]\n[server]\n",
	  "@F@:3: [server]: section already defined at line 1" },
	{ "server with name", "[server x]\n", "@F@:1: [server x]: [server] "
					      "takes no name" },
	{ "listener without name", "[listener]\n",
	  "@F@:1: [listener]: a listener needs a name" },
	{ "bad listener name", "[listener a/b]\n",
	  "@F@:1: [listener a/b]: 'a/b' is not a valid name" },
	{ "listener twice", "[listener a]\naddress = 127.0.0.1:25\n"
			    "[listener A]\naddress = 127.0.0.1:26\n",
	  "@F@:3: [listener A]: already defined at line 1" },
	{ "malformed header", "[server\n",
	  "@F@:1: malformed section header" },
	{ "text after header", "[server] x\n",
	  "@F@:1: malformed section header" },
	{ "name no dot", "[server]\nname = localhost\n",
	  "@F@:2: [server] key 'name': 'localhost' is not a fully qualified "
	  "domain name" },
	{ "name underscore", "[server]\nname = bh_1.example.com\n",
	  "key 'name': 'bh_1.example.com' is not a domain name" },
	{ "accepted star", "[server]\naccepted_domains = a.com, *\n",
	  "@F@:2: [server] key 'accepted_domains': '*' would accept mail for "
	  "every domain" },
	{ "accepted bad", "[server]\naccepted_domains = a.com, b..com\n",
	  "key 'accepted_domains': 'b..com' is not a domain name" },
	{ "list empty element", "[server]\naccepted_domains = a.com,,b.com\n",
	  "key 'accepted_domains': element 2 of the list is empty" },
	{ "list trailing comma", "[server]\nrelay_networks = 10.0.0.0/8,\n",
	  "key 'relay_networks': element 2 of the list is empty" },
	{ "host bits", "[server]\nrelay_networks = 127.0.0.0/8, 10.0.0.1/8\n",
	  "@F@:2: [server] key 'relay_networks': '10.0.0.1/8' has host bits "
	  "set" },
	{ "bad cidr", "[server]\nrelay_networks = 10.0.0.0/40\n",
	  "key 'relay_networks': '10.0.0.0/40': the prefix length" },
	{ "bad user", "[server]\nuser = -root\n",
	  "key 'user': '-root' is not a valid user name" },
	{ "bad duration", "[queue]\nretry_schedule = 1m, 5x\n",
	  "@F@:2: [queue] key 'retry_schedule': '5x' is not a duration" },
	{ "zero duration", "[queue]\nqueue_lifetime = 0\n",
	  "key 'queue_lifetime': the duration must be at least 1s" },
	{ "duration overflow", "[queue]\nqueue_lifetime = 50000d\n",
	  "key 'queue_lifetime': 50000d is too large" },
	{ "listen no port", "[listener a]\naddress = 127.0.0.1\n",
	  "@F@:2: [listener a] key 'address': '127.0.0.1' has no port" },
	{ "listen port 0", "[listener a]\naddress = 127.0.0.1:0\n",
	  "key 'address': port 0 is out of range (1-65535)" },
	{ "listen port big", "[listener a]\naddress = 127.0.0.1:70000\n",
	  "key 'address': port 70000 is out of range" },
	{ "listen name", "[listener a]\naddress = localhost:25\n",
	  "key 'address': 'localhost' is not a numeric IPv4 address" },
	{ "listen tls", "[listener a]\ntls = maybe\n",
	  "@F@:2: [listener a] key 'tls': 'maybe' is not one of off, offer, "
	  "require, implicit" },
	{ "size suffix", "[listener a]\nmax_message_size = 10X\n",
	  "key 'max_message_size': '10X' is not a size" },
	{ "size overflow", "[listener a]\nmax_message_size = 99999999999G\n",
	  "key 'max_message_size': 99999999999G is too large" },
	{ "size too small", "[listener a]\nmax_message_size = 1K\n",
	  "key 'max_message_size': 1K is below the minimum of 64K" },
	{ "recipients", "[listener a]\nmax_recipients = 99\n",
	  "key 'max_recipients': 99 is out of range (100-1000000)" },
	{ "recipients text", "[listener a]\nmax_recipients = lots\n",
	  "key 'max_recipients': 'lots' is not a whole number" },
	{ "sessions 0", "[listener a]\nmax_sessions = 0\n",
	  "key 'max_sessions': 0 is out of range" },
	{ "listener no address", "[listener a]\ntls = off\n[server]\n",
	  "@F@:1: [listener a] key 'address': missing" },
	{ "listener no address at end", "[listener a]\ntls = off\n",
	  "@F@:1: [listener a] key 'address': missing" },
	{ "same address", "[listener a]\naddress = 127.0.0.1:25\n"
			  "[listener b]\naddress = 127.0.0.1:25\n",
	  "@F@:4: [listener b] key 'address': 127.0.0.1:25 is already the "
	  "address of [listener a]" },
	{ "overlap", "[listener a]\naddress = *:25\n"
		     "[listener b]\naddress = 127.0.0.1:25\n",
	  "@F@:4: [listener b] key 'address': 127.0.0.1:25 overlaps" },
	{ "no listener", "[server]\nname = a.example\n",
	  "@F@: no [listener NAME] section; at least one is required" },
	{ "empty file", "", "@F@: no [listener NAME] section" },
	{ "connector no space", "[connector x]\nsmart_hosts = a.example\n",
	  "@F@:1: [connector x] key 'address_space': missing" },
	{ "connector no route", "[connector x]\naddress_space = *\n",
	  "@F@:1: [connector x] key 'smart_hosts': missing; a connector needs "
	  "smart_hosts or dns = yes" },
	{ "smart hosts and dns", "[connector x]\naddress_space = *\n"
				 "smart_hosts = a.example\ndns = yes\n",
	  "@F@:4: [connector x] key 'dns': dns = yes and smart_hosts (line 3) "
	  "exclude each other" },
	{ "dns bad", "[connector x]\ndns = maybe\n",
	  "key 'dns': 'maybe' is neither yes nor no" },
	{ "auth without tls", "[connector x]\naddress_space = *\n"
			      "smart_hosts = a.example\n"
			      "auth_username = u\n"
			      "auth_password_file = /p\n",
	  "@F@:4: [connector x] key 'auth_username': authentication needs tls "
	  "= encrypt or verify" },
	{ "auth tls may", "[connector x]\naddress_space = *\ntls = may\n"
			  "smart_hosts = a.example\n"
			  "auth_password_file = /p\nauth_username = u\n",
	  "@F@:6: [connector x] key 'auth_username': authentication needs" },
	{ "auth no file", "[connector x]\naddress_space = *\ntls = verify\n"
			  "smart_hosts = a.example\nauth_username = u\n",
	  "@F@:5: [connector x] key 'auth_username': needs auth_password_file "
	  "as well" },
	{ "auth no user", "[connector x]\naddress_space = *\ntls = verify\n"
			  "smart_hosts = a.example\nauth_password_file = p\n",
	  "@F@:5: [connector x] key 'auth_password_file': needs auth_username "
	  "as well" },
	{ "connector tls", "[connector x]\ntls = strict\n",
	  "key 'tls': 'strict' is not one of none, may, encrypt, verify" },
	{ "cost", "[connector x]\naddress_space = a.com;0\n",
	  "key 'address_space': 'a.com;0': the cost after ';'" },
	{ "space twice", "[connector x]\naddress_space = a.com, A.com;5\n",
	  "key 'address_space': 'a.com' is listed twice" },
	{ "smart host v6", "[connector x]\nsmart_hosts = 2001:db8::1\n",
	  "key 'smart_hosts': '2001:db8::1': an IPv6 address must be written "
	  "in brackets" },
	{ "smart host port", "[connector x]\nsmart_hosts = a.example:0\n",
	  "key 'smart_hosts': port 0 is out of range" },
	{ "connector port", "[connector x]\nport = 65536\n",
	  "key 'port': 65536 is out of range (1-65535)" },
	{ "bridgehead no dot", "[connector x]\nsource_bridgeheads = bh1\n",
	  "key 'source_bridgeheads': 'bh1' is not a fully qualified" },
	{ "connector twice", "[connector x]\naddress_space = *\ndns = yes\n"
			     "[connector X]\n",
	  "@F@:4: [connector X]: already defined at " },
	{ "metrics no address", "[metrics]\n[server]\n",
	  "@F@:1: [metrics] key 'address': missing" },
	{ "metrics bad", "[metrics]\naddress = 127.0.0.1\n",
	  "@F@:2: [metrics] key 'address': '127.0.0.1' has no port" },
	{ "metrics clash", "[metrics]\naddress = 127.0.0.1:2525\n"
			   "[listener a]\naddress = 127.0.0.1:2525\n",
	  "@F@:2: [metrics] key 'address': 127.0.0.1:2525 clashes with the "
	  "address 127.0.0.1:2525 of [listener a]" },
	{ "indented continuation", "[server]\nname = a.example\n  b.example\n",
	  "@F@:3: expected 'key = value'" },
};

static void
test_bad_files(void **state)
{
	char *dir = make_dir();
	char path[PATH_MAX], want[1024];

	(void)state;
	snprintf(path, sizeof path, "%s/bridgehead.conf", dir);
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		char err[1024] = "";
		write_text(dir, "bridgehead.conf", bad_cases[i].text);
		struct conf *c = conf_load(path, err, sizeof err);
		expand(want, sizeof want, bad_cases[i].want, path);
		if (c != NULL) {
			conf_free(c);
			fail_msg("%s: loaded, want \"%s\"", bad_cases[i].name,
				 want);
		}
		if (strstr(err, want) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"",
				 bad_cases[i].name, err, want);
		if (strchr(err, '\n') != NULL)
			fail_msg("%s: the message has a newline: \"%s\"",
				 bad_cases[i].name, err);
	}
	rm_tree(dir);
	free(dir);
}

static void
test_bad_bytes(void **state)
{
	char *dir = make_dir();
	char path[PATH_MAX], want[PATH_MAX + 64], err[1024] = "";
	struct conf *c;

	(void)state;
	snprintf(path, sizeof path, "%s/bridgehead.conf", dir);

	/* A NUL byte would silently cut the line. */
	write_file(dir, "bridgehead.conf", "[server]\nname = a\0.example\n",
		   26);
	assert_null(c = conf_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s:2: the line has a NUL byte", path);
	if (strstr(err, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", err, want);

	/* An over-long line is refused, not split into two. */
	size_t n = 10000;
	char *text = malloc(n + 64);
	assert_non_null(text);
	int k = snprintf(text, n + 64, "[server]\naccepted_domains = a.com");
	while ((size_t)k < n)
		k += snprintf(text + k, n + 64 - (size_t)k, ", a.com");
	text[k++] = '\n';
	write_file(dir, "bridgehead.conf", text, (size_t)k);
	free(text);
	assert_null(c = conf_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s:2: the line is longer than", path);
	if (strstr(err, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", err, want);

	/* A long line under the limit is fine (inih's default is 200). */
	text = malloc(4096);
	assert_non_null(text);
	k = snprintf(text, 4096, "[server]\nname = a.example\n"
				 "accepted_domains = d0.example");
	for (int i = 1; i < 150; i++)
		k += snprintf(text + k, 4096 - (size_t)k, ", d%d.example", i);
	k += snprintf(text + k, 4096 - (size_t)k,
		      "\n[listener a]\naddress = 127.0.0.1:25\n");
	write_file(dir, "bridgehead.conf", text, (size_t)k);
	free(text);
	c = conf_load(path, err, sizeof err);
	if (c == NULL)
		fail_msg("long line: %s", err);
	assert_int_equal(c->n_accepted_domains, 150);
	assert_string_equal(c->accepted_domains[149], "d149.example");
	conf_free(c);

	/* CRLF line ends are fine. */
	write_text(dir, "bridgehead.conf",
		   "[server]\r\nname = a.example\r\n[listener a]\r\n"
		   "address = 127.0.0.1:25\r\n");
	c = conf_load(path, err, sizeof err);
	if (c == NULL)
		fail_msg("CRLF: %s", err);
	assert_string_equal(c->server_name, "a.example");
	conf_free(c);

	/* Missing file, and a directory given as the file. */
	snprintf(path, sizeof path, "%s/nothing.conf", dir);
	assert_null(conf_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s: cannot open: No such file", path);
	if (strstr(err, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", err, want);
	assert_null(conf_load(dir, err, sizeof err));
	if (strstr(err, "not a regular file") == NULL)
		fail_msg("got \"%s\", want \"not a regular file\"", err);
	rm_tree(dir);
	free(dir);
}

/* connectors.d errors: file name, text, message (@D@: the folder). */
static const struct bad_case bad_dropins[] = {
	{ "other.conf", "[connector x]\naddress_space = *\ndns = yes\n",
	  "@D@/other.conf:1: [connector x]: the connector name must be the "
	  "file name: [connector other]" },
	{ "x.conf", "", "@D@/x.conf: no [connector x] section" },
	{ "x.conf", "# nothing\n", "@D@/x.conf: no [connector x] section" },
	{ "x.conf", "[connector x]\naddress_space = *\ndns = yes\n[server]\n",
	  "@D@/x.conf:4: [server]: a connectors.d file holds exactly one" },
	{ "x.conf", "[server]\n",
	  "@D@/x.conf:1: [server]: a connectors.d file holds exactly one" },
	{ "x.conf", "[connector x]\naddress_space = *\ndns = yes\n"
		    "[connector x]\n",
	  "@D@/x.conf:4: [connector x]: a connectors.d file holds exactly" },
	{ "x.conf", "address_space = *\n",
	  "@D@/x.conf:1: key 'address_space': outside any section" },
	{ "x.conf", "[connector x]\naddress_space = *\n",
	  "@D@/x.conf:1: [connector x] key 'smart_hosts': missing" },
	{ "x.conf", "[connector x]\nbogus = 1\n",
	  "@D@/x.conf:2: [connector x] key 'bogus': unknown key" },
	{ "main.conf", "[connector main]\naddress_space = *\ndns = yes\n",
	  "@D@/main.conf:1: [connector main]: already defined at @F@:5" },
	{ "a b.conf", "[connector x]\n",
	  "@D@/a b.conf: 'a b' is not a valid connector name" },
};

static void
test_bad_dropins(void **state)
{
	char *dir = make_dir();
	char path[PATH_MAX], ddir[PATH_MAX], want[3 * PATH_MAX], tmp[3 * PATH_MAX];

	(void)state;
	snprintf(path, sizeof path, "%s/bridgehead.conf", dir);
	snprintf(ddir, sizeof ddir, "%s/connectors.d", dir);
	write_text(dir, "bridgehead.conf", base_conf);
	make_subdir(dir, "connectors.d");
	for (size_t i = 0; i < sizeof bad_dropins / sizeof bad_dropins[0];
	     i++) {
		char err[1024] = "", fname[256];
		snprintf(fname, sizeof fname, "connectors.d/%s",
			 bad_dropins[i].name);
		write_text(dir, fname, bad_dropins[i].text);
		struct conf *c = conf_load(path, err, sizeof err);
		/* @D@ first, then @F@. */
		const char *w = bad_dropins[i].want;
		const char *at = strstr(w, "@D@");
		snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - w), w, ddir,
			 at + 3);
		expand(want, sizeof want, tmp, path);
		if (c != NULL) {
			conf_free(c);
			fail_msg("%s: loaded, want \"%s\"", fname, want);
		}
		if (strstr(err, want) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"", fname, err,
				 want);
		snprintf(tmp, sizeof tmp, "%s/%s", ddir, bad_dropins[i].name);
		assert_int_equal(unlink(tmp), 0);
	}

	/* connectors.d that is not a folder. */
	assert_int_equal(rmdir(ddir), 0);
	write_text(dir, "connectors.d", "not a folder");
	char err[1024] = "";
	assert_null(conf_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s: cannot read the directory", ddir);
	if (strstr(err, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", err, want);
	rm_tree(dir);
	free(dir);
}

static void
test_relative_path(void **state)
{
	char *dir = make_dir();
	char cwd[PATH_MAX], want[PATH_MAX], err[512] = "";

	(void)state;
	assert_non_null(getcwd(cwd, sizeof cwd));
	write_text(dir, "bridgehead.conf",
		   "[server]\nname = a.example\nstate_dir = ./st\n"
		   "[listener a]\naddress = 127.0.0.1:25\n");
	assert_int_equal(chdir(dir), 0);
	struct conf *c = conf_load("bridgehead.conf", err, sizeof err);
	assert_int_equal(chdir(cwd), 0);
	if (c == NULL)
		fail_msg("conf_load: %s", err);
	snprintf(want, sizeof want, "%s/st", dir);
	assert_string_equal(c->state_dir, want);
	snprintf(want, sizeof want, "%s/bridgehead.conf", dir);
	assert_string_equal(c->path, want);
	conf_free(c);
	rm_tree(dir);
	free(dir);
}

static void
test_tls_names(void **state)
{
	enum conf_connector_tls t;

	(void)state;
	for (int i = CONF_CONNECTOR_TLS_NONE; i <= CONF_CONNECTOR_TLS_VERIFY;
	     i++) {
		const char *name =
			conf_connector_tls_name((enum conf_connector_tls)i);
		assert_int_equal(conf_connector_tls_from_name(name, &t), 0);
		assert_int_equal(t, i);
	}
	assert_int_equal(conf_connector_tls_from_name("VERIFY", &t), 0);
	assert_int_equal(t, CONF_CONNECTOR_TLS_VERIFY);
	assert_int_equal(conf_connector_tls_from_name("strict", &t), -1);
	assert_string_equal(conf_listener_tls_name(CONF_LISTENER_TLS_IMPLICIT),
			    "implicit");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_cidrs),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_address_spaces),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_domain_accepted),
		cmocka_unit_test(test_relay_client),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_connectors_d),
		cmocka_unit_test(test_load_replacing),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_bad_dropins),
		cmocka_unit_test(test_relative_path),
		cmocka_unit_test(test_tls_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
