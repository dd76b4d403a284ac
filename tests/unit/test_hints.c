/*
 * test_hints.c - unit tests for hints.c: every reply of the providers.md §6
 * error catalogue gives its hint, the generic RFC 3463/4954/5321 classes,
 * provider filters, stage filters, first-match order, token and case rules
 * for codes and texts, NULL/empty inputs, pre-send host hints and provider
 * names.  Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hints.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define M365  "smtp.office365.com"
#define GMAIL "smtp.gmail.com"
#define YAHOO "smtp.mail.yahoo.com"
#define OTHER "mail.example.org"
#define SES   "email-smtp.us-east-1.amazonaws.com"
#define SGRID "smtp.sendgrid.net"
#define MJET  "in-v3.mailjet.com"
#define BREVO "smtp-relay.brevo.com"

/* Fail with the case number and what differed when cond is false. */
static void check(bool cond, size_t k, const char *in, const char *what)
{
	if (!cond) {
		print_error("case %zu (%s): %s\n", k, in ? in : "(null)", what);
		fail();
	}
}

/* Check got against want (a key phrase of the hint, or NULL for no hint),
 * and that a hint is one short sentence. */
static void check_hint(const char *got, const char *want, size_t k,
		       const char *in)
{
	if (want == NULL ? got != NULL : got == NULL || !strstr(got, want))
		print_error("got [%s], want [%s]\n", got ? got : "(null)",
			    want ? want : "(null)");
	check(want == NULL ? got == NULL : got && strstr(got, want), k, in,
	      "hint");
	if (got == NULL)
		return;
	check(strlen(got) < 200, k, in, "hint under 200 characters");
	check(got[strlen(got) - 1] == '.', k, in, "hint ends with a period");
	check(strchr(got, '\n') == NULL, k, in, "hint is one line");
}

static const struct reply_case {
	enum hint_stage stage;
	const char *host;
	const char *reply;
	const char *want; /* key phrase of the hint; NULL: no hint */
} reply_cases[] = {
    /* providers.md §6, Microsoft 365 */
    {HINT_AUTH, M365,
     "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
     "disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for "
     "more information.",
     "enable Authenticated SMTP"},
    {HINT_AUTH, M365,
     "535 5.7.139 Authentication unsuccessful, basic authentication is "
     "disabled.",
     "(Basic) login is disabled"},
    {HINT_AUTH, "smtp-mail.outlook.com",
     "535 5.7.139 Authentication unsuccessful, basic authentication is "
     "disabled.",
     "XOAUTH2"},
    {HINT_AUTH, M365,
     "535 5.7.139 Authentication unsuccessful, user is locked by your "
     "organization's security defaults policy. Contact your administrator.",
     "Security Defaults"},
    {HINT_AUTH, M365,
     "535 5.7.139 Authentication unsuccessful, the request did not meet the "
     "criteria to be authenticated successfully. Contact your administrator.",
     "Conditional Access"},
    {HINT_AUTH, M365,
     "535 5.7.139 Authentication unsuccessful, the user credentials were "
     "incorrect.",
     "with MFA on"},
    {HINT_AUTH, M365, "535 5.7.3 Authentication unsuccessful", "with MFA on"},
    {HINT_AUTH, M365, "535 5.7.139 Authentication unsuccessful",
     "Microsoft 365 refused the login"},
    {HINT_AUTH, M365,
     "550 5.7.30 Basic authentication is not supported for Client "
     "Submission.",
     "no longer accepts passwords"},
    {HINT_MAIL, M365, "530 5.7.57 Client not authenticated to send mail",
     "login before MAIL FROM"},
    {HINT_MAIL, M365,
     "530 5.7.57 SMTP; Client was not authenticated to send anonymous mail "
     "during MAIL FROM",
     "login before MAIL FROM"},
    {HINT_MAIL, M365,
     "550 5.7.60 SMTP; Client does not have permissions to send as this "
     "sender",
     "grant Send As"},
    {HINT_DATA, M365,
     "554 5.2.252 SendAsDenied; user@contoso.com not allowed to send as "
     "other@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException."
     "MapiExceptionSendAsDenied",
     "From header is not allowed"},
    {HINT_DATA, M365,
     "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException."
     "MapiExceptionSendAsDenied",
     "From header is not allowed"},
    {HINT_MAIL, M365, "432 4.3.2 Concurrent connections limit exceeded",
     "simultaneous connections"},
    {HINT_DATA, M365,
     "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
     "simultaneous connections"},
    {HINT_DATA, M365,
     "554 5.2.0 STOREDRV.Submission.Exception:"
     "SubmissionQuotaExceededException",
     "Daily recipient limit"},
    {HINT_DATA, M365,
     "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:"
     "QuotaExceededException.MapiExceptionQuotaExceeded",
     "Sent Items"},
    {HINT_MAIL, M365, "550 5.1.8 Bad outbound sender", "Restricted entities"},
    {HINT_GREETING, M365,
     "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update "
     "your client to support TLS 1.2.",
     "TLS 1.2 or newer"},
    /* §6, Gmail / Google Workspace */
    {HINT_AUTH, GMAIL,
     "534-5.7.9 Application-specific password required. Learn more at\r\n"
     "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor",
     "myaccount.google.com/apppasswords"},
    {HINT_AUTH, GMAIL,
     "535-5.7.8 Username and Password not accepted. Learn more at\r\n"
     "535 5.7.8  https://support.google.com/mail/?p=BadCredentials",
     "Google refused the login"},
    {HINT_AUTH, GMAIL,
     "535-5.7.8 Username and Password not accepted. Learn more at",
     "Google refused the login"},
    {HINT_AUTH, GMAIL,
     "454 4.7.0 Too many login attempts, please try again later.",
     "too many logins"},
    {HINT_MAIL, GMAIL, "530 5.7.0 Must issue a STARTTLS command first.",
     "encryption = \"tls\""},
    {HINT_MAIL, OTHER, "530 5.7.0 Must issue a STARTTLS command first",
     "encryption = \"tls\""},
    {HINT_DATA, GMAIL, "550 5.4.5 Daily user sending quota exceeded.",
     "Google's daily sending limit"},
    {HINT_DATA, OTHER, "550 5.4.5 Daily sending quota exceeded.",
     "daily sending limit is reached"},
    /* §6, Yahoo, Zoho, IONOS, OVH */
    {HINT_AUTH, YAHOO, "535 5.7.0 (#AUTH005) Too many bad auth attempts.",
     "Generate app password"},
    {HINT_AUTH, YAHOO, "535 5.7.0 (#MBR1212) Incorrect username or password.",
     "Yahoo app password"},
    {HINT_MAIL, "smtp.zoho.eu", "553 Relaying disallowed as user@example.com",
     "one of its aliases"},
    {HINT_DATA, "smtp.ionos.de", "450 Mail send limit exceeded.",
     "hourly sending limit"},
    {HINT_MAIL, "smtp.ionos.fr", "Sender address is not allowed",
     "hosting contract"},
    /* the guide gives only the code 555; this text is made up */
    {HINT_DATA, "ssl0.ovh.net", "555 5.7.0 hourly limit reached",
     "OVH's hourly limit"},
    /* §6, Amazon SES, SendGrid, Mailjet, Brevo */
    {HINT_DATA, SES,
     "554 Message rejected: Email address is not verified. The following "
     "identities failed the check in region US-EAST-1: sender@example.com",
     "request production access"},
    {HINT_AUTH, SES, "535 Authentication Credentials Invalid",
     "not the IAM access key"},
    {HINT_DATA, SGRID,
     "550 The from address does not match a verified Sender Identity. Mail "
     "cannot be sent until this error is resolved.",
     "Sender Authentication"},
    {HINT_AUTH, SGRID, "535 Authentication failed: Bad username / password",
     "literally \"apikey\""},
    {HINT_AUTH, MJET, "535 Authentication failed", "secret key"},
    {HINT_AUTH, BREVO, "535 5.7.0 Invalid login or password", "SMTP key"},
    {HINT_MAIL, BREVO, "502 5.7.0 Please authenticate first",
     "requires a login"},
    {HINT_MAIL, MJET, "550 Sender not allowed", "Senders & Domains"},
    /* §6 TLS lines are internal bugs, not server replies: no user hint */
    {HINT_GREETING, GMAIL,
     "certificate CN=invalid2.invalid, OU=No SNI provided; please fix your "
     "client.",
     NULL},
    /* RFC 4954 §6 generic codes, for unknown providers */
    {HINT_AUTH, OTHER, "534 5.7.9 Authentication mechanism is too weak",
     "too weak"},
    {HINT_AUTH, OTHER, "535 5.7.8 Authentication credentials invalid",
     "Login refused"},
    {HINT_AUTH, OTHER, "535 5.7.0 Invalid login or password", "Login refused"},
    {HINT_AUTH, OTHER, "454 4.7.0 Temporary authentication failure",
     "Temporary login failure"},
    {HINT_MAIL, OTHER, "530 5.7.0 Authentication required", "requires a login"},
    {HINT_AUTH, OTHER,
     "538 5.7.11 Encryption required for requested authentication mechanism",
     "encrypted connection"},
    /* generic sender, relay, mailbox and size classes */
    {HINT_MAIL, OTHER,
     "550 5.7.1 Client is not authorized to send as sender@example.com",
     "grant Send As"},
    {HINT_MAIL, OTHER,
     "553 5.7.1 <a@example.com>: Sender address rejected: not owned by user "
     "u@example.org",
     "refuses this sender"},
    {HINT_RCPT, OTHER, "554 5.7.1 <r@example.net>: Relay access denied",
     "will not relay"},
    {HINT_MAIL, OTHER,
     "550 5.1.8 <a@nx.invalid>: Sender address rejected: Domain not found",
     "sender's domain"},
    {HINT_GREETING, OTHER,
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked",
     "refuses this client"},
    {HINT_RCPT, OTHER,
     "550 5.1.1 <nobody@example.net>: Recipient address rejected: User "
     "unknown",
     "does not exist"},
    {HINT_RCPT, OTHER, "452 4.2.2 Mailbox full", "mailbox is full"},
    {HINT_DATA, OTHER, "552 5.2.2 Over quota", "mailbox is full"},
    {HINT_RCPT, OTHER, "452 4.5.3 Too many recipients", "fewer at a time"},
    {HINT_RCPT, OTHER, "552 Too many recipients", "fewer at a time"},
    {HINT_DATA, OTHER, "552 5.3.4 Message size exceeds fixed limit", "too big"},
    {HINT_DATA, OTHER, "552 Message size exceeds maximum permitted", "too big"},
    {HINT_DATA, OTHER, "552 5.2.3 Message length exceeds limit", "too big"},
};

/* Every catalogue reply and generic class gives its hint. */
static void test_reply_table(void **state)
{
	(void)state;
	for (size_t k = 0; k < NELEM(reply_cases); k++) {
		const struct reply_case *c = &reply_cases[k];

		check_hint(hint_for_reply(c->stage, c->host, c->reply), c->want,
			   k, c->reply);
	}
}

static const struct reply_case filter_cases[] = {
    /* the provider filter: Google's 5.7.9 only for Google hosts */
    {HINT_AUTH, GMAIL, "534 5.7.9 Application-specific password required",
     "Google wants an app password"},
    {HINT_AUTH, "smtp.googlemail.com", "534 5.7.9 x",
     "Google wants an app password"},
    {HINT_AUTH, "SMTP.Gmail.COM.", "534 5.7.9 x",
     "Google wants an app password"},
    {HINT_AUTH, OTHER, "534 5.7.9 Application-specific password required",
     "too weak"},
    {HINT_AUTH, NULL, "534 5.7.9 Application-specific password required",
     "too weak"},
    {HINT_AUTH, "notgmail.com", "534 5.7.9 x", "too weak"},
    {HINT_AUTH, "smtp.gmail.com.example.org", "534 5.7.9 x", "too weak"},
    {HINT_AUTH, OTHER, "535 5.7.3 Authentication unsuccessful",
     "Login refused"},
    {HINT_AUTH, OTHER, "535 Authentication failed", "Login refused"},
    {HINT_DATA, OTHER, "555 5.5.4 Unsupported option", NULL},
    /* SES's login text is also RFC 4954's: only SES hosts get SES's hint */
    {HINT_AUTH, OTHER, "535 Authentication Credentials Invalid",
     "Login refused"},
    {HINT_AUTH, "email-smtp.eu-west-3.amazonaws.com",
     "535 5.7.8 Authentication credentials invalid", "SMTP credentials"},
    /* first match wins: the M365 text beats the generic 535 */
    {HINT_AUTH, OTHER,
     "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
     "disabled for the Tenant",
     "enable Authenticated SMTP"},
    {HINT_AUTH, NULL,
     "535 5.7.139 AUTHENTICATION UNSUCCESSFUL, SMTPCLIENTAUTHENTICATION IS "
     "DISABLED FOR THE TENANT",
     "enable Authenticated SMTP"},
    /* the stage filter: stage-bound entries need that stage */
    {HINT_MAIL, OTHER, "454 4.7.0 Temporary authentication failure", NULL},
    {HINT_ANY, OTHER, "454 4.7.0 Temporary authentication failure", NULL},
    {HINT_ANY, OTHER, "554 5.7.1 <r@example.net>: Relay access denied", NULL},
    {HINT_MAIL, OTHER, "554 5.7.1 <r@example.net>: Relay access denied",
     "refuses this sender"},
    {HINT_DATA, OTHER, "554 5.7.1 Service unavailable", NULL},
    {HINT_DATA, OTHER, "552 Too many recipients", "too big"},
    {HINT_ANY, M365, "535 5.7.139 Authentication unsuccessful",
     "Microsoft 365 refused the login"},
    {(enum hint_stage)99, OTHER, "535 5.7.8 x", "Login refused"},
    /* enhanced codes are whole tokens */
    {HINT_AUTH, GMAIL, "535 5.7.8.1 odd", "Login refused"},
    {HINT_AUTH, GMAIL, "535 15.7.8 odd", "Login refused"},
    {HINT_DATA, OTHER, "550 5.1.10 Recipient rejected", NULL},
    {HINT_DATA, OTHER, "550 5.1.1. User unknown", "does not exist"},
    {HINT_GREETING, GMAIL, "421 server 10.5.7.9 busy", NULL},
    {HINT_DATA, OTHER, "554 5.2.252 other", NULL},
    /* reply codes: three digits opening the reply */
    {HINT_AUTH, OTHER, "5355 5.7.8 x", NULL},
    {HINT_AUTH, OTHER, " 535 x", NULL},
    {HINT_AUTH, OTHER, "535", "Login refused"},
    {HINT_AUTH, OTHER, "53", NULL},
    {HINT_AUTH, OTHER, "5", NULL},
    /* nothing to match */
    {HINT_AUTH, OTHER, "", NULL},
    {HINT_ANY, NULL, "", NULL},
    {HINT_ANY, NULL, NULL, NULL},
    {HINT_ANY, GMAIL, NULL, NULL},
    {HINT_DATA, OTHER, "250 2.0.0 Ok: queued as 4F2A1", NULL},
    {HINT_GREETING, "", "220 mail.example.org ESMTP", NULL},
};

/* Provider and stage filters, first-match order, tokens, empty inputs. */
static void test_reply_filters(void **state)
{
	(void)state;
	for (size_t k = 0; k < NELEM(filter_cases); k++) {
		const struct reply_case *c = &filter_cases[k];

		check_hint(hint_for_reply(c->stage, c->host, c->reply), c->want,
			   k, c->reply);
	}
}

/* Entries that share a hint return the same static string. */
static void test_reply_static(void **state)
{
	const char *a, *b;

	(void)state;
	a = hint_for_reply(HINT_AUTH, GMAIL, "535 5.7.8 x");
	b = hint_for_reply(HINT_AUTH, OTHER, "535 5.7.8 BadCredentials");
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_equal(hint_for_reply(HINT_ANY, NULL, "538 x"),
			 hint_for_reply(HINT_ANY, NULL, "500 5.7.11 x"));
}

static const struct {
	const char *host;
	const char *want; /* key phrase; NULL: no hint */
} host_cases[] = {
    {GMAIL, "myaccount.google.com/apppasswords"},
    {"smtp-relay.gmail.com", "app password"},
    {"smtp.googlemail.com", "app password"},
    {M365, "Authenticated SMTP"},
    {"SMTP.OFFICE365.COM.", "Authenticated SMTP"},
    {"smtp-hve.office365.com", "internal recipients only"},
    {"smtp.hve.mx.microsoft", "internal recipients only"},
    {"smtp-mail.outlook.com", "OAuth2"},
    {YAHOO, "Generate app password"},
    {"smtp.mail.me.com", "app-specific password"},
    {"smtp.fastmail.com", "encryption = \"ssl\""},
    {SES, "not the IAM key"},
    {BREVO, "SMTP key"},
    {MJET, "secret key"},
    {SGRID, "\"apikey\""},
    {"smtp.protonmail.ch", "SMTP token"},
    {"smtp.free.fr", "without @free.fr"},
    {"mail.infomaniak.com", "device password"},
    {"smtp.ionos.co.uk", "contract"},
    {"mail.gandi.net", "40"},
    {"smtppro.zoho.in", "app-specific password"},
    {OTHER, NULL},
    {"127.0.0.1", NULL},
    {"gmail.com.example.org", NULL},
    {"", NULL},
    {".", NULL},
    {NULL, NULL},
};

/* Pre-send guidance per provider; none for unknown hosts. */
static void test_host_hint(void **state)
{
	(void)state;
	for (size_t k = 0; k < NELEM(host_cases); k++)
		check_hint(hint_for_host(host_cases[k].host),
			   host_cases[k].want, k, host_cases[k].host);
}

static const struct {
	const char *host;
	const char *name; /* NULL: no provider */
} name_cases[] = {
    {M365, "Microsoft 365"},
    {"smtp-legacy.office365.com", "Microsoft 365"},
    {"smtp-hve.office365.com", "Microsoft 365"},
    {"smtp.hve.mx.microsoft", "Microsoft 365"},
    {"smtp-mail.outlook.com", "Microsoft 365"},
    {"contoso-com.mail.protection.outlook.com", "Microsoft 365"},
    {GMAIL, "Gmail / Google Workspace"},
    {"smtp-relay.gmail.com", "Gmail / Google Workspace"},
    {"smtp.googlemail.com", "Gmail / Google Workspace"},
    {"aspmx.l.google.com", "Gmail / Google Workspace"},
    {"gmail.com", "Gmail / Google Workspace"},
    {"Smtp.Gmail.Com.", "Gmail / Google Workspace"},
    {"ssl0.ovh.net", "OVH"},
    {"pro1.mail.ovh.net", "OVH"},
    {"smtp.mail.ovh.ca", "OVH"},
    {"mail.infomaniak.com", "Infomaniak"},
    {"smtp.ionos.fr", "IONOS"},
    {"smtp.ionos.com", "IONOS"},
    {"smtp.ionos.co.uk", "IONOS"},
    {"smtp.1and1.com", "IONOS"},
    {"smtp.1und1.de", "IONOS"},
    {"mail.gandi.net", "Gandi"},
    {"smtp.zoho.com", "Zoho"},
    {"smtppro.zoho.eu", "Zoho"},
    {"smtp.zoho.com.au", "Zoho"},
    {YAHOO, "Yahoo"},
    {"smtp.mail.me.com", "iCloud"},
    {"smtp.fastmail.com", "Fastmail"},
    {SES, "Amazon SES"},
    {"email-smtp.eu-west-1.amazonaws.com", "Amazon SES"},
    {BREVO, "Brevo"},
    {"smtp-relay.sendinblue.com", "Brevo"},
    {MJET, "Mailjet"},
    {SGRID, "SendGrid"},
    {"smtp.protonmail.ch", "Proton"},
    {"smtp.orange.fr", "Orange"},
    {"smtp.free.fr", "Free"},
    {"smtp.sfr.fr", "SFR"},
    {"smtp.laposte.net", "La Poste"},
    {"cheddar.o2switch.net", "o2switch"},
    /* not a provider */
    {"ec2-192-0-2-1.compute-1.amazonaws.com", NULL},
    {"amazonaws.com", NULL},
    {"notgmail.com", NULL},
    {"gmail.com.example.org", NULL},
    {"com", NULL},
    {"gmail", NULL},
    {"smtp.ionos", NULL},
    {"127.0.0.1", NULL},
    {OTHER, NULL},
    {"", NULL},
    {".", NULL},
    {"..", NULL},
    {NULL, NULL},
};

/* Host to provider display name, by domain suffix at a label boundary. */
static void test_provider_name(void **state)
{
	(void)state;
	for (size_t k = 0; k < NELEM(name_cases); k++) {
		const char *got = hint_provider_name(name_cases[k].host);
		const char *want = name_cases[k].name;

		if (want == NULL ? got != NULL
				 : got == NULL || strcmp(got, want))
			print_error("got [%s], want [%s]\n",
				    got ? got : "(null)",
				    want ? want : "(null)");
		check(want == NULL ? got == NULL : got && !strcmp(got, want), k,
		      name_cases[k].host, "provider name");
	}
}

/* A long hostile reply and host are read safely and give no hint. */
static void test_long_input(void **state)
{
	static char buf[70000];

	(void)state;
	memset(buf, '5', sizeof buf - 1);
	buf[sizeof buf - 1] = '\0';
	assert_null(hint_for_reply(HINT_ANY, buf, buf));
	assert_null(hint_for_host(buf));
	memset(buf, '.', sizeof buf - 1);
	assert_null(hint_provider_name(buf));
	assert_null(hint_for_reply(HINT_AUTH, buf, buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_table),
	    cmocka_unit_test(test_reply_filters),
	    cmocka_unit_test(test_reply_static),
	    cmocka_unit_test(test_host_hint),
	    cmocka_unit_test(test_provider_name),
	    cmocka_unit_test(test_long_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
