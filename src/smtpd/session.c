/*
 * session: one inbound SMTP session (RFC 5321 with PIPELINING RFC 2920,
 * SIZE RFC 1870, 8BITMIME RFC 6152, ENHANCEDSTATUSCODES RFC 2034/3463,
 * SMTPUTF8 RFC 6531, DSN RFC 3461, CHUNKING RFC 3030, STARTTLS RFC 3207).
 * See session.h for the public functions.
 *
 * Shape:
 *   - The connection state (session_conn: EHLO name, TLS, counters) and the
 *     transaction state (session_txn: envelope, spool file, decoders) are
 *     separate structs; one enum session_state with session_enter() that
 *     logs "old -> new" drives everything.
 *   - Commands are a table {verb, flags, check, proceed}: the flags carry
 *     the common rules (needs EHLO, needs TLS on a require listener, takes
 *     no arguments), check() only validates and hands back the refusal,
 *     proceed() acts and replies.
 *   - Input is taken from the io buffer one complete line at a time
 *     (smtp_line_next: bounded, an overlong line is refused once and never
 *     executed in pieces, case C07), whatever the packet boundaries.
 *     Replies are queued and leave together when the input holds no more
 *     complete commands (the io flushes from the loop), so pipelined
 *     replies go out in order and in one write.  A client that pipelines
 *     without reading is paused once 64 KiB of replies wait.
 *   - DATA and BDAT stream: input -> smtp_datadec -> a 4 KiB stack buffer
 *     -> smtp_msghdr + spool_msg_write.  Nothing grows with the message.
 *     Faults (bare CR/LF, NUL, overlong lines) and the size limit are
 *     decided after the whole message was read (case C08), then the
 *     message is refused and nothing is queued.
 *   - 250 after the data only from the spool's commit callback, i.e. once
 *     the message and its envelope are durable (case C28).  Input is paused
 *     meanwhile.  A client that disconnects during the commit leaves the
 *     session allocated (marked gone) until the callback has run.
 *   - STARTTLS: 220, then io_start_tls_server() throws away every byte that
 *     followed the command (case C01, logged with its count); after the
 *     handshake the EHLO name and the transaction are forgotten (C06).
 *   - Timeouts: command_timeout_s counts from the end of the previous
 *     command (or the greeting), not from the last byte, so a client that
 *     trickles one byte at a time is still cut off (case C27 E); in DATA
 *     and BDAT the io inactivity timer (data_timeout_s) applies instead.
 *
 * Every reply carries an enhanced status code except the greeting and the
 * EHLO/HELO hello line (RFC 2034).  Every refusal is logged with its code.
 */
#include "smtpd/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/io.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "queue/tracking.h"
#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/datadec.h"
#include "smtp/line.h"
#include "smtp/msghdr.h"
#include "smtpd/received.h"
#include "util/log.h"

#define SESSION_ERRORS_MAX 20	       /* 5xx replies before 421 and close */
#define SESSION_OUTPUT_MAX (64 * 1024) /* queued replies before pausing */
#define SESSION_CLOSE_GRACE_S 10       /* to flush the last reply */
#define SESSION_DATA_CHUNK 4096	       /* decoder output per step */
#define SESSION_ADDR_MAX (2 * SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 8)

enum session_state {
	S_INIT,
	S_HANDSHAKE, /* implicit TLS: handshake before the greeting */
	S_COMMAND,   /* reading commands */
	S_DATA,	     /* reading the DATA body */
	S_BDAT,	     /* reading a BDAT chunk */
	S_COMMIT,    /* waiting for the spool to make the message durable */
	S_STARTTLS,  /* handshake after STARTTLS */
	S_CLOSING,   /* last reply queued; freed once it is flushed */
};

static const char *const state_names[] = {
	"init", "handshake", "command",	 "data",
	"bdat", "commit",    "starttls", "closing",
};

enum session_greeted { GREET_NONE, GREET_HELO, GREET_EHLO };

/* What lives as long as the connection. */
struct session_conn {
	struct sockaddr_storage sa;
	char addr[INET6_ADDRSTRLEN];
	unsigned port;
	bool ipv6;
	bool relay_client;
	enum session_greeted greeted;
	char helo[SMTP_DOMAIN_MAX + 1];
	bool tls;
	char tls_version[32];
	char tls_cipher[128];
	unsigned commands;
	unsigned errors;
	unsigned messages;
	time_t started;
	const char *end; /* why it ended, for the disconnect line */
};

/* What lives from MAIL to the end of the data (or RSET). */
struct session_txn {
	bool active;	       /* MAIL accepted */
	bool smtputf8;	       /* SMTPUTF8 declared on MAIL */
	bool utf8_addr;	       /* a non-ASCII envelope address */
	bool bdat;	       /* BDAT chunks started */
	struct envelope env;   /* sender, recipients, then the rest */
	struct spool_msg *msg; /* open queue file, or NULL */
	struct smtp_datadec dec;
	struct smtp_msghdr hdr;
	uint64_t stored; /* bytes written, Received: included */
	int write_errno; /* first spool write error */
	bool too_big;
};

/* The BDAT chunk being read. */
struct session_chunk {
	uint64_t size;
	uint64_t left;
	bool last;
	bool discard;		 /* refused: read it, then reply */
	struct smtp_reply reply; /* the refusal */
};

struct smtpd_session {
	struct smtpd_session_ctx ctx; /* ctx.tls holds our own reference */
	char id[9];
	struct io *io;
	struct event *timer; /* command deadline, close grace */
	enum session_state state;
	struct session_conn conn;
	struct session_txn txn;
	struct session_chunk chunk;
	struct smtp_line_reader lr;
	const char *verb; /* command being run, for the log */
	const char *arg;  /* its arguments (valid while it runs) */
	size_t arg_len;
	bool in_process;
	bool output_blocked;
	bool commit_pending;
	bool gone;     /* client gone, waiting for the commit */
	bool shutdown; /* the server is stopping */
};

/* What check() parses and proceed() uses, for one command. */
struct session_args {
	struct smtp_mail mail;
	struct smtp_rcpt rcpt;
	char wire[SESSION_ADDR_MAX];
	uint64_t bdat_size;
	bool bdat_last;
};

#define CMD_HELO 0x1   /* needs EHLO/HELO first */
#define CMD_TLS 0x2    /* refused before STARTTLS on a require listener */
#define CMD_NOARGS 0x4 /* takes no arguments */

struct session_cmd {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	/* Validate only: false with *err set means refused. */
	bool (*check)(struct smtpd_session *s, const struct smtp_command *cmd,
		      struct session_args *a, struct smtp_reply *err);
	/* Act and reply. */
	void (*proceed)(struct smtpd_session *s, const struct smtp_command *cmd,
			const struct session_args *a);
};

static const struct smtp_reply r_unknown = {500, "5.5.2",
					    "Command unrecognized"};
static const struct smtp_reply r_line_too_long = {500, "5.5.2",
						  "Line too long"};
static const struct smtp_reply r_no_args = {
	501, "5.5.4", "Syntax error: no parameters allowed"};
static const struct smtp_reply r_need_helo = {503, "5.5.1",
					      "Send EHLO/HELO first"};
static const struct smtp_reply r_need_tls = {
	530, "5.7.0", "Must issue a STARTTLS command first"};
static const struct smtp_reply r_helo_syntax = {
	501, "5.5.4", "Syntax: EHLO domain or address literal"};
static const struct smtp_reply r_nested_mail = {503, "5.5.1",
						"Nested MAIL command"};
static const struct smtp_reply r_need_mail = {503, "5.5.1",
					      "Need MAIL command"};
static const struct smtp_reply r_need_rcpt = {503, "5.5.1",
					      "Need RCPT command"};
static const struct smtp_reply r_after_bdat = {
	503, "5.5.1", "Command not allowed during BDAT transfer"};
static const struct smtp_reply r_binarymime_data = {
	503, "5.5.1", "BODY=BINARYMIME requires BDAT"};
static const struct smtp_reply r_size_limit = {
	552, "5.3.4", "Message size exceeds fixed limit"};
static const struct smtp_reply r_sender_long = {501, "5.1.7",
						"Sender address too long"};
static const struct smtp_reply r_rcpt_long = {501, "5.1.3",
					      "Recipient address too long"};
static const struct smtp_reply r_rcpt_utf8 = {
	553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8"};
static const struct smtp_reply r_relay_denied = {554, "5.7.1",
						 "Relay access denied"};
static const struct smtp_reply r_too_many_rcpts = {452, "4.5.3",
						   "Too many recipients"};
static const struct smtp_reply r_no_valid_rcpts = {554, "5.5.1",
						   "No valid recipients"};
static const struct smtp_reply r_resources = {452, "4.3.1",
					      "Insufficient system resources"};
static const struct smtp_reply r_storage_full = {452, "4.3.1",
						 "Insufficient system storage"};
static const struct smtp_reply r_queue_error = {451, "4.3.0",
						"Queue write error"};
static const struct smtp_reply r_bare_crlf = {
	550, "5.6.0",
	"Message contains bare CR or LF (not allowed; SMTP smuggling "
	"protection)"};
static const struct smtp_reply r_nul = {550, "5.6.0",
					"Message contains NUL bytes"};
static const struct smtp_reply r_long_line = {554, "5.6.0",
					      "Message line too long"};
static const struct smtp_reply r_vrfy_syntax = {501, "5.5.4",
						"Syntax: VRFY address"};
static const struct smtp_reply r_expn = {502, "5.5.1", "EXPN not available"};
static const struct smtp_reply r_auth = {502, "5.5.1", "AUTH not available"};
static const struct smtp_reply r_need_ehlo = {503, "5.5.1", "Send EHLO first"};
static const struct smtp_reply r_tls_active = {503, "5.5.1",
					       "TLS already active"};
static const struct smtp_reply r_no_starttls = {502, "5.5.1",
						"STARTTLS not available"};

static void session_process(struct smtpd_session *s);
static void session_free(struct smtpd_session *s);

/* ------------------------------------------------------------- plumbing */

static void
session_enter(struct smtpd_session *s, enum session_state next)
{
	log_debug("%s: state %s -> %s", s->id, state_names[s->state],
		  state_names[next]);
	s->state = next;
}

/* Re-arm the session timer: the command deadline or the close grace. */
static void
session_arm(struct smtpd_session *s, unsigned seconds)
{
	struct timeval tv = {(time_t)seconds, 0};
	evtimer_add(s->timer, &tv);
}

/* The command deadline; a timeout of 0 means none. */
static void
session_arm_command(struct smtpd_session *s)
{
	if (s->ctx.listener->command_timeout_s == 0)
		evtimer_del(s->timer);
	else
		session_arm(s, s->ctx.listener->command_timeout_s);
}

static const char *
session_name(const struct smtpd_session *s)
{
	return s->ctx.conf->server_name;
}

static void
session_log_reject(struct smtpd_session *s, int code, const char *enhanced,
		   const char *text)
{
	char arg[160];

	log_escape(arg, sizeof arg, s->arg != NULL ? s->arg : "",
		   s->arg != NULL ? s->arg_len : 0);
	log_info("%s: reject command=%s reply=\"%d %s %s\" client=%s "
		 "line=\"%s\"",
		 s->id, s->verb != NULL ? s->verb : "-", code,
		 enhanced != NULL ? enhanced : "", text, s->conn.addr, arg);
}

/* Queue one reply line: "CODE ENHANCED TEXT". */
static void session_reply(struct smtpd_session *s, int code,
			  const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
session_reply(struct smtpd_session *s, int code, const char *enhanced,
	      const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (enhanced != NULL)
		io_printf(s->io, "%d %s %s\r\n", code, enhanced, text);
	else
		io_printf(s->io, "%d %s\r\n", code, text);
	if (code >= 400)
		session_log_reject(s, code, enhanced, text);
}

static void
session_reply_r(struct smtpd_session *s, const struct smtp_reply *r)
{
	session_reply(s, r->code, r->enhanced, "%s", r->text);
}

static void
session_close(struct smtpd_session *s, const char *why)
{
	if (s->state == S_CLOSING)
		return;
	if (s->conn.end == NULL)
		s->conn.end = why;
	session_enter(s, S_CLOSING);
	io_pause_input(s->io);
	io_set_timeout(s->io, 0);
	/* Freed on IO_LOWAT once flushed, or by the timer. */
	session_arm(s, io_queued(s->io) > 0 ? SESSION_CLOSE_GRACE_S : 0);
}

/* A refusal: reply, and close after too many hard errors. */
static void
session_refuse(struct smtpd_session *s, const struct smtp_reply *r)
{
	session_reply_r(s, r);
	if (r->code < 500)
		return;
	if (++s->conn.errors >= SESSION_ERRORS_MAX) {
		session_reply(s, 421, "4.7.0",
			      "%s Too many errors, closing connection",
			      session_name(s));
		session_close(s, "errors");
	}
}

static const struct smtp_reply *
session_errno_reply(int error)
{
	return error == ENOSPC || error == EDQUOT ? &r_storage_full
						  : &r_queue_error;
}

static bool
session_tls_offered(const struct smtpd_session *s)
{
	enum conf_listener_tls t = s->ctx.listener->tls;
	return s->ctx.tls != NULL && !s->conn.tls &&
	       (t == CONF_LISTENER_TLS_OFFER || t == CONF_LISTENER_TLS_REQUIRE);
}

static const char *
session_tls_text(const struct smtpd_session *s, char *buf, size_t len)
{
	if (!s->conn.tls)
		return "none";
	snprintf(buf, len, "%s/%s", s->conn.tls_version, s->conn.tls_cipher);
	return buf;
}

/* ---------------------------------------------------------- transaction */

static void
session_txn_reset(struct smtpd_session *s)
{
	if (s->txn.msg != NULL)
		spool_msg_abort(s->txn.msg);
	envelope_clear(&s->txn.env);
	memset(&s->txn, 0, sizeof s->txn);
}

/*
 * Open the queue file and write the Received: field (RFC 5321 4.4) first.
 * NULL, or the reply refusing the data.
 */
static const struct smtp_reply *
session_msg_open(struct smtpd_session *s)
{
	struct session_txn *t = &s->txn;
	char field[SMTPD_RECEIVED_MAX];
	int n;

	t->msg = spool_msg_new(s->ctx.spool);
	if (t->msg == NULL) {
		int e = errno;
		log_warn("%s: cannot start a queue file: %s", s->id,
			 strerror(e));
		return session_errno_reply(e);
	}
	struct smtpd_received r = {
		.helo = s->conn.helo,
		.addr = s->conn.addr,
		.ipv6 = s->conn.ipv6,
		.by = session_name(s),
		.with = smtpd_received_with(s->conn.greeted == GREET_EHLO,
					    s->conn.tls, t->smtputf8),
		.id = spool_msg_id(t->msg),
		.tls_version = s->conn.tls ? s->conn.tls_version : NULL,
		.tls_cipher = s->conn.tls ? s->conn.tls_cipher : NULL,
		.rcpt = t->env.n_rcpts == 1 ? t->env.rcpts[0].address : NULL,
		.when = time(NULL),
	};
	n = smtpd_received_format(&r, field, sizeof field);
	if (n < 0) {
		/* Cannot happen with bounded inputs; refuse rather than lie. */
		log_warn("%s: Received: field does not fit", s->id);
		spool_msg_abort(t->msg);
		t->msg = NULL;
		return &r_queue_error;
	}
	if (spool_msg_write(t->msg, field, (size_t)n) < 0)
		t->write_errno = errno != 0 ? errno : EIO;
	t->stored = (uint64_t)n;
	smtp_msghdr_init(&t->hdr);
	return NULL;
}

static bool
session_binary(const struct smtpd_session *s)
{
	return s->txn.env.body == SMTP_BODY_BINARYMIME;
}

/* Decoded message bytes: check the size, watch headers, append. */
static void
session_store(struct smtpd_session *s, const uint8_t *data, size_t len)
{
	struct session_txn *t = &s->txn;
	uint64_t max = s->ctx.listener->max_message_size;

	if (len == 0 || t->msg == NULL || t->too_big)
		return;
	if (max > 0 && t->dec.size > max) {
		/* Keep reading to the end, store nothing more (case C16 B). */
		t->too_big = true;
		return;
	}
	if (t->dec.faults != 0 && !session_binary(s))
		return; /* refused at the end anyway */
	smtp_msghdr_feed(&t->hdr, data, len);
	if (t->write_errno == 0 && spool_msg_write(t->msg, data, len) < 0)
		t->write_errno = errno != 0 ? errno : EIO;
	t->stored += len;
}

/* Feed input through the decoder; returns the input bytes consumed. */
static size_t
session_decode(struct smtpd_session *s, const uint8_t *in, size_t len)
{
	uint8_t out[SESSION_DATA_CHUNK];
	size_t used = 0;

	while (used < len && !s->txn.dec.done) {
		size_t outlen = 0;
		size_t n = smtp_datadec_feed(&s->txn.dec, in + used, len - used,
					     out, sizeof out, &outlen);
		session_store(s, out, outlen);
		used += n;
		if (n == 0 && outlen == 0)
			break;
	}
	return used;
}

static void session_committed(void *arg, const char *id, int error);

/* All data read: refuse it, or build the envelope and commit. */
static void
session_message_end(struct smtpd_session *s)
{
	struct session_txn *t = &s->txn;
	struct envelope *env = &t->env;
	const struct smtp_reply *r = NULL;
	unsigned faults = session_binary(s) ? 0 : t->dec.faults;

	if (faults & (SMTP_DATA_FAULT_BARE_LF | SMTP_DATA_FAULT_BARE_CR))
		r = &r_bare_crlf;
	else if (faults & SMTP_DATA_FAULT_NUL)
		r = &r_nul;
	else if (faults & SMTP_DATA_FAULT_LONG_LINE)
		r = &r_long_line;
	else if (t->too_big)
		r = &r_size_limit;
	else if (t->write_errno != 0)
		r = session_errno_reply(t->write_errno);
	if (r == NULL) {
		env->received = time(NULL);
		env->smtputf8 = t->utf8_addr || t->hdr.header_utf8;
		env->size = t->stored;
		env->client_port = s->conn.port;
		snprintf(env->id, sizeof env->id, "%s", spool_msg_id(t->msg));
		env->listener = strdup(s->ctx.listener->name);
		env->client_addr = strdup(s->conn.addr);
		env->helo = strdup(s->conn.helo);
		if (t->hdr.message_id[0] != '\0')
			env->message_id = strdup(t->hdr.message_id);
		if (s->conn.tls) {
			env->tls_version = strdup(s->conn.tls_version);
			env->tls_cipher = strdup(s->conn.tls_cipher);
		}
		if (env->listener == NULL || env->client_addr == NULL ||
		    env->helo == NULL ||
		    (t->hdr.message_id[0] != '\0' && env->message_id == NULL) ||
		    (s->conn.tls &&
		     (env->tls_version == NULL || env->tls_cipher == NULL)))
			r = &r_resources;
	}
	if (r != NULL) {
		session_txn_reset(s);
		session_enter(s, S_COMMAND);
		session_reply_r(s, r);
		return;
	}
	struct spool_msg *msg = t->msg;
	t->msg = NULL;
	session_enter(s, S_COMMIT);
	io_pause_input(s->io);
	io_set_timeout(s->io, 0);
	evtimer_del(s->timer);
	s->commit_pending = true;
	spool_msg_commit(msg, env, session_committed, s);
}

/* The spool's answer: the message is durable (error 0) or not. */
static void
session_committed(void *arg, const char *id, int error)
{
	struct smtpd_session *s = arg;
	struct envelope *env = &s->txn.env;
	char sender[300], mid[300], tls[200];

	s->commit_pending = false;
	if (error == 0) {
		tracking_received(env);
		if (s->ctx.queued != NULL)
			s->ctx.queued(s->ctx.queued_arg, env);
		s->conn.messages++;
		log_escape(sender, sizeof sender, env->sender,
			   strlen(env->sender));
		log_escape(mid, sizeof mid,
			   env->message_id ? env->message_id : "",
			   env->message_id ? strlen(env->message_id) : 0);
		log_info("%s: received from=<%s> nrcpt=%zu size=%" PRIu64
			 " message_id=%s client=%s session=%s tls=%s%s",
			 id, sender, env->n_rcpts, env->size, mid, s->conn.addr,
			 s->id, session_tls_text(s, tls, sizeof tls),
			 s->gone ? " client_gone=yes" : "");
	} else {
		log_warn("%s: queue commit of %s failed: %s", s->id, id,
			 strerror(error));
	}
	if (s->gone) {
		/* The slot and the io are gone already (session_free). */
		envelope_clear(env);
		event_free(s->timer);
		SSL_CTX_free(s->ctx.tls);
		free(s);
		return;
	}
	s->verb = "DATA";
	s->arg = NULL;
	if (error == 0)
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", id);
	else
		session_reply_r(s, session_errno_reply(error));
	session_txn_reset(s);
	session_enter(s, S_COMMAND);
	if (s->shutdown) {
		session_reply(s, 421, "4.3.2", "%s Service shutting down",
			      session_name(s));
		session_close(s, "shutdown");
		return;
	}
	io_resume_input(s->io);
	session_arm_command(s);
	session_process(s); /* commands already waiting (pipelining) */
}

/* ------------------------------------------------------------ commands */

static void
session_ehlo_reply(struct smtpd_session *s)
{
	const struct conf_listener *l = s->ctx.listener;
	char size[40];
	const char *ext[12];
	size_t n = 0;

	snprintf(size, sizeof size, "SIZE %" PRIu64, l->max_message_size);
	ext[n++] = "PIPELINING";
	ext[n++] = size;
	ext[n++] = "8BITMIME";
	ext[n++] = "ENHANCEDSTATUSCODES";
	ext[n++] = "SMTPUTF8";
	ext[n++] = "DSN";
	ext[n++] = "CHUNKING";
	ext[n++] = "BINARYMIME"; /* RFC 3030 3: BDAT carries binary bodies */
	if (session_tls_offered(s))
		ext[n++] = "STARTTLS";
	io_printf(s->io, "250-%s\r\n", session_name(s));
	for (size_t i = 0; i < n; i++)
		io_printf(s->io, "250%c%s\r\n", i + 1 == n ? ' ' : '-', ext[i]);
}

static bool
check_helo(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)s;
	(void)a;
	if (cmd->args_len == 0 || cmd->args_len > SMTP_DOMAIN_MAX ||
	    !smtp_domain_valid(cmd->args, cmd->args_len)) {
		*err = r_helo_syntax;
		return false;
	}
	return true;
}

/* A new EHLO/HELO ends any transaction (RFC 5321 4.1.4). */
static void
session_greet(struct smtpd_session *s, enum session_greeted how,
	      const struct smtp_command *cmd)
{
	session_txn_reset(s);
	s->conn.greeted = how;
	memcpy(s->conn.helo, cmd->args, cmd->args_len);
	s->conn.helo[cmd->args_len] = '\0';
}

static void
proceed_ehlo(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)a;
	session_greet(s, GREET_EHLO, cmd);
	session_ehlo_reply(s);
}

static void
proceed_helo(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)a;
	session_greet(s, GREET_HELO, cmd);
	session_reply(s, 250, NULL, "%s", session_name(s));
}

static bool
check_mail(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	uint64_t max = s->ctx.listener->max_message_size;

	if (s->txn.active) {
		*err = r_nested_mail;
		return false;
	}
	/* CHUNKING is offered, so BODY=BINARYMIME is allowed (RFC 3030). */
	if (smtp_mail_parse(cmd->args, cmd->args_len, true, &a->mail, err) < 0)
		return false;
	if (max > 0 && a->mail.has_size && a->mail.size > max) {
		*err = r_size_limit; /* RFC 1870 6.1 */
		return false;
	}
	a->wire[0] = '\0';
	if (!a->mail.from.is_null &&
	    smtp_address_format(&a->mail.from, a->wire, sizeof a->wire) < 0) {
		*err = r_sender_long;
		return false;
	}
	return true;
}

static void
proceed_mail(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	struct session_txn *t = &s->txn;

	(void)cmd;
	session_txn_reset(s);
	t->env.sender = strdup(a->wire);
	t->env.envid = a->mail.envid[0] != '\0' ? strdup(a->mail.envid) : NULL;
	if (t->env.sender == NULL ||
	    (a->mail.envid[0] != '\0' && t->env.envid == NULL)) {
		session_txn_reset(s);
		session_reply_r(s, &r_resources);
		return;
	}
	t->active = true;
	t->smtputf8 = a->mail.smtputf8;
	t->utf8_addr = a->mail.from.utf8;
	t->env.body = a->mail.body;
	t->env.ret = a->mail.ret;
	session_reply(s, 250, "2.1.0", "Ok");
}

/*
 * The relay decision: <postmaster> is always ours (RFC 5321 4.5.1); an
 * accepted domain is taken from anyone (case-insensitive, C14); anything
 * else, address literals included, only from a relay client.
 */
static bool
session_rcpt_allowed(const struct smtpd_session *s,
		     const struct smtp_address *to)
{
	if (to->is_postmaster)
		return true;
	if (conf_domain_accepted(s->ctx.conf, to->domain))
		return true;
	return s->conn.relay_client;
}

static bool
check_rcpt(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	if (!s->txn.active) {
		*err = r_need_mail;
		return false;
	}
	if (s->txn.bdat) {
		*err = r_after_bdat;
		return false;
	}
	if (smtp_rcpt_parse(cmd->args, cmd->args_len, &a->rcpt, err) < 0)
		return false;
	/* RFC 6531 3.4: a non-ASCII address only in an SMTPUTF8 transaction. */
	if (a->rcpt.to.utf8 && !s->txn.smtputf8) {
		*err = r_rcpt_utf8;
		return false;
	}
	if (!session_rcpt_allowed(s, &a->rcpt.to)) {
		*err = r_relay_denied;
		return false;
	}
	/* RFC 5321 4.5.3.1.10: the excess gets 452 (case C17). */
	if (s->txn.env.n_rcpts >= s->ctx.listener->max_recipients) {
		*err = r_too_many_rcpts;
		return false;
	}
	if (a->rcpt.to.is_postmaster) {
		snprintf(a->wire, sizeof a->wire, "postmaster");
	} else if (smtp_address_format(&a->rcpt.to, a->wire, sizeof a->wire) <
		   0) {
		*err = r_rcpt_long;
		return false;
	}
	return true;
}

/* Is this recipient (wire form) already in the transaction?  The local
 * part compares exactly, the domain without case (RFC 5321 2.4). */
static bool
session_rcpt_duplicate(const struct smtpd_session *s, const char *wire)
{
	const char *at = strrchr(wire, '@');
	size_t local_len = at != NULL ? (size_t)(at - wire) : strlen(wire);

	for (size_t i = 0; i < s->txn.env.n_rcpts; i++) {
		const char *other = s->txn.env.rcpts[i].address;
		const char *oat = strrchr(other, '@');
		size_t olen = oat != NULL ? (size_t)(oat - other) : strlen(other);
		if (olen != local_len || memcmp(other, wire, olen) != 0 ||
		    (at == NULL) != (oat == NULL))
			continue;
		if (at == NULL || strcasecmp(at, oat) == 0)
			return true;
	}
	return false;
}

static void
proceed_rcpt(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	/* A recipient given twice gets one copy, not two. */
	if (session_rcpt_duplicate(s, a->wire)) {
		session_reply(s, 250, "2.1.5", "Ok (duplicate recipient)");
		return;
	}
	if (envelope_add_rcpt(&s->txn.env, a->wire, a->rcpt.notify,
			      a->rcpt.orcpt[0] != '\0' ? a->rcpt.orcpt : NULL) <
	    0) {
		session_reply_r(s, &r_resources);
		return;
	}
	if (a->rcpt.to.utf8)
		s->txn.utf8_addr = true;
	session_reply(s, 250, "2.1.5", "Ok");
}

static bool
check_data(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)cmd;
	(void)a;
	if (!s->txn.active)
		*err = r_need_mail;
	else if (s->txn.bdat)
		*err = r_after_bdat;
	else if (session_binary(s))
		*err = r_binarymime_data; /* RFC 3030 3 */
	else
		return true;
	return false;
}

static void
proceed_data(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	const struct smtp_reply *r;

	(void)cmd;
	(void)a;
	if (s->txn.env.n_rcpts == 0) {
		/*
		 * The transaction ends here, so that pipelined message lines
		 * can never form one of their own: a following RCPT gets 503
		 * (RFC 2920 3.1, case C05).
		 */
		session_txn_reset(s);
		session_refuse(s, &r_no_valid_rcpts);
		return;
	}
	r = session_msg_open(s);
	if (r != NULL) {
		session_reply_r(s, r);
		return;
	}
	smtp_datadec_init(&s->txn.dec, false);
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	session_enter(s, S_DATA);
	evtimer_del(s->timer);
	io_set_timeout(s->io, (int)s->ctx.listener->data_timeout_s * 1000);
}

/* "BDAT size [LAST]" (RFC 3030 2): parsed before anything else, so that
 * a refused chunk can still be read and thrown away. */
static bool
session_bdat_parse(const struct smtp_command *cmd, struct session_args *a)
{
	size_t i = 0;
	uint64_t v = 0;

	while (i < cmd->args_len && cmd->args[i] >= '0' &&
	       cmd->args[i] <= '9') {
		unsigned d = (unsigned)(cmd->args[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		i++;
	}
	if (i == 0 || i > 20)
		return false;
	a->bdat_size = v;
	a->bdat_last = false;
	if (i == cmd->args_len)
		return true;
	if (cmd->args[i] != ' ')
		return false;
	while (i < cmd->args_len && cmd->args[i] == ' ')
		i++;
	if (cmd->args_len - i == 4 &&
	    strncasecmp(cmd->args + i, "LAST", 4) == 0) {
		a->bdat_last = true;
		return true;
	}
	return false;
}

static bool
check_bdat(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)cmd;
	(void)a;
	if (!s->txn.active)
		*err = r_need_mail;
	else if (s->txn.env.n_rcpts == 0)
		*err = r_need_rcpt;
	else
		return true;
	return false;
}

static void
session_chunk_start(struct smtpd_session *s, const struct session_args *a,
		    const struct smtp_reply *refusal)
{
	s->chunk.size = a->bdat_size;
	s->chunk.left = a->bdat_size;
	s->chunk.last = a->bdat_last;
	s->chunk.discard = refusal != NULL;
	if (refusal != NULL)
		s->chunk.reply = *refusal;
	session_enter(s, S_BDAT);
	evtimer_del(s->timer);
	io_set_timeout(s->io, (int)s->ctx.listener->data_timeout_s * 1000);
}

static void
proceed_bdat(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	if (!s->txn.bdat) {
		const struct smtp_reply *r = session_msg_open(s);
		if (r != NULL) {
			session_chunk_start(s, a, r);
			return;
		}
		smtp_datadec_init(&s->txn.dec, true);
		s->txn.bdat = true;
	}
	session_chunk_start(s, a, NULL);
}

static void
proceed_rset(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	(void)a;
	session_txn_reset(s); /* the EHLO stays (case C06) */
	session_reply(s, 250, "2.0.0", "Ok");
}

static void
proceed_noop(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	(void)a;
	session_reply(s, 250, "2.0.0", "Ok");
}

static void
proceed_quit(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	(void)a;
	session_txn_reset(s);
	session_reply(s, 221, "2.0.0", "Bye");
	session_close(s, "quit");
}

static bool
check_vrfy(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)s;
	(void)a;
	if (cmd->args_len == 0) {
		*err = r_vrfy_syntax;
		return false;
	}
	return true;
}

static void
proceed_vrfy(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	(void)a;
	/* RFC 5321 3.5.3: no verification, no refusal either. */
	session_reply(s, 252, "2.5.0",
		      "Cannot VRFY user, but will accept message and attempt "
		      "delivery");
}

static bool
check_refused(const struct smtp_reply *r, struct smtp_reply *err)
{
	*err = *r;
	return false;
}

static bool
check_expn(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)s;
	(void)cmd;
	(void)a;
	return check_refused(&r_expn, err);
}

static bool
check_auth(struct smtpd_session *s, const struct smtp_command *cmd,
	   struct session_args *a, struct smtp_reply *err)
{
	(void)s;
	(void)cmd;
	(void)a;
	return check_refused(&r_auth, err);
}

static void
proceed_help(struct smtpd_session *s, const struct smtp_command *cmd,
	     const struct session_args *a)
{
	(void)cmd;
	(void)a;
	session_reply(s, 214, "2.0.0",
		      "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
		      "VRFY HELP%s; see RFC 5321",
		      session_tls_offered(s) ? " STARTTLS" : "");
}

static bool
check_starttls(struct smtpd_session *s, const struct smtp_command *cmd,
	       struct session_args *a, struct smtp_reply *err)
{
	(void)cmd;
	(void)a;
	if (s->conn.tls)
		*err = r_tls_active; /* case C06 */
	else if (!session_tls_offered(s))
		*err = r_no_starttls;
	else if (s->conn.greeted != GREET_EHLO)
		*err = r_need_ehlo;
	else
		return true;
	return false;
}

static void
proceed_starttls(struct smtpd_session *s, const struct smtp_command *cmd,
		 const struct session_args *a)
{
	(void)cmd;
	(void)a;
	session_txn_reset(s);
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* Right after queueing the 220: what follows is discarded (C01). */
	if (io_start_tls_server(s->io, s->ctx.tls) < 0) {
		log_warn("%s: cannot start TLS client=%s: %s", s->id,
			 s->conn.addr, io_error(s->io));
		session_close(s, "tls error");
		return;
	}
	if (io_discarded(s->io) > 0)
		log_info("%s: discarded=%zu bytes of plaintext after STARTTLS "
			 "client=%s",
			 s->id, io_discarded(s->io), s->conn.addr);
	memset(&s->lr, 0, sizeof s->lr);
	session_enter(s, S_STARTTLS);
	session_arm_command(s); /* the handshake has the command timeout */
}

static const struct session_cmd session_cmds[] = {
	{SMTP_VERB_EHLO, "EHLO", 0, check_helo, proceed_ehlo},
	{SMTP_VERB_HELO, "HELO", 0, check_helo, proceed_helo},
	{SMTP_VERB_MAIL, "MAIL", CMD_HELO | CMD_TLS, check_mail, proceed_mail},
	{SMTP_VERB_RCPT, "RCPT", CMD_HELO | CMD_TLS, check_rcpt, proceed_rcpt},
	{SMTP_VERB_DATA, "DATA", CMD_HELO | CMD_TLS | CMD_NOARGS, check_data,
	 proceed_data},
	{SMTP_VERB_BDAT, "BDAT", CMD_HELO | CMD_TLS, check_bdat, proceed_bdat},
	{SMTP_VERB_RSET, "RSET", CMD_NOARGS, NULL, proceed_rset},
	{SMTP_VERB_NOOP, "NOOP", 0, NULL, proceed_noop},
	{SMTP_VERB_QUIT, "QUIT", CMD_NOARGS, NULL, proceed_quit},
	{SMTP_VERB_VRFY, "VRFY", 0, check_vrfy, proceed_vrfy},
	{SMTP_VERB_EXPN, "EXPN", 0, check_expn, NULL},
	{SMTP_VERB_HELP, "HELP", 0, NULL, proceed_help},
	{SMTP_VERB_STARTTLS, "STARTTLS", CMD_NOARGS, check_starttls,
	 proceed_starttls},
	{SMTP_VERB_AUTH, "AUTH", 0, check_auth, NULL},
};

static const struct session_cmd *
session_cmd_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof session_cmds / sizeof session_cmds[0];
	     i++)
		if (session_cmds[i].verb == verb)
			return &session_cmds[i];
	return NULL;
}

/* The rules every command of a kind follows, then its own check. */
static bool
session_check(struct smtpd_session *s, const struct session_cmd *c,
	      const struct smtp_command *cmd, struct session_args *a,
	      struct smtp_reply *err)
{
	if ((c->flags & CMD_NOARGS) && cmd->args_len > 0) {
		*err = r_no_args;
		return false;
	}
	if ((c->flags & CMD_HELO) && s->conn.greeted == GREET_NONE) {
		*err = r_need_helo;
		return false;
	}
	if ((c->flags & CMD_TLS) && !s->conn.tls &&
	    s->ctx.listener->tls == CONF_LISTENER_TLS_REQUIRE) {
		*err = r_need_tls;
		return false;
	}
	return c->check == NULL || c->check(s, cmd, a, err);
}

/* Web requests sent to the SMTP port (cross-protocol attacks). */
static bool
session_foreign_protocol(const char *line, size_t len)
{
	static const char *const verbs[] = {"GET ", "POST ", "PUT ", "HEAD ",
					    "CONNECT "};
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		size_t n = strlen(verbs[i]);
		if (len >= n && memcmp(line, verbs[i], n) == 0)
			return true;
	}
	return false;
}

static void
session_dispatch(struct smtpd_session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	struct session_args a;
	struct smtp_reply err;
	const struct session_cmd *c = NULL;

	s->conn.commands++;
	s->arg = line;
	s->arg_len = len;
	if (smtp_command_parse(line, len, &cmd) == 0)
		c = session_cmd_find(cmd.verb);
	s->verb = c != NULL ? c->name : "unknown";
	if (c == NULL) {
		if (session_foreign_protocol(line, len)) {
			session_reply(
				s, 421, "4.7.0",
				"%s Not an SMTP client, closing connection",
				session_name(s));
			session_close(s, "foreign protocol");
			return;
		}
		session_refuse(s, &r_unknown);
		return;
	}
	if (c->verb == SMTP_VERB_BDAT && !session_bdat_parse(&cmd, &a)) {
		/* Without a size the chunk that follows cannot be skipped:
		 * going on would run message data as commands (smuggling).
		 * The only safe answer is to end the session. */
		session_reply(s, 421, "4.5.0",
			      "%s Syntax: BDAT size [LAST], closing connection",
			      session_name(s));
		session_close(s, "bdat syntax");
		return;
	}
	if (!session_check(s, c, &cmd, &a, &err)) {
		if (c->verb == SMTP_VERB_BDAT)
			session_chunk_start(s, &a,
					    &err); /* read, then refuse */
		else
			session_refuse(s, &err);
		return;
	}
	c->proceed(s, &cmd, &a);
}

/* ----------------------------------------------------------- the steps */

/* One command line from the input.  false: nothing more to do now. */
static bool
session_step_command(struct smtpd_session *s)
{
	char line[SMTP_LINE_MAX + 1];
	size_t len, consumed = 0, linelen = 0;
	const uint8_t *data;

	if (io_queued(s->io) > SESSION_OUTPUT_MAX) {
		/* The client does not read its replies: wait for IO_LOWAT. */
		log_debug("%s: %zu bytes of replies waiting; pausing input",
			  s->id, io_queued(s->io));
		s->output_blocked = true;
		io_pause_input(s->io);
		return false;
	}
	data = io_data(s->io, &len);
	if (len == 0)
		return false;
	switch (smtp_line_next(&s->lr, data, len, &consumed, &linelen)) {
	case SMTP_LINE_NEED_MORE:
		/* The end of a discarded overlong line may be followed by
		 * complete commands: look again if anything was consumed. */
		io_drop(s->io, consumed);
		return consumed > 0;
	case SMTP_LINE_TOO_LONG:
		io_drop(s->io, consumed);
		s->verb = "unknown";
		s->arg = NULL;
		session_refuse(s, &r_line_too_long);
		return true;
	case SMTP_LINE_OK:
		break;
	}
	if (linelen > SMTP_LINE_MAX)
		panic("smtp_line_next: line of %zu bytes", linelen);
	memcpy(line, data, linelen);
	line[linelen] = '\0';
	io_drop(s->io, consumed);
	session_arm_command(s); /* the next command's deadline */
	session_dispatch(s, line, linelen);
	s->arg = NULL;
	return true;
}

static bool
session_step_data(struct smtpd_session *s)
{
	size_t len;
	const uint8_t *data = io_data(s->io, &len);

	if (len == 0)
		return false;
	size_t used = session_decode(s, data, len);
	io_drop(s->io, used);
	if (!s->txn.dec.done)
		return used > 0;
	io_set_timeout(s->io, 0);
	s->verb = "DATA";
	s->arg = NULL;
	session_message_end(s);
	if (s->state == S_COMMAND)
		session_arm_command(s);
	return true;
}

static void
session_chunk_end(struct smtpd_session *s)
{
	struct session_chunk *c = &s->chunk;

	io_set_timeout(s->io, 0);
	session_enter(s, S_COMMAND);
	session_arm_command(s);
	s->verb = "BDAT";
	s->arg = NULL;
	if (c->discard) {
		session_refuse(s, &c->reply);
		return;
	}
	if (s->txn.too_big) {
		/* RFC 3030 4.2: the transaction failed; later chunks get 503.
		 */
		session_txn_reset(s);
		session_reply_r(s, &r_size_limit);
		return;
	}
	if (!c->last) {
		session_reply(s, 250, "2.0.0", "%" PRIu64 " octets received",
			      c->size);
		return;
	}
	smtp_datadec_finish(&s->txn.dec);
	session_message_end(s);
}

static bool
session_step_bdat(struct smtpd_session *s)
{
	struct session_chunk *c = &s->chunk;

	if (c->left > 0) {
		size_t len;
		const uint8_t *data = io_data(s->io, &len);
		if (len == 0)
			return false;
		size_t n = len < c->left ? len : (size_t)c->left;
		if (!c->discard)
			session_decode(s, data, n);
		io_drop(s->io, n);
		c->left -= n;
		if (c->left > 0)
			return true;
	}
	session_chunk_end(s);
	return true;
}

/* Run what the buffered input allows, in order. */
static void
session_process(struct smtpd_session *s)
{
	bool more = true;

	if (s->in_process)
		return;
	s->in_process = true;
	while (more) {
		switch (s->state) {
		case S_COMMAND:
			more = session_step_command(s);
			break;
		case S_DATA:
			more = session_step_data(s);
			break;
		case S_BDAT:
			more = session_step_bdat(s);
			break;
		default:
			more = false;
			break;
		}
	}
	s->in_process = false;
}

/* ------------------------------------------------------------- events */

static void
session_greeting(struct smtpd_session *s)
{
	session_reply(s, 220, NULL, "%s ESMTP bridgehead", session_name(s));
}

static void
session_tls_ready(struct smtpd_session *s)
{
	const char *v = io_tls_version(s->io);
	const char *c = io_tls_cipher(s->io);
	bool implicit = s->state == S_HANDSHAKE;

	s->conn.tls = true;
	snprintf(s->conn.tls_version, sizeof s->conn.tls_version, "%s",
		 v != NULL ? v : "unknown");
	snprintf(s->conn.tls_cipher, sizeof s->conn.tls_cipher, "%s",
		 c != NULL ? c : "unknown");
	log_info("%s: tls version=%s cipher=%s client=%s", s->id,
		 s->conn.tls_version, s->conn.tls_cipher, s->conn.addr);
	/* RFC 3207 4.2: forget everything learned before the handshake. */
	session_txn_reset(s);
	s->conn.greeted = GREET_NONE;
	s->conn.helo[0] = '\0';
	memset(&s->lr, 0, sizeof s->lr);
	session_enter(s, S_COMMAND);
	session_arm_command(s);
	if (implicit)
		session_greeting(s);
	session_process(s);
}

static void
session_timeout(struct smtpd_session *s)
{
	log_info("%s: timeout state=%s client=%s", s->id, state_names[s->state],
		 s->conn.addr);
	s->verb = "-";
	s->arg = NULL;
	session_txn_reset(s);
	session_reply(s, 421, "4.4.2", "%s Timeout, closing connection",
		      session_name(s));
	session_close(s, "timeout");
}

static void
session_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd;
	(void)what;
	switch (s->state) {
	case S_CLOSING:
		session_free(s);
		return;
	case S_HANDSHAKE:
	case S_STARTTLS:
		log_info("%s: TLS handshake timeout client=%s", s->id,
			 s->conn.addr);
		s->conn.end = "timeout";
		session_free(s);
		return;
	case S_COMMAND:
		session_timeout(s);
		return;
	default:
		return; /* not armed in the other states */
	}
}

static void
session_io(struct io *io, enum io_event ev, void *arg)
{
	struct smtpd_session *s = arg;

	(void)io;
	switch (ev) {
	case IO_TLSREADY:
		/* Not after a shutdown decided to close mid-handshake. */
		if (s->state == S_HANDSHAKE || s->state == S_STARTTLS)
			session_tls_ready(s);
		break;
	case IO_DATAIN:
		session_process(s);
		break;
	case IO_LOWAT:
		if (s->state == S_CLOSING) {
			session_free(s);
		} else if (s->output_blocked) {
			s->output_blocked = false;
			io_resume_input(s->io);
			session_process(s);
		}
		break;
	case IO_TIMEOUT:
		/* The data timeout (DATA, BDAT); closing has its own timer. */
		if (s->state == S_DATA || s->state == S_BDAT)
			session_timeout(s);
		break;
	case IO_DISCONNECTED:
		s->conn.end = s->conn.end != NULL ? s->conn.end : "peer closed";
		session_free(s);
		break;
	case IO_ERROR:
		if (s->state == S_HANDSHAKE || s->state == S_STARTTLS)
			log_info("%s: TLS handshake failed client=%s: %s",
				 s->id, s->conn.addr, io_error(s->io));
		else
			log_info("%s: connection error state=%s client=%s: %s",
				 s->id, state_names[s->state], s->conn.addr,
				 io_error(s->io));
		s->conn.end = s->conn.end != NULL ? s->conn.end : "error";
		session_free(s);
		break;
	case IO_CONNECTED:
		break;
	}
}

/* ------------------------------------------------------------ lifetime */

static void
session_free(struct smtpd_session *s)
{
	if (s->io != NULL) {
		io_free(s->io);
		s->io = NULL;
	}
	evtimer_del(s->timer);
	if (s->txn.msg != NULL) {
		spool_msg_abort(s->txn.msg);
		s->txn.msg = NULL;
	}
	log_info("%s: disconnect client=%s:%u end=%s commands=%u messages=%u "
		 "errors=%u seconds=%lld%s",
		 s->id, s->conn.addr, s->conn.port,
		 s->conn.end != NULL ? s->conn.end : "closed", s->conn.commands,
		 s->conn.messages, s->conn.errors,
		 (long long)(time(NULL) - s->conn.started),
		 s->commit_pending ? " commit=pending" : "");
	if (s->ctx.slot != NULL) {
		smtpd_slot_closed(s->ctx.slot);
		s->ctx.slot = NULL;
	}
	if (s->commit_pending) {
		/* session_committed() frees the rest. */
		s->gone = true;
		return;
	}
	envelope_clear(&s->txn.env);
	event_free(s->timer);
	SSL_CTX_free(s->ctx.tls);
	free(s);
}

static void
session_make_id(char *id, size_t len)
{
	static uint32_t next;
	static bool seeded;

	if (!seeded) {
		if (getrandom(&next, sizeof next, GRND_NONBLOCK) !=
		    (ssize_t)sizeof next)
			next = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
		seeded = true;
	}
	snprintf(id, len, "%08" PRIx32, next++);
}

static void
session_set_peer(struct smtpd_session *s, const struct sockaddr *sa,
		 socklen_t salen)
{
	if (salen > sizeof s->conn.sa)
		salen = sizeof s->conn.sa;
	memcpy(&s->conn.sa, sa, salen);
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, s->conn.addr,
			  sizeof s->conn.addr);
		s->conn.port = ntohs(sin6->sin6_port);
		s->conn.ipv6 = true;
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, s->conn.addr,
			  sizeof s->conn.addr);
		s->conn.port = ntohs(sin->sin_port);
	} else {
		snprintf(s->conn.addr, sizeof s->conn.addr, "unknown");
	}
}

/* tls = implicit: the handshake comes before the greeting. */
static void
session_start_implicit(struct smtpd_session *s)
{
	if (s->ctx.tls == NULL) {
		log_warn(
			"%s: listener %s has tls = implicit but no certificate "
			"is installed; closing",
			s->id, s->ctx.listener->name);
		session_close(s, "no certificate");
		return;
	}
	if (io_start_tls_server(s->io, s->ctx.tls) < 0) {
		log_warn("%s: cannot start TLS: %s", s->id, io_error(s->io));
		session_close(s, "tls error");
		return;
	}
	session_enter(s, S_HANDSHAKE);
	session_arm_command(s);
}

struct smtpd_session *
smtpd_session_new(const struct smtpd_session_ctx *ctx, int fd,
		  const struct sockaddr *sa, socklen_t salen,
		  const char *refuse)
{
	struct smtpd_session *s = calloc(1, sizeof *s);

	if (s == NULL) {
		close(fd);
		return NULL;
	}
	s->ctx = *ctx;
	s->state = S_INIT;
	s->conn.started = time(NULL);
	session_make_id(s->id, sizeof s->id);
	session_set_peer(s, sa, salen);
	s->conn.relay_client = conf_relay_client(ctx->conf, sa);
	s->timer = evtimer_new(ctx->base, session_on_timer, s);
	s->io = s->timer != NULL ? io_new(ctx->base, fd, session_io, s) : NULL;
	if (s->io == NULL) {
		close(fd);
		if (s->timer != NULL)
			event_free(s->timer);
		free(s);
		return NULL;
	}
	if (s->ctx.tls != NULL)
		SSL_CTX_up_ref(s->ctx.tls); /* kept across reloads */
	log_info("%s: connect client=%s:%u listener=%s%s", s->id, s->conn.addr,
		 s->conn.port, ctx->listener->name,
		 s->conn.relay_client ? " relay_client=yes" : "");
	s->verb = "connect";
	if (refuse != NULL) {
		session_reply(s, 421, "4.7.0", "%s %s", session_name(s),
			      refuse);
		session_close(s, "refused");
		return s;
	}
	if (ctx->listener->tls == CONF_LISTENER_TLS_IMPLICIT) {
		session_start_implicit(s);
		return s;
	}
	session_greeting(s);
	session_enter(s, S_COMMAND);
	session_arm_command(s);
	return s;
}

void
smtpd_session_shutdown(struct smtpd_session *s)
{
	s->shutdown = true;
	switch (s->state) {
	case S_COMMIT: /* the commit callback answers, then closes */
	case S_CLOSING:
		return;
	case S_INIT:
	case S_HANDSHAKE:
	case S_STARTTLS:
		s->conn.end = "shutdown";
		io_pause_input(s->io);
		session_enter(s, S_CLOSING);
		session_arm(s, 0); /* no reply possible mid-handshake */
		return;
	case S_COMMAND:
	case S_DATA:
	case S_BDAT:
		s->verb = "-";
		s->arg = NULL;
		session_txn_reset(s);
		session_reply(s, 421, "4.3.2", "%s Service shutting down",
			      session_name(s));
		session_close(s, "shutdown");
		return;
	}
}

void
smtpd_session_kill(struct smtpd_session *s)
{
	if (s->conn.end == NULL)
		s->conn.end = "killed";
	session_free(s);
}
