/*
 * layout: where the installed certificate is found under state_dir/pki,
 * and whether the folders on the way can be trusted.  Inline, so that
 * net/tls can locate the installed certificate without linking the rest
 * of cert/ (and cert/ without linking net/): each module's unit tests
 * link only that module and util/.
 *
 *   cert_layout_private_dir()  is this folder a directory owned by us (or
 *       by root) that no group or other user may write into?
 *   cert_layout_current()      resolve state_dir/pki/current to the
 *       versions/N folder it points at now, and give the cert.pem and
 *       key.pem paths inside it.  The resolved path is returned, so a file
 *       opened later is the one checked now even if `current` is switched
 *       in between.
 *
 * Why the ownership check: whoever can write into pki/ can swap the
 * server's key and certificate (or point `current` at a key they know).
 */
#ifndef BH_CERT_LAYOUT_H
#define BH_CERT_LAYOUT_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * An error sentence into err.  A sentence longer than err is cut: the
 * caller chose the size, and a cut message is still an error.  (Through
 * vsnprintf, so that inlining into a caller with a small fixed buffer does
 * not turn into a format-truncation warning.)
 */
static inline void __attribute__((format(printf, 3, 4)))
cert_layout_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* 0 if path is a private folder; -1 with a sentence in err (errno set). */
static inline int
cert_layout_private_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		int saved = errno;
		cert_layout_say(err, errlen, "%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cert_layout_say(err, errlen, "%s is not a folder", path);
		errno = ENOTDIR;
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		cert_layout_say(err, errlen,
			 "%s belongs to uid %u, not to this user (uid %u) "
			 "or root; refusing to trust the keys in it",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		errno = EPERM;
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		cert_layout_say(err, errlen,
			 "%s is writable by group or others (mode %04o); "
			 "refusing to trust the keys in it (chmod 700 it)",
			 path, (unsigned)(st.st_mode & 07777));
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* snprintf into dst; -1 (and a sentence in err) when it does not fit. */
static inline int
cert_layout_join(char *dst, size_t dstlen, const char *dir, const char *name,
		 char *err, size_t errlen)
{
	int n = snprintf(dst, dstlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= dstlen) {
		cert_layout_say(err, errlen, "path %s/%s is too long", dir, name);
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * 0 and the two paths when a certificate is installed.  -1 with errno
 * ENOENT and err[0] == '\0' when none is (no pki/ or no pki/current);
 * -1 with a sentence in err for anything else (a broken or untrusted
 * store must not look like "nothing installed").
 */
static inline int
cert_layout_current(const char *state_dir, char *cert_path, size_t cert_len,
		    char *key_path, size_t key_len, char *err, size_t errlen)
{
	char pki[4096], link[4096];
	struct stat st;

	if (errlen > 0)
		err[0] = '\0';
	if (cert_layout_join(pki, sizeof pki, state_dir, "pki", err,
			     errlen) == -1 ||
	    cert_layout_join(link, sizeof link, pki, "current", err,
			     errlen) == -1)
		return -1;
	if (lstat(pki, &st) == -1 && errno == ENOENT)
		return -1;
	if (cert_layout_private_dir(pki, err, errlen) == -1)
		return -1;
	if (lstat(link, &st) == -1) {
		int saved = errno;
		if (saved != ENOENT)
			cert_layout_say(err, errlen, "%s: %s", link, strerror(saved));
		errno = saved;
		return -1;
	}

	char *dir = realpath(link, NULL);
	if (dir == NULL) {
		int saved = errno;
		cert_layout_say(err, errlen, "%s does not lead to an installed "
			 "version: %s", link, strerror(saved));
		errno = saved == ENOENT ? EIO : saved;
		return -1;
	}
	int rc = -1;
	if (cert_layout_private_dir(dir, err, errlen) == 0 &&
	    cert_layout_join(cert_path, cert_len, dir, "cert.pem", err,
			     errlen) == 0 &&
	    cert_layout_join(key_path, key_len, dir, "key.pem", err,
			     errlen) == 0) {
		if (stat(cert_path, &st) == -1) {
			int saved = errno;
			cert_layout_say(err, errlen, "%s: %s", cert_path,
				 strerror(saved));
			errno = saved == ENOENT ? EIO : saved;
		} else {
			rc = 0;
		}
	}
	free(dir);
	return rc;
}

#endif
