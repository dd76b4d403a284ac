/*
 * secret.h - a password from a command (password_command), run without a
 * shell: the admin's program prints the password on its standard output
 * (a secret store such as `pass show smtp` or `secret-tool lookup …`).
 */
#ifndef SWITCHMAIL_SECRET_H
#define SWITCHMAIL_SECRET_H

#include <stddef.h>

#define SECRET_COMMAND_TIMEOUT 10  /* seconds the command may take */
#define SECRET_OUTPUT_MAX 4096     /* octets of output read */

/* Run argv[0] (an absolute path) with argv, stdin on /dev/null, an
 * environment of PATH only, and read its standard output: the password is
 * the first line, trailing CR/LF trimmed.  Returns 0 and a malloc'ed *out
 * (the caller wipes and frees it), or -1 with why filled (one sentence:
 * not found, exit status, killed after the timeout, empty output…).  The
 * output buffer is wiped whatever happens. */
int secret_from_command(char *const argv[], char **out, char *why,
			size_t whysize);

#endif
