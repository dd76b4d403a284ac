/*
 * smtpin.c - the -bs SMTP server dialogue (see smtpin.h).
 *
 * One table names every command with its handler, the transaction states
 * it is allowed in and its syntax.  Input goes through one msg_reader that
 * both the command reader and message_read_from() use, so bytes pipelined
 * after a command or after the final "." are never lost.  Replies collect
 * in an output buffer that is written whole before the session could wait
 * for input.
 */
#include "smtpin.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "log.h"
#include "message.h"
#include "queue.h"

/* Transaction states, as bits so that a command names all it allows. */
enum state { ST_IDLE = 1, ST_MAIL = 2, ST_RCPT = 4 };
#define ST_ANY (ST_IDLE | ST_MAIL | ST_RCPT)

struct outbuf {
	char *p;
	size_t len, cap;
};

struct session {
	const struct options *o;
	const struct config *cfg;
	const struct smtpin_io *io;
	struct msg_reader *in;
	struct outbuf out;
	bool done;	 /* QUIT, end of input, or the client is gone */
	unsigned errors; /* bad commands so far */
	char *login;	 /* From: for a message sent with MAIL FROM:<> */
	/* the transaction */
	enum state state;
	char *sender;	       /* MAIL FROM ("" for <>), or NULL */
	enum body_type body;   /* MAIL BODY= */
	struct addrlist rcpts; /* resolved recipients */
};

/* A message being received: its spool file and what describes it. */
struct inbound {
	char id[QUEUE_ID_LEN + 1];
	int fd;
	struct message_info info;
	struct queue_envelope env;
	struct queue_state st;
};

enum argrule { ARG_NONE, ARG_ANY, ARG_REQUIRED };

struct command {
	const char *verb;
	int (*run)(struct session *s, char *arg); /* -1: a bad command */
	unsigned states; /* where it is allowed (enum state bits) */
	enum argrule arg;
	const char *syntax;   /* for 501 and HELP */
	const char *sequence; /* the 503 text out of sequence */
};

static int do_helo(struct session *s, char *arg);
static int do_ehlo(struct session *s, char *arg);
static int do_mail(struct session *s, char *arg);
static int do_rcpt(struct session *s, char *arg);
static int do_data(struct session *s, char *arg);
static int do_rset(struct session *s, char *arg);
static int do_noop(struct session *s, char *arg);
static int do_vrfy(struct session *s, char *arg);
static int do_expn(struct session *s, char *arg);
static int do_help(struct session *s, char *arg);
static int do_quit(struct session *s, char *arg);

static const struct command commands[] = {
    [SMTP_HELO] = {"HELO", do_helo, ST_ANY, ARG_REQUIRED, "HELO <domain>",
		   NULL},
    [SMTP_EHLO] = {"EHLO", do_ehlo, ST_ANY, ARG_REQUIRED, "EHLO <domain>",
		   NULL},
    [SMTP_MAIL] = {"MAIL", do_mail, ST_IDLE, ARG_REQUIRED,
		   "MAIL FROM:<address> [BODY=8BITMIME|7BIT] [SIZE=<octets>]",
		   "sender already given: send RSET to start over"},
    [SMTP_RCPT] = {"RCPT", do_rcpt, ST_MAIL | ST_RCPT, ARG_REQUIRED,
		   "RCPT TO:<address>", "need MAIL before RCPT"},
    [SMTP_DATA] = {"DATA", do_data, ST_RCPT, ARG_NONE, "DATA",
		   "need MAIL and at least one accepted RCPT before DATA"},
    [SMTP_RSET] = {"RSET", do_rset, ST_ANY, ARG_NONE, "RSET", NULL},
    [SMTP_NOOP] = {"NOOP", do_noop, ST_ANY, ARG_ANY, "NOOP", NULL},
    [SMTP_VRFY] = {"VRFY", do_vrfy, ST_ANY, ARG_REQUIRED, "VRFY <address>",
		   NULL},
    [SMTP_EXPN] = {"EXPN", do_expn, ST_ANY, ARG_ANY, "EXPN <list>", NULL},
    [SMTP_HELP] = {"HELP", do_help, ST_ANY, ARG_ANY, "HELP", NULL},
    [SMTP_QUIT] = {"QUIT", do_quit, ST_ANY, ARG_NONE, "QUIT", NULL},
};

/* --- parsing (pure: no session, no I/O) -------------------------------- */

enum smtpin_verb smtpin_parse_verb(char *line, char **arg)
{
	size_t n = strcspn(line, " \t"), len = strlen(line);

	while (len > n && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	*arg = line + n;
	while (**arg == ' ' || **arg == '\t')
		(*arg)++;
	for (size_t v = 0; v < SMTP_UNKNOWN; v++)
		if (strlen(commands[v].verb) == n &&
		    strncasecmp(line, commands[v].verb, n) == 0)
			return (enum smtpin_verb)v;
	return SMTP_UNKNOWN;
}

/* <path>: the address between the brackets; *rest after the '>'. */
static int bracketed(char *p, char **addr, char **rest, const char **why)
{
	char *end = strchr(p, '>');

	if (end == NULL) {
		*why = "the address has no closing >";
		return -1;
	}
	*end = '\0';
	*addr = p + 1;
	*rest = end + 1;
	if (**rest != '\0' && **rest != ' ') {
		*why = "a space must follow the closing >";
		return -1;
	}
	return 0;
}

int smtpin_parse_path(char *arg, const char *keyword, char **addr,
		      char **params, const char **why)
{
	size_t k = strlen(keyword);
	char *p = arg, *rest;

	if (strncasecmp(p, keyword, k) != 0) {
		*why =
		    keyword[0] == 'F' ? "FROM: is missing" : "TO: is missing";
		return -1;
	}
	for (p += k; *p == ' '; p++)
		;
	if (*p == '<') {
		if (bracketed(p, addr, &rest, why) != 0)
			return -1;
	} else if (*p == '\0') {
		*why = "the address is missing";
		return -1;
	} else { /* a bare address, as lenient servers take it */
		*addr = p;
		rest = p + strcspn(p, " ");
		if (*rest != '\0')
			*rest++ = '\0';
	}
	if (**addr == '@') { /* RFC 5321 4.1.2: a source route, ignored */
		char *colon = strchr(*addr, ':');

		if (colon == NULL) {
			*why = "the source route has no colon";
			return -1;
		}
		*addr = colon + 1;
	}
	while (*rest == ' ')
		rest++;
	*params = rest;
	return 0;
}

/* SIZE=digits, saturating at LLONG_MAX; -1 when not a number. */
static long long parse_size(const char *v)
{
	long long n = 0;

	if (v == NULL || *v == '\0' || v[strspn(v, "0123456789")] != '\0')
		return -1;
	for (; *v; v++) {
		int d = *v - '0';

		if (n > (LLONG_MAX - d) / 10)
			return LLONG_MAX;
		n = n * 10 + d;
	}
	return n;
}

/* One KEY[=VALUE] parameter of MAIL into mp. */
static enum smtpin_param mail_param(char *tok, struct smtpin_mail_params *mp)
{
	char *eq = strchr(tok, '=');
	const char *val = eq != NULL ? eq + 1 : NULL;
	size_t klen = eq != NULL ? (size_t)(eq - tok) : strlen(tok);

	if (klen == 4 && strncasecmp(tok, "BODY", 4) == 0) {
		if (val != NULL && strcasecmp(val, "8BITMIME") == 0)
			mp->body = BODY_8BITMIME;
		else if (val != NULL && strcasecmp(val, "7BIT") == 0)
			mp->body = BODY_7BIT;
		else
			return SMTPIN_PARAM_BAD;
		return SMTPIN_PARAM_OK;
	}
	if (klen == 4 && strncasecmp(tok, "SIZE", 4) == 0)
		return (mp->size = parse_size(val)) < 0 ? SMTPIN_PARAM_BAD
							: SMTPIN_PARAM_OK;
	return SMTPIN_PARAM_UNKNOWN;
}

enum smtpin_param smtpin_parse_mail_params(char *params,
					   struct smtpin_mail_params *mp,
					   char **bad)
{
	char *save = NULL;

	mp->body = BODY_UNSET;
	mp->size = 0;
	for (char *tok = strtok_r(params, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		enum smtpin_param r = mail_param(tok, mp);

		if (r != SMTPIN_PARAM_OK) {
			*bad = tok;
			return r;
		}
	}
	return SMTPIN_PARAM_OK;
}

/* --- output ------------------------------------------------------------ */

/* Queue one reply line (CRLF added; control characters shown as '?', so
 * hostile words cannot break the dialogue; cut at SMTPIN_LINE_MAX). */
static void reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply(struct session *s, const char *fmt, ...)
{
	char line[SMTPIN_LINE_MAX];
	struct outbuf *b = &s->out;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 3)
		n = (int)(sizeof line - 3);
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n] = '\r';
	line[n + 1] = '\n';
	if (b->len + (size_t)n + 2 > b->cap) {
		size_t cap = (b->len + (size_t)n + 2) * 2;
		char *p = realloc(b->p, cap);

		if (p == NULL) {
			s->done = true; /* cannot answer: end the session */
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, line, (size_t)n + 2);
	b->len += (size_t)n + 2;
}

/* Whether out_fd takes more within the idle timeout. */
static bool writable(const struct session *s)
{
	struct pollfd p = {.fd = s->io->out_fd, .events = POLLOUT};
	int n;

	if (s->io->idle_timeout <= 0)
		return true;
	do
		n = poll(&p, 1, s->io->idle_timeout * 1000);
	while (n < 0 && errno == EINTR);
	return n != 0;
}

/* Write every queued reply; a client that is gone ends the session. */
static void flush(struct session *s)
{
	size_t off = 0;

	while (off < s->out.len) {
		ssize_t k = writable(s) ? write(s->io->out_fd, s->out.p + off,
						s->out.len - off)
					: -1;

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			s->done = true;
			break;
		}
		off += (size_t)k;
	}
	s->out.len = 0;
}

/* Reply to a bad command; returns -1 so that it is counted. */
static int refuse(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int refuse(struct session *s, const char *fmt, ...)
{
	char text[SMTPIN_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	reply(s, "%s", text);
	return -1;
}

/* --- the transaction --------------------------------------------------- */

/* Forget the sender and the recipients (RSET, HELO, EHLO, after DATA). */
static void reset(struct session *s)
{
	free(s->sender);
	s->sender = NULL;
	addrlist_free(&s->rcpts);
	s->body = BODY_UNSET;
	s->state = ST_IDLE;
}

static int do_helo(struct session *s, char *arg)
{
	(void)arg;
	reset(s);
	reply(s, "250 %s", s->cfg->hostname);
	return 0;
}

static int do_ehlo(struct session *s, char *arg)
{
	(void)arg;
	reset(s);
	reply(s, "250-%s", s->cfg->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-8BITMIME");
	reply(s, "250-SIZE %lld", MESSAGE_SIZE_MAX);
	reply(s, "250 ENHANCEDSTATUSCODES");
	return 0;
}

static int do_mail(struct session *s, char *arg)
{
	struct smtpin_mail_params mp;
	char *addr, *params, *bad;
	const char *why;

	if (smtpin_parse_path(arg, "FROM:", &addr, &params, &why) != 0)
		return refuse(s, "501 5.5.4 %s; syntax: %s", why,
			      commands[SMTP_MAIL].syntax);
	switch (smtpin_parse_mail_params(params, &mp, &bad)) {
	case SMTPIN_PARAM_UNKNOWN:
		return refuse(s, "555 5.5.4 unsupported parameter %s", bad);
	case SMTPIN_PARAM_BAD:
		return refuse(s, "501 5.5.4 bad parameter %s", bad);
	case SMTPIN_PARAM_OK:
		break;
	}
	if (mp.size > MESSAGE_SIZE_MAX)
		return refuse(s,
			      "552 5.3.4 message too big: at most %lld octets",
			      MESSAGE_SIZE_MAX);
	if (addr[0] != '\0' && !address_valid(addr, &why))
		return refuse(s, "501 5.1.7 the sender address %s", why);
	if ((s->sender = strdup(addr)) == NULL)
		return refuse(s, "451 4.3.0 out of memory");
	s->body = mp.body;
	s->state = ST_MAIL;
	reply(s, "250 2.1.0 sender <%s> OK", addr);
	return 0;
}

/* Drop what an incomplete RCPT added to the list beyond n entries. */
static void rcpts_truncate(struct addrlist *l, size_t n)
{
	while (l->n > n) {
		l->n--;
		free(l->v[l->n].addr);
		free(l->v[l->n].display);
	}
}

/* Add addr, resolved (aliases, default domain), to the recipients. */
static int add_recipient(struct session *s, const char *addr)
{
	const struct config *cfg = s->cfg;
	struct addrlist one = {0};
	struct sm_error e = {0};
	size_t before = s->rcpts.n;
	int rc = 0;

	if (addrlist_add(&one, addr, NULL, &e) != 0 ||
	    address_resolve(&one, cfg->aliases, cfg->naliases,
			    cfg->default_domain, &e) != 0)
		rc = refuse(s, "550 5.1.1 <%s>: %s", addr, e.msg);
	for (size_t i = 0; rc == 0 && i < one.n; i++)
		if (addrlist_add(&s->rcpts, one.v[i].addr, NULL, &e) != 0) {
			rcpts_truncate(&s->rcpts, before);
			rc = refuse(s,
				    "452 4.5.3 too many recipients: at most "
				    "%d per message",
				    ADDRESS_LIST_MAX);
		}
	addrlist_free(&one);
	return rc;
}

static int do_rcpt(struct session *s, char *arg)
{
	char *addr, *params;
	const char *why;

	if (smtpin_parse_path(arg, "TO:", &addr, &params, &why) != 0)
		return refuse(s, "501 5.5.4 %s; syntax: %s", why,
			      commands[SMTP_RCPT].syntax);
	if (params[0] != '\0')
		return refuse(s, "555 5.5.4 unsupported parameter %.*s",
			      (int)strcspn(params, " "), params);
	if (!address_valid(addr, &why))
		return refuse(s, "501 5.1.3 the recipient address %s", why);
	if (s->rcpts.n >= ADDRESS_LIST_MAX)
		return refuse(s,
			      "452 4.5.3 too many recipients: at most %d "
			      "per message",
			      ADDRESS_LIST_MAX);
	if (add_recipient(s, addr) != 0)
		return -1;
	s->state = ST_RCPT;
	reply(s, "250 2.1.5 recipient <%s> OK", addr);
	return 0;
}

/* --- DATA -------------------------------------------------------------- */

/* The spool file for the message; 451 when there is none. */
static int open_spool(struct session *s, struct inbound *m)
{
	struct sm_error err = {0};

	queue_id_new(m->id);
	m->fd = queue_create_tmp(s->cfg->queue_dir, m->id, &err);
	if (m->fd >= 0)
		return 0;
	log_line(LOG_LVL_ERR, NULL, "smtp: %s", err.msg);
	reply(s, "451 4.3.0 cannot spool the message: %s", err.msg);
	return -1;
}

/* The input ended inside DATA: nothing acknowledged, nothing kept. */
static void lost_data(struct session *s, const struct inbound *m)
{
	bool idle = message_reader_timed_out(s->in);

	log_line(LOG_LVL_WARN, m->id,
		 "smtp: the input %s inside DATA: the partial message was "
		 "discarded",
		 idle ? "stayed silent too long" : "ended");
	if (idle)
		reply(s, "421 4.4.2 %s no input for %d seconds, closing",
		      s->cfg->hostname, s->io->idle_timeout);
	s->done = true;
}

/* The message text, up to the "." line, into the spool file. */
static int receive(struct session *s, struct inbound *m)
{
	struct message_opts mo = {
	    .smtp = true,
	    .sender = s->sender[0] != '\0' ? s->sender : s->login,
	    .fullname = s->o->fullname,
	    .hostname = s->cfg->hostname,
	    .id = m->id,
	    .now = time(NULL),
	};
	struct sm_error err = {0};

	if (message_read_from(s->in, m->fd, &mo, &m->info, &err) == 0)
		return 0;
	queue_remove_tmp(s->cfg->queue_dir, m->id);
	if (m->info.incomplete) {
		lost_data(s, m);
		return -1;
	}
	log_line(LOG_LVL_WARN, m->id, "smtp: refused: %s", err.msg);
	if (m->info.size > MESSAGE_SIZE_MAX)
		reply(s, "552 5.3.4 %s", err.msg);
	else if (err.code == EX_DATAERR)
		reply(s, "554 5.6.0 %s", err.msg);
	else
		reply(s, "451 4.3.0 %s", err.msg);
	return -1;
}

/* The enhanced status code at the start of words ("5.1.1"), or dflt. */
static void enhanced_of(const char *words, const char *dflt, char *out,
			size_t size)
{
	size_t n = strspn(words, "0123456789.");

	if (n >= 5 && n < size && words[1] == '.' &&
	    (words[n] == ' ' || words[n] == '\0') && words[0] == dflt[0]) {
		memcpy(out, words, n);
		out[n] = '\0';
	} else {
		snprintf(out, size, "%s", dflt);
	}
}

/* Every recipient or the message refused: the server's 5xx and words. */
static void relay_refusal(struct session *s, const char *words)
{
	char enh[16];
	int code = 554;
	const char *rest = words;

	if (words[0] == '5' && isdigit((unsigned char)words[1]) &&
	    isdigit((unsigned char)words[2]) && words[3] == ' ') {
		code = (words[0] - '0') * 100 + (words[1] - '0') * 10 +
		       (words[2] - '0');
		rest = words + 4;
	}
	enhanced_of(rest, "5.0.0", enh, sizeof enh);
	reply(s, "%d %s the server refused it: %s", code, enh,
	      words[0] ? words : "no reason given");
}

/* The reply to the final ".": what submit_spooled() made of it. */
static void reply_outcome(struct session *s, const struct inbound *m, int rc,
			  const struct submit_outcome *out,
			  const struct sm_error *err)
{
	if (rc == 0 && out->refused > 0)
		reply(s,
		      "250 2.0.0 %s accepted; %zu recipient(s) refused, a "
		      "failure notice follows: %s",
		      m->id, out->refused, out->reply);
	else if (rc == 0 && out->queued)
		reply(s,
		      "250 2.0.0 %s queued: the server will be tried again "
		      "later",
		      m->id);
	else if (rc == 0)
		reply(s, "250 2.0.0 %s delivered", m->id);
	else if (err->code == EX_NOUSER || err->code == EX_UNAVAILABLE)
		relay_refusal(s, out->reply);
	else
		reply(s, "451 4.3.0 %s", err->msg);
	if (rc != 0)
		log_line(LOG_LVL_ERR, m->id, "smtp: %s", err->msg);
}

/* Envelope, then delivery or the queue; the reply says which. */
static void accept_message(struct session *s, struct inbound *m)
{
	struct submit_job job = {.fd = m->fd,
				 .env = &m->env,
				 .st = &m->st,
				 .delivery = s->o->delivery,
				 .notice_refused = true,
				 .transcript = s->o->verbose ? stderr : NULL};
	struct submit_outcome out = {0};
	struct sm_error err = {0};
	int rc;

	if (submit_envelope(&m->env, &m->st, m->id, &m->info, &s->rcpts,
			    s->sender, s->o, &err) != 0) {
		queue_remove_tmp(s->cfg->queue_dir, m->id);
		reply(s, "451 4.3.0 %s", err.msg);
		return;
	}
	if (s->body != BODY_UNSET)
		m->env.body = s->body;
	rc = s->io->submit(s->cfg, &job, &out, &err);
	reply_outcome(s, m, rc, &out, &err);
}

static int do_data(struct session *s, char *arg)
{
	struct inbound m = {.fd = -1};

	(void)arg;
	if (open_spool(s, &m) != 0)
		return 0;
	reply(s, "354 end data with <CR><LF>.<CR><LF>");
	flush(s);
	if (s->done) /* nobody to answer: take nothing */
		queue_remove_tmp(s->cfg->queue_dir, m.id);
	else if (receive(s, &m) == 0)
		accept_message(s, &m);
	close(m.fd);
	message_info_free(&m.info);
	submit_envelope_free(&m.env, &m.st);
	reset(s);
	return 0;
}

/* --- the other commands ------------------------------------------------ */

static int do_rset(struct session *s, char *arg)
{
	(void)arg;
	reset(s);
	reply(s, "250 2.0.0 OK");
	return 0;
}

static int do_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "250 2.0.0 OK");
	return 0;
}

static int do_vrfy(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "252 2.0.0 cannot VRFY, but will accept the message and "
		 "attempt delivery");
	return 0;
}

static int do_expn(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "502 5.5.1 EXPN is not available");
	return 0;
}

static int do_help(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "214-2.0.0 switchmail accepts these commands:");
	for (size_t v = 0; v < SMTP_UNKNOWN; v++)
		if (v != SMTP_EXPN)
			reply(s, "214-2.0.0   %s", commands[v].syntax);
	reply(s, "214 2.0.0 end of HELP");
	return 0;
}

static int do_quit(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "221 2.0.0 %s closing connection", s->cfg->hostname);
	s->done = true;
	return 0;
}

/* --- the session ------------------------------------------------------- */

/* One command line: check it against the table, run its handler. */
static int dispatch(struct session *s, char *line)
{
	char *arg;
	enum smtpin_verb v = smtpin_parse_verb(line, &arg);
	const struct command *c;

	if (v == SMTP_UNKNOWN)
		return refuse(s, "500 5.5.2 command not recognized");
	c = &commands[v];
	if ((c->arg == ARG_NONE && arg[0] != '\0') ||
	    (c->arg == ARG_REQUIRED && arg[0] == '\0'))
		return refuse(s, "501 5.5.4 syntax: %s", c->syntax);
	if ((c->states & s->state) == 0)
		return refuse(s, "503 5.5.1 %s", c->sequence);
	return c->run(s, arg);
}

/* One input line, whatever it holds; too many bad ones end the session. */
static void command(struct session *s, char *line, size_t n, bool too_long)
{
	int rc;

	if (too_long)
		rc = refuse(s,
			    "500 5.5.2 line too long: a command line is at "
			    "most %d octets",
			    SMTPIN_LINE_MAX);
	else if (memchr(line, '\0', n) != NULL)
		rc = refuse(s, "500 5.5.2 command contains a NUL octet");
	else
		rc = dispatch(s, line);
	if (rc != 0 && ++s->errors > SMTPIN_ERRORS_MAX) {
		reply(s, "421 4.7.0 %s too many bad commands, closing",
		      s->cfg->hostname);
		log_line(LOG_LVL_WARN, NULL,
			 "smtp: more than %d bad commands: session closed",
			 SMTPIN_ERRORS_MAX);
		s->done = true;
	}
}

/* No more input: say why when it was the idle timeout. */
static void input_ended(struct session *s)
{
	s->done = true;
	if (!message_reader_timed_out(s->in))
		return;
	log_line(LOG_LVL_WARN, NULL,
		 "smtp: no command for %d seconds: "
		 "session closed",
		 s->io->idle_timeout);
	reply(s, "421 4.4.2 %s no command for %d seconds, closing",
	      s->cfg->hostname, s->io->idle_timeout);
}

/* Greeting, then one command after another until the session is over. */
static void serve(struct session *s)
{
	char line[SMTPIN_LINE_MAX + 1];

	reply(s, "220 %s switchmail ESMTP", s->cfg->hostname);
	while (!s->done) {
		bool too_long;
		long n;

		if (!message_reader_ready(s->in))
			flush(s); /* the client may wait for our replies */
		if (s->done)
			break;
		n = message_reader_line(s->in, line, SMTPIN_LINE_MAX - 2,
					&too_long);
		if (n < 0)
			input_ended(s);
		else
			command(s, line, (size_t)n, too_long);
	}
	flush(s);
}

int smtpin_session(const struct options *o, const struct config *cfg,
		   const struct smtpin_io *io, struct sm_error *err)
{
	struct session s = {.o = o, .cfg = cfg, .io = io, .state = ST_IDLE};
	int rc = EX_OK;

	s.in = message_reader_new(io->in_fd, io->idle_timeout);
	s.login = submit_login_sender(cfg);
	if (s.in == NULL || s.login == NULL) {
		error_set(err, EX_OSERR, "out of memory");
		rc = EX_OSERR;
	} else {
		serve(&s);
	}
	if (s.errors > 0)
		log_line(LOG_LVL_INFO, NULL,
			 "smtp: session had %u bad "
			 "command(s)",
			 s.errors);
	reset(&s);
	free(s.out.p);
	free(s.login);
	message_reader_free(s.in);
	return rc;
}

int smtpin_run(const struct options *o, const struct config *cfg,
	       struct sm_error *err)
{
	struct smtpin_io io = {.in_fd = STDIN_FILENO,
			       .out_fd = STDOUT_FILENO,
			       .idle_timeout = SMTPIN_IDLE_TIMEOUT,
			       .submit = submit_spooled};

	return smtpin_session(o, cfg, &io, err);
}
