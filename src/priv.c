/*
 * priv.c - set-group-id start-up (see priv.h).  Nothing else in switchmail
 * changes ids, the umask, resource limits or the environment.
 */
#include "priv.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define SAFE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

bool priv_is_setgid(void)
{
	return getegid() != getgid();
}

/* fds 0, 1, 2 must exist: a closed one would be reused by the first file
 * we open, and our messages would land in a queue file. */
static int sane_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1)
			continue;
		int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);

		if (nfd != fd)
			return -1;
	}
	return 0;
}

/* A setgid program keeps nothing of the caller's environment but what it
 * needs: no LD_*, no locale, no TZ, no MALLOC_* reach privileged code. */
static int clean_environment(void)
{
	if (clearenv() != 0)
		return -1;
	return setenv("PATH", SAFE_PATH, 1);
}

int priv_startup(char **config_env, struct sm_error *err)
{
	struct rlimit none = {0, 0};
	const char *env;

	*config_env = NULL;
	if (sane_fds() != 0)
		return error_set(err, EX_OSERR, "cannot open /dev/null for a "
						"closed standard descriptor");
	umask(007);
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	env = getenv(CONFIG_ENV);
	if (env != NULL && env[0] != '\0' &&
	    (*config_env = strdup(env)) == NULL)
		return error_set(err, EX_OSERR, "out of memory");
	if (priv_is_setgid() && clean_environment() != 0)
		return error_set(err, EX_OSERR, "cannot reset the environment");
	return 0;
}

int priv_drop(struct sm_error *err)
{
	gid_t gid = getgid(), privileged = getegid();

	if (!priv_is_setgid())
		return 0;
	if (setresgid(gid, gid, gid) != 0)
		return error_set(err, EX_OSERR, "cannot drop the switchmail "
						"group privilege");
	/* root may take any group back; anyone else must not be able to */
	if (getegid() != gid ||
	    (getuid() != 0 && setegid(privileged) == 0))
		return error_set(err, EX_OSERR, "the switchmail group privilege "
						"did not go away; refusing to go on");
	return 0;
}
