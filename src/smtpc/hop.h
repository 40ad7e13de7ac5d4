/*
 * hop: next hop addresses for sessions, shared by the engine and
 * `connector test`.
 *
 *   smtpc_hop_set()      fill a hop from a name, an address and a port.
 *   smtpc_hop_numeric()  a host given as an IP address (literal or plain
 *                        "192.0.2.1"): one hop, no DNS needed.
 */
#ifndef BH_SMTPC_HOP_H
#define BH_SMTPC_HOP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "smtpc/session.h"

void smtpc_hop_set(struct smtpc_hop *hop, const char *name,
		   const struct sockaddr *sa, socklen_t salen, unsigned port);
bool smtpc_hop_numeric(struct smtpc_hop *hop, const char *host, unsigned port);

#endif
