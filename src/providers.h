/*
 * providers.h - the provider presets of providers.conf (installed with the
 * program; its format is documented at the top of etc/providers.conf).
 *
 * A preset names a provider's SMTP server (host, port, encryption) and what
 * an admin must know to use it: what the username and password are, which
 * sender addresses it accepts, its sending limits and any warning.  The
 * file is parsed by config.c (the one file that includes libconfig, STYLE
 * §15): config_load_providers(); this module finds the file, looks presets
 * up and suggests close names.  Every string is owned by the list.
 */
#ifndef SWITCHMAIL_PROVIDERS_H
#define SWITCHMAIL_PROVIDERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "errors.h"

#ifndef PROVIDERS_PATH
#define PROVIDERS_PATH "/usr/local/share/switchmail/providers.conf"
#endif
#define PROVIDERS_ENV	   "SWITCHMAIL_PROVIDERS" /* honoured when unprivileged */
#define PROVIDERS_MAX	   256			  /* presets in one file */
#define PROVIDER_PORTS_MAX 8 /* unsupported_ports entries */

struct provider {
	char *name;	 /* the key: "ovh", "m365", ... */
	char *title;	 /* "OVH MX Plan" */
	char *host;	 /* "" when the admin must give it (host_hint) */
	char *host_hint; /* how to find the host, or "" */
	int port;
	enum encryption encryption;
	char *username;	     /* a literal username ("apikey"), or "" */
	char *username_hint; /* "full address", "local part", ... */
	char *password_hint; /* "an app password: ...", or "" */
	char *sender;	     /* which sender addresses it accepts, or "" */
	char *limits;	     /* sending limits, or "" */
	char *notes;	     /* anything else worth knowing, or "" */
	char *warning;	     /* said at every load that uses it, or "" */
	int unsupported_ports[PROVIDER_PORTS_MAX]; /* warned about */
	size_t nunsupported;
	bool pin; /* self-signed server: tls_fingerprint wanted */
};

struct provider_list {
	char *path;	    /* the file loaded */
	struct provider *v; /* in file order */
	size_t n;
};

/* The presets file: $SWITCHMAIL_PROVIDERS when it is an absolute path and
 * the program runs unprivileged (secure_getenv: ignored when set-group-id),
 * else PROVIDERS_PATH (make sets it to $(DATADIR)/providers.conf).  Static
 * or environment string. */
const char *providers_path(void);

/* Load providers_path() into pl.  Returns 0, or -1 with err filled
 * (EX_CONFIG: missing or invalid; EX_NOPERM: unreadable); pl then holds
 * nothing to free. */
int providers_load(struct provider_list *pl, struct sm_error *err);

/* The preset called name (case-insensitive), or NULL.  Borrowed from pl. */
const struct provider *providers_find(const struct provider_list *pl,
				      const char *name);

/* Names close to name ("ovh, ovh-tls"), at most size-1 bytes into buf;
 * "" when none is close.  Returns buf. */
char *providers_near(const struct provider_list *pl, const char *name,
		     char *buf, size_t size);

/* Release everything pl owns.  Accepts NULL. */
void providers_free(struct provider_list *pl);

#endif
