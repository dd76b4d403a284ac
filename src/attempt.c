/*
 * attempt.c - one delivery attempt for queued messages (see attempt.h).
 */
#include "attempt.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lastresult.h"
#include "log.h"

long long attempt_next_time(const struct config *cfg, unsigned attempts,
			    long long now)
{
	size_t i = attempts == 0 ? 0 : attempts - 1;

	if (cfg->nretry == 0)
		return now + 300;
	if (i >= cfg->nretry)
		i = cfg->nretry - 1;
	return now + cfg->retry[i];
}

/* The deliver_msg for a's pending recipients, planned for route r. */
static int prepare(struct attempt *a, const struct route *r)
{
	const struct queue_envelope *env = a->env;
	size_t k = 0;

	a->m.rcpts = calloc(env->nrcpts ? env->nrcpts : 1, sizeof *a->m.rcpts);
	if (a->m.rcpts == NULL)
		return -1;
	for (size_t j = 0; j < env->nrcpts; j++)
		if (a->st->rcpt_state[j] == RS_PENDING)
			a->m.rcpts[k++].addr = env->rcpts[j];
	route_plan(r, env->caller_sender, env->from_addr, env->from_display,
		   env->has_reply_to, &a->plan);
	a->m.id = env->id;
	a->m.fd = a->fd;
	a->m.size = env->size;
	a->m.header_len = env->header_len;
	a->m.sender = a->plan.envelope;
	a->m.headers = a->plan.headers;
	a->m.eight_bit = env->eight_bit;
	a->m.body = (enum body_type)env->body;
	a->m.notify = env->notify;
	a->m.ret = (enum dsn_ret)env->ret;
	a->m.envid = env->envid;
	a->m.nrcpts = k;
	return 0;
}

static const char *result_name(enum delivery_result r)
{
	return r == DELIVERED ? "delivered"
			      : r == TEMPFAIL ? "deferred" : "refused";
}

/* Recipients with the same outcome and reply share one log line. */
static void log_outcome(const struct attempt *a, const struct route *r)
{
	const struct deliver_msg *m = &a->m;
	char *done = calloc(m->nrcpts ? m->nrcpts : 1, 1);

	for (size_t i = 0; done != NULL && i < m->nrcpts; i++) {
		char to[2048] = "";
		size_t o = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < m->nrcpts; j++) {
			if (done[j] || m->rcpts[j].result != m->rcpts[i].result ||
			    strcmp(m->rcpts[j].reply, m->rcpts[i].reply) != 0)
				continue;
			done[j] = 1;
			if (o + strlen(m->rcpts[j].addr) + 4 < sizeof to)
				o += (size_t)snprintf(to + o, sizeof to - o,
						      "%s<%s>", o ? "," : "",
						      m->rcpts[j].addr);
		}
		log_line(m->rcpts[i].result == DELIVERED ? LOG_LVL_INFO
							 : LOG_LVL_WARN,
			 m->id,
			 "to=%s route=%s server=%s:%d from=<%s>%s%s%s "
			 "msgid=%s size=%lld result=%s reply=%s",
			 to, r->name, r->host, r->port, a->plan.envelope,
			 a->plan.envelope_replaced ? " (caller <" : "",
			 a->plan.envelope_replaced
				 ? (a->env->caller_sender ? a->env->caller_sender
							  : a->env->from_addr)
				 : "",
			 a->plan.envelope_replaced ? ">)" : "",
			 a->env->message_id ? a->env->message_id : "-",
			 (long long)a->env->size,
			 result_name(m->rcpts[i].result), m->rcpts[i].reply);
	}
	free(done);
}

/* Results back into the state: one byte per recipient, the reason. */
static void record(struct attempt *a, const struct deliver_session *ds,
		   long long now)
{
	struct queue_state *st = a->st;
	const char *refusal = NULL;
	size_t k = 0;

	st->attempts++;
	st->last = now;
	st->error[0] = '\0';
	for (size_t j = 0; j < a->env->nrcpts; j++) {
		const struct deliver_rcpt *rc;

		if (st->rcpt_state[j] != RS_PENDING)
			continue;
		rc = &a->m.rcpts[k++];
		if (rc->result == DELIVERED) {
			st->rcpt_state[j] = RS_DELIVERED;
			a->delivered++;
		} else if (rc->result == PERMFAIL) {
			st->rcpt_state[j] = RS_FAILED;
			a->refused++;
			if (refusal == NULL)
				refusal = rc->reply;
		} else {
			a->deferred++;
			if (st->error[0] == '\0')
				snprintf(st->error, sizeof st->error, "%s",
					 ds->msg[0] ? ds->msg : rc->reply);
		}
	}
	if (st->error[0] == '\0' && refusal != NULL) /* the server's words */
		snprintf(st->error, sizeof st->error, "%s", refusal);
}

/* a could not be attempted (out of memory): its pending recipients stay
 * pending and count as deferred, so that the message is queued or kept,
 * never taken for delivered (an unknown outcome is TEMPFAIL). */
static void record_unattempted(struct attempt *a, const char *why)
{
	struct queue_state *st = a->st;

	for (size_t j = 0; j < a->env->nrcpts; j++)
		a->deferred += st->rcpt_state[j] == RS_PENDING;
	snprintf(st->error, sizeof st->error, "%s", why);
}

/* The server's words for m's first refused recipient, or NULL. */
static const char *first_refusal(const struct deliver_msg *m)
{
	for (size_t j = 0; m->rcpts != NULL && j < m->nrcpts; j++)
		if (m->rcpts[j].result == PERMFAIL)
			return m->refused_whole ? m->reply : m->rcpts[j].reply;
	return NULL;
}

/* The attempt's outcome for `switchmailctl status`: the session's failure,
 * else the first deferral, else a refusal when nothing got through, else
 * delivered. */
static void record_last(const struct config *cfg, const struct route *r,
			const struct attempt *a, size_t n,
			const struct deliver_session *ds)
{
	size_t delivered = 0, deferred = 0;
	const char *why = NULL, *refusal = NULL;

	for (size_t i = 0; i < n; i++) {
		delivered += a[i].delivered;
		deferred += a[i].deferred;
		if (why == NULL && a[i].deferred > 0)
			why = a[i].st->error;
		if (refusal == NULL)
			refusal = first_refusal(&a[i].m);
	}
	if (ds->failure_kind != NULL || ds->msg[0] != '\0')
		lastresult_record(cfg, r->name, LAST_DEFERRED, ds->msg);
	else if (deferred > 0)
		lastresult_record(cfg, r->name, LAST_DEFERRED, why);
	else if (delivered == 0 && refusal != NULL)
		lastresult_record(cfg, r->name, LAST_REFUSED, refusal);
	else
		lastresult_record(cfg, r->name, LAST_DELIVERED, NULL);
}

void attempt_deliver(const struct config *cfg, struct attempt *a, size_t n,
		     FILE *transcript, struct deliver_session *ds)
{
	const struct route *r = config_active_route(cfg);
	struct deliver_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
	long long now = (long long)time(NULL);
	size_t k = 0;

	memset(ds, 0, sizeof *ds);
	for (size_t i = 0; i < n; i++)
		if (msgs == NULL || prepare(&a[i], r) != 0)
			record_unattempted(&a[i], "out of memory; retrying");
		else if (a[i].m.nrcpts > 0)
			msgs[k++] = a[i].m;
	if (k > 0)
		deliver_session(cfg, r, msgs, k, transcript, ds);
	for (size_t i = 0, j = 0; i < n; i++) {
		if (a[i].m.rcpts != NULL && a[i].m.nrcpts > 0 && msgs)
			a[i].m = msgs[j++]; /* results came back in the copy */
		if (a[i].m.rcpts != NULL) {
			log_outcome(&a[i], r);
			record(&a[i], ds, now);
		}
	}
	if (k > 0)
		record_last(cfg, r, a, n, ds);
	free(msgs);
}

void attempt_free(struct attempt *a, size_t n)
{
	for (size_t i = 0; a != NULL && i < n; i++) {
		free(a[i].m.rcpts);
		a[i].m.rcpts = NULL;
	}
}
