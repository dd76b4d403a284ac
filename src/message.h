/*
 * message.h - a message from stdin made fit to send, and per-route headers.
 *
 * message_read() streams the caller's message into a file: line endings to
 * CRLF (never CR CR LF), a lone "." ends it unless -i, Bcc: removed (its
 * addresses go to the envelope with -t), Date:, Message-ID: and From: added
 * when missing.  Memory stays bounded whatever the message size: only the
 * header block (MESSAGE_HEADER_MAX) is held.  stdin is always read to EOF so
 * the caller never sees a broken pipe, even when the message is refused.
 */
#ifndef SWITCHMAIL_MESSAGE_H
#define SWITCHMAIL_MESSAGE_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "address.h"
#include "errors.h"

#define MESSAGE_HEADER_MAX (256 * 1024) /* octets of the header block */
#define MESSAGE_LINE_MAX 998            /* octets of a line, without CRLF */
#define MESSAGE_SIZE_MAX (1024LL * 1024 * 1024) /* octets of a message */

struct message_opts {
	bool ignore_dots;     /* -i: a lone "." is data */
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
};

/* Read the message from in_fd to EOF and write it to out_fd.  Returns 0, or
 * -1 with err filled (EX_DATAERR for an unusable message, naming the limit
 * and the fix; EX_IOERR/EX_CANTCREAT when out_fd cannot be written).
 * info is filled on success; message_info_free() releases it either way. */
int message_read(int in_fd, int out_fd, const struct message_opts *o,
		 struct message_info *info, struct sm_error *err);

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
