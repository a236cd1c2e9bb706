/*
 * The query behind wrench_is_active(): find the trigger file, check that it
 * is trusted, and evaluate the feature against its current version.
 *
 * The hot path answers from the view (view.c) that change detection
 * (watch.c) keeps current. When the view does not know the category, or
 * change detection is not running, the call loads it: walks the path,
 * checks every rule, reads the file, and parses it through the cache of
 * parsed files (cache.c).
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
static struct wrench__snapshot *load_once(const char *category, struct wrench__trust *trust,
                                          bool last_try, bool *stale, enum wrench__outcome *outcome)
{
	char dir[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct wrench__ticket ticket;
	struct wrench__file file;

	*stale = false;
	*outcome = WRENCH__DIR_UNUSABLE;
	if (!wrench__cache_begin(category, dir, sizeof(dir), &ticket))
		return NULL;
	snprintf(path, sizeof(path), "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
	         category);
	int dirfd = wrench__trust_open_dir(dir, trust);
	if (dirfd < 0) {
		wrench__cache_dir_problem(&ticket, &trust->first);
		return NULL;
	}
	int rc = wrench__trust_read_file(dirfd, category, path, &file, trust);
	close(dirfd);
	struct wrench__snapshot *snapshot = NULL;
	*outcome = WRENCH__LOADED;
	if (rc < 0) {
		wrench__cache_file_problem(category, &ticket, &trust->first);
		*outcome = WRENCH__FILE_UNUSABLE;
	} else if (last_try) {
		snapshot = wrench__snapshot_private(category, path, &file);
		*outcome = WRENCH__RETRY;
	} else {
		snapshot = wrench__cache_acquire(category, path, &ticket, &file, stale);
	}
	free(file.data);
	return snapshot;
}

struct wrench__snapshot *wrench__load(const char *category, struct wrench__trust *trust,
                                      enum wrench__outcome *outcome)
{
	struct wrench__snapshot *snapshot = NULL;
	bool stale = true;

	for (int try = 0; stale && try <= MAX_STALE_RETRIES; try++) {
		trust->problems = 0;
		snapshot = load_once(category, trust, try == MAX_STALE_RETRIES, &stale, outcome);
	}
	if (!snapshot && *outcome == WRENCH__LOADED)
		*outcome = WRENCH__RETRY; /* out of memory: nothing to remember */
	return snapshot;
}

/* Set while this thread evaluates: a logger it calls may call back. */
static WRENCH_TLS unsigned evaluating;

static bool evaluate(const struct wrench__snapshot *snapshot, int32_t first, const char *category)
{
	struct wrench__context ctx = {
	        .category = category, .path = snapshot->path, .seeded = snapshot->seeded};

	if (first < 0)
		return false;
	evaluating++;
	bool active = wrench__evaluate(snapshot->rules, first, &ctx);
	evaluating--;
	return active;
}

/*
 * A thread's memory of its last failure points: which lines a (category,
 * feature) pair leads to in a view. A hit skips hashing and probing; it is
 * checked against copies of the names, since a caller may reuse a buffer
 * for other names. Names too long for the copies are not remembered.
 */
#define MEMO_SLOTS 8
#define MEMO_NAME  40

struct memo {
	uint64_t view; /* the serial of the view it was found in (0: none) */
	const struct wrench__snapshot *snapshot;
	int32_t first;
	char category[MEMO_NAME], feature[MEMO_NAME];
};

static WRENCH_TLS struct memo memo[MEMO_SLOTS];

/* Copies S into a memo name; false when it does not fit. */
static bool memo_copy(char *to, const char *s)
{
	for (size_t i = 0; i < MEMO_NAME; i++)
		if ((to[i] = s[i]) == '\0')
			return true;
	return false;
}

static bool memo_same(const char *copy, const char *s)
{
	size_t i = 0;
	while (copy[i] && copy[i] == s[i])
		i++;
	return copy[i] == s[i];
}

static struct memo *memo_slot(const char *category, const char *feature)
{
	uintptr_t h = (uintptr_t)category ^ ((uintptr_t)feature >> 3);
	return &memo[(h ^ (h >> 7)) % MEMO_SLOTS];
}

/* The hot path: what the view knows, with no lock and, in the steady
 * state, at most the one read() of the change detection. Returns false
 * when the view does not know the category. */
static bool answer_from_view(const char *category, const char *feature, bool *active)
{
	/* A call made from a logger during an evaluation must not let go of
	 * the view that evaluation is reading. */
	bool nested = evaluating > 0;

	wrench__watch_refresh();
	struct wrench__view *view = wrench__view_acquire(nested);
	if (!view)
		return false;
	struct memo *m = memo_slot(category, feature);
	uint64_t serial = wrench__view_serial(view);
	if (m->view == serial && memo_same(m->category, category) &&
	    memo_same(m->feature, feature)) {
		*active = m->snapshot && evaluate(m->snapshot, m->first, category);
	} else {
		struct wrench__snapshot *found;
		if (!wrench__category_is_valid(category) ||
		    !wrench__view_lookup(view, category, &found)) {
			if (nested)
				wrench__view_release(view);
			return false;
		}
		int32_t first = found ? wrench__rules_find(found->rules, feature) : -1;
		/* A feature that no line can match is the slow path's to report;
		 * checked only here, where no line matched, to keep hits cheap. */
		if (first < 0 && wrench__feature_problem(feature)) {
			if (nested)
				wrench__view_release(view);
			return false;
		}
		if (!nested && memo_copy(m->category, category) && memo_copy(m->feature, feature)) {
			m->view = serial;
			m->snapshot = found;
			m->first = first;
		} else {
			m->view = 0;
		}
		*active = found && evaluate(found, first, category);
	}
	if (nested)
		wrench__view_release(view);
	return true;
}

bool wrench__fast_query(const char *category, const char *feature, bool *active)
{
	return wrench__watch_running() && answer_from_view(category, feature, active);
}

bool wrench__query(const char *category, const char *feature)
{
	enum wrench__outcome outcome;
	bool active;

	if (wrench__fast_query(category, feature, &active))
		return active;
	struct wrench__snapshot *snapshot = wrench__watch_load(category, &outcome);
	if (!snapshot)
		return false;
	active = evaluate(snapshot, wrench__rules_find(snapshot->rules, feature), category);
	wrench__snapshot_put(snapshot);
	return active;
}
