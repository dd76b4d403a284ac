/*
 * net.h - the network pieces the bridge and the probe share (DESIGN §6):
 * bounded DNS, bounded connect with TCP_NODELAY, whole-reply reading, the
 * greeting (with the "this port speaks TLS first" probe), one command and
 * its reply, the TLS handshake with every failure explained, and the
 * RFC 3207 STARTTLS upgrade.
 *
 * A struct net_conn is one connection to one server.  Each function records
 * the first failure in it (kind, one sentence "what; fix") and returns -1;
 * later failures never overwrite the first.  Nothing here knows about
 * messages, the queue or the configuration file.
 */
#ifndef SWITCHMAIL_NET_H
#define SWITCHMAIL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tls.h"

struct addrinfo;

#define NET_INBUF_MAX 65536 /* octets of server replies buffered */
#define NET_REPLY_MAX 4096  /* octets of one server reply we keep */

enum net_mode { NET_PLAIN, NET_SSL, NET_STARTTLS };

/* Why a connection failed: one list for net.c, the bridge and the probe.
 * NF_AUTH … NF_SENDER are SMTP-level classes that net.c never sets; the
 * bridge sets NF_AUTH and NF_NO_AUTH, the probe those and NF_SENDER.  For
 * the queue every kind is a temporary failure (the admin or the network
 * will fix it). */
enum net_fail {
	NF_NONE,
	NF_DNS,		/* host name not found / lookup failed or timed out */
	NF_REFUSED,	/* TCP connection refused */
	NF_UNREACHABLE, /* network or host unreachable */
	NF_CONNECT_TIMEOUT, /* no TCP answer within the timeout (SYN dropped) */
	NF_TIMEOUT,	    /* the server stopped answering */
	NF_CLOSED,	    /* the server closed the connection */
	NF_GREETING,	    /* greeting other than 220, or EHLO refused */
	NF_NO_STARTTLS,	    /* encryption tls, STARTTLS not offered */
	NF_EXPECTS_TLS,	    /* mode ssl, server speaks plaintext SMTP first */
	NF_EXPECTS_SSL,	    /* mode tls/none, server speaks TLS first */
	NF_TLS_CERT,	    /* certificate verification failed */
	NF_TLS_PIN,	    /* pinned fingerprint mismatch */
	NF_TLS_HANDSHAKE,   /* handshake failed otherwise */
	NF_AUTH,	    /* AUTH refused (reply kept) */
	NF_NO_AUTH,	    /* credentials set, no usable AUTH offered */
	NF_SENDER,	    /* MAIL FROM refused (reply kept) */
	NF_IO,		    /* local failure (memory, socket, poll) */
	NF_COUNT
};

/* A short name for a failure kind ("dns", "tls-certificate", …), as the
 * log and the queue's state show it. */
const char *net_fail_name(enum net_fail f);

struct net_conn {
	/* set by net_init; strings borrowed until net_close */
	const char *host; /* as configured: DNS, SNI and name check */
	int port;
	int timeout;	       /* seconds: DNS+connect, each reply wait */
	struct tls_params tls; /* CA file, pin, verify */
	FILE *transcript;      /* -v: protocol lines go here, or NULL */
	/* state */
	int fd;			   /* -1 until connected */
	struct tls_conn *tc;	   /* after the handshake, else NULL */
	char inbuf[NET_INBUF_MAX]; /* server bytes not consumed yet */
	size_t inlen;
	/* outcome */
	enum net_fail fail;
	char msg[1024];		   /* one sentence: what failed; the fix */
	char reply[NET_REPLY_MAX]; /* the last reply kept, printable, or "" */
	char tls_summary[512]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384, …" or "" */
	bool used_tls;
};

/* Reset c to "not connected" for host:port (strings borrowed). */
void net_init(struct net_conn *c, const char *host, int port, int timeout,
	      const struct tls_params *tls, FILE *transcript);

/* Record a failure (the first one wins) and return -1. */
int net_error(struct net_conn *c, enum net_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Now plus the timeout, in tls_now_ms() milliseconds. */
long long net_deadline(const struct net_conn *c);

/* getaddrinfo for c->host:c->port, abandoned at deadline_ms.  Returns the
 * list (caller frees with freeaddrinfo) or NULL with the failure set. */
struct addrinfo *net_resolve(struct net_conn *c, long long deadline_ms);

/* Connect to each address of res in turn until one answers, all before
 * deadline_ms; TCP_NODELAY.  addr gets the numeric address connected to
 * (may be NULL).  Returns 0, or -1 with the failure set. */
int net_connect(struct net_conn *c, const struct addrinfo *res,
		long long deadline_ms, char *addr, size_t addrsize);

/* net_resolve then net_connect within one timeout. */
int net_open_tcp(struct net_conn *c);

/* Read from the server, plain or TLS: >0, 0 closed, -1 error, -2 not yet. */
long net_read(struct net_conn *c, void *buf, size_t len);

/* Write all of buf within the timeout.  Returns 0 or -1 (no failure set). */
int net_write(struct net_conn *c, const void *buf, size_t len);

/* Read one whole reply into c->inbuf (kept there) before deadline_ms.
 * Returns its length, 0 on timeout with nothing read, -1 on failure. */
long net_read_reply(struct net_conn *c, long long deadline_ms);

/* Drop the first n octets of c->inbuf (a reply consumed). */
void net_consume(struct net_conn *c, size_t n);

/* The 3-digit code a reply starts with, or 0. */
int net_reply_code(const char *r);

/* Keep r[0..len) in c->reply, printable, line breaks folded to " / ". */
void net_keep_reply(struct net_conn *c, const char *r, size_t len);

/* One protocol line to the -v transcript ("->", "<-", "=="), if any. */
void net_transcript(struct net_conn *c, const char *dir, const char *line,
		    size_t len);

/* Read the greeting, left in c->inbuf; on a silent plaintext connection
 * probe whether the port speaks TLS first.  Returns its length or -1. */
long net_greeting(struct net_conn *c);

/* Send line (the transcript shows `shown` instead when not NULL: AUTH) and
 * read the whole reply, kept in c->reply and left in c->inbuf.  Returns its
 * length; -2 when its code is not expect (0: any), the reply consumed; -1
 * on failure (timeout, closed). */
long net_command(struct net_conn *c, const char *line, const char *shown,
		 int expect);

/* Whether a multi-line EHLO reply lists keyword (e.g. "STARTTLS"). */
bool net_ehlo_has(const char *r, size_t len, const char *keyword);

/* TLS over the connected socket, failures explained per cause. */
int net_handshake(struct net_conn *c);

/* RFC 3207 after the greeting was consumed: EHLO, require STARTTLS,
 * STARTTLS, handshake.  Returns 0 or -1. */
int net_starttls(struct net_conn *c, const char *ehlo_name);

/* Close TLS (close_notify) and the socket.  Safe to call twice. */
void net_close(struct net_conn *c);

#endif
