/*
 * sink: a trivial SMTP server that accepts every message at once, to
 * measure the load client's own ceiling.
 *
 * It answers the dialogue loadgen speaks — 220, EHLO (PIPELINING, SIZE,
 * 8BITMIME, STARTTLS when given a certificate), STARTTLS, MAIL, RCPT,
 * DATA, RSET, NOOP, QUIT — and throws the message away: the 250 after the
 * final dot is sent as soon as the dot is seen, with no disk and no
 * parsing beyond finding "\r\n.\r\n" (RFC 5321 section 4.1.1.4).  Whatever
 * rate loadgen reaches against it is the most it can measure on this
 * machine; a relay close to that figure is limited by the client, not by
 * itself.
 *
 * Several threads may each run their own event loop on their own
 * SO_REUSEPORT listening socket, so the sink is not the bottleneck either.
 * TLS is OpenSSL 3 over the non-blocking socket; after the 220 to STARTTLS
 * any buffered plaintext is discarded (RFC 3207 section 6, case C01).
 *
 * Memory per session is bounded: one input buffer (a longer command line
 * is answered 500 and dropped) and one reply buffer (input stops being
 * read while replies pile up unread).
 *
 * Public surface: the command line (sink --help).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SINK_INBUF 16384
#define SINK_OUTBUF 8192

struct options {
	const char *host;
	const char *port;
	unsigned threads;
	const char *cert;
	const char *key;
};

static struct options opt = {
	.host = "127.0.0.1",
	.port = "2526",
	.threads = 1,
};

static SSL_CTX *tls_ctx;

enum sstate {
	S_CMD,			/* reading command lines */
	S_DATA,			/* reading message content */
	S_HANDSHAKE,
	S_CLOSING,		/* final reply queued; close once it is out */
};

struct session {
	struct event_base *base;
	int fd;
	SSL *ssl;
	enum sstate st;
	struct event *ev_read;
	struct event *ev_write;
	bool write_armed;
	bool read_paused;
	bool tls_fatal;
	bool skipping;		/* discarding the rest of an over-long line */
	unsigned dotstate;	/* how much of "\r\n.\r\n" was just seen */
	char in[SINK_INBUF];
	size_t inlen;
	char out[SINK_OUTBUF];
	size_t outlen, outoff;
};

/* ---------------------------------------------------------- sessions */

static void session_event(evutil_socket_t fd, short what, void *arg);

static void
session_free(struct session *s)
{
	if (s->ssl != NULL) {
		ERR_clear_error();
		if (!s->tls_fatal)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		ERR_clear_error();
	}
	event_free(s->ev_read);
	event_free(s->ev_write);
	close(s->fd);
	free(s);
}

static void
session_set_write(struct session *s, bool on)
{
	if (on == s->write_armed)
		return;
	if (on)
		event_add(s->ev_write, NULL);
	else
		event_del(s->ev_write);
	s->write_armed = on;
}

static void
session_set_read(struct session *s, bool on)
{
	if (on == !s->read_paused)
		return;
	if (on)
		event_add(s->ev_read, NULL);
	else
		event_del(s->ev_read);
	s->read_paused = !on;
}

static int
reply(struct session *s, const char *text)
{
	size_t len = strlen(text);
	if (s->outoff == s->outlen)
		s->outoff = s->outlen = 0;
	if (s->outlen + len > sizeof s->out)
		return -1;
	memcpy(s->out + s->outlen, text, len);
	s->outlen += len;
	return 0;
}

/* 0: flushed or waiting for writability; -1: the session is broken. */
static int
session_flush(struct session *s)
{
	while (s->outoff < s->outlen) {
		size_t left = s->outlen - s->outoff, n = 0;
		if (s->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_write_ex(s->ssl, s->out + s->outoff, left, &n);
			if (r <= 0) {
				int e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE) {
					session_set_write(s, true);
					return 0;
				}
				if (e == SSL_ERROR_WANT_READ)
					return 0;
				s->tls_fatal = true;
				return -1;
			}
		} else {
			ssize_t r = send(s->fd, s->out + s->outoff, left,
					 MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					session_set_write(s, true);
					return 0;
				}
				return -1;
			}
			n = (size_t)r;
		}
		s->outoff += n;
	}
	session_set_write(s, false);
	/* Replies drained: read again if we had stopped. */
	if (s->st != S_CLOSING && s->st != S_HANDSHAKE)
		session_set_read(s, true);
	return 0;
}

/* ---------------------------------------------------------- commands */

static bool
verb_is(const char *line, size_t len, const char *verb)
{
	size_t n = strlen(verb);
	return len >= n && strncasecmp(line, verb, n) == 0 &&
	       (len == n || line[n] == ' ');
}

static void
command(struct session *s, const char *line, size_t len)
{
	int r;
	if (verb_is(line, len, "EHLO")) {
		r = reply(s, "250-sink.example.net\r\n250-PIPELINING\r\n"
			     "250-SIZE 104857600\r\n250-8BITMIME\r\n");
		if (r == 0 && tls_ctx != NULL && s->ssl == NULL)
			r = reply(s, "250-STARTTLS\r\n");
		if (r == 0)
			r = reply(s, "250 ENHANCEDSTATUSCODES\r\n");
	} else if (verb_is(line, len, "HELO")) {
		r = reply(s, "250 sink.example.net\r\n");
	} else if (verb_is(line, len, "STARTTLS") && tls_ctx != NULL &&
		   s->ssl == NULL) {
		r = reply(s, "220 2.0.0 Ready to start TLS\r\n");
		s->st = S_HANDSHAKE;
	} else if (verb_is(line, len, "MAIL") || verb_is(line, len, "RCPT") ||
		   verb_is(line, len, "RSET") || verb_is(line, len, "NOOP")) {
		r = reply(s, "250 2.0.0 Ok\r\n");
	} else if (verb_is(line, len, "DATA")) {
		r = reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
		s->st = S_DATA;
		s->dotstate = 2;	/* the command's CRLF counts */
	} else if (verb_is(line, len, "QUIT")) {
		r = reply(s, "221 2.0.0 Bye\r\n");
		s->st = S_CLOSING;
	} else {
		r = reply(s, "502 5.5.2 Command not recognized\r\n");
	}
	if (r < 0)
		s->st = S_CLOSING;	/* cannot happen with a lockstep client */
}

/*
 * Consume message bytes; returns how many belong to the message (the end
 * marker included) and leaves S_DATA when the marker is complete.
 */
static size_t
data_scan(struct session *s, const char *p, size_t len)
{
	static const char marker[] = "\r\n.\r\n";
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];
		if (ch == marker[s->dotstate]) {
			s->dotstate++;
		} else if (ch == '\r') {
			s->dotstate = 1;
		} else {
			s->dotstate = 0;
		}
		if (s->dotstate == 5) {
			s->st = S_CMD;
			reply(s, "250 2.0.0 Ok: queued\r\n");
			return i + 1;
		}
	}
	return len;
}

/* Handle buffered input; stops at STARTTLS, QUIT or when replies pile up. */
static void
session_input(struct session *s)
{
	size_t start = 0;
	while (start < s->inlen && (s->st == S_CMD || s->st == S_DATA)) {
		if (s->outlen - s->outoff > SINK_OUTBUF / 2) {
			session_set_read(s, false);	/* peer is not reading */
			break;
		}
		if (s->st == S_DATA) {
			start += data_scan(s, s->in + start, s->inlen - start);
			continue;
		}
		char *nl = memchr(s->in + start, '\n', s->inlen - start);
		if (nl == NULL)
			break;
		size_t len = (size_t)(nl - (s->in + start));
		const char *line = s->in + start;
		start += len + 1;
		if (s->skipping) {
			s->skipping = false;
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		command(s, line, len);
	}
	memmove(s->in, s->in + start, s->inlen - start);
	s->inlen -= start;
	if (s->inlen == sizeof s->in && s->st == S_CMD) {
		/* RFC 5321 4.5.3.1.4: 512 octets is the limit; far past it. */
		reply(s, "500 5.5.2 Line too long\r\n");
		s->inlen = 0;
		s->skipping = true;
	}
	if (s->st == S_HANDSHAKE)
		s->inlen = 0;	/* plaintext behind STARTTLS is discarded */
}

/* Read what is there; -1 when the session ended. */
static int
session_read(struct session *s)
{
	for (;;) {
		size_t room = sizeof s->in - s->inlen, n = 0;
		if (room == 0 || s->read_paused)
			return 0;
		if (s->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_read_ex(s->ssl, s->in + s->inlen, room, &n);
			if (r <= 0) {
				int e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return 0;
				if (e == SSL_ERROR_WANT_WRITE) {
					session_set_write(s, true);
					return 0;
				}
				if (e != SSL_ERROR_ZERO_RETURN)
					s->tls_fatal = true;
				return -1;
			}
		} else {
			ssize_t r = recv(s->fd, s->in + s->inlen, room, 0);
			if (r < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : -1;
			if (r == 0)
				return -1;
			n = (size_t)r;
		}
		s->inlen += n;
		session_input(s);
		if (s->st == S_HANDSHAKE || s->st == S_CLOSING)
			return 0;
	}
}

static int
session_handshake(struct session *s)
{
	if (s->ssl == NULL) {
		s->ssl = SSL_new(tls_ctx);
		if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
			return -1;
	}
	ERR_clear_error();
	int r = SSL_accept(s->ssl);
	if (r == 1) {
		s->st = S_CMD;
		s->inlen = 0;
		session_set_write(s, false);
		return 0;
	}
	int e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		session_set_write(s, true);
		return 0;
	}
	s->tls_fatal = true;
	return -1;
}

static void
session_event(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	/* The 220 to STARTTLS goes out in clear text before the handshake. */
	if (s->st == S_HANDSHAKE && s->outoff == s->outlen) {
		if (session_handshake(s) < 0)
			goto gone;
		if (s->st == S_HANDSHAKE)
			return;
	}
	if (s->st != S_HANDSHAKE && s->st != S_CLOSING && session_read(s) < 0)
		goto gone;
	if (session_flush(s) < 0)
		goto gone;
	if (s->st == S_CLOSING && s->outoff == s->outlen)
		goto gone;
	if (s->st == S_HANDSHAKE && s->outoff == s->outlen) {
		/* The 220 is out: start now, the client may already be waiting. */
		session_set_read(s, true);
		if (session_handshake(s) < 0)
			goto gone;
	}
	return;
gone:
	session_free(s);
}

static void
session_start(struct event_base *base, int fd)
{
	struct session *s = calloc(1, sizeof *s);
	if (s == NULL) {
		close(fd);
		return;
	}
	s->base = base;
	s->fd = fd;
	s->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, session_event, s);
	s->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, session_event, s);
	if (s->ev_read == NULL || s->ev_write == NULL) {
		if (s->ev_read)
			event_free(s->ev_read);
		if (s->ev_write)
			event_free(s->ev_write);
		close(fd);
		free(s);
		return;
	}
	event_add(s->ev_read, NULL);
	reply(s, "220 sink.example.net ESMTP sink\r\n");
	if (session_flush(s) < 0)
		session_free(s);
}

/* ---------------------------------------------------------- listeners */

struct listener {
	int fd;
	struct event_base *base;
	struct event *ev;
	pthread_t thread;
};

static void
listener_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)what;
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "sink: accept: %s\n", strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		session_start(l->base, c);
	}
}

static int
listener_open(struct listener *l)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	int r = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "sink: %s:%s: %s\n", opt.host, opt.port,
			gai_strerror(r));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		fprintf(stderr, "sink: listen on %s:%s: %s\n", opt.host, opt.port,
			strerror(errno));
		freeaddrinfo(res);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(res);
	l->fd = fd;
	l->base = event_base_new();
	if (l->base == NULL)
		return -1;
	l->ev = event_new(l->base, fd, EV_READ | EV_PERSIST, listener_accept, l);
	if (l->ev == NULL || event_add(l->ev, NULL) < 0)
		return -1;
	return 0;
}

static void *
listener_main(void *arg)
{
	struct listener *l = arg;
	event_base_dispatch(l->base);
	return NULL;
}

static int
tls_init(void)
{
	if (opt.cert == NULL)
		return 0;
	tls_ctx = SSL_CTX_new(TLS_server_method());
	if (tls_ctx == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	const char *key = opt.key ? opt.key : opt.cert;
	if (SSL_CTX_use_certificate_chain_file(tls_ctx, opt.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tls_ctx) != 1) {
		char buf[160];
		ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
		fprintf(stderr, "sink: %s / %s: %s\n", opt.cert, key, buf);
		return -1;
	}
	/* Stateless tickets (OpenSSL's default) let loadgen resume. */
	SSL_CTX_set_session_id_context(tls_ctx, (const unsigned char *)"sink", 4);
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: sink [--listen HOST:PORT] [--threads N] "
		     "[--cert FILE --key FILE]\n"
		     "  answers every SMTP message with 250 at once; STARTTLS "
		     "with --cert\n");
}

static int
parse_listen(char *arg)
{
	char *colon = strrchr(arg, ':');
	if (colon == NULL || colon[1] == '\0')
		return -1;
	*colon = '\0';
	opt.port = colon + 1;
	if (arg[0] == '[') {
		size_t n = strlen(arg);
		if (n < 2 || arg[n - 1] != ']')
			return -1;
		arg[n - 1] = '\0';
		arg++;
	}
	opt.host = arg;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (parse_listen(optarg) < 0) {
				fprintf(stderr, "sink: --listen: expected HOST:PORT\n");
				return 2;
			}
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 || v > 64) {
				fprintf(stderr, "sink: --threads: 1 to 64\n");
				return 2;
			}
			opt.threads = (unsigned)v;
			break;
		}
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (tls_init() < 0)
		return 1;
	struct listener *ls = calloc(opt.threads, sizeof *ls);
	if (ls == NULL)
		return 1;
	for (unsigned i = 0; i < opt.threads; i++)
		if (listener_open(&ls[i]) < 0)
			return 1;
	fprintf(stderr, "sink: listening on %s:%s (%u thread%s, %s)\n", opt.host,
		opt.port, opt.threads, opt.threads == 1 ? "" : "s",
		tls_ctx ? "STARTTLS" : "no TLS");
	for (unsigned i = 1; i < opt.threads; i++)
		if (pthread_create(&ls[i].thread, NULL, listener_main, &ls[i]) != 0)
			return 1;
	listener_main(&ls[0]);
	return 0;
}
