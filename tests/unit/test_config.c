/*
 * test_config.c - config.c against real files in a temporary directory:
 * valid files and defaults, one table row per error class (code, file,
 * line, setting named in the message), warnings, and no password text in
 * any message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "providers.h"

#define SECRET "Hunter2Secret"
#define NATIVE                                                                 \
	"native = { host = \"localhost\"; port = 25; encryption = \"none\"; "  \
	"from = \"no-reply@platform.example\"; };\n"

#define DIR_MAX	 256
#define FILE_MAX (DIR_MAX + 32)

static char dir[DIR_MAX];	 /* the temporary directory of this run */
static char last_path[FILE_MAX]; /* the file last written */
static int nfiles;

/* Write text into a new file of the temporary directory with mode; the
 * name is left in last_path (and out, when not NULL). */
static void write_file(const char *text, mode_t mode, char *out)
{
	int fd;
	size_t len = strlen(text);

	snprintf(last_path, sizeof last_path, "%s/f%d.conf", dir, ++nfiles);
	fd = open(last_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	if (out != NULL)
		strcpy(out, last_path);
}

/* Load text (written 0600) into cfg. */
static int load(const char *text, struct config *cfg, struct sm_error *err)
{
	write_file(text, 0600, NULL);
	return config_load(last_path, cfg, err);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof dir, "%s/test_config.XXXXXX",
		 tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Assert that a failed load left nothing behind and said no secret. */
static void assert_failed(int rc, const struct config *cfg,
			  const struct sm_error *err, int code)
{
	static const struct config empty;

	assert_int_equal(rc, -1);
	assert_int_equal(err->code, code);
	assert_memory_equal(cfg, &empty, sizeof empty);
	assert_null(strstr(err->msg, SECRET));
	assert_null(strchr(err->msg, '\n'));
	assert_null(strchr(err->msg, '\r'));
}

/* ---- one row per error class --------------------------------------------- */

struct bad_case {
	const char *text;
	mode_t mode;	       /* 0: 0600 */
	int code;	       /* 0: EX_CONFIG */
	const char *expect[4]; /* substrings of the message; a leading '^'
				  means "the message starts with PATH and" */
};

static const struct bad_case bad_cases[] = {
    /* bad encryption */
    {NATIVE "connector = {\n host = \"ssl0.ovh.net\";\n"
	    " encryption = \"starttls\";\n};\n",
     0,
     0,
     {":4: connector.encryption \"starttls\" is not one of none, ssl, tls"}},
    /* unknown settings, with the known ones and the nearest */
    {NATIVE "connector = {\n hots = \"ssl0.ovh.net\";\n};\n",
     0,
     0,
     {":3: connector.hots is not a known setting", "did you mean host?",
      "active, provider, host, port"}},
    {NATIVE "hostnme = \"mail.example.fr\";\n",
     0,
     0,
     {":2: hostnme is not a known setting", "did you mean hostname?",
      "known at the top level: connector, native"}},
    {"native = {\n active = true;\n host = \"localhost\";\n};\n",
     0,
     0,
     {":2: native.active is not a known setting"}},
    {NATIVE "queue = { dir = \"/var/spool/x\"; rety = [1]; };\n",
     0,
     0,
     {":2: queue.rety", "did you mean retry?", "dir, retry, max_age"}},
    /* wrong types */
    {"native = {\n host = \"localhost\";\n port = \"25\";\n};\n",
     0,
     0,
     {":3: native.port must be an integer, not a string", "port = 587;"}},
    {NATIVE "connector = {\n active = \"yes\";\n};\n",
     0,
     0,
     {":3: connector.active must be true or false, not a string"}},
    {NATIVE "queue = 5;\n", 0, 0, {":2: queue must be a group"}},
    {NATIVE "connector = { timeout = 1.5; };\n",
     0,
     0,
     {"connector.timeout must be an integer, not a fraction"}},
    {NATIVE "connector = { allowed_senders = [1, 2]; };\n",
     0,
     0,
     {"connector.allowed_senders[0] must be a string"}},
    {NATIVE "queue = { retry = [60, \"x\"]; };\n",
     0,
     0,
     {":2: syntax error: mismatched element type"}},
    {NATIVE "queue = { retry = (60, \"x\"); };\n",
     0,
     0,
     {"queue.retry[1] must be an integer"}},
    /* missing required settings */
    {"native = {\n from = \"no-reply@platform.example\";\n};\n",
     0,
     0,
     {":1: native.host is missing; set it to your relay's host name"}},
    {"native = {\n host = \"localhost\";\n};\n",
     0,
     0,
     {":1: native.from is missing"}},
    {"default_domain = \"example.fr\";\n",
     0,
     0,
     {"^: native.host is missing; set it to your relay's host name"}},
    {NATIVE "connector = {\n active = true;\n host = \"smtp.example.fr\";\n"
	    "};\n",
     0,
     0,
     {":2: connector.from is missing while connector.active = true"}},
    {NATIVE "connector = {\n active = true;\n from = \"a@example.fr\";\n"
	    "};\n",
     0,
     0,
     {":2: connector.host is missing"}},
    /* an inactive connector is still validated */
    {NATIVE "connector = {\n active = false;\n port = 0;\n};\n",
     0,
     0,
     {":4: connector.port is 0"}},
    /* credentials */
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n password = \"" SECRET "\";\n"
	    " password_file = \"/etc/switchmail/secret\";\n};\n",
     0,
     0,
     {":5: connector.password and connector.password_file are both set"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n};\n",
     0,
     0,
     {":4: connector.username is set without a password"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " password = \"" SECRET "\";\n};\n",
     0,
     0,
     {":4: connector.password is set without connector.username"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n password = \"" SECRET "\";\n};\n",
     0644,
     0,
     {":5: connector.password is in a file every user can read", "mode 0644"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n password = \"Hunter2\\n"
	    "Secret\";\n};\n",
     0,
     0,
     {":5: connector.password contains a line break"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n"
	    " password_file = \"relative/secret\";\n};\n",
     0,
     0,
     {":5: connector.password_file \"relative/secret\" is not an "
      "absolute path"}},
    {NATIVE "connector = {\n host = \"smtp.example.fr\";\n"
	    " username = \"a@example.fr\";\n"
	    " password_file = \"/nonexistent/secret\";\n};\n",
     0,
     0,
     {":5: connector.password_file \"/nonexistent/secret\": cannot "
      "read: No such file or directory"}},
    /* plaintext AUTH refused */
    {"native = {\n host = \"relay.example.fr\";\n encryption = \"none\";\n"
     " username = \"a@example.fr\";\n password = \"" SECRET "\";\n"
     " from = \"a@example.fr\";\n};\n",
     0,
     0,
     {":4: native.username is set but native.encryption is \"none\": the "
      "password would cross the network unencrypted; use encryption = "
      "\"tls\" (port 587) or \"ssl\" (port 465), or set "
      "allow_plaintext_auth = true for a trusted local relay"}},
    /* header injection: a raw CR, an escaped LF, a tab */
    {NATIVE "connector = {\n from = \"a\rb@example.fr\";\n};\n",
     0,
     0,
     {":3: connector.from \"a\\rb@example.fr\" contains a line break"}},
    {"native = {\n host = \"localhost\\nRCPT TO:<x@y>\";\n};\n",
     0,
     0,
     {":2: native.host \"localhost\\nRCPT TO:<x@y>\" contains a line "
      "break"}},
    {NATIVE "default_domain = \"example\\tfr\";\n",
     0,
     0,
     {":2: default_domain \"example\\x09fr\" contains"}},
    {NATIVE "connector = { allowed_senders = [\"*@x.fr\\r\\nBcc: y\"]; };\n",
     0,
     0,
     {"connector.allowed_senders[0] \"*@x.fr\\r\\nBcc: y\" contains"}},
    /* addresses and names */
    {NATIVE "connector = {\n from = \"contact\";\n};\n",
     0,
     0,
     {":3: connector.from \"contact\" has no domain"}},
    {NATIVE "connector = {\n from = \"a@b@example.fr\";\n};\n",
     0,
     0,
     {":3: connector.from \"a@b@example.fr\" is not a usable address"}},
    {NATIVE "connector = {\n host = \"smtp example.fr\";\n};\n",
     0,
     0,
     {":3: connector.host \"smtp example.fr\" contains a space"}},
    {NATIVE "connector = {\n host = \"\";\n};\n",
     0,
     0,
     {":3: connector.host is empty"}},
    {NATIVE "connector = { allowed_senders = [\"\"]; };\n",
     0,
     0,
     {"connector.allowed_senders[0] is empty"}},
    {NATIVE "default_domain = \"exa mple.fr\";\n",
     0,
     0,
     {":2: default_domain \"exa mple.fr\" holds ' '"}},
    {NATIVE "hostname = \"mail_1.example.fr\";\n",
     0,
     0,
     {":2: hostname \"mail_1.example.fr\" holds '_'"}},
    /* TLS settings */
    {NATIVE "connector = {\n tls_fingerprint = \"sha1:AB:CD\";\n};\n",
     0,
     0,
     {":3: connector.tls_fingerprint \"sha1:AB:CD\" is not \"sha256:\" "
      "followed by 64 hex digits"}},
    {NATIVE "connector = {\n tls_fingerprint = \"sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
	    "\";\n};\n",
     0,
     0,
     {":3: connector.tls_fingerprint", "64 hex digits"}},
    {NATIVE "connector = {\n tls_fingerprint = \"sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"
	    "\";\n};\n",
     0,
     0,
     {":3: connector.tls_fingerprint", "64 hex digits"}},
    {NATIVE "connector = {\n tls_ca_file = \"/nonexistent/ca.pem\";\n};\n",
     0,
     0,
     {":3: connector.tls_ca_file \"/nonexistent/ca.pem\": cannot read: No "
      "such file or directory"}},
    /* ranges */
    {"native = {\n host = \"localhost\";\n port = 0;\n};\n",
     0,
     0,
     {":3: native.port is 0, outside 1..65535"}},
    {"native = {\n host = \"localhost\";\n port = 70000;\n};\n",
     0,
     0,
     {":3: native.port is 70000, outside 1..65535"}},
    {"native = {\n host = \"localhost\";\n timeout = 0;\n};\n",
     0,
     0,
     {":3: native.timeout is 0, outside 1..600"}},
    {"native = {\n host = \"localhost\";\n timeout = 601;\n};\n",
     0,
     0,
     {":3: native.timeout is 601, outside 1..600"}},
    {NATIVE "queue = {\n retry = [];\n};\n",
     0,
     0,
     {":3: queue.retry has 0 entries"}},
    {NATIVE "queue = {\n retry = [60, -5];\n};\n",
     0,
     0,
     {"queue.retry[1] is -5, not a positive number"}},
    {NATIVE "queue = {\n max_age = 0;\n};\n", 0, 0, {":3: queue.max_age is 0"}},
    {NATIVE "queue = {\n dir = \"spool\";\n};\n",
     0,
     0,
     {":3: queue.dir \"spool\" is not an absolute path"}},
    {NATIVE "log = {\n file = \"switchmail.log\";\n};\n",
     0,
     0,
     {":3: log.file \"switchmail.log\" is not an absolute path"}},
    /* aliases */
    {NATIVE "aliases = {\n root = 5;\n};\n",
     0,
     0,
     {":3: aliases.root must be an address list"}},
    {NATIVE "aliases = {\n root = \"\";\n};\n",
     0,
     0,
     {":3: aliases.root names no address"}},
    {NATIVE "aliases = {\n root = \"a@example.fr\";\n Root = \"b@x.fr\";\n};\n",
     0,
     0,
     {":4: aliases.Root repeats aliases.root"}},
    {NATIVE "aliases = {\n root = (\"a@example.fr\", 5);\n};\n",
     0,
     0,
     {"aliases.root[1] must be a string"}},
    {NATIVE "aliases = {\n root = \"admin@\";\n};\n",
     0,
     0,
     {":3: aliases.root is not a valid address list"}},
    /* syntax errors, with libconfig's own words */
    {NATIVE "queue = {\n dir = \"/var/spool/switchmail\";\n"
	    " retry = [60, 300;\n};\n",
     0,
     0,
     {":4: syntax error: "}},
    {NATIVE "log = {\n syslog = true;\n syslog = false;\n};\n",
     0,
     0,
     {":4: syntax error: duplicate setting name"}},
};

static void test_bad_case(void **state)
{
	const struct bad_case *c = *state;
	struct config cfg;
	struct sm_error err;
	int rc;

	write_file(c->text, c->mode ? c->mode : 0600, NULL);
	rc = config_load(last_path, &cfg, &err);
	if (getenv("TEST_CONFIG_VERBOSE") != NULL)
		print_message("%s\n", err.msg);
	assert_failed(rc, &cfg, &err, c->code ? c->code : EX_CONFIG);
	assert_true(strncmp(err.msg, last_path, strlen(last_path)) == 0);
	for (size_t i = 0; i < 4 && c->expect[i] != NULL; i++) {
		const char *e = c->expect[i];

		if (e[0] == '^') {
			assert_true(strncmp(err.msg + strlen(last_path), e + 1,
					    strlen(e + 1)) == 0);
			continue;
		}
		if (strstr(err.msg, e) == NULL)
			print_error("message: %s\nexpected: %s\n", err.msg, e);
		assert_non_null(strstr(err.msg, e));
	}
}

/* ---- files --------------------------------------------------------------- */

static void test_missing_file(void **state)
{
	struct config cfg;
	struct sm_error err;
	char path[FILE_MAX];

	(void)state;
	snprintf(path, sizeof path, "%s/absent.conf", dir);
	assert_failed(config_load(path, &cfg, &err), &cfg, &err, EX_CONFIG);
	assert_true(strncmp(err.msg, path, strlen(path)) == 0);
	assert_string_equal(
	    err.msg + strlen(path),
	    ": cannot read: No such file or directory; create it "
	    "(see switchmail.conf(5)) or pass -C FILE");
}

static void test_unreadable_file(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	if (geteuid() == 0)
		skip(); /* root reads anything */
	write_file(NATIVE, 0000, NULL);
	assert_failed(config_load(last_path, &cfg, &err), &cfg, &err,
		      EX_NOPERM);
	assert_non_null(strstr(err.msg, "Permission denied"));
}

static void test_not_regular_file(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_failed(config_load(dir, &cfg, &err), &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, "not a regular file"));
}

static void test_unreadable_ca_file(void **state)
{
	struct config cfg;
	struct sm_error err;
	char ca[FILE_MAX], text[FILE_MAX + 256];

	(void)state;
	if (geteuid() == 0)
		skip(); /* access() grants root everything */
	write_file("-----BEGIN CERTIFICATE-----\n", 0000, ca);
	snprintf(text, sizeof text,
		 NATIVE "connector = { tls_ca_file = \"%s\"; };\n", ca);
	assert_failed(load(text, &cfg, &err), &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, "connector.tls_ca_file"));
	assert_non_null(strstr(err.msg, ca));
	assert_non_null(strstr(err.msg, "Permission denied"));
}

/* ---- valid files --------------------------------------------------------- */

static void assert_full_connector(const struct route *c, const char *ca);
static void assert_full_rest(const struct config *cfg);

static void test_full_file(void **state)
{
	struct config cfg;
	struct sm_error err;
	char ca[FILE_MAX], text[4096];

	(void)state;
	write_file("-----BEGIN CERTIFICATE-----\n", 0644, ca);
	snprintf(
	    text, sizeof text,
	    "connector = {\n active = true; provider = \"ovh\";\n"
	    " host = \"ssl0.ovh.net\"; port = 465; encryption = \"ssl\";\n"
	    " username = \"contact@example.fr\"; password = \"" SECRET "\";\n"
	    " from = \"contact@example.fr\";\n"
	    " allowed_senders = [ \"*@example.fr\", \"x@example.org\" ];\n"
	    " tls_ca_file = \"%s\";\n"
	    " tls_fingerprint = \"sha256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
	    "23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\";\n"
	    " tls_verify = true; allow_plaintext_auth = false; timeout = 30;\n"
	    "};\n"
	    "native = { host = \"localhost\"; port = 25; encryption = "
	    "\"none\";\n"
	    " from = \"no-reply@platform.example\"; timeout = 5; };\n"
	    "aliases = { root = \"admin@example.fr\";\n"
	    " postmaster = [\"a@x.fr\", \"b@y.fr\"]; };\n"
	    "default_domain = \"example.fr\";\n"
	    "hostname = \"mail.example.fr\";\n"
	    "queue = { dir = \"/var/spool/sm\"; retry = [10, 20, 30];\n"
	    " max_age = 10000000000L; };\n"
	    "log = { syslog = false; file = \"/var/log/sm.log\"; };\n",
	    ca);
	assert_int_equal(load(text, &cfg, &err), 0);
	assert_int_equal(err.code, EX_OK);
	assert_string_equal(cfg.path, last_path);
	assert_true(cfg.connector_active && cfg.has_connector);
	assert_ptr_equal(config_active_route(&cfg), &cfg.connector);
	assert_full_connector(&cfg.connector, ca);
	assert_full_rest(&cfg);
	config_free(&cfg);
	assert_null(cfg.connector.password);
	config_free(&cfg); /* twice is harmless */
}

/* The connector of test_full_file. */
static void assert_full_connector(const struct route *c, const char *ca)
{
	assert_string_equal(c->name, "connector");
	assert_string_equal(c->provider, "ovh");
	assert_string_equal(c->host, "ssl0.ovh.net");
	assert_int_equal(c->port, 465);
	assert_int_equal(c->encryption, ENC_SSL);
	assert_string_equal(c->username, "contact@example.fr");
	assert_string_equal(c->password, SECRET);
	assert_string_equal(c->from, "contact@example.fr");
	assert_int_equal(c->nallowed, 2);
	assert_string_equal(c->allowed_senders[0], "*@example.fr");
	assert_string_equal(c->allowed_senders[1], "x@example.org");
	assert_string_equal(c->tls_ca_file, ca);
	assert_string_equal(c->tls_fingerprint,
			    "sha256:abcdef0123456789abcdef0123456789"
			    "abcdef0123456789abcdef0123456789");
	assert_true(c->tls_verify);
	assert_false(c->allow_plaintext_auth);
	assert_int_equal(c->timeout, 30);
}

/* Everything but the connector of test_full_file. */
static void assert_full_rest(const struct config *cfg)
{
	const struct route *n = &cfg->native;

	assert_string_equal(n->name, "native");
	assert_string_equal(n->host, "localhost");
	assert_int_equal(n->port, 25);
	assert_int_equal(n->encryption, ENC_NONE);
	assert_null(n->username);
	assert_null(n->password);
	assert_int_equal(n->timeout, 5);
	assert_int_equal(cfg->naliases, 2);
	assert_string_equal(cfg->aliases[0].name, "root");
	assert_string_equal(cfg->aliases[0].value, "admin@example.fr");
	assert_string_equal(cfg->aliases[1].name, "postmaster");
	assert_string_equal(cfg->aliases[1].value, "a@x.fr, b@y.fr");
	assert_string_equal(cfg->default_domain, "example.fr");
	assert_string_equal(cfg->hostname, "mail.example.fr");
	assert_string_equal(cfg->queue_dir, "/var/spool/sm");
	assert_int_equal(cfg->nretry, 3);
	assert_int_equal(cfg->retry[0], 10);
	assert_int_equal(cfg->retry[2], 30);
	assert_int_equal(cfg->max_age, 10000000000L);
	assert_false(cfg->log_syslog);
	assert_string_equal(cfg->log_file, "/var/log/sm.log");
	assert_int_equal(cfg->nwarnings, 0);
}

static void test_defaults(void **state)
{
	struct config cfg;
	struct sm_error err;
	const struct route *n = &cfg.native;

	(void)state;
	assert_int_equal(load("native = { host = \"relay.example.fr\"; "
			      "from = \"no-reply@example.fr\"; };\n",
			      &cfg, &err),
			 0);
	assert_false(cfg.connector_active);
	assert_false(cfg.has_connector);
	assert_null(cfg.connector.host);
	assert_ptr_equal(config_active_route(&cfg), n);
	assert_int_equal(n->encryption, ENC_TLS);
	assert_int_equal(n->port, 587);
	assert_true(n->tls_verify);
	assert_false(n->allow_plaintext_auth);
	assert_int_equal(n->timeout, CONFIG_TIMEOUT_DEFAULT);
	assert_null(n->tls_ca_file);
	assert_null(n->tls_fingerprint);
	assert_null(n->provider);
	assert_int_equal(n->nallowed, 1);
	assert_string_equal(n->allowed_senders[0], "no-reply@example.fr");
	assert_string_equal(cfg.queue_dir, "/var/spool/switchmail");
	assert_int_equal(cfg.nretry, 4);
	assert_int_equal(cfg.retry[0], 60);
	assert_int_equal(cfg.retry[1], 300);
	assert_int_equal(cfg.retry[2], 1800);
	assert_int_equal(cfg.retry[3], 7200);
	assert_int_equal(cfg.max_age, 432000);
	assert_true(cfg.log_syslog);
	assert_null(cfg.log_file);
	assert_null(cfg.default_domain);
	assert_int_equal(cfg.naliases, 0);
	assert_non_null(cfg.hostname);
	assert_true(cfg.hostname[0] != '\0');
	assert_int_equal(cfg.nwarnings, 0);
	config_free(&cfg);
}

static void test_default_ports(void **state)
{
	static const struct {
		const char *enc;
		enum encryption e;
		int port;
	} rows[] = {{"ssl", ENC_SSL, 465},
		    {"tls", ENC_TLS, 587},
		    {"none", ENC_NONE, 25},
		    {"SSL", ENC_SSL, 465}};
	struct config cfg;
	struct sm_error err;
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		snprintf(text, sizeof text,
			 "native = { host = \"h\"; from = \"a@b.c\"; "
			 "encryption = \"%s\"; };\n",
			 rows[i].enc);
		assert_int_equal(load(text, &cfg, &err), 0);
		assert_int_equal(cfg.native.encryption, rows[i].e);
		assert_int_equal(cfg.native.port, rows[i].port);
		assert_string_equal(config_encryption_name(rows[i].e),
				    rows[i].enc[0] == 'S' ? "ssl"
							  : rows[i].enc);
		config_free(&cfg);
	}
}

static void test_inactive_connector_partial(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_int_equal(load(NATIVE "connector = { active = false; "
				     "provider = \"ovh\"; };\n",
			      &cfg, &err),
			 0);
	assert_false(cfg.has_connector);
	assert_string_equal(cfg.connector.provider, "ovh");
	assert_ptr_equal(config_active_route(&cfg), &cfg.native);
	config_free(&cfg);

	/* Inactive with a host: kept ready for "connect", native used. */
	assert_int_equal(load(NATIVE "connector = { host = \"smtp.x.fr\"; "
				     "from = \"a@x.fr\"; };\n",
			      &cfg, &err),
			 0);
	assert_true(cfg.has_connector);
	assert_false(cfg.connector_active);
	assert_ptr_equal(config_active_route(&cfg), &cfg.native);
	config_free(&cfg);
}

static void test_plaintext_allowed(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_int_equal(
	    load("native = { host = \"relay.lan\"; encryption = \"none\";\n"
		 " username = \"u\"; password = \"" SECRET "\";\n"
		 " allow_plaintext_auth = true; from = \"a@x.fr\"; };\n",
		 &cfg, &err),
	    0);
	assert_true(cfg.native.allow_plaintext_auth);
	assert_string_equal(cfg.native.password, SECRET);
	assert_int_equal(cfg.native.port, 25);
	config_free(&cfg);
}

static void test_password_file(void **state)
{
	struct config cfg;
	struct sm_error err;
	char secret[FILE_MAX], text[FILE_MAX + 512];

	(void)state;
	write_file(SECRET "\r\n\n", 0640, secret);
	snprintf(text, sizeof text,
		 NATIVE
		 "connector = { host = \"smtp.x.fr\"; username = "
		 "\"a@x.fr\";\n password_file = \"%s\"; from = \"a@x.fr\"; "
		 "};\n",
		 secret);
	/* The config itself holds no password: world-readable is fine. */
	write_file(text, 0644, NULL);
	assert_int_equal(config_load(last_path, &cfg, &err), 0);
	assert_string_equal(cfg.connector.password, SECRET);
	config_free(&cfg);

	/* A password file every user can read is refused. */
	assert_int_equal(chmod(secret, 0644), 0);
	assert_failed(config_load(last_path, &cfg, &err), &cfg, &err,
		      EX_CONFIG);
	assert_non_null(strstr(err.msg, ":3: connector.password_file"));
	assert_non_null(strstr(err.msg, "readable by every user"));

	/* Empty, or with a line break inside. */
	assert_int_equal(chmod(secret, 0600), 0);
	assert_int_equal(truncate(secret, 0), 0);
	assert_failed(config_load(last_path, &cfg, &err), &cfg, &err,
		      EX_CONFIG);
	assert_non_null(strstr(err.msg, "empty file"));
}

static void test_password_file_multiline(void **state)
{
	struct config cfg;
	struct sm_error err;
	char secret[FILE_MAX], text[FILE_MAX + 512];

	(void)state;
	write_file(SECRET "\nsecond line\n", 0600, secret);
	snprintf(text, sizeof text,
		 NATIVE "connector = { host = \"smtp.x.fr\"; username = "
			"\"a@x.fr\"; password_file = \"%s\"; };\n",
		 secret);
	assert_failed(load(text, &cfg, &err), &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, "control character"));
	assert_null(strstr(err.msg, "second line"));
}

static void test_fingerprint_normalised(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_int_equal(load(NATIVE "connector = { tls_fingerprint = \"SHA256:"
				     "0123456789ABCDEF0123456789ABCDEF"
				     "0123456789abcdef0123456789abcdef\"; };\n",
			      &cfg, &err),
			 0);
	assert_string_equal(cfg.connector.tls_fingerprint,
			    "sha256:0123456789abcdef0123456789abcdef"
			    "0123456789abcdef0123456789abcdef");
	config_free(&cfg);
}

static void test_allowed_senders_forms(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_int_equal(load(NATIVE
			      "connector = { from = \"a@x.fr\"; "
			      "allowed_senders = (\"*@x.fr\", \"b@y.fr\"); "
			      "};\n",
			      &cfg, &err),
			 0);
	assert_int_equal(cfg.connector.nallowed, 2);
	assert_string_equal(cfg.connector.allowed_senders[1], "b@y.fr");
	config_free(&cfg);
	assert_int_equal(load(NATIVE "connector = { from = \"a@x.fr\"; "
				     "allowed_senders = \"*@x.fr\"; };\n",
			      &cfg, &err),
			 0);
	assert_int_equal(cfg.connector.nallowed, 1);
	assert_string_equal(cfg.connector.allowed_senders[0], "*@x.fr");
	config_free(&cfg);
}

/* ---- credential lengths (libESMTP PLAIN) -------------------------------- */

static void credentials_of_length(size_t user_len, size_t pass_len,
				  struct config *cfg, struct sm_error *err,
				  int *rc, char *pass)
{
	char user[512], text[2048];

	memset(user, 'u', user_len);
	user[user_len] = '\0';
	memset(pass, 'p', pass_len);
	memcpy(pass, SECRET, strlen(SECRET)); /* so leaks are found */
	pass[pass_len] = '\0';
	snprintf(text, sizeof text,
		 NATIVE "connector = {\n host = \"smtp.x.fr\";\n"
			" username = \"%s\";\n password = \"%s\";\n};\n",
		 user, pass);
	*rc = load(text, cfg, err);
}

static void test_secret_lengths(void **state)
{
	struct config cfg;
	struct sm_error err;
	char pass[512];
	int rc;

	(void)state;
	credentials_of_length(255, 255, &cfg, &err, &rc, pass);
	assert_int_equal(rc, 0);
	assert_int_equal(strlen(cfg.connector.password), 255);
	config_free(&cfg);

	credentials_of_length(10, 256, &cfg, &err, &rc, pass);
	assert_failed(rc, &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, ":5: connector.password is 256 bytes"));
	assert_non_null(strstr(err.msg, "255"));
	assert_non_null(strstr(err.msg, "PLAIN"));
	assert_null(strstr(err.msg, "pppppppp"));

	credentials_of_length(256, 10, &cfg, &err, &rc, pass);
	assert_failed(rc, &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, ":4: connector.username is 256 bytes"));
	assert_non_null(strstr(err.msg, "255"));
}

/* ---- warnings ------------------------------------------------------------ */

struct warn_case {
	const char *text;
	const char *expect[3]; /* each must be in one warning */
};

static const struct warn_case warn_cases[] = {
    {NATIVE "connector = { host = \"smtp.gmail.com\"; username = "
	    "\"me@gmail.com\";\n password = \"" SECRET "\"; from = "
	    "\"me@gmail.com\"; };\n",
     {"connector.host \"smtp.gmail.com\": Gmail/Google Workspace needs an "
      "app password (2-Step Verification on, then "
      "myaccount.google.com/apppasswords); the account password is "
      "refused"}},
    {NATIVE "connector = { host = \"SMTP-relay.Gmail.com.\"; };\n",
     {"Gmail/Google Workspace"}},
    {NATIVE "connector = { host = \"aspmx.l.google.com\"; };\n",
     {"Gmail/Google Workspace"}},
    {NATIVE "connector = {\n host = \"smtp.x.fr\"; username = "
	    "\"contact@x.fr\";\n password = \"" SECRET "\";\n"
	    " from = \"other@x.fr\"; };\n",
     {":2: connector.from \"other@x.fr\" differs from connector.username "
      "\"contact@x.fr\"",
      "reject or junk"}},
    {NATIVE "connector = { host = \"smtp.x.fr\"; port = 587; "
	    "encryption = \"ssl\"; };\n",
     {"encryption \"ssl\" on port 587", "STARTTLS (encryption = \"tls\")"}},
    {NATIVE "connector = { host = \"smtp.x.fr\"; port = 465; "
	    "encryption = \"tls\"; };\n",
     {"encryption \"tls\" on port 465", "implicit TLS"}},
    {"native = { host = \"smtp.x.fr\"; port = 587; encryption = \"none\"; "
     "from = \"a@x.fr\"; };\n",
     {"native: encryption \"none\" on port 587"}},
    {NATIVE "connector = { host = \"smtp.x.fr\"; tls_verify = false; };\n",
     {"certificate verification is OFF for connector: anyone on the path "
      "can read the password and mail"}},
};

static void test_warn_case(void **state)
{
	const struct warn_case *c = *state;
	struct config cfg;
	struct sm_error err;

	assert_int_equal(load(c->text, &cfg, &err), 0);
	assert_true(cfg.nwarnings >= 1);
	for (size_t i = 0; i < 3 && c->expect[i] != NULL; i++) {
		bool found = false;

		for (size_t w = 0; w < cfg.nwarnings; w++)
			found |= strstr(cfg.warnings[w], c->expect[i]) != NULL;
		if (!found)
			print_error("warning: %s\nexpected: %s\n",
				    cfg.warnings[0], c->expect[i]);
		assert_true(found);
	}
	for (size_t w = 0; w < cfg.nwarnings; w++) {
		assert_null(strstr(cfg.warnings[w], SECRET));
		assert_true(strncmp(cfg.warnings[w], last_path,
				    strlen(last_path)) == 0);
	}
	config_free(&cfg);
}

static void test_no_warning_when_usual(void **state)
{
	struct config cfg;
	struct sm_error err;

	(void)state;
	assert_int_equal(
	    load(NATIVE "connector = { host = \"ssl0.ovh.net\"; port = 465; "
			"encryption = \"ssl\"; username = \"A@x.fr\"; "
			"password = \"" SECRET "\"; from = \"a@x.fr\"; "
			"};\nhostname = \"notgoogle.com\";\n",
		 &cfg, &err),
	    0);
	assert_int_equal(cfg.nwarnings, 0);
	config_free(&cfg);
}

/* The commented sample in etc/ loads as it is: connector off, native
 * relay localhost:25 without encryption, defaults elsewhere. */
static void test_sample_file(void **state)
{
	static const char sample[] = "etc/switchmail.conf";
	struct config cfg;
	struct sm_error err;

	(void)state;
	if (access(sample, R_OK) != 0)
		skip(); /* not run from the top of the tree */
	assert_int_equal(config_load(sample, &cfg, &err), 0);
	assert_false(cfg.connector_active);
	assert_false(cfg.has_connector);
	assert_ptr_equal(config_active_route(&cfg), &cfg.native);
	assert_string_equal(cfg.native.host, "localhost");
	assert_int_equal(cfg.native.port, 25);
	assert_int_equal(cfg.native.encryption, ENC_NONE);
	assert_string_equal(cfg.queue_dir, CONFIG_QUEUE_DIR_DEFAULT);
	assert_int_equal(cfg.nretry, 4);
	assert_int_equal(cfg.max_age, CONFIG_MAX_AGE_DEFAULT);
	assert_true(cfg.log_syslog);
	assert_null(cfg.log_file);
	assert_int_equal(cfg.naliases, 0);
	assert_int_equal(cfg.nwarnings, 0);
	config_free(&cfg);
}

/* ---- provider presets (etc/providers.conf) -------------------------------- */

static char presets[FILE_MAX]; /* the repository's providers.conf, or "" */

struct preset_case {
	const char *text;    /* connector settings, between { and } */
	int code;            /* 0: loads */
	const char *host;    /* expected when it loads */
	int port;
	enum encryption encryption;
	const char *message; /* part of the error, or of one warning */
};

#define CREDS                                                                  \
	"username = \"a@x.fr\"; password = \"" SECRET "\"; from = \"a@x.fr\"; "

static const struct preset_case preset_cases[] = {
    /* the preset fills what is left out */
    {"active = true; provider = \"ovh\"; " CREDS, 0, "ssl0.ovh.net", 465,
     ENC_SSL, NULL},
    {"active = true; provider = \"OVH-TLS\"; " CREDS, 0, "ssl0.ovh.net", 587,
     ENC_TLS, NULL},
    {"active = true; provider = \"infomaniak\"; " CREDS, 0,
     "mail.infomaniak.com", 465, ENC_SSL, NULL},
    /* what is written wins; another encryption takes its usual port */
    {"active = true; provider = \"ovh\"; encryption = \"tls\"; " CREDS, 0,
     "ssl0.ovh.net", 587, ENC_TLS, NULL},
    {"active = true; provider = \"ovh\"; port = 2525; " CREDS, 0,
     "ssl0.ovh.net", 2525, ENC_SSL, NULL},
    {"active = true; provider = \"ovh\"; host = \"smtp.mail.ovh.ca\"; " CREDS,
     0, "smtp.mail.ovh.ca", 465, ENC_SSL, NULL},
    /* warnings */
    {"active = true; provider = \"gmail\"; " CREDS, 0, "smtp.gmail.com", 465,
     ENC_SSL, "app password (2-Step Verification on, then "
	      "myaccount.google.com/apppasswords)"},
    {"active = true; provider = \"google-workspace\"; port = 587; "
     "encryption = \"tls\"; " CREDS,
     0, "smtp.gmail.com", 587, ENC_TLS, "Gmail/Google Workspace needs an app"},
    {"active = true; provider = \"m365\"; port = 465; encryption = \"ssl\"; "
     CREDS,
     0, "smtp.office365.com", 465, ENC_SSL,
     "connector.port 465: Microsoft 365 (Exchange Online) does not accept "
     "this port; use port 587 with encryption \"tls\""},
    {"active = true; provider = \"outlook\"; " CREDS, 0,
     "smtp-mail.outlook.com", 587, ENC_TLS,
     "connector.provider \"outlook\": Outlook.com/Hotmail accepts only "
     "OAuth2"},
    {"active = true; provider = \"proton-bridge\"; " CREDS, 0, "127.0.0.1",
     1025, ENC_TLS, "self-signed certificate; pin it with "
		    "connector.tls_fingerprint"},
    {"active = true; provider = \"yahoo\"; " CREDS, 0, "smtp.mail.yahoo.com",
     465, ENC_SSL, "Yahoo needs an app password"},
    /* inactive: nothing is required, the preset still fills */
    {"active = false; provider = \"ovh-pro\";", 0, NULL, 587, ENC_TLS, NULL},
    /* errors */
    {"active = true; provider = \"ovh-pro\"; " CREDS, EX_CONFIG, NULL, 0,
     ENC_TLS,
     ":2: connector.host is missing; the \"ovh-pro\" preset cannot guess "
     "it: proN.mail.ovh.net"},
    {"active = true; provider = \"ovhh\"; " CREDS, EX_CONFIG, NULL, 0, ENC_TLS,
     ":3: connector.provider \"ovhh\" is not a known preset (close: ovh, "
     "ovh-tls"},
    {"provider = \"zzzzzzzz\";", EX_CONFIG, NULL, 0, ENC_TLS,
     "connector.provider \"zzzzzzzz\" is not a known preset; switchmailctl "
     "providers lists them"},
};

static void test_preset_case(void **state)
{
	const struct preset_case *c = *state;
	struct config cfg;
	struct sm_error err;
	char text[1024];
	bool found = c->message == NULL;
	int rc;

	if (presets[0] == '\0')
		skip(); /* not run from the top of the tree */
	snprintf(text, sizeof text, NATIVE "connector = {\n %s\n};\n", c->text);
	rc = load(text, &cfg, &err);
	if (c->code != 0) {
		assert_failed(rc, &cfg, &err, c->code);
		if (strstr(err.msg, c->message) == NULL)
			print_error("error: %s\n", err.msg);
		assert_non_null(strstr(err.msg, c->message));
		return;
	}
	if (rc != 0)
		print_error("error: %s\n", err.msg);
	assert_int_equal(rc, 0);
	if (c->host != NULL)
		assert_string_equal(cfg.connector.host, c->host);
	assert_int_equal(cfg.connector.port, c->port);
	assert_int_equal(cfg.connector.encryption, c->encryption);
	for (size_t w = 0; w < cfg.nwarnings; w++) {
		found |= strstr(cfg.warnings[w], c->message ? c->message : "") !=
			 NULL;
		assert_null(strstr(cfg.warnings[w], SECRET));
	}
	if (c->message == NULL && cfg.nwarnings > 0)
		print_error("unexpected warning: %s\n", cfg.warnings[0]);
	assert_true(found && (c->message != NULL || cfg.nwarnings == 0));
	config_free(&cfg);
}

/* Without a readable presets file: an error only when the preset's host
 * is needed; a warning when port or encryption were left to it. */
static void test_presets_unreadable(void **state)
{
	struct config cfg;
	struct sm_error err;
	char missing[FILE_MAX];

	(void)state;
	snprintf(missing, sizeof missing, "%s/no-such-providers.conf", dir);
	setenv(PROVIDERS_ENV, missing, 1);
	assert_failed(load(NATIVE "connector = { active = true; provider = "
				  "\"ovh\"; from = \"a@x.fr\"; };\n",
			   &cfg, &err),
		      &cfg, &err, EX_CONFIG);
	assert_non_null(strstr(err.msg, "the presets cannot be read"));
	assert_non_null(strstr(err.msg, "no-such-providers.conf"));
	assert_int_equal(load(NATIVE "connector = { provider = \"ovh\"; host = "
				     "\"ssl0.ovh.net\"; };\n",
			      &cfg, &err),
			 0);
	assert_int_equal(cfg.nwarnings, 1);
	assert_non_null(strstr(cfg.warnings[0], "port and encryption left out"));
	config_free(&cfg);
	assert_int_equal(load(NATIVE "connector = { provider = \"ovh\"; host = "
				     "\"h.fr\"; port = 465; encryption = "
				     "\"ssl\"; };\n",
			      &cfg, &err),
			 0);
	assert_int_equal(cfg.nwarnings, 0);
	config_free(&cfg);
	if (presets[0] != '\0')
		setenv(PROVIDERS_ENV, presets, 1);
	else
		unsetenv(PROVIDERS_ENV);
}

/* providers.conf itself: every preset complete; errors name file:line. */
static void test_presets_file(void **state)
{
	struct provider_list pl;
	struct sm_error err;
	const struct provider *p;
	char bad[FILE_MAX], near[128];

	(void)state;
	if (presets[0] == '\0')
		skip();
	assert_int_equal(config_load_providers(presets, &pl, &err), 0);
	assert_true(pl.n >= 30);
	for (size_t i = 0; i < pl.n; i++) {
		assert_true(pl.v[i].title[0] != '\0');
		assert_true(pl.v[i].port > 0);
		assert_true(pl.v[i].host[0] != '\0' ||
			    pl.v[i].host_hint[0] != '\0');
	}
	assert_non_null(p = providers_find(&pl, "sendgrid"));
	assert_string_equal(p->username, "apikey");
	assert_non_null(p = providers_find(&pl, "M365"));
	assert_int_equal(p->nunsupported, 1);
	assert_int_equal(p->unsupported_ports[0], 465);
	assert_string_equal(providers_near(&pl, "gmial", near, sizeof near),
			    "gmail");
	assert_string_equal(providers_near(&pl, "qqqqqqq", near, sizeof near),
			    "");
	providers_free(&pl);
	providers_free(NULL);
	write_file("providers = {\n ovh = {\n  title = \"OVH\";\n"
		   "  hots = \"x\";\n };\n};\n",
		   0644, bad);
	assert_int_equal(config_load_providers(bad, &pl, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, ":4: providers.ovh.hots is not a known "
					"preset setting"));
	assert_int_equal(pl.n, 0);
	write_file("providers = { ovh = { title = \"OVH\"; port = 465; }; };\n",
		   0644, bad);
	assert_int_equal(config_load_providers(bad, &pl, &err), -1);
	assert_non_null(strstr(err.msg, "needs title, port, encryption"));
}

static void test_free_null(void **state)
{
	(void)state;
	config_free(NULL);
	assert_string_equal(config_encryption_name(ENC_NONE), "none");
}

int main(void)
{
	struct CMUnitTest tests[sizeof bad_cases / sizeof bad_cases[0] +
				sizeof warn_cases / sizeof warn_cases[0] +
				sizeof preset_cases / sizeof preset_cases[0] +
				32];
	size_t n = 0;

	/* The presets of the tree when run from its top (make unit). */
	if (realpath("etc/providers.conf", presets) != NULL)
		setenv(PROVIDERS_ENV, presets, 1);
	else
		presets[0] = '\0';
	for (size_t i = 0; i < sizeof preset_cases / sizeof preset_cases[0];
	     i++) {
		struct CMUnitTest t = cmocka_unit_test_prestate(
		    test_preset_case, (void *)&preset_cases[i]);
		t.name = preset_cases[i].text;
		tests[n++] = t;
	}

	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		struct CMUnitTest t = cmocka_unit_test_prestate(
		    test_bad_case, (void *)&bad_cases[i]);
		t.name = bad_cases[i].expect[0];
		tests[n++] = t;
	}
	for (size_t i = 0; i < sizeof warn_cases / sizeof warn_cases[0]; i++) {
		struct CMUnitTest t = cmocka_unit_test_prestate(
		    test_warn_case, (void *)&warn_cases[i]);
		t.name = warn_cases[i].expect[0];
		tests[n++] = t;
	}
	{
		const struct CMUnitTest rest[] = {
		    cmocka_unit_test(test_missing_file),
		    cmocka_unit_test(test_unreadable_file),
		    cmocka_unit_test(test_not_regular_file),
		    cmocka_unit_test(test_unreadable_ca_file),
		    cmocka_unit_test(test_full_file),
		    cmocka_unit_test(test_defaults),
		    cmocka_unit_test(test_default_ports),
		    cmocka_unit_test(test_inactive_connector_partial),
		    cmocka_unit_test(test_plaintext_allowed),
		    cmocka_unit_test(test_password_file),
		    cmocka_unit_test(test_password_file_multiline),
		    cmocka_unit_test(test_fingerprint_normalised),
		    cmocka_unit_test(test_allowed_senders_forms),
		    cmocka_unit_test(test_secret_lengths),
		    cmocka_unit_test(test_no_warning_when_usual),
		    cmocka_unit_test(test_sample_file),
		    cmocka_unit_test(test_presets_unreadable),
		    cmocka_unit_test(test_presets_file),
		    cmocka_unit_test(test_free_null),
		};
		for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
			tests[n++] = rest[i];
	}
	return _cmocka_run_group_tests("config", tests, n, setup, teardown);
}
