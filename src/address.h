/*
 * address.h - RFC 5322 addresses: validation, address-list parsing, aliases,
 * default domain and sender patterns.
 *
 * Every address that can reach an envelope, a queue file or an SMTP command
 * passes address_valid() first (STYLE §10).  Nothing here does I/O, prints or
 * exits; nothing here depends on libconfig.
 */
#ifndef SWITCHMAIL_ADDRESS_H
#define SWITCHMAIL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

#define ADDRESS_MAX 254      /* octets in an addr-spec (RFC 5321 path limit) */
#define ADDRESS_LIST_MAX 10000 /* addresses one list may hold (recipients) */

struct address {
	char *addr;    /* addr-spec "local@domain" or a bare local name; owned */
	char *display; /* display name, unquoted and unfolded, or NULL; owned */
};

struct addrlist {
	struct address *v; /* owned array */
	size_t n, cap;
};

/* Whether addr (NUL-terminated) is usable as an envelope address: 1..254
 * octets, no CR, LF, NUL, other control characters, spaces outside a quoted
 * local part, '<', '>', at most one unquoted '@' with a non-empty domain when
 * present.  A bare local name ("root") is valid.  On failure, *why (if not
 * NULL) points to a static phrase such as "contains a line break". */
bool address_valid(const char *addr, const char **why);

/* Parse text[0..len) as an RFC 5322 address-list (display names, quoted
 * strings with commas, comments, angle addresses, groups such as
 * "undisclosed-recipients:;", obsolete routes, folding whitespace) and append
 * each mailbox to out.  Also accepts what sendmail callers pass: bare
 * addresses, comma lists with or without spaces.  Empty input or empty
 * groups add nothing.  Each appended address is checked by address_valid().
 * Returns 0, or -1 with err filled (EX_DATAERR, naming the bad part) on
 * syntax errors, invalid addresses, or more than ADDRESS_LIST_MAX entries in
 * out.  On failure, out may hold the addresses parsed before the error.
 * CR and LF count only as folding (CRLF or LF followed by a space or tab)
 * or as one CRLF or LF ending the text (a header field's terminator); any
 * other line break, NUL or control character is an error.  Out of memory:
 * EX_OSERR. */
int address_list_parse(const char *text, size_t len, struct addrlist *out,
		       struct sm_error *err);

/* Append a copy of addr (and display, may be NULL) to list unless an equal
 * address (local part compared exactly, domain case-insensitively) is
 * already there.  Returns 0, or -1 on allocation failure or when the list
 * would exceed ADDRESS_LIST_MAX (err filled, EX_DATAERR). */
int addrlist_add(struct addrlist *list, const char *addr, const char *display,
		 struct sm_error *err);

/* Free the list's contents and reset it to empty.  Accepts NULL. */
void addrlist_free(struct addrlist *list);

/* One alias: a local name and its value, an address list ("a@x, b@y"). */
struct alias_entry {
	const char *name;
	const char *value;
};

/* Resolve every bare local name (no '@') in list in place: a name found in
 * aliases[0..naliases) (case-insensitive) is replaced by the addresses of its
 * value, which are resolved again (up to 8 levels; a loop or deeper nesting
 * is an error); any other bare name gets "@" default_domain appended.  With
 * default_domain NULL or empty, a bare name left over is an error.
 * Duplicates are removed.  Returns 0, or -1 with err filled (EX_DATAERR for
 * an unresolvable name or alias loop, naming it and the fix).  On failure
 * list is unchanged.  One call visits at most 100000 names (alias fan-out). */
int address_resolve(struct addrlist *list, const struct alias_entry *aliases,
		    size_t naliases, const char *default_domain,
		    struct sm_error *err);

/* Whether addr matches the sender pattern: a glob (fnmatch) compared
 * case-insensitively, e.g. "*@example.fr" or "contact@example.fr". */
bool address_match(const char *pattern, const char *addr);

/* The domain part of addr (after the last unquoted '@'), or NULL. Borrowed. */
const char *address_domain(const char *addr);

#endif
