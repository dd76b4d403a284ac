/*
 * options.c - the sendmail command line, parsed by one flag table (STYLE §3).
 *
 * flag_table has one row for every flag sendmail 8 knows: its getopt string
 * "A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtV:vX:", its -b modes
 * (a C d D h H i l m p P s t v z), its -o and -q forms, plus -U and -x that
 * other sendmails and mailers pass.  A row is IMPLEMENTED (fills struct
 * options), IGNORED (accepted quietly and recorded in o->ignored for -v) or
 * REFUSED (EX_USAGE, saying why and what to use instead).  The same rows
 * produce --help, so the help cannot disagree with the parser.
 *
 * Syntax is getopt's, with GNU permutation:
 *   - a word starting with '-' is options, never a recipient; "--" ends them;
 *   - argument-less flags bundle ("-ti", "-it", "-vvv");
 *   - a flag's row is found by the longest matching text, so "-odq" is the
 *     -od row with "q", "-qIABC" the -qI row with "ABC", "-ti" -t then -i;
 *   - ARG_REQUIRED takes the rest of the word ("-fx", "-FCronDaemon") or the
 *     next word ("-f x"); a next word that starts with '-' is not taken: the
 *     argument is then missing (so "-f -t" cannot make "-t" the sender);
 *   - ARG_ATTACHED takes only the rest of the word, possibly empty, as
 *     sendmail does for -q[time], -qI<id>, -d[X], -Q[reason] and -oX<value>.
 *
 * argv is permuted in place as GNU getopt does: option words (with their
 * separate arguments) move to the front, recipients to the back, each in
 * their original order, nothing lost.  o->recipients then points into argv
 * at the first recipient: no allocation, nothing to free.  Strings are never
 * written; every pointer in o borrows from argv or from static storage.
 */
#include "options.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

enum flag_kind { IMPLEMENTED, IGNORED, REFUSED };
enum flag_arg { ARG_NONE, ARG_REQUIRED, ARG_ATTACHED };

/* flag.value of the -b and -o family rows: what an unlisted member means. */
enum { FAMILY_UNKNOWN_IGNORED, FAMILY_UNKNOWN_REFUSED };

struct flag;

/* One use of a flag on this command line. */
struct use {
	const struct flag *flag;
	const char
	    *arg; /* its argument ("" when attached and empty), or NULL */
	const char *shown; /* how -v names it: the whole argv word when the flag
			      starts it and its argument is attached ("-oem",
			      "-h5"), else the row's text ("-h", "-m") */
};

/* Applies one use to o; 0, or -1 with err filled. */
typedef int flag_fn(struct options *o, const struct use *u,
		    struct sm_error *err);

struct flag {
	const char *text; /* "-f", "-bs", "-od", "--help" */
	enum flag_kind kind;
	enum flag_arg arg;
	flag_fn *fn;	     /* NULL: nothing to set */
	int value;	     /* fn's parameter: an enum mode, a family rule */
	const char *metavar; /* argument in --help: " ADDR" (separate or
				attached), "<id>" (attached only) */
	const char *help;    /* one line for --help; REFUSED: what it does */
	const char *detail;  /* ARG_REQUIRED: the argument, for "needs an
				argument (...)"; REFUSED: why, and what to
				use instead */
};

static flag_fn opt_mode, opt_extract, opt_ignore_dots, opt_sender, opt_fullname,
    opt_verbose, opt_body, opt_notify, opt_ret, opt_envid, opt_delivery,
    opt_config, opt_queue_run, opt_queue_id, opt_queue_domain, opt_long_option,
    opt_family;

#define DAEMON_WHY                                                             \
	"switchmail is a submission client: it relays through your provider "  \
	"and does not listen for mail; run your MTA's daemon instead"
#define NO_HOSTSTAT_WHY "switchmail keeps no host status database"
#define NO_QUARANTINE_WHY                                                      \
	"switchmail does not quarantine mail; mailq lists what is queued"

static const struct flag flag_table[] = {
    /* Modes */
    {"-bm", IMPLEMENTED, ARG_NONE, opt_mode, MODE_DELIVER, "",
     "read a message on stdin and send it (the default)", NULL},
    {"-bs", IMPLEMENTED, ARG_NONE, opt_mode, MODE_SMTP, "",
     "speak SMTP on stdin and stdout", NULL},
    {"-bp", IMPLEMENTED, ARG_NONE, opt_mode, MODE_QUEUE_LIST, "",
     "list the queue (as mailq)", NULL},
    {"-bi", IMPLEMENTED, ARG_NONE, opt_mode, MODE_ALIASES, "",
     "rebuild the aliases (as newaliases)", NULL},
    {"-I", IMPLEMENTED, ARG_NONE, opt_mode, MODE_ALIASES, "", "same as -bi",
     NULL},
    {"-bv", IMPLEMENTED, ARG_NONE, opt_mode, MODE_VERIFY, "",
     "verify the recipients, send nothing", NULL},
    {"-b", IMPLEMENTED, ARG_REQUIRED, opt_family, FAMILY_UNKNOWN_REFUSED,
     " MODE", "same as -bMODE", "a mode letter, as in -bm or -bs"},
    {"-ba", REFUSED, ARG_NONE, NULL, 0, "", "ARPANET mode",
     "it is obsolete; use -bs for an SMTP dialogue on stdin"},
    {"-bC", REFUSED, ARG_NONE, NULL, 0, "", "check sendmail.cf",
     "switchmail reads no sendmail.cf; it checks its own configuration "
     "each time it runs"},
    {"-bd", REFUSED, ARG_NONE, NULL, 0, "", "run as a daemon", DAEMON_WHY},
    {"-bD", REFUSED, ARG_NONE, NULL, 0, "", "run as a daemon in the foreground",
     DAEMON_WHY},
    {"-bl", REFUSED, ARG_NONE, NULL, 0, "", "run as a daemon on localhost",
     DAEMON_WHY},
    {"-bh", REFUSED, ARG_NONE, NULL, 0, "", "print host status",
     NO_HOSTSTAT_WHY "; mailq lists what is waiting"},
    {"-bH", REFUSED, ARG_NONE, NULL, 0, "", "purge host status",
     NO_HOSTSTAT_WHY ", so there is nothing to purge"},
    {"-bP", REFUSED, ARG_NONE, NULL, 0, "", "count the queue entries",
     "use mailq (or -bp) to list the queue"},
    {"-bt", REFUSED, ARG_NONE, NULL, 0, "", "address test mode",
     "switchmail has no rewriting rules to test; use -bv to check "
     "recipient addresses"},
    {"-bz", REFUSED, ARG_NONE, NULL, 0, "", "freeze the configuration",
     "frozen configurations are gone even from sendmail"},

    /* The message and its envelope */
    {"-t", IMPLEMENTED, ARG_NONE, opt_extract, 0, "",
     "also send to the To:, Cc: and Bcc: recipients of the message", NULL},
    {"-i", IMPLEMENTED, ARG_NONE, opt_ignore_dots, 0, "",
     "a line with a single dot does not end the message", NULL},
    {"-f", IMPLEMENTED, ARG_REQUIRED, opt_sender, 0, " ADDR",
     "envelope sender; -f '' or -f '<>' is the null sender",
     "the sender address"},
    {"-r", IMPLEMENTED, ARG_REQUIRED, opt_sender, 0, " ADDR",
     "same as -f (obsolete)", "the sender address"},
    {"-F", IMPLEMENTED, ARG_REQUIRED, opt_fullname, 0, " NAME",
     "the sender's full name, for a From: the message lacks",
     "the sender's full name"},
    {"-B", IMPLEMENTED, ARG_REQUIRED, opt_body, 0, " TYPE",
     "body type: 7BIT or 8BITMIME", "7BIT or 8BITMIME"},
    {"-N", IMPLEMENTED, ARG_REQUIRED, opt_notify, 0, " DSN",
     "notify: never, or a list of success,failure,delay",
     "never, or a comma list of success, failure and delay"},
    {"-R", IMPLEMENTED, ARG_REQUIRED, opt_ret, 0, " RET",
     "return full or hdrs of a bounced message", "full or hdrs"},
    {"-V", IMPLEMENTED, ARG_REQUIRED, opt_envid, 0, " ENVID", "DSN envelope id",
     "the envelope id"},

    /* Running */
    {"-v", IMPLEMENTED, ARG_NONE, opt_verbose, 0, "",
     "verbose; repeat for more", NULL},
    {"-C", IMPLEMENTED, ARG_REQUIRED, opt_config, 0, " FILE",
     "use this configuration file", "the configuration file"},
    {"-O", IMPLEMENTED, ARG_REQUIRED, opt_long_option, 0, " NAME=VALUE",
     "IgnoreDots and DeliveryMode are used; others are ignored",
     "an option=value"},
    {"-o", IMPLEMENTED, ARG_REQUIRED, opt_family, FAMILY_UNKNOWN_IGNORED,
     "<x><value>", "sendmail option x: -oi and -od are used, others ignored",
     "a sendmail option letter, as in -oi"},
    {"-oi", IMPLEMENTED, ARG_ATTACHED, opt_ignore_dots, 0, "", "same as -i",
     NULL},
    {"-od", IMPLEMENTED, ARG_ATTACHED, opt_delivery, 0, "<mode>",
     "deliver: i interactively, b in background, q or d: queue", NULL},
    {"-oe", IGNORED, ARG_ATTACHED, NULL, 0, "<x>", "error mode", NULL},
    {"-om", IGNORED, ARG_ATTACHED, NULL, 0, "", "send to me too", NULL},

    /* The queue */
    {"-q", IMPLEMENTED, ARG_ATTACHED, opt_queue_run, MODE_QUEUE_RUN, "[<time>]",
     "run the queue once (an interval such as 30m is ignored)", NULL},
    {"-qI", IMPLEMENTED, ARG_ATTACHED, opt_queue_id, MODE_QUEUE_RUN, "<id>",
     "run only the queued message <id>", NULL},
    {"-qR", IMPLEMENTED, ARG_ATTACHED, opt_queue_domain, MODE_QUEUE_RUN,
     "<domain>", "run the queued mail for <domain>", NULL},
    {"-qS", IGNORED, ARG_ATTACHED, opt_mode, MODE_QUEUE_RUN, "<sender>",
     "run the queue (the sender filter is ignored)", NULL},
    {"-qG", IGNORED, ARG_ATTACHED, opt_mode, MODE_QUEUE_RUN, "<group>",
     "run the queue (queue groups are ignored)", NULL},
    {"-qf", IGNORED, ARG_ATTACHED, opt_mode, MODE_QUEUE_RUN, "",
     "run the queue in the foreground (always so)", NULL},
    {"-qp", IGNORED, ARG_ATTACHED, opt_mode, MODE_QUEUE_RUN, "[<time>]",
     "run the queue once (no persistent runner)", NULL},
    {"-qQ", REFUSED, ARG_ATTACHED, NULL, 0, "", "run quarantined mail",
     NO_QUARANTINE_WHY},
    {"-qL", REFUSED, ARG_ATTACHED, NULL, 0, "", "run lost queue items",
     "switchmail keeps no lost items; use -q to run the queue"},
    {"-q!", REFUSED, ARG_ATTACHED, NULL, 0, "", "negated queue filters",
     "select mail with -qI<id> or -qR<domain>"},
    {"-Q", REFUSED, ARG_ATTACHED, NULL, 0, "", "quarantine queued mail",
     NO_QUARANTINE_WHY},

    /* Accepted for compatibility, nothing to do */
    {"-A", IGNORED, ARG_REQUIRED, NULL, 0, " c|m", "submit.cf or sendmail.cf",
     "c or m"},
    {"-c", IGNORED, ARG_NONE, NULL, 0, "", "hold expensive mailers", NULL},
    {"-D", IGNORED, ARG_REQUIRED, NULL, 0, " FILE", "debug log file",
     "a log file"},
    {"-d", IGNORED, ARG_ATTACHED, NULL, 0, "[<x>]", "debug level", NULL},
    {"-e", IGNORED, ARG_REQUIRED, NULL, 0, " X", "error mode",
     "an error mode letter"},
    {"-G", IGNORED, ARG_NONE, NULL, 0, "", "relay submission", NULL},
    {"-h", IGNORED, ARG_REQUIRED, NULL, 0, " N", "hop count", "a hop count"},
    {"-L", IGNORED, ARG_REQUIRED, NULL, 0, " TAG", "syslog tag",
     "a syslog tag"},
    {"-M", IGNORED, ARG_REQUIRED, NULL, 0, " XVALUE", "define a macro",
     "a macro letter and value"},
    {"-m", IGNORED, ARG_NONE, NULL, 0, "", "send to me too", NULL},
    {"-n", IGNORED, ARG_NONE, NULL, 0, "", "no aliasing", NULL},
    {"-p", IGNORED, ARG_REQUIRED, NULL, 0, " PROTO", "receiving protocol",
     "a protocol"},
    {"-s", IGNORED, ARG_NONE, NULL, 0, "", "keep From lines", NULL},
    {"-T", IGNORED, ARG_NONE, NULL, 0, "", "old timeout flag", NULL},
    {"-U", IGNORED, ARG_NONE, NULL, 0, "", "initial user submission", NULL},
    {"-X", IGNORED, ARG_REQUIRED, NULL, 0, " FILE", "traffic log file",
     "a log file"},
    {"-x", IGNORED, ARG_NONE, NULL, 0, "", "passed by some mailx", NULL},

    /* Long options: matched as whole words */
    {"--help", IMPLEMENTED, ARG_NONE, opt_mode, MODE_HELP, "",
     "print this help", NULL},
    {"--version", IMPLEMENTED, ARG_NONE, opt_mode, MODE_VERSION, "",
     "print the version", NULL},
};

#define NFLAGS (sizeof flag_table / sizeof flag_table[0])

/* A word and the value it stands for, for -B, -R, -N and booleans. */
struct keyword {
	const char *word;
	int value;
};

static const struct keyword body_words[] = {
    {"7BIT", BODY_7BIT},
    {"8BITMIME", BODY_8BITMIME},
};

static const struct keyword ret_words[] = {
    {"full", RET_FULL},
    {"hdrs", RET_HDRS},
};

static const struct keyword notify_words[] = {
    {"never", NOTIFY_NEVER},
    {"success", NOTIFY_SUCCESS},
    {"failure", NOTIFY_FAILURE},
    {"delay", NOTIFY_DELAY},
};

/* sendmail's booleans are read by their first letter; "" is true. */
static const struct keyword bool_letters[] = {
    {"", 1}, {"t", 1}, {"y", 1}, {"1", 1}, {"f", 0}, {"n", 0}, {"0", 0},
};

/* -od and -O DeliveryMode=: sendmail reads the first letter. */
static const struct keyword delivery_letters[] = {
    {"", DM_INTERACTIVE}, {"i", DM_INTERACTIVE}, {"b", DM_BACKGROUND},
    {"q", DM_QUEUE_ONLY}, {"d", DM_QUEUE_ONLY},
};

/* Program names that start in another mode; any other name is sendmail. */
static const struct {
	const char *name;
	enum mode mode;
} personalities[] = {
    {"mailq", MODE_QUEUE_LIST},
    {"newaliases", MODE_ALIASES},
};

static int set_ignore_dots(struct options *o, const char *value,
			   struct sm_error *err);
static int set_delivery(struct options *o, const char *value,
			struct sm_error *err);

/* -O option names (case-insensitive, as sendmail) that switchmail uses. */
static const struct {
	const char *name;
	int (*set)(struct options *o, const char *value, struct sm_error *err);
} long_options[] = {
    {"IgnoreDots", set_ignore_dots},
    {"DeliveryMode", set_delivery},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The value of s[0..len) in kw (case-insensitive), or -1. */
static int keyword_find(const struct keyword *kw, size_t n, const char *s,
			size_t len)
{
	for (size_t k = 0; k < n; k++)
		if (strlen(kw[k].word) == len &&
		    strncasecmp(kw[k].word, s, len) == 0)
			return kw[k].value;
	return -1;
}

/* s as printable, bounded text for an error message. */
static const char *shown_text(char *buf, size_t size, const char *s)
{
	error_printable(buf, size, s, strlen(s));
	return buf;
}

/* Note an accepted but unused flag for -v; past the limit, silently not. */
static void record_ignored(struct options *o, const char *what)
{
	if (o->nignored < OPTIONS_IGNORED_MAX)
		o->ignored[o->nignored++] = what;
}

/* The row of family (a text prefix, "-" for all) whose rest is the longest
 * prefix of s; long options are not matched here.  NULL if none. */
static const struct flag *find_flag(const char *family, const char *s)
{
	size_t flen = strlen(family), best_n = 0;
	const struct flag *best = NULL;

	for (size_t k = 0; k < NFLAGS; k++) {
		const char *t = flag_table[k].text;
		size_t n;

		if (strncmp(t, "--", 2) == 0 || strncmp(t, family, flen) != 0)
			continue;
		n = strlen(t + flen);
		if ((best == NULL || n > best_n) &&
		    strncmp(s, t + flen, n) == 0) {
			best = &flag_table[k];
			best_n = n;
		}
	}
	return best;
}

/* The long-option row named by the whole word w ("--help"), or NULL. */
static const struct flag *find_long(const char *w)
{
	for (size_t k = 0; k < NFLAGS; k++)
		if (strcmp(flag_table[k].text, w) == 0 &&
		    strncmp(w, "--", 2) == 0)
			return &flag_table[k];
	return NULL;
}

/* Fail for a flag no sendmail has, named as prefix + rest, printably. */
static int unknown_option(const char *prefix, const char *rest,
			  struct sm_error *err)
{
	char buf[80];

	return error_set(err, EX_USAGE,
			 "unknown option %s%s; see switchmail --help", prefix,
			 shown_text(buf, sizeof buf, rest));
}

/* Refuse, record or apply one use of a flag. */
static int apply(struct options *o, const struct use *u, struct sm_error *err)
{
	const struct flag *f = u->flag;

	if (f->kind == REFUSED)
		return error_set(err, EX_USAGE,
				 "option %s (%s) is not supported: %s", f->text,
				 f->help, f->detail);
	if (f->kind == IGNORED)
		record_ignored(o, u->shown);
	return f->fn != NULL ? f->fn(o, u, err) : 0;
}

/* Parse the flags in argv[i] (and its separate argument, if one is taken).
 * Returns how many argv words were used, 1 or 2, or -1 with err filled. */
static int parse_word(struct options *o, int argc, char **argv, int i,
		      struct sm_error *err)
{
	const char *w = argv[i];
	size_t p = 1;

	if (w[1] == '-') {
		const struct flag *f = find_long(w);
		struct use u = {f, NULL, w};

		if (f == NULL)
			return unknown_option("-", w + 1, err);
		return apply(o, &u, err) < 0 ? -1 : 1;
	}
	if (w[1] == '\0')
		return unknown_option("-", "", err);
	while (w[p] != '\0') {
		const struct flag *f = find_flag("-", w + p);
		struct use u = {f, NULL, f != NULL ? f->text : NULL};
		size_t end;

		if (f == NULL)
			return unknown_option("-", w + p, err);
		end = p + strlen(f->text) - 1;
		if (f->arg == ARG_NONE) {
			if (apply(o, &u, err) < 0)
				return -1;
			p = end;
			continue;
		}
		if (w[end] != '\0' || f->arg == ARG_ATTACHED) {
			u.arg = w + end;
			u.shown = p == 1 ? w : f->text;
			return apply(o, &u, err) < 0 ? -1 : 1;
		}
		if (i + 1 >= argc || argv[i + 1] == NULL ||
		    argv[i + 1][0] == '-')
			return error_set(err, EX_USAGE,
					 "option %s needs an argument (%s)",
					 f->text, f->detail);
		u.arg = argv[i + 1];
		return apply(o, &u, err) < 0 ? -1 : 2;
	}
	return 1;
}

/* Move argv[i..i+k) in front of the recipients argv[r..i), keeping both in
 * order: GNU getopt's permutation.  k is 1 or 2. */
static void move_front(char **argv, int r, int i, int k)
{
	char *save[2];

	memcpy(save, argv + i, (size_t)k * sizeof *argv);
	memmove(argv + r + k, argv + r, (size_t)(i - r) * sizeof *argv);
	memcpy(argv + r, save, (size_t)k * sizeof *argv);
}

/* The mode progname starts in: a personality, or sendmail's default. */
static enum mode personality(const char *progname)
{
	const char *base;

	if (progname == NULL)
		return MODE_DELIVER;
	base = strrchr(progname, '/');
	base = base != NULL ? base + 1 : progname;
	for (size_t k = 0; k < NELEM(personalities); k++)
		if (strcmp(personalities[k].name, base) == 0)
			return personalities[k].mode;
	return MODE_DELIVER;
}

int options_parse(int argc, char **argv, const char *progname,
		  struct options *o, struct sm_error *err)
{
	int r, i;

	if (o == NULL || (argv == NULL && argc > 0))
		return error_set(err, EX_SOFTWARE,
				 "options_parse: no options or no argv");
	*o = (struct options){0};
	o->mode = personality(progname);
	r = i = argc > 0 ? 1 : 0;
	while (i < argc && argv[i] != NULL) {
		bool end = strcmp(argv[i], "--") == 0;
		int used = 1;

		if (argv[i][0] != '-') {
			i++; /* a recipient: stays in the block argv[r..i) */
			continue;
		}
		if (!end && (used = parse_word(o, argc, argv, i, err)) < 0)
			return -1;
		move_front(argv, r, i, used);
		r += used;
		i += used;
		/* After "--", the rest are recipients whatever they look like.
		 */
		if (end)
			break;
	}
	while (i < argc && argv[i] != NULL)
		i++;
	o->recipients = argv != NULL ? argv + r : NULL;
	o->nrecipients = (size_t)(i - r);
	return 0;
}

/* --- handlers: one per thing a flag sets ------------------------------- */

/* -bX, -I, -q forms, --help, --version.  --help and --version win over
 * any other mode on the same command line. */
static int opt_mode(struct options *o, const struct use *u,
		    struct sm_error *err)
{
	(void)err;
	if (o->mode != MODE_HELP && o->mode != MODE_VERSION)
		o->mode = (enum mode)u->flag->value;
	return 0;
}

static int opt_extract(struct options *o, const struct use *u,
		       struct sm_error *err)
{
	(void)u;
	(void)err;
	o->extract_recipients = true;
	return 0;
}

/* -i, and -oi[VALUE] whose value is a sendmail boolean. */
static int opt_ignore_dots(struct options *o, const struct use *u,
			   struct sm_error *err)
{
	return set_ignore_dots(o, u->arg != NULL ? u->arg : "", err);
}

static int set_ignore_dots(struct options *o, const char *value,
			   struct sm_error *err)
{
	char buf[80];
	int v = keyword_find(bool_letters, NELEM(bool_letters), value,
			     value[0] != '\0' ? 1 : 0);

	if (v < 0)
		return error_set(err, EX_USAGE,
				 "IgnoreDots (-oi) takes true or false, not %s",
				 shown_text(buf, sizeof buf, value));
	o->ignore_dots = v != 0;
	return 0;
}

/* -f and -r: "" and "<>" are the null sender, kept as "".  CR, LF and the
 * rest are checked by address_valid() later, not here. */
static int opt_sender(struct options *o, const struct use *u,
		      struct sm_error *err)
{
	(void)err;
	o->sender = strcmp(u->arg, "<>") == 0 ? "" : u->arg;
	return 0;
}

static int opt_fullname(struct options *o, const struct use *u,
			struct sm_error *err)
{
	(void)err;
	o->fullname = u->arg;
	return 0;
}

static int opt_verbose(struct options *o, const struct use *u,
		       struct sm_error *err)
{
	(void)u;
	(void)err;
	if (o->verbose < INT_MAX)
		o->verbose++;
	return 0;
}

static int opt_body(struct options *o, const struct use *u,
		    struct sm_error *err)
{
	char buf[80];
	int v =
	    keyword_find(body_words, NELEM(body_words), u->arg, strlen(u->arg));

	if (v < 0)
		return error_set(err, EX_USAGE,
				 "-B takes 7BIT or 8BITMIME, not %s",
				 shown_text(buf, sizeof buf, u->arg));
	o->body = (enum body_type)v;
	return 0;
}

static int opt_ret(struct options *o, const struct use *u, struct sm_error *err)
{
	char buf[80];
	int v =
	    keyword_find(ret_words, NELEM(ret_words), u->arg, strlen(u->arg));

	if (v < 0)
		return error_set(err, EX_USAGE, "-R takes full or hdrs, not %s",
				 shown_text(buf, sizeof buf, u->arg));
	o->ret = (enum dsn_ret)v;
	return 0;
}

/* One -N word, spaces around it allowed (Postfix writes "delay, failure");
 * its NOTIFY_ bit, or -1. */
static int notify_word(const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return keyword_find(notify_words, NELEM(notify_words), s, len);
}

/* -N never | success,failure,delay: never stands alone. */
static int opt_notify(struct options *o, const struct use *u,
		      struct sm_error *err)
{
	char buf[80];
	const char *s = u->arg;
	int bits = 0;

	for (;;) {
		size_t n = strcspn(s, ",");
		int bit = notify_word(s, n);

		if (bit < 0)
			return error_set(err, EX_USAGE,
					 "-N takes never, or a comma list of "
					 "success, failure and delay; not %s",
					 shown_text(buf, sizeof buf, u->arg));
		bits |= bit;
		if (s[n] == '\0')
			break;
		s += n + 1;
	}
	if ((bits & NOTIFY_NEVER) != 0 && bits != NOTIFY_NEVER)
		return error_set(err, EX_USAGE,
				 "-N never cannot be combined with success, "
				 "failure or delay: %s",
				 shown_text(buf, sizeof buf, u->arg));
	o->notify = bits;
	return 0;
}

#define ENVID_MAX 100 /* RFC 3461 §4.4 */

/* -V: it goes into an SMTP command, so printable ASCII without spaces. */
static int opt_envid(struct options *o, const struct use *u,
		     struct sm_error *err)
{
	size_t n = strlen(u->arg);
	bool ok = n > 0 && n <= ENVID_MAX;

	for (size_t k = 0; ok && k < n; k++)
		ok = u->arg[k] > ' ' && u->arg[k] < 0x7f;
	if (!ok)
		return error_set(err, EX_USAGE,
				 "-V takes an envelope id of 1 to %d printable "
				 "characters without spaces",
				 ENVID_MAX);
	o->envid = u->arg;
	return 0;
}

/* -odMODE. */
static int opt_delivery(struct options *o, const struct use *u,
			struct sm_error *err)
{
	return set_delivery(o, u->arg, err);
}

static int set_delivery(struct options *o, const char *value,
			struct sm_error *err)
{
	char buf[80];
	int v = keyword_find(delivery_letters, NELEM(delivery_letters), value,
			     value[0] != '\0' ? 1 : 0);

	if (v < 0)
		return error_set(err, EX_USAGE,
				 "unknown delivery mode %s; use -odi "
				 "(interactive), -odb (background) or -odq "
				 "(queue only)",
				 shown_text(buf, sizeof buf, value));
	o->delivery = (enum delivery_mode)v;
	return 0;
}

static int opt_config(struct options *o, const struct use *u,
		      struct sm_error *err)
{
	if (u->arg[0] == '\0')
		return error_set(err, EX_USAGE,
				 "option -C needs an argument (%s)",
				 u->flag->detail);
	o->config_path = u->arg;
	return 0;
}

/* Whether s is a sendmail interval: groups of digits, each with an
 * optional unit s, m, h, d or w ("30m", "1h30m", "15"). */
static bool interval_valid(const char *s)
{
	while (*s != '\0') {
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
		if (*s != '\0' && strchr("smhdw", *s) != NULL)
			s++;
	}
	return true;
}

/* -q[TIME]: one queue run; the interval of a periodic runner is ignored. */
static int opt_queue_run(struct options *o, const struct use *u,
			 struct sm_error *err)
{
	char buf[80];

	if (!interval_valid(u->arg))
		return error_set(err, EX_USAGE,
				 "-q%s is neither an interval (as in -q30m) "
				 "nor -qI<id> or -qR<domain>; see switchmail "
				 "--help",
				 shown_text(buf, sizeof buf, u->arg));
	if (u->arg[0] != '\0')
		record_ignored(o, u->shown);
	return opt_mode(o, u, err);
}

static int opt_queue_id(struct options *o, const struct use *u,
			struct sm_error *err)
{
	if (u->arg[0] == '\0')
		return error_set(
		    err, EX_USAGE,
		    "-qI needs a queue id attached, as in -qIABC123");
	o->queue_id = u->arg;
	return opt_mode(o, u, err);
}

static int opt_queue_domain(struct options *o, const struct use *u,
			    struct sm_error *err)
{
	if (u->arg[0] == '\0')
		return error_set(err, EX_USAGE,
				 "-qR needs a domain attached, as in "
				 "-qRexample.org");
	o->queue_domain = u->arg;
	return opt_mode(o, u, err);
}

/* -O NAME[=VALUE]: names switchmail uses are applied, others recorded. */
static int opt_long_option(struct options *o, const struct use *u,
			   struct sm_error *err)
{
	size_t len = strcspn(u->arg, "=");
	const char *value = u->arg[len] == '=' ? u->arg + len + 1 : "";

	for (size_t k = 0; k < NELEM(long_options); k++)
		if (strlen(long_options[k].name) == len &&
		    strncasecmp(long_options[k].name, u->arg, len) == 0)
			return long_options[k].set(o, value, err);
	record_ignored(o, u->shown != u->flag->text ? u->shown : u->arg);
	return 0;
}

/* -b and -o: a member given as a separate word ("-b s", "-o i") is applied
 * as if attached; a member the table does not list is refused (-b) or
 * ignored (-o), as the row's value says. */
static int opt_family(struct options *o, const struct use *u,
		      struct sm_error *err)
{
	const struct flag *fam = u->flag;
	const struct flag *f = find_flag(fam->text, u->arg);
	struct use m = {f, NULL, f->text};

	if (f != fam) {
		m.arg = u->arg + strlen(f->text) - strlen(fam->text);
		if (f->arg == ARG_NONE && m.arg[0] != '\0')
			return unknown_option(fam->text, u->arg, err);
		if (f->arg == ARG_NONE)
			m.arg = NULL;
		return apply(o, &m, err);
	}
	if (fam->value == FAMILY_UNKNOWN_REFUSED)
		return unknown_option(fam->text, u->arg, err);
	record_ignored(o, u->shown != fam->text ? u->shown : u->arg);
	return 0;
}

/* --- help ----------------------------------------------------------------- */

/* Print the texts of every row of kind, wrapped, after title. */
static void print_kind(FILE *fp, enum flag_kind kind, const char *title)
{
	size_t col = strlen(title);

	fputs(title, fp);
	for (size_t k = 0; k < NFLAGS; k++) {
		const struct flag *f = &flag_table[k];
		size_t n = strlen(f->text) + strlen(f->metavar) + 1;

		if (f->kind != kind)
			continue;
		if (col + n > 78) {
			fputs("\n   ", fp);
			col = 3;
		}
		fprintf(fp, " %s%s", f->text, f->metavar);
		col += n;
	}
	fputc('\n', fp);
}

void options_usage(FILE *fp)
{
	fputs("usage: sendmail [options] [--] [recipient ...]\n"
	      "       mailq [-v]    (sendmail -bp)\n"
	      "       newaliases    (sendmail -bi)\n"
	      "Options may follow recipients; -- ends them.  A recipient may "
	      "be a comma list.\n\n",
	      fp);
	for (size_t k = 0; k < NFLAGS; k++) {
		const struct flag *f = &flag_table[k];
		char syn[32];

		if (f->kind != IMPLEMENTED)
			continue;
		snprintf(syn, sizeof syn, "%s%s", f->text, f->metavar);
		fprintf(fp, "  %-16s %s\n", syn, f->help);
	}
	fputc('\n', fp);
	print_kind(fp, IGNORED, "Accepted and ignored:");
	print_kind(fp, REFUSED, "Refused (not for a submission client):");
}
