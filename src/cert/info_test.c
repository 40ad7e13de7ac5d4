/*
 * info_test: reading PEM files and describing certificates, against
 * fixtures made once with openssl(1) (the expected values are what
 * `openssl x509 -noout -subject -serial -dates -fingerprint -sha256`
 * printed for them):
 *   LEAF_PEM  EC P-384, subject C=DE, O="Ex, ample", CN=a.example, issued
 *             by ROOT_PEM, serial 0x0123456789ABCDEF, SANs DNS a.example,
 *             b.example, IP 192.0.2.1, 2001:db8::1, email (not shown),
 *             EKU serverAuth only.
 *   ROOT_PEM  RSA 2048, self-signed CA, no EKU.
 *   LEAF_CSR  the request the leaf was made from.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "cert/info.h"

static const char LEAF_PEM[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIC1DCCAbygAwIBAgIIASNFZ4mrze8wDQYJKoZIhvcNAQELBQAwLDEWMBQGA1UE\n"
	"CgwNRXhhbXBsZSBUcnVzdDESMBAGA1UEAwwJVGVzdCBSb290MB4XDTI2MTIwMzE3\n"
	"MjgzNloXDTM2MTEzMDE3MjgzNlowNTELMAkGA1UEBhMCREUxEjAQBgNVBAoMCUV4\n"
	"LCBhbXBsZTESMBAGA1UEAwwJYS5leGFtcGxlMHYwEAYHKoZIzj0CAQYFK4EEACID\n"
	"YgAEMogFjy+TlV1HOs9xgjvBIj7Sh/L0Y9To/+wF1dzBMWMqEEH1iEJz4UXFz4Kw\n"
	"Hc1xDBZfIcXR2foncZPt2TlhzXtsCSgUZyq3Y8wg+JARMT+f31/AgCljymvVZEkq\n"
	"ZDnIo4GeMIGbMEQGA1UdEQQ9MDuCCWEuZXhhbXBsZYIJYi5leGFtcGxlhwTAAAIB\n"
	"hxAgAQ24AAAAAAAAAAAAAAABgQt4QGEuZXhhbXBsZTATBgNVHSUEDDAKBggrBgEF\n"
	"BQcDATAdBgNVHQ4EFgQUIHjNZMTgkFmvAjZgLNoKpYVkoSowHwYDVR0jBBgwFoAU\n"
	"MeaEnYrWS9OjC4mA1/OBKKBJ4MkwDQYJKoZIhvcNAQELBQADggEBAD6B+NFteJFn\n"
	"VyrIPeX04Is1/0MlpjoPPWOmZQL9USbplaVP+kdQ8QGVlUYwvYwAaGm2VtZEwNT6\n"
	"WK7sWz9uMh4nuZY8R4bSxtTkhG0wF1OrU7BNe+1ADWIfpiJMi1TvXxyBiBObKi+/\n"
	"kIcY0VnzE5XGYoiHtUFEPrSAiPgETDuuJxPlc1mp52z9ZLk40S92WGbf/pEk271I\n"
	"2pb3rDWipOYUWetsXaXIa70zDOBNRvbKCWE7AQb9SclO1XFnduzvSxHKuzvP+Nh0\n"
	"hfo6hy7BP4l4u0piTYNmvjPZw/rdpQSJPECZsAi3rnL4udB2X4rPQ4AALmXWLIB1\n"
	"6APJ3Zowc1Q=\n"
	"-----END CERTIFICATE-----\n";

static const char ROOT_PEM[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIDSTCCAjGgAwIBAgIUV3A6ShtZLAxcBvkWA7dBlz9sjzswDQYJKoZIhvcNAQEL\n"
	"BQAwLDEWMBQGA1UECgwNRXhhbXBsZSBUcnVzdDESMBAGA1UEAwwJVGVzdCBSb290\n"
	"MB4XDTI2MTIwMzE3MjgzNloXDTQ2MTEyODE3MjgzNlowLDEWMBQGA1UECgwNRXhh\n"
	"bXBsZSBUcnVzdDESMBAGA1UEAwwJVGVzdCBSb290MIIBIjANBgkqhkiG9w0BAQEF\n"
	"AAOCAQ8AMIIBCgKCAQEAlCEa+nNFrz3FtbNqjE7IL6wmwAUTGkSM8Z2gJDVWMPvE\n"
	"EfV738eYOLI44s7QsupubgwubYgIPFDl9lIRyWhOPeApvlqwlUIzNwO+Pq49kXmy\n"
	"YNj/dshY3SU5sgRknT1ig8eKzVoCS8DGkUhater1u0AUTKq4BSlLfv5vpmaCoE+3\n"
	"Fjjo7iGjodW/PJUoGviBXYROBcyjzg/U64FFX+Hi833AZBD2KM/tmcmbxjUe5Dyi\n"
	"3Sq8JjsFkPDjTyXg7BjccIf8g6dBPYwvmH+h/3oU7Q/97M+G6VqEWQJlzvUxmKrA\n"
	"wS4yPG0oYR5rtbva7xVgqNCicYmCYP+YdrWuZAIUSQIDAQABo2MwYTAdBgNVHQ4E\n"
	"FgQUMeaEnYrWS9OjC4mA1/OBKKBJ4MkwHwYDVR0jBBgwFoAUMeaEnYrWS9OjC4mA\n"
	"1/OBKKBJ4MkwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwDQYJKoZI\n"
	"hvcNAQELBQADggEBAAsz0ljFKOq1Z2HeBtXPNXy0k9m3H1HMgtwsHouWHFc/4fgp\n"
	"HbAArCOarxyb+OcAahM5aLyCHNqediqm99Xh5bfsokeyu4Z5Jg7tmdd+fCi8vioJ\n"
	"V6vdcf+POlxGsGFYOrjn5Qd61V+G2P7jDqbQyS62gsxqr2+R8ICf0d62gx7XMqD+\n"
	"/WxDtN3vNJSKN1mq2SjFddJbfXqIPm0l0RkCk/33jDoZv6c2FTsc9H7MAyXLNrw4\n"
	"aZtFX9iPQzgsVR1xr3/t08Q+jgq5douW5mltX1XjPRmVuHxUAX9O80EG1/L+5iuY\n"
	"V+hBkjE3AhV4bcwigAZii5fQDRPnDNWJ5ouQJoI=\n"
	"-----END CERTIFICATE-----\n";

static const char LEAF_CSR[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIIBLDCBtAIBADA1MQswCQYDVQQGEwJERTESMBAGA1UECgwJRXgsIGFtcGxlMRIw\n"
	"EAYDVQQDDAlhLmV4YW1wbGUwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAAQyiAWPL5OV\n"
	"XUc6z3GCO8EiPtKH8vRj1Oj/7AXV3MExYyoQQfWIQnPhRcXPgrAdzXEMFl8hxdHZ\n"
	"+idxk+3ZOWHNe2wJKBRnKrdjzCD4kBExP5/fX8CAKWPKa9VkSSpkOcigADAKBggq\n"
	"hkjOPQQDAgNnADBkAjA4DUAWigpqS/1IvLfVQmbh+CUIT7m0XYati5+JQDiJi/Ad\n"
	"eSQ/UxF1nn/d26bkT2QCMACK5WhRbU6kkU6gIaXm/3jmNjAw9MJBVXwbl52GfeKq\n"
	"CxJBDTW30BlJfLONrVHkfw==\n"
	"-----END CERTIFICATE REQUEST-----\n";

#define CHECK_STR(what, got, want)                                           \
	do {                                                                 \
		if (strcmp((got), (want)) != 0) {                            \
			print_error("%s:\n  got  '%s'\n  want '%s'\n", (what),  \
				    (got), (want));                          \
			fail();                                              \
		}                                                            \
	} while (0)

#define CHECK_INT(what, got, want)                                           \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (g_ != w_) {                                              \
			print_error("%s: got %lld, want %lld\n", (what), g_,    \
				    w_);                                     \
			fail();                                              \
		}                                                            \
	} while (0)

static char dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/bh-info-test-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name holding the concatenation of the given texts (NULL-ended). */
static const char *
fixture(const char *name, ...)
{
	static char path[128];
	va_list ap;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	va_start(ap, name);
	for (const char *text; (text = va_arg(ap, const char *)) != NULL;)
		assert_int_equal(fputs(text, f) >= 0, 1);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
test_leaf_with_chain(void **state)
{
	(void)state;
	struct cert_info info;
	char err[512] = "";
	const char *path = fixture("leaf.pem", LEAF_PEM, ROOT_PEM, NULL);

	if (cert_info_load(path, 0, &info, err, sizeof err) != 0) {
		print_error("cert_info_load: %s\n", err);
		fail();
	}
	CHECK_STR("subject", info.subject, "CN=a.example, O=Ex\\, ample, C=DE");
	CHECK_STR("issuer", info.issuer, "CN=Test Root, O=Example Trust");
	CHECK_INT("self_signed", info.self_signed, 0);
	CHECK_STR("serial", info.serial, "0123456789ABCDEF");
	CHECK_STR("not_before", info.not_before_text, "2026-12-03T17:28:36Z");
	CHECK_STR("not_after", info.not_after_text, "2036-11-30T17:28:36Z");
	CHECK_STR("key", info.key, "EC P-384");
	CHECK_STR("fingerprint", info.fingerprint_sha256,
		  "2E:C0:02:1F:1A:25:8E:CF:7F:FA:21:76:F4:73:EE:C9:"
		  "C7:47:53:67:D1:33:59:1E:20:73:09:72:EF:E1:B8:E9");
	CHECK_INT("eku_server_auth", info.eku_server_auth, 1);
	CHECK_INT("eku_client_auth", info.eku_client_auth, 0);

	static const char *const want_sans[] = { "a.example", "b.example",
						 "192.0.2.1", "2001:db8::1" };
	CHECK_INT("n_sans", info.n_sans, 4);
	for (size_t i = 0; i < 4; i++)
		CHECK_STR("san", info.sans[i], want_sans[i]);
	CHECK_INT("sans_omitted", info.sans_omitted, 0);

	CHECK_INT("n_chain", info.n_chain, 1);
	CHECK_STR("chain subject", info.chain[0].subject,
		  "CN=Test Root, O=Example Trust");
	CHECK_STR("chain issuer", info.chain[0].issuer,
		  "CN=Test Root, O=Example Trust");
}

static void
test_root_rsa(void **state)
{
	(void)state;
	struct cert_info info;
	char err[512] = "";
	const char *path = fixture("root.pem", ROOT_PEM, NULL);

	assert_int_equal(cert_info_load(path, 0, &info, err, sizeof err), 0);
	CHECK_STR("key", info.key, "RSA 2048");
	CHECK_INT("self_signed", info.self_signed, 1);
	CHECK_INT("n_sans", info.n_sans, 0);
	CHECK_INT("n_chain", info.n_chain, 0);
	/* no EKU extension: any purpose */
	CHECK_INT("eku_server_auth", info.eku_server_auth, 1);
	CHECK_INT("eku_client_auth", info.eku_client_auth, 1);
	CHECK_STR("fingerprint", info.fingerprint_sha256,
		  "75:8E:BF:C1:18:CA:09:CD:D9:5B:B3:03:13:99:5E:4D:"
		  "F7:8C:B3:87:51:55:75:91:C3:1B:5B:BC:5F:37:D5:8D");
}

/* days_left counts whole days to notAfter, rounded towards the past. */
static void
test_days_left(void **state)
{
	(void)state;
	static const struct {
		long long offset;	/* now - notAfter, seconds */
		long want;
	} rows[] = {
		{ -10LL * 86400, 10 }, { -10LL * 86400 + 1, 9 },
		{ -1, 0 },	       { 0, 0 },
		{ 1, -1 },	       { 86400, -1 },
		{ 86401, -2 },	       { -3650LL * 86400, 3650 },
	};
	const char *path = fixture("leaf.pem", LEAF_PEM, NULL);
	struct cert_info info;
	char err[512];

	assert_int_equal(cert_info_load(path, 0, &info, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		time_t now = info.not_after + (time_t)rows[i].offset;
		struct cert_info again;
		assert_int_equal(cert_info_load(path, now, &again, err,
						sizeof err),
				 0);
		if (again.days_left != rows[i].want) {
			print_error("offset %lld: got %ld days, want %ld\n",
				    rows[i].offset, again.days_left,
				    rows[i].want);
			fail();
		}
	}
}

/* Files that are not what they should be: each a one-sentence error. */
static void
test_read_errors(void **state)
{
	(void)state;
	static const char garbage[] = "-----BEGIN CERTIFICATE-----\n"
				      "bm90IGEgY2VydGlmaWNhdGU=\n"
				      "-----END CERTIFICATE-----\n";
	char many[20 * sizeof ROOT_PEM];
	many[0] = '\0';
	for (int i = 0; i < CERT_INFO_PEM_MAX + 1; i++)
		strncat(many, ROOT_PEM, sizeof many - strlen(many) - 1);

	struct {
		const char *name;
		const char *content;	/* NULL: the file does not exist */
		const char *want;	/* in the error */
	} rows[] = {
		{ "missing.pem", NULL, "cannot read" },
		{ "empty.pem", "", "holds no PEM certificate" },
		{ "key-only.pem", "hello\n", "holds no PEM certificate" },
		{ "garbage.pem", garbage, "certificate 1 is malformed" },
		{ "second-bad.pem", NULL, "certificate 2 is malformed" },
		{ "many.pem", many, "more than 16 certificates" },
	};
	char second_bad[sizeof ROOT_PEM + sizeof garbage];
	snprintf(second_bad, sizeof second_bad, "%s%s", ROOT_PEM, garbage);
	rows[4].content = second_bad;

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char path[128], err[512] = "";
		snprintf(path, sizeof path, "%s/%s", dir, rows[i].name);
		if (rows[i].content != NULL)
			fixture(rows[i].name, rows[i].content, NULL);
		X509 *leaf = (X509 *)1;
		STACK_OF(X509) *chain = NULL;
		int rc = cert_info_read_pem(path, &leaf, &chain, err,
					    sizeof err);
		if (rc != -1 || leaf != NULL || chain != NULL ||
		    strstr(err, rows[i].want) == NULL ||
		    strstr(err, path) == NULL) {
			print_error("%s: got rc %d err '%s', want -1 and an "
				    "error naming the file with '%s'\n",
				    rows[i].name, rc, err, rows[i].want);
			fail();
		}
	}
}

static void
test_csr_subject(void **state)
{
	(void)state;
	char subject[256], err[512] = "";
	const char *path = fixture("request.csr", LEAF_CSR, NULL);

	assert_int_equal(cert_info_csr_subject(path, subject, sizeof subject,
					       err, sizeof err),
			 0);
	CHECK_STR("csr subject", subject, "CN=a.example, O=Ex\\, ample, C=DE");

	path = fixture("not-a.csr", LEAF_PEM, NULL);
	assert_int_equal(cert_info_csr_subject(path, subject, sizeof subject,
					       err, sizeof err),
			 -1);
	if (strstr(err, "no readable certificate request") == NULL) {
		print_error("got '%s'\n", err);
		fail();
	}
}

/* A name longer than the buffer is cut and marked, never overflowed. */
static void
test_long_name_cut(void **state)
{
	(void)state;
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	char cn[64], err[256];
	assert_non_null(x);
	for (int i = 0; i < 20; i++) {
		snprintf(cn, sizeof cn, "organizational-unit-%02d-xxxxxxxxxxxx",
			 i);
		assert_int_equal(X509_NAME_add_entry_by_txt(
					 name, "OU", MBSTRING_ASC,
					 (const unsigned char *)cn, -1, -1, 0),
				 1);
	}
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(key);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);

	struct cert_info info;
	assert_int_equal(cert_info_describe(x, NULL, 0, &info, err, sizeof err),
			 0);
	size_t len = strlen(info.subject);
	CHECK_INT("subject length", len, CERT_INFO_NAME_MAX - 1);
	CHECK_STR("subject end", info.subject + len - 3, "...");
	CHECK_STR("key", info.key, "EC P-256");
	X509_free(x);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_leaf_with_chain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_root_rsa, setup, teardown),
		cmocka_unit_test_setup_teardown(test_days_left, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_csr_subject, setup,
						teardown),
		cmocka_unit_test(test_long_name_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
