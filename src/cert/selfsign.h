/*
 * selfsign: the server's own key and a self-signed certificate for its
 * FQDN, so that STARTTLS can be offered before a CA has signed anything.
 *
 *   cert_fqdn_check()  is a name usable as the certificate's DNS name?
 *   cert_key_new()     a new private key: EC P-256 (ECDSA).  P-256 keeps
 *                      handshakes cheap and is accepted by every current
 *                      SMTP peer (the CA-issued certificate may be RSA).
 *   cert_selfsign()    a self-signed X.509 v3 leaf for one DNS name.
 *
 * The certificate (RFC 5280): subject CN=NAME, subjectAltName DNS:NAME
 * (RFC 6125: peers match on the SAN, not the CN), basicConstraints
 * CA:FALSE (critical), keyUsage digitalSignature (critical),
 * extendedKeyUsage serverAuth and clientAuth (the same certificate is
 * presented when a smart host asks for a client certificate), a random
 * positive 128-bit serial, notBefore 5 minutes in the past (clock skew),
 * notAfter DAYS from now, signed with SHA-256.
 */
#ifndef BH_CERT_SELFSIGN_H
#define BH_CERT_SELFSIGN_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CERT_DAYS_DEFAULT 365
#define CERT_DAYS_MAX 3650

/*
 * A DNS host name (RFC 1123): labels of letters, digits and hyphens, 1 to
 * 63 characters, not starting or ending with a hyphen, at most 253 in all,
 * at least two labels unless it is "localhost", and a last label that is
 * not all digits (that would be an IP address).  0, or -1 with a sentence
 * in err saying what is wrong.
 */
int cert_fqdn_check(const char *name, char *err, size_t errlen);

/* NULL with a sentence in err if the key cannot be made. */
EVP_PKEY *cert_key_new(char *err, size_t errlen);

/*
 * A certificate for fqdn (checked with cert_fqdn_check), valid for days
 * (1 to CERT_DAYS_MAX), signed by key.  NULL with a sentence in err.
 */
X509 *cert_selfsign(EVP_PKEY *key, const char *fqdn, unsigned days,
		    char *err, size_t errlen);

#endif
