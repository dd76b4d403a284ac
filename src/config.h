/*
 * config.h - the libconfig file, loaded and validated into one struct config.
 *
 * Only config.c includes libconfig; every string here is a private copy that
 * config_free() releases (no libconfig pointer leaves config.c).
 */
#ifndef SWITCHMAIL_CONFIG_H
#define SWITCHMAIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "errors.h"

/* The two installed paths may be set by the build: make passes
 * -DCONFIG_DEFAULT_PATH='"$(SYSCONFDIR)/switchmail.conf"' and
 * -DCONFIG_QUEUE_DIR_DEFAULT='"$(SPOOLDIR)"'. */
#ifndef CONFIG_DEFAULT_PATH
#define CONFIG_DEFAULT_PATH "/etc/switchmail.conf"
#endif
#define CONFIG_ENV "SWITCHMAIL_CONFIG"
#define CONFIG_SECRET_MAX 255  /* username/password bytes (libESMTP PLAIN) */
#define CONFIG_TIMEOUT_DEFAULT 15
#define CONFIG_TIMEOUT_MAX 600
#ifndef CONFIG_QUEUE_DIR_DEFAULT
#define CONFIG_QUEUE_DIR_DEFAULT "/var/spool/switchmail"
#endif
#define CONFIG_MAX_AGE_DEFAULT 432000L /* 5 days */

enum encryption { ENC_NONE, ENC_SSL, ENC_TLS };

/* One way out: the connector or the native relay. */
struct route {
	const char *name;       /* "connector" or "native"; static */
	char *host;             /* required */
	int port;               /* 1..65535; default 465 ssl, 587 tls, 25 none */
	enum encryption encryption; /* default: tls */
	char *username;         /* NULL when no AUTH */
	char *password;         /* secret: NULL when no AUTH; wiped by free */
	char *from;             /* route sender address; required */
	char **allowed_senders; /* patterns; default { from } */
	size_t nallowed;
	char *tls_ca_file;      /* NULL: system store */
	char *tls_fingerprint;  /* "sha256:HEX" normalised to lower-case hex
				   without colons after "sha256:", or NULL */
	bool tls_verify;        /* default true */
	bool tls_session_cache; /* default true: resume TLS sessions */
	bool allow_plaintext_auth; /* default false */
	int timeout;            /* seconds, 1..600, default 15 */
	char *provider;         /* preset name as written, or NULL */
};

struct config {
	char *path;             /* the file loaded */
	bool connector_active;  /* connector.active (default false) */
	struct route connector; /* all fields empty when no connector group */
	bool has_connector;     /* the connector has host and from (the
				   preset's host counts) */
	struct route native;    /* required */
	struct alias_entry *aliases; /* owned names/values */
	size_t naliases;
	char *default_domain;   /* NULL when unset */
	char *hostname;         /* EHLO name: "hostname" setting, else the
				   machine's FQDN or node name */
	char *queue_dir;        /* queue.dir */
	long *retry;            /* queue.retry seconds; default 60,300,1800,7200 */
	size_t nretry;
	long max_age;           /* queue.max_age seconds */
	bool log_syslog;        /* log.syslog, default true */
	char *log_file;         /* log.file, NULL when empty */
	char **warnings;        /* sentences for the log, never stderr */
	size_t nwarnings;
};

/* Load and validate path into cfg.  Every problem gives one sentence naming
 * the file, the line libconfig reports when it has one, the setting, what is
 * wrong and what would be valid, e.g.
 *   switchmail.conf:7: connector.encryption "starttls" is not one of none, ssl, tls
 * Unreadable file: EX_NOPERM (permission) or EX_CONFIG (missing), invalid: EX_CONFIG.
 * Returns 0 or -1 with err filled; on failure cfg holds nothing to free. */
int config_load(const char *path, struct config *cfg, struct sm_error *err);

/* The route mail takes now: the connector when active, else native. */
const struct route *config_active_route(const struct config *cfg);

/* Release everything cfg owns, wiping passwords.  Accepts NULL. */
void config_free(struct config *cfg);

/* "none", "ssl" or "tls". */
const char *config_encryption_name(enum encryption e);

/* Parse the provider presets file at path into pl (providers.h; parsed
 * here because config.c is the one file that includes libconfig).
 * Returns 0 or -1 with err filled; pl then holds nothing to free. */
struct provider_list;
int config_load_providers(const char *path, struct provider_list *pl,
			  struct sm_error *err);

#endif
