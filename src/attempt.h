/*
 * attempt.h - one delivery attempt for queued messages: the active route is
 * chosen now (DESIGN §1: queued mail follows the switch), each message's
 * sender is planned for that route, the pending recipients go out in one
 * SMTP session, and the outcome is written back into each state.
 */
#ifndef SWITCHMAIL_ATTEMPT_H
#define SWITCHMAIL_ATTEMPT_H

#include <stdio.h>

#include "config.h"
#include "deliver.h"
#include "queue.h"
#include "route.h"

struct attempt {
	int fd;                        /* the message file */
	struct queue_envelope *env;    /* borrowed */
	struct queue_state *st;        /* borrowed; updated */
	/* out */
	struct deliver_msg m;          /* this attempt's recipients, results */
	struct sender_plan plan;
	size_t delivered, deferred, refused; /* recipients, this attempt */
};

/* Attempt a[0..n) through the active route in one session.  Each state
 * gets attempts+1, last = now, per-recipient bytes (D delivered, F refused,
 * - still pending), error = the reason of the first deferral ("" if none).
 * One log line per outcome.  transcript: -v, or NULL.  ds: the session's
 * failure, if any. */
void attempt_deliver(const struct config *cfg, struct attempt *a, size_t n,
		     FILE *transcript, struct deliver_session *ds);

/* Free what attempt_deliver() allocated in a[0..n). */
void attempt_free(struct attempt *a, size_t n);

/* The next attempt's time after `attempts` attempts (queue.retry, the last
 * interval repeating). */
long long attempt_next_time(const struct config *cfg, unsigned attempts,
			    long long now);

#endif
