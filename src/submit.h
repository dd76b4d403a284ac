/*
 * submit.h - the sendmail -bm path: one message from stdin, accepted; and
 * the same path without sending: -bv (how recipients would be routed) and
 * -bi/newaliases (whether the aliases resolve).
 *
 * The message is spooled into tmp/ and tried at once (unless -odq).  When
 * every recipient got a final answer the file goes away and the exit code
 * says how it went; when any is deferred the file is made durable in new/
 * and the exit code is 0: the queue retries it (DESIGN §5).  The -bs
 * dialogue (smtpin.c) spools each message itself and hands it to
 * submit_spooled(), the common second half.
 */
#ifndef SWITCHMAIL_SUBMIT_H
#define SWITCHMAIL_SUBMIT_H

#include <stdbool.h>
#include <stdio.h>

#include "address.h"
#include "config.h"
#include "deliver.h"
#include "message.h"
#include "options.h"
#include "queue.h"

/* Read, spool, attempt.  Returns the exit code; when it is not 0, err holds
 * the reason (the caller prints it) and each further refused recipient has
 * had its own line on stderr. */
int submit_message(const struct options *o, const struct config *cfg,
		   struct sm_error *err);

/* A message spooled by message_read*() into tmp/ID, with its envelope. */
struct submit_job {
	int fd;			     /* tmp/ID, locked; the caller closes it */
	struct queue_envelope *env;  /* borrowed; env->id is ID */
	struct queue_state *st;	     /* borrowed; every recipient pending */
	enum delivery_mode delivery; /* DM_QUEUE_ONLY: queue, do not try */
	bool notice_refused;	     /* -bs: recipients refused beside
					accepted ones get a failure notice,
					and nothing is printed */
	FILE *transcript;	     /* -v protocol trace, or NULL */
};

/* What became of it, for an SMTP reply. */
struct submit_outcome {
	size_t delivered, deferred, refused; /* recipients, this attempt */
	bool queued;		       /* safe in new/ for a later attempt */
	bool refused_whole;	       /* 5xx at MAIL or DATA */
	char reply[DELIVER_REPLY_MAX]; /* the first refusal's words, or "" */
};

/* Attempt (or only queue) a spooled message.  Returns 0 when it was
 * delivered or safely queued (with notice_refused, also when some
 * recipients were refused and a failure notice was queued for them);
 * otherwise -1 with err filled: EX_NOUSER / EX_UNAVAILABLE (refused,
 * out->reply has the server's words), EX_TEMPFAIL (not sent and not queued
 * either), EX_IOERR / EX_CANTCREAT (spool).  Either way tmp/ID is gone on
 * return: removed, or renamed into new/.  out may be NULL. */
int submit_spooled(const struct config *cfg, const struct submit_job *job,
		   struct submit_outcome *out, struct sm_error *err);

/* The envelope and initial state (every recipient pending) of message id
 * read as info, to rcpts, from caller_sender (-f or MAIL FROM; "" for the
 * null sender; NULL when none was given), with o's -B/-N/-R/-V.  env
 * borrows from info, rcpts and caller_sender; submit_envelope_free()
 * releases what it allocates.  Returns 0 or -1 (err, EX_OSERR). */
int submit_envelope(struct queue_envelope *env, struct queue_state *st,
		    const char *id, const struct message_info *info,
		    const struct addrlist *rcpts, const char *caller_sender,
		    const struct options *o, struct sm_error *err);
void submit_envelope_free(struct queue_envelope *env, struct queue_state *st);

/* The sender of a message without -f: the login name, qualified with
 * default_domain when set.  Malloc'ed (caller frees), NULL when out of
 * memory. */
char *submit_login_sender(const struct config *cfg);

#endif
