/*
 * config: the `bridgehead config` command group.
 *
 *   cli_config()  `bridgehead config check [-c FILE]`: load the
 *                 configuration (main file and connectors.d/), print the
 *                 effective configuration with every default filled in to
 *                 stdout and exit 0; on an error print its one sentence
 *                 ("FILE:LINE: [section] key 'x': reason") to stderr and
 *                 exit 2.  `--help` on `config` and on `config check`.
 *
 * -c FILE may come before the command words (main.c keeps it), after
 * `config`, or among the options of `check`; the last one given wins.
 * Exit status as DESIGN.md says: 0 ok, 1 output failed, 2 usage or
 * configuration error.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define USAGE_LINE "usage: bridgehead config check [-c FILE]\n"

static void
usage_config(FILE *out)
{
	fprintf(out,
		"usage: bridgehead config check [-c FILE]\n"
		"\n"
		"  check   load the configuration (and connectors.d/*.conf "
		"beside it),\n"
		"          print the effective configuration, defaults "
		"included;\n"
		"          exit 0 if it is valid, 2 with the error otherwise\n"
		"\n"
		"  -c, --config FILE   the configuration file (default "
		"$BRIDGEHEAD_CONFIG,\n"
		"                      else /etc/bridgehead/bridgehead.conf)\n");
}

static void
usage_check(FILE *out)
{
	fprintf(out,
		"usage: bridgehead config check [-c FILE]\n"
		"\n"
		"Loads FILE and connectors.d/*.conf beside it, checks every "
		"value and\n"
		"prints the configuration the server would use.  Exit status: "
		"0 valid,\n"
		"2 usage or configuration error (one sentence on stderr naming "
		"file,\n"
		"line and key).\n");
}

/*
 * Options of one command level; optstring starts with "+" where the next
 * word is a subcommand.  Returns -1 to go on, else the exit status (help
 * printed, or a usage error: one sentence and the usage line on stderr).
 */
static int
parse_options(int argc, char **argv, const char *optstring, const char *who,
	      void (*usage)(FILE *), const char **config)
{
	int ch;

	optind = 0;	/* glibc: start afresh on this argv */
	opterr = 0;	/* our own messages, naming the command */
	while ((ch = getopt_long(argc, argv, optstring, long_options, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			*config = optarg;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "bridgehead %s: option '%s' needs a "
					"file name\n" USAGE_LINE,
				who, argv[optind - 1]);
			return CLI_USAGE;
		default:
			fprintf(stderr, "bridgehead %s: unknown option '%s'\n"
					USAGE_LINE, who, argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	return -1;
}

static int
config_check(int argc, char **argv, const char *config)
{
	int rc = parse_options(argc, argv, ":c:h", "config check", usage_check,
			       &config);

	if (rc != -1)
		return rc;
	if (optind < argc) {
		fprintf(stderr, "bridgehead config check: unexpected argument "
				"'%s'\n" USAGE_LINE, argv[optind]);
		return CLI_USAGE;
	}
	struct conf *conf = cli_load_conf(config);
	if (conf == NULL)
		return CLI_USAGE;
	conf_print(conf, stdout);
	conf_free(conf);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		perror("bridgehead config check: writing the configuration");
		return CLI_FAILED;
	}
	return CLI_OK;
}

int
cli_config(int argc, char **argv)
{
	const char *config = NULL;
	int rc = parse_options(argc, argv, "+:c:h", "config", usage_config,
			       &config);

	if (rc != -1)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "bridgehead config: a subcommand is needed "
				"(check)\n" USAGE_LINE);
		return CLI_USAGE;
	}
	const char *sub = argv[optind];
	if (strcmp(sub, "check") == 0)
		return config_check(argc - optind, argv + optind, config);
	fprintf(stderr, "bridgehead config: unknown subcommand '%s'\n"
			USAGE_LINE, sub);
	return CLI_USAGE;
}
