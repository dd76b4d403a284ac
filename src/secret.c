/*
 * secret.c - password_command (see secret.h).
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start argv with stdout on a pipe; the read end into *fd. */
static pid_t start(char *const argv[], int *fd)
{
	static char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
				    NULL};
	posix_spawn_file_actions_t fa;
	int p[2];
	pid_t pid = -1;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, env) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (pid < 0)
		close(p[0]);
	else
		*fd = p[0];
	return pid;
}

/* Read the output until EOF, SECRET_OUTPUT_MAX or the deadline. */
static size_t collect(int fd, char *buf, long long deadline, int *timed_out)
{
	size_t n = 0;

	*timed_out = 0;
	while (n < SECRET_OUTPUT_MAX) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t k;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			*timed_out = 1;
			break;
		}
		k = read(fd, buf + n, SECRET_OUTPUT_MAX - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	return n;
}

/* Reap the child, killing it when it overstayed.  Its exit status. */
static int reap(pid_t pid, int timed_out)
{
	int status = 0;

	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

int secret_from_command(char *const argv[], char **out, char *why,
			size_t whysize)
{
	char buf[SECRET_OUTPUT_MAX + 1];
	int fd = -1, timed_out, status;
	pid_t pid;
	size_t n;
	char *nl;

	*out = NULL;
	if (argv[0] == NULL || argv[0][0] != '/') {
		snprintf(why, whysize, "must start with the program's absolute "
				       "path (it is run without a shell)");
		return -1;
	}
	if ((pid = start(argv, &fd)) < 0) {
		snprintf(why, whysize, "cannot run %s: %s", argv[0],
			 strerror(errno));
		return -1;
	}
	n = collect(fd, buf, now_ms() + SECRET_COMMAND_TIMEOUT * 1000LL,
		    &timed_out);
	close(fd);
	status = reap(pid, timed_out);
	buf[n] = '\0';
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if (timed_out)
		snprintf(why, whysize, "%s did not finish within %d s",
			 argv[0], SECRET_COMMAND_TIMEOUT);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(why, whysize, "%s failed (%s %d)", argv[0],
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status)
					   : WTERMSIG(status));
	else if (buf[0] == '\0')
		snprintf(why, whysize, "%s printed no password", argv[0]);
	else if ((*out = strdup(buf)) == NULL)
		snprintf(why, whysize, "out of memory");
	explicit_bzero(buf, sizeof buf);
	return *out != NULL ? 0 : -1;
}
