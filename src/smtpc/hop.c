/*
 * hop: next hop addresses (see hop.h).  Addresses are written the usual
 * way for logs: "192.0.2.1:25", "[2001:db8::1]:25".
 */
#include "smtpc/hop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

void
smtpc_hop_set(struct smtpc_hop *hop, const char *name,
	      const struct sockaddr *sa, socklen_t salen, unsigned port)
{
	memset(hop, 0, sizeof *hop);
	memcpy(&hop->sa, sa, salen);
	hop->salen = salen;
	hop->port = port;
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&hop->sa;
		s6->sin6_port = htons((uint16_t)port);
		inet_ntop(AF_INET6, &s6->sin6_addr, hop->ip, sizeof hop->ip);
		snprintf(hop->addr, sizeof hop->addr, "[%s]:%u", hop->ip, port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&hop->sa;
		s4->sin_port = htons((uint16_t)port);
		inet_ntop(AF_INET, &s4->sin_addr, hop->ip, sizeof hop->ip);
		snprintf(hop->addr, sizeof hop->addr, "%s:%u", hop->ip, port);
	}
	snprintf(hop->name, sizeof hop->name, "%s",
		 name != NULL && *name != '\0' ? name : hop->ip);
}

bool
smtpc_hop_numeric(struct smtpc_hop *hop, const char *host, unsigned port)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	const char *h = host;

	/* An RFC 5321 address literal names its family: "IPv6:..." */
	if (strncasecmp(h, "IPv6:", 5) == 0)
		h += 5;
	if (inet_pton(AF_INET, h, &s4.sin_addr) == 1) {
		smtpc_hop_set(hop, h, (struct sockaddr *)&s4, sizeof s4, port);
		return true;
	}
	if (inet_pton(AF_INET6, h, &s6.sin6_addr) == 1) {
		smtpc_hop_set(hop, h, (struct sockaddr *)&s6, sizeof s6, port);
		return true;
	}
	return false;
}
