/*
 * priv.h - set-group-id start-up in a fixed order (DESIGN §7, STYLE §13).
 *
 * switchmail is installed setgid `switchmail`: the group may read the
 * configuration (it holds a password) and write the spool.  Before any
 * input is trusted: fds 0-2 are made sane, the umask is fixed, core dumps
 * are off, and when running setgid the environment is replaced by a fixed
 * allowlist.  A caller-chosen configuration (-C FILE or SWITCHMAIL_CONFIG)
 * drops the group for good first: the caller's own file, the caller's own
 * rights.
 */
#ifndef SWITCHMAIL_PRIV_H
#define SWITCHMAIL_PRIV_H

#include <stdbool.h>

#include "errors.h"

/* Steps 1-3, first thing in main: fds 0-2 open (on /dev/null when closed),
 * umask 007 (spool files are shared with the group, never with others),
 * RLIMIT_CORE 0 (no core dump can hold the password), and, when setgid,
 * an environment of PATH only.  *config_env receives a copy of
 * SWITCHMAIL_CONFIG taken before the environment is cleared (or NULL; the
 * caller frees it).  Returns 0, or -1 with err filled (EX_OSERR). */
int priv_startup(char **config_env, struct sm_error *err);

/* Whether this process runs with a group it was not started with. */
bool priv_is_setgid(void);

/* Drop the set-group-id privilege for good and verify it cannot come back.
 * A no-op when not setgid.  Returns 0, or -1 with err (EX_OSERR). */
int priv_drop(struct sm_error *err);

#endif
