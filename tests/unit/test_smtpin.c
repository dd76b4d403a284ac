/*
 * test_smtpin.c - the -bs command parser (verbs, paths, MAIL parameters),
 * table driven; and whole sessions over a stub submit: replies, what was
 * handed over, and the idle timeout (1 s here, SMTPIN_IDLE_TIMEOUT in the
 * binary), which the end-to-end suite cannot wait for.
 */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpin.h"

static void test_parse_verb(void **state)
{
	static const struct {
		const char *line;
		enum smtpin_verb verb;
		const char *arg;
	} t[] = {
	    {"HELO x", SMTP_HELO, "x"},
	    {"ehlo  client.example ", SMTP_EHLO, "client.example"},
	    {"Mail FROM:<a@b>", SMTP_MAIL, "FROM:<a@b>"},
	    {"RCPT\tTO:<a@b>", SMTP_RCPT, "TO:<a@b>"},
	    {"DATA", SMTP_DATA, ""},
	    {"data \t", SMTP_DATA, ""},
	    {"DATA now", SMTP_DATA, "now"},
	    {"RSET", SMTP_RSET, ""},
	    {"NOOP anything at all", SMTP_NOOP, "anything at all"},
	    {"VRFY root", SMTP_VRFY, "root"},
	    {"EXPN list", SMTP_EXPN, "list"},
	    {"HELP", SMTP_HELP, ""},
	    {"QUIT", SMTP_QUIT, ""},
	    {"QUITX", SMTP_UNKNOWN, ""},
	    {"QUI", SMTP_UNKNOWN, ""},
	    {" QUIT", SMTP_UNKNOWN, "QUIT"},
	    {"", SMTP_UNKNOWN, ""},
	    {"STARTTLS", SMTP_UNKNOWN, ""},
	    {"AUTH PLAIN x", SMTP_UNKNOWN, "PLAIN x"},
	    {"\xff\xfe", SMTP_UNKNOWN, ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char line[64], *arg = NULL;

		snprintf(line, sizeof line, "%s", t[i].line);
		assert_int_equal(smtpin_parse_verb(line, &arg), t[i].verb);
		assert_string_equal(arg, t[i].arg);
	}
}

static void test_parse_path(void **state)
{
	static const struct {
		const char *arg, *keyword;
		int rc;
		const char *addr, *params;
	} t[] = {
	    {"FROM:<a@b.example>", "FROM:", 0, "a@b.example", ""},
	    {"from: <a@b.example> BODY=8BITMIME", "FROM:", 0, "a@b.example",
	     "BODY=8BITMIME"},
	    {"FROM:<>", "FROM:", 0, "", ""},
	    {"FROM:<> SIZE=10", "FROM:", 0, "", "SIZE=10"},
	    {"FROM:a@b.example SIZE=1", "FROM:", 0, "a@b.example", "SIZE=1"},
	    {"FROM:<@r1.example,@r2.example:a@b.example>", "FROM:", 0,
	     "a@b.example", ""},
	    {"TO:<root>", "TO:", 0, "root", ""},
	    {"to:<a@b.example>   NOTIFY=NEVER", "TO:", 0, "a@b.example",
	     "NOTIFY=NEVER"},
	    {"FROM:<a@b.example", "FROM:", -1, NULL, NULL},
	    {"FROM:<a@b.example>x", "FROM:", -1, NULL, NULL},
	    {"TO:<a@b.example>", "FROM:", -1, NULL, NULL},
	    {"FROM <a@b.example>", "FROM:", -1, NULL, NULL},
	    {"FROM:", "FROM:", -1, NULL, NULL},
	    {"FROM:   ", "FROM:", -1, NULL, NULL},
	    {"FROM:<@r1.example>", "FROM:", -1, NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char arg[128], *addr = NULL, *params = NULL;
		const char *why = NULL;
		int rc;

		snprintf(arg, sizeof arg, "%s", t[i].arg);
		rc = smtpin_parse_path(arg, t[i].keyword, &addr, &params, &why);
		assert_int_equal(rc, t[i].rc);
		if (rc != 0) {
			assert_non_null(why);
			continue;
		}
		assert_string_equal(addr, t[i].addr);
		assert_string_equal(params, t[i].params);
	}
}

static void test_parse_mail_params(void **state)
{
	static const struct {
		const char *params;
		enum smtpin_param rc;
		enum body_type body;
		long long size;
		const char *bad;
	} t[] = {
	    {"", SMTPIN_PARAM_OK, BODY_UNSET, 0, NULL},
	    {"BODY=8BITMIME", SMTPIN_PARAM_OK, BODY_8BITMIME, 0, NULL},
	    {"body=7bit  SIZE=123", SMTPIN_PARAM_OK, BODY_7BIT, 123, NULL},
	    {"SIZE=99999999999999999999999", SMTPIN_PARAM_OK, BODY_UNSET,
	     LLONG_MAX, NULL},
	    {"SIZE=", SMTPIN_PARAM_BAD, BODY_UNSET, 0, "SIZE="},
	    {"SIZE=12a", SMTPIN_PARAM_BAD, BODY_UNSET, 0, "SIZE=12a"},
	    {"SIZE=-1", SMTPIN_PARAM_BAD, BODY_UNSET, 0, "SIZE=-1"},
	    {"BODY=BINARYMIME", SMTPIN_PARAM_BAD, BODY_UNSET, 0,
	     "BODY=BINARYMIME"},
	    {"BODY", SMTPIN_PARAM_BAD, BODY_UNSET, 0, "BODY"},
	    {"SMTPUTF8", SMTPIN_PARAM_UNKNOWN, BODY_UNSET, 0, "SMTPUTF8"},
	    {"SIZE=1 AUTH=<>", SMTPIN_PARAM_UNKNOWN, BODY_UNSET, 0, "AUTH=<>"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct smtpin_mail_params mp;
		char params[128], *bad = NULL;

		snprintf(params, sizeof params, "%s", t[i].params);
		assert_int_equal(smtpin_parse_mail_params(params, &mp, &bad),
				 t[i].rc);
		if (t[i].rc != SMTPIN_PARAM_OK) {
			assert_string_equal(bad, t[i].bad);
			continue;
		}
		assert_int_equal(mp.body, t[i].body);
		assert_true(mp.size == t[i].size);
	}
}

/* --- whole sessions over a stub submit ---------------------------------- */

/* What the stub saw (per call), and what it answers. */
#define STUB_CALLS 4
static struct {
	int calls;
	char sender[STUB_CALLS][256];
	char rcpts[STUB_CALLS][512];
	char text[STUB_CALLS][2048];
	int body[STUB_CALLS];
	int answer; /* 0 delivered, 1 queued, 2 refused, 3 not queued */
} stub;

static int stub_submit(const struct config *cfg, const struct submit_job *job,
		       struct submit_outcome *out, struct sm_error *err)
{
	const struct queue_envelope *env = job->env;
	int k = stub.calls++ % STUB_CALLS;
	ssize_t n = pread(job->fd, stub.text[k], sizeof stub.text[k] - 1, 0);
	char *r = stub.rcpts[k];

	stub.text[k][n > 0 ? n : 0] = '\0';
	snprintf(stub.sender[k], sizeof stub.sender[k], "%s",
		 env->caller_sender ? env->caller_sender : "(null)");
	stub.body[k] = env->body;
	r[0] = '\0';
	for (size_t i = 0; i < env->nrcpts; i++)
		snprintf(r + strlen(r), sizeof stub.rcpts[k] - strlen(r),
			 "%s%s", i ? "," : "", env->rcpts[i]);
	queue_remove_tmp(cfg->queue_dir, env->id); /* the contract */
	memset(out, 0, sizeof *out);
	out->queued = stub.answer == 1;
	if (stub.answer == 2) {
		snprintf(out->reply, sizeof out->reply,
			 "550 5.1.1 <%s> no such user", env->rcpts[0]);
		return error_set(err, EX_NOUSER, "refused");
	}
	if (stub.answer == 3)
		return error_set(err, EX_TEMPFAIL, "not sent, not queued");
	return 0;
}

struct fixture {
	char dir[64];
	struct config cfg;
	struct options o;
	struct alias_entry alias;
	char out[1 << 20]; /* the session's replies */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	signal(SIGPIPE, SIG_IGN);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_smtpin.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->alias = (struct alias_entry){"root", "admin@example.fr"};
	f->cfg.hostname = "mx.test";
	f->cfg.queue_dir = f->dir;
	f->cfg.default_domain = "example.org";
	f->cfg.aliases = &f->alias;
	f->cfg.naliases = 1;
	memset(&stub, 0, sizeof stub);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char tmp[128];

	snprintf(tmp, sizeof tmp, "%s/tmp", f->dir);
	rmdir(tmp);
	assert_int_equal(rmdir(f->dir), 0); /* no spool file was left */
	free(f);
	return 0;
}

/* Run a session reading in_fd (or, when it is -1, a file holding
 * in[0..n)); its replies into f->out. */
static void session(struct fixture *f, int in_fd, const char *in, size_t n,
		    int timeout)
{
	FILE *fin = NULL, *fout = tmpfile();
	struct sm_error err = {0};
	struct smtpin_io io = {.idle_timeout = timeout, .submit = stub_submit};
	long len;

	if (in_fd < 0) {
		fin = tmpfile();
		assert_int_equal(fwrite(in, 1, n, fin), n);
		fflush(fin);
		rewind(fin);
		in_fd = fileno(fin);
	}
	io.in_fd = in_fd;
	io.out_fd = fileno(fout);
	assert_int_equal(smtpin_session(&f->o, &f->cfg, &io, &err), EX_OK);
	len = lseek(io.out_fd, 0, SEEK_END);
	assert_true(len >= 0 && (size_t)len < sizeof f->out);
	assert_int_equal(pread(io.out_fd, f->out, (size_t)len, 0), len);
	f->out[len] = '\0';
	fclose(fout);
	if (fin != NULL)
		fclose(fin);
}

/* The reply codes of f->out as "220 250 ..." (one per reply). */
static const char *codes(const struct fixture *f)
{
	static char buf[1 << 16];
	size_t o = 0;

	buf[0] = '\0';
	for (const char *l = f->out; *l; l = strstr(l, "\r\n") + 2) {
		assert_non_null(strstr(l, "\r\n"));
		if (l[3] == '-')
			continue;
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%.3s",
				      o ? " " : "", l);
	}
	return buf;
}

/* Line k (0-based) of f->out, without CRLF. */
static const char *line_of(const struct fixture *f, int k)
{
	static char buf[SMTPIN_LINE_MAX + 1];
	const char *l = f->out, *e;

	while (k-- > 0)
		l = strstr(l, "\r\n") + 2;
	e = strstr(l, "\r\n");
	snprintf(buf, sizeof buf, "%.*s", (int)(e - l), l);
	return buf;
}

static void test_session_two_messages_pipelined(void **state)
{
	struct fixture *f = *state;
	static const char in[] =
	    "HELO [127.0.0.1]\nMAIL FROM:<app@example.org> BODY=8BITMIME\n"
	    "RCPT TO:<root>\nRCPT TO:<bob>\nRCPT TO:<ROOT>\nDATA\n"
	    "Subject: one\n\n..dot\n.\n"
	    "MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
	    "Subject: two\r\n\r\nbody\r\n.\r\nQUIT\r\n";

	session(f, -1, in, sizeof in - 1, 0);
	assert_string_equal(
	    codes(f), "220 250 250 250 250 250 354 250 250 250 354 250 221");
	assert_string_equal(line_of(f, 0), "220 mx.test switchmail ESMTP");
	assert_string_equal(line_of(f, 3), "250 2.1.5 recipient <root> OK");
	assert_non_null(strstr(line_of(f, 7), " delivered"));
	assert_int_equal(stub.calls, 2);
	assert_string_equal(stub.sender[0], "app@example.org");
	assert_string_equal(stub.rcpts[0], "admin@example.fr,bob@example.org");
	assert_int_equal(stub.body[0], BODY_8BITMIME);
	assert_non_null(strstr(stub.text[0], "\r\n\r\n.dot\r\n"));
	assert_string_equal(stub.sender[1], "");
	assert_string_equal(stub.rcpts[1], "a@x.example");
	assert_non_null(strstr(stub.text[1], "Subject: two\r\n"));
	assert_non_null(strstr(stub.text[1], "\r\n\r\nbody\r\n"));
}

static void test_session_outcomes(void **state)
{
	struct fixture *f = *state;
	static const char in[] = "MAIL FROM:<a@example.org>\r\n"
				 "RCPT TO:<b@x.example>\r\nDATA\r\n"
				 "Subject: s\r\n\r\nb\r\n.\r\nQUIT\r\n";
	static const struct {
		int answer;
		const char *codes, *reply, *contains;
	} t[] = {
	    {0, "220 250 250 354 250 221", "250 2.0.0 ", " delivered"},
	    {1, "220 250 250 354 250 221", "250 2.0.0 ", " queued"},
	    {2, "220 250 250 354 550 221",
	     "550 5.1.1 the server refused it: 550 5.1.1 <b@x.example> "
	     "no such user",
	     ""},
	    {3, "220 250 250 354 451 221", "451 4.3.0 not sent, not queued",
	     ""},
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		stub.answer = t[i].answer;
		session(f, -1, in, sizeof in - 1, 0);
		assert_string_equal(codes(f), t[i].codes);
		assert_int_equal(
		    strncmp(line_of(f, 4), t[i].reply, strlen(t[i].reply)), 0);
		assert_non_null(strstr(line_of(f, 4), t[i].contains));
	}
}

static void test_session_line_limit(void **state)
{
	struct fixture *f = *state;
	char in[2048];
	size_t n = 0;

	memset(in, 'X', 510); /* 510 + CRLF = 512: a (bad) command */
	n = 510;
	n += (size_t)snprintf(in + n, sizeof in - n, "\r\n");
	memset(in + n, 'Y', 511); /* one over: too long */
	n += 511;
	n += (size_t)snprintf(in + n, sizeof in - n, "\r\nNOOP\r\n");
	session(f, -1, in, n, 0);
	assert_string_equal(codes(f), "220 500 500 250");
	assert_string_equal(line_of(f, 1), "500 5.5.2 command not recognized");
	assert_non_null(strstr(line_of(f, 2), "line too long"));
}

static void test_session_recipient_limit(void **state)
{
	struct fixture *f = *state;
	size_t cap = (ADDRESS_LIST_MAX + 10) * 40, n = 0;
	char *in = malloc(cap);
	const char *last;

	n += (size_t)snprintf(in, cap, "MAIL FROM:<>\r\n");
	for (int i = 0; i <= ADDRESS_LIST_MAX; i++)
		n += (size_t)snprintf(in + n, cap - n,
				      "RCPT TO:<u%d@x.example>\r\n", i);
	n += (size_t)snprintf(in + n, cap - n, "QUIT\r\n");
	session(f, -1, in, n, 0);
	last = strstr(f->out, "\r\n452 ");
	assert_non_null(last);
	assert_int_equal(strncmp(last + 2, "452 4.5.3 ", 10), 0);
	assert_non_null(strstr(last + 2, "\r\n221 ")); /* still in session */
	free(in);
}

static void test_session_input_ends_inside_data(void **state)
{
	struct fixture *f = *state;
	static const char in[] = "HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.y>\r\n"
				 "DATA\r\nSubject: s\r\n\r\npartial";

	session(f, -1, in, sizeof in - 1, 0);
	assert_string_equal(codes(f), "220 250 250 250 354");
	assert_int_equal(stub.calls, 0); /* and teardown: no tmp/ file */
}

/* A session on a pipe whose writer sends `in` and then stays silent. */
static double idle_session(struct fixture *f, const char *in)
{
	struct timespec t0, t1;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], in, strlen(in)), (ssize_t)strlen(in));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	session(f, p[0], NULL, 0, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(p[0]);
	close(p[1]);
	return (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void test_idle_client_dropped(void **state)
{
	struct fixture *f = *state;
	double took = idle_session(f, "HELO x\r\n");

	assert_string_equal(codes(f), "220 250 421");
	assert_string_equal(line_of(f, 2), "421 4.4.2 mx.test no command for 1 "
					   "seconds, closing");
	assert_true(took >= 0.9 && took < 10);
}

static void test_idle_inside_data_dropped(void **state)
{
	struct fixture *f = *state;

	idle_session(f, "MAIL FROM:<>\r\nRCPT TO:<a@x.y>\r\nDATA\r\n"
			"Subject: s\r\n\r\nhalf a mess");
	assert_string_equal(codes(f), "220 250 250 354 421");
	assert_int_equal(strncmp(line_of(f, 4), "421 4.4.2 ", 10), 0);
	assert_int_equal(stub.calls, 0); /* and teardown: no tmp/ file */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_verb),
	    cmocka_unit_test(test_parse_path),
	    cmocka_unit_test(test_parse_mail_params),
	    cmocka_unit_test_setup_teardown(test_session_two_messages_pipelined,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_session_outcomes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_session_line_limit, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_session_recipient_limit, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_session_input_ends_inside_data,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_client_dropped, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_idle_inside_data_dropped,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
