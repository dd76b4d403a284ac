/*
 * interpose.h - connect() as seen by libESMTP.
 *
 * The executable defines connect(); the dynamic linker binds libESMTP's calls
 * to it.  Every call goes to the kernel unchanged except one: while armed, a
 * connect() to 127.0.0.1 port 0 (an address no real connection uses) is
 * handed to the armed function, which makes the socket the bridge's channel.
 */
#ifndef SWITCHMAIL_INTERPOSE_H
#define SWITCHMAIL_INTERPOSE_H

/* Arm the next sentinel connect(); fn(arg, fd) returns 0 or -1 with errno.
 * The arming is used once.  interpose_arm(NULL, NULL) disarms. */
void interpose_arm(int (*fn)(void *arg, int fd), void *arg);

#endif
