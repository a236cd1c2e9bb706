/*
 * The query behind wrench_is_active(): find the trigger file, check that it
 * is trusted, and evaluate the feature against its current version.
 *
 * Every call looks at the directory and the file again, so that a change
 * completed before a call starts is seen by it, in every thread.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Retries when other calls keep storing newer versions meanwhile; past
 * that, the call evaluates its own reading without caching it. */
#define MAX_STALE_RETRIES 4

/* Finds and reads the trigger file; NULL (problem handled) when there is
 * none to use. Sets *STALE when the cache moved on during the I/O. */
static struct wrench__snapshot *load(const char *category, bool last_try, bool *stale, char *path,
                                     size_t path_len)
{
	char dir[PATH_MAX];
	struct wrench__ticket ticket;
	struct wrench__trust trust = {0};
	struct wrench__file file;

	*stale = false;
	if (!wrench__cache_begin(category, dir, sizeof(dir), &ticket))
		return NULL;
	snprintf(path, path_len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", category);
	int dirfd = wrench__trust_open_dir(dir, &trust);
	if (dirfd < 0) {
		wrench__cache_dir_problem(&ticket, &trust.first);
		return NULL;
	}
	int rc = wrench__trust_read_file(dirfd, category, path, &file, &trust);
	close(dirfd);
	struct wrench__snapshot *snapshot = NULL;
	if (rc < 0)
		wrench__cache_file_problem(category, &ticket, &trust.first);
	else if (last_try)
		snapshot = wrench__snapshot_private(category, &file);
	else
		snapshot = wrench__cache_acquire(category, path, &ticket, &file, stale);
	free(file.data);
	return snapshot;
}

bool wrench__query(const char *category, const char *feature)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__snapshot *snapshot = NULL;
	bool stale = true;

	for (int try = 0; stale && try <= MAX_STALE_RETRIES; try++)
		snapshot = load(category, try == MAX_STALE_RETRIES, &stale, path, sizeof(path));
	if (!snapshot)
		return false;
	struct wrench__context ctx = {
	        .category = category, .path = path, .seeded = snapshot->seeded};
	bool active = wrench__evaluate(snapshot->rules, feature, &ctx);
	wrench__snapshot_put(snapshot);
	return active;
}
