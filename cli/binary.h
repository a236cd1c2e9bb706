/*
 * The failure points compiled into a program or a shared library, read
 * from the records that wrench.h leaves in the section wrench_points of
 * each object: for `wrench points --binary`.
 */
#ifndef WRENCH_CLI_BINARY_H
#define WRENCH_CLI_BINARY_H

#include <stddef.h>

struct binary_point {
	char *category;
	char *feature;
};

/* The failure points compiled into the ELF file PATH (an executable or a
 * shared library) with literal names: sorted by category then feature,
 * without duplicates. 0 with *OUT and *COUNT, or a negative errno with a
 * message for the user in WHY ("PATH is not an ELF file", "PATH has no
 * failure points recorded: built without wrench.h's records, or stripped of
 * them"...). */
int binary_points(const char *path, struct binary_point **out, size_t *count, char *why,
                  size_t len);
void free_binary_points(struct binary_point *points, size_t count);

#endif /* WRENCH_CLI_BINARY_H */
