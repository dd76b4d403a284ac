/*
 * queue.h - the durable spool under queue.dir (DESIGN §5).
 *
 * Layout: tmp/ (being written by a sender), new/ (waiting), failed/ (given
 * up, kept with the reason).  One file per message, named by its queue id:
 * the canonical message first (offset 0, exactly what message_read()
 * wrote), then the envelope (immutable text records, format version and an
 * end marker), then the state (fixed size, rewritten in place: attempts,
 * next attempt, last error, one byte per recipient), then a fixed trailer
 * giving the offsets of the two.  The format is documented at the top of
 * queue.c.  A queue file is locked (flock, exclusive) by whoever works on
 * it: the sender from creation until it exits, a runner during an attempt.
 */
#ifndef SWITCHMAIL_QUEUE_H
#define SWITCHMAIL_QUEUE_H

#include <stdbool.h>
#include <sys/types.h>

#include "errors.h"

#define QUEUE_ID_LEN 20    /* hex: 9 seconds, 5 microseconds, 6 random */
#define QUEUE_ERROR_MAX 512 /* octets of the last error kept in the state */
#define QUEUE_STALE_TMP 3600 /* seconds before an unlocked tmp/ file is
				debris from a crashed sender */

/* Per-recipient state, one byte each in the state record. */
#define RS_PENDING '-'
#define RS_DELIVERED 'D'
#define RS_FAILED 'F'

/* What the sender said, fixed at submission. */
struct queue_envelope {
	char id[QUEUE_ID_LEN + 1];
	long long created;     /* unix time */
	off_t size;            /* octets of the message at offset 0 */
	off_t header_len;      /* octets of its header block */
	char *caller_sender;   /* -f as given (may be ""), or NULL */
	char *from_addr;       /* the From: address, or NULL */
	char *from_display;    /* its display name, or NULL */
	bool has_reply_to;
	char *message_id;      /* or NULL */
	bool eight_bit;
	int body;              /* enum body_type */
	int ret;               /* enum dsn_ret */
	int notify;            /* NOTIFY_* bits */
	char *envid;           /* or NULL */
	bool is_notice;        /* a failure notice: never notified about */
	char **rcpts;          /* nrcpts addresses */
	size_t nrcpts;
};

/* What has happened to it since. */
struct queue_state {
	unsigned attempts;
	long long next;        /* unix time of the next attempt */
	long long last;        /* unix time of the last attempt, 0: never */
	char error[QUEUE_ERROR_MAX]; /* last error, printable, "" if none */
	char *rcpt_state;      /* nrcpts bytes of RS_*; owned */
};

/* An open queue file with its envelope and state loaded. */
struct queue_entry {
	int fd;
	bool locked;
	struct queue_envelope env;
	struct queue_state st;
	off_t state_off;       /* where the state record starts */
};

/* A new unique id (NUL-terminated) into id. */
void queue_id_new(char id[QUEUE_ID_LEN + 1]);

/* Whether id is a well-formed queue id (ids come back from argv and from
 * readdir() and are checked before they become a path). */
bool queue_id_valid(const char *id);

/* Create dir/tmp/ID, O_EXCL|O_NOFOLLOW, mode 0600, and lock it.  Creates
 * dir/tmp if missing.  Returns the fd, or -1 with err filled (EX_CANTCREAT
 * naming the directory and the fix; EX_IOERR when the disk is full). */
int queue_create_tmp(const char *dir, const char *id, struct sm_error *err);

/* Append envelope, state and trailer after the message (at env->size,
 * which must be the file's current size).  Returns 0 or -1 (err). */
int queue_write_envelope(int fd, const struct queue_envelope *env,
			 const struct queue_state *st, struct sm_error *err);

/* Make a tmp/ file durable and waiting: fsync it, rename tmp/ID to new/ID,
 * fsync new/.  The lock stays held.  Returns 0 or -1 (err, EX_IOERR or
 * EX_CANTCREAT): then the message is not queued. */
int queue_commit(const char *dir, const char *id, int fd,
		 struct sm_error *err);

/* Remove tmp/ID (delivered at once, or refused). */
void queue_remove_tmp(const char *dir, const char *id);

/* Open sub/ID ("new" or "failed") and load it.  With lock, take the
 * exclusive lock without waiting.  Returns 0; 1 when someone else holds
 * the lock (e is then empty); -1 with err filled when the file is missing
 * or corrupt (unknown version, unknown or duplicate key, truncated). */
int queue_open(const char *dir, const char *sub, const char *id, bool lock,
	       struct queue_entry *e, struct sm_error *err);

/* Rewrite e's state record in place and fdatasync.  Returns 0 or -1. */
int queue_save_state(struct queue_entry *e, struct sm_error *err);

/* Delivered (or finished): remove new/ID.  Returns 0 or -1. */
int queue_remove(const char *dir, struct queue_entry *e,
		 struct sm_error *err);

/* Given up: rename new/ID to failed/ID (creating failed/), fsync both
 * directories.  Returns 0 or -1. */
int queue_move_failed(const char *dir, struct queue_entry *e,
		      struct sm_error *err);

/* Release the lock, close, free.  Accepts an empty entry. */
void queue_close(struct queue_entry *e);

/* The valid ids in dir/sub, sorted (oldest first).  *ids is a malloc'ed
 * array of malloc'ed strings (queue_free_list).  A missing sub/ is an
 * empty list.  Returns 0 or -1 (err). */
int queue_list(const char *dir, const char *sub, char ***ids, size_t *n,
	       struct sm_error *err);
void queue_free_list(char **ids, size_t n);

/* Remove tmp/ files older than QUEUE_STALE_TMP seconds whose lock is free
 * (their sender died before saying 0: the caller was never told the mail
 * was accepted).  Returns how many were removed. */
int queue_clean_tmp(const char *dir);

/* Free what env and st own (not the structs).  Accept NULL. */
void queue_envelope_free(struct queue_envelope *env);
void queue_state_free(struct queue_state *st);

#endif
