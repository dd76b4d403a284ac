/*
 * smtpin.h - sendmail -bs: an SMTP server dialogue on stdin/stdout.
 *
 * What Symfony Mailer's and Laravel's "sendmail -bs" transport speaks, an
 * RFC 5321 subset: an unprompted "220 HOST switchmail ESMTP" greeting;
 * EHLO (PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES; no AUTH, no
 * STARTTLS: the client is a local process) and HELO; MAIL, RCPT, DATA with
 * dot-unstuffing, RSET, NOOP, VRFY (252), HELP, QUIT; any number of
 * messages per session, with or without RSET between them; LF or CRLF.
 * Commands may be pipelined: replies are buffered and written, whole, when
 * no further command is waiting in the input.
 *
 * Decisions (documented in switchmail(8)):
 *  - MAIL is accepted without HELO/EHLO first, as Postfix and sendmail do
 *    by default: a local client has nothing to prove.  A second MAIL inside
 *    a transaction is 503.
 *  - MAIL FROM is the caller's sender exactly like -f: kept when the
 *    route's allowed_senders matches it, else replaced (DESIGN §3); the
 *    null sender <> is accepted.  -f and -t are ignored under -bs.
 *  - Recipients are checked at RCPT (syntax, aliases, default domain: 501
 *    5.1.3 / 550 5.1.1); the relay is contacted only at the end of DATA,
 *    and its outcome becomes the reply to the final ".":
 *      delivered, or deferred and safely queued      250 2.0.0
 *      some recipients refused, the others accepted   250 2.0.0, and a
 *                                                     failure notice is
 *                                                     queued for the refused
 *      every recipient (or the message) refused       the server's 5xx code
 *                                                     and enhanced code, with
 *                                                     its words
 *      message unusable (NUL octet, a limit)          554 5.6.0 / 552 5.3.4
 *      not sent and not queued either                 451 4.3.0
 *    So a message gets its 250 only once it is delivered or safely queued.
 *  - The greeting and the replies to HELO/EHLO carry no enhanced status
 *    code (RFC 2034 §3); every other reply does.
 *  - A command line over SMTPIN_LINE_MAX octets is read to its end and
 *    answered 500 5.5.2; after SMTPIN_ERRORS_MAX bad commands the session
 *    ends with 421 4.7.0.
 *  - Input silent for SMTPIN_IDLE_TIMEOUT seconds (waiting for a command or
 *    inside DATA) ends the session with 421 4.4.2; a reader that never
 *    reads our replies is dropped after as long.  (Not tested end to end:
 *    the unit tests drive the same code with a 1 s timeout.)
 *  - The input ending inside DATA discards the partial message (its tmp/
 *    file is removed) and ends the session; every message acknowledged
 *    before is delivered or queued.
 *  - Nothing is written to stderr (Symfony fails on any stderr output):
 *    problems go to the log; -v still writes the relay transcript there.
 */
#ifndef SWITCHMAIL_SMTPIN_H
#define SWITCHMAIL_SMTPIN_H

#include "config.h"
#include "options.h"
#include "submit.h"

/* Octets of a command line, CRLF included (RFC 5321 4.5.3.1.4). */
#define SMTPIN_LINE_MAX 512
/* Seconds of silence before the client is dropped (RFC 5321 4.5.3.2.7). */
#define SMTPIN_IDLE_TIMEOUT 300
/* Bad commands before the session ends. */
#define SMTPIN_ERRORS_MAX 1000

/* The verbs, in the order of the command table in smtpin.c. */
enum smtpin_verb {
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_QUIT,
	SMTP_UNKNOWN,
};

/* Split a command line (NUL-terminated, without its line end) in place:
 * the verb, compared case-insensitively, and in *arg what follows it, with
 * the spaces and tabs around it removed ("" when none). */
enum smtpin_verb smtpin_parse_verb(char *line, char **arg);

/* Parse, in place, the argument of MAIL or RCPT: keyword ("FROM:" or
 * "TO:", case-insensitive), optional spaces, then <path> or a bare
 * address, then parameters.  *addr gets the address ("" for <>; a source
 * route "@a,@b:" removed), *params the rest.  Returns 0, or -1 with *why a
 * static phrase.  The address itself is not checked here. */
int smtpin_parse_path(char *arg, const char *keyword, char **addr,
		      char **params, const char **why);

/* The MAIL parameters switchmail honours. */
struct smtpin_mail_params {
	enum body_type body; /* BODY=7BIT|8BITMIME, else BODY_UNSET */
	long long size;	     /* SIZE=n (saturating), else 0 */
};

enum smtpin_param { SMTPIN_PARAM_OK, SMTPIN_PARAM_UNKNOWN, SMTPIN_PARAM_BAD };

/* Parse MAIL parameters (space-separated KEY[=VALUE]) in place.  On
 * SMTPIN_PARAM_UNKNOWN (555) or SMTPIN_PARAM_BAD (501), *bad points to the
 * offending parameter. */
enum smtpin_param smtpin_parse_mail_params(char *params,
					   struct smtpin_mail_params *mp,
					   char **bad);

/* Where a session reads and writes, and what accepts its messages. */
struct smtpin_io {
	int in_fd, out_fd; /* borrowed */
	int idle_timeout;  /* seconds; 0: wait for ever */
	/* Hands over one received message (see submit_spooled(), the one the
	 * binary uses; tests pass their own).  Same contract. */
	int (*submit)(const struct config *cfg, const struct submit_job *job,
		      struct submit_outcome *out, struct sm_error *err);
};

/* One whole SMTP session over io.  Returns EX_OK when it ended (QUIT, end
 * of input, timeout, too many errors: each has been answered and logged),
 * or the exit code with err filled when it could not start (EX_OSERR). */
int smtpin_session(const struct options *o, const struct config *cfg,
		   const struct smtpin_io *io, struct sm_error *err);

/* -bs: smtpin_session() on stdin/stdout with SMTPIN_IDLE_TIMEOUT and
 * submit_spooled(). */
int smtpin_run(const struct options *o, const struct config *cfg,
	       struct sm_error *err);

#endif
