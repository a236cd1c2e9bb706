/*
 * The machine-wide state: the counters of every trigger line, shared by all
 * the processes that read the same trigger directory, kept across their
 * restarts (wrench(5), "COUNTERS").
 *
 * Each category has one state file, DIR/.wrench-state/CATEGORY: a header and
 * a fixed table of 64-byte slots, mapped MAP_SHARED by every process. A slot
 * is keyed by its line (the line's tokens and its occurrence among identical
 * lines), found by linear probing, and claimed with a compare-and-swap, so
 * processes need no lock: every count is one atomic operation on the shared
 * mapping, and a process killed at any instant leaves the table whole.
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
#define STATE_VERSION 1u
#define STATE_SLOTS   4096u /* more lines than any trigger file has counted */
#define KEY_FREE      0u
#define KEY_FREED     1u

struct header {
	uint64_t magic;
	uint32_t version;
	uint32_t slots;
	uint64_t size;
	uint64_t reserved[5];
};

_Static_assert(sizeof(struct wrench__counters) == 64, "a slot is one cache line");
_Static_assert(sizeof(struct header) == 64, "the header is one cache line");

#define STATE_SIZE (sizeof(struct header) + STATE_SLOTS * sizeof(struct wrench__counters))

struct wrench__state {
	void *map;
	struct wrench__counters *slot;
	uint32_t slots;
	bool full; /* a claim found no free slot: later ones need not look */
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

void wrench__state_atfork_child(void)
{
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
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

struct wrench__counters *wrench__state_slot(struct wrench__state *state, uint64_t key, bool claim)
{
	uint32_t mask = state->slots - 1;

	for (;;) {
		struct wrench__counters *reuse = NULL;
		uint32_t at = (uint32_t)mix(key) & mask;
		for (uint32_t n = 0; n < state->slots; n++, at = (at + 1) & mask) {
			struct wrench__counters *s = &state->slot[at];
			uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
			if (k == key)
				return s;
			if (k == KEY_FREED && !reuse)
				reuse = s;
			if (k != KEY_FREE)
				continue;
			if (!reuse)
				reuse = s;
			break;
		}
		if (!claim || !reuse)
			return NULL;
		/* The counters of a free slot are zero: whoever freed it
		 * zeroed them first. Losing the race means another process
		 * claimed it, perhaps for this very key: look again. */
		uint64_t expected = atomic_load_explicit(&reuse->key, memory_order_relaxed);
		if (expected <= KEY_FREED && atomic_compare_exchange_strong_explicit(
		                                     &reuse->key, &expected, key,
		                                     memory_order_acq_rel, memory_order_acquire))
			return reuse;
	}
}

size_t wrench__state_attach(struct wrench__state *state, struct wrench__rules *rules)
{
	size_t left = 0;

	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		if (rule->process_scope)
			continue;
		struct wrench__counters *slot =
		        state->full ? wrench__state_slot(state, rule->key, false)
		                    : wrench__state_slot(state, rule->key, true);
		if (!slot) {
			state->full = true;
			left++;
			continue;
		}
		rule->counters = slot;
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

void wrench__slot_reset(struct wrench__counters *slot, bool free_it)
{
	atomic_store(&slot->calls, 0);
	atomic_store(&slot->draws, 0);
	atomic_store(&slot->fires, 0);
	atomic_store(&slot->last_fire_ns, 0);
	atomic_store(&slot->last_pid, 0);
	if (free_it)
		atomic_store_explicit(&slot->key, KEY_FREED, memory_order_release);
}

void wrench__state_each(struct wrench__state *state, wrench__slot_fn *fn, void *ctx)
{
	for (uint32_t i = 0; i < state->slots; i++)
		if (atomic_load(&state->slot[i].key) > KEY_FREED)
			fn(&state->slot[i], ctx);
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
	    h.size != STATE_SIZE)
		return problem(why, -EBADMSG, WRENCH_LOG_ERROR, &st, path,
		               "%s is damaged (%lld bytes, expected %zu with a version %u header); "
		               "fix: rm %s (its counters start again from zero)",
		               path, (long long)st.st_size, STATE_SIZE, STATE_VERSION, path);
	return 0;
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
	                   .size = STATE_SIZE};
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
	/* ftruncate leaves the slots as holes: zero, and no disk used. */
	if (fchmod(fd, 0600) < 0 || (w->chown && fchown(fd, w->owner, w->group) < 0) ||
	    ftruncate(fd, (off_t)STATE_SIZE) < 0 || pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
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

int wrench__state_open(const struct wrench__state_where *w, const char *category,
                       struct wrench__state **out, struct wrench__problem *why)
{
	char dir_path[PATH_MAX + 32], path[PATH_MAX + NAME_MAX + 32];
	size_t dlen = strlen(w->dir);

	snprintf(dir_path, sizeof(dir_path), "%s%s%s", w->dir,
	         dlen && w->dir[dlen - 1] == '/' ? "" : "/", WRENCH_STATE_DIR);
	snprintf(path, sizeof(path), "%s/%s", dir_path, category);
	*out = NULL;
	int sdfd = open_state_dir(w, dir_path, why);
	if (sdfd < 0)
		return sdfd;
	int fd = openat(sdfd, category, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT && w->create) {
		int rc = create_state_file(sdfd, w, category, path, why);
		if (rc < 0) {
			close(sdfd);
			return rc;
		}
		fd = openat(sdfd, category,
		            O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	}
	int err = errno;
	close(sdfd);
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
	void *map = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	/* The mapping outlives the descriptor: no descriptor stays open, and
	 * none can leak to a child. */
	close(fd);
	if (map == MAP_FAILED)
		return problem(why, -err, WRENCH_LOG_WARN, NULL, path, "cannot map %s: %s", path,
		               strerror(err));
	struct wrench__state *state = malloc(sizeof(*state));
	if (!state) {
		munmap(map, STATE_SIZE);
		return problem(why, -ENOMEM, WRENCH_LOG_WARN, NULL, path, "out of memory");
	}
	state->map = map;
	state->slot = (struct wrench__counters *)((char *)map + sizeof(struct header));
	state->slots = STATE_SLOTS;
	state->full = false;
	*out = state;
	return 0;
}

void wrench__state_close(struct wrench__state *state)
{
	if (!state)
		return;
	munmap(state->map, STATE_SIZE);
	free(state);
}

/* ---- the library's side ------------------------------------------------- */

/* The last problem logged per category (by hash), so that a state problem
 * is told once, not at every reload of the trigger file. */
#define TOLD_SLOTS 64
static pthread_mutex_t told_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t category, mark;
} told[TOLD_SLOTS];

static bool first_telling(const char *category, uint64_t mark)
{
	uint64_t c = wrench__hash_string(category);
	size_t at = (size_t)(c % TOLD_SLOTS);

	pthread_mutex_lock(&told_lock);
	bool fresh = told[at].category != c || told[at].mark != mark;
	told[at].category = c;
	told[at].mark = mark;
	pthread_mutex_unlock(&told_lock);
	return fresh;
}

struct wrench__state *wrench__state_load(int dirfd, const char *dir, const char *category,
                                         struct wrench__rules *rules)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir, .create = true};
	struct wrench__state *state = NULL;
	struct wrench__problem why;
	bool any = false;

	for (size_t i = 0; i < rules->count && !any; i++)
		any = !rules->rule[i].process_scope;
	/* A file of per-process lines only needs no state at all. */
	if (!any)
		return NULL;
	if (wrench__rules_set_keys(rules) < 0)
		return NULL;
	int rc = wrench__state_open(&w, category, &state, &why);
	if (rc < 0 || !state) {
		uint64_t mark = wrench__hash_string(why.message);
		if (first_telling(category, mark))
			wrench__log(WRENCH_LOG_WARN,
			            "%s; until then the counters of %s's lines (times=, every=...) "
			            "are kept per process, and start again in each process",
			            why.message, category);
		return NULL;
	}
	size_t left = wrench__state_attach(state, rules);
	if (left && first_telling(category, left)) {
		char word[2 * NAME_MAX + 3];
		wrench__shell_quote(category, word, sizeof(word));
		wrench__log(WRENCH_LOG_WARN,
		            "%s/%s/%s has no free slot for %zu line(s) of %s; they are counted "
		            "per process; fix: wrench reset %s",
		            dir, WRENCH_STATE_DIR, category, left, category, word);
	} else if (!left)
		first_telling(category, 0);
	return state;
}
