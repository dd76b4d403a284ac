/* sink.c - a fast, counting SMTP sink for switchmail's benchmark (tests/bench).
 *
 *   sink [-p PORT] [-s PORT -c CERT -k KEY] [-S PORT -c CERT -k KEY]
 *        [-r FILE] [-n]
 *
 *   -p PORT  plain SMTP listener (no AUTH)
 *   -s PORT  STARTTLS listener: AUTH PLAIN/LOGIN offered after STARTTLS
 *   -S PORT  implicit TLS listener (SMTPS): AUTH PLAIN/LOGIN offered
 *   -c, -k   PEM certificate chain and private key for the TLS listeners
 *   -r FILE  append a line to FILE for every accepted message: its Subject,
 *            a TAB, and how its connection was protected: "plain", "tls full"
 *            (a full TLS handshake) or "tls resumed" (SSL_session_reused)
 *   -n       send no TLS 1.3 session tickets (default: OpenSSL's two)
 *
 * Every listener binds 127.0.0.1 only; PORT 0 lets the kernel choose.  Once
 * listening, one line goes to stdout: "plain=P starttls=P smtps=P" (0 when a
 * listener is off).  The sink then serves every connection in its own thread
 * until SIGTERM or SIGINT, and prints "messages=N bytes=B" to stdout on exit.
 *
 * Protocol: EHLO/HELO, MAIL, RCPT, DATA (dot-terminated; bytes are counted,
 * not stored), RSET, NOOP, QUIT, STARTTLS, AUTH PLAIN/LOGIN (any credentials
 * are accepted; on the TLS listeners MAIL needs AUTH first, so a client that
 * skips it shows), and XSTAT, which answers "250 N B": messages accepted and
 * their bytes, so the benchmark can check delivery counts between phases.
 * Advertised: PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES.  Each reply
 * (a multi-line EHLO reply too) is written whole with one write, and
 * TCP_NODELAY is set: the sink itself adds no Nagle delay, so what a client
 * waits for is its own doing.  Test infrastructure: small, not hardened.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum kind { PLAIN, STARTTLS, SMTPS, NKINDS };

#define BUFSZ 65536

struct conn {
	int fd;
	enum kind kind;
	SSL *ssl;
	int helo; /* EHLO/HELO seen (since the last STARTTLS) */
	int authed; /* AUTH succeeded: required for MAIL on the TLS listeners */
	int in_tx; /* MAIL accepted */
	int rcpts; /* RCPT accepted in this transaction */
	size_t pos, len; /* unread input is buf[pos..len) */
	char buf[BUFSZ];
};

static SSL_CTX *tls_ctx;
static int record_fd = -1;
static atomic_ullong n_messages, n_bytes;
static int stop_pipe[2];

/* Writes n bytes; one write() or SSL_write() unless the kernel takes less. */
static int conn_write(struct conn *c, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			int r = SSL_write(c->ssl, s, (int)n);
			w = r > 0 ? r : -1;
		} else {
			w = write(c->fd, s, n);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int reply(struct conn *c, const char *s)
{
	return conn_write(c, s, strlen(s));
}

/* Reads more input into buf; 1 on data, 0 on EOF or error. */
static int conn_fill(struct conn *c)
{
	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	for (;;) {
		ssize_t r;
		if (c->ssl) {
			int n = SSL_read(c->ssl, c->buf + c->len, (int)(BUFSZ - c->len));
			r = n > 0 ? n : -1;
		} else {
			r = read(c->fd, c->buf + c->len, BUFSZ - c->len);
			if (r < 0 && errno == EINTR)
				continue;
		}
		if (r <= 0)
			return 0;
		c->len += (size_t)r;
		return 1;
	}
}

/* Next line (with its LF) at *line.  Returns its length, or -1 at EOF.  A
 * line longer than the buffer comes in pieces: *complete is 0 for all but
 * the last. */
static long next_line(struct conn *c, char **line, int *complete)
{
	for (;;) {
		char *start = c->buf + c->pos;
		char *nl = memchr(start, '\n', c->len - c->pos);
		if (nl) {
			size_t n = (size_t)(nl - start) + 1;
			*line = start;
			*complete = 1;
			c->pos += n;
			return (long)n;
		}
		if (c->pos == 0 && c->len == BUFSZ) {
			*line = start;
			*complete = 0;
			c->pos = c->len;
			return (long)BUFSZ;
		}
		if (!conn_fill(c))
			return -1;
	}
}

/* One line per message: "Subject<TAB>plain|tls full|tls resumed".  bench.py
 * splits at the last TAB; the Subject is at most 255 octets (read_data), so
 * the line always fits. */
static void record_subject(const struct conn *c, const char *subject)
{
	char line[320];
	const char *tls = !c->ssl ? "plain" : SSL_session_reused(c->ssl) ? "tls resumed" : "tls full";
	int n;

	if (record_fd < 0)
		return;
	n = snprintf(line, sizeof line, "%s\t%s\n", subject, tls);
	if (n > (int)sizeof line - 1)
		n = (int)sizeof line - 1, line[n - 1] = '\n';
	/* O_APPEND: one write per line keeps lines whole across threads. */
	if (write(record_fd, line, (size_t)n) != n)
		perror("sink: subject record");
}

/* Copies the value of a "Subject:" header line, trimmed, into out. */
static void take_subject(const char *p, long n, char *out, size_t outsz)
{
	size_t k = 0;

	p += 8, n -= 8;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
		n--;
	while (k + 1 < outsz && (long)k < n) {
		out[k] = p[k];
		k++;
	}
	out[k] = '\0';
}

/* The message after 354, up to its dot line.  0 when complete, -1 at EOF. */
static int read_data(struct conn *c)
{
	char subject[256] = "";
	unsigned long long bytes = 0;
	int bol = 1, in_header = 1;

	for (;;) {
		char *p;
		int complete;
		long n = next_line(c, &p, &complete);
		if (n < 0)
			return -1;
		if (bol && complete &&
		    ((n == 3 && memcmp(p, ".\r\n", 3) == 0) || (n == 2 && memcmp(p, ".\n", 2) == 0)))
			break;
		if (bol && in_header) {
			if (n == 1 || (n == 2 && p[0] == '\r'))
				in_header = 0;
			else if (!subject[0] && n > 8 && strncasecmp(p, "Subject:", 8) == 0)
				take_subject(p, n, subject, sizeof subject);
		}
		bytes += (unsigned long long)n;
		bol = complete;
	}
	atomic_fetch_add(&n_messages, 1);
	atomic_fetch_add(&n_bytes, bytes);
	record_subject(c, subject[0] ? subject : "(no subject)");
	return 0;
}

static int ehlo(struct conn *c, const char *arg)
{
	char r[512];
	int tls = c->ssl != NULL;

	if (!*arg)
		return reply(c, "501 5.5.4 EHLO needs a domain\r\n");
	snprintf(r, sizeof r,
		 "250-sink.invalid\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 2147483647\r\n"
		 "%s%s250 ENHANCEDSTATUSCODES\r\n",
		 c->kind == STARTTLS && !tls ? "250-STARTTLS\r\n" : "",
		 tls ? "250-AUTH PLAIN LOGIN\r\n" : "");
	c->helo = 1;
	c->in_tx = 0;
	c->rcpts = 0;
	return reply(c, r);
}

/* Reads one line of an AUTH exchange; -1 at EOF, 1 when the client cancelled. */
static int auth_line(struct conn *c)
{
	char *p;
	int complete;
	long n = next_line(c, &p, &complete);

	if (n < 0)
		return -1;
	return n >= 1 && p[0] == '*' ? 1 : 0;
}

static int auth(struct conn *c, const char *arg)
{
	const char *ir = strchr(arg, ' ');
	int r = 0;

	if (!c->ssl)
		return reply(c, "503 5.5.1 AUTH not offered before TLS\r\n");
	if (strncasecmp(arg, "PLAIN", 5) == 0 && (arg[5] == ' ' || !arg[5])) {
		if (!ir && (reply(c, "334 \r\n") < 0 || (r = auth_line(c)) < 0))
			return -1;
	} else if (strncasecmp(arg, "LOGIN", 5) == 0 && (arg[5] == ' ' || !arg[5])) {
		if (!ir && (reply(c, "334 VXNlcm5hbWU6\r\n") < 0 || (r = auth_line(c)) < 0))
			return -1;
		if (r == 0 && (reply(c, "334 UGFzc3dvcmQ6\r\n") < 0 || (r = auth_line(c)) < 0))
			return -1;
	} else {
		return reply(c, "504 5.5.4 mechanism not supported\r\n");
	}
	if (r == 1)
		return reply(c, "501 5.0.0 AUTH cancelled\r\n");
	c->authed = 1;
	return reply(c, "235 2.7.0 accepted\r\n");
}

static int start_tls(struct conn *c)
{
	if (c->kind != STARTTLS || c->ssl)
		return reply(c, "503 5.5.1 STARTTLS not offered\r\n");
	if (reply(c, "220 2.0.0 ready to start TLS\r\n") < 0)
		return -1;
	c->pos = c->len = 0; /* RFC 3207: nothing pipelined past STARTTLS */
	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || SSL_accept(c->ssl) != 1)
		return -1;
	c->helo = c->in_tx = c->rcpts = 0;
	return 0;
}

static int xstat(struct conn *c)
{
	char r[96];

	snprintf(r, sizeof r, "250 %llu %llu\r\n", (unsigned long long)atomic_load(&n_messages),
		 (unsigned long long)atomic_load(&n_bytes));
	return reply(c, r);
}

/* One command line (CRLF stripped); -1 ends the session. */
static int command(struct conn *c, char *line)
{
	char *arg = strchr(line, ' ');

	arg = arg ? arg + 1 : line + strlen(line);
#define IS(v) (strncasecmp(line, v, sizeof v - 1) == 0 && (line[sizeof v - 1] == ' ' || !line[sizeof v - 1]))
	if (IS("EHLO"))
		return ehlo(c, arg);
	if (IS("HELO")) {
		c->helo = 1, c->in_tx = 0, c->rcpts = 0;
		return reply(c, "250 sink.invalid\r\n");
	}
	if (IS("MAIL")) {
		if (!c->helo || c->in_tx)
			return reply(c, "503 5.5.1 bad sequence of commands\r\n");
		if (c->kind != PLAIN && !c->authed)
			return reply(c, "530 5.7.0 authentication required\r\n");
		c->in_tx = 1, c->rcpts = 0;
		return reply(c, "250 2.1.0 sender ok\r\n");
	}
	if (IS("RCPT")) {
		if (!c->in_tx)
			return reply(c, "503 5.5.1 MAIL first\r\n");
		c->rcpts++;
		return reply(c, "250 2.1.5 recipient ok\r\n");
	}
	if (IS("DATA")) {
		if (!c->rcpts)
			return reply(c, "554 5.5.1 no valid recipients\r\n");
		if (reply(c, "354 end data with <CR><LF>.<CR><LF>\r\n") < 0 || read_data(c) < 0)
			return -1;
		c->in_tx = 0, c->rcpts = 0;
		return reply(c, "250 2.0.0 accepted\r\n");
	}
	if (IS("RSET")) {
		c->in_tx = 0, c->rcpts = 0;
		return reply(c, "250 2.0.0 reset\r\n");
	}
	if (IS("NOOP"))
		return reply(c, "250 2.0.0 ok\r\n");
	if (IS("QUIT")) {
		reply(c, "221 2.0.0 bye\r\n");
		return -1;
	}
	if (IS("STARTTLS"))
		return start_tls(c);
	if (IS("AUTH"))
		return auth(c, arg);
	if (IS("XSTAT"))
		return xstat(c);
#undef IS
	return reply(c, "500 5.5.2 command not recognised\r\n");
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	int ok = 1;

	if (c->kind == SMTPS) {
		c->ssl = SSL_new(tls_ctx);
		ok = c->ssl && SSL_set_fd(c->ssl, c->fd) && SSL_accept(c->ssl) == 1;
	}
	if (ok && reply(c, "220 sink.invalid ESMTP bench sink\r\n") == 0) {
		for (;;) {
			char *line;
			int complete;
			long n = next_line(c, &line, &complete);
			if (n < 0)
				break;
			if (!complete) {
				reply(c, "500 5.5.2 line too long\r\n");
				break;
			}
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				n--;
			line[n] = '\0';
			if (command(c, line) < 0)
				break;
		}
	}
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c);
	ERR_clear_error();
	return NULL;
}

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
		perror("sink: listen");
		exit(1);
	}
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;

	if (fd < 0)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return 0;
	return ntohs(sa.sin_port);
}

static void on_stop(int sig)
{
	(void)sig;
	if (write(stop_pipe[1], "x", 1) < 0) {
		/* nothing to do: the pipe only wakes poll() */
	}
}

static void accept_one(int lfd, enum kind kind)
{
	struct timeval tv = { .tv_sec = 120 };
	int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct conn *c;
	pthread_t t;
	pthread_attr_t attr;

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->kind = kind;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, serve, c) != 0) {
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&attr);
}

static SSL_CTX *make_tls_ctx(const char *cert, const char *key, int no_tickets)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(stderr, "sink: cannot load %s / %s\n", cert, key);
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	if (no_tickets)
		SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
}

static void usage(void)
{
	fprintf(stderr, "usage: sink [-p PORT] [-s PORT] [-S PORT] [-c CERT -k KEY] [-r FILE] [-n]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int ports[NKINDS] = { -1, -1, -1 }, fds[NKINDS] = { -1, -1, -1 };
	const char *cert = NULL, *key = NULL, *record = NULL;
	int opt, no_tickets = 0;
	struct pollfd pfd[NKINDS + 1];

	while ((opt = getopt(argc, argv, "p:s:S:c:k:r:n")) != -1) {
		switch (opt) {
		case 'p': ports[PLAIN] = atoi(optarg); break;
		case 's': ports[STARTTLS] = atoi(optarg); break;
		case 'S': ports[SMTPS] = atoi(optarg); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'r': record = optarg; break;
		case 'n': no_tickets = 1; break;
		default: usage();
		}
	}
	if (optind != argc || (ports[PLAIN] < 0 && ports[STARTTLS] < 0 && ports[SMTPS] < 0))
		usage();
	if ((ports[STARTTLS] >= 0 || ports[SMTPS] >= 0) && (!cert || !key))
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (cert && key)
		tls_ctx = make_tls_ctx(cert, key, no_tickets);
	if (record) {
		record_fd = open(record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (record_fd < 0) {
			perror(record);
			return 1;
		}
	}
	if (pipe2(stop_pipe, O_CLOEXEC) < 0)
		return 1;
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	for (int k = 0; k < NKINDS; k++)
		if (ports[k] >= 0)
			fds[k] = listen_on(ports[k]);
	printf("plain=%d starttls=%d smtps=%d\n", port_of(fds[PLAIN]), port_of(fds[STARTTLS]),
	       port_of(fds[SMTPS]));
	fflush(stdout);

	for (int k = 0; k < NKINDS; k++)
		pfd[k] = (struct pollfd){ .fd = fds[k], .events = POLLIN };
	pfd[NKINDS] = (struct pollfd){ .fd = stop_pipe[0], .events = POLLIN };
	for (;;) {
		if (poll(pfd, NKINDS + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("sink: poll");
			return 1;
		}
		if (pfd[NKINDS].revents)
			break;
		for (int k = 0; k < NKINDS; k++)
			if (pfd[k].revents & POLLIN)
				accept_one(fds[k], (enum kind)k);
	}
	printf("messages=%llu bytes=%llu\n", (unsigned long long)atomic_load(&n_messages),
	       (unsigned long long)atomic_load(&n_bytes));
	fflush(stdout);
	return 0;
}
