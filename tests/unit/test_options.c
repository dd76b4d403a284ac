/*
 * test_options.c - the sendmail command line (options.c), table driven:
 * real command lines from PHP, PHPMailer, cron, mailx, git, Symfony,
 * Laravel and fail2ban; every sendmail 8 flag; hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"

#define MAXARGS 24

/* argv for one parse: prog then args (NULL-terminated), in a mutable array
 * since options_parse permutes it. */
struct cmdline {
	char *v[MAXARGS + 2];
	int c;
};

static void cmdline_set(struct cmdline *cl, const char *prog,
			const char *const *args)
{
	cl->c = 0;
	cl->v[cl->c++] = (char *)prog;
	for (size_t k = 0; args[k] != NULL; k++) {
		assert_true(cl->c <= MAXARGS);
		cl->v[cl->c++] = (char *)args[k];
	}
	cl->v[cl->c] = NULL;
}

static int parse(const char *prog, const char *const *args, struct options *o,
		 struct sm_error *err, struct cmdline *cl)
{
	cmdline_set(cl, prog, args);
	error_clear(err);
	return options_parse(cl->c, cl->v, prog, o, err);
}

/* ---- real command lines ------------------------------------------------ */

struct want {
	enum mode mode;
	bool t, i;
	const char *sender, *fullname;
	int verbose;
	enum body_type body;
	int notify;
	enum dsn_ret ret;
	const char *envid;
	enum delivery_mode delivery;
	const char *config, *queue_id, *queue_domain;
	const char *rcpt[8];	/* NULL-terminated */
	const char *ignored[8]; /* NULL-terminated */
};

struct good_case {
	const char *name;
	const char *prog;
	const char *args[MAXARGS];
	struct want w;
};

#define V(...)                                                                 \
	{                                                                      \
		__VA_ARGS__, NULL                                              \
	}

static const struct good_case good_cases[] = {
    {"PHP mail()", "sendmail", V("-t", "-i"), {.t = true, .i = true}},
    {"PHPMailer",
     "sendmail",
     V("-t", "-i", "-oi", "-f", "x@y", "-t"),
     {.t = true, .i = true, .sender = "x@y"}},
    {"cron",
     "sendmail",
     V("-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"),
     {.i = true,
      .fullname = "CronDaemon",
      .body = BODY_8BITMIME,
      .rcpt = {"root"},
      .ignored = {"-oem"}}},
    {"Debian cron",
     "sendmail",
     V("-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root@x"),
     {.i = true,
      .fullname = "CronDaemon",
      .body = BODY_8BITMIME,
      .rcpt = {"root@x"},
      .ignored = {"-oem"}}},
    {"mailx", "sendmail", V("-i", "--", "a@x"), {.i = true, .rcpt = {"a@x"}}},
    {"git send-email",
     "sendmail",
     V("-i", "a@x", "b@y"),
     {.i = true, .rcpt = {"a@x", "b@y"}}},
    {"git send-email -f",
     "sendmail",
     V("-f", "me@x", "-i", "a@x"),
     {.i = true, .sender = "me@x", .rcpt = {"a@x"}}},
    {"Symfony", "sendmail", V("-bs"), {.mode = MODE_SMTP}},
    {"Laravel", "sendmail", V("-bs", "-i"), {.mode = MODE_SMTP, .i = true}},
    {"fail2ban",
     "sendmail",
     V("-f", "fail2ban", "root@x,", "admin@y"),
     {.sender = "fail2ban", .rcpt = {"root@x,", "admin@y"}}},
    {"comma lists kept whole",
     "sendmail",
     V("a@x,b@y", "a@x, b@y"),
     {.rcpt = {"a@x,b@y", "a@x, b@y"}}},
    {"-t -odq",
     "sendmail",
     V("-t", "-odq"),
     {.t = true, .delivery = DM_QUEUE_ONLY}},
    {"-odb", "sendmail", V("-odb"), {.delivery = DM_BACKGROUND}},
    {"-odd is queue only", "sendmail", V("-odd"), {.delivery = DM_QUEUE_ONLY}},
    {"-odi after -odq",
     "sendmail",
     V("-odq", "-odi"),
     {.delivery = DM_INTERACTIVE}},
    {"-q", "sendmail", V("-q"), {.mode = MODE_QUEUE_RUN}},
    {"-q30m",
     "sendmail",
     V("-q30m"),
     {.mode = MODE_QUEUE_RUN, .ignored = {"-q30m"}}},
    {"-q1h30m",
     "sendmail",
     V("-q1h30m"),
     {.mode = MODE_QUEUE_RUN, .ignored = {"-q1h30m"}}},
    {"-qIABC",
     "sendmail",
     V("-qIABC"),
     {.mode = MODE_QUEUE_RUN, .queue_id = "ABC"}},
    {"-qRexample.com",
     "sendmail",
     V("-qRexample.com"),
     {.mode = MODE_QUEUE_RUN, .queue_domain = "example.com"}},
    {"-qS ignored",
     "sendmail",
     V("-qSbob"),
     {.mode = MODE_QUEUE_RUN, .ignored = {"-qSbob"}}},
    {"-qf", "sendmail", V("-qf"), {.mode = MODE_QUEUE_RUN, .ignored = {"-qf"}}},
    {"-bp", "sendmail", V("-bp"), {.mode = MODE_QUEUE_LIST}},
    {"-bi", "sendmail", V("-bi"), {.mode = MODE_ALIASES}},
    {"-I", "sendmail", V("-I"), {.mode = MODE_ALIASES}},
    {"-bv",
     "sendmail",
     V("-bv", "a@x"),
     {.mode = MODE_VERIFY, .rcpt = {"a@x"}}},
    {"-bm", "sendmail", V("-bs", "-bm"), {.mode = MODE_DELIVER}},
    {"-C",
     "sendmail",
     V("-C", "/tmp/x.conf", "-t"),
     {.t = true, .config = "/tmp/x.conf"}},
    {"-C attached", "sendmail", V("-C/tmp/x.conf"), {.config = "/tmp/x.conf"}},
    {"DSN",
     "sendmail",
     V("-N", "success,failure", "-R", "hdrs", "-V", "abc"),
     {.notify = NOTIFY_SUCCESS | NOTIFY_FAILURE,
      .ret = RET_HDRS,
      .envid = "abc"}},
    {"DSN attached",
     "sendmail",
     V("-Nnever", "-Rfull", "-Vx+2Dy"),
     {.notify = NOTIFY_NEVER, .ret = RET_FULL, .envid = "x+2Dy"}},
    {"-it", "sendmail", V("-it"), {.t = true, .i = true}},
    {"-ti", "sendmail", V("-ti"), {.t = true, .i = true}},
    {"-vvv", "sendmail", V("-vvv", "-v"), {.verbose = 4}},
    {"bundle ending in -f",
     "sendmail",
     V("-tif", "me@x"),
     {.t = true, .i = true, .sender = "me@x"}},
    {"bundle with attached -f",
     "sendmail",
     V("-tifme@x"),
     {.t = true, .i = true, .sender = "me@x"}},
    {"-f \"\" is the null sender",
     "sendmail",
     V("-f", "", "a@x"),
     {.sender = "", .rcpt = {"a@x"}}},
    {"-f <> is the null sender", "sendmail", V("-f", "<>"), {.sender = ""}},
    {"-f<> attached", "sendmail", V("-f<>"), {.sender = ""}},
    {"-r is -f", "sendmail", V("-r", "r@x"), {.sender = "r@x"}},
    {"-rADDR", "sendmail", V("-rr@x"), {.sender = "r@x"}},
    {"last -f wins",
     "sendmail",
     V("-f", "a@x", "-f", "b@x"),
     {.sender = "b@x"}},
    {"-F separate",
     "sendmail",
     V("-F", "Jolly Roger"),
     {.fullname = "Jolly Roger"}},
    {"-B 7bit case-insensitive",
     "sendmail",
     V("-B", "7bit"),
     {.body = BODY_7BIT}},
    {"-B 8bitmime", "sendmail", V("-B", "8BitMime"), {.body = BODY_8BITMIME}},
    {"options after recipients",
     "sendmail",
     V("a@x", "-t", "b@y", "-i"),
     {.t = true, .i = true, .rcpt = {"a@x", "b@y"}}},
    {"-- keeps dashes as recipients",
     "sendmail",
     V("-t", "--", "-i", "--"),
     {.t = true, .rcpt = {"-i", "--"}}},
    {"-O IgnoreDots=true", "sendmail", V("-O", "IgnoreDots=true"), {.i = true}},
    {"-OIgnoreDots", "sendmail", V("-OIgnoreDots"), {.i = true}},
    {"-O ignoredots=false",
     "sendmail",
     V("-i", "-O", "ignoredots=false"),
     {.i = false}},
    {"-O DeliveryMode=background",
     "sendmail",
     V("-O", "DeliveryMode=background"),
     {.delivery = DM_BACKGROUND}},
    {"-O other ignored",
     "sendmail",
     V("-O", "Timeout.queuereturn=5d"),
     {.ignored = {"Timeout.queuereturn=5d"}}},
    {"-oi with value", "sendmail", V("-oiT"), {.i = true}},
    {"-o i separate", "sendmail", V("-o", "i"), {.i = true}},
    {"-o dq separate", "sendmail", V("-o", "dq"), {.delivery = DM_QUEUE_ONLY}},
    {"-b s separate", "sendmail", V("-b", "s"), {.mode = MODE_SMTP}},
    {"other -o ignored",
     "sendmail",
     V("-oQ/tmp", "-om", "-o7", "-oep"),
     {.ignored = {"-oQ/tmp", "-om", "-o7", "-oep"}}},
    {"ignored with arguments",
     "sendmail",
     V("-h", "5", "-L", "tag", "-X", "/tmp/log", "-e", "m", "-A", "c", "a@x"),
     {.rcpt = {"a@x"}, .ignored = {"-h", "-L", "-X", "-e", "-A"}}},
    {"ignored, attached",
     "sendmail",
     V("-h5", "-d0.1", "-d", "-pUUCP:host"),
     {.ignored = {"-h5", "-d0.1", "-d", "-pUUCP:host"}}},
    {"ignored, no argument",
     "sendmail",
     V("-G", "-U", "-n", "-m", "-s", "-c"),
     {.ignored = {"-G", "-U", "-n", "-m", "-s", "-c"}}},
    {"ignored in a bundle",
     "sendmail",
     V("-tmG"),
     {.t = true, .ignored = {"-m", "-G"}}},
    {"--help", "sendmail", V("--help"), {.mode = MODE_HELP}},
    {"--version", "sendmail", V("--version"), {.mode = MODE_VERSION}},
    {"--help wins over -bs",
     "sendmail",
     V("--help", "-bs"),
     {.mode = MODE_HELP}},
    {"mailq", "mailq", V(NULL), {.mode = MODE_QUEUE_LIST}},
    {"mailq -v", "mailq", V("-v"), {.mode = MODE_QUEUE_LIST, .verbose = 1}},
    {"mailq by path", "/usr/bin/mailq", V(NULL), {.mode = MODE_QUEUE_LIST}},
    {"newaliases", "newaliases", V(NULL), {.mode = MODE_ALIASES}},
    {"newaliases -bp", "newaliases", V("-bp"), {.mode = MODE_QUEUE_LIST}},
    {"other names are sendmail", "switchmail", V("-t"), {.t = true}},
    {"-f with CR/LF not checked here",
     "sendmail",
     V("-f", "a@x\r\nRCPT TO:<b@y>"),
     {.sender = "a@x\r\nRCPT TO:<b@y>"}},
    {"empty recipient kept", "sendmail", V(""), {.rcpt = {""}}},
};

static bool str_same(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Whether a NULL-terminated want list equals got[0..n). */
static bool list_same(const char *const *want, const char *const *got, size_t n)
{
	size_t k;

	for (k = 0; want[k] != NULL; k++)
		if (k >= n || strcmp(want[k], got[k]) != 0)
			return false;
	return k == n;
}

/* The first field of o that differs from w, or NULL. */
static const char *want_mismatch(const struct options *o, const struct want *w)
{
	const struct {
		bool same;
		const char *field;
	} checks[] = {
	    {w->mode == o->mode, "mode"},
	    {w->t == o->extract_recipients, "extract_recipients"},
	    {w->i == o->ignore_dots, "ignore_dots"},
	    {str_same(w->sender, o->sender), "sender"},
	    {str_same(w->fullname, o->fullname), "fullname"},
	    {w->verbose == o->verbose, "verbose"},
	    {w->body == o->body, "body"},
	    {w->notify == o->notify, "notify"},
	    {w->ret == o->ret, "ret"},
	    {str_same(w->envid, o->envid), "envid"},
	    {w->delivery == o->delivery, "delivery"},
	    {str_same(w->config, o->config_path), "config_path"},
	    {str_same(w->queue_id, o->queue_id), "queue_id"},
	    {str_same(w->queue_domain, o->queue_domain), "queue_domain"},
	    {list_same(w->rcpt, (const char *const *)o->recipients,
		       o->nrecipients),
	     "recipients"},
	    {list_same(w->ignored, o->ignored, o->nignored), "ignored"},
	};

	for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++)
		if (!checks[k].same)
			return checks[k].field;
	return NULL;
}

static void test_real_command_lines(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof good_cases / sizeof good_cases[0]; k++) {
		const struct good_case *c = &good_cases[k];
		struct cmdline cl;
		struct options o;
		struct sm_error err;
		int rc = parse(c->prog, c->args, &o, &err, &cl);

		const char *bad;

		if (rc != 0)
			print_message("case %s: %s\n", c->name, err.msg);
		assert_int_equal(0, rc);
		assert_int_equal(EX_OK, err.code);
		bad = want_mismatch(&o, &c->w);
		if (bad != NULL)
			print_message("case %s: %s differs\n", c->name, bad);
		assert_null(bad);
	}
}

/* ---- what must fail -------------------------------------------------- */

struct bad_case {
	const char *args[MAXARGS];
	const char *msg; /* exact, or a substring when it starts with '~' */
};

static const struct bad_case bad_cases[] = {
    {V("-Z"), "unknown option -Z; see switchmail --help"},
    {V("--foo"), "unknown option --foo; see switchmail --help"},
    {V("--helpme"), "unknown option --helpme; see switchmail --help"},
    {V("-"), "unknown option -; see switchmail --help"},
    {V("-tZ"), "unknown option -Z; see switchmail --help"},
    {V("a@x", "-tiZq"), "unknown option -Zq; see switchmail --help"},
    {V("-bz9"), "~option -bz (freeze the configuration) is not supported"},
    {V("-bq"), "unknown option -bq; see switchmail --help"},
    {V("-b", "q"), "unknown option -bq; see switchmail --help"},
    {V("-b", "sx"), "unknown option -bsx; see switchmail --help"},
    {V("-f"), "option -f needs an argument (the sender address)"},
    {V("-t", "-f"), "option -f needs an argument (the sender address)"},
    {V("-f", "-t"), "option -f needs an argument (the sender address)"},
    {V("-tf"), "option -f needs an argument (the sender address)"},
    {V("-r"), "option -r needs an argument (the sender address)"},
    {V("-F"), "option -F needs an argument (the sender's full name)"},
    {V("-B"), "option -B needs an argument (7BIT or 8BITMIME)"},
    {V("-N"), "~option -N needs an argument (never"},
    {V("-R"), "option -R needs an argument (full or hdrs)"},
    {V("-V"), "option -V needs an argument (the envelope id)"},
    {V("-C"), "option -C needs an argument (the configuration file)"},
    {V("-C", ""), "option -C needs an argument (the configuration file)"},
    {V("-O"), "~option -O needs an argument"},
    {V("-o"), "~option -o needs an argument"},
    {V("-b"), "~option -b needs an argument"},
    {V("-h"), "option -h needs an argument (a hop count)"},
    {V("-L"), "~option -L needs an argument"},
    {V("-X"), "~option -X needs an argument"},
    {V("-e"), "~option -e needs an argument"},
    {V("-A"), "~option -A needs an argument"},
    {V("-p"), "~option -p needs an argument"},
    {V("-D"), "~option -D needs an argument"},
    {V("-M"), "~option -M needs an argument"},
    {V("-B", "8BIT"), "-B takes 7BIT or 8BITMIME, not 8BIT"},
    {V("-B", ""), "-B takes 7BIT or 8BITMIME, not "},
    {V("-Bbinarymime"), "-B takes 7BIT or 8BITMIME, not binarymime"},
    {V("-R", "body"), "-R takes full or hdrs, not body"},
    {V("-N", "sometimes"), "~-N takes never, or a comma list"},
    {V("-N", ""), "~-N takes never, or a comma list"},
    {V("-N", "success,,delay"), "~-N takes never, or a comma list"},
    {V("-N", "success,"), "~-N takes never, or a comma list"},
    {V("-N", "never,success"), "~-N never cannot be combined"},
    {V("-N", "failure,NEVER"), "~-N never cannot be combined"},
    {V("-V", "a b"), "~-V takes an envelope id"},
    {V("-V", "a\r\nb"), "~-V takes an envelope id"},
    {V("-V", ""), "~-V takes an envelope id"},
    {V("-q5x"), "~-q5x is neither an interval"},
    {V("-qX"), "~-qX is neither an interval"},
    {V("-qI"), "~-qI needs a queue id"},
    {V("-qR"), "~-qR needs a domain"},
    {V("-odx"), "~unknown delivery mode x"},
    {V("-O", "DeliveryMode=z"), "~unknown delivery mode z"},
    {V("-oimaybe"), "~IgnoreDots (-oi) takes true or false"},
    {V("-O", "IgnoreDots=maybe"), "~IgnoreDots (-oi) takes true or false"},
    {V("-bd"), "option -bd (run as a daemon) is not supported: switchmail "
	       "is a submission client: it relays through your provider "
	       "and does not listen for mail; run your MTA's daemon "
	       "instead"},
    {V("-bD"), "~does not listen for mail"},
    {V("-bl"), "~does not listen for mail"},
    {V("-b", "d"), "~does not listen for mail"},
    {V("-tbd"), "~does not listen for mail"},
    {V("-bt"), "~use -bv to check"},
    {V("-ba"), "~option -ba (ARPANET mode) is not supported"},
    {V("-bh"), "~no host status database"},
    {V("-bH"), "~no host status database"},
    {V("-bP"), "~mailq"},
    {V("-bC"), "~sendmail.cf"},
    {V("-Q"), "~option -Q (quarantine queued mail) is not supported"},
    {V("-Qspam"), "~does not quarantine"},
    {V("-qQ"), "~does not quarantine"},
    {V("-qL"), "~option -qL"},
    {V("-q!Ifoo"), "~option -q!"},
    {V("-Z\r\n"), "unknown option -Z\\r\\n; see switchmail --help"},
};

static void test_bad_command_lines(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
		const struct bad_case *c = &bad_cases[k];
		struct cmdline cl;
		struct options o;
		struct sm_error err;

		int rc = parse("sendmail", c->args, &o, &err, &cl);
		bool ok = c->msg[0] == '~' ? strstr(err.msg, c->msg + 1) != NULL
					   : strcmp(err.msg, c->msg) == 0;

		if (rc != -1 || !ok)
			print_message("bad case %zu (%s): got %d, %s\n", k,
				      c->args[0], rc, err.msg);
		assert_int_equal(-1, rc);
		assert_int_equal(EX_USAGE, err.code);
		assert_true(ok);
	}
}

/* ---- the table against sendmail 8 ------------------------------------ */

/* sendmail 8's getopt string (main.c), plus -x (OSF/AIX mailx) and -U. */
static const char sendmail8_getopt[] =
    "A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtV:vX:xU";

/* A valid argument for a flag that takes one. */
static const char *sample_arg(char letter)
{
	static const struct {
		char letter;
		const char *arg;
	} samples[] = {
	    {'B', "7BIT"}, {'b', "m"},	 {'N', "never"}, {'R', "full"},
	    {'o', "i"},	   {'O', "a=b"}, {'q', "1h"},	 {'V', "id"},
	    {'A', "c"},	   {'d', "0.1"}, {'Q', ""},	 {'e', "m"},
	};

	for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++)
		if (samples[k].letter == letter)
			return samples[k].arg;
	return "x";
}

static void assert_known(const char *flag, const char *arg)
{
	const char *args[3] = {flag, arg, NULL};
	struct cmdline cl;
	struct options o;
	struct sm_error err;

	if (parse("sendmail", args, &o, &err, &cl) == 0)
		return;
	if (strstr(err.msg, "unknown option") != NULL ||
	    strstr(err.msg, "needs an argument") != NULL)
		print_message("flag %s: %s\n", flag, err.msg);
	assert_null(strstr(err.msg, "unknown option"));
	assert_null(strstr(err.msg, "needs an argument"));
}

static void test_every_sendmail8_flag_known(void **state)
{
	static const char *const forms[] = {
	    "-bm",    "-bs",	   "-ba",	"-bd",	 "-bD",	   "-bl",
	    "-bv",    "-bt",	   "-bi",	"-bp",	 "-bP",	   "-bz",
	    "-bh",    "-bH",	   "-bC",	"-q",	 "-q30m",  "-qp",
	    "-qp5m",  "-qf",	   "-qGgroup",	"-qIid", "-q!Iid", "-qRx",
	    "-qSx",   "-qQ",	   "-qQreason", "-qL",	 "-oi",	   "-odi",
	    "-odb",   "-odq",	   "-odd",	"-oem",	 "-oep",   "-oeq",
	    "-oew",   "-oee",	   "-om",	"-o7",	 "-o8",	   "-oAfile",
	    "-oL9",   "-Ac",	   "-Am",	"-d",	 "-Q",	   "-Qreason",
	    "--help", "--version",
	};
	(void)state;
	for (const char *p = sendmail8_getopt; *p != '\0'; p++) {
		char flag[3] = {'-', *p, '\0'};
		bool has_arg = p[1] == ':';

		if (*p == ':')
			continue;
		assert_known(flag, has_arg ? sample_arg(*p) : NULL);
	}
	for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++)
		assert_known(forms[k], NULL);
}

/* ---- argv handling --------------------------------------------------- */

static void test_argv_is_permuted_not_lost(void **state)
{
	const char *args[] = {"a@x", "-f",   "s@x", "b@y", "-t",
			      "--",  "-c@x", "-t",  NULL};
	const char *after[] = {"-f",  "s@x", "-t",   "--",
			       "a@x", "b@y", "-c@x", "-t"};
	struct cmdline cl;
	struct options o;
	struct sm_error err;

	(void)state;
	assert_int_equal(0, parse("sendmail", args, &o, &err, &cl));
	assert_ptr_equal(cl.v + 5, o.recipients);
	assert_int_equal(4, o.nrecipients);
	for (size_t k = 0; k < 8; k++)
		assert_string_equal(after[k], cl.v[k + 1]);
	assert_null(cl.v[9]);
	assert_string_equal("s@x", o.sender);
	assert_true(o.extract_recipients);
}

static void test_no_arguments(void **state)
{
	char *none[] = {NULL};
	char *prog[] = {"sendmail", NULL};
	struct options o;
	struct sm_error err;

	(void)state;
	assert_int_equal(0, options_parse(0, none, "sendmail", &o, &err));
	assert_int_equal(0, o.nrecipients);
	assert_int_equal(MODE_DELIVER, o.mode);
	assert_int_equal(0, options_parse(1, prog, NULL, &o, &err));
	assert_int_equal(0, o.nrecipients);
	assert_int_equal(-1, options_parse(1, prog, "sendmail", NULL, &err));
	assert_int_equal(EX_SOFTWARE, err.code);
}

#define MANY 10000

/* 10000 recipients, alone, then each followed by an option. */
static void test_many_recipients(void **state)
{
	char **argv = calloc(2 * MANY + 2, sizeof *argv);
	char(*names)[16] = calloc(MANY, sizeof *names);
	struct options o;
	struct sm_error err;
	int argc = 1;

	(void)state;
	assert_non_null(argv);
	assert_non_null(names);
	argv[0] = "sendmail";
	for (int k = 0; k < MANY; k++) {
		snprintf(names[k], sizeof names[k], "r%d@x", k);
		argv[argc++] = names[k];
	}
	assert_int_equal(0, options_parse(argc, argv, "sendmail", &o, &err));
	assert_int_equal(MANY, o.nrecipients);
	assert_string_equal("r9999@x", o.recipients[MANY - 1]);

	argc = 1;
	for (int k = 0; k < MANY; k++) {
		argv[argc++] = names[k];
		argv[argc++] = k % 2 ? "-v" : "-oem";
	}
	argv[argc] = NULL;
	assert_int_equal(0, options_parse(argc, argv, "sendmail", &o, &err));
	assert_int_equal(MANY, o.nrecipients);
	assert_int_equal(MANY / 2, o.verbose);
	assert_int_equal(OPTIONS_IGNORED_MAX, o.nignored);
	for (int k = 0; k < MANY; k++)
		assert_string_equal(names[k], o.recipients[k]);
	free(names);
	free(argv);
}

static void test_ignored_limit(void **state)
{
	const char *args[MAXARGS + 1];
	struct cmdline cl;
	struct options o;
	struct sm_error err;
	char many[OPTIONS_IGNORED_MAX + 9];

	(void)state;
	/* -mmmm...: each -m is one ignored flag. */
	many[0] = '-';
	memset(many + 1, 'm', sizeof many - 2);
	many[sizeof many - 1] = '\0';
	args[0] = many;
	args[1] = "-oem";
	args[2] = NULL;
	assert_int_equal(0, parse("sendmail", args, &o, &err, &cl));
	assert_int_equal(OPTIONS_IGNORED_MAX, o.nignored);
	for (size_t k = 0; k < o.nignored; k++)
		assert_string_equal("-m", o.ignored[k]);
}

/* ---- help ------------------------------------------------------------ */

static void test_usage_from_the_table(void **state)
{
	static const char *const implemented[] = {
	    "-t",	   "-i",     "-f ADDR",	  "-r ADDR",	"-F NAME",
	    "-B TYPE",	   "-N DSN", "-R RET",	  "-V ENVID",	"-v",
	    "-C FILE",	   "-oi",    "-od<mode>", "-q[<time>]", "-qI<id>",
	    "-qR<domain>", "-bm",    "-bs",	  "-bp",	"-bi",
	    "-bv",	   "--help", "--version",
	};
	static const char *const listed[] = {
	    "Accepted and ignored:",
	    " -oe<x>",
	    " -h N",
	    " -L TAG",
	    " -G",
	    " -U",
	    " -x",
	    " -d[<x>]",
	    " -qS<sender>",
	    "Refused",
	    " -bd",
	    " -bt",
	    " -bD",
	    " -Q",
	    " -qQ",
	};
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	char *line;

	(void)state;
	assert_non_null(fp);
	options_usage(fp);
	assert_int_equal(0, fclose(fp));
	assert_non_null(strstr(text, "usage: sendmail"));
	for (size_t k = 0; k < sizeof implemented / sizeof implemented[0];
	     k++) {
		char needle[40];

		snprintf(needle, sizeof needle, "\n  %s ", implemented[k]);
		if (strstr(text, needle) == NULL)
			print_message("no help line for %s\n", implemented[k]);
		assert_non_null(strstr(text, needle));
	}
	for (size_t k = 0; k < sizeof listed / sizeof listed[0]; k++)
		assert_non_null(strstr(text, listed[k]));
	for (line = text; *line != '\0';) {
		size_t n = strcspn(line, "\n");

		assert_true(n <= 80);
		line += n + (line[n] == '\n');
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_command_lines),
	    cmocka_unit_test(test_bad_command_lines),
	    cmocka_unit_test(test_every_sendmail8_flag_known),
	    cmocka_unit_test(test_argv_is_permuted_not_lost),
	    cmocka_unit_test(test_no_arguments),
	    cmocka_unit_test(test_many_recipients),
	    cmocka_unit_test(test_ignored_limit),
	    cmocka_unit_test(test_usage_from_the_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
