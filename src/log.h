/*
 * log.h - one line per event to syslog (LOG_MAIL) and/or a log file.
 *
 * Every line carries the queue id when there is one.  Callers never pass a
 * password, an AUTH payload or message content.  Warnings go here, not to
 * stderr: Symfony treats any stderr output at start-up as a failure.
 */
#ifndef SWITCHMAIL_LOG_H
#define SWITCHMAIL_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO };

/* Start logging as ident ("switchmail").  use_syslog: to syslog's mail
 * facility; file: also append to this file (NULL: none); echo: also copy
 * each line to stderr (-v).  Returns 0, or -1 when the file cannot be
 * opened (logging then goes on to syslog only). */
int log_open(const char *ident, bool use_syslog, const char *file, bool echo);

/* One line: "ID: text" (id may be NULL). */
void log_line(enum log_level lvl, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void log_close(void);

#endif
