/*
 * dns: asynchronous DNS on the event loop through libunbound (see dns.h).
 *
 *   dns_new()          a libunbound context: an unbound configuration file
 *                      ([dns] unbound_config: may hold local-zone and
 *                      local-data), or resolv.conf and the hosts file.
 *                      Resolution runs in a libunbound thread; answers come
 *                      back through ub_fd(), watched by one read event that
 *                      calls ub_process(), so callbacks run on the loop.
 *   dns_free()         cancels every pending lookup (no callback runs).
 *   dns_set_timeout()  the overall bound of one lookup (default 30 s).
 *   dns_lookup_mx()    RFC 5321 5.1: the MX records by preference, equal
 *                      preferences in random order; no MX record at all
 *                      (NODATA) means the implicit MX, the domain itself
 *                      at preference 0; a null MX "." (RFC 7505) is
 *                      DNS_NULLMX.  Then A and AAAA of every exchanger, in
 *                      parallel; exchangers without an address are dropped.
 *   dns_lookup_host()  A and AAAA of one host.
 *   dns_cancel()       the owner gives up; its callback never runs.
 *
 * Address literals ("[192.0.2.1]", "[IPv6:2001:db8::1]", and bare IP
 * addresses for dns_lookup_host) are answered without a query.  Every
 * callback runs from the loop, never from inside dns_lookup_*(), so a
 * caller may store the returned handle before its callback can run.
 *
 * A query owns its sub-queries (one MX, then one A and one AAAA per host);
 * each holds a libunbound async id while it is pending.  Bounds: at most
 * DNS_MAX_HOSTS exchangers, DNS_MAX_ADDRS addresses per host (A first).
 * After the callback returns the query is freed: its handle is then dead.
 */
#include "net/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

#include "util/log.h"

#define DNS_MAX_HOSTS 16
#define DNS_MAX_ADDRS 16
#define DNS_DEFAULT_TIMEOUT_MS 30000u
#define DNS_REASON_LEN 512

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define CLASS_IN 1

#define RCODE_SERVFAIL 2
#define RCODE_NXDOMAIN 3

enum dns_kind {
	KIND_MX,
	KIND_HOST,
};

/* What one sub-query (or one host's pair of them) found. */
enum sub_status {
	SUB_PENDING,
	SUB_DATA,   /* records of the type asked for */
	SUB_NODATA, /* the name exists, no such record */
	SUB_NXDOMAIN,
	SUB_TEMPFAIL,
};

struct dns_sub {
	struct dns_query *query;
	int type;    /* RR_MX, RR_A, RR_AAAA */
	size_t host; /* index in query->hosts for A/AAAA */
	int async_id;
	bool pending;
	enum sub_status status;
};

struct dns_query {
	struct dns *dns;
	struct dns_query *prev, *next; /* dns->queries */
	enum dns_kind kind;
	char name[256];
	dns_callback *cb;
	void *arg;
	struct event *timer; /* overall timeout, or "answer now" */
	bool answer_ready;   /* the timer delivers result, not a timeout */
	int n_pending;

	struct dns_sub mx;
	struct dns_sub a[DNS_MAX_HOSTS], aaaa[DNS_MAX_HOSTS];
	struct dns_host hosts[DNS_MAX_HOSTS];
	struct dns_addr addrs[DNS_MAX_HOSTS][DNS_MAX_ADDRS];
	size_t n_hosts;

	struct dns_result result;
	char reason[DNS_REASON_LEN];
	char tempfail[DNS_REASON_LEN]; /* the first temporary failure */
};

struct dns {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *readable;
	struct dns_query *queries;
	unsigned timeout_ms;
	bool broken; /* the resolver thread is gone */
};

static void query_free(struct dns_query *q);

/* The context. */

static void
dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	int r;

	(void)fd;
	(void)what;
	/* Callbacks run from here; they may cancel or start queries. */
	r = ub_process(dns->ub);
	if (r == UB_PIPE) {
		/*
		 * The resolver thread is gone: the pipe would stay readable
		 * forever.  Stop watching it; pending lookups end by their
		 * timeout, new ones fail at once (dns_lookup_*).
		 */
		log_warn("dns: the resolver thread is gone: %s; every lookup "
			 "fails temporarily from now on",
			 ub_strerror(r));
		event_del(dns->readable);
		dns->broken = true;
	} else if (r != 0) {
		log_warn("dns: ub_process: %s", ub_strerror(r));
	}
}

static int
set_option(struct ub_ctx *ub, const char *opt, const char *val, char *err,
	   size_t errlen)
{
	int r = ub_ctx_set_option(ub, opt, val);

	if (r != 0) {
		snprintf(err, errlen, "unbound option %s %s: %s", opt, val,
			 ub_strerror(r));
		return -1;
	}
	return 0;
}

/* resolv.conf and the hosts file; a missing file is worth a warning only. */
static int
use_system(struct ub_ctx *ub, char *err, size_t errlen)
{
	int r;

	/*
	 * A local caching resolver (127.0.0.1, 127.0.0.53) is the usual
	 * nameserver; unbound would refuse to forward to localhost otherwise.
	 */
	if (set_option(ub, "do-not-query-localhost:", "no", err, errlen) == -1)
		return -1;
	r = ub_ctx_resolvconf(ub, NULL);
	if (r != 0)
		log_warn("dns: resolv.conf: %s; resolving from the root",
			 ub_strerror(r));
	r = ub_ctx_hosts(ub, NULL);
	if (r != 0)
		log_warn("dns: hosts file: %s", ub_strerror(r));
	return 0;
}

struct dns *
dns_new(struct event_base *base, const char *unbound_config, char *err,
	size_t errlen)
{
	struct dns *dns = calloc(1, sizeof *dns);
	int r;

	if (dns == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dns->base = base;
	dns->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
	dns->ub = ub_ctx_create();
	if (dns->ub == NULL) {
		snprintf(err, errlen, "cannot create a libunbound context");
		goto fail;
	}
	/* A thread, not a forked process: it shares nothing but the pipe. */
	r = ub_ctx_async(dns->ub, 1);
	if (r != 0) {
		snprintf(err, errlen, "libunbound threads: %s", ub_strerror(r));
		goto fail;
	}
	if (unbound_config != NULL) {
		r = ub_ctx_config(dns->ub, unbound_config);
		if (r != 0) {
			snprintf(err, errlen, "unbound configuration %s: %s",
				 unbound_config, ub_strerror(r));
			goto fail;
		}
	} else if (use_system(dns->ub, err, errlen) == -1) {
		goto fail;
	}
	dns->readable = event_new(base, ub_fd(dns->ub), EV_READ | EV_PERSIST,
				  dns_readable, dns);
	if (dns->readable == NULL || event_add(dns->readable, NULL) == -1) {
		snprintf(err, errlen, "cannot watch the libunbound pipe");
		goto fail;
	}
	return dns;
fail:
	dns_free(dns);
	return NULL;
}

void
dns_free(struct dns *dns)
{
	if (dns == NULL)
		return;
	while (dns->queries != NULL)
		dns_cancel(dns->queries);
	if (dns->readable != NULL)
		event_free(dns->readable);
	if (dns->ub != NULL)
		ub_ctx_delete(dns->ub);
	free(dns);
}

void
dns_set_timeout(struct dns *dns, unsigned msec)
{
	dns->timeout_ms = msec > 0 ? msec : DNS_DEFAULT_TIMEOUT_MS;
}

/* Names and literals. */

/*
 * A name fit to query, in lower case (names go to logs and certificate
 * checks): 1..253 characters once a final dot is dropped,
 * labels of 1..63 characters, no byte that cannot appear in a host name
 * we would send mail to (no spaces, no controls, no '[' or '\\').
 */
static int
normalize_name(const char *in, char *out, size_t outlen)
{
	size_t len = strlen(in), label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= outlen)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)tolower(ch);
	}
	out[len] = '\0';
	return 0;
}

/*
 * "[192.0.2.1]", "[IPv6:2001:db8::1]" (RFC 5321 4.1.3), and when bare is
 * set also "192.0.2.1" and "2001:db8::1".  0 and *a filled, or -1.
 */
static int
parse_literal(const char *s, bool bare, struct dns_addr *a)
{
	char text[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);
	bool v6 = false;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
			v6 = true;
		}
	} else if (!bare) {
		return -1;
	} else {
		v6 = strchr(s, ':') != NULL;
	}
	if (len == 0 || len >= sizeof text)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(a, 0, sizeof *a);
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;

		if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		a->salen = sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

		if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		a->salen = sizeof *sin;
	}
	return 0;
}

/*
 * The exchange of MX RDATA: a 16-bit preference, then a domain name in
 * wire format.  libunbound hands RDATA with names already uncompressed
 * (it decompresses when it parses a message), so a compression pointer
 * here is malformed.  The name goes out in text form, without the final
 * dot, "" for the root (the null MX).  0, or -1 for a malformed record.
 */
static int
decode_mx(const unsigned char *rd, size_t len, unsigned *pref, char *name,
	  size_t namelen)
{
	size_t pos = 2, out = 0;

	if (len < 3)
		return -1;
	*pref = (unsigned)rd[0] << 8 | rd[1];
	for (;;) {
		size_t label;

		if (pos >= len)
			return -1;
		label = rd[pos++];
		if (label == 0)
			break;
		if (label > 63 || pos + label > len)
			return -1; /* a pointer (0xc0) or beyond the end */
		if (out + label + 2 > namelen)
			return -1;
		if (out > 0)
			name[out++] = '.';
		for (size_t i = 0; i < label; i++) {
			unsigned char ch = rd[pos + i];

			if (!isalnum(ch) && ch != '-' && ch != '_')
				return -1;
			/* Lower case: the case of an answer may follow
			 * the question's (compression against it). */
			name[out++] = (char)tolower(ch);
		}
		pos += label;
	}
	if (pos != len)
		return -1;
	name[out] = '\0';
	return 0;
}

/* Answers. */

static const char *
kind_name(int type)
{
	return type == RR_MX ? "MX" : type == RR_A ? "A" : "AAAA";
}

/* The callback, then the query is gone. */
static void
query_finish(struct dns_query *q, enum dns_status status)
{
	q->result.status = status;
	q->result.reason = q->reason;
	if (status == DNS_OK) {
		q->result.hosts = q->hosts;
		q->result.n_hosts = q->n_hosts;
	} else {
		q->result.hosts = NULL;
		q->result.n_hosts = 0;
	}
	char shown[128];

	/* A name that failed the syntax check is shown escaped. */
	log_escape(shown, sizeof shown, q->name, strlen(q->name));
	log_debug("dns: %s %s status=%d hosts=%zu reason=\"%s\"",
		  q->kind == KIND_MX ? "mx" : "host", shown, (int)status,
		  q->result.n_hosts, q->reason);
	q->cb(q->arg, &q->result);
	query_free(q);
}

/* Deliver from the loop, never from inside dns_lookup_*(). */
static void
query_answer_soon(struct dns_query *q)
{
	struct timeval now = {0, 0};

	q->answer_ready = true;
	event_del(q->timer);
	event_add(q->timer, &now);
}

static void
query_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	if (q->answer_ready) {
		query_finish(q, q->result.status);
		return;
	}
	snprintf(q->reason, sizeof q->reason, "DNS timeout looking up %s",
		 q->name);
	query_finish(q, DNS_TEMPFAIL);
}

static enum sub_status classify_answer(struct dns_query *q, int err,
				       const struct ub_result *res, int type,
				       const char *name);

/*
 * What an answer says; its reason goes to q->reason, and the first
 * temporary failure is kept apart, so that a later permanent answer for
 * another name cannot hide why a lookup failed temporarily.
 */
static enum sub_status
classify(struct dns_query *q, int err, const struct ub_result *res, int type,
	 const char *name)
{
	enum sub_status st = classify_answer(q, err, res, type, name);

	if (st == SUB_TEMPFAIL && q->tempfail[0] == '\0')
		memcpy(q->tempfail, q->reason, sizeof q->tempfail);
	return st;
}

static enum sub_status
classify_answer(struct dns_query *q, int err, const struct ub_result *res,
		int type, const char *name)
{
	if (err != 0) {
		snprintf(q->reason, sizeof q->reason, "DNS error for %s %s: %s",
			 kind_name(type), name, ub_strerror(err));
		return SUB_TEMPFAIL;
	}
	if (res->rcode == RCODE_NXDOMAIN || res->nxdomain) {
		snprintf(q->reason, sizeof q->reason, "%s: no such domain",
			 name);
		return SUB_NXDOMAIN;
	}
	if (res->rcode != 0) {
		snprintf(q->reason, sizeof q->reason, "DNS %s for %s %s",
			 res->rcode == RCODE_SERVFAIL ? "server failure"
						      : "error",
			 kind_name(type), name);
		return SUB_TEMPFAIL;
	}
	if (res->bogus) {
		snprintf(q->reason, sizeof q->reason,
			 "DNSSEC validation failed for %s %s", kind_name(type),
			 name);
		return SUB_TEMPFAIL;
	}
	return res->havedata ? SUB_DATA : SUB_NODATA;
}

static int start_sub(struct dns_query *q, struct dns_sub *s, int type,
		     size_t host, const char *name);
static void addresses_done(struct dns_query *q);

/* The A or AAAA records into the host's bounded array. */
static void
take_addrs(struct dns_query *q, size_t h, const struct ub_result *res, int type)
{
	struct dns_host *host = &q->hosts[h];

	for (size_t i = 0; res->data[i] != NULL; i++) {
		struct dns_addr *a;

		if (host->n_addrs == DNS_MAX_ADDRS)
			return;
		a = &q->addrs[h][host->n_addrs];
		memset(a, 0, sizeof *a);
		if (type == RR_A && res->len[i] == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, res->data[i], 4);
			a->salen = sizeof *sin;
		} else if (type == RR_AAAA && res->len[i] == 16) {
			struct sockaddr_in6 *sin6 =
				(struct sockaddr_in6 *)&a->sa;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, res->data[i], 16);
			a->salen = sizeof *sin6;
		} else {
			continue; /* malformed record: skip it */
		}
		host->n_addrs++;
	}
}

/*
 * The A records fill a host first, AAAA after them, whatever order the
 * answers come in: the list is the same on every run.
 */
static void
order_addrs(struct dns_query *q, size_t h)
{
	struct dns_addr tmp[DNS_MAX_ADDRS];
	size_t n = 0, total = q->hosts[h].n_addrs;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < total; i++) {
			bool v4 = q->addrs[h][i].sa.ss_family == AF_INET;

			if (v4 == (pass == 0))
				tmp[n++] = q->addrs[h][i];
		}
	}
	memcpy(q->addrs[h], tmp, n * sizeof tmp[0]);
}

static void
addr_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->query;

	s->pending = false;
	q->n_pending--;
	s->status = classify(q, err, res, s->type, q->hosts[s->host].name);
	if (s->status == SUB_DATA)
		take_addrs(q, s->host, res, s->type);
	if (res != NULL)
		ub_resolve_free(res);
	if (q->n_pending == 0)
		addresses_done(q);
}

/* A host's verdict from its A and AAAA answers. */
static enum sub_status
host_status(const struct dns_query *q, size_t h)
{
	enum sub_status a = q->a[h].status, aaaa = q->aaaa[h].status;

	if (q->hosts[h].n_addrs > 0)
		return SUB_DATA;
	if (a == SUB_TEMPFAIL || aaaa == SUB_TEMPFAIL)
		return SUB_TEMPFAIL;
	if (a == SUB_NXDOMAIN && aaaa == SUB_NXDOMAIN)
		return SUB_NXDOMAIN;
	return SUB_NODATA;
}

/*
 * Every address lookup has answered: keep the hosts with an address, in
 * order.  None left: a temporary failure if any lookup failed so, else
 * permanent (RFC 5321 5.1: no usable exchanger is an error).
 */
static void
addresses_done(struct dns_query *q)
{
	size_t kept = 0;
	bool tempfail = false, all_nx = true;

	for (size_t h = 0; h < q->n_hosts; h++) {
		enum sub_status st = host_status(q, h);

		if (st == SUB_TEMPFAIL)
			tempfail = true;
		if (st != SUB_NXDOMAIN)
			all_nx = false;
		if (st != SUB_DATA)
			continue;
		order_addrs(q, h);
		if (kept != h) {
			q->hosts[kept] = q->hosts[h];
			memcpy(q->addrs[kept], q->addrs[h],
			       q->hosts[h].n_addrs * sizeof q->addrs[h][0]);
		}
		q->hosts[kept].addrs = q->addrs[kept];
		kept++;
	}
	q->n_hosts = kept;
	if (kept > 0) {
		snprintf(q->reason, sizeof q->reason, "%zu host%s", kept,
			 kept == 1 ? "" : "s");
		q->result.status = DNS_OK;
	} else if (tempfail) {
		memcpy(q->reason, q->tempfail, sizeof q->reason);
		q->result.status = DNS_TEMPFAIL;
	} else if (q->kind == KIND_HOST && all_nx) {
		snprintf(q->reason, sizeof q->reason, "%s: no such host",
			 q->name);
		q->result.status = DNS_NXDOMAIN;
	} else {
		snprintf(q->reason, sizeof q->reason, "%s: %s", q->name,
			 q->kind == KIND_HOST ? "no address record"
					      : "no address for any mail "
						"exchanger");
		q->result.status = DNS_NODATA;
	}
	query_finish(q, q->result.status);
}

/* A and AAAA of every host, all at once. */
static void
start_addresses(struct dns_query *q)
{
	for (size_t h = 0; h < q->n_hosts; h++) {
		if (start_sub(q, &q->a[h], RR_A, h, q->hosts[h].name) == -1 ||
		    start_sub(q, &q->aaaa[h], RR_AAAA, h, q->hosts[h].name) ==
			    -1) {
			/* The ones started may still answer; cancel them. */
			query_finish(q, DNS_TEMPFAIL);
			return;
		}
	}
}

static int
host_add(struct dns_query *q, const char *name, unsigned pref)
{
	struct dns_host *h;
	size_t len = strlen(name);

	if (q->n_hosts == DNS_MAX_HOSTS || len >= sizeof h->name)
		return -1;
	h = &q->hosts[q->n_hosts++];
	memcpy(h->name, name, len + 1);
	h->preference = pref;
	h->addrs = NULL;
	h->n_addrs = 0;
	return 0;
}

static int
by_preference(const void *a, const void *b)
{
	const struct dns_host *x = a, *y = b;

	return x->preference < y->preference   ? -1
	       : x->preference > y->preference ? 1
					       : 0;
}

/* RFC 5321 5.1: equal preferences in random order (spreads the load). */
static void
shuffle_equal(struct dns_query *q)
{
	size_t start = 0;

	while (start < q->n_hosts) {
		size_t end = start + 1;

		while (end < q->n_hosts &&
		       q->hosts[end].preference == q->hosts[start].preference)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + arc4random_uniform(
						   (uint32_t)(i - start + 1));
			struct dns_host t = q->hosts[i];

			q->hosts[i] = q->hosts[j];
			q->hosts[j] = t;
		}
		start = end;
	}
}

/*
 * One exchanger into the bounded candidate list: a name seen before keeps
 * its lowest preference; a full list keeps the most preferred.
 */
static void
candidate_add(struct dns_host *all, size_t *n, size_t max, const char *name,
	      unsigned pref)
{
	size_t worst = 0;

	for (size_t j = 0; j < *n; j++) {
		if (strcmp(all[j].name, name) == 0) {
			if (pref < all[j].preference)
				all[j].preference = pref;
			return;
		}
		if (all[j].preference > all[worst].preference)
			worst = j;
	}
	if (*n < max) {
		worst = (*n)++;
	} else if (pref >= all[worst].preference) {
		return;
	}
	memcpy(all[worst].name, name, strlen(name) + 1);
	all[worst].preference = pref;
}

/*
 * The MX records: exchangers by preference, the duplicates and the
 * malformed ones skipped.  A null MX (RFC 7505: target ".") alone means
 * no mail; beside real exchangers it is a misconfiguration we ignore.
 * Beyond DNS_MAX_HOSTS the least preferred are dropped.
 */
static enum dns_status
take_mx(struct dns_query *q, const struct ub_result *res)
{
	struct dns_host all[DNS_MAX_HOSTS];
	size_t n = 0;
	bool null_mx = false;

	for (size_t i = 0; res->data[i] != NULL; i++) {
		char name[256];
		unsigned pref;

		if (decode_mx((const unsigned char *)res->data[i],
			      (size_t)res->len[i], &pref, name,
			      sizeof name) == -1) {
			log_warn("dns: %s: malformed MX record skipped",
				 q->name);
			continue;
		}
		if (name[0] == '\0')
			null_mx = true;
		else
			candidate_add(all, &n, DNS_MAX_HOSTS, name, pref);
	}
	if (n == 0 && null_mx) {
		snprintf(q->reason, sizeof q->reason,
			 "%s accepts no mail (null MX)", q->name);
		return DNS_NULLMX;
	}
	if (n == 0) {
		snprintf(q->reason, sizeof q->reason, "%s: no valid MX record",
			 q->name);
		return DNS_NODATA;
	}
	qsort(all, n, sizeof all[0], by_preference);
	for (size_t i = 0; i < n; i++)
		host_add(q, all[i].name, all[i].preference);
	shuffle_equal(q);
	return DNS_OK;
}

static void
mx_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->query;
	enum dns_status st = DNS_OK;

	s->pending = false;
	q->n_pending--;
	s->status = classify(q, err, res, RR_MX, q->name);
	switch (s->status) {
	case SUB_DATA:
		st = take_mx(q, res);
		break;
	case SUB_NODATA:
		/* RFC 5321 5.1: the implicit MX, the domain itself. */
		host_add(q, q->name, 0);
		break;
	case SUB_NXDOMAIN:
		st = DNS_NXDOMAIN;
		break;
	case SUB_TEMPFAIL:
	case SUB_PENDING:
		st = DNS_TEMPFAIL;
		break;
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (st != DNS_OK) {
		query_finish(q, st);
		return;
	}
	start_addresses(q);
}

static int
start_sub(struct dns_query *q, struct dns_sub *s, int type, size_t host,
	  const char *name)
{
	int r;

	s->query = q;
	s->type = type;
	s->host = host;
	s->status = SUB_PENDING;
	if (q->dns->broken) {
		snprintf(q->reason, sizeof q->reason,
			 "cannot look up %s %s: the resolver is not running",
			 kind_name(type), name);
		return -1;
	}
	r = ub_resolve_async(q->dns->ub, name, type, CLASS_IN, s,
			     type == RR_MX ? mx_answer : addr_answer,
			     &s->async_id);
	if (r != 0) {
		snprintf(q->reason, sizeof q->reason,
			 "cannot start DNS lookup of %s %s: %s",
			 kind_name(type), name, ub_strerror(r));
		return -1;
	}
	s->pending = true;
	q->n_pending++;
	return 0;
}

/* Queries. */

static struct dns_query *
query_new(struct dns *dns, enum dns_kind kind, const char *name,
	  dns_callback *cb, void *arg)
{
	struct dns_query *q = calloc(1, sizeof *q);
	struct timeval tv;

	if (q == NULL)
		return NULL;
	q->timer = evtimer_new(dns->base, query_timer, q);
	if (q->timer == NULL) {
		free(q);
		return NULL;
	}
	q->dns = dns;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->name, sizeof q->name, "%s", name);
	q->next = dns->queries;
	if (dns->queries != NULL)
		dns->queries->prev = q;
	dns->queries = q;
	tv.tv_sec = dns->timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(dns->timeout_ms % 1000) * 1000;
	event_add(q->timer, &tv);
	return q;
}

static void
cancel_sub(struct dns_query *q, struct dns_sub *s)
{
	if (!s->pending)
		return;
	/* UB_NOID: the answer is already on its way; it will be dropped. */
	(void)ub_cancel(q->dns->ub, s->async_id);
	s->pending = false;
	q->n_pending--;
}

static void
query_free(struct dns_query *q)
{
	struct dns *dns = q->dns;

	cancel_sub(q, &q->mx);
	for (size_t h = 0; h < DNS_MAX_HOSTS; h++) {
		cancel_sub(q, &q->a[h]);
		cancel_sub(q, &q->aaaa[h]);
	}
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		dns->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	event_free(q->timer);
	free(q);
}

/* A literal: one host, one address, answered from the loop. */
static void
answer_literal(struct dns_query *q, const struct dns_addr *a)
{
	host_add(q, q->name, 0);
	q->addrs[0][0] = *a;
	q->hosts[0].addrs = q->addrs[0];
	q->hosts[0].n_addrs = 1;
	snprintf(q->reason, sizeof q->reason, "address literal");
	q->result.status = DNS_OK;
	query_answer_soon(q);
}

static void
answer_bad_name(struct dns_query *q)
{
	char shown[128];

	/* The name comes from a peer: escaped, and cut short. */
	log_escape(shown, sizeof shown, q->name, strlen(q->name));
	snprintf(q->reason, sizeof q->reason,
		 "\"%s\" is not a valid domain name", shown);
	q->result.status = DNS_NXDOMAIN;
	query_answer_soon(q);
}

static void
answer_start_failure(struct dns_query *q)
{
	/* Cancel what started; the reason says what did not. */
	cancel_sub(q, &q->mx);
	for (size_t h = 0; h < DNS_MAX_HOSTS; h++) {
		cancel_sub(q, &q->a[h]);
		cancel_sub(q, &q->aaaa[h]);
	}
	q->result.status = DNS_TEMPFAIL;
	query_answer_soon(q);
}

struct dns_query *
dns_lookup_mx(struct dns *dns, const char *domain, dns_callback *cb, void *arg)
{
	struct dns_query *q = query_new(dns, KIND_MX, domain, cb, arg);
	struct dns_addr lit;
	char name[256];

	if (q == NULL)
		return NULL;
	if (parse_literal(domain, false, &lit) == 0) {
		answer_literal(q, &lit);
	} else if (normalize_name(domain, name, sizeof name) == -1) {
		answer_bad_name(q);
	} else {
		snprintf(q->name, sizeof q->name, "%s", name);
		if (start_sub(q, &q->mx, RR_MX, 0, q->name) == -1)
			answer_start_failure(q);
	}
	return q;
}

struct dns_query *
dns_lookup_host(struct dns *dns, const char *host, dns_callback *cb, void *arg)
{
	struct dns_query *q = query_new(dns, KIND_HOST, host, cb, arg);
	struct dns_addr lit;
	char name[256];

	if (q == NULL)
		return NULL;
	if (parse_literal(host, true, &lit) == 0) {
		answer_literal(q, &lit);
	} else if (normalize_name(host, name, sizeof name) == -1) {
		answer_bad_name(q);
	} else {
		snprintf(q->name, sizeof q->name, "%s", name);
		host_add(q, q->name, 0);
		if (start_sub(q, &q->a[0], RR_A, 0, q->name) == -1 ||
		    start_sub(q, &q->aaaa[0], RR_AAAA, 0, q->name) == -1)
			answer_start_failure(q);
	}
	return q;
}

void
dns_cancel(struct dns_query *query)
{
	if (query != NULL)
		query_free(query);
}
