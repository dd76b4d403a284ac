/*
 * providers.c - where the presets file is, looking presets up, close names
 * (see providers.h).  The libconfig parsing is config.c's
 * (config_load_providers), so that one file alone includes libconfig.
 */
#include "providers.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NEAR_MAX_DISTANCE 2 /* edits for a name to count as close */
#define NEAR_PREFIX	  3 /* or this many leading characters in common */

const char *providers_path(void)
{
	const char *env = secure_getenv(PROVIDERS_ENV);

	return env != NULL && env[0] == '/' ? env : PROVIDERS_PATH;
}

int providers_load(struct provider_list *pl, struct sm_error *err)
{
	return config_load_providers(providers_path(), pl, err);
}

const struct provider *providers_find(const struct provider_list *pl,
				      const char *name)
{
	for (size_t i = 0; pl != NULL && name != NULL && i < pl->n; i++)
		if (strcasecmp(pl->v[i].name, name) == 0)
			return &pl->v[i];
	return NULL;
}

/* Edit distance of two short names, case-insensitive; SIZE_MAX when
 * either is longer than 32 bytes. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j],
			       best =
				   diag + (tolower((unsigned char)a[i - 1]) !=
					   tolower((unsigned char)b[j - 1]));

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Whether preset name p is close to what the user typed. */
static bool close_to(const char *p, const char *typed)
{
	size_t n = strlen(typed);

	if (distance(p, typed) <= NEAR_MAX_DISTANCE)
		return true;
	if (n >= NEAR_PREFIX && strncasecmp(p, typed, NEAR_PREFIX) == 0)
		return true;
	return n >= NEAR_PREFIX && strcasestr(p, typed) != NULL;
}

char *providers_near(const struct provider_list *pl, const char *name,
		     char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; pl != NULL && i < pl->n; i++) {
		int k;

		if (!close_to(pl->v[i].name, name))
			continue;
		k = snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
			     pl->v[i].name);
		if (k < 0 || (size_t)k >= size - used) {
			buf[used] = '\0';
			break;
		}
		used += (size_t)k;
	}
	return buf;
}

/* Release the strings of one preset. */
static void provider_free(struct provider *p)
{
	char **strings[] = {&p->name,	       &p->title,    &p->host,
			    &p->host_hint,     &p->username, &p->username_hint,
			    &p->password_hint, &p->sender,   &p->limits,
			    &p->notes,	       &p->warning};

	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
}

void providers_free(struct provider_list *pl)
{
	if (pl == NULL)
		return;
	for (size_t i = 0; i < pl->n; i++)
		provider_free(&pl->v[i]);
	free(pl->v);
	free(pl->path);
	memset(pl, 0, sizeof *pl);
}
