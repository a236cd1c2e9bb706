/*
 * A program that makes up failure point names in a loop, for
 * test_points.sh: asks about N features of CATEGORY, each named at run
 * time, so that none is asked twice. The records of points reached must
 * stay bounded whatever N is.
 *
 * Usage: many_names CATEGORY N
 */
#include <stdio.h>
#include <stdlib.h>

#include "wrench.h"

int main(int argc, char **argv)
{
	char feature[32];

	if (argc != 3) {
		fputs("usage: many_names CATEGORY N\n", stderr);
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	long fired = 0;
	for (long i = 0; i < n; i++) {
		snprintf(feature, sizeof(feature), "made-up-%ld", i);
		fired += wrench_is_active(argv[1], feature);
	}
	printf("%ld calls, %ld fired\n", n, fired);
	return 0;
}
