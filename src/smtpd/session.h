/*
 * session: one inbound SMTP session: the command table, the connection and
 * transaction state machines, STARTTLS, DATA and BDAT streaming into the
 * spool, and the commit.  This header is the seam between the server
 * (smtpd.c: listeners, limits, the set of sessions) and the protocol
 * (session.c); nothing outside src/smtpd uses it.
 *
 *   smtpd_session_new()       take an accepted socket: greet (or start the
 *                             implicit TLS handshake, or refuse with a 421).
 *   smtpd_session_shutdown()  the server is stopping: 421 4.3.2 and close,
 *                             after the pending commit if there is one.
 *   smtpd_session_kill()      close now, whatever the state (server freed).
 *
 * The session reports its end with smtpd_slot_closed() (smtpd.c), exactly
 * once, and never touches the slot afterwards.  Reports happen on the loop,
 * never from inside smtpd_session_new() or smtpd_session_shutdown(), so
 * the server may walk its list while calling them; smtpd_session_kill()
 * reports before it returns.
 */
#ifndef BH_SMTPD_SESSION_H
#define BH_SMTPD_SESSION_H

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conf/conf.h"

struct event_base;
struct spool;
struct smtpd;
struct smtpd_slot;
struct smtpd_session;
struct envelope;

/* Told of every message the queue took (after its 250 was decided). */
typedef void smtpd_queued_cb(void *arg, const struct envelope *env);

/* What a session needs from the server that accepted it. */
struct smtpd_session_ctx {
	struct event_base *base;
	const struct conf *conf;
	const struct conf_listener *listener;
	struct spool *spool;
	SSL_CTX *tls;		 /* NULL: no certificate installed */
	struct smtpd_slot *slot; /* handed back to smtpd_slot_closed() */
	smtpd_queued_cb *queued; /* or NULL */
	void *queued_arg;
};

/*
 * Takes fd (closed on failure too).  refuse: NULL, or the text of a
 * "421 4.7.0" reply to send before closing (a limit was reached).
 * Returns NULL if memory ran out (the slot is not reported then).
 */
struct smtpd_session *smtpd_session_new(const struct smtpd_session_ctx *ctx,
					int fd, const struct sockaddr *sa,
					socklen_t salen, const char *refuse);
void smtpd_session_shutdown(struct smtpd_session *s);
void smtpd_session_kill(struct smtpd_session *s);

/* Implemented by smtpd.c: the session behind slot is gone. */
void smtpd_slot_closed(struct smtpd_slot *slot);

#endif
