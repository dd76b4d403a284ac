/*
 * queue.c - queue ids and spool files (see queue.h).
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

void queue_id_new(char id[QUEUE_ID_LEN + 1])
{
	struct timeval tv;
	unsigned int rnd = 0;

	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
		rnd = (unsigned int)getpid() ^ (unsigned int)tv.tv_usec << 8;
	snprintf(id, QUEUE_ID_LEN + 1, "%09llX%05lX%06X",
		 (unsigned long long)tv.tv_sec & 0xfffffffffULL,
		 (unsigned long)tv.tv_usec & 0xfffff, rnd & 0xffffff);
}

bool queue_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++)
		if (!((id[n] >= '0' && id[n] <= '9') ||
		      (id[n] >= 'A' && id[n] <= 'F')))
			return false;
	return n == QUEUE_ID_LEN;
}

int queue_create_tmp(const char *dir, const char *id, struct sm_error *err)
{
	char path[4096];
	int fd;

	if (!queue_id_valid(id))
		return error_set(err, EX_SOFTWARE, "bad queue id");
	snprintf(path, sizeof path, "%s/tmp", dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		goto fail;
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		goto fail;
	snprintf(path, sizeof path, "%s/tmp/%s", dir, id);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd >= 0)
		return fd;
fail:
	return error_set(err, errno == ENOSPC ? EX_IOERR : EX_CANTCREAT,
			 "cannot write the spool %s: %s; create it (make "
			 "install does) or set queue.dir to a writable "
			 "directory",
			 path, strerror(errno));
}

void queue_remove_tmp(const char *dir, const char *id)
{
	char path[4096];

	if (!queue_id_valid(id))
		return;
	snprintf(path, sizeof path, "%s/tmp/%s", dir, id);
	unlink(path);
}
