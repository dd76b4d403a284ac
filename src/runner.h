/*
 * runner.h - queue runs: every waiting message now (switchmail -q, Postfix
 * semantics), or only those whose retry time has come (switchmailctl queue
 * run, what the timer calls).  Messages go out in batches over one SMTP
 * session per batch; each is locked while it is attempted, so any number
 * of runners and senders may work at once and none is sent twice.
 */
#ifndef SWITCHMAIL_RUNNER_H
#define SWITCHMAIL_RUNNER_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

#define RUNNER_BATCH 100 /* messages per SMTP session */

struct runner_opts {
	bool due_only;             /* only messages whose next time has come */
	const char *id_filter;     /* -qI: ids containing this, or NULL */
	const char *domain_filter; /* -qR: a pending recipient's domain
				      contains this, or NULL */
	bool progress;             /* show sent/deferred/failed as it goes */
	FILE *transcript;          /* -v protocol trace, or NULL */
};

struct runner_report {
	size_t total, sent, deferred, failed, skipped;
};

/* One queue run.  Returns 0, or -1 with err filled when the queue cannot
 * be read at all. */
int runner_run(const struct config *cfg, const struct runner_opts *ro,
	       struct runner_report *rep, struct sm_error *err);

/* mailq: every waiting message with id, age, size, sender, recipients,
 * attempts and last error; then the count of failed/.  Metadata only:
 * never message content. */
int runner_list(const struct config *cfg, FILE *out, struct sm_error *err);

#endif
