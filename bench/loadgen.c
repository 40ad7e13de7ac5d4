/*
 * loadgen: the SMTP load client of the intake benchmark.
 *
 * N concurrent connections (spread over T threads, one libevent loop
 * each) run, in lockstep or pipelined, the dialogue of an MTA handing mail
 * to a relay:
 *
 *   connect, 220, EHLO, [STARTTLS, TLS handshake, EHLO], then K times
 *   MAIL, RCPT, DATA, the message, "." — then QUIT and a new connection.
 *
 * The figure that matters is the time from writing the final dot to
 * reading its 250: the server may only answer once the message is on disk
 * (RFC 5321 section 4.1.1.4, "queued"), so this is the durable-intake
 * latency.  The run lasts a duration (after a warm-up that is not counted)
 * or a message count; it prints messages per second, latency p50/p99/max,
 * connections, TLS handshakes and how many were resumed, the client's own
 * CPU per message, and every kind of error once with its count.  Any reply
 * other than 2xx/3xx where one was expected is an error; the connection is
 * then closed and a new one opened after a short pause.
 *
 * TLS: OpenSSL 3 driven directly over the non-blocking socket.  The
 * certificate is not checked (the benchmark servers use self-signed ones).
 * Each connection slot keeps the last session (or TLS 1.3 ticket) it was
 * given and offers it on its next connection, like a real MTA's cache.
 *
 * Memory is bounded: per connection one input buffer (replies longer than
 * it are an error) and one output buffer of the message size plus command
 * room; latencies go into a fixed log-linear histogram (< 1.6 % error).
 *
 * Public surface: the command line (loadgen --help) and its output, text
 * for people and one JSON object with --json for bench/run.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define LG_INBUF 8192		/* longest reply line we accept, and then some */
#define LG_CMDROOM 2048		/* MAIL + RCPT + DATA + QUIT lines */
#define LG_MAX_ERRKINDS 64
#define LG_RECONNECT_MS 50	/* pause after an error before reconnecting */
#define LG_GRACE_S 10		/* how long in-flight messages may finish */

/* ---------------------------------------------------------------- options */

struct options {
	const char *host;
	const char *port;
	unsigned clients;
	unsigned threads;
	unsigned per_conn;		/* messages per connection */
	double duration_s;		/* 0: use count */
	double warmup_s;
	uint64_t count;			/* 0: use duration */
	size_t size;			/* whole message, headers included */
	bool starttls;
	bool pipelining;
	bool json;
	unsigned timeout_s;
	const char *helo;
	const char *from;
	const char *rcpt;
	const char *label;
};

static struct options opt = {
	.host = "127.0.0.1",
	.port = "2525",
	.clients = 20,
	.threads = 1,
	.per_conn = 10,
	.duration_s = 10,
	.warmup_s = 0,
	.size = 4096,
	.timeout_s = 30,
	.helo = "loadgen.example.org",
	.from = "sender@example.org",
	.rcpt = "rcpt@example.com",
	.label = "",
};

/* -------------------------------------------------------------- histogram */

/*
 * Log-linear: values below 64 us have their own bucket; above, each power
 * of two is split into 64 buckets, so a bucket is at most 1/64 wide.
 */
#define HIST_SUB 64
#define HIST_POW 40
#define HIST_N (HIST_SUB + HIST_POW * HIST_SUB)

struct hist {
	uint64_t b[HIST_N];
	uint64_t n;
	uint64_t max;
};

static unsigned
hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63 - (unsigned)__builtin_clzll(v);	/* >= 6 */
	unsigned sub = (unsigned)(v >> (e - 6)) & (HIST_SUB - 1);
	unsigned i = HIST_SUB + (e - 6) * HIST_SUB + sub;
	return i < HIST_N ? i : HIST_N - 1;
}

static uint64_t
hist_value(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned e = (i - HIST_SUB) / HIST_SUB + 6;
	uint64_t sub = (i - HIST_SUB) % HIST_SUB;
	uint64_t lo = (HIST_SUB + sub) << (e - 6);
	return lo + ((uint64_t)1 << (e - 6)) / 2;
}

static void
hist_add(struct hist *h, uint64_t us)
{
	h->b[hist_index(us)]++;
	h->n++;
	if (us > h->max)
		h->max = us;
}

static void
hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_N; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

static uint64_t
hist_quantile(const struct hist *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_N; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return hist_value(i) < h->max ? hist_value(i) : h->max;
	}
	return h->max;
}

/* ----------------------------------------------------------------- errors */

/* One entry per kind: phase + reply code + enhanced status, or phase + cause. */
struct errkind {
	char key[96];
	char example[160];
	uint64_t count;
};

static struct errkind errkinds[LG_MAX_ERRKINDS];
static unsigned n_errkinds;
static uint64_t errors_other;		/* kinds beyond the table */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void
err_record(const char *key, const char *example)
{
	pthread_mutex_lock(&err_lock);
	for (unsigned i = 0; i < n_errkinds; i++) {
		if (strcmp(errkinds[i].key, key) == 0) {
			errkinds[i].count++;
			pthread_mutex_unlock(&err_lock);
			return;
		}
	}
	if (n_errkinds < LG_MAX_ERRKINDS) {
		struct errkind *k = &errkinds[n_errkinds++];
		snprintf(k->key, sizeof k->key, "%s", key);
		snprintf(k->example, sizeof k->example, "%s", example);
		k->count = 1;
		/* Printed once per kind, as it happens, for the operator. */
		fprintf(stderr, "loadgen: error [%s]: %s\n", key, example);
	} else {
		errors_other++;
	}
	pthread_mutex_unlock(&err_lock);
}

/* ------------------------------------------------------------------- time */

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---------------------------------------------------------- the message */

/*
 * One template, built once; each copy gets its own Message-ID by
 * overwriting MSGID_DIGITS hex digits at msgid_off.  Lines are 78 octets
 * plus CRLF and never start with '.', so no dot-stuffing is needed.
 */
#define MSGID_DIGITS 16

static char *msg_tmpl;
static size_t msg_len;
static size_t msgid_off;

static int
message_build(void)
{
	size_t cap = opt.size + 512;
	char *m = malloc(cap);
	if (m == NULL)
		return -1;
	int n = snprintf(m, cap,
			 "From: <%s>\r\nTo: <%s>\r\n"
			 "Subject: bridgehead intake benchmark\r\n"
			 "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
			 "Message-ID: <",
			 opt.from, opt.rcpt);
	if (n < 0 || (size_t)n >= cap) {
		free(m);
		return -1;
	}
	size_t len = (size_t)n;
	msgid_off = len;
	memset(m + len, '0', MSGID_DIGITS);
	len += MSGID_DIGITS;
	n = snprintf(m + len, cap - len, "@loadgen.example.org>\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	if (n < 0 || (size_t)n >= cap - len) {
		free(m);
		return -1;
	}
	len += (size_t)n;
	static const char alpha[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
	/* Body lines until the message (with CRLF.CRLF) has opt.size octets. */
	while (len + 80 + 3 <= opt.size) {
		for (unsigned i = 0; i < 78; i++)
			m[len + i] = alpha[(len + i * 7) % (sizeof alpha - 1)];
		len += 78;
		m[len++] = '\r';
		m[len++] = '\n';
	}
	while (len + 2 + 3 < opt.size)
		m[len++] = 'x';
	m[len++] = '\r';
	m[len++] = '\n';
	memcpy(m + len, ".\r\n", 3);
	len += 3;
	msg_tmpl = m;
	msg_len = len;
	return 0;
}

/* ------------------------------------------------------ connections */

enum cstate {
	C_IDLE,			/* not connected; waiting to (re)connect */
	C_CONNECTING,
	C_BANNER,
	C_EHLO,
	C_STARTTLS,
	C_HANDSHAKE,
	C_EHLO_TLS,
	C_MAIL,
	C_RCPT,
	C_DATA,
	C_DOT,			/* message sent, waiting for its 250 */
	C_QUIT,
};

static const char *const cstate_name[] = {
	"idle", "connect", "banner", "ehlo", "starttls", "tls-handshake",
	"ehlo-tls", "mail", "rcpt", "data", "dot", "quit",
};

struct worker;

struct conn {
	struct worker *w;
	unsigned slot;			/* index inside the worker */
	int fd;
	SSL *ssl;
	SSL_SESSION *sess;		/* last session given on this slot */
	enum cstate st;
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;		/* reconnect pause and reply timeout */
	bool write_armed;
	bool want_write;		/* an SSL call asked for writability */
	bool tls_fatal;			/* no close_notify after a fatal error */
	unsigned gen;			/* bumped at every close: stale handlers stop */

	char in[LG_INBUF];
	size_t inlen;
	char *out;
	size_t outcap, outlen, outoff;

	int ehlo_starttls, ehlo_pipelining;
	unsigned done_on_conn;		/* messages accepted on this connection */
	uint64_t t_dot;
};

struct worker {
	unsigned idx;
	struct event_base *base;
	struct event *ev_start, *ev_stop, *ev_grace;
	struct conn *conns;
	unsigned n_conns;
	unsigned open;			/* connections not yet finished */
	bool stopping;
	uint64_t quota;			/* count mode: messages this worker may start */
	uint64_t started;
	pthread_t thread;

	/* results */
	struct hist lat;
	uint64_t accepted;		/* inside the window */
	uint64_t late;			/* accepted after the window */
	uint64_t early;			/* accepted during warm-up */
	uint64_t errors;
	uint64_t connections;
	uint64_t handshakes, resumed;
	uint64_t last_accept_us;
	uint64_t msgseq;
};

static SSL_CTX *tls_ctx;
static struct sockaddr_storage peer;
static socklen_t peerlen;
static uint64_t t_begin, t_window, t_end;	/* microseconds, monotonic */

static void conn_event(evutil_socket_t fd, short what, void *arg);
static void conn_timer(evutil_socket_t fd, short what, void *arg);
static void conn_open(struct conn *c);
static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, const char *key, const char *example);

static void
conn_arm_timer(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(c->ev_timer, &tv);
}

static void
conn_set_write(struct conn *c, bool on)
{
	if (on == c->write_armed)
		return;
	if (on)
		event_add(c->ev_write, NULL);
	else
		event_del(c->ev_write);
	c->write_armed = on;
}

static void
tls_error_text(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	if (e != 0) {
		char tmp[128];
		ERR_error_string_n(e, tmp, sizeof tmp);
		snprintf(buf, len, "%s: %s", what, tmp);
	} else if (errno != 0) {
		snprintf(buf, len, "%s: %s", what, strerror(errno));
	} else {
		snprintf(buf, len, "%s: unexpected EOF", what);
	}
	ERR_clear_error();
}

/* Queue bytes for the peer; returns where they start in c->out, or -1. */
static long
conn_queue(struct conn *c, const void *data, size_t len)
{
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + len > c->outcap)
		return -1;
	size_t at = c->outlen;
	memcpy(c->out + at, data, len);
	c->outlen += len;
	return (long)at;
}

static int
conn_queuef(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
conn_queuef(struct conn *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		return -1;
	return conn_queue(c, line, (size_t)n) < 0 ? -1 : 0;
}

/*
 * Write what is queued.  0: all written or blocked (the write event is
 * armed); -1: the connection failed (already handled).
 */
static int
conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		size_t left = c->outlen - c->outoff;
		if (c->ssl != NULL) {
			size_t n = 0;
			ERR_clear_error();
			errno = 0;
			int r = SSL_write_ex(c->ssl, c->out + c->outoff, left, &n);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE) {
					conn_set_write(c, true);
					return 0;
				}
				if (e == SSL_ERROR_WANT_READ)
					return 0;
				char buf[160];
				c->tls_fatal = true;
				tls_error_text(buf, sizeof buf, "SSL_write");
				conn_fail(c, "write: tls", buf);
				return -1;
			}
			c->outoff += n;
		} else {
			ssize_t n = send(c->fd, c->out + c->outoff, left,
					 MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					conn_set_write(c, true);
					return 0;
				}
				char key[64];
				snprintf(key, sizeof key, "write: %s",
					 strerror(errno));
				conn_fail(c, key, strerror(errno));
				return -1;
			}
			c->outoff += (size_t)n;
		}
	}
	conn_set_write(c, c->want_write);
	return 0;
}

/* ------------------------------------------------- dialogue: sending */

static bool
worker_may_start(struct worker *w)
{
	if (w->stopping)
		return false;
	if (opt.count > 0 && w->started >= w->quota)
		return false;
	return true;
}

static void
send_quit(struct conn *c)
{
	c->st = C_QUIT;
	if (conn_queuef(c, "QUIT\r\n") < 0)
		conn_fail(c, "internal", "output buffer full");
}

static void
send_mail(struct conn *c)
{
	struct worker *w = c->w;
	if (!worker_may_start(w) || c->done_on_conn >= opt.per_conn) {
		send_quit(c);
		return;
	}
	w->started++;
	c->st = C_MAIL;
	int r = conn_queuef(c, "MAIL FROM:<%s> SIZE=%zu\r\n", opt.from,
			    msg_len);
	if (r == 0 && opt.pipelining && c->ehlo_pipelining)
		r = conn_queuef(c, "RCPT TO:<%s>\r\nDATA\r\n", opt.rcpt);
	if (r < 0)
		conn_fail(c, "internal", "output buffer full");
}

static void
send_message(struct conn *c)
{
	struct worker *w = c->w;
	long at = conn_queue(c, msg_tmpl, msg_len);
	if (at < 0) {
		conn_fail(c, "internal", "output buffer full");
		return;
	}
	/* A unique Message-ID: thread, then sequence, in hex. */
	static const char hex[] = "0123456789abcdef";
	uint64_t id = ((uint64_t)(w->idx & 0xff) << 56) |
		      (w->msgseq++ & 0xffffffffffffffULL);
	char *d = c->out + at + msgid_off;
	for (int i = MSGID_DIGITS - 1; i >= 0; i--, id >>= 4)
		d[i] = hex[id & 15];
	c->st = C_DOT;
	c->t_dot = now_us();
}

static void
send_ehlo(struct conn *c, enum cstate st)
{
	c->st = st;
	c->ehlo_starttls = c->ehlo_pipelining = 0;
	if (conn_queuef(c, "EHLO %s\r\n", opt.helo) < 0)
		conn_fail(c, "internal", "output buffer full");
}

/* ------------------------------------------------------------ TLS */

static void
tls_handshake(struct conn *c)
{
	ERR_clear_error();
	errno = 0;
	c->want_write = false;
	int r = SSL_connect(c->ssl);
	if (r == 1) {
		c->w->handshakes++;
		if (SSL_session_reused(c->ssl))
			c->w->resumed++;
		conn_set_write(c, c->outoff < c->outlen);
		send_ehlo(c, C_EHLO_TLS);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		conn_set_write(c, false);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->want_write = true;
		conn_set_write(c, true);
		return;
	}
	char buf[160];
	c->tls_fatal = true;
	tls_error_text(buf, sizeof buf, "handshake");
	conn_fail(c, "tls-handshake", buf);
}

static void
tls_start(struct conn *c)
{
	if (c->inlen != 0) {
		/* Bytes after the 220 in clear text: a server bug (case C02). */
		conn_fail(c, "starttls", "plaintext after 220 to STARTTLS");
		return;
	}
	c->ssl = SSL_new(tls_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_fail(c, "tls-handshake", "SSL_new failed");
		return;
	}
	SSL_set_app_data(c->ssl, c);
	if (c->sess != NULL)
		SSL_set_session(c->ssl, c->sess);
	c->st = C_HANDSHAKE;
	tls_handshake(c);
}

/* New session or TLS 1.3 ticket: keep it for this slot's next connection. */
static int
tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct conn *c = SSL_get_app_data(ssl);
	if (c == NULL)
		return 0;
	if (c->sess != NULL)
		SSL_SESSION_free(c->sess);
	c->sess = sess;
	return 1;			/* we keep the reference */
}

/* ------------------------------------------ dialogue: reading replies */

static void
reply_error(struct conn *c, int code, const char *line)
{
	char key[96];
	char esc[16] = "";
	/* The enhanced status code (RFC 3463), when there is one, is part of the kind. */
	const char *p = strlen(line) > 4 ? line + 4 : "";
	size_t n = strspn(p, "0123456789.");
	if (n >= 5 && n < sizeof esc)
		snprintf(esc, sizeof esc, " %.*s", (int)n, p);
	snprintf(key, sizeof key, "%s: %d%s", cstate_name[c->st], code, esc);
	conn_fail(c, key, line);
}

static void
ehlo_keyword(struct conn *c, const char *line)
{
	const char *kw = line + 4;
	if (strncasecmp(kw, "STARTTLS", 8) == 0 &&
	    (kw[8] == '\0' || kw[8] == ' '))
		c->ehlo_starttls = 1;
	if (strncasecmp(kw, "PIPELINING", 10) == 0 &&
	    (kw[10] == '\0' || kw[10] == ' '))
		c->ehlo_pipelining = 1;
}

static void
accepted(struct conn *c)
{
	struct worker *w = c->w;
	uint64_t t = now_us();
	c->done_on_conn++;
	w->last_accept_us = t;
	if (t < t_window) {
		w->early++;
	} else if (opt.count == 0 && t >= t_end) {
		w->late++;
	} else {
		w->accepted++;
		hist_add(&w->lat, t - c->t_dot);
	}
}

/* A complete reply (its last line) arrived in state c->st. */
static void
reply_done(struct conn *c, int code, const char *line)
{
	bool ok = code >= 200 && code < 400;
	if (!ok && c->st != C_QUIT) {
		reply_error(c, code, line);
		return;
	}
	switch (c->st) {
	case C_BANNER:
		if (code != 220)
			goto unexpected;
		send_ehlo(c, C_EHLO);
		break;
	case C_EHLO:
		if (code != 250)
			goto unexpected;
		if (!opt.starttls) {
			send_mail(c);
		} else if (!c->ehlo_starttls) {
			conn_fail(c, "ehlo: no STARTTLS", line);
		} else {
			c->st = C_STARTTLS;
			if (conn_queuef(c, "STARTTLS\r\n") < 0)
				conn_fail(c, "internal", "output buffer full");
		}
		break;
	case C_STARTTLS:
		if (code != 220)
			goto unexpected;
		tls_start(c);
		break;
	case C_EHLO_TLS:
		if (code != 250)
			goto unexpected;
		send_mail(c);
		break;
	case C_MAIL:
		if (code != 250)
			goto unexpected;
		c->st = C_RCPT;
		if (!(opt.pipelining && c->ehlo_pipelining) &&
		    conn_queuef(c, "RCPT TO:<%s>\r\n", opt.rcpt) < 0)
			conn_fail(c, "internal", "output buffer full");
		break;
	case C_RCPT:
		if (code != 250 && code != 251)
			goto unexpected;
		c->st = C_DATA;
		if (!(opt.pipelining && c->ehlo_pipelining) &&
		    conn_queuef(c, "DATA\r\n") < 0)
			conn_fail(c, "internal", "output buffer full");
		break;
	case C_DATA:
		if (code != 354)
			goto unexpected;
		send_message(c);
		break;
	case C_DOT:
		if (code != 250)
			goto unexpected;
		accepted(c);
		send_mail(c);
		break;
	case C_QUIT:
		conn_close(c);
		break;
	default:
		goto unexpected;
	}
	return;
unexpected:
	reply_error(c, code, line);
}

/*
 * Take complete lines out of c->in.  Returns -1 when the connection was
 * closed while handling them: the slot may already hold a new connection,
 * which the caller must leave alone.
 */
static int
parse_replies(struct conn *c)
{
	unsigned gen = c->gen;
	size_t start = 0;
	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		if (nl == NULL)
			break;
		char *line = c->in + start;
		size_t len = (size_t)(nl - line);
		start += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		if (len < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (len > 3 && line[3] != ' ' &&
				      line[3] != '-')) {
			conn_fail(c, "protocol: malformed reply", line);
			return -1;
		}
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			   (line[2] - '0');
		if (len > 3 && line[3] == '-') {
			if (c->st == C_EHLO || c->st == C_EHLO_TLS)
				ehlo_keyword(c, line);
			continue;
		}
		if ((c->st == C_EHLO || c->st == C_EHLO_TLS) && len > 4)
			ehlo_keyword(c, line);
		/* A pipelined reply may arrive behind this one in the buffer;
		 * keep the line before the buffer moves under it. */
		char copy[LG_INBUF];
		memcpy(copy, line, len + 1);
		line = copy;
		size_t rest = c->inlen - start;
		memmove(c->in, c->in + start, rest);
		c->inlen = rest;
		start = 0;
		if (c->st == C_STARTTLS && code == 220 && rest != 0) {
			conn_fail(c, "starttls",
				  "plaintext after 220 to STARTTLS");
			return -1;
		}
		reply_done(c, code, line);
		if (c->gen != gen)
			return -1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == sizeof c->in) {
		conn_fail(c, "protocol: reply line too long", "");
		return -1;
	}
	return 0;
}

/* Read what is there.  -1: connection gone (handled). */
static int
conn_read(struct conn *c)
{
	for (;;) {
		size_t room = sizeof c->in - c->inlen;
		if (room == 0)
			return parse_replies(c);
		if (c->ssl != NULL) {
			size_t n = 0;
			ERR_clear_error();
			errno = 0;
			int r = SSL_read_ex(c->ssl, c->in + c->inlen, room, &n);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return 0;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->want_write = true;
					conn_set_write(c, true);
					return 0;
				}
				if (e == SSL_ERROR_ZERO_RETURN) {
					conn_fail(c, "read: peer closed", "close_notify");
					return -1;
				}
				char buf[160];
				c->tls_fatal = true;
				tls_error_text(buf, sizeof buf, "SSL_read");
				conn_fail(c, "read: tls", buf);
				return -1;
			}
			c->inlen += n;
		} else {
			ssize_t n = recv(c->fd, c->in + c->inlen, room, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				char key[64];
				snprintf(key, sizeof key, "read: %s", strerror(errno));
				conn_fail(c, key, strerror(errno));
				return -1;
			}
			if (n == 0) {
				conn_fail(c, "read: peer closed", "EOF");
				return -1;
			}
			c->inlen += (size_t)n;
		}
		if (parse_replies(c) < 0)
			return -1;
		if (c->st == C_HANDSHAKE)
			return 0;		/* the SSL object took over */
	}
}

/* ------------------------------------------------ connection lifecycle */

static void
conn_reset(struct conn *c)
{
	if (c->ssl != NULL) {
		/* A close_notify keeps the session resumable (OpenSSL marks
		 * sessions of unclean closes as not resumable). */
		ERR_clear_error();
		if (!c->tls_fatal)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		event_del(c->ev_read);
		event_del(c->ev_write);
		close(c->fd);
		c->fd = -1;
	}
	evtimer_del(c->ev_timer);
	c->gen++;
	c->write_armed = c->want_write = c->tls_fatal = false;
	c->inlen = c->outlen = c->outoff = 0;
	c->done_on_conn = 0;
	c->st = C_IDLE;
}

static void
worker_conn_finished(struct worker *w)
{
	if (w->open > 0)
		w->open--;
	if (w->open == 0)
		event_base_loopexit(w->base, NULL);
}

/* After QUIT, or at the end: open the next connection or retire the slot. */
static void
conn_close(struct conn *c)
{
	conn_reset(c);
	if (worker_may_start(c->w))
		conn_open(c);
	else
		worker_conn_finished(c->w);
}

static void
conn_fail(struct conn *c, const char *key, const char *example)
{
	c->w->errors++;
	err_record(key, example);
	conn_reset(c);
	if (worker_may_start(c->w))
		conn_arm_timer(c, LG_RECONNECT_MS);
	else
		worker_conn_finished(c->w);
}

static void
conn_open(struct conn *c)
{
	int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	if (fd < 0) {
		conn_fail(c, "connect: socket", strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	c->w->connections++;
	event_assign(c->ev_read, c->w->base, fd, EV_READ | EV_PERSIST,
		     conn_event, c);
	event_assign(c->ev_write, c->w->base, fd, EV_WRITE | EV_PERSIST,
		     conn_event, c);
	event_add(c->ev_read, NULL);
	conn_arm_timer(c, (uint64_t)opt.timeout_s * 1000);
	if (connect(fd, (struct sockaddr *)&peer, peerlen) < 0 &&
	    errno != EINPROGRESS) {
		char key[64];
		snprintf(key, sizeof key, "connect: %s", strerror(errno));
		conn_fail(c, key, strerror(errno));
		return;
	}
	c->st = C_CONNECTING;
	conn_set_write(c, true);
}

static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		char key[64];
		snprintf(key, sizeof key, "connect: %s", strerror(err));
		conn_fail(c, key, strerror(err));
		return;
	}
	c->st = C_BANNER;
	conn_set_write(c, false);
}

static void
conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	unsigned gen = c->gen;
	(void)fd;
	if (c->st == C_CONNECTING) {
		conn_connected(c);
		if (c->gen != gen)
			return;
	}
	if (what & EV_WRITE)
		c->want_write = false;	/* the operation that wanted it retries */
	enum cstate before = c->st;
	if (c->st == C_HANDSHAKE)
		tls_handshake(c);
	else
		conn_read(c);
	if (c->gen != gen)
		return;
	if (conn_flush(c) < 0)
		return;
	/* Progress restarts the reply timeout. */
	if (c->st != before || (what & EV_READ))
		conn_arm_timer(c, (uint64_t)opt.timeout_s * 1000);
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->st == C_IDLE) {
		if (worker_may_start(c->w))
			conn_open(c);
		else
			worker_conn_finished(c->w);
		return;
	}
	char key[64];
	snprintf(key, sizeof key, "%s: timeout", cstate_name[c->st]);
	conn_fail(c, key, "no reply within the timeout");
}

/* ----------------------------------------------------------- workers */

static void
worker_grace(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	for (unsigned i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->st != C_IDLE) {
			char key[64];
			snprintf(key, sizeof key, "%s: still waiting at the end",
				 cstate_name[c->st]);
			err_record(key, "cut off after the grace period");
			w->errors++;
		}
	}
	event_base_loopexit(w->base, NULL);
}

static void
worker_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	w->stopping = true;
	/* Slots pausing before a reconnect are done now. */
	for (unsigned i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->st == C_IDLE && evtimer_pending(c->ev_timer, NULL)) {
			evtimer_del(c->ev_timer);
			worker_conn_finished(w);
		}
	}
	struct timeval tv = { LG_GRACE_S, 0 };
	evtimer_add(w->ev_grace, &tv);
}

static void
worker_start(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	for (unsigned i = 0; i < w->n_conns; i++) {
		if (worker_may_start(w))
			conn_open(&w->conns[i]);
		else
			worker_conn_finished(w);
	}
}

static int
worker_init(struct worker *w, unsigned idx, unsigned n_conns, uint64_t quota)
{
	memset(w, 0, sizeof *w);
	w->idx = idx;
	w->quota = quota;
	w->n_conns = w->open = n_conns;
	w->base = event_base_new();
	w->conns = calloc(n_conns, sizeof *w->conns);
	if (w->base == NULL || w->conns == NULL)
		return -1;
	for (unsigned i = 0; i < n_conns; i++) {
		struct conn *c = &w->conns[i];
		c->w = w;
		c->slot = i;
		c->fd = -1;
		c->outcap = msg_len + LG_CMDROOM;
		c->out = malloc(c->outcap);
		c->ev_read = event_new(w->base, -1, 0, conn_event, c);
		c->ev_write = event_new(w->base, -1, 0, conn_event, c);
		c->ev_timer = evtimer_new(w->base, conn_timer, c);
		if (c->out == NULL || c->ev_read == NULL || c->ev_write == NULL ||
		    c->ev_timer == NULL)
			return -1;
	}
	w->ev_start = evtimer_new(w->base, worker_start, w);
	w->ev_stop = evtimer_new(w->base, worker_stop, w);
	w->ev_grace = evtimer_new(w->base, worker_grace, w);
	if (w->ev_start == NULL || w->ev_stop == NULL || w->ev_grace == NULL)
		return -1;
	return 0;
}

static void
worker_free(struct worker *w)
{
	for (unsigned i = 0; w->conns != NULL && i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		conn_reset(c);
		if (c->sess != NULL)
			SSL_SESSION_free(c->sess);
		event_free(c->ev_read);
		event_free(c->ev_write);
		event_free(c->ev_timer);
		free(c->out);
	}
	free(w->conns);
	if (w->ev_start)
		event_free(w->ev_start);
	if (w->ev_stop)
		event_free(w->ev_stop);
	if (w->ev_grace)
		event_free(w->ev_grace);
	if (w->base)
		event_base_free(w->base);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct timeval zero = { 0, 0 };
	evtimer_add(w->ev_start, &zero);
	if (opt.count == 0) {
		uint64_t ms = (t_end - now_us()) / 1000;
		struct timeval tv = { (time_t)(ms / 1000),
				      (suseconds_t)(ms % 1000) * 1000 };
		evtimer_add(w->ev_stop, &tv);
	}
	event_base_dispatch(w->base);
	return NULL;
}

/* ------------------------------------------------------------ set-up */

static int
resolve_peer(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int r = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "loadgen: %s:%s: %s\n", opt.host, opt.port,
			gai_strerror(r));
		return -1;
	}
	memcpy(&peer, res->ai_addr, res->ai_addrlen);
	peerlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int
tls_init(void)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Sessions live in the connection slots, not in OpenSSL's cache. */
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_CLIENT |
						    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(tls_ctx, tls_new_session);
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: loadgen [options]\n"
		"  --host ADDR                 server address (127.0.0.1)\n"
		"  --port N                    server port (2525)\n"
		"  --clients N                 concurrent connections (20)\n"
		"  --threads N                 event loops to spread them over (1)\n"
		"  --messages-per-connection K messages before QUIT and reconnect (10)\n"
		"  --duration S                measured seconds (10)\n"
		"  --warmup S                  seconds run before measuring (0)\n"
		"  --count N                   send N messages instead of a duration\n"
		"  --size BYTES                message size incl. headers (4096)\n"
		"  --starttls                  EHLO, STARTTLS, EHLO before mail\n"
		"  --pipelining                send MAIL, RCPT, DATA together (RFC 2920)\n"
		"  --timeout S                 reply timeout (30)\n"
		"  --from ADDR --rcpt ADDR --helo NAME   the envelope\n"
		"  --label TEXT                copied into the JSON output\n"
		"  --json                      print one JSON object at the end\n");
}

static int
parse_uint(const char *s, const char *name, uint64_t min, uint64_t max,
	   uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "loadgen: --%s: expected a number from %" PRIu64
				" to %" PRIu64 ", got '%s'\n",
			name, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_seconds(const char *s, const char *name, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0 || v > 86400) {
		fprintf(stderr, "loadgen: --%s: expected seconds, got '%s'\n",
			name, s);
		return -1;
	}
	*out = v;
	return 0;
}

enum { O_HOST = 256, O_PORT, O_CLIENTS, O_THREADS, O_PERCONN, O_DURATION,
       O_WARMUP, O_COUNT, O_SIZE, O_STARTTLS, O_PIPE, O_TIMEOUT, O_FROM,
       O_RCPT, O_HELO, O_LABEL, O_JSON, O_HELP };

static const struct option longopts[] = {
	{ "host", required_argument, NULL, O_HOST },
	{ "port", required_argument, NULL, O_PORT },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "messages-per-connection", required_argument, NULL, O_PERCONN },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "count", required_argument, NULL, O_COUNT },
	{ "size", required_argument, NULL, O_SIZE },
	{ "starttls", no_argument, NULL, O_STARTTLS },
	{ "pipelining", no_argument, NULL, O_PIPE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "from", required_argument, NULL, O_FROM },
	{ "rcpt", required_argument, NULL, O_RCPT },
	{ "helo", required_argument, NULL, O_HELO },
	{ "label", required_argument, NULL, O_LABEL },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static int
parse_args(int argc, char **argv)
{
	int ch;
	uint64_t v;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case O_HOST: opt.host = optarg; break;
		case O_PORT: opt.port = optarg; break;
		case O_CLIENTS:
			if (parse_uint(optarg, "clients", 1, 100000, &v) < 0)
				return -1;
			opt.clients = (unsigned)v;
			break;
		case O_THREADS:
			if (parse_uint(optarg, "threads", 1, 64, &v) < 0)
				return -1;
			opt.threads = (unsigned)v;
			break;
		case O_PERCONN:
			if (parse_uint(optarg, "messages-per-connection", 1,
				       1000000, &v) < 0)
				return -1;
			opt.per_conn = (unsigned)v;
			break;
		case O_DURATION:
			if (parse_seconds(optarg, "duration", &opt.duration_s) < 0)
				return -1;
			break;
		case O_WARMUP:
			if (parse_seconds(optarg, "warmup", &opt.warmup_s) < 0)
				return -1;
			break;
		case O_COUNT:
			if (parse_uint(optarg, "count", 1, UINT64_MAX / 2, &opt.count) < 0)
				return -1;
			break;
		case O_SIZE:
			if (parse_uint(optarg, "size", 512, 64 << 20, &v) < 0)
				return -1;
			opt.size = (size_t)v;
			break;
		case O_STARTTLS: opt.starttls = true; break;
		case O_PIPE: opt.pipelining = true; break;
		case O_TIMEOUT:
			if (parse_uint(optarg, "timeout", 1, 3600, &v) < 0)
				return -1;
			opt.timeout_s = (unsigned)v;
			break;
		case O_FROM: opt.from = optarg; break;
		case O_RCPT: opt.rcpt = optarg; break;
		case O_HELO: opt.helo = optarg; break;
		case O_LABEL: opt.label = optarg; break;
		case O_JSON: opt.json = true; break;
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "loadgen: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (opt.count == 0 && opt.duration_s <= 0) {
		fprintf(stderr, "loadgen: give --duration or --count\n");
		return -1;
	}
	if (opt.threads > opt.clients)
		opt.threads = opt.clients;
	return 0;
}

/* ----------------------------------------------------------- results */

struct totals {
	struct hist lat;
	uint64_t accepted, late, early, errors, connections, handshakes, resumed;
	uint64_t last_accept_us;
	double seconds;
	double cpu_ms;
};

static double
cpu_ms_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
	       (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

static void
json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void
print_results(const struct totals *t)
{
	double rate = t->seconds > 0 ? (double)t->accepted / t->seconds : 0;
	double p50 = (double)hist_quantile(&t->lat, 0.50) / 1000.0;
	double p99 = (double)hist_quantile(&t->lat, 0.99) / 1000.0;
	double max = (double)t->lat.max / 1000.0;
	uint64_t all = t->accepted + t->late + t->early;
	double cpu = all > 0 ? t->cpu_ms / (double)all : 0;
	if (!opt.json) {
		printf("%s%s%s:%s  clients=%u threads=%u tls=%s pipelining=%s "
		       "msgs/conn=%u size=%zu\n",
		       opt.label, *opt.label ? "  " : "", opt.host, opt.port,
		       opt.clients, opt.threads, opt.starttls ? "starttls" : "no",
		       opt.pipelining ? "yes" : "no", opt.per_conn, msg_len);
		printf("  accepted   %" PRIu64 " in %.2f s = %.1f msgs/s "
		       "(+%" PRIu64 " warm-up, +%" PRIu64 " after the end)\n",
		       t->accepted, t->seconds, rate, t->early, t->late);
		printf("  latency    dot->250 p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		       p50, p99, max);
		printf("  sessions   %" PRIu64 " connections, %" PRIu64
		       " TLS handshakes (%" PRIu64 " resumed)\n",
		       t->connections, t->handshakes, t->resumed);
		printf("  client cpu %.3f ms/msg\n", cpu);
		printf("  errors     %" PRIu64 "\n", t->errors);
		for (unsigned i = 0; i < n_errkinds; i++)
			printf("    %8" PRIu64 "  %s  (%s)\n", errkinds[i].count,
			       errkinds[i].key, errkinds[i].example);
		if (errors_other)
			printf("    %8" PRIu64 "  (other kinds)\n", errors_other);
		return;
	}
	printf("{\"label\":");
	json_string(stdout, opt.label);
	printf(",\"host\":");
	json_string(stdout, opt.host);
	printf(",\"port\":");
	json_string(stdout, opt.port);
	printf(",\"clients\":%u,\"threads\":%u,\"starttls\":%s,\"pipelining\":%s,"
	       "\"messages_per_connection\":%u,\"size\":%zu,\"seconds\":%.3f,"
	       "\"accepted\":%" PRIu64 ",\"warmup_accepted\":%" PRIu64
	       ",\"late\":%" PRIu64 ",\"rate\":%.2f,\"lat_p50_ms\":%.3f,"
	       "\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,\"connections\":%" PRIu64
	       ",\"tls_handshakes\":%" PRIu64 ",\"tls_resumed\":%" PRIu64
	       ",\"client_cpu_ms_per_msg\":%.4f,\"errors\":%" PRIu64
	       ",\"error_kinds\":[",
	       opt.clients, opt.threads, opt.starttls ? "true" : "false",
	       opt.pipelining ? "true" : "false", opt.per_conn, msg_len,
	       t->seconds, t->accepted, t->early, t->late, rate, p50, p99, max,
	       t->connections, t->handshakes, t->resumed, cpu, t->errors);
	for (unsigned i = 0; i < n_errkinds; i++) {
		printf("%s{\"kind\":", i ? "," : "");
		json_string(stdout, errkinds[i].key);
		printf(",\"example\":");
		json_string(stdout, errkinds[i].example);
		printf(",\"count\":%" PRIu64 "}", errkinds[i].count);
	}
	printf("]}\n");
}

int
main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (resolve_peer() < 0 || message_build() < 0 || tls_init() < 0) {
		fprintf(stderr, "loadgen: set-up failed\n");
		return 1;
	}
	struct worker *workers = calloc(opt.threads, sizeof *workers);
	if (workers == NULL)
		return 1;
	for (unsigned i = 0; i < opt.threads; i++) {
		unsigned n = opt.clients / opt.threads +
			     (i < opt.clients % opt.threads ? 1 : 0);
		uint64_t quota = opt.count / opt.threads +
				 (i < opt.count % opt.threads ? 1 : 0);
		if (worker_init(&workers[i], i, n, quota) < 0) {
			fprintf(stderr, "loadgen: out of memory\n");
			return 1;
		}
	}
	double cpu0 = cpu_ms_self();
	t_begin = now_us();
	t_window = t_begin + (uint64_t)(opt.warmup_s * 1e6);
	t_end = opt.count ? UINT64_MAX : t_window + (uint64_t)(opt.duration_s * 1e6);
	for (unsigned i = 0; i < opt.threads; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main,
				   &workers[i]) != 0) {
			fprintf(stderr, "loadgen: cannot start a thread\n");
			return 1;
		}
	}
	struct totals t;
	memset(&t, 0, sizeof t);
	for (unsigned i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];
		pthread_join(w->thread, NULL);
		hist_merge(&t.lat, &w->lat);
		t.accepted += w->accepted;
		t.late += w->late;
		t.early += w->early;
		t.errors += w->errors;
		t.connections += w->connections;
		t.handshakes += w->handshakes;
		t.resumed += w->resumed;
		if (w->last_accept_us > t.last_accept_us)
			t.last_accept_us = w->last_accept_us;
	}
	t.cpu_ms = cpu_ms_self() - cpu0;
	if (opt.count)
		t.seconds = t.last_accept_us > t_window ?
				    (double)(t.last_accept_us - t_window) / 1e6 : 0;
	else
		t.seconds = opt.duration_s;
	print_results(&t);
	for (unsigned i = 0; i < opt.threads; i++)
		worker_free(&workers[i]);
	free(workers);
	SSL_CTX_free(tls_ctx);
	free(msg_tmpl);
	return t.accepted > 0 && t.errors == 0 ? 0 : 1;
}
