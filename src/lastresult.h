/*
 * lastresult.h - the outcome of the last delivery attempt of each route,
 * for `switchmailctl status`.
 *
 * One small text file per route, queue.dir/last-<route>, replaced at each
 * attempt (temporary file in queue.dir, then rename: a reader never sees
 * half a file) unless it already holds the same outcome (result and error)
 * from less than LASTRESULT_REFRESH seconds ago: then its time may be that
 * much older than the last attempt.  It is not fsynced: after a crash the
 * previous outcome may show, which only delays the news.  Format, three lines in this order:
 *   time 1764355801
 *   result delivered|deferred|refused
 *   error <the server's reply or the session's failure, printable, may be
 *         empty>
 */
#ifndef SWITCHMAIL_LASTRESULT_H
#define SWITCHMAIL_LASTRESULT_H

#include "config.h"

#define LASTRESULT_ERROR_MAX 1024 /* bytes of the error kept */
#define LASTRESULT_REFRESH 60     /* seconds an unchanged outcome stands */

enum lastresult_kind { LAST_NONE, LAST_DELIVERED, LAST_DEFERRED, LAST_REFUSED };

struct lastresult {
	long long time; /* unix time of the attempt */
	enum lastresult_kind result;
	char error[LASTRESULT_ERROR_MAX]; /* "" when none */
};

/* Record an attempt of route ("connector" or "native") that ended in
 * result, with error (may be NULL).  Returns 0, or -1 (errno) when the
 * file cannot be written; delivery goes on regardless. */
int lastresult_record(const struct config *cfg, const char *route,
		      enum lastresult_kind result, const char *error);

/* The last attempt of route into out.  Returns 0; 1 when there has been
 * none (out->result LAST_NONE); -1 when the file is unreadable or damaged. */
int lastresult_read(const struct config *cfg, const char *route,
		    struct lastresult *out);

/* "delivered", "deferred", "refused", or "none". */
const char *lastresult_name(enum lastresult_kind k);

#endif
