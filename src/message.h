/*
 * message.h - a message from stdin made fit to send, and per-route headers.
 *
 * message_read() streams the caller's message into a file: line endings to
 * CRLF (never CR CR LF), a lone "." ends it unless -i, Bcc: removed (its
 * addresses go to the envelope with -t), Date:, Message-ID: and From: added
 * when missing.  Memory stays bounded whatever the message size: only the
 * header block (MESSAGE_HEADER_MAX) is held.  stdin is always read to EOF so
 * the caller never sees a broken pipe, even when the message is refused.
 *
 * message_read_from() does the same from a reader the caller owns, which
 * persists across messages and is shared with a command parser (-bs): in
 * SMTP mode it reads exactly one DATA section and nothing after it.
 */
#ifndef SWITCHMAIL_MESSAGE_H
#define SWITCHMAIL_MESSAGE_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "address.h"
#include "errors.h"

#define MESSAGE_HEADER_MAX (256UL * 1024) /* octets of the header block */
#define MESSAGE_LINE_MAX 998            /* octets of a line, without CRLF */
#define MESSAGE_SIZE_MAX (1024LL * 1024 * 1024) /* octets of a message */

struct message_opts {
	bool ignore_dots;     /* -i: a lone "." is data */
	bool smtp;	      /* SMTP DATA (RFC 5321 4.5.2): a lone "." ends
				 the message and a leading "." is removed
				 from other lines, whatever -i says */
	bool extract;         /* -t: collect To/Cc/Bcc (or Resent-*) */
	const char *sender;   /* the caller's address for a missing From: */
	const char *fullname; /* -F: display name for a missing From: */
	const char *hostname; /* right side of a generated Message-ID */
	const char *id;       /* queue id, part of a generated Message-ID */
	time_t now;           /* for a generated Date: */
};

struct message_info {
	off_t size;           /* octets written, header block included */
	off_t header_len;     /* octets of the header block and its blank line */
	bool eight_bit;       /* an octet >= 0x80 anywhere */
	bool body_split;      /* a body line over 998 octets was split */
	char *from_addr;      /* first address of From: (owned) or NULL */
	char *from_display;   /* its display name (owned) or NULL */
	char *message_id;     /* Message-ID value with <> (owned) or NULL */
	bool has_reply_to;
	struct addrlist rcpts; /* -t: the header recipients */
	bool incomplete;       /* SMTP mode: the input ended before the "."
				  line; the message must not be accepted */
};

/* A line reader over an input fd with a 64 KiB buffer.  Bytes read ahead
 * stay buffered for the next call, whoever makes it (SMTP pipelining). */
struct msg_reader;

/* A reader over fd (borrowed: never closed).  timeout: seconds one read may
 * wait for input, 0 for ever; when it is exceeded the input counts as ended
 * and message_reader_timed_out() says so.  Returns NULL when out of memory;
 * message_reader_free() releases it (NULL accepted). */
struct msg_reader *message_reader_new(int fd, int timeout);
void message_reader_free(struct msg_reader *r);

/* The next line into out[0..cap] (NUL-terminated, so out holds cap + 1
 * octets), without its LF or CRLF.  A line longer than cap is read to its
 * end and dropped: *too_long is set and out holds its first cap octets.
 * Returns the length, or -1 at the end of input. */
long message_reader_line(struct msg_reader *r, char *out, size_t cap,
			 bool *too_long);

/* Whether the next line can be read without waiting: a whole line is
 * buffered, or the input has ended. */
bool message_reader_ready(const struct msg_reader *r);

/* Whether the input ended because it stayed silent past the timeout. */
bool message_reader_timed_out(const struct msg_reader *r);

/* Read the message from in_fd to EOF and write it to out_fd.  Returns 0, or
 * -1 with err filled (EX_DATAERR for an unusable message, naming the limit
 * and the fix; EX_IOERR/EX_CANTCREAT when out_fd cannot be written).
 * info is filled on success; message_info_free() releases it either way. */
int message_read(int in_fd, int out_fd, const struct message_opts *o,
		 struct message_info *info, struct sm_error *err);

/* One message from r to out_fd, as message_read() but without reading r to
 * its end.  In SMTP mode (o->smtp) the input is consumed up to and
 * including the "." line even when the message is refused (EX_DATAERR: NUL,
 * a limit), so that the next command follows; when the input ends first,
 * info->incomplete is set and -1 returned (EX_IOERR).  Without SMTP mode
 * the input is read to the end of the message (EOF or a lone "."). */
int message_read_from(struct msg_reader *r, int out_fd,
		      const struct message_opts *o, struct message_info *info,
		      struct sm_error *err);

void message_info_free(struct message_info *info);

/* How the headers change for a route (DESIGN §3). */
struct route_headers {
	const char *from_addr;     /* new From: address, or NULL: keep From: */
	const char *from_display;  /* display name kept from the caller */
	const char *reply_to;      /* add Reply-To: with this, or NULL */
};

/* Rewrite the header block hdr[0..len) (ending with the blank line) for a
 * route: every From: field replaced by one built from rh, a Reply-To: added
 * before the blank line when asked.  Returns a malloc'ed block in *out /
 * *outlen (caller frees), or -1 with err filled. */
int message_route_headers(const char *hdr, size_t len,
			  const struct route_headers *rh, char **out,
			  size_t *outlen, struct sm_error *err);

/* Format addr with an optional display name as a header value, quoting the
 * display name when it needs it: "Web Shop" <shop@example.org>.  Returns
 * malloc'ed text, or NULL on allocation failure. */
char *message_format_mailbox(const char *display, const char *addr);

#endif
