/*
 * test_queue.c - unit tests for queue.c: ids, the envelope round trip
 * (optional fields absent and present, empty caller-sender, 1 and 10 000
 * recipients), commit, state updates, a torn state record, truncation and
 * byte damage at every offset, malformed envelopes and trailers, locking,
 * hostile ids and directory junk, tmp/ cleaning, failed/ and removal.
 * Every test works in its own mkdtemp(3) directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

#define NELEM(a)       (sizeof(a) / sizeof((a)[0]))
#define MSG	       "Subject: hi\r\nFrom: a@example.org\r\n\r\nbody\r\n"
#define DAMAGED_PREFIX "state record damaged (crash during an update)"

/* The test's spool directory, a fresh mkdtemp. */
static int setup(void **state)
{
	char tmpl[] = "/tmp/test_queue.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = strdup(tmpl);
	return *state ? 0 : -1;
}

/* nftw callback: remove one entry. */
static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove the spool directory and everything in it. */
static int teardown(void **state)
{
	nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

/* dir/sub/id (id may be NULL) into buf. */
static void path_of(char *buf, const char *dir, const char *sub, const char *id)
{
	if (id)
		snprintf(buf, PATH_MAX, "%s/%s/%s", dir, sub, id);
	else
		snprintf(buf, PATH_MAX, "%s/%s", dir, sub);
}

static bool exists(const char *dir, const char *sub, const char *id)
{
	char p[PATH_MAX];
	struct stat sb;

	path_of(p, dir, sub, id);
	return lstat(p, &sb) == 0;
}

/* The whole file at path, malloc'ed, *len octets. */
static char *slurp(const char *path, size_t *len)
{
	struct stat sb;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

/* Replace the file at path by buf[0..len). */
static void put_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* An envelope for id: the optional fields when full, n recipients from
 * rcpts (borrowed). */
static void fill_env(struct queue_envelope *env, const char *id, bool full,
		     char **rcpts, size_t n)
{
	memset(env, 0, sizeof *env);
	memcpy(env->id, id, QUEUE_ID_LEN + 1);
	env->created = 1700000000;
	env->header_len = 36;
	env->rcpts = rcpts;
	env->nrcpts = n;
	if (!full)
		return;
	env->caller_sender = "bounces@example.org";
	env->from_addr = "a@example.org";
	env->from_display = "Ann \"the\" Admin, Esq.";
	env->has_reply_to = true;
	env->message_id = "<1234@example.org>";
	env->eight_bit = true;
	env->body = 2;
	env->ret = 1;
	env->notify = 5;
	env->envid = "QQ314159";
	env->is_notice = true;
}

/* Spool msg with env (size set here) and st into new/env->id. */
static void spool(const char *dir, struct queue_envelope *env,
		  const struct queue_state *st, const char *msg)
{
	struct sm_error err = {0};
	size_t len = strlen(msg);
	int fd = queue_create_tmp(dir, env->id, &err);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg, len), (ssize_t)len);
	env->size = (off_t)len;
	if (queue_write_envelope(fd, env, st, &err) != 0)
		fail_msg("write_envelope: %s", err.msg);
	if (queue_commit(dir, env->id, fd, &err) != 0)
		fail_msg("commit: %s", err.msg);
	close(fd);
}

/* A spooled one-recipient message with a fresh id into id. */
static void spool_simple(const char *dir, char id[QUEUE_ID_LEN + 1])
{
	static char *rcpt[] = {"b@example.org"};
	struct queue_envelope env;

	queue_id_new(id);
	fill_env(&env, id, true, rcpt, 1);
	spool(dir, &env, NULL, MSG);
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field of the written env a equals the loaded b. */
static void assert_env_equal(const struct queue_envelope *a,
			     const struct queue_envelope *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->created, b->created);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->header_len, b->header_len);
	assert_str_or_null(a->caller_sender, b->caller_sender);
	assert_str_or_null(a->from_addr, b->from_addr);
	assert_str_or_null(a->from_display, b->from_display);
	assert_int_equal(a->has_reply_to, b->has_reply_to);
	assert_str_or_null(a->message_id, b->message_id);
	assert_int_equal(a->eight_bit, b->eight_bit);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->notify, b->notify);
	assert_str_or_null(a->envid, b->envid);
	assert_int_equal(a->is_notice, b->is_notice);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++)
		assert_string_equal(a->rcpts[i], b->rcpts[i]);
}

/* Open new/id, expect success, compare with env. */
static void check_load(const char *dir, const struct queue_envelope *env)
{
	struct queue_entry e;
	struct sm_error err = {0};

	if (queue_open(dir, "new", env->id, false, &e, &err) != 0)
		fail_msg("open: %s", err.msg);
	assert_env_equal(env, &e.env);
	assert_false(e.locked);
	assert_int_equal(e.st.attempts, 0);
	assert_string_equal(e.st.error, "");
	for (size_t i = 0; i < env->nrcpts; i++)
		assert_int_equal(e.st.rcpt_state[i], RS_PENDING);
	queue_close(&e);
	assert_int_equal(e.fd, -1);
}

static void test_ids(void **state)
{
	static const char *bad[] = {
	    "",
	    "ABC",
	    "0123456789ABCDEF012",
	    "0123456789ABCDEF01234",
	    "0123456789abcdef0123",
	    "../x",
	    "0123456789ABCDEF012G",
	    "0123456789ABCDEF/123",
	    "0123456789ABCDEF012 ",
	};
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];

	(void)state;
	queue_id_new(a);
	queue_id_new(b);
	assert_true(queue_id_valid(a));
	assert_true(queue_id_valid(b));
	assert_string_not_equal(a, b);
	assert_true(queue_id_valid("0123456789ABCDEF0123"));
	assert_false(queue_id_valid(NULL));
	for (size_t i = 0; i < NELEM(bad); i++)
		assert_false(queue_id_valid(bad[i]));
}

static void test_roundtrip_full(void **state)
{
	static char *rcpts[] = {"b@example.org", "c@example.net",
				"\"odd local\"@example.com"};
	struct queue_envelope env;
	char id[QUEUE_ID_LEN + 1];

	queue_id_new(id);
	fill_env(&env, id, true, rcpts, NELEM(rcpts));
	env.created = -5; /* any long long survives */
	spool(*state, &env, NULL, MSG);
	check_load(*state, &env);
}

static void test_roundtrip_absent(void **state)
{
	static char *rcpt[] = {"b@example.org"};
	struct queue_envelope env;
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1];

	queue_id_new(id);
	fill_env(&env, id, false, rcpt, 1);
	spool(*state, &env, NULL, MSG);
	check_load(*state, &env);

	/* An empty caller-sender is kept apart from an absent one. */
	queue_id_new(id);
	fill_env(&env, id, false, rcpt, 1);
	env.caller_sender = "";
	env.header_len = 0;
	spool(*state, &env, NULL, "");
	check_load(*state, &env);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), 0);
	assert_non_null(e.env.caller_sender);
	assert_string_equal(e.env.caller_sender, "");
	assert_null(e.env.from_addr);
	queue_close(&e);
}

static void test_roundtrip_10000(void **state)
{
	enum { N = 10000 };
	char **rcpts = calloc(N, sizeof *rcpts);
	struct queue_envelope env;
	char id[QUEUE_ID_LEN + 1];

	assert_non_null(rcpts);
	for (size_t i = 0; i < N; i++) {
		rcpts[i] = malloc(255);
		assert_non_null(rcpts[i]);
		memset(rcpts[i], 'x', 254);
		snprintf(rcpts[i], 7, "%05zu", i);
		rcpts[i][5] = 'x';
		memcpy(rcpts[i] + 254 - 12, "@example.org", 12);
		rcpts[i][254] = '\0';
	}
	queue_id_new(id);
	fill_env(&env, id, true, rcpts, N);
	spool(*state, &env, NULL, MSG);
	check_load(*state, &env);
	for (size_t i = 0; i < N; i++)
		free(rcpts[i]);
	free(rcpts);
}

static void test_commit(void **state)
{
	static char *rcpt[] = {"b@example.org", "c@example.org"};
	struct queue_envelope env;
	struct sm_error err = {0};
	struct stat sb;
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX], **ids;
	size_t n;
	int fd;

	queue_id_new(id);
	fill_env(&env, id, false, rcpt, 2);
	mode_t old = umask(007); /* as priv_startup() sets it */
	fd = queue_create_tmp(*state, id, &err);
	umask(old);
	assert_true(fd >= 0);
	path_of(p, *state, "tmp", id);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0660); /* group shares, never others */
	/* A second create of the same id fails (O_EXCL). */
	assert_int_equal(queue_create_tmp(*state, id, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	assert_int_equal(write(fd, MSG, strlen(MSG)), (ssize_t)strlen(MSG));
	env.size = (off_t)strlen(MSG);
	assert_int_equal(queue_write_envelope(fd, &env, NULL, &err), 0);
	assert_true(exists(*state, "tmp", id));
	assert_false(exists(*state, "new", id));
	assert_int_equal(queue_commit(*state, id, fd, &err), 0);
	close(fd);
	assert_false(exists(*state, "tmp", id));
	assert_true(exists(*state, "new", id));
	assert_int_equal(queue_list(*state, "new", &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], id);
	queue_free_list(ids, n);
	check_load(*state, &env);
}

static void test_create_tmp_errors(void **state)
{
	struct sm_error err = {0};
	char dir[PATH_MAX], id[QUEUE_ID_LEN + 1];

	queue_id_new(id);
	snprintf(dir, sizeof dir, "%s/missing", (char *)*state);
	assert_int_equal(queue_create_tmp(dir, id, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	assert_non_null(strstr(err.msg, dir));
	assert_int_equal(queue_create_tmp(*state, "../x", &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
}

static void test_save_state(void **state)
{
	static char *rcpt[] = {"b@example.org", "c@example.org",
			       "d@example.org"};
	struct queue_envelope env;
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1];

	queue_id_new(id);
	fill_env(&env, id, true, rcpt, 3);
	spool(*state, &env, NULL, MSG);
	assert_int_equal(queue_open(*state, "new", id, true, &e, &err), 0);
	assert_true(e.locked);
	e.st.attempts = 4000000000u;
	e.st.next = 1234567890123LL;
	e.st.last = -7;
	snprintf(e.st.error, sizeof e.st.error, "%s",
		 "421 4.7.0 try\r\nagain\tlater\x01\x7f ok  ");
	memcpy(e.st.rcpt_state, "DF-", 3);
	assert_int_equal(queue_save_state(&e, &err), 0);
	queue_close(&e);

	assert_int_equal(queue_open(*state, "new", id, true, &e, &err), 0);
	assert_int_equal(e.st.attempts, 4000000000u);
	assert_int_equal(e.st.next, 1234567890123LL);
	assert_int_equal(e.st.last, -7);
	assert_string_equal(e.st.error, "421 4.7.0 try??again?later?? ok");
	assert_memory_equal(e.st.rcpt_state, "DF-", 3);
	assert_env_equal(&env, &e.env);

	/* The longest error is kept whole; the format holds it. */
	memset(e.st.error, 'e', sizeof e.st.error);
	e.st.error[QUEUE_ERROR_MAX - 1] = '\0';
	assert_int_equal(queue_save_state(&e, &err), 0);
	e.st.rcpt_state[0] = 'X';
	assert_int_equal(queue_save_state(&e, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	queue_close(&e);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), 0);
	assert_int_equal(strlen(e.st.error), QUEUE_ERROR_MAX - 1);
	assert_memory_equal(e.st.rcpt_state, "DF-", 3);
	/* Not locked: no update. */
	assert_int_equal(queue_save_state(&e, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	queue_close(&e);
}

/* Load new/id, expect a reset damaged state over n recipients. */
static void check_reset(const char *dir, const char *id, size_t n)
{
	struct queue_entry e;
	struct sm_error err = {0};

	if (queue_open(dir, "new", id, true, &e, &err) != 0)
		fail_msg("open: %s", err.msg);
	assert_int_equal(e.st.attempts, 0);
	assert_int_equal(e.st.next, 0);
	assert_int_equal(e.st.last, 0);
	assert_non_null(strstr(e.st.error, DAMAGED_PREFIX));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e.st.rcpt_state[i], RS_PENDING);
	/* Saving writes the reset state with a good sum. */
	assert_int_equal(queue_save_state(&e, &err), 0);
	queue_close(&e);
}

static void test_damaged_state(void **state)
{
	static char *rcpt[] = {"b@example.org", "c@example.org"};
	static const char *spots[] = {"attempts=", "error ", "rcpts ", "sum="};
	struct queue_envelope env;
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX];

	queue_id_new(id);
	fill_env(&env, id, false, rcpt, 2);
	spool(*state, &env, NULL, MSG);
	path_of(p, *state, "new", id);
	for (size_t k = 0; k < NELEM(spots); k++) {
		size_t len;
		char *buf, *at;

		assert_int_equal(queue_open(*state, "new", id, true, &e, &err),
				 0);
		e.st.attempts = 3;
		snprintf(e.st.error, sizeof e.st.error, "451 later");
		memcpy(e.st.rcpt_state, "DF", 2);
		assert_int_equal(queue_save_state(&e, &err), 0);
		queue_close(&e);
		/* A torn write: one octet of the record changed. */
		buf = slurp(p, &len);
		at = memmem(buf, len, spots[k], strlen(spots[k]));
		assert_non_null(at);
		at[strlen(spots[k])] ^= 0x01;
		put_file(p, buf, len);
		free(buf);
		check_reset(*state, id, 2);
		/* And the saved reset loads cleanly. */
		assert_int_equal(queue_open(*state, "new", id, false, &e, &err),
				 0);
		assert_non_null(strstr(e.st.error, DAMAGED_PREFIX));
		queue_close(&e);
	}
}

/* Open new/id after damage: -1 with a message, or a sane load. */
static void check_survives(const char *dir, const char *id, size_t at)
{
	struct queue_entry e;
	struct sm_error err = {0};
	int rc = queue_open(dir, "new", id, false, &e, &err);

	if (rc == 0) {
		assert_true(e.env.nrcpts >= 1);
		assert_int_equal(strlen(e.st.rcpt_state), e.env.nrcpts);
		queue_close(&e);
		return;
	}
	if (rc != -1 || err.code == EX_OK || err.msg[0] == '\0')
		fail_msg("offset %zu: rc %d, [%s]", at, rc, err.msg);
	assert_int_equal(e.fd, -1);
}

static void test_truncation(void **state)
{
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX];
	size_t len;
	char *whole;

	spool_simple(*state, id);
	path_of(p, *state, "new", id);
	whole = slurp(p, &len);
	for (size_t cut = 0; cut < len; cut++) {
		struct queue_entry e;
		struct sm_error err = {0};

		put_file(p, whole, cut);
		if (queue_open(*state, "new", id, false, &e, &err) != -1)
			fail_msg("truncated at %zu of %zu: loaded", cut, len);
		assert_int_equal(err.code, EX_DATAERR);
		assert_non_null(strstr(err.msg, "damaged"));
	}
	put_file(p, whole, len);
	check_survives(*state, id, len);
	free(whole);
}

static void test_byte_damage(void **state)
{
	static const char subst[] = {'\0', '\n', ' ', 'x', '0', '\r', 'f'};
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX];
	size_t len;
	char *whole;

	spool_simple(*state, id);
	path_of(p, *state, "new", id);
	whole = slurp(p, &len);
	for (size_t at = 0; at < len; at++)
		for (size_t k = 0; k < sizeof subst; k++) {
			char keep = whole[at];

			whole[at] = subst[k];
			put_file(p, whole, len);
			check_survives(*state, id, at);
			whole[at] = keep;
		}
	free(whole);
}

/* The parts of the file at path: message, envelope text, state record,
 * trailer length, from its trailer. */
struct parts {
	char *buf;
	size_t len, eoff, soff, tlen;
};

static void split(const char *path, struct parts *pt)
{
	char *t;
	unsigned long long e, s;

	pt->buf = slurp(path, &pt->len);
	pt->buf[pt->len] = '\0';
	t = memmem(pt->buf, pt->len, "switchmail-trailer ", 19);
	assert_non_null(t);
	assert_int_equal(
	    sscanf(t, "switchmail-trailer envelope=%llx state=%llx", &e, &s),
	    2);
	pt->eoff = (size_t)e;
	pt->soff = (size_t)s;
	pt->tlen = pt->len - (size_t)(t - pt->buf);
}

/* Write path: message and state of pt around env[0..elen), with a
 * trailer pointing at them. */
static void compose(const char *path, const struct parts *pt, const char *env,
		    size_t elen)
{
	size_t slen = pt->len - pt->tlen - pt->soff;
	size_t total = pt->eoff + elen + slen + pt->tlen;
	char *out = malloc(total + 1), *t;
	int n;

	assert_non_null(out);
	memcpy(out, pt->buf, pt->eoff);
	memcpy(out + pt->eoff, env, elen);
	memcpy(out + pt->eoff + elen, pt->buf + pt->soff, slen);
	t = out + pt->eoff + elen + slen;
	n = snprintf(t, pt->tlen + 1,
		     "switchmail-trailer envelope=%016llx state=%016llx",
		     (unsigned long long)pt->eoff,
		     (unsigned long long)(pt->eoff + elen));
	memset(t + n, ' ', pt->tlen - 1 - (size_t)n);
	t[pt->tlen - 1] = '\n';
	put_file(path, out, total);
	free(out);
}

/* s with the first find replaced by repl, malloc'ed. */
static char *replace(const char *s, const char *find, const char *repl)
{
	const char *at = strstr(s, find);
	char *out;

	assert_non_null(at);
	out = malloc(strlen(s) + strlen(repl) + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(at - s));
	strcpy(out + (at - s), repl);
	strcat(out, at + strlen(find));
	return out;
}

static const struct bad_case {
	const char *find, *repl, *want;
} bad_cases[] = {
    {"notice 1\n", "notice 1\nfoo bar\n", "unknown key \"foo\" on line"},
    {"notice 1\n", "notice 1\nfrom x@example.org\n", "duplicate key \"from\""},
    {"notice 1\n", "notice 1\nnotice 0\n", "duplicate key \"notice\""},
    {"caller-sender ", "caller-sender x\ncaller-sender ",
     "duplicate key \"caller-sender\""},
    {"end\n", "", "no end marker"},
    {"end\n", "en", "no end marker"},
    {"end\n", "end\nrcpt c@example.org\n", "data after the end marker"},
    {"switchmail-queue 1\n", "switchmail-queue 2\n",
     "unknown format or version \"switchmail-queue 2\""},
    {"switchmail-queue 1\n", "", "unknown format or version"},
    {"id ", "id 0", "bad value for \"id\""},
    {"notice 1\n", "", "missing key \"notice\""},
    {"reply-to 1\n", "", "missing key \"reply-to\""},
    {"rcpt b@example.org\n", "", "missing key \"rcpt\""},
    {"reply-to 1\n", "reply-to 2\n", "bad value for \"reply-to\""},
    {"created 1700000000\n", "created 17x\n", "bad value for \"created\""},
    {"created 1700000000\n", "created 99999999999999999999\n",
     "bad value for \"created\""},
    {"body 2\n", "body 2147483648\n", "bad value for \"body\""},
    {"size ", "size -", "bad value for \"size\""},
    {"size ", "size 1", "does not match the envelope's offset"},
    {"header-len 36\n", "header-len 99999\n", "header-len 99999 is over"},
    {"rcpt b@example.org\n", "rcpt b@example.org\nrcpt c@example.org\n",
     "does not fit its 2 recipients"},
    {"from a@example.org\n", "from a@exa\rmple.org\n", "a CR in line"},
    {"from a@example.org\n", "from\n", "is not \"key value\""},
    {"from a@example.org\n", "from a@ex\001ample.org\n", NULL},
};

static void test_bad_envelope(void **state)
{
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX], *env;
	struct queue_entry e;
	struct sm_error err = {0};
	struct parts pt;

	spool_simple(*state, id);
	path_of(p, *state, "new", id);
	split(p, &pt);
	env = strndup(pt.buf + pt.eoff, pt.soff - pt.eoff);
	for (size_t k = 0; k < NELEM(bad_cases); k++) {
		const struct bad_case *c = &bad_cases[k];
		char *text = replace(env, c->find, c->repl);
		int rc;

		compose(p, &pt, text, strlen(text));
		rc = queue_open(*state, "new", id, false, &e, &err);
		if (c->want == NULL) { /* not ours to judge: any control */
			assert_int_equal(rc, 0);
			queue_close(&e);
		} else if (rc != -1 || strstr(err.msg, c->want) == NULL)
			fail_msg("case %zu: rc %d, [%s], want [%s]", k, rc,
				 err.msg, c->want);
		free(text);
	}
	/* A NUL octet in the envelope. */
	env[strlen("switchmail-queue 1\nid")] = '\0';
	compose(p, &pt, env, pt.soff - pt.eoff);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), -1);
	assert_non_null(strstr(err.msg, "NUL octet"));
	free(env);
	free(pt.buf);
}

static void test_id_mismatch(void **state)
{
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1], other[QUEUE_ID_LEN + 1];
	char a[PATH_MAX], b[PATH_MAX];

	spool_simple(*state, id);
	queue_id_new(other);
	path_of(a, *state, "new", id);
	path_of(b, *state, "new", other);
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(queue_open(*state, "new", other, false, &e, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "says its id is"));
	assert_non_null(strstr(err.msg, id));
}

/* Rewrite the last tlen octets of the file at path: a trailer for the
 * env and state offsets. */
static void set_trailer(const char *path, size_t tlen, unsigned long long env,
			unsigned long long st)
{
	char t[256];
	struct stat sb;
	int n, fd = open(path, O_WRONLY);

	assert_true(fd >= 0 && tlen < sizeof t);
	assert_int_equal(fstat(fd, &sb), 0);
	n = snprintf(t, sizeof t,
		     "switchmail-trailer envelope=%016llx state=%016llx", env,
		     st);
	memset(t + n, ' ', tlen - 1 - (size_t)n);
	t[tlen - 1] = '\n';
	assert_int_equal(pwrite(fd, t, tlen, sb.st_size - (off_t)tlen),
			 (ssize_t)tlen);
	close(fd);
}

static void test_bad_trailer(void **state)
{
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX];
	struct queue_entry e;
	struct sm_error err = {0};
	struct parts pt;
	unsigned long long cases[][2] = {
	    {0, 1ULL << 40}, /* state beyond the end */
	    {0, 0},	     /* envelope not before the state */
	    {50, 10},	     /* reversed */
	    {1ULL << 62, (1ULL << 62) + 10},
	};
	int fd;

	spool_simple(*state, id);
	path_of(p, *state, "new", id);
	split(p, &pt);
	for (size_t k = 0; k < NELEM(cases); k++) {
		set_trailer(p, pt.tlen, cases[k][0], cases[k][1]);
		assert_int_equal(queue_open(*state, "new", id, false, &e, &err),
				 -1);
		assert_non_null(strstr(err.msg, "points outside"));
	}
	/* Upper-case hex, or anything but the exact line, is no trailer. */
	set_trailer(p, pt.tlen, pt.eoff, pt.soff);
	check_survives(*state, id, 0);
	put_file(p, pt.buf, pt.len);
	memcpy(pt.buf + pt.len - pt.tlen, "Switchmail", 10);
	put_file(p, pt.buf, pt.len);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), -1);
	assert_non_null(strstr(err.msg, "no valid trailer"));
	/* An envelope over 16 MiB (a sparse file). */
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 20 << 20), 0);
	close(fd);
	set_trailer(p, pt.tlen, 10, (17 << 20) + 10);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), -1);
	assert_non_null(strstr(err.msg, "its envelope is"));
	free(pt.buf);
}

static void test_write_refusals(void **state)
{
	static char *rcpt[] = {"b@example.org"};
	static char *bad_rcpt[] = {"b@example.org", "c@exa\nmple.org"};
	struct queue_envelope env;
	struct queue_state st = {0};
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1], rs[2] = "Z";
	int fd;

	queue_id_new(id);
	fd = queue_create_tmp(*state, id, &err);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, MSG, strlen(MSG)), (ssize_t)strlen(MSG));
	fill_env(&env, id, true, rcpt, 1);
	env.size = (off_t)strlen(MSG);
	env.from_display = "Ann\r\nBcc: x@example.org";
	assert_int_equal(queue_write_envelope(fd, &env, NULL, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_non_null(strstr(err.msg, "from-display contains a line break"));
	fill_env(&env, id, true, bad_rcpt, 2);
	env.size = (off_t)strlen(MSG);
	assert_int_equal(queue_write_envelope(fd, &env, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "recipient 2"));
	fill_env(&env, id, true, rcpt, 0);
	env.size = (off_t)strlen(MSG);
	assert_int_equal(queue_write_envelope(fd, &env, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "no recipients"));
	fill_env(&env, id, true, rcpt, 1);
	env.size = 3;
	env.header_len = 0;
	assert_int_equal(queue_write_envelope(fd, &env, NULL, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_non_null(strstr(err.msg, "holds"));
	env.size = (off_t)strlen(MSG);
	env.header_len = 36;
	st.rcpt_state = rs;
	assert_int_equal(queue_write_envelope(fd, &env, &st, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	/* Nothing was appended by the refusals. */
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)strlen(MSG));
	close(fd);
	queue_remove_tmp(*state, id);
	assert_false(exists(*state, "tmp", id));
}

static void test_lock(void **state)
{
	struct queue_entry e, f;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX];
	int fd;

	spool_simple(*state, id);
	path_of(p, *state, "new", id);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(queue_open(*state, "new", id, true, &e, &err), 1);
	assert_int_equal(e.fd, -1);
	assert_int_equal(err.code, EX_OK);
	queue_close(&e);
	/* Reading without the lock still works (mailq). */
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), 0);
	assert_false(e.locked);
	queue_close(&e);
	close(fd);
	assert_int_equal(queue_open(*state, "new", id, true, &e, &err), 0);
	assert_int_equal(queue_open(*state, "new", id, true, &f, &err), 1);
	queue_close(&e);
	assert_int_equal(queue_open(*state, "new", id, true, &f, &err), 0);
	queue_close(&f);
}

static void test_open_hostile(void **state)
{
	static const char *bad[] = {
	    "../x",
	    "ABC",
	    "0123456789abcdef0123",
	    "../new/0123456789ABCDEF",
	    "0123456789ABCDEF0123/",
	    "",
	};
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1], p[PATH_MAX], target[PATH_MAX];

	for (size_t i = 0; i < NELEM(bad); i++) {
		assert_int_equal(
		    queue_open(*state, "new", bad[i], false, &e, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_non_null(strstr(err.msg, "not a queue id"));
	}
	assert_int_equal(queue_open(*state, "new", NULL, false, &e, &err), -1);
	spool_simple(*state, id);
	assert_int_equal(queue_open(*state, "../new", id, false, &e, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	/* Missing. */
	assert_int_equal(
	    queue_open(*state, "new", "0123456789ABCDEF0123", false, &e, &err),
	    -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(queue_open(*state, "failed", id, false, &e, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	/* A symlink to a good file, a FIFO, a directory. */
	path_of(target, *state, "new", id);
	path_of(p, *state, "new", "00000000000000000001");
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(
	    queue_open(*state, "new", "00000000000000000001", false, &e, &err),
	    -1);
	assert_non_null(strstr(err.msg, "symbolic link"));
	path_of(p, *state, "new", "00000000000000000002");
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(
	    queue_open(*state, "new", "00000000000000000002", false, &e, &err),
	    -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(
	    queue_open(*state, "new", "00000000000000000002", true, &e, &err),
	    -1);
	path_of(p, *state, "new", "00000000000000000003");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(
	    queue_open(*state, "new", "00000000000000000003", false, &e, &err),
	    -1);
	assert_int_equal(e.fd, -1);
}

static void test_list(void **state)
{
	static const char *want[] = {"00000000100000000001",
				     "0000000010000000000A",
				     "6553F1000000000ABCDE"};
	static const char *junk[] = {"ABC", "0123456789abcdef0123",
				     ".00000000100000000002",
				     "00000000100000000003.tmp", "x"};
	static char *rcpt[] = {"b@example.org"};
	struct queue_envelope env;
	struct sm_error err = {0};
	char p[PATH_MAX], target[PATH_MAX], **ids;
	size_t n;

	assert_int_equal(queue_list(*state, "new", &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	queue_free_list(ids, n);
	for (size_t i = NELEM(want); i-- > 0;) {
		fill_env(&env, want[i], false, rcpt, 1);
		spool(*state, &env, NULL, MSG);
	}
	for (size_t i = 0; i < NELEM(junk); i++) {
		path_of(p, *state, "new", junk[i]);
		put_file(p, "junk", 4);
	}
	path_of(p, *state, "new", "00000000000000000004");
	assert_int_equal(mkdir(p, 0700), 0);
	path_of(target, *state, "new", want[0]);
	path_of(p, *state, "new", "00000000000000000005");
	assert_int_equal(symlink(target, p), 0);
	snprintf(p, sizeof p, "%s/x", (char *)*state); /* new/../x */
	put_file(p, "junk", 4);
	assert_int_equal(queue_list(*state, "new", &ids, &n, &err), 0);
	assert_int_equal(n, NELEM(want));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(ids[i], want[i]);
	queue_free_list(ids, n);
	assert_int_equal(queue_list(*state, "nope", &ids, &n, &err), -1);
	assert_null(ids);
}

/* Make tmp/id's times old enough to be debris. */
static void age(const char *dir, const char *id)
{
	char p[PATH_MAX];
	struct timespec ts[2] = {
	    {.tv_sec = time(NULL) - QUEUE_STALE_TMP - 60},
	    {.tv_sec = time(NULL) - QUEUE_STALE_TMP - 60},
	};

	path_of(p, dir, "tmp", id);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_clean_tmp(void **state)
{
	struct sm_error err = {0};
	char old[QUEUE_ID_LEN + 1], fresh[QUEUE_ID_LEN + 1];
	char held[QUEUE_ID_LEN + 1], p[PATH_MAX];
	int fd, held_fd;

	assert_int_equal(queue_clean_tmp(*state), 0); /* no tmp/ yet */
	queue_id_new(old);
	queue_id_new(fresh);
	queue_id_new(held);
	assert_true((fd = queue_create_tmp(*state, old, &err)) >= 0);
	close(fd); /* its sender died */
	assert_true((fd = queue_create_tmp(*state, fresh, &err)) >= 0);
	close(fd);
	assert_true((held_fd = queue_create_tmp(*state, held, &err)) >= 0);
	age(*state, old);
	age(*state, held);
	path_of(p, *state, "tmp", "junk");
	put_file(p, "x", 1);
	assert_int_equal(queue_clean_tmp(*state), 1);
	assert_false(exists(*state, "tmp", old));
	assert_true(exists(*state, "tmp", fresh));
	assert_true(exists(*state, "tmp", held));
	assert_true(exists(*state, "tmp", "junk"));
	close(held_fd); /* now its sender died too */
	assert_int_equal(queue_clean_tmp(*state), 1);
	assert_false(exists(*state, "tmp", held));
	assert_true(exists(*state, "tmp", fresh));
}

static void test_failed_and_remove(void **state)
{
	struct queue_entry e;
	struct sm_error err = {0};
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1], **ids;
	size_t n;

	spool_simple(*state, a);
	spool_simple(*state, b);
	/* Not locked: refused. */
	assert_int_equal(queue_open(*state, "new", a, false, &e, &err), 0);
	assert_int_equal(queue_move_failed(*state, &e, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_int_equal(queue_remove(*state, &e, &err), -1);
	queue_close(&e);

	assert_int_equal(queue_open(*state, "new", a, true, &e, &err), 0);
	snprintf(e.st.error, sizeof e.st.error, "550 5.1.1 no such user");
	e.st.rcpt_state[0] = RS_FAILED;
	assert_int_equal(queue_save_state(&e, &err), 0);
	assert_int_equal(queue_move_failed(*state, &e, &err), 0);
	queue_close(&e);
	assert_false(exists(*state, "new", a));
	assert_true(exists(*state, "failed", a));
	assert_int_equal(queue_open(*state, "failed", a, false, &e, &err), 0);
	assert_string_equal(e.st.error, "550 5.1.1 no such user");
	queue_close(&e);
	assert_int_equal(queue_list(*state, "failed", &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	queue_free_list(ids, n);

	assert_int_equal(queue_open(*state, "new", b, true, &e, &err), 0);
	assert_int_equal(queue_remove(*state, &e, &err), 0);
	queue_close(&e);
	assert_false(exists(*state, "new", b));
	assert_int_equal(queue_list(*state, "new", &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	queue_free_list(ids, n);
}

static void test_destructors(void **state)
{
	struct queue_envelope env = {0};
	struct queue_state st = {0};
	struct queue_entry e;
	struct sm_error err = {0};
	char id[QUEUE_ID_LEN + 1];

	queue_envelope_free(NULL);
	queue_state_free(NULL);
	queue_close(NULL);
	queue_free_list(NULL, 0);
	queue_envelope_free(&env);
	queue_state_free(&st);
	spool_simple(*state, id);
	assert_int_equal(queue_open(*state, "new", id, false, &e, &err), 0);
	queue_envelope_free(&e.env);
	assert_null(e.env.rcpts);
	assert_null(e.env.from_addr);
	assert_int_equal(e.env.nrcpts, 0);
	queue_envelope_free(&e.env); /* twice is harmless */
	queue_state_free(&e.st);
	assert_null(e.st.rcpt_state);
	queue_close(&e);
	queue_close(&e); /* and so is closing twice */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_ids),
	    T(test_roundtrip_full),
	    T(test_roundtrip_absent),
	    T(test_roundtrip_10000),
	    T(test_commit),
	    T(test_create_tmp_errors),
	    T(test_save_state),
	    T(test_damaged_state),
	    T(test_truncation),
	    T(test_byte_damage),
	    T(test_bad_envelope),
	    T(test_id_mismatch),
	    T(test_bad_trailer),
	    T(test_write_refusals),
	    T(test_lock),
	    T(test_open_hostile),
	    T(test_list),
	    T(test_clean_tmp),
	    T(test_failed_and_remove),
	    T(test_destructors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
