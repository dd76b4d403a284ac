/*
 * interpose.c - connect(), read(), write(), poll() and close() as libESMTP
 * sees them (see interpose.h).
 *
 * Built without _GNU_SOURCE so that connect() has its plain POSIX prototype
 * (glibc's GNU one takes a transparent union); the kernel calls are made
 * directly so nothing else is looked up at run time.  Every descriptor but
 * the hooked one costs one comparison more than libc's own wrappers.
 */
#undef _GNU_SOURCE
#define _DEFAULT_SOURCE 1

#include "interpose.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int (*armed_fn)(void *arg, int fd);
static void *armed_arg;

static int hooked_fd = -1;
static const struct interpose_ops *hooked_ops;
static void *hooked_arg;

void interpose_arm(int (*fn)(void *arg, int fd), void *arg)
{
	armed_fn = fn;
	armed_arg = arg;
}

void interpose_hook(int fd, const struct interpose_ops *ops, void *arg)
{
	hooked_ops = fd >= 0 ? ops : NULL;
	hooked_arg = fd >= 0 ? arg : NULL;
	hooked_fd = fd >= 0 && ops != NULL ? fd : -1;
}

static int is_sentinel(const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	return sa != NULL && len >= (socklen_t)sizeof *in &&
	       sa->sa_family == AF_INET && in->sin_port == 0 &&
	       in->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (armed_fn != NULL && is_sentinel(sa, len)) {
		int (*fn)(void *, int) = armed_fn;

		armed_fn = NULL;
		return fn(armed_arg, fd);
	}
	if (is_sentinel(sa, len)) {
		errno = ECONNREFUSED; /* never a real connection */
		return -1;
	}
	return (int)syscall(SYS_connect, fd, sa, len);
}

/* A call that succeeds leaves errno as it was, as the kernel's do: the
 * relay's own I/O (a send that met a full socket buffer and waited) must
 * not show through.  libESMTP sets errno to 0 before a message chunk and
 * drops the connection if it is not 0 afterwards. */
ssize_t read(int fd, void *buf, size_t n)
{
	if (fd == hooked_fd && fd >= 0) {
		int saved = errno;
		ssize_t r = hooked_ops->read(hooked_arg, buf, n);

		if (r >= 0)
			errno = saved;
		return r;
	}
	return (ssize_t)syscall(SYS_read, fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	if (fd == hooked_fd && fd >= 0) {
		int saved = errno;
		ssize_t r = hooked_ops->write(hooked_arg, buf, n);

		if (r >= 0)
			errno = saved;
		return r;
	}
	return (ssize_t)syscall(SYS_write, fd, buf, n);
}

int close(int fd)
{
	if (fd == hooked_fd && fd >= 0) {
		const struct interpose_ops *ops = hooked_ops;
		void *arg = hooked_arg;
		int saved = errno;

		interpose_hook(-1, NULL, NULL);
		ops->closed(arg);
		errno = saved;
	}
	return (int)syscall(SYS_close, fd);
}

/* poll() over entries that are all the hooked descriptor (libESMTP polls
 * its one socket, for reading, writing or both). */
static int poll_hooked(struct pollfd *fds, nfds_t n, int timeout)
{
	short events = 0, rev;
	int ready = 0, saved = errno;

	for (nfds_t i = 0; i < n; i++) {
		if (fds[i].fd != hooked_fd) {
			errno = EINVAL; /* mixed with other descriptors */
			return -1;
		}
		events = (short)(events | fds[i].events);
	}
	rev = hooked_ops->ready(hooked_arg, events, timeout);
	for (nfds_t i = 0; i < n; i++) {
		fds[i].revents =
		    (short)(rev & (fds[i].events | POLLERR | POLLHUP));
		ready += fds[i].revents != 0;
	}
	errno = saved;
	return ready;
}

/* glibc declares poll()'s array write-only (__attr_access), so GCC takes
 * the events libESMTP filled in for uninitialised here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts, *tp = NULL;

	if (hooked_fd >= 0)
		for (nfds_t i = 0; i < n; i++)
			if (fds[i].fd == hooked_fd)
				return poll_hooked(fds, n, timeout);
	if (timeout >= 0) {
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
		tp = &ts;
	}
	return (int)syscall(SYS_ppoll, fds, n, tp, NULL, (size_t)8);
}
#pragma GCC diagnostic pop

/* A library built with _FORTIFY_SOURCE may call these instead of poll()
 * and read(); they must reach the hook too.  Same checks as glibc's. */
extern void __chk_fail(void) __attribute__((noreturn));
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__chk_fail();
	return poll(fds, n, timeout);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}
