/*
 * confedit.h - change settings of switchmail.conf as text, keeping the
 * admin's comments, blank lines and layout (`switchmailctl connect`,
 * `disconnect`).
 *
 * Only the settings changed are touched: a value is replaced where it is
 * written; a missing setting is added as one line at the end of its group
 * (after the group's last setting), and a missing group at the end of the
 * file.  The lexer knows libconfig's syntax well enough not to be fooled:
 * comments (#, //, slash-star), strings with escapes, nested groups, lists
 * and arrays, '=' or ':', optional ';' or ','.  A setting in a comment is
 * not a setting.
 *
 * Writing is atomic and safe: a temporary file in the same directory
 * (O_EXCL, the original's owner, group and mode), fsync, loaded with
 * config_load() (and the caller's check) before it is renamed over the
 * original, then the directory is fsynced.  On any failure the original
 * stays byte for byte as it was.  Text buffers are wiped before they are
 * freed: the file may hold a password.
 */
#ifndef SWITCHMAIL_CONFEDIT_H
#define SWITCHMAIL_CONFEDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "errors.h"

enum confedit_op { CE_SET_STRING, CE_SET_INT, CE_SET_BOOL, CE_REMOVE };

/* One change: group.key = value (or remove group.key). */
struct confedit_change {
	const char *group; /* a top-level group: "connector", "native" */
	const char *key;   /* a setting in it: "host" */
	enum confedit_op op;
	const char *str; /* CE_SET_STRING: no control characters */
	long long num;	 /* CE_SET_INT */
	bool flag;	 /* CE_SET_BOOL */
};

/* Called with the edited file loaded, before it replaces the original:
 * return 0 to go on, -1 (err filled) to leave the original untouched. */
typedef int confedit_check_fn(const struct config *cfg, void *arg,
			      struct sm_error *err);

struct confedit_opts {
	bool secret;		  /* the result holds a password: mode at
				     most 0640 (others lose every bit) */
	confedit_check_fn *check; /* or NULL */
	void *arg;		  /* for check */
};

/* Apply c[0..n) in order to text[0..len) into a new NUL-terminated text
 * (*out, *outlen; caller frees, wiping it).  Returns 0, or -1 with err
 * (EX_CONFIG: "LINE N: ..." when the text cannot be understood or a group
 * is not a group; EX_DATAERR: a value with a control character). */
int confedit_text(const char *text, size_t len, const struct confedit_change *c,
		  size_t n, char **out, size_t *outlen, struct sm_error *err);

/* The value of group.key in text: a string's content unescaped, other
 * values as written ("true", "465", "[ ... ]").  *out: caller frees (wipe:
 * it may be a password), NULL when the setting is absent.  Returns 0, or
 * -1 with err when the text cannot be understood. */
int confedit_get(const char *text, size_t len, const char *group,
		 const char *key, char **out, struct sm_error *err);

/* The whole file at path (at most 1 MiB) into *text (NUL-terminated,
 * caller frees, wiping it) and *len.  Returns 0 or -1 with err
 * (EX_NOINPUT missing, EX_NOPERM unreadable, EX_CONFIG not a file). */
int confedit_read(const char *path, char **text, size_t *len,
		  struct sm_error *err);

/* Apply c[0..n) to the file at path (a symbolic link is followed and its
 * target edited), atomically (see above).  Returns 0, or -1 with err: the
 * original is then untouched. */
int confedit_file(const char *path, const struct confedit_change *c, size_t n,
		  const struct confedit_opts *o, struct sm_error *err);

#endif
