/*
 * tls: the OpenSSL 3 contexts of bridgehead (see tls.h).
 *
 *   tls_server_ctx_new()            listener context from files.
 *   tls_server_ctx_load_installed() listener context from state_dir/pki.
 *   tls_client_ctx_new()            outbound context.
 *   tls_ctx_use_certificate()       chain + key into a context.
 *   tls_log_errors()                the OpenSSL error queue as one line.
 *
 * What the server offers, and why:
 *   - TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1; case C23: an
 *     old client fails the handshake and retries in clear text);
 *   - TLS 1.2: ECDHE key exchange with AEAD ciphers only (forward secrecy,
 *     no CBC padding oracles), ECDSA and RSA certificates; TLS 1.3: the
 *     library's defaults (all AEAD);
 *   - the server's cipher order, groups X25519, P-256, P-384;
 *   - no compression (CRIME), no renegotiation (a client-driven CPU sink,
 *     and RFC 8446 has none);
 *   - stateless session tickets, with a session id context so that a
 *     resumed session cannot cross into another context;
 *   - SSL_MODE_RELEASE_BUFFERS: idle connections hold no TLS buffers.
 *
 * Files: the key must not be readable by group or others; start-up then
 * stops with an error naming the file (DESIGN.md "Running as root").  An
 * expired certificate, or one that expires within 14 days, is loaded but
 * logged as a warning (a peer's "certificate expired" alert is otherwise
 * the first sign of it).
 *
 * The installed certificate is found with cert/layout.h (header-only), so
 * that this file links without the rest of cert/.
 */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "cert/layout.h"
#include "util/log.h"

#define TLS12_CIPHERS                                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"       \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"       \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS_SESSION_ID_CONTEXT "bridgehead"
#define EXPIRY_WARN_DAYS 14

/* An error sentence into err (cut to fit: a cut message is still one). */
static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Drain the error queue into buf as "reason; reason (detail)", oldest
 * first.  "unknown error" when the queue was empty.
 */
static const char *
drain_errors(char *buf, size_t buflen)
{
	const char *data;
	int flags;
	unsigned long e;
	size_t used = 0;

	if (buflen == 0)
		return buf;
	buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (used + 1 >= buflen)
			continue;	/* keep draining */
		const char *reason = ERR_SYSTEM_ERROR(e) ?
					     strerror(ERR_GET_REASON(e)) :
					     ERR_reason_error_string(e);
		char code[32];
		if (reason == NULL) {
			snprintf(code, sizeof code, "error %lx", e);
			reason = code;
		}
		bool detail = (flags & ERR_TXT_STRING) && data != NULL &&
			      *data != '\0';
		int n = snprintf(buf + used, buflen - used, "%s%s%s%s%s",
				 used > 0 ? "; " : "", reason,
				 detail ? " (" : "", detail ? data : "",
				 detail ? ")" : "");
		used = n < 0 ? buflen - 1 :
		       (size_t)n >= buflen - used ? buflen - 1 : used + (size_t)n;
	}
	if (used == 0)
		snprintf(buf, buflen, "unknown error");
	return buf;
}

const char *
tls_log_errors(const char *what, char *buf, size_t buflen)
{
	char local[512];

	if (buf == NULL || buflen == 0) {
		buf = local;
		buflen = sizeof local;
	}
	drain_errors(buf, buflen);
	log_warn("%s: %s", what, buf);
	return buf == local ? "" : buf;
}

/*
 * The private key may be read by its owner only (0600 or 0400).  Checked
 * on the open file, so the answer is about the file that is then read.
 */
static int
check_key_file(const char *key_file, char *err, size_t errlen)
{
	int fd = open(key_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		say(err, errlen, "cannot read private key %s: %s", key_file,
		    strerror(errno));
		return -1;
	}
	struct stat st;
	int rc = fstat(fd, &st);
	int saved = errno;
	close(fd);
	if (rc == -1) {
		say(err, errlen, "cannot read private key %s: %s", key_file,
		    strerror(saved));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		say(err, errlen, "private key %s is not a regular file",
		    key_file);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		say(err, errlen,
		    "private key %s is open to group or others (mode %04o); "
		    "it must be readable by its owner only: chmod 600 %s",
		    key_file, (unsigned)(st.st_mode & 07777), key_file);
		return -1;
	}
	return 0;
}

/* Warn (never refuse) about a certificate that expired or soon will. */
static void
warn_expiry(SSL_CTX *ctx, const char *cert_file)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	int days = 0, secs = 0;

	if (leaf == NULL ||
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)) != 1) {
		ERR_clear_error();
		return;
	}
	if (days < 0 || secs < 0)
		log_warn("certificate file=%s expired %d days ago; peers "
			 "will refuse it: install a new one",
			 cert_file, -days);
	else if (days < EXPIRY_WARN_DAYS)
		log_warn("certificate file=%s expires in %d days", cert_file,
			 days);
}

static bool
key_mismatch(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_X509 &&
	       ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

int
tls_ctx_use_certificate(SSL_CTX *ctx, const char *cert_file,
			const char *key_file, char *err, size_t errlen)
{
	char why[512];

	if (check_key_file(key_file, err, errlen) == -1)
		return -1;
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		say(err, errlen, "cannot load certificate %s: %s", cert_file,
		    drain_errors(why, sizeof why));
		return -1;
	}
	/* OpenSSL checks the pair already here (X509 "key values mismatch") */
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 &&
	    !key_mismatch(ERR_peek_last_error())) {
		say(err, errlen, "cannot load private key %s: %s", key_file,
		    drain_errors(why, sizeof why));
		return -1;
	}
	if (ERR_peek_error() != 0 || SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		say(err, errlen, "private key %s does not belong to the "
		    "certificate in %s", key_file, cert_file);
		return -1;
	}
	warn_expiry(ctx, cert_file);
	return 0;
}

/* Settings shared by both sides: versions, no compression or renegotiation. */
static int
common_settings(SSL_CTX *ctx)
{
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
					 SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
		return -1;
	return 0;
}

static int
server_settings(SSL_CTX *ctx)
{
	if (common_settings(ctx) == -1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_session_id_context(
		    ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
		    sizeof TLS_SESSION_ID_CONTEXT - 1) != 1)
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* stateless tickets: resumption without a server-side cache */
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
		   size_t errlen)
{
	char why[512];

	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || server_settings(ctx) == -1) {
		say(err, errlen, "cannot set up a TLS server context: %s",
		    drain_errors(why, sizeof why));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (tls_ctx_use_certificate(ctx, cert_file, key_file, err, errlen) ==
	    -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL_CTX *
tls_server_ctx_load_installed(const char *state_dir, char *err,
			      size_t errlen)
{
	char cert[4096], key[4096];

	if (cert_layout_current(state_dir, cert, sizeof cert, key, sizeof key,
				err, errlen) == -1)
		return NULL;	/* err is empty when nothing is installed */
	return tls_server_ctx_new(cert, key, err, errlen);
}

SSL_CTX *
tls_client_ctx_new(char *err, size_t errlen)
{
	char why[512];

	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || common_settings(ctx) == -1) {
		say(err, errlen, "cannot set up a TLS client context: %s",
		    drain_errors(why, sizeof why));
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * The chain is still checked against the system store during the
	 * handshake; the result is read with SSL_get_verify_result() and the
	 * connector's policy decides (may: record it, verify: defer).
	 */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		say(err, errlen, "cannot load the system CA store: %s",
		    drain_errors(why, sizeof why));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
