/*
 * info: reading a certificate file and describing a certificate in the
 * words an administrator needs (cert show, status, start-up warnings).
 *
 *   cert_info_read_pem()    the certificates of a PEM file: the first is
 *                           the leaf, the rest its chain, in file order.
 *   cert_info_describe()    the facts of one certificate (and its chain)
 *                           into a fixed-size struct cert_info.
 *   cert_info_load()        both of the above for one file.
 *   cert_info_csr_subject() the subject of a PEM certificate request.
 *
 * Names are printed most specific first (RFC 4514 order, "CN=a, O=b"),
 * as UTF-8 with control characters escaped; times are RFC 3339 in UTC.
 * Everything has a fixed upper size: longer names end in "...", SANs past
 * CERT_INFO_MAX_SANS and chain certificates past CERT_INFO_MAX_CHAIN are
 * counted, not kept.
 */
#ifndef BH_CERT_INFO_H
#define BH_CERT_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#define CERT_INFO_NAME_MAX 512
#define CERT_INFO_SAN_MAX 256
#define CERT_INFO_MAX_SANS 32
#define CERT_INFO_MAX_CHAIN 8
#define CERT_INFO_PEM_MAX 16	/* certificates read from one file */

struct cert_info_link {
	char subject[CERT_INFO_NAME_MAX];
	char issuer[CERT_INFO_NAME_MAX];
};

struct cert_info {
	char subject[CERT_INFO_NAME_MAX];
	char issuer[CERT_INFO_NAME_MAX];
	bool self_signed;		/* issued by itself, signature checked */
	char sans[CERT_INFO_MAX_SANS][CERT_INFO_SAN_MAX]; /* DNS names, IPs */
	size_t n_sans;
	size_t sans_omitted;
	char serial[96];		/* upper-case hex, no separators */
	time_t not_before, not_after;
	char not_before_text[32];	/* RFC 3339, "2026-01-02T03:04:05Z" */
	char not_after_text[32];
	long days_left;			/* whole days; negative when expired */
	char key[64];			/* "EC P-256", "RSA 2048", "Ed25519" */
	char fingerprint_sha256[100];	/* "AB:CD:..." (32 bytes) */
	bool eku_server_auth;		/* usable as a TLS server / client */
	bool eku_client_auth;		/* certificate (no EKU: both true) */
	struct cert_info_link chain[CERT_INFO_MAX_CHAIN];
	size_t n_chain;
	size_t chain_omitted;
};

/*
 * Read every certificate in path (PEM; other blocks such as keys are
 * skipped).  *leaf gets the first, *chain (never NULL on success, maybe
 * empty) the others.  0, or -1 with a sentence naming the file in err.
 */
int cert_info_read_pem(const char *path, X509 **leaf, STACK_OF(X509) **chain,
		       char *err, size_t errlen);

/* chain may be NULL.  now: the time days_left is counted from. */
int cert_info_describe(X509 *leaf, STACK_OF(X509) *chain, time_t now,
		       struct cert_info *out, char *err, size_t errlen);

int cert_info_load(const char *path, time_t now, struct cert_info *out,
		   char *err, size_t errlen);

/* The subject of the certificate request in path, into subject. */
int cert_info_csr_subject(const char *path, char *subject, size_t len,
			  char *err, size_t errlen);

#endif
