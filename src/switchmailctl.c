/*
 * switchmailctl.c - the admin tool.  Commands live in one table; each
 * loads the configuration (-C FILE, else $SWITCHMAIL_CONFIG, else the
 * default) and returns a sysexits code.
 *
 *   switchmailctl [-C FILE] [-v] queue run     attempt messages whose retry
 *                                              time has come (the timer)
 *   switchmailctl [-C FILE] [-v] queue flush   attempt every waiting message
 *   switchmailctl [-C FILE] queue list         what waits (as mailq)
 *
 * A row may say that its command loads the configuration itself
 * (loads_config_itself): those must work when the file is invalid or
 * incomplete (connect completes it, disconnect restores the native route,
 * status reports the error, providers does not need it).
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "errors.h"
#include "log.h"

/* The commands.  Each row: name, function, help line, and whether the
 * command loads the configuration itself (c->cfg is then left empty). */
static const struct {
	const char *name;
	ctl_fn *fn;
	const char *help;
	bool loads_config_itself;
} commands[] = {
	{"queue", ctl_queue,
	 "queue run|flush|list   retry due messages | all now | list them",
	 false},
	{"connect", ctl_connect,
	 "connect [--provider P] [--host H] [--port N] [--encryption E] "
	 "[--username U] [--from F] [--tls-ca-file PEM] "
	 "[--tls-fingerprint sha256:HEX] [--password-stdin] [--force]   test, "
	 "then send through the provider",
	 true},
	{"disconnect", ctl_disconnect,
	 "disconnect   back to the native relay (settings kept)", true},
	{"status", ctl_status,
	 "status   active route, settings, queue, last results", true},
	{"providers", ctl_providers,
	 "providers [NAME]   the presets (--provider P of connect)", true},
	{"test", ctl_test, "test [--route connector|native] [--send-to ADDR]   check every step and name the fix", false},
};

static void usage(FILE *fp)
{
	fprintf(fp, "usage: switchmailctl [-C FILE] [-v] [--json] COMMAND ...\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(fp, "  %s\n", commands[i].help);
}

static const char *config_path(const struct ctl *c)
{
	const char *env = getenv(CONFIG_ENV);

	if (c->config_path != NULL)
		return c->config_path;
	return env != NULL && env[0] ? env : CONFIG_DEFAULT_PATH;
}

/* Leading options: -C FILE, -v, -h/--help. */
static int parse_globals(struct ctl *c, int argc, char **argv, int *i,
			 struct sm_error *err)
{
	for (*i = 1; *i < argc && argv[*i][0] == '-'; (*i)++) {
		if (strcmp(argv[*i], "-v") == 0)
			c->verbose = true;
		else if (strcmp(argv[*i], "-C") == 0 && *i + 1 < argc)
			c->config_path = argv[++*i];
		else if (strcmp(argv[*i], "--json") == 0)
			c->json = true;
		else if (strcmp(argv[*i], "-h") == 0 ||
			 strcmp(argv[*i], "--help") == 0) {
			usage(stdout);
			exit(EX_OK);
		} else
			return error_set(err, EX_USAGE,
					 "unknown option %.40s; see "
					 "switchmailctl --help",
					 argv[*i]);
	}
	if (*i == argc)
		return error_set(err, EX_USAGE,
				 "no command; see switchmailctl --help");
	return 0;
}

/* Run command k with the configuration loaded, unless it loads it. */
static int dispatch(struct ctl *c, size_t k, int argc, char **argv,
		    struct sm_error *err)
{
	int rc;

	if (commands[k].loads_config_itself)
		return commands[k].fn(c, argc, argv, err);
	if (config_load(c->config_path, &c->cfg, err) != 0)
		return err->code;
	log_open("switchmailctl", c->cfg.log_syslog, c->cfg.log_file,
		 c->verbose);
	rc = commands[k].fn(c, argc, argv, err);
	log_close();
	config_free(&c->cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	struct sm_error err = {0};
	int i, rc = 0;

	signal(SIGPIPE, SIG_IGN);
	if (parse_globals(&c, argc, argv, &i, &err) == 0) {
		size_t k = 0, n = sizeof commands / sizeof commands[0];

		while (k < n && strcmp(commands[k].name, argv[i]) != 0)
			k++;
		if (k == n)
			error_set(&err, EX_USAGE,
				  "unknown command %.40s; see switchmailctl "
				  "--help",
				  argv[i]);
		else {
			c.config_path = config_path(&c);
			rc = dispatch(&c, k, argc - i - 1, argv + i + 1, &err);
		}
	}
	if (err.code != EX_OK)
		fprintf(stderr, "switchmailctl: %s\n", err.msg);
	return err.code != EX_OK ? err.code : rc;
}
