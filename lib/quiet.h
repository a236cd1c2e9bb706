/*
 * Telling, with no lock and no system call, that nothing changed: the few
 * words that the ring (ring.c), change detection (watch.c) and the view
 * (view.c) publish for the hot path, and the inline checks that read them.
 *
 * They are inline because a quiet failure point should cost what checking
 * a flag costs: a call from one file of the library into another for each
 * of these checks would cost more than the checks themselves. The files
 * that own the words are the only ones that write them.
 */
#ifndef WRENCH_QUIET_H
#define WRENCH_QUIET_H

#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"

/*
 * The words every quiet call reads, in one cache line (lib/quiet.c): the
 * ring's generation and the addresses of its memory's words (written by
 * ring.c), the time a retry of what could not be watched is due (watch.c),
 * and the serial of the current view (view.c). Each is written only by
 * its own file.
 */
struct wrench__hot {
	/* Odd: no usable ring, or its owner is draining it (it starts odd). */
	_Atomic uint64_t ring_gen;
	/* The words of the ring's memory that tell of a flag or a completion. */
	_Atomic(const unsigned *) kflags, khead, ktail;
	_Atomic uint64_t retry_at_ms; /* 0: no retry due */
	_Atomic uint64_t view_now;    /* 0 while there is no view */
} __attribute__((aligned(64)));
extern struct wrench__hot wrench__hot;

/*
 * A word of the ring's memory, as the hot path reads it. The kernel writes
 * that memory, and ring.c's retire() may replace it by zeroes under the
 * reader (the generation checks around the read tell it then not to trust
 * the word): neither is anything ThreadSanitizer can model, as it sees no
 * kernel write and takes an mmap() for a plain write. So the word is read
 * with a volatile load, which this function leaves uninstrumented (an
 * atomic one would still be), and the fence gives it the acquire ordering
 * an atomic load would have: on x86 it costs nothing, on arm64 what ldar
 * does.
 */
__attribute__((no_sanitize("thread"))) static inline unsigned
wrench__ring_word(const unsigned *_Atomic *where)
{
	unsigned word =
	        *(const volatile unsigned *)atomic_load_explicit(where, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return word;
}

/* True when the ring shows that no change came in since the view was made
 * current. Read the view only after it answered true. False whenever in
 * doubt: no ring, a drain in progress, a flag or a completion pending. */
static inline bool wrench__ring_quiet(void)
{
	uint64_t g = atomic_load_explicit(&wrench__hot.ring_gen, memory_order_acquire);

	if (g & 1)
		return false;
	unsigned flags = wrench__ring_word(&wrench__hot.kflags);
	unsigned tail = wrench__ring_word(&wrench__hot.ktail);
	unsigned head = wrench__ring_word(&wrench__hot.khead);
	/* The loads above may not move after this one (acquire), and what
	 * the caller reads next may not move before it. */
	return !(flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) && tail == head &&
	       atomic_load_explicit(&wrench__hot.ring_gen, memory_order_acquire) == g;
}

/* ---- watch.c ------------------------------------------------------------ */

/* Relaxed mode's words, read only where there is no ring. */
struct wrench__watch_hot {
	_Atomic unsigned recheck_ms;    /* relaxed mode's period; 0: strict */
	_Atomic uint64_t next_check_ms; /* relaxed mode: when to look again */
};
extern struct wrench__watch_hot wrench__watch_hot;

/* Applies what change detection holds: the lock, and a read() of inotify
 * or a drain of the ring (watch.c). */
void wrench__watch_look(void);

/*
 * Makes the view current: applies the changes reported since the last
 * look. Either mode makes no system call, and reads no clock, while the
 * ring shows nothing new, until a retry of what could not be watched is
 * due: a quiet ring says that nothing watched changed, not that all is
 * watched. Without a ring, strict mode looks at every call, and relaxed
 * mode once per period.
 */
static inline bool wrench__watch_quiet(void);
static inline void wrench__watch_refresh(void)
{
	if (!wrench__watch_quiet())
		wrench__watch_look();
}

/* ---- view.c and query.c ----------------------------------------------- */

struct wrench__snapshot;

/*
 * What a caller remembers of a point between calls (a call site's record,
 * or a thread's memory of a name): what one view answered, under a
 * seqlock (query.c), and the serial of a view in which no line names the
 * point. Serials are never reused, so a record of an older view simply
 * stops matching.
 */
struct wrench__recall {
	_Atomic uint64_t quiet; /* a view in which nothing names the point; 0: none */
	_Atomic uint64_t seq;   /* odd while a writer changes the three below */
	_Atomic uint64_t serial;
	struct wrench__snapshot *_Atomic snapshot; /* NULL: no usable file */
	_Atomic int32_t first;                     /* the first line naming it; -1: none */
};

/* Nothing to look at: the ring quiet and no retry due, or in relaxed mode
 * a period not yet over. No lock: a signal handler may ask. */
static inline bool wrench__watch_quiet(void)
{
	if (wrench__ring_quiet()) {
		uint64_t due = atomic_load_explicit(&wrench__hot.retry_at_ms, memory_order_relaxed);
		return __builtin_expect(!due, 1) || wrench__coarse_ms() < due;
	}
	return atomic_load_explicit(&wrench__watch_hot.recheck_ms, memory_order_relaxed) &&
	       wrench__coarse_ms() <
	               atomic_load_explicit(&wrench__watch_hot.next_check_ms, memory_order_relaxed);
}

/* Whether R says that the point is quiet now: no line names it in the
 * current view, and nothing came in since that view was made current. */
static inline bool wrench__recall_quiet(struct wrench__recall *r)
{
	uint64_t quiet = atomic_load_explicit(&r->quiet, memory_order_acquire);

	return quiet && wrench__watch_quiet() &&
	       quiet == atomic_load_explicit(&wrench__hot.view_now, memory_order_acquire);
}

#endif /* WRENCH_QUIET_H */
