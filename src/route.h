/*
 * route.h - who the mail is from, per route (DESIGN §3).
 *
 * The envelope sender is the caller's (-f, else From:) when it matches the
 * route's allowed_senders, otherwise the route's own address.  The From:
 * header likewise: kept when its address is allowed, else it shows the
 * route's address with the caller's display name, and the caller's address
 * moves to Reply-To: (unless the message has one).  Providers refuse mail
 * sent as someone else, and SPF/DMARC stay aligned.
 */
#ifndef SWITCHMAIL_ROUTE_H
#define SWITCHMAIL_ROUTE_H

#include <stdbool.h>

#include "config.h"
#include "message.h"

struct sender_plan {
	const char *envelope;        /* MAIL FROM address (borrowed) */
	bool envelope_replaced;      /* the caller's sender was not allowed */
	struct route_headers headers; /* From:/Reply-To: changes (borrowed) */
	bool from_replaced;
};

/* Decide for route r.  caller_sender: -f or NULL; from_addr/from_display:
 * the message's From: (may be NULL); has_reply_to: the message has one.
 * Every pointer in plan borrows from the arguments or from r. */
void route_plan(const struct route *r, const char *caller_sender,
		const char *from_addr, const char *from_display,
		bool has_reply_to, struct sender_plan *plan);

/* Whether addr matches one of r's allowed_senders patterns. */
bool route_sender_allowed(const struct route *r, const char *addr);

#endif
