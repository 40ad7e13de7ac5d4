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
 *   cert_store_current()   paths of the installed certificate and key.
 *   cert_store_install()   write a new version, fsync, switch current,
 *                          keep previous; nothing changes on failure.
 */
#ifndef BH_CERT_STORE_H
#define BH_CERT_STORE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* 0 if a certificate is installed; -1 (and errno ENOENT) if none. */
int cert_store_current(const char *state_dir, char *cert_path,
		       size_t cert_len, char *key_path, size_t key_len);

/* chain may be NULL.  0, or -1 with a sentence in err. */
int cert_store_install(const char *state_dir, X509 *leaf,
		       STACK_OF(X509) *chain, EVP_PKEY *key, char *err,
		       size_t errlen);

#endif
