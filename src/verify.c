/*
 * verify.c - -bv and -bi: the recipient half of the send path (aliases,
 * default domain, route, sender), shown without sending (see verify.h).
 */
#include "verify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "route.h"
#include "submit.h"

/* Keep the newest problem in err; the one it replaces goes to stderr. */
static void problem(struct sm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct sm_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err->code != EX_OK)
		fprintf(stderr, "%s: %s\n", program_invocation_short_name,
			err->msg);
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
}

/* ", via connector HOST:PORT ssl, sender ADDR" for the active route. */
static void describe_route(const struct options *o, const struct config *cfg,
			   char *buf, size_t size)
{
	const struct route *r = config_active_route(cfg);
	char *login = o->sender != NULL ? NULL : submit_login_sender(cfg);
	const char *asked = o->sender != NULL ? o->sender : login;
	struct sender_plan plan;
	int n;

	route_plan(r, asked, NULL, NULL, false, &plan);
	n = snprintf(buf, size, ", via %s %s:%d %s, sender %s", r->name,
		     r->host, r->port, config_encryption_name(r->encryption),
		     plan.envelope);
	if (plan.envelope_replaced && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n,
			 " (%s is not in %s.allowed_senders)", asked, r->name);
	free(login);
}

/* How a recipient was resolved: as given, by an alias, by the domain. */
static const char *resolution(const struct config *cfg, const char *addr)
{
	if (address_domain(addr) != NULL)
		return "";
	for (size_t i = 0; i < cfg->naliases; i++)
		if (strcasecmp(cfg->aliases[i].name, addr) == 0)
			return " (alias)";
	return " (default domain)";
}

/* "NAME -> ADDR, ADDR (alias)ROUTE" for one address; 0, or -1 when it
 * cannot be resolved (the problem is in err). */
static int verify_one(const struct config *cfg, const char *addr,
		      const char *route, FILE *out, struct sm_error *err)
{
	struct addrlist l = {0};
	struct sm_error e = {0};
	int rc = -1;

	if (addrlist_add(&l, addr, NULL, &e) != 0 ||
	    address_resolve(&l, cfg->aliases, cfg->naliases,
			    cfg->default_domain, &e) != 0) {
		problem(err, e.code == EX_OSERR ? EX_OSERR : EX_NOUSER,
			"%s: %s", addr, e.msg);
	} else {
		fprintf(out, "%s -> ", addr);
		for (size_t i = 0; i < l.n; i++)
			fprintf(out, "%s%s", i ? ", " : "", l.v[i].addr);
		fprintf(out, "%s%s\n", resolution(cfg, addr), route);
		rc = 0;
	}
	addrlist_free(&l);
	return rc;
}

/* One recipient argument, a comma list; counts the addresses and failures. */
static void verify_arg(const struct config *cfg, const char *arg,
		       const char *route, FILE *out, size_t *n, size_t *bad,
		       bool *syntax, struct sm_error *err)
{
	struct addrlist l = {0};
	struct sm_error e = {0};
	bool parsed = address_list_parse(arg, strlen(arg), &l, &e) == 0;

	if (!parsed) {
		char shown[300];

		error_printable(shown, sizeof shown, arg, strlen(arg));
		problem(err, e.code == EX_OSERR ? EX_OSERR : EX_DATAERR,
			"\"%s\": %s", shown, e.msg);
		(*n)++, (*bad)++;
		*syntax = true;
	}
	for (size_t i = 0; i < l.n && parsed; i++) {
		(*n)++;
		if (verify_one(cfg, l.v[i].addr, route, out, err) != 0)
			(*bad)++;
	}
	addrlist_free(&l);
}

int verify_recipients(const struct options *o, const struct config *cfg, FILE *out,
		  struct sm_error *err)
{
	char route[1024];
	size_t n = 0, bad = 0;
	bool syntax = false;

	if (o->nrecipients == 0)
		return error_set(err, EX_USAGE,
				 "no recipients to verify: give the addresses "
				 "as arguments (-bv root bob@example.org)");
	describe_route(o, cfg, route, sizeof route);
	for (size_t i = 0; i < o->nrecipients; i++)
		verify_arg(cfg, o->recipients[i], route, out, &n, &bad, &syntax,
			   err);
	fflush(out);
	if (bad == 0)
		return EX_OK;
	if (n > 1)
		problem(err, EX_NOUSER,
			"%zu of %zu recipients cannot be routed", bad, n);
	if (err->code != EX_OSERR)
		err->code = syntax ? EX_DATAERR : EX_NOUSER;
	return err->code;
}

/* "root, postmaster, www-data" (the first ten, then how many more). */
static void alias_names(const struct config *cfg, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cfg->naliases && used < size; i++) {
		int w = i < 10 ? snprintf(buf + used, size - used, "%s%s",
					  i ? ", " : "", cfg->aliases[i].name)
			       : snprintf(buf + used, size - used,
					  " and %zu more", cfg->naliases - i);

		if (w < 0 || i >= 10)
			break;
		used += (size_t)w;
	}
}

int verify_aliases(const struct config *cfg, FILE *out, struct sm_error *err)
{
	char names[1024];

	for (size_t i = 0; i < cfg->naliases; i++) {
		struct addrlist l = {0};
		struct sm_error e = {0};

		if (addrlist_add(&l, cfg->aliases[i].name, NULL, &e) != 0 ||
		    address_resolve(&l, cfg->aliases, cfg->naliases,
				    cfg->default_domain, &e) != 0)
			problem(err, EX_CONFIG, "%s: aliases.%s: %s", cfg->path,
				cfg->aliases[i].name, e.msg);
		addrlist_free(&l);
	}
	if (err->code != EX_OK)
		return err->code;
	alias_names(cfg, names, sizeof names);
	if (cfg->naliases == 0)
		fprintf(out,
			"%s: no aliases set; aliases live in %s, no "
			"database to rebuild\n",
			program_invocation_short_name, cfg->path);
	else
		fprintf(out,
			"%s: %zu alias%s OK (%s); aliases live in %s, no "
			"database to rebuild\n",
			program_invocation_short_name, cfg->naliases,
			cfg->naliases == 1 ? "" : "es", names, cfg->path);
	fflush(out);
	return EX_OK;
}
