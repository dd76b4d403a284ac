/*
 * runner.c - queue runs and the queue listing (see runner.h).
 */
#include "runner.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "attempt.h"
#include "ctl.h"
#include "log.h"
#include "notice.h"
#include "queue.h"

/* Whether e is to be attempted in this run. */
static bool selected(const struct queue_entry *e, const struct runner_opts *ro,
		     long long now)
{
	if (ro->due_only && e->st.next > now)
		return false;
	if (ro->id_filter != NULL && strstr(e->env.id, ro->id_filter) == NULL)
		return false;
	if (ro->domain_filter == NULL)
		return true;
	for (size_t j = 0; j < e->env.nrcpts; j++) {
		const char *d = address_domain(e->env.rcpts[j]);

		if (e->st.rcpt_state[j] == RS_PENDING && d != NULL &&
		    strcasestr(d, ro->domain_filter) != NULL)
			return true;
	}
	return false;
}

/* Give up on e: failed/ with the reason, and a notice. */
static void give_up(const struct config *cfg, struct queue_entry *e,
		    const char *why, struct runner_report *rep)
{
	struct sm_error err = {0};

	if (e->st.error[0] == '\0')
		snprintf(e->st.error, sizeof e->st.error, "%s", why);
	queue_save_state(e, &err);
	notice_queue(cfg, &e->env, &e->st, e->fd, why);
	if (queue_move_failed(cfg->queue_dir, e, &err) != 0)
		log_line(LOG_LVL_ERR, e->env.id, "%s", err.msg);
	log_line(LOG_LVL_WARN, e->env.id, "moved to failed/: %s: %s", why,
		 e->st.error);
	rep->failed++;
}

/* After an attempt: removed, failed, or saved for the next try. */
static void settle(const struct config *cfg, struct queue_entry *e,
		   const struct attempt *a, long long now,
		   struct runner_report *rep)
{
	struct sm_error err = {0};
	bool refused = memchr(e->st.rcpt_state, RS_FAILED, e->env.nrcpts);
	bool pending = memchr(e->st.rcpt_state, RS_PENDING, e->env.nrcpts);

	if (!pending && !refused) {
		if (queue_remove(cfg->queue_dir, e, &err) != 0)
			log_line(LOG_LVL_ERR, e->env.id, "%s", err.msg);
		rep->sent++;
	} else if (!pending) {
		give_up(cfg, e, "refused by the server", rep);
	} else if (now - e->env.created >= cfg->max_age) {
		give_up(cfg, e, "expired (queue.max_age)", rep);
	} else {
		e->st.next = attempt_next_time(cfg, e->st.attempts, now);
		if (queue_save_state(e, &err) != 0)
			log_line(LOG_LVL_ERR, e->env.id, "%s", err.msg);
		rep->deferred++;
	}
	(void)a;
}

static void show_progress(const struct runner_opts *ro,
			  const struct runner_report *rep, bool last)
{
	if (!ro->progress)
		return;
	fprintf(stderr, "\r%zu sent, %zu deferred, %zu failed of %zu waiting",
		rep->sent, rep->deferred, rep->failed, rep->total);
	if (last)
		fprintf(stderr, " (%zu not due, busy or unreadable)\n",
			rep->skipped);
	fflush(stderr);
}

/* Open, lock and select up to RUNNER_BATCH entries from ids[*next..]. */
static size_t load_batch(const struct config *cfg, char **ids, size_t n,
			 size_t *next, const struct runner_opts *ro,
			 struct queue_entry *batch, struct runner_report *rep)
{
	long long now = (long long)time(NULL);
	size_t k = 0;

	while (*next < n && k < RUNNER_BATCH) {
		struct queue_entry *e = &batch[k];
		struct sm_error err = {0};
		int r = queue_open(cfg->queue_dir, "new", ids[(*next)++], true,
				   e, &err);

		if (r != 0) { /* locked elsewhere, gone, or damaged */
			if (r < 0 && err.code != EX_NOINPUT)
				log_line(LOG_LVL_ERR, ids[*next - 1], "%s",
					 err.msg);
			rep->skipped++;
			continue;
		}
		if (!selected(e, ro, now)) {
			queue_close(e);
			rep->skipped++;
			continue;
		}
		if (now - e->env.created >= cfg->max_age) {
			give_up(cfg, e, "expired (queue.max_age)", rep);
			queue_close(e);
			continue;
		}
		k++;
	}
	return k;
}

/* Attempt one batch over one session, then settle each message. */
static void run_batch(const struct config *cfg, struct queue_entry *batch,
		      size_t k, const struct runner_opts *ro,
		      struct runner_report *rep)
{
	struct attempt *a = calloc(k, sizeof *a);
	struct deliver_session ds;
	long long now;

	if (a == NULL)
		return;
	for (size_t i = 0; i < k; i++)
		a[i] = (struct attempt){.fd = batch[i].fd,
					.env = &batch[i].env,
					.st = &batch[i].st};
	attempt_deliver(cfg, a, k, ro->transcript, &ds);
	now = (long long)time(NULL);
	for (size_t i = 0; i < k; i++) {
		settle(cfg, &batch[i], &a[i], now, rep);
		show_progress(ro, rep, false);
	}
	attempt_free(a, k);
	free(a);
}

static void run_all(const struct config *cfg, char **ids, size_t n,
		    const struct runner_opts *ro, struct queue_entry *batch,
		    struct runner_report *rep)
{
	size_t next = 0, k;

	while ((k = load_batch(cfg, ids, n, &next, ro, batch, rep)) > 0) {
		run_batch(cfg, batch, k, ro, rep);
		for (size_t i = 0; i < k; i++)
			queue_close(&batch[i]);
	}
}

/* Messages queued after `last` (ids sort by time): the notices this run
 * created, and whatever senders queued meanwhile. */
static void run_newer(const struct config *cfg, const char *last,
		      const struct runner_opts *ro, struct queue_entry *batch,
		      struct runner_report *rep)
{
	struct runner_opts due = *ro;
	struct sm_error err = {0};
	char **ids = NULL;
	size_t n = 0, first = 0;

	if (queue_list(cfg->queue_dir, "new", &ids, &n, &err) != 0)
		return;
	while (first < n && strcmp(ids[first], last) <= 0)
		first++;
	due.id_filter = NULL;
	due.domain_filter = NULL;
	rep->total += n - first;
	run_all(cfg, ids + first, n - first, &due, batch, rep);
	queue_free_list(ids, n);
}

int runner_run(const struct config *cfg, const struct runner_opts *ro,
	       struct runner_report *rep, struct sm_error *err)
{
	struct queue_entry *batch = calloc(RUNNER_BATCH, sizeof *batch);
	char **ids = NULL;
	size_t n = 0;

	memset(rep, 0, sizeof *rep);
	if (batch == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	queue_clean_tmp(cfg->queue_dir);
	if (queue_list(cfg->queue_dir, "new", &ids, &n, err) != 0) {
		free(batch);
		return -1;
	}
	rep->total = n;
	run_all(cfg, ids, n, ro, batch, rep);
	if (rep->failed > 0) /* the notices just queued go out now too */
		run_newer(cfg, n ? ids[n - 1] : "", ro, batch, rep);
	show_progress(ro, rep, true);
	queue_free_list(ids, n);
	free(batch);
	return 0;
}

/* "3m", "2h", "1d": an age in its largest whole unit. */
static void age_text(long long secs, char *buf, size_t size)
{
	if (secs < 120)
		snprintf(buf, size, "%llds", secs);
	else if (secs < 7200)
		snprintf(buf, size, "%lldm", secs / 60);
	else if (secs < 172800)
		snprintf(buf, size, "%lldh", secs / 3600);
	else
		snprintf(buf, size, "%lldd", secs / 86400);
}

/* One mailq entry: id, size, age, sender, then state and recipients. */
static void list_one(const struct queue_entry *e, bool busy, long long now,
		     FILE *out)
{
	const struct queue_envelope *env = &e->env;
	const char *sender = env->caller_sender && env->caller_sender[0]
				     ? env->caller_sender
				     : (env->from_addr ? env->from_addr : "");
	char age[32], next[32];

	age_text(now - env->created, age, sizeof age);
	age_text(e->st.next > now ? e->st.next - now : 0, next, sizeof next);
	fprintf(out, "%s%c %10lld %5s  <%s>\n", env->id, busy ? '*' : ' ',
		(long long)env->size, age, sender);
	if (e->st.attempts > 0)
		fprintf(out, "    %u attempt%s, next in %s: %s\n",
			e->st.attempts, e->st.attempts == 1 ? "" : "s", next,
			e->st.error[0] ? e->st.error : "(no error recorded)");
	for (size_t j = 0; j < env->nrcpts; j++)
		if (e->st.rcpt_state[j] == RS_PENDING)
			fprintf(out, "    <%s>\n", env->rcpts[j]);
}

int runner_list(const struct config *cfg, FILE *out, struct sm_error *err)
{
	char **ids = NULL, **failed = NULL;
	size_t n = 0, nf = 0, shown = 0;
	long long now = (long long)time(NULL);

	if (queue_list(cfg->queue_dir, "new", &ids, &n, err) != 0 ||
	    queue_list(cfg->queue_dir, "failed", &failed, &nf, err) != 0) {
		queue_free_list(ids, n);
		return -1;
	}
	if (n > 0)
		fprintf(out, "%-21s %10s %5s  %s\n", "-Queue ID-", "-Size-",
			"-Age-", "-Sender/Recipients-");
	for (size_t i = 0; i < n; i++) {
		struct queue_entry e;
		struct sm_error lerr = {0};

		if (queue_open(cfg->queue_dir, "new", ids[i], false, &e,
			       &lerr) != 0) {
			if (lerr.code != EX_NOINPUT) /* gone: delivered */
				fprintf(out, "%s  (unreadable: %s)\n", ids[i],
					lerr.msg);
			continue;
		}
		list_one(&e, flock(e.fd, LOCK_SH | LOCK_NB) != 0, now, out);
		queue_close(&e);
		shown++;
	}
	fprintf(out, "%s%zu message%s waiting, %zu in failed/\n",
		n ? "-- " : "", shown, shown == 1 ? "" : "s", nf);
	queue_free_list(ids, n);
	queue_free_list(failed, nf);
	return 0;
}

int ctl_queue(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	struct runner_opts ro = {.progress = isatty(STDERR_FILENO),
				 .transcript = c->verbose ? stderr : NULL};
	struct runner_report rep;

	if (argc != 1)
		return error_set(err, EX_USAGE,
				 "queue takes one of: run, flush, list");
	if (strcmp(argv[0], "list") == 0)
		return runner_list(&c->cfg, stdout, err) == 0 ? 0 : err->code;
	if (strcmp(argv[0], "run") == 0)
		ro.due_only = true;
	else if (strcmp(argv[0], "flush") != 0)
		return error_set(err, EX_USAGE,
				 "queue %s: unknown; use run, flush or list",
				 argv[0]);
	return runner_run(&c->cfg, &ro, &rep, err) == 0 ? 0 : err->code;
}
