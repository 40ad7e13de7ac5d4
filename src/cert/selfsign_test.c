/*
 * selfsign_test: the DNS name check (a table of names and the reason each
 * bad one is refused) and the contents of a self-signed certificate:
 * version, names, SAN, EKU, key usage, basic constraints, serial,
 * validity window, key type and signature.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "cert/selfsign.h"

static void
test_fqdn_check(void **state)
{
	(void)state;
	char l63[64], l64[65], long254[260];
	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l64, 'a', 64);
	l64[64] = '\0';
	/* 3 labels of 63, one of 62, 3 dots: 254 characters */
	snprintf(long254, sizeof long254, "%s.%s.%s.%.62s", l63, l63, l63,
		 l63);
	char ok253[260];
	snprintf(ok253, sizeof ok253, "%s.%s.%s.%.61s", l63, l63, l63, l63);
	char max_label[80];
	snprintf(max_label, sizeof max_label, "%s.example", l63);
	char over_label[80];
	snprintf(over_label, sizeof over_label, "%s.example", l64);

	static const char bad_byte[] = { 'a', '\x01', '.', 'b', '\0' };
	const struct {
		const char *name;
		const char *want;	/* NULL: accepted; else in the error */
	} rows[] = {
		{ "bh1.contoso.com", NULL },
		{ "BH1.Contoso.COM", NULL },
		{ "mail-1.example.net", NULL },
		{ "localhost", NULL },
		{ "a.b", NULL },
		{ "xn--bcher-kva.example", NULL },
		{ "1mail.example", NULL },
		{ "example.com2", NULL },
		{ max_label, NULL },
		{ "", "empty" },
		{ "bh1", "not fully qualified" },
		{ "bh1.", "empty label" },
		{ ".bh1.example", "empty label" },
		{ "bh1..example", "empty label" },
		{ "-bh1.example", "hyphen" },
		{ "bh1-.example", "hyphen" },
		{ "bh_1.example", "contains '_'" },
		{ "bh1.example.com,DNS:evil.example", "contains ','" },
		{ "*.example.com", "contains '*'" },
		{ "bh 1.example", "byte 0x20" },
		{ bad_byte, "byte 0x01" },
		{ "b\xc3\xbc" "cher.example", "byte 0xc3" },
		{ "192.0.2.1", "IP address" },
		{ over_label, "longer than 63" },
		{ long254, "longer than 253" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char err[256] = "";
		int rc = cert_fqdn_check(rows[i].name, err, sizeof err);
		int want_rc = rows[i].want == NULL ? 0 : -1;
		if (rc != want_rc ||
		    (rows[i].want != NULL && strstr(err, rows[i].want) == NULL)) {
			print_error("'%.40s': got rc %d err '%s', want rc %d "
				    "with '%s'\n",
				    rows[i].name, rc, err, want_rc,
				    rows[i].want != NULL ? rows[i].want : "");
			fail();
		}
	}
	/* exactly 253 characters is still fine */
	char err[256];
	assert_int_equal(strlen(ok253), 253);
	assert_int_equal(strlen(long254), 254);
	assert_int_equal(cert_fqdn_check(ok253, err, sizeof err), 0);
}

/* Seconds from now to t (negative: in the past). */
static long
seconds_from_now(const ASN1_TIME *t)
{
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
	return (long)days * 86400 + secs;
}

static void
test_certificate_contents(void **state)
{
	(void)state;
	char err[256] = "";
	EVP_PKEY *key = cert_key_new(err, sizeof err);
	assert_non_null(key);
	X509 *x = cert_selfsign(key, "bh1.example.com", 30, err, sizeof err);
	if (x == NULL) {
		print_error("cert_selfsign: %s\n", err);
		fail();
	}

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	char cn[256];
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
					      NID_commonName, cn,
					      sizeof cn) > 0);
	assert_string_equal(cn, "bh1.example.com");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x),
				       X509_get_issuer_name(x)),
			 0);

	/* the SAN alone names the host (RFC 6125) */
	assert_int_equal(X509_check_host(x, "bh1.example.com", 0,
					 X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
					 NULL),
			 1);
	assert_int_equal(X509_check_host(x, "other.example.com", 0, 0, NULL),
			 0);

	uint32_t xku = X509_get_extended_key_usage(x);
	assert_int_equal(xku & (XKU_SSL_SERVER | XKU_SSL_CLIENT),
			 XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	uint32_t flags = X509_get_extension_flags(x);
	assert_true((flags & EXFLAG_BCONS) != 0);
	assert_true((flags & EXFLAG_CA) == 0);
	int bc = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
	assert_true(bc >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, bc)), 1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);

	/* a positive 127-bit serial */
	BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_non_null(serial);
	assert_int_equal(BN_is_negative(serial), 0);
	assert_int_equal(BN_num_bits(serial), 127);
	BN_free(serial);

	long before = seconds_from_now(X509_get0_notBefore(x));
	long after = seconds_from_now(X509_get0_notAfter(x));
	if (before > -295 || before < -310 || after < 30 * 86400 - 10 ||
	    after > 30 * 86400) {
		print_error("validity: notBefore %+ld s, notAfter %+ld s from "
			    "now; want about -300 and +%d\n",
			    before, after, 30 * 86400);
		fail();
	}

	char group[64];
	assert_int_equal(EVP_PKEY_get_group_name(X509_get0_pubkey(x), group,
						 sizeof group, NULL),
			 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(x, key), 1);
	assert_int_equal(X509_check_private_key(x, key), 1);

	X509_free(x);
	EVP_PKEY_free(key);
}

/* Two certificates never share a serial (or a key). */
static void
test_serials_differ(void **state)
{
	(void)state;
	char err[256];
	EVP_PKEY *k1 = cert_key_new(err, sizeof err);
	EVP_PKEY *k2 = cert_key_new(err, sizeof err);
	assert_non_null(k1);
	assert_non_null(k2);
	assert_int_equal(EVP_PKEY_eq(k1, k2), 0);
	X509 *a = cert_selfsign(k1, "a.example", 1, err, sizeof err);
	X509 *b = cert_selfsign(k1, "a.example", 1, err, sizeof err);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
					      X509_get0_serialNumber(b)),
			     0);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void
test_refusals(void **state)
{
	(void)state;
	const struct {
		const char *fqdn;
		unsigned days;
		const char *want;
	} rows[] = {
		{ "bh1.example.com", 0, "1 to 3650 days" },
		{ "bh1.example.com", 3651, "1 to 3650 days" },
		{ "bh1", 365, "'bh1' is not a valid DNS name" },
		{ "a,b.example", 365, "not a valid DNS name" },
	};
	char err[256];
	EVP_PKEY *key = cert_key_new(err, sizeof err);
	assert_non_null(key);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		err[0] = '\0';
		X509 *x = cert_selfsign(key, rows[i].fqdn, rows[i].days, err,
					sizeof err);
		if (x != NULL || strstr(err, rows[i].want) == NULL) {
			print_error("%s/%u: got %s '%s', want NULL with '%s'\n",
				    rows[i].fqdn, rows[i].days,
				    x != NULL ? "a certificate" : "NULL", err,
				    rows[i].want);
			fail();
		}
	}
	X509 *x = cert_selfsign(key, "bh1.example.com", CERT_DAYS_MAX, err,
				sizeof err);
	assert_non_null(x);
	X509_free(x);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fqdn_check),
		cmocka_unit_test(test_certificate_contents),
		cmocka_unit_test(test_serials_differ),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
