/*
 * queue.h - the spool: queue ids and message files under queue.dir
 * (DESIGN §5).  Layout: tmp/ (being written), new/ (waiting), failed/.
 */
#ifndef SWITCHMAIL_QUEUE_H
#define SWITCHMAIL_QUEUE_H

#include <stdbool.h>

#include "errors.h"

#define QUEUE_ID_LEN 20 /* hex: 9 seconds, 5 microseconds, 6 random */

/* A new unique id (NUL-terminated) into id. */
void queue_id_new(char id[QUEUE_ID_LEN + 1]);

/* Whether id is a well-formed queue id (checked before it becomes a path:
 * ids come back from argv and readdir()). */
bool queue_id_valid(const char *id);

/* Create tmp/ID in dir, O_EXCL|O_NOFOLLOW, mode 0600.  Returns the fd, or
 * -1 with err filled (EX_CANTCREAT naming the directory and the fix). */
int queue_create_tmp(const char *dir, const char *id, struct sm_error *err);

/* Remove tmp/ID (after delivery, or when the message was refused). */
void queue_remove_tmp(const char *dir, const char *id);

#endif
