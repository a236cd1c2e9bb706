/*
 * A program whose failure points test_binary reads back from its file: it
 * is built, never run by the tests. Each kind of call below is listed, or
 * not, for a reason the test states. The points of points_no_sites.c are
 * linked in too.
 */
#include <stdbool.h>
#include <stdio.h>

#include "wrench.h"

bool points_never_called(void);
bool points_invalid_names(void);
bool points_no_sites(void);

/* Inlined twice, recorded once: one entry. */
static inline bool cache_full(void)
{
	return wrench_is_active("cache", "full");
}

/* Never called, but in the binary: listed (even when --gc-sections drops
 * the function, as the record is kept). */
bool points_never_called(void)
{
	return wrench_is_active("disk", "enospc");
}

/* Names of 4096 bytes are read; longer ones are refused. */
#define X16   "xxxxxxxxxxxxxxxx"
#define X256  X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
#define X4096 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256 X256
bool points_long_names(void);
bool points_long_names(void)
{
	return wrench_is_active("long", X4096) || wrench_is_active("longer", X4096 "x");
}

/* Names no trigger file can match: not listed. */
bool points_invalid_names(void)
{
	return wrench_is_active("bad/category", "x") || wrench_is_active("net", "white space") ||
	       wrench_is_active("", "empty-category");
}

int main(int argc, char **argv)
{
	char category[64], feature[64];
	int failed = 0;

	/* Names made at run time: not listed. */
	snprintf(category, sizeof(category), "%s", argc > 1 ? argv[1] : "runtime");
	snprintf(feature, sizeof(feature), "%s", argc > 2 ? argv[2] : "runtime-feature");
	failed += wrench_is_active(category, "runtime-feature");
	failed += wrench_is_active("runtime", feature);
	/* The same point at two call sites: one entry. */
	failed += wrench_is_active("net", "connect");
	failed += wrench_is_active("net", "connect");
	failed += wrench_is_active("net", "accept");
	failed += cache_full();
	failed += cache_full();
	failed += points_no_sites();
	failed += points_long_names();
	return failed;
}
