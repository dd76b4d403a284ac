/*
 * bridge.h - the transport under libESMTP (DESIGN §6).
 *
 * libESMTP speaks SMTP; the bridge owns the network.  bridge_open() resolves
 * the host with a bound, connects with a bound and TCP_NODELAY, does TLS with
 * our own context (implicitly for "ssl"; for "starttls" it reads the greeting,
 * sends EHLO, requires STARTTLS, upgrades) and reads the greeting.  Then
 * bridge_attach() arms connect(): libESMTP's next connect() to the sentinel
 * address BRIDGE_SENTINEL_HOST:BRIDGE_SENTINEL_PORT succeeds without
 * connecting anything, and from then on libESMTP's reads, writes and polls
 * of that socket run the relay (interpose.h), in libESMTP's own thread:
 * nothing else in the process, and nothing outside it, can reach the
 * channel.  Because it sees every byte, the relay replays the greeting,
 * stops the session after a failed AUTH (libESMTP would carry on
 * unauthenticated), refuses MAIL before AUTH when credentials are required,
 * and writes the -v transcript with AUTH masked.
 *
 * Nothing here knows about messages, the queue or the configuration file.
 */
#ifndef SWITCHMAIL_BRIDGE_H
#define SWITCHMAIL_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "net.h"
#include "tls.h"

#define BRIDGE_SENTINEL_HOST "127.0.0.1"
#define BRIDGE_SENTINEL_PORT "0"
#define BRIDGE_REPLY_MAX 4096 /* octets of one server reply we keep */

enum bridge_mode { BRIDGE_PLAIN, BRIDGE_SSL, BRIDGE_STARTTLS };

struct bridge_params {
	const char *host;       /* as configured: DNS, SNI and name check */
	int port;
	enum bridge_mode mode;
	int timeout;            /* seconds: DNS+connect, each reply wait */
	const char *ehlo_name;  /* our name for the STARTTLS EHLO */
	struct tls_params tls;  /* CA file, pin, verify */
	bool require_auth;      /* credentials configured: MAIL needs AUTH */
	FILE *transcript;       /* -v: protocol lines go here, or NULL */
};

struct bridge_status {
	enum net_fail fail;          /* NF_NONE, or why (net.h) */
	char msg[1024];              /* one sentence: what and the fix */
	char reply[BRIDGE_REPLY_MAX]; /* the server's reply, printable, or "" */
	char tls_summary[512];       /* "TLSv1.3 TLS_AES_256_GCM_SHA384" …; "" */
	char auth_offered[256];      /* the EHLO AUTH line's mechanisms, or "" */
	bool authenticated;
	bool used_tls;
};

struct bridge;

/* EHLO keywords the relay saw in the server's last EHLO reply. */
#define BRIDGE_EXT_8BITMIME 0x1u
#define BRIDGE_EXT_SMTPUTF8 0x2u
#define BRIDGE_EXT_PIPELINING 0x4u
#define BRIDGE_EXT_CHUNKING 0x8u
#define BRIDGE_EXT_SIZE 0x10u

/* Connect to params->host:port and make the channel ready (TLS, greeting
 * read).  Returns a bridge, or NULL with st filled.  params' strings are
 * copied. */
struct bridge *bridge_open(const struct bridge_params *params,
			   struct bridge_status *st);

/* Arm connect(): libESMTP's next connect() to the sentinel makes its socket
 * this bridge's channel.  Returns 0 or -1 (st). */
int bridge_attach(struct bridge *b, struct bridge_status *st);

/* End the relay (after libESMTP's session), close the server connection
 * (close_notify; the TLS session is saved), copy the final status into st,
 * free everything.  Accepts NULL. */
void bridge_close(struct bridge *b, struct bridge_status *st);

/* The BRIDGE_EXT_* bits of the server's last EHLO reply relayed so far.
 * Safe to call from libESMTP's callbacks: the relay records a reply before
 * libESMTP can read it. */
unsigned bridge_extensions(const struct bridge *b);


#endif
