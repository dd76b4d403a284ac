/*
 * net.c - bounded DNS and connect, SMTP reply reading, the greeting probe,
 * TLS and STARTTLS for one connection (see net.h).  Shared by the bridge
 * (the transport under libESMTP) and the probe (switchmailctl test), so
 * that both say exactly the same thing about the same failure.
 */
#include "net.h"
#include "text.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

void net_init(struct net_conn *c, const char *host, int port, int timeout,
	      const struct tls_params *tls, FILE *transcript)
{
	c->host = host;
	c->port = port;
	c->timeout = timeout;
	c->tls = *tls;
	c->transcript = transcript;
	c->fd = -1;
	c->tc = NULL;
	c->inlen = 0;
	c->fail = NF_NONE;
	c->msg[0] = c->reply[0] = c->tls_summary[0] = '\0';
	c->used_tls = false;
}

const char *net_fail_name(enum net_fail f)
{
	static const char *const names[NF_COUNT] = {
	    [NF_NONE] = "none",
	    [NF_DNS] = "dns",
	    [NF_REFUSED] = "connection-refused",
	    [NF_UNREACHABLE] = "unreachable",
	    [NF_CONNECT_TIMEOUT] = "connect-timeout",
	    [NF_TIMEOUT] = "timeout",
	    [NF_CLOSED] = "connection-closed",
	    [NF_GREETING] = "greeting",
	    [NF_NO_STARTTLS] = "no-starttls",
	    [NF_EXPECTS_TLS] = "port-expects-tls",
	    [NF_EXPECTS_SSL] = "port-expects-ssl",
	    [NF_TLS_CERT] = "tls-certificate",
	    [NF_TLS_PIN] = "tls-pin",
	    [NF_TLS_HANDSHAKE] = "tls-handshake",
	    [NF_AUTH] = "auth",
	    [NF_NO_AUTH] = "no-auth",
	    [NF_SENDER] = "sender-refused",
	    [NF_IO] = "local-error",
	};

	return (unsigned)f < NF_COUNT ? names[f] : "?";
}

int net_error(struct net_conn *c, enum net_fail f, const char *fmt, ...)
{
	va_list ap;

	if (c->fail != NF_NONE)
		return -1;
	c->fail = f;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	return -1;
}

long long net_deadline(const struct net_conn *c)
{
	return tls_now_ms() + (long long)c->timeout * 1000;
}

void net_keep_reply(struct net_conn *c, const char *r, size_t len)
{
	const unsigned char *u = (const unsigned char *)r;
	size_t o = 0;

	for (size_t i = 0; i < len && o + 8 < sizeof c->reply;) {
		size_t k;

		if (u[i] == '\r' || u[i] == '\n') {
			if (u[i] == '\n' && i + 1 < len)
				o += (size_t)snprintf(c->reply + o,
						      sizeof c->reply - o, " / ");
			i++;
			continue;
		}
		if ((k = text_safe_len(u + i, len - i)) == 0) {
			c->reply[o++] = '?'; /* controls, malformed UTF-8 */
			i++;
			continue;
		}
		memcpy(c->reply + o, r + i, k);
		o += k;
		i += k;
	}
	c->reply[o] = '\0';
}

void net_transcript(struct net_conn *c, const char *dir, const char *line,
		    size_t len)
{
	if (c->transcript == NULL)
		return;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	fprintf(c->transcript, "%s ", dir);
	for (size_t i = 0; i < len;) {
		size_t k = text_safe_len((const unsigned char *)line + i, len - i);

		if (k == 0) {
			fputc('?', c->transcript);
			i++;
		} else {
			fwrite(line + i, 1, k, c->transcript);
			i += k;
		}
	}
	fputc('\n', c->transcript);
	fflush(c->transcript);
}

/* Wait for the asynchronous lookup until deadline_ms; its last status. */
static int gai_wait(struct gaicb **list, long long deadline_ms)
{
	long long left = deadline_ms - tls_now_ms();
	int r;

	while ((r = gai_error(list[0])) == EAI_INPROGRESS && left > 0) {
		struct timespec ts = {.tv_sec = left / 1000,
				      .tv_nsec = (left % 1000) * 1000000};

		gai_suspend((const struct gaicb *const *)list, 1, &ts);
		left = deadline_ms - tls_now_ms();
	}
	return r;
}

/* The failure for a lookup that ended with status r. */
static void dns_failed(struct net_conn *c, int r)
{
	if (r == EAI_NONAME || r == EAI_NODATA)
		net_error(c, NF_DNS,
			  "host name %s not found (DNS); check the spelling "
			  "of host",
			  c->host);
	else
		net_error(c, NF_DNS,
			  "looking up %s failed: %s; check DNS "
			  "(/etc/resolv.conf) and the network",
			  c->host,
			  r == EAI_INPROGRESS || r == EAI_CANCELED
			      ? "timed out"
			      : gai_strerror(r));
}

/* getaddrinfo with a bound: glibc's asynchronous resolver, cancelled (or
 * abandoned, if it cannot be cancelled) at the deadline. */
struct addrinfo *net_resolve(struct net_conn *c, long long deadline_ms)
{
	struct gaicb *req = calloc(1, sizeof *req);
	struct addrinfo *hints = calloc(1, sizeof *hints);
	char *port = malloc(8);
	struct gaicb *list[1] = {req};
	struct addrinfo *res = NULL;
	int r;

	if (req == NULL || hints == NULL || port == NULL) {
		free(req), free(hints), free(port);
		net_error(c, NF_IO, "out of memory");
		return NULL;
	}
	snprintf(port, 8, "%d", c->port);
	hints->ai_socktype = SOCK_STREAM;
	hints->ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(c->host, port, hints, &res) == 0) {
		/* an IP address: no resolver thread, no DNS */
		free(req), free(hints), free(port);
		return res;
	}
	hints->ai_flags = AI_ADDRCONFIG;
	*req = (struct gaicb){
	    .ar_name = c->host, .ar_service = port, .ar_request = hints};
	if ((r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) == 0) {
		r = gai_wait(list, deadline_ms);
		if (r == EAI_INPROGRESS && gai_cancel(req) != EAI_CANCELED) {
			net_error(c, NF_DNS,
				  "looking up %s took longer than %d s; check "
				  "/etc/resolv.conf or use the server's IP "
				  "address",
				  c->host, c->timeout);
			return NULL; /* the resolver still owns req: leak it */
		}
	}
	if (r == 0)
		res = req->ar_result;
	else
		dns_failed(c, r);
	free(req), free(hints), free(port);
	return res;
}

/* Non-blocking connect to one address until the deadline; fd or -1. */
static int connect_one(const struct addrinfo *ai, long long deadline_ms,
		       int *err)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
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

/* The failure for a connect that ended with errno err. */
static int connect_failed(struct net_conn *c, int err)
{
	if (err == ECONNREFUSED)
		return net_error(c, NF_REFUSED,
				 "%s refused the connection on port %d: "
				 "nothing listens there; check port (usually "
				 "465 for ssl, 587 for tls, 25 for a local "
				 "relay)",
				 c->host, c->port);
	if (err == ETIMEDOUT)
		return net_error(c, NF_CONNECT_TIMEOUT,
				 "no answer from %s port %d within %d s: a "
				 "firewall may drop the traffic; check host, "
				 "port, and that outgoing port %d is open",
				 c->host, c->port, c->timeout, c->port);
	if (err == ENETUNREACH || err == EHOSTUNREACH)
		return net_error(c, NF_UNREACHABLE,
				 "%s port %d is unreachable (%s); check the "
				 "network and the host name",
				 c->host, c->port, strerror(err));
	return net_error(c, NF_REFUSED, "cannot connect to %s port %d: %s",
			 c->host, c->port, strerror(err));
}

int net_connect(struct net_conn *c, const struct addrinfo *res,
		long long deadline_ms, char *addr, size_t addrsize)
{
	const struct addrinfo *ai;
	int err = 0, one = 1;

	for (ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next)
		c->fd = connect_one(ai, deadline_ms, &err);
	if (c->fd < 0)
		return connect_failed(c, err);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (addr != NULL) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;

		addr[0] = '\0';
		if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
			getnameinfo((struct sockaddr *)&ss, sl, addr,
				    (socklen_t)addrsize, NULL, 0,
				    NI_NUMERICHOST);
	}
	return 0;
}

int net_open_tcp(struct net_conn *c)
{
	long long deadline = net_deadline(c);
	struct addrinfo *res = net_resolve(c, deadline);
	int r;

	if (res == NULL)
		return -1;
	r = net_connect(c, res, deadline, NULL, 0);
	freeaddrinfo(res);
	return r;
}

/* Acknowledge what was just read at once.  A server that writes a reply
 * in several small pieces (aiosmtpd writes each EHLO line apart) with Nagle
 * on waits for our ACK of the first piece before sending the rest, and a
 * delayed ACK would make that 40 ms per reply (DESIGN §6.10). */
static void quick_ack(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

long net_read(struct net_conn *c, void *buf, size_t len)
{
	long n;

	if (c->tc != NULL)
		n = tls_read(c->tc, buf, len);
	else if ((n = read(c->fd, buf, len)) < 0 &&
		 (errno == EAGAIN || errno == EINTR))
		n = -2;
	if (n > 0)
		quick_ack(c->fd);
	return n;
}

int net_write(struct net_conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	long long deadline = net_deadline(c);

	if (c->tc != NULL)
		return tls_write_all(c->tc, buf, len, deadline);
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
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

/* Wait for server bytes until deadline_ms: 1 readable, 0 timed out,
 * -1 failure set. */
static int wait_readable(struct net_conn *c, long long deadline_ms)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	long long left = deadline_ms - tls_now_ms();

	if (c->tc != NULL && tls_pending(c->tc))
		return 1;
	if (left <= 0 && c->inlen == 0)
		return 0;
	if (left <= 0)
		return net_error(c, NF_TIMEOUT,
				 "%s sent an incomplete reply and then nothing "
				 "for %d s",
				 c->host, c->timeout);
	return poll(&pfd, 1, (int)(left > 60000 ? 60000 : left)) == 0 ? 2 : 1;
}

long net_read_reply(struct net_conn *c, long long deadline_ms)
{
	size_t n;

	while ((n = complete_reply(c->inbuf, c->inlen)) == 0) {
		long r;
		int w;

		if (c->inlen == sizeof c->inbuf)
			return net_error(
			    c, NF_TIMEOUT,
			    "the server sent a reply longer than "
			    "%d octets; this is not an SMTP server",
			    NET_INBUF_MAX);
		if ((w = wait_readable(c, deadline_ms)) <= 0)
			return w;
		if (w == 2)
			continue;
		r = net_read(c, c->inbuf + c->inlen,
			     sizeof c->inbuf - c->inlen);
		if (r == 0 || r == -1)
			return net_error(
			    c, NF_CLOSED,
			    "%s closed the connection before "
			    "replying%s",
			    c->host, c->inlen ? "" : " (nothing was received)");
		if (r > 0)
			c->inlen += (size_t)r;
	}
	return (long)n;
}

void net_consume(struct net_conn *c, size_t n)
{
	memmove(c->inbuf, c->inbuf + n, c->inlen - n);
	c->inlen -= n;
}

int net_reply_code(const char *r)
{
	if (r[0] < '1' || r[0] > '5' || r[1] < '0' || r[1] > '9' ||
	    r[2] < '0' || r[2] > '9')
		return 0;
	return (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
}

/* The server said nothing: does it wait for a TLS ClientHello?  If a
 * handshake gets anywhere, this port speaks implicit TLS. */
static int probe_tls(struct net_conn *c, long long deadline_ms)
{
	struct tls_params none = {.verify = false};
	struct tls_conn *t = NULL;
	char msg[256] = "";
	enum tls_result r = tls_connect(c->fd, c->host, &none, deadline_ms, &t,
					msg, sizeof msg);

	tls_close(t);
	if (r == TLS_OK || r == TLS_ERR_HANDSHAKE)
		return net_error(c, NF_EXPECTS_SSL,
				 "%s port %d speaks TLS from the first byte "
				 "(implicit TLS): this port expects encryption "
				 "= ssl",
				 c->host, c->port);
	return net_error(
	    c, NF_TIMEOUT,
	    "%s port %d accepted the connection but sent no SMTP "
	    "greeting within %d s; check that this is an SMTP port",
	    c->host, c->port, c->timeout);
}

/* On a plaintext connection, silence for two thirds of the timeout starts
 * the TLS probe, which gets the rest: the whole wait stays within the
 * timeout. */
long net_greeting(struct net_conn *c)
{
	long long end = net_deadline(c);
	long long wait = c->tc == NULL ? (long long)c->timeout * 2000 / 3
				       : (long long)c->timeout * 1000;
	long n = net_read_reply(c, tls_now_ms() + wait);

	if (n == 0 && c->tc == NULL)
		return probe_tls(c, end);
	if (n == 0)
		return net_error(c, NF_TIMEOUT,
				 "%s port %d sent no SMTP greeting within %d s "
				 "after the TLS handshake",
				 c->host, c->port, c->timeout);
	if (n < 0)
		return -1;
	if (net_reply_code(c->inbuf) != 220) {
		net_keep_reply(c, c->inbuf, (size_t)n);
		net_transcript(c, "<-", c->inbuf, (size_t)n);
		return net_error(c, NF_GREETING,
				 "%s refused the session at its greeting: %s",
				 c->host, c->reply);
	}
	return n;
}

long net_command(struct net_conn *c, const char *line, const char *shown,
		 int expect)
{
	long n;

	net_transcript(c, "->", shown ? shown : line,
		       strlen(shown ? shown : line));
	if (net_write(c, line, strlen(line)) != 0)
		return net_error(c, NF_CLOSED, "%s closed the connection",
				 c->host);
	n = net_read_reply(c, net_deadline(c));
	if (n == 0)
		return net_error(c, NF_TIMEOUT,
				 "%s did not answer %.4s within %d s", c->host,
				 shown ? shown : line, c->timeout);
	if (n < 0)
		return -1;
	net_keep_reply(c, c->inbuf, (size_t)n);
	for (long i = 0, s = 0; i < n; i++)
		if (c->inbuf[i] == '\n') {
			net_transcript(c, "<-", c->inbuf + s, (size_t)(i - s));
			s = i + 1;
		}
	if (expect != 0 && net_reply_code(c->inbuf) != expect) {
		net_consume(c, (size_t)n);
		return -2;
	}
	return n;
}

bool net_ehlo_has(const char *r, size_t len, const char *keyword)
{
	size_t kl = strlen(keyword);

	for (size_t s = 0; s + 4 < len;) {
		const char *nl = memchr(r + s, '\n', len - s);
		size_t e = nl ? (size_t)(nl - r) : len;

		if (e - (s + 4) >= kl &&
		    strncasecmp(r + s + 4, keyword, kl) == 0 &&
		    (e - (s + 4) == kl || strchr(" \r=", r[s + 4 + kl])))
			return true;
		s = e + 1;
	}
	return false;
}

int net_handshake(struct net_conn *c)
{
	char msg[900] = "";
	enum tls_result r = tls_connect(
	    c->fd, c->host, &c->tls, net_deadline(c), &c->tc, msg, sizeof msg);

	switch (r) {
	case TLS_OK:
		c->used_tls = true;
		tls_describe(c->tc, c->tls_summary, sizeof c->tls_summary);
		net_transcript(c, "==", c->tls_summary, strlen(c->tls_summary));
		return 0;
	case TLS_ERR_PLAINTEXT:
		return net_error(c, NF_EXPECTS_TLS,
				 "%s port %d speaks plaintext SMTP first, not "
				 "implicit TLS: this port expects encryption = "
				 "tls (STARTTLS); ssl is usually port 465",
				 c->host, c->port);
	case TLS_ERR_CERT:
		return net_error(c, NF_TLS_CERT, "TLS with %s refused: %s",
				 c->host, msg);
	case TLS_ERR_PIN:
		return net_error(c, NF_TLS_PIN, "TLS with %s refused: %s",
				 c->host, msg);
	case TLS_ERR_TIMEOUT:
		return net_error(c, NF_TIMEOUT,
				 "TLS handshake with %s port %d got no answer "
				 "within %d s",
				 c->host, c->port, c->timeout);
	default:
		return net_error(
		    c, NF_TLS_HANDSHAKE,
		    "TLS handshake with %s port %d failed: %s; the "
		    "server may need an older or newer TLS version "
		    "(TLS 1.2 is the minimum)",
		    c->host, c->port, msg);
	}
}

int net_starttls(struct net_conn *c, const char *ehlo_name)
{
	char line[300];
	long n;

	snprintf(line, sizeof line, "EHLO %s\r\n", ehlo_name);
	if ((n = net_command(c, line, NULL, 250)) < 0)
		return n == -2
			   ? net_error(c, NF_GREETING, "%s refused EHLO: %s",
				       c->host, c->reply)
			   : -1;
	if (!net_ehlo_has(c->inbuf, (size_t)n, "STARTTLS"))
		return net_error(
		    c, NF_NO_STARTTLS,
		    "%s port %d does not offer STARTTLS, and mail "
		    "is never sent unencrypted with encryption = "
		    "tls; use encryption = ssl (port 465) or a port "
		    "that offers STARTTLS (587)",
		    c->host, c->port);
	net_consume(c, (size_t)n);
	if ((n = net_command(c, "STARTTLS\r\n", NULL, 220)) < 0)
		return n == -2 ? net_error(c, NF_NO_STARTTLS,
					   "%s refused STARTTLS: %s", c->host,
					   c->reply)
			       : -1;
	net_consume(c, (size_t)n);
	c->reply[0] = '\0';
	if (c->inlen != 0) /* bytes after 220 would be injected plaintext */
		return net_error(c, NF_TLS_HANDSHAKE,
				 "%s sent data before the TLS handshake "
				 "(possible STARTTLS injection); refusing",
				 c->host);
	return net_handshake(c);
}

void net_close(struct net_conn *c)
{
	tls_close(c->tc);
	c->tc = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
