/*
 * options.h - the sendmail command line, parsed into one struct options.
 *
 * Every sendmail 8 flag is known to one table in options.c: implemented,
 * ignored (accepted quietly, listed under -v) or refused.  Parsing does no
 * I/O and never exits.
 */
#ifndef SWITCHMAIL_OPTIONS_H
#define SWITCHMAIL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "errors.h"

enum mode {
	MODE_DELIVER,     /* -bm (default): read a message, send it */
	MODE_SMTP,        /* -bs: SMTP dialogue on stdin/stdout */
	MODE_QUEUE_LIST,  /* -bp, mailq */
	MODE_QUEUE_RUN,   /* -q[...] */
	MODE_ALIASES,     /* -bi, newaliases */
	MODE_VERIFY,      /* -bv */
	MODE_VERSION,     /* --version */
	MODE_HELP,        /* --help */
};

enum delivery_mode { DM_INTERACTIVE, DM_BACKGROUND, DM_QUEUE_ONLY };
enum body_type { BODY_UNSET, BODY_7BIT, BODY_8BITMIME };
enum dsn_ret { RET_UNSET, RET_FULL, RET_HDRS };

#define NOTIFY_UNSET 0
#define NOTIFY_NEVER 1
#define NOTIFY_SUCCESS 2
#define NOTIFY_FAILURE 4
#define NOTIFY_DELAY 8

#define OPTIONS_IGNORED_MAX 32

struct options {
	enum mode mode;
	bool extract_recipients;   /* -t */
	bool ignore_dots;          /* -i, -oi */
	const char *sender;        /* -f / -r, borrowed from argv, or NULL */
	const char *fullname;      /* -F, borrowed from argv, or NULL */
	int verbose;               /* -v count */
	enum body_type body;       /* -B */
	int notify;                /* -N: NOTIFY_* bits */
	enum dsn_ret ret;          /* -R */
	const char *envid;         /* -V, borrowed */
	enum delivery_mode delivery; /* -odi / -odb / -odq */
	const char *config_path;   /* -C, borrowed, or NULL */
	const char *queue_id;      /* -qI<id>, borrowed, or NULL */
	const char *queue_domain;  /* -qR<domain>, borrowed, or NULL */
	char **recipients;         /* borrowed argv entries after the options;
				      each may be a comma list */
	size_t nrecipients;
	const char *ignored[OPTIONS_IGNORED_MAX]; /* flags accepted but not
						   implemented, for -v */
	size_t nignored;
};

/* Parse argv into o.  progname is the basename of argv[0]: "mailq" starts in
 * MODE_QUEUE_LIST and "newaliases" in MODE_ALIASES; anything else is
 * sendmail.  Options and recipients may come in any order and repeat
 * (PHPMailer: -t -i -oi -f x -t); "--" ends options.  Recipients are not
 * split or checked here.  Returns 0, or -1 with err filled (EX_USAGE, naming
 * the option and the fix) for an option no sendmail has, a missing or bad
 * argument, or a refused flag.  o borrows from argv. */
int options_parse(int argc, char **argv, const char *progname,
		  struct options *o, struct sm_error *err);

/* Print the --help text (generated from the flag table) to fp. */
void options_usage(FILE *fp);

#endif
