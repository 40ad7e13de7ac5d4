/*
 * smtpc: outbound delivery.  An SMTP client (RFC 5321) on the event loop,
 * with connection pools per next hop, that carries one job at a time per
 * connection: some recipients of one queued message, along one route.
 *
 *   smtpc_new()       the delivery engine (event loop, configuration, DNS).
 *   smtpc_set_conf()  a reloaded configuration: new jobs use it; pooled
 *                     connections of connectors that changed are closed
 *                     when idle.
 *   smtpc_deliver()   run a job; the callback reports a result for every
 *                     recipient of the job, exactly once, on the loop.
 *   smtpc_free()      close everything (jobs in flight are reported as
 *                     temporary failures "shutting down").
 *
 * Next hops: the connector's smart hosts in order (name → A/AAAA through
 * dns; "[ip]:port" literal), or the recipient domain's MX hosts
 * (connector with dns = yes, or no connector at all), or — when this node
 * is not among the connector's source_bridgeheads — the listed source
 * bridgeheads.  Connection failure, a 4xx/5xx greeting, or a TLS failure
 * under encrypt/verify moves on to the next host; all failing → every
 * recipient TEMPFAIL with the last reason.
 *
 * Outbound TLS policy (DESIGN.md): none: never STARTTLS; may: STARTTLS
 * when offered, no certificate check, a failed handshake is retried in
 * clear text on a new connection; encrypt: STARTTLS required (TLS 1.2+),
 * never clear text; verify: as encrypt, plus the chain verifies against
 * the CA bundle (system or tls_ca_file) and the certificate names the
 * smart host (or a tls_match name; never a bare IP).  The installed
 * certificate is presented as client certificate unless
 * tls_client_certificate = no.
 */
#ifndef BH_SMTPC_SMTPC_H
#define BH_SMTPC_SMTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "queue/envelope.h"

struct event_base;
struct dns;
struct smtpc;

struct smtpc_job {
	const struct envelope *env; /* valid until the callback returns */
	const char *content_path; /* the stored message, queue/active/ID.msg */
	const size_t *rcpts;	  /* indexes into env->rcpts */
	size_t n_rcpts;
	const char *domain;    /* the recipients' domain (all the same route) */
	const char *connector; /* connector name, or NULL: MX of domain */
};

enum smtpc_status {
	SMTPC_DELIVERED, /* the next hop took responsibility (250) */
	SMTPC_TEMPFAIL,	 /* retry later */
	SMTPC_PERMFAIL,	 /* bounce */
};

struct smtpc_rcpt_result {
	enum smtpc_status status;
	int code;	   /* SMTP reply code, or 0 for a local reason */
	char enhanced[16]; /* "5.1.1" or "" */
	const char *reply; /* remote reply text (one line, escaped) or local
			      reason */
};

struct smtpc_result {
	const struct smtpc_rcpt_result *rcpts; /* parallel to job->rcpts */
	const char *host;	 /* last next hop talked to, or NULL */
	const char *addr;	 /* "192.0.2.1:25", or NULL */
	const char *tls_version; /* NULL: no TLS */
	const char *tls_cipher;
	const char *tls_peer; /* peer certificate subject, or NULL */
	bool tls_verified;
	const char *client_cert; /* subject + SANs we presented, or NULL */
	bool peer_dsn;		 /* the peer offered DSN (NOTIFY passed on) */
	/* Under tls = may, why the mail went in clear text although TLS was
	 * tried or is known to fail with this host ("TLS handshake with
	 * 192.0.2.1:25 failed (...); sent in clear text"), or NULL. */
	const char *tls_note;
};

typedef void smtpc_done_cb(void *arg, const struct smtpc_job *job,
			   const struct smtpc_result *result);

/* state_dir: where the installed certificate is (client certificate). */
struct smtpc *smtpc_new(struct event_base *base, const struct conf *conf,
			struct dns *dns, char *err, size_t errlen);
void smtpc_set_conf(struct smtpc *smtpc, const struct conf *conf);
void smtpc_deliver(struct smtpc *smtpc, const struct smtpc_job *job,
		   smtpc_done_cb *cb, void *arg);
size_t smtpc_sessions(const struct smtpc *smtpc); /* connections open */
void smtpc_free(struct smtpc *smtpc);

#endif
