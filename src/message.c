/*
 * message.c - stdin to a canonical message file, and per-route headers.
 *
 * Reading is line-oriented over a fixed 64 KiB input buffer (struct
 * msg_reader, which an SMTP session shares with its command parser so that
 * pipelined bytes read ahead are never lost): a body line longer than
 * MESSAGE_LINE_MAX is split (CRLF inserted, as Postfix does), so memory
 * never grows with the message.  The header block is held whole (at most
 * MESSAGE_HEADER_MAX) because Bcc:, -t and missing fields need it.
 *
 * Outcomes of hostile input, all documented in switchmail(8):
 *   NUL octet anywhere            refused, EX_DATAERR
 *   header block over 256 KiB     refused, EX_DATAERR
 *   header line over 998 octets   folded at white space, else refused
 *   body line over 998 octets     split into lines of 998
 *   message over 1 GiB            refused, EX_DATAERR
 */
#include "message.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct msg_reader {
	int fd;
	int timeout; /* seconds a read may wait; 0: forever */
	char buf[65536];
	size_t pos, len;
	bool eof, failed, timed_out;
	bool bol;   /* the next byte starts a line */
	bool eol;   /* the last line read ended with LF */
	bool ended; /* the message being read met its end line */
};

struct writer {
	int fd;
	char buf[65536];
	size_t len;
	off_t total;
	bool failed;
};

struct field {
	size_t off, len;   /* in the header buffer, "Name: value\r\n…" */
	size_t name_len;
	bool drop;
};

struct headers {
	char *buf;
	size_t len, cap;
	struct field *f;
	size_t n, fcap;
};

/* With a timeout, wait for input; false when none came in time. */
static bool wait_input(struct msg_reader *r)
{
	struct pollfd p = {.fd = r->fd, .events = POLLIN};
	int n;

	if (r->timeout <= 0)
		return true;
	do
		n = poll(&p, 1, r->timeout * 1000);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		r->timed_out = true;
	return n != 0; /* ready, or an error that read() reports */
}

/* More input after what is buffered; false at the end of input. */
static bool fill(struct msg_reader *r)
{
	ssize_t n;

	if (r->eof)
		return false;
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (!wait_input(r)) {
		r->eof = true;
		return false;
	}
	do
		n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		r->eof = true;
		r->failed = n < 0;
		return false;
	}
	r->len += (size_t)n;
	return true;
}

/* Take the LF (or CRLF) that ends a line, if it comes next. */
static bool take_newline(struct msg_reader *r)
{
	if (r->pos == r->len && !fill(r))
		return false;
	if (r->buf[r->pos] == '\n') {
		r->pos++;
		return true;
	}
	if (r->buf[r->pos] == '\r') {
		if (r->pos + 1 == r->len)
			fill(r);
		if (r->pos + 1 < r->len && r->buf[r->pos + 1] == '\n') {
			r->pos += 2;
			return true;
		}
	}
	return false;
}

/* Next line, or at most cap octets of it, into *out (without the line
 * ending; trailing CRs dropped so CR CR LF never happens).  Returns the
 * length, or -1 at EOF.  *whole is false when the line was cut at cap. */
static long read_line(struct msg_reader *r, char *out, size_t cap, bool *whole)
{
	size_t n = 0;

	*whole = true;
	r->eol = false;
	for (;;) {
		if (r->pos == r->len && !fill(r))
			break;
		size_t avail = r->len - r->pos, room = cap - n;
		size_t take = avail < room ? avail : room;
		char *nl = memchr(r->buf + r->pos, '\n', take);

		if (nl != NULL)
			take = (size_t)(nl - (r->buf + r->pos));
		memcpy(out + n, r->buf + r->pos, take);
		n += take;
		r->pos += take;
		if (nl != NULL) {
			r->pos++;
			r->eol = true;
			goto done;
		}
		if (n == cap) {
			*whole = r->eol = take_newline(r);
			goto done;
		}
	}
	if (n == 0)
		return -1;
done:
	r->bol = *whole;
	while (n > 0 && out[n - 1] == '\r' && *whole)
		n--;
	return (long)n;
}

/* Skip the rest of the current line, its LF included. */
static void skip_line(struct msg_reader *r)
{
	while (r->pos < r->len || fill(r)) {
		char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);

		if (nl != NULL) {
			r->pos = (size_t)(nl - r->buf) + 1;
			break;
		}
		r->pos = r->len;
	}
	r->bol = true;
}

/* SMTP mode at a line start: take a leading "." (RFC 5321 4.5.2). */
static bool take_dot(struct msg_reader *r)
{
	if (r->pos == r->len && !fill(r))
		return false;
	if (r->buf[r->pos] != '.')
		return false;
	r->pos++;
	return true;
}

static void drain(struct msg_reader *r)
{
	r->pos = r->len = 0;
	while (fill(r))
		r->pos = r->len;
}

static void put(struct writer *w, const void *p, size_t n)
{
	w->total += (off_t)n;
	while (n > 0 && !w->failed) {
		size_t room = sizeof w->buf - w->len;
		size_t take = n < room ? n : room;

		memcpy(w->buf + w->len, p, take);
		w->len += take;
		p = (const char *)p + take;
		n -= take;
		if (w->len == sizeof w->buf) {
			const char *q = w->buf;
			size_t left = w->len;

			while (left > 0) {
				ssize_t k = write(w->fd, q, left);

				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0) {
					w->failed = true;
					break;
				}
				q += k;
				left -= (size_t)k;
			}
			w->len = 0;
		}
	}
}

static bool flush_writer(struct writer *w)
{
	const char *q = w->buf;

	while (w->len > 0 && !w->failed) {
		ssize_t k = write(w->fd, q, w->len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			w->failed = true;
		else {
			q += k;
			w->len -= (size_t)k;
		}
	}
	return !w->failed;
}

static int hdr_append(struct headers *h, const char *p, size_t n)
{
	if (h->len + n > h->cap) {
		size_t ncap = h->cap ? h->cap : 4096;
		char *nb;

		while (ncap < h->len + n)
			ncap *= 2;
		if ((nb = realloc(h->buf, ncap)) == NULL)
			return -1;
		h->buf = nb;
		h->cap = ncap;
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
	return 0;
}

static int hdr_new_field(struct headers *h, size_t name_len)
{
	if (h->n == h->fcap) {
		size_t ncap = h->fcap ? h->fcap * 2 : 32;
		struct field *nf = realloc(h->f, ncap * sizeof *nf);

		if (nf == NULL)
			return -1;
		h->f = nf;
		h->fcap = ncap;
	}
	h->f[h->n++] = (struct field){.off = h->len, .name_len = name_len};
	return 0;
}

/* "Name:" at the start of line: the name's length, or 0. */
static size_t field_name_len(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && line[i] > 32 && line[i] < 127 && line[i] != ':')
		i++;
	return (i > 0 && i < len && line[i] == ':') ? i : 0;
}

static bool field_is(const struct headers *h, const struct field *f,
		     const char *name)
{
	return f->name_len == strlen(name) &&
	       strncasecmp(h->buf + f->off, name, f->name_len) == 0;
}

/* Without SMTP mode and -i, a lone "." ends the message (sendmail). */
static bool is_lone_dot(const char *line, long len, const struct message_opts *o)
{
	return !o->smtp && !o->ignore_dots && len == 1 && line[0] == '.';
}

/* The next line of the message with its dot handling.  Sets *end (and
 * r->ended) at the line that ends the message: a lone "." at a line start
 * unless -i; in SMTP mode a lone "." ended by LF, a leading "." being
 * removed from every other line. */
static long next_line(struct msg_reader *r, const struct message_opts *o,
		      char *line, size_t cap, bool *whole, bool *end)
{
	bool at_start = r->bol;
	bool stuffed = o->smtp && at_start && take_dot(r);
	long n = read_line(r, line, cap, whole);

	if (stuffed)
		*end = n == 0 && *whole && r->eol;
	else
		*end = at_start && *whole && is_lone_dot(line, n, o);
	r->ended = r->ended || *end;
	return n;
}

enum hstop { H_BODY, H_FIRST_BODY_LINE, H_END };

/* Collect the header block.  Stops at the blank line (H_BODY), at a line
 * that is no header (H_FIRST_BODY_LINE: it is left in line, llen), or at
 * the end of input (H_END). */
static int read_headers(struct msg_reader *r, struct headers *h,
			const struct message_opts *o, char *line, long *llen,
			enum hstop *stop, struct sm_error *err)
{
	bool whole, end, first = true;
	long n;

	while ((n = next_line(r, o, line, MESSAGE_HEADER_MAX, &whole, &end)) >=
	       0) {
		size_t nl;

		if (memchr(line, '\0', (size_t)n) != NULL)
			return error_set(err, EX_DATAERR,
					 "the message headers contain a NUL "
					 "byte; NUL is not allowed in mail");
		if (first && n >= 5 && memcmp(line, "From ", 5) == 0) {
			first = false; /* an mbox separator, not a header */
			continue;
		}
		first = false;
		if (n == 0 || end) {
			*stop = end ? H_END : H_BODY;
			return 0;
		}
		if ((line[0] == ' ' || line[0] == '\t') && h->n > 0) {
			/* continuation of the current field */
		} else if ((nl = field_name_len(line, (size_t)n)) > 0) {
			if (hdr_new_field(h, nl) != 0)
				return error_set(err, EX_OSERR, "out of memory");
		} else {
			*llen = n;
			*stop = H_FIRST_BODY_LINE;
			return 0;
		}
		if (h->len + (size_t)n + 2 > MESSAGE_HEADER_MAX || !whole)
			return error_set(err, EX_DATAERR,
					 "the message header block is larger "
					 "than %lu KiB; put long content in "
					 "the body",
					 MESSAGE_HEADER_MAX / 1024);
		if (hdr_append(h, line, (size_t)n) || hdr_append(h, "\r\n", 2))
			return error_set(err, EX_OSERR, "out of memory");
		h->f[h->n - 1].len = h->len - h->f[h->n - 1].off;
	}
	*stop = H_END;
	return 0;
}

/* The value of a field: after "Name:", folds included. */
static const char *field_value(const struct headers *h, const struct field *f,
			       size_t *len)
{
	const char *v = h->buf + f->off + f->name_len + 1;

	*len = f->len - f->name_len - 1;
	while (*len > 0 && (v[*len - 1] == '\n' || v[*len - 1] == '\r'))
		(*len)--;
	return v;
}

/* -t: the recipients of To/Cc/Bcc, or of Resent-To/Cc/Bcc when the message
 * has been resent (RFC 5322 §3.6.6, as Postfix does). */
static int extract(struct headers *h, bool resent, struct message_info *info,
		   struct sm_error *err)
{
	static const char *const plain[] = {"To", "Cc", "Bcc"};
	static const char *const res[] = {"Resent-To", "Resent-Cc",
					  "Resent-Bcc"};
	const char *const *names = resent ? res : plain;

	for (size_t i = 0; i < h->n; i++)
		for (size_t k = 0; k < 3; k++) {
			size_t vlen;
			const char *v;

			if (!field_is(h, &h->f[i], names[k]))
				continue;
			v = field_value(h, &h->f[i], &vlen);
			if (address_list_parse(v, vlen, &info->rcpts, err) != 0) {
				char why[SM_ERROR_MAX];

				snprintf(why, sizeof why, "%s", err->msg);
				return error_set(err, EX_DATAERR,
						 "%s: header: %s", names[k], why);
			}
		}
	return 0;
}

/* Scan the fields: what is there, what goes (Bcc), the From: address. */
static int scan_fields(struct headers *h, const struct message_opts *o,
		       struct message_info *info, bool *has_date,
		       bool *has_msgid, struct sm_error *err)
{
	bool resent = false;

	for (size_t i = 0; i < h->n; i++) {
		struct field *f = &h->f[i];
		size_t vlen;
		const char *v = field_value(h, f, &vlen);

		if (f->name_len > 7 && strncasecmp(h->buf + f->off, "Resent-", 7) == 0)
			resent = true;
		if (field_is(h, f, "Bcc") || field_is(h, f, "Resent-Bcc"))
			f->drop = true;
		else if (field_is(h, f, "Date"))
			*has_date = true;
		else if (field_is(h, f, "Reply-To"))
			info->has_reply_to = true;
		else if (field_is(h, f, "Message-ID") && !*has_msgid) {
			*has_msgid = true;
			while (vlen > 0 && (*v == ' ' || *v == '\t'))
				v++, vlen--;
			while (vlen > 0 && (v[vlen - 1] == '\n' ||
					    v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
				vlen--;
			info->message_id = strndup(v, vlen);
		} else if (field_is(h, f, "From") && info->from_addr == NULL) {
			struct addrlist l = {0};
			struct sm_error ignored;

			if (address_list_parse(v, vlen, &l, &ignored) == 0 &&
			    l.n > 0) {
				info->from_addr = strdup(l.v[0].addr);
				if (l.v[0].display != NULL)
					info->from_display = strdup(l.v[0].display);
			}
			addrlist_free(&l);
		}
	}
	return o->extract ? extract(h, resent, info, err) : 0;
}

/* Write one field, folding physical lines over MESSAGE_LINE_MAX at their
 * last space or tab before the limit. */
static int put_field(struct writer *w, const char *p, size_t len,
		     struct sm_error *err)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t line = nl ? (size_t)(nl - p) + 1 : len;
		size_t body = line >= 2 ? line - 2 : line; /* without CRLF */

		while (body > MESSAGE_LINE_MAX) {
			size_t cut = MESSAGE_LINE_MAX;

			while (cut > 1 && p[cut] != ' ' && p[cut] != '\t')
				cut--;
			if (cut <= 1)
				return error_set(err, EX_DATAERR,
						 "a header line is longer than "
						 "%d octets with no space to "
						 "fold it at; shorten it",
						 MESSAGE_LINE_MAX);
			put(w, p, cut);
			put(w, "\r\n", 2);
			p += cut;
			len -= cut;
			line -= cut;
			body -= cut;
		}
		put(w, p, line);
		p += line;
		len -= line;
	}
	return 0;
}

/* Whether a display name can stand as atoms, or needs quoting. */
static bool phrase_is_atoms(const char *s)
{
	for (; *s; s++)
		if (strchr("()<>[]:;@\\,.\"", *s) != NULL)
			return false;
	return true;
}

char *message_format_mailbox(const char *display, const char *addr)
{
	char *out;
	size_t n, o = 0;

	if (display == NULL || display[0] == '\0') {
		if (asprintf(&out, "<%s>", addr) < 0)
			return NULL;
		return out;
	}
	if (phrase_is_atoms(display)) {
		if (asprintf(&out, "%s <%s>", display, addr) < 0)
			return NULL;
		return out;
	}
	n = strlen(display) * 2 + strlen(addr) + 6;
	if ((out = malloc(n)) == NULL)
		return NULL;
	out[o++] = '"';
	for (const char *s = display; *s; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	snprintf(out + o, n - o, "\" <%s>", addr);
	return out;
}

/* Date:, Message-ID:, From: for a message that lacks them. */
static int put_missing(struct writer *w, const struct message_opts *o,
		       struct message_info *info, bool has_date,
		       bool has_msgid, struct sm_error *err)
{
	char buf[512];
	struct tm tm;

	if (!has_date) {
		localtime_r(&o->now, &tm);
		strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S %z\r\n",
			 &tm);
		put(w, buf, strlen(buf));
	}
	if (!has_msgid) {
		snprintf(buf, sizeof buf, "<%s.%lld@%s>", o->id,
			 (long long)o->now, o->hostname);
		info->message_id = strdup(buf);
		put(w, "Message-ID: ", 12);
		put(w, buf, strlen(buf));
		put(w, "\r\n", 2);
	}
	if (info->from_addr == NULL && o->sender != NULL && o->sender[0]) {
		char *mb = message_format_mailbox(o->fullname, o->sender);

		if (mb == NULL)
			return error_set(err, EX_OSERR, "out of memory");
		put(w, "From: ", 6);
		put(w, mb, strlen(mb));
		put(w, "\r\n", 2);
		free(mb);
		info->from_addr = strdup(o->sender);
		if (o->fullname != NULL)
			info->from_display = strdup(o->fullname);
	}
	return 0;
}

static bool has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* One body line out, CRLF-terminated, with the checks every line gets. */
static int body_line(struct writer *w, const char *line, long n, bool whole,
		     struct message_info *info, struct sm_error *err)
{
	if (memchr(line, '\0', (size_t)n) != NULL)
		return error_set(err, EX_DATAERR,
				 "the message body contains a NUL byte; NUL is "
				 "not allowed in mail: encode binary content "
				 "(base64)");
	if (!info->eight_bit && has_8bit(line, (size_t)n))
		info->eight_bit = true;
	if (!whole)
		info->body_split = true;
	put(w, line, (size_t)n);
	put(w, "\r\n", 2);
	if (w->total > MESSAGE_SIZE_MAX)
		return error_set(err, EX_DATAERR,
				 "the message is larger than %lld MiB; send "
				 "large files another way",
				 MESSAGE_SIZE_MAX / (1024LL * 1024));
	return 0;
}

/* The body, line by line, until EOF or the end line (see next_line). */
static int copy_body(struct msg_reader *r, struct writer *w,
		     const struct message_opts *o, char *line,
		     struct message_info *info, struct sm_error *err)
{
	bool whole, end;
	long n;

	while ((n = next_line(r, o, line, MESSAGE_LINE_MAX, &whole, &end)) >=
	       0) {
		if (end)
			break;
		if (body_line(w, line, n, whole, info, err) != 0)
			return -1;
	}
	return 0;
}

/* SMTP mode after a refusal: read up to the end line, writing nothing, so
 * that the next command follows. */
static void skip_message(struct msg_reader *r, const struct message_opts *o,
			 char *line)
{
	bool whole, end = r->ended;

	while (!end &&
	       next_line(r, o, line, MESSAGE_LINE_MAX, &whole, &end) >= 0)
		;
}

/* A header-phase line that turned out to be body: split like the rest. */
static int first_body_line(struct writer *w, const char *line, long n,
			   struct message_info *info, struct sm_error *err)
{
	while (n > MESSAGE_LINE_MAX) {
		if (body_line(w, line, MESSAGE_LINE_MAX, false, info, err) != 0)
			return -1;
		line += MESSAGE_LINE_MAX;
		n -= MESSAGE_LINE_MAX;
	}
	return body_line(w, line, n, true, info, err);
}

/* Everything after the header block has been collected. */
static int write_message(struct msg_reader *r, struct writer *w,
			 struct headers *h, enum hstop stop, char *line,
			 long llen, const struct message_opts *o,
			 struct message_info *info, struct sm_error *err)
{
	bool has_date = false, has_msgid = false;

	if (scan_fields(h, o, info, &has_date, &has_msgid, err) != 0)
		return -1;
	info->eight_bit = has_8bit(h->buf, h->len);
	for (size_t i = 0; i < h->n; i++)
		if (!h->f[i].drop &&
		    put_field(w, h->buf + h->f[i].off, h->f[i].len, err) != 0)
			return -1;
	if (put_missing(w, o, info, has_date, has_msgid, err) != 0)
		return -1;
	put(w, "\r\n", 2);
	info->header_len = w->total;
	if (stop == H_FIRST_BODY_LINE &&
	    first_body_line(w, line, llen, info, err) != 0)
		return -1;
	if (stop != H_END && copy_body(r, w, o, line, info, err) != 0)
		return -1;
	return 0;
}

struct msg_reader *message_reader_new(int fd, int timeout)
{
	struct msg_reader *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->fd = fd;
	r->timeout = timeout;
	r->bol = true;
	return r;
}

void message_reader_free(struct msg_reader *r)
{
	free(r);
}

long message_reader_line(struct msg_reader *r, char *out, size_t cap,
			 bool *too_long)
{
	bool whole;
	long n = read_line(r, out, cap, &whole);

	*too_long = false;
	if (n < 0)
		return -1;
	out[n] = '\0';
	if (!whole) {
		*too_long = true;
		skip_line(r);
	}
	return n;
}

bool message_reader_ready(const struct msg_reader *r)
{
	return r->eof || memchr(r->buf + r->pos, '\n', r->len - r->pos) != NULL;
}

bool message_reader_timed_out(const struct msg_reader *r)
{
	return r->timed_out;
}

/* The reading proper; r is left where the message (or the error) ended. */
static int read_message(struct msg_reader *r, struct writer *w, char *line,
			const struct message_opts *o, struct message_info *info,
			struct sm_error *err)
{
	struct headers h = {0};
	enum hstop stop = H_END;
	long llen = 0;
	int rc = -1;

	if (read_headers(r, &h, o, line, &llen, &stop, err) == 0 &&
	    write_message(r, w, &h, stop, line, llen, o, info, err) == 0)
		rc = 0;
	free(h.buf);
	free(h.f);
	return rc;
}

/* SMTP mode: whatever happened, the input is left after the end line; a
 * message the input ended inside of is incomplete, never accepted. */
static int smtp_finish(struct msg_reader *r, const struct message_opts *o,
		       char *line, int rc, struct message_info *info,
		       struct sm_error *err)
{
	if (rc != 0)
		skip_message(r, o, line);
	if (r->ended)
		return rc;
	info->incomplete = true;
	return error_set(err, EX_IOERR,
			 "the input ended inside the message, before its "
			 "\".\" line: the partial message was discarded");
}

int message_read_from(struct msg_reader *r, int out_fd,
		      const struct message_opts *o, struct message_info *info,
		      struct sm_error *err)
{
	struct writer *w = calloc(1, sizeof *w);
	char *line = malloc(MESSAGE_HEADER_MAX);
	int rc = -1;

	memset(info, 0, sizeof *info);
	r->ended = false;
	if (w == NULL || line == NULL) {
		free(w), free(line);
		return error_set(err, EX_OSERR, "out of memory");
	}
	w->fd = out_fd;
	rc = read_message(r, w, line, o, info, err);
	if (o->smtp)
		rc = smtp_finish(r, o, line, rc, info, err);
	if (rc == 0 && r->failed)
		rc = error_set(err, EX_IOERR, "cannot read the message from "
					      "standard input: %s",
			       strerror(errno));
	if (rc == 0 && !flush_writer(w))
		rc = error_set(err, EX_IOERR, "cannot write the message to "
					      "the spool: %s",
			       strerror(errno));
	info->size = w->total;
	free(w), free(line);
	return rc;
}

int message_read(int in_fd, int out_fd, const struct message_opts *o,
		 struct message_info *info, struct sm_error *err)
{
	struct msg_reader *r = message_reader_new(in_fd, 0);
	int rc;

	if (r == NULL) {
		memset(info, 0, sizeof *info);
		return error_set(err, EX_OSERR, "out of memory");
	}
	rc = message_read_from(r, out_fd, o, info, err);
	drain(r); /* the caller never gets a broken pipe */
	message_reader_free(r);
	return rc;
}

void message_info_free(struct message_info *info)
{
	if (info == NULL)
		return;
	free(info->from_addr);
	free(info->from_display);
	free(info->message_id);
	addrlist_free(&info->rcpts);
	info->from_addr = info->from_display = info->message_id = NULL;
}

/* Append to a growing output block (still NULL while nothing was added:
 * memcpy must not see it, even for 0 octets). */
static int out_add(char **out, size_t *len, size_t *cap, const char *p,
		   size_t n)
{
	if (n == 0)
		return 0;
	if (*len + n > *cap) {
		size_t ncap = (*len + n) * 2 + 256;
		char *nb = realloc(*out, ncap);

		if (nb == NULL)
			return -1;
		*out = nb;
		*cap = ncap;
	}
	memcpy(*out + *len, p, n);
	*len += n;
	return 0;
}

/* Length of the field starting at p (its continuation lines included). */
static size_t field_span(const char *p, size_t len)
{
	size_t i = 0;

	for (;;) {
		const char *nl = memchr(p + i, '\n', len - i);

		if (nl == NULL)
			return len;
		i = (size_t)(nl - p) + 1;
		if (i >= len || (p[i] != ' ' && p[i] != '\t'))
			return i;
	}
}

int message_route_headers(const char *hdr, size_t len,
			  const struct route_headers *rh, char **out,
			  size_t *outlen, struct sm_error *err)
{
	size_t cap = 0, i = 0;
	bool from_done = false;
	char *from = NULL;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (rh->from_addr != NULL &&
	    (from = message_format_mailbox(rh->from_display, rh->from_addr)) ==
		    NULL)
		return error_set(err, EX_OSERR, "out of memory");
	while (i < len && rc == 0) {
		const char *p = hdr + i;
		size_t span = field_span(p, len - i);
		bool blank = span <= 2 && (p[0] == '\r' || p[0] == '\n');

		if (blank && from != NULL && !from_done)
			rc |= out_add(out, outlen, &cap, "From: ", 6) |
			      out_add(out, outlen, &cap, from, strlen(from)) |
			      out_add(out, outlen, &cap, "\r\n", 2);
		if (blank && rh->reply_to != NULL)
			rc |= out_add(out, outlen, &cap, "Reply-To: <", 11) |
			      out_add(out, outlen, &cap, rh->reply_to,
				      strlen(rh->reply_to)) |
			      out_add(out, outlen, &cap, ">\r\n", 3);
		if (from != NULL && span > 5 && strncasecmp(p, "From:", 5) == 0) {
			if (!from_done)
				rc |= out_add(out, outlen, &cap, "From: ", 6) |
				      out_add(out, outlen, &cap, from,
					      strlen(from)) |
				      out_add(out, outlen, &cap, "\r\n", 2);
			from_done = true;
		} else {
			rc |= out_add(out, outlen, &cap, p, span);
		}
		i += span;
	}
	free(from);
	if (rc != 0) {
		free(*out);
		*out = NULL;
		return error_set(err, EX_OSERR, "out of memory");
	}
	return 0;
}
