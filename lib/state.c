/*
 * The machine-wide state: the counters of every trigger line, shared by all
 * the processes that read the same trigger directory, kept across their
 * restarts (wrench(5), "COUNTERS").
 *
 * Each user that agents run as has one state file per trigger directory,
 * DIR/.wrench-state/counters-UID: a header, a fixed table of 64-byte slots
 * and, after it, one table of shards per CPU slot, mapped MAP_SHARED by
 * every process. A slot is keyed by its category and its line (the line's
 * tokens and its occurrence among identical lines), found by linear
 * probing, and claimed with a compare-and-swap, so processes need no lock:
 * every count is one atomic operation on the shared mapping, and a process
 * killed at any instant leaves the table whole. One file for the whole
 * directory is mapped once per process, not once per category: the first
 * use of a category costs no file of its own.
 *
 * Only the wrench command frees slots (under its directory lock); a freed
 * slot keeps key 1, a tombstone, so that the probe sequences of the other
 * keys stay unbroken, and is reused by the next claim that passes it.
 *
 * The file is created complete under a temporary name and renamed into
 * place with RENAME_NOREPLACE: two processes starting at once share the
 * winner's file, never two. A state that cannot be trusted, is damaged or
 * cannot be created is not used: the lines count per process, and the
 * problem is logged once with its fix.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define STATE_MAGIC   0x3154534e45525257ull /* "WRRENST1", little-endian */
#define STATE_VERSION 2u
#define STATE_SLOTS   WRENCH__SLOTS
#define STATE_SHARDS  WRENCH__SHARDS
#define WINDOW_SLOTS  256u /* a category's first place: four pages */
#define KEY_FREE      0u
#define KEY_FREED     1u

struct header {
	uint64_t magic;
	uint32_t version;
	uint32_t slots;
	uint64_t size;
	uint32_t shards;
	uint32_t reserved32;
	uint64_t reserved[4];
};

_Static_assert(sizeof(struct wrench__counters) == 64, "a slot is one cache line");
_Static_assert(sizeof(struct header) == 64, "the header is one cache line");

#define SHARDS_AT  (sizeof(struct header) + (size_t)STATE_SLOTS * sizeof(struct wrench__counters))
#define STATE_SIZE (SHARDS_AT + (size_t)STATE_SHARDS * STATE_SLOTS * sizeof(struct wrench__shard))

/* One mapped state file, shared by the states of its categories. */
struct state_map {
	_Atomic unsigned refs;
	void *base;
	struct wrench__counters *slot;
	struct wrench__shard *shard; /* STATE_SHARDS tables of STATE_SLOTS */
};

struct wrench__state {
	struct state_map *map;
	uint64_t category; /* the hash of its name; 0: every category */
	bool full;         /* a claim found no free slot: later ones need not look */
};

/* ---- this process, without system calls ------------------------------- */

static _Atomic uint32_t cached_pid;

uint32_t wrench__pid(void)
{
	uint32_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
	if (!pid) {
		pid = (uint32_t)getpid();
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

int64_t wrench__coarse_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- keys and slots ----------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

int wrench__rules_set_keys(struct wrench__rules *rules)
{
	/* Occurrences are counted in a table of the lines' hashes, so that a
	 * file of 30,000 identical lines costs no more than a varied one. */
	if (rules->keyed)
		return 0;
	size_t size = 2;
	while (size < 2 * rules->count)
		size *= 2;
	struct seen {
		uint64_t hash;
		uint64_t count;
	} *seen = calloc(size, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		uint64_t text = rule->key;
		uint64_t h = text | 1; /* 0 marks an empty entry */
		size_t at = (size_t)mix(h) & (size - 1);
		while (seen[at].hash && seen[at].hash != h)
			at = (at + 1) & (size - 1);
		seen[at].hash = h;
		uint64_t key = mix(text ^ mix(seen[at].count++));
		rule->key = key > KEY_FREED ? key : key + 2;
	}
	free(seen);
	rules->keyed = true;
	return 0;
}

uint64_t wrench__state_category_hash(const char *category)
{
	uint64_t h = mix(wrench__hash_string(category));
	return h ? h : 1; /* 0 marks a slot whose category is not yet set */
}

/* The key of a category's line in the shared table. */
static uint64_t key_in(uint64_t category, uint64_t line)
{
	uint64_t key = mix(line ^ category);
	return key > KEY_FREED ? key : key + 2;
}

static uint64_t slot_key(const struct wrench__state *state, uint64_t line)
{
	return key_in(state->category, line);
}

uint64_t wrench__state_line_key(const char *category, uint64_t line)
{
	return key_in(wrench__state_category_hash(category), line);
}

/* What a probe for a key found in a run of slots. */
struct probe {
	struct wrench__counters *found; /* the key's slot */
	struct wrench__counters *reuse; /* the first freed or never-used slot */
	bool ended;                     /* it met a never-used slot */
};

/* Probes the SPAN slots from BASE (SPAN a power of two), from AT on. */
static struct probe probe_run(struct wrench__counters *table, uint32_t base, uint32_t span,
                              uint32_t at, uint64_t key)
{
	struct probe p = {0};

	for (uint32_t n = 0; n < span; n++, at = (at + 1) & (span - 1)) {
		struct wrench__counters *s = &table[base + at];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k == key) {
			p.found = s;
			return p;
		}
		if (k == KEY_FREED && !p.reuse)
			p.reuse = s;
		if (k != KEY_FREE)
			continue;
		if (!p.reuse)
			p.reuse = s;
		p.ended = true;
		return p;
	}
	return p;
}

/* The first slot of the state's category's window. */
static uint32_t window_of(const struct wrench__state *state)
{
	return (uint32_t)(state->category % (STATE_SLOTS / WINDOW_SLOTS)) * WINDOW_SLOTS;
}

/*
 * A line is looked for first in its category's window, a few pages of the
 * table: the first write to a page of the file costs tens of microseconds
 * (the file system allocates it), so a category's lines are kept on few
 * pages rather than one page each. A window with no never-used slot left
 * sends its further lines to the whole table; as slots only go from never
 * used to used to freed, a window that still has a never-used slot never
 * sent a line away, and a key missing from it is missing everywhere.
 */
struct wrench__counters *wrench__state_slot(struct wrench__state *state, uint64_t line, bool claim)
{
	struct wrench__counters *table = state->map->slot;
	uint64_t key = slot_key(state, line);
	uint32_t window = window_of(state);

	for (;;) {
		struct probe near = probe_run(table, window, WINDOW_SLOTS,
		                              (uint32_t)mix(key) & (WINDOW_SLOTS - 1), key);
		if (near.found)
			return near.found;
		struct probe far = {0};
		if (!near.ended) {
			far = probe_run(table, 0, STATE_SLOTS,
			                (uint32_t)mix(key) & (STATE_SLOTS - 1), key);
			if (far.found)
				return far.found;
		}
		struct wrench__counters *reuse = near.reuse ? near.reuse : far.reuse;
		if (!claim || !reuse)
			return NULL;
		/* The counters of a free slot are zero: whoever freed it
		 * zeroed them first. Losing the race means another process
		 * claimed it, perhaps for this very key: look again. */
		uint64_t expected = atomic_load_explicit(&reuse->key, memory_order_relaxed);
		if (expected <= KEY_FREED && atomic_compare_exchange_strong_explicit(
		                                     &reuse->key, &expected, key,
		                                     memory_order_acq_rel, memory_order_acquire)) {
			atomic_store_explicit(&reuse->category, state->category,
			                      memory_order_release);
			return reuse;
		}
	}
}

/* SLOT's shard on the first CPU; the others follow, STATE_SLOTS apart. */
static struct wrench__shard *shard_of(const struct state_map *map,
                                      const struct wrench__counters *slot)
{
	return &map->shard[slot - map->slot];
}

/* Whether a line's decisions depend on nothing counted: then its calls
 * and fires may be counted per CPU. Seeded chance draws are numbered, so
 * those count in the slot (eval.c checks the seed). */
static bool count_free(const struct wrench__rule *rule)
{
	return !rule->after && !rule->every && !rule->times;
}

size_t wrench__state_attach(struct wrench__state *state, struct wrench__rules *rules)
{
	struct state_map *map = state->map;
	size_t left = 0;

	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		if (rule->process_scope)
			continue;
		struct wrench__counters *slot = wrench__state_slot(state, rule->key, !state->full);
		if (!slot) {
			state->full = true;
			left++;
			continue;
		}
		rule->counters = slot;
		if (count_free(rule))
			rule->shard = shard_of(map, slot);
	}
	/* Most files count nothing per process: their lines need no own
	 * counters, and a parsed line then costs what it did before. */
	bool local_used = left > 0;
	for (size_t i = 0; i < rules->count && !local_used; i++)
		local_used = rules->rule[i].process_scope;
	if (!local_used) {
		free(rules->local);
		rules->local = NULL;
	}
	return left;
}

void wrench__state_totals(const struct wrench__state *state, const struct wrench__counters *slot,
                          struct wrench__totals *out)
{
	const struct wrench__shard *shard = shard_of(state->map, slot);

	out->calls = atomic_load(&slot->calls);
	out->draws = atomic_load(&slot->draws);
	out->fires = atomic_load(&slot->fires);
	for (uint32_t i = 0; i < STATE_SHARDS; i++, shard += STATE_SLOTS) {
		out->calls += atomic_load(&shard->calls);
		out->fires += atomic_load(&shard->fires);
	}
}

void wrench__slot_reset(struct wrench__state *state, struct wrench__counters *slot, bool free_it)
{
	struct wrench__shard *shard = shard_of(state->map, slot);

	atomic_store(&slot->calls, 0);
	atomic_store(&slot->draws, 0);
	atomic_store(&slot->fires, 0);
	for (uint32_t i = 0; i < STATE_SHARDS; i++, shard += STATE_SLOTS) {
		atomic_store(&shard->calls, 0);
		atomic_store(&shard->fires, 0);
	}
	atomic_store(&slot->last_fire_ns, 0);
	atomic_store(&slot->last_pid, 0);
	if (free_it) {
		atomic_store(&slot->category, 0);
		atomic_store_explicit(&slot->key, KEY_FREED, memory_order_release);
	}
}

/* Calls FN for each slot in use of the N slots from FIRST that are the
 * state's category's (any category's, without one). Returns whether one of
 * them was never used. */
static bool each_in(struct wrench__state *state, uint32_t first, uint32_t n, wrench__slot_fn *fn,
                    void *ctx)
{
	struct wrench__counters *slot = state->map->slot + first;
	bool never_used = false;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t key = atomic_load(&slot[i].key);
		never_used |= key == KEY_FREE;
		if (key <= KEY_FREED)
			continue;
		uint64_t category = atomic_load(&slot[i].category);
		/* A slot being claimed has no category yet: it is nobody's
		 * garbage. */
		if (category && (!state->category || category == state->category))
			fn(state, &slot[i], ctx);
	}
	return never_used;
}

/* A category's slots are all in its window while the window has a slot
 * never used (see wrench__state_slot()): the whole table is read only for
 * a category that overflowed it, or for every category. */
void wrench__state_each(struct wrench__state *state, wrench__slot_fn *fn, void *ctx)
{
	if (state->category) {
		uint32_t window = window_of(state);
		if (each_in(state, window, WINDOW_SLOTS, fn, ctx))
			return;
		/* Past the window: the rest of the table (the window's slots
		 * were told already). */
		each_in(state, 0, window, fn, ctx);
		each_in(state, window + WINDOW_SLOTS, STATE_SLOTS - window - WINDOW_SLOTS, fn, ctx);
		return;
	}
	each_in(state, 0, STATE_SLOTS, fn, ctx);
}

/* ---- opening, checking and creating the files ------------------------- */

/* Records a problem of PATH; every PATH in its fix is quoted for the shell. */
__attribute__((format(printf, 6, 7))) static int problem(struct wrench__problem *why, int err,
                                                         enum wrench_log_level level,
                                                         const struct stat *st, const char *path,
                                                         const char *fmt, ...)
{
	va_list ap;

	why->level = level;
	why->path = NULL;
	memset(&why->where, 0, sizeof(why->where));
	if (st) {
		why->where.dev = st->st_dev;
		why->where.ino = st->st_ino;
		why->where.size = st->st_size;
	}
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
	wrench__quote_fix(why->message, sizeof(why->message), path);
	return err < 0 ? err : -EIO; /* a problem is never success */
}

/* The owner and mode rules of trigger files (docs/security.md). */
static int check_owner_mode(const struct stat *st, const struct wrench__state_where *w,
                            const char *path, struct wrench__problem *why)
{
	uid_t uid = w->for_uid ? w->uid : geteuid();

	if (st->st_uid != 0 && st->st_uid != uid)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, st, path,
		               "%s is owned by uid %u, not by root or uid %u; fix: rm -r %s "
		               "(wrench recreates it)",
		               path, (unsigned)st->st_uid, (unsigned)uid, path);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return problem(why, -EPERM, WRENCH_LOG_ERROR, st, path,
		               "%s is writable by group or others (mode %04o); fix: chmod go-w %s",
		               path, (unsigned)(st->st_mode & 07777), path);
	return 0;
}

/* Opens the state directory, creating it when asked. */
static int open_state_dir(const struct wrench__state_where *w, const char *path,
                          struct wrench__problem *why)
{
	struct stat st;
	int fd =
	        openat(w->dirfd, WRENCH_STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && w->create) {
		/* Mode 0711: an agent that is not the directory's owner may
		 * reach its own file by name, never list or write the others. */
		if (mkdirat(w->dirfd, WRENCH_STATE_DIR, 0711) < 0 && errno != EEXIST)
			return problem(why, -errno, WRENCH_LOG_WARN, NULL, path,
			               "cannot create %s: %s; fix: run the wrench command as root "
			               "(with --owner USER for an agent running as USER)",
			               path, strerror(errno));
		fd = openat(w->dirfd, WRENCH_STATE_DIR,
		            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* The directory is the wrench directory's owner's, whoever made
		 * it: given to one agent of a shared directory, it would be
		 * refused by every other (and by root's agents). The files in
		 * it are each category's agent's. */
		struct stat parent;
		if (fd >= 0 && fstat(w->dirfd, &parent) == 0 && parent.st_uid != geteuid() &&
		    fchown(fd, parent.st_uid, parent.st_gid) < 0) {
			int err = errno;
			close(fd);
			return problem(why, -err, WRENCH_LOG_WARN, NULL, path,
			               "cannot chown %s: %s", path, strerror(err));
		}
	}
	if (fd < 0 && errno == ENOENT)
		return problem(why, -ENOENT, WRENCH_LOG_DEBUG, NULL, path, "%s does not exist",
		               path);
	if (fd < 0)
		return problem(why, -errno, WRENCH_LOG_ERROR, NULL, path,
		               "cannot open %s: %s; fix: rm -r %s (wrench recreates it)", path,
		               strerror(errno), path);
	int rc = fstat(fd, &st) < 0 ? -errno : check_owner_mode(&st, w, path, why);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* The checks made on an opened state file: those of trigger files, and
 * the size and header this version writes. */
static int check_state_file(int fd, const struct wrench__state_where *w, const char *path,
                            struct wrench__problem *why)
{
	struct stat st;
	struct header h;

	if (fstat(fd, &st) < 0)
		return problem(why, -errno, WRENCH_LOG_ERROR, NULL, path, "cannot stat %s: %s",
		               path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, &st, path,
		               "%s is not a regular file with one link; fix: rm -r %s (wrench "
		               "recreates it)",
		               path, path);
	int rc = check_owner_mode(&st, w, path, why);
	if (rc < 0)
		return rc;
	if ((size_t)st.st_size != STATE_SIZE || pread(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    h.magic != STATE_MAGIC || h.version != STATE_VERSION || h.slots != STATE_SLOTS ||
	    h.size != STATE_SIZE || h.shards != STATE_SHARDS)
		return problem(why, -EBADMSG, WRENCH_LOG_ERROR, &st, path,
		               "%s is damaged (%lld bytes, expected %zu with a version %u header); "
		               "fix: rm %s (its counters start again from zero)",
		               path, (long long)st.st_size, STATE_SIZE, STATE_VERSION, path);
	return 0;
}

/* Gives the file its blocks now. The first store to a page of a shared
 * mapping that the file system cannot back raises SIGBUS: left as holes,
 * a full disk would kill the agent in the middle of a call, where now it
 * only fails the creation, which falls back to counting per process. A
 * file system without fallocate() keeps the holes. */
static int reserve(int fd)
{
	int rc = fallocate(fd, 0, 0, (off_t)STATE_SIZE);
	if (rc < 0 && errno == EOPNOTSUPP)
		return 0;
	return rc;
}

/* Builds a complete state file under a temporary name and renames it into
 * place, unless another process was first: then its file is used. */
static int create_state_file(int sdfd, const struct wrench__state_where *w, const char *name,
                             const char *path, struct wrench__problem *why)
{
	char tmp[32];
	struct header h = {.magic = STATE_MAGIC,
	                   .version = STATE_VERSION,
	                   .slots = STATE_SLOTS,
	                   .size = STATE_SIZE,
	                   .shards = STATE_SHARDS};
	int fd = -1;

	for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
		snprintf(tmp, sizeof(tmp), ".#state.%08x", arc4random());
		fd = openat(sdfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return problem(why, -errno, WRENCH_LOG_WARN, NULL, path,
		               "cannot create %s: %s; fix: free space, or run the wrench command "
		               "as root (with --owner USER for an agent running as USER)",
		               path, strerror(errno));
	int rc = 0;
	if (fchmod(fd, 0600) < 0 || (w->chown && fchown(fd, w->owner, w->group) < 0) ||
	    ftruncate(fd, (off_t)STATE_SIZE) < 0 || reserve(fd) < 0 ||
	    pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
		rc = -errno;
	if (rc == 0 && renameat2(sdfd, tmp, sdfd, name, RENAME_NOREPLACE) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		unlinkat(sdfd, tmp, 0);
	if (rc == -EEXIST)
		return 0; /* another process created it first: use theirs */
	if (rc < 0)
		return problem(why, rc, WRENCH_LOG_WARN, NULL, path,
		               "cannot create %s: %s; fix: free space, or run the wrench command "
		               "as root (with --owner USER for an agent running as USER)",
		               path, strerror(-rc));
	return 0;
}

/*
 * Where state files are mapped, so that the wrench command can tell a
 * SIGBUS from a state file cut short under it (its owner truncated it)
 * from any other: a few slots of plain atomics, read from a signal
 * handler. A process with more mappings at once leaves the rest out;
 * the command has one or two.
 */
#define MAPS_KNOWN 8
static _Atomic uintptr_t maps_known[MAPS_KNOWN];

static void map_known(const void *base)
{
	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t free_slot = 0;
		if (atomic_compare_exchange_strong(&maps_known[i], &free_slot, (uintptr_t)base))
			return;
	}
}

static void map_forgotten(const void *base)
{
	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t known = (uintptr_t)base;
		if (atomic_compare_exchange_strong(&maps_known[i], &known, 0))
			return;
	}
}

bool wrench__state_maps(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;

	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t base = atomic_load(&maps_known[i]);
		if (base && a >= base && a - base < STATE_SIZE)
			return true;
	}
	return false;
}

/* Opens, checks and maps the state file NAME of the state directory SDFD
 * (PATH for messages), creating it when W allows. */
static int map_state_file(int sdfd, const struct wrench__state_where *w, const char *name,
                          const char *path, struct state_map **out, struct wrench__problem *why)
{
	int fd = openat(sdfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT && w->create) {
		int rc = create_state_file(sdfd, w, name, path, why);
		if (rc < 0)
			return rc;
		fd = openat(sdfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	}
	int err = errno;
	if (fd < 0 && err == ENOENT)
		return problem(why, -ENOENT, WRENCH_LOG_DEBUG, NULL, path, "%s does not exist",
		               path);
	if (fd < 0)
		return problem(why, -err, err == ELOOP ? WRENCH_LOG_ERROR : WRENCH_LOG_WARN, NULL,
		               path, "cannot open %s: %s; fix: %s", path, strerror(err),
		               err == ELOOP || err == ENXIO || err == EISDIR
		                       ? "remove it (wrench recreates it)"
		                       : "set the trigger with wrench --owner USER, USER being "
		                         "the agent's");
	int rc = check_state_file(fd, w, path, why);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	void *base = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	/* The mapping outlives the descriptor: no descriptor stays open, and
	 * none can leak to a child. */
	close(fd);
	if (base == MAP_FAILED)
		return problem(why, -err, WRENCH_LOG_WARN, NULL, path, "cannot map %s: %s", path,
		               strerror(err));
	struct state_map *map = malloc(sizeof(*map));
	if (!map) {
		munmap(base, STATE_SIZE);
		return problem(why, -ENOMEM, WRENCH_LOG_WARN, NULL, path, "out of memory");
	}
	atomic_init(&map->refs, 1);
	map->base = base;
	map_known(base);
	map->slot = (struct wrench__counters *)((char *)base + sizeof(struct header));
	map->shard = (struct wrench__shard *)((char *)base + SHARDS_AT);
	*out = map;
	return 0;
}

static void map_put(struct state_map *map)
{
	if (map && atomic_fetch_sub(&map->refs, 1) == 1) {
		map_forgotten(map->base);
		munmap(map->base, STATE_SIZE);
		free(map);
	}
}

/* A state of CATEGORY over MAP, which takes over the caller's reference
 * to it (let go of when there is no memory for the state). */
static struct wrench__state *state_of(struct state_map *map, const char *category)
{
	struct wrench__state *state = malloc(sizeof(*state));

	if (!state) {
		map_put(map);
		return NULL;
	}
	state->map = map;
	state->category = category ? wrench__state_category_hash(category) : 0;
	state->full = false;
	return state;
}

/* Opens the mapped state file of W's agent. */
static int open_map(const struct wrench__state_where *w, struct state_map **out,
                    struct wrench__problem *why)
{
	char dir_path[PATH_MAX + 32], path[PATH_MAX + 64], name[32];
	size_t dlen = strlen(w->dir);

	snprintf(dir_path, sizeof(dir_path), "%s%s%s", w->dir,
	         dlen && w->dir[dlen - 1] == '/' ? "" : "/", WRENCH_STATE_DIR);
	snprintf(name, sizeof(name), "counters-%u", (unsigned)(w->for_uid ? w->uid : geteuid()));
	snprintf(path, sizeof(path), "%s/%s", dir_path, name);
	*out = NULL;
	int sdfd = open_state_dir(w, dir_path, why);
	if (sdfd < 0)
		return sdfd;
	int rc = map_state_file(sdfd, w, name, path, out, why);
	close(sdfd);
	return rc;
}

int wrench__state_open(const struct wrench__state_where *w, const char *category,
                       struct wrench__state **out, struct wrench__problem *why)
{
	struct state_map *map;

	*out = NULL;
	int rc = open_map(w, &map, why);
	if (rc < 0)
		return rc;
	*out = state_of(map, category);
	if (!*out)
		return problem(why, -ENOMEM, WRENCH_LOG_WARN, NULL, w->dir, "out of memory");
	return 0;
}

void wrench__state_close(struct wrench__state *state)
{
	if (!state)
		return;
	map_put(state->map);
	free(state);
}

/* ---- the library's side ------------------------------------------------- */

/* The last problem logged per directory or category (by hash), so that a
 * state problem is told once, not at every reload of a trigger file. */
#define TOLD_SLOTS 64
static pthread_mutex_t told_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t name, mark;
} told[TOLD_SLOTS];

static bool first_telling(const char *name, uint64_t mark)
{
	uint64_t c = wrench__hash_string(name);
	size_t at = (size_t)(c % TOLD_SLOTS);

	pthread_mutex_lock(&told_lock);
	bool fresh = told[at].name != c || told[at].mark != mark;
	told[at].name = c;
	told[at].mark = mark;
	pthread_mutex_unlock(&told_lock);
	return fresh;
}

/*
 * The state file last mapped, kept while change detection has seen no
 * change to its directory or to the entry .wrench-state in it (EPOCH): the
 * loads of a thousand categories then map it once. A state that could not
 * be used is not remembered: each load looks again, so that a fix is seen
 * at the next change of a trigger file. A snapshot keeps the mapping it was
 * loaded with until its trigger file changes.
 */
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct state_map *map; /* NULL: nothing remembered */
	uint64_t epoch;
	uid_t euid;
	char dir[PATH_MAX];
} mapped;

/* The remembered map of DIR (a new reference), or NULL. Lock held. */
static struct state_map *remembered(const char *dir, uint64_t epoch, uid_t euid)
{
	if (!mapped.map || !epoch || mapped.epoch != epoch || mapped.euid != euid ||
	    strcmp(mapped.dir, dir) != 0)
		return NULL;
	atomic_fetch_add(&mapped.map->refs, 1);
	return mapped.map;
}

/* Remembers MAP for DIR at EPOCH. Lock held. */
static void remember(const char *dir, uint64_t epoch, uid_t euid, struct state_map *map)
{
	if (!epoch || strlen(dir) >= sizeof(mapped.dir))
		return;
	map_put(mapped.map);
	atomic_fetch_add(&map->refs, 1);
	mapped.map = map;
	mapped.epoch = epoch;
	mapped.euid = euid;
	snprintf(mapped.dir, sizeof(mapped.dir), "%s", dir);
}

/* The map of the state of this process's user in DIR. */
static int load_map(int dirfd, const char *dir, uint64_t epoch, struct state_map **map,
                    struct wrench__problem *why)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir, .create = true};
	uid_t euid = geteuid();
	int rc = 0;

	pthread_mutex_lock(&mapped_lock);
	*map = remembered(dir, epoch, euid);
	if (!*map) {
		rc = open_map(&w, map, why);
		if (rc == 0)
			remember(dir, epoch, euid, *map);
	}
	pthread_mutex_unlock(&mapped_lock);
	return *map ? 0 : rc < 0 ? rc : -EIO;
}

void wrench__state_atfork_prepare(void)
{
	pthread_mutex_lock(&mapped_lock);
}

void wrench__state_atfork_parent(void)
{
	pthread_mutex_unlock(&mapped_lock);
}

void wrench__state_atfork_child(void)
{
	/* The child's change detection starts afresh: what was remembered
	 * is not known to be current. Its snapshots keep their mappings,
	 * which a child shares with its parent. */
	map_put(mapped.map);
	mapped.map = NULL;
	mapped.epoch = 0;
	pthread_mutex_unlock(&mapped_lock);
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

struct wrench__state *wrench__state_load(int dirfd, const char *dir, uint64_t epoch,
                                         const char *category, struct wrench__rules *rules)
{
	struct state_map *map;
	struct wrench__problem why;
	bool any = false;

	for (size_t i = 0; i < rules->count && !any; i++)
		any = !rules->rule[i].process_scope;
	/* A file of per-process lines only needs no state at all. */
	if (!any)
		return NULL;
	if (wrench__rules_set_keys(rules) < 0)
		return NULL;
	struct wrench__state *state = NULL;
	if (load_map(dirfd, dir, epoch, &map, &why) == 0) {
		state = state_of(map, category);
		if (!state) {
			why.level = WRENCH_LOG_WARN;
			snprintf(why.message, sizeof(why.message), "out of memory");
		}
	}
	if (!state) {
		if (first_telling(dir, wrench__hash_string(why.message)))
			wrench__log(WRENCH_LOG_WARN,
			            "%s; until then the counters of the lines in %s (times=, "
			            "every=...) are kept per process, and start again in each "
			            "process",
			            why.message, dir);
		return NULL;
	}
	size_t left = wrench__state_attach(state, rules);
	if (left && first_telling(category, left)) {
		char word[2 * NAME_MAX + 3];
		wrench__shell_quote(category, word, sizeof(word));
		wrench__log(WRENCH_LOG_WARN,
		            "%s/%s has no free slot for %zu line(s) of %s; they are counted "
		            "per process; fix: wrench reset %s",
		            dir, WRENCH_STATE_DIR, left, category, word);
	} else if (!left)
		first_telling(category, 0);
	return state;
}
