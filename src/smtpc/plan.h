/*
 * plan: where a job's mail goes, and the walk over its next hops; shared
 * by the delivery engine and `connector test`.
 *
 *   smtpc_plan_make()   from the configuration: the connector's smart hosts
 *                       (host's own port, else the connector's, default
 *                       25), or its source bridgeheads (this node is not a
 *                       source: port 25, tls may), or MX routing (dns = yes,
 *                       or no connector); the TLS policy and AUTH settings;
 *                       the destination key (one concurrency limit and one
 *                       connection pool each).  Strings are copied: the
 *                       plan outlives a reload.
 *   smtpc_plan_clear()
 *   smtpc_walk_new(), smtpc_walk_next(), smtpc_walk_free()
 *                       next hop addresses in the order to try, names
 *                       resolved through dns (all addresses of each);
 *                       SMTPC_WALK_PENDING means a lookup runs and the
 *                       resume callback comes on the loop.
 */
#ifndef BH_SMTPC_PLAN_H
#define BH_SMTPC_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "smtpc/session.h"
#include "smtpc/smtpc.h"

struct dns;

struct smtpc_plan_name {
	char *host;
	unsigned port;
};

struct smtpc_plan {
	char key[320];	    /* "connector:NAME", "via:NAME", "mx:DOMAIN" */
	char connector[80]; /* "" for MX routing without connector */
	bool mx;
	char domain[256];
	struct smtpc_plan_name *names;
	size_t n_names;
	unsigned max_conns;
	struct smtpc_policy policy; /* its strings owned by the plan */
};

/* -1 and a sentence in err (unknown connector, out of memory). */
int smtpc_plan_make(struct smtpc_plan *plan, const struct conf *conf,
		    const char *connector, const char *domain, char *err,
		    size_t errlen);
void smtpc_plan_clear(struct smtpc_plan *plan);

enum smtpc_walk_status {
	SMTPC_WALK_HOP,	    /* *hop is the next one to try */
	SMTPC_WALK_PENDING, /* wait for the resume callback */
	SMTPC_WALK_END,	    /* no more: smtpc_walk_failure() says why */
};

struct smtpc_walk;
typedef void smtpc_walk_resume(void *arg);

struct smtpc_walk *smtpc_walk_new(struct dns *dns,
				  const struct smtpc_plan *plan,
				  smtpc_walk_resume *resume, void *arg);
enum smtpc_walk_status smtpc_walk_next(struct smtpc_walk *w,
				       struct smtpc_hop *hop);
/* The last failure, set by the walk (DNS) or by the caller (a host). */
void smtpc_walk_set_reason(struct smtpc_walk *w, const char *reason);
/* At the end: TEMPFAIL, or PERMFAIL for a domain that takes no mail. */
enum smtpc_status smtpc_walk_failure(const struct smtpc_walk *w,
				     const char **enhanced,
				     const char **reason);
void smtpc_walk_free(struct smtpc_walk *w);

#endif
