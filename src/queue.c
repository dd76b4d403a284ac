/*
 * queue.c - queue ids and spool files (queue.h, DESIGN §5, STYLE §11-12).
 *
 * A queue file is queue.dir/{tmp,new,failed}/ID.  An ID is 20 upper-case
 * hex digits: 9 of seconds, 5 of microseconds, 6 random, so that sorted ids
 * are oldest first.  Ids that come back from argv or readdir() pass
 * queue_id_valid() before they become a path, and files are opened with
 * openat(O_NOFOLLOW) relative to their directory; only regular files count.
 *
 * Life of a file.  The sender creates tmp/ID (O_EXCL|O_NOFOLLOW, 0660:
 * the switchmail group shares the spool, others never see it) and
 * locks it at once (flock, exclusive, held until it exits), streams the
 * message in and appends the envelope - no fsync: most mail is delivered at
 * once and the file deleted.  Only mail that has to wait is committed:
 * fsync, rename into new/, fsync new/; only then may the sender exit 0.  A
 * sender that dies earlier leaves an unlocked file in tmp/ that
 * queue_clean_tmp() removes after QUEUE_STALE_TMP (its caller never heard
 * "accepted").  A runner locks new/ID for an attempt, rewrites the state in
 * place, and finally removes the file or renames it into failed/.
 *
 * File format, four parts in this order:
 *
 * 1. The message, offsets 0 .. size-1, exactly as message_read() wrote it.
 *    First because the sender streams stdin into the file before it knows
 *    the envelope (-t and Bcc: recipients come from the header), and so
 *    that delivery reads it from offset 0 without any unescaping.
 *
 * 2. The envelope, written once: text lines "key value\n", the value
 *    running to the end of the line (the writer refuses a value holding CR
 *    or LF; NUL cannot be written, and the loader refuses all three).
 *
 *      switchmail-queue 1    format version, always the first line
 *      id ID                 must equal the file's name
 *      created SECONDS       unix time
 *      size OCTETS           of the message: where the envelope starts
 *      header-len OCTETS     of its header block, <= size
 *      caller-sender ADDR    optional; may be empty ("caller-sender ")
 *      from ADDR             optional
 *      from-display TEXT     optional
 *      reply-to 0|1
 *      message-id TEXT       optional
 *      eight-bit 0|1
 *      body N                enum body_type
 *      ret N                 enum dsn_ret
 *      notify N              NOTIFY_* bits
 *      envid TEXT            optional
 *      notice 0|1
 *      rcpt ADDR             one per recipient, in order, at least one
 *      end                   the end marker
 *
 *    Text, so that an administrator can read it with less(1); keyed, so
 *    that a later version can add fields.  The loader refuses an unknown
 *    version or key, a scalar key given twice, a missing required key, a
 *    missing end marker or anything after it: a file it does not fully
 *    understand is never half-delivered.  At most ENVELOPE_MAX (16 MiB;
 *    10 000 recipients of 254 octets take 2.6 MB); more is corruption.
 *
 * 3. The state, the only part ever rewritten: in place, one pwrite, so its
 *    size is fixed for the file's life and nothing else moves.
 *
 *      state attempts=%010u next=%020lld last=%020lld sum=%08x\n
 *      error TEXT\n          TEXT padded with spaces to QUEUE_ERROR_MAX
 *                            octets; printable (controls become '?');
 *                            trailing spaces of an error are not kept
 *      rcpts BYTES\n         one RS_* byte per envelope recipient
 *
 *    sum is FNV-1a (32 bits) over the whole record with its own 8 digits
 *    read as "00000000".  A crash during an update may leave the record
 *    torn, part old and part new, and the sum shows it.  The loader does
 *    not give the message up then: it resets the state (attempts 0, next
 *    0, every recipient pending, an error saying why) and loads it.  The
 *    price is that recipients already delivered get the message again: a
 *    duplicate rather than a loss.  The reset lives in memory until the
 *    next queue_save_state().  A reader without the lock (mailq) may
 *    catch an update half-way and see such a reset; it writes nothing.
 *
 * 4. The trailer, the last TRAILER_LEN (80) octets:
 *
 *      switchmail-trailer envelope=%016llx state=%016llx
 *
 *    padded with spaces to 79 octets, then "\n" (the line itself is 67
 *    octets, hence 80 rather than 64).  Last, because the message comes
 *    first and the envelope's offset is only known at its end; fixed-size,
 *    so that the loader finds the other parts with one pread from the end;
 *    and a file cut short anywhere has no valid trailer.  The loader checks
 *    envelope < state < file size - TRAILER_LEN.
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VERSION_LINE "switchmail-queue 1"
#define ENVELOPE_MAX (16LL * 1024 * 1024) /* octets; more is corruption */

/* The trailer: two offsets at fixed places, padded, newline-terminated. */
#define TRAILER_LEN   80
#define TRAILER_FMT   "switchmail-trailer envelope=%016llx state=%016llx"
#define TRAILER_ENV   (sizeof "switchmail-trailer envelope=" - 1)
#define TRAILER_STATE (TRAILER_ENV + 16 + sizeof " state=" - 1)

/* The state record: head line, error line, rcpts line. */
#define STATE_FMT    "state attempts=%010u next=%020lld last=%020lld sum=%08x\n"
#define ATT_OFF	     (sizeof "state attempts=" - 1)
#define NEXT_OFF     (ATT_OFF + 10 + sizeof " next=" - 1)
#define LAST_OFF     (NEXT_OFF + 20 + sizeof " last=" - 1)
#define SUM_OFF	     (LAST_OFF + 20 + sizeof " sum=" - 1)
#define HEAD_LEN     (SUM_OFF + 8 + 1)
#define ERROR_KEY    "error "
#define RCPTS_KEY    "rcpts "
#define KEY_LEN	     (sizeof ERROR_KEY - 1) /* of either key, no NUL */
#define ERROR_OFF    HEAD_LEN
#define RCPTS_OFF    (ERROR_OFF + KEY_LEN + QUEUE_ERROR_MAX + 1)
#define STATE_LEN(n) (RCPTS_OFF + KEY_LEN + (size_t)(n) + 1)
#define DAMAGED                                                                \
	"state record damaged (crash during an update); retrying all "         \
	"recipients"
_Static_assert(sizeof ERROR_KEY == sizeof RCPTS_KEY, "one KEY_LEN for both");

/* Envelope keys, in file order: one table for the writer and the loader. */
enum kind { K_ID, K_LL, K_OFF, K_STR, K_BOOL, K_INT, K_RCPT };

static const struct key {
	const char *name;
	enum kind kind;
	bool required;
	size_t off;
} keys[] = {
#define E(f) offsetof(struct queue_envelope, f)
    {"id", K_ID, true, E(id)},
    {"created", K_LL, true, E(created)},
    {"size", K_OFF, true, E(size)},
    {"header-len", K_OFF, true, E(header_len)},
    {"caller-sender", K_STR, false, E(caller_sender)},
    {"from", K_STR, false, E(from_addr)},
    {"from-display", K_STR, false, E(from_display)},
    {"reply-to", K_BOOL, true, E(has_reply_to)},
    {"message-id", K_STR, false, E(message_id)},
    {"eight-bit", K_BOOL, true, E(eight_bit)},
    {"body", K_INT, true, E(body)},
    {"ret", K_INT, true, E(ret)},
    {"notify", K_INT, true, E(notify)},
    {"envid", K_STR, false, E(envid)},
    {"notice", K_BOOL, true, E(is_notice)},
    {"rcpt", K_RCPT, true, 0},
#undef E
};

#define NKEYS (sizeof keys / sizeof keys[0])
/* The field of key k in envelope env, as a pointer to type. */
#define AT(env, k, type)  ((type *)((char *)(env) + (k)->off))
#define CAT(env, k, type) ((type const *)((const char *)(env) + (k)->off))

/* What a loader reports against: the file's path and its expected id. */
struct loadctx {
	char path[PATH_MAX];
	const char *id;
	struct sm_error *err;
};

/* Time first, so that ids sort oldest first; random last, so that two
 * senders in the same microsecond differ. */
void queue_id_new(char id[QUEUE_ID_LEN + 1])
{
	struct timeval tv;
	unsigned int rnd = 0;

	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
		rnd = (unsigned int)getpid() ^ (unsigned int)tv.tv_usec << 8;
	snprintf(id, QUEUE_ID_LEN + 1, "%09llX%05lX%06X",
		 (unsigned long long)tv.tv_sec & 0xfffffffffULL,
		 (unsigned long)tv.tv_usec & 0xfffff, rnd & 0xffffff);
}

/* Exactly QUEUE_ID_LEN of [0-9A-F]: no slash, no dot, nothing else. */
bool queue_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++)
		if (n == QUEUE_ID_LEN || !((id[n] >= '0' && id[n] <= '9') ||
					   (id[n] >= 'A' && id[n] <= 'F')))
			return false;
	return n == QUEUE_ID_LEN;
}

/* Whether sub is one of the spool's three directories. */
static bool sub_valid(const char *sub)
{
	return sub != NULL &&
	       (strcmp(sub, "tmp") == 0 || strcmp(sub, "new") == 0 ||
		strcmp(sub, "failed") == 0);
}

/* dir/sub, or dir/sub/id when id is not NULL, into buf; 0 or -1 (err). */
static int make_path(char buf[PATH_MAX], const char *dir, const char *sub,
		     const char *id, struct sm_error *err)
{
	int n = id ? snprintf(buf, PATH_MAX, "%s/%s/%s", dir, sub, id)
		   : snprintf(buf, PATH_MAX, "%s/%s", dir, sub);

	if (n < 0 || n >= PATH_MAX)
		return error_set(err, EX_CONFIG,
				 "queue.dir \"%.100s...\" is too long", dir);
	return 0;
}

/* Write all of buf at off through EINTR and short writes; 0 or -1. */
static int pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Read up to len octets at off through EINTR; the count (short only at
 * the end of the file) or -1. */
static ssize_t pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* err for a failed write or sync of queue file id (errno says why). */
static int io_error(struct sm_error *err, const char *what, const char *id)
{
	if (errno == ENOSPC || errno == EDQUOT)
		return error_set(err, EX_IOERR,
				 "cannot spool message %.20s: the spool's disk "
				 "is full; free space under queue.dir",
				 id);
	return error_set(err, EX_IOERR, "cannot %s queue file %.20s: %s", what,
			 id, strerror(errno));
}

/* fsync a directory: makes the entries created or renamed in it durable. */
static int fsync_dir(const char *path, struct sm_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 ? -1 : fsync(fd);
	int saved = errno;

	if (fd >= 0)
		close(fd);
	if (rc == 0)
		return 0;
	return error_set(err, EX_IOERR,
			 "cannot sync the spool directory %s: %s", path,
			 strerror(saved));
}

/* Create dir/sub (0770: the switchmail group shares it) if missing; a new
 * one is made durable in dir. */
static int ensure_subdir(const char *dir, const char *sub, struct sm_error *err)
{
	char path[PATH_MAX];
	int saved;

	if (make_path(path, dir, sub, NULL, err) != 0)
		return -1;
	if (mkdir(path, 0770) == 0)
		return fsync_dir(dir, err);
	if ((saved = errno) == EEXIST)
		return 0;
	return error_set(err, saved == ENOSPC ? EX_IOERR : EX_CANTCREAT,
			 "cannot create the spool directory %s: %s; create %s "
			 "(make install does) or set queue.dir to a writable "
			 "directory",
			 path, strerror(saved), dir);
}

/* tmp/ID, exclusive and locked before a single octet is written. */
int queue_create_tmp(const char *dir, const char *id, struct sm_error *err)
{
	char path[PATH_MAX];
	int fd, saved;

	if (!queue_id_valid(id))
		return error_set(err, EX_SOFTWARE,
				 "queue_create_tmp: bad queue id");
	if (ensure_subdir(dir, "tmp", err) != 0 ||
	    make_path(path, dir, "tmp", id, err) != 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0660);
	if (fd < 0)
		return error_set(err, errno == ENOSPC ? EX_IOERR : EX_CANTCREAT,
				 "cannot write the spool %s: %s; create it "
				 "(make install does) or set queue.dir to a "
				 "writable directory",
				 path, strerror(errno));
	if (flock(fd, LOCK_EX) != 0) {
		saved = errno;
		close(fd);
		unlink(path);
		return error_set(err, EX_OSERR, "cannot lock %s: %s", path,
				 strerror(saved));
	}
	return fd;
}

/* FNV-1a (32 bits) of the state record rec[0..len), sum digits as zeros. */
static uint32_t state_sum(const char *rec, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		bool in_sum = i >= SUM_OFF && i < SUM_OFF + 8;

		h ^= in_sum ? (unsigned char)'0' : (unsigned char)rec[i];
		h *= 16777619u;
	}
	return h;
}

/* c, or '?' when it is a control character. */
static char printable(char c)
{
	unsigned char u = (unsigned char)c;

	if (u < 0x20 || u == 0x7f)
		return '?';
	return c;
}

/* Whether c is a per-recipient state byte. */
static bool rs_valid(char c)
{
	return c == RS_PENDING || c == RS_DELIVERED || c == RS_FAILED;
}

/* The head line of a state record into out (HEAD_LEN + 1 octets). */
static void render_head(char *out, unsigned attempts, long long next,
			long long last, uint32_t sum)
{
	snprintf(out, HEAD_LEN + 1, STATE_FMT, attempts, next, last,
		 (unsigned)sum);
}

/* The state record of st (NULL: fresh) for n recipients, malloc'ed
 * (STATE_LEN(n) octets), or NULL (err). */
static char *render_state(const struct queue_state *st, size_t n,
			  struct sm_error *err)
{
	static const struct queue_state fresh;
	char *buf, *p, sum[9];
	size_t elen;

	st = st ? st : &fresh;
	for (size_t i = 0; st->rcpt_state != NULL && i < n; i++)
		if (!rs_valid(st->rcpt_state[i])) {
			error_set(err, EX_SOFTWARE,
				  "queue: recipient %zu has no valid state", i);
			return NULL;
		}
	if ((buf = malloc(STATE_LEN(n) + 1)) == NULL) {
		error_set(err, EX_OSERR, "out of memory writing a queue file");
		return NULL;
	}
	render_head(buf, st->attempts, st->next, st->last, 0);
	p = buf + ERROR_OFF;
	memcpy(p, ERROR_KEY, KEY_LEN);
	elen = strnlen(st->error, QUEUE_ERROR_MAX - 1);
	memset(p + KEY_LEN, ' ', QUEUE_ERROR_MAX);
	for (size_t i = 0; i < elen; i++)
		p[KEY_LEN + i] = printable(st->error[i]);
	p[KEY_LEN + QUEUE_ERROR_MAX] = '\n';
	p = buf + RCPTS_OFF;
	memcpy(p, RCPTS_KEY, KEY_LEN);
	if (st->rcpt_state != NULL)
		memcpy(p + KEY_LEN, st->rcpt_state, n);
	else
		memset(p + KEY_LEN, RS_PENDING, n);
	p[KEY_LEN + n] = '\n';
	snprintf(sum, sizeof sum, "%08x",
		 (unsigned)state_sum(buf, STATE_LEN(n)));
	memcpy(buf + SUM_OFF, sum, 8);
	return buf;
}

/* The trailer for the two offsets into out (TRAILER_LEN + 1 octets). */
static void render_trailer(char *out, unsigned long long env_off,
			   unsigned long long state_off)
{
	int n = snprintf(out, TRAILER_LEN + 1, TRAILER_FMT, env_off, state_off);

	memset(out + n, ' ', (size_t)(TRAILER_LEN - 1 - n));
	out[TRAILER_LEN - 1] = '\n';
	out[TRAILER_LEN] = '\0';
}

/* Refuse to spool env: EX_SOFTWARE, a caller's bug. */
static int refuse(struct sm_error *err, const struct queue_envelope *env,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct sm_error *err, const struct queue_envelope *env,
		  const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return error_set(err, EX_SOFTWARE, "cannot spool message %.20s: %s",
			 env->id, why);
}

/* Whether env can be written: an id, sizes, recipients, no line breaks. */
static int check_envelope(const struct queue_envelope *env,
			  struct sm_error *err)
{
	if (!queue_id_valid(env->id))
		return refuse(err, env, "its id is not a queue id");
	if (env->size < 0 || env->header_len < 0 || env->header_len > env->size)
		return refuse(err, env, "header-len is not within its size");
	if (env->nrcpts == 0 || env->rcpts == NULL)
		return refuse(err, env, "it has no recipients");
	for (size_t i = 0; i < NKEYS; i++) {
		const char *v =
		    keys[i].kind == K_STR ? *CAT(env, &keys[i], char *) : NULL;

		if (v != NULL && strpbrk(v, "\r\n") != NULL)
			return refuse(err, env, "its %s contains a line break",
				      keys[i].name);
	}
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i] == NULL || strpbrk(env->rcpts[i], "\r\n"))
			return refuse(err, env,
				      "recipient %zu is missing or contains a "
				      "line break",
				      i + 1);
	return 0;
}

/* The line(s) of key k of env into f. */
static void put_key(FILE *f, const struct key *k,
		    const struct queue_envelope *env)
{
	switch (k->kind) {
	case K_ID:
		fprintf(f, "%s %s\n", k->name, env->id);
		break;
	case K_LL:
		fprintf(f, "%s %lld\n", k->name, *CAT(env, k, long long));
		break;
	case K_OFF:
		fprintf(f, "%s %lld\n", k->name,
			(long long)*CAT(env, k, off_t));
		break;
	case K_STR:
		if (*CAT(env, k, char *) != NULL)
			fprintf(f, "%s %s\n", k->name, *CAT(env, k, char *));
		break;
	case K_BOOL:
		fprintf(f, "%s %d\n", k->name, *CAT(env, k, bool) ? 1 : 0);
		break;
	case K_INT:
		fprintf(f, "%s %d\n", k->name, *CAT(env, k, int));
		break;
	case K_RCPT:
		for (size_t i = 0; i < env->nrcpts; i++)
			fprintf(f, "%s %s\n", k->name, env->rcpts[i]);
		break;
	}
}

/* Envelope, state and trailer of a message of env->size octets into *out
 * (malloc'ed, *len octets); 0 or -1 (err). */
static int render_tail(const struct queue_envelope *env,
		       const struct queue_state *st, char **out, size_t *len,
		       struct sm_error *err)
{
	char trailer[TRAILER_LEN + 1], *state;
	long long envlen = 0;
	FILE *f;
	int bad;

	if ((state = render_state(st, env->nrcpts, err)) == NULL)
		return -1;
	*out = NULL;
	if ((f = open_memstream(out, len)) == NULL) {
		free(state);
		return error_set(err, EX_OSERR, "out of memory spooling");
	}
	fputs(VERSION_LINE "\n", f);
	for (size_t i = 0; i < NKEYS; i++)
		put_key(f, &keys[i], env);
	fputs("end\n", f);
	envlen = ftell(f);
	render_trailer(trailer, (unsigned long long)env->size,
		       (unsigned long long)(env->size + envlen));
	fwrite(state, 1, STATE_LEN(env->nrcpts), f);
	fwrite(trailer, 1, TRAILER_LEN, f);
	free(state);
	bad = ferror(f);
	bad |= fclose(f) != 0 || envlen < 0;
	if (!bad && envlen <= ENVELOPE_MAX)
		return 0;
	free(*out);
	*out = NULL;
	if (bad)
		return error_set(err, EX_OSERR, "out of memory spooling");
	return refuse(err, env, "its envelope (%lld octets) is over %lld",
		      envlen, ENVELOPE_MAX);
}

/* Envelope, state and trailer after the message; no fsync (fast path). */
int queue_write_envelope(int fd, const struct queue_envelope *env,
			 const struct queue_state *st, struct sm_error *err)
{
	struct stat sb;
	char *buf;
	size_t len;
	int rc = 0;

	if (check_envelope(env, err) != 0)
		return -1;
	if (fstat(fd, &sb) != 0)
		return io_error(err, "inspect", env->id);
	if (sb.st_size != env->size)
		return refuse(err, env,
			      "the file holds %lld octets, the envelope says "
			      "%lld",
			      (long long)sb.st_size, (long long)env->size);
	if (render_tail(env, st, &buf, &len, err) != 0)
		return -1;
	if (pwrite_all(fd, buf, len, env->size) != 0)
		rc = io_error(err, "write", env->id);
	free(buf);
	return rc;
}

/* The commit point: fsync, rename into new/, fsync new/. */
int queue_commit(const char *dir, const char *id, int fd, struct sm_error *err)
{
	char from[PATH_MAX], to[PATH_MAX], newdir[PATH_MAX];

	if (!queue_id_valid(id))
		return error_set(err, EX_SOFTWARE,
				 "queue_commit: bad queue id");
	if (make_path(from, dir, "tmp", id, err) != 0 ||
	    make_path(to, dir, "new", id, err) != 0 ||
	    make_path(newdir, dir, "new", NULL, err) != 0)
		return -1;
	if (fsync(fd) != 0)
		return io_error(err, "sync", id);
	if (ensure_subdir(dir, "new", err) != 0)
		return -1;
	if (rename(from, to) != 0)
		return error_set(err, errno == ENOSPC ? EX_IOERR : EX_CANTCREAT,
				 "cannot move %s into %s: %s", from, newdir,
				 strerror(errno));
	if (fsync_dir(newdir, err) != 0) {
		/* Not durable: the caller will say "not queued", so undo. */
		(void)rename(to, from);
		return -1;
	}
	/* From here on the mail is safe. */
	return 0;
}

/* Drop tmp/ID (delivered at once, or refused). */
void queue_remove_tmp(const char *dir, const char *id)
{
	char path[PATH_MAX];

	if (!queue_id_valid(id) || make_path(path, dir, "tmp", id, NULL) != 0)
		return;
	unlink(path);
}

/* err: the file lc names is damaged, and why. */
static int corrupt(const struct loadctx *lc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int corrupt(const struct loadctx *lc, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return error_set(lc->err, EX_DATAERR, "queue file %s is damaged: %s",
			 lc->path, why);
}

/* Whether c is a decimal digit. */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* s, a decimal in [min, max] and nothing else, into *out; 0 or -1. */
static int parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!is_digit(s[0]) && !(s[0] == '-' && is_digit(s[1])))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The decimal in the w octets at p (w < 32) into *out; 0 or -1. */
static int parse_fixed(const char *p, size_t w, long long min, long long max,
		       long long *out)
{
	char tmp[32];

	memcpy(tmp, p, w);
	tmp[w] = '\0';
	return parse_ll(tmp, min, max, out);
}

/* The n lower-case hex digits at p (n <= 16) into *out; 0 or -1. */
static int parse_hex(const char *p, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;

	for (size_t i = 0; i < n; i++) {
		const char *d = strchr("0123456789abcdef", p[i]);

		if (p[i] == '\0' || d == NULL)
			return -1;
		v = v << 4 | (unsigned long long)(d - "0123456789abcdef");
	}
	*out = v;
	return 0;
}

/* Append a copy of addr to env's recipients; the array's capacity is the
 * next power of two, so it grows when the count is one.  0 or -2. */
static int push_rcpt(struct queue_envelope *env, const char *addr)
{
	size_t n = env->nrcpts;
	char *copy;

	if ((n & (n - 1)) == 0) {
		char **grown =
		    realloc(env->rcpts, (n ? 2 * n : 1) * sizeof *grown);

		if (grown == NULL)
			return -2;
		env->rcpts = grown;
	}
	if ((copy = strdup(addr)) == NULL)
		return -2;
	env->rcpts[env->nrcpts++] = copy;
	return 0;
}

/* Store value v of key k into env: 0, -1 malformed, -2 out of memory. */
static int set_key(const struct key *k, const char *v,
		   struct queue_envelope *env)
{
	long long n;

	switch (k->kind) {
	case K_ID:
		if (!queue_id_valid(v))
			return -1;
		memcpy(env->id, v, QUEUE_ID_LEN + 1);
		return 0;
	case K_LL:
		return parse_ll(v, LLONG_MIN, LLONG_MAX, AT(env, k, long long));
	case K_OFF:
		if (parse_ll(v, 0, LLONG_MAX, &n) != 0)
			return -1;
		*AT(env, k, off_t) = (off_t)n;
		return 0;
	case K_STR:
		return (*AT(env, k, char *) = strdup(v)) != NULL ? 0 : -2;
	case K_BOOL:
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
			return -1;
		*AT(env, k, bool) = v[0] == '1';
		return 0;
	case K_INT:
		if (parse_ll(v, INT_MIN, INT_MAX, &n) != 0)
			return -1;
		*AT(env, k, int) = (int)n;
		return 0;
	case K_RCPT:
		return push_rcpt(env, v);
	}
	return -1;
}

/* The key named name, or NULL. */
static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Line no, "key value", into env; *seen: bits of the keys had so far. */
static int parse_line(char *line, unsigned no, struct queue_envelope *env,
		      unsigned *seen, const struct loadctx *lc)
{
	char *sp = strchr(line, ' '), shown[64];
	const struct key *k;
	unsigned bit;
	int rc;

	if (sp == NULL)
		return corrupt(lc, "line %u is not \"key value\"", no);
	*sp = '\0';
	error_printable(shown, sizeof shown, line, strlen(line));
	if ((k = find_key(line)) == NULL)
		return corrupt(lc, "unknown key \"%s\" on line %u", shown, no);
	bit = 1u << (k - keys);
	if (k->kind != K_RCPT && (*seen & bit))
		return corrupt(lc, "duplicate key \"%s\" on line %u", shown,
			       no);
	*seen |= bit;
	if (strchr(sp + 1, '\r') != NULL)
		return corrupt(lc, "a CR in line %u", no);
	if ((rc = set_key(k, sp + 1, env)) == -2)
		return error_set(lc->err, EX_OSERR, "out of memory loading %s",
				 lc->path);
	if (rc != 0)
		return corrupt(lc, "bad value for \"%s\" on line %u", shown,
			       no);
	return 0;
}

/* The envelope text buf[0..len) (NUL-terminated, none inside) into env. */
static int parse_envelope(char *buf, size_t len, struct queue_envelope *env,
			  const struct loadctx *lc)
{
	char *line, *nl, shown[64];
	unsigned no = 0, seen = 0;
	bool ended = false;

	if (len == 0 || buf[len - 1] != '\n')
		return corrupt(lc, "its envelope is truncated (no end marker)");
	for (line = buf; line < buf + len; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		if (ended)
			return corrupt(lc, "data after the end marker");
		if (++no == 1 && strcmp(line, VERSION_LINE) != 0) {
			error_printable(shown, sizeof shown, line,
					strlen(line));
			return corrupt(lc,
				       "unknown format or version \"%s\" "
				       "(expected \"" VERSION_LINE "\")",
				       shown);
		}
		if (no == 1)
			continue;
		if (strcmp(line, "end") == 0)
			ended = true;
		else if (parse_line(line, no, env, &seen, lc) != 0)
			return -1;
	}
	if (!ended)
		return corrupt(lc, "its envelope is truncated (no end marker)");
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].required && !(seen & 1u << i))
			return corrupt(lc, "missing key \"%s\"", keys[i].name);
	return 0;
}

/* Whether the loaded env agrees with the file's name and layout. */
static int check_loaded(const struct queue_envelope *env, off_t env_off,
			const struct loadctx *lc)
{
	if (strcmp(env->id, lc->id) != 0)
		return corrupt(lc, "it says its id is %s (renamed by hand?)",
			       env->id);
	if (env->size != env_off)
		return corrupt(lc,
			       "its size %lld does not match the envelope's "
			       "offset %lld",
			       (long long)env->size, (long long)env_off);
	if (env->header_len > env->size)
		return corrupt(lc, "its header-len %lld is over its size %lld",
			       (long long)env->header_len,
			       (long long)env->size);
	return 0;
}

/* Read and parse the envelope region [eoff, soff) into env. */
static int load_envelope(int fd, off_t eoff, off_t soff,
			 struct queue_envelope *env, const struct loadctx *lc)
{
	size_t len = (size_t)(soff - eoff);
	char *buf = malloc(len + 1);
	ssize_t got;
	int rc;

	if (buf == NULL)
		return error_set(lc->err, EX_OSERR, "out of memory loading %s",
				 lc->path);
	if ((got = pread_all(fd, buf, len, eoff)) < 0)
		rc = error_set(lc->err, EX_IOERR, "cannot read %s: %s",
			       lc->path, strerror(errno));
	else if ((size_t)got < len)
		rc = corrupt(lc, "it is truncated");
	else if (memchr(buf, '\0', len) != NULL)
		rc = corrupt(lc, "its envelope contains a NUL octet");
	else {
		buf[len] = '\0';
		rc = parse_envelope(buf, len, env, lc);
	}
	free(buf);
	return rc != 0 ? rc : check_loaded(env, eoff, lc);
}

/* Read the trailer of a file of size octets: the two offsets, checked. */
static int read_trailer(int fd, off_t size, off_t *eoff, off_t *soff,
			const struct loadctx *lc)
{
	char buf[TRAILER_LEN], want[TRAILER_LEN + 1];
	unsigned long long e, s;
	ssize_t got = 0;

	if (size >= TRAILER_LEN &&
	    (got = pread_all(fd, buf, TRAILER_LEN, size - TRAILER_LEN)) < 0)
		return error_set(lc->err, EX_IOERR, "cannot read %s: %s",
				 lc->path, strerror(errno));
	if (got != TRAILER_LEN || parse_hex(buf + TRAILER_ENV, 16, &e) != 0 ||
	    parse_hex(buf + TRAILER_STATE, 16, &s) != 0)
		return corrupt(lc, "no valid trailer at its end (truncated?)");
	render_trailer(want, e, s);
	if (memcmp(buf, want, TRAILER_LEN) != 0)
		return corrupt(lc, "no valid trailer at its end (truncated?)");
	if (e >= s || s >= (unsigned long long)(size - TRAILER_LEN))
		return corrupt(lc,
			       "its trailer points outside it (envelope %llu, "
			       "state %llu, size %lld)",
			       e, s, (long long)size);
	if (s - e > (unsigned long long)ENVELOPE_MAX)
		return corrupt(lc, "its envelope is %llu octets, over %lld",
			       s - e, ENVELOPE_MAX);
	*eoff = (off_t)e;
	*soff = (off_t)s;
	return 0;
}

/* Whether the sum of the state record rec[0..len) is right. */
static bool sum_ok(const char *rec, size_t len)
{
	unsigned long long sum;

	return parse_hex(rec + SUM_OFF, 8, &sum) == 0 &&
	       sum == state_sum(rec, len);
}

/* The record rec (its sum right) for n recipients into st; 0 or -1. */
static int parse_state(const char *rec, size_t n, struct queue_state *st)
{
	char head[HEAD_LEN + 1];
	long long att, next, last;
	unsigned long long sum;
	size_t elen = QUEUE_ERROR_MAX;
	const char *text = rec + ERROR_OFF + KEY_LEN;

	if (parse_fixed(rec + ATT_OFF, 10, 0, UINT_MAX, &att) != 0 ||
	    parse_fixed(rec + NEXT_OFF, 20, LLONG_MIN, LLONG_MAX, &next) ||
	    parse_fixed(rec + LAST_OFF, 20, LLONG_MIN, LLONG_MAX, &last) ||
	    parse_hex(rec + SUM_OFF, 8, &sum) != 0)
		return -1;
	render_head(head, (unsigned)att, next, last, (uint32_t)sum);
	if (memcmp(head, rec, HEAD_LEN) != 0 ||
	    memcmp(rec + ERROR_OFF, ERROR_KEY, KEY_LEN) != 0 ||
	    rec[RCPTS_OFF - 1] != '\n' ||
	    memcmp(rec + RCPTS_OFF, RCPTS_KEY, KEY_LEN) != 0 ||
	    rec[STATE_LEN(n) - 1] != '\n')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!rs_valid(rec[RCPTS_OFF + KEY_LEN + i]))
			return -1;
	st->attempts = (unsigned)att;
	st->next = next;
	st->last = last;
	while (elen > 0 && text[elen - 1] == ' ')
		elen--;
	elen = elen < QUEUE_ERROR_MAX ? elen : QUEUE_ERROR_MAX - 1;
	for (size_t i = 0; i < elen; i++)
		st->error[i] = printable(text[i]);
	st->error[elen] = '\0';
	memcpy(st->rcpt_state, rec + RCPTS_OFF + KEY_LEN, n);
	return 0;
}

/* A torn state record: start over rather than lose the message. */
static void reset_state(struct queue_state *st, size_t n)
{
	st->attempts = 0;
	st->next = 0;
	st->last = 0;
	snprintf(st->error, sizeof st->error, "%s", DAMAGED);
	memset(st->rcpt_state, RS_PENDING, n);
}

/* Read the state region [off, end) for n recipients into st. */
static int load_state(int fd, off_t off, off_t end, size_t n,
		      struct queue_state *st, const struct loadctx *lc)
{
	size_t len = STATE_LEN(n);
	char *rec;
	ssize_t got;
	int rc = 0;

	if (end - off != (off_t)len)
		return corrupt(lc,
			       "its state record (%lld octets) does not fit "
			       "its %zu recipients (%zu octets)",
			       (long long)(end - off), n, len);
	rec = malloc(len);
	st->rcpt_state = calloc(n + 1, 1);
	if (rec == NULL || st->rcpt_state == NULL)
		rc = error_set(lc->err, EX_OSERR, "out of memory loading %s",
			       lc->path);
	else if ((got = pread_all(fd, rec, len, off)) < 0)
		rc = error_set(lc->err, EX_IOERR, "cannot read %s: %s",
			       lc->path, strerror(errno));
	else if ((size_t)got != len)
		rc = corrupt(lc, "it is truncated");
	else if (!sum_ok(rec, len))
		reset_state(st, n);
	else if (parse_state(rec, n, st) != 0)
		rc = corrupt(lc, "its state record is malformed");
	free(rec);
	return rc;
}

/* Load the open file e->fd: trailer, envelope, state. */
static int load(struct queue_entry *e, const struct loadctx *lc)
{
	struct stat sb;
	off_t eoff = 0, soff = 0;

	if (fstat(e->fd, &sb) != 0)
		return error_set(lc->err, EX_IOERR, "cannot read %s: %s",
				 lc->path, strerror(errno));
	if (read_trailer(e->fd, sb.st_size, &eoff, &soff, lc) != 0 ||
	    load_envelope(e->fd, eoff, soff, &e->env, lc) != 0 ||
	    load_state(e->fd, soff, sb.st_size - TRAILER_LEN, e->env.nrcpts,
		       &e->st, lc) != 0)
		return -1;
	e->state_off = soff;
	return 0;
}

/* err for a failed open of the file lc names (errno e). */
static int open_error(const struct loadctx *lc, int e)
{
	if (e == ENOENT)
		return error_set(lc->err, EX_NOINPUT,
				 "no queued message %s (%s does not exist)",
				 lc->id, lc->path);
	if (e == ELOOP)
		return error_set(lc->err, EX_DATAERR,
				 "%s is a symbolic link, not a queue file",
				 lc->path);
	return error_set(lc->err, e == EACCES ? EX_NOPERM : EX_IOERR,
			 "cannot open %s: %s", lc->path, strerror(e));
}

/* Open lc's file, a checked id in dir/sub, relative to the directory and
 * without following a symlink (O_NONBLOCK: a FIFO must not hang us); the
 * fd of a regular file, or -1 (err). */
static int open_in(const struct loadctx *lc, const char *dir, const char *sub,
		   int flags)
{
	char dpath[PATH_MAX];
	struct stat sb;
	int dfd, fd, saved;

	if (make_path(dpath, dir, sub, NULL, lc->err) != 0)
		return -1;
	dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = dfd < 0 ? -1
		     : openat(dfd, lc->id,
			      flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
				  O_NOCTTY);
	saved = errno;
	if (dfd >= 0)
		close(dfd);
	if (fd < 0)
		return open_error(lc, saved);
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return error_set(lc->err, EX_DATAERR,
				 "%s is not a regular file, not a queue file",
				 lc->path);
	}
	return fd;
}

/* Lock fd without waiting: 0, 1 when someone else holds it, -1 (err),
 * also when the file left its place before we had the lock (another
 * runner finished it). */
static int lock_entry(int fd, const struct loadctx *lc)
{
	struct stat a, b;

	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK
			   ? 1
			   : error_set(lc->err, EX_OSERR, "cannot lock %s: %s",
				       lc->path, strerror(errno));
	if (fstat(fd, &a) != 0 || lstat(lc->path, &b) != 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return error_set(lc->err, EX_NOINPUT,
				 "no queued message %s (%s is gone: finished "
				 "by another runner)",
				 lc->id, lc->path);
	return 0;
}

/* Check the id, open without following links, lock, then load. */
int queue_open(const char *dir, const char *sub, const char *id, bool lock,
	       struct queue_entry *e, struct sm_error *err)
{
	struct loadctx lc = {.id = id, .err = err};
	char shown[64];
	int rc;

	memset(e, 0, sizeof *e);
	e->fd = -1;
	error_clear(err);
	if (!queue_id_valid(id)) {
		error_printable(shown, sizeof shown, id ? id : "",
				id ? strnlen(id, sizeof shown) : 0);
		return error_set(err, EX_DATAERR,
				 "\"%s\" is not a queue id (20 hex digits, as "
				 "mailq shows them)",
				 shown);
	}
	if (!sub_valid(sub))
		return error_set(err, EX_SOFTWARE, "queue_open: bad directory");
	if (make_path(lc.path, dir, sub, id, err) != 0 ||
	    (e->fd = open_in(&lc, dir, sub, lock ? O_RDWR : O_RDONLY)) < 0)
		return -1;
	if (lock && (rc = lock_entry(e->fd, &lc)) != 0) {
		close(e->fd);
		e->fd = -1;
		return rc;
	}
	e->locked = lock;
	if (load(e, &lc) == 0)
		return 0;
	queue_close(e);
	return -1;
}

/* err: fn was called on an entry that is not locked (a caller's bug). */
static int not_locked(struct sm_error *err, const char *fn,
		      const struct queue_entry *e)
{
	return error_set(err, EX_SOFTWARE, "%s: queue entry %s is not locked",
			 fn, e->env.id);
}

/* The state record rewritten in place: same size, one pwrite. */
int queue_save_state(struct queue_entry *e, struct sm_error *err)
{
	char *rec;
	int rc = 0;

	if (!e->locked || e->fd < 0)
		return not_locked(err, "queue_save_state", e);
	if ((rec = render_state(&e->st, e->env.nrcpts, err)) == NULL)
		return -1;
	if (pwrite_all(e->fd, rec, STATE_LEN(e->env.nrcpts), e->state_off) !=
		0 ||
	    fdatasync(e->fd) != 0)
		rc = io_error(err, "update", e->env.id);
	free(rec);
	return rc;
}

/* Delivered: unlink new/ID (a lost unlink means a duplicate, not a loss). */
int queue_remove(const char *dir, struct queue_entry *e, struct sm_error *err)
{
	char path[PATH_MAX];

	if (!e->locked || e->fd < 0)
		return not_locked(err, "queue_remove", e);
	if (make_path(path, dir, "new", e->env.id, err) != 0)
		return -1;
	if (unlink(path) != 0)
		return error_set(err, EX_IOERR, "cannot remove %s: %s", path,
				 strerror(errno));
	return 0;
}

/* Given up: rename into failed/, both directories made durable. */
int queue_move_failed(const char *dir, struct queue_entry *e,
		      struct sm_error *err)
{
	char from[PATH_MAX], to[PATH_MAX], fdir[PATH_MAX], ndir[PATH_MAX];

	if (!e->locked || e->fd < 0)
		return not_locked(err, "queue_move_failed", e);
	if (make_path(from, dir, "new", e->env.id, err) != 0 ||
	    make_path(to, dir, "failed", e->env.id, err) != 0 ||
	    make_path(fdir, dir, "failed", NULL, err) != 0 ||
	    make_path(ndir, dir, "new", NULL, err) != 0 ||
	    ensure_subdir(dir, "failed", err) != 0)
		return -1;
	if (rename(from, to) != 0)
		return error_set(err, EX_CANTCREAT, "cannot move %s to %s: %s",
				 from, fdir, strerror(errno));
	if (fsync_dir(fdir, err) != 0 || fsync_dir(ndir, err) != 0)
		return -1;
	return 0;
}

/* Close (which drops the lock), free, and leave an empty entry (fd -1). */
void queue_close(struct queue_entry *e)
{
	if (e == NULL)
		return;
	if (e->fd >= 0)
		close(e->fd);
	queue_envelope_free(&e->env);
	queue_state_free(&e->st);
	memset(e, 0, sizeof *e);
	e->fd = -1;
}

/* Whether directory entry de of d is a regular file (not a symlink). */
static bool is_regular(DIR *d, const struct dirent *de)
{
	struct stat sb;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	return fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(sb.st_mode);
}

/* Order of ids: by name, which is by time. */
static int cmp_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append a copy of name to *ids (*n, capacity *cap); 0 or -1. */
static int push_id(char ***ids, size_t *n, size_t *cap, const char *name)
{
	if (*n == *cap) {
		size_t want = *cap ? 2 * *cap : 16;
		char **grown = realloc(*ids, want * sizeof *grown);

		if (grown == NULL)
			return -1;
		*ids = grown;
		*cap = want;
	}
	if (((*ids)[*n] = strdup(name)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* The valid ids of regular files in the open directory d, unsorted. */
static int read_ids(DIR *d, const char *path, char ***ids, size_t *n,
		    struct sm_error *err)
{
	struct dirent *de;
	size_t cap = 0;

	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (!queue_id_valid(de->d_name) || !is_regular(d, de))
			continue;
		if (push_id(ids, n, &cap, de->d_name) != 0)
			return error_set(err, EX_OSERR,
					 "out of memory listing %s", path);
	}
	if (errno != 0)
		return error_set(err, EX_IOERR, "cannot list %s: %s", path,
				 strerror(errno));
	return 0;
}

/* The valid ids of regular files in dir/sub, oldest first. */
int queue_list(const char *dir, const char *sub, char ***ids, size_t *n,
	       struct sm_error *err)
{
	char path[PATH_MAX];
	DIR *d;
	int rc;

	*ids = NULL;
	*n = 0;
	if (!sub_valid(sub))
		return error_set(err, EX_SOFTWARE, "queue_list: bad directory");
	if (make_path(path, dir, sub, NULL, err) != 0)
		return -1;
	if ((d = opendir(path)) == NULL)
		return errno == ENOENT
			   ? 0
			   : error_set(
				 err, errno == EACCES ? EX_NOPERM : EX_IOERR,
				 "cannot list %s: %s", path, strerror(errno));
	rc = read_ids(d, path, ids, n, err);
	closedir(d);
	if (rc != 0) {
		queue_free_list(*ids, *n);
		*ids = NULL;
		*n = 0;
		return -1;
	}
	if (*n > 1)
		qsort(*ids, *n, sizeof **ids, cmp_ids);
	return 0;
}

/* Free what queue_list() returned. */
void queue_free_list(char **ids, size_t n)
{
	if (ids == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Remove tmp file id (in directory dfd) when it was last written before
 * cutoff and nobody holds its lock; whether it was removed. */
static bool reap(int dfd, const char *id, time_t cutoff)
{
	struct stat sb;
	bool gone = false;
	int fd = openat(
	    dfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return false;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_mtime <= cutoff && flock(fd, LOCK_EX | LOCK_NB) == 0)
		gone = unlinkat(dfd, id, 0) == 0;
	close(fd);
	return gone;
}

/* Remove the debris of senders that died before their commit. */
int queue_clean_tmp(const char *dir)
{
	char path[PATH_MAX], **ids;
	time_t cutoff = time(NULL) - QUEUE_STALE_TMP;
	size_t n;
	int dfd, removed = 0;

	if (queue_list(dir, "tmp", &ids, &n, NULL) != 0)
		return 0;
	if (make_path(path, dir, "tmp", NULL, NULL) == 0 &&
	    (dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		for (size_t i = 0; i < n; i++)
			removed += reap(dfd, ids[i], cutoff);
		close(dfd);
	}
	queue_free_list(ids, n);
	return removed;
}

/* Free env's strings and recipients and zero it. */
void queue_envelope_free(struct queue_envelope *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].kind == K_STR)
			free(*AT(env, &keys[i], char *));
	for (size_t i = 0; i < env->nrcpts; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	memset(env, 0, sizeof *env);
}

/* Free st's recipient states and zero it. */
void queue_state_free(struct queue_state *st)
{
	if (st == NULL)
		return;
	free(st->rcpt_state);
	memset(st, 0, sizeof *st);
}
