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
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_HEAP_APPETITE ((size_t)640 * 1024)

#define TLS_SESSION_FILE_MAX 8192 /* octets of a session file we read */
#define TLS_SESSION_MAGIC "switchmail-tls-session 2\n"

struct tls_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	const struct tls_params *p; /* during tls_connect only */
	char *session_file;    /* copy of p->session_file, or NULL */
	char key[65];          /* what a session here was verified for */
	SSL_SESSION *fresh;    /* the server's newest session, not saved yet */
	bool offered;          /* a cached session went into the hello */
	long long offered_expires; /* and when its file said it expires */
	long long offered_verified; /* and when its chain was last checked */
	bool verified;         /* check_peer passed: fresh may be saved */
	bool store_loaded;     /* the CA store is loaded (lazily) */
	char ca_error[512];    /* loading the CA store failed: why */
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
static int load_system_store(X509_STORE *store)
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
	if (hashed && X509_STORE_load_path(store, dir) == 1)
		return 1;
	return X509_STORE_set_default_paths(store);
}

/* OpenSSL's chain check, with the CA store loaded on first need: a
 * resumed handshake has no certificate to check and so never reads the
 * CA file (parsing one certificate is a tenth of a handshake's CPU). */
static int verify_chain(X509_STORE_CTX *sctx, void *arg)
{
	struct tls_conn *c = arg;
	X509_STORE *store = X509_STORE_CTX_get0_store(sctx);

	if (!c->store_loaded && c->p != NULL) {
		c->store_loaded = true;
		if (c->p->ca_file != NULL) {
			if (X509_STORE_load_file(store, c->p->ca_file) != 1)
				snprintf(c->ca_error, sizeof c->ca_error,
					 "tls_ca_file %s holds no usable PEM "
					 "certificate; point it at the CA "
					 "certificate in PEM form",
					 c->p->ca_file);
		} else if (load_system_store(store) != 1) {
			snprintf(c->ca_error, sizeof c->ca_error,
				 "cannot load the system CA store; install "
				 "ca-certificates or set tls_ca_file");
		}
		ERR_clear_error();
	}
	if (c->ca_error[0] != '\0') {
		X509_STORE_CTX_set_error(sctx,
					 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT);
		return 0;
	}
	return X509_verify_cert(sctx);
}

/* Once per process, before any other OpenSSL call.
 *
 * Our policy is set in code, not read from openssl.cnf (a fifth of the CPU
 * of a TLS send went to reading it and cleaning up at exit): TLS 1.2 at
 * least and security level 2, whatever the file says.
 *
 * No legacy cipher table either (a tenth of a TLS send's instructions:
 * some 150 EVP_CIPHERs registered, then copied name by name into the
 * provider name map).  libssl 3.0 fetches its ciphers from the provider by
 * name; the legacy table only serves EVP_get_cipherbyname() and cipher
 * NIDs, used by encrypted PEM keys, PKCS#12, DTLS and kernel TLS, none of
 * which a client without a key uses.  The digest table stays: the
 * certificate check looks a signature's digest up in it to weigh its
 * strength, and without it refuses every certificate signed with a separate
 * digest ("CA signature digest algorithm too weak");
 * tests/e2e/test_tls_matrix.py shows it, across key types, signatures, TLS
 * versions and cipher suites.
 *
 * Nor the crypto library's error strings (6% of a resumed send's
 * instructions): the reasons a failed handshake shows come from libssl's
 * strings, which SSL_CTX_new loads; a crypto-library reason would show as
 * "reason(N)". */
static void tls_init(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT |
				 OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
				 OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
			 NULL);
}

/* ---- session cache ---------------------------------------------------- */

/* The key a cached session is valid for: sha256 of the host name and of
 * every setting that decides what "verified" meant (the CA file as it is
 * now, the pin, verification on or off).  A session made under other
 * settings is never offered. */
static void session_key(const char *host, const struct tls_params *p,
			char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char meta[128];
	struct stat sb = {0};
	const char *fields[5];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	if (p->ca_file != NULL)
		(void)stat(p->ca_file, &sb);
	snprintf(meta, sizeof meta, "%lld.%ld %lld verify=%d",
		 (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec,
		 (long long)sb.st_size, p->verify);
	fields[0] = host;
	fields[1] = p->ca_file != NULL ? p->ca_file : "(system store)";
	fields[2] = meta;
	fields[3] = p->fingerprint != NULL ? p->fingerprint : "";
	fields[4] = "switchmail-tls-session 1";
	/* Each field whole, with its terminating NUL: none can run into the
	 * next, whatever its length. */
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < sizeof fields / sizeof fields[0]; i++)
		ok = EVP_DigestUpdate(ctx, fields[i], strlen(fields[i]) + 1) == 1;
	ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n >= 32;
	EVP_MD_CTX_free(ctx);
	out[0] = '\0';
	for (unsigned int i = 0; ok && i < 32; i++)
		snprintf(out + 2 * (size_t)i, 3, "%02x", md[i]);
}

/* OpenSSL hands over each session the server gives (at the end of a TLS
 * 1.2 handshake, or with each TLS 1.3 ticket): keep the newest; it is
 * saved by tls_close once check_peer has passed. */
static int keep_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *c = SSL_get_app_data(ssl);

	if (c == NULL || c->session_file == NULL)
		return 0;
	SSL_SESSION_free(c->fresh);
	c->fresh = sess;
	return 1; /* the reference is ours */
}

/* The session's DER without its [3] peer certificate.  Reading the
 * certificate back would cost as much as the handshake saves, and a
 * resumed session needs nothing from it: our checks ran when it was made.
 * Returns the length written to out, or 0 (out too small, or not the
 * SSL_SESSION sequence expected). */
static size_t strip_peer(const unsigned char *der, long len,
			 unsigned char *out, size_t size)
{
	const unsigned char *q = der, *end;
	long body;
	int tag, cls;
	unsigned char *w;
	size_t kept = 0, head;

	if (ASN1_get_object(&q, &body, &tag, &cls, len) & 0x80 ||
	    tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL ||
	    body > len - (q - der))
		return 0;
	end = q + body;
	/* The fields go after the largest header the sequence can have. */
	head = 6;
	if (size < head + (size_t)body)
		return 0;
	w = out + head;
	while (q < end) {
		const unsigned char *field = q;
		long flen;
		int ftag, fcls;

		if (ASN1_get_object(&q, &flen, &ftag, &fcls, end - q) & 0x80 ||
		    flen > end - q)
			return 0;
		q += flen;
		if (fcls == V_ASN1_CONTEXT_SPECIFIC && ftag == 3)
			continue;
		memcpy(w + kept, field, (size_t)(q - field));
		kept += (size_t)(q - field);
	}
	/* Now the header, right before the fields. */
	head = (size_t)ASN1_object_size(1, (int)kept, V_ASN1_SEQUENCE) - kept;
	w = out + 6 - head;
	ASN1_put_object(&w, 1, (int)kept, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memmove(out, out + 6 - head, head + kept);
	return head + kept;
}

/* Offer the cached session if the file holds one for this key that has
 * not expired.  Anything else (no file, another key, garbage) means a full
 * handshake, silently: the cache is only an optimisation. */
static void load_session(struct tls_conn *c)
{
	unsigned char buf[TLS_SESSION_FILE_MAX];
	const unsigned char *der;
	char head[160];
	long long expires = 0, verified = 0, now = (long long)time(NULL);
	size_t magic = strlen(TLS_SESSION_MAGIC), n = 0;
	ssize_t r;
	int fd = open(c->session_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	SSL_SESSION *sess;
	char *nl, *end;

	if (fd < 0)
		return;
	while (n < sizeof buf &&
	       (r = read(fd, buf + n, sizeof buf - n)) > 0)
		n += (size_t)r;
	close(fd);
	/* "<magic>key <hex>\nexpires <unix time>\nverified <unix time>\n"
	 * then the DER */
	if (n <= magic || memcmp(buf, TLS_SESSION_MAGIC, magic) != 0)
		goto out;
	snprintf(head, sizeof head, "%.*s", (int)(n - magic),
		 (const char *)buf + magic);
	if ((nl = strchr(head, '\n')) == NULL ||
	    (nl = strchr(nl + 1, '\n')) == NULL ||
	    (nl = strchr(nl + 1, '\n')) == NULL)
		goto out;
	nl[1] = '\0';
	if (strncmp(head, "key ", 4) != 0 || strlen(c->key) != 64 ||
	    strncmp(head + 4, c->key, 64) != 0 ||
	    strncmp(head + 68, "\nexpires ", 9) != 0)
		goto out;
	errno = 0;
	expires = strtoll(head + 77, &end, 10);
	if (errno != 0 || end == head + 77 ||
	    strncmp(end, "\nverified ", 10) != 0)
		goto out;
	verified = strtoll(end + 10, &end, 10);
	/* Expired; or longer to live than we ever grant (not our file);
	 * or a chain of resumptions that has not seen the certificate for
	 * TLS_SESSION_VERIFY_MAX: a full handshake checks it again. */
	if (errno != 0 || *end != '\n' || expires <= now ||
	    expires > now + TLS_SESSION_MAX_AGE || verified > now + 60 ||
	    now - verified > TLS_SESSION_VERIFY_MAX)
		goto out;
	der = buf + magic + strlen(head);
	sess = d2i_SSL_SESSION(NULL, &der, (long)(buf + n - der));
	if (sess != NULL && SSL_SESSION_is_resumable(sess) &&
	    SSL_set_session(c->ssl, sess) == 1) {
		c->offered = true;
		c->offered_expires = expires;
		c->offered_verified = verified;
	}
	SSL_SESSION_free(sess);
	ERR_clear_error();
out:
	OPENSSL_cleanse(buf, n);
}

/* Write the newest verified session, replacing the file atomically (a
 * temporary file in the same directory, then rename).  Best effort. */
static void save_session(struct tls_conn *c)
{
	unsigned char *der = NULL, out[TLS_SESSION_FILE_MAX];
	char head[160], tmp[4200];
	long long now = (long long)time(NULL), expires, verified;
	long life;
	size_t len;
	int n, fd;
	bool ok;

	if (c->fresh == NULL || !c->verified || c->key[0] == '\0' ||
	    !SSL_SESSION_is_resumable(c->fresh))
		return;
	/* A resumed session with half its time left stays: rewriting the
	 * file for every message (a TLS 1.3 server sends a new ticket each
	 * time) would cost more than the resumption saves.  The ticket is
	 * then used again, which lets an observer link connections that come
	 * from one address to one server anyway. */
	if (SSL_session_reused(c->ssl) &&
	    c->offered_expires - now > TLS_SESSION_MAX_AGE / 2)
		return;
	life = SSL_SESSION_get_timeout(c->fresh);
	if (SSL_SESSION_get_ticket_lifetime_hint(c->fresh) > 0 &&
	    (long)SSL_SESSION_get_ticket_lifetime_hint(c->fresh) < life)
		life = (long)SSL_SESSION_get_ticket_lifetime_hint(c->fresh);
	if (life > TLS_SESSION_MAX_AGE)
		life = TLS_SESSION_MAX_AGE;
	expires = (long long)SSL_SESSION_get_time(c->fresh) + life;
	if (life <= 0 || expires <= now)
		return;
	n = i2d_SSL_SESSION(c->fresh, &der);
	if (n <= 0)
		return;
	len = strip_peer(der, n, out + sizeof head, sizeof out - sizeof head);
	OPENSSL_clear_free(der, (size_t)n);
	if (len == 0)
		return;
	/* A resumed session keeps the time its chain was checked. */
	verified = SSL_session_reused(c->ssl) ? c->offered_verified : now;
	n = snprintf(head, sizeof head, "%skey %s\nexpires %lld\nverified %lld\n",
		     TLS_SESSION_MAGIC, c->key, expires, verified);
	if (n < 0 || (size_t)n >= sizeof head ||
	    snprintf(tmp, sizeof tmp, "%s.XXXXXX", c->session_file) >=
		(int)sizeof tmp)
		goto out;
	memmove(out + sizeof head - (size_t)n, head, (size_t)n);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		goto out;
	/* The group's, as the queue's files are (DESIGN §5): every user's
	 * sends share it through the set-group-id program. */
	ok = fchmod(fd, 0660) == 0 &&
	     write(fd, out + sizeof head - (size_t)n, (size_t)n + len) ==
		 (ssize_t)((size_t)n + len);
	if (close(fd) != 0 || !ok || rename(tmp, c->session_file) != 0)
		unlink(tmp);
out:
	OPENSSL_cleanse(out, sizeof out);
}

/* A context for one connection: TLS >= 1.2, CA store, no compression. */
static SSL_CTX *make_ctx(struct tls_conn *c, char *msg, size_t size)
{
	const struct tls_params *p = c->p;
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(msg, size, "cannot create a TLS context (out of memory)");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_security_level(ctx, 2);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (p->verify && p->fingerprint == NULL)
		SSL_CTX_set_cert_verify_callback(ctx, verify_chain, c);
	if (p->session_file != NULL) {
		SSL_CTX_set_session_cache_mode(
		    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, keep_session);
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
	X509 *leaf;
	enum tls_result r = TLS_OK;
	char fp[80];

	if (c->ca_error[0] != '\0') {
		snprintf(msg, size, "%s", c->ca_error);
		return TLS_ERR_HANDSHAKE;
	}
	/* Resumed: the server proved it holds a session that passed these
	 * checks under the same key (host name, CA file, pin). */
	if (SSL_session_reused(c->ssl))
		return TLS_OK;
	leaf = SSL_get1_peer_certificate(c->ssl);
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
	/* OpenSSL 3.0 builds its method tables on the heap: ~500 KiB of
	 * fresh pages for one context and handshake, mapped in one go. */
	heap_prefault(TLS_HEAP_APPETITE);
	tls_init();
	if (c == NULL)
		goto nomem;
	c->p = p;
	c->fd = fd;
	if (p->session_file != NULL) {
		if ((c->session_file = strdup(p->session_file)) == NULL)
			goto nomem;
		session_key(host, p, c->key);
	}
	if ((c->ctx = make_ctx(c, msg, msgsize)) == NULL) {
		tls_close(c);
		return TLS_ERR_HANDSHAKE;
	}
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || setup_ssl(c->ssl, host, p) != 0 ||
	    SSL_set_fd(c->ssl, fd) != 1 || SSL_set_app_data(c->ssl, c) != 1) {
		snprintf(msg, msgsize, "cannot set up TLS for %s", host);
		tls_close(c);
		return TLS_ERR_HANDSHAKE;
	}
	if (c->session_file != NULL && c->key[0] != '\0')
		load_session(c);
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* No AUTO_RETRY: a TLS 1.3 session ticket must not block a read
	 * (the hang libESMTP shows, DESIGN §6.4). */
	SSL_clear_mode(c->ssl, SSL_MODE_AUTO_RETRY);
	fcntl_nonblock(fd);
	r = run_handshake(c, deadline_ms, msg, msgsize);
	if (r == TLS_OK)
		r = check_peer(c, host, p, msg, msgsize);
	c->p = NULL;
	if (r != TLS_OK) {
		/* A server that chokes on the session offered gets none next
		 * time: the cache must never be why mail cannot go. */
		if (c->offered && c->session_file != NULL)
			unlink(c->session_file);
		tls_close(c);
		return r;
	}
	c->verified = true;
	*out = c;
	return TLS_OK;
nomem:
	snprintf(msg, msgsize, "out of memory");
	free(c);
	return TLS_ERR_HANDSHAKE;
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

	if (SSL_session_reused(c->ssl)) {
		X509_free(leaf);
		snprintf(buf, size, "%s %s, session resumed",
			 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
		return;
	}
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
	save_session(c);
	SSL_SESSION_free(c->fresh);
	if (c->ssl != NULL) {
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	ERR_clear_error();
	free(c->session_file);
	free(c);
}
