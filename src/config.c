/*
 * config.c - load and validate the libconfig file into one struct config
 * (DESIGN §3, §7).
 *
 * The only file that includes <libconfig.h>.  Every setting is known to one
 * table per group (name, type, an example for messages, a setter); anything
 * else is an error naming the known ones.  Values are checked as they are
 * read; then each route is checked as a whole (required settings, AUTH
 * pairing, plaintext AUTH, file modes) and its warnings are collected.
 * Every string is copied out, and the libconfig tree is destroyed before
 * config_load() returns, after the passwords in it have been wiped.
 *
 * Empty optional strings ("") mean "unset".  Paths must be absolute: the
 * working directory of a PHP or cron caller is anybody's guess.
 *
 * Presets: a route's `provider` names an entry of providers.conf (read
 * once per load, only when a route names one); it fills the host,
 * encryption and port the route left out, and its warnings (e.g.
 * Outlook.com is OAuth-only, port 465 is not Microsoft 365's) join the
 * others.  An unknown name is an error listing the close ones.  This file
 * also parses providers.conf itself (config_load_providers), so that the
 * libconfig parser stays in one file.
 *
 * Known limit: libconfig 1.5 silently truncates an integer beyond 32 bits
 * written without an L suffix (4294967321 reads as 25); that cannot be seen
 * from here.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero */
#endif

#include "config.h"
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers.h"

#define CONFIG_FILE_MAX (1024L * 1024) /* bytes in the configuration file */
#define HOST_MAX	253	       /* host, default_domain, hostname */
#define SECRET_FILE_MAX 4096	       /* bytes read from a password_file */
#define RETRY_MAX	64	       /* queue.retry entries */
#define QUOTE_MAX	128 /* bytes of a value quoted in a message */
#define NAME_MAX_	256 /* bytes of a setting's full name */
#define WHERE_MAX	512 /* bytes of the file name in messages */
#define PREFIX_MAX	(WHERE_MAX + 16) /* "FILE:LINE: " */
#define FINGERPRINT_HEX 64		 /* hex digits of a SHA-256 digest */
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* One config_load() (or config_load_providers()): where messages point
 * and what is being filled. */
struct loader {
	char where[WHERE_MAX]; /* the file name, printable */
	struct config *cfg;
	struct sm_error *err;
	mode_t mode;	/* of the configuration file */
	uid_t owner;	/* of the configuration file */
	bool is_presets; /* loading providers.conf, not switchmail.conf */
	int presets_state; /* 0: not read yet, 1: read, -1: unreadable */
	struct provider_list presets; /* read once, for both routes */
	struct sm_error presets_err;  /* why they could not be read */
};

/* What a setting must hold. */
enum kind { K_STRING, K_INT, K_BOOL, K_GROUP, K_STRINGS, K_INTS };

/* A known setting of a group: its name, what it holds, an example value
 * for messages, and the function storing it into obj (a route or the
 * config); connector_only settings are unknown in native. */
struct key {
	const char *name;
	enum kind kind;
	const char *example;
	int (*set)(struct loader *ld, void *obj, const config_setting_t *s);
	bool connector_only;
};

static const char *const kind_names[] = {
    [K_STRING] = "a string in double quotes",
    [K_INT] = "an integer",
    [K_BOOL] = "true or false",
    [K_GROUP] = "a group { ... }",
    [K_STRINGS] = "a string or an array of strings",
    [K_INTS] = "an array of integers",
};

static const char *const type_names[] = {
    [CONFIG_TYPE_NONE] = "nothing",	[CONFIG_TYPE_GROUP] = "a group",
    [CONFIG_TYPE_INT] = "an integer",	[CONFIG_TYPE_INT64] = "an integer",
    [CONFIG_TYPE_FLOAT] = "a fraction", [CONFIG_TYPE_STRING] = "a string",
    [CONFIG_TYPE_BOOL] = "a boolean",	[CONFIG_TYPE_ARRAY] = "an array",
    [CONFIG_TYPE_LIST] = "a list",
};

static const char *const encryption_names[] = {
    [ENC_NONE] = "none", [ENC_SSL] = "ssl", [ENC_TLS] = "tls"};

static const long default_retry[] = {60, 300, 1800, 7200};

/* ---- messages ---------------------------------------------------------- */

/* What libconfig says s holds, for "must be X, not Y". */
static const char *type_name(const config_setting_t *s)
{
	int t = config_setting_type(s);

	if (t < 0 || (size_t)t >= NELEM(type_names))
		return "something else";
	return type_names[t];
}

/* The full name of s written at buf (size > 0): "connector.port",
 * "queue.retry[2]".  Returns its length (maybe cut). */
static size_t setting_name(const config_setting_t *s, char *buf, size_t size)
{
	size_t n;
	int k;

	buf[0] = '\0';
	if (s == NULL || config_setting_is_root(s))
		return 0;
	n = setting_name(config_setting_parent(s), buf, size);
	if (n + 1 >= size)
		return n;
	if (config_setting_name(s) == NULL)
		k = snprintf(buf + n, size - n, "[%d]",
			     config_setting_index(s));
	else
		k = snprintf(buf + n, size - n, "%s%s", n > 0 ? "." : "",
			     config_setting_name(s));
	if (k < 0)
		return n;
	return n + (size_t)k < size ? n + (size_t)k : size - 1;
}

/* v made printable for a message (error_printable), cut at QUOTE_MAX. */
static const char *quote(char buf[QUOTE_MAX], const char *v)
{
	error_printable(buf, QUOTE_MAX, v, strlen(v));
	return buf;
}

/* "FILE:LINE: " for s (the nearest enclosing line libconfig knows), or
 * "FILE: " when there is none. */
static void prefix(const struct loader *ld, const config_setting_t *s,
		   char *buf, size_t size)
{
	const char *file = NULL;
	unsigned line = 0;
	char q[WHERE_MAX];

	for (; s != NULL && line == 0; s = config_setting_parent(s)) {
		line = config_setting_source_line(s);
		file = config_setting_source_file(s);
	}
	if (file != NULL)
		error_printable(q, sizeof q, file, strlen(file));
	if (line > 0)
		snprintf(buf, size, "%s:%u: ", file ? q : ld->where, line);
	else
		snprintf(buf, size, "%s: ", ld->where);
}

/* Fill the error: code, then "FILE:LINE: " for at (may be NULL) and the
 * formatted sentence.  Returns -1. */
static int fail(struct loader *ld, int code, const config_setting_t *at,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct loader *ld, int code, const config_setting_t *at,
		const char *fmt, ...)
{
	char pre[PREFIX_MAX], msg[SM_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	prefix(ld, at, pre, sizeof pre);
	return error_set(ld->err, code, "%s%s", pre, msg);
}

/* An EX_CONFIG error about s, its full name first: "connector.port is 0;
 * ...".  Returns -1. */
static int bad(struct loader *ld, const config_setting_t *s, const char *fmt,
	       ...) __attribute__((format(printf, 3, 4)));
static int bad(struct loader *ld, const config_setting_t *s, const char *fmt,
	       ...)
{
	char name[NAME_MAX_], msg[SM_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	setting_name(s, name, sizeof name);
	return fail(ld, EX_CONFIG, s, "%s %s", name, msg);
}

static int no_memory(struct loader *ld)
{
	return error_set(ld->err, EX_OSERR,
			 "%s: out of memory while loading the configuration",
			 ld->where);
}

/* Append a warning sentence, "FILE:LINE: " for at first. */
static int warn(struct loader *ld, const config_setting_t *at, const char *fmt,
		...) __attribute__((format(printf, 3, 4)));
static int warn(struct loader *ld, const config_setting_t *at, const char *fmt,
		...)
{
	struct config *cfg = ld->cfg;
	char line[SM_ERROR_MAX];
	size_t used;
	char **v;
	va_list ap;

	prefix(ld, at, line, sizeof line);
	used = strlen(line);
	va_start(ap, fmt);
	vsnprintf(line + used, sizeof line - used, fmt, ap);
	va_end(ap);
	v = realloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof *v);
	if (v == NULL)
		return no_memory(ld);
	cfg->warnings = v;
	if ((v[cfg->nwarnings] = strdup(line)) == NULL)
		return no_memory(ld);
	cfg->nwarnings++;
	return 0;
}

/* ---- values ------------------------------------------------------------ */

static int copy(struct loader *ld, char **dst, const char *v)
{
	if ((*dst = strdup(v)) == NULL)
		return no_memory(ld);
	return 0;
}

static bool has_control(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return true;
	return false;
}

/* The string s holds, refused when it carries CR, LF or another control
 * character (header injection).  A secret is never quoted.  *out is ""
 * when refused: no path leaves it unset. */
static int string_of(struct loader *ld, const config_setting_t *s, bool secret,
		     const char **out)
{
	const char *v = config_setting_get_string(s);
	char q[QUOTE_MAX];

	*out = "";
	if (v == NULL)
		v = "";
	if (has_control(v) && secret)
		return bad(ld, s,
			   "contains a line break or another control "
			   "character; only printable characters are "
			   "allowed");
	if (has_control(v))
		return bad(ld, s,
			   "\"%s\" contains a line break or another "
			   "control character; remove it (it could "
			   "inject mail headers)",
			   quote(q, v));
	*out = v;
	return 0;
}

/* Element s of an array or list that must be a string; *out as in
 * string_of. */
static int string_item(struct loader *ld, const config_setting_t *s,
		       const char **out)
{
	*out = "";
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad(ld, s, "must be a string in double quotes, not %s",
			   type_name(s));
	return string_of(ld, s, false, out);
}

/* Number of strings in s: one for a string, else its elements. */
static int items(const config_setting_t *s)
{
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return 1;
	return config_setting_length(s);
}

static const config_setting_t *item(const config_setting_t *s, int i)
{
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return s;
	return config_setting_get_elem(s, (unsigned)i);
}

/* The integer s holds, within lo..hi; fix says what would be right. */
static int int_in(struct loader *ld, const config_setting_t *s, long long lo,
		  long long hi, const char *fix, long long *out)
{
	long long v = config_setting_get_int64(s);

	if ((v < lo || v > hi) && hi == LONG_MAX && lo == 1)
		return bad(ld, s, "is %lld, not a positive number; %s", v, fix);
	if (v < lo || v > hi)
		return bad(ld, s, "is %lld, outside %lld..%lld; %s", v, lo, hi,
			   fix);
	*out = v;
	return 0;
}

static int absolute(struct loader *ld, const config_setting_t *s, const char *v)
{
	char q[QUOTE_MAX];

	if (v[0] == '/')
		return 0;
	return bad(ld, s,
		   "\"%s\" is not an absolute path; write the full "
		   "path, starting with /",
		   quote(q, v));
}

/* A domain-like name (default_domain, hostname): letters, digits, '-'
 * and '.', at most HOST_MAX bytes. */
static int domain_name(struct loader *ld, const config_setting_t *s,
		       const char *v)
{
	char q[QUOTE_MAX];

	if (strlen(v) > HOST_MAX)
		return bad(ld, s,
			   "is %zu bytes long; a domain name has at "
			   "most %d",
			   strlen(v), HOST_MAX);
	for (const char *p = v; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return bad(ld, s,
				   "\"%s\" holds '%c'; use only "
				   "letters, digits, '-' and '.', e.g. "
				   "\"example.fr\"",
				   quote(q, v), *p);
	return 0;
}

/* ---- route settings ---------------------------------------------------- */

static int set_active(struct loader *ld, void *obj, const config_setting_t *s)
{
	(void)obj;
	ld->cfg->connector_active = config_setting_get_bool(s) != 0;
	return 0;
}

static int set_provider(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	return v[0] != '\0' ? copy(ld, &r->provider, v) : 0;
}

static int set_host(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;
	char q[QUOTE_MAX];

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return bad(ld, s,
			   "is empty; set it to the SMTP server's host "
			   "name, e.g. \"smtp.example.org\"");
	if (strlen(v) > HOST_MAX)
		return bad(ld, s,
			   "is %zu bytes long; a host name has at most "
			   "%d",
			   strlen(v), HOST_MAX);
	if (strchr(v, ' ') != NULL)
		return bad(ld, s,
			   "\"%s\" contains a space; write the host "
			   "name alone, e.g. \"smtp.example.org\"",
			   quote(q, v));
	return copy(ld, &r->host, v);
}

static int set_port(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	long long v = 0;

	if (int_in(ld, s, 1, 65535,
		   "use 465 for ssl, 587 for tls or 25 for none", &v) < 0)
		return -1;
	r->port = (int)v;
	return 0;
}

static int set_encryption(struct loader *ld, void *obj,
			  const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;
	char q[QUOTE_MAX];

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	for (size_t e = 0; e < NELEM(encryption_names); e++)
		if (strcasecmp(v, encryption_names[e]) == 0) {
			r->encryption = (enum encryption)e;
			return 0;
		}
	return bad(ld, s,
		   "\"%s\" is not one of none, ssl, tls; \"tls\" is "
		   "STARTTLS (port 587), \"ssl\" implicit TLS (port 465)",
		   quote(q, v));
}

/* Usernames and passwords beyond CONFIG_SECRET_MAX would overflow the
 * 513-byte buffer of libESMTP's PLAIN mechanism (DESIGN §6.7). */
static int secret_length(struct loader *ld, const config_setting_t *s, size_t n)
{
	if (n <= CONFIG_SECRET_MAX)
		return 0;
	return bad(ld, s,
		   "is %zu bytes long; at most %d are accepted "
		   "(libESMTP's PLAIN mechanism would overflow)",
		   n, CONFIG_SECRET_MAX);
}

static int set_username(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0 ||
	    secret_length(ld, s, strlen(v)) < 0)
		return -1;
	return v[0] != '\0' ? copy(ld, &r->username, v) : 0;
}

/* password, password_file and password_command exclude each other. */
static int exclusive(struct loader *ld, const config_setting_t *s)
{
	static const char *const ways[] = {"password", "password_file",
					   "password_command"};
	const config_setting_t *group = config_setting_parent(s);

	for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++)
		if (strcmp(ways[i], config_setting_name(s)) != 0 &&
		    config_setting_get_member(group, ways[i]) != NULL)
			return bad(ld, s,
				   "and %s.%s are both set; keep only one",
				   config_setting_name(group), ways[i]);
	return 0;
}

static int set_password(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;

	if (exclusive(ld, s) < 0 || string_of(ld, s, true, &v) < 0 ||
	    secret_length(ld, s, strlen(v)) < 0)
		return -1;
	return v[0] != '\0' ? copy(ld, &r->password, v) : 0;
}

static int cannot_read(struct loader *ld, const config_setting_t *s,
		       const char *file, int e, const char *fix)
{
	char name[NAME_MAX_], q[QUOTE_MAX];

	setting_name(s, name, sizeof name);
	return fail(ld, e == EACCES || e == EPERM ? EX_NOPERM : EX_CONFIG, s,
		    "%s \"%s\": cannot read: %s; %s", name, quote(q, file),
		    strerror(e), fix);
}

/* Open the password file: a regular file that others cannot read (§7). */
static int open_secret(struct loader *ld, const config_setting_t *s,
		       const char *file)
{
	struct stat st;
	char q[QUOTE_MAX];
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0 && (errno == EACCES || errno == EPERM))
		return cannot_read(ld, s, file, errno,
				   "make it readable by the switchmail group "
				   "(0640 root:switchmail)");
	if (fd < 0)
		return cannot_read(ld, s, file, errno,
				   "create it holding the password alone on "
				   "one line (0640 root:switchmail)");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return bad(ld, s,
			   "\"%s\" is not a regular file; point it at "
			   "a file holding the password alone",
			   quote(q, file));
	}
	if (st.st_mode & S_IROTH) {
		close(fd);
		return bad(ld, s,
			   "\"%s\" is readable by every user; chmod "
			   "o-rwx it (0640 root:switchmail)",
			   quote(q, file));
	}
	return fd;
}

/* The password text read from a file: one line, printable, not empty. */
static int secret_text(struct loader *ld, const config_setting_t *s,
		       const char *buf, size_t n)
{
	if (n == 0)
		return bad(ld, s,
			   "names an empty file; write the password "
			   "in it, alone on one line");
	if (strlen(buf) != n || has_control(buf))
		return bad(ld, s,
			   "names a file holding a control character "
			   "or NUL besides the final line break; write "
			   "the password alone on one line");
	if (n > CONFIG_SECRET_MAX)
		return bad(ld, s,
			   "names a file holding more than %d bytes; "
			   "at most %d are accepted (libESMTP's PLAIN "
			   "mechanism would overflow)",
			   CONFIG_SECRET_MAX, CONFIG_SECRET_MAX);
	return 0;
}

/* Read the password from file: at most SECRET_FILE_MAX bytes, trailing CR
 * and LF trimmed; the buffer is wiped whatever happens. */
static int read_secret(struct loader *ld, const config_setting_t *s,
		       const char *file, char **out)
{
	char buf[SECRET_FILE_MAX + 1];
	size_t n = 0;
	ssize_t k;
	int fd, e, rc;

	if ((fd = open_secret(ld, s, file)) < 0)
		return -1;
	while (n < SECRET_FILE_MAX &&
	       (k = read(fd, buf + n, SECRET_FILE_MAX - n)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			close(fd);
			explicit_bzero(buf, sizeof buf);
			return cannot_read(ld, s, file, e, "check the file");
		}
		n += (size_t)k;
	}
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	rc = secret_text(ld, s, buf, n);
	if (rc == 0)
		rc = copy(ld, out, buf);
	explicit_bzero(buf, sizeof buf);
	return rc;
}

static int set_password_file(struct loader *ld, void *obj,
			     const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;

	if (exclusive(ld, s) < 0 || string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return 0;
	if (absolute(ld, s, v) < 0)
		return -1;
	return read_secret(ld, s, v, &r->password);
}

#define COMMAND_ARGS_MAX 32

/* The words of password_command: an array, or one string split at blanks
 * (no shell, so no quoting).  Returns the count, or -1. */
static int command_words(struct loader *ld, const config_setting_t *s,
			 char **argv)
{
	int n = items(s), argc = 0;
	const char *v = NULL;

	for (int i = 0; i < n; i++) {
		char *copyv, *save = NULL, *w;

		if (string_item(ld, item(s, i), &v) < 0)
			return -1;
		if ((copyv = strdup(v)) == NULL)
			return no_memory(ld);
		for (w = strtok_r(copyv, " \t", &save); w != NULL;
		     w = strtok_r(NULL, " \t", &save)) {
			if (argc == COMMAND_ARGS_MAX ||
			    (argv[argc] = strdup(w)) == NULL) {
				free(copyv);
				return argc == COMMAND_ARGS_MAX
					       ? bad(ld, s, "has more than %d "
							    "words",
						     COMMAND_ARGS_MAX)
					       : no_memory(ld);
			}
			argc++;
		}
		free(copyv);
	}
	return argc > 0 ? argc : bad(ld, s, "is empty; give the program and "
					    "its arguments");
}

/* password_command: the password is what the command prints (secret.h). */
static int set_password_command(struct loader *ld, void *obj,
				const config_setting_t *s)
{
	struct route *r = obj;
	char *argv[COMMAND_ARGS_MAX + 1] = {0}, why[512], *pw = NULL;
	int rc = -1;

	if (exclusive(ld, s) < 0 || command_words(ld, s, argv) < 0)
		goto out;
	if (secret_from_command(argv, &pw, why, sizeof why) != 0)
		rc = bad(ld, s, "%s; fix the command, or use password_file",
			 why);
	else if (secret_length(ld, s, strlen(pw)) == 0)
		rc = copy(ld, &r->password, pw);
out:
	for (int i = 0; i < COMMAND_ARGS_MAX && argv[i] != NULL; i++)
		free(argv[i]);
	if (pw != NULL) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	return rc;
}

static int set_from(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL, *why = NULL;
	char q[QUOTE_MAX];

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (!address_valid(v, &why))
		return bad(ld, s,
			   "\"%s\" is not a usable address (%s); write "
			   "a bare address such as \"contact@example.fr\"",
			   quote(q, v), why != NULL ? why : "invalid");
	if (strchr(v, '@') == NULL)
		return bad(ld, s,
			   "\"%s\" has no domain; write the full "
			   "address, e.g. \"%s@example.fr\"",
			   quote(q, v), q);
	return copy(ld, &r->from, v);
}

static int sender_pattern(struct loader *ld, const config_setting_t *s,
			  const char *v)
{
	if (v[0] == '\0')
		return bad(ld, s,
			   "is empty; write a pattern such as "
			   "\"*@example.fr\"");
	if (strlen(v) > ADDRESS_MAX)
		return bad(ld, s,
			   "is %zu bytes long; a sender pattern has at "
			   "most %d",
			   strlen(v), ADDRESS_MAX);
	return 0;
}

/* allowed_senders: one pattern or an array/list of them; [] keeps the
 * default ({ from }). */
static int set_allowed(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	int n = items(s);
	const char *v = NULL;

	if (n == 0)
		return 0;
	r->allowed_senders = calloc((size_t)n, sizeof *r->allowed_senders);
	if (r->allowed_senders == NULL)
		return no_memory(ld);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = item(s, i);

		if (string_item(ld, e, &v) < 0 ||
		    sender_pattern(ld, e, v) < 0 ||
		    copy(ld, &r->allowed_senders[i], v) < 0)
			return -1;
		r->nallowed = (size_t)i + 1;
	}
	return 0;
}

static int set_ca_file(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;
	char q[QUOTE_MAX];
	int e;

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return 0;
	if (absolute(ld, s, v) < 0)
		return -1;
	if (access(v, R_OK) != 0) {
		e = errno;
		return bad(ld, s,
			   "\"%s\": cannot read: %s; point it at a "
			   "readable PEM file, or remove it to use the "
			   "system store",
			   quote(q, v), strerror(e));
	}
	return copy(ld, &r->tls_ca_file, v);
}

/* "sha256:" and 64 hex digits, colons anywhere after the prefix, into
 * out as "sha256:" and lower-case hex.  Returns false when malformed. */
static bool parse_fingerprint(const char *v, char out[8 + FINGERPRINT_HEX])
{
	size_t n = 0;

	if (strncasecmp(v, "sha256:", 7) != 0)
		return false;
	memcpy(out, "sha256:", 7);
	for (const char *p = v + 7; *p != '\0'; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || n == FINGERPRINT_HEX)
			return false;
		out[7 + n++] = (char)tolower((unsigned char)*p);
	}
	out[7 + n] = '\0';
	return n == FINGERPRINT_HEX;
}

static int set_fingerprint(struct loader *ld, void *obj,
			   const config_setting_t *s)
{
	struct route *r = obj;
	const char *v = NULL;
	char q[QUOTE_MAX], fp[8 + FINGERPRINT_HEX];

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return 0;
	if (!parse_fingerprint(v, fp))
		return bad(ld, s,
			   "\"%s\" is not \"sha256:\" followed by 64 "
			   "hex digits; write e.g. \"sha256:AB:CD:...\" "
			   "(colons optional)",
			   quote(q, v));
	return copy(ld, &r->tls_fingerprint, fp);
}

static int set_tls_verify(struct loader *ld, void *obj,
			  const config_setting_t *s)
{
	(void)ld;
	((struct route *)obj)->tls_verify = config_setting_get_bool(s) != 0;
	return 0;
}

static int set_session_cache(struct loader *ld, void *obj,
			     const config_setting_t *s)
{
	(void)ld;
	((struct route *)obj)->tls_session_cache =
	    config_setting_get_bool(s) != 0;
	return 0;
}

static int set_plaintext(struct loader *ld, void *obj,
			 const config_setting_t *s)
{
	(void)ld;
	((struct route *)obj)->allow_plaintext_auth =
	    config_setting_get_bool(s) != 0;
	return 0;
}

static int set_timeout(struct loader *ld, void *obj, const config_setting_t *s)
{
	long long v = 0;

	if (int_in(ld, s, 1, CONFIG_TIMEOUT_MAX,
		   "it is the seconds one step of a connection may take; 15 "
		   "is usual",
		   &v) < 0)
		return -1;
	((struct route *)obj)->timeout = (int)v;
	return 0;
}

static const struct key route_keys[] = {
    {"active", K_BOOL, "true", set_active, true},
    {"provider", K_STRING, "\"ovh\"", set_provider, false},
    {"host", K_STRING, "\"smtp.example.org\"", set_host, false},
    {"port", K_INT, "587", set_port, false},
    {"encryption", K_STRING, "\"tls\"", set_encryption, false},
    {"username", K_STRING, "\"contact@example.org\"", set_username, false},
    {"password", K_STRING, "\"...\"", set_password, false},
    {"password_file", K_STRING, "\"/etc/switchmail/secret\"", set_password_file,
     false},
    {"password_command", K_STRINGS, "[ \"/usr/bin/pass\", \"show\", \"smtp\" ]",
     set_password_command, false},
    {"from", K_STRING, "\"contact@example.org\"", set_from, false},
    {"allowed_senders", K_STRINGS, "[ \"*@example.org\" ]", set_allowed, false},
    {"tls_ca_file", K_STRING, "\"/etc/ssl/certs/ca-certificates.crt\"",
     set_ca_file, false},
    {"tls_fingerprint", K_STRING, "\"sha256:AB:CD:...\"", set_fingerprint,
     false},
    {"tls_verify", K_BOOL, "true", set_tls_verify, false},
    {"tls_session_cache", K_BOOL, "true", set_session_cache, false},
    {"allow_plaintext_auth", K_BOOL, "false", set_plaintext, false},
    {"timeout", K_INT, "15", set_timeout, false},
};

/* ---- groups ------------------------------------------------------------ */

/* Edit distance of two short names (for "did you mean"); large when
 * either is too long to bother. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[33], prev, tmp;

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev + (tolower((unsigned char)a[i - 1]) !=
					     tolower((unsigned char)b[j - 1]));
			tmp = row[j];
			row[j] = sub;
			if (row[j] > tmp + 1)
				row[j] = tmp + 1;
			if (row[j] > row[j - 1] + 1)
				row[j] = row[j - 1] + 1;
			prev = tmp;
		}
	}
	return row[lb];
}

/* s is not in keys: name the known ones and the nearest. */
static int unknown(struct loader *ld, const config_setting_t *s,
		   const struct key *keys, size_t nkeys, bool native)
{
	const config_setting_t *group = config_setting_parent(s);
	const char *name = config_setting_name(s), *near = NULL;
	char known[512] = "", hint[96] = "";
	size_t used = 0, best = 3;

	for (size_t i = 0; i < nkeys; i++) {
		size_t d = distance(name, keys[i].name);

		if (native && keys[i].connector_only)
			continue;
		if (used < sizeof known)
			used += (size_t)snprintf(
			    known + used, sizeof known - used, "%s%s",
			    used ? ", " : "", keys[i].name);
		if (d < best && d < strlen(keys[i].name)) {
			best = d;
			near = keys[i].name;
		}
	}
	if (near != NULL)
		snprintf(hint, sizeof hint, " (did you mean %s?)", near);
	return bad(ld, s, "is not a known setting%s; known %s%s: %s", hint,
		   config_setting_is_root(group) ? "at the top level" : "in ",
		   config_setting_is_root(group) ? ""
						 : config_setting_name(group),
		   known);
}

static bool kind_ok(enum kind k, int type)
{
	switch (k) {
	case K_STRING:
		return type == CONFIG_TYPE_STRING;
	case K_INT:
		return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
	case K_BOOL:
		return type == CONFIG_TYPE_BOOL;
	case K_GROUP:
		return type == CONFIG_TYPE_GROUP;
	case K_STRINGS:
		return type == CONFIG_TYPE_STRING ||
		       type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	case K_INTS:
		return type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	}
	return false;
}

/* Check every member of group against keys and store it into obj. */
static int load_group(struct loader *ld, const config_setting_t *group,
		      const struct key *keys, size_t nkeys, bool native,
		      void *obj)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s =
		    config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct key *k = NULL;

		for (size_t j = 0; j < nkeys && k == NULL; j++)
			if (strcmp(name, keys[j].name) == 0 &&
			    !(native && keys[j].connector_only))
				k = &keys[j];
		if (k == NULL)
			return unknown(ld, s, keys, nkeys, native);
		if (!kind_ok(k->kind, config_setting_type(s)))
			return bad(ld, s, "must be %s, not %s; e.g. %s = %s;",
				   kind_names[k->kind], type_name(s), k->name,
				   k->example);
		if (k->set(ld, obj, s) < 0)
			return -1;
	}
	return 0;
}

/* ---- whole routes ------------------------------------------------------ */

static const struct {
	const char *route, *setting, *fix;
} missing_fixes[] = {
    {"native", "host", "set it to your relay's host name"},
    {"native", "from",
     "set it to the platform's sender address, e.g. "
     "\"no-reply@example.org\""},
    {"connector", "host",
     "set it to your provider's SMTP server, or set "
     "active = false"},
    {"connector", "from",
     "set it to the mailbox you send from (usually "
     "the username), or set active = false"},
};

/* A required setting of route r: missing is reported at its group. */
static int need(struct loader *ld, const config_setting_t *group,
		const struct route *r, const char *v, const char *setting)
{
	const char *fix = "set it";

	if (v != NULL)
		return 0;
	for (size_t i = 0; i < NELEM(missing_fixes); i++)
		if (strcmp(missing_fixes[i].route, r->name) == 0 &&
		    strcmp(missing_fixes[i].setting, setting) == 0)
			fix = missing_fixes[i].fix;
	return fail(
	    ld, EX_CONFIG, group, "%s.%s is missing%s; %s", r->name, setting,
	    strcmp(r->name, "connector") == 0 ? " while connector.active = true"
					      : "",
	    fix);
}

/* Credentials go in pairs, and not over plaintext unless allowed. */
static int check_auth(struct loader *ld, const config_setting_t *group,
		      const struct route *r)
{
	const config_setting_t *user =
	    config_setting_get_member(group, "username");
	const config_setting_t *pass =
	    config_setting_get_member(group, "password");

	if (pass == NULL)
		pass = config_setting_get_member(group, "password_file");
	if (pass == NULL)
		pass = config_setting_get_member(group, "password_command");
	if (r->username != NULL && r->password == NULL)
		return bad(ld, user,
			   "is set without a password; add %s.password, "
			   "%s.password_file or password_command, or remove "
			   "the username for a relay without AUTH",
			   r->name, r->name);
	if (r->username == NULL && r->password != NULL)
		return bad(ld, pass,
			   "is set without %s.username; add the "
			   "account name (usually the full address)",
			   r->name);
	if (r->username != NULL && r->encryption == ENC_NONE &&
	    !r->allow_plaintext_auth)
		return bad(ld, user,
			   "is set but %s.encryption is \"none\": "
			   "the password would cross the network "
			   "unencrypted; use encryption = \"tls\" "
			   "(port 587) or \"ssl\" (port 465), or set "
			   "allow_plaintext_auth = true for a trusted "
			   "local relay",
			   r->name);
	return 0;
}

/* Who may have written a file that holds a secret or a command to run:
 * root, or the caller when the caller's own rights are all we have.  A
 * set-group-id run trusts root alone (§7). */
static const char *untrusted_writer(const struct stat *st)
{
	bool privileged = getegid() != getgid();

	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "other users can write it; chmod go-w it "
		       "(installed: 0640 root:switchmail)";
	if (st->st_uid != 0 && (privileged || st->st_uid != getuid()))
		return "it is owned by another user than root; chown root it "
		       "(installed: 0640 root:switchmail)";
	return NULL;
}

/* A password written in a file every user can read is refused, and so is
 * a password or password_command in a file others could have written:
 * whoever writes it decides what runs and where mail goes (§7). */
static int check_secret_mode(struct loader *ld, const config_setting_t *group)
{
	const config_setting_t *pass =
	    config_setting_get_member(group, "password");
	const config_setting_t *cmd =
	    config_setting_get_member(group, "password_command");
	const config_setting_t *s = pass != NULL ? pass : cmd;
	const char *file, *why;
	mode_t mode = ld->mode;
	struct stat st = {.st_mode = ld->mode, .st_uid = ld->owner};

	if (s == NULL || (s == pass && (config_setting_get_string(pass) == NULL ||
					config_setting_get_string(pass)[0] == '\0')))
		return 0;
	file = config_setting_source_file(s);
	if (file != NULL && stat(file, &st) == 0)
		mode = st.st_mode;
	if (s == pass && (mode & S_IROTH))
		return bad(ld, pass,
			   "is in a file every user can read (mode %04o); "
			   "chmod o-rwx it (installed: 0640 root:switchmail), "
			   "or move the password to a password_file",
			   (unsigned)(mode & 07777));
	if ((why = untrusted_writer(&st)) != NULL) /* file NULL: the main one */
		return bad(ld, s, "is in a file that is not safe: %s", why);
	return 0;
}

static const struct {
	enum encryption encryption;
	int port;
	const char *usual;
} odd_pairs[] = {
    {ENC_SSL, 587,
     "port 587 usually speaks STARTTLS (encryption = "
     "\"tls\"); implicit TLS (\"ssl\") is usual on port 465"},
    {ENC_TLS, 465,
     "port 465 usually speaks implicit TLS (encryption = "
     "\"ssl\"); STARTTLS (\"tls\") is usual on port 587"},
    {ENC_NONE, 465,
     "port 465 usually speaks implicit TLS (encryption = "
     "\"ssl\")"},
    {ENC_NONE, 587,
     "port 587 usually offers STARTTLS (encryption = "
     "\"tls\")"},
};

/* Whether host belongs to Gmail / Google Workspace. */
static bool google_host(const char *host)
{
	static const char *const domains[] = {"gmail.com", "googlemail.com",
					      "google.com"};
	size_t n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	for (size_t i = 0; i < NELEM(domains); i++) {
		size_t k = strlen(domains[i]);

		if (n >= k && strncasecmp(host + n - k, domains[i], k) == 0 &&
		    (n == k || host[n - k - 1] == '.'))
			return true;
	}
	return false;
}

static int route_warnings(struct loader *ld, const config_setting_t *group,
			  const struct route *r)
{
	for (size_t i = 0; i < NELEM(odd_pairs); i++)
		if (r->encryption == odd_pairs[i].encryption &&
		    r->port == odd_pairs[i].port &&
		    warn(ld, group,
			 "%s: encryption \"%s\" on port %d rarely "
			 "goes together: %s",
			 r->name, encryption_names[r->encryption], r->port,
			 odd_pairs[i].usual) < 0)
			return -1;
	if (r->username != NULL && strchr(r->username, '@') != NULL &&
	    r->from != NULL && strcasecmp(r->from, r->username) != 0 &&
	    warn(ld, group,
		 "%s.from \"%s\" differs from %s.username \"%s\": "
		 "most providers reject or junk mail whose sender "
		 "is not the authenticated mailbox",
		 r->name, r->from, r->name, r->username) < 0)
		return -1;
	if (r->host != NULL && google_host(r->host) &&
	    warn(ld, group,
		 "%s.host \"%s\": Gmail/Google Workspace needs an "
		 "app password (2-Step Verification on, then "
		 "myaccount.google.com/apppasswords); the account "
		 "password is refused",
		 r->name, r->host) < 0)
		return -1;
	if (!r->tls_verify &&
	    warn(ld, group,
		 "certificate verification is OFF for %s: anyone "
		 "on the path can read the password and mail",
		 r->name) < 0)
		return -1;
	return 0;
}

static int default_port(enum encryption e)
{
	return e == ENC_SSL ? 465 : e == ENC_TLS ? 587 : 25;
}

/* ---- provider presets applied to a route -------------------------------- */

/* The presets, read at the first route naming a provider.  Returns the
 * list, or NULL when the file cannot be read (ld->presets_err says why). */
static const struct provider_list *presets(struct loader *ld)
{
	if (ld->presets_state == 0)
		ld->presets_state =
		    providers_load(&ld->presets, &ld->presets_err) == 0 ? 1
									: -1;
	return ld->presets_state > 0 ? &ld->presets : NULL;
}

/* The presets cannot be read: an error when the route needs the preset's
 * host, a warning when it would have filled port or encryption. */
static int presets_unreadable(struct loader *ld, const config_setting_t *s,
			      const config_setting_t *group,
			      const struct route *r, bool needed)
{
	char name[NAME_MAX_];

	setting_name(s, name, sizeof name);
	if (r->host == NULL && needed)
		return bad(ld, s,
			   "\"%s\": the presets cannot be read (%s); set "
			   "%s.host, port and encryption yourself, or "
			   "reinstall providers.conf",
			   r->provider, ld->presets_err.msg, r->name);
	if (config_setting_get_member(group, "port") != NULL &&
	    config_setting_get_member(group, "encryption") != NULL)
		return 0;
	return warn(ld, s,
		    "%s \"%s\": the presets cannot be read (%s); port and "
		    "encryption left out take the usual defaults",
		    name, r->provider, ld->presets_err.msg);
}

static int unknown_preset(struct loader *ld, const config_setting_t *s,
			  const struct provider_list *pl, const char *typed)
{
	char near[256], q[QUOTE_MAX];

	providers_near(pl, typed, near, sizeof near);
	if (near[0] != '\0')
		return bad(ld, s,
			   "\"%s\" is not a known preset (close: %s); see "
			   "switchmailctl providers",
			   quote(q, typed), near);
	return bad(ld, s,
		   "\"%s\" is not a known preset; switchmailctl providers "
		   "lists them",
		   quote(q, typed));
}

/* Fill host, encryption and port that group left out from r's preset
 * (*out: the preset, or NULL when r names none).  needed: the route must
 * be usable (native, or the connector while active). */
static int apply_preset(struct loader *ld, const config_setting_t *group,
			struct route *r, bool needed,
			const struct provider **out)
{
	const config_setting_t *s = config_setting_get_member(group, "provider");
	const struct provider_list *pl;
	const struct provider *p;

	*out = NULL;
	if (r->provider == NULL)
		return 0;
	if ((pl = presets(ld)) == NULL)
		return presets_unreadable(ld, s, group, r, needed);
	if ((p = providers_find(pl, r->provider)) == NULL)
		return unknown_preset(ld, s, pl, r->provider);
	*out = p;
	if (r->host == NULL && p->host[0] != '\0' &&
	    copy(ld, &r->host, p->host) < 0)
		return -1;
	if (r->host == NULL && needed)
		return fail(ld, EX_CONFIG, group,
			    "%s.host is missing; the \"%s\" preset cannot "
			    "guess it: %s",
			    r->name, p->name, p->host_hint);
	if (config_setting_get_member(group, "encryption") == NULL)
		r->encryption = p->encryption;
	if (r->port == 0 && r->encryption == p->encryption)
		r->port = p->port;
	return 0;
}

/* What the preset says about this use of it: its standing warning, a
 * port it does not accept, a self-signed server left unpinned. */
static int preset_warnings(struct loader *ld, const config_setting_t *group,
			   const struct route *r, const struct provider *p)
{
	if (p == NULL)
		return 0;
	if (p->warning[0] != '\0' &&
	    warn(ld, group, "%s.provider \"%s\": %s", r->name, p->name,
		 p->warning) < 0)
		return -1;
	for (size_t i = 0; i < p->nunsupported; i++)
		if (r->port == p->unsupported_ports[i] &&
		    warn(ld, group,
			 "%s.port %d: %s does not accept this port; use "
			 "port %d with encryption \"%s\"",
			 r->name, r->port, p->title, p->port,
			 encryption_names[p->encryption]) < 0)
			return -1;
	if (p->pin && r->tls_fingerprint == NULL &&
	    warn(ld, group,
		 "%s: %s uses a self-signed certificate; pin it with "
		 "%s.tls_fingerprint (switchmailctl test shows it)",
		 r->name, p->title, r->name) < 0)
		return -1;
	return 0;
}

/* Load one route group; required: host and from must be there. */
static int load_route(struct loader *ld, const config_setting_t *group,
		      struct route *r, bool native)
{
	const struct provider *p = NULL;
	bool needed;

	r->encryption = ENC_TLS;
	r->tls_verify = true;
	r->tls_session_cache = true;
	r->timeout = CONFIG_TIMEOUT_DEFAULT;
	if (load_group(ld, group, route_keys, NELEM(route_keys), native, r) < 0)
		return -1;
	needed = native || ld->cfg->connector_active;
	if (apply_preset(ld, group, r, needed, &p) < 0)
		return -1;
	if (needed && (need(ld, group, r, r->host, "host") < 0 ||
		       need(ld, group, r, r->from, "from") < 0))
		return -1;
	if (check_auth(ld, group, r) < 0 || check_secret_mode(ld, group) < 0)
		return -1;
	if (r->port == 0)
		r->port = default_port(r->encryption);
	if (r->from != NULL && r->nallowed == 0) {
		if ((r->allowed_senders = calloc(1, sizeof(char *))) == NULL ||
		    copy(ld, &r->allowed_senders[0], r->from) < 0)
			return no_memory(ld);
		r->nallowed = 1;
	}
	if (preset_warnings(ld, group, r, p) < 0)
		return -1;
	return route_warnings(ld, group, r);
}

/* A connector counts as configured when it can send: host and from. */
static int set_connector(struct loader *ld, void *obj,
			 const config_setting_t *s)
{
	struct config *cfg = obj;

	if (load_route(ld, s, &cfg->connector, false) < 0)
		return -1;
	cfg->has_connector =
	    cfg->connector.host != NULL && cfg->connector.from != NULL;
	return 0;
}

static int set_native(struct loader *ld, void *obj, const config_setting_t *s)
{
	return load_route(ld, s, &((struct config *)obj)->native, true);
}

/* ---- aliases ----------------------------------------------------------- */

/* The value of an alias: a string, or an array/list of strings joined
 * with ", ".  *out is a new string. */
static int alias_value(struct loader *ld, const config_setting_t *s, char **out)
{
	int n = items(s);
	size_t len = 1, o = 0;
	const char *v = NULL;

	for (int i = 0; i < n; i++) {
		if (string_item(ld, item(s, i), &v) < 0)
			return -1;
		len += strlen(v) + 2;
	}
	if ((*out = malloc(len)) == NULL)
		return no_memory(ld);
	(*out)[0] = '\0';
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(*out + o, len - o, "%s%s",
				      i > 0 ? ", " : "",
				      config_setting_get_string(item(s, i)));
	return 0;
}

/* The value must be an address list naming at least one address. */
static int alias_addresses(struct loader *ld, const config_setting_t *s,
			   const char *value)
{
	struct addrlist list = {0};
	struct sm_error aerr;
	char why[SM_ERROR_MAX / 2];
	size_t n;
	int rc;

	error_clear(&aerr);
	rc = address_list_parse(value, strlen(value), &list, &aerr);
	n = list.n;
	addrlist_free(&list);
	if (rc < 0) {
		error_printable(why, sizeof why, aerr.msg, strlen(aerr.msg));
		return bad(ld, s, "is not a valid address list: %s", why);
	}
	if (n == 0)
		return bad(ld, s,
			   "names no address; write e.g. %s = "
			   "\"admin@example.fr\";",
			   config_setting_name(s));
	return 0;
}

static int load_alias(struct loader *ld, const config_setting_t *s)
{
	struct config *cfg = ld->cfg;
	const char *name = config_setting_name(s);
	struct alias_entry *a = &cfg->aliases[cfg->naliases];
	char *value = NULL, *copy_name = NULL;

	if (strchr(name, '@') != NULL || has_control(name))
		return bad(ld, s,
			   "is not a local name; alias names have no "
			   "'@' and no control characters");
	for (size_t i = 0; i < cfg->naliases; i++)
		if (strcasecmp(cfg->aliases[i].name, name) == 0)
			return bad(ld, s,
				   "repeats aliases.%s (names are "
				   "compared without case); keep one",
				   cfg->aliases[i].name);
	if (!kind_ok(K_STRINGS, config_setting_type(s)))
		return bad(ld, s,
			   "must be an address list in double quotes or "
			   "an array of them, not %s; e.g. %s = "
			   "\"admin@example.fr\";",
			   type_name(s), name);
	if (alias_value(ld, s, &value) < 0)
		return -1;
	if (alias_addresses(ld, s, value) < 0 ||
	    copy(ld, &copy_name, name) < 0) {
		free(value);
		return -1;
	}
	a->name = copy_name;
	a->value = value;
	cfg->naliases++;
	return 0;
}

static int set_aliases(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct config *cfg = obj;
	int n = config_setting_length(s);

	cfg->aliases = calloc(n > 0 ? (size_t)n : 1, sizeof *cfg->aliases);
	if (cfg->aliases == NULL)
		return no_memory(ld);
	for (int i = 0; i < n; i++)
		if (load_alias(ld, config_setting_get_elem(s, (unsigned)i)) < 0)
			return -1;
	return 0;
}

/* ---- top level, queue, log --------------------------------------------- */

static int set_default_domain(struct loader *ld, void *obj,
			      const config_setting_t *s)
{
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0 || domain_name(ld, s, v) < 0)
		return -1;
	return v[0] ? copy(ld, &((struct config *)obj)->default_domain, v) : 0;
}

static int set_hostname(struct loader *ld, void *obj, const config_setting_t *s)
{
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0 || domain_name(ld, s, v) < 0)
		return -1;
	return v[0] ? copy(ld, &((struct config *)obj)->hostname, v) : 0;
}

static int set_queue_dir(struct loader *ld, void *obj,
			 const config_setting_t *s)
{
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return bad(ld, s, "is empty; e.g. dir = \"%s\";",
			   CONFIG_QUEUE_DIR_DEFAULT);
	if (absolute(ld, s, v) < 0)
		return -1;
	return copy(ld, &((struct config *)obj)->queue_dir, v);
}

static int set_retry(struct loader *ld, void *obj, const config_setting_t *s)
{
	struct config *cfg = obj;
	int n = config_setting_length(s);

	if (n < 1 || n > RETRY_MAX)
		return bad(ld, s,
			   "has %d entries; give 1 to %d delays in "
			   "seconds, e.g. retry = [60, 300, 1800, 7200];",
			   n, RETRY_MAX);
	if ((cfg->retry = calloc((size_t)n, sizeof *cfg->retry)) == NULL)
		return no_memory(ld);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e =
		    config_setting_get_elem(s, (unsigned)i);
		long long v = 0;

		if (!kind_ok(K_INT, config_setting_type(e)))
			return bad(ld, e,
				   "must be an integer (seconds), not %s",
				   type_name(e));
		if (int_in(ld, e, 1, LONG_MAX,
			   "a retry delay is a positive number of seconds",
			   &v) < 0)
			return -1;
		cfg->retry[i] = (long)v;
		cfg->nretry = (size_t)i + 1;
	}
	return 0;
}

static int set_max_age(struct loader *ld, void *obj, const config_setting_t *s)
{
	long long v = 0;

	if (int_in(ld, s, 1, LONG_MAX,
		   "give the seconds a message may wait before it fails, e.g. "
		   "432000 (5 days)",
		   &v) < 0)
		return -1;
	((struct config *)obj)->max_age = (long)v;
	return 0;
}

static int set_log_syslog(struct loader *ld, void *obj,
			  const config_setting_t *s)
{
	(void)ld;
	((struct config *)obj)->log_syslog = config_setting_get_bool(s) != 0;
	return 0;
}

static int set_log_file(struct loader *ld, void *obj, const config_setting_t *s)
{
	const char *v = NULL;

	if (string_of(ld, s, false, &v) < 0)
		return -1;
	if (v[0] == '\0')
		return 0;
	if (absolute(ld, s, v) < 0)
		return -1;
	return copy(ld, &((struct config *)obj)->log_file, v);
}

static const struct key queue_keys[] = {
    {"dir", K_STRING, "\"" CONFIG_QUEUE_DIR_DEFAULT "\"", set_queue_dir, false},
    {"retry", K_INTS, "[60, 300, 1800, 7200]", set_retry, false},
    {"max_age", K_INT, "432000", set_max_age, false},
};

static const struct key log_keys[] = {
    {"syslog", K_BOOL, "true", set_log_syslog, false},
    {"file", K_STRING, "\"/var/log/switchmail.log\"", set_log_file, false},
};

static int set_queue(struct loader *ld, void *obj, const config_setting_t *s)
{
	return load_group(ld, s, queue_keys, NELEM(queue_keys), false, obj);
}

static int set_log(struct loader *ld, void *obj, const config_setting_t *s)
{
	return load_group(ld, s, log_keys, NELEM(log_keys), false, obj);
}

static const struct key root_keys[] = {
    {"connector", K_GROUP, "{ active = false; host = \"smtp.example.org\"; }",
     set_connector, false},
    {"native", K_GROUP,
     "{ host = \"localhost\"; from = \"no-reply@example.org\"; }", set_native,
     false},
    {"aliases", K_GROUP, "{ root = \"admin@example.org\"; }", set_aliases,
     false},
    {"default_domain", K_STRING, "\"example.org\"", set_default_domain, false},
    {"hostname", K_STRING, "\"mail.example.org\"", set_hostname, false},
    {"queue", K_GROUP, "{ dir = \"" CONFIG_QUEUE_DIR_DEFAULT "\"; }", set_queue,
     false},
    {"log", K_GROUP, "{ syslog = true; }", set_log, false},
};

/* ---- the file ---------------------------------------------------------- */

/* The EHLO name when none is set: the node name, no DNS (it could hang). */
static int default_hostname(struct loader *ld)
{
	char name[HOST_MAX + 2];

	if (gethostname(name, sizeof name) != 0)
		name[0] = '\0';
	name[sizeof name - 1] = '\0';
	if (name[0] == '\0' || has_control(name) || strchr(name, ' ') != NULL)
		snprintf(name, sizeof name, "localhost");
	return copy(ld, &ld->cfg->hostname, name);
}

/* Defaults of what the file left out. */
static int finish(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->queue_dir == NULL &&
	    copy(ld, &cfg->queue_dir, CONFIG_QUEUE_DIR_DEFAULT) < 0)
		return -1;
	if (cfg->retry == NULL) {
		if ((cfg->retry = malloc(sizeof default_retry)) == NULL)
			return no_memory(ld);
		memcpy(cfg->retry, default_retry, sizeof default_retry);
		cfg->nretry = NELEM(default_retry);
	}
	if (cfg->max_age == 0)
		cfg->max_age = CONFIG_MAX_AGE_DEFAULT;
	if (cfg->hostname == NULL)
		return default_hostname(ld);
	return 0;
}

static int unreadable(struct loader *ld, int e)
{
	if (ld->is_presets)
		return fail(ld, e == EACCES || e == EPERM ? EX_NOPERM : EX_CONFIG,
			    NULL,
			    "cannot read: %s; reinstall providers.conf or set "
			    "%s to its path",
			    strerror(e), PROVIDERS_ENV);
	if (e == EACCES || e == EPERM)
		return fail(ld, EX_NOPERM, NULL,
			    "cannot read: %s; check its owner and mode "
			    "(installed: 0640 root:switchmail, read through "
			    "the setgid switchmail binary) or pass -C FILE",
			    strerror(e));
	return fail(ld, EX_CONFIG, NULL,
		    "cannot read: %s; create it (see switchmail.conf(5)) or "
		    "pass -C FILE",
		    strerror(e));
}

/* Open and parse the file: a regular file of sane size. */
static int parse_file(struct loader *ld, config_t *lc, const char *path)
{
	struct stat st;
	FILE *fp;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return unreadable(ld, errno);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CONFIG_FILE_MAX) {
		close(fd);
		return fail(ld, EX_CONFIG, NULL,
			    "is not a regular file of at "
			    "most %ld bytes; pass -C FILE with the "
			    "configuration file",
			    CONFIG_FILE_MAX);
	}
	ld->mode = st.st_mode;
	ld->owner = st.st_uid;
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return unreadable(ld, errno);
	}
	if (config_read(lc, fp) != CONFIG_TRUE) {
		const char *file = config_error_file(lc);
		char q[WHERE_MAX], text[QUOTE_MAX];

		fclose(fp);
		if (file != NULL)
			error_printable(q, sizeof q, file, strlen(file));
		quote(text,
		      config_error_text(lc) ? config_error_text(lc) : "?");
		if (config_error_line(lc) > 0)
			return error_set(
			    ld->err, EX_CONFIG, "%s:%d: syntax error: %s",
			    file ? q : ld->where, config_error_line(lc), text);
		return error_set(ld->err, EX_CONFIG, "%s: syntax error: %s",
				 file ? q : ld->where, text);
	}
	fclose(fp);
	return 0;
}

/* ---- providers.conf (parsed here, used through providers.h) ------------ */

/* The string settings of a preset and where they go. */
static const struct {
	const char *name;
	size_t off;
} preset_strings[] = {
    {"title", offsetof(struct provider, title)},
    {"host", offsetof(struct provider, host)},
    {"host_hint", offsetof(struct provider, host_hint)},
    {"username", offsetof(struct provider, username)},
    {"username_hint", offsetof(struct provider, username_hint)},
    {"password_hint", offsetof(struct provider, password_hint)},
    {"sender", offsetof(struct provider, sender)},
    {"limits", offsetof(struct provider, limits)},
    {"notes", offsetof(struct provider, notes)},
    {"warning", offsetof(struct provider, warning)},
};

/* The other settings of a preset and what they hold. */
static const struct {
	const char *name;
	enum kind kind;
} preset_others[] = {
    {"port", K_INT},
    {"encryption", K_STRING},
    {"unsupported_ports", K_INTS},
    {"pin", K_BOOL},
};

#define PRESET_KNOWN                                                           \
	"title, host, host_hint, port, encryption, username, "                 \
	"username_hint, password_hint, sender, limits, notes, warning, "      \
	"unsupported_ports, pin"

static char **preset_string(struct provider *p, size_t i)
{
	return (char **)(void *)((char *)p + preset_strings[i].off);
}

/* unsupported_ports = [ 465, ... ]; */
static int preset_ports(struct loader *ld, const config_setting_t *s,
			struct provider *p)
{
	int n = config_setting_length(s);
	long long v = 0;

	if (n > PROVIDER_PORTS_MAX)
		return bad(ld, s, "has %d entries; at most %d", n,
			   PROVIDER_PORTS_MAX);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e =
		    config_setting_get_elem(s, (unsigned)i);

		if (!kind_ok(K_INT, config_setting_type(e)))
			return bad(ld, e, "must be a port number, not %s",
				   type_name(e));
		if (int_in(ld, e, 1, 65535, "a port is 1..65535", &v) < 0)
			return -1;
		p->unsupported_ports[p->nunsupported++] = (int)v;
	}
	return 0;
}

/* A non-string setting s of a preset into p. */
static int preset_other(struct loader *ld, const config_setting_t *s,
			const char *name, struct provider *p)
{
	struct route r = {.name = "preset"};

	if (strcmp(name, "port") == 0) {
		if (set_port(ld, &r, s) < 0)
			return -1;
		p->port = r.port;
		return 0;
	}
	if (strcmp(name, "encryption") == 0) {
		if (set_encryption(ld, &r, s) < 0)
			return -1;
		p->encryption = r.encryption;
		return 0;
	}
	if (strcmp(name, "pin") == 0) {
		p->pin = config_setting_get_bool(s) != 0;
		return 0;
	}
	return preset_ports(ld, s, p);
}

/* One setting s of a preset into p. */
static int preset_setting(struct loader *ld, const config_setting_t *s,
			  struct provider *p)
{
	const char *name = config_setting_name(s), *v = NULL;

	for (size_t i = 0; i < NELEM(preset_strings); i++) {
		if (strcmp(name, preset_strings[i].name) != 0)
			continue;
		if (!kind_ok(K_STRING, config_setting_type(s)))
			return bad(ld, s, "must be %s, not %s",
				   kind_names[K_STRING], type_name(s));
		if (string_of(ld, s, false, &v) < 0)
			return -1;
		return copy(ld, preset_string(p, i), v);
	}
	for (size_t i = 0; i < NELEM(preset_others); i++) {
		if (strcmp(name, preset_others[i].name) != 0)
			continue;
		if (!kind_ok(preset_others[i].kind, config_setting_type(s)))
			return bad(ld, s, "must be %s, not %s",
				   kind_names[preset_others[i].kind],
				   type_name(s));
		return preset_other(ld, s, name, p);
	}
	return bad(ld, s, "is not a known preset setting; known: %s",
		   PRESET_KNOWN);
}

/* One preset: name = { title = "..."; host = "..."; port = N; ... }; */
static int load_preset(struct loader *ld, const config_setting_t *g,
		       struct provider *p)
{
	int n = config_setting_length(g);

	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return bad(ld, g, "must be a group { title = \"...\"; ... }, "
				  "not %s",
			   type_name(g));
	if (copy(ld, &p->name, config_setting_name(g)) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (preset_setting(ld, config_setting_get_elem(g, (unsigned)i),
				   p) < 0)
			return -1;
	for (size_t i = 0; i < NELEM(preset_strings); i++)
		if (*preset_string(p, i) == NULL &&
		    copy(ld, preset_string(p, i), "") < 0)
			return -1;
	if (p->title[0] == '\0' || p->port == 0 ||
	    config_setting_get_member(g, "encryption") == NULL ||
	    (p->host[0] == '\0' && p->host_hint[0] == '\0'))
		return bad(ld, g,
			   "needs title, port, encryption, and host (or "
			   "host_hint when the admin must give it)");
	return 0;
}

/* The root of providers.conf: providers = { name = { ... }; ... }; */
static int load_presets(struct loader *ld, config_t *lc,
			struct provider_list *pl)
{
	const config_setting_t *all = config_lookup(lc, "providers");
	int n;

	if (config_setting_length(config_root_setting(lc)) != 1 ||
	    all == NULL || config_setting_type(all) != CONFIG_TYPE_GROUP)
		return fail(ld, EX_CONFIG, all,
			    "must hold one group: providers = { ovh = { "
			    "title = \"OVH\"; host = \"ssl0.ovh.net\"; ... "
			    "}; };");
	n = config_setting_length(all);
	if (n > PROVIDERS_MAX)
		return bad(ld, all, "has %d presets; at most %d", n,
			   PROVIDERS_MAX);
	if ((pl->v = calloc(n > 0 ? (size_t)n : 1, sizeof *pl->v)) == NULL)
		return no_memory(ld);
	for (int i = 0; i < n; i++) {
		pl->n = (size_t)i + 1;
		if (load_preset(ld, config_setting_get_elem(all, (unsigned)i),
				&pl->v[i]) < 0)
			return -1;
	}
	return 0;
}

int config_load_providers(const char *path, struct provider_list *pl,
			  struct sm_error *err)
{
	struct loader ld = {.err = err, .is_presets = true};
	config_t lc;
	int rc;

	error_clear(err);
	memset(pl, 0, sizeof *pl);
	error_printable(ld.where, sizeof ld.where, path, strlen(path));
	config_init(&lc);
	rc = parse_file(&ld, &lc, path);
	if (rc == 0)
		rc = load_presets(&ld, &lc, pl);
	config_destroy(&lc);
	if (rc == 0)
		rc = copy(&ld, &pl->path, path);
	if (rc < 0)
		providers_free(pl);
	return rc;
}

/* libconfig frees its strings unwiped: wipe the passwords first. */
static void wipe_tree(config_t *lc)
{
	static const char *const paths[] = {"connector.password",
					    "native.password"};

	for (size_t i = 0; i < NELEM(paths); i++) {
		config_setting_t *s = config_lookup(lc, paths[i]);
		const char *v = NULL;

		if (s != NULL && config_setting_type(s) == CONFIG_TYPE_STRING &&
		    (v = config_setting_get_string(s)) != NULL)
			explicit_bzero((char *)v, strlen(v));
	}
}

int config_load(const char *path, struct config *cfg, struct sm_error *err)
{
	struct loader ld = {.cfg = cfg, .err = err};
	config_t lc;
	int rc;

	if (path == NULL)
		path = CONFIG_DEFAULT_PATH;
	error_clear(err);
	memset(cfg, 0, sizeof *cfg);
	error_printable(ld.where, sizeof ld.where, path, strlen(path));
	cfg->connector.name = "connector";
	cfg->native.name = "native";
	cfg->log_syslog = true;
	if (copy(&ld, &cfg->path, path) < 0) {
		config_free(cfg);
		return -1;
	}
	config_init(&lc);
	rc = parse_file(&ld, &lc, path);
	if (rc == 0)
		rc = load_group(&ld, config_root_setting(&lc), root_keys,
				NELEM(root_keys), false, cfg);
	if (rc == 0 && config_lookup(&lc, "native") == NULL)
		rc = fail(&ld, EX_CONFIG, NULL,
			  "native.host is missing; set it to your relay's host "
			  "name: native = { host = \"localhost\"; from = "
			  "\"no-reply@example.org\"; };");
	wipe_tree(&lc);
	config_destroy(&lc);
	providers_free(&ld.presets);
	if (rc == 0)
		rc = finish(&ld);
	if (rc < 0)
		config_free(cfg);
	return rc;
}

const struct route *config_active_route(const struct config *cfg)
{
	if (cfg->connector_active && cfg->has_connector)
		return &cfg->connector;
	return &cfg->native;
}

/* Free a string after wiping it (credentials). */
static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void route_free(struct route *r)
{
	free(r->host);
	wipe_free(r->username);
	wipe_free(r->password);
	free(r->from);
	strings_free(r->allowed_senders, r->nallowed);
	free(r->tls_ca_file);
	free(r->tls_fingerprint);
	free(r->provider);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	route_free(&cfg->connector);
	route_free(&cfg->native);
	for (size_t i = 0; i < cfg->naliases; i++) {
		free((char *)cfg->aliases[i].name);
		free((char *)cfg->aliases[i].value);
	}
	free(cfg->aliases);
	free(cfg->path);
	free(cfg->default_domain);
	free(cfg->hostname);
	free(cfg->queue_dir);
	free(cfg->retry);
	free(cfg->log_file);
	strings_free(cfg->warnings, cfg->nwarnings);
	memset(cfg, 0, sizeof *cfg);
}

const char *config_encryption_name(enum encryption e)
{
	if ((size_t)e >= NELEM(encryption_names))
		return "?";
	return encryption_names[e];
}
