/*
 * session: the client side of one SMTP connection (RFC 5321, RFC 3207
 * STARTTLS, RFC 4954 AUTH, RFC 2920 PIPELINING, RFC 3030 CHUNKING, RFC 1870
 * SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN).  See
 * session.h for the functions.
 *
 * The state machine: enter_state() logs "old -> new" and sends what the new
 * state stands for; the reply handler of the state decides the next one.
 * Under PIPELINING, MAIL, every RCPT and DATA leave in one write and the
 * states then only consume their replies, in order.
 *
 * Connection state (capabilities, TLS) and transaction state (the job's
 * recipients and their results) are kept apart: STARTTLS forgets every
 * capability learned in clear text (RFC 3207 4.2), and the io layer drops
 * whatever arrived after the 220 before the handshake (case C02).
 *
 * Errors: a 421 at any point, a timeout, a lost connection or a reply we
 * cannot parse end the connection at once (nothing more is sent after a
 * 421, case C24); recipients without a final answer get TEMPFAIL.  A lost
 * connection after the final dot is TEMPFAIL too: a duplicate is better
 * than a loss.  Timeouts are RFC 5321 4.5.3.2's, as inactivity per read
 * (a slow but live peer is waited for, case C27).
 */
#include "smtpc/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "net/io.h"
#include "smtp/command.h"
#include "smtpc/body.h"
#include "smtpc/tlspolicy.h"
#include "util/log.h"

#define SEC 1000
#define T_CONNECT (60 * SEC)
#define T_GREETING (300 * SEC) /* RFC 5321 4.5.3.2.1 */
#define T_COMMAND (300 * SEC)  /* EHLO, MAIL, RCPT: 4.5.3.2.2, .3 */
#define T_DATA (120 * SEC)     /* 4.5.3.2.4 */
#define T_BLOCK (180 * SEC)    /* 4.5.3.2.5 */
#define T_DOT (600 * SEC)      /* 4.5.3.2.6 */
#define T_HANDSHAKE (120 * SEC)
#define T_QUIT (10 * SEC)
#define T_IDLE (30 * SEC) /* a pooled connection waits this long */

#define SESS_MAX_MESSAGES 100
#define BODY_CHUNK (16 * 1024)
#define BODY_HIGH (64 * 1024) /* queued output bound while streaming */
#define BDAT_CHUNK (64 * 1024)

enum sess_state {
	S_CONNECT,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_HANDSHAKE,
	S_AUTH,
	S_IDLE,
	S_RSET,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_BODY,
	S_EOM,
	S_BDAT,
	S_QUIT,
	S_DEAD,
};

static const char *const state_names[] = {
	[S_CONNECT] = "CONNECT",   [S_GREETING] = "GREETING",
	[S_EHLO] = "EHLO",	   [S_HELO] = "HELO",
	[S_STARTTLS] = "STARTTLS", [S_HANDSHAKE] = "HANDSHAKE",
	[S_AUTH] = "AUTH",	   [S_IDLE] = "IDLE",
	[S_RSET] = "RSET",	   [S_MAIL] = "MAIL",
	[S_RCPT] = "RCPT",	   [S_DATA] = "DATA",
	[S_BODY] = "BODY",	   [S_EOM] = "EOM",
	[S_BDAT] = "BDAT",	   [S_QUIT] = "QUIT",
	[S_DEAD] = "DEAD",
};

/* Extensions we use, from the current EHLO reply. */
#define EXT_STARTTLS 0x01
#define EXT_PIPELINING 0x02
#define EXT_SIZE 0x04
#define EXT_8BITMIME 0x08
#define EXT_SMTPUTF8 0x10
#define EXT_DSN 0x20
#define EXT_CHUNKING 0x40
#define EXT_BINARYMIME 0x80
#define EXT_AUTH_PLAIN 0x100
#define EXT_AUTH_LOGIN 0x200

struct smtpc_sess {
	struct smtpc_sess *prev, *next; /* on list */
	struct smtpc_sess_list *list;
	struct event_base *base;
	struct smtpc_tls *tls;
	struct io *io;
	smtpc_sess_cb *cb;
	void *arg;
	bool detached; /* the owner let go */
	bool probe;
	int depth;    /* nesting of io callbacks */
	bool freeing; /* free once depth is 0 */

	enum sess_state state;
	struct smtpc_hop hop;
	const struct smtpc_policy *policy;
	char id[96]; /* log prefix: "smtpc host[addr]" */

	/* connection */
	struct smtp_reply_reader rr;
	struct smtp_reply_reader ehlo;
	struct smtp_reply_reader *ehlo_clear; /* probe: before STARTTLS */
	bool have_ehlo;
	unsigned ext;
	unsigned long size_max; /* SIZE parameter, 0: no limit given */
	bool skip_tls;
	bool tls_done;
	int tls_names;
	bool verified;
	char verify_reason[256];
	char peer[512];
	char client_cert[1024]; /* copied: contexts go on reload */
	SSL_CTX *ctx;
	char chain[2048];
	int auth_step;
	unsigned messages;
	bool broken;	  /* never reuse */
	bool retry_clear; /* "may" handshake failure */
	char reason[SMTPC_REPLY_MAX];

	/* transaction */
	struct smtpc_txn *txn;
	bool pipelined;
	size_t rcpt_next;    /* next RCPT to send (step by step) */
	size_t rcpt_replied; /* RCPT replies seen */
	size_t accepted;
	bool dummy_data; /* pipelined DATA with no recipient: lone "." */
	int body_fd;
	struct smtpc_body body;
	bool bdat;
	bool bdat_last;
	bool eom_sent;
};

static void enter_state(struct smtpc_sess *s, enum sess_state next);
static void bad_reply_reason(const uint8_t *data, size_t len, char *out,
			     size_t outlen);

/*
 * snprintf that may cut: reasons and replies are bounded texts, and a cut
 * one is still right (through vsnprintf, so that the compiler's
 * format-truncation analysis does not apply).
 */
static void __attribute__((format(printf, 3, 4)))
say(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}
static void sess_on_io(struct io *io, enum io_event ev, void *arg);

/* ---------------------------------------------------------------- helpers */

static void
sess_unlink(struct smtpc_sess *s)
{
	if (s->list == NULL)
		return;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->list->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->list->n--;
	s->list = NULL;
}

static void
sess_release(struct smtpc_sess *s)
{
	if (s->io != NULL) {
		io_free(s->io);
		s->io = NULL;
	}
	if (s->body_fd >= 0)
		close(s->body_fd);
	s->body_fd = -1;
	sess_unlink(s);
	free(s->ehlo_clear);
	free(s);
}

void
smtpc_sess_free(struct smtpc_sess *s)
{
	if (s == NULL)
		return;
	s->detached = true;
	if (s->depth > 0) {
		s->freeing = true;
		return;
	}
	sess_release(s);
}

/* Tell the owner (unless it let go).  The owner may free the session. */
static void
sess_emit(struct smtpc_sess *s, enum smtpc_sess_event ev)
{
	if (s->detached || s->cb == NULL)
		return;
	s->cb(s, ev, s->arg);
}

/* "d.d.d" (RFC 3463) at t, followed by a space or the end: its length. */
static size_t
status_code_len(const char *t)
{
	size_t i = 0;

	if (t[i] != '2' && t[i] != '4' && t[i] != '5')
		return 0;
	i++;
	for (int part = 0; part < 2; part++) {
		if (t[i] != '.')
			return 0;
		i++;
		size_t d = 0;
		while (d < 3 && t[i] >= '0' && t[i] <= '9')
			i++, d++;
		if (d == 0)
			return 0;
	}
	return t[i] == ' ' || t[i] == '\0' ? i : 0;
}

void
smtpc_result_set(struct smtpc_rcpt_result *r, char *buf, enum smtpc_status st,
		 int code, const char *enhanced, const char *text)
{
	r->status = st;
	r->code = code;
	say(r->enhanced, sizeof r->enhanced, "%s",
	    enhanced != NULL ? enhanced : "");
	if (code == 0 && text[0] >= '2' && text[0] <= '5' &&
	    smtpc_reason_has_code(text) && text[1] != '.') {
		/* A peer's reply as the reason ("421 4.3.2 busy" greeting):
		 * its own codes, not the local ones. */
		r->code = (text[0] - '0') * 100 + (text[1] - '0') * 10 +
			  (text[2] - '0');
		size_t n = text[3] == ' ' ? status_code_len(text + 4) : 0;
		say(r->enhanced, sizeof r->enhanced, "%.*s", (int)n, text + 4);
		say(buf, SMTPC_REPLY_MAX, "%s", text);
	} else if (code == 0 && r->enhanced[0] != '\0' &&
		   !smtpc_reason_has_code(text)) {
		/* A local reason carries its status code like a reply. */
		say(buf, SMTPC_REPLY_MAX, "%s %s", r->enhanced, text);
	} else {
		say(buf, SMTPC_REPLY_MAX, "%s", text);
	}
	r->reply = buf;
}

bool
smtpc_reason_has_code(const char *t)
{
	/* "421 ..." (a peer's reply) or "4.4.1 ..." (a status code). */
	bool reply = t[0] >= '2' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' &&
		     t[2] >= '0' && t[2] <= '9' &&
		     (t[3] == ' ' || t[3] == '\0');
	bool status = (t[0] == '2' || t[0] == '4' || t[0] == '5') &&
		      t[1] == '.' && t[2] >= '0' && t[2] <= '9';
	return reply || status;
}

/* QUIT answered (or not): the connection is over. */
static void
sess_quit_done(struct smtpc_sess *s)
{
	enter_state(s, S_DEAD);
	if (s->io != NULL) {
		SSL *ssl = io_ssl(s->io);
		if (ssl != NULL && s->tls_done)
			smtpc_tls_session_save(s->tls, s->hop.addr, ssl);
		io_free(s->io);
		s->io = NULL;
	}
	if (s->detached)
		smtpc_sess_free(s);
}

/* One reply as one log-safe line: "550 5.1.1 text, more text". */
static void
reply_line(const struct smtp_reply_reader *rr, char *out, size_t len)
{
	char raw[SMTPC_REPLY_MAX];
	size_t n =
		rr->text_len < sizeof raw - 1 ? rr->text_len : sizeof raw - 1;
	memcpy(raw, rr->text, n);
	raw[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (raw[i] == '\n')
			raw[i] = ' ';
	}
	char esc[SMTPC_REPLY_MAX];
	log_escape(esc, sizeof esc, raw, n);
	say(out, len, "%d%s%s", rr->code, n > 0 ? " " : "", esc);
}

static void
rcpt_set(struct smtpc_sess *s, size_t i, enum smtpc_status st, int code,
	 const char *enhanced, const char *text)
{
	struct smtpc_txn *t = s->txn;

	if (t->final[i])
		return;
	t->final[i] = 1;
	smtpc_result_set(&t->results[i], t->replies[i], st, code, enhanced,
			 text);
}

/* Every recipient still without a final result gets this one. */
static void
rcpt_set_rest(struct smtpc_sess *s, enum smtpc_status st, int code,
	      const char *enhanced, const char *text)
{
	for (size_t i = 0; i < s->txn->n_rcpts; i++)
		rcpt_set(s, i, st, code, enhanced, text);
}

static enum smtpc_status
status_of(int code)
{
	if (code >= 200 && code < 300)
		return SMTPC_DELIVERED;
	return code >= 500 ? SMTPC_PERMFAIL : SMTPC_TEMPFAIL;
}

/* The transaction is over: results are complete. */
static void
txn_done(struct smtpc_sess *s)
{
	s->txn->peer_dsn = (s->ext & EXT_DSN) != 0;
	s->txn = NULL;
	s->messages++;
	if (s->body_fd >= 0) {
		close(s->body_fd);
		s->body_fd = -1;
	}
	if (s->state != S_DEAD && s->state != S_QUIT)
		enter_state(s, S_IDLE);
	sess_emit(s, SMTPC_SESS_TXN_DONE);
}

/*
 * The connection is unusable: close it now, without QUIT (after a 421 or
 * an error nothing more may be sent).  With a transaction under way whose
 * MAIL went out, its open recipients get TEMPFAIL and the owner hears
 * TXN_DONE; otherwise FAILED (the owner may try another host).
 */
static void
sess_abort(struct smtpc_sess *s, int code, const char *enhanced,
	   const char *reason)
{
	enum sess_state was = s->state;

	say(s->reason, sizeof s->reason, "%s", reason);
	s->broken = true;
	log_info("%s: connection ended in %s: %s", s->id, state_names[was],
		 reason);
	enter_state(s, S_DEAD);
	if (s->io != NULL) {
		io_free(s->io);
		s->io = NULL;
	}
	if (s->txn != NULL && was > S_RSET) {
		rcpt_set_rest(s, SMTPC_TEMPFAIL, code, enhanced, reason);
		txn_done(s);
		return;
	}
	sess_emit(s, SMTPC_SESS_FAILED);
}

/* A failure before any mail: QUIT politely, then FAILED. */
static void
sess_fail_quit(struct smtpc_sess *s, const char *reason)
{
	say(s->reason, sizeof s->reason, "%s", reason);
	s->broken = true;
	log_info("%s: giving up on this host in %s: %s", s->id,
		 state_names[s->state], reason);
	if (s->txn != NULL && s->state > S_RSET) {
		rcpt_set_rest(s, SMTPC_TEMPFAIL, 0, "4.0.0", reason);
		enter_state(s, S_QUIT);
		txn_done(s);
		return;
	}
	enter_state(s, S_QUIT);
	sess_emit(s, SMTPC_SESS_FAILED);
}

static int sess_send(struct smtpc_sess *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
sess_send(struct smtpc_sess *s, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2)
		return -1; /* cannot happen with stored addresses (<= 1000) */
	memcpy(line + n, "\r\n", 2);
	return io_write(s->io, line, (size_t)n + 2);
}

/* ------------------------------------------------------------ extensions */

static void
ehlo_learn(struct smtpc_sess *s, const struct smtp_reply_reader *rr)
{
	static const struct {
		const char *kw;
		unsigned bit;
	} exts[] = {
		{"STARTTLS", EXT_STARTTLS}, {"PIPELINING", EXT_PIPELINING},
		{"SIZE", EXT_SIZE},	    {"8BITMIME", EXT_8BITMIME},
		{"SMTPUTF8", EXT_SMTPUTF8}, {"DSN", EXT_DSN},
		{"CHUNKING", EXT_CHUNKING}, {"BINARYMIME", EXT_BINARYMIME},
	};
	const char *p;
	size_t plen;

	s->ehlo = *rr;
	s->have_ehlo = true;
	s->ext = 0;
	s->size_max = 0;
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
		if (smtp_reply_ehlo_has(rr, exts[i].kw, &p, &plen))
			s->ext |= exts[i].bit;
	}
	if ((s->ext & EXT_SIZE) && smtp_reply_ehlo_has(rr, "SIZE", &p, &plen) &&
	    plen > 0 && plen < 20) {
		char num[24];
		memcpy(num, p, plen);
		num[plen] = '\0';
		char *end;
		unsigned long v = strtoul(num, &end, 10);
		if (*end == '\0')
			s->size_max = v;
	}
	if (smtp_reply_ehlo_has(rr, "AUTH", &p, &plen)) {
		/* "AUTH PLAIN LOGIN": look for whole words. */
		char words[256];
		size_t n = plen < sizeof words - 1 ? plen : sizeof words - 1;
		memcpy(words, p, n);
		words[n] = '\0';
		for (char *w = strtok(words, " "); w != NULL;
		     w = strtok(NULL, " ")) {
			if (strcasecmp(w, "PLAIN") == 0)
				s->ext |= EXT_AUTH_PLAIN;
			else if (strcasecmp(w, "LOGIN") == 0)
				s->ext |= EXT_AUTH_LOGIN;
		}
	}
}

/* ------------------------------------------------------------------ TLS */

static bool
policy_wants_tls(const struct smtpc_sess *s)
{
	return s->policy->tls == CONF_CONNECTOR_TLS_ENCRYPT ||
	       s->policy->tls == CONF_CONNECTOR_TLS_VERIFY;
}

static void
sess_record_chain(struct smtpc_sess *s, SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	size_t off = 0;

	s->chain[0] = '\0';
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		char subj[512], iss[512];
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof subj);
		X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof iss);
		int n = snprintf(s->chain + off, sizeof s->chain - off,
				 "%d subject=%s issuer=%s\n", i, subj, iss);
		if (n < 0 || (size_t)n >= sizeof s->chain - off)
			break;
		off += (size_t)n;
	}
}

static void
sess_tls_ready(struct smtpc_sess *s)
{
	SSL *ssl = io_ssl(s->io);

	if (io_discarded(s->io) > 0)
		log_warn("%s: %zu bytes arrived after the 220 to STARTTLS "
			 "and were discarded (injection attempt?)",
			 s->id, io_discarded(s->io));
	s->tls_done = true;
	s->verified = smtpc_tls_check(ssl, s->tls_names, s->verify_reason,
				      sizeof s->verify_reason);
	smtpc_tls_peer(ssl, s->peer, sizeof s->peer);
	if (s->probe)
		sess_record_chain(s, ssl);
	log_info("%s: TLS %s %s peer=\"%s\" verified=%s%s%s%s", s->id,
		 io_tls_version(s->io), io_tls_cipher(s->io), s->peer,
		 s->verified ? "yes" : "no", s->verified ? "" : " (",
		 s->verified ? "" : s->verify_reason, s->verified ? "" : ")");
	if (s->policy->tls == CONF_CONNECTOR_TLS_VERIFY && !s->verified) {
		char why[SMTPC_REPLY_MAX];
		say(why, sizeof why, "TLS verification failed: %s",
		    s->verify_reason);
		sess_fail_quit(s, why);
		return;
	}
	if (s->probe && s->have_ehlo && s->ehlo_clear == NULL &&
	    (s->ehlo_clear = malloc(sizeof *s->ehlo_clear)) != NULL)
		*s->ehlo_clear = s->ehlo; /* shown by `connector test` only */
	/* RFC 3207 4.2: forget what the clear-text EHLO said. */
	s->have_ehlo = false;
	s->ext = 0;
	enter_state(s, S_EHLO);
}

static void
sess_start_tls(struct smtpc_sess *s)
{
	char err[512];
	const char *desc = NULL;

	s->ctx = smtpc_tls_ctx(s->tls, s->policy->tls_ca_file,
			       s->policy->client_cert, &desc, err, sizeof err);
	if (s->ctx == NULL) {
		log_warn("%s: %s", s->id, err);
		sess_abort(s, 0, "4.7.5", err);
		return;
	}
	say(s->client_cert, sizeof s->client_cert, "%s",
	    desc != NULL ? desc : "");
	if (io_start_tls_client(s->io, s->ctx, s->hop.name) == -1) {
		sess_abort(s, 0, "4.7.5", io_error(s->io));
		return;
	}
	SSL *ssl = io_ssl(s->io);
	s->tls_names = smtpc_tls_prepare(ssl, s->hop.name, s->policy->tls_match,
					 s->policy->n_tls_match);
	smtpc_tls_session_use(s->tls, s->hop.addr, ssl);
	enter_state(s, S_HANDSHAKE);
}

/* -------------------------------------------------------------- AUTH */

static int
read_password(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, len - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

static void
send_b64(struct smtpc_sess *s, const char *prefix, const void *data, size_t len)
{
	unsigned char b64[1400];

	if (len > 1000)
		len = 1000; /* bounded: 4/3 * 1000 + 1 fits */
	int n = EVP_EncodeBlock(b64, data, (int)len);
	sess_send(s, "%s%.*s", prefix, n, (const char *)b64);
	OPENSSL_cleanse(b64, sizeof b64);
}

static void
auth_send(struct smtpc_sess *s)
{
	const struct smtpc_policy *p = s->policy;
	char pw[512], buf[1100];

	if (read_password(p->auth_password_file, pw, sizeof pw) == -1) {
		char why[SMTPC_REPLY_MAX];
		say(why, sizeof why, "cannot read auth_password_file %s: %s",
		    p->auth_password_file, strerror(errno));
		sess_fail_quit(s, why);
		return;
	}
	size_t ulen = strlen(p->auth_username), plen = strlen(pw);
	if (s->ext & EXT_AUTH_PLAIN) {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		if (ulen + plen + 2 <= sizeof buf) {
			buf[0] = '\0';
			memcpy(buf + 1, p->auth_username, ulen);
			buf[1 + ulen] = '\0';
			memcpy(buf + 2 + ulen, pw, plen);
			send_b64(s, "AUTH PLAIN ", buf, ulen + plen + 2);
		}
	} else if (s->auth_step == 0) {
		sess_send(s, "AUTH LOGIN");
	} else if (s->auth_step == 1) {
		send_b64(s, "", p->auth_username, ulen);
	} else {
		send_b64(s, "", pw, plen);
	}
	OPENSSL_cleanse(pw, sizeof pw);
	OPENSSL_cleanse(buf, sizeof buf);
}

/* --------------------------------------------------------- transaction */

/* Does the stored message hold 8-bit bytes?  -1 on a read error. */
static int
content_has_8bit(const char *path)
{
	uint8_t buf[BODY_CHUNK];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int found = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			found = -1;
			break;
		}
		if (n == 0)
			break;
		if (smtpc_body_has_8bit(buf, (size_t)n)) {
			found = 1;
			break;
		}
	}
	close(fd);
	return found;
}

/*
 * Can the message go to this peer at all?  Decided before MAIL from the
 * peer's extensions: a local PERMFAIL for every recipient otherwise.
 */
static bool
txn_check_peer(struct smtpc_sess *s)
{
	const struct envelope *env = s->txn->env;

	if (env->smtputf8 && !(s->ext & EXT_SMTPUTF8)) {
		rcpt_set_rest(s, SMTPC_PERMFAIL, 0, "5.6.7",
			      "the next hop does not support SMTPUTF8, which "
			      "this message needs (non-ASCII address or "
			      "header)");
		return false;
	}
	if (env->body == SMTP_BODY_BINARYMIME &&
	    (s->ext & (EXT_CHUNKING | EXT_BINARYMIME)) !=
		    (EXT_CHUNKING | EXT_BINARYMIME)) {
		rcpt_set_rest(s, SMTPC_PERMFAIL, 0, "5.6.3",
			      "the next hop does not support BINARYMIME; "
			      "conversion is not done");
		return false;
	}
	if (s->size_max > 0 && env->size > s->size_max) {
		char why[200];
		say(why, sizeof why,
		    "message of %llu bytes exceeds the next hop's "
		    "SIZE limit of %lu",
		    (unsigned long long)env->size, s->size_max);
		rcpt_set_rest(s, SMTPC_PERMFAIL, 0, "5.3.4", why);
		return false;
	}
	if (!(s->ext & EXT_8BITMIME) && env->body != SMTP_BODY_BINARYMIME) {
		int has = content_has_8bit(s->txn->content_path);
		if (has < 0) {
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "cannot read %s: %s",
			    s->txn->content_path, strerror(errno));
			rcpt_set_rest(s, SMTPC_TEMPFAIL, 0, "4.3.0", why);
			return false;
		}
		if (has) {
			rcpt_set_rest(s, SMTPC_PERMFAIL, 0, "5.6.3",
				      "the next hop does not support 8BITMIME "
				      "and the message has 8-bit data; "
				      "conversion is not done");
			return false;
		}
	}
	return true;
}

static void
send_mail(struct smtpc_sess *s)
{
	const struct envelope *env = s->txn->env;
	char params[600];
	size_t off = 0;

	params[0] = '\0';
#define ADD(...)                                                               \
	do {                                                                   \
		int n_ = snprintf(params + off, sizeof params - off,           \
				  __VA_ARGS__);                                \
		if (n_ > 0 && (size_t)n_ < sizeof params - off)                \
			off += (size_t)n_;                                     \
	} while (0)
	if (s->ext & EXT_SIZE)
		ADD(" SIZE=%llu", (unsigned long long)env->size);
	if (env->body == SMTP_BODY_BINARYMIME)
		ADD(" BODY=BINARYMIME");
	else if (env->body == SMTP_BODY_8BITMIME && (s->ext & EXT_8BITMIME))
		ADD(" BODY=8BITMIME");
	if (env->smtputf8 && (s->ext & EXT_SMTPUTF8))
		ADD(" SMTPUTF8");
	if (s->ext & EXT_DSN) {
		if (env->ret == SMTP_RET_FULL)
			ADD(" RET=FULL");
		else if (env->ret == SMTP_RET_HDRS)
			ADD(" RET=HDRS");
		if (env->envid != NULL)
			ADD(" ENVID=%s", env->envid);
	}
#undef ADD
	/* RFC 5321 4.1.2: no space after the colon (case C15). */
	sess_send(s, "MAIL FROM:<%s>%s", env->sender, params);
}

static void
send_rcpt(struct smtpc_sess *s, size_t i)
{
	const struct envelope_rcpt *r = &s->txn->env->rcpts[s->txn->rcpts[i]];
	char params[400];
	size_t off = 0;

	params[0] = '\0';
	if (s->ext & EXT_DSN) {
		char words[ENVELOPE_NOTIFY_WORDS_MAX];
		envelope_notify_words(r->notify, words, sizeof words);
		if (words[0] != '\0') {
			int n = snprintf(params, sizeof params, " NOTIFY=%s",
					 words);
			if (n > 0 && (size_t)n < sizeof params)
				off = (size_t)n;
		}
		if (r->orcpt != NULL)
			snprintf(params + off, sizeof params - off, " ORCPT=%s",
				 r->orcpt);
	}
	sess_send(s, "RCPT TO:<%s>%s", r->address, params);
}

static bool
txn_use_bdat(const struct smtpc_sess *s)
{
	return s->txn->env->body == SMTP_BODY_BINARYMIME;
}

/* The stored message into the output while it stays below BODY_HIGH. */
static void
body_fill(struct smtpc_sess *s)
{
	uint8_t in[BODY_CHUNK];
	uint8_t out[SMTPC_BODY_OUT_MAX(BODY_CHUNK)];

	while (io_queued(s->io) < BODY_HIGH) {
		ssize_t n = read(s->body_fd, in, sizeof in);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Never send the dot after a partial message. */
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "cannot read %s: %s",
			    s->txn->content_path, strerror(errno));
			sess_abort(s, 0, "4.3.0", why);
			return;
		}
		size_t o;
		if (n == 0) {
			o = smtpc_body_finish(&s->body, out);
			if (s->body.bare > 0)
				log_warn("%s: %llu bare CR/LF in %s sent as "
					 "CRLF",
					 s->id,
					 (unsigned long long)s->body.bare,
					 s->txn->content_path);
		} else {
			o = smtpc_body_encode(&s->body, in, (size_t)n, out);
		}
		if (io_write(s->io, out, o) == -1) {
			sess_abort(s, 0, "4.3.0", "out of memory");
			return;
		}
		if (n == 0) {
			close(s->body_fd);
			s->body_fd = -1;
			enter_state(s, S_EOM);
			return;
		}
	}
}

/* One BDAT chunk (RFC 3030): the bytes as stored, no stuffing. */
static void
bdat_send(struct smtpc_sess *s)
{
	static uint8_t buf[BDAT_CHUNK];
	ssize_t n;

	do {
		n = read(s->body_fd, buf, sizeof buf);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		char why[SMTPC_REPLY_MAX];
		say(why, sizeof why, "cannot read %s: %s", s->txn->content_path,
		    strerror(errno));
		sess_abort(s, 0, "4.3.0", why);
		return;
	}
	/* The last chunk: shorter than a full one (or empty). */
	s->bdat_last = (size_t)n < sizeof buf;
	sess_send(s, "BDAT %zd%s", n, s->bdat_last ? " LAST" : "");
	io_write(s->io, buf, (size_t)n);
}

/* After the last RCPT reply: DATA/BDAT when someone was accepted. */
static void
txn_after_rcpts(struct smtpc_sess *s)
{
	if (s->pipelined && !s->bdat) {
		/* DATA went out with the RCPTs; its reply comes next. */
		s->dummy_data = s->accepted == 0;
		enter_state(s, S_DATA);
		return;
	}
	if (s->accepted == 0) {
		txn_done(s); /* the next transaction starts with RSET */
		return;
	}
	if (s->bdat) {
		s->body_fd = open(s->txn->content_path, O_RDONLY | O_CLOEXEC);
		if (s->body_fd < 0) {
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "cannot open %s: %s",
			    s->txn->content_path, strerror(errno));
			rcpt_set_rest(s, SMTPC_TEMPFAIL, 0, "4.3.0", why);
			txn_done(s);
			return;
		}
		enter_state(s, S_BDAT);
		return;
	}
	enter_state(s, S_DATA);
}

/* ------------------------------------------------------------- states */

static int
state_timeout(enum sess_state st)
{
	switch (st) {
	case S_CONNECT:
		return T_CONNECT;
	case S_GREETING:
		return T_GREETING;
	case S_HANDSHAKE:
		return T_HANDSHAKE;
	case S_DATA:
		return T_DATA;
	case S_BODY:
		return T_BLOCK;
	case S_EOM:
	case S_BDAT:
		return T_DOT;
	case S_QUIT:
		return T_QUIT;
	case S_IDLE:
		return T_IDLE;
	case S_DEAD:
		return 0;
	default:
		return T_COMMAND;
	}
}

static void
enter_state(struct smtpc_sess *s, enum sess_state next)
{
	enum sess_state old = s->state;

	log_debug("%s: state %s -> %s", s->id, state_names[old],
		  state_names[next]);
	s->state = next;
	if (s->io == NULL)
		return;
	io_set_timeout(s->io, state_timeout(next));
	switch (next) {
	case S_EHLO:
		sess_send(s, "EHLO %s", s->policy->helo);
		break;
	case S_HELO:
		sess_send(s, "HELO %s", s->policy->helo);
		break;
	case S_STARTTLS:
		sess_send(s, "STARTTLS");
		break;
	case S_AUTH:
		auth_send(s);
		break;
	case S_RSET:
		sess_send(s, "RSET");
		break;
	case S_MAIL:
		send_mail(s);
		if (s->pipelined) {
			for (size_t i = 0; i < s->txn->n_rcpts; i++)
				send_rcpt(s, i);
			s->rcpt_next = s->txn->n_rcpts;
			if (!s->bdat)
				sess_send(s, "DATA");
		}
		break;
	case S_RCPT:
		if (!s->pipelined)
			send_rcpt(s, s->rcpt_next++);
		break;
	case S_DATA:
		if (!s->pipelined)
			sess_send(s, "DATA");
		break;
	case S_BODY:
		smtpc_body_init(&s->body);
		break;
	case S_BDAT:
		bdat_send(s);
		break;
	case S_QUIT:
		sess_send(s, "QUIT");
		break;
	default:
		break;
	}
}

/* EHLO/HELO succeeded: STARTTLS, AUTH or ready, per the policy. */
static void
sess_after_ehlo(struct smtpc_sess *s)
{
	const struct smtpc_policy *p = s->policy;

	if (!s->tls_done && p->tls != CONF_CONNECTOR_TLS_NONE) {
		bool offered = (s->ext & EXT_STARTTLS) != 0;
		if (offered && (!s->skip_tls || policy_wants_tls(s))) {
			enter_state(s, S_STARTTLS);
			return;
		}
		if (policy_wants_tls(s)) {
			sess_fail_quit(s, "TLS is required but the next hop "
					  "does not offer STARTTLS");
			return;
		}
	}
	if (p->auth_username != NULL && !s->probe) {
		if (!s->tls_done) {
			sess_fail_quit(s, "AUTH is configured but the "
					  "connection is not encrypted");
			return;
		}
		if (!(s->ext & (EXT_AUTH_PLAIN | EXT_AUTH_LOGIN))) {
			sess_fail_quit(s, "AUTH is configured but the next hop "
					  "offers neither PLAIN nor LOGIN");
			return;
		}
		s->auth_step = 0;
		enter_state(s, S_AUTH);
		return;
	}
	enter_state(s, S_IDLE);
	sess_emit(s, SMTPC_SESS_READY);
}

static void
sess_reply(struct smtpc_sess *s, const struct smtp_reply_reader *rr)
{
	char line[SMTPC_REPLY_MAX];
	int c = rr->code;

	reply_line(rr, line, sizeof line);
	log_debug("%s: <<< %s", s->id, line);
	if (c == 421 && s->state != S_QUIT) {
		/* RFC 5321 3.8: the server is closing; so do we (C24). */
		sess_abort(s, c, rr->enhanced, line);
		return;
	}
	switch (s->state) {
	case S_GREETING:
		if (c != 220) {
			sess_fail_quit(s, line); /* no EHLO after a refusal */
			return;
		}
		enter_state(s, S_EHLO);
		return;
	case S_EHLO:
		if (c / 100 == 2) {
			ehlo_learn(s, rr);
			sess_after_ehlo(s);
		} else if (c / 100 == 5 && !s->tls_done) {
			enter_state(s, S_HELO);
		} else {
			sess_fail_quit(s, line);
		}
		return;
	case S_HELO:
		if (c / 100 != 2) {
			sess_fail_quit(s, line);
			return;
		}
		s->ehlo = *rr;
		s->have_ehlo = true;
		s->ext = 0;
		sess_after_ehlo(s);
		return;
	case S_STARTTLS:
		if (c == 220) {
			sess_start_tls(s);
		} else if (policy_wants_tls(s)) {
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "STARTTLS refused: %s", line);
			sess_fail_quit(s, why);
		} else {
			/* "may": go on in clear text on this connection. */
			s->ext &= ~EXT_STARTTLS;
			s->skip_tls = true;
			sess_after_ehlo(s);
		}
		return;
	case S_AUTH:
		if (c == 235) {
			enter_state(s, S_IDLE);
			sess_emit(s, SMTPC_SESS_READY);
		} else if (c == 334 && !(s->ext & EXT_AUTH_PLAIN) &&
			   s->auth_step < 2) {
			s->auth_step++;
			auth_send(s);
		} else {
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "authentication failed: %s", line);
			sess_fail_quit(s, why);
		}
		return;
	case S_RSET:
		if (c / 100 != 2) {
			sess_fail_quit(s, line);
			return;
		}
		enter_state(s, S_MAIL);
		return;
	case S_MAIL:
		if (c / 100 != 2)
			rcpt_set_rest(s, status_of(c), c, rr->enhanced, line);
		if (!s->pipelined && c / 100 != 2) {
			txn_done(s);
			return;
		}
		enter_state(s, S_RCPT);
		return;
	case S_RCPT: {
		size_t i = s->rcpt_replied++;
		if (c / 100 == 2 && !s->txn->final[i])
			s->accepted++;
		else
			rcpt_set(s, i, status_of(c), c, rr->enhanced, line);
		if (s->rcpt_replied < s->txn->n_rcpts) {
			if (!s->pipelined)
				enter_state(s, S_RCPT);
			return;
		}
		txn_after_rcpts(s);
		return;
	}
	case S_DATA:
		if (c == 354 && s->dummy_data) {
			/* RFC 2920 3.1: no recipient, so a lone dot. */
			sess_send(s, ".");
			enter_state(s, S_EOM);
			return;
		}
		if (s->dummy_data) {
			txn_done(s);
			return;
		}
		if (c != 354) {
			rcpt_set_rest(s, status_of(c), c, rr->enhanced, line);
			txn_done(s);
			return;
		}
		s->body_fd = open(s->txn->content_path, O_RDONLY | O_CLOEXEC);
		if (s->body_fd < 0) {
			char why[SMTPC_REPLY_MAX];
			say(why, sizeof why, "cannot open %s: %s",
			    s->txn->content_path, strerror(errno));
			sess_abort(s, 0, "4.3.0", why);
			return;
		}
		enter_state(s, S_BODY);
		body_fill(s);
		return;
	case S_EOM:
		if (!s->dummy_data)
			rcpt_set_rest(s, status_of(c), c, rr->enhanced, line);
		txn_done(s);
		return;
	case S_BDAT:
		if (c / 100 != 2 || s->bdat_last) {
			rcpt_set_rest(s, status_of(c), c, rr->enhanced, line);
			if (c / 100 != 2)
				s->broken =
					true; /* the chunk state is unclear */
			txn_done(s);
			return;
		}
		enter_state(s, S_BDAT);
		return;
	case S_QUIT:
		sess_quit_done(s);
		return;
	default: {
		/* A reply nobody asked for (IDLE, BODY): a broken peer. */
		char why[SMTPC_REPLY_MAX];
		say(why, sizeof why, "unexpected reply in %s: %s",
		    state_names[s->state], line);
		sess_abort(s, 0, "4.5.0", why);
		return;
	}
	}
}

/* ---------------------------------------------------------- io events */

static void
sess_read(struct smtpc_sess *s)
{
	while (s->io != NULL && !s->freeing && s->state != S_DEAD) {
		size_t len, used = 0;
		const uint8_t *data = io_data(s->io, &len);
		if (len == 0)
			return;
		enum smtp_reply_status st =
			smtp_reply_next(&s->rr, data, len, &used);
		if (st == SMTP_REPLY_BAD) {
			char why[SMTPC_REPLY_MAX];
			bad_reply_reason(data, len, why, sizeof why);
			sess_abort(s, 0, "4.5.0", why);
			return;
		}
		io_drop(s->io, used);
		if (st == SMTP_REPLY_NEED_MORE)
			return;
		sess_reply(s, &s->rr);
		/* After STARTTLS's 220 the clear-text rest was discarded. */
		if (s->state == S_HANDSHAKE)
			return;
	}
}

/*
 * A reply the reader refused (case C25: continuation lines with another
 * code, an overlong line): its last complete line, when it looks like a
 * reply line, says what the peer meant ("220-hello" then "554 no
 * service"); else a generic reason.
 */
static void
bad_reply_reason(const uint8_t *data, size_t len, char *out, size_t outlen)
{
	size_t end = len, start;

	while (end > 0 && data[end - 1] != '\n')
		end--;
	if (end == 0) {
		say(out, outlen, "malformed reply from the next hop");
		return;
	}
	size_t stop = end - 1;
	if (stop > 0 && data[stop - 1] == '\r')
		stop--;
	start = stop;
	while (start > 0 && data[start - 1] != '\n')
		start--;
	const uint8_t *l = data + start;
	size_t n = stop - start;
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ')) {
		say(out, outlen, "malformed reply from the next hop");
		return;
	}
	char esc[SMTPC_REPLY_MAX];
	log_escape(esc, sizeof esc, l, n);
	say(out, outlen, "%s", esc);
}

static void
sess_io_error(struct smtpc_sess *s, enum io_event ev)
{
	char why[SMTPC_REPLY_MAX];

	if (s->state == S_QUIT) {
		sess_quit_done(s);
		return;
	}
	if (s->state == S_IDLE && ev == IO_TIMEOUT) {
		sess_fail_quit(s, "idle");
		return;
	}
	if (ev == IO_TIMEOUT)
		say(why, sizeof why, "timeout in %s (no progress for %d s)",
		    state_names[s->state], state_timeout(s->state) / SEC);
	else if (ev == IO_DISCONNECTED && s->state == S_EOM)
		say(why, sizeof why,
		    "connection lost after the end of data, before "
		    "the reply (the next hop may have the message)");
	else if (ev == IO_DISCONNECTED)
		say(why, sizeof why,
		    "connection closed by the next hop "
		    "in %s",
		    state_names[s->state]);
	else
		say(why, sizeof why, "%s", io_error(s->io));
	if (s->state == S_HANDSHAKE && !policy_wants_tls(s)) {
		/* "may": try again in clear text on a new connection. */
		s->retry_clear = true;
		smtpc_tls_remember_failure(s->tls, s->hop.addr);
	}
	if (s->state == S_HANDSHAKE) {
		char w2[SMTPC_REPLY_MAX];
		say(w2, sizeof w2, "TLS handshake failed: %s", why);
		sess_abort(s, 0, "4.7.5", w2);
		return;
	}
	sess_abort(s, 0, "4.4.2", why);
}

static void
sess_dispatch(struct smtpc_sess *s, enum io_event ev)
{
	switch (ev) {
	case IO_CONNECTED:
		log_debug("%s: connected", s->id);
		enter_state(s, S_GREETING);
		return;
	case IO_TLSREADY:
		sess_tls_ready(s);
		if (s->io != NULL && s->state == S_EHLO)
			sess_read(s); /* data that came with the last flight */
		return;
	case IO_DATAIN:
		sess_read(s);
		return;
	case IO_LOWAT:
		if (s->state == S_BODY)
			body_fill(s);
		return;
	case IO_TIMEOUT:
	case IO_DISCONNECTED:
	case IO_ERROR:
		sess_io_error(s, ev);
		return;
	}
}

static void
sess_on_io(struct io *io, enum io_event ev, void *arg)
{
	struct smtpc_sess *s = arg;

	(void)io;
	s->depth++;
	sess_dispatch(s, ev);
	s->depth--;
	if (s->freeing && s->depth == 0)
		sess_release(s);
}

/* ------------------------------------------------------------- public */

struct smtpc_sess *
smtpc_sess_new(struct event_base *base, struct smtpc_sess_list *list,
	       struct smtpc_tls *tls, const struct smtpc_hop *hop,
	       const struct smtpc_policy *policy, bool skip_tls, bool probe,
	       smtpc_sess_cb *cb, void *arg, char *err, size_t errlen)
{
	struct smtpc_sess *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->tls = tls;
	s->hop = *hop;
	s->policy = policy;
	s->skip_tls = skip_tls;
	s->probe = probe;
	s->cb = cb;
	s->arg = arg;
	s->body_fd = -1;
	s->state = S_CONNECT;
	say(s->id, sizeof s->id, "smtpc %s[%s]", hop->name, hop->addr);
	smtp_reply_reader_init(&s->rr);
	s->io = io_connect(base, (const struct sockaddr *)&hop->sa, hop->salen,
			   sess_on_io, s);
	if (s->io == NULL) {
		snprintf(err, errlen, "cannot connect to %s: %s", hop->addr,
			 strerror(errno));
		free(s);
		return NULL;
	}
	io_set_timeout(s->io, T_CONNECT);
	io_set_lowat(s->io, BODY_HIGH / 2);
	s->list = list;
	s->next = list->head;
	if (list->head != NULL)
		list->head->prev = s;
	list->head = s;
	list->n++;
	return s;
}

void
smtpc_sess_set_cb(struct smtpc_sess *s, smtpc_sess_cb *cb, void *arg)
{
	s->cb = cb;
	s->arg = arg;
}

static void sess_start(struct smtpc_sess *s, struct smtpc_txn *txn);

void
smtpc_sess_start(struct smtpc_sess *s, struct smtpc_txn *txn)
{
	s->depth++;
	sess_start(s, txn);
	s->depth--;
	if (s->freeing && s->depth == 0)
		sess_release(s);
}

static void
sess_start(struct smtpc_sess *s, struct smtpc_txn *txn)
{
	s->txn = txn;
	memset(txn->final, 0, txn->n_rcpts);
	s->rcpt_next = 0;
	s->rcpt_replied = 0;
	s->accepted = 0;
	s->dummy_data = false;
	s->bdat = txn_use_bdat(s);
	s->bdat_last = false;
	s->pipelined = (s->ext & EXT_PIPELINING) != 0;
	if (s->state != S_IDLE || s->io == NULL) {
		/* Only READY sessions are given work: a bug otherwise. */
		panic("%s: transaction started in state %s", s->id,
		      state_names[s->state]);
	}
	if (!txn_check_peer(s)) {
		txn_done(s);
		return;
	}
	enter_state(s, s->messages > 0 ? S_RSET : S_MAIL);
}

void
smtpc_sess_close(struct smtpc_sess *s)
{
	s->detached = true;
	s->cb = NULL;
	if (s->io == NULL || s->state == S_DEAD) {
		smtpc_sess_free(s);
		return;
	}
	if (s->state != S_QUIT)
		enter_state(s, S_QUIT);
}

const char *
smtpc_sess_reason(const struct smtpc_sess *s)
{
	return s->reason;
}

bool
smtpc_sess_retry_clear(const struct smtpc_sess *s)
{
	return s->retry_clear;
}

bool
smtpc_sess_reusable(const struct smtpc_sess *s)
{
	return !s->broken && s->io != NULL && s->state == S_IDLE &&
	       s->messages < SESS_MAX_MESSAGES;
}

const struct smtpc_hop *
smtpc_sess_hop(const struct smtpc_sess *s)
{
	return &s->hop;
}

const char *
smtpc_sess_tls_version(const struct smtpc_sess *s)
{
	return s->tls_done && s->io != NULL ? io_tls_version(s->io) : NULL;
}

const char *
smtpc_sess_tls_cipher(const struct smtpc_sess *s)
{
	return s->tls_done && s->io != NULL ? io_tls_cipher(s->io) : NULL;
}

const char *
smtpc_sess_tls_peer(const struct smtpc_sess *s)
{
	return s->tls_done && s->peer[0] != '\0' ? s->peer : NULL;
}

bool
smtpc_sess_tls_verified(const struct smtpc_sess *s)
{
	return s->tls_done && s->verified;
}

const char *
smtpc_sess_tls_verify_reason(const struct smtpc_sess *s)
{
	return s->tls_done ? s->verify_reason : "";
}

const char *
smtpc_sess_client_cert(const struct smtpc_sess *s)
{
	return s->tls_done && s->client_cert[0] != '\0' ? s->client_cert : NULL;
}

const struct smtp_reply_reader *
smtpc_sess_ehlo(const struct smtpc_sess *s)
{
	return s->have_ehlo ? &s->ehlo : NULL;
}

const struct smtp_reply_reader *
smtpc_sess_ehlo_clear(const struct smtpc_sess *s)
{
	return s->ehlo_clear;
}

const char *
smtpc_sess_chain(const struct smtpc_sess *s)
{
	return s->chain;
}
