/*
 * ctl.h - what every switchmailctl command gets, and the commands.
 *
 * switchmailctl.c owns the table of commands and the global options; each
 * command lives in the module of its concern and returns a sysexits code,
 * with err filled when it is not 0 (printed by main as one line).
 */
#ifndef SWITCHMAIL_CTL_H
#define SWITCHMAIL_CTL_H

#include <stdbool.h>

#include "config.h"
#include "errors.h"

struct ctl {
	const char *config_path; /* -C, else $SWITCHMAIL_CONFIG, else default */
	bool verbose;            /* -v */
	bool json;               /* --json: machine-readable output */
	struct config cfg;       /* loaded before the command runs (unless
				    the command's row says it loads it) */
};

/* One command: argc/argv are the words after the command name. */
typedef int ctl_fn(struct ctl *c, int argc, char **argv,
		   struct sm_error *err);

ctl_fn ctl_queue; /* runner.c: queue run|flush|list */
ctl_fn ctl_connect;    /* ctlconfig.c: connect [--provider P] ... */
ctl_fn ctl_disconnect; /* ctlconfig.c: disconnect */
ctl_fn ctl_status;     /* ctlconfig.c: status */
ctl_fn ctl_providers;  /* ctlconfig.c: providers [NAME] */
ctl_fn ctl_test;  /* diagnose.c: test [--route R] [--send-to ADDR] */

#endif
