/*
 * store_test: the certificate store in a mkdtemp state folder.
 *   - nothing installed: ENOENT, no error text; a broken store is an
 *     error, not "nothing";
 *   - selfsign + install: modes (folders 0700, key.pem 0600 even with
 *     umask 0), only cert.pem and key.pem in the version, the files load
 *     into an OpenSSL server context and match;
 *   - install twice: previous -> the first version, current -> the second,
 *     and a path handed out before the switch still names the first;
 *   - the chain is written after the leaf, in order;
 *   - a key that does not match changes nothing;
 *   - an untrusted pki/ (writable by others, owned by someone else) is
 *     refused by both functions;
 *   - stale staging folders from a crashed install are cleaned up.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cert/info.h"
#include "cert/selfsign.h"
#include "cert/store.h"

static char state[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **ctx)
{
	(void)ctx;
	snprintf(state, sizeof state, "/tmp/bh-store-test-XXXXXX");
	return mkdtemp(state) == NULL ? -1 : 0;
}

static int
teardown(void **ctx)
{
	(void)ctx;
	return nftw(state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *
path_in(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, PATH_MAX, "%s/%s", state, rel);
	return p;
}

static void
check_mode(const char *rel, mode_t want)
{
	struct stat st;
	assert_int_equal(lstat(path_in(rel), &st), 0);
	if ((st.st_mode & 07777) != want) {
		print_error("%s: got mode %04o, want %04o\n", rel,
			    (unsigned)(st.st_mode & 07777), (unsigned)want);
		fail();
	}
}

static void
check_link(const char *rel, const char *want)
{
	char got[256];
	ssize_t n = readlink(path_in(rel), got, sizeof got - 1);
	assert_true(n > 0);
	got[n] = '\0';
	if (strcmp(got, want) != 0) {
		print_error("%s: got -> '%s', want -> '%s'\n", rel, got, want);
		fail();
	}
}

/* A fresh key and a self-signed certificate for name. */
static void
make_cert(const char *name, EVP_PKEY **key, X509 **x)
{
	char err[256];
	*key = cert_key_new(err, sizeof err);
	assert_non_null(*key);
	*x = cert_selfsign(*key, name, 30, err, sizeof err);
	assert_non_null(*x);
}

static void
install(const char *name)
{
	EVP_PKEY *key;
	X509 *x;
	char err[512] = "";
	make_cert(name, &key, &x);
	if (cert_store_install(state, x, NULL, key, err, sizeof err) != 0) {
		print_error("install %s: %s\n", name, err);
		fail();
	}
	X509_free(x);
	EVP_PKEY_free(key);
}

static void
current(char *cert, char *key)
{
	assert_int_equal(cert_store_current(state, cert, PATH_MAX, key,
					    PATH_MAX),
			 0);
}

/* The names in a folder, sorted, joined by spaces. */
static void
listing(const char *rel, char *out, size_t len)
{
	struct dirent **names;
	int n = scandir(path_in(rel), &names, NULL, alphasort);
	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' ||
		    (strcmp(names[i]->d_name, ".") != 0 &&
		     strcmp(names[i]->d_name, "..") != 0)) {
			if (out[0] != '\0')
				strncat(out, " ", len - strlen(out) - 1);
			strncat(out, names[i]->d_name, len - strlen(out) - 1);
		}
		free(names[i]);
	}
	free(names);
}

static void
test_nothing_installed(void **ctx)
{
	(void)ctx;
	char cert[PATH_MAX], key[PATH_MAX];

	errno = 0;
	assert_int_equal(cert_store_current(state, cert, sizeof cert, key,
					    sizeof key),
			 -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(mkdir(path_in("pki"), 0700), 0);
	errno = 0;
	assert_int_equal(cert_store_current(state, cert, sizeof cert, key,
					    sizeof key),
			 -1);
	assert_int_equal(errno, ENOENT);
	/* a current that leads nowhere is broken, not "nothing installed" */
	assert_int_equal(symlink("versions/9", path_in("pki/current")), 0);
	errno = 0;
	assert_int_equal(cert_store_current(state, cert, sizeof cert, key,
					    sizeof key),
			 -1);
	assert_int_not_equal(errno, ENOENT);
}

static void
test_install_once(void **ctx)
{
	(void)ctx;
	char cert[PATH_MAX], key[PATH_MAX], want[PATH_MAX], names[256];
	mode_t old = umask(0);	/* the modes must not depend on the umask */
	install("bh1.example.com");
	umask(old);

	check_mode("pki", 0700);
	check_mode("pki/versions", 0700);
	check_mode("pki/versions/1", 0700);
	check_mode("pki/versions/1/key.pem", 0600);
	check_link("pki/current", "versions/1");
	listing("pki/versions/1", names, sizeof names);
	assert_string_equal(names, "cert.pem key.pem");
	listing("pki/versions", names, sizeof names);
	assert_string_equal(names, "1");

	current(cert, key);
	char *real = realpath(state, NULL);
	assert_non_null(real);
	snprintf(want, sizeof want, "%s/pki/versions/1/cert.pem", real);
	assert_string_equal(cert, want);
	snprintf(want, sizeof want, "%s/pki/versions/1/key.pem", real);
	assert_string_equal(key, want);
	free(real);

	/* what the server does with it */
	SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
	assert_non_null(ssl);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ssl, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ssl, key,
						     SSL_FILETYPE_PEM),
			 1);
	assert_int_equal(SSL_CTX_check_private_key(ssl), 1);
	X509 *leaf = SSL_CTX_get0_certificate(ssl);
	assert_int_equal(X509_check_host(leaf, "bh1.example.com", 0, 0, NULL),
			 1);
	SSL_CTX_free(ssl);
}

static void
test_install_twice(void **ctx)
{
	(void)ctx;
	char cert1[PATH_MAX], key1[PATH_MAX], cert2[PATH_MAX], key2[PATH_MAX];

	install("one.example.com");
	current(cert1, key1);
	install("two.example.com");
	current(cert2, key2);

	check_link("pki/current", "versions/2");
	check_link("pki/previous", "versions/1");
	assert_string_not_equal(cert1, cert2);
	/* a path handed out before the switch still holds the old one */
	struct cert_info info;
	char err[512];
	assert_int_equal(cert_info_load(cert1, 0, &info, err, sizeof err), 0);
	assert_string_equal(info.subject, "CN=one.example.com");
	assert_int_equal(cert_info_load(cert2, 0, &info, err, sizeof err), 0);
	assert_string_equal(info.subject, "CN=two.example.com");

	install("three.example.com");
	check_link("pki/current", "versions/3");
	check_link("pki/previous", "versions/2");
}

static void
test_chain_order(void **ctx)
{
	(void)ctx;
	EVP_PKEY *key, *k1, *k2;
	X509 *leaf, *c1, *c2;
	char cert[PATH_MAX], keyp[PATH_MAX], err[512] = "";

	make_cert("leaf.example.com", &key, &leaf);
	make_cert("inter.example.com", &k1, &c1);
	make_cert("root.example.com", &k2, &c2);
	STACK_OF(X509) *chain = sk_X509_new_null();
	assert_non_null(chain);
	assert_true(sk_X509_push(chain, c1) > 0);
	assert_true(sk_X509_push(chain, c2) > 0);
	assert_int_equal(cert_store_install(state, leaf, chain, key, err,
					    sizeof err),
			 0);
	current(cert, keyp);

	struct cert_info info;
	assert_int_equal(cert_info_load(cert, 0, &info, err, sizeof err), 0);
	assert_string_equal(info.subject, "CN=leaf.example.com");
	assert_int_equal(info.n_chain, 2);
	assert_string_equal(info.chain[0].subject, "CN=inter.example.com");
	assert_string_equal(info.chain[1].subject, "CN=root.example.com");

	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(key);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void
test_wrong_key_changes_nothing(void **ctx)
{
	(void)ctx;
	EVP_PKEY *key, *other;
	X509 *x, *unused;
	char err[512] = "", names[256];

	install("bh1.example.com");
	make_cert("bh1.example.com", &key, &x);
	make_cert("bh1.example.com", &other, &unused);
	assert_int_equal(cert_store_install(state, x, NULL, other, err,
					    sizeof err),
			 -1);
	if (strstr(err, "does not belong to the certificate") == NULL) {
		print_error("got '%s'\n", err);
		fail();
	}
	check_link("pki/current", "versions/1");
	listing("pki/versions", names, sizeof names);
	assert_string_equal(names, "1");
	assert_int_equal(access(path_in("pki/previous"), F_OK), -1);

	err[0] = '\0';
	assert_int_equal(cert_store_install(state, NULL, NULL, key, err,
					    sizeof err),
			 -1);
	assert_true(err[0] != '\0');
	X509_free(x);
	X509_free(unused);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void
test_untrusted_pki(void **ctx)
{
	(void)ctx;
	char cert[PATH_MAX], key[PATH_MAX], err[512] = "";
	EVP_PKEY *k;
	X509 *x;

	install("bh1.example.com");
	make_cert("bh1.example.com", &k, &x);

	const struct {
		mode_t mode;
		uid_t uid;	/* (uid_t)-1: leave the owner */
		const char *want;
	} rows[] = {
		{ 0777, (uid_t)-1, "writable by group or others" },
		{ 0720, (uid_t)-1, "writable by group or others" },
		{ 0702, (uid_t)-1, "writable by group or others" },
		{ 0700, 4242, "belongs to uid 4242" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (rows[i].uid != (uid_t)-1 && geteuid() != 0)
			continue;	/* only root can give it away */
		assert_int_equal(chmod(path_in("pki"), rows[i].mode), 0);
		if (rows[i].uid != (uid_t)-1)
			assert_int_equal(chown(path_in("pki"), rows[i].uid,
					       (gid_t)-1),
					 0);
		errno = 0;
		int rc = cert_store_current(state, cert, sizeof cert, key,
					    sizeof key);
		if (rc != -1 || errno != EPERM) {
			print_error("mode %04o: current got rc %d errno %d, "
				    "want -1 EPERM\n",
				    (unsigned)rows[i].mode, rc, errno);
			fail();
		}
		err[0] = '\0';
		rc = cert_store_install(state, x, NULL, k, err, sizeof err);
		if (rc != -1 || strstr(err, rows[i].want) == NULL ||
		    strstr(err, "/pki") == NULL) {
			print_error("mode %04o: install got rc %d '%s', want "
				    "-1 naming pki with '%s'\n",
				    (unsigned)rows[i].mode, rc, err,
				    rows[i].want);
			fail();
		}
		assert_int_equal(chmod(path_in("pki"), 0700), 0);
		if (rows[i].uid != (uid_t)-1)
			assert_int_equal(chown(path_in("pki"), geteuid(),
					       (gid_t)-1),
					 0);
	}
	check_link("pki/current", "versions/1");
	X509_free(x);
	EVP_PKEY_free(k);
}

/* A crash during an install leaves a staging folder; the next removes it. */
static void
test_stale_staging(void **ctx)
{
	(void)ctx;
	char names[256];

	install("bh1.example.com");
	assert_int_equal(mkdir(path_in("pki/versions/.new-abcdef"), 0700), 0);
	FILE *f = fopen(path_in("pki/versions/.new-abcdef/.key.pem.tmp"), "w");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
	install("bh1.example.com");
	listing("pki/versions", names, sizeof names);
	assert_string_equal(names, "1 2");
}

/* The state folder is made when missing, but not its parents. */
static void
test_state_dir_made(void **ctx)
{
	(void)ctx;
	char sub[PATH_MAX], deep[PATH_MAX], err[512] = "";
	EVP_PKEY *k;
	X509 *x;

	make_cert("bh1.example.com", &k, &x);
	snprintf(sub, sizeof sub, "%s/state", state);
	assert_int_equal(cert_store_install(sub, x, NULL, k, err, sizeof err),
			 0);
	check_mode("state/pki/versions/1/key.pem", 0600);

	snprintf(deep, sizeof deep, "%s/no/such/state", state);
	assert_int_equal(cert_store_install(deep, x, NULL, k, err, sizeof err),
			 -1);
	if (strstr(err, "cannot make state folder") == NULL ||
	    strstr(err, deep) == NULL) {
		print_error("got '%s'\n", err);
		fail();
	}
	X509_free(x);
	EVP_PKEY_free(k);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_nothing_installed),
		T(test_install_once),
		T(test_install_twice),
		T(test_chain_order),
		T(test_wrong_key_changes_nothing),
		T(test_untrusted_pki),
		T(test_stale_staging),
		T(test_state_dir_made),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
