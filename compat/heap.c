/*
 * heap.c - see heap.h.  glibc only (mallopt, mallinfo2); the calls are
 * hints: if one fails, the process runs as it would without it.
 */
#include "heap.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define HEAP_MMAP_THRESHOLD (1u << 20)
#define HEAP_TRIM_THRESHOLD (2u << 20)

void heap_setup(void)
{
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD);
}

/* Whether malloc's blocks come from [lo, hi), the break's heap. */
static bool on_brk_heap(uintptr_t lo, uintptr_t hi)
{
	void *volatile p = malloc(1);
	uintptr_t a = (uintptr_t)p;

	free(p);
	return p != NULL && a >= lo && a < hi;
}

void heap_prefault(size_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	struct mallinfo2 mi = mallinfo2();
	uintptr_t top, start;

	if (bytes >= HEAP_MMAP_THRESHOLD || page <= 0)
		return;
	if (mi.keepcost < bytes) {
		/* Grow the top chunk: a block freed next to it merges back,
		 * and the trim threshold keeps the break where it is. */
		void *volatile p = malloc(bytes); /* volatile: not elided */

		free(p);
		mi = mallinfo2();
	}
	/* keepcost is the size of the top chunk, which ends at the break
	 * when the main heap is contiguous; it is not when brk failed and
	 * malloc went on with mmap: then nothing is done. */
	top = (uintptr_t)sbrk(0);
	if (top == (uintptr_t)-1 || mi.keepcost == 0 || mi.keepcost > top ||
	    mi.arena > top || !on_brk_heap(top - mi.arena, top))
		return;
	start = (top - mi.keepcost + (uintptr_t)page - 1) &
		~((uintptr_t)page - 1);
	if (start < top)
		(void)madvise((void *)start, top - start, MADV_POPULATE_WRITE);
}
