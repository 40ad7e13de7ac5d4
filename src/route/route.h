/*
 * route: which connector carries the mail for a recipient (DESIGN.md
 * "Connectors").
 *
 *   route_lookup()     the connector for a recipient domain: the most
 *                      specific address space wins ("domain" over
 *                      "*.domain", a longer "*.domain" over a shorter one,
 *                      over "*"), then the lowest cost, then the connector
 *                      defined first.  Domains compare case-insensitively;
 *                      an address literal "[192.0.2.1]" matches only "*".
 *                      NULL: no connector matches, the mail goes by MX.
 *   route_is_source()  may this node ([server] name) send through the
 *                      connector itself?  (empty source_bridgeheads: every
 *                      node may)  If not, the message is handed to one of
 *                      the listed source bridgeheads over SMTP.  NULL
 *                      connector (MX routing): true, every node does it.
 *   route_key()        a string naming the route of a recipient: messages
 *                      whose recipients have different keys are split per
 *                      route.  "connector:NAME" or "mx:DOMAIN" (the
 *                      domain lower-cased, without a trailing dot, so
 *                      spellings of one domain share a key).
 */
#ifndef BH_ROUTE_ROUTE_H
#define BH_ROUTE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

const struct conf_connector *route_lookup(const struct conf *conf,
					  const char *domain);
bool route_is_source(const struct conf *conf,
		     const struct conf_connector *connector);
/* Writes the key into out; returns its length or -1 if it does not fit. */
int route_key(const struct conf *conf, const char *domain, char *out,
	      size_t outlen);

#endif
