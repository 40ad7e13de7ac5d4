/*
 * tlspolicy: client TLS contexts, certificate checks and per-host TLS
 * memories for outbound delivery (see tlspolicy.h; DESIGN.md "Outbound
 * TLS policy"; RFC 3207, RFC 6125 name checks through OpenSSL's
 * X509_VERIFY_PARAM host list).
 *
 * Contexts: one per distinct (CA file, client certificate) pair, built
 * lazily.  With tls_ca_file the trust store holds only that file: the
 * connector's administrator named the CA to trust.  Verification is never
 * enforced by the context (SSL_VERIFY_NONE): OpenSSL still checks the
 * chain and the names and records the outcome, which the session reads
 * with SSL_get_verify_result() and judges by the connector's policy.
 *
 * Memories are small fixed tables (bounded memory): the oldest entry is
 * replaced when full.
 */
#include "smtpc/tlspolicy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "cert/store.h"
#include "net/tls.h"
#include "util/log.h"

#define TLS_CTX_MAX 16
#define TLS_FAIL_MAX 256
#define TLS_FAIL_TTL_S 3600 /* "may": clear text for an hour */
#define TLS_SESS_MAX 256
#define TLS_ADDR_MAX 64

struct tls_ctx_entry {
	char *ca_file; /* NULL: system store */
	bool client_cert;
	SSL_CTX *ctx;
	char *cert_desc;
};

struct tls_fail {
	char addr[TLS_ADDR_MAX];
	time_t until;
};

struct tls_sess {
	char addr[TLS_ADDR_MAX];
	SSL_CTX *ctx; /* the session belongs to this context (not owned) */
	SSL_SESSION *sess;
	time_t saved;
};

struct smtpc_tls {
	char *state_dir;
	struct tls_ctx_entry ctxs[TLS_CTX_MAX];
	size_t n_ctxs;
	struct tls_fail fails[TLS_FAIL_MAX];
	struct tls_sess sess[TLS_SESS_MAX];
};

struct smtpc_tls *
smtpc_tls_new(const char *state_dir)
{
	struct smtpc_tls *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->state_dir = strdup(state_dir);
	if (t->state_dir == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void
tls_drop_sessions(struct smtpc_tls *t)
{
	for (size_t i = 0; i < TLS_SESS_MAX; i++) {
		SSL_SESSION_free(t->sess[i].sess);
		memset(&t->sess[i], 0, sizeof t->sess[i]);
	}
}

static void
tls_drop_ctxs(struct smtpc_tls *t)
{
	for (size_t i = 0; i < t->n_ctxs; i++) {
		free(t->ctxs[i].ca_file);
		free(t->ctxs[i].cert_desc);
		SSL_CTX_free(t->ctxs[i].ctx); /* live SSLs keep a reference */
	}
	t->n_ctxs = 0;
}

void
smtpc_tls_free(struct smtpc_tls *t)
{
	if (t == NULL)
		return;
	tls_drop_sessions(t);
	tls_drop_ctxs(t);
	free(t->state_dir);
	free(t);
}

void
smtpc_tls_reset(struct smtpc_tls *t, const char *state_dir)
{
	char *dup = strdup(state_dir);
	if (dup != NULL) {
		free(t->state_dir);
		t->state_dir = dup;
	}
	/* Sessions belong to the old contexts: drop them with those. */
	tls_drop_sessions(t);
	tls_drop_ctxs(t);
}

/* "CN=bh1.example.com; SAN=DNS:bh1.example.com,DNS:..." of a PEM file. */
static char *
tls_describe_cert(const char *cert_file)
{
	char buf[1024];
	FILE *f = fopen(cert_file, "r");
	if (f == NULL)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		ERR_clear_error();
		return NULL;
	}
	size_t off = 0;
	X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof buf);
	off = strlen(buf);
	GENERAL_NAMES *sans =
		X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const char *sep = "; SAN=";
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type != GEN_DNS)
			continue;
		const unsigned char *s = ASN1_STRING_get0_data(gn->d.dNSName);
		int n = snprintf(buf + off, sizeof buf - off, "%sDNS:%.*s", sep,
				 ASN1_STRING_length(gn->d.dNSName),
				 (const char *)s);
		if (n < 0 || (size_t)n >= sizeof buf - off)
			break; /* the description is cut, not wrong */
		off += (size_t)n;
		sep = ",";
	}
	GENERAL_NAMES_free(sans);
	X509_free(x);
	return strdup(buf);
}

static int
tls_build_ctx(struct smtpc_tls *t, struct tls_ctx_entry *e, char *err,
	      size_t errlen)
{
	char why[512];

	e->ctx = tls_client_ctx_new(err, errlen);
	if (e->ctx == NULL)
		return -1;
	SSL_CTX_set_session_cache_mode(
		e->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	if (e->ca_file != NULL) {
		X509_STORE *store = X509_STORE_new();
		if (store == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		SSL_CTX_set_cert_store(e->ctx, store);
		ERR_clear_error();
		if (X509_STORE_load_file(store, e->ca_file) != 1) {
			snprintf(
				err, errlen, "cannot load tls_ca_file %s: %s",
				e->ca_file,
				tls_log_errors("tls_ca_file", why, sizeof why));
			return -1;
		}
	}
	if (!e->client_cert)
		return 0;
	char cert[4096], key[4096], why2[512];
	if (cert_store_find(t->state_dir, cert, sizeof cert, key, sizeof key,
			    why2, sizeof why2) == -1) {
		if (why2[0] != '\0')
			log_warn("smtpc: no client certificate: %s", why2);
		return 0; /* none installed: connect without one */
	}
	if (tls_ctx_use_certificate(e->ctx, cert, key, why2, sizeof why2) ==
	    -1) {
		/* A broken installed certificate must not stop the mail. */
		log_warn("smtpc: client certificate not used: %s", why2);
		return 0;
	}
	e->cert_desc = tls_describe_cert(cert);
	return 0;
}

SSL_CTX *
smtpc_tls_ctx(struct smtpc_tls *t, const char *ca_file, bool client_cert,
	      const char **cert_desc, char *err, size_t errlen)
{
	for (size_t i = 0; i < t->n_ctxs; i++) {
		struct tls_ctx_entry *e = &t->ctxs[i];
		bool same_ca = (e->ca_file == NULL && ca_file == NULL) ||
			       (e->ca_file != NULL && ca_file != NULL &&
				strcmp(e->ca_file, ca_file) == 0);
		if (same_ca && e->client_cert == client_cert) {
			*cert_desc = e->cert_desc;
			return e->ctx;
		}
	}
	if (t->n_ctxs == TLS_CTX_MAX) {
		/* More distinct settings than slots: start over. */
		tls_drop_sessions(t);
		tls_drop_ctxs(t);
	}
	struct tls_ctx_entry e = {.client_cert = client_cert};
	if (ca_file != NULL && (e.ca_file = strdup(ca_file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (tls_build_ctx(t, &e, err, errlen) == -1) {
		free(e.ca_file);
		free(e.cert_desc);
		SSL_CTX_free(e.ctx);
		return NULL;
	}
	t->ctxs[t->n_ctxs++] = e;
	*cert_desc = e.cert_desc;
	return e.ctx;
}

static bool
tls_is_ip(const char *s)
{
	struct in6_addr a;
	return inet_pton(AF_INET, s, &a) == 1 ||
	       inet_pton(AF_INET6, s, &a) == 1;
}

int
smtpc_tls_prepare(SSL *ssl, const char *host, char *const *match,
		  size_t n_match)
{
	int n = 0;

	/* Wildcards match one whole left-most label only (RFC 6125 6.4.3). */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (n_match > 0) {
		for (size_t i = 0; i < n_match; i++) {
			if (tls_is_ip(match[i]))
				continue;
			if ((n == 0 ? SSL_set1_host(ssl, match[i])
				    : SSL_add1_host(ssl, match[i])) == 1)
				n++;
		}
		return n;
	}
	if (host != NULL && *host != '\0' && !tls_is_ip(host) &&
	    SSL_set1_host(ssl, host) == 1)
		n = 1;
	return n;
}

bool
smtpc_tls_check(SSL *ssl, int n_names, char *reason, size_t len)
{
	long v = SSL_get_verify_result(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);

	if (peer == NULL) {
		snprintf(reason, len, "no peer certificate");
		return false;
	}
	if (v == X509_V_OK && n_names == 0) {
		snprintf(reason, len,
			 "no name to check the certificate against (next hop "
			 "given as an address; set tls_match)");
		return false;
	}
	if (v == X509_V_OK) {
		snprintf(reason, len, "ok");
		return true;
	}
	const char *why = X509_verify_cert_error_string(v);
	if (v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) {
		/* Name the certificate nobody sent (case C19). */
		STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
		int n = chain != NULL ? sk_X509_num(chain) : 0;
		X509 *last = n > 0 ? sk_X509_value(chain, n - 1) : peer;
		char issuer[512];
		X509_NAME_oneline(X509_get_issuer_name(last), issuer,
				  sizeof issuer);
		snprintf(reason, len, "%s: missing issuer %s", why, issuer);
		return false;
	}
	snprintf(reason, len, "%s", why);
	return false;
}

void
smtpc_tls_peer(SSL *ssl, char *out, size_t len)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL) {
		out[0] = '\0';
		return;
	}
	X509_NAME_oneline(X509_get_subject_name(peer), out, (int)len);
}

void
smtpc_tls_remember_failure(struct smtpc_tls *t, const char *addr)
{
	time_t now = time(NULL);
	struct tls_fail *slot = &t->fails[0];

	for (size_t i = 0; i < TLS_FAIL_MAX; i++) {
		struct tls_fail *f = &t->fails[i];
		if (strcmp(f->addr, addr) == 0) {
			slot = f;
			break;
		}
		if (f->until < slot->until)
			slot = f; /* the oldest (or an empty) entry */
	}
	snprintf(slot->addr, sizeof slot->addr, "%s", addr);
	slot->until = now + TLS_FAIL_TTL_S;
}

bool
smtpc_tls_failed_recently(struct smtpc_tls *t, const char *addr)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < TLS_FAIL_MAX; i++) {
		if (t->fails[i].until > now &&
		    strcmp(t->fails[i].addr, addr) == 0)
			return true;
	}
	return false;
}

void
smtpc_tls_session_save(struct smtpc_tls *t, const char *addr, SSL *ssl)
{
	SSL_SESSION *s = SSL_get1_session(ssl);
	if (s == NULL)
		return;
	if (!SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(s);
		return;
	}
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	struct tls_sess *slot = &t->sess[0];
	for (size_t i = 0; i < TLS_SESS_MAX; i++) {
		struct tls_sess *e = &t->sess[i];
		if (e->ctx == ctx && strcmp(e->addr, addr) == 0) {
			slot = e;
			break;
		}
		if (e->saved < slot->saved)
			slot = e;
	}
	SSL_SESSION_free(slot->sess);
	snprintf(slot->addr, sizeof slot->addr, "%s", addr);
	slot->ctx = ctx;
	slot->sess = s;
	slot->saved = time(NULL);
}

void
smtpc_tls_session_use(struct smtpc_tls *t, const char *addr, SSL *ssl)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);

	for (size_t i = 0; i < TLS_SESS_MAX; i++) {
		struct tls_sess *e = &t->sess[i];
		if (e->sess != NULL && e->ctx == ctx &&
		    strcmp(e->addr, addr) == 0) {
			if (SSL_set_session(ssl, e->sess) != 1)
				ERR_clear_error();
			return;
		}
	}
}
