/*
 * io: an opaque buffered connection on the libevent loop, in clear text or
 * TLS (OpenSSL 3 driven directly over the socket, not bufferevent_openssl).
 * Protocol code sees plain events and byte buffers; it never calls read,
 * write or SSL_* itself.
 *
 *   io_new()        wrap a connected non-blocking socket.
 *   io_connect()    start a non-blocking connect (IO_CONNECTED when done).
 *   io_free()       close the socket, free everything (also the SSL).
 *   io_start_tls_server(), io_start_tls_client()
 *                   start a handshake; IO_TLSREADY or IO_ERROR follows.
 *                   Any input buffered before the handshake is discarded
 *                   first (STARTTLS hygiene, RFC 3207, case C01/C02),
 *                   and, once clear text was received (a STARTTLS
 *                   exchange), so are bytes already waiting in the
 *                   socket: call it right after queueing the reply that
 *                   precedes the handshake (the 220), before that reply is
 *                   flushed.  On a fresh connection (implicit TLS) the
 *                   socket is left alone: it may hold the ClientHello.
 *                   Output queued before the call goes out in clear, later
 *                   output inside TLS.  The handshake begins from the
 *                   loop, so the caller may still configure io_ssl().
 *   io_data(), io_drop()     look at and consume buffered input.
 *   io_write(), io_printf()  queue output; io_queued() says how much waits.
 *   io_pause_input(), io_resume_input()  stop / restart reading.
 *   io_set_timeout()   inactivity timeout: IO_TIMEOUT after ms without
 *                      progress in either direction (0: none).  It fires
 *                      once; progress or a new io_set_timeout() re-arms it.
 *   io_set_lowat()     IO_LOWAT when queued output drops to this (default 0).
 *
 * To close politely, the owner queues its last reply, pauses input, and
 * frees the io on the next IO_LOWAT.
 *
 * Events (callback on the loop thread; the owner may io_free() inside it):
 *   IO_CONNECTED     io_connect() succeeded
 *   IO_TLSREADY      handshake done; io_tls_*() describe it
 *   IO_DATAIN        new input is buffered (called again while unconsumed
 *                    input remains only when more arrives; after
 *                    io_resume_input() the owner looks at io_data() itself)
 *   IO_LOWAT         queued output fell to the low-water mark
 *   IO_TIMEOUT       inactivity timeout
 *   IO_DISCONNECTED  the peer closed (clean EOF or TLS close_notify)
 *   IO_ERROR         socket or TLS error; io_error() says what
 *
 * Memory is bounded: at most IO_INPUT_MAX bytes of unconsumed input are
 * buffered (reading pauses until the owner drops some); output is the
 * owner's to bound (io_queued()).  TLS read and write buffers are released
 * while idle (SSL_MODE_RELEASE_BUFFERS).
 */
#ifndef BH_NET_IO_H
#define BH_NET_IO_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#define IO_INPUT_MAX (64 * 1024)

struct event_base;
struct io;

enum io_event {
	IO_CONNECTED,
	IO_TLSREADY,
	IO_DATAIN,
	IO_LOWAT,
	IO_TIMEOUT,
	IO_DISCONNECTED,
	IO_ERROR,
};

typedef void io_callback(struct io *io, enum io_event event, void *arg);

struct io *io_new(struct event_base *base, int fd, io_callback *cb, void *arg);
struct io *io_connect(struct event_base *base, const struct sockaddr *sa,
		      socklen_t salen, io_callback *cb, void *arg);
void io_free(struct io *io);
int io_fd(const struct io *io);

int io_start_tls_server(struct io *io, SSL_CTX *ctx);
/* servername: SNI and, when verify is wanted, set by the caller on the SSL. */
int io_start_tls_client(struct io *io, SSL_CTX *ctx, const char *servername);
SSL *io_ssl(struct io *io);			/* NULL before TLS */
const char *io_tls_version(const struct io *io);	/* "TLSv1.3" or NULL */
const char *io_tls_cipher(const struct io *io);	/* or NULL */

const uint8_t *io_data(const struct io *io, size_t *len);
void io_drop(struct io *io, size_t n);
/* Bytes that were discarded at the last TLS start (for the log). */
size_t io_discarded(const struct io *io);

/* 0, or -1 (ENOMEM). */
int io_write(struct io *io, const void *data, size_t len);
int io_printf(struct io *io, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t io_queued(const struct io *io);

void io_pause_input(struct io *io);
void io_resume_input(struct io *io);
void io_set_timeout(struct io *io, int msec);
void io_set_lowat(struct io *io, size_t lowat);

const char *io_error(const struct io *io);

#endif
