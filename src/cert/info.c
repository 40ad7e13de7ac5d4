/*
 * info: reading PEM certificate files and describing certificates (see
 * info.h).
 *
 *   cert_info_read_pem()    leaf and chain from one PEM file.
 *   cert_info_describe()    subject, SANs, issuer, serial, validity, key,
 *                           SHA-256 fingerprint, EKU, the chain.
 *   cert_info_load()        read + describe.
 *   cert_info_csr_subject() the subject of a PEM certificate request.
 *
 * Certificates come from administrators and CAs: every field may be
 * missing, oversized or odd, so each is formatted into a bounded buffer
 * and anything that cannot be decoded is reported, never trusted.
 */
#include "cert/info.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* The first OpenSSL reason on the error queue (the queue is emptied). */
static const char *
ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return why != NULL ? why : "unknown error";
}

/* Copy len bytes into dst (NUL-terminated); cut with "..." if too long. */
static void
copy_cut(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (dstlen == 0)
		return;
	if (len < dstlen) {
		memcpy(dst, src, len);
		dst[len] = '\0';
		return;
	}
	memcpy(dst, src, dstlen - 1);
	dst[dstlen - 1] = '\0';
	if (dstlen > 4)
		memcpy(dst + dstlen - 4, "...", 4);
}

/*
 * RFC 4514 order and escaping, but UTF-8 instead of \XX for non-ASCII
 * bytes and ", " between the parts so that it reads well.
 */
static void
name_text(const X509_NAME *name, char *dst, size_t dstlen)
{
	const unsigned long flags =
		(ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) |
		XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV | XN_FLAG_FN_SN;
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len = 0;

	if (bio != NULL && X509_NAME_print_ex(bio, name, 0, flags) >= 0)
		len = BIO_get_mem_data(bio, &data);
	if (len > 0)
		copy_cut(dst, dstlen, data, (size_t)len);
	else
		copy_cut(dst, dstlen, "(empty)", 7);
	BIO_free(bio);
	ERR_clear_error();
}

static void
time_text(time_t t, char *dst, size_t dstlen)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(dst, dstlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		copy_cut(dst, dstlen, "(invalid)", 9);
}

static int
asn1_time(const ASN1_TIME *at, time_t *out)
{
	struct tm tm;

	if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* Whole days from now to t, rounded towards the past. */
static long
days_until(time_t t, time_t now)
{
	long long diff = (long long)t - (long long)now;
	if (diff >= 0)
		return (long)(diff / 86400);
	return -(long)((-diff + 86399) / 86400);
}

static int
serial_text(X509 *x, char *dst, size_t dstlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	if (hex == NULL)
		return -1;
	copy_cut(dst, dstlen, hex, strlen(hex));
	OPENSSL_free(hex);
	return 0;
}

/* "EC P-256", "RSA 2048", "Ed25519", else the type name and bits. */
static void
key_text(EVP_PKEY *pk, char *dst, size_t dstlen)
{
	char group[48];

	if (pk == NULL) {
		snprintf(dst, dstlen, "(unreadable key)");
		return;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) !=
		    1) {
			snprintf(dst, dstlen, "EC (unknown curve)");
			break;
		}
		const char *nist = EC_curve_nid2nist(OBJ_txt2nid(group));
		snprintf(dst, dstlen, "EC %s", nist != NULL ? nist : group);
		break;
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		snprintf(dst, dstlen, "RSA %d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_ED25519:
		snprintf(dst, dstlen, "Ed25519");
		break;
	case EVP_PKEY_ED448:
		snprintf(dst, dstlen, "Ed448");
		break;
	default: {
		const char *type = EVP_PKEY_get0_type_name(pk);
		snprintf(dst, dstlen, "%s %d", type != NULL ? type : "unknown",
			 EVP_PKEY_get_bits(pk));
	}
	}
	ERR_clear_error();
}

static int
fingerprint_text(X509 *x, char *dst, size_t dstlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (X509_digest(x, EVP_sha256(), md, &n) != 1 ||
	    dstlen < (size_t)n * 3)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		snprintf(dst + i * 3, dstlen - i * 3, "%02X%s", md[i],
			 i + 1 < n ? ":" : "");
	return 0;
}

/* One GENERAL_NAME as text, if it is a kind we show (DNS name, IP). */
static int
san_text(const GENERAL_NAME *gn, char *dst, size_t dstlen)
{
	if (gn->type == GEN_DNS) {
		const ASN1_IA5STRING *s = gn->d.dNSName;
		char esc[CERT_INFO_SAN_MAX];
		size_t o = 0;
		/* A SAN is IA5 (ASCII); anything else is shown escaped. */
		for (int i = 0; i < s->length && o + 5 < sizeof esc; i++) {
			unsigned char c = s->data[i];
			if (c > 0x20 && c < 0x7f && c != '\\')
				esc[o++] = (char)c;
			else
				o += (size_t)snprintf(esc + o, sizeof esc - o,
						      "\\x%02x", c);
		}
		copy_cut(dst, dstlen, esc, o);
		return 0;
	}
	if (gn->type == GEN_IPADD) {
		const ASN1_OCTET_STRING *o = gn->d.iPAddress;
		int af = o == NULL ? 0 : o->length == 4 ? AF_INET :
				   o->length == 16 ? AF_INET6 : 0;
		char ip[INET6_ADDRSTRLEN];
		if (af == 0 || inet_ntop(af, o->data, ip, sizeof ip) == NULL)
			return -1;
		copy_cut(dst, dstlen, ip, strlen(ip));
		return 0;
	}
	return -1;
}

static void
collect_sans(X509 *x, struct cert_info *out)
{
	GENERAL_NAMES *gens =
		X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		char text[CERT_INFO_SAN_MAX];
		if (san_text(sk_GENERAL_NAME_value(gens, i), text,
			     sizeof text) == -1)
			continue;
		if (out->n_sans == CERT_INFO_MAX_SANS) {
			out->sans_omitted++;
			continue;
		}
		copy_cut(out->sans[out->n_sans++], CERT_INFO_SAN_MAX, text,
			 strlen(text));
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

static void
collect_chain(STACK_OF(X509) *chain, struct cert_info *out)
{
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		if (out->n_chain == CERT_INFO_MAX_CHAIN) {
			out->chain_omitted++;
			continue;
		}
		X509 *c = sk_X509_value(chain, i);
		struct cert_info_link *l = &out->chain[out->n_chain++];
		name_text(X509_get_subject_name(c), l->subject,
			  sizeof l->subject);
		name_text(X509_get_issuer_name(c), l->issuer,
			  sizeof l->issuer);
	}
}

int
cert_info_describe(X509 *leaf, STACK_OF(X509) *chain, time_t now,
		   struct cert_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	name_text(X509_get_subject_name(leaf), out->subject,
		  sizeof out->subject);
	name_text(X509_get_issuer_name(leaf), out->issuer, sizeof out->issuer);
	out->self_signed = X509_self_signed(leaf, 1) == 1;
	if (asn1_time(X509_get0_notBefore(leaf), &out->not_before) == -1 ||
	    asn1_time(X509_get0_notAfter(leaf), &out->not_after) == -1) {
		snprintf(err, errlen, "the certificate's validity dates "
			 "cannot be read");
		ERR_clear_error();
		return -1;
	}
	time_text(out->not_before, out->not_before_text,
		  sizeof out->not_before_text);
	time_text(out->not_after, out->not_after_text,
		  sizeof out->not_after_text);
	out->days_left = days_until(out->not_after, now);
	if (serial_text(leaf, out->serial, sizeof out->serial) == -1 ||
	    fingerprint_text(leaf, out->fingerprint_sha256,
			     sizeof out->fingerprint_sha256) == -1) {
		snprintf(err, errlen, "the certificate's serial or "
			 "fingerprint cannot be computed: %s", ssl_reason());
		return -1;
	}
	key_text(X509_get0_pubkey(leaf), out->key, sizeof out->key);
	uint32_t xku = X509_get_extended_key_usage(leaf);
	out->eku_server_auth = (xku & XKU_SSL_SERVER) != 0;
	out->eku_client_auth = (xku & XKU_SSL_CLIENT) != 0;
	collect_sans(leaf, out);
	collect_chain(chain, out);
	ERR_clear_error();
	return 0;
}

/* The next certificate of bio, 0 at the end, -1 on a malformed one. */
static int
read_one(BIO *bio, X509 **x)
{
	ERR_clear_error();
	*x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (*x != NULL)
		return 1;
	unsigned long e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		return 0;
	}
	return -1;
}

int
cert_info_read_pem(const char *path, X509 **leaf, STACK_OF(X509) **chain,
		   char *err, size_t errlen)
{
	*leaf = NULL;
	*chain = NULL;
	errno = 0;
	BIO *bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		int saved = errno;
		ERR_clear_error();
		snprintf(err, errlen, "cannot read %s: %s", path,
			 saved != 0 ? strerror(saved) : "cannot open");
		return -1;
	}
	STACK_OF(X509) *all = sk_X509_new_null();
	X509 *x = NULL;
	int rc, n = 0;
	while (all != NULL && (rc = read_one(bio, &x)) == 1) {
		if (++n > CERT_INFO_PEM_MAX || sk_X509_push(all, x) == 0) {
			X509_free(x);
			rc = -2;
			break;
		}
	}
	BIO_free(bio);
	if (all == NULL || rc != 0 || n == 0) {
		if (all == NULL)
			snprintf(err, errlen, "%s: out of memory", path);
		else if (rc == -2)
			snprintf(err, errlen, "%s holds more than %d "
				 "certificates", path, CERT_INFO_PEM_MAX);
		else if (rc == -1)
			snprintf(err, errlen, "%s: certificate %d is "
				 "malformed: %s", path, n + 1, ssl_reason());
		else
			snprintf(err, errlen, "%s holds no PEM certificate "
				 "(-----BEGIN CERTIFICATE-----)", path);
		sk_X509_pop_free(all, X509_free);
		return -1;
	}
	*leaf = sk_X509_shift(all);
	*chain = all;
	return 0;
}

int
cert_info_load(const char *path, time_t now, struct cert_info *out,
	       char *err, size_t errlen)
{
	X509 *leaf;
	STACK_OF(X509) *chain;
	char why[512];

	if (cert_info_read_pem(path, &leaf, &chain, err, errlen) == -1)
		return -1;
	int rc = cert_info_describe(leaf, chain, now, out, why, sizeof why);
	if (rc == -1)
		snprintf(err, errlen, "%s: %s", path, why);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

int
cert_info_csr_subject(const char *path, char *subject, size_t len,
		      char *err, size_t errlen)
{
	errno = 0;
	BIO *bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		int saved = errno;
		ERR_clear_error();
		snprintf(err, errlen, "cannot read %s: %s", path,
			 saved != 0 ? strerror(saved) : "cannot open");
		return -1;
	}
	X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (req == NULL) {
		snprintf(err, errlen, "%s holds no readable certificate "
			 "request: %s", path, ssl_reason());
		return -1;
	}
	name_text(X509_REQ_get_subject_name(req), subject, len);
	X509_REQ_free(req);
	return 0;
}
