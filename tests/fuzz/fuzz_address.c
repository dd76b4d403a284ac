/*
 * fuzz_address.c - libFuzzer target: the RFC 5322 address-list parser and
 * address validation on hostile bytes.  Every address the parser accepts
 * must itself be valid (address_valid), and the parser must never crash,
 * leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addrlist l = {0};
	struct sm_error err;
	static const struct alias_entry aliases[] = {
		{"root", "admin@example.org, ops"}, {"ops", "root"}};
	char *s;

	if (address_list_parse((const char *)data, size, &l, &err) == 0)
		for (size_t i = 0; i < l.n; i++)
			if (!address_valid(l.v[i].addr, NULL))
				abort();
	address_resolve(&l, aliases, 2, "example.org", &err);
	addrlist_free(&l);
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	address_valid(s, NULL);
	address_match("*@example.org", s);
	free(s);
	return 0;
}
