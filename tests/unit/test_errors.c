/*
 * test_errors.c - error_printable(): hostile bytes shown safely (C0 and C1
 * controls, malformed UTF-8 escaped; well-formed UTF-8 kept), and the
 * sysexits names table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"

static void test_printable(void **state)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{"plain text", "plain text"},
		{"a\r\nb", "a\\r\\nb"},
		{"esc \x1b[2J", "esc \\x1b[2J"},
		{"del \x7f", "del \\x7f"},
		{"raw csi \x9b" "2J", "raw csi \\x9b2J"},       /* C1, raw */
		{"utf8 csi \xc2\x9b" "1m", "utf8 csi \\xc2\\x9b1m"}, /* C1 */
		{"caf\xc3\xa9 \xe6\x9d\xb1", "caf\xc3\xa9 \xe6\x9d\xb1"},
		{"nbsp \xc2\xa0", "nbsp \xc2\xa0"},             /* U+00A0 ok */
		{"latin1 \xe9t\xe9", "latin1 \\xe9t\\xe9"},    /* malformed */
		{"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
		{"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
		{"cut \xe6\x9d", "cut \\xe6\\x9d"},
	};
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		error_printable(out, sizeof out, t[i].in, strlen(t[i].in));
		assert_string_equal(out, t[i].want);
	}
}

static void test_printable_bounds(void **state)
{
	char out[8];

	(void)state;
	error_printable(out, sizeof out, "\x1b\x1b\x1b\x1b", 4);
	assert_string_equal(out, "\\x1b"); /* whole escapes only */
	error_printable(out, 1, "abc", 3);
	assert_string_equal(out, "");
}

static void test_code_names(void **state)
{
	(void)state;
	assert_string_equal(error_code_name(EX_OK), "EX_OK");
	assert_string_equal(error_code_name(EX_TEMPFAIL), "EX_TEMPFAIL");
	assert_string_equal(error_code_name(EX_CONFIG), "EX_CONFIG");
	assert_string_equal(error_code_name(12345), "EX_?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_printable_bounds),
		cmocka_unit_test(test_code_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
