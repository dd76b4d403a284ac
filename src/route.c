/*
 * route.c - the sender policy of a route (see route.h).
 */
#include "route.h"

#include <string.h>
#include <strings.h>

bool route_sender_allowed(const struct route *r, const char *addr)
{
	if (addr == NULL || addr[0] == '\0')
		return false;
	for (size_t i = 0; i < r->nallowed; i++)
		if (address_match(r->allowed_senders[i], addr))
			return true;
	return false;
}

void route_plan(const struct route *r, const char *caller_sender,
		const char *from_addr, const char *from_display,
		bool has_reply_to, struct sender_plan *plan)
{
	const char *asked = caller_sender != NULL ? caller_sender : from_addr;

	memset(plan, 0, sizeof *plan);
	if (route_sender_allowed(r, asked)) {
		plan->envelope = asked;
	} else {
		plan->envelope = r->from;
		plan->envelope_replaced = asked != NULL && asked[0] != '\0' &&
					  strcasecmp(asked, r->from) != 0;
	}
	if (from_addr != NULL && route_sender_allowed(r, from_addr))
		return; /* From: stays as the caller wrote it */
	plan->from_replaced = true;
	plan->headers.from_addr = r->from;
	plan->headers.from_display = from_display;
	if (from_addr != NULL && !has_reply_to &&
	    strcasecmp(from_addr, r->from) != 0 && strchr(from_addr, '@'))
		plan->headers.reply_to = from_addr;
}
