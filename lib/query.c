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
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "quiet.h"

/* Retries when other calls keep storing newer versions meanwhile; past
 * that, the call evaluates its own reading without caching it. */
#define MAX_STALE_RETRIES 4

/*
 * The trigger directory's descriptor from the last walk, kept while change
 * detection has seen no change to it or its ancestors (EPOCH, from
 * wrench__watch_epoch()). Walking from "/" costs a load a dozen system
 * calls, most of the first use of a category: with it, the first use of
 * 100,000 categories stays within a few times their second. The loads
 * using it count themselves, so that it is closed only after the last.
 */
struct dir_handle {
	int fd;
	unsigned users; /* loads using it, plus one while it is cached */
	uint64_t epoch;
	char path[];
};

static pthread_mutex_t dir_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dir_handle *dir_cache;

/* Drops one user of H, closing it after the last. Lock held; returns
 * the handle to free once the lock is released, or NULL. */
static struct dir_handle *drop_user(struct dir_handle *h)
{
	return h && --h->users == 0 ? h : NULL;
}

static void free_handle(struct dir_handle *h)
{
	if (h) {
		close(h->fd);
		free(h);
	}
}

static void release_dir(struct dir_handle *h)
{
	pthread_mutex_lock(&dir_cache_lock);
	struct dir_handle *gone = drop_user(h);
	pthread_mutex_unlock(&dir_cache_lock);
	free_handle(gone);
}

/* The cached handle of DIR if it is still current (one more user), else
 * NULL, and a stale one is let go. */
static struct dir_handle *cached_dir(const char *dir, uint64_t epoch)
{
	struct dir_handle *h = NULL, *gone = NULL;

	pthread_mutex_lock(&dir_cache_lock);
	if (dir_cache && epoch && dir_cache->epoch == epoch && strcmp(dir_cache->path, dir) == 0) {
		h = dir_cache;
		h->users++;
	} else {
		gone = drop_user(dir_cache);
		dir_cache = NULL;
	}
	pthread_mutex_unlock(&dir_cache_lock);
	free_handle(gone);
	return h;
}

/* Caches FD, the checked descriptor of DIR, when change detection can
 * tell when it stops being current: returns its handle (the caller one
 * of its users), or NULL when the caller keeps FD. */
static struct dir_handle *remember_dir(const char *dir, uint64_t epoch, int fd)
{
	size_t len = strlen(dir) + 1;
	struct dir_handle *h = epoch ? malloc(sizeof(*h) + len) : NULL;

	if (!h)
		return NULL;
	h->fd = fd;
	h->users = 2;
	h->epoch = epoch;
	memcpy(h->path, dir, len);
	pthread_mutex_lock(&dir_cache_lock);
	struct dir_handle *gone = drop_user(dir_cache);
	dir_cache = h;
	pthread_mutex_unlock(&dir_cache_lock);
	free_handle(gone);
	return h;
}

void wrench__query_atfork_prepare(void)
{
	pthread_mutex_lock(&dir_cache_lock);
}

void wrench__query_atfork_parent(void)
{
	pthread_mutex_unlock(&dir_cache_lock);
}

/* The child starts its own change detection: what it knew is not current.
 * The loads of the parent's other threads do not exist in the child, and
 * the forking thread holds no handle (a load releases it before it logs,
 * and only a logger could fork), so it is freed whatever its count. */
void wrench__query_atfork_child(void)
{
	free_handle(dir_cache);
	dir_cache = NULL;
	pthread_mutex_unlock(&dir_cache_lock);
}

/* Opens the trigger directory DIR: the cached descriptor, or a new walk
 * with every check. *HANDLE is what to release after, or NULL when the
 * descriptor is the caller's to close. */
static int open_dir(const char *dir, struct wrench__trust *trust, struct dir_handle **handle,
                    uint64_t *state_epoch)
{
	uint64_t epoch = wrench__watch_epoch(state_epoch);

	*handle = cached_dir(dir, epoch);
	if (*handle)
		return (*handle)->fd;
	int fd = wrench__trust_open_dir(dir, trust);
	if (fd >= 0)
		*handle = remember_dir(dir, epoch, fd);
	return fd;
}

/* Finds and reads the trigger file; NULL (problem handled) when there is
 * none to use. Sets *STALE when the cache moved on during the I/O. */
static struct wrench__snapshot *load_once(const struct wrench__name *category,
                                          struct wrench__trust *trust, bool last_try, bool *stale,
                                          enum wrench__outcome *outcome)
{
	char dir[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct wrench__ticket ticket;
	struct wrench__file file;

	*stale = false;
	*outcome = WRENCH__RETRY;
	int rc = wrench__cache_begin(category, dir, sizeof(dir), &ticket);
	if (rc == -ENOMEM) {
		struct wrench__problem why = {.level = WRENCH_LOG_WARN};
		snprintf(why.message, sizeof(why.message), "out of memory looking up category %s",
		         category->s);
		wrench__cache_transient_problem(&why);
		return NULL;
	}
	*outcome = WRENCH__DIR_UNUSABLE;
	if (rc < 0)
		return NULL;
	snprintf(path, sizeof(path), "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
	         category->s);
	struct dir_handle *handle;
	uint64_t state_epoch;
	int dirfd = open_dir(dir, trust, &handle, &state_epoch);
	if (dirfd < 0 && wrench__is_transient(dirfd)) {
		wrench__cache_transient_problem(&trust->first);
		*outcome = WRENCH__RETRY;
		return NULL;
	}
	if (dirfd < 0) {
		/* No trigger directory to trust: nothing is recorded. */
		wrench__points_detach();
		wrench__cache_dir_problem(&ticket, &trust->first);
		return NULL;
	}
	wrench__points_attach(dirfd, dir, handle ? state_epoch : 0);
	rc = wrench__trust_read_file(dirfd, category->s, path, &file, trust);
	/* The counters are found next to the file, through the same walk. */
	file.dirfd = dirfd;
	file.dir = dir;
	file.epoch = handle ? state_epoch : 0;
	struct wrench__snapshot *snapshot = NULL;
	*outcome = WRENCH__LOADED;
	if (rc < 0 && wrench__is_transient(rc)) {
		wrench__cache_transient_problem(&trust->first);
		*outcome = WRENCH__RETRY;
	} else if (rc < 0) {
		wrench__cache_file_problem(category, &ticket, &trust->first);
		*outcome = WRENCH__FILE_UNUSABLE;
	} else if (last_try) {
		snapshot = wrench__snapshot_private(category, path, &file);
		*outcome = WRENCH__RETRY;
	} else {
		snapshot = wrench__cache_acquire(category, path, &ticket, &file, stale);
	}
	if (handle)
		release_dir(handle);
	else
		close(dirfd);
	free(file.data);
	return snapshot;
}

/* Loads CATEGORY with every check, through the cache of parsed files.
 * Returns a referenced snapshot, or NULL (the problem logged once). */
static struct wrench__snapshot *load(const struct wrench__name *category,
                                     struct wrench__trust *trust, enum wrench__outcome *outcome)
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

bool wrench__query_nested(void)
{
	return evaluating > 0;
}

/* 0, or the errno of the line that made the call fail, told (with OUT)
 * while the snapshot that holds the line is still held. */
static int evaluate(const struct wrench__snapshot *snapshot, int32_t first, const char *category,
                    struct wrench_fault *out)
{
	struct wrench__context ctx = {
	        .category = category, .path = snapshot->path, .seeded = snapshot->seeded};

	if (first < 0)
		return 0;
	evaluating++;
	const struct wrench__rule *failed = wrench__evaluate(snapshot->rules, first, &ctx);
	evaluating--;
	return failed ? wrench__rule_tell(failed, out) : 0;
}

/* ---- what a caller remembers of a point ---------------------------------- */

/*
 * A seqlock: SEQ is odd while one writer changes the fields, and a reader
 * trusts what it read only if SEQ was even and the same before and after.
 * A writer that finds another at work leaves the record to it. What a
 * record says of one view never differs from writer to writer, so a
 * record rewritten with the same values is as good as untouched.
 */
static bool recall(struct wrench__recall *r, uint64_t serial, struct wrench__snapshot **snapshot,
                   int32_t *first)
{
	uint64_t seq = atomic_load_explicit(&r->seq, memory_order_acquire);

	if ((seq & 1) || atomic_load_explicit(&r->serial, memory_order_relaxed) != serial)
		return false;
	*snapshot = atomic_load_explicit(&r->snapshot, memory_order_relaxed);
	*first = atomic_load_explicit(&r->first, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&r->seq, memory_order_relaxed) == seq;
}

/* What view SERIAL says of the point: the category's snapshot (NULL: no
 * usable file) and the first line that names the feature (-1: none). */
static void remember(struct wrench__recall *r, uint64_t serial, struct wrench__snapshot *snapshot,
                     int32_t first)
{
	uint64_t seq = atomic_load_explicit(&r->seq, memory_order_relaxed);

	if ((seq & 1) ||
	    !atomic_compare_exchange_strong_explicit(&r->seq, &seq, seq + 1, memory_order_relaxed,
	                                             memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&r->serial, serial, memory_order_relaxed);
	atomic_store_explicit(&r->snapshot, snapshot, memory_order_relaxed);
	atomic_store_explicit(&r->first, first, memory_order_relaxed);
	atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
	/* A point that nothing names can be answered from the record alone
	 * while this view is current (quiet.h). */
	if (!snapshot || first < 0)
		atomic_store_explicit(&r->quiet, serial, memory_order_release);
}

void wrench__recall_clear(struct wrench__recall *r)
{
	atomic_store_explicit(&r->quiet, 0, memory_order_relaxed);
	atomic_store_explicit(&r->serial, 0, memory_order_relaxed);
}

/* ---- the query -------------------------------------------------------------- */

/* The hot path: what the view knows, with no lock and, in the steady
 * state, at most the one read() of the change detection. Returns false
 * when the view does not know the category. R: the caller's record of the
 * point, or NULL. */
static bool answer_from_view(const struct wrench__point *p, struct wrench__recall *r,
                             struct wrench_fault *out, int *active)
{
	/* A call made from a logger during an evaluation must not let go of
	 * the view that evaluation is reading. */
	bool nested = evaluating > 0;
	struct wrench__snapshot *found;
	int32_t first;

	wrench__watch_refresh();
	struct wrench__view *view = wrench__view_acquire(nested);
	if (!view)
		return false;
	uint64_t serial = wrench__view_serial(view);
	bool known = true;
	if (!r || !recall(r, serial, &found, &first)) {
		known = wrench__view_lookup(view, &p->category, &found);
		first = known && found ? wrench__rules_find(found->rules, &p->feature) : -1;
		if (known && r)
			remember(r, serial, found, first);
		/* A call that learns its answer reaches the point; one that
		 * recalls it was recorded already. */
		if (known)
			wrench__points_reached(p);
	}
	if (known)
		*active = found ? evaluate(found, first, p->category.s, out) : 0;
	/* Lines whose until= has passed can no longer fire: the record
	 * answers alone while this view lasts. */
	if (known && r && found && !*active && first >= 0 && found->rules->rule[first].until &&
	    wrench__rules_expired(found->rules, first))
		atomic_store_explicit(&r->quiet, serial, memory_order_release);
	if (nested)
		wrench__view_release(view);
	return known;
}

/* The query when the view cannot answer: a load with every check, kept
 * out of line so that the hot path carries none of its buffers. */
__attribute__((noinline)) static int answer_by_load(const struct wrench__point *p,
                                                    struct wrench_fault *out)
{
	enum wrench__outcome outcome;
	struct wrench__watching watching;
	struct wrench__trust trust = {0};

	wrench__watch_begin(&p->category, &watching, &trust);
	struct wrench__snapshot *snapshot = load(&p->category, &trust, &outcome);
	/* Lines that count machine-wide without their counters: load again
	 * when the state may be tried again. */
	watching.retry = snapshot && snapshot->state_missing;
	watching.retry_ms = watching.retry ? wrench__state_next_try_ms() : 0;
	wrench__watch_end(&p->category, &watching, snapshot, outcome);
	wrench__points_reached(p);
	if (!snapshot)
		return 0;
	int active = evaluate(snapshot, wrench__rules_find(snapshot->rules, &p->feature),
	                      p->category.s, out);
	wrench__snapshot_put(snapshot);
	return active;
}

int wrench__query(const struct wrench__point *p, struct wrench__recall *r, struct wrench_fault *out)
{
	int active;

	if (__builtin_expect(wrench__watch_running(), 1) && answer_from_view(p, r, out, &active))
		return active;
	return answer_by_load(p, out);
}
