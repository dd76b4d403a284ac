/*
 * diagnose.c - the configuration test: `switchmailctl test` (see
 * diagnose.h, DESIGN §3, providers.md §6).
 *
 * Ordered steps, each printed as it runs with ✓/✗ and its time:
 * settings → DNS → connect → TLS → EHLO → AUTH → sender (MAIL FROM) →
 * optionally a real message through the normal delivery path.  The
 * network steps are the probe's (compat/probe.c), which shares its
 * transport code with the bridge, so both say the same about a server.
 * The first failure stops the test with one line of cause and one line
 * of fix.  classes[] is the one table of failure classes: the step each
 * shows at, the exit code, and the default fix when neither the error
 * catalogue (hints.c) nor the message itself names a better one.
 */
#include "diagnose.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "deliver.h"
#include "hints.h"
#include "probe.h"

#define WARN_MAX     16	 /* settings warnings shown for one route */
#define DETAIL_MAX   512 /* octets of a step's detail */
#define TEST_MSG_MAX 4096

/* Failure classes beyond the transport's enum net_fail. */
enum { DK_SETTINGS = NF_COUNT, DK_SENDER_TEMP, DK_SEND_TEMP, DK_SEND_PERM };

/* One failure class: where it shows, the exit code, the fix. */
struct fclass {
	int kind;	     /* enum net_fail or DK_* */
	enum diag_step step; /* DIAG_NSTEPS: the step that was running */
	int exit_code;
	bool reply_hint; /* look the server's reply up in hints.c */
	enum hint_stage stage;
	bool own_first;	 /* the message's own fix is more specific */
	const char *fix; /* default fix, or NULL */
};

static const struct fclass classes[] = {
    {DK_SETTINGS, DIAG_SETTINGS, EX_CONFIG, false, HINT_ANY, false, NULL},
    {NF_DNS, DIAG_DNS, EX_TEMPFAIL, false, HINT_ANY, false,
     "check the spelling of host, and DNS (/etc/resolv.conf); or use the "
     "server's IP address"},
    {NF_REFUSED, DIAG_CONNECT, EX_TEMPFAIL, false, HINT_ANY, false,
     "check port: 465 for ssl, 587 for tls (25 for a local relay)"},
    {NF_UNREACHABLE, DIAG_CONNECT, EX_TEMPFAIL, false, HINT_ANY, false,
     "check this machine's network (route, IPv6) and the host name"},
    {NF_CONNECT_TIMEOUT, DIAG_CONNECT, EX_TEMPFAIL, false, HINT_ANY, false,
     "a firewall probably drops the traffic: allow outgoing connections "
     "to this port, or check host and port"},
    {NF_TIMEOUT, DIAG_NSTEPS, EX_TEMPFAIL, false, HINT_ANY, false,
     "check host and port (a firewall or a service other than SMTP may "
     "hold the connection), or raise timeout for a slow server"},
    {NF_CLOSED, DIAG_NSTEPS, EX_TEMPFAIL, false, HINT_ANY, false,
     "check port and encryption; the server may also refuse this "
     "machine's address"},
    {NF_GREETING, DIAG_NSTEPS, EX_TEMPFAIL, true, HINT_GREETING, false,
     "the server refuses this client: check host and port, or ask the "
     "provider"},
    {NF_NO_STARTTLS, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, false,
     "set encryption = \"ssl\" (port 465), or use a port that offers "
     "STARTTLS (587)"},
    {NF_EXPECTS_TLS, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, false,
     "set encryption = \"tls\" (STARTTLS) for this port"},
    {NF_EXPECTS_SSL, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, false,
     "set encryption = \"ssl\" (implicit TLS) for this port"},
    {NF_TLS_CERT, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, true,
     "set tls_ca_file to the CA that signed the server's certificate, or "
     "pin it with tls_fingerprint"},
    {NF_TLS_PIN, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, true,
     "check the server's new certificate and update tls_fingerprint"},
    {NF_TLS_HANDSHAKE, DIAG_TLS, EX_TEMPFAIL, false, HINT_ANY, true,
     "check that port and encryption match, and that the server speaks "
     "TLS 1.2 or newer"},
    {NF_NO_AUTH, DIAG_AUTH, EX_TEMPFAIL, false, HINT_ANY, false,
     "check port and encryption (submission is 587 with \"tls\" or 465 "
     "with \"ssl\"), or remove username for a relay without login"},
    {NF_AUTH, DIAG_AUTH, EX_TEMPFAIL, true, HINT_AUTH, false,
     "check username (often the full address) and password; many "
     "providers want an app password"},
    {NF_SENDER, DIAG_SENDER, EX_UNAVAILABLE, true, HINT_MAIL, false,
     "set from to the login address, or to an alias the provider allows"},
    {DK_SENDER_TEMP, DIAG_SENDER, EX_TEMPFAIL, true, HINT_MAIL, false,
     "a temporary refusal: run the test again later"},
    {DK_SEND_TEMP, DIAG_SEND, EX_TEMPFAIL, true, HINT_DATA, true,
     "a temporary refusal: the queue would retry; run the test again "
     "later"},
    {DK_SEND_PERM, DIAG_SEND, EX_UNAVAILABLE, true, HINT_DATA, false,
     "check the recipient address and the sender the server accepts"},
    {NF_IO, DIAG_NSTEPS, EX_OSERR, false, HINT_ANY, false,
     "a local failure: check memory and /tmp, then run the test again"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const step_names[DIAG_NSTEPS] = {
    "settings", "dns", "connect", "tls", "ehlo", "auth", "sender", "send"};
static const char *const step_labels[DIAG_NSTEPS] = {
    "settings", "DNS", "connect", "TLS", "EHLO", "AUTH", "sender", "send"};

/* How a step line starts: its mark and colour. */
enum mark { M_OK, M_FAIL, M_WARN, M_SKIP };
static const struct {
	const char *sym, *color;
} marks[] = {[M_OK] = {"✓", "\033[32m"},
	     [M_FAIL] = {"✗", "\033[31m"},
	     [M_WARN] = {"⚠", "\033[33m"},
	     [M_SKIP] = {"–", "\033[33m"}};

/* One step as it ran, for the JSON document. */
struct step_rec {
	enum diag_step step;
	bool ok, skipped;
	double ms;
	char detail[DETAIL_MAX];
};

/* The state of one test run. */
struct run {
	const struct config *cfg;
	const struct route *r;
	const struct diag_opts *o;
	struct diag_result *res;
	struct probe *probe;
	enum diag_step step; /* the step running */
	struct step_rec rec[DIAG_NSTEPS];
	size_t nrec;
	const char *warn[WARN_MAX]; /* borrowed from cfg->warnings */
	size_t nwarn;
};

const char *diagnose_step_name(enum diag_step s)
{
	return (unsigned)s < DIAG_NSTEPS ? step_names[s] : "?";
}

/* The class row for kind; unknown kinds are local failures. */
static const struct fclass *class_of(int kind)
{
	for (size_t i = 0; i < NELEM(classes); i++)
		if (classes[i].kind == kind)
			return &classes[i];
	return &classes[NELEM(classes) - 1];
}

/* CLOCK_MONOTONIC in milliseconds, with sub-millisecond precision. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- output ------------------------------------------------------------ */

/* Display columns of UTF-8 text (continuation octets take none). */
static size_t columns(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* "✓ DNS       host → 1.2.3.4                      3 ms" as it runs. */
static void print_step(const struct run *run, enum mark m, enum diag_step s,
		       const char *detail, double ms, bool show_ms)
{
	FILE *f = run->o->out;
	size_t w = columns(detail);

	if (f == NULL || run->o->json)
		return;
	if (run->o->color)
		fprintf(f, "%s%s\033[0m ", marks[m].color, marks[m].sym);
	else
		fprintf(f, "%s ", marks[m].sym);
	fprintf(f, "%-9s %s", step_labels[s], detail);
	if (show_ms)
		fprintf(f, "%*s%5.0f ms", w < 44 ? (int)(44 - w) : 1, "", ms);
	fputc('\n', f);
	fflush(f);
}

/* An indented line under a step: "  cause: …", "  ⚠ …". */
static void print_note(const struct run *run, enum mark m, const char *label,
		       const char *text)
{
	FILE *f = run->o->out;

	if (f == NULL || run->o->json)
		return;
	if (label != NULL)
		fprintf(f, "  %s %s\n", label, text);
	else if (run->o->color)
		fprintf(f, "  %s%s\033[0m %s\n", marks[m].color, marks[m].sym,
			text);
	else
		fprintf(f, "  %s %s\n", marks[m].sym, text);
	fflush(f);
}

/* s as a JSON string: quotes, backslashes and controls escaped, invalid
 * UTF-8 replaced by U+FFFD. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
		int n = *p < 0x80   ? 1
			: *p < 0xc2 ? 0
			: *p < 0xe0 ? 2
			: *p < 0xf0 ? 3
			: *p < 0xf5 ? 4
				    : 0;
		int k = 1;

		while (k < n && (p[k] & 0xc0) == 0x80)
			k++;
		if (n == 0 || k < n) {
			fputs("\\ufffd", f);
			p += k;
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else {
			fwrite(p, 1, (size_t)n, f);
			p += n;
		}
	}
	fputc('"', f);
}

/* A JSON string or null. */
static void json_str_or_null(FILE *f, const char *s, bool null)
{
	if (null)
		fputs("null", f);
	else
		json_str(f, s);
}

/* The whole result as one JSON object. */
static void json_out(const struct run *run)
{
	const struct diag_result *res = run->res;
	FILE *f = run->o->out;

	fputs("{\"route\":", f);
	json_str(f, run->r->name);
	fprintf(f, ",\"ok\":%s,\"steps\":[", res->ok ? "true" : "false");
	for (size_t i = 0; i < run->nrec; i++) {
		const struct step_rec *sr = &run->rec[i];

		fprintf(f, "%s{\"step\":\"%s\",\"ok\":%s,", i ? "," : "",
			step_names[sr->step], sr->ok ? "true" : "false");
		if (sr->skipped)
			fputs("\"skipped\":true,", f);
		fprintf(f, "\"ms\":%ld,\"detail\":", (long)(sr->ms + 0.5));
		json_str(f, sr->detail);
		fputc('}', f);
	}
	fputs("],\"failed_step\":", f);
	json_str_or_null(f, diagnose_step_name(res->failed_step), res->ok);
	fputs(",\"cause\":", f);
	json_str_or_null(f, res->cause, res->ok);
	fputs(",\"fix\":", f);
	json_str_or_null(f, res->fix, res->ok);
	fputs(",\"reply\":", f);
	json_str(f, res->reply);
	fputs(",\"warnings\":[", f);
	for (size_t i = 0; i < run->nwarn; i++) {
		fputs(i ? "," : "", f);
		json_str(f, run->warn[i]);
	}
	fputs("]}\n", f);
	fflush(f);
}

/* ---- recording steps --------------------------------------------------- */

/* Record step s (its time and detail) and return its record. */
static struct step_rec *record(struct run *run, enum diag_step s, bool ok,
			       bool skipped, double ms, const char *detail)
{
	struct step_rec *sr =
	    &run->rec[run->nrec < DIAG_NSTEPS ? run->nrec++ : DIAG_NSTEPS - 1];

	*sr = (struct step_rec){
	    .step = s, .ok = ok, .skipped = skipped, .ms = ms};
	snprintf(sr->detail, sizeof sr->detail, "%s", detail);
	run->res->ms[s] = ms;
	return sr;
}

/* The running step passed (or was skipped) with this detail. */
static int pass(struct run *run, double ms, bool skipped, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pass(struct run *run, double ms, bool skipped, const char *fmt, ...)
{
	char detail[DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	record(run, run->step, true, skipped, ms, detail);
	print_step(run, skipped ? M_SKIP : M_OK, run->step, detail, ms,
		   !skipped);
	return 0;
}

/* The fix: the catalogue's hint, else the class's or the message's own. */
static const char *choose_fix(const struct fclass *fc, const char *hint,
			      const char *own)
{
	if (hint != NULL)
		return hint;
	if (fc->own_first && own != NULL)
		return own;
	if (fc->fix != NULL)
		return fc->fix;
	return own != NULL ? own : "see the cause above";
}

/* Where msg's own fix starts ("cause; fix"), or NULL.  A server reply
 * quoted in the cause may hold "; " itself: the search starts after it. */
static const char *own_fix(const char *msg, const char *reply)
{
	const char *quoted = reply && *reply ? strstr(msg, reply) : NULL;

	return strstr(quoted ? quoted + strlen(reply) : msg, "; ");
}

/* The first failure: the step it shows at, one line of cause, one of fix.
 * msg is "cause; its own fix" or just the cause.  Returns -1. */
static int failed(struct run *run, int kind, double ms, const char *detail,
		  const char *msg, const char *reply, const char *hint)
{
	const struct fclass *fc = class_of(kind);
	enum diag_step at = fc->step == DIAG_NSTEPS || fc->step < run->step
				? run->step
				: fc->step;
	struct diag_result *res = run->res;
	const char *semi = own_fix(msg, reply);
	int clen = semi ? (int)(semi - msg) : (int)strlen(msg);
	char seen[64];

	if (at != run->step) { /* e.g. the greeting showed a TLS port */
		pass(run, ms, false, "%s", detail);
		snprintf(seen, sizeof seen, "(seen at the %s step)",
			 step_labels[run->step]);
		ms = 0, detail = seen;
	}
	res->ok = false;
	res->failed_step = at;
	res->exit_code = fc->exit_code;
	snprintf(res->cause, sizeof res->cause, "%.*s", clen, msg);
	snprintf(res->fix, sizeof res->fix, "%s",
		 choose_fix(fc, hint, semi ? semi + 2 : NULL));
	snprintf(res->reply, sizeof res->reply, "%s", reply ? reply : "");
	record(run, at, false, false, ms, detail);
	print_step(run, M_FAIL, at, detail, ms, true);
	print_note(run, M_FAIL, "cause:", res->cause);
	print_note(run, M_FAIL, "fix:  ", res->fix);
	return -1;
}

/* A probe step failed: its class, and the catalogue's hint for the reply
 * (else, for a login, what the provider of this host needs). */
static int probe_failed(struct run *run, const struct probe_step *ps,
			const char *detail)
{
	int kind = ps->fail;
	const struct fclass *fc;
	const char *hint = NULL;

	if (kind == NF_SENDER && ps->reply[0] == '4')
		kind = DK_SENDER_TEMP;
	fc = class_of(kind);
	if (fc->reply_hint && ps->reply[0] != '\0')
		hint = hint_for_reply(fc->stage, run->r->host, ps->reply);
	if (hint == NULL && (kind == NF_AUTH || kind == NF_NO_AUTH))
		hint = hint_for_host(run->r->host);
	return failed(run, kind, ps->ms, detail ? detail : ps->detail, ps->msg,
		      ps->reply, hint);
}

/* ---- the steps --------------------------------------------------------- */

/* The sentence after the "FILE:LINE: " prefix config.c puts first. */
static const char *warning_text(const char *w)
{
	for (const char *p = strstr(w, ": "); p != NULL;
	     p = strstr(p + 2, ": ")) {
		const char *d = p;

		while (d > w && isdigit((unsigned char)d[-1]))
			d--;
		if (d < p && d > w && d[-1] == ':')
			return p + 2;
	}
	return w;
}

/* The configuration's warnings about this route: "connector.from …",
 * "connector: encryption …", "… is OFF for connector: …". */
static void collect_warnings(struct run *run)
{
	const char *name = run->r->name;
	size_t nl = strlen(name), o = 0;
	char needle[64];

	snprintf(needle, sizeof needle, " %s:", name);
	for (size_t i = 0; i < run->cfg->nwarnings && run->nwarn < WARN_MAX;
	     i++) {
		const char *t = warning_text(run->cfg->warnings[i]);

		if ((strncmp(t, name, nl) == 0 &&
		     (t[nl] == '.' || t[nl] == ':')) ||
		    strstr(t, needle) != NULL)
			run->warn[run->nwarn++] = t;
	}
	for (size_t i = 0; i < run->nwarn && o < sizeof run->res->warnings; i++)
		o += (size_t)snprintf(run->res->warnings + o,
				      sizeof run->res->warnings - o, "%s%s",
				      i ? "; " : "", run->warn[i]);
}

/* A required setting is missing: the settings step fails. */
static int missing(struct run *run, const char *key)
{
	char msg[512];

	snprintf(msg, sizeof msg,
		 "%s.%s is not set in %s; set %s.%s (switchmailctl connect "
		 "asks for it)",
		 run->r->name, key,
		 run->cfg->path ? run->cfg->path : "the configuration",
		 run->r->name, key);
	return failed(run, DK_SETTINGS, 0, "", msg, "", NULL);
}

static int step_settings(struct run *run)
{
	const struct route *r = run->r;
	double t0 = now_ms(), ms;
	char detail[DETAIL_MAX];

	collect_warnings(run);
	if (r->host == NULL || r->host[0] == '\0')
		return missing(run, "host");
	if (r->from == NULL || r->from[0] == '\0')
		return missing(run, "from");
	snprintf(detail, sizeof detail, "%s:%d %s, %s%s, from %s", r->host,
		 r->port, config_encryption_name(r->encryption),
		 r->username ? "login " : "no login",
		 r->username ? r->username : "", r->from);
	ms = now_ms() - t0;
	record(run, DIAG_SETTINGS, true, false, ms, detail);
	print_step(run, run->nwarn ? M_WARN : M_OK, DIAG_SETTINGS, detail, ms,
		   true);
	for (size_t i = 0; i < run->nwarn; i++)
		print_note(run, M_WARN, NULL, run->warn[i]);
	return 0;
}

static int step_dns(struct run *run)
{
	struct probe_step ps;

	if (probe_resolve(run->probe, &ps) != 0)
		return probe_failed(run, &ps, run->r->host);
	return pass(run, ps.ms, false, "%s → %s", run->r->host, ps.detail);
}

static int step_connect(struct run *run)
{
	struct probe_step ps;

	if (probe_connect(run->probe, &ps) != 0)
		return probe_failed(run, &ps, NULL);
	return pass(run, ps.ms, false, "%s", ps.detail);
}

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" out of the TLS summary. */
static void tls_short(const char *summary, char *buf, size_t size)
{
	size_t n = strcspn(summary, ",");

	snprintf(buf, size, "%.*s", (int)n, summary);
}

static int step_tls(struct run *run)
{
	const struct route *r = run->r;
	struct probe_step ps;
	char ver[128];

	if (r->encryption == ENC_NONE)
		return pass(run, 0, true, "skipped: encryption = \"none\"");
	if (probe_tls(run->probe, &ps) != 0)
		return probe_failed(run, &ps,
				    r->encryption == ENC_SSL ? "implicit TLS"
							     : "STARTTLS");
	tls_short(ps.detail, ver, sizeof ver);
	return pass(run, ps.ms, false, "%s %s, certificate %s",
		    r->encryption == ENC_SSL ? "implicit" : "STARTTLS", ver,
		    !r->tls_verify ? "NOT verified (tls_verify = false)"
		    : r->tls_fingerprint != NULL ? "matches tls_fingerprint"
						 : "verified");
}

/* What the server offers, of what matters to us: "SIZE 35882577, …". */
static void offers(const struct probe *p, char *buf, size_t size)
{
	static const char *const kws[] = {"SIZE",	"8BITMIME", "AUTH",
					  "PIPELINING", "SMTPUTF8", "CHUNKING"};
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < NELEM(kws) && o < size; i++) {
		char params[256];

		if (probe_offers(p, kws[i], params, sizeof params))
			o += (size_t)snprintf(buf + o, size - o, "%s%s%s%s",
					      o ? ", " : "", kws[i],
					      params[0] ? " " : "", params);
	}
	if (o == 0)
		snprintf(buf, size, "no extensions (plain SMTP)");
}

static int step_ehlo(struct run *run)
{
	struct probe_step ps;
	char list[DETAIL_MAX];

	if (probe_ehlo(run->probe, &ps) != 0)
		return probe_failed(run, &ps, "EHLO refused");
	offers(run->probe, list, sizeof list);
	return pass(run, ps.ms, false, "%s", list);
}

static int step_auth(struct run *run)
{
	const struct route *r = run->r;
	struct probe_step ps;
	char mechs[256] = "", detail[DETAIL_MAX];

	if (r->username == NULL)
		return pass(run, 0, true, "skipped: no username, so no login");
	probe_offers(run->probe, "AUTH", mechs, sizeof mechs);
	if (probe_auth(run->probe, r->username, r->password ? r->password : "",
		       &ps) != 0) {
		snprintf(detail, sizeof detail, "%s%s(offered: %s)", ps.detail,
			 ps.detail[0] ? " " : "", mechs[0] ? mechs : "none");
		return probe_failed(run, &ps, detail);
	}
	return pass(run, ps.ms, false, "%s accepted for %s (offered: %s)",
		    ps.detail, r->username, mechs);
}

static int step_sender(struct run *run)
{
	struct probe_step ps;
	char detail[DETAIL_MAX];

	snprintf(detail, sizeof detail, "MAIL FROM:<%s>", run->r->from);
	if (probe_mail(run->probe, run->r->from, &ps) != 0)
		return probe_failed(run, &ps, detail);
	return pass(run, ps.ms, false, "<%s> accepted: %s", run->r->from,
		    ps.reply);
}

/* An unlinked temporary file (O_TMPFILE, else mkstemp + unlink). */
static int temp_fd(void)
{
	char path[] = "/tmp/switchmail-test.XXXXXX";
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if ((fd = mkstemp(path)) >= 0)
		unlink(path);
	return fd;
}

/* The test message, CRLF lines, into an unlinked file; its fd or -1. */
static int test_message(const struct run *run, off_t *size, off_t *hlen)
{
	const struct route *r = run->r;
	char date[64], text[TEST_MSG_MAX];
	time_t now = time(NULL);
	int fd, n, h;

	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z",
		 localtime(&now));
	h = snprintf(text, sizeof text,
		     "From: <%s>\r\nTo: <%s>\r\nSubject: switchmail test "
		     "message\r\nDate: %s\r\nMessage-ID: <%lld.%ld.test@%s>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; "
		     "charset=us-ascii\r\n\r\n",
		     r->from, run->o->send_to, date, (long long)now,
		     (long)getpid(),
		     run->cfg->hostname ? run->cfg->hostname : "localhost");
	n = h + snprintf(text + h, sizeof text - (size_t)h,
			 "This message was sent by \"switchmailctl test\" "
			 "through the %s route\r\n(%s port %d, encryption "
			 "%s).  It arrived: the route works.\r\n",
			 r->name, r->host, r->port,
			 config_encryption_name(r->encryption));
	if (n >= (int)sizeof text || (fd = temp_fd()) < 0)
		return -1;
	if (write(fd, text, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	*size = n, *hlen = h;
	return fd;
}

static int step_send(struct run *run)
{
	struct deliver_rcpt rc = {.addr = run->o->send_to};
	struct deliver_msg m = {
	    .id = "test", .sender = run->r->from, .rcpts = &rc, .nrcpts = 1};
	struct deliver_session ds;
	double t0 = now_ms();
	char detail[DETAIL_MAX];

	probe_free(run->probe); /* RSET, QUIT: a new session delivers */
	run->probe = NULL;
	snprintf(detail, sizeof detail, "to <%s>", rc.addr);
	if ((m.fd = test_message(run, &m.size, &m.header_len)) < 0)
		return failed(run, NF_IO, 0, detail,
			      "cannot write the test message to /tmp", "",
			      NULL);
	deliver_session(run->cfg, run->r, &m, 1, run->o->transcript, &ds);
	close(m.fd);
	if (rc.result == DELIVERED) {
		snprintf(run->res->reply, sizeof run->res->reply, "%s",
			 m.reply[0] ? m.reply : rc.reply);
		return pass(run, now_ms() - t0, false, "to <%s>: %s", rc.addr,
			    run->res->reply);
	}
	return failed(run, rc.result == PERMFAIL ? DK_SEND_PERM : DK_SEND_TEMP,
		      now_ms() - t0, detail,
		      ds.failure_kind ? ds.msg : rc.reply, rc.reply, rc.hint);
}

/* The steps in their order; a step returns 0 (passed) or -1. */
static int (*const steps[DIAG_NSTEPS])(struct run *) = {
    [DIAG_SETTINGS] = step_settings, [DIAG_DNS] = step_dns,
    [DIAG_CONNECT] = step_connect,   [DIAG_TLS] = step_tls,
    [DIAG_EHLO] = step_ehlo,	     [DIAG_AUTH] = step_auth,
    [DIAG_SENDER] = step_sender,     [DIAG_SEND] = step_send,
};

/* The probe for route r. */
static struct probe *new_probe(const struct config *cfg, const struct route *r,
			       FILE *transcript)
{
	static const enum net_mode modes[] = {[ENC_NONE] = NET_PLAIN,
					      [ENC_SSL] = NET_SSL,
					      [ENC_TLS] = NET_STARTTLS};
	struct probe_params pp = {.host = r->host,
				  .port = r->port,
				  .mode = modes[r->encryption],
				  .timeout = r->timeout,
				  .ehlo_name = cfg->hostname,
				  .tls = {.ca_file = r->tls_ca_file,
					  .fingerprint = r->tls_fingerprint,
					  .verify = r->tls_verify},
				  .allow_plaintext_auth =
				      r->allow_plaintext_auth,
				  .transcript = transcript};

	return probe_new(&pp);
}

int diagnose_route(const struct config *cfg, const struct route *r,
		   const struct diag_opts *o, struct diag_result *res)
{
	struct run run = {.cfg = cfg, .r = r, .o = o, .res = res};
	int rc = 0;

	memset(res, 0, sizeof *res);
	res->ok = true;
	for (run.step = DIAG_SETTINGS; rc == 0 && run.step < DIAG_NSTEPS;
	     run.step++) {
		if (run.step == DIAG_SEND && o->send_to == NULL)
			break;
		if (run.step == DIAG_DNS &&
		    (run.probe = new_probe(cfg, r, o->transcript)) == NULL)
			rc = failed(&run, NF_IO, 0, "", "out of memory", "",
				    NULL);
		else
			rc = steps[run.step](&run);
	}
	probe_free(run.probe);
	if (o->out != NULL && o->json)
		json_out(&run);
	else if (o->out != NULL && rc == 0)
		fprintf(o->out, "%s route: every step passed%s\n", r->name,
			o->send_to ? ""
				   : " (--send-to ADDR also sends a "
				     "real test message)");
	return rc;
}

/* ---- switchmailctl test ------------------------------------------------ */

/* "--name VALUE" or "--name=VALUE" at argv[*i]: 1 and *value; 0 when
 * argv[*i] is another word; -1 when the value is missing. */
static int option(int argc, char **argv, int *i, const char *name,
		  const char **value)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=')
		*value = argv[*i] + n + 1;
	else if (argv[*i][n] != '\0')
		return 0;
	else if (*i + 1 < argc)
		*value = argv[++*i];
	else
		return -1;
	return 1;
}

/* The route named on the command line (default: the active one). */
static int pick_route(struct ctl *c, const char *name, const struct route **r,
		      struct sm_error *err)
{
	if (name == NULL)
		*r = config_active_route(&c->cfg);
	else if (strcmp(name, "native") == 0)
		*r = &c->cfg.native;
	else if (strcmp(name, "connector") != 0)
		return error_set(err, EX_USAGE,
				 "--route takes connector or native");
	else if (c->cfg.connector.host == NULL)
		return error_set(err, EX_CONFIG,
				 "test --route connector: no connector is "
				 "configured (connector.host is not set in "
				 "%s); set one with switchmailctl connect, or "
				 "test --route native",
				 c->cfg.path ? c->cfg.path
					     : "the configuration");
	else
		*r = &c->cfg.connector;
	return 0;
}

/* --route and --send-to, each checked. */
static int parse_test(struct ctl *c, int argc, char **argv,
		      const struct route **r, const char **send_to,
		      struct sm_error *err)
{
	const char *route = NULL, *why = NULL;
	char shown[128];

	for (int i = 0; i < argc; i++) {
		int k = option(argc, argv, &i, "--route", &route);

		if (k == 0)
			k = option(argc, argv, &i, "--send-to", send_to);
		if (k == 1)
			continue;
		error_printable(shown, sizeof shown, argv[i], strlen(argv[i]));
		return error_set(err, EX_USAGE,
				 "test: %s %s; usage: test [--route "
				 "connector|native] [--send-to ADDR]",
				 k < 0 ? "a value is missing after"
				       : "unknown argument",
				 shown);
	}
	if (*send_to != NULL &&
	    (!address_valid(*send_to, &why) || strchr(*send_to, '@') == NULL)) {
		error_printable(shown, sizeof shown, *send_to,
				strlen(*send_to));
		return error_set(err, EX_USAGE,
				 "--send-to %s: %s; give a full address "
				 "(name@domain)",
				 shown, why ? why : "has no domain");
	}
	return pick_route(c, route, r, err);
}

int ctl_test(struct ctl *c, int argc, char **argv, struct sm_error *err)
{
	struct diag_opts o = {.out = stdout,
			      .json = c->json,
			      .color = !c->json && isatty(STDOUT_FILENO),
			      .transcript = c->verbose ? stderr : NULL};
	const struct route *r = NULL;
	struct diag_result *res;
	int code = EX_OK;

	if (parse_test(c, argc, argv, &r, &o.send_to, err) != 0)
		return err->code;
	if ((res = malloc(sizeof *res)) == NULL) {
		error_set(err, EX_OSERR, "out of memory");
		return EX_OSERR;
	}
	if (diagnose_route(&c->cfg, r, &o, res) != 0) {
		code = res->exit_code;
		error_set(err, code, "test failed at %s: %s",
			  diagnose_step_name(res->failed_step), res->cause);
	}
	free(res);
	return code;
}
