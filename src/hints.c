/*
 * hints.c - server replies and provider hosts to user hints (STYLE §3:
 * error classes -> hints in one table).
 *
 * reply_hints[] is the one table of error classes; the first entry that
 * matches wins, so provider-specific texts come first, then provider-wide
 * codes, then the generic RFC 3463/4954/5321 classes.  providers[] maps host
 * patterns to a provider and its pre-send guidance.  Facts and reply texts
 * come from providers.md §1-§6.  A host pattern is a domain whose labels are
 * compared from the right; a "*" label matches any one label, so "ionos.*"
 * covers smtp.ionos.fr and smtp.ionos.de.
 */
#include "hints.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum provider_id {
	PROV_NONE, /* in a reply entry: any host */
	PROV_M365,
	PROV_GOOGLE,
	PROV_OVH,
	PROV_INFOMANIAK,
	PROV_IONOS,
	PROV_GANDI,
	PROV_ZOHO,
	PROV_YAHOO,
	PROV_ICLOUD,
	PROV_FASTMAIL,
	PROV_SES,
	PROV_BREVO,
	PROV_MAILJET,
	PROV_SENDGRID,
	PROV_PROTON,
	PROV_ORANGE,
	PROV_FREE,
	PROV_SFR,
	PROV_LAPOSTE,
	PROV_O2SWITCH
};

#define PROVIDER_HOSTS_MAX 6

/* First matching row wins, so narrower hosts (HVE, Outlook.com) come first. */
static const struct provider {
	enum provider_id id;
	const char *name;
	const char *hosts[PROVIDER_HOSTS_MAX]; /* NULL-terminated patterns */
	const char *hint;		       /* before sending, or NULL */
} providers[] = {
    {PROV_M365,
     "Microsoft 365",
     {"smtp-hve.office365.com", "hve.mx.microsoft"},
     "Microsoft 365 HVE: internal recipients only; port 587 with encryption "
     "= \"tls\"; the HVE account needs a billing policy."},
    {PROV_M365,
     "Microsoft 365",
     {"smtp-mail.outlook.com", "hotmail.com", "live.com"},
     "Outlook.com/Hotmail refuse passwords and app passwords over SMTP since "
     "Sept 2024: OAuth2 (XOAUTH2) is required."},
    {PROV_M365,
     "Microsoft 365",
     {"office365.com", "outlook.com", "microsoft.com", "mx.microsoft"},
     "Microsoft 365: port 587 with encryption = \"tls\" (465 fails); the "
     "admin must enable Authenticated SMTP; connector.from must be the login "
     "mailbox."},
    {PROV_GOOGLE,
     "Gmail / Google Workspace",
     {"gmail.com", "googlemail.com", "google.com"},
     "Google refuses the account password: put an app password from "
     "myaccount.google.com/apppasswords (needs 2-Step Verification) in "
     "connector.password."},
    {PROV_OVH,
     "OVH",
     {"ovh.net", "ovh.ca"},
     "OVH: connector.username is the full address; E-mail Pro and Exchange "
     "use the proN/exN.mail.ovh.net host shown in the control panel."},
    {PROV_INFOMANIAK,
     "Infomaniak",
     {"infomaniak.com", "infomaniak.ch"},
     "Infomaniak: port 465 with encryption = \"ssl\"; connector.password may "
     "be a device password (Mail Service -> Devices)."},
    {PROV_IONOS,
     "IONOS",
     {"ionos.*", "ionos.co.uk", "1and1.*", "1and1.co.uk", "1und1.de"},
     "IONOS: connector.from must be on a domain of your contract; the hourly "
     "sending limit grows with the account's age."},
    {PROV_GANDI,
     "Gandi",
     {"gandi.net"},
     "Gandi: connector.from must be on your Gandi domain; at most 40 "
     "recipients per message."},
    {PROV_ZOHO,
     "Zoho",
     {"zoho.*", "zoho.com.*"},
     "Zoho: with 2FA on, connector.password must be an app-specific "
     "password; connector.from must be the account or one of its aliases."},
    {PROV_YAHOO,
     "Yahoo",
     {"yahoo.com"},
     "Yahoo refuses the account password: generate an app password (Account "
     "security -> Generate app password) for connector.password."},
    {PROV_ICLOUD,
     "iCloud",
     {"me.com", "icloud.com"},
     "iCloud: port 587 with encryption = \"tls\"; connector.password must be "
     "an app-specific password (needs two-factor authentication)."},
    {PROV_FASTMAIL,
     "Fastmail",
     {"fastmail.com", "messagingengine.com"},
     "Fastmail: port 465 with encryption = \"ssl\" and an app password "
     "(Settings -> Password & Security) in connector.password."},
    {PROV_SES,
     "Amazon SES",
     {"email-smtp.*.amazonaws.com", "email-smtp-fips.*.amazonaws.com"},
     "Amazon SES: use this region's SMTP credentials (not the IAM key); "
     "connector.from must be a verified identity."},
    {PROV_BREVO,
     "Brevo",
     {"brevo.com", "sendinblue.com"},
     "Brevo: connector.username is the SMTP login and connector.password an "
     "SMTP key (Settings -> SMTP & API), not the API key."},
    {PROV_MAILJET,
     "Mailjet",
     {"mailjet.com"},
     "Mailjet: connector.username is the API key, connector.password the "
     "secret key; connector.from must be a validated sender."},
    {PROV_SENDGRID,
     "SendGrid",
     {"sendgrid.net"},
     "SendGrid: connector.username is literally \"apikey\", "
     "connector.password the API key; connector.from needs a verified Sender "
     "Identity."},
    {PROV_PROTON,
     "Proton",
     {"protonmail.ch", "proton.me"},
     "Proton: connector.password is an SMTP token made for connector.from "
     "(custom-domain plans only); port 587, encryption = \"tls\"."},
    {PROV_ORANGE,
     "Orange",
     {"orange.fr", "wanadoo.fr"},
     "Orange: port 465 with encryption = \"ssl\"; connector.username is the "
     "full address."},
    {PROV_FREE,
     "Free",
     {"free.fr"},
     "Free: connector.username is the login without @free.fr; port 465 with "
     "encryption = \"ssl\"."},
    {PROV_SFR,
     "SFR",
     {"sfr.fr"},
     "SFR: port 465 with encryption = \"ssl\"; connector.username is the full "
     "address."},
    {PROV_LAPOSTE,
     "La Poste",
     {"laposte.net"},
     "La Poste: port 465 with encryption = \"ssl\"; connector.username is the "
     "part before @laposte.net."},
    {PROV_O2SWITCH,
     "o2switch",
     {"o2switch.net"},
     "o2switch: connector.username is the full address; port 465 \"ssl\" or "
     "587 \"tls\"; the server name matches its certificate."},
};

/* Hints shared by several entries. */
static const char H_M365_CREDS[] =
    "Check connector.username (the full address) and connector.password; "
    "with MFA on, password login fails: use OAuth2.";
static const char H_SEND_AS[] =
    "This login may not send as that address: keep connector.from and "
    "allowed_senders to the login mailbox, or have the admin grant Send As.";
static const char H_M365_CONCURRENT[] =
    "Temporary: too many simultaneous connections (Microsoft 365 allows 3 "
    "per mailbox); the queue retries later.";
static const char H_GOOGLE_APPPW[] =
    "Google wants an app password: create one at "
    "myaccount.google.com/apppasswords (needs 2-Step Verification) and put "
    "it in connector.password.";
static const char H_GOOGLE_CREDS[] =
    "Google refused the login: connector.username must be the full address "
    "and connector.password an app password "
    "(myaccount.google.com/apppasswords).";
static const char H_SENDER_REFUSED[] =
    "The server refuses this sender: set connector.from to the login address "
    "or one of its aliases, and keep allowed_senders to those.";
static const char H_LOGIN_NEEDED[] =
    "The server requires a login: set connector.username and "
    "connector.password.";
static const char H_ENCRYPT[] =
    "This login needs an encrypted connection: set encryption = \"tls\" "
    "(port 587) or \"ssl\" (port 465).";
static const char H_TOO_BIG[] =
    "The message is too big for this server: send it smaller (e.g. link "
    "large attachments instead).";
static const char H_TOO_MANY_RCPT[] =
    "Too many recipients for one message on this server: send to fewer at a "
    "time (Gandi allows 40, IONOS 200).";

/* One error class: every criterion given must hold. */
struct reply_hint {
	enum hint_stage stage; /* HINT_ANY: any stage */
	enum provider_id prov; /* PROV_NONE: any host */
	int code;	       /* 3-digit reply code, or 0 */
	const char *esc;       /* enhanced status code, 'x' class = 4 or 5 */
	const char *text;      /* case-insensitive substring of the reply */
	const char *hint;
};

/* Most specific first: the first matching entry wins. */
static const struct reply_hint reply_hints[] = {
    /* Microsoft 365 / Outlook.com (providers.md §2, §6) */
    {HINT_ANY, PROV_NONE, 0, NULL, "SmtpClientAuthentication is disabled",
     "SMTP AUTH is off for this mailbox or tenant: ask the Microsoft 365 "
     "admin to enable Authenticated SMTP (Set-CASMailbox "
     "-SmtpClientAuthenticationDisabled $false)."},
    {HINT_ANY, PROV_NONE, 0, NULL, "basic authentication is disabled",
     "Password (Basic) login is disabled for this account and app passwords "
     "will not help: use OAuth2 (XOAUTH2) or another route."},
    {HINT_ANY, PROV_NONE, 0, NULL, "security defaults",
     "Entra Security Defaults block SMTP password login: the admin must turn "
     "them off or exclude this account, or use OAuth2."},
    {HINT_ANY, PROV_NONE, 0, NULL, "did not meet the criteria",
     "A tenant policy (Conditional Access, MFA) refused this sign-in: ask "
     "the Microsoft 365 admin to allow SMTP AUTH for this mailbox."},
    {HINT_ANY, PROV_NONE, 0, NULL, "user credentials were incorrect",
     H_M365_CREDS},
    {HINT_ANY, PROV_NONE, 0, "5.7.139", NULL,
     "Microsoft 365 refused the login: check connector.username and "
     "connector.password, and that the admin allows Authenticated SMTP for "
     "this mailbox."},
    {HINT_ANY, PROV_M365, 0, "5.7.3", NULL, H_M365_CREDS},
    {HINT_ANY, PROV_NONE, 0, "5.7.30", NULL,
     "Microsoft no longer accepts passwords for SMTP: switch this route to "
     "OAuth2 (XOAUTH2)."},
    {HINT_ANY, PROV_NONE, 0, "5.7.57", NULL,
     "The server wants a login before MAIL FROM: set connector.username and "
     "connector.password (Direct Send uses the tenant MX host instead)."},
    {HINT_ANY, PROV_NONE, 0, "5.7.60", NULL, H_SEND_AS},
    {HINT_ANY, PROV_NONE, 0, NULL, "SendAsDenied",
     "The From header is not allowed for this mailbox: keep allowed_senders "
     "to the login mailbox, or have the admin grant Send As."},
    {HINT_ANY, PROV_NONE, 0, "4.3.2", "Concurrent connections",
     H_M365_CONCURRENT},
    {HINT_ANY, PROV_NONE, 0, "4.3.2", "thread limit", H_M365_CONCURRENT},
    /* before QuotaExceededException, which it contains */
    {HINT_ANY, PROV_NONE, 0, NULL, "SubmissionQuotaExceeded",
     "Daily recipient limit reached (Microsoft 365: 10,000 a day): send "
     "again later, as the 24-hour window rolls on."},
    {HINT_ANY, PROV_NONE, 0, NULL, "QuotaExceededException",
     "The sending mailbox is full: empty its Sent Items or give Sent Items a "
     "retention limit."},
    {HINT_ANY, PROV_NONE, 0, "5.1.8", "Bad outbound sender",
     "The provider blocked this account for spam: the admin must remove it "
     "from Restricted entities and check it for compromise."},
    {HINT_ANY, PROV_NONE, 0, "4.7.66", NULL,
     "The server requires TLS 1.2 or newer: update OpenSSL and check that "
     "the system crypto policy allows TLS 1.2."},
    /* Gmail / Google Workspace (§3, §6) */
    {HINT_ANY, PROV_GOOGLE, 0, "5.7.9", NULL, H_GOOGLE_APPPW},
    {HINT_ANY, PROV_NONE, 0, NULL, "BadCredentials", H_GOOGLE_CREDS},
    {HINT_ANY, PROV_GOOGLE, 0, "5.7.8", NULL, H_GOOGLE_CREDS},
    {HINT_ANY, PROV_NONE, 0, NULL, "Too many login attempts",
     "Temporary: too many logins in a short time; wait before retrying and "
     "avoid many parallel sends with the same account."},
    {HINT_ANY, PROV_GOOGLE, 0, "5.4.5", NULL,
     "Google's daily sending limit is reached (about 500, Workspace 2,000): "
     "retry after 24 hours or use a transactional provider."},
    {HINT_ANY, PROV_NONE, 0, "5.4.5", "sending quota",
     "The daily sending limit is reached: retry after 24 hours or use a "
     "transactional provider."},
    {HINT_ANY, PROV_NONE, 0, NULL, "Must issue a STARTTLS",
     "The server requires TLS first: set encryption = \"tls\" (STARTTLS) "
     "for port 587, or \"ssl\" for port 465."},
    /* Yahoo */
    {HINT_ANY, PROV_NONE, 0, NULL, "#AUTH005",
     "Yahoo requires an app password: generate one under Account security "
     "-> Generate app password and put it in connector.password."},
    {HINT_ANY, PROV_NONE, 0, NULL, "#MBR1212",
     "Yahoo refused the login: connector.username must be the full address "
     "and connector.password a Yahoo app password."},
    /* Zoho, IONOS, OVH */
    {HINT_ANY, PROV_NONE, 0, NULL, "Relaying disallowed", H_SENDER_REFUSED},
    {HINT_ANY, PROV_NONE, 0, NULL, "Mail send limit exceeded",
     "Temporary: the hourly sending limit is reached (at IONOS it grows "
     "with the account's age); the queue retries later."},
    {HINT_ANY, PROV_NONE, 0, NULL, "Sender address is not allowed",
     "The server refuses this sender: set connector.from to an address on a "
     "domain of your hosting contract."},
    {HINT_ANY, PROV_OVH, 555, NULL, NULL,
     "Possibly OVH's hourly limit (200 mails per account, 300 per IP): "
     "send again in an hour and spread the sending out."},
    /* Amazon SES, SendGrid, Mailjet, Brevo */
    {HINT_ANY, PROV_NONE, 0, NULL, "Email address is not verified",
     "Verify the sender or its domain in Amazon SES for this region; in the "
     "sandbox verify recipients too or request production access."},
    {HINT_ANY, PROV_SES, 535, NULL, NULL,
     "Amazon SES wants SMTP credentials: create them in the SES console for "
     "this region (not the IAM access key) for connector.username/password."},
    {HINT_ANY, PROV_NONE, 0, NULL, "verified Sender Identity",
     "SendGrid: verify this sender or its domain (Settings -> Sender "
     "Authentication), or set connector.from to a verified one."},
    {HINT_ANY, PROV_SENDGRID, 535, NULL, NULL,
     "SendGrid: connector.username must be literally \"apikey\" and "
     "connector.password the API key (it starts with SG.)."},
    {HINT_ANY, PROV_MAILJET, 535, NULL, NULL,
     "Mailjet: connector.username is the API key and connector.password the "
     "secret key."},
    {HINT_ANY, PROV_BREVO, 535, NULL, NULL,
     "Brevo: use the SMTP login and an SMTP key (Settings -> SMTP & API), "
     "not the API key or account password, as connector.username/password."},
    {HINT_ANY, PROV_NONE, 0, NULL, "Please authenticate first", H_LOGIN_NEEDED},
    {HINT_ANY, PROV_NONE, 0, NULL, "Sender not allowed",
     "The server refuses this sender: validate the address or its domain "
     "with the provider (Mailjet: Senders & Domains) or change "
     "connector.from."},
    /* Generic: sender, relay, connection (RFC 3463, RFC 6409 §6.1) */
    {HINT_ANY, PROV_NONE, 0, NULL, "to send as ", H_SEND_AS},
    {HINT_MAIL, PROV_NONE, 0, "5.7.1", NULL, H_SENDER_REFUSED},
    {HINT_RCPT, PROV_NONE, 0, "5.7.1", NULL,
     "The server will not relay this mail: set connector.username and "
     "connector.password so switchmail logs in, or check the sender."},
    {HINT_ANY, PROV_NONE, 0, "5.1.8", NULL,
     "The server rejects the sender's domain (often it does not resolve): "
     "set connector.from to an address on a real, public domain."},
    {HINT_GREETING, PROV_NONE, 554, NULL, NULL,
     "The server refuses this client (IP blocklist or port 25 blocked): use "
     "the provider's submission port 587 or 465 with a login."},
    /* Generic AUTH (RFC 4954 §6) */
    {HINT_ANY, PROV_NONE, 534, NULL, NULL,
     "The server finds this login method too weak: use encryption = \"tls\" "
     "or \"ssl\", or the provider's app password."},
    {HINT_ANY, PROV_NONE, 535, NULL, NULL,
     "Login refused: check connector.username (often the full address) and "
     "connector.password; many providers require an app password."},
    {HINT_AUTH, PROV_NONE, 454, "4.7.0", NULL,
     "Temporary login failure on the server's side: the queue retries "
     "later; the password need not change."},
    {HINT_ANY, PROV_NONE, 530, NULL, NULL, H_LOGIN_NEEDED},
    {HINT_ANY, PROV_NONE, 538, NULL, NULL, H_ENCRYPT},
    {HINT_ANY, PROV_NONE, 0, "5.7.11", NULL, H_ENCRYPT},
    /* Generic mailbox and size (RFC 3463, RFC 5321 §4.5.3.1.10) */
    {HINT_ANY, PROV_NONE, 0, "5.1.1", NULL,
     "The recipient address does not exist there: check its spelling."},
    {HINT_ANY, PROV_NONE, 0, "x.2.2", NULL,
     "The recipient's mailbox is full: try again later or reach them "
     "another way."},
    {HINT_ANY, PROV_NONE, 0, "x.5.3", NULL, H_TOO_MANY_RCPT},
    {HINT_RCPT, PROV_NONE, 552, NULL, NULL, H_TOO_MANY_RCPT},
    {HINT_ANY, PROV_NONE, 0, "x.3.4", NULL, H_TOO_BIG},
    {HINT_ANY, PROV_NONE, 0, "x.2.3", NULL, H_TOO_BIG},
    {HINT_ANY, PROV_NONE, 552, NULL, NULL, H_TOO_BIG},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ASCII lower case, independent of the locale. */
static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether a[0..n) and b[0..n) are equal ignoring ASCII case. */
static bool ci_equal(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/* Whether hay contains needle, ignoring ASCII case. */
static bool ci_contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (ci_equal(hay, needle, n)) /* stops at hay's NUL */
			return true;
	return n == 0;
}

/* Whether host[0..hl) is pattern pat or ends with '.' and pat, comparing
 * labels from the right; a "*" label in pat matches any one label. */
static bool host_matches(const char *host, size_t hl, const char *pat)
{
	size_t pl = strlen(pat);

	while (pl > 0 && hl > 0) {
		size_t ps = pl, hs = hl;

		while (ps > 0 && pat[ps - 1] != '.')
			ps--;
		while (hs > 0 && host[hs - 1] != '.')
			hs--;
		if (hl == hs)
			return false; /* empty host label */
		if (!(pl - ps == 1 && pat[ps] == '*') &&
		    (pl - ps != hl - hs ||
		     !ci_equal(pat + ps, host + hs, hl - hs)))
			return false;
		if (ps == 0)
			return true; /* hs == 0 or host[hs - 1] == '.' */
		if (hs == 0)
			return false;
		pl = ps - 1;
		hl = hs - 1;
	}
	return false;
}

/* The providers[] row host belongs to, or NULL. */
static const struct provider *provider_of(const char *host)
{
	size_t hl;

	if (host == NULL)
		return NULL;
	hl = strlen(host);
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	for (size_t i = 0; i < NELEM(providers); i++)
		for (size_t j = 0;
		     j < PROVIDER_HOSTS_MAX && providers[i].hosts[j] != NULL;
		     j++)
			if (host_matches(host, hl, providers[i].hosts[j]))
				return &providers[i];
	return NULL;
}

/* Whether c is an ASCII digit. */
static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* The 3-digit reply code opening reply, or 0 when it has none. */
static int reply_code(const char *reply)
{
	if (reply[0] < '2' || reply[0] > '5' || !is_digit(reply[1]) ||
	    !is_digit(reply[2]))
		return 0;
	if (reply[3] != '\0' && reply[3] != ' ' && reply[3] != '-' &&
	    reply[3] != '\r' && reply[3] != '\n')
		return 0;
	return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 +
	       (reply[2] - '0');
}

/* Whether s starts with enhanced status code pat ('x' = class 4 or 5) as a
 * whole token: "5.7.1" is not found in "5.7.139" or "5.7.1.2". */
static bool esc_at(const char *s, const char *pat)
{
	size_t i = 0;

	for (; pat[i] != '\0'; i++) {
		if (pat[i] == 'x' ? s[i] != '4' && s[i] != '5' : s[i] != pat[i])
			return false;
	}
	return !is_digit((unsigned char)s[i]) &&
	       !(s[i] == '.' && is_digit((unsigned char)s[i + 1]));
}

/* Whether reply holds enhanced status code pat as a token anywhere (the
 * reply may be multi-line or carry the code after a prefix). */
static bool has_esc(const char *reply, const char *pat)
{
	for (const char *s = reply; *s != '\0'; s++) {
		if (s > reply &&
		    (is_digit((unsigned char)s[-1]) || s[-1] == '.'))
			continue;
		if (esc_at(s, pat))
			return true;
	}
	return false;
}

/* Whether entry e applies to this stage, provider, code and reply. */
static bool entry_matches(const struct reply_hint *e, enum hint_stage stage,
			  enum provider_id prov, int code, const char *reply)
{
	return (e->stage == HINT_ANY || e->stage == stage) &&
	       (e->prov == PROV_NONE || e->prov == prov) &&
	       (e->code == 0 || e->code == code) &&
	       (e->esc == NULL || has_esc(reply, e->esc)) &&
	       (e->text == NULL || ci_contains(reply, e->text));
}

const char *hint_for_reply(enum hint_stage stage, const char *host,
			   const char *reply)
{
	const struct provider *p = provider_of(host);
	enum provider_id prov = p != NULL ? p->id : PROV_NONE;
	int code;

	if (reply == NULL)
		return NULL;
	code = reply_code(reply);
	for (size_t i = 0; i < NELEM(reply_hints); i++)
		if (entry_matches(&reply_hints[i], stage, prov, code, reply))
			return reply_hints[i].hint;
	return NULL;
}

const char *hint_for_host(const char *host)
{
	const struct provider *p = provider_of(host);

	return p != NULL ? p->hint : NULL;
}

const char *hint_provider_name(const char *host)
{
	const struct provider *p = provider_of(host);

	return p != NULL ? p->name : NULL;
}
