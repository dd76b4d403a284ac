/*
 * interpose.h - the socket libESMTP talks to, as seen by libESMTP.
 *
 * The executable defines connect(), read(), write(), poll() and close();
 * the dynamic linker binds libESMTP's calls to them.  Every call goes to the
 * kernel unchanged except:
 *  - while armed, a connect() to 127.0.0.1 port 0 (an address no real
 *    connection uses) is handed to the armed function;
 *  - I/O on the one hooked descriptor (the socket that connect() was given)
 *    goes to the hook: libESMTP's reads, writes and waits run the bridge in
 *    the same thread, without a second socket or thread in between.
 */
#ifndef SWITCHMAIL_INTERPOSE_H
#define SWITCHMAIL_INTERPOSE_H

#include <stddef.h>
#include <sys/types.h>

/* Arm the next sentinel connect(); fn(arg, fd) returns 0 or -1 with errno.
 * The arming is used once.  interpose_arm(NULL, NULL) disarms. */
void interpose_arm(int (*fn)(void *arg, int fd), void *arg);

/* What I/O on the hooked descriptor does.  read and write return as the
 * system calls do (-1 with errno EAGAIN: nothing yet; 0 from read: end of
 * stream).  ready(arg, events, timeout_ms) waits like poll() on that one
 * descriptor (POLLIN, POLLOUT; timeout_ms -1: no bound) and returns the
 * revents.  closed(arg) is told when the descriptor is closed; the hook is
 * then gone. */
struct interpose_ops {
	ssize_t (*read)(void *arg, void *buf, size_t n);
	ssize_t (*write)(void *arg, const void *buf, size_t n);
	short (*ready)(void *arg, short events, int timeout_ms);
	void (*closed)(void *arg);
};

/* Hook fd (one at a time); fd -1 removes the hook.  Single-threaded: the
 * hooked descriptor is only used by the thread that runs libESMTP. */
void interpose_hook(int fd, const struct interpose_ops *ops, void *arg);

#endif
