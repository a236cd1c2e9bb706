/*
 * Points reached on this machine (wrench(5), "Points reached"): which
 * failure points each program asked about, and when it last did, recorded
 * in a file beside the counters (points_file.c) so that `wrench points`
 * can list them and report a run's fault coverage.
 *
 * A point is recorded when a call learns its answer from the trigger
 * files: the first call of a point in a process, and the first after each
 * change of the trigger files. The steady state, a call answered from
 * what its site or thread remembers, records nothing and pays nothing. A
 * process re-stamps a point at most every STAMP_MS, checked without a
 * lock against a table of the points it recorded.
 *
 * Nothing is created or written where the trigger directory does not
 * exist or is not trusted: the file is attached by a load that has just
 * walked to the directory with every check (query.c), and let go of when
 * a load finds no directory. Recording is best effort and fails closed:
 * without a file, or without room in it, a point is not recorded, and the
 * call's answer never depends on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "points_file.h"

#define STAMP_MS     5000u  /* a process stamps a point again at most this often */
#define RETRY_MS     10000u /* a file that could not be used is tried again after */
#define RECHECK_MS   1000u  /* without change detection, the file is looked up again after */
#define MAX_PROBES   64u    /* slots of the file looked at for one point */
#define KNOWN_SLOTS  1024u  /* points one process keeps the stamp time of */
#define KNOWN_PROBES 16u

/* The points this process recorded: the key of each, and the time (coarse
 * ms) from which it may be stamped again. A point that finds no entry is
 * not recorded: a program that makes up names cannot make every call take
 * the lock. */
static struct {
	_Atomic uint64_t key;
	_Atomic uint64_t next_ms;
} known[KNOWN_SLOTS];

/* The file attached, and what it was attached for. */
static pthread_mutex_t points_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool have_file; /* attached.base is set: read without the lock */
static struct {
	char *base;
	dev_t dev;
	ino_t ino;
	uid_t euid;
	uint64_t epoch;   /* the directory's state epoch when attached (0: none) */
	uint64_t next_ms; /* when to look the file up again without an epoch, or
	                   * after a failure */
	uint64_t told;    /* the last problem logged, by hash */
	char dir[PATH_MAX];
	char program[64]; /* this process's executable's name */
} attached;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t point_key(const struct wrench__point *p)
{
	uint64_t k = mix(p->category.hash ^ mix(p->feature.hash));
	return k ? k : 1;
}

/* The entry of KEY in this process's table, claimed when new; NULL when
 * the table has no room for it. */
static _Atomic uint64_t *known_entry(uint64_t key)
{
	for (uint32_t i = 0; i < KNOWN_PROBES; i++) {
		uint32_t at = (uint32_t)((key + i) % KNOWN_SLOTS);
		uint64_t seen = atomic_load_explicit(&known[at].key, memory_order_acquire);
		if (seen == 0 && atomic_compare_exchange_strong(&known[at].key, &seen, key))
			return &known[at].next_ms;
		if (seen == key)
			return &known[at].next_ms;
	}
	return NULL;
}

/* The name of this process's executable, as ps shows it: the last part of
 * /proc/self/exe's target, else of argv[0]. Lock held. */
static const char *program_name(void)
{
	char exe[PATH_MAX];

	if (attached.program[0])
		return attached.program;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *name = program_invocation_short_name;
	if (n > 0) {
		exe[n] = '\0';
		char *deleted = strstr(exe, " (deleted)");
		if (deleted && deleted[10] == '\0')
			*deleted = '\0';
		char *slash = strrchr(exe, '/');
		name = slash ? slash + 1 : exe;
	}
	if (!*name)
		name = "?";
	/* A longer name is cut: the record is for people to read. */
	size_t len = strnlen(name, sizeof(attached.program) - 1);
	memcpy(attached.program, name, len);
	attached.program[len] = '\0';
	return attached.program;
}

/* ---- the file ------------------------------------------------------------ */

static void detach_locked(void)
{
	if (attached.base)
		munmap(attached.base, POINTS_FILE_SIZE);
	attached.base = NULL;
	atomic_store(&have_file, false);
}

/* Logs WHY once while it lasts; lock not held. */
static void tell(const struct wrench__problem *why)
{
	uint64_t mark = wrench__hash_bytes(why->message, strlen(why->message), WRENCH__HASH_START);

	pthread_mutex_lock(&points_lock);
	bool news = attached.told != mark;
	attached.told = mark;
	pthread_mutex_unlock(&points_lock);
	if (news)
		wrench__log(why->level, "points reached are not recorded: %s", why->message);
}

/* A file newly attached (another directory's, after wrench_set_dir())
 * holds none of this process's stamps: each point is stamped there at its
 * next call, as at its first, not up to STAMP_MS later or never. */
static void forget_stamps(void)
{
	for (uint32_t i = 0; i < KNOWN_SLOTS; i++)
		atomic_store_explicit(&known[i].next_ms, 0, memory_order_relaxed);
}

/* Maps the file FD, opened with ST, unless it is the one attached; lock
 * held. False when it cannot be mapped (said in WHY). */
static bool attach_file(int fd, const struct stat *st, struct wrench__problem *why)
{
	if (attached.base && attached.dev == st->st_dev && attached.ino == st->st_ino)
		return true;
	char *base = wrench__points_map(fd, why);
	detach_locked();
	attached.base = base;
	attached.dev = st->st_dev;
	attached.ino = st->st_ino;
	if (base)
		forget_stamps();
	return base != NULL;
}

/* Whether the name of the file attached still leads to it: one system
 * call, where opening and checking it again takes several. Nothing is
 * trusted from it but that the mapping is the file the directory holds:
 * it was checked when it was mapped. Lock held. */
static bool still_attached(int dirfd)
{
	char name[64];
	struct stat st;

	if (!attached.base)
		return false;
	memcpy(name, WRENCH_STATE_DIR "/", sizeof(WRENCH_STATE_DIR));
	wrench__points_file_name(attached.euid, name + sizeof(WRENCH_STATE_DIR),
	                         sizeof(name) - sizeof(WRENCH_STATE_DIR));
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == attached.dev &&
	       st.st_ino == attached.ino;
}

/*
 * Called by every load: while change detection sees no change to the
 * directory (the same EPOCH), the file attached is current; without change
 * detection, for RECHECK_MS. Otherwise one fstatat() tells whether its
 * name still leads to it (a directory where files come and go costs a
 * load no more), and only a new file is opened, checked and mapped. A
 * file that could not be used is tried again at the next change.
 */
void wrench__points_attach(int dirfd, const char *dir, uint64_t epoch)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir, .create = true};
	struct wrench__problem why = {.level = WRENCH_LOG_DEBUG};
	uint64_t now = wrench__coarse_ms();
	uid_t euid = geteuid();
	struct stat st;

	pthread_mutex_lock(&points_lock);
	bool same = attached.euid == euid && strcmp(attached.dir, dir) == 0;
	bool current = same && attached.epoch == epoch && (epoch || now < attached.next_ms);
	if (!current && same && still_attached(dirfd)) {
		attached.epoch = epoch;
		attached.next_ms = now + RECHECK_MS;
		current = true;
	}
	if (current) {
		pthread_mutex_unlock(&points_lock);
		return;
	}
	int fd = wrench__points_open(&w, &st, &why);
	bool ok = fd >= 0 && attach_file(fd, &st, &why);
	if (fd >= 0)
		close(fd);
	if (!ok)
		detach_locked();
	atomic_store(&have_file, ok);
	attached.euid = euid;
	attached.epoch = epoch;
	attached.next_ms = now + (ok ? RECHECK_MS : RETRY_MS);
	snprintf(attached.dir, sizeof(attached.dir), "%s", dir);
	if (ok)
		attached.told = 0;
	pthread_mutex_unlock(&points_lock);
	if (!ok && why.level != WRENCH_LOG_DEBUG)
		tell(&why);
}

void wrench__points_detach(void)
{
	pthread_mutex_lock(&points_lock);
	detach_locked();
	attached.dir[0] = '\0';
	pthread_mutex_unlock(&points_lock);
}

/* ---- recording ------------------------------------------------------------ */

static bool same_names(const struct points_slot *s, const struct wrench__point *p,
                       const char *program, size_t program_len)
{
	const char *n = s->names;

	return s->category_len == p->category.len && s->feature_len == p->feature.len &&
	       s->program_len == program_len &&
	       memcmp(n, p->category.s, p->category.len + 1) == 0 &&
	       memcmp(n + p->category.len + 1, p->feature.s, p->feature.len + 1) == 0 &&
	       memcmp(n + p->category.len + p->feature.len + 2, program, program_len + 1) == 0;
}

/* Writes the names into the slot S that this process claimed (or that a
 * process killed while writing them left): the same key, the same bytes. */
static void fill(struct points_slot *s, const struct wrench__point *p, const char *program,
                 size_t program_len, int64_t now)
{
	char *n = s->names;

	s->category_len = (uint16_t)p->category.len;
	s->feature_len = (uint16_t)p->feature.len;
	s->program_len = (uint16_t)program_len;
	memcpy(n, p->category.s, p->category.len + 1);
	memcpy(n + p->category.len + 1, p->feature.s, p->feature.len + 1);
	memcpy(n + p->category.len + p->feature.len + 2, program, program_len + 1);
	atomic_store_explicit(&s->first_ms, now, memory_order_relaxed);
	atomic_store_explicit(&s->ready, 1, memory_order_release);
}

/* Stamps P in the file at BASE, claiming its slot when it has none. False
 * when there is no room for it. Lock held. */
static bool stamp(char *base, const struct wrench__point *p, int64_t now)
{
	struct points_header *h = (struct points_header *)base;
	const char *program = program_name();
	size_t program_len = strlen(program);
	uint64_t key = mix(point_key(p) ^ wrench__hash_bytes(program, program_len, 1));

	key = key ? key : 1;
	if (p->category.len + p->feature.len + program_len + 3 > POINTS_NAMES_BYTES) {
		atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
		return false;
	}
	for (uint32_t i = 0; i < MAX_PROBES; i++) {
		struct points_slot *s = points_slot_at(base, (uint32_t)((key + i) % POINTS_SLOTS));
		uint64_t seen = atomic_load_explicit(&s->key, memory_order_acquire);
		if (seen == 0 && atomic_compare_exchange_strong(&s->key, &seen, key)) {
			fill(s, p, program, program_len, now);
			seen = key;
		} else if (seen == key && !atomic_load_explicit(&s->ready, memory_order_acquire)) {
			fill(s, p, program, program_len, now);
		} else if (seen != key || !same_names(s, p, program, program_len)) {
			continue;
		}
		atomic_store_explicit(&s->last_ms, now, memory_order_relaxed);
		atomic_store_explicit(&s->last_pid, wrench__pid(), memory_order_relaxed);
		return true;
	}
	atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
	return false;
}

void wrench__points_reached(const struct wrench__point *p)
{
	if (!atomic_load_explicit(&have_file, memory_order_relaxed))
		return;
	uint64_t now = wrench__coarse_ms();
	_Atomic uint64_t *next = known_entry(point_key(p));
	if (!next || now < atomic_load_explicit(next, memory_order_relaxed))
		return;
	pthread_mutex_lock(&points_lock);
	if (attached.base)
		stamp(attached.base, p, wrench__coarse_now_ns() / 1000000);
	pthread_mutex_unlock(&points_lock);
	/* Also when there was no room: a full file is not searched again at
	 * every call. */
	atomic_store_explicit(next, now + STAMP_MS, memory_order_relaxed);
}

/* ---- fork ------------------------------------------------------------------- */

void wrench__points_atfork_prepare(void)
{
	pthread_mutex_lock(&points_lock);
}

void wrench__points_atfork_parent(void)
{
	pthread_mutex_unlock(&points_lock);
}

/* The child shares the mapping, and its points were recorded under the
 * same program's name; it stamps them with its own pid when they are due. */
void wrench__points_atfork_child(void)
{
	pthread_mutex_unlock(&points_lock);
}
