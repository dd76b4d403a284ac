/*
 * lastresult.c - the last delivery attempt of each route (see
 * lastresult.h for the file format).
 */
#include "lastresult.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LAST_FILE_MAX (LASTRESULT_ERROR_MAX + 128) /* bytes read back */

static const char *const kind_names[] = {
    [LAST_NONE] = "none",
    [LAST_DELIVERED] = "delivered",
    [LAST_DEFERRED] = "deferred",
    [LAST_REFUSED] = "refused",
};

const char *lastresult_name(enum lastresult_kind k)
{
	return (size_t)k < sizeof kind_names / sizeof kind_names[0]
		   ? kind_names[k]
		   : "none";
}

/* queue.dir/<prefix>last-ROUTE<suffix> into path; false when route is not
 * a plain name or the path does not fit. */
static bool last_path(const struct config *cfg, const char *route,
		      const char *prefix, const char *suffix, char *path,
		      size_t size)
{
	int k;

	if (route == NULL || route[0] == '\0' ||
	    strspn(route, "abcdefghijklmnopqrstuvwxyz") != strlen(route) ||
	    cfg->queue_dir == NULL)
		return false;
	k = snprintf(path, size, "%s/%slast-%s%s", cfg->queue_dir, prefix,
		     route, suffix);
	return k > 0 && (size_t)k < size;
}

int lastresult_record(const struct config *cfg, const char *route,
		      enum lastresult_kind result, const char *error)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[LAST_FILE_MAX];
	char why[LASTRESULT_ERROR_MAX];
	struct lastresult prev;
	long long now;
	int fd, n, rc = -1;

	if (!last_path(cfg, route, "", "", path, sizeof path) ||
	    !last_path(cfg, route, ".", ".XXXXXX", tmp, sizeof tmp)) {
		errno = EINVAL;
		return -1;
	}
	error_printable(why, sizeof why, error ? error : "",
			error ? strlen(error) : 0);
	now = (long long)time(NULL);
	/* The same outcome again within LASTRESULT_REFRESH: the file stays.
	 * Replacing a file by rename makes ext4 write it back at once
	 * (auto_da_alloc): a tenth of a millisecond's CPU and more, for every
	 * message of a burst. */
	if (lastresult_read(cfg, route, &prev) == 0 && prev.result == result &&
	    strcmp(prev.error, why) == 0 && now >= prev.time &&
	    now - prev.time < LASTRESULT_REFRESH)
		return 0;
	n = snprintf(text, sizeof text, "time %lld\nresult %s\nerror %s\n",
		     now, lastresult_name(result), why);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -1;
	if (fchmod(fd, 0640) == 0 && write(fd, text, (size_t)n) == n)
		rc = 0;
	if (close(fd) != 0 || rc != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* One "name value" line of the file into out. */
static bool parse_line(char *line, struct lastresult *out)
{
	char *sp = strchr(line, ' '), *end;

	if (sp == NULL)
		return false;
	*sp++ = '\0';
	if (strcmp(line, "time") == 0) {
		errno = 0;
		out->time = strtoll(sp, &end, 10);
		return errno == 0 && end != sp && *end == '\0';
	}
	if (strcmp(line, "error") == 0) {
		snprintf(out->error, sizeof out->error, "%s", sp);
		return true;
	}
	for (size_t k = LAST_DELIVERED;
	     strcmp(line, "result") == 0 &&
	     k < sizeof kind_names / sizeof kind_names[0];
	     k++)
		if (strcmp(sp, kind_names[k]) == 0) {
			out->result = (enum lastresult_kind)k;
			return true;
		}
	return false;
}

int lastresult_read(const struct config *cfg, const char *route,
		    struct lastresult *out)
{
	char path[PATH_MAX], text[LAST_FILE_MAX + 1], *save = NULL, *line;
	ssize_t n;
	int fd;

	memset(out, 0, sizeof *out);
	if (!last_path(cfg, route, "", "", path, sizeof path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? 1 : -1;
	n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n < 0)
		return -1;
	text[n] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (!parse_line(line, out))
			return -1;
	return out->result == LAST_NONE || out->time == 0 ? -1 : 0;
}
