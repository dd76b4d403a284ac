/*
 * address.c - RFC 5322 address lists, envelope address validation, aliases,
 * default domain and sender patterns (contract in address.h).
 *
 * A list is parsed in two passes over the caller's bytes.  The lexer turns
 * text[0..len) into tokens (atoms, quoted strings, domain literals and the
 * specials < > @ , : ;), drops folding whitespace and comments, and keeps
 * the first comment directly after each token ("root (Cron Daemon)").  The
 * parser then walks the tokens for groups, angle addresses with obsolete
 * routes, and bare addr-specs.  Every address is rebuilt from its tokens and
 * passes address_valid() before it reaches a list.  Nothing here does I/O,
 * prints or exits; each failure fills the caller's struct sm_error.
 */
#include "address.h"

#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALIAS_DEPTH_MAX 8      /* alias levels one name may expand through */
#define ALIAS_WORK_MAX	100000 /* names one address_resolve() may visit */
#define EXCERPT_MAX	64     /* octets of hostile text quoted in a message */
#define EXCERPT_BUF	(EXCERPT_MAX * 4 + 4) /* its printable form, plus "..." */

#define ANGLE_UNTERMINATED "has an unterminated < (missing >)"
#define AFTER_ADDRESS	   " after an address"
#define AFTER_WORD	   " after an address (a display name goes before <address>)"
#define AFTER_SEMI	   " (separate addresses with ,)"

enum tok_type { TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_SPECIAL };

struct token {
	enum tok_type type;
	size_t start, end; /* raw span in the input */
	char *val;	   /* quoted: unescaped, unfolded; literal: "[...]" */
	char *comment;	   /* first comment directly after it, squeezed */
	bool space_before; /* whitespace or a comment precedes it */
};

struct parse {
	const char *text;
	size_t len;
	size_t pos;   /* lexer: next input octet */
	size_t entry; /* where the entry being read starts, for messages */
	struct token *t;
	size_t n, cap;
	size_t i; /* parser: next token */
	struct addrlist *out;
	struct sm_error *err;
};

/* A growable NUL-terminated string for text rebuilt from tokens. */
struct sbuf {
	char *p;
	size_t n, cap;
};

/* Append s[0..len) to b, keeping it NUL-terminated; -1 when out of memory. */
static int sbuf_put(struct sbuf *b, const char *s, size_t len)
{
	size_t cap = b->cap ? b->cap : 32;
	char *p;

	if (len > SIZE_MAX / 2 - b->n)
		return -1;
	if (b->n + len + 1 > b->cap) {
		while (cap < b->n + len + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
	return 0;
}

/* Fill err for an allocation failure; always returns -1. */
static int oom(struct sm_error *err)
{
	return error_set(err, EX_OSERR,
			 "out of memory while handling addresses");
}

/* A private copy of s, or NULL when out of memory. */
static char *dupstr(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* WSP: a space or a tab. */
static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* A C0 control or DEL (tab included: callers allow it only as WSP). */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* RFC 5322 atext plus '.', so dot-atoms and obs-phrase are one token; octets
 * >= 0x80 pass for UTF-8 names and SMTPUTF8/IDN addresses. */
static bool is_atom_char(unsigned char c)
{
	return c >= 0x80 ||
	       (c > 0x20 && c != 0x7f && strchr("()<>[]:;@\\,\"", c) == NULL);
}

/* The "why" phrase for a control character c. */
static const char *ctl_phrase(unsigned char c)
{
	if (c == '\0')
		return "contains a NUL byte";
	if (c == '\r' || c == '\n')
		return "contains a line break";
	return "contains a control character";
}

/* Write s[0..len) into dst[EXCERPT_BUF] as printable text for a message,
 * cut at EXCERPT_MAX octets (on a UTF-8 boundary) with "..." appended. */
static void excerpt(char *dst, const char *s, size_t len)
{
	size_t cut = len;

	if (cut > EXCERPT_MAX) {
		cut = EXCERPT_MAX;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
	error_printable(dst, EXCERPT_BUF - 3, s, cut); /* room for "..." */
	if (cut < len)
		memcpy(dst + strlen(dst), "...", sizeof "...");
}

/* Excerpt of the input from the start of the current entry. */
static void entry_excerpt(const struct parse *p, char *dst)
{
	size_t from = p->entry;

	while (from < p->len && is_wsp((unsigned char)p->text[from]))
		from++;
	excerpt(dst, p->text + from, p->len - from);
}

/* Fill err with a syntax error in the current entry; returns -1. */
static int list_fail(const struct parse *p, const char *what)
{
	char ex[EXCERPT_BUF];

	entry_excerpt(p, ex);
	return error_set(p->err, EX_DATAERR, "address list \"%s\" %s", ex,
			 what);
}

/* Fill err for token k (or the end of input) where it does not belong. */
static int unexpected(const struct parse *p, size_t k, const char *hint)
{
	char ex[EXCERPT_BUF], tok[EXCERPT_BUF];
	const struct token *t;

	if (k >= p->n)
		return list_fail(p, "ends unexpectedly");
	t = &p->t[k];
	entry_excerpt(p, ex);
	excerpt(tok, p->text + t->start, t->end - t->start);
	return error_set(p->err, EX_DATAERR,
			 "address list \"%s\" has unexpected \"%s\"%s", ex, tok,
			 hint ? hint : "");
}

/* Collapse runs of spaces and tabs in s to one space and trim both ends. */
static void squeeze(char *s)
{
	char *d = s, *start = s;
	bool space = false;

	for (; *s != '\0'; s++) {
		if (is_wsp((unsigned char)*s)) {
			space = d != start;
			continue;
		}
		if (space)
			*d++ = ' ';
		space = false;
		*d++ = *s;
	}
	*d = '\0';
}

/* Consume a line break at p->pos: only CRLF or LF followed by a space or tab
 * (folding) or ending the text (a header field's terminator) is whitespace;
 * any other CR or LF is an injection attempt. */
static int lex_fold(struct parse *p)
{
	size_t q = p->pos;

	if (p->text[q] == '\r' && q + 1 < p->len && p->text[q + 1] == '\n')
		q++;
	if (p->text[q] == '\n' &&
	    (q + 1 == p->len || is_wsp((unsigned char)p->text[q + 1]))) {
		p->pos = q + 1;
		return 0;
	}
	return list_fail(p, "contains a line break");
}

/* Consume one unit of quoted-string, comment or domain-literal content into
 * b: a quoted-pair, a plain octet, or a folded line break (dropped).  A
 * backslash at the very end consumes everything (the caller then reports
 * the construct as unterminated). */
static int lex_content(struct parse *p, struct sbuf *b)
{
	unsigned char c = (unsigned char)p->text[p->pos];

	if (c == '\r' || c == '\n')
		return lex_fold(p);
	if (c == '\\') {
		if (p->pos + 1 >= p->len) {
			p->pos = p->len;
			return 0;
		}
		c = (unsigned char)p->text[++p->pos];
	}
	if (is_ctl(c) && c != '\t')
		return list_fail(p, ctl_phrase(c));
	p->pos++;
	return sbuf_put(b, (const char *)&c, 1) < 0 ? oom(p->err) : 0;
}

/* Consume open ... close at p->pos into b (content only), nesting when
 * asked (comments); "unterminated" names the error at end of input. */
static int lex_enclosed(struct parse *p, char open, char close, bool nest,
			struct sbuf *b, const char *unterminated)
{
	size_t depth = 1;

	if (sbuf_put(b, "", 0) < 0)
		return oom(p->err);
	p->pos++;
	while (p->pos < p->len) {
		char c = p->text[p->pos];

		if (c == close && --depth == 0) {
			p->pos++;
			return 0;
		}
		if (nest && c == open)
			depth++;
		if (lex_content(p, b) < 0)
			return -1;
	}
	return list_fail(p, unterminated);
}

/* Consume a comment and keep it on the token just before it, if that token
 * has none yet: it may become the display name of a bare address. */
static int lex_comment(struct parse *p)
{
	struct sbuf b = {0};
	struct token *t = p->n > 0 ? &p->t[p->n - 1] : NULL;

	if (lex_enclosed(p, '(', ')', true, &b, "has an unterminated comment") <
	    0) {
		free(b.p);
		return -1;
	}
	if (t != NULL && t->comment == NULL) {
		squeeze(b.p);
		t->comment = b.p;
		return 0;
	}
	free(b.p);
	return 0;
}

/* Start a token of the given type at p->pos; NULL when out of memory. */
static struct token *tok_new(struct parse *p, enum tok_type type, bool space)
{
	struct token *t;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;

		if (cap > SIZE_MAX / sizeof *t)
			return NULL;
		t = realloc(p->t, cap * sizeof *t);
		if (t == NULL)
			return NULL;
		p->t = t;
		p->cap = cap;
	}
	t = &p->t[p->n++];
	memset(t, 0, sizeof *t);
	t->type = type;
	t->start = p->pos;
	t->space_before = space;
	return t;
}

/* The token type an octet starts. */
static enum tok_type tok_type_of(char c)
{
	if (c == '"')
		return TOK_QUOTED;
	if (c == '[')
		return TOK_LITERAL;
	if (strchr("<>@,:;", c) != NULL)
		return TOK_SPECIAL;
	return TOK_ATOM;
}

/* Consume the body of token t (already created at p->pos). */
static int lex_body(struct parse *p, struct token *t)
{
	struct sbuf b = {0};
	int r = 0;

	if (t->type == TOK_SPECIAL) {
		if (p->text[p->pos++] == ',')
			p->entry = p->pos;
	} else if (t->type == TOK_ATOM) {
		while (p->pos < p->len &&
		       is_atom_char((unsigned char)p->text[p->pos]))
			p->pos++;
	} else if (t->type == TOK_QUOTED) {
		r = lex_enclosed(p, '"', '"', false, &b,
				 "has an unterminated quoted string");
	} else {
		r = sbuf_put(&b, "[", 1) < 0 ? oom(p->err) : 0;
		if (r == 0)
			r = lex_enclosed(p, '[', ']', false, &b,
					 "has an unterminated domain literal");
		if (r == 0 && sbuf_put(&b, "]", 1) < 0)
			r = oom(p->err);
	}
	t->val = b.p;
	t->end = p->pos;
	return r;
}

/* Consume one token at p->pos; space tells whether CFWS preceded it. */
static int lex_token(struct parse *p, bool space)
{
	unsigned char c = (unsigned char)p->text[p->pos];
	struct token *t;

	if (c == ')')
		return list_fail(p, "has an unmatched )");
	if (c == ']')
		return list_fail(p, "has an unmatched ]");
	if (c == '\\')
		return list_fail(p, "has a backslash outside a quoted string");
	if (is_ctl(c))
		return list_fail(p, ctl_phrase(c));
	t = tok_new(p, tok_type_of((char)c), space);
	if (t == NULL)
		return oom(p->err);
	return lex_body(p, t);
}

/* Split text[0..len) into tokens, dropping CFWS. */
static int lex_all(struct parse *p)
{
	bool space = false;

	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->text[p->pos];
		int r;

		if (is_wsp(c)) {
			p->pos++;
			r = 0;
		} else if (c == '\r' || c == '\n') {
			r = lex_fold(p);
		} else if (c == '(') {
			r = lex_comment(p);
		} else {
			r = lex_token(p, space);
			if (r == 0)
				space = false;
			if (r < 0)
				return -1;
			continue;
		}
		if (r < 0)
			return -1;
		space = true;
	}
	return 0;
}

/* Release the tokens. */
static void tokens_free(struct parse *p)
{
	for (size_t k = 0; k < p->n; k++) {
		free(p->t[k].val);
		free(p->t[k].comment);
	}
	free(p->t);
	p->t = NULL;
	p->n = p->cap = 0;
}

/* Whether token k is the special c. */
static bool is_sp(const struct parse *p, size_t k, char c)
{
	return k < p->n && p->t[k].type == TOK_SPECIAL &&
	       p->text[p->t[k].start] == c;
}

/* Whether token k can be part of an addr-spec or a phrase: a word, a domain
 * literal or '@' (accepted in phrases for "a@x <a@x>" sent by real MUAs). */
static bool is_word(const struct parse *p, size_t k)
{
	return k < p->n && (p->t[k].type != TOK_SPECIAL || is_sp(p, k, '@'));
}

/* Whether tokens a and b (b after CFWS) still belong to one addr-spec:
 * RFC 5322 allows CFWS only around '@' and '.'. */
static bool joinable(const struct parse *p, size_t a, size_t b)
{
	return is_sp(p, a, '@') || is_sp(p, b, '@') ||
	       p->text[p->t[a].end - 1] == '.' || p->text[p->t[b].start] == '.';
}

/* Append token k to an address being rebuilt: a quoted string is quoted
 * again with only '"' and '\' escaped, so "john doe"@x stays quoted. */
static int put_addr_token(const struct parse *p, size_t k, struct sbuf *b)
{
	const struct token *t = &p->t[k];

	if (t->type == TOK_LITERAL)
		return sbuf_put(b, t->val, strlen(t->val));
	if (t->type != TOK_QUOTED)
		return sbuf_put(b, p->text + t->start, t->end - t->start);
	if (sbuf_put(b, "\"", 1) < 0)
		return -1;
	for (const char *s = t->val; *s != '\0'; s++) {
		if ((*s == '"' || *s == '\\') && sbuf_put(b, "\\", 1) < 0)
			return -1;
		if (sbuf_put(b, s, 1) < 0)
			return -1;
	}
	return sbuf_put(b, "\"", 1);
}

/* Rebuild the addr-spec at token p->i into b and leave p->i after it. */
static int read_addr_spec(struct parse *p, struct sbuf *b)
{
	size_t start = p->i;

	if (sbuf_put(b, "", 0) < 0)
		return oom(p->err);
	while (is_word(p, p->i)) {
		if (p->i > start && p->t[p->i].space_before &&
		    !joinable(p, p->i - 1, p->i))
			break;
		if (put_addr_token(p, p->i, b) < 0)
			return oom(p->err);
		p->i++;
	}
	if (p->i == start)
		return unexpected(p, p->i, NULL);
	return 0;
}

/* Rebuild the display name from phrase tokens [from, to) into b: quoted
 * strings unquoted, words joined by one space where CFWS separated them. */
static int read_phrase(const struct parse *p, size_t from, size_t to,
		       struct sbuf *b)
{
	if (sbuf_put(b, "", 0) < 0)
		return oom(p->err);
	for (size_t k = from; k < to; k++) {
		const struct token *t = &p->t[k];
		int r = 0;

		if (k > from && t->space_before)
			r = sbuf_put(b, " ", 1);
		if (r == 0 && t->val != NULL)
			r = sbuf_put(b, t->val, strlen(t->val));
		else if (r == 0)
			r = sbuf_put(b, p->text + t->start, t->end - t->start);
		if (r < 0)
			return oom(p->err);
	}
	squeeze(b->p);
	return 0;
}

/* Check addr and append it with display (NULL or "" for none) to the list. */
static int emit(struct parse *p, const char *addr, const char *display)
{
	char ex[EXCERPT_BUF];
	const char *why;

	if (!address_valid(addr, &why)) {
		excerpt(ex, addr, strlen(addr));
		return error_set(p->err, EX_DATAERR, "address \"%s\" %s", ex,
				 why);
	}
	if (display != NULL && display[0] == '\0')
		display = NULL;
	return addrlist_add(p->out, addr, display, p->err);
}

/* Skip an obsolete source route "@a,@b:" right after '<': only the final
 * addr-spec is kept (RFC 5322 section 4.4). */
static int skip_route(struct parse *p)
{
	if (!is_sp(p, p->i, '@'))
		return 0;
	for (;;) {
		if (p->i >= p->n)
			return list_fail(p, ANGLE_UNTERMINATED);
		if (is_sp(p, p->i, ':')) {
			p->i++;
			return 0;
		}
		if (is_sp(p, p->i, ',')) {
			p->i++;
			continue;
		}
		if (!is_sp(p, p->i, '@'))
			return unexpected(p, p->i, " in a route");
		p->i++;
		if (!is_word(p, p->i) || is_sp(p, p->i, '@'))
			return unexpected(p, p->i, " in a route");
		while (is_word(p, p->i) && !is_sp(p, p->i, '@'))
			p->i++;
	}
}

/* Read "<" [route] addr-spec ">" at p->i into addr. */
static int read_angle(struct parse *p, struct sbuf *addr)
{
	p->i++;
	if (skip_route(p) < 0)
		return -1;
	if (p->i >= p->n)
		return list_fail(p, ANGLE_UNTERMINATED);
	if (is_sp(p, p->i, '>'))
		return list_fail(p, "has an empty address <>");
	if (read_addr_spec(p, addr) < 0)
		return -1;
	if (p->i >= p->n)
		return list_fail(p, ANGLE_UNTERMINATED);
	if (!is_sp(p, p->i, '>'))
		return unexpected(p, p->i, NULL);
	p->i++;
	return 0;
}

/* Parse [phrase] angle-addr where tokens [from, angle) are the phrase; with
 * no phrase, a comment right after '>' is the display name. */
static int parse_angle(struct parse *p, size_t from, size_t angle)
{
	struct sbuf addr = {0}, disp = {0};
	const char *display = NULL;
	int r;

	p->i = angle;
	r = read_angle(p, &addr);
	if (r == 0)
		r = read_phrase(p, from, angle, &disp);
	if (r == 0) {
		display = disp.p;
		if (from == angle)
			display = p->t[p->i - 1].comment;
		r = emit(p, addr.p, display);
	}
	free(addr.p);
	free(disp.p);
	return r;
}

/* Parse a bare addr-spec; a comment right after it is the display name. */
static int parse_bare(struct parse *p)
{
	struct sbuf b = {0};
	int r;

	if (!is_word(p, p->i))
		return unexpected(p, p->i,
				  is_sp(p, p->i, ';') ? AFTER_SEMI : NULL);
	r = read_addr_spec(p, &b);
	if (r == 0)
		r = emit(p, b.p, p->t[p->i - 1].comment);
	free(b.p);
	return r;
}

/* The hint for token k found where a ',' (or ';' in a group) was due. */
static const char *after_hint(const struct parse *p, size_t k)
{
	if (is_sp(p, k, ';'))
		return AFTER_SEMI;
	return is_word(p, k) ? AFTER_WORD : AFTER_ADDRESS;
}

static int parse_mailbox(struct parse *p, bool in_group);

/* Parse the members of a group whose ':' is token colon, through its ';'.
 * The group's name is not kept: only mailboxes reach the list. */
static int parse_group(struct parse *p, size_t colon)
{
	size_t entry = p->entry;

	p->i = colon + 1;
	for (;;) {
		if (p->i >= p->n) {
			p->entry = entry;
			return list_fail(p,
					 "has a group without its closing ;");
		}
		if (is_sp(p, p->i, ';')) {
			p->i++;
			return 0;
		}
		if (is_sp(p, p->i, ',')) {
			p->i++;
			continue;
		}
		if (parse_mailbox(p, true) < 0)
			return -1;
		if (p->i < p->n && !is_sp(p, p->i, ',') && !is_sp(p, p->i, ';'))
			return unexpected(p, p->i, after_hint(p, p->i));
	}
}

/* Parse one mailbox at p->i (or, outside a group, a whole group): look
 * ahead past the phrase for '<' (angle address) or ':' (group). */
static int parse_mailbox(struct parse *p, bool in_group)
{
	size_t k = p->i;

	p->entry = p->t[p->i].start;
	while (is_word(p, k))
		k++;
	if (is_sp(p, k, '<'))
		return parse_angle(p, p->i, k);
	if (is_sp(p, k, ':')) {
		if (in_group)
			return list_fail(p, "has a group inside a group");
		return parse_group(p, k);
	}
	return parse_bare(p);
}

/* Parse the whole token list; empty entries (",,", trailing ',') are
 * skipped as sendmail does. */
static int parse_list(struct parse *p)
{
	while (p->i < p->n) {
		if (is_sp(p, p->i, ',')) {
			p->i++;
			continue;
		}
		if (parse_mailbox(p, false) < 0)
			return -1;
		if (p->i < p->n && !is_sp(p, p->i, ','))
			return unexpected(p, p->i, after_hint(p, p->i));
	}
	return 0;
}

/* Lex everything first, then parse; the tokens never outlive the call. */
int address_list_parse(const char *text, size_t len, struct addrlist *out,
		       struct sm_error *err)
{
	struct parse p = {.text = text, .len = len, .out = out, .err = err};
	int r;

	if (out == NULL || (text == NULL && len > 0))
		return error_set(err, EX_SOFTWARE,
				 "address_list_parse: no text or no list");
	r = lex_all(&p);
	if (r == 0)
		r = parse_list(&p);
	tokens_free(&p);
	return r;
}

/* The first reason s has a line break or control character, or NULL. */
static const char *check_ctl(const char *s)
{
	const char *why = NULL;

	for (; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n')
			return ctl_phrase((unsigned char)*s);
		if (is_ctl((unsigned char)*s))
			why = ctl_phrase((unsigned char)*s);
	}
	return why;
}

/* Why s breaks the quoting, '<' '>', space or '@' rules, or NULL. */
static const char *check_syntax(const char *s)
{
	bool quoted = false;
	int ats = 0;

	for (; *s != '\0'; s++) {
		bool esc = quoted && *s == '\\' && s[1] != '\0';

		if (esc)
			s++;
		if (*s == '<' || *s == '>')
			return "contains < or >";
		if (esc)
			continue;
		if (*s == '"')
			quoted = !quoted;
		else if (*s == ' ' && !quoted)
			return "contains a space";
		else if (*s == '@' && !quoted && ++ats > 1)
			return "has more than one @";
	}
	return quoted ? "has an unterminated quoted string" : NULL;
}

/* Why domain d (non-empty) is unusable, or NULL: a domain literal is
 * "[...]" without brackets, backslashes or spaces inside; a name is letters,
 * digits, '-', '.' and UTF-8 octets (IDN). */
static const char *check_domain(const char *d)
{
	size_t n = strlen(d);

	if (d[0] == '[') {
		if (n < 3 || d[n - 1] != ']' ||
		    strcspn(d + 1, "[]\\ ") != n - 2)
			return "has a malformed domain literal";
		return NULL;
	}
	for (; *d != '\0'; d++) {
		unsigned char c = (unsigned char)*d;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      c >= 0x80))
			return "has an invalid character in the domain";
	}
	return NULL;
}

/* Why addr is not a usable envelope address, or NULL. */
static const char *invalid_why(const char *addr)
{
	const char *why, *domain;

	if (addr == NULL || addr[0] == '\0')
		return "is empty";
	if ((why = check_ctl(addr)) != NULL)
		return why;
	if (strlen(addr) > ADDRESS_MAX)
		return "is longer than 254 octets";
	if ((why = check_syntax(addr)) != NULL)
		return why;
	domain = address_domain(addr);
	if (domain == NULL)
		return NULL;
	if (domain - 1 == addr)
		return "has an empty local part";
	if (domain[0] == '\0')
		return "has an empty domain";
	return check_domain(domain);
}

/* The one check every envelope address passes (STYLE section 10). */
bool address_valid(const char *addr, const char **why)
{
	const char *w = invalid_why(addr);

	if (w != NULL && why != NULL)
		*why = w;
	return w == NULL;
}

/* The last unquoted '@' splits local part and domain ("a@b"@x: a@b, x). */
const char *address_domain(const char *addr)
{
	const char *at = NULL;
	bool quoted = false;

	if (addr == NULL)
		return NULL;
	for (const char *s = addr; *s != '\0'; s++) {
		if (quoted && *s == '\\' && s[1] != '\0') {
			s++;
			continue;
		}
		if (*s == '"')
			quoted = !quoted;
		else if (*s == '@' && !quoted)
			at = s;
	}
	return at != NULL ? at + 1 : NULL;
}

/* Whether list holds addr: local part exact, domain case-insensitive. */
static bool addrlist_has(const struct addrlist *list, const char *addr)
{
	const char *domain = address_domain(addr);
	size_t local = domain ? (size_t)(domain - 1 - addr) : strlen(addr);

	for (size_t k = 0; k < list->n; k++) {
		const char *e = list->v[k].addr;

		if (strncmp(e, addr, local) != 0)
			continue;
		if (domain == NULL ? e[local] == '\0'
				   : e[local] == '@' &&
					 strcasecmp(e + local + 1, domain) == 0)
			return true;
	}
	return false;
}

/* Dedup before the limit check: a duplicate of a full list is no error. */
int addrlist_add(struct addrlist *list, const char *addr, const char *display,
		 struct sm_error *err)
{
	struct address a = {0};

	if (list == NULL || addr == NULL)
		return error_set(err, EX_SOFTWARE, "addrlist_add: no list");
	if (addrlist_has(list, addr))
		return 0;
	if (list->n >= ADDRESS_LIST_MAX)
		return error_set(err, EX_DATAERR,
				 "address list has more than %d addresses",
				 ADDRESS_LIST_MAX);
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		struct address *v = realloc(list->v, cap * sizeof *v);

		if (v == NULL)
			return oom(err);
		list->v = v;
		list->cap = cap;
	}
	a.addr = dupstr(addr);
	a.display = display ? dupstr(display) : NULL;
	if (a.addr == NULL || (display != NULL && a.display == NULL)) {
		free(a.addr);
		free(a.display);
		return oom(err);
	}
	list->v[list->n++] = a;
	return 0;
}

/* Destructor; accepts NULL (STYLE section 8). */
void addrlist_free(struct addrlist *list)
{
	if (list == NULL)
		return;
	for (size_t k = 0; k < list->n; k++) {
		free(list->v[k].addr);
		free(list->v[k].display);
	}
	free(list->v);
	list->v = NULL;
	list->n = list->cap = 0;
}

/* State of one address_resolve(): the chain of aliases being expanded (for
 * loop and depth checks) and the list being built. */
struct resolve {
	const struct alias_entry *aliases;
	size_t naliases;
	const char *domain;
	const struct alias_entry *chain[ALIAS_DEPTH_MAX];
	size_t depth;
	size_t work;
	struct addrlist out;
	struct sm_error *err;
};

static int resolve_one(struct resolve *r, const char *addr,
		       const char *display);

/* The alias named name (case-insensitive), or NULL. */
static const struct alias_entry *alias_find(const struct resolve *r,
					    const char *name)
{
	for (size_t k = 0; k < r->naliases; k++)
		if (r->aliases[k].name != NULL &&
		    strcasecmp(r->aliases[k].name, name) == 0)
			return &r->aliases[k];
	return NULL;
}

/* Fill err for alias a met again (loop) or too deep, showing the chain
 * and the alias whose value to fix. */
static int alias_chain_fail(const struct resolve *r,
			    const struct alias_entry *a, const char *what,
			    const struct alias_entry *fix)
{
	char chain[SM_ERROR_MAX / 2] = "", name[EXCERPT_BUF];
	size_t used = 0;

	for (size_t k = 0; k <= r->depth; k++) {
		const struct alias_entry *e = k < r->depth ? r->chain[k] : a;
		int w;

		excerpt(name, e->name, strlen(e->name));
		w = snprintf(chain + used, sizeof chain - used, "%s%s",
			     k ? " -> " : "", name);
		if (w < 0 || (size_t)w >= sizeof chain - used)
			break;
		used += (size_t)w;
	}
	excerpt(name, fix->name, strlen(fix->name));
	return error_set(r->err, EX_DATAERR,
			 "%s: %s: fix aliases.%s in the configuration", what,
			 chain, name);
}

/* Replace alias a by the addresses of its value, each resolved again. */
static int resolve_alias(struct resolve *r, const struct alias_entry *a)
{
	struct addrlist val = {0};
	struct sm_error perr;
	char name[EXCERPT_BUF];
	const char *text = a->value ? a->value : "";
	int rc = 0;

	for (size_t k = 0; k < r->depth; k++)
		if (r->chain[k] == a)
			return alias_chain_fail(r, a, "alias loop",
						r->chain[r->depth - 1]);
	if (r->depth == ALIAS_DEPTH_MAX)
		return alias_chain_fail(r, a, "aliases nest more than 8 levels",
					r->chain[0]);
	error_clear(&perr);
	if (address_list_parse(text, strlen(text), &val, &perr) < 0) {
		addrlist_free(&val);
		excerpt(name, a->name, strlen(a->name));
		return error_set(r->err, perr.code, "aliases.%s: %s", name,
				 perr.msg);
	}
	r->chain[r->depth++] = a;
	for (size_t k = 0; k < val.n && rc == 0; k++)
		rc = resolve_one(r, val.v[k].addr, val.v[k].display);
	r->depth--;
	addrlist_free(&val);
	return rc;
}

/* Append "@" default_domain to the bare name and add the result. */
static int resolve_default(struct resolve *r, const char *name,
			   const char *display)
{
	struct sbuf b = {0};
	char ex[EXCERPT_BUF];
	const char *why;
	int rc;

	excerpt(ex, name, strlen(name));
	if (r->domain == NULL || r->domain[0] == '\0')
		return error_set(
		    r->err, EX_DATAERR,
		    "local name \"%s\" has no domain and no alias: "
		    "set default_domain or add aliases.%s to the "
		    "configuration",
		    ex, ex);
	if (sbuf_put(&b, name, strlen(name)) < 0 || sbuf_put(&b, "@", 1) < 0 ||
	    sbuf_put(&b, r->domain, strlen(r->domain)) < 0) {
		free(b.p);
		return oom(r->err);
	}
	if (!address_valid(b.p, &why)) {
		excerpt(ex, b.p, b.n);
		rc = error_set(r->err, EX_DATAERR,
			       "address \"%s\" %s: check default_domain in the "
			       "configuration",
			       ex, why);
	} else {
		rc = addrlist_add(&r->out, b.p, display, r->err);
	}
	free(b.p);
	return rc;
}

/* Resolve one entry: an address with a domain is kept, a bare name is an
 * alias or gets the default domain. */
static int resolve_one(struct resolve *r, const char *addr, const char *display)
{
	const struct alias_entry *a;

	if (++r->work > ALIAS_WORK_MAX)
		return error_set(r->err, EX_DATAERR,
				 "aliases expand to more than %d names: "
				 "simplify the aliases in the configuration",
				 ALIAS_WORK_MAX);
	if (address_domain(addr) != NULL)
		return addrlist_add(&r->out, addr, display, r->err);
	a = alias_find(r, addr);
	if (a != NULL)
		return resolve_alias(r, a);
	return resolve_default(r, addr, display);
}

/* Build the result aside and swap it in only on success, so on failure
 * the caller's list is unchanged. */
int address_resolve(struct addrlist *list, const struct alias_entry *aliases,
		    size_t naliases, const char *default_domain,
		    struct sm_error *err)
{
	struct resolve r = {.aliases = aliases,
			    .naliases = aliases ? naliases : 0,
			    .domain = default_domain,
			    .err = err};

	if (list == NULL)
		return error_set(err, EX_SOFTWARE, "address_resolve: no list");
	for (size_t k = 0; k < list->n; k++) {
		if (resolve_one(&r, list->v[k].addr, list->v[k].display) < 0) {
			addrlist_free(&r.out);
			return -1;
		}
	}
	addrlist_free(list);
	*list = r.out;
	return 0;
}

/* fnmatch(3) with FNM_CASEFOLD: patterns come from the configuration. */
bool address_match(const char *pattern, const char *addr)
{
	if (pattern == NULL || addr == NULL)
		return false;
	return fnmatch(pattern, addr, FNM_CASEFOLD) == 0;
}
