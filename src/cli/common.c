/*
 * common: what every command group shares: where the configuration file
 * is, and loading it with an error that names file, line and key.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>

const char *cli_global_config;

const char *
cli_config_path(const char *option_value)
{
	if (option_value != NULL)
		return option_value;
	if (cli_global_config != NULL)
		return cli_global_config;
	const char *env = getenv("BRIDGEHEAD_CONFIG");
	if (env != NULL && *env != '\0')
		return env;
	return "/etc/bridgehead/bridgehead.conf";
}

struct conf *
cli_load_conf(const char *option_value)
{
	char err[1024];
	struct conf *conf = conf_load(cli_config_path(option_value), err,
				      sizeof err);
	if (conf == NULL)
		fprintf(stderr, "bridgehead: %s\n", err);
	return conf;
}
