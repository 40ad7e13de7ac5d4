/*
 * cert: the `bridgehead cert` command group.
 *
 *   cli_cert()  dispatches the subcommands:
 *     selfsign [--fqdn NAME] [--days N]  make an EC P-256 key and a
 *         self-signed certificate for NAME (default: [server] name), valid
 *         N days (default 365, at most 3650), and install it in
 *         state_dir/pki as the current certificate; prints what it
 *         installed.
 *     show [--json]  describe the installed certificate: subject, names,
 *         issuer, serial, validity, key, SHA-256 fingerprint, chain, and
 *         a pending certificate request if there is one.
 *   `--help` on `cert` and on each subcommand; `-c FILE` before the
 *   command words, after `cert`, or among a subcommand's options.
 *
 * Exit status (DESIGN.md): 0 ok; 1 operational failure (nothing
 * installed, the store refused, a file unreadable); 2 usage or
 * configuration error.  Every error is one sentence on stderr.
 *
 * selfsign validates everything (name, days, configuration) and makes
 * the key and certificate before it touches the store; the store switches
 * to the new version atomically or not at all.  A running server reads
 * the certificate when it starts, so it must be restarted to offer the
 * new one.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cert/info.h"
#include "cert/selfsign.h"
#include "cert/store.h"
#include "net/tls.h"

enum { OPT_FQDN = 256, OPT_DAYS, OPT_JSON };

struct cert_opts {
	const char *config;
	const char *fqdn;
	const char *days;
	bool json;
};

static void
usage_cert(FILE *out)
{
	fprintf(out,
		"usage: bridgehead cert COMMAND [-c FILE] [OPTIONS]\n"
		"\n"
		"commands:\n"
		"  selfsign [--fqdn NAME] [--days N]\n"
		"             make a key and a self-signed certificate and "
		"install it\n"
		"  show [--json]\n"
		"             describe the installed certificate\n"
		"\n"
		"  -c, --config FILE   the configuration file (default "
		"$BRIDGEHEAD_CONFIG,\n"
		"                      else /etc/bridgehead/bridgehead.conf)\n"
		"\n"
		"'bridgehead cert COMMAND --help' tells more.\n");
}

static void
usage_selfsign(FILE *out)
{
	fprintf(out,
		"usage: bridgehead cert selfsign [--fqdn NAME] [--days N] "
		"[-c FILE]\n"
		"\n"
		"Makes a new EC P-256 private key and a self-signed "
		"certificate for NAME\n"
		"(subject CN=NAME, subjectAltName DNS:NAME, usable as TLS "
		"server and\n"
		"client certificate) and installs them in STATE_DIR/pki as "
		"the current\n"
		"certificate; the one installed before stays as 'previous'.\n"
		"\n"
		"  --fqdn NAME   the server's DNS name (default: [server] name)\n"
		"  --days N      validity in days, 1 to %d (default %d)\n"
		"  -c FILE       the configuration file\n"
		"\n"
		"The server reads its certificate when it starts: restart a "
		"running server\n"
		"to offer the new one.  Exit status: 0 installed, 1 the store "
		"refused,\n"
		"2 usage or configuration error.\n",
		CERT_DAYS_MAX, CERT_DAYS_DEFAULT);
}

static void
usage_show(FILE *out)
{
	fprintf(out,
		"usage: bridgehead cert show [--json] [-c FILE]\n"
		"\n"
		"Describes the installed certificate: subject, names, issuer, "
		"serial,\n"
		"validity and days left, key type, SHA-256 fingerprint, the "
		"chain after\n"
		"it, and a pending certificate request if there is one.\n"
		"\n"
		"  --json    the same as one JSON object\n"
		"  -c FILE   the configuration file\n"
		"\n"
		"Exit status: 0 shown, 1 no certificate installed (STARTTLS is "
		"not\n"
		"offered) or the store cannot be read, 2 usage or "
		"configuration error.\n");
}

/*
 * Options of one command level: only those in `allowed` are accepted.
 * Returns -1 to go on, else the exit status (help printed, or a usage
 * error).  `+`: stop at the first word that is not an option (the
 * subcommand), so that `cert -c F show --json` parses in two steps.
 */
static int
parse_options(int argc, char **argv, const char *who,
	      const struct option *allowed, void (*usage)(FILE *),
	      bool subcommand_follows, struct cert_opts *o)
{
	int ch;

	optind = 0;	/* glibc: start afresh on this argv */
	opterr = 0;	/* our own messages, naming the command */
	while ((ch = getopt_long(argc, argv, "+:c:h", allowed, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case OPT_FQDN:
			o->fqdn = optarg;
			break;
		case OPT_DAYS:
			o->days = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "bridgehead %s: option '%s' needs a "
					"value\n", who, argv[optind - 1]);
			usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "bridgehead %s: unknown option '%s'\n",
				who, argv[optind - 1]);
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc && !subcommand_follows) {
		fprintf(stderr, "bridgehead %s: unexpected argument '%s'\n",
			who, argv[optind]);
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}

/* --days: a whole number from 1 to CERT_DAYS_MAX, nothing else. */
static int
parse_days(const char *text, unsigned *days)
{
	if (text == NULL) {
		*days = CERT_DAYS_DEFAULT;
		return 0;
	}
	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long v = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > CERT_DAYS_MAX)
		return -1;
	*days = (unsigned)v;
	return 0;
}

/* Print one string as a JSON string (RFC 8259 escapes). */
static void
json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static int
finish_output(const char *who)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "bridgehead %s: cannot write the output: %s\n",
			who, strerror(errno));
		return CLI_FAILED;
	}
	return CLI_OK;
}

/* -- selfsign ---------------------------------------------------------- */

static const struct option selfsign_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "fqdn", required_argument, NULL, OPT_FQDN },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* What selfsign installed, from the store itself (what the server reads). */
static int
print_installed(const char *state_dir, const char *fqdn)
{
	char cert[PATH_MAX], key[PATH_MAX], err[1024];
	struct cert_info info;

	if (cert_store_find(state_dir, cert, sizeof cert, key, sizeof key,
			    err, sizeof err) == -1 ||
	    cert_info_load(cert, time(NULL), &info, err, sizeof err) == -1) {
		fprintf(stderr, "bridgehead cert selfsign: the certificate "
				"was installed in %s/pki but cannot be read "
				"back: %s\n",
			state_dir, err[0] != '\0' ? err : strerror(errno));
		return CLI_FAILED;
	}
	printf("installed a self-signed certificate for %s\n"
	       "  subject      %s\n"
	       "  serial       %s\n"
	       "  fingerprint  SHA-256 %s\n"
	       "  not after    %s (%ld days)\n"
	       "  key          %s\n"
	       "  certificate  %s\n"
	       "  private key  %s\n"
	       "The server reads its certificate when it starts: restart a "
	       "running server to offer this one.\n",
	       fqdn, info.subject, info.serial, info.fingerprint_sha256,
	       info.not_after_text, info.days_left, info.key, cert, key);
	return finish_output("cert selfsign");
}

static int
cert_selfsign_cmd(int argc, char **argv, struct cert_opts *o)
{
	char err[1024], why[256];
	unsigned days;

	int rc = parse_options(argc, argv, "cert selfsign", selfsign_options,
			       usage_selfsign, false, o);
	if (rc != -1)
		return rc;
	if (parse_days(o->days, &days) == -1) {
		fprintf(stderr, "bridgehead cert selfsign: --days '%s' must be "
				"a whole number from 1 to %d\n",
			o->days, CERT_DAYS_MAX);
		return CLI_USAGE;
	}
	struct conf *conf = cli_load_conf(o->config);
	if (conf == NULL)
		return CLI_USAGE;
	const char *fqdn = o->fqdn != NULL ? o->fqdn : conf->server_name;
	if (cert_fqdn_check(fqdn, why, sizeof why) == -1) {
		fprintf(stderr, "bridgehead cert selfsign: %s '%s' is not a "
				"valid DNS name: %s\n",
			o->fqdn != NULL ? "--fqdn" : "[server] name",
			fqdn != NULL ? fqdn : "", why);
		conf_free(conf);
		return CLI_USAGE;
	}
	if (conf->server_name != NULL &&
	    strcasecmp(fqdn, conf->server_name) != 0)
		fprintf(stderr, "bridgehead cert selfsign: note: [server] name "
				"is %s; peers that check names expect the "
				"certificate to name it\n",
			conf->server_name);

	rc = CLI_FAILED;
	EVP_PKEY *key = cert_key_new(err, sizeof err);
	X509 *x = key != NULL ? cert_selfsign(key, fqdn, days, err, sizeof err) :
				NULL;
	if (x == NULL)
		fprintf(stderr, "bridgehead cert selfsign: %s\n", err);
	else if (cert_store_install(conf->state_dir, x, NULL, key, err,
				    sizeof err) == -1)
		fprintf(stderr, "bridgehead cert selfsign: nothing was "
				"installed: %s\n", err);
	else
		rc = print_installed(conf->state_dir, fqdn);
	X509_free(x);
	EVP_PKEY_free(key);
	conf_free(conf);
	return rc;
}

/* -- show -------------------------------------------------------------- */

static const struct option show_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A pending request: state_dir/pki/pending/request.csr, if it exists. */
struct pending {
	bool present;
	char path[PATH_MAX];
	char subject[CERT_INFO_NAME_MAX];
	char error[512];	/* set when it exists but cannot be read */
};

static void
find_pending(const char *state_dir, struct pending *p)
{
	struct stat st;

	memset(p, 0, sizeof *p);
	int n = snprintf(p->path, sizeof p->path, "%s/pki/pending/request.csr",
			 state_dir);
	if (n < 0 || (size_t)n >= sizeof p->path ||
	    (stat(p->path, &st) == -1 && errno == ENOENT))
		return;
	p->present = true;
	if (cert_info_csr_subject(p->path, p->subject, sizeof p->subject,
				  p->error, sizeof p->error) == 0)
		p->error[0] = '\0';
}

static void
show_text(const char *path, const struct cert_info *i,
	  const struct pending *p)
{
	printf("certificate  %s\n", path);
	printf("subject      %s\n", i->subject);
	printf("names        ");
	for (size_t n = 0; n < i->n_sans; n++)
		printf("%s%s", n > 0 ? ", " : "", i->sans[n]);
	if (i->n_sans == 0)
		printf("(none: peers that check names will refuse it)");
	if (i->sans_omitted > 0)
		printf(" and %zu more", i->sans_omitted);
	printf("\nissuer       %s%s\n", i->issuer,
	       i->self_signed ? " (self-signed)" : "");
	printf("serial       %s\n", i->serial);
	printf("not before   %s\n", i->not_before_text);
	if (i->days_left >= 0)
		printf("not after    %s (%ld day%s left)\n", i->not_after_text,
		       i->days_left, i->days_left == 1 ? "" : "s");
	else
		printf("not after    %s (EXPIRED %ld days ago)\n",
		       i->not_after_text, -i->days_left);
	printf("key          %s\n", i->key);
	printf("fingerprint  SHA-256 %s\n", i->fingerprint_sha256);
	if (i->n_chain == 0)
		printf("chain        none (the file holds this certificate "
		       "only)\n");
	for (size_t n = 0; n < i->n_chain; n++)
		printf("%s%zu: %s, issued by %s\n",
		       n == 0 ? "chain        " : "             ", n + 1,
		       i->chain[n].subject, i->chain[n].issuer);
	if (i->chain_omitted > 0)
		printf("             and %zu more\n", i->chain_omitted);
	if (!p->present)
		printf("pending      none\n");
	else if (p->error[0] != '\0')
		printf("pending      a request that cannot be read: %s\n",
		       p->error);
	else
		printf("pending      request for %s (%s)\n", p->subject,
		       p->path);
}

static void
show_json(const char *path, const struct cert_info *i,
	  const struct pending *p)
{
	printf("{\"path\":");
	json_str(stdout, path);
	printf(",\"subject\":");
	json_str(stdout, i->subject);
	printf(",\"sans\":[");
	for (size_t n = 0; n < i->n_sans; n++) {
		if (n > 0)
			putchar(',');
		json_str(stdout, i->sans[n]);
	}
	printf("],\"issuer\":");
	json_str(stdout, i->issuer);
	printf(",\"self_signed\":%s,\"serial\":", i->self_signed ? "true" :
								   "false");
	json_str(stdout, i->serial);
	printf(",\"not_before\":");
	json_str(stdout, i->not_before_text);
	printf(",\"not_after\":");
	json_str(stdout, i->not_after_text);
	printf(",\"days_left\":%ld,\"key\":", i->days_left);
	json_str(stdout, i->key);
	printf(",\"fingerprint_sha256\":");
	json_str(stdout, i->fingerprint_sha256);
	printf(",\"chain\":[");
	for (size_t n = 0; n < i->n_chain; n++) {
		printf("%s{\"subject\":", n > 0 ? "," : "");
		json_str(stdout, i->chain[n].subject);
		printf(",\"issuer\":");
		json_str(stdout, i->chain[n].issuer);
		putchar('}');
	}
	printf("],\"pending\":");
	if (!p->present) {
		printf("null");
	} else {
		printf("{\"path\":");
		json_str(stdout, p->path);
		printf(",\"subject\":");
		if (p->error[0] != '\0') {
			printf("null,\"error\":");
			json_str(stdout, p->error);
		} else {
			json_str(stdout, p->subject);
		}
		putchar('}');
	}
	printf("}\n");
}

static int
show_installed(const struct conf *conf, bool json)
{
	char cert[PATH_MAX], key[PATH_MAX], err[1024];
	struct pending pending;
	struct cert_info info;

	find_pending(conf->state_dir, &pending);
	if (cert_store_find(conf->state_dir, cert, sizeof cert, key,
			    sizeof key, err, sizeof err) == -1) {
		if (err[0] != '\0') {
			fprintf(stderr, "bridgehead cert show: %s\n", err);
			return CLI_FAILED;
		}
		if (pending.present && pending.error[0] == '\0')
			fprintf(stderr, "bridgehead cert show: a request for "
					"%s is pending (%s)\n",
				pending.subject, pending.path);
		fprintf(stderr, "bridgehead cert show: no certificate "
				"installed (STARTTLS is not offered); run "
				"'bridgehead cert selfsign' or 'bridgehead cert "
				"install'\n");
		return CLI_FAILED;
	}
	if (cert_info_load(cert, time(NULL), &info, err, sizeof err) == -1) {
		fprintf(stderr, "bridgehead cert show: %s\n", err);
		return CLI_FAILED;
	}
	/* Load it as the server would: a key that is unreadable, too open
	 * or not the certificate's is a certificate the server refuses. */
	SSL_CTX *ctx = tls_server_ctx_new(cert, key, err, sizeof err);
	if (ctx == NULL) {
		fprintf(stderr,
			"bridgehead cert show: the installed certificate "
			"cannot be used: %s\n",
			err);
		return CLI_FAILED;
	}
	SSL_CTX_free(ctx);
	if (json)
		show_json(cert, &info, &pending);
	else
		show_text(cert, &info, &pending);
	return finish_output("cert show");
}

static int
cert_show_cmd(int argc, char **argv, struct cert_opts *o)
{
	int rc = parse_options(argc, argv, "cert show", show_options,
			       usage_show, false, o);
	if (rc != -1)
		return rc;
	struct conf *conf = cli_load_conf(o->config);
	if (conf == NULL)
		return CLI_USAGE;
	rc = show_installed(conf, o->json);
	conf_free(conf);
	return rc;
}

/* -- the group --------------------------------------------------------- */

static const struct option cert_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const struct {
	const char *name;
	int (*run)(int argc, char **argv, struct cert_opts *o);
} subcommands[] = {
	{ "selfsign", cert_selfsign_cmd },
	{ "show", cert_show_cmd },
};

int
cli_cert(int argc, char **argv)
{
	struct cert_opts o = { 0 };
	int rc = parse_options(argc, argv, "cert", cert_options, usage_cert,
			       true, &o);

	if (rc != -1)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "bridgehead cert: a command is needed "
				"(selfsign or show)\n");
		usage_cert(stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[optind];
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0];
	     i++)
		if (strcmp(sub, subcommands[i].name) == 0)
			return subcommands[i].run(argc - optind,
						  argv + optind, &o);
	fprintf(stderr, "bridgehead cert: unknown command '%s' (available: "
			"selfsign, show)\n", sub);
	usage_cert(stderr);
	return CLI_USAGE;
}
