/*
 * hints.h - what the user should do about a server reply, and what to know
 * about a provider before sending (providers.md §1-§6).
 *
 * One table maps error classes (SMTP stage, provider, reply code, enhanced
 * status code, reply text) to one short sentence naming the fix in
 * switchmail's terms (connector.username, connector.from, encryption, ...);
 * one table maps host names to providers.  Pure lookups: no allocation, no
 * I/O, every argument may be NULL, every returned string is static.
 */
#ifndef SWITCHMAIL_HINTS_H
#define SWITCHMAIL_HINTS_H

/* Where a reply came.  An entry for one stage matches only that stage; an
 * entry for HINT_ANY matches every stage.  Callers that do not know the
 * stage pass HINT_ANY and get only the stage-independent entries. */
enum hint_stage {
	HINT_ANY,
	HINT_GREETING,
	HINT_AUTH,
	HINT_MAIL,
	HINT_RCPT,
	HINT_DATA
};

/* The fix for a server reply, as one short sentence a user can act on, or
 * NULL when no entry matches.  host: the route's configured host (some
 * hints depend on the provider, e.g. a Google host), may be NULL.
 * stage: where the reply came: HINT_AUTH (reply to AUTH), HINT_MAIL (MAIL
 * FROM), HINT_RCPT, HINT_DATA (after DATA / end of data), HINT_GREETING,
 * HINT_ANY.  reply: the server's reply text, e.g.
 * "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is
 * disabled for the Tenant" (a multi-line reply may be passed whole).
 * Returned string is static. */
const char *hint_for_reply(enum hint_stage stage, const char *host,
			   const char *reply);

/* Provider-specific guidance for a host before anything is sent (e.g. a
 * Google host: app password needed), or NULL.  Static string. */
const char *hint_for_host(const char *host);

/* The display name of the provider a host belongs to ("Microsoft 365",
 * "Gmail / Google Workspace", "OVH", "Infomaniak", "IONOS", "Gandi", "Zoho",
 * "Yahoo", "iCloud", "Fastmail", "Amazon SES", "Brevo", "Mailjet",
 * "SendGrid", "Proton", "Orange", "Free", "SFR", "La Poste", "o2switch"),
 * or NULL.  A host belongs to a provider when it equals one of the
 * provider's domains or ends with '.' and one of them (case-insensitive, a
 * trailing dot ignored).  Static string. */
const char *hint_provider_name(const char *host);

#endif
