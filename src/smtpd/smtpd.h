/*
 * smtpd: the inbound SMTP server: listeners, connection limits, the set of
 * sessions, the TLS context new sessions use, and an orderly shutdown.
 * One process, one libevent loop, non-blocking; the protocol itself is
 * smtpd/session.
 *
 *   smtpd_new()       bind and listen on every [listener] of the
 *                     configuration (backlog 1024, SO_REUSEADDR,
 *                     IPV6_V6ONLY for IPv6) and start accepting.
 *   smtpd_set_tls()   install the server TLS context for new connections
 *                     (NULL: no certificate, STARTTLS is not offered);
 *                     sessions in progress keep the one they started with.
 *   smtpd_tls()       the current context (or NULL).
 *   smtpd_sessions()  sessions open now.
 *   smtpd_shutdown()  stop accepting; idle sessions get 421 4.3.2 and are
 *                     closed, a session waiting for its commit gets its
 *                     250 first; done() runs on the loop once no session
 *                     is left.
 *   smtpd_free()      close the listeners and every session at once.
 *   smtpd_set_queued()  a function told of every message committed to the
 *                     queue (the delivery scheduler, or the sink), called
 *                     on the loop right after the commit succeeded.
 *
 * Limits per listener: max_sessions in total and max_sessions_per_ip from
 * one client address; a connection over either gets "421 4.7.0" and is
 * closed.  When accept() runs out of file descriptors the listener pauses
 * for a second instead of spinning.
 */
#ifndef BH_SMTPD_SMTPD_H
#define BH_SMTPD_SMTPD_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "smtpd/session.h"

struct event_base;
struct spool;
struct smtpd;

/*
 * conf and spool must outlive the server.  tls may be NULL; the server
 * takes its own reference.  On failure returns NULL with one sentence in
 * err naming the listener and its address ("listener smtp: cannot bind
 * 0.0.0.0:25: Address already in use").
 */
struct smtpd *smtpd_new(struct event_base *base, const struct conf *conf,
			struct spool *spool, SSL_CTX *tls, char *err,
			size_t errlen);
void smtpd_set_tls(struct smtpd *server, SSL_CTX *tls);
SSL_CTX *smtpd_tls(const struct smtpd *server);
size_t smtpd_sessions(const struct smtpd *server);
void smtpd_shutdown(struct smtpd *server, void (*done)(void *arg), void *arg);
void smtpd_free(struct smtpd *server);
void smtpd_set_queued(struct smtpd *server, smtpd_queued_cb *cb, void *arg);

#endif
