/*
 * notice.h - the delivery-failure notice (a bounce) for a message that
 * was accepted (exit 0) and then given up on: refused permanently, or
 * expired after queue.max_age.  Nothing accepted is dropped silently.
 *
 * The notice goes to aliases.postmaster when set, else to the message's
 * sender; it is queued like any message (and retried), sent through the
 * route active at its own attempt, and never notified about itself.
 */
#ifndef SWITCHMAIL_NOTICE_H
#define SWITCHMAIL_NOTICE_H

#include "config.h"
#include "queue.h"

/* Queue a notice about env (whose message is readable at fd) saying why.
 * The recipients listed are those whose state byte is not RS_DELIVERED.
 * Returns 0 (queued, or nothing to do: a notice about a notice, or no
 * usable recipient, which is logged), -1 when it could not be queued
 * (logged). */
int notice_queue(const struct config *cfg, const struct queue_envelope *env,
		 const struct queue_state *st, int fd, const char *why);

#endif
