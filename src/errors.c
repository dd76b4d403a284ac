/*
 * errors.c - error filling and the sysexits table (DESIGN §4).
 */
#include "errors.h"

#include "text.h"
#undef error_set

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	int code;
	const char *name;
} exit_table[] = {
	{EX_OK, "EX_OK"},           {EX_USAGE, "EX_USAGE"},
	{EX_DATAERR, "EX_DATAERR"}, {EX_NOINPUT, "EX_NOINPUT"},
	{EX_NOUSER, "EX_NOUSER"},   {EX_NOHOST, "EX_NOHOST"},
	{EX_UNAVAILABLE, "EX_UNAVAILABLE"},
	{EX_SOFTWARE, "EX_SOFTWARE"}, {EX_OSERR, "EX_OSERR"},
	{EX_OSFILE, "EX_OSFILE"},   {EX_CANTCREAT, "EX_CANTCREAT"},
	{EX_IOERR, "EX_IOERR"},     {EX_TEMPFAIL, "EX_TEMPFAIL"},
	{EX_PROTOCOL, "EX_PROTOCOL"}, {EX_NOPERM, "EX_NOPERM"},
	{EX_CONFIG, "EX_CONFIG"},
};

int error_set(struct sm_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return -1;
}

void error_clear(struct sm_error *err)
{
	if (err == NULL)
		return;
	err->code = EX_OK;
	err->msg[0] = '\0';
}

const char *error_code_name(int code)
{
	for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++)
		if (exit_table[i].code == code)
			return exit_table[i].name;
	return "EX_?";
}

void error_printable(char *dst, size_t dstsize, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstsize == 0)
		return;
	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t safe = text_safe_len(u, len - i), n = safe;
		char tmp[4];

		if (safe > 0) {
			memcpy(tmp, u, safe);
		} else if (*u == '\r' || *u == '\n') {
			tmp[0] = '\\';
			tmp[1] = *u == '\r' ? 'r' : 'n';
			n = 2;
		} else { /* controls (C0, C1), malformed UTF-8 */
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[*u >> 4];
			tmp[3] = hex[*u & 15];
			n = 4;
		}
		if (o + n >= dstsize)
			break;
		memcpy(dst + o, tmp, n);
		o += n;
		i += safe > 0 ? safe : 1;
	}
	dst[o] = '\0';
}
