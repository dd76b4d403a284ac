/*
 * test_message.c - message_read() and the per-route header rewrite: what
 * goes in on stdin, what lands in the spool, byte for byte; and the shared
 * reader with SMTP DATA mode (-bs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "message.h"

struct result {
	int rc;
	struct sm_error err;
	struct message_info info;
	char *out;
	size_t len;
};

static const struct message_opts base = {
	.sender = "www-data@example.org",
	.hostname = "host.example",
	.id = "ID1",
	.now = 1700000000,
};

/* Feed in[0..n) as stdin with options o; capture the spooled bytes. */
static void run(const char *in, size_t n, const struct message_opts *o,
		struct result *r)
{
	FILE *fin = tmpfile(), *fout = tmpfile();
	long len;

	assert_non_null(fin);
	assert_non_null(fout);
	assert_int_equal(fwrite(in, 1, n, fin), n);
	fflush(fin);
	rewind(fin);
	memset(r, 0, sizeof *r);
	r->rc = message_read(fileno(fin), fileno(fout), o, &r->info, &r->err);
	len = lseek(fileno(fout), 0, SEEK_END);
	r->out = malloc((size_t)len + 1);
	assert_int_equal(pread(fileno(fout), r->out, (size_t)len, 0), len);
	r->out[len] = '\0';
	r->len = (size_t)len;
	/* stdin was read to EOF whatever happened */
	assert_int_equal(lseek(fileno(fin), 0, SEEK_CUR), (long)n);
	fclose(fin);
	fclose(fout);
}

static void done(struct result *r)
{
	message_info_free(&r->info);
	free(r->out);
}

static const char *body_of(const struct result *r)
{
	return r->out + r->info.header_len;
}

static void test_line_endings(void **state)
{
	struct result r;
	const char in[] = "Subject: x\nDate: d\nMessage-ID: <m@x>\nFrom: a@b\n"
			  "\nlf\ncrlf\r\ncrcrlf\r\r\nbare\rcr\nlast";

	(void)state;
	run(in, sizeof in - 1, &base, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "Subject: x\r\nDate: d\r\nMessage-ID: <m@x>"
				   "\r\nFrom: a@b\r\n\r\nlf\r\ncrlf\r\ncrcrlf"
				   "\r\nbare\rcr\r\nlast\r\n");
	assert_int_equal(r.info.size, (off_t)r.len);
	assert_false(r.info.eight_bit);
	done(&r);
}

static void test_dots(void **state)
{
	struct result r;
	const char in[] = "From: a@b\nDate: d\nMessage-ID: <m@x>\n\n"
			  "..two\n.\nafter dot\n";
	struct message_opts o = base;

	(void)state;
	run(in, sizeof in - 1, &o, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(body_of(&r), "..two\r\n"); /* "." ended it */
	done(&r);
	o.ignore_dots = true;
	run(in, sizeof in - 1, &o, &r);
	assert_string_equal(body_of(&r), "..two\r\n.\r\nafter dot\r\n");
	done(&r);
}

static void test_missing_fields_added(void **state)
{
	struct result r;
	const char in[] = "Subject: s\n\nbody\n";
	struct message_opts o = base;

	(void)state;
	o.fullname = "Cron Daemon";
	run(in, sizeof in - 1, &o, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "\r\nDate: "));
	assert_non_null(strstr(r.out, "Message-ID: <ID1.1700000000@host.example>\r\n"));
	assert_non_null(strstr(r.out, "From: Cron Daemon <www-data@example.org>\r\n"));
	assert_string_equal(r.info.from_addr, "www-data@example.org");
	assert_string_equal(r.info.message_id, "<ID1.1700000000@host.example>");
	assert_string_equal(body_of(&r), "body\r\n");
	done(&r);
}

static void test_fullname_only_without_from(void **state)
{
	struct result r;
	const char in[] = "From: \"Web Shop\" <shop@example.org>\n\nb\n";
	struct message_opts o = base;

	(void)state;
	o.fullname = "Ignored Name";
	run(in, sizeof in - 1, &o, &r);
	assert_null(strstr(r.out, "Ignored Name"));
	assert_string_equal(r.info.from_addr, "shop@example.org");
	assert_string_equal(r.info.from_display, "Web Shop");
	done(&r);
}

static void test_bcc_removed_and_extracted(void **state)
{
	struct result r;
	const char in[] = "To: \"Doe, John\" <john@x.org>, team: a@x.org,\n"
			  " b@x.org;\nCc: c@x.org (comment)\n"
			  "Bcc: secret@y.org\nSubject: s\n\nbody\n";
	struct message_opts o = base;

	(void)state;
	o.extract = true;
	run(in, sizeof in - 1, &o, &r);
	assert_int_equal(r.rc, 0);
	assert_null(strstr(r.out, "Bcc"));
	assert_null(strstr(r.out, "secret"));
	assert_int_equal(r.info.rcpts.n, 5);
	assert_string_equal(r.info.rcpts.v[0].addr, "john@x.org");
	assert_string_equal(r.info.rcpts.v[1].addr, "a@x.org");
	assert_string_equal(r.info.rcpts.v[2].addr, "b@x.org");
	assert_string_equal(r.info.rcpts.v[3].addr, "c@x.org");
	assert_string_equal(r.info.rcpts.v[4].addr, "secret@y.org");
	done(&r);
	o.extract = false; /* Bcc: never transmitted, even without -t */
	run(in, sizeof in - 1, &o, &r);
	assert_null(strstr(r.out, "secret"));
	assert_int_equal(r.info.rcpts.n, 0);
	done(&r);
}

static void test_resent_recipients(void **state)
{
	struct result r;
	const char in[] = "To: old@x.org\nResent-To: new@x.org\n"
			  "Resent-Bcc: hidden@x.org\n\nb\n";
	struct message_opts o = base;

	(void)state;
	o.extract = true;
	run(in, sizeof in - 1, &o, &r);
	assert_int_equal(r.info.rcpts.n, 2);
	assert_string_equal(r.info.rcpts.v[0].addr, "new@x.org");
	assert_string_equal(r.info.rcpts.v[1].addr, "hidden@x.org");
	assert_null(strstr(r.out, "hidden"));
	done(&r);
}

static void test_bad_header_address(void **state)
{
	struct result r;
	const char in[] = "To: \"unterminated <a@x.org>\n\nb\n";
	struct message_opts o = base;

	(void)state;
	o.extract = true;
	run(in, sizeof in - 1, &o, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err.code, EX_DATAERR);
	assert_non_null(strstr(r.err.msg, "To:"));
	done(&r);
}

static void test_eight_bit(void **state)
{
	struct result r;
	const char in[] = "From: a@b\n\ncaf\xc3\xa9\n";

	(void)state;
	run(in, sizeof in - 1, &base, &r);
	assert_true(r.info.eight_bit);
	assert_non_null(strstr(body_of(&r), "caf\xc3\xa9\r\n"));
	done(&r);
}

static void test_long_body_line_split(void **state)
{
	struct result r;
	char in[2100];
	size_t n;

	(void)state;
	n = (size_t)snprintf(in, sizeof in, "From: a@b\n\n");
	memset(in + n, 'x', 2000);
	n += 2000;
	in[n++] = '\n';
	run(in, n, &base, &r);
	assert_int_equal(r.rc, 0);
	assert_true(r.info.body_split);
	const char *b = body_of(&r);
	assert_int_equal(strlen(b), 2000 + 3 * 2);
	assert_int_equal(strchr(b, '\r') - b, MESSAGE_LINE_MAX);
	done(&r);
}

static void test_exact_998_not_split(void **state)
{
	struct result r;
	char in[1100];
	size_t n = (size_t)snprintf(in, sizeof in, "From: a@b\n\n");

	(void)state;
	memset(in + n, 'y', MESSAGE_LINE_MAX);
	n += MESSAGE_LINE_MAX;
	memcpy(in + n, "\r\n.\n", 4); /* the dot after it still ends input */
	n += 4;
	run(in, n, &base, &r);
	assert_false(r.info.body_split);
	assert_int_equal(strlen(body_of(&r)), MESSAGE_LINE_MAX + 2);
	done(&r);
}

static void test_long_header_folded_or_refused(void **state)
{
	struct result r;
	char in[4000];
	size_t n = (size_t)snprintf(in, sizeof in, "Subject:");

	(void)state;
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(in + n, sizeof in - n, " word");
	n += (size_t)snprintf(in + n, sizeof in - n, "\nFrom: a@b\n\nb\n");
	run(in, n, &base, &r);
	assert_int_equal(r.rc, 0);
	for (const char *p = r.out; *p;) { /* no line over the limit */
		const char *nl = strchr(p, '\n');
		assert_true(nl - p <= MESSAGE_LINE_MAX + 1);
		p = nl + 1;
	}
	assert_non_null(strstr(r.out, "word\r\n word"));
	done(&r);

	n = (size_t)snprintf(in, sizeof in, "X-Long: ");
	memset(in + n, 'z', 1500);
	n += 1500;
	n += (size_t)snprintf(in + n, sizeof in - n, "\n\nb\n");
	run(in, n, &base, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err.code, EX_DATAERR);
	assert_non_null(strstr(r.err.msg, "998"));
	done(&r);
}

static void test_nul_refused(void **state)
{
	struct result r;
	const char in[] = "From: a@b\n\nbin\0ary\n";

	(void)state;
	run(in, sizeof in - 1, &base, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err.code, EX_DATAERR);
	assert_non_null(strstr(r.err.msg, "NUL"));
	done(&r);
}

static void test_header_block_limit(void **state)
{
	struct result r;
	size_t n = 0, cap = MESSAGE_HEADER_MAX + 4096;
	char *in = malloc(cap);

	(void)state;
	while (n < MESSAGE_HEADER_MAX + 100)
		n += (size_t)snprintf(in + n, cap - n, "X-Filler: %0900d\n", 7);
	n += (size_t)snprintf(in + n, cap - n, "\nbody\n");
	run(in, n, &base, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err.code, EX_DATAERR);
	assert_non_null(strstr(r.err.msg, "256 KiB"));
	done(&r);
	free(in);
}

static void test_non_header_line_starts_body(void **state)
{
	struct result r;
	const char in[] = "From mbox-separator Sat Nov 28\nFrom: a@b\n"
			  "this is not a header\nmore\n";

	(void)state;
	run(in, sizeof in - 1, &base, &r);
	assert_int_equal(r.rc, 0);
	assert_null(strstr(r.out, "mbox-separator"));
	assert_string_equal(body_of(&r), "this is not a header\r\nmore\r\n");
	done(&r);
}

static void test_headers_only(void **state)
{
	struct result r;
	const char in[] = "From: a@b\nSubject: no body";

	(void)state;
	run(in, sizeof in - 1, &base, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(body_of(&r), "");
	assert_int_equal(r.info.header_len, (off_t)r.len);
	done(&r);
}

static void test_route_headers(void **state)
{
	const char hdr[] = "Subject: s\r\nFrom: Shop <shop@x.org>\r\n"
			   "From: second@x.org\r\nTo: t@y.org\r\n\r\n";
	struct route_headers rh = {.from_addr = "contact@example.fr",
				   .from_display = "Shop",
				   .reply_to = "shop@x.org"};
	struct sm_error err;
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(message_route_headers(hdr, sizeof hdr - 1, &rh, &out,
					       &len, &err),
			 0);
	out = realloc(out, len + 1);
	out[len] = '\0';
	assert_int_equal(strlen(out), len);
	assert_string_equal(out, "Subject: s\r\nFrom: Shop <contact@example.fr>"
				 "\r\nTo: t@y.org\r\nReply-To: <shop@x.org>"
				 "\r\n\r\n");
	free(out);
	rh = (struct route_headers){0}; /* nothing to change */
	assert_int_equal(message_route_headers(hdr, sizeof hdr - 1, &rh, &out,
					       &len, &err),
			 0);
	assert_int_equal(len, sizeof hdr - 1);
	assert_memory_equal(out, hdr, len);
	free(out);
}

static void test_format_mailbox(void **state)
{
	static const struct {
		const char *display, *addr, *want;
	} t[] = {
		{NULL, "a@b", "<a@b>"},
		{"", "a@b", "<a@b>"},
		{"Web Shop", "a@b", "Web Shop <a@b>"},
		{"Doe, John", "a@b", "\"Doe, John\" <a@b>"},
		{"Say \"hi\"", "a@b", "\"Say \\\"hi\\\"\" <a@b>"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char *s = message_format_mailbox(t[i].display, t[i].addr);
		assert_string_equal(s, t[i].want);
		free(s);
	}
}

/* --- SMTP mode: one reader shared across messages and commands -------- */

static const struct message_opts smtp_opts = {
    .smtp = true,
    .sender = "www-data@example.org",
    .hostname = "host.example",
    .id = "ID1",
    .now = 1700000000,
};

/* A reader over a temporary file holding in[0..n). */
static struct msg_reader *reader_over(const char *in, size_t n, FILE **f)
{
	struct msg_reader *rd;

	*f = tmpfile();
	assert_non_null(*f);
	assert_int_equal(fwrite(in, 1, n, *f), n);
	fflush(*f);
	rewind(*f);
	rd = message_reader_new(fileno(*f), 0);
	assert_non_null(rd);
	return rd;
}

/* One message from rd with o; the spooled bytes in r (info included). */
static void run_from(struct msg_reader *rd, const struct message_opts *o,
		     struct result *r)
{
	FILE *fout = tmpfile();
	long len;

	assert_non_null(fout);
	memset(r, 0, sizeof *r);
	r->rc = message_read_from(rd, fileno(fout), o, &r->info, &r->err);
	len = lseek(fileno(fout), 0, SEEK_END);
	r->out = malloc((size_t)len + 1);
	assert_int_equal(pread(fileno(fout), r->out, (size_t)len, 0), len);
	r->out[len] = '\0';
	r->len = (size_t)len;
	fclose(fout);
}

/* The next command line from rd must be want (NULL: end of input). */
static void next_command_is(struct msg_reader *rd, const char *want)
{
	char line[513];
	bool too_long;
	long n = message_reader_line(rd, line, 512, &too_long);

	if (want == NULL) {
		assert_int_equal(n, -1);
		return;
	}
	assert_false(too_long);
	assert_int_equal(n, (long)strlen(want));
	assert_string_equal(line, want);
}

static void test_smtp_dot_unstuffing(void **state)
{
	const char in[] = "From: a@b\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n"
			  "..two\r\n.three\r\n. \r\n...\r\nx.\r\n.\r\n"
			  "MAIL FROM:<next@x>\r\n";
	struct result r;
	FILE *f;
	struct msg_reader *rd = reader_over(in, sizeof in - 1, &f);

	(void)state;
	run_from(rd, &smtp_opts, &r);
	assert_int_equal(r.rc, 0);
	assert_false(r.info.incomplete);
	assert_string_equal(body_of(&r), ".two\r\nthree\r\n \r\n..\r\nx.\r\n");
	done(&r);
	next_command_is(rd, "MAIL FROM:<next@x>"); /* nothing read past "." */
	next_command_is(rd, NULL);
	message_reader_free(rd);
	fclose(f);
}

static void test_smtp_two_messages_lf_and_i(void **state)
{
	const char in[] = "Subject: one\n\nfirst\n.\nRSET\n"
			  "Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n";
	struct message_opts o = smtp_opts;
	struct result r;
	FILE *f;
	struct msg_reader *rd = reader_over(in, sizeof in - 1, &f);

	(void)state;
	o.ignore_dots = true; /* Laravel's stray -i changes nothing here */
	run_from(rd, &o, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(body_of(&r), "first\r\n");
	assert_non_null(strstr(r.out, "Subject: one\r\n"));
	done(&r);
	next_command_is(rd, "RSET");
	run_from(rd, &o, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(body_of(&r), "second\r\n");
	done(&r);
	next_command_is(rd, "QUIT");
	message_reader_free(rd);
	fclose(f);
}

static void test_smtp_empty_and_headers_only(void **state)
{
	const char in[] = ".\r\nSubject: h\r\n.\r\n";
	struct result r;
	FILE *f;
	struct msg_reader *rd = reader_over(in, sizeof in - 1, &f);

	(void)state;
	run_from(rd, &smtp_opts, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "From: <www-data@example.org>\r\n"));
	assert_string_equal(body_of(&r), "");
	done(&r);
	run_from(rd, &smtp_opts, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "Subject: h\r\n"));
	assert_string_equal(body_of(&r), "");
	done(&r);
	message_reader_free(rd);
	fclose(f);
}

static void test_smtp_input_ends_inside(void **state)
{
	static const char *const cut[] = {
	    "Subject: s\r\n\r\nbody\r\n",  /* no "." line at all */
	    "Subject: s\r\n\r\nbody\r\n.", /* "." without its line end */
	    "Subject: s\r\n",		   /* inside the header block */
	    "",
	};

	(void)state;
	for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
		struct result r;
		FILE *f;
		struct msg_reader *rd = reader_over(cut[i], strlen(cut[i]), &f);

		run_from(rd, &smtp_opts, &r);
		assert_int_equal(r.rc, -1);
		assert_true(r.info.incomplete);
		assert_int_equal(r.err.code, EX_IOERR);
		done(&r);
		message_reader_free(rd);
		fclose(f);
	}
}

static void test_smtp_refused_message_is_skipped(void **state)
{
	const char in[] = "Subject: s\r\n\r\nbad \0 byte\r\nmore\r\n..\r\n.\r\n"
			  "NOOP\r\n";
	struct result r;
	FILE *f;
	struct msg_reader *rd = reader_over(in, sizeof in - 1, &f);

	(void)state;
	run_from(rd, &smtp_opts, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err.code, EX_DATAERR);
	assert_false(r.info.incomplete);
	done(&r);
	next_command_is(rd, "NOOP"); /* the session goes on */
	message_reader_free(rd);
	fclose(f);
}

static void test_smtp_stuffed_long_line(void **state)
{
	/* ". + 998 x" is 998 octets once unstuffed: not split */
	size_t n = 0, cap = 4096;
	char *in = malloc(cap);
	struct result r;
	FILE *f;
	struct msg_reader *rd;

	(void)state;
	n += (size_t)snprintf(in, cap, "Subject: s\r\n\r\n.");
	memset(in + n, 'x', 998);
	n += 998;
	n += (size_t)snprintf(in + n, cap - n, "\r\n.\r\n");
	rd = reader_over(in, n, &f);
	run_from(rd, &smtp_opts, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(strlen(body_of(&r)), 1000);
	assert_false(r.info.body_split);
	done(&r);
	message_reader_free(rd);
	fclose(f);
	free(in);
}

static void test_reader_long_line_and_ready(void **state)
{
	char in[1200];
	char line[513];
	bool too_long;
	FILE *f;
	struct msg_reader *rd;

	(void)state;
	memset(in, 'A', 600);
	memcpy(in + 600, "\r\nNOOP\r\nQUI", 11);
	rd = reader_over(in, 611, &f);
	assert_int_equal(message_reader_line(rd, line, 510, &too_long), 510);
	assert_true(too_long);
	assert_true(message_reader_ready(rd)); /* "NOOP" is buffered */
	next_command_is(rd, "NOOP");
	next_command_is(rd, "QUI"); /* a last line without its end */
	assert_true(message_reader_ready(rd));
	next_command_is(rd, NULL);
	assert_false(message_reader_timed_out(rd));
	message_reader_free(rd);
	fclose(f);
}

static void test_reader_timeout(void **state)
{
	int p[2];
	char line[16];
	bool too_long;
	struct msg_reader *rd;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "NOOP\r\n", 6), 6);
	rd = message_reader_new(p[0], 1);
	assert_non_null(rd);
	assert_false(message_reader_ready(rd)); /* nothing buffered yet */
	next_command_is(rd, "NOOP");
	/* the writer stays open and silent: the read gives up after 1 s */
	assert_int_equal(message_reader_line(rd, line, 15, &too_long), -1);
	assert_true(message_reader_timed_out(rd));
	message_reader_free(rd);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_endings),
	    cmocka_unit_test(test_dots),
	    cmocka_unit_test(test_missing_fields_added),
	    cmocka_unit_test(test_fullname_only_without_from),
	    cmocka_unit_test(test_bcc_removed_and_extracted),
	    cmocka_unit_test(test_resent_recipients),
	    cmocka_unit_test(test_bad_header_address),
	    cmocka_unit_test(test_eight_bit),
	    cmocka_unit_test(test_long_body_line_split),
	    cmocka_unit_test(test_exact_998_not_split),
	    cmocka_unit_test(test_long_header_folded_or_refused),
	    cmocka_unit_test(test_nul_refused),
	    cmocka_unit_test(test_header_block_limit),
	    cmocka_unit_test(test_non_header_line_starts_body),
	    cmocka_unit_test(test_headers_only),
	    cmocka_unit_test(test_route_headers),
	    cmocka_unit_test(test_format_mailbox),
	    cmocka_unit_test(test_smtp_dot_unstuffing),
	    cmocka_unit_test(test_smtp_two_messages_lf_and_i),
	    cmocka_unit_test(test_smtp_empty_and_headers_only),
	    cmocka_unit_test(test_smtp_input_ends_inside),
	    cmocka_unit_test(test_smtp_refused_message_is_skipped),
	    cmocka_unit_test(test_smtp_stuffed_long_line),
	    cmocka_unit_test(test_reader_long_line_and_ready),
	    cmocka_unit_test(test_reader_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
