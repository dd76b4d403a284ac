/*
 * probe.c - the configuration test's SMTP dialogue, step by step (see
 * probe.h).  The network work is net.c's, so the test says exactly what
 * the bridge would say about the same server.
 *
 * The password goes only into the AUTH lines written to the connection;
 * the transcript shows "AUTH PLAIN" or "(AUTH response masked)", and every
 * buffer that held it is wiped with OPENSSL_cleanse.
 */
#include "probe.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <sys/socket.h>

#define B64_LEN(n) (((n) + 2) / 3 * 4)

struct probe {
	struct net_conn net;
	enum net_mode mode;
	const char *ehlo_name;
	bool allow_plaintext_auth;
	struct addrinfo *ai;	  /* from probe_resolve */
	char addr[64];		  /* the address connected to */
	char ehlo[NET_REPLY_MAX]; /* the last EHLO reply, raw lines */
	bool session;		  /* greeting read, dialogue in step: QUIT ok */
	bool in_mail;		  /* MAIL accepted: RSET before QUIT */
};

/* CLOCK_MONOTONIC in milliseconds, with sub-millisecond precision. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Whether a failure of this class leaves the SMTP dialogue in step (a
 * refusal), so that RSET/QUIT may still be sent. */
static bool dialogue_intact(enum net_fail f)
{
	static const enum net_fail intact[] = {NF_NONE,	       NF_GREETING,
					       NF_NO_STARTTLS, NF_AUTH,
					       NF_NO_AUTH,     NF_SENDER};

	for (size_t i = 0; i < sizeof intact / sizeof intact[0]; i++)
		if (f == intact[i])
			return true;
	return false;
}

/* Close a step: its time, and on failure the class, sentence and reply. */
static int step_end(struct probe *p, struct probe_step *s, double t0, int rc)
{
	s->ms = now_ms() - t0;
	if (rc == 0)
		return 0;
	if (p->net.fail == NF_NONE)
		net_error(&p->net, NF_IO, "internal error in the probe");
	s->fail = p->net.fail;
	snprintf(s->msg, sizeof s->msg, "%s", p->net.msg);
	snprintf(s->reply, sizeof s->reply, "%s", p->net.reply);
	if (!dialogue_intact(s->fail))
		p->session = false;
	return -1;
}

/* Start a step: everything in s cleared, the clock started. */
static double step_start(struct probe_step *s)
{
	memset(s, 0, sizeof *s);
	return now_ms();
}

struct probe *probe_new(const struct probe_params *pp)
{
	struct probe *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	net_init(&p->net, pp->host, pp->port, pp->timeout, &pp->tls,
		 pp->transcript);
	p->mode = pp->mode;
	p->ehlo_name = pp->ehlo_name ? pp->ehlo_name : "localhost";
	p->allow_plaintext_auth = pp->allow_plaintext_auth;
	return p;
}

/* "a.b.c.d" or "a.b.c.d (+2 more)" for the addresses found. */
static void describe_addrs(const struct addrinfo *ai, char *buf, size_t size)
{
	char first[NI_MAXHOST] = "?";
	int more = -1;

	for (const struct addrinfo *a = ai; a != NULL; a = a->ai_next, more++)
		if (a == ai)
			getnameinfo(a->ai_addr, a->ai_addrlen, first,
				    sizeof first, NULL, 0, NI_NUMERICHOST);
	if (more > 0)
		snprintf(buf, size, "%s (+%d more)", first, more);
	else
		snprintf(buf, size, "%s", first);
}

int probe_resolve(struct probe *p, struct probe_step *s)
{
	double t0 = step_start(s);

	p->ai = net_resolve(&p->net, net_deadline(&p->net));
	if (p->ai != NULL)
		describe_addrs(p->ai, s->detail, sizeof s->detail);
	return step_end(p, s, t0, p->ai != NULL ? 0 : -1);
}

/* Read the greeting, keep it as the step's reply, consume it. */
static int take_greeting(struct probe *p, struct probe_step *s)
{
	long n = net_greeting(&p->net);

	if (n < 0)
		return -1;
	net_keep_reply(&p->net, p->net.inbuf, (size_t)n);
	net_transcript(&p->net, "<-", p->net.inbuf, (size_t)n);
	snprintf(s->reply, sizeof s->reply, "%s", p->net.reply);
	net_consume(&p->net, (size_t)n);
	p->session = true;
	return 0;
}

int probe_connect(struct probe *p, struct probe_step *s)
{
	double t0 = step_start(s);
	int rc;

	if (p->ai == NULL)
		return step_end(p, s, t0,
				net_error(&p->net, NF_IO,
					  "internal: connect before "
					  "resolve"));
	snprintf(s->detail, sizeof s->detail, "port %d", p->net.port);
	rc = net_connect(&p->net, p->ai, net_deadline(&p->net), p->addr,
			 sizeof p->addr);
	if (rc == 0)
		snprintf(s->detail, sizeof s->detail, "%s port %d", p->addr,
			 p->net.port);
	if (rc == 0 && p->mode != NET_SSL)
		rc = take_greeting(p, s);
	return step_end(p, s, t0, rc);
}

int probe_tls(struct probe *p, struct probe_step *s)
{
	double t0 = step_start(s);
	int rc = 0;

	if (p->mode == NET_SSL) {
		rc = net_handshake(&p->net);
		if (rc == 0)
			rc = take_greeting(p, s);
	} else if (p->mode == NET_STARTTLS) {
		rc = net_starttls(&p->net, p->ehlo_name);
	}
	snprintf(s->detail, sizeof s->detail, "%s", p->net.tls_summary);
	return step_end(p, s, t0, rc);
}

int probe_ehlo(struct probe *p, struct probe_step *s)
{
	double t0 = step_start(s);
	char line[300];
	long n;

	snprintf(line, sizeof line, "EHLO %s\r\n", p->ehlo_name);
	n = net_command(&p->net, line, NULL, 250);
	if (n == -2)
		net_error(&p->net, NF_GREETING, "%s refused EHLO: %s",
			  p->net.host, p->net.reply);
	if (n < 0)
		return step_end(p, s, t0, -1);
	if ((size_t)n >= sizeof p->ehlo)
		n = (long)sizeof p->ehlo - 1;
	memcpy(p->ehlo, p->net.inbuf, (size_t)n);
	p->ehlo[n] = '\0';
	snprintf(s->reply, sizeof s->reply, "%s", p->net.reply);
	net_consume(&p->net, (size_t)n);
	return step_end(p, s, t0, 0);
}

/* Copy a line's parameters (after the keyword) without CR/LF. */
static void copy_params(const char *from, const char *end, char *params,
			size_t size)
{
	size_t n;

	while (from < end && (*from == ' ' || *from == '='))
		from++;
	n = (size_t)(end - from);
	while (n > 0 && (from[n - 1] == '\r' || from[n - 1] == ' '))
		n--;
	if (n >= size)
		n = size - 1;
	memcpy(params, from, n);
	params[n] = '\0';
}

bool probe_offers(const struct probe *p, const char *keyword, char *params,
		  size_t size)
{
	size_t kl = strlen(keyword);
	const char *line = strchr(p->ehlo, '\n'); /* past the greeting line */

	while (line != NULL && *++line != '\0') {
		const char *end = strchr(line, '\n');
		const char *kw = line + 4;

		if (end == NULL)
			end = line + strlen(line);
		if ((size_t)(end - line) >= 4 + kl &&
		    strncasecmp(kw, keyword, kl) == 0 &&
		    strchr(" =\r\n", kw[kl]) != NULL) {
			if (params != NULL && size > 0)
				copy_params(kw + kl, end, params, size);
			return true;
		}
		line = *end ? end : NULL;
	}
	return false;
}

/* Base64 of in[0..n) into out (B64_LEN(n) + 1 octets), NUL-terminated. */
static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = abc[(v >> 18) & 63];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = (char)(i + 1 < n ? abc[(v >> 6) & 63] : '=');
		out[o++] = (char)(i + 2 < n ? abc[v & 63] : '=');
	}
	out[o] = '\0';
}

/* Whether the word w is in the space-separated list (case-insensitive). */
static bool has_word(const char *list, const char *w)
{
	size_t wl = strlen(w);

	for (const char *s = list; *s != '\0';) {
		size_t n = strcspn(s, " ");

		if (n == wl && strncasecmp(s, w, wl) == 0)
			return true;
		s += n;
		s += strspn(s, " ");
	}
	return false;
}

/* Send one AUTH line holding a secret; the transcript shows `shown`.  The
 * reply code, or -1 (failure set). */
static int secret_line(struct probe *p, const char *prefix,
		       const unsigned char *secret, size_t n, const char *shown)
{
	char enc[B64_LEN(2 * PROBE_SECRET_MAX + 2) + 1];
	char line[sizeof enc + 32];
	long r;

	b64(secret, n, enc);
	snprintf(line, sizeof line, "%s%s\r\n", prefix, enc);
	r = net_command(&p->net, line, shown, 0);
	OPENSSL_cleanse(enc, sizeof enc);
	OPENSSL_cleanse(line, sizeof line);
	if (r < 0)
		return -1;
	net_consume(&p->net, (size_t)r);
	return net_reply_code(p->net.reply);
}

/* AUTH PLAIN with the initial response: "\0user\0password". */
static int auth_plain(struct probe *p, const char *user, const char *pass)
{
	unsigned char raw[2 * PROBE_SECRET_MAX + 2];
	size_t ul = strlen(user), pl = strlen(pass);
	int code;

	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, pass, pl);
	code = secret_line(p, "AUTH PLAIN ", raw, ul + pl + 2, "AUTH PLAIN");
	OPENSSL_cleanse(raw, sizeof raw);
	return code;
}

/* AUTH LOGIN: the user name, then the password, each after a 334. */
static int auth_login(struct probe *p, const char *user, const char *pass)
{
	static const char masked[] = "(AUTH response masked)";
	long r = net_command(&p->net, "AUTH LOGIN\r\n", NULL, 0);
	int code;

	if (r < 0)
		return -1;
	net_consume(&p->net, (size_t)r);
	code = net_reply_code(p->net.reply);
	if (code == 334)
		code = secret_line(p, "", (const unsigned char *)user,
				   strlen(user), masked);
	if (code == 334)
		code = secret_line(p, "", (const unsigned char *)pass,
				   strlen(pass), masked);
	return code;
}

/* Why AUTH cannot be tried at all, as a failure, or 0 when it can. */
static int auth_usable(struct probe *p, const char *mechs, const char *user,
		       const char *pass)
{
	const char *host = p->net.host;

	if (!probe_offers(p, "AUTH", NULL, 0))
		return net_error(&p->net, NF_NO_AUTH,
				 "%s offers no authentication (AUTH) after "
				 "EHLO, but a username is configured",
				 host);
	if (!has_word(mechs, "PLAIN") && !has_word(mechs, "LOGIN"))
		return net_error(&p->net, NF_NO_AUTH,
				 "%s offers only AUTH %s, none of which the "
				 "test speaks (PLAIN, LOGIN)",
				 host, mechs);
	if (!p->net.used_tls && !p->allow_plaintext_auth)
		return net_error(&p->net, NF_NO_AUTH,
				 "refusing to send the password to %s "
				 "unencrypted; use encryption = tls or ssl",
				 host);
	if (strlen(user) > PROBE_SECRET_MAX || strlen(pass) > PROBE_SECRET_MAX)
		return net_error(&p->net, NF_IO,
				 "username or password over %d octets",
				 PROBE_SECRET_MAX);
	return 0;
}

int probe_auth(struct probe *p, const char *user, const char *password,
	       struct probe_step *s)
{
	double t0 = step_start(s);
	char mechs[256] = "";
	bool plain;
	int code;

	probe_offers(p, "AUTH", mechs, sizeof mechs);
	if (auth_usable(p, mechs, user, password) != 0)
		return step_end(p, s, t0, -1);
	plain = has_word(mechs, "PLAIN");
	snprintf(s->detail, sizeof s->detail, "%s", plain ? "PLAIN" : "LOGIN");
	code = plain ? auth_plain(p, user, password)
		     : auth_login(p, user, password);
	if (code < 0)
		return step_end(p, s, t0, -1);
	snprintf(s->reply, sizeof s->reply, "%s", p->net.reply);
	if (code != 235)
		net_error(&p->net, NF_AUTH, "%s refused the login: %s",
			  p->net.host, p->net.reply);
	return step_end(p, s, t0, code == 235 ? 0 : -1);
}

int probe_mail(struct probe *p, const char *sender, struct probe_step *s)
{
	double t0 = step_start(s);
	char line[300];
	long n;

	if (strlen(sender) > 254 || strpbrk(sender, "\r\n<>") != NULL)
		return step_end(p, s, t0,
				net_error(&p->net, NF_IO,
					  "the sender address is "
					  "not usable in MAIL FROM"));
	snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", sender);
	if ((n = net_command(&p->net, line, NULL, 0)) < 0)
		return step_end(p, s, t0, -1);
	net_consume(&p->net, (size_t)n);
	snprintf(s->reply, sizeof s->reply, "%s", p->net.reply);
	snprintf(s->detail, sizeof s->detail, "%s", p->net.reply);
	if (net_reply_code(p->net.reply) / 100 != 2)
		return step_end(p, s, t0,
				net_error(&p->net, NF_SENDER,
					  "%s refused the sender "
					  "<%s>: %s",
					  p->net.host, sender, p->net.reply));
	p->in_mail = true;
	return step_end(p, s, t0, 0);
}

/* Send one closing command and swallow its reply. */
static void closing(struct probe *p, const char *line)
{
	long n = net_command(&p->net, line, NULL, 0);

	if (n > 0)
		net_consume(&p->net, (size_t)n);
}

void probe_free(struct probe *p)
{
	if (p == NULL)
		return;
	if (p->session && p->in_mail)
		closing(p, "RSET\r\n");
	if (p->session)
		closing(p, "QUIT\r\n");
	net_close(&p->net);
	if (p->ai != NULL)
		freeaddrinfo(p->ai);
	free(p);
}
