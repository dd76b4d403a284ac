/*
 * fuzz_smtpin.c - libFuzzer target for the -bs dialogue: each input is the
 * whole of what a client writes on stdin, run through smtpin_session()
 * with a stub in place of delivery (no network, no queue fsync).
 *
 * Invariants checked beyond the sanitizers: every address handed over is
 * one address_valid() accepts (the sender may be ""), and no tmp/ spool
 * file outlives the session.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc -Icompat \
 *     tests/fuzz/fuzz_smtpin.c build/libswitchmail.a \
 *     $(pkg-config --libs libesmtp-1.0 libconfig openssl) -pthread
 *   ./a.out -max_total_time=30 tests/fuzz/smtpin
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "smtpin.h"

static struct alias_entry aliases[] = {
    {"root", "admin@example.fr"},
    {"list", "a@x.example, b@x.example, root"},
    {"loop", "loop"},
};
static struct config cfg;
static struct options opts;
static char spool[64];

/* Delivery stand-in: checks the envelope, then answers by recipient count
 * so that every reply path is taken. */
static int stub_submit(const struct config *c, const struct submit_job *job,
		       struct submit_outcome *out, struct sm_error *err)
{
	const struct queue_envelope *env = job->env;

	if (env->caller_sender == NULL ||
	    (env->caller_sender[0] != '\0' &&
	     !address_valid(env->caller_sender, NULL)))
		abort();
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!address_valid(env->rcpts[i], NULL))
			abort();
	queue_remove_tmp(c->queue_dir, env->id);
	memset(out, 0, sizeof *out);
	switch (env->nrcpts % 4) {
	case 0:
		return 0;
	case 1:
		out->queued = true;
		return 0;
	case 2:
		snprintf(out->reply, sizeof out->reply,
			 "550 5.1.1 <%s> no such user\r\n", env->rcpts[0]);
		return error_set(err, EX_NOUSER, "refused");
	default:
		return error_set(err, EX_TEMPFAIL, "not queued either");
	}
}

static void init(void)
{
	snprintf(spool, sizeof spool, "/tmp/fuzz_smtpin.XXXXXX");
	if (mkdtemp(spool) == NULL)
		abort();
	cfg.hostname = "fuzz.example";
	cfg.queue_dir = spool;
	cfg.default_domain = "example.org";
	cfg.aliases = aliases;
	cfg.naliases = sizeof aliases / sizeof aliases[0];
	signal(SIGPIPE, SIG_IGN);
}

/* Abort when a spool file was left in tmp/. */
static void check_tmp_empty(void)
{
	char path[128];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof path, "%s/tmp", spool);
	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			abort();
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpin_io io = {.submit = stub_submit};
	struct sm_error err = {0};

	if (spool[0] == '\0')
		init();
	io.in_fd = memfd_create("smtpin", MFD_CLOEXEC);
	io.out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (io.in_fd < 0 || io.out_fd < 0 ||
	    write(io.in_fd, data, size) != (ssize_t)size ||
	    lseek(io.in_fd, 0, SEEK_SET) != 0)
		abort();
	smtpin_session(&opts, &cfg, &io, &err);
	close(io.in_fd);
	close(io.out_fd);
	check_tmp_empty();
	return 0;
}
