/*
 * session: one outbound SMTP connection (RFC 5321 client side) as an
 * explicit state machine: entering a state sends its command, the reply
 * handler chooses the next state.  Internal to smtpc/ (the engine in
 * smtpc.c and `connector test` drive it).
 *
 *   smtpc_sess_new()    connect to one next hop address; the session then
 *                       reads the greeting, says EHLO (HELO on a 5xx),
 *                       STARTTLS and AUTH per the policy, and reports
 *                       SMTPC_SESS_READY or SMTPC_SESS_FAILED.
 *   smtpc_sess_start()  run one transaction on a ready session (RSET
 *                       first when the connection carried mail before);
 *                       SMTPC_SESS_TXN_DONE when every recipient has its
 *                       result, or SMTPC_SESS_FAILED when a reused
 *                       connection broke before MAIL (try a new one).
 *   smtpc_sess_close()  the owner lets go: QUIT if the connection is
 *                       alive, then the session frees itself; no more
 *                       callbacks.
 *   smtpc_sess_free()   close at once (shutdown).
 *   smtpc_sess_*() accessors: TLS facts, the EHLO reply, reusability.
 *
 * The callback may call smtpc_sess_close() or smtpc_sess_start() on the
 * session it is told about.
 */
#ifndef BH_SMTPC_SESSION_H
#define BH_SMTPC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "queue/envelope.h"
#include "smtp/reply.h"
#include "smtpc/smtpc.h"

struct event_base;
struct smtpc_tls;
struct smtpc_sess;

#define SMTPC_REPLY_MAX 512

/* One next hop address. */
struct smtpc_hop {
	char name[256]; /* host name (TLS name check, logs), or the address */
	char addr[80];	/* "192.0.2.1:25", "[2001:db8::1]:25" */
	char ip[64];	/* "192.0.2.1", "2001:db8::1" */
	unsigned port;
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* What the connector asks of the connection (owned by the caller, kept
 * valid for the session's life). */
struct smtpc_policy {
	const char *helo; /* our name for EHLO */
	enum conf_connector_tls tls;
	char **tls_match;
	size_t n_tls_match;
	const char *tls_ca_file; /* NULL: system store */
	bool client_cert;
	const char *auth_username; /* NULL: no AUTH */
	const char *auth_password_file;
};

/* One transaction: the owner provides the result arrays. */
struct smtpc_txn {
	const struct envelope *env;
	const char *content_path;
	const size_t *rcpts;
	size_t n_rcpts;
	struct smtpc_rcpt_result *results; /* n_rcpts */
	char (*replies)[SMTPC_REPLY_MAX];  /* n_rcpts: text of results */
	char *final; /* bool per recipient: result is final (private) */
	bool peer_dsn;
};

enum smtpc_sess_event {
	SMTPC_SESS_READY,    /* idle, ready for a transaction */
	SMTPC_SESS_FAILED,   /* no mail can go through this connection */
	SMTPC_SESS_TXN_DONE, /* every recipient has its result */
};

typedef void smtpc_sess_cb(struct smtpc_sess *s, enum smtpc_sess_event ev,
			   void *arg);

/* The engine's list of every live session (also lingering ones). */
struct smtpc_sess_list {
	struct smtpc_sess *head;
	size_t n;
};

/*
 * skip_tls: "may" toward a host whose handshake failed recently.  probe:
 * `connector test`: keep the certificate chain for display.  NULL with
 * err when the connection cannot even be started.
 */
struct smtpc_sess *
smtpc_sess_new(struct event_base *base, struct smtpc_sess_list *list,
	       struct smtpc_tls *tls, const struct smtpc_hop *hop,
	       const struct smtpc_policy *policy, bool skip_tls, bool probe,
	       smtpc_sess_cb *cb, void *arg, char *err, size_t errlen);
void smtpc_sess_set_cb(struct smtpc_sess *s, smtpc_sess_cb *cb, void *arg);
void smtpc_sess_start(struct smtpc_sess *s, struct smtpc_txn *txn);
void smtpc_sess_close(struct smtpc_sess *s);
void smtpc_sess_free(struct smtpc_sess *s);

/* Does a reason already start with a reply code ("421 ") or a status
 * code ("4.4.1")?  Then no status code is put in front of it. */
bool smtpc_reason_has_code(const char *text);

/*
 * Fill one recipient's result; buf (SMTPC_REPLY_MAX) holds its text.  A
 * local reason (code 0) gets its status code in front; a reason that is a
 * peer's reply ("421 4.3.2 busy") keeps that reply's codes.
 */
void smtpc_result_set(struct smtpc_rcpt_result *r, char *buf,
		      enum smtpc_status st, int code, const char *enhanced,
		      const char *text);

/* After SMTPC_SESS_FAILED: why, and whether a clear-text retry of the
 * same host is due ("may" and a failed handshake). */
const char *smtpc_sess_reason(const struct smtpc_sess *s);
bool smtpc_sess_retry_clear(const struct smtpc_sess *s);
/* Can it carry another transaction (no 421, no error, below the limit)? */
bool smtpc_sess_reusable(const struct smtpc_sess *s);

const struct smtpc_hop *smtpc_sess_hop(const struct smtpc_sess *s);
const char *smtpc_sess_tls_version(const struct smtpc_sess *s);
const char *smtpc_sess_tls_cipher(const struct smtpc_sess *s);
const char *smtpc_sess_tls_peer(const struct smtpc_sess *s); /* or NULL */
bool smtpc_sess_tls_verified(const struct smtpc_sess *s);
const char *smtpc_sess_tls_verify_reason(const struct smtpc_sess *s);
const char *smtpc_sess_client_cert(const struct smtpc_sess *s);
/* The last EHLO (or HELO) reply, for `connector test`; NULL before. */
const struct smtp_reply_reader *smtpc_sess_ehlo(const struct smtpc_sess *s);
/* Probe sessions after STARTTLS: the EHLO reply before it; else NULL. */
const struct smtp_reply_reader *
smtpc_sess_ehlo_clear(const struct smtpc_sess *s);
/* The peer's certificate chain, one "depth: subject (issuer)" per line
 * (probe sessions only); "" without TLS. */
const char *smtpc_sess_chain(const struct smtpc_sess *s);

#endif
