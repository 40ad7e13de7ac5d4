/*
 * smtpd: listeners, connection limits and the set of sessions.  See
 * smtpd.h for the public functions; the protocol is in session.c.
 *
 * Each accepted connection gets a slot: the server's record of it (which
 * listener, which client address it is counted under) on a doubly linked
 * list, so that a shutdown can reach every session.  The per-address
 * counts live in a small hash table per listener; an entry disappears with
 * its last connection, so the table is bounded by the open connections.
 *
 * Accepting: a plain persistent EV_READ event on the listening socket, up
 * to ACCEPT_BATCH accept4() calls per event (fairness).  EMFILE, ENFILE,
 * ENOBUFS and ENOMEM pause the listener for a second instead of spinning
 * on a socket that stays readable; errors about the one aborted
 * connection are ignored.
 */
#include "smtpd/smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "smtpd/session.h"
#include "util/log.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_S 1
#define IP_BUCKETS 1024

struct ip_count {
	struct ip_count *next;
	int family;
	uint8_t addr[16];
	unsigned count;
};

struct smtpd_listener {
	struct smtpd *server;
	const struct conf_listener *conf;
	int fd;
	struct event *ev;
	struct event *ev_resume; /* after EMFILE and friends */
	bool paused;
	unsigned sessions;
	struct ip_count *ips[IP_BUCKETS];
};

struct smtpd_slot {
	struct smtpd_slot *prev;
	struct smtpd_slot *next;
	struct smtpd_listener *listener;
	struct ip_count *ip; /* NULL: not counted (refused) */
	struct smtpd_session *session;
};

struct smtpd {
	struct event_base *base;
	const struct conf *conf;
	struct spool *spool;
	SSL_CTX *tls;
	struct smtpd_listener *listeners;
	size_t n_listeners;
	struct smtpd_slot *slots;
	size_t n_sessions; /* counted and refused alike */
	bool stopping;
	void (*done)(void *arg);
	void *done_arg;
	struct event *ev_done;
	smtpd_queued_cb *queued;
	void *queued_arg;
};

/* ------------------------------------------------------ address counts */

static void
ip_key(const struct sockaddr *sa, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET6)
		memcpy(addr,
		       &((const struct sockaddr_in6 *)(const void *)sa)
				->sin6_addr,
		       16);
	else if (sa->sa_family == AF_INET)
		memcpy(addr,
		       &((const struct sockaddr_in *)(const void *)sa)
				->sin_addr,
		       4);
}

static size_t
ip_hash(int family, const uint8_t addr[16])
{
	uint32_t h = 2166136261u ^ (uint32_t)family;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h % IP_BUCKETS;
}

static struct ip_count *
ip_find(struct smtpd_listener *l, const struct sockaddr *sa, bool create)
{
	int family;
	uint8_t addr[16];

	ip_key(sa, &family, addr);
	size_t b = ip_hash(family, addr);
	for (struct ip_count *e = l->ips[b]; e != NULL; e = e->next)
		if (e->family == family && memcmp(e->addr, addr, 16) == 0)
			return e;
	if (!create)
		return NULL;
	struct ip_count *e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->family = family;
	memcpy(e->addr, addr, 16);
	e->next = l->ips[b];
	l->ips[b] = e;
	return e;
}

static void
ip_release(struct smtpd_listener *l, struct ip_count *ip)
{
	if (--ip->count > 0)
		return;
	size_t b = ip_hash(ip->family, ip->addr);
	for (struct ip_count **p = &l->ips[b]; *p != NULL; p = &(*p)->next) {
		if (*p == ip) {
			*p = ip->next;
			free(ip);
			return;
		}
	}
	panic("smtpd: address count not in its table");
}

/* ---------------------------------------------------------------- slots */

static void
smtpd_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *server = arg;

	(void)fd;
	(void)what;
	if (server->done != NULL) {
		void (*done)(void *) = server->done;
		server->done = NULL;
		done(server->done_arg);
	}
}

/* Once stopping and empty, tell the owner from the loop. */
static void
smtpd_check_drained(struct smtpd *server)
{
	if (server->stopping && server->n_sessions == 0 &&
	    server->done != NULL && server->ev_done != NULL)
		event_active(server->ev_done, EV_TIMEOUT, 0);
}

void
smtpd_slot_closed(struct smtpd_slot *slot)
{
	struct smtpd_listener *l = slot->listener;
	struct smtpd *server = l->server;

	if (slot->ip != NULL) {
		ip_release(l, slot->ip);
		l->sessions--;
	}
	if (slot->prev != NULL)
		slot->prev->next = slot->next;
	else
		server->slots = slot->next;
	if (slot->next != NULL)
		slot->next->prev = slot->prev;
	server->n_sessions--;
	free(slot);
	smtpd_check_drained(server);
}

/* ------------------------------------------------------------ accepting */

static void
listener_pause(struct smtpd_listener *l, int error)
{
	struct timeval tv = {ACCEPT_PAUSE_S, 0};

	if (l->paused)
		return;
	log_warn("listener %s: accept: %s; pausing for %d s", l->conf->name,
		 strerror(error), ACCEPT_PAUSE_S);
	event_del(l->ev);
	evtimer_add(l->ev_resume, &tv);
	l->paused = true;
}

static void
listener_resume(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_listener *l = arg;

	(void)fd;
	(void)what;
	l->paused = false;
	if (!l->server->stopping && l->fd >= 0)
		event_add(l->ev, NULL);
}

/* The limits of this listener for a new connection: NULL, or why not. */
static const char *
listener_limit(struct smtpd_listener *l, const struct ip_count *ip)
{
	if (l->conf->max_sessions > 0 && l->sessions >= l->conf->max_sessions)
		return "Too many sessions, try again later";
	if (ip != NULL && l->conf->max_sessions_per_ip > 0 &&
	    ip->count >= l->conf->max_sessions_per_ip)
		return "Too many sessions from your address, try again later";
	return NULL;
}

static void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = NULL;

	if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (a == NULL ||
	    inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "unknown");
}

static void
listener_take(struct smtpd_listener *l, int fd, const struct sockaddr *sa,
	      socklen_t salen)
{
	struct smtpd *server = l->server;
	struct ip_count *ip = ip_find(l, sa, false);
	const char *refuse = listener_limit(l, ip);
	struct smtpd_slot *slot = calloc(1, sizeof *slot);

	if (slot == NULL) {
		close(fd);
		return;
	}
	if (refuse == NULL && ip == NULL && (ip = ip_find(l, sa, true)) == NULL)
		refuse = "Out of resources, try again later";
	if (refuse != NULL && l->conf->tls == CONF_LISTENER_TLS_IMPLICIT) {
		/* No clear-text 421 is possible before the handshake. */
		char addr[INET6_ADDRSTRLEN];
		sockaddr_text(sa, addr, sizeof addr);
		log_info("listener %s: refused client=%s: %s", l->conf->name,
			 addr, refuse);
		free(slot);
		close(fd);
		return;
	}
	slot->listener = l;
	if (refuse == NULL) {
		slot->ip = ip;
		ip->count++;
		l->sessions++;
	}
	slot->next = server->slots;
	if (server->slots != NULL)
		server->slots->prev = slot;
	server->slots = slot;
	server->n_sessions++;
	struct smtpd_session_ctx ctx = {
		.base = server->base,
		.conf = server->conf,
		.listener = l->conf,
		.spool = server->spool,
		.tls = server->tls,
		.slot = slot,
		.queued = server->queued,
		.queued_arg = server->queued_arg,
	};
	slot->session = smtpd_session_new(&ctx, fd, sa, salen, refuse);
	if (slot->session == NULL) {
		log_warn("listener %s: out of memory for a new session",
			 l->conf->name);
		smtpd_slot_closed(slot);
	}
}

static void
listener_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct smtpd_listener *l = arg;

	(void)what;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listener_pause(l, errno);
				return;
			default:
				log_warn("listener %s: accept: %s",
					 l->conf->name, strerror(errno));
				return;
			}
		}
		listener_take(l, fd, (struct sockaddr *)&ss, sl);
		if (l->server->stopping)
			return;
	}
}

/* ------------------------------------------------------------- binding */

static int
listener_bind(struct smtpd_listener *l, char *err, size_t errlen)
{
	const struct conf_listener *c = l->conf;
	int one = 1;
	int fd = socket(c->sa.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen,
			 "listener %s: cannot make a socket for %s: %s",
			 c->name, c->address, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (c->sa.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)) {
		snprintf(err, errlen,
			 "listener %s: cannot set socket options for %s: %s",
			 c->name, c->address, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)&c->sa, c->salen) < 0) {
		snprintf(err, errlen, "listener %s: cannot bind %s: %s",
			 c->name, c->address, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "listener %s: cannot listen on %s: %s",
			 c->name, c->address, strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	return 0;
}

static void
listener_close(struct smtpd_listener *l)
{
	if (l->ev != NULL)
		event_del(l->ev);
	if (l->ev_resume != NULL)
		evtimer_del(l->ev_resume);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

static void
smtpd_warn_tls(const struct smtpd *server)
{
	if (server->tls != NULL)
		return;
	for (size_t i = 0; i < server->n_listeners; i++) {
		const struct conf_listener *c = server->listeners[i].conf;
		if (c->tls == CONF_LISTENER_TLS_REQUIRE)
			log_warn(
				"listener %s: tls = require but no certificate "
				"is installed: every MAIL gets 530 until one "
				"is",
				c->name);
		else if (c->tls == CONF_LISTENER_TLS_IMPLICIT)
			log_warn("listener %s: tls = implicit but no "
				 "certificate "
				 "is installed: connections are closed until "
				 "one is",
				 c->name);
	}
}

struct smtpd *
smtpd_new(struct event_base *base, const struct conf *conf, struct spool *spool,
	  SSL_CTX *tls, char *err, size_t errlen)
{
	struct smtpd *server = calloc(1, sizeof *server);

	if (server == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	server->base = base;
	server->conf = conf;
	server->spool = spool;
	server->ev_done = event_new(base, -1, 0, smtpd_done_cb, server);
	server->listeners =
		calloc(conf->n_listeners, sizeof *server->listeners);
	if (server->ev_done == NULL ||
	    (server->listeners == NULL && conf->n_listeners > 0)) {
		snprintf(err, errlen, "out of memory");
		smtpd_free(server);
		return NULL;
	}
	server->n_listeners = conf->n_listeners;
	for (size_t i = 0; i < conf->n_listeners; i++) {
		struct smtpd_listener *l = &server->listeners[i];
		l->server = server;
		l->conf = &conf->listeners[i];
		l->fd = -1;
	}
	for (size_t i = 0; i < server->n_listeners; i++) {
		struct smtpd_listener *l = &server->listeners[i];
		if (listener_bind(l, err, errlen) < 0) {
			smtpd_free(server);
			return NULL;
		}
		l->ev = event_new(base, l->fd, EV_READ | EV_PERSIST,
				  listener_accept, l);
		l->ev_resume = evtimer_new(base, listener_resume, l);
		if (l->ev == NULL || l->ev_resume == NULL) {
			snprintf(err, errlen, "out of memory");
			smtpd_free(server);
			return NULL;
		}
	}
	smtpd_set_tls(server, tls);
	for (size_t i = 0; i < server->n_listeners; i++)
		event_add(server->listeners[i].ev, NULL);
	return server;
}

void
smtpd_set_tls(struct smtpd *server, SSL_CTX *tls)
{
	if (tls != NULL)
		SSL_CTX_up_ref(tls);
	SSL_CTX_free(server->tls);
	server->tls = tls;
	smtpd_warn_tls(server);
}

SSL_CTX *
smtpd_tls(const struct smtpd *server)
{
	return server->tls;
}

size_t
smtpd_sessions(const struct smtpd *server)
{
	return server->n_sessions;
}

void
smtpd_shutdown(struct smtpd *server, void (*done)(void *arg), void *arg)
{
	server->stopping = true;
	server->done = done;
	server->done_arg = arg;
	for (size_t i = 0; i < server->n_listeners; i++)
		listener_close(&server->listeners[i]);
	log_info("smtpd: stopping; %zu sessions open", server->n_sessions);
	/* Sessions close from the loop, never from here: the walk is safe. */
	for (struct smtpd_slot *slot = server->slots; slot != NULL;
	     slot = slot->next)
		smtpd_session_shutdown(slot->session);
	smtpd_check_drained(server);
}

void
smtpd_free(struct smtpd *server)
{
	if (server == NULL)
		return;
	while (server->slots != NULL)
		smtpd_session_kill(server->slots->session); /* unlinks it */
	for (size_t i = 0; i < server->n_listeners; i++) {
		struct smtpd_listener *l = &server->listeners[i];
		listener_close(l);
		if (l->ev != NULL)
			event_free(l->ev);
		if (l->ev_resume != NULL)
			event_free(l->ev_resume);
		for (size_t b = 0; b < IP_BUCKETS; b++) {
			while (l->ips[b] != NULL) {
				struct ip_count *e = l->ips[b];
				l->ips[b] = e->next;
				free(e);
			}
		}
	}
	free(server->listeners);
	if (server->ev_done != NULL)
		event_free(server->ev_done);
	SSL_CTX_free(server->tls);
	free(server);
}

void
smtpd_set_queued(struct smtpd *server, smtpd_queued_cb *cb, void *arg)
{
	server->queued = cb;
	server->queued_arg = arg;
}
