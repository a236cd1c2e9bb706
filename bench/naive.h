#ifndef WRENCH_BENCH_NAIVE_H
#define WRENCH_BENCH_NAIVE_H

#include <stdbool.h>

/* Juju's per-call algorithm: stat, stat, open, read, scan. */
bool naive_is_active(const char *dir, const char *category, const char *feature);

#endif
