/*
 * tls: OpenSSL 3 contexts for bridgehead, server and client side.
 *
 *   tls_server_ctx_new()  a server context from a certificate file (leaf
 *       first, then the chain) and its key: TLS 1.2 and 1.3 only,
 *       forward-secret AEAD ciphers, server cipher preference, session
 *       tickets, no compression, no renegotiation.
 *   tls_server_ctx_load_installed()  the same for the certificate
 *       installed in state_dir/pki (cert/store); NULL with an empty err when
 *       none is installed (then STARTTLS is not offered).
 *   tls_client_ctx_new()  a client context for outbound delivery: TLS 1.2+,
 *       the system CA store loaded, but no verification enforced by the
 *       context (the session decides from SSL_get_verify_result() what its
 *       TLS policy requires).
 *   tls_ctx_use_certificate()  load a certificate chain and key into any
 *       context (the server's, or a client's to present a client
 *       certificate), refusing a key readable by others.
 *   tls_log_errors()  drain the OpenSSL error queue into the log / a string.
 */
#ifndef BH_NET_TLS_H
#define BH_NET_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    char *err, size_t errlen);
SSL_CTX *tls_server_ctx_load_installed(const char *state_dir, char *err,
				       size_t errlen);
SSL_CTX *tls_client_ctx_new(char *err, size_t errlen);
/* 0, or -1 with a sentence naming the file at fault in err. */
int tls_ctx_use_certificate(SSL_CTX *ctx, const char *cert_file,
			    const char *key_file, char *err, size_t errlen);
/* Appends "what: reason; reason" to the log and returns the reasons in buf. */
const char *tls_log_errors(const char *what, char *buf, size_t buflen);

#endif
