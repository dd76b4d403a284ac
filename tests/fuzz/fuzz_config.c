/*
 * fuzz_config.c - libFuzzer target: config_load() (libconfig parsing plus
 * our validation) on hostile files.  Loads must fail cleanly or succeed;
 * either way nothing leaks (config_free) and nothing crashes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config cfg;
	struct sm_error err;
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof path, "/tmp/fuzz-config-%d.conf",
			 (int)getpid());
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (config_load(path, &cfg, &err) == 0)
		config_free(&cfg);
	unlink(path);
	return 0;
}
