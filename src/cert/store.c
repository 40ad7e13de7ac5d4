/*
 * store: the server's certificate on disk, and how a new one replaces the
 * old one atomically (see store.h for the layout).
 *
 *   cert_store_current()  the cert.pem and key.pem paths inside the
 *       version `current` points at now (resolved, so a later switch does
 *       not change a path already handed out).
 *   cert_store_find()     the same, saying why when the store is broken.
 *   cert_store_install()  check that the key belongs to the certificate,
 *       write a new version, switch `previous` and `current`; nothing
 *       visible changes on failure.
 *
 * How an install is made durable (one durable-write path, as in the
 * queue): the new version is built in a staging folder versions/.new-XXXXXX
 * whose files are each written as temp file -> fsync -> rename, the staging
 * folder is fsync'd and renamed to versions/N, versions/ is fsync'd; then
 * `previous` and `current` are switched by making a symlink under a temp
 * name and renaming it over the old one, and pki/ is fsync'd.  A crash
 * leaves either the old `current` or the new one, never a half-written
 * version; stale staging folders are removed by the next install.
 *
 * The key is written with O_CREAT|O_EXCL and mode 0600 from the start
 * (never chmod'ed afterwards, which would leave a window), and its PEM
 * text is built in a BIO that is wiped when freed.  Folders are 0700.
 * Concurrent installs are serialised by flock(2) on pki/.lock.
 */
#include "cert/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "cert/layout.h"

#define STAGING_PREFIX ".new-"

int
cert_store_current(const char *state_dir, char *cert_path, size_t cert_len,
		   char *key_path, size_t key_len)
{
	char err[1024];

	return cert_layout_current(state_dir, cert_path, cert_len, key_path,
				   key_len, err, sizeof err);
}

int
cert_store_find(const char *state_dir, char *cert_path, size_t cert_len,
		char *key_path, size_t key_len, char *err, size_t errlen)
{
	return cert_layout_current(state_dir, cert_path, cert_len, key_path,
				   key_len, err, errlen);
}

/* fsync a folder so that the names created or renamed in it are durable. */
static int
sync_dir(int dfd, const char *what, char *err, size_t errlen)
{
	if (fsync(dfd) == -1) {
		snprintf(err, errlen, "cannot sync folder %s: %s", what,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Open (making it, mode 0700, when missing) the folder name inside
 * parent_fd and check that it is private.  path is the full name, for
 * messages and the ownership check.
 */
static int
open_private_dir(int parent_fd, const char *name, const char *path,
		 mode_t mode, char *err, size_t errlen)
{
	if (mkdirat(parent_fd, name, mode) == 0) {
		if (fsync(parent_fd) == -1) {
			snprintf(err, errlen, "cannot sync the folder holding "
				 "%s: %s", path, strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot make folder %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (cert_layout_private_dir(path, err, errlen) == -1)
		return -1;
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		snprintf(err, errlen, "cannot open folder %s: %s", path,
			 strerror(errno));
	return fd;
}

static int
write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * temp file -> write -> fsync -> rename inside dfd (the caller syncs the
 * folder).  The file is created with its final mode; O_EXCL refuses to
 * write through anything that is already there.
 */
static int
write_file(int dfd, const char *dir, const char *name, const char *data,
	   size_t len, mode_t mode, char *err, size_t errlen)
{
	char tmp[NAME_MAX + 1];

	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	int fd = openat(dfd, tmp,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			mode);
	if (fd == -1) {
		snprintf(err, errlen, "cannot create %s/%s: %s", dir, tmp,
			 strerror(errno));
		return -1;
	}
	const char *step = NULL;
	if (write_all(fd, data, len) == -1)
		step = "write";
	else if (fsync(fd) == -1)
		step = "sync";
	int saved = errno;
	if (close(fd) == -1 && step == NULL) {
		step = "close";
		saved = errno;
	}
	if (step == NULL && renameat(dfd, tmp, dfd, name) == -1) {
		step = "rename";
		saved = errno;
	}
	if (step != NULL) {
		unlinkat(dfd, tmp, 0);
		snprintf(err, errlen, "cannot %s %s/%s: %s", step, dir, name,
			 saved != 0 ? strerror(saved) : "short write");
		return -1;
	}
	return 0;
}

/* PEM text of the leaf and chain, or of the key, in a memory BIO. */
static BIO *
pem_certs(X509 *leaf, STACK_OF(X509) *chain)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, leaf) != 1)
		goto fail;
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) != 1)
			goto fail;
	return bio;
fail:
	BIO_free(bio);
	return NULL;
}

/* BIO_s_secmem: its buffer is cleansed when freed (the key is a secret). */
static BIO *
pem_key(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	if (bio == NULL ||
	    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		return NULL;
	}
	return bio;
}

static int
write_bio(int dfd, const char *dir, const char *name, BIO *bio, mode_t mode,
	  char *err, size_t errlen)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0) {
		snprintf(err, errlen, "nothing to write to %s/%s", dir, name);
		return -1;
	}
	return write_file(dfd, dir, name, data, (size_t)len, mode, err,
			  errlen);
}

/* Remove a staging folder and the files in it (there are no subfolders). */
static void
remove_staging(int versions_fd, const char *name)
{
	int fd = openat(versions_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		DIR *d = fdopendir(fd);
		if (d == NULL) {
			close(fd);
		} else {
			struct dirent *de;
			while ((de = readdir(d)) != NULL)
				if (strcmp(de->d_name, ".") != 0 &&
				    strcmp(de->d_name, "..") != 0)
					unlinkat(dirfd(d), de->d_name, 0);
			closedir(d);
		}
	}
	unlinkat(versions_fd, name, AT_REMOVEDIR);
}

/* A version name: digits only, no leading zero, fits an unsigned long. */
static int
version_number(const char *name, unsigned long *out)
{
	if (name[0] < '1' || name[0] > '9')
		return -1;
	for (const char *p = name; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	unsigned long v = strtoul(name, NULL, 10);
	if (errno != 0 || v >= ULONG_MAX - 1)
		return -1;
	*out = v;
	return 0;
}

/*
 * Scan versions/: the next free version number (one more than the
 * highest), and remove staging folders a crashed install left behind
 * (we hold the lock, so no install is running).
 */
static int
next_version(int versions_fd, const char *path, unsigned long *next,
	     char *err, size_t errlen)
{
	int fd = dup(versions_fd);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	if (d == NULL) {
		snprintf(err, errlen, "cannot read folder %s: %s", path,
			 strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(d);
	unsigned long max = 0, v;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (version_number(de->d_name, &v) == 0 && v > max)
			max = v;
		else if (strncmp(de->d_name, STAGING_PREFIX,
				 strlen(STAGING_PREFIX)) == 0)
			remove_staging(versions_fd, de->d_name);
	}
	closedir(d);
	*next = max + 1;
	return 0;
}

/* Write cert.pem and key.pem into the fresh staging folder, then sync it. */
static int
fill_staging(int versions_fd, const char *staging_path, const char *name,
	     X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *key, char *err,
	     size_t errlen)
{
	int sfd = openat(versions_fd, name,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd == -1) {
		snprintf(err, errlen, "cannot open folder %s: %s",
			 staging_path, strerror(errno));
		return -1;
	}
	BIO *certs = pem_certs(leaf, chain);
	BIO *keypem = pem_key(key);
	int rc = -1;
	if (certs == NULL || keypem == NULL) {
		const char *why = ERR_reason_error_string(ERR_get_error());
		ERR_clear_error();
		snprintf(err, errlen, "cannot encode the certificate or key "
			 "as PEM: %s", why != NULL ? why : "out of memory");
	} else if (write_bio(sfd, staging_path, "key.pem", keypem, 0600, err,
			   errlen) == 0 &&
		 write_bio(sfd, staging_path, "cert.pem", certs, 0644, err,
			   errlen) == 0 &&
		 sync_dir(sfd, staging_path, err, errlen) == 0)
		rc = 0;
	BIO_free(certs);
	BIO_free(keypem);
	close(sfd);
	return rc;
}

/*
 * Make versions/N from leaf, chain and key; the number in *version.
 * Either versions/N exists complete and durable, or nothing does.
 */
static int
add_version(int versions_fd, const char *versions_path, X509 *leaf,
	    STACK_OF(X509) *chain, EVP_PKEY *key, unsigned long *version,
	    char *err, size_t errlen)
{
	char staging[4096], final[32];

	if (next_version(versions_fd, versions_path, version, err, errlen) ==
	    -1)
		return -1;
	int n = snprintf(staging, sizeof staging, "%s/" STAGING_PREFIX "XXXXXX",
			 versions_path);
	if (n < 0 || (size_t)n >= sizeof staging) {
		snprintf(err, errlen, "path %s is too long", versions_path);
		return -1;
	}
	if (mkdtemp(staging) == NULL) {
		snprintf(err, errlen, "cannot make a folder in %s: %s",
			 versions_path, strerror(errno));
		return -1;
	}
	const char *name = strrchr(staging, '/') + 1;
	snprintf(final, sizeof final, "%lu", *version);
	if (fill_staging(versions_fd, staging, name, leaf, chain, key, err,
			 errlen) == -1)
		goto fail;
	if (renameat(versions_fd, name, versions_fd, final) == -1) {
		snprintf(err, errlen, "cannot rename %s to %s/%s: %s", staging,
			 versions_path, final, strerror(errno));
		goto fail;
	}
	if (sync_dir(versions_fd, versions_path, err, errlen) == -1) {
		remove_staging(versions_fd, final);
		return -1;
	}
	return 0;
fail:
	remove_staging(versions_fd, name);
	return -1;
}

/*
 * Point pki/link at target: a symlink under a temp name, renamed over the
 * old link (rename(2) replaces it atomically; readers see old or new).
 */
static int
switch_link(int pki_fd, const char *pki_path, const char *link,
	    const char *target, char *err, size_t errlen)
{
	char tmp[64];

	snprintf(tmp, sizeof tmp, ".%s.new", link);
	if (unlinkat(pki_fd, tmp, 0) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove %s/%s: %s", pki_path, tmp,
			 strerror(errno));
		return -1;
	}
	if (symlinkat(target, pki_fd, tmp) == -1) {
		snprintf(err, errlen, "cannot make link %s/%s: %s", pki_path,
			 tmp, strerror(errno));
		return -1;
	}
	if (renameat(pki_fd, tmp, pki_fd, link) == -1) {
		snprintf(err, errlen, "cannot rename %s/%s to %s: %s",
			 pki_path, tmp, link, strerror(errno));
		unlinkat(pki_fd, tmp, 0);
		return -1;
	}
	return 0;
}

/*
 * previous := what current pointed at (if anything), current := target.
 * previous first: a crash between the two leaves previous == current,
 * which is harmless; the other order could lose the old version's name.
 * -1: current is unchanged; -2: current was switched but pki/ could not
 * be synced (the caller must not remove the new version).
 */
static int
switch_current(int pki_fd, const char *pki_path, const char *target,
	       char *err, size_t errlen)
{
	char old[256];
	ssize_t n = readlinkat(pki_fd, "current", old, sizeof old - 1);
	if (n == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot read link %s/current: %s",
			 pki_path, strerror(errno));
		return -1;
	}
	if (n >= (ssize_t)sizeof old - 1) {
		snprintf(err, errlen, "link %s/current is too long", pki_path);
		return -1;
	}
	if (n > 0) {
		old[n] = '\0';
		if (switch_link(pki_fd, pki_path, "previous", old, err,
				errlen) == -1)
			return -1;
	}
	if (switch_link(pki_fd, pki_path, "current", target, err, errlen) ==
	    -1)
		return -1;
	return sync_dir(pki_fd, pki_path, err, errlen) == 0 ? 0 : -2;
}

/* pki/.lock, held exclusively until closed. */
static int
lock_store(int pki_fd, const char *pki_path, char *err, size_t errlen)
{
	int fd = openat(pki_fd, ".lock",
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "cannot open %s/.lock: %s", pki_path,
			 strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			snprintf(err, errlen, "cannot lock %s/.lock: %s",
				 pki_path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

/*
 * state_dir itself is made when missing (its parent must exist), 0750 so
 * that members of the server's group can reach the control socket in it;
 * the parent is synced so the new name survives a crash.
 */
static int
make_state_dir(const char *state_dir, char *err, size_t errlen)
{
	if (mkdir(state_dir, 0750) == -1) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "cannot make state folder %s: %s",
			 state_dir, strerror(errno));
		return -1;
	}
	char parent[4096];
	int n = snprintf(parent, sizeof parent, "%s", state_dir);
	if (n < 0 || (size_t)n >= sizeof parent)
		return 0;	/* made; only the extra sync is skipped */
	char *slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1) {
		snprintf(err, errlen, "cannot sync folder %s: %s", parent,
			 strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The key must be the one the certificate was issued for. */
static int
check_inputs(X509 *leaf, EVP_PKEY *key, char *err, size_t errlen)
{
	if (leaf == NULL || key == NULL) {
		snprintf(err, errlen, "no certificate or no key to install");
		return -1;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the private key does not belong to the "
			 "certificate (their public keys differ)");
		return -1;
	}
	return 0;
}

/* Under the lock: add the version, then switch the links to it. */
static int
install_locked(int pki_fd, const char *pki_path, X509 *leaf,
	       STACK_OF(X509) *chain, EVP_PKEY *key, char *err, size_t errlen)
{
	char versions_path[4096], target[64];

	if (cert_layout_join(versions_path, sizeof versions_path, pki_path,
			     "versions", err, errlen) == -1)
		return -1;
	int versions_fd = open_private_dir(pki_fd, "versions", versions_path,
					   0700, err, errlen);
	if (versions_fd == -1)
		return -1;
	unsigned long version;
	int rc = add_version(versions_fd, versions_path, leaf, chain, key,
			     &version, err, errlen);
	if (rc == 0) {
		snprintf(target, sizeof target, "versions/%lu", version);
		rc = switch_current(pki_fd, pki_path, target, err, errlen);
		if (rc == -1) {
			/* current still points at the old version */
			snprintf(target, sizeof target, "%lu", version);
			remove_staging(versions_fd, target);
		}
	}
	rc = rc == 0 ? 0 : -1;
	close(versions_fd);
	return rc;
}

int
cert_store_install(const char *state_dir, X509 *leaf, STACK_OF(X509) *chain,
		   EVP_PKEY *key, char *err, size_t errlen)
{
	char pki_path[4096];

	if (check_inputs(leaf, key, err, errlen) == -1 ||
	    cert_layout_join(pki_path, sizeof pki_path, state_dir, "pki", err,
			     errlen) == -1)
		return -1;
	if (make_state_dir(state_dir, err, errlen) == -1)
		return -1;
	int state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state_fd == -1) {
		snprintf(err, errlen, "cannot open state folder %s: %s",
			 state_dir, strerror(errno));
		return -1;
	}
	int pki_fd = open_private_dir(state_fd, "pki", pki_path, 0700, err,
				      errlen);
	close(state_fd);
	if (pki_fd == -1)
		return -1;
	int rc = -1;
	int lock_fd = lock_store(pki_fd, pki_path, err, errlen);
	if (lock_fd != -1) {
		rc = install_locked(pki_fd, pki_path, leaf, chain, key, err,
				    errlen);
		close(lock_fd);
	}
	close(pki_fd);
	return rc;
}
