/*
 * submit.h - the sendmail -bm path: one message from stdin, accepted.
 *
 * The message is spooled into tmp/ and tried at once (unless -odq).  When
 * every recipient got a final answer the file goes away and the exit code
 * says how it went; when any is deferred the file is made durable in new/
 * and the exit code is 0: the queue retries it (DESIGN §5).
 */
#ifndef SWITCHMAIL_SUBMIT_H
#define SWITCHMAIL_SUBMIT_H

#include "config.h"
#include "options.h"

/* Read, spool, attempt.  Returns the exit code; when it is not 0, err holds
 * the reason (the caller prints it) and each further refused recipient has
 * had its own line on stderr. */
int submit_message(const struct options *o, const struct config *cfg,
		   struct sm_error *err);

#endif
