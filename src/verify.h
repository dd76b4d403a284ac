/*
 * verify.h - sendmail -bv and -bi (newaliases): what would happen to
 * recipients and aliases, without reading a message or sending anything.
 */
#ifndef SWITCHMAIL_VERIFY_H
#define SWITCHMAIL_VERIFY_H

#include <stdio.h>

#include "config.h"
#include "errors.h"
#include "options.h"

/* -bv: for each recipient argument (comma lists allowed) print to out how
 * it would be routed, without sending or reading stdin:
 *   root -> admin@example.fr (alias), via connector smtp.example.fr:465 ssl,
 *   sender contact@example.fr
 * Returns the exit code: 0, EX_USAGE (no recipient), EX_DATAERR (bad
 * syntax) or EX_NOUSER (a name that cannot be resolved); each problem but
 * the last has had its line on stderr, the last is in err. */
int verify_recipients(const struct options *o, const struct config *cfg,
		      FILE *out, struct sm_error *err);

/* -bi, newaliases: resolve every alias (config_load checked the syntax)
 * and say so on out; there is no alias database to rebuild.  Returns 0, or
 * EX_CONFIG with err naming the file and the alias (each further problem
 * has had its line on stderr). */
int verify_aliases(const struct config *cfg, FILE *out, struct sm_error *err);

#endif
