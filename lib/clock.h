/*
 * The coarse clocks, read through the vDSO: no system call, a few
 * nanoseconds, and a tick of a few milliseconds, which is all the back-offs,
 * rate limits, fire records and log periods of the library need. A slow=
 * sleep keeps the precise clock (eval.c).
 *
 * Static inline, in a header of their own: the hot path reads one
 * (quiet.h), and a call into another file would cost it more than the
 * read.
 */
#ifndef WRENCH_CLOCK_H
#define WRENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC_COARSE in ms: for intervals, which a change of the
 * system's time must not stretch or cut short. */
static inline uint64_t wrench__coarse_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* CLOCK_REALTIME_COARSE in ns: for instants that mean a date (until=, a
 * line's last fire, which other processes read). */
static inline int64_t wrench__coarse_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif /* WRENCH_CLOCK_H */
