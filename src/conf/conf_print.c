/*
 * conf_print: the effective configuration, written back in the file syntax.
 *
 *   conf_print()            every section and every key with the value the
 *                           server uses, defaults included, connectors.d
 *                           merged in (each marked with where it came from);
 *                           what `bridgehead config check` shows.
 *   conf_print_connector()  one [connector NAME] section, the text of
 *                           connectors.d/NAME.conf.
 *
 * The output loads again with conf_load() and gives the same model (the
 * unit tests check the round trip).  Keys that have no value and no default
 * (tls_ca_file, auth_*) are shown as comments, since an empty value is an
 * error for them.  Secrets never appear: the password stays in its file.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

static void
print_list(FILE *out, const char *key, char *const *items, size_t n)
{
	fprintf(out, "%s =", key);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s %s", i > 0 ? "," : "", items[i]);
	fputc('\n', out);
}

static void
print_unset(FILE *out, const char *key, const char *meaning)
{
	fprintf(out, "# %s is not set: %s\n", key, meaning);
}

static void
print_cidr(FILE *out, const struct conf_cidr *c)
{
	char addr[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, addr, sizeof addr) == NULL)
		addr[0] = '\0';
	fprintf(out, "%s/%u", addr, c->prefix);
}

static void
print_server(const struct conf *c, FILE *out)
{
	fprintf(out, "[server]\n");
	fprintf(out, "name = %s\n", c->server_name);
	fprintf(out, "state_dir = %s\n", c->state_dir);
	print_list(out, "accepted_domains", c->accepted_domains,
		   c->n_accepted_domains);
	fprintf(out, "relay_networks =");
	for (size_t i = 0; i < c->n_relay_networks; i++) {
		fprintf(out, "%s ", i > 0 ? "," : "");
		print_cidr(out, &c->relay_networks[i]);
	}
	fputc('\n', out);
	fprintf(out, "user = %s\n", c->user);
}

static void
print_queue(const struct conf *c, FILE *out)
{
	char buf[32];

	fprintf(out, "\n[queue]\nretry_schedule =");
	for (size_t i = 0; i < c->n_retry_schedule; i++)
		fprintf(out, "%s %s", i > 0 ? "," : "",
			conf_format_duration(c->retry_schedule_s[i], buf,
					     sizeof buf));
	fprintf(out, "\nqueue_lifetime = %s\n",
		conf_format_duration(c->queue_lifetime_s, buf, sizeof buf));
}

static void
print_dns(const struct conf *c, FILE *out)
{
	char buf[32];

	fprintf(out, "\n[dns]\n");
	if (c->dns_unbound_config != NULL)
		fprintf(out, "unbound_config = %s\n", c->dns_unbound_config);
	else
		fprintf(out, "# unbound_config is not set: the system resolver "
			     "(resolv.conf, hosts file)\n");
	fprintf(out, "timeout = %s\n",
		conf_format_duration(c->dns_timeout_s, buf, sizeof buf));
}

static void
print_listener(const struct conf_listener *l, FILE *out)
{
	char buf[32];

	fprintf(out, "\n[listener %s]\n", l->name);
	fprintf(out, "address = %s\n", l->address);
	fprintf(out, "tls = %s\n", conf_listener_tls_name(l->tls));
	fprintf(out, "max_message_size = %s\n",
		conf_format_size(l->max_message_size, buf, sizeof buf));
	fprintf(out, "max_recipients = %u\n", l->max_recipients);
	fprintf(out, "max_sessions = %u\n", l->max_sessions);
	fprintf(out, "max_sessions_per_ip = %u\n", l->max_sessions_per_ip);
	fprintf(out, "command_timeout = %s\n",
		conf_format_duration(l->command_timeout_s, buf, sizeof buf));
	fprintf(out, "data_timeout = %s\n",
		conf_format_duration(l->data_timeout_s, buf, sizeof buf));
}

static void
print_host(FILE *out, const struct conf_host *h)
{
	if (h->literal)
		fprintf(out, "[%s]", h->host);
	else
		fprintf(out, "%s", h->host);
	if (h->port != 0)
		fprintf(out, ":%u", h->port);
}

void
conf_print_connector(const struct conf_connector *c, FILE *out)
{
	fprintf(out, "[connector %s]\n", c->name);
	fprintf(out, "address_space =");
	for (size_t i = 0; i < c->n_address_spaces; i++)
		fprintf(out, "%s %s;%u", i > 0 ? "," : "",
			c->address_spaces[i].pattern,
			c->address_spaces[i].cost);
	fputc('\n', out);
	if (c->n_smart_hosts > 0) {
		fprintf(out, "smart_hosts =");
		for (size_t i = 0; i < c->n_smart_hosts; i++) {
			fprintf(out, "%s ", i > 0 ? "," : "");
			print_host(out, &c->smart_hosts[i]);
		}
		fputc('\n', out);
	} else {
		print_unset(out, "smart_hosts", "MX routing (dns = yes)");
	}
	fprintf(out, "dns = %s\n", c->dns ? "yes" : "no");
	print_list(out, "source_bridgeheads", c->source_bridgeheads,
		   c->n_source_bridgeheads);
	fprintf(out, "tls = %s\n", conf_connector_tls_name(c->tls));
	print_list(out, "tls_match", c->tls_match, c->n_tls_match);
	if (c->tls_ca_file != NULL)
		fprintf(out, "tls_ca_file = %s\n", c->tls_ca_file);
	else
		print_unset(out, "tls_ca_file", "the system CA bundle");
	fprintf(out, "port = %u\n", c->port);
	fprintf(out, "max_connections = %u\n", c->max_connections);
	if (c->auth_username != NULL) {
		fprintf(out, "auth_username = %s\n", c->auth_username);
		fprintf(out, "auth_password_file = %s\n",
			c->auth_password_file);
	} else {
		print_unset(out, "auth_username", "no authentication");
		print_unset(out, "auth_password_file", "no authentication");
	}
	fprintf(out, "tls_client_certificate = %s\n",
		c->tls_client_certificate ? "yes" : "no");
}

void
conf_print(const struct conf *conf, FILE *out)
{
	fprintf(out, "# effective configuration: defaults filled in, "
		     "connectors.d merged\n");
	print_server(conf, out);
	print_queue(conf, out);
	for (size_t i = 0; i < conf->n_listeners; i++)
		print_listener(&conf->listeners[i], out);
	if (conf->metrics_address != NULL)
		fprintf(out, "\n[metrics]\naddress = %s\n",
			conf->metrics_address);
	else
		fprintf(out, "\n# [metrics] is not set: no metrics endpoint\n");
	print_dns(conf, out);
	for (size_t i = 0; i < conf->n_connectors; i++) {
		const struct conf_connector *c = &conf->connectors[i];
		fprintf(out, "\n# from %s:%d\n", c->file, c->line);
		conf_print_connector(c, out);
	}
}
