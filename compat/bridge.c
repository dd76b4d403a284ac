/*
 * bridge.c - the transport under libESMTP: bounded connect, TLS, and a relay
 * thread between libESMTP's private AF_UNIX channel and the server
 * (see bridge.h and DESIGN §6).
 *
 * The relay keeps just enough protocol state to be trusted with a password:
 * a FIFO of the commands awaiting replies (libESMTP pipelines), whether AUTH
 * succeeded, and whether the client stream is in a DATA body or a BDAT chunk
 * (so a body line is never mistaken for a command, and never printed).
 */
#include "bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "interpose.h"

#define INBUF_MAX 65536   /* bytes of server reply buffered before relay */
#define LINE_MAX_KEPT 1024 /* octets of one protocol line we inspect */

enum cmd { C_EHLO, C_AUTH, C_MAIL, C_RCPT, C_DATA, C_DATA_END, C_BDAT,
	   C_QUIT, C_OTHER };
enum cstate { CS_LINE, CS_BODY, CS_CHUNK };

struct bridge {
	char *host, *ehlo_name, *ca_file, *fingerprint;
	struct bridge_params p;
	int net_fd, app_fd;
	struct tls_conn *tls;
	char inbuf[INBUF_MAX]; /* server bytes read before the relay */
	size_t inlen;
	pthread_t thread;
	bool thread_started;
	struct bridge_status st;
	/* relay protocol state */
	enum cmd *pending; /* ring of commands awaiting a reply */
	size_t phead, pcount, pcap;
	enum cstate cs;
	char cline[LINE_MAX_KEPT];
	size_t clen;
	unsigned long long body_hist; /* last bytes of the DATA body */
	unsigned long long chunk_left;
	unsigned long long body_bytes;
	bool in_auth, quit_sent, stop, greeting_shown;
	char sline[BRIDGE_REPLY_MAX];
	size_t slen;
	char reply[BRIDGE_REPLY_MAX]; /* the current multi-line reply */
	size_t rlen;
	atomic_uint ext; /* BRIDGE_EXT_* of the last EHLO reply */
};

static long long deadline_in(const struct bridge *b, int factor)
{
	return tls_now_ms() + (long long)b->p.timeout * 1000 * factor;
}

/* Record a failure (the first one wins) and return -1. */
static int fail(struct bridge *b, enum bridge_fail f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct bridge *b, enum bridge_fail f, const char *fmt, ...)
{
	va_list ap;

	if (b->st.fail != BF_NONE)
		return -1;
	b->st.fail = f;
	va_start(ap, fmt);
	vsnprintf(b->st.msg, sizeof b->st.msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* Printable copy of a server reply, CR/LF folded to " / ". */
static void keep_reply(struct bridge *b, const char *r, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 4 < sizeof b->st.reply; i++) {
		unsigned char c = (unsigned char)r[i];

		if (c == '\r')
			continue;
		if (c == '\n') {
			if (i + 1 < len)
				o += (size_t)snprintf(b->st.reply + o,
						      sizeof b->st.reply - o,
						      " / ");
			continue;
		}
		b->st.reply[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	b->st.reply[o] = '\0';
}

static void transcript(struct bridge *b, const char *dir, const char *line,
		       size_t len)
{
	if (b->p.transcript == NULL)
		return;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	fprintf(b->p.transcript, "%s ", dir);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		fputc(c < 0x20 || c == 0x7f ? '?' : c, b->p.transcript);
	}
	fputc('\n', b->p.transcript);
	fflush(b->p.transcript);
}

/* getaddrinfo with a bound: glibc's asynchronous resolver, cancelled (or
 * abandoned, if it cannot be cancelled) at the deadline. */
static struct addrinfo *resolve(struct bridge *b, long long deadline_ms)
{
	struct gaicb *req = calloc(1, sizeof *req);
	struct addrinfo *hints = calloc(1, sizeof *hints);
	char *port = malloc(8);
	struct gaicb *list[1];
	int r;

	if (req == NULL || hints == NULL || port == NULL) {
		free(req), free(hints), free(port);
		fail(b, BF_IO, "out of memory");
		return NULL;
	}
	snprintf(port, 8, "%d", b->p.port);
	hints->ai_socktype = SOCK_STREAM;
	hints->ai_flags = AI_ADDRCONFIG;
	*req = (struct gaicb){.ar_name = b->host, .ar_service = port,
			      .ar_request = hints};
	list[0] = req;
	if ((r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) == 0) {
		long long left = deadline_ms - tls_now_ms();
		struct timespec ts = {.tv_sec = left / 1000,
				      .tv_nsec = (left % 1000) * 1000000};

		while ((r = gai_error(req)) == EAI_INPROGRESS && left > 0) {
			gai_suspend((const struct gaicb *const *)list, 1, &ts);
			left = deadline_ms - tls_now_ms();
			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000;
		}
		if (r == EAI_INPROGRESS && gai_cancel(req) != EAI_CANCELED) {
			fail(b, BF_DNS,
			     "looking up %s took longer than %d s; check "
			     "/etc/resolv.conf or use the server's IP address",
			     b->host, b->p.timeout);
			return NULL; /* the resolver still owns req: leak it */
		}
	}
	if (r == 0) {
		struct addrinfo *res = req->ar_result;

		free(req), free(hints), free(port);
		return res;
	}
	if (r == EAI_NONAME || r == EAI_NODATA)
		fail(b, BF_DNS,
		     "host name %s not found (DNS); check the spelling of host",
		     b->host);
	else
		fail(b, BF_DNS, "looking up %s failed: %s; check DNS "
				"(/etc/resolv.conf) and the network",
		     b->host, r == EAI_INPROGRESS || r == EAI_CANCELED
				      ? "timed out"
				      : gai_strerror(r));
	free(req), free(hints), free(port);
	return NULL;
}

/* Non-blocking connect to one address until the deadline; fd or -1. */
static int connect_one(const struct addrinfo *ai, long long deadline_ms,
		       int *err)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
					       SOCK_NONBLOCK,
			ai->ai_protocol);
	socklen_t elen = sizeof *err;

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	*err = errno;
	while (*err == EINPROGRESS || *err == EINTR) {
		long long left = deadline_ms - tls_now_ms();
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int r;

		if (left <= 0) {
			*err = ETIMEDOUT;
			break;
		}
		r = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &elen);
			if (*err == 0)
				return fd;
		} else if (r == 0) {
			*err = ETIMEDOUT;
		}
		break;
	}
	close(fd);
	return -1;
}

/* Resolve and connect, each address in turn, all within the timeout. */
static int open_tcp(struct bridge *b)
{
	long long deadline = deadline_in(b, 1);
	struct addrinfo *res = resolve(b, deadline), *ai;
	int err = 0, one = 1;

	if (res == NULL)
		return -1;
	for (ai = res; ai != NULL && b->net_fd < 0; ai = ai->ai_next)
		b->net_fd = connect_one(ai, deadline, &err);
	freeaddrinfo(res);
	if (b->net_fd >= 0) {
		setsockopt(b->net_fd, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof one);
		return 0;
	}
	if (err == ECONNREFUSED)
		return fail(b, BF_REFUSED,
			    "%s refused the connection on port %d: nothing "
			    "listens there; check port (usually 465 for ssl, "
			    "587 for tls, 25 for a local relay)",
			    b->host, b->p.port);
	if (err == ETIMEDOUT)
		return fail(b, BF_CONNECT_TIMEOUT,
			    "no answer from %s port %d within %d s: a "
			    "firewall may drop the traffic; check host, port, "
			    "and that outgoing port %d is open",
			    b->host, b->p.port, b->p.timeout, b->p.port);
	if (err == ENETUNREACH || err == EHOSTUNREACH)
		return fail(b, BF_UNREACHABLE,
			    "%s port %d is unreachable (%s); check the "
			    "network and the host name",
			    b->host, b->p.port, strerror(err));
	return fail(b, BF_REFUSED, "cannot connect to %s port %d: %s",
		    b->host, b->p.port, strerror(err));
}

/* Read from the server, plain or TLS: >0, 0 closed, -1 error, -2 not yet. */
static long net_read(struct bridge *b, void *buf, size_t len)
{
	long n;

	if (b->tls != NULL)
		return tls_read(b->tls, buf, len);
	n = read(b->net_fd, buf, len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -2;
	return n;
}

static int net_write(struct bridge *b, const void *buf, size_t len)
{
	const char *p = buf;
	long long deadline = deadline_in(b, 1);

	if (b->tls != NULL)
		return tls_write_all(b->tls, buf, len, deadline);
	while (len > 0) {
		ssize_t n = send(b->net_fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = {.fd = b->net_fd, .events = POLLOUT};
			long long left = deadline - tls_now_ms();

			if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

/* Length of the first complete reply in buf (last line "ddd " or "ddd"),
 * or 0 when more is needed. */
static size_t complete_reply(const char *buf, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i - start < 4 || buf[start + 3] != '-')
			return i + 1;
		start = i + 1;
	}
	return 0;
}

/* Read one whole reply into b->inbuf (kept there), within the deadline.
 * Returns its length, 0 on timeout with nothing read, -1 on failure. */
static long read_reply(struct bridge *b, long long deadline_ms)
{
	size_t n;

	while ((n = complete_reply(b->inbuf, b->inlen)) == 0) {
		struct pollfd pfd = {.fd = b->net_fd, .events = POLLIN};
		long long left = deadline_ms - tls_now_ms();
		long r;

		if (b->inlen == sizeof b->inbuf)
			return fail(b, BF_TIMEOUT,
				    "the server sent a reply longer than %d "
				    "octets; this is not an SMTP server",
				    INBUF_MAX);
		if (b->tls == NULL || !tls_pending(b->tls)) {
			if (left <= 0 && b->inlen == 0)
				return 0;
			if (left <= 0)
				return fail(b, BF_TIMEOUT,
					    "%s sent an incomplete reply and "
					    "then nothing for %d s",
					    b->host, b->p.timeout);
			if (poll(&pfd, 1, (int)(left > 60000 ? 60000 : left)) ==
			    0)
				continue;
		}
		r = net_read(b, b->inbuf + b->inlen, sizeof b->inbuf - b->inlen);
		if (r == 0 || r == -1)
			return fail(b, BF_CLOSED,
				    "%s closed the connection before replying%s",
				    b->host,
				    b->inlen ? "" : " (nothing was received)");
		if (r > 0)
			b->inlen += (size_t)r;
	}
	return (long)n;
}

/* Drop the first n bytes of inbuf (a reply consumed by the bridge). */
static void consume(struct bridge *b, size_t n)
{
	memmove(b->inbuf, b->inbuf + n, b->inlen - n);
	b->inlen -= n;
}

static int reply_code(const char *r)
{
	if (r[0] < '1' || r[0] > '5' || r[1] < '0' || r[1] > '9' ||
	    r[2] < '0' || r[2] > '9')
		return 0;
	return (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
}

/* The server said nothing: does it wait for a TLS ClientHello?  If a
 * handshake gets anywhere, this port speaks implicit TLS. */
static int probe_tls(struct bridge *b, long long deadline_ms)
{
	struct tls_params none = {.verify = false};
	struct tls_conn *c = NULL;
	char msg[256] = "";
	enum tls_result r = tls_connect(b->net_fd, b->host, &none, deadline_ms,
					&c, msg, sizeof msg);

	tls_close(c);
	if (r == TLS_OK || r == TLS_ERR_HANDSHAKE)
		return fail(b, BF_EXPECTS_SSL,
			    "%s port %d speaks TLS from the first byte "
			    "(implicit TLS): this port expects encryption = "
			    "ssl",
			    b->host, b->p.port);
	return fail(b, BF_TIMEOUT,
		    "%s port %d accepted the connection but sent no SMTP "
		    "greeting within %d s; check that this is an SMTP port",
		    b->host, b->p.port, b->p.timeout);
}

/* Read the greeting; it stays in inbuf for libESMTP unless consumed.  On
 * a plaintext connection, silence for two thirds of the timeout starts the
 * TLS probe, which gets the rest: the whole wait stays within the timeout. */
static long greeting(struct bridge *b)
{
	long long end = deadline_in(b, 1);
	long long wait = b->tls == NULL ? (long long)b->p.timeout * 2000 / 3
					: (long long)b->p.timeout * 1000;
	long n = read_reply(b, tls_now_ms() + wait);

	if (n == 0 && b->tls == NULL)
		return probe_tls(b, end);
	if (n == 0)
		return fail(b, BF_TIMEOUT,
			    "%s port %d sent no SMTP greeting within %d s "
			    "after the TLS handshake",
			    b->host, b->p.port, b->p.timeout);
	if (n < 0)
		return -1;
	if (reply_code(b->inbuf) != 220) {
		keep_reply(b, b->inbuf, (size_t)n);
		transcript(b, "<-", b->inbuf, (size_t)n);
		return fail(b, BF_GREETING,
			    "%s refused the session at its greeting: %s",
			    b->host, b->st.reply);
	}
	return n;
}

/* Send one command line and read its whole reply (consumed). */
static int command(struct bridge *b, const char *line, int expect)
{
	long n;

	transcript(b, "->", line, strlen(line));
	if (net_write(b, line, strlen(line)) != 0)
		return fail(b, BF_CLOSED, "%s closed the connection", b->host);
	n = read_reply(b, deadline_in(b, 1));
	if (n == 0)
		return fail(b, BF_TIMEOUT, "%s did not answer %.4s within %d s",
			    b->host, line, b->p.timeout);
	if (n < 0)
		return -1;
	keep_reply(b, b->inbuf, (size_t)n);
	for (long i = 0, s = 0; i < n; i++)
		if (b->inbuf[i] == '\n') {
			transcript(b, "<-", b->inbuf + s, (size_t)(i - s));
			s = i + 1;
		}
	if (reply_code(b->inbuf) != expect) {
		consume(b, (size_t)n);
		return -2;
	}
	return (int)n;
}

/* Whether a multi-line EHLO reply lists keyword (e.g. "STARTTLS"). */
static bool ehlo_has(const char *r, size_t len, const char *keyword)
{
	size_t kl = strlen(keyword);

	for (size_t s = 0; s + 4 < len;) {
		const char *nl = memchr(r + s, '\n', len - s);
		size_t e = nl ? (size_t)(nl - r) : len;

		if (e - (s + 4) >= kl && strncasecmp(r + s + 4, keyword, kl) == 0 &&
		    (e - (s + 4) == kl || strchr(" \r=", r[s + 4 + kl])))
			return true;
		s = e + 1;
	}
	return false;
}

/* TLS over the connected socket; failures explained per cause. */
static int handshake(struct bridge *b)
{
	struct tls_params tp = b->p.tls;
	char msg[900] = "";
	enum tls_result r;

	tp.ca_file = b->ca_file;
	tp.fingerprint = b->fingerprint;
	r = tls_connect(b->net_fd, b->host, &tp, deadline_in(b, 1), &b->tls,
			msg, sizeof msg);
	switch (r) {
	case TLS_OK:
		b->st.used_tls = true;
		tls_describe(b->tls, b->st.tls_summary,
			     sizeof b->st.tls_summary);
		transcript(b, "==", b->st.tls_summary,
			   strlen(b->st.tls_summary));
		return 0;
	case TLS_ERR_PLAINTEXT:
		return fail(b, BF_EXPECTS_TLS,
			    "%s port %d speaks plaintext SMTP first, not "
			    "implicit TLS: this port expects encryption = tls "
			    "(STARTTLS); ssl is usually port 465",
			    b->host, b->p.port);
	case TLS_ERR_CERT:
		return fail(b, BF_TLS_CERT, "TLS with %s refused: %s", b->host,
			    msg);
	case TLS_ERR_PIN:
		return fail(b, BF_TLS_PIN, "TLS with %s refused: %s", b->host,
			    msg);
	case TLS_ERR_TIMEOUT:
		return fail(b, BF_TIMEOUT,
			    "TLS handshake with %s port %d got no answer within "
			    "%d s",
			    b->host, b->p.port, b->p.timeout);
	default:
		return fail(b, BF_TLS_HANDSHAKE,
			    "TLS handshake with %s port %d failed: %s; the "
			    "server may need an older or newer TLS version "
			    "(TLS 1.2 is the minimum)",
			    b->host, b->p.port, msg);
	}
}

/* RFC 3207: greeting, EHLO, STARTTLS, handshake.  The greeting is kept so
 * that libESMTP, which is told nothing of this, starts with it. */
static int starttls(struct bridge *b)
{
	char greet[INBUF_MAX], line[300];
	size_t glen;
	long n;

	if ((n = greeting(b)) < 0)
		return -1;
	glen = (size_t)n;
	memcpy(greet, b->inbuf, glen);
	transcript(b, "<-", greet, glen);
	b->greeting_shown = true;
	consume(b, glen);
	snprintf(line, sizeof line, "EHLO %s\r\n", b->ehlo_name);
	if ((n = command(b, line, 250)) < 0)
		return n == -2 ? fail(b, BF_GREETING,
				      "%s refused EHLO: %s", b->host,
				      b->st.reply)
			       : -1;
	if (!ehlo_has(b->inbuf, (size_t)n, "STARTTLS"))
		return fail(b, BF_NO_STARTTLS,
			    "%s port %d does not offer STARTTLS, and mail is "
			    "never sent unencrypted with encryption = tls; use "
			    "encryption = ssl (port 465) or a port that offers "
			    "STARTTLS (587)",
			    b->host, b->p.port);
	consume(b, (size_t)n);
	if ((n = command(b, "STARTTLS\r\n", 220)) < 0)
		return n == -2 ? fail(b, BF_NO_STARTTLS,
				      "%s refused STARTTLS: %s", b->host,
				      b->st.reply)
			       : -1;
	consume(b, (size_t)n);
	b->st.reply[0] = '\0';
	if (b->inlen != 0) /* bytes after 220 would be injected plaintext */
		return fail(b, BF_TLS_HANDSHAKE,
			    "%s sent data before the TLS handshake "
			    "(possible STARTTLS injection); refusing",
			    b->host);
	if (handshake(b) != 0)
		return -1;
	memcpy(b->inbuf, greet, glen);
	b->inlen = glen;
	return 0;
}

static void bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	tls_close(b->tls);
	if (b->net_fd >= 0)
		close(b->net_fd);
	if (b->app_fd >= 0)
		close(b->app_fd);
	free(b->host), free(b->ehlo_name), free(b->ca_file);
	free(b->fingerprint), free(b->pending);
	free(b);
}

static char *dup_or_null(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

struct bridge *bridge_open(const struct bridge_params *params,
			   struct bridge_status *st)
{
	struct bridge *b = calloc(1, sizeof *b);
	int r = -1;

	memset(st, 0, sizeof *st);
	if (b == NULL) {
		st->fail = BF_IO;
		snprintf(st->msg, sizeof st->msg, "out of memory");
		return NULL;
	}
	b->p = *params;
	b->net_fd = b->app_fd = -1;
	b->host = strdup(params->host);
	b->ehlo_name = strdup(params->ehlo_name ? params->ehlo_name
						: "localhost");
	b->ca_file = dup_or_null(params->tls.ca_file);
	b->fingerprint = dup_or_null(params->tls.fingerprint);
	if (b->host == NULL || b->ehlo_name == NULL)
		fail(b, BF_IO, "out of memory");
	else if (open_tcp(b) == 0) {
		if (b->p.mode == BRIDGE_STARTTLS)
			r = starttls(b);
		else if (b->p.mode == BRIDGE_SSL && handshake(b) != 0)
			r = -1;
		else
			r = greeting(b) > 0 ? 0 : -1;
	}
	if (r != 0) {
		*st = b->st;
		bridge_free(b);
		return NULL;
	}
	return b;
}

/* ---- the relay ---------------------------------------------------- */

static int push_cmd(struct bridge *b, enum cmd c)
{
	if (b->pcount == b->pcap) {
		size_t ncap = b->pcap ? b->pcap * 2 : 64;
		enum cmd *n = malloc(ncap * sizeof *n);

		if (n == NULL)
			return fail(b, BF_IO, "out of memory");
		for (size_t i = 0; i < b->pcount; i++)
			n[i] = b->pending[(b->phead + i) % b->pcap];
		free(b->pending);
		b->pending = n;
		b->pcap = ncap;
		b->phead = 0;
	}
	b->pending[(b->phead + b->pcount++) % b->pcap] = c;
	return 0;
}

static enum cmd pop_cmd(struct bridge *b, bool *any)
{
	enum cmd c;

	*any = b->pcount > 0;
	if (!*any)
		return C_OTHER;
	c = b->pending[b->phead];
	b->phead = (b->phead + 1) % b->pcap;
	b->pcount--;
	return c;
}

static bool verb_is(const char *line, size_t len, const char *verb)
{
	size_t vl = strlen(verb);

	return len >= vl && strncasecmp(line, verb, vl) == 0 &&
	       (len == vl || line[vl] == ' ' || line[vl] == '\r' ||
		line[vl] == '\n');
}

/* Stop the session: a polite QUIT to the server, and libESMTP sees EOF. */
static void stop_session(struct bridge *b)
{
	if (!b->quit_sent) {
		transcript(b, "->", "QUIT", 4);
		net_write(b, "QUIT\r\n", 6);
		b->quit_sent = true;
	}
	b->stop = true;
}

/* A whole command line from libESMTP: classify, guard, forward. */
static int client_line(struct bridge *b, const char *line, size_t len)
{
	enum cmd c = C_OTHER;

	if (b->in_auth) {
		c = C_AUTH;
		transcript(b, "->", "(AUTH response masked)", 22);
	} else if (verb_is(line, len, "AUTH")) {
		size_t m = 5;

		while (m < len && line[m] != ' ' && line[m] != '\r')
			m++;
		c = C_AUTH;
		b->in_auth = true;
		transcript(b, "->", line, m); /* "AUTH PLAIN", never more */
	} else {
		transcript(b, "->", line, len);
		if (verb_is(line, len, "EHLO") || verb_is(line, len, "HELO"))
			c = C_EHLO;
		else if (verb_is(line, len, "MAIL"))
			c = C_MAIL;
		else if (verb_is(line, len, "RCPT"))
			c = C_RCPT;
		else if (verb_is(line, len, "DATA"))
			c = C_DATA;
		else if (verb_is(line, len, "QUIT"))
			c = C_QUIT;
		else if (verb_is(line, len, "BDAT")) {
			c = C_BDAT;
			b->chunk_left = strtoull(line + 5, NULL, 10);
			b->cs = b->chunk_left ? CS_CHUNK : CS_LINE;
		}
	}
	if (c == C_MAIL && b->p.require_auth && !b->st.authenticated) {
		if (b->st.auth_offered[0] == '\0')
			fail(b, BF_NO_AUTH,
			     "%s offers no authentication (AUTH) after EHLO, "
			     "but a username is configured; check the port "
			     "(587 or 465 for submission) and encryption",
			     b->host);
		else
			fail(b, BF_NO_AUTH,
			     "%s offers only AUTH %s, none of which switchmail "
			     "can use (PLAIN, LOGIN, CRAM-MD5)",
			     b->host, b->st.auth_offered);
		stop_session(b);
		return -1;
	}
	if (c == C_QUIT)
		b->quit_sent = true;
	if (push_cmd(b, c) != 0 || net_write(b, line, len) != 0)
		return fail(b, BF_CLOSED, "the connection to %s broke",
			    b->host);
	return 0;
}

/* DATA body: forward up to and including the "\r\n.\r\n" terminator. */
static size_t body_span(struct bridge *b, const char *p, size_t n, bool *end)
{
	unsigned long long h = b->body_hist;

	*end = false;
	for (size_t i = 0; i < n; i++) {
		h = (h << 8) | (unsigned char)p[i];
		if ((h & 0xffffffffffULL) == 0x0d0a2e0d0aULL) {
			*end = true;
			b->body_hist = 0;
			return i + 1;
		}
	}
	b->body_hist = h;
	return n;
}

/* Bytes from libESMTP: command lines, a DATA body, or a BDAT chunk. */
static int client_bytes(struct bridge *b, const char *p, size_t n)
{
	while (n > 0 && !b->stop) {
		size_t take;
		bool end = false;

		if (b->cs == CS_CHUNK || b->cs == CS_BODY) {
			if (b->cs == CS_CHUNK) {
				take = n < b->chunk_left ? n : b->chunk_left;
				b->chunk_left -= take;
				end = b->chunk_left == 0;
			} else {
				take = body_span(b, p, n, &end);
			}
			b->body_bytes += take;
			if (net_write(b, p, take) != 0)
				return fail(b, BF_CLOSED,
					    "the connection to %s broke during "
					    "the message transfer",
					    b->host);
			if (end && b->cs == CS_BODY) {
				char note[80];
				int len = snprintf(note, sizeof note,
						   "(message: %llu octets)",
						   b->body_bytes);

				transcript(b, "->", note, (size_t)len);
				push_cmd(b, C_DATA_END);
			}
			if (end)
				b->cs = CS_LINE;
		} else {
			const char *nl = memchr(p, '\n', n);

			take = nl ? (size_t)(nl - p) + 1 : n;
			if (b->clen + take > sizeof b->cline)
				return fail(b, BF_IO, "internal: a command line "
						      "over %d octets",
					    LINE_MAX_KEPT);
			memcpy(b->cline + b->clen, p, take);
			b->clen += take;
			if (nl != NULL) {
				size_t len = b->clen;

				b->clen = 0;
				if (client_line(b, b->cline, len) != 0)
					return -1;
			}
		}
		p += take;
		n -= take;
	}
	return 0;
}

/* The mechanisms of an EHLO reply's AUTH line, for error messages. */
static void note_auth(struct bridge *b, const char *line, size_t len)
{
	if (len > 9 && strncasecmp(line + 4, "AUTH", 4) == 0 &&
	    (line[8] == ' ' || line[8] == '=')) {
		size_t n = len - 9;

		while (n > 0 && (line[9 + n - 1] == '\r' ||
				 line[9 + n - 1] == '\n'))
			n--;
		if (n >= sizeof b->st.auth_offered)
			n = sizeof b->st.auth_offered - 1;
		memcpy(b->st.auth_offered, line + 9, n);
		b->st.auth_offered[n] = '\0';
	}
}

/* The keywords we care about in an EHLO reply (one keyword per line). */
static unsigned ehlo_keywords(const char *r, size_t len)
{
	static const struct {
		const char *kw;
		unsigned bit;
	} kws[] = {{"8BITMIME", BRIDGE_EXT_8BITMIME},
		   {"SMTPUTF8", BRIDGE_EXT_SMTPUTF8},
		   {"PIPELINING", BRIDGE_EXT_PIPELINING},
		   {"CHUNKING", BRIDGE_EXT_CHUNKING},
		   {"SIZE", BRIDGE_EXT_SIZE}};
	unsigned bits = 0;

	for (size_t k = 0; k < sizeof kws / sizeof kws[0]; k++)
		if (ehlo_has(r, len, kws[k].kw))
			bits |= kws[k].bit;
	return bits;
}

unsigned bridge_extensions(const struct bridge *b)
{
	return atomic_load(&((struct bridge *)b)->ext);
}

/* A whole reply from the server, matched with the oldest pending command. */
static void server_reply(struct bridge *b)
{
	bool any;
	enum cmd c = pop_cmd(b, &any);
	int code = reply_code(b->reply);

	if (!any || c != C_AUTH)
		keep_reply(b, b->reply, b->rlen);
	if (c == C_EHLO && code == 250)
		atomic_store(&b->ext, ehlo_keywords(b->reply, b->rlen));
	if (c == C_DATA && code == 354) {
		b->cs = CS_BODY;
		b->body_hist = 0x0d0a; /* the body starts at a line start */
		b->body_bytes = 0;
	} else if (c == C_AUTH && code == 235) {
		b->in_auth = false;
		b->st.authenticated = true;
	} else if (c == C_AUTH && code != 334) {
		b->in_auth = false;
		keep_reply(b, b->reply, b->rlen);
		fail(b, BF_AUTH, "%s refused the login: %s", b->host,
		     b->st.reply);
		stop_session(b);
	}
	b->rlen = 0;
}

/* One reply line: kept (bounded) for the reply it belongs to. */
static int server_line(struct bridge *b, const char *line, size_t len)
{
	transcript(b, "<-", line, len);
	note_auth(b, line, len);
	if (b->rlen + len < sizeof b->reply) {
		memcpy(b->reply + b->rlen, line, len);
		b->rlen += len;
	}
	if (len < 4 || line[3] != '-')
		server_reply(b);
	return 0;
}

/* Bytes from the server: parsed line by line, then passed to libESMTP. */
static int server_bytes(struct bridge *b, const char *p, size_t n)
{
	const char *start = p;
	size_t total = n;

	while (n > 0 && !b->stop) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;

		if (b->slen + take > sizeof b->sline) {
			fail(b, BF_TIMEOUT,
			     "%s sent a reply line over %d octets; this is not "
			     "a well-behaved SMTP server",
			     b->host, BRIDGE_REPLY_MAX);
			stop_session(b);
			return -1;
		}
		memcpy(b->sline + b->slen, p, take);
		b->slen += take;
		if (nl != NULL) {
			server_line(b, b->sline, b->slen);
			b->slen = 0;
		}
		p += take;
		n -= take;
	}
	if (b->stop)
		return -1;
	while (total > 0) { /* our end is blocking: this writes it all */
		ssize_t w = send(b->app_fd, start, total, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		start += w;
		total -= (size_t)w;
	}
	return 0;
}

/* Server → libESMTP: drain what TLS holds, not only what poll shows. */
static int from_server(struct bridge *b)
{
	char buf[16384];

	do {
		long n = net_read(b, buf, sizeof buf);

		if (n == -2)
			return 0;
		if (n <= 0) {
			if (!b->quit_sent)
				fail(b, BF_CLOSED,
				     "%s closed the connection%s%s", b->host,
				     b->st.reply[0] ? " after: " : "",
				     b->st.reply);
			return -1;
		}
		if (server_bytes(b, buf, (size_t)n) != 0)
			return -1;
	} while (b->tls != NULL && tls_pending(b->tls));
	return 0;
}

/* libESMTP → server; EOF means libESMTP is done with the session. */
static int from_client(struct bridge *b)
{
	char buf[65536];
	ssize_t n = read(b->app_fd, buf, sizeof buf);

	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0)
		return -1;
	return client_bytes(b, buf, (size_t)n);
}

static void *relay(void *arg)
{
	struct bridge *b = arg;
	/* libESMTP bounds every wait itself; this only catches a stall of
	 * both sides well past those bounds. */
	int idle_ms = b->p.timeout * 1000 * 5 + 10000;

	while (!b->stop) {
		struct pollfd pfd[2] = {{.fd = b->app_fd, .events = POLLIN},
					{.fd = b->net_fd, .events = POLLIN}};
		int r = (b->tls != NULL && tls_pending(b->tls))
				? 1
				: poll(pfd, 2, idle_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fail(b, BF_TIMEOUT, "the session with %s stalled",
			     b->host);
			break;
		}
		if ((pfd[1].revents || (b->tls && tls_pending(b->tls))) &&
		    from_server(b) != 0)
			break;
		if (pfd[0].revents && from_client(b) != 0)
			break;
	}
	tls_close(b->tls);
	b->tls = NULL;
	shutdown(b->net_fd, SHUT_RDWR);
	shutdown(b->app_fd, SHUT_RDWR); /* libESMTP sees EOF */
	return NULL;
}

/* connect() from libESMTP: its socket becomes our private channel. */
static int take_over(void *arg, int fd)
{
	struct bridge *b = arg;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	if (dup2(sv[0], fd) < 0) {
		close(sv[0]), close(sv[1]);
		return -1;
	}
	close(sv[0]);
	b->app_fd = sv[1];
	/* The greeting (and anything after it) was read by the bridge. */
	FILE *t = b->p.transcript;
	if (b->greeting_shown)
		b->p.transcript = NULL; /* shown before STARTTLS already */
	r = b->inlen > 0 ? server_bytes(b, b->inbuf, b->inlen) : 0;
	b->p.transcript = t;
	if (r != 0) {
		errno = ECONNRESET;
		return -1;
	}
	b->inlen = 0;
	if (pthread_create(&b->thread, NULL, relay, b) != 0) {
		errno = EAGAIN;
		return -1;
	}
	b->thread_started = true;
	return 0;
}

int bridge_attach(struct bridge *b, struct bridge_status *st)
{
	(void)st;
	interpose_arm(take_over, b);
	return 0;
}

void bridge_close(struct bridge *b, struct bridge_status *st)
{
	if (b == NULL)
		return;
	interpose_arm(NULL, NULL);
	if (b->thread_started) {
		shutdown(b->app_fd, SHUT_WR);
		pthread_join(b->thread, NULL);
	}
	if (st != NULL)
		*st = b->st;
	bridge_free(b);
}

const char *bridge_fail_name(enum bridge_fail f)
{
	static const char *const names[] = {
		[BF_NONE] = "none",
		[BF_DNS] = "dns",
		[BF_REFUSED] = "connection-refused",
		[BF_UNREACHABLE] = "unreachable",
		[BF_CONNECT_TIMEOUT] = "connect-timeout",
		[BF_TIMEOUT] = "timeout",
		[BF_CLOSED] = "connection-closed",
		[BF_GREETING] = "greeting",
		[BF_NO_STARTTLS] = "no-starttls",
		[BF_EXPECTS_TLS] = "port-expects-tls",
		[BF_EXPECTS_SSL] = "port-expects-ssl",
		[BF_TLS_CERT] = "tls-certificate",
		[BF_TLS_PIN] = "tls-pin",
		[BF_TLS_HANDSHAKE] = "tls-handshake",
		[BF_AUTH] = "auth",
		[BF_NO_AUTH] = "no-auth",
		[BF_IO] = "local-error",
	};

	return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}
