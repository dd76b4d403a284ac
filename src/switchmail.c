/*
 * switchmail.c - main of the sendmail interface.
 *
 * Picks the personality from argv[0] (sendmail, mailq, newaliases), parses
 * the command line, loads the configuration and runs one mode.  Only this
 * file prints the final error and chooses the exit code (DESIGN §4).
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "heap.h"
#include "errors.h"
#include "log.h"
#include "options.h"
#include "priv.h"
#include "runner.h"
#include "smtpin.h"
#include "submit.h"
#include "verify.h"

#ifndef SWITCHMAIL_VERSION
#define SWITCHMAIL_VERSION "0.1.0"
#define SEND_HEAP_APPETITE ((size_t)256 * 1024)
#endif

static const char *progname = "switchmail";

/* The one place that reports failure: one line on stderr, the exit code. */
static int finish(const struct sm_error *err)
{
	if (err->code != EX_OK)
		fprintf(stderr, "%s: %s\n", progname, err->msg);
	return err->code;
}

/* The caller never gets a broken pipe, even when refused before reading. */
static void drain_stdin(void)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
		;
}

/* -C, else $SWITCHMAIL_CONFIG (as found at start-up), else the default.
 * A caller-chosen file costs the set-group-id privilege first: the
 * caller's own configuration is read with the caller's own rights. */
static const char *config_path(const struct options *o, const char *env,
			       struct sm_error *err)
{
	const char *path = o->config_path != NULL ? o->config_path : env;

	if (path == NULL)
		return CONFIG_DEFAULT_PATH;
	return priv_drop(err) == 0 ? path : NULL;
}

static void note_ignored(const struct options *o)
{
	for (size_t i = 0; i < o->nignored; i++) {
		char shown[128];

		error_printable(shown, sizeof shown, o->ignored[i],
				strlen(o->ignored[i]));
		fprintf(stderr, "%s: ignoring option %s (not needed here)\n",
			progname, shown);
	}
}

/* -q, -qI, -qR: every waiting message now, as Postfix does. */
static int run_queue(const struct options *o, const struct config *cfg,
		     struct sm_error *err)
{
	struct runner_opts ro = {.id_filter = o->queue_id,
				 .domain_filter = o->queue_domain,
				 .progress = isatty(STDERR_FILENO),
				 .transcript = o->verbose ? stderr : NULL};
	struct runner_report rep;

	return runner_run(cfg, &ro, &rep, err) == 0 ? 0 : err->code;
}

/* One mode, with the configuration loaded. */
static int dispatch(const struct options *o, const struct config *cfg,
		    struct sm_error *err)
{
	switch (o->mode) {
	case MODE_DELIVER:
		return submit_message(o, cfg, err);
	case MODE_QUEUE_RUN:
		return run_queue(o, cfg, err);
	case MODE_QUEUE_LIST:
		return runner_list(cfg, stdout, err) == 0 ? 0 : err->code;
	case MODE_SMTP:
		return smtpin_run(o, cfg, err);
	case MODE_VERIFY:
		return verify_recipients(o, cfg, stdout, err);
	case MODE_ALIASES:
		return verify_aliases(cfg, stdout, err);
	default:
		return error_set(err, EX_USAGE,
				 "this mode is not available yet in this "
				 "version of switchmail");
	}
}

int main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct sm_error err = {0};
	char *config_env = NULL;
	const char *path;

	heap_setup(); /* before any thread */
	if (priv_startup(&config_env, &err) != 0)
		return finish(&err);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0')
		progname = basename(argv[0]);
	if (options_parse(argc, argv, progname, &o, &err) != 0) {
		if (o.mode == MODE_DELIVER)
			drain_stdin();
		return finish(&err);
	}
	if (o.mode == MODE_VERSION) {
		printf("switchmail %s\n", SWITCHMAIL_VERSION);
		return EX_OK;
	}
	if (o.mode == MODE_HELP) {
		options_usage(stdout);
		return EX_OK;
	}
	/* What a send touches before TLS (config, spool, libESMTP, the
	 * bridge), mapped in one go instead of a page fault per page. */
	if (o.mode == MODE_DELIVER || o.mode == MODE_SMTP ||
	    o.mode == MODE_QUEUE_RUN)
		heap_prefault(SEND_HEAP_APPETITE);
	path = config_path(&o, config_env, &err);
	if (path == NULL || config_load(path, &cfg, &err) != 0) {
		free(config_env);
		if (o.mode == MODE_DELIVER)
			drain_stdin();
		return finish(&err);
	}
	free(config_env);
	log_open("switchmail", cfg.log_syslog, cfg.log_file, o.verbose > 0);
	for (size_t i = 0; i < cfg.nwarnings; i++)
		log_line(LOG_LVL_WARN, NULL, "%s", cfg.warnings[i]);
	if (o.verbose)
		note_ignored(&o);
	dispatch(&o, &cfg, &err);
	log_close();
	config_free(&cfg);
	return finish(&err);
}
