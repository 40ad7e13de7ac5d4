/*
 * store: where the server's certificate lives, and how a new one replaces
 * the old atomically.
 *
 *   state_dir/pki/versions/N/{cert.pem,key.pem}  cert.pem: leaf then chain;
 *                                                key.pem mode 0600
 *   state_dir/pki/current -> versions/N          one symlink, switched by
 *                                                rename(2)
 *   state_dir/pki/previous -> versions/M         for cert rollback
 *   state_dir/pki/pending/                       key + CSR of a request
 *
 *   cert_store_current()   paths of the installed certificate and key
 *                          (resolved: versions/N, not current/).
 *   cert_store_find()      the same, with the reason in err when the
 *                          store is broken or untrusted.
 *   cert_store_install()   write a new version, fsync, switch current,
 *                          keep previous; nothing changes on failure.
 *
 * Folders are made 0700 and key.pem 0600.  A pki/ (or version folder) that
 * is writable by group or others, or owned by neither this user nor root,
 * is refused by every function: whoever can write there can swap the key.
 * The lookup itself is in cert/layout.h (header-only, for net/tls).
 */
#ifndef BH_CERT_STORE_H
#define BH_CERT_STORE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* 0 if a certificate is installed; -1 (and errno ENOENT) if none. */
int cert_store_current(const char *state_dir, char *cert_path,
		       size_t cert_len, char *key_path, size_t key_len);

/*
 * As cert_store_current(); on -1, err is empty when nothing is installed
 * and holds a sentence naming the path at fault otherwise (pki/ writable
 * by others or owned by another user, current leading nowhere, ...).
 */
int cert_store_find(const char *state_dir, char *cert_path, size_t cert_len,
		    char *key_path, size_t key_len, char *err, size_t errlen);

/* chain may be NULL.  0, or -1 with a sentence in err. */
int cert_store_install(const char *state_dir, X509 *leaf,
		       STACK_OF(X509) *chain, EVP_PKEY *key, char *err,
		       size_t errlen);

#endif
