/*
 * submit.c - one message from stdin, accepted (see submit.h).
 */
#include "submit.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "attempt.h"
#include "log.h"
#include "message.h"
#include "notice.h"
#include "queue.h"
#include "route.h"

struct submission {
	const struct options *o;
	const struct config *cfg;
	char id[QUEUE_ID_LEN + 1];
	int fd;
	struct message_info info;
	struct addrlist rcpts;
	char *default_sender; /* -f, else the login name qualified */
	struct queue_envelope env;
	struct queue_state st;
};

static void drain_stdin(void)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
		;
}

char *submit_login_sender(const struct config *cfg)
{
	struct passwd *pw = getpwuid(getuid());
	const char *name = pw ? pw->pw_name : "nobody";
	char *out;

	if (cfg->default_domain == NULL)
		return strdup(name);
	if (asprintf(&out, "%s@%s", name, cfg->default_domain) < 0)
		return NULL;
	return out;
}

/* Argument recipients (comma lists allowed), plus -t's header ones, with
 * aliases and the default domain applied. */
static int collect_rcpts(struct submission *s, struct sm_error *err)
{
	const struct options *o = s->o;

	for (size_t i = 0; i < o->nrecipients; i++)
		if (address_list_parse(o->recipients[i],
				       strlen(o->recipients[i]), &s->rcpts,
				       err) != 0)
			return -1;
	for (size_t i = 0; i < s->info.rcpts.n; i++)
		if (addrlist_add(&s->rcpts, s->info.rcpts.v[i].addr, NULL,
				 err) != 0)
			return -1;
	if (s->rcpts.n == 0)
		return error_set(err, EX_USAGE,
				 o->extract_recipients
					 ? "no recipients: the message has no "
					   "To:, Cc: or Bcc: header and none "
					   "was given as an argument"
					 : "no recipients: give the addresses "
					   "as arguments, or use -t to take "
					   "them from the To:, Cc: and Bcc: "
					   "headers");
	return address_resolve(&s->rcpts, s->cfg->aliases, s->cfg->naliases,
			       s->cfg->default_domain, err);
}

/* -f and -F are checked before anything is read (header injection). */
static int check_sender(const struct options *o, struct sm_error *err)
{
	const char *why = NULL;
	char shown[300];

	if (o->sender != NULL && o->sender[0] != '\0' &&
	    !address_valid(o->sender, &why)) {
		error_printable(shown, sizeof shown, o->sender,
				strlen(o->sender));
		return error_set(err, EX_DATAERR, "sender -f \"%s\" %s", shown,
				 why);
	}
	if (o->fullname != NULL && strpbrk(o->fullname, "\r\n") != NULL)
		return error_set(err, EX_DATAERR,
				 "full name -F contains a line break");
	return 0;
}

/* stdin into tmp/ID, then the recipients. */
static int read_submission(struct submission *s, struct sm_error *err)
{
	const struct options *o = s->o;
	struct message_opts mo = {
		.ignore_dots = o->ignore_dots,
		.extract = o->extract_recipients,
		.fullname = o->fullname,
		.hostname = s->cfg->hostname,
		.id = s->id,
		.now = time(NULL),
	};

	if (check_sender(o, err) != 0) {
		drain_stdin();
		return -1;
	}
	s->default_sender = o->sender && o->sender[0]
				? strdup(o->sender)
				: submit_login_sender(s->cfg);
	mo.sender = s->default_sender;
	queue_id_new(s->id);
	if ((s->fd = queue_create_tmp(s->cfg->queue_dir, s->id, err)) < 0) {
		drain_stdin();
		return -1;
	}
	if (message_read(0, s->fd, &mo, &s->info, err) != 0)
		return -1;
	return collect_rcpts(s, err);
}

int submit_envelope(struct queue_envelope *env, struct queue_state *st,
		    const char *id, const struct message_info *info,
		    const struct addrlist *rcpts, const char *caller_sender,
		    const struct options *o, struct sm_error *err)
{
	memset(env, 0, sizeof *env);
	memset(st, 0, sizeof *st);
	memcpy(env->id, id, sizeof env->id);
	env->created = (long long)time(NULL);
	env->size = info->size;
	env->header_len = info->header_len;
	env->caller_sender = (char *)caller_sender;
	env->from_addr = info->from_addr;
	env->from_display = info->from_display;
	env->has_reply_to = info->has_reply_to;
	env->message_id = info->message_id;
	env->eight_bit = info->eight_bit;
	env->body = o->body;
	env->ret = o->ret;
	env->notify = o->notify;
	env->envid = (char *)o->envid;
	env->nrcpts = rcpts->n;
	env->rcpts = calloc(rcpts->n ? rcpts->n : 1, sizeof *env->rcpts);
	st->rcpt_state = malloc(rcpts->n ? rcpts->n : 1);
	if (env->rcpts == NULL || st->rcpt_state == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	for (size_t i = 0; i < rcpts->n; i++)
		env->rcpts[i] = rcpts->v[i].addr;
	memset(st->rcpt_state, RS_PENDING, rcpts->n);
	return 0;
}

void submit_envelope_free(struct queue_envelope *env, struct queue_state *st)
{
	if (env != NULL) {
		free(env->rcpts);
		env->rcpts = NULL;
	}
	if (st != NULL) {
		free(st->rcpt_state);
		st->rcpt_state = NULL;
	}
}

/* Envelope and state after the message, then durable in new/. */
static int enqueue(const struct config *cfg, const struct submit_job *job,
		   struct sm_error *err)
{
	if (queue_write_envelope(job->fd, job->env, job->st, err) != 0 ||
	    queue_commit(cfg->queue_dir, job->env->id, job->fd, err) != 0)
		return -1;
	/* From here on the mail is safe. */
	return 0;
}

/* One stderr line for a refused recipient (-bm; never under -bs). */
static void show_refused(const struct deliver_rcpt *rc)
{
	fprintf(stderr, "%s: <%s> refused: %s%s%s\n",
		program_invocation_short_name, rc->addr, rc->reply,
		rc->hint ? " -> " : "", rc->hint ? rc->hint : "");
}

/* Every recipient refused, or -bm with some refused: the error for the
 * exit code (the last refusal), earlier refusals on stderr under -bm. */
static int refused_error(const struct submit_job *job,
			 const struct deliver_msg *m, size_t perm,
			 size_t delivered, struct sm_error *err)
{
	size_t shown = 0;

	if (m->refused_whole) {
		const char *hint = m->rcpts[0].hint;

		return error_set(err, EX_UNAVAILABLE,
				 "the server refused the message: %s%s%s",
				 m->reply, hint ? " -> " : "", hint ? hint : "");
	}
	for (size_t j = 0; j < m->nrcpts; j++) {
		const struct deliver_rcpt *rc = &m->rcpts[j];

		if (rc->result != PERMFAIL)
			continue;
		if (++shown < perm) {
			if (!job->notice_refused)
				show_refused(rc);
			continue;
		}
		error_set(err, EX_NOUSER, "<%s> refused: %s%s%s%s", rc->addr,
			  rc->reply, rc->hint ? " -> " : "",
			  rc->hint ? rc->hint : "",
			  delivered ? " (sent to the other recipients)" : "");
	}
	return -1;
}

/* The outcome of an attempt where every recipient got a final answer:
 * 0 when none was refused; with notice_refused also when some were (a
 * notice is queued for them); else the refusal as the error. */
static int judge_outcome(const struct config *cfg, const struct submit_job *job,
			 const struct deliver_msg *m, struct sm_error *err)
{
	size_t delivered = 0, perm = 0;

	for (size_t j = 0; j < m->nrcpts; j++) {
		delivered += m->rcpts[j].result == DELIVERED;
		perm += m->rcpts[j].result == PERMFAIL;
	}
	if (perm == 0)
		return 0;
	if (job->notice_refused && delivered > 0 && !m->refused_whole) {
		notice_queue(cfg, job->env, job->st, job->fd,
			     "refused by the server");
		return 0;
	}
	return refused_error(job, m, perm, delivered, err);
}

/* Some recipients deferred: queue the message for the runner. */
static int defer(const struct config *cfg, const struct submit_job *job,
		 const struct attempt *a, struct sm_error *err)
{
	struct queue_state *st = job->st;
	struct sm_error qerr = {0};
	long long now = (long long)time(NULL);

	st->next = attempt_next_time(cfg, st->attempts, now);
	if (enqueue(cfg, job, &qerr) != 0)
		return error_set(err, EX_TEMPFAIL,
				 "not sent (%s), and not queued either: %s",
				 st->error, qerr.msg);
	log_line(
	    LOG_LVL_INFO, job->env->id,
	    "queued: %zu recipient(s) deferred, next attempt in %lld s: %s",
	    a->deferred, st->next - now, st->error);
	return 0;
}

/* Counts and the first refusal's words, for the caller's reply. */
static void fill_outcome(const struct attempt *a, struct submit_outcome *out)
{
	out->delivered = a->delivered;
	out->deferred = a->deferred;
	out->refused = a->refused;
	out->refused_whole = a->m.refused_whole;
	out->reply[0] = '\0';
	if (a->m.refused_whole) {
		snprintf(out->reply, sizeof out->reply, "%s", a->m.reply);
		return;
	}
	for (size_t j = 0; j < a->m.nrcpts; j++)
		if (a->m.rcpts[j].result == PERMFAIL) {
			snprintf(out->reply, sizeof out->reply, "%s",
				 a->m.rcpts[j].reply);
			return;
		}
}

/* Try now; then either done (file removed) or deferred (file queued). */
static int attempt_now(const struct config *cfg, const struct submit_job *job,
		       struct submit_outcome *out, struct sm_error *err)
{
	struct attempt a = {.fd = job->fd, .env = job->env, .st = job->st};
	struct deliver_session ds;
	int rc;

	attempt_deliver(cfg, &a, 1, job->transcript, &ds);
	fill_outcome(&a, out);
	if (a.deferred > 0) {
		rc = defer(cfg, job, &a, err);
		out->queued = rc == 0;
	} else {
		rc = judge_outcome(cfg, job, &a.m, err);
		queue_remove_tmp(cfg->queue_dir, job->env->id);
	}
	attempt_free(&a, 1);
	return rc;
}

int submit_spooled(const struct config *cfg, const struct submit_job *job,
		   struct submit_outcome *out, struct sm_error *err)
{
	struct submit_outcome ignored = {0};
	int rc;

	out = out != NULL ? out : &ignored;
	memset(out, 0, sizeof *out);
	if (job->delivery == DM_QUEUE_ONLY) {
		job->st->next = (long long)time(NULL);
		rc = enqueue(cfg, job, err);
		out->queued = rc == 0;
		out->deferred = rc == 0 ? job->env->nrcpts : 0;
		if (rc == 0)
			log_line(LOG_LVL_INFO, job->env->id, "queued (-odq)");
	} else {
		rc = attempt_now(cfg, job, out, err);
	}
	if (rc != 0) /* not accepted */
		queue_remove_tmp(cfg->queue_dir, job->env->id);
	return rc;
}

int submit_message(const struct options *o, const struct config *cfg,
		   struct sm_error *err)
{
	struct submission s = {.o = o, .cfg = cfg, .fd = -1};
	struct submit_job job = {.env = &s.env,
				 .st = &s.st,
				 .delivery = o->delivery,
				 .transcript = o->verbose ? stderr : NULL};
	int rc = -1;

	if (read_submission(&s, err) == 0 &&
	    submit_envelope(&s.env, &s.st, s.id, &s.info, &s.rcpts, o->sender,
			    o, err) == 0) {
		job.fd = s.fd;
		rc = submit_spooled(cfg, &job, NULL, err);
	}
	if (rc != 0 && s.fd >= 0 && err->code != EX_OK)
		queue_remove_tmp(cfg->queue_dir, s.id); /* not accepted */
	if (s.fd >= 0)
		close(s.fd);
	if (err->code != EX_OK)
		log_line(LOG_LVL_ERR, s.id[0] ? s.id : NULL, "%s", err->msg);
	message_info_free(&s.info);
	addrlist_free(&s.rcpts);
	free(s.default_sender);
	submit_envelope_free(&s.env, &s.st);
	return err->code;
}
