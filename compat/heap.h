/*
 * heap.h - memory set-up for a short-lived process that touches a few
 * hundred KiB of fresh heap (OpenSSL 3's method tables, libESMTP, our own
 * buffers) and then exits.
 *
 * Every fresh page costs a page fault on first touch; on virtual machines a
 * fault is some 10 us, so the 140 heap pages of one TLS handshake cost more
 * CPU than the handshake's arithmetic.  heap_prefault() maps the top of the
 * heap in one madvise(MADV_POPULATE_WRITE) call instead (Linux >= 5.14;
 * elsewhere it does nothing and the pages fault in one by one as before).
 */
#ifndef SWITCHMAIL_HEAP_H
#define SWITCHMAIL_HEAP_H

#include <stddef.h>

/* Heap policy for the whole process; call before any thread starts.  One
 * malloc arena (a helper thread, such as the resolver's, shares the main
 * heap instead of mapping an arena of its own), blocks below 1 MiB from the
 * heap rather than from mmap/munmap pairs, and no trimming of the top below
 * 2 MiB. */
void heap_setup(void);

/* Make sure the free top of the main heap holds at least `bytes` and map
 * it now.  Harmless when called again or when the kernel lacks
 * MADV_POPULATE_WRITE. */
void heap_prefault(size_t bytes);

#endif
