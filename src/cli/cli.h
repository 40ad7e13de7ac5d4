/*
 * cli: the command groups of the bridgehead binary and what they share.
 *
 * Each cli_*() takes the arguments after its command word (argv[0] is the
 * command word itself, as getopt expects) and returns the exit status:
 * 0 ok, 1 operational failure, 2 usage or configuration error
 * (DESIGN.md "Command line").
 *
 *   cli_config_path()  -c FILE given anywhere, else $BRIDGEHEAD_CONFIG,
 *                      else /etc/bridgehead/bridgehead.conf.
 *   cli_load_conf()    load it or print the error (exit status 2).
 */
#ifndef BH_CLI_CLI_H
#define BH_CLI_CLI_H

#include <stdbool.h>

#include "conf/conf.h"

#define CLI_OK 0
#define CLI_FAILED 1
#define CLI_USAGE 2

/* The -c FILE given before the command words, or NULL (set by main). */
extern const char *cli_global_config;

const char *cli_config_path(const char *option_value);
/* NULL after printing "bridgehead: FILE:LINE: ..." to stderr. */
struct conf *cli_load_conf(const char *option_value);

int cli_serve(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_cert(int argc, char **argv);
int cli_queue(int argc, char **argv);
int cli_connector(int argc, char **argv);
int cli_sink(int argc, char **argv);
/* bridgehead connector test NAME: probe every next hop of a connector. */
int cli_connector_test(const struct conf *conf, const char *name, bool json);

#endif
