/*
 * notice.c - delivery-failure notices (see notice.h).
 */
#include "notice.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "log.h"

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void add(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2 + 1024;
		char *np = realloc(b->p, cap);

		if (np == NULL) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void addf(struct buf *b, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Who is told: aliases.postmaster when set, else the sender. */
static int notice_target(const struct config *cfg,
			 const struct queue_envelope *env, struct addrlist *to,
			 struct sm_error *err)
{
	const char *who = NULL;

	for (size_t i = 0; i < cfg->naliases; i++)
		if (strcasecmp(cfg->aliases[i].name, "postmaster") == 0)
			who = "postmaster";
	if (who == NULL)
		who = env->caller_sender && env->caller_sender[0]
			      ? env->caller_sender
			      : env->from_addr;
	if (who == NULL || who[0] == '\0')
		return error_set(err, EX_NOUSER, "the message has no sender");
	if (addrlist_add(to, who, NULL, err) != 0)
		return -1;
	return address_resolve(to, cfg->aliases, cfg->naliases,
			       cfg->default_domain, err);
}

/* The notice as a canonical (CRLF) message: what failed, why, and the
 * original's header block for reference. */
static void compose(struct buf *b, const struct config *cfg,
		    const struct queue_envelope *env,
		    const struct queue_state *st, int fd, const char *why,
		    const char *to, const char *msgid)
{
	char date[64], when[64];
	time_t now = time(NULL), created = (time_t)env->created;
	struct tm tm;
	char *hdr = malloc((size_t)env->header_len + 1);

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	localtime_r(&created, &tm);
	strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S %z", &tm);
	addf(b, "From: Mail Delivery System <%s>\r\n",
	     config_active_route(cfg)->from);
	addf(b, "To: <%s>\r\nSubject: Undelivered mail returned to sender\r\n",
	     to);
	addf(b, "Date: %s\r\nMessage-ID: %s\r\n", date, msgid);
	addf(b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=UTF-8\r\n\r\n");
	addf(b, "This is switchmail on %s.\r\n\r\n", cfg->hostname);
	addf(b, "Your message could not be delivered to:\r\n\r\n");
	for (size_t j = 0; j < env->nrcpts; j++)
		if (st->rcpt_state[j] != RS_DELIVERED)
			addf(b, "  <%s>\r\n", env->rcpts[j]);
	addf(b, "\r\nReason: %s\r\n", why);
	if (st->error[0] != '\0')
		addf(b, "Last error: %s\r\n", st->error);
	addf(b, "\r\nQueue id %s, accepted %s, %u attempt(s).\r\n", env->id,
	     when, st->attempts);
	addf(b, "\r\n--- the headers of your message ---\r\n\r\n");
	if (hdr != NULL && pread(fd, hdr, (size_t)env->header_len, 0) ==
				   (ssize_t)env->header_len) {
		for (off_t i = 0; i < env->header_len; i++) /* as stored */
			if (hdr[i] == '\0')
				hdr[i] = ' ';
		add(b, hdr, (size_t)env->header_len);
	}
	free(hdr);
}

/* Spool the composed notice as a new waiting message. */
static int spool(const struct config *cfg, struct buf *b, const char *id,
		 const struct addrlist *to, const char *msgid,
		 struct sm_error *err)
{
	struct queue_envelope env = {0};
	struct queue_state st = {0};
	char **rcpts = calloc(to->n, sizeof *rcpts);
	char *state = malloc(to->n);
	int fd = -1, rc = -1;
	const char *blank = memmem(b->p, b->len, "\r\n\r\n", 4);

	if (rcpts == NULL || state == NULL ||
	    (fd = queue_create_tmp(cfg->queue_dir, id, err)) < 0) {
		free(rcpts), free(state);
		if (fd < 0 && err->code != EX_OK)
			return -1; /* queue_create_tmp said why */
		return error_set(err, EX_OSERR, "out of memory");
	}
	for (size_t i = 0; i < to->n; i++)
		rcpts[i] = to->v[i].addr;
	memset(state, RS_PENDING, to->n);
	memcpy(env.id, id, sizeof env.id);
	env.created = (long long)time(NULL);
	env.size = (off_t)b->len;
	env.header_len = blank ? (off_t)(blank - b->p) + 4 : (off_t)b->len;
	env.message_id = (char *)msgid;
	env.from_display = (char *)"Mail Delivery System";
	env.eight_bit = true;
	env.is_notice = true;
	env.rcpts = rcpts;
	env.nrcpts = to->n;
	st.rcpt_state = state;
	st.next = env.created;
	if (write(fd, b->p, b->len) == (ssize_t)b->len &&
	    queue_write_envelope(fd, &env, &st, err) == 0 &&
	    queue_commit(cfg->queue_dir, id, fd, err) == 0)
		rc = 0;
	else if (err->code == EX_OK)
		error_set(err, EX_IOERR, "cannot write the notice");
	close(fd);
	if (rc != 0)
		queue_remove_tmp(cfg->queue_dir, id);
	free(rcpts), free(state);
	return rc;
}

int notice_queue(const struct config *cfg, const struct queue_envelope *env,
		 const struct queue_state *st, int fd, const char *why)
{
	struct addrlist to = {0};
	struct sm_error err = {0};
	struct buf b = {0};
	char id[QUEUE_ID_LEN + 1], msgid[300];
	int rc = 0;

	if (env->is_notice) {
		log_line(LOG_LVL_WARN, env->id,
			 "a failure notice could not be delivered: %s", why);
		return 0;
	}
	if (notice_target(cfg, env, &to, &err) != 0) {
		log_line(LOG_LVL_WARN, env->id, "no failure notice sent: %s",
			 err.msg);
		addrlist_free(&to);
		return 0;
	}
	queue_id_new(id);
	snprintf(msgid, sizeof msgid, "<%s.notice@%s>", id, cfg->hostname);
	compose(&b, cfg, env, st, fd, why, to.v[0].addr, msgid);
	if (b.failed || spool(cfg, &b, id, &to, msgid, &err) != 0) {
		log_line(LOG_LVL_ERR, env->id,
			 "the failure notice could not be queued: %s",
			 err.msg[0] ? err.msg : "out of memory");
		rc = -1;
	} else {
		log_line(LOG_LVL_INFO, env->id,
			 "failure notice %s queued for <%s>: %s", id,
			 to.v[0].addr, why);
	}
	free(b.p);
	addrlist_free(&to);
	return rc;
}
