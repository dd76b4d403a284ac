/*
 * confedit.c - change settings of switchmail.conf as text (see confedit.h).
 *
 * The lexer follows libconfig 1.5's scanner: blanks (space, tab, CR, LF,
 * FF); comments from '#' or "//" to the end of the line and between slash-
 * star and star-slash; an "@include" line; strings in double quotes where
 * a backslash escapes the next character (adjacent strings concatenate);
 * words (names, numbers, booleans: letters, digits and _ * - + .); and the
 * punctuation = : , ; { } [ ] ( ).  The parser reads settings
 *   NAME ('=' | ':') VALUE [';' | ',']
 * at the top level and inside the group being edited, and skips any other
 * value by matching brackets.  Each edit is a splice of the text at token
 * offsets, so every byte it does not change stays as it was.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, explicit_bzero */
#endif

#include "confedit.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EDIT_FILE_MAX  (1024L * 1024) /* bytes of a file we edit */
#define NEST_MAX       64	      /* brackets inside one value */
#define INDENT_DEFAULT "  "	      /* inside a group we create */
#define NONE	       SIZE_MAX

enum tok_kind { T_WORD, T_STRING, T_PUNCT, T_END };

struct tok {
	enum tok_kind kind;
	size_t off, len;
	unsigned line;
};

/* The tokens of one text. */
struct lexed {
	const char *text;
	size_t len;
	struct tok *v;
	size_t n, cap;
};

/* A setting found in the text, as token indexes. */
struct span {
	size_t name;	  /* its name */
	size_t value;	  /* the first token of its value */
	size_t value_end; /* one past the last token of its value */
	size_t end;	  /* one past its terminator, else value_end */
};

/* The settings of one level: the one looked for and the last one. */
struct scan {
	const char *name; /* looked for */
	bool found, any;
	struct span hit;  /* the first setting called name */
	struct span last; /* the last setting */
	size_t close;	  /* the '}' of a group, or the T_END token */
};

/* The text being edited: malloc'ed, NUL-terminated, wiped when replaced. */
struct buf {
	char *p;
	size_t len;
};

/* Free p after wiping it (the text may hold a password). */
static void wipe_free(char *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/* The error for a failed allocation. */
static int no_memory(struct sm_error *err)
{
	return error_set(err, EX_OSERR, "out of memory while editing");
}

/* ---- lexer ------------------------------------------------------------- */

static int syntax(struct sm_error *err, unsigned line, const char *what)
{
	return error_set(err, EX_CONFIG,
			 "line %u: %s; correct the file by hand first", line,
			 what);
}

/* Append a token, growing the array. */
static int push(struct lexed *lx, enum tok_kind k, size_t off, size_t len,
		unsigned line)
{
	if (lx->n == lx->cap) {
		size_t cap = lx->cap ? lx->cap * 2 : 256;
		struct tok *v = realloc(lx->v, cap * sizeof *v);

		if (v == NULL)
			return -1;
		lx->v = v;
		lx->cap = cap;
	}
	lx->v[lx->n++] = (struct tok){k, off, len, line};
	return 0;
}

/* A character of a name, number or boolean. */
static bool word_char(char c)
{
	return isalnum((unsigned char)c) || strchr("_*-+.", c) != NULL;
}

/* The '\n' ending the line at p, or len. */
static size_t line_end(const char *t, size_t len, size_t p)
{
	const char *nl = memchr(t + p, '\n', len - p);

	return nl != NULL ? (size_t)(nl - t) : len;
}

/* Past the star-slash closing a comment whose body starts at p (counting
 * lines), or NONE. */
static size_t comment_end(const char *t, size_t len, size_t p, unsigned *line)
{
	for (; p + 1 < len; p++) {
		if (t[p] == '\n')
			(*line)++;
		if (t[p] == '*' && t[p + 1] == '/')
			return p + 2;
	}
	return NONE;
}

/* Past the '"' closing a string whose body starts at p, or NONE. */
static size_t string_end(const char *t, size_t len, size_t p, unsigned *line)
{
	for (; p < len; p++) {
		if (t[p] == '\n')
			(*line)++;
		if (t[p] == '\\' && p + 1 < len) {
			p++;
			if (t[p] == '\n')
				(*line)++;
		} else if (t[p] == '"') {
			return p + 1;
		}
	}
	return NONE;
}

/* One token (or comment) at *p; returns -1 on an error. */
static int lex_one(struct lexed *lx, size_t *p, unsigned *line,
		   struct sm_error *err)
{
	const char *t = lx->text;
	size_t q, len = lx->len;
	unsigned first = *line;
	char c = t[*p];

	if (c == '/' && *p + 1 < len && t[*p + 1] == '*') {
		if ((q = comment_end(t, len, *p + 2, line)) == NONE)
			return syntax(err, first,
				      "a /* comment is never closed");
	} else if (c == '"') {
		if ((q = string_end(t, len, *p + 1, line)) == NONE)
			return syntax(err, first, "a string is never closed");
		if (push(lx, T_STRING, *p, q - *p, first) < 0)
			return no_memory(err);
	} else if (c != '\0' && strchr("=:,;{}[]()", c) != NULL) {
		q = *p + 1;
		if (push(lx, T_PUNCT, *p, 1, first) < 0)
			return no_memory(err);
	} else if (c != '\0' && word_char(c)) {
		for (q = *p; q < len && word_char(t[q]); q++)
			;
		if (push(lx, T_WORD, *p, q - *p, first) < 0)
			return no_memory(err);
	} else {
		return syntax(err, first, "unexpected character");
	}
	*p = q;
	return 0;
}

/* Tokens of t[0..len) into lx (lx->v: caller frees). */
static int lex(const char *t, size_t len, struct lexed *lx,
	       struct sm_error *err)
{
	unsigned line = 1;
	size_t p = 0;
	bool bol = true; /* only blanks so far on this line (@include) */

	lx->text = t;
	lx->len = len;
	while (p < len) {
		char c = t[p];

		if (c == '\n') {
			line++;
			p++;
			bol = true;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
			p++;
		} else if (c == '#' ||
			   (c == '/' && p + 1 < len && t[p + 1] == '/') ||
			   (c == '@' && bol)) {
			p = line_end(t, len, p);
		} else {
			bol = false;
			if (lex_one(lx, &p, &line, err) < 0)
				return -1;
		}
	}
	if (push(lx, T_END, len, 0, line) < 0)
		return no_memory(err);
	return 0;
}

/* ---- parser ------------------------------------------------------------ */

static const struct tok *tk(const struct lexed *lx, size_t i)
{
	return &lx->v[i];
}

/* Whether token i is the punctuation c. */
static bool is_punct(const struct lexed *lx, size_t i, char c)
{
	return lx->v[i].kind == T_PUNCT && lx->text[lx->v[i].off] == c;
}

/* The byte offset just past token i. */
static size_t tok_end(const struct lexed *lx, size_t i)
{
	return lx->v[i].off + lx->v[i].len;
}

/* Whether token i is the name (names are case-sensitive). */
static bool name_is(const struct lexed *lx, size_t i, const char *name)
{
	return lx->v[i].len == strlen(name) &&
	       memcmp(lx->text + lx->v[i].off, name, lx->v[i].len) == 0;
}

/* The bracket closing open. */
static char closer(char open)
{
	if (open == '{')
		return '}';
	return open == '[' ? ']' : ')';
}

/* Past a bracketed value at *i, brackets matched. */
static int skip_brackets(const struct lexed *lx, size_t *i,
			 struct sm_error *err)
{
	char stack[NEST_MAX];
	size_t depth = 0;

	do {
		const struct tok *t = tk(lx, *i);
		char c = lx->text[t->off];

		if (t->kind == T_END)
			return syntax(err, t->line,
				      "a bracket is never closed");
		if (t->kind == T_PUNCT && strchr("{[(", c) != NULL) {
			if (depth == NEST_MAX)
				return syntax(err, t->line,
					      "values nest too deep");
			stack[depth++] = closer(c);
		} else if (t->kind == T_PUNCT && strchr("}])", c) != NULL) {
			if (depth == 0 || stack[--depth] != c)
				return syntax(err, t->line,
					      "brackets do not match");
		}
		(*i)++;
	} while (depth > 0);
	return 0;
}

/* Past one value at *i: strings, a word, or a bracketed value. */
static int skip_value(const struct lexed *lx, size_t *i, struct sm_error *err)
{
	const struct tok *t = tk(lx, *i);

	if (t->kind == T_STRING) {
		while (tk(lx, *i)->kind == T_STRING)
			(*i)++;
		return 0;
	}
	if (t->kind == T_WORD) {
		(*i)++;
		return 0;
	}
	if (is_punct(lx, *i, '{') || is_punct(lx, *i, '[') ||
	    is_punct(lx, *i, '('))
		return skip_brackets(lx, i, err);
	return syntax(err, t->line, "a value is missing");
}

/* One setting at *i: NAME ('=' | ':') VALUE [';' | ',']. */
static int parse_setting(const struct lexed *lx, size_t *i, struct span *s,
			 struct sm_error *err)
{
	const struct tok *t = tk(lx, *i);
	char c = lx->text[t->off];

	if (t->kind != T_WORD || !(isalpha((unsigned char)c) || c == '*'))
		return syntax(err, t->line, "a setting name was expected");
	s->name = (*i)++;
	if (!is_punct(lx, *i, '=') && !is_punct(lx, *i, ':'))
		return syntax(err, tk(lx, *i)->line,
			      "'=' was expected after a setting name");
	s->value = ++*i;
	if (skip_value(lx, i, err) < 0)
		return -1;
	s->value_end = *i;
	if (is_punct(lx, *i, ';') || is_punct(lx, *i, ','))
		(*i)++;
	s->end = *i;
	return 0;
}

/* The settings from token i to the group's '}' (in_group) or the end. */
static int scan_settings(const struct lexed *lx, size_t i, bool in_group,
			 struct scan *sc, struct sm_error *err)
{
	while (!(in_group ? is_punct(lx, i, '}') : tk(lx, i)->kind == T_END)) {
		struct span s;

		if (tk(lx, i)->kind == T_END)
			return syntax(err, tk(lx, i)->line,
				      "a group is never closed");
		if (parse_setting(lx, &i, &s, err) < 0)
			return -1;
		if (!sc->found && name_is(lx, s.name, sc->name)) {
			sc->found = true;
			sc->hit = s;
		}
		sc->last = s;
		sc->any = true;
	}
	sc->close = i;
	return 0;
}

/* group (top) and group.key (in) in lx; in is scanned only when the group
 * exists, and the group must be a group. */
static int locate(const struct lexed *lx, const char *group, const char *key,
		  struct scan *top, struct scan *in, struct sm_error *err)
{
	*top = (struct scan){.name = group};
	*in = (struct scan){.name = key};
	if (scan_settings(lx, 0, false, top, err) < 0)
		return -1;
	if (!top->found)
		return 0;
	if (!is_punct(lx, top->hit.value, '{'))
		return error_set(err, EX_CONFIG,
				 "line %u: %s is not a group { ... }; correct "
				 "the file by hand first",
				 tk(lx, top->hit.name)->line, group);
	return scan_settings(lx, top->hit.value + 1, true, in, err);
}

/* ---- values ------------------------------------------------------------ */

static bool name_ok(const char *s)
{
	if (s == NULL || !(isalpha((unsigned char)s[0]) || s[0] == '*'))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_*", *s) == NULL)
			return false;
	return true;
}

/* s as a libconfig string: quoted, '\' and '"' escaped; control
 * characters refused (a line break would inject headers). */
static int quote_string(const struct confedit_change *c, char **out,
			struct sm_error *err)
{
	size_t n = 3;
	char *q;

	for (const char *s = c->str; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return error_set(err, EX_DATAERR,
					 "%s.%s: the value holds a line break "
					 "or another control character; only "
					 "printable characters can be saved",
					 c->group, c->key);
		n += (*s == '\\' || *s == '"') ? 2 : 1;
	}
	if ((*out = q = malloc(n)) == NULL)
		return no_memory(err);
	*q++ = '"';
	for (const char *s = c->str; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			*q++ = '\\';
		*q++ = *s;
	}
	*q++ = '"';
	*q = '\0';
	return 0;
}

/* The value of c as libconfig text (*out: caller frees, wiping it). */
static int format_value(const struct confedit_change *c, char **out,
			struct sm_error *err)
{
	int k = -1;

	*out = NULL;
	if (!name_ok(c->group) || !name_ok(c->key))
		return error_set(err, EX_SOFTWARE,
				 "confedit: \"%.64s.%.64s\" is not a setting "
				 "name",
				 c->group ? c->group : "",
				 c->key ? c->key : "");
	if (c->op == CE_REMOVE)
		return 0;
	if (c->op == CE_SET_STRING)
		return quote_string(c, out, err);
	if (c->op == CE_SET_BOOL)
		k = asprintf(out, "%s", c->flag ? "true" : "false");
	else if (c->num >= INT32_MIN && c->num <= INT32_MAX)
		k = asprintf(out, "%lld", c->num);
	else
		k = asprintf(out, "%lldL", c->num);
	if (k < 0) {
		*out = NULL;
		return no_memory(err);
	}
	return 0;
}

/* ---- splicing ---------------------------------------------------------- */

/* Replace b[off..off+del) by ins. */
static int replace_at(struct buf *b, size_t off, size_t del, const char *ins,
		      struct sm_error *err)
{
	size_t inslen = strlen(ins), n = b->len - del + inslen;
	char *p = malloc(n + 1);

	if (p == NULL)
		return no_memory(err);
	memcpy(p, b->p, off);
	memcpy(p + off, ins, inslen);
	memcpy(p + off + inslen, b->p + off + del, b->len - off - del);
	p[n] = '\0';
	wipe_free(b->p, b->len);
	b->p = p;
	b->len = n;
	return 0;
}

/* Splice a formatted insertion (wiped after use). */
static int replace_fmt(struct buf *b, size_t off, size_t del,
		       struct sm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int replace_fmt(struct buf *b, size_t off, size_t del,
		       struct sm_error *err, const char *fmt, ...)
{
	char *ins = NULL;
	va_list ap;
	int k, rc;

	va_start(ap, fmt);
	k = vasprintf(&ins, fmt, ap);
	va_end(ap);
	if (k < 0)
		return no_memory(err);
	rc = replace_at(b, off, del, ins, err);
	wipe_free(ins, (size_t)k);
	return rc;
}

/* "\r\n" when the text's first line ends so, else "\n". */
static const char *eol_of(const char *t, size_t len)
{
	size_t e = line_end(t, len, 0);

	return e > 0 && e < len && t[e - 1] == '\r' ? "\r\n" : "\n";
}

/* The offset where the line holding p starts. */
static size_t line_start(const char *t, size_t p)
{
	while (p > 0 && t[p - 1] != '\n')
		p--;
	return p;
}

/* Whether t[from..to) holds only spaces and tabs. */
static bool blank(const char *t, size_t from, size_t to)
{
	for (; from < to; from++)
		if (t[from] != ' ' && t[from] != '\t')
			return false;
	return true;
}

/* Past the '\n' ending the line at p when only blanks and comments
 * follow p on it, else NONE. */
static size_t after_line(const char *t, size_t len, size_t p)
{
	while (p < len) {
		if (t[p] == ' ' || t[p] == '\t' || t[p] == '\r') {
			p++;
		} else if (t[p] == '\n') {
			return p + 1;
		} else if (t[p] == '#' ||
			   (t[p] == '/' && p + 1 < len && t[p + 1] == '/')) {
			p = line_end(t, len, p);
		} else if (t[p] == '/' && p + 1 < len && t[p + 1] == '*') {
			const char *e = strstr(t + p + 2, "*/");

			if (e == NULL ||
			    memchr(t + p, '\n', (size_t)(e - t) - p) != NULL)
				return NONE;
			p = (size_t)(e - t) + 2;
		} else {
			return NONE;
		}
	}
	return NONE;
}

/* The leading blanks of the line holding offset p, at most 64 bytes. */
static void indent_of(const char *t, size_t p, char out[65])
{
	size_t s = line_start(t, p), n = 0;

	while (n < 64 && (t[s + n] == ' ' || t[s + n] == '\t'))
		n++;
	memcpy(out, t + s, n);
	out[n] = '\0';
}

/* The indentation for a new member of a group: that of the last member
 * when it starts its line, else the group's own plus INDENT_DEFAULT. */
static void member_indent(const struct lexed *lx, const struct scan *top,
			  const struct scan *in, char out[65])
{
	const char *t = lx->text;
	size_t used;

	if (in->any) {
		size_t off = tk(lx, in->last.name)->off;

		if (blank(t, line_start(t, off), off)) {
			indent_of(t, off, out);
			return;
		}
	}
	indent_of(t, tk(lx, top->hit.name)->off, out);
	used = strlen(out);
	if (used + sizeof INDENT_DEFAULT - 1 <= 64) /* with its NUL */
		memcpy(out + used, INDENT_DEFAULT, sizeof INDENT_DEFAULT);
}

/* ---- edits ------------------------------------------------------------- */

/* group = { key = value; }; at the end of the text. */
static int append_group(struct buf *b, const struct confedit_change *c,
			const char *val, struct sm_error *err)
{
	const char *eol = eol_of(b->p, b->len);
	bool need_eol = b->len > 0 && b->p[b->len - 1] != '\n';

	return replace_fmt(b, b->len, 0, err, "%s%s%s = {%s%s%s = %s;%s};%s",
			   need_eol ? eol : "", b->len > 0 ? eol : "", c->group,
			   eol, INDENT_DEFAULT, c->key, val, eol, eol);
}

/* key = value; as a new member of the group (after its last member). */
static int insert_member(struct buf *b, const struct lexed *lx,
			 const struct scan *top, const struct scan *in,
			 const char *key, const char *val, struct sm_error *err)
{
	const char *t = b->p, *eol = eol_of(b->p, b->len);
	char indent[65];
	size_t at, close = tk(lx, in->close)->off;

	member_indent(lx, top, in, indent);
	if (in->any) {
		size_t p = tok_end(lx, in->last.end - 1);

		if ((at = after_line(t, b->len, p)) == NONE)
			return replace_fmt(b, p, 0, err, " %s = %s;", key, val);
		return replace_fmt(b, at, 0, err, "%s%s = %s;%s", indent, key,
				   val, eol);
	}
	at = line_start(t, close);
	if (blank(t, at, close))
		return replace_fmt(b, at, 0, err, "%s%s = %s;%s", indent, key,
				   val, eol);
	return replace_fmt(b, close, 0, err, "%s%s = %s; ",
			   close > 0 && t[close - 1] == ' ' ? "" : " ", key,
			   val);
}

/* Remove a setting; its line too when nothing else is left on it. */
static int remove_member(struct buf *b, const struct lexed *lx,
			 const struct span *s, struct sm_error *err)
{
	const char *t = b->p;
	size_t from = tk(lx, s->name)->off, to = tok_end(lx, s->end - 1);
	size_t ls = line_start(t, from), e = to;

	while (e < b->len && (t[e] == ' ' || t[e] == '\t' || t[e] == '\r'))
		e++;
	if (blank(t, ls, from) && (e == b->len || t[e] == '\n'))
		return replace_at(b, ls, e - ls + (e < b->len), "", err);
	return replace_at(b, from, to - from, "", err);
}

/* Replace the value of s by val; a comment after it on the same line
 * keeps its column when the blanks before it allow. */
static int replace_value(struct buf *b, const struct lexed *lx,
			 const struct span *s, const char *val,
			 struct sm_error *err)
{
	size_t from = tk(lx, s->value)->off, to = tok_end(lx, s->value_end - 1);
	size_t end = tok_end(lx, s->end - 1), w = 0, old = to - from;
	size_t len = strlen(val);
	const char *t = b->p;

	while (end + w < b->len && t[end + w] == ' ')
		w++;
	if (w == 0 || end + w == b->len ||
	    (t[end + w] != '#' && t[end + w] != '/') ||
	    (len > old && w <= len - old))
		return replace_at(b, from, old, val, err);
	if (len > old && replace_at(b, end, len - old, "", err) < 0)
		return -1;
	if (len < old &&
	    replace_fmt(b, end, 0, err, "%*s", (int)(old - len), "") < 0)
		return -1;
	return replace_at(b, from, old, val, err);
}

/* Change c at the place top and in found (val: its formatted value). */
static int edit(struct buf *b, const struct lexed *lx, const struct scan *top,
		const struct scan *in, const struct confedit_change *c,
		const char *val, struct sm_error *err)
{
	if (c->op == CE_REMOVE)
		return in->found ? remove_member(b, lx, &in->hit, err) : 0;
	if (!top->found)
		return append_group(b, c, val, err);
	if (!in->found)
		return insert_member(b, lx, top, in, c->key, val, err);
	return replace_value(b, lx, &in->hit, val, err);
}

/* Apply one change to b. */
static int apply_one(struct buf *b, const struct confedit_change *c,
		     struct sm_error *err)
{
	struct lexed lx = {0};
	struct scan top, in;
	char *val = NULL;
	int rc;

	if (format_value(c, &val, err) < 0)
		return -1;
	rc = lex(b->p, b->len, &lx, err);
	if (rc == 0)
		rc = locate(&lx, c->group, c->key, &top, &in, err);
	if (rc == 0)
		rc = edit(b, &lx, &top, &in, c, val, err);
	free(lx.v);
	if (val != NULL)
		wipe_free(val, strlen(val));
	return rc;
}

int confedit_text(const char *text, size_t len, const struct confedit_change *c,
		  size_t n, char **out, size_t *outlen, struct sm_error *err)
{
	struct buf b = {malloc(len + 1), len};

	*out = NULL;
	*outlen = 0;
	if (b.p == NULL)
		return no_memory(err);
	memcpy(b.p, text, len);
	b.p[len] = '\0';
	for (size_t i = 0; i < n; i++)
		if (apply_one(&b, &c[i], err) < 0) {
			wipe_free(b.p, b.len);
			return -1;
		}
	*out = b.p;
	*outlen = b.len;
	return 0;
}

/* ---- reading a value --------------------------------------------------- */

/* One escape at s[0] == '\\' into *q; returns the bytes consumed. */
static size_t unescape(const char *s, size_t avail, char *q)
{
	static const char from[] = "nrtf\\\"", to[] = "\n\r\t\f\\\"";
	const char *k = avail > 1 && s[1] != '\0' ? strchr(from, s[1]) : NULL;

	if (k != NULL) {
		*q = to[k - from];
		return 2;
	}
	if (avail > 3 && (s[1] == 'x' || s[1] == 'X') &&
	    isxdigit((unsigned char)s[2]) && isxdigit((unsigned char)s[3])) {
		char hex[3] = {s[2], s[3], '\0'};

		*q = (char)strtol(hex, NULL, 16);
		return 4;
	}
	*q = '\\';
	return 1;
}

/* The content of the strings lx[from..to) unescaped and joined. */
static char *string_value(const struct lexed *lx, size_t from, size_t to)
{
	size_t n = 1;
	char *out, *q;

	for (size_t i = from; i < to; i++)
		n += tk(lx, i)->len;
	if ((out = q = malloc(n)) == NULL)
		return NULL;
	for (size_t i = from; i < to; i++) {
		const char *s = lx->text + tk(lx, i)->off + 1;
		size_t left = tk(lx, i)->len - 2;

		while (left > 0) {
			size_t k = 1;

			if (*s == '\\')
				k = unescape(s, left, q);
			else
				*q = *s;
			q++;
			s += k;
			left -= k;
		}
	}
	*q = '\0';
	return out;
}

int confedit_get(const char *text, size_t len, const char *group,
		 const char *key, char **out, struct sm_error *err)
{
	struct lexed lx = {0};
	struct scan top, in;
	int rc;

	*out = NULL;
	rc = lex(text, len, &lx, err);
	if (rc == 0)
		rc = locate(&lx, group, key, &top, &in, err);
	if (rc == 0 && in.found) {
		size_t v = in.hit.value, ve = in.hit.value_end;

		if (tk(&lx, v)->kind == T_STRING)
			*out = string_value(&lx, v, ve);
		else
			*out = strndup(text + tk(&lx, v)->off,
				       tok_end(&lx, ve - 1) - tk(&lx, v)->off);
		if (*out == NULL)
			rc = no_memory(err);
	}
	free(lx.v);
	return rc;
}

/* ---- files ------------------------------------------------------------- */

static int cannot(struct sm_error *err, const char *path, const char *what,
		  int e)
{
	char q[512];

	error_printable(q, sizeof q, path, strlen(path));
	return error_set(err,
			 e == EACCES || e == EPERM ? EX_NOPERM
			 : e == ENOSPC || e == EIO ? EX_IOERR
						   : EX_CONFIG,
			 "%s: cannot %s: %s%s", q, what, strerror(e),
			 e == ENOENT ? "; create it first from the sample "
				       "switchmail.conf, or pass -C FILE"
				     : "");
}

/* All of fd (size bytes expected) into a new buffer. */
static int read_all(int fd, size_t size, char **text, size_t *len)
{
	char *p = malloc(size + 1);
	size_t n = 0;

	if (p == NULL)
		return -1;
	while (n < size) {
		ssize_t k = read(fd, p + n, size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	p[n] = '\0';
	*text = p;
	*len = n;
	return 0;
}

int confedit_read(const char *path, char **text, size_t *len,
		  struct sm_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc;

	*text = NULL;
	*len = 0;
	if (fd < 0)
		return cannot(err, path, "read it", errno);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > EDIT_FILE_MAX) {
		close(fd);
		return error_set(err, EX_CONFIG,
				 "%s: not a regular file of at most %ld bytes",
				 path, EDIT_FILE_MAX);
	}
	rc = read_all(fd, (size_t)st.st_size, text, len);
	close(fd);
	return rc == 0 ? 0 : no_memory(err);
}

/* ---- the atomic replacement -------------------------------------------- */

/* One edit of one file. */
struct edit {
	char real[PATH_MAX]; /* the file edited (symbolic links followed) */
	char tmp[PATH_MAX + 32];
	struct stat st; /* the original */
	int fd;		/* the temporary file */
};

/* Write text into fd and make it durable. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return fsync(fd);
}

/* The temporary file beside the original, with its owner and mode. */
static int create_tmp(struct edit *ed, bool secret, struct sm_error *err)
{
	mode_t mode = ed->st.st_mode & 07777;
	char *slash = strrchr(ed->real, '/');
	struct stat now;

	snprintf(ed->tmp, sizeof ed->tmp, "%.*s/.%s.XXXXXX",
		 (int)(slash - ed->real), ed->real, slash + 1);
	if ((ed->fd = mkostemp(ed->tmp, O_CLOEXEC)) < 0) {
		int e = errno;

		ed->tmp[0] = '\0';
		return cannot(err, ed->real,
			      "create a temporary file beside it", e);
	}
	if (secret)
		mode = (mode & 0640) | 0600;
	if (fstat(ed->fd, &now) != 0 ||
	    ((now.st_uid != ed->st.st_uid || now.st_gid != ed->st.st_gid) &&
	     fchown(ed->fd, ed->st.st_uid, ed->st.st_gid) != 0) ||
	    fchmod(ed->fd, mode) != 0)
		return error_set(err, EX_NOPERM,
				 "%s: cannot keep its owner %u:%u and mode "
				 "%04o: %s; run as root (or as its owner)",
				 ed->real, (unsigned)ed->st.st_uid,
				 (unsigned)ed->st.st_gid, (unsigned)mode,
				 strerror(errno));
	return 0;
}

/* Replace prefix from of *s by to (messages about the temporary file
 * name the real one). */
static void retarget(char **s, const char *from, const char *to)
{
	size_t n = strlen(from);
	char *r = NULL;

	if (*s == NULL || strncmp(*s, from, n) != 0 ||
	    asprintf(&r, "%s%s", to, *s + n) < 0)
		return;
	free(*s);
	*s = r;
}

/* Load the temporary file, then the caller's check. */
static int validate(struct edit *ed, const struct confedit_opts *o,
		    struct sm_error *err)
{
	struct config cfg;
	struct sm_error lerr;
	int rc;

	if (config_load(ed->tmp, &cfg, &lerr) != 0) {
		char *msg = strdup(lerr.msg);

		retarget(&msg, ed->tmp, ed->real);
		error_set(err, lerr.code,
			  "the edited file would not load, nothing was "
			  "changed: %s",
			  msg ? msg : lerr.msg);
		free(msg);
		return -1;
	}
	retarget(&cfg.path, ed->tmp, ed->real);
	for (size_t i = 0; i < cfg.nwarnings; i++)
		retarget(&cfg.warnings[i], ed->tmp, ed->real);
	rc = o != NULL && o->check != NULL ? o->check(&cfg, o->arg, err) : 0;
	config_free(&cfg);
	return rc;
}

/* The original must be as it was read: nobody edited it meanwhile. */
static int unchanged(const struct edit *ed, struct sm_error *err)
{
	struct stat now;

	if (stat(ed->real, &now) == 0 && now.st_ino == ed->st.st_ino &&
	    now.st_size == ed->st.st_size &&
	    now.st_mtim.tv_sec == ed->st.st_mtim.tv_sec &&
	    now.st_mtim.tv_nsec == ed->st.st_mtim.tv_nsec)
		return 0;
	return error_set(err, EX_TEMPFAIL,
			 "%s changed while it was being edited; nothing was "
			 "saved, try again",
			 ed->real);
}

/* Rename the temporary file over the original, fsync the directory. */
static int commit(struct edit *ed, struct sm_error *err)
{
	char *slash = strrchr(ed->real, '/');
	char dir[PATH_MAX];
	int dfd;

	if (rename(ed->tmp, ed->real) != 0)
		return cannot(err, ed->real, "replace it", errno);
	ed->tmp[0] = '\0';
	snprintf(dir, sizeof dir, "%.*s",
		 slash == ed->real ? 1 : (int)(slash - ed->real), ed->real);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Read the original and write the edited text into the temporary file. */
static int prepare(struct edit *ed, const char *path,
		   const struct confedit_change *c, size_t n, bool secret,
		   struct sm_error *err)
{
	char *text = NULL, *out = NULL;
	size_t len = 0, outlen = 0;
	int rc;

	if (realpath(path, ed->real) == NULL)
		return cannot(err, path, "read it", errno);
	if (stat(ed->real, &ed->st) != 0)
		return cannot(err, ed->real, "read it", errno);
	if (confedit_read(ed->real, &text, &len, err) < 0)
		return -1;
	rc = confedit_text(text, len, c, n, &out, &outlen, err);
	if (rc < 0 && strncmp(err->msg, "line ", 5) == 0) {
		char msg[SM_ERROR_MAX];

		snprintf(msg, sizeof msg, "%s", err->msg);
		error_set(err, err->code, "%s: %s", ed->real, msg);
	}
	wipe_free(text, len);
	if (rc == 0 && (rc = create_tmp(ed, secret, err)) == 0 &&
	    write_all(ed->fd, out, outlen) != 0)
		rc = cannot(err, ed->tmp, "write it", errno);
	if (out != NULL)
		wipe_free(out, outlen);
	return rc;
}

int confedit_file(const char *path, const struct confedit_change *c, size_t n,
		  const struct confedit_opts *o, struct sm_error *err)
{
	struct edit ed = {.fd = -1};
	int rc;

	error_clear(err);
	rc = prepare(&ed, path, c, n, o != NULL && o->secret, err);
	if (ed.fd >= 0)
		close(ed.fd);
	if (rc == 0)
		rc = validate(&ed, o, err);
	if (rc == 0)
		rc = unchanged(&ed, err);
	if (rc == 0)
		rc = commit(&ed, err);
	if (ed.tmp[0] != '\0') /* created, not renamed */
		unlink(ed.tmp);
	return rc;
}
