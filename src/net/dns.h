/*
 * dns: asynchronous DNS on the event loop through libunbound: the mail
 * exchangers of a domain (RFC 5321 5.1: MX by preference, equal
 * preferences in random order, the implicit MX when there is none, a null
 * MX "." (RFC 7505) as a permanent failure) and the addresses (A and
 * AAAA) of a host.
 *
 *   dns_new()          a resolver: the system's (resolv.conf, hosts file),
 *                      or an unbound configuration file ([dns]
 *                      unbound_config) that may hold local-zone/local-data
 *                      for tests and closed networks.
 *   dns_free()
 *   dns_lookup_mx()    the exchangers of a domain, each with its addresses,
 *                      in the order to try; callback on the loop.
 *   dns_lookup_host()  the addresses of one host (smart host by name).
 *   dns_set_timeout()  the overall bound of one lookup ([dns] timeout).
 *
 * A lookup can be cancelled by its owner (dns_cancel) before its callback
 * runs; the callback never runs after that.  Once the callback has run,
 * the handle is gone: it must not be cancelled.  Callbacks always run
 * from the loop, never from inside dns_lookup_*().  Resolution runs in a
 * libunbound thread started by the first lookup, so fork (daemonize)
 * before the first lookup, not after.
 */
#ifndef BH_NET_DNS_H
#define BH_NET_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN, /* permanent: no such domain / host */
	DNS_NODATA,   /* permanent: the name exists, no usable record */
	DNS_NULLMX,   /* permanent: the domain accepts no mail (RFC 7505) */
	DNS_TEMPFAIL, /* SERVFAIL, timeout: try again later */
};

struct dns_addr {
	struct sockaddr_storage sa; /* port 0 */
	socklen_t salen;
};

struct dns_host {
	char name[256];
	unsigned preference; /* 0 for dns_lookup_host */
	struct dns_addr *addrs;
	size_t n_addrs;
};

struct dns_result {
	enum dns_status status;
	const char *reason;	/* for logs and deferral texts */
	struct dns_host *hosts; /* in the order to try */
	size_t n_hosts;
};

/* The result is only valid during the callback. */
typedef void dns_callback(void *arg, const struct dns_result *result);

/* unbound_config may be NULL (system resolver).  NULL with err on failure. */
struct dns *dns_new(struct event_base *base, const char *unbound_config,
		    char *err, size_t errlen);
void dns_free(struct dns *dns);
/* Milliseconds; past it a lookup answers DNS_TEMPFAIL.  0: the default. */
void dns_set_timeout(struct dns *dns, unsigned msec);
/* NULL only when out of memory: then no callback will run. */
struct dns_query *dns_lookup_mx(struct dns *dns, const char *domain,
				dns_callback *cb, void *arg);
struct dns_query *dns_lookup_host(struct dns *dns, const char *host,
				  dns_callback *cb, void *arg);
void dns_cancel(struct dns_query *query);

#endif
