/*
 * selfsign: the server's key and a self-signed certificate (see
 * selfsign.h for what the certificate holds and why).
 *
 *   cert_fqdn_check()  RFC 1123 host name check, with the reason.
 *   cert_key_new()     EC P-256 key (EVP_PKEY_Q_keygen, OpenSSL 3).
 *   cert_selfsign()    the X.509 v3 leaf, built step by step: serial,
 *                      validity, names, extensions, signature.
 */
#include "cert/selfsign.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define FQDN_MAX 253
#define LABEL_MAX 63
#define SERIAL_BYTES 16
#define NOT_BEFORE_SKEW_S (5 * 60)

/* One label: len bytes at label; last: the top-level label. */
static int
check_label(const char *label, size_t len, bool last, char *err,
	    size_t errlen)
{
	if (len == 0) {
		snprintf(err, errlen, "it has an empty label (two dots in a "
			 "row, or a dot at the start or end)");
		return -1;
	}
	if (len > LABEL_MAX) {
		snprintf(err, errlen, "the label '%.*s...' is longer than %d "
			 "characters", 20, label, LABEL_MAX);
		return -1;
	}
	if (label[0] == '-' || label[len - 1] == '-') {
		snprintf(err, errlen, "the label '%.*s' starts or ends with a "
			 "hyphen", (int)len, label);
		return -1;
	}
	bool digits_only = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)label[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool digit = c >= '0' && c <= '9';
		if (!alpha && !digit && c != '-') {
			if (c > 0x20 && c < 0x7f)
				snprintf(err, errlen, "it contains '%c' (only "
					 "letters, digits, hyphens and dots "
					 "are allowed)", (char)c);
			else
				snprintf(err, errlen, "it contains the byte "
					 "0x%02x (only letters, digits, "
					 "hyphens and dots are allowed)", c);
			return -1;
		}
		if (!digit)
			digits_only = false;
	}
	if (last && digits_only) {
		snprintf(err, errlen, "it looks like an IP address, not a DNS "
			 "name");
		return -1;
	}
	return 0;
}

int
cert_fqdn_check(const char *name, char *err, size_t errlen)
{
	size_t len = name == NULL ? 0 : strlen(name);

	if (len == 0) {
		snprintf(err, errlen, "the name is empty");
		return -1;
	}
	if (len > FQDN_MAX) {
		snprintf(err, errlen, "it is longer than %d characters",
			 FQDN_MAX);
		return -1;
	}
	if (strcmp(name, "localhost") == 0)
		return 0;
	if (strchr(name, '.') == NULL) {
		snprintf(err, errlen, "it is not fully qualified (it needs a "
			 "domain, as in %s.example.com)", name);
		return -1;
	}
	const char *label = name;
	for (;;) {
		const char *dot = strchr(label, '.');
		size_t llen = dot == NULL ? strlen(label) : (size_t)(dot - label);
		if (check_label(label, llen, dot == NULL, err, errlen) == -1)
			return -1;
		if (dot == NULL)
			return 0;
		label = dot + 1;
	}
}

EVP_PKEY *
cert_key_new(char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL) {
		const char *why = ERR_reason_error_string(ERR_get_error());
		ERR_clear_error();
		snprintf(err, errlen, "cannot make an EC P-256 key: %s",
			 why != NULL ? why : "unknown error");
	}
	return key;
}

/* A random positive serial of SERIAL_BYTES (RFC 5280 4.1.2.2: <= 20). */
static int
set_serial(X509 *x)
{
	unsigned char raw[SERIAL_BYTES];

	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	raw[0] &= 0x7f;		/* positive in DER */
	raw[0] |= 0x40;		/* and a full 127 bits: never short or zero */
	BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
	int rc = bn != NULL &&
			 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ?
		 0 : -1;
	BN_free(bn);
	return rc;
}

static int
set_names(X509 *x, const char *fqdn)
{
	X509_NAME *name = X509_get_subject_name(x);

	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				       (const unsigned char *)fqdn, -1, -1,
				       0) != 1)
		return -1;
	return X509_set_issuer_name(x, name) == 1 ? 0 : -1;
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return -1;
	int rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/* The fqdn was checked: no commas or colons can reach the SAN value. */
static int
set_extensions(X509 *x, const char *fqdn)
{
	char san[FQDN_MAX + 8];
	X509V3_CTX ctx;

	snprintf(san, sizeof san, "DNS:%s", fqdn);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(x, &ctx, NID_subject_alt_name, san) ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
		return -1;
	return 0;
}

static int
set_validity(X509 *x, unsigned days)
{
	if (X509_gmtime_adj(X509_getm_notBefore(x), -NOT_BEFORE_SKEW_S) ==
	    NULL)
		return -1;
	if (X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) ==
	    NULL)
		return -1;
	return 0;
}

X509 *
cert_selfsign(EVP_PKEY *key, const char *fqdn, unsigned days, char *err,
	      size_t errlen)
{
	char why[256];

	if (cert_fqdn_check(fqdn, why, sizeof why) == -1) {
		snprintf(err, errlen, "'%s' is not a valid DNS name: %s",
			 fqdn != NULL ? fqdn : "", why);
		return NULL;
	}
	if (days < 1 || days > CERT_DAYS_MAX) {
		snprintf(err, errlen, "the validity must be 1 to %d days, not "
			 "%u", CERT_DAYS_MAX, days);
		return NULL;
	}
	X509 *x = X509_new();
	const char *step = "allocate";
	if (x == NULL)
		goto fail;
	step = "set the version, serial or key of";
	if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) == -1 ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	step = "set the validity of";
	if (set_validity(x, days) == -1)
		goto fail;
	step = "set the names of";
	if (set_names(x, fqdn) == -1)
		goto fail;
	step = "add the extensions to";
	if (set_extensions(x, fqdn) == -1)
		goto fail;
	step = "sign";
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	return x;
fail:;
	const char *reason = ERR_reason_error_string(ERR_get_error());
	ERR_clear_error();
	snprintf(err, errlen, "cannot %s the certificate: %s", step,
		 reason != NULL ? reason : "out of memory");
	X509_free(x);
	return NULL;
}
