/*
 * bridge.c - the transport under libESMTP: bounded connect, TLS, and a relay
 * between libESMTP's socket and the server (see bridge.h and DESIGN §6).
 * The network pieces it shares with the probe (DNS, connect, replies,
 * greeting, TLS, STARTTLS) live in net.c.
 *
 * The relay keeps just enough protocol state to be trusted with a password:
 * a FIFO of the commands awaiting replies (libESMTP pipelines), whether AUTH
 * succeeded, and whether the client stream is in a DATA body or a BDAT chunk
 * (so a body line is never mistaken for a command, and never printed).
 *
 * It runs inside libESMTP's own I/O calls (interpose.h): what libESMTP
 * writes is inspected and forwarded there and then; when libESMTP waits to
 * read, the relay reads the server, checks the reply and queues what
 * libESMTP may see.  No thread, no socket pair: a send costs two context
 * switches per round trip fewer than with a relay thread.
 */
#include "bridge.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/socket.h>

#include "interpose.h"
#include "net.h"

#define LINE_MAX_KEPT 1024 /* octets of one protocol line we inspect */
/* libESMTP writes in pieces of a few KiB; the server gets them in one
 * send (one TLS record of 16 KiB and more) when this fills or when libESMTP
 * waits for a reply. */
#define BRIDGE_TX_MAX 65536

enum cmd { C_EHLO, C_AUTH, C_MAIL, C_RCPT, C_DATA, C_DATA_END, C_BDAT,
	   C_QUIT, C_OTHER };
enum cstate { CS_LINE, CS_BODY, CS_CHUNK };

struct bridge {
	char *host, *ehlo_name, *ca_file, *fingerprint, *session_file;
	struct bridge_params p;
	struct net_conn net; /* the server connection, its failure, reply */
	int app_fd;          /* libESMTP's socket while hooked, else -1 */
	char *out;           /* server bytes checked, for libESMTP to read */
	size_t out_off, out_len, out_cap;
	char tx[BRIDGE_TX_MAX]; /* client bytes checked, for the server */
	size_t tx_len;
	bool done;           /* no more from the server: libESMTP sees EOF */
	struct bridge_status st; /* fail/msg for the relay's own failures */
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
	size_t reply_octets; /* of the current reply, however long */
	unsigned ext; /* BRIDGE_EXT_* of the last EHLO reply */
};

/* Record a failure (the first one wins, the network's included) and
 * return -1. */
static int fail(struct bridge *b, enum net_fail f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct bridge *b, enum net_fail f, const char *fmt, ...)
{
	va_list ap;

	if (b->st.fail != NF_NONE || b->net.fail != NF_NONE)
		return -1;
	b->st.fail = f;
	va_start(ap, fmt);
	vsnprintf(b->st.msg, sizeof b->st.msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* The bridge's name for each network failure class. */
/* The status as the caller sees it: the first failure, whichever layer
 * recorded it, and what the connection learnt. */
static void export_status(const struct bridge *b, struct bridge_status *st)
{
	*st = b->st;
	if (st->fail == NF_NONE && b->net.fail != NF_NONE) {
		st->fail = b->net.fail;
		snprintf(st->msg, sizeof st->msg, "%s", b->net.msg);
	}
	snprintf(st->reply, sizeof st->reply, "%s", b->net.reply);
	snprintf(st->tls_summary, sizeof st->tls_summary, "%s",
		 b->net.tls_summary);
	st->used_tls = b->net.used_tls;
}

/* RFC 3207: greeting, EHLO, STARTTLS, handshake.  The greeting is kept so
 * that libESMTP, which is told nothing of this, starts with it. */
static int starttls(struct bridge *b)
{
	char *greet; /* on the heap: the handshake's deep stack stays where
			the stack already is (a page fault per fresh page) */
	size_t glen;
	long n;
	int r = -1;

	if ((n = net_greeting(&b->net)) < 0)
		return -1;
	glen = (size_t)n;
	if ((greet = malloc(glen ? glen : 1)) == NULL)
		return fail(b, NF_IO, "out of memory");
	memcpy(greet, b->net.inbuf, glen);
	net_transcript(&b->net, "<-", greet, glen);
	b->greeting_shown = true;
	net_consume(&b->net, glen);
	if (net_starttls(&b->net, b->ehlo_name) == 0) {
		memcpy(b->net.inbuf, greet, glen);
		b->net.inlen = glen;
		r = 0;
	}
	free(greet);
	return r;
}

static void bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	net_close(&b->net);
	free(b->out);
	free(b->host), free(b->ehlo_name), free(b->ca_file);
	free(b->fingerprint), free(b->session_file), free(b->pending);
	free(b);
}

static char *dup_or_null(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

/* The connection's parameters, from our private copies of the strings. */
static void init_net(struct bridge *b)
{
	struct tls_params tp = b->p.tls;

	tp.ca_file = b->ca_file;
	tp.fingerprint = b->fingerprint;
	tp.session_file = b->session_file;
	net_init(&b->net, b->host, b->p.port, b->p.timeout, &tp,
		 b->p.transcript);
}

struct bridge *bridge_open(const struct bridge_params *params,
			   struct bridge_status *st)
{
	struct bridge *b = calloc(1, sizeof *b);
	int r = -1;

	memset(st, 0, sizeof *st);
	if (b == NULL) {
		st->fail = NF_IO;
		snprintf(st->msg, sizeof st->msg, "out of memory");
		return NULL;
	}
	b->p = *params;
	b->app_fd = -1;
	b->host = strdup(params->host);
	b->ehlo_name = strdup(params->ehlo_name ? params->ehlo_name
						: "localhost");
	b->ca_file = dup_or_null(params->tls.ca_file);
	b->fingerprint = dup_or_null(params->tls.fingerprint);
	b->session_file = dup_or_null(params->tls.session_file);
	init_net(b);
	if (b->host == NULL || b->ehlo_name == NULL ||
	    (params->tls.session_file != NULL && b->session_file == NULL))
		fail(b, NF_IO, "out of memory");
	else if (net_open_tcp(&b->net) == 0) {
		if (b->p.mode == BRIDGE_STARTTLS)
			r = starttls(b);
		else if (b->p.mode == BRIDGE_SSL && net_handshake(&b->net) != 0)
			r = -1;
		else
			r = net_greeting(&b->net) > 0 ? 0 : -1;
	}
	if (r != 0) {
		export_status(b, st);
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
			return fail(b, NF_IO, "out of memory");
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

/* Send what the relay holds for the server. */
static int tx_flush(struct bridge *b)
{
	size_t n = b->tx_len;

	b->tx_len = 0;
	if (n > 0 && net_write(&b->net, b->tx, n) != 0)
		return fail(b, NF_CLOSED, "the connection to %s broke%s",
			    b->host,
			    b->cs == CS_LINE ? ""
					     : " during the message transfer");
	return 0;
}

/* Queue bytes for the server, in order. */
static int tx(struct bridge *b, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = sizeof b->tx - b->tx_len;
		size_t take = n < room ? n : room;

		memcpy(b->tx + b->tx_len, p, take);
		b->tx_len += take;
		p += take;
		n -= take;
		if (b->tx_len == sizeof b->tx && tx_flush(b) != 0)
			return -1;
	}
	return 0;
}

/* Stop the session: a polite QUIT to the server, and libESMTP sees EOF. */
static void stop_session(struct bridge *b)
{
	if (!b->quit_sent) {
		net_transcript(&b->net, "->", "QUIT", 4);
		if (tx(b, "QUIT\r\n", 6) == 0)
			tx_flush(b);
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
		net_transcript(&b->net, "->", "(AUTH response masked)", 22);
	} else if (verb_is(line, len, "AUTH")) {
		size_t m = 5;

		while (m < len && line[m] != ' ' && line[m] != '\r')
			m++;
		c = C_AUTH;
		b->in_auth = true;
		net_transcript(&b->net, "->", line,
			       m); /* "AUTH PLAIN", never more */
	} else {
		net_transcript(&b->net, "->", line, len);
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
			fail(b, NF_NO_AUTH,
			     "%s offers no authentication (AUTH) after EHLO, "
			     "but a username is configured; check the port "
			     "(587 or 465 for submission) and encryption",
			     b->host);
		else
			fail(b, NF_NO_AUTH,
			     "%s offers only AUTH %s, none of which switchmail "
			     "can use (PLAIN, LOGIN, CRAM-MD5)",
			     b->host, b->st.auth_offered);
		stop_session(b);
		return -1;
	}
	if (c == C_QUIT)
		b->quit_sent = true;
	if (push_cmd(b, c) != 0)
		return fail(b, NF_IO, "out of memory");
	return tx(b, line, len);
}

/* DATA body: forward up to and including the "\r\n.\r\n" terminator. */
static size_t body_span(struct bridge *b, const char *p, size_t n, bool *end)
{
	static const char term[] = "\r\n.\r\n";
	unsigned long long h = b->body_hist;
	char edge[8];
	size_t head = n < 4 ? n : 4, k = 0;
	const char *hit;

	*end = false;
	/* A terminator across the previous chunk's end: its last 4 octets
	 * (kept in h) and our first 4, byte by byte. */
	for (int i = 3; i >= 0; i--)
		edge[k++] = (char)((h >> (8 * i)) & 0xff);
	memcpy(edge + k, p, head);
	hit = memmem(edge, k + head, term, 5);
	if (hit != NULL) {
		*end = true;
		b->body_hist = 0;
		return (size_t)(hit - edge) + 5 - k;
	}
	/* Inside this chunk: memmem skips through the body fast. */
	if ((hit = memmem(p, n, term, 5)) != NULL) {
		*end = true;
		b->body_hist = 0;
		return (size_t)(hit - p) + 5;
	}
	for (size_t i = n > 8 ? n - 8 : 0; i < n; i++)
		h = (h << 8) | (unsigned char)p[i];
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
			if (tx(b, p, take) != 0)
				return -1;
			if (end && b->cs == CS_BODY) {
				char note[80];
				int len = snprintf(note, sizeof note,
						   "(message: %llu octets)",
						   b->body_bytes);

				net_transcript(&b->net, "->", note,
					       (size_t)len);
				push_cmd(b, C_DATA_END);
			}
			if (end)
				b->cs = CS_LINE;
		} else {
			const char *nl = memchr(p, '\n', n);

			take = nl ? (size_t)(nl - p) + 1 : n;
			if (b->clen + take > sizeof b->cline)
				return fail(b, NF_IO, "internal: a command line "
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
		if (net_ehlo_has(r, len, kws[k].kw))
			bits |= kws[k].bit;
	return bits;
}

unsigned bridge_extensions(const struct bridge *b)
{
	return b->ext;
}

/* A whole reply from the server, matched with the oldest pending command. */
static void server_reply(struct bridge *b)
{
	bool any;
	enum cmd c = pop_cmd(b, &any);
	int code = net_reply_code(b->reply);

	if (!any || c != C_AUTH)
		net_keep_reply(&b->net, b->reply, b->rlen);
	if (c == C_EHLO && code == 250)
		b->ext = ehlo_keywords(b->reply, b->rlen);
	if (c == C_DATA && code == 354) {
		b->cs = CS_BODY;
		b->body_hist = 0x0d0a; /* the body starts at a line start */
		b->body_bytes = 0;
	} else if (c == C_AUTH && code == 235) {
		b->in_auth = false;
		b->st.authenticated = true;
	} else if (c == C_AUTH && code != 334) {
		b->in_auth = false;
		net_keep_reply(&b->net, b->reply, b->rlen);
		fail(b, NF_AUTH, "%s refused the login: %s", b->host,
		     b->net.reply);
		stop_session(b);
	}
	b->rlen = 0;
	b->reply_octets = 0;
}

/* One reply line: kept (bounded) for the reply it belongs to. */
static int server_line(struct bridge *b, const char *line, size_t len)
{
	net_transcript(&b->net, "<-", line, len);
	note_auth(b, line, len);
	b->reply_octets += len;
	if (b->reply_octets > NET_INBUF_MAX) {
		/* an endless "250-…" reply: no SMTP server does that */
		fail(b, NF_TIMEOUT,
		     "%s sent a reply longer than %d octets; this is not a "
		     "well-behaved SMTP server",
		     b->host, NET_INBUF_MAX);
		stop_session(b);
		return -1;
	}
	if (b->rlen + len < sizeof b->reply) {
		memcpy(b->reply + b->rlen, line, len);
		b->rlen += len;
	}
	if (len < 4 || line[3] != '-')
		server_reply(b);
	return 0;
}

/* Queue checked server bytes for libESMTP's next read. */
static int out_append(struct bridge *b, const char *p, size_t n)
{
	if (b->out_off > 0 && b->out_off == b->out_len)
		b->out_off = b->out_len = 0;
	if (b->out_len + n > b->out_cap) {
		size_t cap = b->out_cap ? b->out_cap : 4096;
		char *nb;

		while (cap < b->out_len + n)
			cap *= 2;
		if ((nb = realloc(b->out, cap)) == NULL)
			return fail(b, NF_IO, "out of memory");
		b->out = nb;
		b->out_cap = cap;
	}
	memcpy(b->out + b->out_len, p, n);
	b->out_len += n;
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
			fail(b, NF_TIMEOUT,
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
	return out_append(b, start, total);
}

/* Server → libESMTP: drain what TLS holds, not only what poll shows. */
static int from_server(struct bridge *b)
{
	char buf[16384];

	do {
		long n = net_read(&b->net, buf, sizeof buf);

		if (n == -2)
			return 0;
		if (n <= 0) {
			if (!b->quit_sent)
				fail(b, NF_CLOSED,
				     "%s closed the connection%s%s", b->host,
				     b->net.reply[0] ? " after: " : "",
				     b->net.reply);
			return -1;
		}
		if (server_bytes(b, buf, (size_t)n) != 0)
			return -1;
	} while (b->net.tc != NULL && tls_pending(b->net.tc));
	return 0;
}

/* ---- libESMTP's socket (interpose.h) ---------------------------------- */

static ssize_t app_read(void *arg, void *buf, size_t n)
{
	struct bridge *b = arg;
	size_t have = b->out_len - b->out_off;

	if (have == 0) {
		if (b->done)
			return 0;
		errno = EAGAIN; /* libESMTP polls, then reads again */
		return -1;
	}
	if (n > have)
		n = have;
	memcpy(buf, b->out + b->out_off, n);
	b->out_off += n;
	return (ssize_t)n;
}

/* A failure (or a guard) ends the relay: libESMTP's write still "went"
 * (as into a socket whose peer then hangs up) and its next read sees what
 * was queued, then EOF. */
static ssize_t app_write(void *arg, const void *buf, size_t n)
{
	struct bridge *b = arg;

	if (b->done) {
		errno = EPIPE;
		return -1;
	}
	if (client_bytes(b, buf, n) != 0 || b->stop)
		b->done = true;
	return (ssize_t)n;
}

/* poll() on libESMTP's socket: writable always (writes go straight to the
 * server, bounded there); readable once a checked reply is queued, or at
 * the end; meanwhile the server is read, within libESMTP's timeout. */
static short app_ready(void *arg, short events, int timeout_ms)
{
	struct bridge *b = arg;
	long long deadline = timeout_ms < 0 ? -1 : tls_now_ms() + timeout_ms;
	short rev = (short)(events & POLLOUT);

	if ((events & POLLIN) && !b->done && tx_flush(b) != 0)
		b->done = true;
	/* The server is looked at once even when the time is up: libESMTP
	 * polls with no timeout between pipelined commands and BDAT chunks,
	 * to hear early of a refusal (a 552 to the first chunk stops the
	 * rest). */
	for (bool looked = false; events & POLLIN; looked = true) {
		struct pollfd pfd = {.fd = b->net.fd, .events = POLLIN};
		int wait = -1, r;

		if (b->out_len > b->out_off || b->done) {
			rev = (short)(rev | POLLIN);
			break;
		}
		if (rev != 0 && looked)
			break; /* writable now: no waiting */
		if (b->net.tc == NULL || !tls_pending(b->net.tc)) {
			if (deadline >= 0 || rev != 0) {
				long long left = deadline >= 0
						     ? deadline - tls_now_ms()
						     : 0;

				if (left <= 0 && looked)
					break; /* libESMTP's timeout */
				wait = rev != 0 || left <= 0 ? 0
				       : left > 60000	    ? 60000
							    : (int)left;
			}
			r = poll(&pfd, 1, wait);
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0)
				continue; /* the deadline decides */
			if (r < 0) {
				fail(b, NF_IO, "poll failed");
				b->done = true;
				continue;
			}
		}
		if (from_server(b) != 0)
			b->done = true;
	}
	return rev;
}

/* libESMTP closed its socket: the session is over for it. */
static void app_closed(void *arg)
{
	struct bridge *b = arg;

	if (!b->done)
		tx_flush(b);
	b->app_fd = -1;
	b->done = true;
}

static const struct interpose_ops app_ops = {
    .read = app_read,
    .write = app_write,
    .ready = app_ready,
    .closed = app_closed,
};

/* connect() from libESMTP: its socket becomes the relay's. */
static int take_over(void *arg, int fd)
{
	struct bridge *b = arg;
	FILE *t = b->net.transcript;
	int r;

	/* The greeting (and anything after it) was read by the bridge. */
	if (b->greeting_shown)
		b->net.transcript = NULL; /* shown before STARTTLS already */
	r = b->net.inlen > 0 ? server_bytes(b, b->net.inbuf, b->net.inlen) : 0;
	b->net.transcript = t;
	if (r != 0) {
		errno = ECONNRESET;
		return -1;
	}
	b->net.inlen = 0;
	b->app_fd = fd;
	interpose_hook(fd, &app_ops, b);
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
	if (b->app_fd >= 0) {
		interpose_hook(-1, NULL, NULL); /* libESMTP did not close it */
		if (!b->done)
			tx_flush(b);
	}
	b->app_fd = -1;
	tls_close(b->net.tc); /* close_notify, and the session cache */
	b->net.tc = NULL;
	if (b->net.fd >= 0)
		shutdown(b->net.fd, SHUT_RDWR);
	if (st != NULL)
		export_status(b, st);
	bridge_free(b);
}
