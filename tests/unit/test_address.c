/*
 * test_address.c - unit tests for address.c: validation, RFC 5322 list
 * parsing (including what sendmail callers pass), list dedup and limits,
 * alias resolution, sender patterns.  Table-driven; hostile inputs (CR/LF/NUL
 * injection, over-long and unterminated input, alias loops) included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"

#define NWANT  4
#define LEN(s) (sizeof(s) - 1) /* length of a literal with embedded NULs */

struct want {
	const char *addr, *display;
};

/* Fail the test with the case number and input when cond is false. */
static void check(bool cond, size_t k, const char *in, const char *what)
{
	if (!cond) {
		print_error("case %zu (%s): %s\n", k, in ? in : "(null)", what);
		fail();
	}
}

/* Check that list holds exactly want[0..n) in order. */
static void check_list(const struct addrlist *l, const struct want *w, size_t n,
		       size_t k, const char *in)
{
	if (l->n != n)
		print_error("got %zu addresses, want %zu\n", l->n, n);
	check(l->n == n, k, in, "address count");
	for (size_t j = 0; j < n; j++) {
		const char *d = l->v[j].display;

		if (strcmp(l->v[j].addr, w[j].addr) != 0)
			print_error("addr %zu: got [%s], want [%s]\n", j,
				    l->v[j].addr, w[j].addr);
		check(strcmp(l->v[j].addr, w[j].addr) == 0, k, in, "addr");
		if (w[j].display == NULL ? d != NULL
					 : d == NULL || strcmp(d, w[j].display))
			print_error("display %zu: got [%s], want [%s]\n", j,
				    d ? d : "(null)",
				    w[j].display ? w[j].display : "(null)");
		check(w[j].display == NULL ? d == NULL
					   : d && !strcmp(d, w[j].display),
		      k, in, "display");
	}
}

/* Check err: EX_DATAERR-like code, one printable line holding want. */
static void check_error(const struct sm_error *err, int code, const char *want,
			size_t k, const char *in)
{
	if (err->code != code || strstr(err->msg, want) == NULL)
		print_error("got %s [%s], want %s [%s]\n",
			    error_code_name(err->code), err->msg,
			    error_code_name(code), want);
	check(err->code == code, k, in, "error code");
	check(strstr(err->msg, want) != NULL, k, in, "error message");
	for (const unsigned char *s = (const unsigned char *)err->msg; *s; s++)
		check(*s >= 0x20 && *s != 0x7f, k, in, "printable message");
}

static const struct {
	const char *addr;
	const char *why; /* NULL: valid */
} valid_cases[] = {
    {"root", NULL},
    {"a@x", NULL},
    {"first.last+tag@sub-domain.example.com", NULL},
    {"\"john doe\"@example.com", NULL},
    {"\"a@b\"@example.com", NULL},
    {"\"a\\\"b\"@example.com", NULL},
    {"user@[127.0.0.1]", NULL},
    {"user@[IPv6:2001:db8::1]", NULL},
    {"j\xc3\xbcrgen@b\xc3\xbc"
     "cher.de",
     NULL},
    {"", "is empty"},
    {"a@x\r\nRCPT TO:<evil@y>", "contains a line break"},
    {"a\n@x", "contains a line break"},
    {"a@x\r", "contains a line break"},
    {"\"a\rb\"@x", "contains a line break"},
    {"a\t@x", "contains a control character"},
    {"a\x01@x", "contains a control character"},
    {"a@x\x7f", "contains a control character"},
    {"\"a\x1b\"@x", "contains a control character"},
    {"a@@b", "has more than one @"},
    {"a@b@c", "has more than one @"},
    {"@x", "has an empty local part"},
    {"a@", "has an empty domain"},
    {"a b@x", "contains a space"},
    {"a@x y", "contains a space"},
    {"john doe", "contains a space"},
    {"<a@x>", "contains < or >"},
    {"\"a<b\"@x", "contains < or >"},
    {"\"a\\>b\"@x", "contains < or >"},
    {"\"abc@x", "has an unterminated quoted string"},
    {"a@x_y.com", "has an invalid character in the domain"},
    {"a@\"x\"", "has an invalid character in the domain"},
    {"a@x!y", "has an invalid character in the domain"},
    {"a@[1.2.3.4", "has a malformed domain literal"},
    {"a@[]", "has a malformed domain literal"},
    {"a@[1.2[3].4]", "has a malformed domain literal"},
};

/* address_valid() accepts and rejects per its contract, with the reason. */
static void test_valid(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof valid_cases / sizeof valid_cases[0];
	     k++) {
		const char *why = "untouched";
		bool ok = address_valid(valid_cases[k].addr, &why);

		check(ok == (valid_cases[k].why == NULL), k,
		      valid_cases[k].addr, "verdict");
		if (!ok)
			check(strcmp(why, valid_cases[k].why) == 0, k,
			      valid_cases[k].addr, why);
	}
	assert_false(address_valid(NULL, NULL));
	assert_true(address_valid("root", NULL));
}

/* An address of n octets: 'a' * (n - 2) + "@x", in buf[301]. */
static const char *addr_of_len(char *buf, size_t n)
{
	memset(buf, 'a', n - 2);
	memcpy(buf + n - 2, "@x", 3);
	return buf;
}

/* The 254-octet limit is exact: 254 passes, 255 and 300 fail. */
static void test_valid_length(void **state)
{
	static const struct {
		size_t n;
		bool ok;
	} lens[] = {{3, true}, {254, true}, {255, false}, {300, false}};
	char buf[301];

	(void)state;
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		const char *why = NULL;
		bool ok = address_valid(addr_of_len(buf, lens[k].n), &why);

		check(ok == lens[k].ok, k, "length", "verdict");
		if (!ok)
			assert_string_equal(why, "is longer than 254 octets");
	}
}

static const struct {
	const char *in;
	size_t n;
	struct want w[NWANT];
} parse_cases[] = {
    {"", 0, {{0}}},
    {"   \t ", 0, {{0}}},
    {",", 0, {{0}}},
    {"(only a comment)", 0, {{0}}},
    {"a@x", 1, {{"a@x", NULL}}},
    {"root", 1, {{"root", NULL}}},
    {"a@x,b@y", 2, {{"a@x", NULL}, {"b@y", NULL}}},
    {"a@x, b@y", 2, {{"a@x", NULL}, {"b@y", NULL}}},
    {"a@x,", 1, {{"a@x", NULL}}},
    {",a@x,, ,b@y,", 2, {{"a@x", NULL}, {"b@y", NULL}}},
    {"John Doe <jd@x>", 1, {{"jd@x", "John Doe"}}},
    {"\"Doe, John\" <jd@x>, b@y", 2, {{"jd@x", "Doe, John"}, {"b@y", NULL}}},
    {"\"Doe \\\"JD\\\" John\" <jd@x>", 1, {{"jd@x", "Doe \"JD\" John"}}},
    {"John \"Q.\" Public <jqp@x>", 1, {{"jqp@x", "John Q. Public"}}},
    {"John Q. Public <jqp@x>", 1, {{"jqp@x", "John Q. Public"}}},
    {"\"\" <a@x>", 1, {{"a@x", NULL}}},
    {"root (Cron Daemon)", 1, {{"root", "Cron Daemon"}}},
    {"root@x (Cron (the) Daemon)", 1, {{"root@x", "Cron (the) Daemon"}}},
    {"root@x (a \\) b), c@y (C)", 2, {{"root@x", "a ) b"}, {"c@y", "C"}}},
    {"<root@x> (Cron)", 1, {{"root@x", "Cron"}}},
    {"Foo <a@x> (not a name)", 1, {{"a@x", "Foo"}}},
    {"John (the (nested) man) Doe <jd@x>", 1, {{"jd@x", "John Doe"}}},
    {"jd(c1)@(c2)x", 1, {{"jd@x", NULL}}},
    {"(lead) a@x", 1, {{"a@x", NULL}}},
    {"<@a,@b:user@x>", 1, {{"user@x", NULL}}},
    {"Foo <@a.example, ,@[10.0.0.1]:user@x>", 1, {{"user@x", "Foo"}}},
    {"undisclosed-recipients:;", 0, {{0}}},
    {"Undisclosed recipients: ;, a@x", 1, {{"a@x", NULL}}},
    {"team: a@x, b@y;", 2, {{"a@x", NULL}, {"b@y", NULL}}},
    {"team: a@x, Bee <b@y>;, c@z",
     3,
     {{"a@x", NULL}, {"b@y", "Bee"}, {"c@z", NULL}}},
    {"team: ,(nobody), Ann <a@x>,;", 1, {{"a@x", "Ann"}}},
    {"John\r\n Doe <jd@x>", 1, {{"jd@x", "John Doe"}}},
    {"\"Doe,\r\n\tJohn\" <jd@x>", 1, {{"jd@x", "Doe, John"}}},
    {"a@x,\n b@y,\r\n\tc@z", 3, {{"a@x", NULL}, {"b@y", NULL}, {"c@z", NULL}}},
    {" Ann <a@x>,\r\n b@y\r\n", 2, {{"a@x", "Ann"}, {"b@y", NULL}}},
    {"a@x\n", 1, {{"a@x", NULL}}},
    {"\"john doe\"@x", 1, {{"\"john doe\"@x", NULL}}},
    {"\"john\\ doe\"@x", 1, {{"\"john doe\"@x", NULL}}},
    {"\"a\\\"b\"@x", 1, {{"\"a\\\"b\"@x", NULL}}},
    {"Who <\"a,b\"@x>", 1, {{"\"a,b\"@x", "Who"}}},
    {"john.\"o d\"@x", 1, {{"john.\"o d\"@x", NULL}}},
    {"user@[127.0.0.1]", 1, {{"user@[127.0.0.1]", NULL}}},
    {"a @ x", 1, {{"a@x", NULL}}},
    {"john . doe @ example . com", 1, {{"john.doe@example.com", NULL}}},
    {"A@X, a@x, A@x, a@X", 2, {{"A@X", NULL}, {"a@x", NULL}}},
    {"J\xc3\xbcrgen <j@b\xc3\xbc.de>",
     1,
     {{"j@b\xc3\xbc.de", "J\xc3\xbcrgen"}}},
    {"a@x <a@x>", 1, {{"a@x", "a@x"}}},
    {"=?UTF-8?Q?J=C3=BCrgen?= <j@x>", 1, {{"j@x", "=?UTF-8?Q?J=C3=BCrgen?="}}},
};

/* Well-formed lists give the expected addresses and display names. */
static void test_parse(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof parse_cases / sizeof parse_cases[0];
	     k++) {
		struct addrlist l = {0};
		struct sm_error err;
		const char *in = parse_cases[k].in;
		int r;

		error_clear(&err);
		r = address_list_parse(in, strlen(in), &l, &err);
		if (r != 0)
			print_error("error: %s\n", err.msg);
		check(r == 0, k, in, "parse failed");
		check_list(&l, parse_cases[k].w, parse_cases[k].n, k, in);
		addrlist_free(&l);
	}
}

static const struct {
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *msg;
} parse_errors[] = {
    {"a@@b", 0, "address \"a@@b\" has more than one @"},
    {"x@y, \"bob", 0,
     "address list \"\"bob\" has an unterminated quoted string"},
    {"\"bob\\", 0, "has an unterminated quoted string"},
    {"a@x (unterminated", 0, "has an unterminated comment"},
    {"a@x (one (two) three", 0, "has an unterminated comment"},
    {"<a@x", 0, "address list \"<a@x\" has an unterminated < (missing >)"},
    {"Foo <a@x, b@y", 0, "has unexpected \",\""},
    {"Foo <@a,@b", 0, "has an unterminated < (missing >)"},
    {"<", 0, "has an unterminated < (missing >)"},
    {"a@[1.2.3.4", 0, "has an unterminated domain literal"},
    {"a@x\r\nRCPT TO:<evil@y>", 0,
     "address list \"a@x\\r\\nRCPT TO:<evil@y>\" contains a line break"},
    {"a@x\nb@y", 0, "contains a line break"},
    {"a@x\r", 0, "contains a line break"},
    {"a@x\r\n\r\n", 0, "contains a line break"},
    {"a@x\n\n", 0, "contains a line break"},
    {"a@x\r\nX-Evil: 1\r\n", 0, "contains a line break"},
    {"\"a@x\r\n", 0, "has an unterminated quoted string"},
    {"a@x\r b@y", 0, "contains a line break"},
    {"\"a\r\nb\"@x", 0, "contains a line break"},
    {"\"a\\\r\"@x", 0, "contains a line break"},
    {"Foo (a\nb) <a@x>", 0, "contains a line break"},
    {"a\0b@x", LEN("a\0b@x"), "address list \"a\\x00b@x\" contains a NUL byte"},
    {"a@x\0, evil@y", LEN("a@x\0, evil@y"), "contains a NUL byte"},
    {"\"a\0\"@x", LEN("\"a\0\"@x"), "contains a NUL byte"},
    {"a@x\x01", 0, "contains a control character"},
    {"\x1b[31mred@x", 0, "\"\\x1b[31mred@x\" contains a control character"},
    {"\"a\tb\"@x", 0, "\"a\\x09b\"@x\" contains a control character"},
    {"a@x)", 0, "has an unmatched )"},
    {"a@x]", 0, "has an unmatched ]"},
    {"a\\b@x", 0, "has a backslash outside a quoted string"},
    {"John Doe a@x", 0,
     "address list \"John Doe a@x\" has unexpected \"Doe\" after an "
     "address (a display name goes before <address>)"},
    {"a@x y@z", 0, "has unexpected \"y\" after an address"},
    {"a@x; b@y", 0, "has unexpected \";\" (separate addresses with ,)"},
    {";", 0, "has unexpected \";\" (separate addresses with ,)"},
    {"a@x>", 0, "has unexpected \">\" after an address"},
    {"Foo <a@x> <b@y>", 0, "has unexpected \"<\" after an address"},
    {"team: a@x", 0,
     "address list \"team: a@x\" has a group without its "
     "closing ;"},
    {"team: a@x, b@y", 0, "has a group without its closing ;"},
    {"a: b: c@x;;", 0, "has a group inside a group"},
    {"<>", 0, "has an empty address <>"},
    {"Foo <>", 0, "has an empty address <>"},
    {"<@a,b:c@x>", 0, "has unexpected \"b\" in a route"},
    {"<@:c@x>", 0, "has unexpected \":\" in a route"},
    {"<a:b@x>", 0, "has unexpected \":\""},
    {"a@x_y", 0, "address \"a@x_y\" has an invalid character in the domain"},
    {"@x", 0, "address \"@x\" has an empty local part"},
    {"a@", 0, "address \"a@\" has an empty domain"},
    {"a@x, b@", 0, "address \"b@\" has an empty domain"},
    {"<a@x y>", 0, "has unexpected \"y\""},
    {"\"a<b\"@x", 0, "address \"\"a<b\"@x\" contains < or >"},
    {"a@[1.2 .3]", 0, "address \"a@[1.2 .3]\" contains a space"},
    {"a@[1.2\\]3]", 0, "has a malformed domain literal"},
};

/* Malformed and hostile lists fail with EX_DATAERR and a printable line
 * naming the bad part. */
static void test_parse_errors(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof parse_errors / sizeof parse_errors[0];
	     k++) {
		struct addrlist l = {0};
		struct sm_error err;
		const char *in = parse_errors[k].in;
		size_t len =
		    parse_errors[k].len ? parse_errors[k].len : strlen(in);

		error_clear(&err);
		check(address_list_parse(in, len, &l, &err) == -1, k, in,
		      "parse succeeded");
		check_error(&err, EX_DATAERR, parse_errors[k].msg, k, in);
		addrlist_free(&l);
	}
}

/* A 300-octet address is refused and the message quotes only its start. */
static void test_parse_long_address(void **state)
{
	char in[301];
	struct addrlist l = {0};
	struct sm_error err;

	(void)state;
	memset(in, 'a', 300);
	memcpy(in + 290, "@example.c", 10);
	in[300] = '\0';
	assert_int_equal(address_list_parse(in, 300, &l, &err), -1);
	check_error(&err, EX_DATAERR, "is longer than 254 octets", 0, "300");
	assert_non_null(strstr(err.msg, "aaaa...\""));
	assert_true(strlen(err.msg) < 120);
	assert_int_equal(l.n, 0);
}

/* Comments nest to any depth without recursion; unbalanced ones fail. */
static void test_parse_deep_comments(void **state)
{
	const size_t depth = 100000;
	size_t len = 4 + 2 * depth;
	char *in = malloc(len + 1);
	struct addrlist l = {0};
	struct sm_error err;

	(void)state;
	assert_non_null(in);
	memcpy(in, "a@x ", 4);
	memset(in + 4, '(', depth);
	memset(in + 4 + depth, ')', depth);
	in[len] = '\0';
	assert_int_equal(address_list_parse(in, len, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].addr, "a@x");
	assert_int_equal(strlen(l.v[0].display), 2 * depth - 2);
	addrlist_free(&l);
	assert_int_equal(address_list_parse(in, len - 1, &l, &err), -1);
	check_error(&err, EX_DATAERR, "has an unterminated comment", 0, "deep");
	assert_true(strlen(err.msg) < 120);
	addrlist_free(&l);
	free(in);
}

/* Parsing appends to what out holds (dedup included) and keeps what was
 * parsed before an error. */
static void test_parse_appends(void **state)
{
	static const struct want w[] = {{"old@x", NULL}, {"a@x", NULL}};
	struct addrlist l = {0};
	struct sm_error err;

	(void)state;
	assert_int_equal(addrlist_add(&l, "old@x", NULL, &err), 0);
	assert_int_equal(address_list_parse("OLD@X, old@X", 12, &l, &err), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[1].addr, "OLD@X");
	addrlist_free(&l);
	assert_int_equal(addrlist_add(&l, "old@x", NULL, &err), 0);
	assert_int_equal(address_list_parse("a@x, b@@y, c@z", 14, &l, &err),
			 -1);
	check_list(&l, w, 2, 0, "partial");
	addrlist_free(&l);
	assert_int_equal(address_list_parse(NULL, 0, &l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(address_list_parse(NULL, 1, &l, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_int_equal(address_list_parse("a@x", 3, NULL, &err), -1);
}

/* A list of n distinct addresses "u0@x,u1@x,...", caller frees. */
static char *make_list(size_t n, size_t *len)
{
	char *s = malloc(n * 16 + 1);
	size_t o = 0;

	assert_non_null(s);
	for (size_t k = 0; k < n; k++)
		o += (size_t)sprintf(s + o, "%su%zu@x", k ? "," : "", k);
	*len = o;
	return s;
}

/* ADDRESS_LIST_MAX addresses parse; one more is refused. */
static void test_parse_limit(void **state)
{
	struct addrlist l = {0};
	struct sm_error err;
	size_t len;
	char *in = make_list(ADDRESS_LIST_MAX, &len);

	(void)state;
	assert_int_equal(address_list_parse(in, len, &l, &err), 0);
	assert_int_equal(l.n, ADDRESS_LIST_MAX);
	assert_int_equal(address_list_parse("u7@X, u9999@x", 13, &l, &err), 0);
	assert_int_equal(l.n, ADDRESS_LIST_MAX);
	addrlist_free(&l);
	free(in);
	in = make_list(ADDRESS_LIST_MAX + 1, &len);
	assert_int_equal(address_list_parse(in, len, &l, &err), -1);
	check_error(&err, EX_DATAERR, "more than 10000 addresses", 0, "10001");
	assert_int_equal(l.n, ADDRESS_LIST_MAX);
	addrlist_free(&l);
	free(in);
}

static const struct {
	const char *a, *b;
	bool same;
} dedup_cases[] = {
    {"a@x", "a@x", true},
    {"a@example.com", "a@EXAMPLE.Com", true},
    {"a@x", "A@x", false},
    {"root", "root", true},
    {"root", "ROOT", false},
    {"root", "root@x", false},
    {"root@x", "root", false},
    {"ab@x", "a@x", false},
    {"a@x", "ab@x", false},
    {"\"a@b\"@x", "\"a@b\"@X", true},
    {"\"a@b\"@x", "\"a@B\"@x", false},
    {"a@xy", "a@x", false},
};

/* addrlist_add dedups on exact local part and case-folded domain, keeps
 * the first display name, and enforces ADDRESS_LIST_MAX. */
static void test_addrlist_add(void **state)
{
	struct addrlist l = {0};
	struct sm_error err;
	char buf[32];

	(void)state;
	for (size_t k = 0; k < sizeof dedup_cases / sizeof dedup_cases[0];
	     k++) {
		assert_int_equal(addrlist_add(&l, dedup_cases[k].a, "A", &err),
				 0);
		assert_int_equal(addrlist_add(&l, dedup_cases[k].b, NULL, &err),
				 0);
		check(l.n == (dedup_cases[k].same ? 1u : 2u), k,
		      dedup_cases[k].b, "dedup");
		assert_string_equal(l.v[0].display, "A");
		addrlist_free(&l);
		assert_null(l.v);
		assert_int_equal(l.n, 0);
	}
	for (size_t k = 0; k < ADDRESS_LIST_MAX; k++) {
		snprintf(buf, sizeof buf, "u%zu@x", k);
		assert_int_equal(addrlist_add(&l, buf, NULL, &err), 0);
	}
	assert_int_equal(addrlist_add(&l, "u0@X", NULL, &err), 0);
	assert_int_equal(addrlist_add(&l, "new@x", NULL, &err), -1);
	check_error(&err, EX_DATAERR, "more than 10000 addresses", 0, "add");
	assert_int_equal(l.n, ADDRESS_LIST_MAX);
	addrlist_free(&l);
	addrlist_free(NULL);
	assert_int_equal(addrlist_add(NULL, "a@x", NULL, &err), -1);
}

static const struct alias_entry aliases[] = {
    {"postmaster", "root"},
    {"root", "admin@example.com, ops"},
    {"ops", "Ops Team <ops@example.com>"},
    {"nobody", ""},
    {"Webmaster", "\"web master\"@example.com"},
    {"staff", "root, postmaster, Ann <ann>"},
    {"bad", "a@@b"},
    {"null", NULL},
    {NULL, "ignored@x"},
};

static const struct {
	const char *in;
	const char *domain;
	size_t n;
	struct want w[NWANT];
} resolve_cases[] = {
    {"user", "example.org", 1, {{"user@example.org", NULL}}},
    {"Someone (Me) <user>",
     "example.org",
     1,
     {{"user@example.org", "Someone"}}},
    {"a@x, user, a@X",
     "example.org",
     2,
     {{"a@x", NULL}, {"user@example.org", NULL}}},
    {"root",
     NULL,
     2,
     {{"admin@example.com", NULL}, {"ops@example.com", "Ops Team"}}},
    {"POSTMASTER",
     "",
     2,
     {{"admin@example.com", NULL}, {"ops@example.com", "Ops Team"}}},
    {"staff",
     "example.org",
     3,
     {{"admin@example.com", NULL},
      {"ops@example.com", "Ops Team"},
      {"ann@example.org", "Ann"}}},
    {"root, admin@EXAMPLE.COM",
     NULL,
     2,
     {{"admin@example.com", NULL}, {"ops@example.com", "Ops Team"}}},
    {"nobody", NULL, 0, {{0}}},
    {"null, a@x", NULL, 1, {{"a@x", NULL}}},
    {"webmaster", NULL, 1, {{"\"web master\"@example.com", NULL}}},
    {"\"john doe\"", "example.org", 1, {{"\"john doe\"@example.org", NULL}}},
    {"", NULL, 0, {{0}}},
};

/* Bare names become aliases or get the default domain; duplicates go. */
static void test_resolve(void **state)
{
	const size_t naliases = sizeof aliases / sizeof aliases[0];

	(void)state;
	for (size_t k = 0; k < sizeof resolve_cases / sizeof resolve_cases[0];
	     k++) {
		struct addrlist l = {0};
		struct sm_error err;
		const char *in = resolve_cases[k].in;
		int r;

		error_clear(&err);
		assert_int_equal(address_list_parse(in, strlen(in), &l, &err),
				 0);
		r = address_resolve(&l, aliases, naliases,
				    resolve_cases[k].domain, &err);
		if (r != 0)
			print_error("error: %s\n", err.msg);
		check(r == 0, k, in, "resolve failed");
		check_list(&l, resolve_cases[k].w, resolve_cases[k].n, k, in);
		addrlist_free(&l);
	}
}

static const struct alias_entry loop2[] = {{"a", "b"}, {"B", "x@y, A"}};
static const struct alias_entry loop1[] = {{"bob", "Bob <bob>"}};

static const struct {
	const char *in;
	const struct alias_entry *aliases;
	size_t naliases;
	const char *domain;
	const char *msg;
} resolve_errors[] = {
    {"www-data", NULL, 0, NULL,
     "local name \"www-data\" has no domain and no alias: set "
     "default_domain or add aliases.www-data to the configuration"},
    {"a@x, www-data", aliases, 3, "",
     "local name \"www-data\" has no "
     "domain and no alias"},
    {"a", loop2, 2, "x",
     "alias loop: a -> B -> a: fix aliases.B in the configuration"},
    {"bob", loop1, 1, "x",
     "alias loop: bob -> bob: fix aliases.bob in the configuration"},
    {"bad", aliases, 9, "x",
     "aliases.bad: address \"a@@b\" has more than one @"},
    {"user", NULL, 0, "ex ample.org",
     "address \"user@ex ample.org\" contains a space: check "
     "default_domain in the configuration"},
    {"user", NULL, 0, "example.org\r\nRCPT TO:<evil@y>",
     "address \"user@example.org\\r\\nRCPT TO:<evil@y>\" contains a "
     "line break"},
};

/* Unresolvable names, loops and bad alias values fail with a fix, and
 * leave the list as it was. */
static void test_resolve_errors(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof resolve_errors / sizeof resolve_errors[0];
	     k++) {
		struct addrlist l = {0};
		struct sm_error err;
		const char *in = resolve_errors[k].in;
		char *first;
		size_t n;

		error_clear(&err);
		assert_int_equal(address_list_parse(in, strlen(in), &l, &err),
				 0);
		n = l.n;
		first = strdup(l.v[0].addr);
		assert_non_null(first);
		check(address_resolve(&l, resolve_errors[k].aliases,
				      resolve_errors[k].naliases,
				      resolve_errors[k].domain, &err) == -1,
		      k, in, "resolve succeeded");
		check_error(&err, EX_DATAERR, resolve_errors[k].msg, k, in);
		check(l.n == n && strcmp(l.v[0].addr, first) == 0, k, in,
		      "list changed");
		free(first);
		addrlist_free(&l);
	}
	assert_int_equal(address_resolve(NULL, NULL, 0, NULL, NULL), -1);
}

/* A chain of depth aliases n1 -> n2 -> ... -> end@x, resolved from "n1". */
static int resolve_chain(size_t depth, struct sm_error *err, struct addrlist *l)
{
	struct alias_entry a[16];
	char names[16][8], values[16][8];

	assert_true(depth <= 16);
	for (size_t k = 0; k < depth; k++) {
		snprintf(names[k], sizeof names[k], "n%zu", k + 1);
		snprintf(values[k], sizeof values[k], "n%zu", k + 2);
		a[k].name = names[k];
		a[k].value = k + 1 < depth ? values[k] : "end@x";
	}
	assert_int_equal(address_list_parse("n1", 2, l, err), 0);
	return address_resolve(l, a, depth, NULL, err);
}

/* Eight levels of aliases resolve; nine are refused with the chain. */
static void test_resolve_depth(void **state)
{
	struct addrlist l = {0};
	struct sm_error err;

	(void)state;
	assert_int_equal(resolve_chain(8, &err, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].addr, "end@x");
	addrlist_free(&l);
	assert_int_equal(resolve_chain(9, &err, &l), -1);
	check_error(&err, EX_DATAERR,
		    "aliases nest more than 8 levels: n1 -> n2 -> n3 -> n4 -> "
		    "n5 -> n6 -> n7 -> n8 -> n9: fix aliases.n1",
		    0, "depth 9");
	assert_string_equal(l.v[0].addr, "n1");
	addrlist_free(&l);
}

/* Aliases fanning out 10 ways on 8 levels (10^8 names) hit the work limit
 * instead of running for minutes. */
static void test_resolve_fanout(void **state)
{
	static struct alias_entry a[80];
	static char names[80][8], values[80][80];
	struct addrlist l = {0};
	struct sm_error err;

	(void)state;
	for (size_t lv = 0; lv < 8; lv++) {
		for (size_t j = 0; j < 10; j++) {
			char *v = values[lv * 10 + j];
			size_t o = 0;

			snprintf(names[lv * 10 + j], 8, "l%zu_%zu", lv, j);
			for (size_t m = 0; m < 10 && lv < 7; m++)
				o += (size_t)sprintf(v + o, "%sl%zu_%zu",
						     m ? "," : "", lv + 1, m);
			if (lv == 7)
				sprintf(v, "end%zu@x", j);
			a[lv * 10 + j].name = names[lv * 10 + j];
			a[lv * 10 + j].value = v;
		}
	}
	assert_int_equal(address_list_parse("l0_0", 4, &l, &err), 0);
	assert_int_equal(address_resolve(&l, a, 80, NULL, &err), -1);
	check_error(&err, EX_DATAERR, "aliases expand to more than", 0, "fan");
	addrlist_free(&l);
}

static const struct {
	const char *pattern, *addr;
	bool match;
} match_cases[] = {
    {"*@example.fr", "a@example.fr", true},
    {"*@example.fr", "A@EXAMPLE.FR", true},
    {"contact@example.fr", "Contact@Example.FR", true},
    {"contact@example.fr", "contact2@example.fr", false},
    {"*@example.fr", "a@example.com", false},
    {"*@example.fr", "a@example.fr.evil.com", false},
    {"*@*.example.fr", "a@mail.example.fr", true},
    {"*", "anything@x", true},
    {NULL, "a@x", false},
    {"*", NULL, false},
};

/* Sender patterns are globs compared case-insensitively. */
static void test_match(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof match_cases / sizeof match_cases[0]; k++)
		check(address_match(match_cases[k].pattern,
				    match_cases[k].addr) ==
			  match_cases[k].match,
		      k, match_cases[k].addr, "match");
}

static const struct {
	const char *addr, *domain;
} domain_cases[] = {
    {"a@x", "x"},	   {"root", NULL},
    {"\"a@b\"@x", "x"},	   {"\"a@b\"", NULL},
    {"a@b@c", "c"},	   {"a@", ""},
    {"\"a\\\"@\"@y", "y"}, {"u@[1.2.3.4]", "[1.2.3.4]"},
    {NULL, NULL},
};

/* The domain is what follows the last unquoted '@'. */
static void test_domain(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof domain_cases / sizeof domain_cases[0];
	     k++) {
		const char *d = address_domain(domain_cases[k].addr);

		check(domain_cases[k].domain == NULL
			  ? d == NULL
			  : d != NULL && !strcmp(d, domain_cases[k].domain),
		      k, domain_cases[k].addr, "domain");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_valid_length),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_parse_long_address),
	    cmocka_unit_test(test_parse_deep_comments),
	    cmocka_unit_test(test_parse_appends),
	    cmocka_unit_test(test_parse_limit),
	    cmocka_unit_test(test_addrlist_add),
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_resolve_errors),
	    cmocka_unit_test(test_resolve_depth),
	    cmocka_unit_test(test_resolve_fanout),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
