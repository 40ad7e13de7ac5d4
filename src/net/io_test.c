/*
 * io_test: the io layer on one event loop, both ends in this process
 * (socketpairs and loopback), in clear text and TLS.  The certificate is
 * made in-process with OpenSSL.  Covered: split and large transfers both
 * ways, the input bound with pause/resume (and bytes OpenSSL holds
 * decrypted), STARTTLS hygiene (input buffered or still in the socket is
 * discarded and counted), EOF and close_notify, io_free() inside every
 * callback, handshake failure, the inactivity timeout, LOWAT, connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/io.h"

/* ------------------------------------------------------------ fixtures */

static SSL_CTX *server_ctx;
static SSL_CTX *client_ctx;

static X509 *
make_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (x == NULL)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	if (X509_sign(x, key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
setup_tls(void **state)
{
	(void)state;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL)
		return -1;
	X509 *cert = make_cert(key);
	if (cert == NULL)
		return -1;
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (server_ctx == NULL || client_ctx == NULL ||
	    SSL_CTX_use_certificate(server_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
		return -1;
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
	return 0;
}

static int
teardown_tls(void **state)
{
	(void)state;
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return 0;
}

/* One end of a connection under test and what it saw. */
struct peer {
	const char *name;
	struct io *io;
	uint8_t *got; /* everything consumed, in order */
	size_t got_len;
	size_t got_cap;
	size_t max_buffered; /* largest io_data() length seen */
	bool hold;	     /* do not consume on DATAIN */
	size_t hold_until;   /* ... until this much is buffered */
	size_t expect;	     /* total expected (for hold mode) */
	int free_on;	     /* -1, or the event on which to io_free */
	int events[IO_ERROR + 1];
	char error[256];
};

static void
peer_take(struct peer *p)
{
	size_t len;
	const uint8_t *d = io_data(p->io, &len);

	if (len == 0)
		return;
	if (p->got_len + len > p->got_cap) {
		size_t cap = (p->got_len + len) * 2;
		p->got = realloc(p->got, cap);
		assert_non_null(p->got);
		p->got_cap = cap;
	}
	memcpy(p->got + p->got_len, d, len);
	p->got_len += len;
	io_drop(p->io, len);
}

static void
peer_cb(struct io *io, enum io_event ev, void *arg)
{
	struct peer *p = arg;
	size_t len;

	p->events[ev]++;
	if (ev == IO_ERROR)
		snprintf(p->error, sizeof p->error, "%s", io_error(io));
	if ((int)ev == p->free_on) {
		io_free(io);
		p->io = NULL;
		return;
	}
	if (ev != IO_DATAIN)
		return;
	io_data(io, &len);
	if (len > p->max_buffered)
		p->max_buffered = len;
	if (p->hold && len < p->hold_until && p->got_len + len < p->expect)
		return;
	peer_take(p);
}

static void
peer_init(struct peer *p, const char *name)
{
	memset(p, 0, sizeof *p);
	p->name = name;
	p->free_on = -1;
}

static void
peer_clear(struct peer *p)
{
	if (p->io != NULL)
		io_free(p->io);
	free(p->got);
	p->io = NULL;
	p->got = NULL;
}

static struct event_base *base;

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until cond() holds or ms pass; returns cond(). */
static bool
run_until(bool (*cond)(void *), void *arg, long ms)
{
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = {0, 5000};
	long end = now_ms() + ms;

	event_add(t, &tv);
	while (!cond(arg) && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return cond(arg);
}

static bool
never(void *arg)
{
	(void)arg;
	return false;
}

static void
run_for(long ms)
{
	run_until(never, NULL, ms);
}

struct want_bytes {
	struct peer *p;
	size_t n;
};

static bool
has_bytes(void *arg)
{
	struct want_bytes *w = arg;
	return w->p->got_len >= w->n;
}

static bool
wait_bytes(struct peer *p, size_t n)
{
	struct want_bytes w = {p, n};
	return run_until(has_bytes, &w, 5000);
}

struct want_event {
	struct peer *p;
	enum io_event ev;
};

static bool
has_event(void *arg)
{
	struct want_event *w = arg;
	return w->p->events[w->ev] > 0;
}

static bool
wait_event(struct peer *p, enum io_event ev, long ms)
{
	struct want_event w = {p, ev};
	return run_until(has_event, &w, ms);
}

static void
make_pair(struct peer *a, struct peer *b, int *fds)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	a->io = io_new(base, fds[0], peer_cb, a);
	b->io = io_new(base, fds[1], peer_cb, b);
	assert_non_null(a->io);
	assert_non_null(b->io);
}

static uint8_t *
pattern(size_t n, unsigned seed)
{
	uint8_t *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
	return buf;
}

/* Compare with a got/want message on failure. */
static void
check_bytes(const char *what, const uint8_t *got, size_t got_len,
	    const uint8_t *want, size_t want_len)
{
	if (got_len != want_len) {
		print_error("%s: got %zu bytes, want %zu\n", what, got_len,
			    want_len);
		fail();
	}
	for (size_t i = 0; i < want_len; i++) {
		if (got[i] != want[i]) {
			print_error("%s: byte %zu: got 0x%02x, want 0x%02x\n",
				    what, i, got[i], want[i]);
			fail();
		}
	}
}

/* Send payload from src in pieces of chunk bytes (0: one write). */
static void
send_chunks(struct peer *src, const uint8_t *payload, size_t n, size_t chunk)
{
	size_t off = 0;

	if (chunk == 0)
		chunk = n;
	while (off < n) {
		size_t len = n - off < chunk ? n - off : chunk;
		assert_int_equal(io_write(src->io, payload + off, len), 0);
		off += len;
	}
}

static void
start_tls_pair(struct peer *server, struct peer *client, int max_version)
{
	SSL_CTX_set_max_proto_version(server_ctx, max_version);
	assert_int_equal(io_start_tls_server(server->io, server_ctx), 0);
	assert_int_equal(
		io_start_tls_client(client->io, client_ctx, "localhost"), 0);
	assert_true(wait_event(server, IO_TLSREADY, 5000));
	assert_true(wait_event(client, IO_TLSREADY, 5000));
}

/* --------------------------------------------------------------- tests */

struct xfer_case {
	const char *name;
	int tls; /* 0, TLS1_2_VERSION, TLS1_3_VERSION */
	size_t size;
	size_t chunk; /* io_write pieces; 0 one write */
	bool hold;    /* receiver lets the input buffer fill */
};

static const struct xfer_case xfer_cases[] = {
	{"clear small split", 0, 17, 1, false},
	{"clear 300k", 0, 300000, 0, false},
	{"clear 300k odd chunks", 0, 300000, 777, false},
	{"clear 300k held to the bound", 0, 300000, 0, true},
	{"tls1.3 small split", TLS1_3_VERSION, 17, 1, false},
	{"tls1.3 300k", TLS1_3_VERSION, 300000, 0, false},
	{"tls1.3 300k held to the bound", TLS1_3_VERSION, 300000, 4096, true},
	{"tls1.2 200k odd chunks", TLS1_2_VERSION, 200000, 1234, false},
	{"tls1.2 200k held to the bound", TLS1_2_VERSION, 200000, 0, true},
};

static void
test_transfer(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof xfer_cases / sizeof xfer_cases[0]; c++) {
		const struct xfer_case *tc = &xfer_cases[c];
		struct peer a, b;
		int fds[2];

		peer_init(&a, "a");
		peer_init(&b, "b");
		make_pair(&a, &b, fds);
		if (tc->tls) {
			start_tls_pair(&a, &b, tc->tls);
			const char *v = io_tls_version(a.io);
			assert_non_null(v);
			assert_string_equal(v, tc->tls == TLS1_3_VERSION
						       ? "TLSv1.3"
						       : "TLSv1.2");
			assert_non_null(io_tls_cipher(b.io));
			const char *sni = SSL_get_servername(
				io_ssl(a.io), TLSEXT_NAMETYPE_host_name);
			assert_non_null(sni);
			assert_string_equal(sni, "localhost");
		} else {
			assert_null(io_tls_version(a.io));
			assert_null(io_ssl(a.io));
		}
		uint8_t *ab = pattern(tc->size, 1);
		uint8_t *ba = pattern(tc->size, 2);
		a.hold = b.hold = tc->hold;
		a.hold_until = b.hold_until = IO_INPUT_MAX;
		a.expect = b.expect = tc->size;
		send_chunks(&a, ab, tc->size, tc->chunk);
		send_chunks(&b, ba, tc->size, tc->chunk);
		if (!wait_bytes(&b, tc->size) || !wait_bytes(&a, tc->size))
			print_error(
				"case '%s': a got %zu, b got %zu, want %zu\n",
				tc->name, a.got_len, b.got_len, tc->size);
		check_bytes(tc->name, b.got, b.got_len, ab, tc->size);
		check_bytes(tc->name, a.got, a.got_len, ba, tc->size);
		if (a.max_buffered > IO_INPUT_MAX ||
		    b.max_buffered > IO_INPUT_MAX) {
			print_error("case '%s': buffered %zu/%zu > %d\n",
				    tc->name, a.max_buffered, b.max_buffered,
				    IO_INPUT_MAX);
			fail();
		}
		if (tc->hold && tc->size > IO_INPUT_MAX &&
		    b.max_buffered != IO_INPUT_MAX) {
			print_error(
				"case '%s': held input reached %zu, want %d\n",
				tc->name, b.max_buffered, IO_INPUT_MAX);
			fail();
		}
		assert_int_equal(io_queued(a.io), 0);
		assert_true(a.events[IO_LOWAT] > 0);
		assert_int_equal(a.events[IO_ERROR] + b.events[IO_ERROR], 0);
		free(ab);
		free(ba);
		peer_clear(&a);
		peer_clear(&b);
	}
}

/* Pausing stops DATAIN; after resuming, the owner reads io_data() itself. */
static void
test_pause_resume(void **state)
{
	(void)state;
	static const int versions[] = {0, TLS1_3_VERSION};
	for (size_t c = 0; c < 2; c++) {
		struct peer a, b;
		int fds[2];
		size_t size = 200000;

		peer_init(&a, "a");
		peer_init(&b, "b");
		make_pair(&a, &b, fds);
		if (versions[c])
			start_tls_pair(&a, &b, versions[c]);
		uint8_t *payload = pattern(size, 3);
		b.hold = true;
		b.hold_until = 1; /* never consume on DATAIN */
		b.expect = SIZE_MAX;
		io_pause_input(b.io);
		send_chunks(&a, payload, size, 5000);
		run_for(100);
		int datain = b.events[IO_DATAIN];
		size_t len;
		io_data(b.io, &len);
		assert_int_equal(datain, 0);
		assert_int_equal(len, 0);
		/* Resume repeatedly, consuming what is there each time. */
		long end = now_ms() + 5000;
		while (b.got_len < size && now_ms() < end) {
			io_resume_input(b.io);
			run_for(5);
			io_pause_input(b.io);
			peer_take(&b);
			run_for(2);
		}
		check_bytes(versions[c] ? "tls pause" : "clear pause", b.got,
			    b.got_len, payload, size);
		free(payload);
		peer_clear(&a);
		peer_clear(&b);
	}
}

/*
 * Bytes OpenSSL already decrypted give no socket event: one TLS record
 * larger than the space in the input buffer leaves the rest inside
 * OpenSSL (SSL_pending) while the socket is empty.  Resuming after a
 * pause and dropping from a full buffer must still deliver it.
 */
static bool pause_on_datain;

static void
pausing_cb(struct io *io, enum io_event ev, void *arg)
{
	struct peer *p = arg;

	if (ev == IO_DATAIN && pause_on_datain) {
		p->events[ev]++;
		io_pause_input(io);
		return;
	}
	peer_cb(io, ev, arg);
}

static void
test_tls_bytes_held_by_openssl(void **state)
{
	(void)state;
	for (int full = 0; full < 2; full++) {
		struct peer a, b;
		int fds[2];

		peer_init(&a, "a");
		peer_init(&b, "b");
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
		a.io = io_new(base, fds[0], peer_cb, &a);
		b.io = io_new(base, fds[1], full ? peer_cb : pausing_cb, &b);
		start_tls_pair(&a, &b, TLS1_3_VERSION);
		size_t first = full ? IO_INPUT_MAX - 100 : 0;
		size_t size = first + 16000; /* then one record */
		uint8_t *payload = pattern(size, 5);
		b.hold = true;
		b.expect = size;
		b.hold_until = IO_INPUT_MAX;
		if (full) {
			send_chunks(&a, payload, first, 0);
			struct want_event w = {&b, IO_DATAIN};
			assert_true(run_until(has_event, &w, 3000));
			size_t len;
			long end = now_ms() + 3000;
			do {
				run_for(5);
				io_data(b.io, &len);
			} while (len < first && now_ms() < end);
			assert_int_equal(len, first);
		} else {
			pause_on_datain = true;
		}
		send_chunks(&a, payload + first, size - first, 0);
		if (full) {
			/* Full: hold it, then drop from outside the callback.
			 */
			b.hold_until = SIZE_MAX;
			b.expect = SIZE_MAX;
			size_t len;
			long end = now_ms() + 3000;
			do {
				run_for(5);
				io_data(b.io, &len);
			} while (len < IO_INPUT_MAX && now_ms() < end);
			assert_int_equal(len, IO_INPUT_MAX);
			run_for(30);
			b.hold = false;
			peer_take(&b);
		} else {
			struct want_event w = {&b, IO_DATAIN};
			assert_true(run_until(has_event, &w, 3000));
			run_for(30);
			pause_on_datain = false;
			b.hold = false;
			peer_take(&b);
			assert_true(b.got_len <
				    size); /* the rest is in OpenSSL */
			io_resume_input(b.io);
		}
		if (!wait_bytes(&b, size))
			print_error("%s: got %zu of %zu bytes\n",
				    full ? "full buffer" : "paused", b.got_len,
				    size);
		check_bytes(full ? "full buffer" : "paused", b.got, b.got_len,
			    payload, size);
		free(payload);
		peer_clear(&a);
		peer_clear(&b);
	}
}

/*
 * STARTTLS hygiene (case C01): what follows the command, whether already
 * read into the buffer or still in the socket, never reaches the owner
 * after the handshake, and io_discarded() counts it.
 */
static void
test_starttls_discard(void **state)
{
	(void)state;
	static const char injected[] =
		"EHLO injected.example\r\nMAIL FROM:<x@y>\r\n";
	for (int in_socket = 0; in_socket < 2; in_socket++) {
		struct peer s, c;
		int fds[2];

		peer_init(&s, "server");
		peer_init(&c, "client");
		make_pair(&s, &c, fds);
		s.hold = true;
		s.hold_until = SIZE_MAX;
		s.expect = SIZE_MAX;
		if (in_socket) {
			io_write(c.io, "STARTTLS\r\n", 10);
			run_until(never, NULL, 20);
			io_pause_input(s.io);
			io_write(c.io, injected, strlen(injected));
		} else {
			char both[128];
			snprintf(both, sizeof both, "STARTTLS\r\n%s", injected);
			io_write(c.io, both, strlen(both));
		}
		run_for(30);
		size_t len;
		const uint8_t *d = io_data(s.io, &len);
		assert_true(len >= 10);
		assert_memory_equal(d, "STARTTLS\r\n", 10);
		io_drop(s.io, 10);
		io_write(s.io, "220 go\r\n", 8);
		assert_int_equal(io_start_tls_server(s.io, server_ctx), 0);
		if (io_discarded(s.io) != strlen(injected)) {
			print_error("%s: discarded got %zu, want %zu\n",
				    in_socket ? "socket" : "buffer",
				    io_discarded(s.io), strlen(injected));
			fail();
		}
		io_resume_input(s.io);
		s.hold = false;
		assert_true(wait_bytes(&c, 8));
		assert_memory_equal(c.got, "220 go\r\n", 8);
		assert_int_equal(
			io_start_tls_client(c.io, client_ctx, "localhost"), 0);
		assert_true(wait_event(&s, IO_TLSREADY, 5000));
		assert_true(wait_event(&c, IO_TLSREADY, 5000));
		io_write(c.io, "EHLO real\r\n", 11);
		assert_true(wait_bytes(&s, 11));
		run_for(30);
		check_bytes("after STARTTLS", s.got, s.got_len,
			    (const uint8_t *)"EHLO real\r\n", 11);
		peer_clear(&s);
		peer_clear(&c);
	}
}

/*
 * Implicit TLS: the client's ClientHello is already in the socket when
 * the server wraps the connection and starts the handshake; it must not
 * be taken for injected plaintext.
 */
static void
test_tls_hello_already_waiting(void **state)
{
	(void)state;
	struct peer s, c;
	int fds[2];

	peer_init(&s, "server");
	peer_init(&c, "client");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	c.io = io_new(base, fds[1], peer_cb, &c);
	assert_int_equal(io_start_tls_client(c.io, client_ctx, "localhost"), 0);
	run_for(30); /* the ClientHello is sent and waits */
	s.io = io_new(base, fds[0], peer_cb, &s);
	assert_int_equal(io_start_tls_server(s.io, server_ctx), 0);
	assert_int_equal(io_discarded(s.io), 0);
	assert_true(wait_event(&s, IO_TLSREADY, 3000));
	assert_true(wait_event(&c, IO_TLSREADY, 3000));
	io_write(s.io, "220 hello\r\n", 11);
	assert_true(wait_bytes(&c, 11));
	check_bytes("implicit", c.got, c.got_len,
		    (const uint8_t *)"220 hello\r\n", 11);
	peer_clear(&s);
	peer_clear(&c);
}

/* Output queued after the TLS start goes inside TLS, never in clear. */
static void
test_output_after_start_is_encrypted(void **state)
{
	(void)state;
	struct peer s, c;
	int fds[2];

	peer_init(&s, "server");
	peer_init(&c, "client");
	make_pair(&s, &c, fds);
	io_write(s.io, "220 go\r\n", 8);
	assert_int_equal(io_start_tls_server(s.io, server_ctx), 0);
	io_write(s.io, "secret\r\n", 8);
	assert_true(wait_bytes(&c, 8));
	run_for(30);
	check_bytes("clear part", c.got, c.got_len,
		    (const uint8_t *)"220 go\r\n", 8);
	c.got_len = 0;
	assert_int_equal(io_start_tls_client(c.io, client_ctx, NULL), 0);
	assert_true(wait_bytes(&c, 8));
	check_bytes("tls part", c.got, c.got_len, (const uint8_t *)"secret\r\n",
		    8);
	peer_clear(&s);
	peer_clear(&c);
}

struct eof_case {
	const char *name;
	int tls;
	bool raw_shutdown; /* close the socket without close_notify */
};

static const struct eof_case eof_cases[] = {
	{"clear close", 0, false},
	{"tls close_notify", TLS1_3_VERSION, false},
	{"tls1.2 close_notify", TLS1_2_VERSION, false},
	{"tls eof without close_notify", TLS1_3_VERSION, true},
};

static void
test_eof(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof eof_cases / sizeof eof_cases[0]; i++) {
		const struct eof_case *tc = &eof_cases[i];
		struct peer a, b;
		int fds[2];

		peer_init(&a, "a");
		peer_init(&b, "b");
		make_pair(&a, &b, fds);
		if (tc->tls)
			start_tls_pair(&a, &b, tc->tls);
		io_write(b.io, "bye\r\n", 5);
		run_for(20);
		if (tc->raw_shutdown) {
			shutdown(io_fd(b.io), SHUT_RDWR);
		} else {
			io_free(b.io);
			b.io = NULL;
		}
		if (!wait_event(&a, IO_DISCONNECTED, 3000)) {
			print_error("case '%s': no IO_DISCONNECTED (errors %d: "
				    "%s)\n",
				    tc->name, a.events[IO_ERROR], a.error);
			fail();
		}
		check_bytes(tc->name, a.got, a.got_len,
			    (const uint8_t *)"bye\r\n", 5);
		assert_int_equal(a.events[IO_ERROR], 0);
		peer_clear(&a);
		peer_clear(&b);
	}
}

/* The owner frees the io inside each kind of callback (ASan checks). */
static void
test_free_in_callback(void **state)
{
	(void)state;
	static const enum io_event evs[] = {IO_DATAIN, IO_TLSREADY, IO_LOWAT,
					    IO_DISCONNECTED, IO_TIMEOUT};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
		struct peer a, b;
		int fds[2];

		peer_init(&a, "a");
		peer_init(&b, "b");
		make_pair(&a, &b, fds);
		a.free_on = (int)evs[i];
		switch (evs[i]) {
		case IO_DATAIN:
			io_write(b.io, "x\r\ny\r\n", 6);
			break;
		case IO_TLSREADY:
			io_start_tls_server(a.io, server_ctx);
			io_start_tls_client(b.io, client_ctx, "localhost");
			/* data right behind the handshake */
			io_write(b.io, "early\r\n", 7);
			break;
		case IO_LOWAT:
			io_write(a.io, "out\r\n", 5);
			io_write(b.io, "in\r\n", 4);
			break;
		case IO_DISCONNECTED:
			io_write(b.io, "last\r\n", 6);
			io_free(b.io);
			b.io = NULL;
			break;
		default:
			io_set_timeout(a.io, 20);
			break;
		}
		struct want_event w = {&a, evs[i]};
		assert_true(run_until(has_event, &w, 3000));
		assert_null(a.io);
		run_for(30); /* nothing may run on the freed io */
		peer_clear(&a);
		peer_clear(&b);
	}
}

static void
test_handshake_failure(void **state)
{
	(void)state;
	struct peer a;
	int fds[2];
	static const char junk[] = "GARBAGE THAT IS NOT A CLIENTHELLO\r\n\r\n";

	peer_init(&a, "a");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	a.io = io_new(base, fds[0], peer_cb, &a);
	assert_int_equal(io_start_tls_server(a.io, server_ctx), 0);
	run_for(10);
	assert_int_equal(write(fds[1], junk, sizeof junk - 1),
			 (ssize_t)(sizeof junk - 1));
	assert_true(wait_event(&a, IO_ERROR, 3000));
	if (strstr(a.error, "TLS handshake") == NULL) {
		print_error("io_error got '%s', want 'TLS handshake...'\n",
			    a.error);
		fail();
	}
	close(fds[1]);
	peer_clear(&a);

	/* The peer goes away in the middle of the handshake. */
	peer_init(&a, "a");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	a.io = io_new(base, fds[0], peer_cb, &a);
	assert_int_equal(io_start_tls_server(a.io, server_ctx), 0);
	run_for(10);
	close(fds[1]);
	assert_true(wait_event(&a, IO_ERROR, 3000));
	assert_non_null(strstr(a.error, "TLS handshake"));
	peer_clear(&a);
}

static void
test_timeout(void **state)
{
	(void)state;
	struct peer a, b;
	int fds[2];

	peer_init(&a, "a");
	peer_init(&b, "b");
	make_pair(&a, &b, fds);
	/* Generous margins: the machine may be busy with other work. */
	io_set_timeout(a.io, 500);
	/* Progress every 30 ms keeps the timer away. */
	long start = now_ms();
	for (int i = 0; i < 10; i++) {
		io_write(b.io, "z", 1);
		run_for(30);
	}
	assert_int_equal(a.events[IO_TIMEOUT], 0);
	assert_true(wait_event(&a, IO_TIMEOUT, 5000));
	long took = now_ms() - start;
	if (took < 270 + 500) {
		print_error("timeout after %ld ms, want >= 770\n", took);
		fail();
	}
	assert_int_equal(a.got_len, 10);
	/* It fired once, and does not fire again without being re-armed. */
	run_for(700);
	assert_int_equal(a.events[IO_TIMEOUT], 1);
	io_set_timeout(a.io, 0);
	peer_clear(&a);
	peer_clear(&b);
}

static bool
has_lowat_and_empty(void *arg)
{
	struct peer *p = arg;
	return p->events[IO_LOWAT] > 0 && io_queued(p->io) == 0;
}

static void
test_lowat(void **state)
{
	(void)state;
	struct peer a, b;
	int fds[2];
	size_t size = 2 * 1024 * 1024;

	peer_init(&a, "a");
	peer_init(&b, "b");
	make_pair(&a, &b, fds);
	io_set_lowat(a.io, 1000);
	io_pause_input(b.io);
	uint8_t *payload = pattern(size, 4);
	io_write(a.io, payload, size);
	run_for(50);
	assert_true(io_queued(a.io) > 1000); /* the peer is not reading */
	assert_int_equal(a.events[IO_LOWAT], 0);
	io_resume_input(b.io);
	assert_true(run_until(has_lowat_and_empty, &a, 5000));
	assert_true(wait_bytes(&b, size));
	check_bytes("lowat", b.got, b.got_len, payload, size);
	free(payload);
	peer_clear(&a);
	peer_clear(&b);
}

static bool
has_connect_result(void *arg)
{
	struct peer *p = arg;
	return p->events[IO_CONNECTED] + p->events[IO_ERROR] > 0;
}

static int
listen_loopback(struct sockaddr_in *sin)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t sl = sizeof *sin;

	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)sin, sizeof *sin), 0);
	assert_int_equal(listen(l, 8), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)sin, &sl), 0);
	return l;
}

static void
test_connect(void **state)
{
	(void)state;
	struct sockaddr_in sin;
	struct peer c, s;
	int l = listen_loopback(&sin);

	peer_init(&c, "client");
	peer_init(&s, "server");
	c.io = io_connect(base, (struct sockaddr *)&sin, sizeof sin, peer_cb,
			  &c);
	assert_non_null(c.io);
	assert_true(run_until(has_connect_result, &c, 3000));
	assert_int_equal(c.events[IO_CONNECTED], 1);
	int fd = accept(l, NULL, NULL);
	assert_true(fd >= 0);
	s.io = io_new(base, fd, peer_cb, &s);
	/* Output queued right away, TLS both ways over TCP. */
	start_tls_pair(&s, &c, TLS1_3_VERSION);
	io_write(c.io, "over tcp\r\n", 10);
	assert_true(wait_bytes(&s, 10));
	check_bytes("tcp", s.got, s.got_len, (const uint8_t *)"over tcp\r\n",
		    10);
	peer_clear(&c);
	peer_clear(&s);

	/* A refused connection: IO_ERROR with the reason. */
	close(l);
	peer_init(&c, "client");
	c.io = io_connect(base, (struct sockaddr *)&sin, sizeof sin, peer_cb,
			  &c);
	assert_non_null(c.io);
	assert_true(run_until(has_connect_result, &c, 3000));
	assert_int_equal(c.events[IO_CONNECTED], 0);
	if (strstr(c.error, "connect: ") == NULL) {
		print_error("io_error got '%s', want 'connect: ...'\n",
			    c.error);
		fail();
	}
	peer_clear(&c);
}

/* Writing on a connection the peer has closed: IO_ERROR, not SIGPIPE. */
static void
test_write_to_closed(void **state)
{
	(void)state;
	struct peer a;
	int fds[2];

	peer_init(&a, "a");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	a.io = io_new(base, fds[0], peer_cb, &a);
	io_pause_input(a.io);
	close(fds[1]);
	io_write(a.io, "lost\r\n", 6);
	assert_true(wait_event(&a, IO_ERROR, 3000));
	assert_non_null(strstr(a.error, "write"));
	/* Once closed, writes fail instead of queueing. */
	assert_int_equal(io_write(a.io, "x", 1), -1);
	peer_clear(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transfer),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_tls_bytes_held_by_openssl),
		cmocka_unit_test(test_starttls_discard),
		cmocka_unit_test(test_tls_hello_already_waiting),
		cmocka_unit_test(test_output_after_start_is_encrypted),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_handshake_failure),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_lowat),
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_write_to_closed),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, setup_tls, teardown_tls);
	event_base_free(base);
	return rc;
}
