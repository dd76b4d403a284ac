/*
 * ctlconfig.c - the configuration side of switchmailctl (issue 5):
 *
 *   providers [NAME]    the presets of providers.conf, or one in detail
 *   connect [--provider P] [--host H] [--port N] [--encryption E]
 *           [--username U] [--from F] [--tls-ca-file PEM]
 *           [--tls-fingerprint sha256:HEX] [--password-stdin] [--force]
 *   disconnect          connector.active = false, nothing else touched
 *   status              routes, settings, queue counts, last results
 *
 * connect merges its arguments over the connector settings written in the
 * file and the preset, asks on a terminal for what is still missing (the
 * password without echo), and hands the changes to confedit.c with a check
 * that runs the configuration test (diagnose.c) on the edited file before
 * it replaces the original: a failed test leaves the file byte for byte
 * as it was (unless --force).  The password travels stdin -> memory ->
 * file only: never argv, the environment, the output or a log, and it is
 * wiped after use.  These commands load the configuration themselves, so
 * that they work when it is invalid (status says why; connect and
 * disconnect may repair it).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "confedit.h"
#include "config.h"
#include "ctl.h"
#include "diagnose.h"
#include "lastresult.h"
#include "log.h"
#include "providers.h"
#include "queue.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define ANSWER_MAX                                                             \
	255 /* bytes of an answer or password (CONFIG_SECRET_MAX)              \
	     */

/* ---- output helpers ---------------------------------------------------- */

/* s as a JSON string (NULL as null): quotes, backslashes and controls
 * escaped; other bytes as they are. */
static void json_str(FILE *f, const char *s)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* ,"key":"value" (first: no comma). */
static void json_kv(FILE *f, bool first, const char *key, const char *value)
{
	fprintf(f, "%s\"%s\":", first ? "" : ",", key);
	json_str(f, value);
}

/* "--json" anywhere among the command's words, else none at all. */
static int only_json(struct ctl *c, int argc, char **argv, const char *cmd,
		     struct sm_error *err)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			c->json = true;
			continue;
		}
		return error_set(err, EX_USAGE,
				 "%s: unknown argument %.40s; usage: "
				 "switchmailctl %s [--json]",
				 cmd, argv[i], cmd);
	}
	return 0;
}

/* ---- providers --------------------------------------------------------- */

/* "host:port enc", or "<hint>:port enc" when the admin gives the host. */
static void server_text(const struct provider *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%d %s", p->host[0] ? p->host : "<you give it>",
		 p->port, config_encryption_name(p->encryption));
}

/* One labelled line, when text is not empty. */
static void line(const char *label, const char *text)
{
	if (text != NULL && text[0] != '\0')
		printf("    %-9s %s\n", label, text);
}

/* One preset in the list: title, server, what to give, limits. */
static void show_brief(const struct provider *p)
{
	char server[512];

	server_text(p, server, sizeof server);
	printf("%-17s %s\n", p->name, p->title);
	line("server", server);
	line("username", p->username[0] ? p->username : p->username_hint);
	line("password", p->password_hint);
	line("sender", p->sender);
	line("limits", p->limits);
	line("warning", p->warning);
}

/* One preset in full, with the command that uses it. */
static void show_detail(const struct provider *p)
{
	show_brief(p);
	line("host", p->host_hint);
	line("notes", p->notes);
	for (size_t i = 0; i < p->nunsupported; i++)
		printf("    %-9s port %d is not supported\n", "ports",
		       p->unsupported_ports[i]);
	printf("\n  switchmailctl connect --provider %s%s --username ... "
	       "--password-stdin\n",
	       p->name, p->host[0] ? "" : " --host ...");
}

/* One preset as a JSON object. */
static void json_provider(const struct provider *p)
{
	const struct {
		const char *key, *value;
	} f[] = {{"title", p->title},
		 {"host", p->host},
		 {"host_hint", p->host_hint},
		 {"encryption", config_encryption_name(p->encryption)},
		 {"username", p->username},
		 {"username_hint", p->username_hint},
		 {"password_hint", p->password_hint},
		 {"sender", p->sender},
		 {"limits", p->limits},
		 {"notes", p->notes},
		 {"warning", p->warning}};

	printf("{\"name\":");
	json_str(stdout, p->name);
	printf(",\"port\":%d", p->port);
	for (size_t i = 0; i < NELEM(f); i++)
		json_kv(stdout, false, f[i].key, f[i].value);
	printf(",\"unsupported_ports\":[");
	for (size_t i = 0; i < p->nunsupported; i++)
		printf("%s%d", i ? "," : "", p->unsupported_ports[i]);
	printf("],\"pin\":%s}", p->pin ? "true" : "false");
}

/* The error for a preset name that is not in pl. */
static int unknown_provider(const struct provider_list *pl, const char *name,
			    struct sm_error *err)
{
	char near[256], q[64];

	error_printable(q, sizeof q, name, strlen(name));
	providers_near(pl, name, near, sizeof near);
	if (near[0] != '\0')
		return error_set(err, EX_USAGE,
				 "unknown provider \"%s\" (close: %s); "
				 "switchmailctl providers lists them",
				 q, near);
	return error_set(err, EX_USAGE,
			 "unknown provider \"%s\"; switchmailctl providers "
			 "lists them",
			 q);
}

/* Every preset, as text or a JSON array. */
static void list_providers(const struct ctl *c, const struct provider_list *pl)
{
	if (c->json)
		printf("[");
	for (size_t i = 0; i < pl->n; i++) {
		if (c->json) {
			printf(i ? "," : "");
			json_provider(&pl->v[i]);
		} else {
			printf(i ? "\n" : "");
			show_brief(&pl->v[i]);
		}
	}
	if (c->json)
		printf("]\n");
	else
		printf("\nswitchmailctl providers NAME shows one in detail; "
		       "connect --provider NAME uses it.\n");
}

int ctl_providers(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	struct provider_list pl;
	const struct provider *p;
	const char *name = NULL;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			c->json = true;
		else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			return error_set(err, EX_USAGE,
					 "usage: switchmailctl providers "
					 "[NAME] [--json]");
	}
	if (providers_load(&pl, err) != 0)
		return err->code;
	if (name == NULL)
		list_providers(c, &pl);
	else if ((p = providers_find(&pl, name)) == NULL)
		unknown_provider(&pl, name, err);
	else if (c->json) {
		json_provider(p);
		printf("\n");
	} else
		show_detail(p);
	providers_free(&pl);
	return err->code;
}

/* ---- connect: the settings --------------------------------------------- */

/* The connector settings connect reads and writes. */
enum ckey {
	K_PROVIDER,
	K_HOST,
	K_PORT,
	K_ENC,
	K_USER,
	K_PASS,
	K_FROM,
	K_CA,
	K_PIN,
	NKEYS
};

static const char *const ckey_names[NKEYS] = {
    [K_PROVIDER] = "provider", [K_HOST] = "host",
    [K_PORT] = "port",	       [K_ENC] = "encryption",
    [K_USER] = "username",     [K_FROM] = "from",
    [K_PASS] = "password",     [K_CA] = "tls_ca_file",
    [K_PIN] = "tls_fingerprint"};

struct connect_args {
	const char *v[NKEYS]; /* from argv (K_PASS never) */
	bool password_stdin, force;
};

/* The options: a value for a setting, or a flag. */
static const struct {
	const char *name;
	int key;	 /* enum ckey, or -1 for a flag */
	size_t flag_off; /* of the flag in struct connect_args */
} connect_opts[] = {
    {"--provider", K_PROVIDER, 0},
    {"--host", K_HOST, 0},
    {"--port", K_PORT, 0},
    {"--encryption", K_ENC, 0},
    {"--username", K_USER, 0},
    {"--from", K_FROM, 0},
    {"--tls-ca-file", K_CA, 0},
    {"--tls-fingerprint", K_PIN, 0},
    {"--password-stdin", -1, offsetof(struct connect_args, password_stdin)},
    {"--force", -1, offsetof(struct connect_args, force)},
};

#define CONNECT_USAGE                                                          \
	"usage: switchmailctl connect [--provider P] [--host H] [--port N] "   \
	"[--encryption none|ssl|tls] [--username U] [--from F] "               \
	"[--tls-ca-file PEM] [--tls-fingerprint sha256:HEX] "                  \
	"[--password-stdin] [--force] [--json]"

/* One word of argv at *i; -1 with err when it is not an option. */
static int connect_word(struct ctl *c, int argc, char **argv, int *i,
			struct connect_args *a, struct sm_error *err)
{
	const char *w = argv[*i], *eq = strchr(w, '=');
	size_t n = eq ? (size_t)(eq - w) : strlen(w);

	if (strcmp(w, "--json") == 0) {
		c->json = true;
		return 0;
	}
	if (strncmp(w, "--password", 10) == 0 &&
	    strcmp(w, "--password-stdin") != 0)
		return error_set(err, EX_USAGE,
				 "connect: the password is never taken from "
				 "the command line (every user sees it in "
				 "ps); use --password-stdin or answer the "
				 "prompt");
	for (size_t k = 0; k < NELEM(connect_opts); k++) {
		if (strlen(connect_opts[k].name) != n ||
		    strncmp(w, connect_opts[k].name, n) != 0)
			continue;
		if (connect_opts[k].key < 0 && eq == NULL) {
			*(bool *)(void *)((char *)a +
					  connect_opts[k].flag_off) = true;
			return 0;
		}
		if (connect_opts[k].key >= 0 && (eq || *i + 1 < argc)) {
			a->v[connect_opts[k].key] = eq ? eq + 1 : argv[++*i];
			return 0;
		}
	}
	return error_set(err, EX_USAGE,
			 "connect: %.40s: unknown or missing "
			 "its value; " CONNECT_USAGE,
			 w);
}

/* The encryption name in lower case, or NULL when unknown. */
static const char *encryption_of(const char *v)
{
	for (enum encryption e = ENC_NONE; e <= ENC_TLS; e++)
		if (strcasecmp(v, config_encryption_name(e)) == 0)
			return config_encryption_name(e);
	return NULL;
}

/* connect's words into a, each value checked. */
static int parse_connect(struct ctl *c, int argc, char **argv,
			 struct connect_args *a, struct sm_error *err)
{
	char *end;
	long port;

	for (int i = 0; i < argc; i++)
		if (connect_word(c, argc, argv, &i, a, err) < 0)
			return -1;
	if (a->v[K_PORT] != NULL) {
		errno = 0;
		port = strtol(a->v[K_PORT], &end, 10);
		if (errno || *end || end == a->v[K_PORT] || port < 1 ||
		    port > 65535)
			return error_set(err, EX_USAGE,
					 "connect: --port %.20s is not a port "
					 "number (1..65535)",
					 a->v[K_PORT]);
	}
	if (a->v[K_ENC] != NULL &&
	    (a->v[K_ENC] = encryption_of(a->v[K_ENC])) == NULL)
		return error_set(err, EX_USAGE,
				 "connect: --encryption takes none, ssl "
				 "(implicit TLS, port 465) or tls (STARTTLS, "
				 "port 587)");
	return 0;
}

/* What the file holds now: connector settings as written ("" = unset). */
struct current {
	char *v[NKEYS];
	bool has_password_file;
};

/* Free s after wiping it. */
static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Release (and wipe) what read_current() read. */
static void current_free(struct current *cur)
{
	for (int k = 0; k < NKEYS; k++)
		wipe_free(cur->v[k]);
}

/* The connector settings written in the file at path. */
static int read_current(const char *path, struct current *cur,
			struct sm_error *err)
{
	char *text = NULL, *pf = NULL;
	size_t len = 0;
	int rc = 0;

	memset(cur, 0, sizeof *cur);
	if (confedit_read(path, &text, &len, err) < 0)
		return -1;
	for (int k = 0; rc == 0 && k < NKEYS; k++) {
		rc = confedit_get(text, len, "connector", ckey_names[k],
				  &cur->v[k], err);
		if (cur->v[k] != NULL && cur->v[k][0] == '\0') {
			free(cur->v[k]);
			cur->v[k] = NULL;
		}
	}
	if (rc == 0)
		rc = confedit_get(text, len, "connector", "password_file", &pf,
				  err);
	cur->has_password_file = pf != NULL && pf[0] != '\0';
	free(pf);
	explicit_bzero(text, len);
	free(text);
	if (rc < 0)
		current_free(cur);
	return rc;
}

/* ---- connect: the plan ------------------------------------------------- */

/* What connect will write (set: owned, NULL = leave as written) and what
 * the connector will have once written (known). */
struct plan {
	char *set[NKEYS];
	bool known[NKEYS];
	bool drop_password_file; /* a new password replaces password_file */
	bool secret;		 /* the file will hold a password */
	const struct provider *preset;
	bool switching; /* a new preset replaces the old settings */
};

/* Release (and wipe) the plan's values. */
static void plan_free(struct plan *p)
{
	for (int k = 0; k < NKEYS; k++)
		wipe_free(p->set[k]);
}

/* Set (a copy of v) or clear what connect writes for k. */
static int plan_set(struct plan *p, enum ckey k, const char *v,
		    struct sm_error *err)
{
	wipe_free(p->set[k]);
	p->set[k] = NULL;
	if (v != NULL && (p->set[k] = strdup(v)) == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	p->known[k] = v != NULL;
	return 0;
}

/* Host, port and encryption of a new preset (arguments win). */
static int preset_fill(struct plan *p, const struct connect_args *a,
		       struct sm_error *err)
{
	const struct provider *pre = p->preset;
	const char *enc =
	    a->v[K_ENC] ? a->v[K_ENC] : config_encryption_name(pre->encryption);
	char port[16];

	if (strcmp(enc, config_encryption_name(pre->encryption)) == 0)
		snprintf(port, sizeof port, "%d", pre->port);
	else
		snprintf(port, sizeof port, "%d",
			 strcmp(enc, "ssl") == 0   ? 465
			 : strcmp(enc, "tls") == 0 ? 587
						   : 25);
	if ((a->v[K_HOST] == NULL && pre->host[0] &&
	     plan_set(p, K_HOST, pre->host, err) < 0) ||
	    (a->v[K_ENC] == NULL && plan_set(p, K_ENC, enc, err) < 0) ||
	    (a->v[K_PORT] == NULL && plan_set(p, K_PORT, port, err) < 0) ||
	    (a->v[K_USER] == NULL && pre->username[0] &&
	     plan_set(p, K_USER, pre->username, err) < 0))
		return -1;
	if (a->v[K_HOST] == NULL && pre->host[0] == '\0')
		p->known[K_HOST] = false; /* the old host is not this one's */
	return 0;
}

/* Arguments over the file's settings and the preset. */
static int merge(const struct connect_args *a, const struct current *cur,
		 const struct provider_list *pl, struct plan *p,
		 struct sm_error *err)
{
	const char *want = a->v[K_PROVIDER];

	p->preset = providers_find(pl, want ? want : cur->v[K_PROVIDER]);
	if (want != NULL && p->preset == NULL)
		return unknown_provider(pl, want, err);
	p->switching =
	    want != NULL && (cur->v[K_PROVIDER] == NULL ||
			     strcasecmp(want, cur->v[K_PROVIDER]) != 0);
	for (int k = 0; k < NKEYS; k++) {
		if (plan_set(p, (enum ckey)k, a->v[k], err) < 0)
			return -1;
		p->known[k] = a->v[k] != NULL || cur->v[k] != NULL;
	}
	if (want != NULL && plan_set(p, K_PROVIDER, p->preset->name, err) < 0)
		return -1;
	p->known[K_PASS] = cur->v[K_PASS] != NULL || cur->has_password_file;
	if (p->switching)
		return preset_fill(p, a, err);
	if (p->preset != NULL && p->preset->host[0])
		p->known[K_HOST] = true; /* config fills it */
	return 0;
}

/* ---- connect: asking --------------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t echo_is_off;

/* A signal while the echo is off: put the terminal back, then die of it. */
static void restore_echo(int sig)
{
	if (echo_is_off)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Terminal echo off (for a password) or back on; signals restore it. */
static void echo(bool on)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
	struct termios t;

	if (!on && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		for (size_t i = 0; i < NELEM(sigs); i++)
			signal(sigs[i], restore_echo);
		t = saved_tio;
		t.c_lflag &= ~(tcflag_t)ECHO;
		echo_is_off = 1;
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
	} else if (on && echo_is_off) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		echo_is_off = 0;
		for (size_t i = 0; i < NELEM(sigs); i++)
			signal(sigs[i], SIG_DFL);
		fputc('\n', stderr);
	}
}

/* One line from fd 0, read byte by byte (no stdio copy of a password), at
 * most ANSWER_MAX bytes, blanks and CR trimmed at both ends, into buf
 * (ANSWER_MAX + 2 bytes).  Returns its length, -1 at end of input, -2
 * when too long. */
static int read_answer(char buf[ANSWER_MAX + 2])
{
	size_t n = 0, start = 0;
	char ch;
	ssize_t k;

	for (;;) {
		k = read(STDIN_FILENO, &ch, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || ch == '\n')
			break;
		if (n <= ANSWER_MAX)
			buf[n] = ch;
		n++;
	}
	if (k <= 0 && n == 0)
		return -1;
	if (n > ANSWER_MAX) {
		explicit_bzero(buf, ANSWER_MAX + 2);
		return -2;
	}
	while (n > 0 && strchr(" \t\r", buf[n - 1]) != NULL)
		n--;
	while (start < n && strchr(" \t", buf[start]) != NULL)
		start++;
	memmove(buf, buf + start, n - start);
	buf[n - start] = '\0';
	return (int)(n - start);
}

/* Ask on the terminal: "label [default]: ".  An empty answer takes def
 * (may be NULL: then the setting stays unset). */
static int ask(struct plan *p, enum ckey k, const char *label, const char *hint,
	       const char *def, bool secret, struct sm_error *err)
{
	char buf[ANSWER_MAX + 2];
	int n;

	/* Echo goes off before the prompt shows: an answer typed the moment
	 * the prompt appears must be neither echoed nor thrown away. */
	echo(!secret);
	fprintf(stderr, "%s%s%s%s%s%s%s: ", label, hint && hint[0] ? " (" : "",
		hint && hint[0] ? hint : "", hint && hint[0] ? ")" : "",
		def ? " [" : "", def ? def : "", def ? "]" : "");
	fflush(stderr);
	n = read_answer(buf);
	echo(true);
	if (n == -2)
		return error_set(err, EX_USAGE,
				 "connect: the %s is longer than %d bytes",
				 ckey_names[k], ANSWER_MAX);
	if (n < 0)
		return error_set(err, EX_USAGE, "connect: no answer for the %s",
				 ckey_names[k]);
	if (n > 0 || def != NULL)
		n = plan_set(p, k, n > 0 ? buf : def, err);
	explicit_bzero(buf, sizeof buf);
	return n;
}

/* The password from stdin: one line, trimmed. */
static int password_from_stdin(struct plan *p, struct sm_error *err)
{
	char buf[ANSWER_MAX + 2];
	int n = read_answer(buf);

	if (n == -2)
		return error_set(err, EX_USAGE,
				 "connect: the password on stdin is longer "
				 "than %d bytes",
				 ANSWER_MAX);
	if (n <= 0)
		return error_set(err, EX_USAGE,
				 "connect --password-stdin: stdin holds no "
				 "password (one line expected)");
	n = plan_set(p, K_PASS, buf, err);
	explicit_bzero(buf, sizeof buf);
	return n;
}

/* The default sender: the username when it is an address. */
static const char *default_from(const struct plan *p, const struct current *c)
{
	const char *u = p->set[K_USER] ? p->set[K_USER] : c->v[K_USER];

	return u != NULL && strchr(u, '@') != NULL ? u : NULL;
}

/* The host when missing: asked on a terminal, else an error. */
static int complete_host(struct plan *p, bool tty, struct sm_error *err)
{
	const struct provider *pre = p->preset;

	if (p->known[K_HOST])
		return 0;
	if (!tty && pre != NULL)
		return error_set(err, EX_USAGE,
				 "connect: no host; give --host HOST (%s)",
				 pre->host_hint);
	if (!tty)
		return error_set(err, EX_USAGE,
				 "connect: no host; give --host HOST or "
				 "--provider P (switchmailctl providers)");
	if (ask(p, K_HOST, "SMTP server", pre ? pre->host_hint : NULL, NULL,
		false, err) < 0)
		return -1;
	if (!p->known[K_HOST])
		return error_set(err, EX_USAGE, "connect: no host given");
	return 0;
}

/* Host, username and sender still missing: asked, or an error.  A new
 * username takes the sender along when the sender was the old username. */
static int complete_names(struct plan *p, const struct connect_args *a,
			  const struct current *cur, bool tty,
			  struct sm_error *err)
{
	const struct provider *pre = p->preset;
	const char *from;

	if (complete_host(p, tty, err) < 0)
		return -1;
	if (!p->known[K_USER] && tty &&
	    ask(p, K_USER, "Username (empty: no AUTH)",
		pre ? pre->username_hint : NULL, NULL, false, err) < 0)
		return -1;
	if (a->v[K_USER] != NULL && a->v[K_FROM] == NULL &&
	    cur->v[K_FROM] != NULL && cur->v[K_USER] != NULL &&
	    strcasecmp(cur->v[K_FROM], cur->v[K_USER]) == 0)
		p->known[K_FROM] = false;
	/* from may point into p->set[], which p owns (plan_free frees it).
	 * The analyzer (clang 14) calls it leaked at the return below once its
	 * inlining budget leaves this ask() call opaque; with the budget
	 * raised (max-times-inline-large) the report goes away. */
	from = default_from(p, cur);
	if (!p->known[K_FROM] && tty &&
	    ask(p, K_FROM, "Sender address", NULL, from, false, err) < 0)
		return -1; /* NOLINT(clang-analyzer-unix.Malloc): p owns it */
	if (!p->known[K_FROM] && from != NULL)
		return plan_set(p, K_FROM, from, err);
	if (!p->known[K_FROM])
		return error_set(err, EX_USAGE,
				 "connect: no sender address; give --from "
				 "ADDRESS (the mailbox you send from)");
	return 0;
}

/* The password: from stdin, asked, kept, or an error. */
static int complete_password(struct plan *p, const struct connect_args *a,
			     bool tty, struct sm_error *err)
{
	const struct provider *pre = p->preset;
	bool renew = a->v[K_USER] != NULL || p->switching;

	if (a->password_stdin)
		return password_from_stdin(p, err);
	if (!p->known[K_USER])
		return 0; /* no AUTH */
	if (tty && (!p->known[K_PASS] || renew))
		return ask(p, K_PASS,
			   p->known[K_PASS] ? "Password (empty: keep the "
					      "saved one)"
					    : "Password",
			   pre ? pre->password_hint : NULL, NULL, true, err);
	if (!p->known[K_PASS])
		return error_set(err, EX_USAGE,
				 "connect: no password; give it on stdin with "
				 "--password-stdin (never on the command "
				 "line)");
	return 0;
}

/* ---- connect: writing and testing -------------------------------------- */

/* What the test found, for the report after confedit. */
struct connect_ctx {
	const struct ctl *c;
	bool force, tested, failed;
	struct diag_result res;
	char route[600]; /* "host:port (enc) as from" */
	bool log_syslog;
	char log_file[PATH_MAX];
};

/* confedit's check: the configuration test on the edited file. */
static int connect_check(const struct config *cfg, void *arg,
			 struct sm_error *err)
{
	struct connect_ctx *x = arg;
	const struct route *r = &cfg->connector;
	struct diag_opts o = {.out = x->c->json ? NULL : stdout,
			      .color = !x->c->json && isatty(STDOUT_FILENO),
			      .transcript = x->c->verbose ? stderr : NULL};

	snprintf(x->route, sizeof x->route, "%s:%d (%s) as %s", r->host,
		 r->port, config_encryption_name(r->encryption), r->from);
	x->log_syslog = cfg->log_syslog;
	snprintf(x->log_file, sizeof x->log_file, "%s",
		 cfg->log_file ? cfg->log_file : "");
	x->tested = true;
	if (diagnose_route(cfg, r, &o, &x->res) == 0)
		return 0;
	x->failed = true;
	if (x->force)
		return 0;
	return error_set(err, x->res.exit_code ? x->res.exit_code : EX_TEMPFAIL,
			 "connect: the test failed at %s: %s; %s; nothing was "
			 "saved (--force saves anyway)",
			 diagnose_step_name(x->res.failed_step), x->res.cause,
			 x->res.fix);
}

/* The changes for p, in the order they are written; returns how many. */
static size_t changes_of(const struct plan *p, struct confedit_change *ch)
{
	size_t n = 0;

	for (int k = 0; k < NKEYS; k++) {
		if (p->set[k] == NULL)
			continue;
		ch[n] = (struct confedit_change){
		    "connector", ckey_names[k], CE_SET_STRING, p->set[k],
		    0,		 false};
		if (k == K_PORT) {
			ch[n].op = CE_SET_INT;
			ch[n].num = strtol(p->set[k], NULL, 10);
		}
		n++;
		if (k == K_PASS && p->drop_password_file)
			ch[n++] = (struct confedit_change){
			    "connector", "password_file", CE_REMOVE, NULL, 0,
			    false};
	}
	ch[n++] = (struct confedit_change){"connector", "active", CE_SET_BOOL,
					   NULL,	0,	  true};
	return n;
}

/* connect's outcome as one JSON document. */
static void connect_json(const struct connect_ctx *x, bool saved,
			 const char *path)
{
	const struct diag_result *r = &x->res;

	printf("{\"saved\":%s,\"forced\":%s", saved ? "true" : "false",
	       saved && x->failed ? "true" : "false");
	json_kv(stdout, false, "config", path);
	json_kv(stdout, false, "route", x->tested ? x->route : NULL);
	printf(",\"test\":{\"ran\":%s,\"ok\":%s", x->tested ? "true" : "false",
	       x->tested && !x->failed ? "true" : "false");
	json_kv(stdout, false, "failed_step",
		x->failed ? diagnose_step_name(r->failed_step) : NULL);
	json_kv(stdout, false, "cause", x->failed ? r->cause : NULL);
	json_kv(stdout, false, "fix", x->failed ? r->fix : NULL);
	json_kv(stdout, false, "reply", x->failed ? r->reply : NULL);
	printf(",\"exit_code\":%d}}\n", x->failed ? r->exit_code : 0);
}

/* After the save: say where mail goes now, log it. */
static void connect_report(const struct connect_ctx *x, const char *path)
{
	if (x->c->json)
		connect_json(x, true, path);
	else if (x->failed)
		printf("Saved anyway (--force) in %s: the connector is ACTIVE "
		       "although the test failed at %s: %s\n",
		       path, diagnose_step_name(x->res.failed_step),
		       x->res.cause);
	else
		printf("Saved in %s: the connector is active; mail goes out "
		       "through %s from the next delivery attempt on.\n",
		       path, x->route);
	if (x->failed)
		fprintf(stderr,
			"switchmailctl: warning: connector active although "
			"the test failed at %s: %s\n",
			diagnose_step_name(x->res.failed_step), x->res.cause);
	log_open("switchmailctl", x->log_syslog,
		 x->log_file[0] ? x->log_file : NULL, false);
	log_line(LOG_LVL_INFO, NULL, "connect: connector active, %s%s",
		 x->route,
		 x->failed ? " (saved with --force: the test failed)" : "");
	log_close();
}

/* Core files would hold the password while it is in memory. */
static void no_core_dumps(void)
{
	struct rlimit rl = {0, 0};

	setrlimit(RLIMIT_CORE, &rl);
}

/* The plan: arguments, the file, the preset, then the questions. */
static int plan_connect(struct ctl *c, int argc, char **argv,
			struct connect_args *a, struct plan *p,
			struct sm_error *err)
{
	struct current cur;
	struct provider_list pl = {0};
	bool tty;
	int rc;

	if (parse_connect(c, argc, argv, a, err) < 0 ||
	    read_current(c->config_path, &cur, err) < 0)
		return -1;
	tty = isatty(STDIN_FILENO) && !a->password_stdin;
	rc = providers_load(&pl, err);
	if (rc < 0 && a->v[K_PROVIDER] == NULL) {
		rc = 0; /* only --provider needs the presets */
		error_clear(err);
	}
	if (rc == 0)
		rc = merge(a, &cur, &pl, p, err);
	if (rc == 0)
		rc = complete_names(p, a, &cur, tty, err);
	if (rc == 0)
		rc = complete_password(p, a, tty, err);
	p->drop_password_file = p->set[K_PASS] != NULL && cur.has_password_file;
	p->secret = p->set[K_PASS] != NULL || cur.v[K_PASS] != NULL;
	current_free(&cur);
	providers_free(&pl);
	p->preset = NULL; /* it pointed into pl */
	return rc;
}

int ctl_connect(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	struct connect_args a = {0};
	struct plan p = {0};
	struct confedit_change ch[NKEYS + 2];
	struct connect_ctx *x = calloc(1, sizeof *x);
	struct confedit_opts o = {.check = connect_check, .arg = x};
	int rc = -1;

	no_core_dumps();
	if (x == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	*x = (struct connect_ctx){.c = c};
	if (plan_connect(c, argc, argv, &a, &p, err) == 0) {
		x->force = a.force;
		o.secret = p.secret;
		rc = confedit_file(c->config_path, ch, changes_of(&p, ch), &o,
				   err);
		if (rc == 0)
			connect_report(x, c->config_path);
		else if (c->json && x->tested)
			connect_json(x, false, c->config_path);
	}
	plan_free(&p);
	free(x);
	return rc == 0 ? EX_OK : err->code;
}

/* ---- disconnect -------------------------------------------------------- */

/* Where mail goes after disconnect, and where to log it. */
struct disconnect_ctx {
	char where[600]; /* "host:port (enc) as from" */
	bool log_syslog;
	char log_file[PATH_MAX];
};

/* confedit's check for disconnect: note the native relay. */
static int native_of(const struct config *cfg, void *arg, struct sm_error *err)
{
	struct disconnect_ctx *x = arg;
	const struct route *n = &cfg->native;

	(void)err;
	snprintf(x->where, sizeof x->where, "%s:%d (%s) as %s", n->host,
		 n->port, config_encryption_name(n->encryption), n->from);
	x->log_syslog = cfg->log_syslog;
	snprintf(x->log_file, sizeof x->log_file, "%s",
		 cfg->log_file ? cfg->log_file : "");
	return 0;
}

/* Whether connector.active is written true (else the file is left alone:
 * the connector is off already). */
static int connector_on(const char *path, bool *on, struct sm_error *err)
{
	char *text = NULL, *v = NULL;
	size_t len = 0;
	int rc;

	if (confedit_read(path, &text, &len, err) < 0)
		return -1;
	rc = confedit_get(text, len, "connector", "active", &v, err);
	*on = v != NULL && strcasecmp(v, "false") != 0;
	free(v);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

int ctl_disconnect(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	static const struct confedit_change off = {
	    "connector", "active", CE_SET_BOOL, NULL, 0, false};
	struct disconnect_ctx x = {0};
	struct confedit_opts o = {.check = native_of, .arg = &x};
	bool on = false;

	if (only_json(c, argc, argv, "disconnect", err) < 0 ||
	    connector_on(c->config_path, &on, err) < 0)
		return err->code;
	if (!on) {
		if (c->json)
			printf(
			    "{\"saved\":false,\"active_route\":\"native\"}\n");
		else
			printf("The connector is off already (%s unchanged); "
			       "mail goes out through the native relay.\n",
			       c->config_path);
		return EX_OK;
	}
	if (confedit_file(c->config_path, &off, 1, &o, err) < 0)
		return err->code;
	if (c->json) {
		printf("{\"saved\":true,\"active_route\":\"native\"");
		json_kv(stdout, false, "config", c->config_path);
		json_kv(stdout, false, "native", x.where);
		printf("}\n");
	} else
		printf("Saved in %s: the connector is off (its settings are "
		       "kept); mail goes out through the native relay %s from "
		       "the next delivery attempt on, queued mail too.  "
		       "switchmailctl connect turns it back on.\n",
		       c->config_path, x.where);
	log_open("switchmailctl", x.log_syslog,
		 x.log_file[0] ? x.log_file : NULL, false);
	log_line(LOG_LVL_INFO, NULL,
		 "disconnect: connector off, mail goes through the native "
		 "relay %s",
		 x.where);
	log_close();
	return EX_OK;
}

/* ---- status ------------------------------------------------------------ */

/* What status gathers besides the configuration. */
struct status {
	long waiting, failed;	   /* -1: unknown */
	struct lastresult last[2]; /* connector, native */
	int last_rc[2];		   /* lastresult_read() */
	const char *title;	   /* the connector's preset title, or NULL */
	struct provider_list pl;
};

/* Messages in queue.dir/sub, or -1 when it cannot be listed. */
static long count_queue(const struct config *cfg, const char *sub)
{
	struct sm_error err = {0};
	char **ids = NULL;
	size_t n = 0;

	if (queue_list(cfg->queue_dir, sub, &ids, &n, &err) != 0)
		return -1;
	queue_free_list(ids, n);
	return (long)n;
}

/* Queue counts, last results and the preset's title. */
static void gather(const struct config *cfg, struct status *st)
{
	struct sm_error err = {0};
	const struct provider *p = NULL;

	st->waiting = count_queue(cfg, "new");
	st->failed = count_queue(cfg, "failed");
	st->last_rc[0] = lastresult_read(cfg, "connector", &st->last[0]);
	st->last_rc[1] = lastresult_read(cfg, "native", &st->last[1]);
	if (cfg->connector.provider != NULL &&
	    providers_load(&st->pl, &err) == 0)
		p = providers_find(&st->pl, cfg->connector.provider);
	st->title = p ? p->title : NULL;
}

/* Unix time t as local "YYYY-MM-DD HH:MM:SS +ZZZZ" into buf. */
static const char *when(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
		snprintf(buf, size, "%lld", t);
	return buf;
}

/* A route's last result and error, as text. */
static void text_last(const struct lastresult *l, int rc)
{
	char t[64];

	if (rc == 1)
		printf("  %-12s none yet\n", "last result");
	else if (rc < 0)
		printf("  %-12s unreadable\n", "last result");
	else {
		printf("  %-12s %s, %s\n", "last result",
		       lastresult_name(l->result), when(l->time, t, sizeof t));
		printf("  %-12s %s\n", "last error",
		       l->error[0] ? l->error : "-");
	}
}

/* A route's settings as text; the password only as (set). */
static void text_route(const struct route *r, const char *heading,
		       const char *state, const char *title)
{
	printf("%-14s %s\n", heading, state);
	if (r->provider != NULL)
		printf("  %-12s %s%s%s%s\n", "provider", r->provider,
		       title ? " (" : "", title ? title : "", title ? ")" : "");
	printf("  %-12s %s\n", "host", r->host ? r->host : "(not set)");
	printf("  %-12s %d\n", "port", r->port);
	printf("  %-12s %s\n", "encryption",
	       config_encryption_name(r->encryption));
	printf("  %-12s %s\n", "username",
	       r->username ? r->username : "(none: no AUTH)");
	printf("  %-12s %s\n", "password", r->password ? "(set)" : "(not set)");
	printf("  %-12s %s\n", "from", r->from ? r->from : "(not set)");
	for (size_t i = 0; i < r->nallowed; i++)
		printf("  %-12s %s\n", i ? "" : "senders",
		       r->allowed_senders[i]);
}

/* status for people. */
static void status_text(const struct config *cfg, const struct status *st)
{
	const struct route *active = config_active_route(cfg);

	printf("%-14s %s (valid)\n", "Configuration", cfg->path);
	printf("%-14s %s: %s:%d (%s)\n", "Active route", active->name,
	       active->host, active->port,
	       config_encryption_name(active->encryption));
	text_route(&cfg->connector, "Connector",
		   cfg->connector_active ? "active"
		   : cfg->has_connector	 ? "off (disconnected; settings kept)"
					 : "off (not configured)",
		   st->title);
	text_last(&st->last[0], st->last_rc[0]);
	text_route(&cfg->native, "Native relay",
		   active == &cfg->native ? "in use" : "standing by", NULL);
	text_last(&st->last[1], st->last_rc[1]);
	printf("%-14s %s: ", "Queue", cfg->queue_dir);
	if (st->waiting < 0 || st->failed < 0)
		printf("unreadable\n");
	else
		printf("%ld waiting, %ld failed\n", st->waiting, st->failed);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		printf("%-14s %s\n", i ? "" : "Warnings", cfg->warnings[i]);
}

/* A route's last result as a JSON member. */
static void json_last(const struct lastresult *l, int rc)
{
	if (rc != 0) {
		printf(",\"last\":%s", rc == 1 ? "null" : "\"unreadable\"");
		return;
	}
	printf(",\"last\":{\"time\":%lld", l->time);
	json_kv(stdout, false, "result", lastresult_name(l->result));
	json_kv(stdout, false, "error", l->error);
	printf("}");
}

/* A route's settings as a JSON object; the password only as (set). */
static void json_route(const struct route *r, const struct lastresult *l,
		       int rc)
{
	printf("{");
	json_kv(stdout, true, "provider", r->provider);
	json_kv(stdout, false, "host", r->host);
	printf(",\"port\":%d", r->port);
	json_kv(stdout, false, "encryption",
		config_encryption_name(r->encryption));
	json_kv(stdout, false, "username", r->username);
	json_kv(stdout, false, "password", r->password ? "(set)" : "(not set)");
	json_kv(stdout, false, "from", r->from);
	printf(",\"allowed_senders\":[");
	for (size_t i = 0; i < r->nallowed; i++) {
		printf(i ? "," : "");
		json_str(stdout, r->allowed_senders[i]);
	}
	printf("]");
	json_last(l, rc);
	printf("}");
}

/* status for scripts: one JSON document. */
static void status_json(const struct config *cfg, const struct status *st)
{
	printf("{");
	json_kv(stdout, true, "config", cfg->path);
	printf(",\"valid\":true");
	json_kv(stdout, false, "active_route", config_active_route(cfg)->name);
	printf(",\"connector_active\":%s,\"connector_configured\":%s",
	       cfg->connector_active ? "true" : "false",
	       cfg->has_connector ? "true" : "false");
	json_kv(stdout, false, "provider_title", st->title);
	printf(",\"connector\":");
	json_route(&cfg->connector, &st->last[0], st->last_rc[0]);
	printf(",\"native\":");
	json_route(&cfg->native, &st->last[1], st->last_rc[1]);
	printf(",\"queue\":{");
	json_kv(stdout, true, "dir", cfg->queue_dir);
	printf(st->waiting < 0 ? ",\"waiting\":null" : ",\"waiting\":%ld",
	       st->waiting);
	printf(st->failed < 0 ? ",\"failed\":null}" : ",\"failed\":%ld}",
	       st->failed);
	printf(",\"warnings\":[");
	for (size_t i = 0; i < cfg->nwarnings; i++) {
		printf(i ? "," : "");
		json_str(stdout, cfg->warnings[i]);
	}
	printf("]}\n");
}

/* The configuration does not load: say why, exit with its code. */
static int status_invalid(const struct ctl *c, const struct sm_error *lerr,
			  struct sm_error *err)
{
	if (c->json) {
		printf("{");
		json_kv(stdout, true, "config", c->config_path);
		printf(",\"valid\":false");
		json_kv(stdout, false, "error", lerr->msg);
		printf(",\"exit_code\":%d}\n", lerr->code);
	} else
		printf("%-14s %s: INVALID\n  %s\n", "Configuration",
		       c->config_path, lerr->msg);
	return error_set(err, lerr->code, "%s", lerr->msg);
}

int ctl_status(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	struct config cfg;
	struct sm_error lerr = {0};
	struct status st = {0};
	const struct lastresult *l;
	int rc;

	if (only_json(c, argc, argv, "status", err) < 0)
		return err->code;
	if (config_load(c->config_path, &cfg, &lerr) != 0)
		return status_invalid(c, &lerr, err);
	gather(&cfg, &st);
	if (c->json)
		status_json(&cfg, &st);
	else
		status_text(&cfg, &st);
	l = &st.last[config_active_route(&cfg) == &cfg.native];
	rc = l->result == LAST_DEFERRED || l->result == LAST_REFUSED
		 ? EX_TEMPFAIL
		 : EX_OK;
	providers_free(&st.pl);
	config_free(&cfg);
	return rc;
}
