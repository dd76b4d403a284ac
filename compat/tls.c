/*
 * tls.c - the OpenSSL side of the transport (DESIGN §6, §7).
 *
 * One client context per connection: TLS 1.2 minimum, SNI and the name
 * check on the host as configured (RFC 6125: never a CNAME target), chain
 * checked against the system store or the configured CA file.  The
 * handshake runs with SSL_VERIFY_NONE and the verdict is read right after
 * it, before a single application byte is written, so that a refusal can say
 * exactly what is wrong with the certificate (its names, its dates, its
 * fingerprint for pinning) instead of OpenSSL's "certificate verify failed".
 */
#include "tls.h"

#include "heap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_HEAP_APPETITE ((size_t)640 * 1024)

struct tls_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

long long tls_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to become ready for events until deadline; 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, long long deadline_ms)
{
	for (;;) {
		long long left = deadline_ms - tls_now_ms();
		struct pollfd pfd = {.fd = fd, .events = events};
		int r;

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1; /* let the caller's I/O report the error */
	}
}

static void fcntl_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

/* The system's trusted CAs.  Debian keeps them twice: one bundle file that
 * OpenSSL's default paths parse whole (145 certificates, some 25 ms of CPU
 * for every message) and a directory of hashed links that OpenSSL reads
 * lazily, only the issuers a chain needs.  Use the directory when it has
 * the hashed links (update-ca-certificates makes them), else the default
 * paths. */
static int load_system_store(SSL_CTX *ctx)
{
	const char *dir = getenv(X509_get_default_cert_dir_env());
	DIR *d;
	struct dirent *e;
	bool hashed = false;

	if (dir == NULL)
		dir = X509_get_default_cert_dir();
	if ((d = opendir(dir)) != NULL) {
		while (!hashed && (e = readdir(d)) != NULL) {
			size_t n = strlen(e->d_name);

			hashed = n == 10 && e->d_name[8] == '.' &&
				 strspn(e->d_name, "0123456789abcdef") == 8;
		}
		closedir(d);
	}
	if (hashed && SSL_CTX_load_verify_dir(ctx, dir) == 1)
		return 1;
	return SSL_CTX_set_default_verify_paths(ctx);
}

/* A context for one connection: TLS >= 1.2, CA store, no compression. */
static SSL_CTX *make_ctx(const struct tls_params *p, char *msg, size_t size)
{
	SSL_CTX *ctx;

	/* Our policy is set here, not read from openssl.cnf (a fifth of the
	 * CPU of a TLS send went to reading it and cleaning up at exit):
	 * TLS 1.2 at least and security level 2, whatever the file says.
	 *
	 * No legacy cipher table either (a tenth of a TLS send's
	 * instructions: some 150 EVP_CIPHERs registered, then copied name by
	 * name into the provider name map).  libssl 3.0 fetches its ciphers
	 * from the provider by name; the legacy table only serves
	 * EVP_get_cipherbyname() and cipher NIDs, used by encrypted PEM keys,
	 * PKCS#12, DTLS and kernel TLS, none of which a client without a key
	 * uses.  The digest table stays: libssl reads digest NIDs (CBC
	 * records, signature algorithms) and X509 looks digests up by OID
	 * (RSA-PSS certificates). */
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT |
				 OPENSSL_INIT_NO_ADD_ALL_CIPHERS,
			 NULL);
	/* OpenSSL 3.0 builds its method tables on the heap: ~500 KiB of
	 * fresh pages for one context and handshake, mapped in one go. */
	heap_prefault(TLS_HEAP_APPETITE);
	ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(msg, size, "cannot create a TLS context (out of memory)");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_security_level(ctx, 2);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (!p->verify || p->fingerprint != NULL)
		return ctx; /* no chain to check */
	if (p->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, p->ca_file, NULL) != 1) {
			snprintf(msg, size,
				 "tls_ca_file %s holds no usable PEM certificate; "
				 "point it at the CA certificate in PEM form",
				 p->ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (load_system_store(ctx) != 1) {
		snprintf(msg, size, "cannot load the system CA store; "
				    "install ca-certificates or set tls_ca_file");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* SNI always carries the configured name; the check targets it too. */
static int setup_ssl(SSL *ssl, const char *host, const struct tls_params *p)
{
	bool ip = is_ip_literal(host);

	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	if (!p->verify || p->fingerprint != NULL)
		return 0;
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) ==
			       1
			       ? 0
			       : -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

/* The names a certificate covers (SAN DNS and IP, else the CN), for errors. */
static void cert_names(X509 *cert, char *buf, size_t size)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name,
						 NULL, NULL);
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		char one[256] = "";

		if (gn->type == GEN_DNS)
			snprintf(one, sizeof one, "%.*s",
				 ASN1_STRING_length(gn->d.dNSName),
				 (const char *)ASN1_STRING_get0_data(
					 gn->d.dNSName));
		else if (gn->type == GEN_IPADD &&
			 ASN1_STRING_length(gn->d.iPAddress) == 4) {
			const unsigned char *a =
				ASN1_STRING_get0_data(gn->d.iPAddress);
			snprintf(one, sizeof one, "%u.%u.%u.%u", a[0], a[1],
				 a[2], a[3]);
		}
		if (one[0] != '\0' && o + strlen(one) + 3 < size)
			o += (size_t)snprintf(buf + o, size - o, "%s%s",
					      o ? ", " : "", one);
	}
	GENERAL_NAMES_free(names);
	if (o == 0)
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
					  NID_commonName, buf, (int)size);
}

/* "sha256:<hex>" of the certificate's DER encoding. */
static void cert_fingerprint(X509 *cert, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t o;

	snprintf(buf, size, "sha256:");
	o = strlen(buf);
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
		return;
	for (unsigned int i = 0; i < n && o + 3 < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%02x", md[i]);
}

static void asn1_time_text(const ASN1_TIME *t, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int n = 0;

	buf[0] = '\0';
	if (bio == NULL)
		return;
	if (ASN1_TIME_print(bio, t) == 1)
		n = BIO_read(bio, buf, (int)size - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(bio);
}

/* Turn a verification failure into the cause and the fix. */
static void explain_verify(long v, X509 *leaf, const char *host, char *msg,
			   size_t size)
{
	char names[512], when[64], fp[80], issuer[256] = "";

	cert_names(leaf, names, sizeof names);
	cert_fingerprint(leaf, fp, sizeof fp);
	X509_NAME_oneline(X509_get_issuer_name(leaf), issuer, sizeof issuer);
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		asn1_time_text(X509_get0_notAfter(leaf), when, sizeof when);
		snprintf(msg, size,
			 "the server's certificate (%s) expired on %s; the "
			 "server's administrator must renew it",
			 names, when);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		asn1_time_text(X509_get0_notBefore(leaf), when, sizeof when);
		snprintf(msg, size,
			 "the server's certificate (%s) is not valid before %s; "
			 "check this machine's clock (date), or the server's "
			 "certificate",
			 names, when);
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(msg, size,
			 "the server's certificate is issued for %s, not for "
			 "%s; set host to one of those names (the provider's "
			 "documented server name)",
			 names, host);
		break;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		snprintf(msg, size,
			 "the server's certificate is self-signed (issuer %s); "
			 "set tls_ca_file to the certificate that signed it, or "
			 "pin it with tls_fingerprint = \"%s\"",
			 issuer, fp);
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		snprintf(msg, size,
			 "the server's certificate is issued by an unknown "
			 "certificate authority (%s); set tls_ca_file to that "
			 "CA's certificate, or pin the server with "
			 "tls_fingerprint = \"%s\"",
			 issuer, fp);
		break;
	default:
		snprintf(msg, size,
			 "the server's certificate (%s) was refused: %s; fix "
			 "the certificate, or set tls_ca_file / tls_fingerprint",
			 names, X509_verify_cert_error_string(v));
	}
}

/* After the handshake and before any data: the pin, or chain + name. */
static enum tls_result check_peer(struct tls_conn *c, const char *host,
				  const struct tls_params *p, char *msg,
				  size_t size)
{
	X509 *leaf = SSL_get1_peer_certificate(c->ssl);
	enum tls_result r = TLS_OK;
	char fp[80];

	if (!p->verify) {
		X509_free(leaf);
		return TLS_OK;
	}
	if (leaf == NULL) {
		snprintf(msg, size, "the server sent no certificate");
		return TLS_ERR_CERT;
	}
	if (p->fingerprint != NULL) {
		cert_fingerprint(leaf, fp, sizeof fp);
		if (strcmp(fp, p->fingerprint) != 0) {
			snprintf(msg, size,
				 "the server's certificate fingerprint is %s, "
				 "not the pinned %s; if the server's certificate "
				 "was renewed, check it and update "
				 "tls_fingerprint",
				 fp, p->fingerprint);
			r = TLS_ERR_PIN;
		}
	} else {
		long v = SSL_get_verify_result(c->ssl);

		if (v != X509_V_OK) {
			explain_verify(v, leaf, host, msg, size);
			r = TLS_ERR_CERT;
		}
	}
	X509_free(leaf);
	return r;
}

/* Classify a failed SSL_connect: plaintext SMTP answered, closed, other. */
static enum tls_result handshake_error(SSL *ssl, int ret, char *msg,
				       size_t size)
{
	unsigned long e = ERR_peek_last_error();
	int reason = ERR_GET_REASON(e);
	char text[256] = "";

	if (e != 0)
		ERR_error_string_n(e, text, sizeof text);
	ERR_clear_error();
	if (reason == SSL_R_WRONG_VERSION_NUMBER ||
	    reason == SSL_R_UNKNOWN_PROTOCOL ||
	    reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
	    reason == SSL_R_RECORD_LENGTH_MISMATCH) {
		snprintf(msg, size, "the server answered in plaintext, not TLS");
		return TLS_ERR_PLAINTEXT;
	}
	if (e == 0 && SSL_get_error(ssl, ret) != SSL_ERROR_SSL) {
		snprintf(msg, size,
			 "the server closed the connection during the TLS "
			 "handshake");
		return TLS_ERR_CLOSED;
	}
	snprintf(msg, size, "TLS handshake failed: %s", text);
	return TLS_ERR_HANDSHAKE;
}

/* Drive SSL_connect on a non-blocking socket until done or deadline. */
static enum tls_result run_handshake(struct tls_conn *c, long long deadline_ms,
				     char *msg, size_t size)
{
	for (;;) {
		int ret = SSL_connect(c->ssl);
		int err;

		if (ret == 1)
			return TLS_OK;
		err = SSL_get_error(c->ssl, ret);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			short ev = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;

			if (!wait_fd(c->fd, ev, deadline_ms)) {
				snprintf(msg, size,
					 "no TLS answer from the server in time");
				return TLS_ERR_TIMEOUT;
			}
			continue;
		}
		return handshake_error(c->ssl, ret, msg, size);
	}
}

enum tls_result tls_connect(int fd, const char *host,
			    const struct tls_params *p, long long deadline_ms,
			    struct tls_conn **out, char *msg, size_t msgsize)
{
	struct tls_conn *c = calloc(1, sizeof *c);
	enum tls_result r;

	*out = NULL;
	if (c == NULL || (c->ctx = make_ctx(p, msg, msgsize)) == NULL) {
		if (c != NULL && msg[0] == '\0')
			snprintf(msg, msgsize, "out of memory");
		free(c);
		return TLS_ERR_HANDSHAKE;
	}
	c->fd = fd;
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || setup_ssl(c->ssl, host, p) != 0 ||
	    SSL_set_fd(c->ssl, fd) != 1) {
		snprintf(msg, msgsize, "cannot set up TLS for %s", host);
		tls_close(c);
		return TLS_ERR_HANDSHAKE;
	}
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* No AUTO_RETRY: a TLS 1.3 session ticket must not block a read
	 * (the hang libESMTP shows, DESIGN §6.4). */
	SSL_clear_mode(c->ssl, SSL_MODE_AUTO_RETRY);
	fcntl_nonblock(fd);
	r = run_handshake(c, deadline_ms, msg, msgsize);
	if (r == TLS_OK)
		r = check_peer(c, host, p, msg, msgsize);
	if (r != TLS_OK) {
		tls_close(c);
		return r;
	}
	*out = c;
	return TLS_OK;
}

long tls_read(struct tls_conn *c, void *buf, size_t len)
{
	int n = SSL_read(c->ssl, buf, len > 65536 ? 65536 : (int)len);

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -2; /* e.g. a session ticket was consumed */
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return errno == 0 ? 0 : -1; /* EOF without close_notify */
	default:
		ERR_clear_error();
		return -1;
	}
}

int tls_write_all(struct tls_conn *c, const void *buf, size_t len,
		  long long deadline_ms)
{
	const char *p = buf;

	while (len > 0) {
		int chunk = len > 65536 ? 65536 : (int)len;
		int n = SSL_write(c->ssl, p, chunk);
		int err;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			return -1;
		}
		if (!wait_fd(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			     deadline_ms))
			return -1;
	}
	return 0;
}

bool tls_pending(struct tls_conn *c)
{
	return SSL_pending(c->ssl) > 0;
}

void tls_describe(struct tls_conn *c, char *buf, size_t size)
{
	X509 *leaf = SSL_get1_peer_certificate(c->ssl);
	char subject[256] = "?", issuer[256] = "?";

	if (leaf != NULL) {
		X509_NAME_oneline(X509_get_subject_name(leaf), subject,
				  sizeof subject);
		X509_NAME_oneline(X509_get_issuer_name(leaf), issuer,
				  sizeof issuer);
		X509_free(leaf);
	}
	snprintf(buf, size, "%s %s, certificate subject %s, issuer %s",
		 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), subject,
		 issuer);
}

void tls_close(struct tls_conn *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	ERR_clear_error();
	free(c);
}
