/*
 * test_confedit.c - confedit.c: one table row per text edit (input,
 * changes, the exact expected output: every byte not changed stays), rows
 * for texts it must refuse, reading values back, and the atomic file
 * replacement (mode, owner, validation, the caller's check, links).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confedit.h"

#define NATIVE                                                                 \
	"native = { host = \"localhost\"; port = 25; encryption = \"none\"; "  \
	"from = \"no-reply@platform.example\"; };\n"

#define SET_S(g, k, v)                                                         \
	{                                                                      \
		g, k, CE_SET_STRING, v, 0, false                               \
	}
#define SET_I(g, k, v)                                                         \
	{                                                                      \
		g, k, CE_SET_INT, NULL, v, false                               \
	}
#define SET_B(g, k, v)                                                         \
	{                                                                      \
		g, k, CE_SET_BOOL, NULL, 0, v                                  \
	}
#define DEL(g, k)                                                              \
	{                                                                      \
		g, k, CE_REMOVE, NULL, 0, false                                \
	}

struct edit_case {
	const char *name;
	const char *in;
	struct confedit_change ch[4];
	size_t n;
	const char *out; /* NULL: refused */
	int code;	 /* when refused */
	const char *msg; /* when refused: part of the message */
};

static const struct edit_case edit_cases[] = {
    {"false becomes true, the comment stays",
     "connector = {\n  active = false;  # the switch\n};\n",
     {SET_B("connector", "active", true)},
     1,
     "connector = {\n  active = true;   # the switch\n};\n",
     0,
     NULL},
    {"comments keep their column while the blanks allow",
     "connector = {\n  active = true;     # a\n  port = 25;  // b\n"
     "  host = \"x\"; # c\n};\n",
     {SET_B("connector", "active", false), SET_I("connector", "port", 465),
      SET_S("connector", "host", "longer")},
     3,
     "connector = {\n  active = false;    # a\n  port = 465; // b\n"
     "  host = \"longer\"; # c\n};\n",
     0,
     NULL},
    {"a commented-out setting is not a setting",
     "connector = {\n  active = false;\n  # host = \"x\";\n};\n",
     {SET_S("connector", "host", "smtp.a.fr")},
     1,
     "connector = {\n  active = false;\n  host = \"smtp.a.fr\";\n"
     "  # host = \"x\";\n};\n",
     0,
     NULL},
    {"// and multi-line /* */ comments hide settings",
     "connector = {\n  // host = \"x\";\n  /* host = \"y\";\n"
     "     port = 1; */\n  port = 25; /* c */ # d\n};\n",
     {SET_S("connector", "host", "h"), SET_I("connector", "port", 587)},
     2,
     "connector = {\n  // host = \"x\";\n  /* host = \"y\";\n"
     "     port = 1; */\n  port = 587; /* c */ # d\n  host = \"h\";\n};\n",
     0,
     NULL},
    {"strings holding ; # } and escaped quotes",
     "connector = { from = \"a;b#c}\\\"d@x.fr\"; host = \"h\"; };\n",
     {SET_S("connector", "host", "n")},
     1,
     "connector = { from = \"a;b#c}\\\"d@x.fr\"; host = \"n\"; };\n",
     0,
     NULL},
    {"':' instead of '=' and no terminators",
     "connector : {\n  host : \"old\"\n  port : 25\n}\n",
     {SET_S("connector", "host", "new"), SET_I("connector", "port", 465)},
     2,
     "connector : {\n  host : \"new\"\n  port : 465\n}\n",
     0,
     NULL},
    {"lists, arrays and nested groups are skipped whole",
     "connector = {\n  allowed_senders = [ \"a@x\", \"b@x\" ];\n"
     "  x = ( { host = \"no\"; }, [1, 2] );\n};\n",
     {SET_S("connector", "host", "yes")},
     1,
     "connector = {\n  allowed_senders = [ \"a@x\", \"b@x\" ];\n"
     "  x = ( { host = \"no\"; }, [1, 2] );\n  host = \"yes\";\n};\n",
     0,
     NULL},
    {"a missing group is added at the end, then filled",
     "native = { host = \"h\"; }; # end",
     {SET_B("connector", "active", true), SET_S("connector", "host", "a")},
     2,
     "native = { host = \"h\"; }; # end\n\nconnector = {\n"
     "  active = true;\n  host = \"a\";\n};\n",
     0,
     NULL},
    {"an empty group on one line",
     "connector = { };\n",
     {SET_S("connector", "host", "h")},
     1,
     "connector = { host = \"h\"; };\n",
     0,
     NULL},
    {"an empty group holding only comments",
     "aliases = {\n  # root = \"a@x\";\n};\n",
     {SET_S("aliases", "root", "b@x")},
     1,
     "aliases = {\n  # root = \"a@x\";\n  root = \"b@x\";\n};\n",
     0,
     NULL},
    {"the group's last member shares the line with its brace",
     "connector = { host = \"a\"; from = \"b\"; };\n",
     {SET_I("connector", "port", 587)},
     1,
     "connector = { host = \"a\"; from = \"b\"; port = 587; };\n",
     0,
     NULL},
    {"the first member on the brace's line: indent from the group",
     "  connector = { active = false;\n  };\n",
     {SET_S("connector", "host", "h")},
     1,
     "  connector = { active = false;\n    host = \"h\";\n  };\n",
     0,
     NULL},
    {"quotes and backslashes are escaped",
     "connector = { password = \"old\"; };\n",
     {SET_S("connector", "password", "p\"a\\ss#;")},
     1,
     "connector = { password = \"p\\\"a\\\\ss#;\"; };\n",
     0,
     NULL},
    {"only the top-level group is edited",
     "native = { connector = { host = \"n\"; }; };\n"
     "connector = { host = \"x\"; };\n",
     {SET_S("connector", "host", "y")},
     1,
     "native = { connector = { host = \"n\"; }; };\n"
     "connector = { host = \"y\"; };\n",
     0,
     NULL},
    {"removing a setting removes its line",
     "connector = {\n  password_file = \"/x\";  \n  host = \"h\";\n};\n",
     {DEL("connector", "password_file"), DEL("connector", "absent"),
      DEL("nogroup", "x")},
     3,
     "connector = {\n  host = \"h\";\n};\n",
     0,
     NULL},
    {"removing keeps what shares the line",
     "connector = { password_file = \"/x\"; host = \"h\"; };\n",
     {DEL("connector", "password_file")},
     1,
     "connector = {  host = \"h\"; };\n",
     0,
     NULL},
    {"CRLF line endings are kept",
     "connector = {\r\n  active = false;\r\n};\r\n",
     {SET_S("connector", "host", "h")},
     1,
     "connector = {\r\n  active = false;\r\n  host = \"h\";\r\n};\r\n",
     0,
     NULL},
    {"@include lines are left alone",
     "@include \"/etc/x.conf\"\nconnector = {\n};\n",
     {SET_B("connector", "active", false)},
     1,
     "@include \"/etc/x.conf\"\nconnector = {\n  active = false;\n};\n",
     0,
     NULL},
    {"a commented-out group is not the group",
     "# connector = { active = true; };\n/* connector = { }; */\n",
     {SET_B("connector", "active", true)},
     1,
     "# connector = { active = true; };\n/* connector = { }; */\n\n"
     "connector = {\n  active = true;\n};\n",
     0,
     NULL},
    {"setting the same value changes nothing; big integers get L",
     "connector = { port = 465; max = 1; };",
     {SET_I("connector", "port", 465), SET_I("connector", "max", 5000000000LL)},
     2,
     "connector = { port = 465; max = 5000000000L; };",
     0,
     NULL},
    {"string concatenation is replaced whole",
     "connector = { host = \"a\" /* x */ \"b\"; };",
     {SET_S("connector", "host", "c")},
     1,
     "connector = { host = \"c\"; };",
     0,
     NULL},
    {"an empty file gets the group",
     "",
     {SET_B("connector", "active", false)},
     1,
     "connector = {\n  active = false;\n};\n",
     0,
     NULL},
    /* refused */
    {"a string never closed",
     "connector = { host = \"a; };\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "line 1: a string is never closed"},
    {"a comment never closed",
     "\n/* connector = { };\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "line 2: a /* comment is never closed"},
    {"not a group",
     "x = 1;\nconnector = \"on\";\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "line 2: connector is not a group"},
    {"brackets that do not match",
     "connector = { a = [ 1, 2 ); };\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "brackets do not match"},
    {"a group never closed",
     "connector = {\n host = \"a\";\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "never closed"},
    {"garbage",
     "connector = { host = 'a'; };\n",
     {SET_S("connector", "host", "b")},
     1,
     NULL,
     EX_CONFIG,
     "line 1: unexpected character"},
    {"a line break in a value",
     "connector = { };\n",
     {SET_S("connector", "host", "a\r\nRCPT TO:<x>")},
     1,
     NULL,
     EX_DATAERR,
     "connector.host: the value holds a line break"},
    {"a tab in a value",
     "connector = { };\n",
     {SET_S("connector", "password", "a\tb")},
     1,
     NULL,
     EX_DATAERR,
     "control character"},
    {"a bad setting name",
     "connector = { };\n",
     {SET_S("connector", "a b", "x")},
     1,
     NULL,
     EX_SOFTWARE,
     "is not a setting name"},
};

static void test_edit_case(void **state)
{
	const struct edit_case *c = *state;
	struct sm_error err = {0};
	char *out = (char *)"unset";
	size_t len = 99;
	int rc =
	    confedit_text(c->in, strlen(c->in), c->ch, c->n, &out, &len, &err);

	if (c->out == NULL) {
		assert_int_equal(rc, -1);
		assert_null(out);
		assert_int_equal(err.code, c->code);
		if (strstr(err.msg, c->msg) == NULL)
			print_error("message: %s\n", err.msg);
		assert_non_null(strstr(err.msg, c->msg));
		return;
	}
	if (rc != 0)
		print_error("error: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_string_equal(out, c->out);
	assert_int_equal(len, strlen(c->out));
	free(out);
}

/* ---- reading values back ----------------------------------------------- */

static void test_get(void **state)
{
	static const char text[] =
	    "# connector = { host = \"commented\"; };\n"
	    "connector = {\n  host = \"a;b#c\\\"d\\\\e\\x41\" \"+\";\n"
	    "  port = 465; // 587\n  active = true;\n"
	    "  list = [ 1, 2 ];\n};\n";
	static const struct {
		const char *key, *value;
	} rows[] = {{"host", "a;b#c\"d\\eA+"},
		    {"port", "465"},
		    {"active", "true"},
		    {"list", "[ 1, 2 ]"},
		    {"absent", NULL}};
	struct sm_error err = {0};
	char *v;

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		assert_int_equal(confedit_get(text, strlen(text), "connector",
					      rows[i].key, &v, &err),
				 0);
		if (rows[i].value == NULL)
			assert_null(v);
		else
			assert_string_equal(v, rows[i].value);
		free(v);
	}
	assert_int_equal(
	    confedit_get(text, strlen(text), "native", "host", &v, &err), 0);
	assert_null(v);
	assert_int_equal(
	    confedit_get("connector = {", 13, "connector", "host", &v, &err),
	    -1);
	assert_int_equal(err.code, EX_CONFIG);
}

/* ---- files ------------------------------------------------------------- */

static char dir[256];

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
	snprintf(dir, sizeof dir, "%s/test_confedit.XXXXXX",
		 tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text into dir/name with mode; the path goes to out. */
static void put(const char *name, const char *text, mode_t mode, char *out,
		size_t size)
{
	int fd;

	snprintf(out, size, "%s/%s", dir, name);
	unlink(out);
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* The file at path, whole (static buffer). */
static const char *slurp(const char *path)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof buf - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* How many entries dir holds (no temporary file may be left behind). */
static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' || strncmp(e->d_name, ".f", 2) == 0;
	closedir(d);
	return n;
}

static const char commented[] =
    "# the admin's words\n\n" NATIVE "connector = {\n"
    "  active = false;   # off for now\n"
    "  host = \"smtp.example.fr\";\n  from = \"a@example.fr\";\n};\n";

static void test_file_edit_keeps_mode(void **state)
{
	static const struct confedit_change on[] = {
	    SET_B("connector", "active", true)};
	struct sm_error err = {0};
	char path[512];
	struct stat st;
	int before;

	(void)state;
	put("f1.conf", commented, 0640, path, sizeof path);
	before = entries();
	assert_int_equal(confedit_file(path, on, 1, NULL, &err), 0);
	assert_non_null(
	    strstr(slurp(path), "  active = true;    # off for now\n"));
	assert_non_null(strstr(slurp(path), "# the admin's words\n\n"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(entries(), before);
}

/* An edit that does not load leaves the file as it was. */
static void test_file_invalid_result_untouched(void **state)
{
	static const struct confedit_change bad[] = {
	    SET_B("connector", "active", true),
	    SET_S("connector", "encryption", "starttls")};
	struct sm_error err = {0};
	char path[512], before[8192];
	int n;

	(void)state;
	put("f2.conf", commented, 0600, path, sizeof path);
	snprintf(before, sizeof before, "%s", slurp(path));
	n = entries();
	assert_int_equal(confedit_file(path, bad, 2, NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "nothing was changed"));
	assert_non_null(strstr(err.msg, path)); /* not the temporary name */
	assert_non_null(strstr(err.msg, "\"starttls\" is not one of"));
	assert_string_equal(slurp(path), before);
	assert_int_equal(entries(), n);
}

static int refuse(const struct config *cfg, void *arg, struct sm_error *err)
{
	int *called = arg;

	(*called)++;
	assert_true(cfg->connector_active);
	assert_string_equal(cfg->connector.host, "smtp.example.fr");
	assert_null(strstr(cfg->path, "/.f3.conf."));
	return error_set(err, EX_NOPERM, "the test failed");
}

static int accept_cfg(const struct config *cfg, void *arg, struct sm_error *err)
{
	(void)cfg;
	(void)err;
	(*(int *)arg)++;
	return 0;
}

/* The caller's check sees the edited configuration and can stop it. */
static void test_file_check_decides(void **state)
{
	static const struct confedit_change on[] = {
	    SET_B("connector", "active", true)};
	struct sm_error err = {0};
	char path[512], before[8192];
	int called = 0;
	struct confedit_opts o = {false, refuse, &called};

	(void)state;
	put("f3.conf", commented, 0600, path, sizeof path);
	snprintf(before, sizeof before, "%s", slurp(path));
	assert_int_equal(confedit_file(path, on, 1, &o, &err), -1);
	assert_int_equal(called, 1);
	assert_int_equal(err.code, EX_NOPERM);
	assert_string_equal(slurp(path), before);
	o.check = accept_cfg;
	assert_int_equal(confedit_file(path, on, 1, &o, &err), 0);
	assert_int_equal(called, 2);
	assert_non_null(strstr(slurp(path), "active = true;"));
}

/* A password makes a world-readable file 0640; a refused value leaves it. */
static void test_file_secret_mode(void **state)
{
	static const struct confedit_change pw[] = {
	    SET_S("connector", "username", "a@example.fr"),
	    SET_S("connector", "password", "s3cret")};
	static const struct confedit_change nl[] = {
	    SET_S("connector", "password", "a\nb")};
	struct confedit_opts o = {true, NULL, NULL};
	struct sm_error err = {0};
	char path[512];
	struct stat st;

	(void)state;
	put("f4.conf", commented, 0664, path, sizeof path);
	assert_int_equal(confedit_file(path, pw, 2, &o, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_non_null(strstr(slurp(path), "  password = \"s3cret\";\n"));
	assert_int_equal(confedit_file(path, nl, 1, &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(slurp(path), "  password = \"s3cret\";\n"));
}

/* A symbolic link is followed: the target is edited, the link stays. */
static void test_file_symlink(void **state)
{
	static const struct confedit_change off[] = {
	    SET_B("connector", "active", false)};
	struct sm_error err = {0};
	char path[512], link[600];
	struct stat st;

	(void)state;
	put("f5.conf", commented, 0600, path, sizeof path);
	snprintf(link, sizeof link, "%s/link.conf", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(confedit_file(link, off, 1, NULL, &err), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_non_null(strstr(slurp(path), "active = false;   # off"));
	unlink(link);
}

static void test_file_missing(void **state)
{
	static const struct confedit_change off[] = {
	    SET_B("connector", "active", false)};
	struct sm_error err = {0};
	char path[512];

	(void)state;
	snprintf(path, sizeof path, "%s/absent.conf", dir);
	assert_int_equal(confedit_file(path, off, 1, NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "No such file"));
}

int main(void)
{
	struct CMUnitTest tests[sizeof edit_cases / sizeof edit_cases[0] + 16];
	size_t n = 0;

	for (size_t i = 0; i < sizeof edit_cases / sizeof edit_cases[0]; i++) {
		struct CMUnitTest t = cmocka_unit_test_prestate(
		    test_edit_case, (void *)&edit_cases[i]);
		t.name = edit_cases[i].name;
		tests[n++] = t;
	}
	{
		const struct CMUnitTest rest[] = {
		    cmocka_unit_test(test_get),
		    cmocka_unit_test(test_file_edit_keeps_mode),
		    cmocka_unit_test(test_file_invalid_result_untouched),
		    cmocka_unit_test(test_file_check_decides),
		    cmocka_unit_test(test_file_secret_mode),
		    cmocka_unit_test(test_file_symlink),
		    cmocka_unit_test(test_file_missing),
		};
		for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
			tests[n++] = rest[i];
	}
	return _cmocka_run_group_tests("confedit", tests, n, setup, teardown);
}
