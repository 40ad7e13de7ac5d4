/*
 * dns_test: the resolver against local data, without the Internet.  An
 * unbound configuration written into a temporary folder holds a static
 * zone example.test. (MX at two preferences, the implicit MX, a null MX,
 * AAAA only, names that do not exist, more exchangers than the bound) and
 * two forward zones at name servers this test runs on its own loop: one
 * that answers SERVFAIL to everything, one that never answers.  Covered:
 * the result of every kind of answer (table), equal preferences shuffled,
 * address literals answered without a query and never synchronously,
 * cancel before and during an answer, dns_free with lookups pending,
 * SERVFAIL and the overall timeout as DNS_TEMPFAIL, a bad config file.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "net/dns.h"
#include "util/log.h"

#define MANY 20 /* exchangers of many.example.test: above the bound */

static char dir[] = "/tmp/dns_test.XXXXXX";
static char conf_path[256];
static struct event_base *base;
static struct dns *dns;

/* The two test name servers. */
static int servfail_fd = -1, silent_fd = -1;
static struct event *servfail_ev, *silent_ev;
static unsigned servfail_queries, silent_queries;

/* ------------------------------------------------------------ fixtures */

static int
udp_socket(unsigned short *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		return -1;
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A name server that answers every query with SERVFAIL (RCODE 2). */
static void
servfail_read(evutil_socket_t fd, short what, void *arg)
{
	unsigned char pkt[512];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof from;
	ssize_t n;

	(void)what;
	(void)arg;
	n = recvfrom(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&from,
		     &fromlen);
	if (n < 12)
		return;
	servfail_queries++;
	pkt[2] = (unsigned char)(0x80 | (pkt[2] & 0x79)); /* QR, RD kept */
	pkt[3] = 0x82;					  /* RA, SERVFAIL */
	memset(pkt + 6, 0, 6); /* no answer, authority, additional */
	/* The question stays; an OPT record in it would be additional: cut. */
	size_t qend = 12;
	while (qend < (size_t)n && pkt[qend] != 0)
		qend += (size_t)pkt[qend] + 1;
	qend += 5;
	if (qend > (size_t)n)
		return;
	sendto(fd, pkt, qend, 0, (struct sockaddr *)&from, fromlen);
}

/* A name server that reads every query and never answers. */
static void
silent_read(evutil_socket_t fd, short what, void *arg)
{
	unsigned char pkt[512];

	(void)what;
	(void)arg;
	if (recv(fd, pkt, sizeof pkt, 0) >= 12)
		silent_queries++;
}

static int
write_config(unsigned short servfail_port, unsigned short silent_port)
{
	FILE *fp;

	snprintf(conf_path, sizeof conf_path, "%s/unbound.conf", dir);
	fp = fopen(conf_path, "w");
	if (fp == NULL)
		return -1;
	fprintf(fp,
		"server:\n"
		"\tdo-not-query-localhost: no\n"
		/* test. is served empty by default (RFC 6761): let the
		 * forward zones under it through. */
		"\tlocal-zone: \"test.\" nodefault\n"
		"\tlocal-zone: \"example.test.\" static\n"
		"\tlocal-data: \"example.test. MX 10 mx1.example.test.\"\n"
		"\tlocal-data: \"example.test. MX 20 mx2.example.test.\"\n"
		"\tlocal-data: \"example.test. MX 10 mx3.example.test.\"\n"
		"\tlocal-data: \"mx1.example.test. A 192.0.2.1\"\n"
		"\tlocal-data: \"mx2.example.test. A 192.0.2.2\"\n"
		"\tlocal-data: \"mx2.example.test. AAAA 2001:db8::2\"\n"
		"\tlocal-data: \"mx3.example.test. A 192.0.2.3\"\n"
		"\tlocal-data: \"implicit.example.test. A 192.0.2.10\"\n"
		"\tlocal-data: \"nullmx.example.test. MX 0 .\"\n"
		"\tlocal-data: \"v6.example.test. AAAA 2001:db8::6\"\n"
		"\tlocal-data: \"noaddr.example.test. MX 10 "
		"gone.example.test.\"\n"
		"\tlocal-data: \"txt.example.test. TXT \\\"no mail here\\\"\"\n"
		"\tlocal-data: \"half.example.test. MX 10 "
		"gone.example.test.\"\n"
		"\tlocal-data: \"half.example.test. MX 20 mx3.example.test.\"\n"
		"\tlocal-data: \"bad.example.test. MX 10 x.fail.test.\"\n"
		"\tlocal-data: \"stall.example.test. MX 10 x.silent.test.\"\n"
		"\tlocal-data: \"dup.example.test. MX 30 mx1.example.test.\"\n"
		"\tlocal-data: \"dup.example.test. MX 5 MX1.example.test.\"\n"
		"\tlocal-data: \"mixed.example.test. MX 10 x.fail.test.\"\n"
		"\tlocal-data: \"mixed.example.test. MX 20 "
		"gone.example.test.\"\n");
	for (int i = 0; i < MANY; i++) {
		fprintf(fp,
			"\tlocal-data: \"many.example.test. MX %d "
			"m%02d.example.test.\"\n"
			"\tlocal-data: \"m%02d.example.test. A 192.0.2.%d\"\n",
			i, i, i, 100 + i);
		/* The same exchangers, least preferred first. */
		fprintf(fp,
			"\tlocal-data: \"rev.example.test. MX %d "
			"m%02d.example.test.\"\n",
			MANY - 1 - i, MANY - 1 - i);
	}
	fprintf(fp,
		"forward-zone:\n"
		"\tname: \"fail.test.\"\n"
		"\tforward-addr: 127.0.0.1@%u\n"
		"forward-zone:\n"
		"\tname: \"silent.test.\"\n"
		"\tforward-addr: 127.0.0.1@%u\n",
		servfail_port, silent_port);
	return fclose(fp) == 0 ? 0 : -1;
}

static int
setup(void **state)
{
	unsigned short sp, qp;
	char err[256];

	(void)state;
	log_init("dns_test", true, false);
	if (mkdtemp(dir) == NULL)
		return -1;
	base = event_base_new();
	servfail_fd = udp_socket(&sp);
	silent_fd = udp_socket(&qp);
	if (base == NULL || servfail_fd == -1 || silent_fd == -1 ||
	    write_config(sp, qp) == -1)
		return -1;
	servfail_ev = event_new(base, servfail_fd, EV_READ | EV_PERSIST,
				servfail_read, NULL);
	silent_ev = event_new(base, silent_fd, EV_READ | EV_PERSIST,
			      silent_read, NULL);
	if (servfail_ev == NULL || event_add(servfail_ev, NULL) == -1 ||
	    silent_ev == NULL || event_add(silent_ev, NULL) == -1)
		return -1;
	dns = dns_new(base, conf_path, err, sizeof err);
	if (dns == NULL) {
		fprintf(stderr, "dns_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dns_free(dns);
	event_free(servfail_ev);
	event_free(silent_ev);
	close(servfail_fd);
	close(silent_fd);
	event_base_free(base);
	unlink(conf_path);
	rmdir(dir);
	return 0;
}

/* ------------------------------------------------------------ helpers */

struct outcome {
	bool done;
	int calls;
	enum dns_status status;
	char text[4096];  /* the result, canonical: see format_result */
	char order[1024]; /* host names in the order given */
	char reason[512];
	struct dns_query *cancel_me; /* cancelled from this callback */
	bool *cancelled_flag;
};

static void append(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void
format_addr(const struct dns_addr *a, char *out, size_t len)
{
	const void *p;

	if (a->sa.ss_family == AF_INET)
		p = &((const struct sockaddr_in *)&a->sa)->sin_addr;
	else
		p = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
	if (inet_ntop(a->sa.ss_family, p, out, (socklen_t)len) == NULL)
		snprintf(out, len, "?");
}

static int
cmp_host_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * "PREF NAME ADDR,ADDR; ..." with the hosts of one preference sorted by
 * name (their order is random by design), addresses in the order given.
 */
static void
format_result(const struct dns_result *r, char *out, size_t len)
{
	char lines[32][512];
	char *sorted[32];
	size_t n = r->n_hosts < 32 ? r->n_hosts : 32;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct dns_host *h = &r->hosts[i];

		snprintf(lines[i], sizeof lines[i], "%05u %s ", h->preference,
			 h->name);
		for (size_t j = 0; j < h->n_addrs; j++) {
			char a[INET6_ADDRSTRLEN];

			format_addr(&h->addrs[j], a, sizeof a);
			append(lines[i], sizeof lines[i], "%s%s",
			       j > 0 ? "," : "", a);
			assert_int_equal(h->addrs[j].salen,
					 h->addrs[j].sa.ss_family == AF_INET
						 ? sizeof(struct sockaddr_in)
						 : sizeof(struct sockaddr_in6));
		}
		sorted[i] = lines[i];
	}
	/* Sorting by the zero-padded preference keeps preference order. */
	qsort(sorted, n, sizeof sorted[0], cmp_host_line);
	for (size_t i = 0; i < n; i++) {
		/* Shown without the padding. */
		char *p = sorted[i];

		while (*p == '0' && p[1] != ' ')
			p++;
		append(out, len, "%s%s", i > 0 ? "; " : "", p);
	}
}

static void
on_result(void *arg, const struct dns_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->done = true;
	o->status = r->status;
	snprintf(o->reason, sizeof o->reason, "%s",
		 r->reason != NULL ? r->reason : "(null)");
	format_result(r, o->text, sizeof o->text);
	o->order[0] = '\0';
	for (size_t i = 0; i < r->n_hosts; i++)
		append(o->order, sizeof o->order, "%s ", r->hosts[i].name);
	if (o->cancel_me != NULL) {
		dns_cancel(o->cancel_me);
		*o->cancelled_flag = true;
		o->cancel_me = NULL;
	}
}

static void
loop_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run the loop until *done or ms have passed. */
static void
run_until(bool *done, unsigned ms)
{
	bool expired = false;
	struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
	struct event *t = evtimer_new(base, loop_stop, &expired);

	assert_non_null(t);
	evtimer_add(t, &tv);
	while (!*done && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static const char *
status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "OK";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NULLMX:
		return "NULLMX";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	}
	return "?";
}

/* ------------------------------------------------------------ table */

struct lookup_case {
	const char *label;
	bool mx; /* dns_lookup_mx, else dns_lookup_host */
	const char *name;
	enum dns_status want_status;
	const char *want;	 /* format_result(); "" when not DNS_OK */
	const char *want_reason; /* a substring of the reason */
};

/* The exchangers at preferences 0..15 of many. and rev.example.test. */
#define SIXTEEN                                                                \
	"0 m00.example.test 192.0.2.100; 1 m01.example.test 192.0.2.101; "     \
	"2 m02.example.test 192.0.2.102; 3 m03.example.test 192.0.2.103; "     \
	"4 m04.example.test 192.0.2.104; 5 m05.example.test 192.0.2.105; "     \
	"6 m06.example.test 192.0.2.106; 7 m07.example.test 192.0.2.107; "     \
	"8 m08.example.test 192.0.2.108; 9 m09.example.test 192.0.2.109; "     \
	"10 m10.example.test 192.0.2.110; 11 m11.example.test 192.0.2.111; "   \
	"12 m12.example.test 192.0.2.112; 13 m13.example.test 192.0.2.113; "   \
	"14 m14.example.test 192.0.2.114; 15 m15.example.test 192.0.2.115"

static const struct lookup_case cases[] = {
	{"two preferences", true, "example.test", DNS_OK,
	 "10 mx1.example.test 192.0.2.1; 10 mx3.example.test 192.0.2.3; "
	 "20 mx2.example.test 192.0.2.2,2001:db8::2",
	 "3 hosts"},
	{"lower case, final dot dropped", true, "EXAMPLE.Test.", DNS_OK,
	 "10 mx1.example.test 192.0.2.1; 10 mx3.example.test 192.0.2.3; "
	 "20 mx2.example.test 192.0.2.2,2001:db8::2",
	 "3 hosts"},
	{"implicit MX", true, "implicit.example.test", DNS_OK,
	 "0 implicit.example.test 192.0.2.10", "1 host"},
	{"implicit MX, AAAA only", true, "v6.example.test", DNS_OK,
	 "0 v6.example.test 2001:db8::6", "1 host"},
	{"null MX", true, "nullmx.example.test", DNS_NULLMX, "", "null MX"},
	{"no such domain", true, "nosuch.example.test", DNS_NXDOMAIN, "",
	 "no such domain"},
	{"exchanger without address", true, "noaddr.example.test", DNS_NODATA,
	 "", "no address for any mail exchanger"},
	{"implicit MX without address", true, "txt.example.test", DNS_NODATA,
	 "", "no address"},
	{"one exchanger of two usable", true, "half.example.test", DNS_OK,
	 "20 mx3.example.test 192.0.2.3", "1 host"},
	{"exchanger SERVFAIL", true, "bad.example.test", DNS_TEMPFAIL, "",
	 "server failure"},
	{"one exchanger SERVFAIL, one NXDOMAIN", true, "mixed.example.test",
	 DNS_TEMPFAIL, "", "server failure"},
	{"MX SERVFAIL", true, "x.fail.test", DNS_TEMPFAIL, "",
	 "server failure"},
	{"at most 16 exchangers", true, "many.example.test", DNS_OK, SIXTEEN,
	 "16 hosts"},
	{"the 16 most preferred", true, "rev.example.test", DNS_OK, SIXTEEN,
	 "16 hosts"},
	{"duplicate exchanger: lowest preference", true, "dup.example.test",
	 DNS_OK, "5 mx1.example.test 192.0.2.1", "1 host"},
	{"IPv4 literal", true, "[192.0.2.9]", DNS_OK, "0 [192.0.2.9] 192.0.2.9",
	 "address literal"},
	{"IPv6 literal", true, "[IPv6:2001:db8::9]", DNS_OK,
	 "0 [IPv6:2001:db8::9] 2001:db8::9", "address literal"},
	{"bad literal", true, "[300.1.1.1]", DNS_NXDOMAIN, "",
	 "not a valid domain name"},
	{"empty label", true, "a..example.test", DNS_NXDOMAIN, "",
	 "not a valid domain name"},
	{"empty name", true, "", DNS_NXDOMAIN, "", "not a valid domain name"},
	{"control byte", true, "a\nb.example.test", DNS_NXDOMAIN, "",
	 "\"a\\x0ab.example.test\" is not a valid domain name"},
	{"host both families", false, "mx2.example.test", DNS_OK,
	 "0 mx2.example.test 192.0.2.2,2001:db8::2", "1 host"},
	{"host AAAA only", false, "v6.example.test", DNS_OK,
	 "0 v6.example.test 2001:db8::6", "1 host"},
	{"host does not exist", false, "gone.example.test", DNS_NXDOMAIN, "",
	 "no such host"},
	{"host without address", false, "txt.example.test", DNS_NODATA, "",
	 "no address record"},
	{"host SERVFAIL", false, "smart.fail.test", DNS_TEMPFAIL, "",
	 "server failure"},
	{"host bare IPv4", false, "192.0.2.7", DNS_OK, "0 192.0.2.7 192.0.2.7",
	 "address literal"},
	{"host bare IPv6", false, "2001:db8::7", DNS_OK,
	 "0 2001:db8::7 2001:db8::7", "address literal"},
	{"host bracketed", false, "[192.0.2.8]", DNS_OK,
	 "0 [192.0.2.8] 192.0.2.8", "address literal"},
};

static void
test_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct lookup_case *c = &cases[i];
		struct outcome o = {0};
		struct dns_query *q;

		q = c->mx ? dns_lookup_mx(dns, c->name, on_result, &o)
			  : dns_lookup_host(dns, c->name, on_result, &o);
		assert_non_null(q);
		/* Never synchronous, not even for a literal. */
		if (o.calls != 0) {
			printf("%s: callback ran inside the lookup call\n",
			       c->label);
			failed++;
			continue;
		}
		run_until(&o.done, 8000);
		if (o.calls != 1 || o.status != c->want_status ||
		    strcmp(o.text, c->want) != 0 ||
		    strstr(o.reason, c->want_reason) == NULL) {
			printf("%s (%s):\n  got  calls=%d %s [%s] "
			       "reason=\"%s\"\n"
			       "  want calls=1 %s [%s] reason~\"%s\"\n",
			       c->label, c->name, o.calls,
			       status_name(o.status), o.text, o.reason,
			       status_name(c->want_status), c->want,
			       c->want_reason);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
	assert_true(servfail_queries > 0);
}

/* ------------------------------------------------------------ the rest */

/* RFC 5321 5.1: equal preferences come in random order. */
static void
test_shuffle(void **state)
{
	int first_mx1 = 0, first_mx3 = 0;

	(void)state;
	for (int i = 0; i < 40; i++) {
		struct outcome o = {0};

		assert_non_null(
			dns_lookup_mx(dns, "example.test", on_result, &o));
		run_until(&o.done, 5000);
		assert_int_equal(o.status, DNS_OK);
		if (strncmp(o.order, "mx1.example.test mx3.", 21) == 0)
			first_mx1++;
		else if (strncmp(o.order, "mx3.example.test mx1.", 21) == 0)
			first_mx3++;
		else
			fail_msg("got order \"%s\", want mx1/mx3 then mx2",
				 o.order);
		/* The least preferred stays last. */
		assert_non_null(strstr(o.order, " mx2.example.test "));
	}
	printf("mx1 first %d times, mx3 first %d times\n", first_mx1,
	       first_mx3);
	assert_true(first_mx1 > 0 && first_mx3 > 0);
}

static void
test_cancel_before_answer(void **state)
{
	struct outcome o = {0}, lit = {0}, later = {0};
	struct dns_query *q;
	bool idle = false;

	(void)state;
	q = dns_lookup_mx(dns, "example.test", on_result, &o);
	assert_non_null(q);
	dns_cancel(q);
	/* A literal's answer is pending on a timer: cancel that too. */
	q = dns_lookup_mx(dns, "[192.0.2.1]", on_result, &lit);
	assert_non_null(q);
	dns_cancel(q);
	run_until(&idle, 500);
	assert_int_equal(o.calls, 0);
	assert_int_equal(lit.calls, 0);
	/* The resolver still works after the dropped answers. */
	assert_non_null(dns_lookup_mx(dns, "example.test", on_result, &later));
	run_until(&later.done, 5000);
	assert_int_equal(later.calls, 1);
	assert_int_equal(later.status, DNS_OK);
}

/* One callback cancels another lookup whose answer may be read already. */
static void
test_cancel_from_callback(void **state)
{
	struct outcome first = {0}, second = {0};
	bool cancelled = false, idle = false;

	(void)state;
	assert_non_null(
		dns_lookup_host(dns, "mx1.example.test", on_result, &first));
	first.cancel_me =
		dns_lookup_host(dns, "mx2.example.test", on_result, &second);
	assert_non_null(first.cancel_me);
	first.cancelled_flag = &cancelled;
	second.cancel_me = NULL;
	run_until(&first.done, 5000);
	/* Whichever came first, the other must not run once cancelled. */
	run_until(&idle, 500);
	if (cancelled) {
		assert_int_equal(first.calls, 1);
		assert_int_equal(second.calls, 0);
	} else {
		fail_msg("the first callback did not run");
	}
}

/* Cancelled while the address lookups of the exchangers are pending. */
static void
test_cancel_during_addresses(void **state)
{
	struct outcome o = {0};
	struct dns_query *q;
	unsigned before = silent_queries;
	bool idle = false;

	(void)state;
	/* stall.example.test: the MX from local data, then the address of
	 * x.silent.test asked of the server that never answers. */
	q = dns_lookup_mx(dns, "stall.example.test", on_result, &o);
	assert_non_null(q);
	for (int i = 0; i < 300 && silent_queries == before && !o.done; i++) {
		bool tick = false;

		run_until(&tick, 10);
	}
	assert_false(o.done);
	assert_true(silent_queries > before);
	dns_cancel(q);
	run_until(&idle, 1000);
	assert_int_equal(o.calls, 0);
}

static void
test_timeout(void **state)
{
	struct outcome o = {0};

	(void)state;
	dns_set_timeout(dns, 700);
	assert_non_null(dns_lookup_mx(dns, "x.silent.test", on_result, &o));
	run_until(&o.done, 5000);
	dns_set_timeout(dns, 0);
	if (o.calls != 1 || o.status != DNS_TEMPFAIL ||
	    strstr(o.reason, "DNS timeout") == NULL)
		fail_msg("got calls=%d %s reason=\"%s\", want 1 TEMPFAIL "
			 "\"DNS timeout...\"",
			 o.calls, status_name(o.status), o.reason);
}

/* dns_free with lookups pending: no callback, nothing leaks (ASan). */
static void
test_free_pending(void **state)
{
	struct outcome a = {0}, b = {0}, c = {0};
	char err[256];
	struct dns *d = dns_new(base, conf_path, err, sizeof err);
	bool idle = false;

	(void)state;
	assert_non_null(d);
	assert_non_null(dns_lookup_mx(d, "example.test", on_result, &a));
	assert_non_null(dns_lookup_host(d, "x.silent.test", on_result, &b));
	assert_non_null(dns_lookup_mx(d, "[192.0.2.1]", on_result, &c));
	dns_free(d);
	run_until(&idle, 300);
	assert_int_equal(a.calls + b.calls + c.calls, 0);
}

static void
test_bad_config(void **state)
{
	char err[256] = "";
	char path[300];
	FILE *fp;
	struct dns *d;

	(void)state;
	snprintf(path, sizeof path, "%s/missing.conf", dir);
	d = dns_new(base, path, err, sizeof err);
	assert_null(d);
	if (strstr(err, "missing.conf") == NULL)
		fail_msg("got err \"%s\", want the file named", err);

	snprintf(path, sizeof path, "%s/syntax.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("server:\n\tno-such-option: yes\n", fp);
	fclose(fp);
	err[0] = '\0';
	d = dns_new(base, path, err, sizeof err);
	unlink(path);
	assert_null(d);
	if (strstr(err, "syntax.conf") == NULL)
		fail_msg("got err \"%s\", want the file named", err);
}

/* The system resolver starts (no lookup: the machine may be offline). */
static void
test_system_resolver(void **state)
{
	char err[256] = "";
	struct dns *d;

	(void)state;
	d = dns_new(base, NULL, err, sizeof err);
	if (d == NULL)
		fail_msg("dns_new(NULL): %s", err);
	dns_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_shuffle),
		cmocka_unit_test(test_cancel_before_answer),
		cmocka_unit_test(test_cancel_from_callback),
		cmocka_unit_test(test_cancel_during_addresses),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_system_resolver),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
