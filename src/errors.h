/*
 * errors.h - the one error type every module fills, and the one sysexits table.
 *
 * Modules return 0/-1 (or an enum) and describe a failure in a caller-owned
 * struct sm_error: a sysexits code and one human sentence naming what is wrong
 * and how to fix it.  Only main() turns it into output and an exit status.
 */
#ifndef SWITCHMAIL_ERRORS_H
#define SWITCHMAIL_ERRORS_H

#include <stddef.h>
#include <sysexits.h>

#define SM_ERROR_MAX 1024

struct sm_error {
	int code;                /* a sysexits.h code; EX_OK when unset */
	char msg[SM_ERROR_MAX];  /* one line, no trailing newline */
};

/* Set err (if not NULL) to code and a printf-formatted sentence; returns -1. */
int error_set(struct sm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#ifdef __clang_analyzer__
/* For the static analyzer (make lint) only: it never follows a call into a
 * variadic function, so without this it would not know the -1 and would
 * walk each caller's success path after a failure.  errors.c #undefs it. */
#define error_set(...) (error_set(__VA_ARGS__), -1)
#endif

/* Clear err to EX_OK and an empty message. */
void error_clear(struct sm_error *err);

/* The symbolic name of a sysexits code ("EX_CONFIG"), or "EX_?" when unknown. */
const char *error_code_name(int code);

/* Fold CR, LF, NUL and other control characters of s[0..len) into dst as
 * printable text (\r, \n, \xHH), at most dstsize-1 bytes, NUL-terminated.
 * Used whenever hostile text (server replies, argv) goes into a message. */
void error_printable(char *dst, size_t dstsize, const char *s, size_t len);

#endif
