/*
 * io: an opaque buffered connection on the libevent loop, in clear text or
 * TLS, with OpenSSL driven directly over the non-blocking socket (no
 * bufferevent_openssl: its OpenSSL 3 EOF handling has known quirks).
 * See io.h for the public functions and the events they produce.
 *
 * How it works:
 *   - One libevent event per direction on the socket (EV_READ, EV_WRITE),
 *     registered only while needed, one timer for the inactivity timeout
 *     and one "kick" event to run the dispatcher from the loop when no
 *     socket readiness will come (TLS bytes already decrypted and held by
 *     OpenSSL, SSL_pending; a connect that finished at once).
 *   - A TLS read may need the socket to be writable and a TLS write may need
 *     it readable (renegotiation, key updates, TLS 1.3 tickets): what each
 *     side waits for is kept in read_wants / write_wants and turned into
 *     registrations in io_update_events(), the one place that maps
 *     SSL_ERROR_WANT_READ/WANT_WRITE to events.
 *   - Input: one buffer of at most IO_INPUT_MAX bytes, allocated on demand
 *     and released when the owner has consumed everything (so an idle
 *     connection holds no input memory).  Reading stops while it is full
 *     and resumes when the owner drops bytes.
 *   - Output: an evbuffer used as a plain byte container, flushed with
 *     send(MSG_NOSIGNAL) or SSL_write when the socket is writable.
 *   - Starting TLS discards all buffered input and whatever already waits
 *     in the socket (STARTTLS command/response injection, RFC 3207 §5,
 *     CVE-2011-0411, case C01/C02): nothing received before the handshake
 *     is ever delivered after it.  Output queued before the start is sent
 *     in clear first (the "220 Ready" reply), anything later inside TLS.
 *   - The owner may io_free() from inside its callback.  Every entry from
 *     the loop counts itself in in_cb; io_free() then only closes the
 *     socket and marks the io freed, and the memory is released when the
 *     outermost entry returns, so io code never touches freed memory.
 *   - OpenSSL's thread-local error queue is cleared before every SSL_* call
 *     and drained into io_error() after a failure.
 *
 * The process must ignore SIGPIPE: OpenSSL writes with write(2).
 */
#include "net/io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util/log.h"

#define IO_INPUT_FIRST 4096    /* first allocation of the input buffer */
#define IO_READS_PER_EVENT 8   /* fairness: reads per dispatch */
#define IO_TLS_WRITE_MAX 16384 /* one TLS record */
#define IO_CLEAR_WRITE_MAX (64 * 1024) /* one send(2) */
#define IO_DISCARD_MAX (256 * 1024)    /* socket bytes drained at TLS start */

enum io_state {
	IO_STATE_CONNECTING, /* io_connect() in progress */
	IO_STATE_CLEAR,	     /* clear text */
	IO_STATE_HANDSHAKE,  /* TLS handshake in progress */
	IO_STATE_TLS,	     /* TLS established */
	IO_STATE_CLOSED,     /* io_free() called, or a fatal error */
};

struct io {
	struct event_base *base;
	int fd;
	io_callback *cb;
	void *arg;
	enum io_state state;

	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;
	struct event *ev_kick;
	bool read_added;
	bool write_added;

	SSL *ssl;
	short read_wants;  /* what SSL_read waits for: EV_READ/EV_WRITE */
	short write_wants; /* what SSL_write waits for */
	short hs_wants;	   /* what the handshake waits for */
	size_t tls_wlen;   /* length of an SSL_write to repeat, or 0 */
	size_t clear_left; /* output bytes still to send in clear at TLS start
			    */

	uint8_t *in;
	size_t in_off;
	size_t in_len;
	size_t in_cap;

	struct evbuffer *out;
	size_t lowat;
	int timeout_ms;

	bool paused;	   /* the owner paused input */
	bool eof;	   /* the peer closed; no more reading */
	int connect_errno; /* io_connect(): connect(2) failed at once */
	size_t discarded;
	uint64_t clear_in; /* bytes ever received in clear text */
	int in_cb;	   /* nesting of entries from the loop */
	bool freed;	   /* io_free() called while in_cb > 0 */
	char error[256];
};

static void io_on_event(evutil_socket_t fd, short what, void *arg);
static void io_on_timer(evutil_socket_t fd, short what, void *arg);
static void io_on_kick(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------------------- errors */

/* Record "what: reason; reason" from errno or the OpenSSL error queue. */
static void
io_set_errno_error(struct io *io, const char *what, int err)
{
	snprintf(io->error, sizeof io->error, "%s: %s", what, strerror(err));
}

static void
io_set_tls_error(struct io *io, const char *what, int sslerr)
{
	size_t o = 0;
	unsigned long e;
	int n;

	n = snprintf(io->error, sizeof io->error, "%s", what);
	o = n < 0 ? 0 : (size_t)n;
	while ((e = ERR_get_error()) != 0) {
		char reason[160];

		if (o + 4 >= sizeof io->error)
			continue; /* keep draining the queue */
		ERR_error_string_n(e, reason, sizeof reason);
		n = snprintf(io->error + o, sizeof io->error - o, "%s %s",
			     o == strlen(what) ? ":" : ";", reason);
		if (n > 0)
			o += (size_t)n;
		if (o >= sizeof io->error)
			o = sizeof io->error - 1;
	}
	if (o == strlen(what)) {
		if (sslerr == SSL_ERROR_SYSCALL && errno != 0)
			snprintf(io->error + o, sizeof io->error - o, ": %s",
				 strerror(errno));
		else
			snprintf(io->error + o, sizeof io->error - o,
				 ": SSL error %d", sslerr);
	}
}

/* ----------------------------------------------------------- registration */

static bool
io_reading_enabled(const struct io *io)
{
	return !io->paused && !io->eof && io->in_len < IO_INPUT_MAX;
}

static void
io_set_event(struct event *ev, bool *added, bool want)
{
	if (want && !*added) {
		event_add(ev, NULL);
		*added = true;
	} else if (!want && *added) {
		event_del(ev);
		*added = false;
	}
}

/*
 * The one place where "what the connection waits for" becomes event
 * registrations, including the TLS cases where a read waits for
 * writability or a write for readability.
 */
static void
io_update_events(struct io *io)
{
	short want = 0;
	bool out_pending = evbuffer_get_length(io->out) > 0;

	switch (io->state) {
	case IO_STATE_CONNECTING:
		want = EV_WRITE;
		break;
	case IO_STATE_HANDSHAKE:
		want = io->clear_left > 0 ? EV_WRITE : io->hs_wants;
		break;
	case IO_STATE_CLEAR:
		if (io_reading_enabled(io))
			want |= EV_READ;
		if (out_pending)
			want |= EV_WRITE;
		break;
	case IO_STATE_TLS:
		if (io_reading_enabled(io))
			want |= io->read_wants;
		if (out_pending)
			want |= io->write_wants;
		break;
	case IO_STATE_CLOSED:
		break;
	}
	io_set_event(io->ev_read, &io->read_added, (want & EV_READ) != 0);
	io_set_event(io->ev_write, &io->write_added, (want & EV_WRITE) != 0);
}

/* Run the dispatcher from the loop soon, whatever the socket does. */
static void
io_kick(struct io *io)
{
	if (io->state != IO_STATE_CLOSED)
		event_active(io->ev_kick, EV_READ | EV_WRITE, 0);
}

static void
io_progress(struct io *io)
{
	if (io->timeout_ms > 0) {
		struct timeval tv = {io->timeout_ms / 1000,
				     (io->timeout_ms % 1000) * 1000};
		evtimer_add(io->ev_timer, &tv);
	}
}

/* Call the owner.  false: the owner freed the io; stop touching it. */
static bool
io_emit(struct io *io, enum io_event event)
{
	io->cb(io, event, io->arg);
	return !io->freed;
}

/* A fatal condition: stop all activity, then tell the owner. */
static void
io_fail(struct io *io, enum io_event event)
{
	io->state = IO_STATE_CLOSED;
	io_update_events(io);
	evtimer_del(io->ev_timer);
	io_emit(io, event);
}

/* ------------------------------------------------------------------ input */

/* Room for at least some bytes at the end of the input buffer. */
static int
io_input_reserve(struct io *io)
{
	if (io->in_off > 0 && io->in_len > 0)
		memmove(io->in, io->in + io->in_off, io->in_len);
	io->in_off = 0;
	if (io->in_cap - io->in_len >= 1024 || io->in_cap >= IO_INPUT_MAX)
		return 0;
	size_t cap = io->in_cap == 0 ? IO_INPUT_FIRST : io->in_cap * 2;
	if (cap > IO_INPUT_MAX)
		cap = IO_INPUT_MAX;
	uint8_t *p = realloc(io->in, cap);
	if (p == NULL)
		return -1;
	io->in = p;
	io->in_cap = cap;
	return 0;
}

static size_t
io_input_space(const struct io *io)
{
	size_t room = io->in_cap - io->in_off - io->in_len;
	size_t limit = IO_INPUT_MAX - io->in_len;
	return room < limit ? room : limit;
}

/* One read into the input buffer: >0 bytes, 0 EOF, -1 errno (EAGAIN too). */
static ssize_t
io_read_clear(struct io *io, uint8_t *dst, size_t len)
{
	ssize_t n;

	do {
		n = recv(io->fd, dst, len, 0);
	} while (n < 0 && errno == EINTR);
	return n;
}

enum io_step { IO_STEP_AGAIN, IO_STEP_WAIT, IO_STEP_STOP };

/* After n > 0 new bytes: account for them and tell the owner. */
static enum io_step
io_got_input(struct io *io, size_t n)
{
	io->in_len += n;
	if (io->state == IO_STATE_CLEAR)
		io->clear_in += n;
	io_progress(io);
	return io_emit(io, IO_DATAIN) ? IO_STEP_AGAIN : IO_STEP_STOP;
}

static enum io_step
io_read_once_clear(struct io *io)
{
	if (io_input_reserve(io) < 0) {
		io_set_errno_error(io, "read", ENOMEM);
		io_fail(io, IO_ERROR);
		return IO_STEP_STOP;
	}
	ssize_t n = io_read_clear(io, io->in + io->in_len, io_input_space(io));
	if (n > 0)
		return io_got_input(io, (size_t)n);
	if (n == 0) {
		io->eof = true;
		io_fail(io, IO_DISCONNECTED);
		return IO_STEP_STOP;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return IO_STEP_WAIT;
	io_set_errno_error(io, "read", errno);
	io_fail(io, IO_ERROR);
	return IO_STEP_STOP;
}

/*
 * A TLS read.  OpenSSL 3 reports an EOF without close_notify as an
 * SSL_ERROR_SSL "unexpected eof"; for SMTP, whose own framing detects
 * truncation, that is an ordinary disconnection.
 */
static enum io_step
io_read_once_tls(struct io *io)
{
	if (io_input_reserve(io) < 0) {
		io_set_errno_error(io, "read", ENOMEM);
		io_fail(io, IO_ERROR);
		return IO_STEP_STOP;
	}
	size_t space = io_input_space(io);
	int want = space > INT32_MAX ? INT32_MAX : (int)space;
	ERR_clear_error();
	errno = 0;
	int n = SSL_read(io->ssl, io->in + io->in_len, want);
	if (n > 0)
		return io_got_input(io, (size_t)n);
	int err = SSL_get_error(io->ssl, n);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		io->read_wants = EV_READ;
		return IO_STEP_WAIT;
	case SSL_ERROR_WANT_WRITE:
		io->read_wants = EV_WRITE;
		return IO_STEP_WAIT;
	case SSL_ERROR_ZERO_RETURN:
		io->eof = true;
		io_fail(io, IO_DISCONNECTED);
		return IO_STEP_STOP;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0) {
			io->eof = true;
			io_fail(io, IO_DISCONNECTED);
			return IO_STEP_STOP;
		}
		break;
	case SSL_ERROR_SSL:
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			io->eof = true;
			io_fail(io, IO_DISCONNECTED);
			return IO_STEP_STOP;
		}
		break;
	default:
		break;
	}
	io_set_tls_error(io, "TLS read", err);
	io_fail(io, IO_ERROR);
	return IO_STEP_STOP;
}

/*
 * Read while there is room, input is wanted and the socket has data, a
 * bounded number of times per dispatch so one fast peer cannot starve the
 * others.  Returns false if the io was freed or closed.
 */
static bool
io_read(struct io *io)
{
	for (int i = 0; i < IO_READS_PER_EVENT; i++) {
		if (!io_reading_enabled(io))
			break;
		enum io_step step = io->state == IO_STATE_TLS
					    ? io_read_once_tls(io)
					    : io_read_once_clear(io);
		if (step == IO_STEP_STOP)
			return false;
		if (step == IO_STEP_WAIT)
			return true;
	}
	/*
	 * Stopped by the bound or by the owner: bytes OpenSSL already holds
	 * give no socket event, so come back for them.
	 */
	if (io->state == IO_STATE_TLS && io_reading_enabled(io) &&
	    SSL_has_pending(io->ssl))
		io_kick(io);
	return true;
}

/* ----------------------------------------------------------------- output */

/*
 * Send at most max bytes in clear: >=0 sent, -1 errno set.  One send(2)
 * of the front of the buffer; replies are small and usually sit in one
 * chain, so making them contiguous costs nothing.  MSG_NOSIGNAL: a peer
 * that went away gives EPIPE, not a signal.
 */
static ssize_t
io_write_clear(struct io *io, size_t max)
{
	size_t len = evbuffer_get_length(io->out);
	if (len > max)
		len = max;
	if (len > IO_CLEAR_WRITE_MAX)
		len = IO_CLEAR_WRITE_MAX;
	const unsigned char *p = evbuffer_pullup(io->out, (ev_ssize_t)len);
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t w;
	do {
		w = send(io->fd, p, len, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w > 0)
		evbuffer_drain(io->out, (size_t)w);
	return w;
}

/* One TLS write of up to one record.  IO_STEP_AGAIN: wrote something. */
static enum io_step
io_write_once_tls(struct io *io)
{
	size_t len = io->tls_wlen;
	if (len == 0) {
		len = evbuffer_get_length(io->out);
		if (len > IO_TLS_WRITE_MAX)
			len = IO_TLS_WRITE_MAX;
	}
	const unsigned char *p = evbuffer_pullup(io->out, (ev_ssize_t)len);
	if (p == NULL) {
		io_set_errno_error(io, "write", ENOMEM);
		io_fail(io, IO_ERROR);
		return IO_STEP_STOP;
	}
	ERR_clear_error();
	errno = 0;
	int n = SSL_write(io->ssl, p, (int)len);
	if (n > 0) {
		evbuffer_drain(io->out, (size_t)n);
		io->tls_wlen = 0;
		return IO_STEP_AGAIN;
	}
	int err = SSL_get_error(io->ssl, n);
	if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
		/* OpenSSL wants the same call repeated (same length). */
		io->tls_wlen = len;
		io->write_wants =
			err == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ;
		return IO_STEP_WAIT;
	}
	io_set_tls_error(io, "TLS write", err);
	io_fail(io, IO_ERROR);
	return IO_STEP_STOP;
}

/* Flush what can be flushed now.  false: the io was freed or closed. */
static bool
io_flush(struct io *io)
{
	size_t before = evbuffer_get_length(io->out);
	if (before == 0)
		return true;
	if (io->state == IO_STATE_TLS) {
		io->write_wants = EV_WRITE;
		for (;;) {
			if (evbuffer_get_length(io->out) == 0)
				break;
			enum io_step step = io_write_once_tls(io);
			if (step == IO_STEP_STOP)
				return false;
			if (step == IO_STEP_WAIT)
				break;
		}
	} else {
		size_t max = io->state == IO_STATE_HANDSHAKE ? io->clear_left
							     : before;
		ssize_t w = io_write_clear(io, max);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			io_set_errno_error(io, "write", errno);
			io_fail(io, IO_ERROR);
			return false;
		}
		if (w > 0 && io->state == IO_STATE_HANDSHAKE)
			io->clear_left -= (size_t)w;
	}
	size_t after = evbuffer_get_length(io->out);
	if (after < before)
		io_progress(io);
	if (before > io->lowat && after <= io->lowat &&
	    io->state != IO_STATE_HANDSHAKE)
		return io_emit(io, IO_LOWAT);
	return true;
}

/* -------------------------------------------------------------- handshake */

/* One handshake step.  false: the io was freed or closed. */
static bool
io_handshake(struct io *io)
{
	ERR_clear_error();
	errno = 0;
	int n = SSL_do_handshake(io->ssl);
	if (n == 1) {
		io->state = IO_STATE_TLS;
		io->read_wants = EV_READ;
		io->write_wants = EV_WRITE;
		io_progress(io);
		/* The caller goes on reading: application data may have come
		 * with the last flight and sit decrypted inside OpenSSL. */
		return io_emit(io, IO_TLSREADY);
	}
	int err = SSL_get_error(io->ssl, n);
	if (err == SSL_ERROR_WANT_READ) {
		io->hs_wants = EV_READ;
		return true;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		io->hs_wants = EV_WRITE;
		return true;
	}
	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
		snprintf(io->error, sizeof io->error,
			 "TLS handshake: connection closed by peer");
	else
		io_set_tls_error(io, "TLS handshake", err);
	io_fail(io, IO_ERROR);
	return false;
}

/* --------------------------------------------------------------- connect */

/* Has the connect finished?  IO_CONNECTED or IO_ERROR when it has. */
static void
io_connect_step(struct io *io)
{
	int err = io->connect_errno;
	if (err == 0) {
		socklen_t len = sizeof err;
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	if (err == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getpeername(io->fd, (struct sockaddr *)&ss, &sl) < 0) {
			if (errno == ENOTCONN)
				return; /* not done yet */
			err = errno;
		}
	}
	if (err != 0) {
		io_set_errno_error(io, "connect", err);
		io_fail(io, IO_ERROR);
		return;
	}
	io->state = IO_STATE_CLEAR;
	io_progress(io);
	io_emit(io, IO_CONNECTED);
}

/* ----------------------------------------------------------- dispatching */

static void
io_dispatch(struct io *io, short what)
{
	switch (io->state) {
	case IO_STATE_CONNECTING:
		io_connect_step(io);
		return;
	case IO_STATE_HANDSHAKE:
		if (io->clear_left > 0) {
			if (!io_flush(io) || io->clear_left > 0)
				return;
		}
		if (!io_handshake(io) || io->state != IO_STATE_TLS)
			return;
		what = EV_READ | EV_WRITE;
		/* FALLTHROUGH */
	case IO_STATE_TLS:
	case IO_STATE_CLEAR: {
		short rw = io->state == IO_STATE_TLS ? io->read_wants : EV_READ;
		short ww =
			io->state == IO_STATE_TLS ? io->write_wants : EV_WRITE;
		if ((what & ww) && !io_flush(io))
			return;
		if (io->state == IO_STATE_CLOSED)
			return;
		if ((what & rw) && !io_read(io))
			return;
		return;
	}
	case IO_STATE_CLOSED:
		return;
	}
}

static void io_release(struct io *io);

/* Every entry from the loop goes through here (re-entrancy guard). */
static void
io_enter(struct io *io, short what)
{
	io->in_cb++;
	io_dispatch(io, what);
	io->in_cb--;
	if (io->freed) {
		if (io->in_cb == 0)
			io_release(io);
		return;
	}
	io_update_events(io);
}

static void
io_on_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	io_enter(arg, what);
}

static void
io_on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	io_enter(arg, EV_READ | EV_WRITE);
}

static void
io_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)fd;
	(void)what;
	if (io->state == IO_STATE_CLOSED)
		return;
	io->in_cb++;
	io_emit(io, IO_TIMEOUT);
	io->in_cb--;
	if (io->freed) {
		if (io->in_cb == 0)
			io_release(io);
		return;
	}
	io_update_events(io);
}

/* ------------------------------------------------------------ public API */

static struct io *
io_alloc(struct event_base *base, int fd, io_callback *cb, void *arg)
{
	struct io *io = calloc(1, sizeof *io);
	if (io == NULL)
		return NULL;
	io->base = base;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	io->state = IO_STATE_CLEAR;
	io->read_wants = EV_READ;
	io->write_wants = EV_WRITE;
	io->hs_wants = EV_READ;
	io->out = evbuffer_new();
	io->ev_read =
		event_new(base, fd, EV_READ | EV_PERSIST, io_on_event, io);
	io->ev_write =
		event_new(base, fd, EV_WRITE | EV_PERSIST, io_on_event, io);
	io->ev_timer = evtimer_new(base, io_on_timer, io);
	io->ev_kick = event_new(base, -1, 0, io_on_kick, io);
	if (io->out == NULL || io->ev_read == NULL || io->ev_write == NULL ||
	    io->ev_timer == NULL || io->ev_kick == NULL) {
		io->fd = -1; /* the caller still owns fd */
		io_release(io);
		errno = ENOMEM;
		return NULL;
	}
	return io;
}

/*
 * SMTP is a dialogue of small writes: with Nagle's algorithm a reply
 * written in pieces (TLS 1.3 tickets, then the EHLO reply) waits for the
 * peer's delayed ACK, 40 ms per round trip.  We flush whole replies
 * ourselves, so Nagle only adds latency.  Not a TCP socket (a socketpair
 * in tests): nothing to do.
 */
static void
io_nodelay(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct io *
io_new(struct event_base *base, int fd, io_callback *cb, void *arg)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return NULL;
	io_nodelay(fd);
	struct io *io = io_alloc(base, fd, cb, arg);
	if (io == NULL)
		return NULL;
	io_update_events(io);
	return io;
}

struct io *
io_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
	   io_callback *cb, void *arg)
{
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	io_nodelay(fd);
	struct io *io = io_alloc(base, fd, cb, arg);
	if (io == NULL) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	io->state = IO_STATE_CONNECTING;
	if (connect(fd, sa, salen) == 0) {
		io_kick(io); /* IO_CONNECTED from the loop, never from here */
	} else if (errno == EINPROGRESS || errno == EINTR) {
		io_update_events(io);
	} else {
		io->connect_errno = errno;
		io_kick(io);
	}
	return io;
}

static void
io_close(struct io *io)
{
	if (io->ev_read != NULL)
		io_set_event(io->ev_read, &io->read_added, false);
	if (io->ev_write != NULL)
		io_set_event(io->ev_write, &io->write_added, false);
	if (io->ev_timer != NULL)
		evtimer_del(io->ev_timer);
	if (io->ev_kick != NULL)
		event_del(io->ev_kick);
	if (io->ssl != NULL && io->state == IO_STATE_TLS && !io->eof) {
		/* One non-blocking attempt to send close_notify. */
		ERR_clear_error();
		SSL_shutdown(io->ssl);
		ERR_clear_error();
	}
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
	io->state = IO_STATE_CLOSED;
}

static void
io_release(struct io *io)
{
	if (io->ev_read != NULL)
		event_free(io->ev_read);
	if (io->ev_write != NULL)
		event_free(io->ev_write);
	if (io->ev_timer != NULL)
		event_free(io->ev_timer);
	if (io->ev_kick != NULL)
		event_free(io->ev_kick);
	if (io->fd >= 0)
		close(io->fd);
	SSL_free(io->ssl);
	if (io->out != NULL)
		evbuffer_free(io->out);
	free(io->in);
	free(io);
}

void
io_free(struct io *io)
{
	if (io == NULL || io->freed)
		return;
	io_close(io);
	if (io->in_cb > 0) {
		io->freed = true; /* released when the entry returns */
		return;
	}
	io_release(io);
}

int
io_fd(const struct io *io)
{
	return io->fd;
}

/*
 * Throw away buffered input and whatever already waits in the socket:
 * after a clear-text exchange (STARTTLS command or reply) the peer cannot
 * legitimately send anything before it sees our answer, so every such
 * byte is an injection attempt.  Without any clear-text input (implicit
 * TLS: the handshake starts the connection) the socket may already hold
 * the peer's ClientHello, which must stay.
 */
static void
io_discard_input(struct io *io)
{
	uint8_t junk[4096];

	io->discarded = io->in_len;
	io->in_len = 0;
	io->in_off = 0;
	free(io->in);
	io->in = NULL;
	io->in_cap = 0;
	while (io->clear_in > 0 && io->discarded < IO_DISCARD_MAX) {
		ssize_t n = io_read_clear(io, junk, sizeof junk);
		if (n <= 0)
			break; /* EAGAIN, EOF or error: the handshake sees it */
		io->discarded += (size_t)n;
	}
}

static int
io_start_tls(struct io *io, SSL_CTX *ctx, bool server, const char *servername)
{
	if (io->state != IO_STATE_CLEAR || io->ssl != NULL) {
		snprintf(io->error, sizeof io->error,
			 "TLS start: connection not in clear text");
		return -1;
	}
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, io->fd) != 1) {
		io_set_tls_error(io, "TLS start", SSL_ERROR_SSL);
		SSL_free(ssl);
		return -1;
	}
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS |
				  SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		struct in6_addr a6;
		SSL_set_connect_state(ssl);
		/* RFC 6066 §3: no literal IP addresses in SNI. */
		if (servername != NULL && *servername != '\0' &&
		    inet_pton(AF_INET, servername, &a6) != 1 &&
		    inet_pton(AF_INET6, servername, &a6) != 1 &&
		    SSL_set_tlsext_host_name(ssl, servername) != 1) {
			io_set_tls_error(io, "TLS start: SNI", SSL_ERROR_SSL);
			SSL_free(ssl);
			return -1;
		}
	}
	io->ssl = ssl;
	io_discard_input(io);
	io->clear_left = evbuffer_get_length(io->out);
	io->state = IO_STATE_HANDSHAKE;
	io->hs_wants = server ? EV_READ : EV_WRITE;
	io->tls_wlen = 0;
	io->eof = false;
	/*
	 * The handshake starts from the loop, so a client can still set
	 * verification parameters on io_ssl() after this returns.
	 */
	io_update_events(io);
	io_kick(io);
	return 0;
}

int
io_start_tls_server(struct io *io, SSL_CTX *ctx)
{
	return io_start_tls(io, ctx, true, NULL);
}

int
io_start_tls_client(struct io *io, SSL_CTX *ctx, const char *servername)
{
	return io_start_tls(io, ctx, false, servername);
}

SSL *
io_ssl(struct io *io)
{
	return io->ssl;
}

const char *
io_tls_version(const struct io *io)
{
	if (io->ssl == NULL || io->state != IO_STATE_TLS)
		return NULL;
	return SSL_get_version(io->ssl);
}

const char *
io_tls_cipher(const struct io *io)
{
	if (io->ssl == NULL || io->state != IO_STATE_TLS)
		return NULL;
	const SSL_CIPHER *c = SSL_get_current_cipher(io->ssl);
	return c == NULL ? NULL : SSL_CIPHER_get_name(c);
}

const uint8_t *
io_data(const struct io *io, size_t *len)
{
	*len = io->in_len;
	return io->in_len == 0 ? NULL : io->in + io->in_off;
}

void
io_drop(struct io *io, size_t n)
{
	if (n > io->in_len)
		panic("io_drop: %zu bytes requested, %zu buffered", n,
		      io->in_len);
	if (n == 0)
		return;
	bool was_full = io->in_len >= IO_INPUT_MAX;
	io->in_off += n;
	io->in_len -= n;
	if (io->in_len == 0) {
		/* An idle connection holds no input memory. */
		free(io->in);
		io->in = NULL;
		io->in_cap = 0;
		io->in_off = 0;
	}
	if (was_full && io->state != IO_STATE_CLOSED) {
		io_update_events(io);
		io_kick(io); /* OpenSSL may hold decrypted bytes */
	}
}

size_t
io_discarded(const struct io *io)
{
	return io->discarded;
}

int
io_write(struct io *io, const void *data, size_t len)
{
	if (io->state == IO_STATE_CLOSED) {
		errno = EPIPE;
		return -1;
	}
	if (evbuffer_add(io->out, data, len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (io->in_cb == 0)
		io_update_events(io);
	return 0;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (io->state == IO_STATE_CLOSED) {
		errno = EPIPE;
		return -1;
	}
	va_start(ap, fmt);
	n = evbuffer_add_vprintf(io->out, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (io->in_cb == 0)
		io_update_events(io);
	return 0;
}

size_t
io_queued(const struct io *io)
{
	return evbuffer_get_length(io->out);
}

void
io_pause_input(struct io *io)
{
	io->paused = true;
	if (io->in_cb == 0 && io->state != IO_STATE_CLOSED)
		io_update_events(io);
}

void
io_resume_input(struct io *io)
{
	if (!io->paused)
		return;
	io->paused = false;
	if (io->state == IO_STATE_CLOSED)
		return;
	if (io->in_cb == 0)
		io_update_events(io);
	io_kick(io); /* OpenSSL may hold decrypted bytes */
}

void
io_set_timeout(struct io *io, int msec)
{
	io->timeout_ms = msec > 0 ? msec : 0;
	if (io->timeout_ms == 0 || io->state == IO_STATE_CLOSED)
		evtimer_del(io->ev_timer);
	else
		io_progress(io);
}

void
io_set_lowat(struct io *io, size_t lowat)
{
	io->lowat = lowat;
}

const char *
io_error(const struct io *io)
{
	return io->error;
}
