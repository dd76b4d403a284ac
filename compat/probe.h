/*
 * probe.h - an SMTP submission probe, one step at a time, for the
 * configuration test (switchmailctl test).
 *
 * Each step is a call: resolve (bounded), connect (bounded, TCP_NODELAY;
 * reads the greeting on plaintext and STARTTLS ports), TLS (implicit, or
 * EHLO + STARTTLS + upgrade; certificate checks as the bridge does them),
 * EHLO (extensions recorded), AUTH (PLAIN if offered, else LOGIN; the
 * secret is never printed and wiped after use), MAIL FROM.  probe_free()
 * ends the session politely (RSET after MAIL, QUIT).  Every step reports
 * its time, what it found, the server's reply and, on failure, a class and
 * one sentence.  The probe speaks SMTP commands only: it knows nothing of
 * messages, the queue or the configuration file.
 */
#ifndef SWITCHMAIL_PROBE_H
#define SWITCHMAIL_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "net.h"
#include "tls.h"

#define PROBE_SECRET_MAX 255 /* octets of username or password */

struct probe_params {
	const char *host; /* borrowed until probe_free */
	int port;
	enum net_mode mode;
	int timeout;		   /* seconds: DNS, connect, each reply */
	const char *ehlo_name;	   /* borrowed; NULL: "localhost" */
	struct tls_params tls;	   /* borrowed strings */
	bool allow_plaintext_auth; /* AUTH without TLS (a trusted relay) */
	FILE *transcript;	   /* -v: the dialogue, AUTH masked, or NULL */
};

/* What one step did. */
struct probe_step {
	double ms;		   /* time the step took */
	enum net_fail fail;	   /* NF_NONE when it passed */
	char msg[1024];		   /* failure: one sentence ("what; fix") */
	char reply[NET_REPLY_MAX]; /* the server's reply, printable, or "" */
	char detail[512];	   /* what the step found ("127.0.0.1", …) */
};

struct probe;

/* A probe for pp (copied; its strings borrowed), or NULL (no memory). */
struct probe *probe_new(const struct probe_params *pp);

/* DNS, bounded by the timeout.  detail: the addresses found. */
int probe_resolve(struct probe *p, struct probe_step *s);

/* TCP connect to the addresses found, bounded; then, except for implicit
 * TLS, the greeting.  detail: the address and port connected to. */
int probe_connect(struct probe *p, struct probe_step *s);

/* Implicit TLS and the greeting over it, or EHLO + STARTTLS + handshake;
 * nothing for NET_PLAIN.  detail: the TLS version, cipher, certificate. */
int probe_tls(struct probe *p, struct probe_step *s);

/* EHLO; the reply's extension lines are kept for probe_offers(). */
int probe_ehlo(struct probe *p, struct probe_step *s);

/* Whether the last EHLO reply lists keyword ("AUTH", "SIZE", …); its
 * parameters ("PLAIN LOGIN") go to params when not NULL. */
bool probe_offers(const struct probe *p, const char *keyword, char *params,
		  size_t size);

/* AUTH PLAIN when offered, else AUTH LOGIN, with user and password (never
 * written anywhere but the TLS connection; wiped).  detail: the mechanism.
 * NF_NO_AUTH when neither is offered, NF_AUTH when the login is refused. */
int probe_auth(struct probe *p, const char *user, const char *password,
	       struct probe_step *s);

/* MAIL FROM:<sender>.  detail: the reply.  NF_SENDER when refused. */
int probe_mail(struct probe *p, const char *sender, struct probe_step *s);

/* RSET (after MAIL) and QUIT while the session is usable, close, free.
 * Accepts NULL. */
void probe_free(struct probe *p);

#endif
