/*
 * tlspolicy: the TLS side of outbound delivery, shared by the delivery
 * engine and `connector test`: client contexts, name checks, what a
 * handshake proved, and the memories that outlive one connection.
 *
 *   smtpc_tls_new(), smtpc_tls_free()
 *   smtpc_tls_reset()     a reload: contexts are rebuilt on next use (the
 *                         installed certificate may have changed).
 *   smtpc_tls_ctx()       the client SSL_CTX for one CA setting (system
 *                         store or tls_ca_file) and client-certificate
 *                         choice, built once and kept; with it the
 *                         description of the certificate presented.
 *   smtpc_tls_prepare()   before a handshake: the names the peer's
 *                         certificate must carry (SSL_set1_host /
 *                         SSL_add1_host; never a bare IP).
 *   smtpc_tls_check()     after it: did the chain and name verify?  The
 *                         reason names a missing issuer (case C19).
 *   smtpc_tls_peer()      the peer certificate's subject.
 *   smtpc_tls_remember_failure(), smtpc_tls_failed_recently()
 *                         "may": a host whose handshake failed is spoken
 *                         to in clear text for a while (case C22).
 *   smtpc_tls_session_save(), smtpc_tls_session_use()
 *                         TLS session resumption per next hop address.
 */
#ifndef BH_SMTPC_TLSPOLICY_H
#define BH_SMTPC_TLSPOLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct smtpc_tls;

struct smtpc_tls *smtpc_tls_new(const char *state_dir);
void smtpc_tls_free(struct smtpc_tls *t);
void smtpc_tls_reset(struct smtpc_tls *t, const char *state_dir);

/*
 * ca_file NULL: the system store.  *cert_desc: "subject; SAN=..." of the
 * client certificate loaded into the context, or NULL when none is (not
 * wanted, or none installed).  NULL and a sentence in err on failure.
 */
SSL_CTX *smtpc_tls_ctx(struct smtpc_tls *t, const char *ca_file,
		       bool client_cert, const char **cert_desc, char *err,
		       size_t errlen);

/*
 * host: the next hop's name (may be an IP literal, then it is not used);
 * match: tls_match names, used instead of host when given.  Returns the
 * number of names set; 0 means no name could be checked.
 */
int smtpc_tls_prepare(SSL *ssl, const char *host, char *const *match,
		      size_t n_match);
bool smtpc_tls_check(SSL *ssl, int n_names, char *reason, size_t len);
void smtpc_tls_peer(SSL *ssl, char *out, size_t len);

void smtpc_tls_remember_failure(struct smtpc_tls *t, const char *addr);
bool smtpc_tls_failed_recently(struct smtpc_tls *t, const char *addr);

void smtpc_tls_session_save(struct smtpc_tls *t, const char *addr, SSL *ssl);
void smtpc_tls_session_use(struct smtpc_tls *t, const char *addr, SSL *ssl);

#endif
