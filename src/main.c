/*
 * main: argv to the command table; nothing else.  A leading "-c FILE"
 * (before the command words) is kept for every command.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "cli/cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "serve", cli_serve, "run the server" },
	{ "config", cli_config, "check and print the configuration" },
	{ "cert", cli_cert, "make and show the server certificate" },
	{ "queue", cli_queue, "list, show, flush and delete queued messages" },
	{ "connector", cli_connector, "add, change, list and remove connectors" },
	{ "sink", cli_sink, "a test smart host that writes mail to a folder" },
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: bridgehead [-c FILE] COMMAND [ARGS]\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "\n'bridgehead COMMAND --help' tells more.  The configuration "
		     "is -c FILE, else $BRIDGEHEAD_CONFIG, else "
		     "/etc/bridgehead/bridgehead.conf.\n");
}

int
main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			cli_global_config = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			cli_global_config = argv[i] + 9;
			i++;
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return CLI_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("bridgehead %s\n", BRIDGEHEAD_VERSION);
			return CLI_OK;
		} else {
			fprintf(stderr, "bridgehead: unknown option '%s'\n",
				argv[i]);
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].run(argc - i, argv + i);
	}
	fprintf(stderr, "bridgehead: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return CLI_USAGE;
}
