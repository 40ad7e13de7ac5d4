/*
 * tls_test: the contexts of net/tls, exercised with real handshakes
 * between two SSL objects over a non-blocking socketpair (driven in turn
 * from one thread).  Certificates and keys are made in the test with the
 * OpenSSL API (EC P-256 and RSA 2048, self-signed) into a mkdtemp folder.
 *
 *   - TLS 1.3 and 1.2 handshakes succeed, with an ECDHE AEAD cipher on
 *     TLS 1.2 for both an ECDSA and an RSA certificate;
 *   - TLS 1.1 and 1.0 are refused by the server (protocol version),
 *     TLS 1.2 CBC and non-ECDHE ciphers too (no shared cipher);
 *   - sessions resume (stateless tickets) on TLS 1.2 and 1.3;
 *   - the client context checks the chain but does not enforce it;
 *   - key files open to group or others are refused, naming the file; a
 *     key of another certificate, missing files too;
 *   - tls_server_ctx_load_installed(): nothing installed is NULL with an
 *     empty error; an installed version loads; an untrusted or broken
 *     store is an error;
 *   - tls_log_errors() drains the queue into one line.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/tls.h"
#include "util/log.h"

static char dir[64];
static char ec_cert[128], ec_key[128], rsa_cert[128], rsa_key[128];
static char other_key[128];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
write_key(EVP_PKEY *key, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
					      NULL),
			 1);
	assert_int_equal(fclose(f), 0);
}

/* A self-signed certificate for test.example with a new key of type. */
static void
make_pair(const char *type, const char *param, const char *cert_path,
	  const char *key_path)
{
	EVP_PKEY *key = param != NULL ?
				EVP_PKEY_Q_keygen(NULL, NULL, type, param) :
				EVP_PKEY_Q_keygen(NULL, NULL, type,
						  (size_t)2048);
	assert_non_null(key);
	X509 *x = X509_new();
	assert_non_null(x);
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(
				 name, "CN", MBSTRING_ASC,
				 (const unsigned char *)"test.example", -1, -1,
				 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 30 * 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	FILE *f = fopen(cert_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
	write_key(key, key_path);
	X509_free(x);
	EVP_PKEY_free(key);
}

static int
setup(void **state)
{
	(void)state;
	log_init("tls_test", true, false);
	snprintf(dir, sizeof dir, "/tmp/bh-tls-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(ec_cert, sizeof ec_cert, "%s/ec.pem", dir);
	snprintf(ec_key, sizeof ec_key, "%s/ec.key", dir);
	snprintf(rsa_cert, sizeof rsa_cert, "%s/rsa.pem", dir);
	snprintf(rsa_key, sizeof rsa_key, "%s/rsa.key", dir);
	snprintf(other_key, sizeof other_key, "%s/other.key", dir);
	make_pair("EC", "P-256", ec_cert, ec_key);
	make_pair("RSA", NULL, rsa_cert, rsa_key);
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(other);
	write_key(other, other_key);
	EVP_PKEY_free(other);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct side {
	SSL *ssl;
	bool done, failed;
	unsigned long reason;	/* the first error this side reported */
};

static void
step(struct side *s)
{
	if (s->done || s->failed)
		return;
	ERR_clear_error();
	int rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		s->done = true;
		return;
	}
	int e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	s->failed = true;
	s->reason = ERR_peek_error();
	ERR_clear_error();
}

/*
 * Handshake a client of cctx with a server of sctx; returns both SSLs
 * (caller frees) in c and s.  session: resume this one (may be NULL).
 */
static void
handshake(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *session,
	  struct side *c, struct side *s)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(sv[i], F_SETFL, O_NONBLOCK), 0);
	memset(c, 0, sizeof *c);
	memset(s, 0, sizeof *s);
	c->ssl = SSL_new(cctx);
	s->ssl = SSL_new(sctx);
	assert_non_null(c->ssl);
	assert_non_null(s->ssl);
	assert_int_equal(SSL_set_fd(c->ssl, sv[0]), 1);
	assert_int_equal(SSL_set_fd(s->ssl, sv[1]), 1);
	SSL_set_connect_state(c->ssl);
	SSL_set_accept_state(s->ssl);
	if (session != NULL)
		assert_int_equal(SSL_set_session(c->ssl, session), 1);
	for (int i = 0; i < 50 && !(c->done && s->done) && !s->failed &&
			!c->failed;
	     i++) {
		step(c);
		step(s);
	}
	/* let the client see the server's alert, if any */
	step(c);
}

/*
 * Close both sides.  A clean close_notify matters: OpenSSL marks the
 * session of an SSL freed without one as not resumable.
 */
static void
finish(struct side *c, struct side *s)
{
	int fds[2] = { SSL_get_fd(c->ssl), SSL_get_fd(s->ssl) };
	if (c->done)
		SSL_shutdown(c->ssl);
	if (s->done)
		SSL_shutdown(s->ssl);
	ERR_clear_error();
	SSL_free(c->ssl);
	SSL_free(s->ssl);
	close(fds[0]);
	close(fds[1]);
}

static SSL_CTX *
server(const char *cert, const char *key)
{
	char err[512] = "";
	SSL_CTX *ctx = tls_server_ctx_new(cert, key, err, sizeof err);
	if (ctx == NULL) {
		print_error("tls_server_ctx_new: %s\n", err);
		fail();
	}
	return ctx;
}

static SSL_CTX *
client(int min, int max, const char *ciphers)
{
	char err[512] = "";
	SSL_CTX *ctx = tls_client_ctx_new(err, sizeof err);
	if (ctx == NULL) {
		print_error("tls_client_ctx_new: %s\n", err);
		fail();
	}
	if (min != 0) {
		/* old protocols need the lowest security level to be sent */
		SSL_CTX_set_security_level(ctx, 0);
		assert_int_equal(SSL_CTX_set_min_proto_version(ctx, min), 1);
	}
	if (max != 0)
		assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max), 1);
	if (ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
	return ctx;
}

static void
test_versions_and_ciphers(void **state)
{
	(void)state;
	const struct {
		const char *what;
		bool rsa;		/* RSA server certificate, else EC */
		int min, max;		/* client; 0: the context's */
		const char *ciphers;	/* client TLS <= 1.2 list */
		const char *version;	/* NULL: the server must refuse */
		const char *cipher_prefix;
		int server_reason;	/* when refused */
	} rows[] = {
		{ "TLS 1.3", false, 0, 0, NULL, "TLSv1.3", "TLS_", 0 },
		{ "TLS 1.3 RSA", true, 0, 0, NULL, "TLSv1.3", "TLS_", 0 },
		{ "TLS 1.2", false, 0, TLS1_2_VERSION, NULL, "TLSv1.2",
		  "ECDHE-ECDSA-", 0 },
		{ "TLS 1.2 RSA", true, 0, TLS1_2_VERSION, NULL, "TLSv1.2",
		  "ECDHE-RSA-", 0 },
		{ "TLS 1.2 ChaCha20", false, 0, TLS1_2_VERSION,
		  "ECDHE-ECDSA-CHACHA20-POLY1305", "TLSv1.2",
		  "ECDHE-ECDSA-CHACHA20-POLY1305", 0 },
		{ "TLS 1.1", false, TLS1_VERSION, TLS1_1_VERSION,
		  "DEFAULT:@SECLEVEL=0", NULL, NULL,
		  SSL_R_UNSUPPORTED_PROTOCOL },
		{ "TLS 1.0", true, TLS1_VERSION, TLS1_VERSION,
		  "DEFAULT:@SECLEVEL=0", NULL, NULL,
		  SSL_R_UNSUPPORTED_PROTOCOL },
		{ "TLS 1.2 CBC", false, 0, TLS1_2_VERSION,
		  "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA", NULL,
		  NULL, SSL_R_NO_SHARED_CIPHER },
		{ "TLS 1.2 RSA key exchange", true, 0, TLS1_2_VERSION,
		  "AES128-GCM-SHA256:AES256-GCM-SHA384", NULL, NULL,
		  SSL_R_NO_SHARED_CIPHER },
		{ "TLS 1.2 DHE", true, 0, TLS1_2_VERSION,
		  "DHE-RSA-AES128-GCM-SHA256", NULL, NULL,
		  SSL_R_NO_SHARED_CIPHER },
	};
	SSL_CTX *ec = server(ec_cert, ec_key);
	SSL_CTX *rsa = server(rsa_cert, rsa_key);

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		SSL_CTX *cctx = client(rows[i].min, rows[i].max,
				       rows[i].ciphers);
		struct side c, s;
		handshake(cctx, rows[i].rsa ? rsa : ec, NULL, &c, &s);
		if (rows[i].version != NULL) {
			const char *v = SSL_get_version(c.ssl);
			const char *cipher = SSL_get_cipher_name(c.ssl);
			if (!c.done || !s.done ||
			    strcmp(v, rows[i].version) != 0 ||
			    strncmp(cipher, rows[i].cipher_prefix,
				    strlen(rows[i].cipher_prefix)) != 0) {
				print_error("%s: got done %d/%d %s %s, want "
					    "%s %s*\n",
					    rows[i].what, c.done, s.done, v,
					    cipher, rows[i].version,
					    rows[i].cipher_prefix);
				fail();
			}
			/* only AEAD in TLS 1.2 */
			if (strcmp(v, "TLSv1.2") == 0 &&
			    strstr(cipher, "GCM") == NULL &&
			    strstr(cipher, "CHACHA20") == NULL) {
				print_error("%s: cipher %s is not AEAD\n",
					    rows[i].what, cipher);
				fail();
			}
		} else {
			int reason = ERR_GET_REASON(s.reason);
			if (s.done || !s.failed ||
			    reason != rows[i].server_reason) {
				print_error("%s: got server done %d failed %d "
					    "reason %d (%s), want refused "
					    "with reason %d\n",
					    rows[i].what, s.done, s.failed,
					    reason,
					    ERR_reason_error_string(s.reason),
					    rows[i].server_reason);
				fail();
			}
		}
		finish(&c, &s);
		SSL_CTX_free(cctx);
	}
	SSL_CTX_free(ec);
	SSL_CTX_free(rsa);
}

/* After the handshake the client reads, so TLS 1.3 tickets arrive. */
static SSL_SESSION *
session_after_read(SSL *ssl)
{
	char byte;
	int rc = SSL_read(ssl, &byte, 1);
	assert_int_equal(rc <= 0, 1);
	assert_int_equal(SSL_get_error(ssl, rc), SSL_ERROR_WANT_READ);
	ERR_clear_error();
	return SSL_get1_session(ssl);
}

static void
test_resumption(void **state)
{
	(void)state;
	const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	SSL_CTX *sctx = server(ec_cert, ec_key);

	for (size_t i = 0; i < 2; i++) {
		SSL_CTX *cctx = client(0, versions[i], NULL);
		struct side c, s;
		handshake(cctx, sctx, NULL, &c, &s);
		assert_true(c.done && s.done);
		assert_int_equal(SSL_session_reused(c.ssl), 0);
		SSL_SESSION *sess = session_after_read(c.ssl);
		assert_non_null(sess);
		assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
		finish(&c, &s);

		handshake(cctx, sctx, sess, &c, &s);
		if (!c.done || SSL_session_reused(c.ssl) != 1) {
			print_error("version %x: got reused %d, want 1\n",
				    versions[i], SSL_session_reused(c.ssl));
			fail();
		}
		finish(&c, &s);
		SSL_SESSION_free(sess);
		SSL_CTX_free(cctx);
	}
	SSL_CTX_free(sctx);
}

/* The client context checks the chain, records the result, goes on. */
static void
test_client_does_not_enforce(void **state)
{
	(void)state;
	SSL_CTX *sctx = server(ec_cert, ec_key);
	SSL_CTX *cctx = client(0, 0, NULL);
	struct side c, s;

	handshake(cctx, sctx, NULL, &c, &s);
	assert_true(c.done && s.done);
	long v = SSL_get_verify_result(c.ssl);
	if (v != X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
		print_error("verify result: got %ld (%s), want self-signed\n",
			    v, X509_verify_cert_error_string(v));
		fail();
	}
	assert_int_equal(SSL_CTX_get_min_proto_version(cctx), TLS1_2_VERSION);
	finish(&c, &s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void
test_server_settings(void **state)
{
	(void)state;
	SSL_CTX *ctx = server(ec_cert, ec_key);
	uint64_t opts = SSL_CTX_get_options(ctx);

	assert_true((opts & SSL_OP_NO_COMPRESSION) != 0);
	assert_true((opts & SSL_OP_NO_RENEGOTIATION) != 0);
	assert_true((opts & SSL_OP_CIPHER_SERVER_PREFERENCE) != 0);
	assert_true((opts & SSL_OP_NO_TICKET) == 0);
	assert_true((SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS) != 0);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);
}

static void
test_key_file_modes(void **state)
{
	(void)state;
	const struct {
		mode_t mode;
		bool ok;
	} rows[] = {
		{ 0600, true },	 { 0400, true },  { 0640, false },
		{ 0644, false }, { 0604, false }, { 0620, false },
		{ 0602, false }, { 0660, false },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char err[512] = "";
		assert_int_equal(chmod(ec_key, rows[i].mode), 0);
		SSL_CTX *ctx = tls_server_ctx_new(ec_cert, ec_key, err,
						  sizeof err);
		bool ok = ctx != NULL;
		if (ok != rows[i].ok ||
		    (!ok && (strstr(err, ec_key) == NULL ||
			     strstr(err, "group or others") == NULL))) {
			print_error("mode %04o: got %s '%s', want %s\n",
				    (unsigned)rows[i].mode,
				    ok ? "a context" : "NULL", err,
				    rows[i].ok ? "a context" :
						 "NULL naming the key file");
			fail();
		}
		SSL_CTX_free(ctx);
	}
	assert_int_equal(chmod(ec_key, 0600), 0);
}

static void
test_file_errors(void **state)
{
	(void)state;
	char missing[160];
	snprintf(missing, sizeof missing, "%s/missing.pem", dir);
	const struct {
		const char *cert, *key;
		const char *want1, *want2;	/* both in the error */
	} rows[] = {
		{ ec_cert, other_key, "does not belong", other_key },
		{ rsa_cert, ec_key, "does not belong", rsa_cert },
		{ missing, ec_key, "cannot load certificate", missing },
		{ ec_cert, missing, "cannot read private key", missing },
		{ ec_key, ec_key, "cannot load certificate", ec_key },
		{ ec_cert, dir, "not a regular file", dir },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char err[512] = "";
		SSL_CTX *ctx = tls_server_ctx_new(rows[i].cert, rows[i].key,
						  err, sizeof err);
		if (ctx != NULL || strstr(err, rows[i].want1) == NULL ||
		    strstr(err, rows[i].want2) == NULL) {
			print_error("row %zu: got %s '%s', want NULL with '%s' "
				    "and '%s'\n",
				    i, ctx ? "a context" : "NULL", err,
				    rows[i].want1, rows[i].want2);
			fail();
		}
		SSL_CTX_free(ctx);
		assert_int_equal(ERR_peek_error(), 0);
	}
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[8192];
	FILE *in = fopen(from, "r");
	assert_non_null(in);
	size_t n = fread(buf, 1, sizeof buf, in);
	fclose(in);
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

static void
test_load_installed(void **state)
{
	(void)state;
	char sdir[160], p[256], err[512];
	snprintf(sdir, sizeof sdir, "%s/state", dir);
	assert_int_equal(mkdir(sdir, 0700), 0);

	err[0] = 'x';
	assert_null(tls_server_ctx_load_installed(sdir, err, sizeof err));
	assert_string_equal(err, "");

	snprintf(p, sizeof p, "%s/pki", sdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/pki/versions", sdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/pki/versions/1", sdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/pki/versions/1/cert.pem", sdir);
	copy_file(ec_cert, p, 0644);
	snprintf(p, sizeof p, "%s/pki/versions/1/key.pem", sdir);
	copy_file(ec_key, p, 0600);

	err[0] = 'x';
	assert_null(tls_server_ctx_load_installed(sdir, err, sizeof err));
	assert_string_equal(err, "");	/* no current yet */

	snprintf(p, sizeof p, "%s/pki/current", sdir);
	assert_int_equal(symlink("versions/1", p), 0);
	SSL_CTX *ctx = tls_server_ctx_load_installed(sdir, err, sizeof err);
	if (ctx == NULL) {
		print_error("load_installed: %s\n", err);
		fail();
	}
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	assert_int_equal(X509_check_host(leaf, "test.example", 0, 0, NULL), 1);
	SSL_CTX_free(ctx);

	/* a key readable by others, inside the store: refused by name */
	snprintf(p, sizeof p, "%s/pki/versions/1/key.pem", sdir);
	assert_int_equal(chmod(p, 0644), 0);
	assert_null(tls_server_ctx_load_installed(sdir, err, sizeof err));
	assert_non_null(strstr(err, "versions/1/key.pem"));
	assert_int_equal(chmod(p, 0600), 0);

	/* an untrusted store is an error, not "nothing installed" */
	snprintf(p, sizeof p, "%s/pki", sdir);
	assert_int_equal(chmod(p, 0777), 0);
	assert_null(tls_server_ctx_load_installed(sdir, err, sizeof err));
	assert_non_null(strstr(err, "writable by group or others"));
	assert_int_equal(chmod(p, 0700), 0);

	/* current leading nowhere */
	snprintf(p, sizeof p, "%s/pki/current", sdir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("versions/2", p), 0);
	assert_null(tls_server_ctx_load_installed(sdir, err, sizeof err));
	assert_non_null(strstr(err, "does not lead to an installed version"));
}

static void
test_log_errors(void **state)
{
	(void)state;
	char buf[512];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);

	ERR_clear_error();
	assert_int_not_equal(SSL_CTX_use_certificate_chain_file(
				     ctx, "/nonexistent/bh-tls-test.pem"),
			     1);
	const char *got = tls_log_errors("loading", buf, sizeof buf);
	assert_ptr_equal(got, buf);
	if (strstr(buf, "/nonexistent/bh-tls-test.pem") == NULL ||
	    strstr(buf, "; ") == NULL) {
		print_error("got '%s', want the reasons and the file name\n",
			    buf);
		fail();
	}
	assert_int_equal(ERR_peek_error(), 0);	/* drained */

	assert_string_equal(tls_log_errors("nothing", buf, sizeof buf),
			    "unknown error");

	/* a tiny buffer is cut, and the queue still drained */
	ERR_clear_error();
	assert_int_not_equal(SSL_CTX_use_certificate_chain_file(
				     ctx, "/nonexistent/bh-tls-test.pem"),
			     1);
	char tiny[8];
	tls_log_errors("loading", tiny, sizeof tiny);
	assert_int_equal(strlen(tiny) < sizeof tiny, 1);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_CTX_free(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_versions_and_ciphers),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_client_does_not_enforce),
		cmocka_unit_test(test_server_settings),
		cmocka_unit_test(test_key_file_modes),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_load_installed),
		cmocka_unit_test(test_log_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
