/*
 * deliver.h - one libESMTP session over one route for N messages.
 *
 * The only module that includes libESMTP.  It opens the transport bridge
 * (compat/), hands libESMTP the messages, and returns a tri-state result per
 * recipient (STYLE §5), each with the server's reply.  Unknown is TEMPFAIL.
 */
#ifndef SWITCHMAIL_DELIVER_H
#define SWITCHMAIL_DELIVER_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "message.h"
#include "options.h"

#define DELIVER_REPLY_MAX 1024

enum delivery_result { DELIVERED, TEMPFAIL, PERMFAIL };

struct deliver_rcpt {
	const char *addr;                /* borrowed */
	enum delivery_result result;     /* out */
	char reply[DELIVER_REPLY_MAX];   /* out: the server's words, or ours */
	const char *hint;                /* out: the fix for that reply (static
					    text), or NULL */
};

struct deliver_msg {
	const char *id;                  /* queue id, for the log */
	int fd;                          /* the message file (pread only) */
	off_t size, header_len;
	const char *sender;              /* envelope sender for this route */
	struct route_headers headers;    /* From:/Reply-To: for this route */
	bool eight_bit;
	enum body_type body;             /* -B */
	int notify;                      /* NOTIFY_* */
	enum dsn_ret ret;
	const char *envid;
	struct deliver_rcpt *rcpts;
	size_t nrcpts;
	char reply[DELIVER_REPLY_MAX];   /* out: message-level reply */
	bool refused_whole;              /* out: 5xx at MAIL or DATA */
};

struct deliver_session {
	const char *failure_kind;        /* out: NULL, or why the session
					    failed ("auth", "dns", …) */
	char msg[1024];                  /* out: the session failure */
	char tls[512];                   /* out: TLS summary, or "" */
};

/* Send msgs[0..n) through route r in one session.  Fills every recipient's
 * result; a session that fails (DNS, connect, TLS, AUTH) leaves the
 * recipients not yet delivered as TEMPFAIL with the reason.  transcript:
 * the -v protocol trace goes there, or NULL. */
void deliver_session(const struct config *cfg, const struct route *r,
		     struct deliver_msg *msgs, size_t n, FILE *transcript,
		     struct deliver_session *out);

#endif
