/*
 * switchmail.c - main of the sendmail interface.
 *
 * Picks the personality from argv[0] (sendmail, mailq, newaliases), parses
 * the command line, loads the configuration and runs one mode.  Only this
 * file prints the final error and chooses the exit code (DESIGN §4).
 */
#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "deliver.h"
#include "errors.h"
#include "log.h"
#include "message.h"
#include "options.h"
#include "queue.h"
#include "route.h"

#ifndef SWITCHMAIL_VERSION
#define SWITCHMAIL_VERSION "0.1.0"
#endif

/* Everything one submission carries from stdin to the exit code. */
struct submission {
	const struct options *o;
	const struct config *cfg;
	char id[QUEUE_ID_LEN + 1];
	int fd;
	struct message_info info;
	struct addrlist rcpts;
	char *default_sender; /* -f, else the login name qualified */
};

static const char *progname = "switchmail";

/* The one place that reports failure: one line on stderr, the exit code. */
static int finish(const struct sm_error *err)
{
	if (err->code != EX_OK)
		fprintf(stderr, "%s: %s\n", progname, err->msg);
	return err->code;
}

static void drain_stdin(void)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
		;
}

/* -C, else $SWITCHMAIL_CONFIG, else the default path. */
static const char *config_path(const struct options *o)
{
	const char *env = getenv(CONFIG_ENV);

	if (o->config_path != NULL)
		return o->config_path;
	if (env != NULL && env[0] != '\0')
		return env;
	return CONFIG_DEFAULT_PATH;
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

/* stdin into the spool file, then the envelope. */
static int read_submission(struct submission *s, struct sm_error *err)
{
	const struct options *o = s->o;
	const char *why = NULL;
	struct message_opts mo = {
		.ignore_dots = o->ignore_dots,
		.extract = o->extract_recipients,
		.fullname = o->fullname,
		.hostname = s->cfg->hostname,
		.id = s->id,
		.now = time(NULL),
	};

	if (o->sender != NULL && o->sender[0] != '\0' &&
	    !address_valid(o->sender, &why)) {
		char shown[300];

		error_printable(shown, sizeof shown, o->sender,
				strlen(o->sender));
		drain_stdin();
		return error_set(err, EX_DATAERR, "sender -f \"%s\" %s", shown,
				 why);
	}
	if (o->fullname != NULL && strpbrk(o->fullname, "\r\n") != NULL) {
		drain_stdin();
		return error_set(err, EX_DATAERR,
				 "full name -F contains a line break");
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

static const char *result_name(enum delivery_result r)
{
	return r == DELIVERED ? "delivered"
			      : r == TEMPFAIL ? "deferred" : "refused";
}

/* One log line per recipient outcome (DESIGN §2: traceability). */
static void log_outcome(const struct submission *s, const struct route *r,
			const struct sender_plan *plan,
			const struct deliver_msg *m)
{
	for (size_t j = 0; j < m->nrcpts; j++)
		log_line(m->rcpts[j].result == DELIVERED ? LOG_LVL_INFO
							 : LOG_LVL_WARN,
			 s->id,
			 "to=<%s> route=%s server=%s:%d from=<%s>%s%s%s "
			 "msgid=%s size=%lld result=%s reply=%s",
			 m->rcpts[j].addr, r->name, r->host, r->port,
			 plan->envelope,
			 plan->envelope_replaced ? " (caller <" : "",
			 plan->envelope_replaced
				 ? (s->o->sender ? s->o->sender
						 : s->info.from_addr)
				 : "",
			 plan->envelope_replaced ? ">)" : "",
			 s->info.message_id ? s->info.message_id : "-",
			 (long long)s->info.size,
			 result_name(m->rcpts[j].result), m->rcpts[j].reply);
}

/* The exit code and the stderr lines for the recipients' outcomes: every
 * refused recipient gets a line; the last line is the exit's reason. */
static int judge_outcome(const struct deliver_msg *m,
			 const struct deliver_session *ds, struct sm_error *err)
{
	size_t delivered = 0, temp = 0, perm = 0, shown = 0;
	const char *first_temp = NULL, *temp_hint = NULL;

	for (size_t j = 0; j < m->nrcpts; j++) {
		enum delivery_result r = m->rcpts[j].result;

		delivered += r == DELIVERED;
		perm += r == PERMFAIL;
		if (r == TEMPFAIL && temp++ == 0) {
			first_temp = m->rcpts[j].reply;
			temp_hint = m->rcpts[j].hint;
		}
	}
	if (temp > 0)
		return error_set(err, EX_TEMPFAIL, "not sent%s: %s%s%s",
				 delivered ? " to every recipient" : "",
				 ds->msg[0] ? ds->msg : first_temp,
				 !ds->msg[0] && temp_hint ? " -> " : "",
				 !ds->msg[0] && temp_hint ? temp_hint : "");
	if (perm == 0)
		return 0;
	if (m->refused_whole) {
		const char *hint = m->rcpts[0].hint;

		return error_set(err, EX_UNAVAILABLE,
				 "the server refused the message: %s%s%s",
				 m->reply, hint ? " -> " : "", hint ? hint : "");
	}
	for (size_t j = 0; j < m->nrcpts; j++) {
		if (m->rcpts[j].result != PERMFAIL)
			continue;
		const char *hint = m->rcpts[j].hint;

		if (++shown < perm) {
			fprintf(stderr, "%s: <%s> refused: %s%s%s\n", progname,
				m->rcpts[j].addr, m->rcpts[j].reply,
				hint ? " -> " : "", hint ? hint : "");
			continue;
		}
		error_set(err, EX_NOUSER, "<%s> refused: %s%s%s%s",
			  m->rcpts[j].addr, m->rcpts[j].reply,
			  hint ? " -> " : "", hint ? hint : "",
			  delivered ? " (sent to the other recipients)" : "");
	}
	return -1;
}

/* Send the submission through the active route. */
static int send_now(struct submission *s, struct sm_error *err)
{
	const struct route *r = config_active_route(s->cfg);
	struct sender_plan plan;
	struct deliver_session ds;
	struct deliver_rcpt *rc = calloc(s->rcpts.n, sizeof *rc);
	struct deliver_msg m = {
		.id = s->id, .fd = s->fd, .size = s->info.size,
		.header_len = s->info.header_len,
		.eight_bit = s->info.eight_bit, .body = s->o->body,
		.notify = s->o->notify, .ret = s->o->ret,
		.envid = s->o->envid, .rcpts = rc, .nrcpts = s->rcpts.n};
	int rc_exit;

	if (rc == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	for (size_t i = 0; i < s->rcpts.n; i++)
		rc[i].addr = s->rcpts.v[i].addr;
	route_plan(r, s->o->sender, s->info.from_addr, s->info.from_display,
		   s->info.has_reply_to, &plan);
	m.sender = plan.envelope;
	m.headers = plan.headers;
	if (plan.envelope_replaced || plan.from_replaced)
		log_line(LOG_LVL_INFO, s->id,
			 "sender <%s> is not allowed on the %s route: sending "
			 "as <%s>",
			 s->o->sender ? s->o->sender
				      : (s->info.from_addr ? s->info.from_addr
							   : ""),
			 r->name, r->from);
	deliver_session(s->cfg, r, &m, 1, s->o->verbose ? stderr : NULL, &ds);
	log_outcome(s, r, &plan, &m);
	rc_exit = judge_outcome(&m, &ds, err);
	free(rc);
	return rc_exit;
}

/* -bm: read one message, send it, say how it went. */
static int run_deliver(const struct options *o, const struct config *cfg)
{
	struct submission s = {.o = o, .cfg = cfg, .fd = -1};
	struct sm_error err = {0};

	if (read_submission(&s, &err) == 0)
		send_now(&s, &err);
	if (s.fd >= 0) {
		close(s.fd);
		queue_remove_tmp(cfg->queue_dir, s.id);
	}
	if (err.code != EX_OK)
		log_line(LOG_LVL_ERR, s.id[0] ? s.id : NULL, "%s", err.msg);
	message_info_free(&s.info);
	addrlist_free(&s.rcpts);
	free(s.default_sender);
	return finish(&err);
}

static void note_ignored(const struct options *o)
{
	for (size_t i = 0; i < o->nignored; i++) {
		char shown[128];

		error_printable(shown, sizeof shown, o->ignored[i],
				strlen(o->ignored[i]));
		fprintf(stderr, "%s: ignoring option %s (not needed here)\n",
			progname, shown);
	}
}

int main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct sm_error err = {0};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0')
		progname = basename(argv[0]);
	if (options_parse(argc, argv, progname, &o, &err) != 0) {
		if (o.mode == MODE_DELIVER)
			drain_stdin();
		return finish(&err);
	}
	if (o.mode == MODE_VERSION) {
		printf("switchmail %s\n", SWITCHMAIL_VERSION);
		return EX_OK;
	}
	if (o.mode == MODE_HELP) {
		options_usage(stdout);
		return EX_OK;
	}
	if (config_load(config_path(&o), &cfg, &err) != 0) {
		if (o.mode == MODE_DELIVER)
			drain_stdin();
		return finish(&err);
	}
	log_open("switchmail", cfg.log_syslog, cfg.log_file, o.verbose > 0);
	for (size_t i = 0; i < cfg.nwarnings; i++)
		log_line(LOG_LVL_WARN, NULL, "%s", cfg.warnings[i]);
	if (o.verbose)
		note_ignored(&o);
	switch (o.mode) {
	case MODE_DELIVER:
		rc = run_deliver(&o, &cfg);
		break;
	default:
		rc = error_set(&err, EX_USAGE,
			       "this mode is not available yet in this "
			       "version of switchmail");
		rc = finish(&err);
	}
	log_close();
	config_free(&cfg);
	return rc;
}
