/*
 * tls.h - the OpenSSL client context: TLS >= 1.2, chain and host-name
 * verification against the configured host (not a CNAME target), SNI,
 * optional CA file, optional sha256 pin.  Only compat/ includes OpenSSL.
 */
#ifndef SWITCHMAIL_TLS_H
#define SWITCHMAIL_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_params {
	const char *ca_file;     /* NULL: the system store */
	const char *fingerprint; /* "sha256:<64 lower hex>" or NULL */
	bool verify;             /* false: no checks at all (warned) */
	const char *session_file; /* resume from and save to, or NULL */
};

/* Session resumption.  With session_file set, the session the server gives
 * (after a handshake whose certificate passed every check) is kept in that
 * file, and offered again on the next connection for TLS_SESSION_MAX_AGE
 * seconds at most.  A resumed handshake skips the certificate: it proves
 * the server holds the secret of a session made with this host name and
 * these trust settings (the file's key), so it is the server checked then.
 * Postfix keeps such a cache too (smtp_tls_session_cache_database). */
#define TLS_SESSION_MAX_AGE 3600
/* However often it is resumed, a session whose certificate was last
 * checked this long ago is not offered: the next handshake is a full one. */
#define TLS_SESSION_VERIFY_MAX 86400

enum tls_result { TLS_OK, TLS_ERR_CERT, TLS_ERR_PIN, TLS_ERR_HANDSHAKE,
		  TLS_ERR_PLAINTEXT, TLS_ERR_TIMEOUT, TLS_ERR_CLOSED };

struct tls_conn;

/* Handshake over the connected socket fd (made non-blocking here) with SNI
 * and name checks for host, within deadline_ms (CLOCK_MONOTONIC
 * milliseconds), then verify the peer.  On success returns TLS_OK and *out;
 * else a tls_result with msg filled: one sentence naming the cause (expired,
 * not yet valid, unknown CA, other names, pin mismatch…) and the fix. */
enum tls_result tls_connect(int fd, const char *host,
			    const struct tls_params *p, long long deadline_ms,
			    struct tls_conn **out, char *msg, size_t msgsize);

/* Read up to len bytes: >0 bytes, 0 on clean close, -1 on error,
 * -2 when no application data is ready yet (poll for POLLIN again). */
long tls_read(struct tls_conn *c, void *buf, size_t len);

/* Write all len bytes, polling until deadline_ms.  Returns 0 or -1. */
int tls_write_all(struct tls_conn *c, const void *buf, size_t len,
		  long long deadline_ms);

/* Whether decrypted bytes wait inside OpenSSL (poll would not show them). */
bool tls_pending(struct tls_conn *c);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384, subject CN=…, issuer CN=…", or
 * "TLSv1.3 TLS_AES_256_GCM_SHA384, session resumed". */
void tls_describe(struct tls_conn *c, char *buf, size_t size);

/* Save the newest verified session (when a session_file was given), send
 * close_notify (best effort) and free.  Does not close fd.  NULL ok. */
void tls_close(struct tls_conn *c);

/* CLOCK_MONOTONIC now, in milliseconds. */
long long tls_now_ms(void);

#endif
