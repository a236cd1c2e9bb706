/*
 * The library's side of the machine-wide counters: attaching the lines of
 * a file just loaded to their slots (state.c) in the state file of this
 * process's user (state_file.c), mapped once per directory while change
 * detection sees no change to it.
 *
 * Fail closed: when the state cannot be used, or has no room, the lines
 * that a count decides stay off and the others count per process
 * (state.c); the problem is told once, with its fix, and the state is
 * tried again with back-off, from 100 ms to 10 s (watch.c loads again at
 * that time). A shortage is never remembered.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "state_file.h"

/* The last problem logged per directory or category (by hash), so that a
 * state problem is told once, not at every reload of a trigger file. */
#define TOLD_SLOTS 64
static pthread_mutex_t told_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t name, mark;
} told[TOLD_SLOTS];

/* Records MARK (0: no problem) for the name hashed to C; true when it is
 * news. */
static bool first_telling(uint64_t c, uint64_t mark)
{
	size_t at = (size_t)(c % TOLD_SLOTS);

	pthread_mutex_lock(&told_lock);
	bool fresh = told[at].name != c || told[at].mark != mark;
	told[at].name = c;
	told[at].mark = mark;
	pthread_mutex_unlock(&told_lock);
	return fresh;
}

void wrench__state_told_atfork_prepare(void)
{
	pthread_mutex_lock(&told_lock);
}

void wrench__state_told_atfork_parent(void)
{
	pthread_mutex_unlock(&told_lock);
}

/* The child keeps what its parent told: it logs to the same place. */
void wrench__state_told_atfork_child(void)
{
	pthread_mutex_unlock(&told_lock);
}

/*
 * When the state may be tried again after a failure: from BACKOFF_FIRST_MS,
 * doubling while it keeps failing, up to BACKOFF_MAX_MS; change detection
 * loads again at that time (watch.c). While a state that could not be
 * used waits for that time, a load does not try it (a call that costs
 * nothing), and its lines that count stay off. Lines that found no room
 * in a state that works do not keep the others of later loads from theirs.
 */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000

static _Atomic uint64_t backoff_ms;  /* 0: the last try worked */
static _Atomic uint64_t next_try_ms; /* 0: try at once */
static atomic_bool unusable;         /* the last try found no usable state */

static void tried(bool worked, bool usable)
{
	uint64_t interval = 0;

	atomic_store(&unusable, !usable);
	if (!worked) {
		interval = atomic_load(&backoff_ms);
		interval = interval ? 2 * interval : BACKOFF_FIRST_MS;
		if (interval > BACKOFF_MAX_MS)
			interval = BACKOFF_MAX_MS;
	}
	atomic_store(&backoff_ms, interval);
	atomic_store(&next_try_ms, worked ? 0 : wrench__coarse_ms() + interval);
}

void wrench__state_forget_failures(void)
{
	atomic_store(&backoff_ms, 0);
	atomic_store(&next_try_ms, 0);
	atomic_store(&unusable, false);
}

uint64_t wrench__state_next_try_ms(void)
{
	return atomic_load_explicit(&next_try_ms, memory_order_relaxed);
}

bool wrench__state_retry_due(void)
{
	uint64_t next = wrench__state_next_try_ms();
	return !next || wrench__coarse_ms() >= next;
}

/*
 * The state file last mapped, kept while change detection has seen no
 * change to its directory or to the entry .wrench-state in it (EPOCH): the
 * loads of a thousand categories then map it once. Without an epoch, a
 * load opens the file again, but maps it again only when it is another
 * file. A state that could not be used is not remembered. A snapshot keeps
 * the mapping it was loaded with until its trigger file changes.
 */
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct state_map *map; /* NULL: nothing remembered */
	uint64_t epoch;
	uid_t euid;
	char dir[PATH_MAX];
} mapped;

/* The map of the state of this process's user in DIR (a new reference).
 * Lock held. */
static int load_map(int dirfd, const char *dir, uint64_t epoch, struct state_map **map,
                    struct wrench__problem *why)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir, .create = true};
	uid_t euid = geteuid();
	bool same_dir = mapped.map && mapped.euid == euid && strcmp(mapped.dir, dir) == 0;

	if (same_dir && epoch && mapped.epoch == epoch) {
		wrench__map_get(mapped.map);
		*map = mapped.map;
		return 0;
	}
	int rc = wrench__map_open(&w, same_dir ? mapped.map : NULL, map, why);
	if (rc < 0 || strlen(dir) >= sizeof(mapped.dir))
		return rc;
	if (*map != mapped.map) {
		wrench__map_put(mapped.map);
		wrench__map_get(*map);
		mapped.map = *map;
	}
	mapped.epoch = epoch;
	mapped.euid = euid;
	snprintf(mapped.dir, sizeof(mapped.dir), "%s", dir);
	return 0;
}

void wrench__state_mapped_atfork_prepare(void)
{
	pthread_mutex_lock(&mapped_lock);
}

void wrench__state_mapped_atfork_parent(void)
{
	pthread_mutex_unlock(&mapped_lock);
}

void wrench__state_mapped_atfork_child(void)
{
	/* The child's change detection starts afresh: what was remembered
	 * is not known to be current. Its snapshots keep their mappings,
	 * which a child shares with its parent. */
	wrench__map_put(mapped.map);
	mapped.map = NULL;
	mapped.epoch = 0;
	pthread_mutex_unlock(&mapped_lock);
}

/* Whether a problem with the counters was told since they last worked:
 * their return is told too. */
static atomic_bool unusable_told;

/* Says once what keeps the counters of DIR from being used. */
static void tell_unusable(const char *dir, const struct wrench__problem *why)
{
	if (!first_telling(wrench__hash_string(dir), wrench__hash_string(why->message) | 1))
		return;
	atomic_store(&unusable_told, true);
	wrench__log(WRENCH_LOG_WARN,
	            "%s; until then the lines of %s that a count decides (times=, "
	            "every=, first=, after=) never fire, and the others are counted per process",
	            why->message, dir);
}

/* Says once that some lines of CATEGORY found no room (ERR says why). */
static void tell_no_room(const char *dir, const struct wrench__name *category, size_t left, int err)
{
	if (!first_telling(category->hash, left * 131 + (uint64_t)-err))
		return;
	wrench__log(err == -EAGAIN ? WRENCH_LOG_INFO : WRENCH_LOG_WARN,
	            "%s/%s has no room for %zu line(s) of %s (%s): those that a count decides "
	            "never fire until they get it, the others are counted per process; %s",
	            dir, WRENCH_STATE_DIR, left, category->s, strerror(-err),
	            err == -EAGAIN ? "it is tried again shortly"
	            : err == -ENOSPC || err == -EDQUOT
	                    ? "fix: free space on its file system, or remove lines (wrench clear)"
	                    : "it is tried again later");
}

struct wrench__state *wrench__state_load(int dirfd, const char *dir, uint64_t epoch,
                                         const struct wrench__name *category,
                                         struct wrench__rules *rules, bool *missing)
{
	struct state_map *map = NULL;
	struct wrench__problem why = {.level = WRENCH_LOG_WARN};
	bool any = false;

	*missing = false;
	for (size_t i = 0; i < rules->count && !any; i++)
		any = !rules->rule[i].process_scope;
	/* A file of per-process lines only needs no state at all. */
	if (!any)
		return NULL;
	*missing = true;
	if (atomic_load(&unusable) && !wrench__state_retry_due()) {
		wrench__rules_close_counted(rules);
		return NULL;
	}
	int rc = wrench__rules_set_keys(rules);
	if (rc == 0) {
		pthread_mutex_lock(&mapped_lock);
		rc = load_map(dirfd, dir, epoch, &map, &why);
		pthread_mutex_unlock(&mapped_lock);
	} else {
		snprintf(why.message, sizeof(why.message), "out of memory keying the lines of %s",
		         category->s);
	}
	struct wrench__state *state =
	        rc == 0 ? wrench__state_of(map, wrench__state_category_key(category->hash), dirfd)
	                : NULL;
	if (!state) {
		if (rc == 0)
			snprintf(why.message, sizeof(why.message), "out of memory");
		wrench__rules_close_counted(rules);
		tried(false, false);
		tell_unusable(dir, &why);
		return NULL;
	}
	first_telling(wrench__hash_string(dir), 0);
	if (atomic_exchange(&unusable_told, false))
		wrench__log(WRENCH_LOG_INFO, "the counters of %s are in use again", dir);
	size_t left = wrench__state_attach(state, rules);
	wrench__state_let_go_of_dir(state); /* the load's, which ends */
	*missing = left > 0;
	tried(left == 0, true);
	int err = wrench__state_claim_error(state);
	if (left)
		tell_no_room(dir, category, left, err ? err : -ENOSPC);
	else
		first_telling(category->hash, 0);
	return state;
}
