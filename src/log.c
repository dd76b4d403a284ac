/*
 * log.c - syslog and file logging (see log.h).
 *
 * File lines: "2026-11-28T18:59:03Z switchmail[123]: ID: text".  Control
 * characters in the text are shown as '?' so that a hostile server reply
 * cannot forge log lines.
 */
#include "log.h"

#include "text.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	const char *ident;
	bool use_syslog, echo;
	int fd;
} lg = {"switchmail", false, false, -1};

int log_open(const char *ident, bool use_syslog, const char *file, bool echo)
{
	lg.ident = ident;
	lg.use_syslog = use_syslog;
	lg.echo = echo;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	if (file != NULL && file[0] != '\0') {
		lg.fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
					   O_NOFOLLOW | O_NOCTTY,
			     0640);
		if (lg.fd < 0)
			return -1;
	}
	return 0;
}

/* Controls (C0 and C1) and malformed UTF-8 become '?': a hostile server
 * reply can neither forge a log line nor drive the terminal reading it. */
static void sanitize(char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t k = text_safe_len((unsigned char *)s + i, len - i);

		if (k == 0)
			s[i++] = '?';
		else
			i += k;
	}
}

void log_line(enum log_level lvl, const char *id, const char *fmt, ...)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO};
	char text[2048], line[2200], stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	sanitize(text);
	if (lg.use_syslog)
		syslog(prio[lvl], "%s%s%s", id ? id : "", id ? ": " : "", text);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof line, "%s %s[%ld]: %s%s%s\n", stamp,
		     lg.ident, (long)getpid(), id ? id : "", id ? ": " : "",
		     text);
	if (n > (int)sizeof line - 1)
		n = (int)sizeof line - 1;
	if (lg.fd >= 0 && write(lg.fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	if (lg.echo)
		fprintf(stderr, "%s%s%s\n", id ? id : "", id ? ": " : "", text);
}

void log_close(void)
{
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = -1;
	if (lg.use_syslog)
		closelog();
}
