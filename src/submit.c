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
#include "queue.h"

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

/* The sender a message is from when -f is not given: the login name. */
static char *login_sender(const struct config *cfg)
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
				    : login_sender(s->cfg);
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

/* The envelope and the initial state, from what was read. */
static int fill_envelope(struct submission *s, struct sm_error *err)
{
	struct queue_envelope *env = &s->env;
	const struct options *o = s->o;

	memcpy(env->id, s->id, sizeof env->id);
	env->created = (long long)time(NULL);
	env->size = s->info.size;
	env->header_len = s->info.header_len;
	env->caller_sender = (char *)o->sender;
	env->from_addr = s->info.from_addr;
	env->from_display = s->info.from_display;
	env->has_reply_to = s->info.has_reply_to;
	env->message_id = s->info.message_id;
	env->eight_bit = s->info.eight_bit;
	env->body = o->body;
	env->ret = o->ret;
	env->notify = o->notify;
	env->envid = (char *)o->envid;
	env->nrcpts = s->rcpts.n;
	env->rcpts = calloc(s->rcpts.n, sizeof *env->rcpts);
	s->st.rcpt_state = malloc(s->rcpts.n);
	if (env->rcpts == NULL || s->st.rcpt_state == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	for (size_t i = 0; i < s->rcpts.n; i++)
		env->rcpts[i] = s->rcpts.v[i].addr;
	memset(s->st.rcpt_state, RS_PENDING, s->rcpts.n);
	return 0;
}

/* Envelope and state after the message, then durable in new/. */
static int enqueue(struct submission *s, struct sm_error *err)
{
	if (queue_write_envelope(s->fd, &s->env, &s->st, err) != 0 ||
	    queue_commit(s->cfg->queue_dir, s->id, s->fd, err) != 0)
		return -1;
	/* From here on the mail is safe. */
	return 0;
}

/* The exit code and the stderr lines for the recipients' final outcomes:
 * every refused recipient gets a line; the last line is the exit's. */
static int judge_outcome(const struct deliver_msg *m,
			 const struct deliver_session *ds, struct sm_error *err)
{
	size_t delivered = 0, perm = 0, shown = 0;

	(void)ds;
	for (size_t j = 0; j < m->nrcpts; j++) {
		delivered += m->rcpts[j].result == DELIVERED;
		perm += m->rcpts[j].result == PERMFAIL;
	}
	if (perm == 0)
		return 0;
	if (m->refused_whole) {
		const char *hint = m->rcpts[0].hint;

		return error_set(err, EX_UNAVAILABLE,
				 "the server refused the message: %s%s%s",
				 m->reply, hint ? " -> " : "", hint ? hint : "");
	}
	for (size_t j = 0; j < m->nrcpts; j++) {
		const char *hint = m->rcpts[j].hint;

		if (m->rcpts[j].result != PERMFAIL)
			continue;
		if (++shown < perm) {
			fprintf(stderr, "%s: <%s> refused: %s%s%s\n",
				program_invocation_short_name, m->rcpts[j].addr,
				m->rcpts[j].reply, hint ? " -> " : "",
				hint ? hint : "");
			continue;
		}
		error_set(err, EX_NOUSER, "<%s> refused: %s%s%s%s",
			  m->rcpts[j].addr, m->rcpts[j].reply,
			  hint ? " -> " : "", hint ? hint : "",
			  delivered ? " (sent to the other recipients)" : "");
	}
	return -1;
}

/* Some recipients deferred: queue the message for the runner. */
static int defer(struct submission *s, const struct attempt *a,
		 struct sm_error *err)
{
	struct sm_error qerr = {0};
	long long now = (long long)time(NULL);

	s->st.next = attempt_next_time(s->cfg, s->st.attempts, now);
	if (enqueue(s, &qerr) != 0)
		return error_set(err, EX_TEMPFAIL,
				 "not sent (%s), and not queued either: %s",
				 s->st.error, qerr.msg);
	log_line(LOG_LVL_INFO, s->id,
		 "queued: %zu recipient(s) deferred, next attempt in %lld s: %s",
		 a->deferred, s->st.next - now, s->st.error);
	return 0;
}

/* Try now; then either done (file removed) or deferred (file queued). */
static int attempt_now(struct submission *s, struct sm_error *err)
{
	struct attempt a = {.fd = s->fd, .env = &s->env, .st = &s->st};
	struct deliver_session ds;
	int rc;

	attempt_deliver(s->cfg, &a, 1, s->o->verbose ? stderr : NULL, &ds);
	if (a.deferred > 0)
		rc = defer(s, &a, err);
	else {
		queue_remove_tmp(s->cfg->queue_dir, s->id);
		rc = judge_outcome(&a.m, &ds, err);
	}
	attempt_free(&a, 1);
	return rc;
}

int submit_message(const struct options *o, const struct config *cfg,
		   struct sm_error *err)
{
	struct submission s = {.o = o, .cfg = cfg, .fd = -1};
	int rc = -1;

	if (read_submission(&s, err) == 0 && fill_envelope(&s, err) == 0) {
		if (o->delivery == DM_QUEUE_ONLY) {
			s.st.next = (long long)time(NULL);
			rc = enqueue(&s, err);
			if (rc == 0)
				log_line(LOG_LVL_INFO, s.id, "queued (-odq)");
		} else {
			rc = attempt_now(&s, err);
		}
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
	free(s.env.rcpts);
	free(s.st.rcpt_state);
	return err->code;
}
