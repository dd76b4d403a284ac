/*
 * diagnose.h - the configuration test (`switchmailctl test`, and the check
 * `switchmailctl connect` runs before it saves anything).
 *
 * Ordered steps, each timed, the first failure stops the test with one
 * line of cause and one line of fix (DESIGN §3, providers.md §6):
 *   settings → DNS → TCP connect → TLS (implicit, or STARTTLS offered;
 *   certificate checks) → EHLO (what the server offers) → AUTH (mechanisms
 *   offered; accepted or refused) → MAIL FROM (the sender accepted) →
 *   optionally a real test message.
 */
#ifndef SWITCHMAIL_DIAGNOSE_H
#define SWITCHMAIL_DIAGNOSE_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

enum diag_step {
	DIAG_SETTINGS, DIAG_DNS, DIAG_CONNECT, DIAG_TLS, DIAG_EHLO,
	DIAG_AUTH, DIAG_SENDER, DIAG_SEND, DIAG_NSTEPS
};

struct diag_opts {
	const char *send_to;  /* a real test message to this address, or NULL */
	FILE *out;            /* steps printed as they run, or NULL */
	bool json;            /* out gets one JSON document instead */
	bool color;           /* ✓/✗ in colour (only on a terminal) */
	FILE *transcript;     /* -v: the SMTP dialogue, AUTH masked, or NULL */
};

struct diag_result {
	bool ok;                      /* every step passed */
	enum diag_step failed_step;   /* when !ok */
	char cause[1024];             /* one line: what is wrong */
	char fix[1024];               /* one line: what to do */
	char reply[1024];             /* the server's reply, or "" */
	double ms[DIAG_NSTEPS];       /* time each step took */
	char warnings[1024];          /* settings warnings, "; "-joined */
	int exit_code;                /* when !ok: the sysexits code for it
					 (EX_CONFIG settings, EX_TEMPFAIL
					 network/TLS/AUTH, EX_UNAVAILABLE a
					 refused sender or message) */
};

/* Run the test for route r of cfg.  Returns 0 when every step passed,
 * else -1 with res->failed_step, cause and fix filled. */
int diagnose_route(const struct config *cfg, const struct route *r,
		   const struct diag_opts *o, struct diag_result *res);

/* "dns", "connect", … */
const char *diagnose_step_name(enum diag_step s);

#endif
