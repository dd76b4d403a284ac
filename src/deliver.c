/*
 * deliver.c - one libESMTP session over one route (see deliver.h).
 *
 * libESMTP is told to connect to the bridge's sentinel address; the bridge
 * (compat/) has already connected to the real server, done TLS and read the
 * greeting.  libESMTP's own STARTTLS is off: it never touches TLS.
 */
#include "deliver.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "bridge.h"
#include "hints.h"
#include "log.h"

#define SOURCE_BUF 65536

/* libESMTP reads a message through this: our rewritten header block, then
 * the body straight from the spool file. */
struct source {
	struct deliver_msg *m;
	char *hdr;
	size_t hdr_len;
	int phase; /* 0 headers, 1 body, 2 done */
	off_t off;
	char buf[SOURCE_BUF];
};

struct session_ctx {
	const struct route *route;
	struct bridge *bridge;
	struct deliver_msg *msgs;
	smtp_message_t *handles;
	smtp_recipient_t *rhandles; /* every message's recipients, in order */
	size_t n;
	bool body_set;
};

static const char *source_cb(void **ctx, int *len, void *arg)
{
	struct source *s = arg;
	ssize_t n;

	(void)ctx;
	if (len == NULL) { /* rewind */
		s->phase = 0;
		s->off = s->m->header_len;
		return NULL;
	}
	if (s->phase == 0) {
		s->phase = 1;
		*len = (int)s->hdr_len;
		return s->hdr;
	}
	if (s->off >= s->m->size) { /* the envelope follows: not ours */
		*len = 0;
		return NULL;
	}
	size_t want = sizeof s->buf;

	if ((off_t)want > s->m->size - s->off)
		want = (size_t)(s->m->size - s->off);
	do
		n = pread(s->m->fd, s->buf, want, s->off);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		/* libESMTP drops the connection when errno is set at the end
		 * of the data: a read error (or a file shorter than its
		 * envelope says) must never look like the end. */
		*len = 0;
		errno = EIO;
		return NULL;
	}
	s->off += n;
	*len = (int)n;
	return s->buf;
}

static int interact(auth_client_request_t req, char **result, int fields,
		    void *arg)
{
	const struct route *r = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_PASS)
			result[i] = r->password;
		else if (req[i].flags & AUTH_USER)
			result[i] = r->username;
		else
			result[i] = (char *)"";
	}
	return 1;
}

/* BODY= only when the server offers 8BITMIME (libESMTP would otherwise end
 * the session); decided as soon as the relay has seen the EHLO reply. */
static void monitor_cb(const char *buf, int len, int writing, void *arg)
{
	struct session_ctx *sc = arg;

	(void)buf, (void)len;
	if (writing || sc->body_set ||
	    !(bridge_extensions(sc->bridge) & BRIDGE_EXT_8BITMIME))
		return;
	sc->body_set = true;
	for (size_t i = 0; i < sc->n; i++) {
		struct deliver_msg *m = &sc->msgs[i];

		if (m->eight_bit || m->body == BODY_8BITMIME)
			smtp_8bitmime_set_body(sc->handles[i],
					       E8bitmime_8BITMIME);
		else if (m->body == BODY_7BIT)
			smtp_8bitmime_set_body(sc->handles[i], E8bitmime_7BIT);
	}
}

static void event_cb(smtp_session_t s, int event, void *arg, ...)
{
	(void)s, (void)event, (void)arg; /* required extensions: carry on */
}

/* A status text as one printable line: "550 5.1.1 no such user". */
static void status_text(const smtp_status_t *st, char *out, size_t size)
{
	const char *t = st->text ? st->text : "";
	size_t n = strlen(t);

	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	if (st->code == 0) {
		out[0] = '\0';
		return;
	}
	char body[DELIVER_REPLY_MAX];

	error_printable(body, sizeof body, t, n);
	if (st->enh_class > 0 && strncmp(body, "", 1) != 0)
		snprintf(out, size, "%d %d.%d.%d %s", st->code, st->enh_class,
			 st->enh_subject, st->enh_detail, body);
	else
		snprintf(out, size, "%d %s", st->code, body);
}

/* Whether the replies settle a recipient: refused at MAIL or RCPT, or
 * accepted at RCPT and answered (2xx-5xx, not 354) after the data. */
static bool final_answer(const smtp_status_t *mail, const smtp_status_t *rcpt,
			 const smtp_status_t *data)
{
	if (mail->code >= 400 || rcpt->code >= 400)
		return true;
	return rcpt->code >= 200 && rcpt->code < 300 && data->code >= 200 &&
	       data->code != 354;
}

/* One recipient's outcome from the MAIL, RCPT and DATA replies. */
static void judge(struct deliver_rcpt *rc, const char *host,
		  const smtp_status_t *mail, const smtp_status_t *rcpt,
		  const smtp_status_t *data)
{
	const smtp_status_t *decisive = data;
	enum hint_stage stage = HINT_DATA;

	if (rcpt->code >= 400) {
		decisive = rcpt;
		stage = HINT_RCPT;
	} else if (mail->code >= 400) {
		decisive = mail;
		stage = HINT_MAIL;
	}
	status_text(decisive, rc->reply, sizeof rc->reply);
	rc->hint = decisive->code >= 400
			   ? hint_for_reply(stage, host, rc->reply)
			   : NULL;
	if (!final_answer(mail, rcpt, data)) {
		/* the session ended before the server said how it went */
		rc->result = TEMPFAIL;
		rc->hint = NULL;
		rc->reply[0] = '\0';
		return;
	}
	if (decisive->code >= 200 && decisive->code < 300 &&
	    rcpt->code >= 200 && rcpt->code < 300)
		rc->result = DELIVERED;
	else if (decisive->code >= 500)
		rc->result = PERMFAIL;
	else
		rc->result = TEMPFAIL;
}

static void fail_all(struct deliver_msg *msgs, size_t n, const char *why)
{
	/* the reason (and its fix) is the session's: no per-reply hint */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < msgs[i].nrcpts; j++)
			if (msgs[i].rcpts[j].result == TEMPFAIL) {
				msgs[i].rcpts[j].result = TEMPFAIL;
				snprintf(msgs[i].rcpts[j].reply,
					 sizeof msgs[i].rcpts[j].reply, "%s",
					 why);
			}
}

/* queue.dir/tls-session-ROUTE: the route's TLS session cache (tls.h),
 * beside its last-ROUTE file; false when there is none to keep. */
static bool session_path(const struct config *cfg, const struct route *r,
			 char *path, size_t size)
{
	int n;

	if (!r->tls_session_cache || r->encryption == ENC_NONE ||
	    cfg->queue_dir == NULL)
		return false;
	n = snprintf(path, size, "%s/tls-session-%s", cfg->queue_dir, r->name);
	return n > 0 && (size_t)n < size;
}

static enum bridge_mode bridge_mode_of(enum encryption e)
{
	return e == ENC_SSL ? BRIDGE_SSL
			    : e == ENC_TLS ? BRIDGE_STARTTLS : BRIDGE_PLAIN;
}

/* Every reply wait bounded: the route's timeout, four times that for the
 * reply to the final dot (the server may scan a large message). */
static void set_timeouts(smtp_session_t s, int t)
{
	long ms = (long)t * 1000, data2 = ms * 4 > 600000 ? 600000 : ms * 4;

	smtp_set_timeout(s, Timeout_GREETING | Timeout_OVERRIDE_RFC2822_MINIMUM,
			 ms);
	smtp_set_timeout(s, Timeout_ENVELOPE | Timeout_OVERRIDE_RFC2822_MINIMUM,
			 ms);
	smtp_set_timeout(s, Timeout_DATA | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
	smtp_set_timeout(s, Timeout_TRANSFER | Timeout_OVERRIDE_RFC2822_MINIMUM,
			 ms);
	smtp_set_timeout(s, Timeout_DATA2 | Timeout_OVERRIDE_RFC2822_MINIMUM,
			 data2);
}

/* The header block from the spool, rewritten for this route. */
static int load_headers(struct deliver_msg *m, struct source *src,
			struct sm_error *err)
{
	size_t len = (size_t)m->header_len;
	char *raw = malloc(len ? len : 1);
	ssize_t n = raw ? pread(m->fd, raw, len, 0) : -1;
	int rc;

	if (n != (ssize_t)len) {
		free(raw);
		return error_set(err, EX_IOERR, "cannot read the spooled "
						"message %s",
				 m->id);
	}
	rc = message_route_headers(raw, len, &m->headers, &src->hdr,
				   &src->hdr_len, err);
	free(raw);
	return rc;
}

static enum notify_flags notify_of(int n)
{
	int f = 0;

	if (n & NOTIFY_NEVER)
		return Notify_NEVER;
	if (n & NOTIFY_SUCCESS)
		f |= Notify_SUCCESS;
	if (n & NOTIFY_FAILURE)
		f |= Notify_FAILURE;
	if (n & NOTIFY_DELAY)
		f |= Notify_DELAY;
	return (enum notify_flags)f;
}

/* Add message m to the session: envelope, DSN, size, the source. */
static smtp_message_t add_message(smtp_session_t s, struct deliver_msg *m,
				  struct source *src, smtp_recipient_t *rh,
				  struct sm_error *err)
{
	smtp_message_t h = smtp_add_message(s);
	static const enum ret_flags rets[] = {Ret_NOTSET, Ret_FULL, Ret_HDRS};

	if (h == NULL)
		return NULL;
	src->m = m;
	src->off = m->header_len;
	if (load_headers(m, src, err) != 0)
		return NULL;
	smtp_set_reverse_path(h, m->sender);
	smtp_set_messagecb(h, source_cb, src);
	smtp_set_header_option(h, "Bcc", Hdr_PROHIBIT, 1);
	smtp_size_set_estimate(h, (unsigned long)m->size);
	if (m->ret != RET_UNSET)
		smtp_dsn_set_ret(h, rets[m->ret]);
	if (m->envid != NULL)
		smtp_dsn_set_envid(h, m->envid);
	for (size_t j = 0; j < m->nrcpts; j++) {
		smtp_recipient_t r = smtp_add_recipient(h, m->rcpts[j].addr);

		if (r == NULL)
			return NULL;
		rh[j] = r;
		if (m->notify != NOTIFY_UNSET)
			smtp_dsn_set_notify(r, notify_of(m->notify));
		m->rcpts[j].result = TEMPFAIL;
		snprintf(m->rcpts[j].reply, sizeof m->rcpts[j].reply,
			 "not attempted");
	}
	return h;
}

/* The session's failure, with the fix for the server's reply when the
 * catalogue knows one (a refused login, a refused greeting). */
static void session_failed(struct deliver_session *out, const struct route *r,
			   const struct bridge_status *st)
{
	const char *hint = NULL;

	if (st->fail == NF_AUTH)
		hint = hint_for_reply(HINT_AUTH, r->host, st->reply);
	else if (st->fail == NF_GREETING)
		hint = hint_for_reply(HINT_GREETING, r->host, st->reply);
	if (hint == NULL && (st->fail == NF_AUTH || st->fail == NF_NO_AUTH))
		hint = hint_for_host(r->host);
	out->failure_kind = net_fail_name(st->fail);
	snprintf(out->msg, sizeof out->msg, "%s%s%s", st->msg,
		 hint ? " -> " : "", hint ? hint : "");
}

/* Whether any recipient was left without a final answer. */
static bool unsettled(const struct session_ctx *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		for (size_t j = 0; j < sc->msgs[i].nrcpts; j++)
			if (sc->msgs[i].rcpts[j].result == TEMPFAIL &&
			    sc->msgs[i].rcpts[j].reply[0] == '\0')
				return true;
	return false;
}

/* Outcomes after the session: libESMTP's statuses, then the bridge's
 * verdict for whatever did not get through. */
static void collect(struct session_ctx *sc, const struct bridge_status *st,
		    int ok, struct deliver_session *out)
{
	char why[1200];
	smtp_recipient_t *rh = sc->rhandles;

	for (size_t i = 0; i < sc->n; i++) {
		struct deliver_msg *m = &sc->msgs[i];
		const smtp_status_t *mail = smtp_reverse_path_status(sc->handles[i]);
		const smtp_status_t *data =
			smtp_message_transfer_status(sc->handles[i]);

		status_text(data->code ? data : mail, m->reply, sizeof m->reply);
		m->refused_whole = mail->code >= 500;
		for (size_t j = 0; j < m->nrcpts; j++) {
			const smtp_status_t *rs = smtp_recipient_status(*rh++);

			judge(&m->rcpts[j], sc->route->host, mail, rs, data);
			if (data->code >= 500 && rs->code >= 200 && rs->code < 300)
				m->refused_whole = true; /* refused at DATA */
		}
	}
	if (st->fail == NF_NONE && unsettled(sc)) {
		/* libESMTP gave up waiting (its reply timeouts) or the
		 * dialogue went wrong: the server never gave a final answer */
		out->failure_kind = "timeout";
		snprintf(out->msg, sizeof out->msg,
			 "%s did not answer in time (no reply within %d s); "
			 "the session was abandoned and will be retried",
			 sc->route->host, sc->route->timeout);
		fail_all(sc->msgs, sc->n, out->msg);
	} else if (st->fail != NF_NONE) {
		session_failed(out, sc->route, st);
		fail_all(sc->msgs, sc->n, out->msg);
	} else if (!ok) {
		char buf[256];

		snprintf(why, sizeof why, "SMTP session with %s failed: %s",
			 sc->route->host,
			 smtp_strerror(smtp_errno(), buf, sizeof buf));
		out->failure_kind = "session";
		snprintf(out->msg, sizeof out->msg, "%s", why);
		fail_all(sc->msgs, sc->n, why);
	}
}

/* A session object with our settings, or NULL. */
static smtp_session_t new_session(const struct config *cfg,
				  const struct route *r, auth_context_t *auth,
				  struct session_ctx *sc)
{
	smtp_session_t s = smtp_create_session();

	*auth = NULL;
	if (s == NULL)
		return NULL;
	smtp_set_server(s, BRIDGE_SENTINEL_HOST ":" BRIDGE_SENTINEL_PORT);
	smtp_set_hostname(s, cfg->hostname);
	smtp_starttls_enable(s, Starttls_DISABLED); /* the bridge did it */
	smtp_set_eventcb(s, event_cb, sc);
	smtp_set_monitorcb(s, monitor_cb, sc, 0);
	set_timeouts(s, r->timeout);
	if (r->username != NULL) {
		static bool auth_ready;

		if (!auth_ready) {
			auth_client_init();
			auth_ready = true;
		}
		*auth = auth_create_context();
		if (*auth == NULL) {
			smtp_destroy_session(s);
			return NULL;
		}
		/* PLAIN and LOGIN are plaintext mechanisms; the bridge only
		 * lets them through TLS (or allow_plaintext_auth). */
		auth_set_mechanism_flags(*auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(*auth, interact, (void *)r);
		smtp_auth_set_context(s, *auth);
	}
	return s;
}

static size_t count_rcpts(const struct deliver_msg *msgs, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += msgs[i].nrcpts;
	return total;
}

void deliver_session(const struct config *cfg, const struct route *r,
		     struct deliver_msg *msgs, size_t n, FILE *transcript,
		     struct deliver_session *out)
{
	struct session_ctx sc = {.route = r, .msgs = msgs, .n = n};
	struct source *srcs = calloc(n, sizeof *srcs);
	struct bridge_params bp = {
		.host = r->host, .port = r->port, .timeout = r->timeout,
		.mode = bridge_mode_of(r->encryption),
		.ehlo_name = cfg->hostname,
		.tls = {.ca_file = r->tls_ca_file,
			.fingerprint = r->tls_fingerprint,
			.verify = r->tls_verify},
		.require_auth = r->username != NULL, .transcript = transcript};
	struct bridge_status st = {0};
	struct sm_error err = {0};
	auth_context_t auth = NULL;
	smtp_session_t s = NULL;
	char session_file[PATH_MAX];
	int ok = 0;

	memset(out, 0, sizeof *out);
	if (session_path(cfg, r, session_file, sizeof session_file))
		bp.tls.session_file = session_file;
	/* Arrays of libESMTP handles, which are pointers: sized by type. */
	sc.handles = calloc(n, sizeof(smtp_message_t));
	sc.rhandles =
	    calloc(count_rcpts(msgs, n) + 1, sizeof(smtp_recipient_t));
	if (srcs == NULL || sc.handles == NULL || sc.rhandles == NULL ||
	    (s = new_session(cfg, r, &auth, &sc)) == NULL) {
		error_set(&err, EX_OSERR, "out of memory");
		goto failed;
	}
	for (size_t i = 0, base = 0; i < n; base += msgs[i].nrcpts, i++)
		if ((sc.handles[i] = add_message(s, &msgs[i], &srcs[i],
						 sc.rhandles + base, &err)) ==
		    NULL)
			goto failed;
	if ((sc.bridge = bridge_open(&bp, &st)) == NULL) {
		session_failed(out, r, &st);
		fail_all(msgs, n, out->msg);
		goto done;
	}
	snprintf(out->tls, sizeof out->tls, "%s", st.tls_summary);
	bridge_attach(sc.bridge, &st);
	ok = smtp_start_session(s);
	bridge_close(sc.bridge, &st);
	collect(&sc, &st, ok, out);
	goto done;
failed:
	out->failure_kind = "local";
	snprintf(out->msg, sizeof out->msg, "%s",
		 err.msg[0] ? err.msg : "cannot set up the SMTP session");
	fail_all(msgs, n, out->msg);
done:
	if (s != NULL)
		smtp_destroy_session(s);
	if (auth != NULL)
		auth_destroy_context(auth);
	for (size_t i = 0; srcs != NULL && i < n; i++)
		free(srcs[i].hdr);
	free(srcs), free(sc.handles), free(sc.rhandles);
}
