/*
 * The state kept between calls: the directory and seed in force, and per
 * category the parsed version of its trigger file (a snapshot) with its
 * counters, and the last problem logged about it.
 *
 * A snapshot is reused only while the file keeps its identity (inode,
 * size, times) and its contents; otherwise the file is parsed again. The
 * counters of its lines live in the machine-wide state (state.c), keyed by
 * line, so they go on across versions; lines with scope=process count in
 * the snapshot and start from zero with each version.
 *
 * One mutex guards this state. It is never held during I/O, a sleep or a
 * call to the user's logger, so it cannot make a caller wait long, and it
 * is taken around fork() so that a child always finds it free. Snapshots
 * are reference-counted: a call keeps using the version it started with
 * even if another thread replaces it meanwhile.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#ifndef WRENCH_DEFAULT_DIR
#define WRENCH_DEFAULT_DIR "/var/lib/juju/wrench"
#endif

struct entry {
	struct entry *next;
	struct wrench__snapshot *snapshot; /* NULL while the file is unusable */
	uint64_t version;                  /* changes whenever snapshot does */
	uint64_t episode;                  /* changes when the file loads again */
	uint64_t logged_version;           /* mark of the last version loaded */
	uint64_t hash;                     /* of the category's name */
	size_t len;
	char category[];
};

/* Entries without a snapshot are dropped past this many, so that an agent
 * making up category names cannot grow the cache without bound. */
#define MAX_IDLE_ENTRIES 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **table;
static size_t table_size, entry_count;
static size_t idle_count; /* entries without a snapshot */
static char *dir;         /* NULL: no usable directory */
static bool dir_pending;  /* NULL only for want of memory: copy it again */
static atomic_bool told_dir_out_of_memory;
static uint64_t generation;   /* bumped whenever cached state is dropped */
static uint64_t last_version; /* entries take their versions from here */
static uint64_t dir_episode;  /* changes when a file loads after a dir problem */
static bool dir_problem_logged;
static struct wrench__told told; /* the problems logged lately */
static bool seeded;
static uint64_t seed;

static bool same_identity(const struct wrench__identity *a, const struct wrench__identity *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

void wrench__snapshot_hold(struct wrench__snapshot *snapshot)
{
	atomic_fetch_add(&snapshot->refs, 1);
}

void wrench__snapshot_put(struct wrench__snapshot *snapshot)
{
	if (snapshot && atomic_fetch_sub(&snapshot->refs, 1) == 1) {
		wrench__rules_free(snapshot->rules);
		wrench__state_close(snapshot->state);
		free(snapshot->path);
		free(snapshot);
	}
}

/* Replaces the snapshot of E (NULL: none); returns the old one, for the
 * caller to put once the lock is released. Lock held. */
static struct wrench__snapshot *set_snapshot(struct entry *e, struct wrench__snapshot *snapshot)
{
	struct wrench__snapshot *old = e->snapshot;
	e->snapshot = snapshot;
	if (snapshot != old)
		e->version = ++last_version;
	if (old && !snapshot)
		idle_count++;
	else if (!old && snapshot)
		idle_count--;
	return old;
}

static struct entry **bucket_of(uint64_t hash)
{
	return &table[hash % table_size];
}

static void insert(struct entry *e)
{
	struct entry **b = bucket_of(e->hash);
	e->next = *b;
	*b = e;
}

static int grow_table(void)
{
	size_t size = table_size ? table_size * 2 : 16;
	struct entry **bigger = calloc(size, sizeof(struct entry *));

	if (!bigger)
		return -ENOMEM;
	struct entry **old = table;
	size_t old_size = table_size;
	table = bigger;
	table_size = size;
	for (size_t i = 0; i < old_size; i++) {
		for (struct entry *e = old[i], *next; e; e = next) {
			next = e->next;
			insert(e);
		}
	}
	free(old);
	return 0;
}

/* Frees the entries that hold no snapshot: they only remember problems. */
static void drop_idle_entries(void)
{
	for (size_t i = 0; i < table_size; i++) {
		for (struct entry **link = &table[i], *e; (e = *link) != NULL;) {
			if (e->snapshot) {
				link = &e->next;
				continue;
			}
			*link = e->next;
			free(e);
			entry_count--;
			idle_count--;
		}
	}
}

/* Finds the entry of CATEGORY, adding it if missing. Lock held. */
static struct entry *entry_of(const struct wrench__name *category)
{
	if (table_size) {
		for (struct entry *e = *bucket_of(category->hash); e; e = e->next)
			if (wrench__name_is(category, e->hash, e->len, e->category))
				return e;
	}
	/* Counted, not looked for: a scan per new category made the first
	 * use of many categories quadratic. */
	if (idle_count >= MAX_IDLE_ENTRIES)
		drop_idle_entries();
	if (entry_count >= table_size && grow_table() < 0)
		return NULL;
	struct entry *e = calloc(1, sizeof(*e) + category->len + 1);
	if (!e)
		return NULL;
	memcpy(e->category, category->s, category->len + 1);
	e->hash = category->hash;
	e->len = category->len;
	e->version = ++last_version;
	insert(e);
	entry_count++;
	idle_count++;
	return e;
}

/* Forgets every counter; problems already logged stay logged. Lock held;
 * the snapshots go to a list the caller puts once it is released. */
static void drop_snapshots(struct wrench__snapshot ***dropped, size_t *count)
{
	*dropped = NULL;
	*count = 0;
	for (size_t i = 0; i < table_size; i++)
		for (struct entry *e = table[i]; e; e = e->next)
			*count += e->snapshot != NULL;
	if (*count == 0)
		return;
	/* If the list cannot be had, the snapshots are put under the lock:
	 * safe, as putting one never calls out. */
	struct wrench__snapshot **list = calloc(*count, sizeof(struct wrench__snapshot *));
	size_t n = 0;
	for (size_t i = 0; i < table_size; i++) {
		for (struct entry *e = table[i]; e; e = e->next) {
			if (!e->snapshot)
				continue;
			struct wrench__snapshot *old = set_snapshot(e, NULL);
			if (list)
				list[n++] = old;
			else
				wrench__snapshot_put(old);
		}
	}
	*dropped = list;
	*count = n;
}

static void put_dropped(struct wrench__snapshot **dropped, size_t count)
{
	for (size_t i = 0; i < count; i++)
		wrench__snapshot_put(dropped[i]);
	free(dropped);
}

/* Forgets everything, for a new directory. Lock held. */
static void drop_entries(void)
{
	for (size_t i = 0; i < table_size; i++) {
		for (struct entry *e = table[i], *next; e; e = next) {
			next = e->next;
			wrench__snapshot_put(e->snapshot);
			free(e);
		}
	}
	free(table);
	table = NULL;
	table_size = entry_count = idle_count = 0;
	/* A new directory: its problems are news, whatever came before. */
	wrench__told_forget(&told);
	generation++;
}

static char *default_dir(bool *out_of_memory);

/* The default directory could not be copied at initialisation: copies it
 * now, outside the lock (it may log). Lock held on entry and on return. */
static void retry_default_dir(void)
{
	bool out_of_memory;
	uint64_t seen = generation;

	pthread_mutex_unlock(&lock);
	char *d = default_dir(&out_of_memory);
	pthread_mutex_lock(&lock);
	if (dir_pending && generation == seen && !dir) {
		dir = d;
		dir_pending = out_of_memory;
		d = NULL;
	}
	free(d);
}

int wrench__cache_begin(const struct wrench__name *category, char *buf, size_t len,
                        struct wrench__ticket *t)
{
	int rc = 0;

	pthread_mutex_lock(&lock);
	if (!dir && dir_pending)
		retry_default_dir();
	if (!dir || strlen(dir) >= len)
		rc = dir_pending ? -ENOMEM : -ENOENT;
	else
		memcpy(buf, dir, strlen(dir) + 1);
	struct entry *e = rc == 0 ? entry_of(category) : NULL;
	if (rc == 0 && !e)
		rc = -ENOMEM;
	t->generation = generation;
	t->version = e ? e->version : 0;
	pthread_mutex_unlock(&lock);
	return rc;
}

/* The directory is gone or refused, and with it every trigger file. */
void wrench__cache_dir_problem(const struct wrench__ticket *t, const struct wrench__problem *why)
{
	struct wrench__snapshot **dropped = NULL;
	size_t count = 0;
	bool fresh = false;

	pthread_mutex_lock(&lock);
	if (t->generation == generation) {
		drop_snapshots(&dropped, &count);
		fresh = wrench__told_is_news(&told, dir_episode, why, why->level);
		dir_problem_logged |= fresh;
	}
	unsigned suppressed = wrench__told_take_suppressed(&told, fresh);
	pthread_mutex_unlock(&lock);
	put_dropped(dropped, count);
	if (fresh)
		wrench__told_log(why, suppressed);
}

void wrench__cache_transient_problem(const struct wrench__problem *why)
{
	pthread_mutex_lock(&lock);
	bool fresh = wrench__told_is_news(&told, dir_episode, why, WRENCH_LOG_WARN);
	dir_problem_logged |= fresh;
	unsigned suppressed = wrench__told_take_suppressed(&told, fresh);
	pthread_mutex_unlock(&lock);
	if (!fresh)
		return;
	wrench__told_log_suppressed(suppressed);
	wrench__log(WRENCH_LOG_WARN,
	            "%s: a passing shortage, not a property of the files; the call answers "
	            "false and the next one tries again",
	            why->message);
}

/* A file loaded: the directory is usable, and a problem with it logged
 * before is logged again if it comes back. Lock held. */
static void dir_is_usable(void)
{
	if (dir_problem_logged) {
		dir_problem_logged = false;
		dir_episode++;
	}
}

void wrench__cache_file_problem(const struct wrench__name *category, const struct wrench__ticket *t,
                                const struct wrench__problem *why)
{
	struct wrench__snapshot *old = NULL;
	bool fresh = false;

	pthread_mutex_lock(&lock);
	struct entry *e = t->generation == generation ? entry_of(category) : NULL;
	if (e) {
		dir_is_usable();
		/* A newer call may have found the file since we looked. */
		if (e->version == t->version)
			old = set_snapshot(e, NULL);
		fresh = wrench__told_is_news(&told, e->episode, why, why->level);
	}
	unsigned suppressed = wrench__told_take_suppressed(&told, fresh);
	pthread_mutex_unlock(&lock);
	wrench__snapshot_put(old);
	if (fresh)
		wrench__told_log(why, suppressed);
}

static struct wrench__snapshot *snapshot_new(const struct wrench__name *category, const char *path,
                                             const struct wrench__file *file, uint64_t hash,
                                             bool use_seed, uint64_t seed_value)
{
	struct wrench__snapshot *s = calloc(1, sizeof(*s));

	if (!s || !(s->path = strdup(path)) ||
	    wrench__parse_rules(file->data, file->len, &s->rules) < 0) {
		if (s)
			free(s->path);
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	/* The counters are attached once, here: a call then only counts. */
	if (file->dir)
		s->state = wrench__state_load(file->dirfd, file->dir, file->epoch, category,
		                              s->rules, &s->state_missing);
	s->id = file->id;
	s->content_hash = hash;
	s->seeded = use_seed;
	for (size_t i = 0; use_seed && i < s->rules->count; i++)
		s->rules->rule[i].seed =
		        wrench__seed_for_line(seed_value, category->hash, s->rules->rule[i].line);
	return s;
}

/* Takes a reference to E's snapshot if it is FILE's version. Lock held. */
static struct wrench__snapshot *cached(struct entry *e, const struct wrench__file *file,
                                       uint64_t hash)
{
	struct wrench__snapshot *s = e->snapshot;

	if (!s || !same_identity(&s->id, &file->id) || s->content_hash != hash)
		return NULL;
	/* Lines without their counters: once the state may be tried again,
	 * a fresh version tries it. */
	if (s->state_missing && wrench__state_retry_due())
		return NULL;
	atomic_fetch_add(&s->refs, 1);
	return s;
}

static void log_parse_errors(const struct wrench__rules *rules, const char *path)
{
	for (size_t i = 0; i < rules->error_count; i++)
		wrench__log(WRENCH_LOG_ERROR, "%s:%u: %s; the line is ignored", path,
		            rules->error[i].line, rules->error[i].message);
	wrench__log(WRENCH_LOG_INFO, "loaded %s: %zu trigger line(s), %zu bad", path, rules->count,
	            rules->error_count);
}

struct wrench__snapshot *wrench__snapshot_private(const struct wrench__name *category,
                                                  const char *path, const struct wrench__file *file)
{
	pthread_mutex_lock(&lock);
	bool use_seed = seeded;
	uint64_t seed_value = seed;
	pthread_mutex_unlock(&lock);
	/* Its bad lines are told by the call that caches this version. */
	return snapshot_new(category, path, file, 0, use_seed, seed_value);
}

struct wrench__snapshot *wrench__cache_acquire(const struct wrench__name *category,
                                               const char *path, const struct wrench__ticket *t,
                                               const struct wrench__file *file, bool *stale)
{
	uint64_t hash = wrench__hash_bytes(file->data, file->len, WRENCH__HASH_START);
	struct wrench__snapshot *s = NULL, *old = NULL;

	*stale = false;
	pthread_mutex_lock(&lock);
	dir_is_usable();
	struct entry *e = t->generation == generation ? entry_of(category) : NULL;
	if (e)
		s = cached(e, file, hash);
	bool use_seed = seeded;
	uint64_t seed_value = seed;
	bool reconfigured = t->generation != generation;
	pthread_mutex_unlock(&lock);
	/* set_dir or set_seed came in since the ticket: look again, with the
	 * new directory and seed. */
	*stale = reconfigured;
	if (s || !e)
		return s;

	/* Parse outside the lock; store the result only if no other call
	 * stored anything since this one took its ticket. */
	struct wrench__snapshot *fresh =
	        snapshot_new(category, path, file, hash, use_seed, seed_value);
	if (!fresh)
		return NULL;
	pthread_mutex_lock(&lock);
	e = t->generation == generation ? entry_of(category) : NULL;
	bool tell = false;
	if (e && !(s = cached(e, file, hash)) && e->version == t->version) {
		old = set_snapshot(e, fresh);
		e->episode = ++last_version; /* a problem that comes back is logged */
		/* Parsing again after set_seed() or a directory problem is
		 * not a new version: its bad lines were told already. */
		uint64_t mark = wrench__hash_bytes(&file->id, sizeof(file->id), hash);
		tell = e->logged_version != mark;
		e->logged_version = mark;
		/* One reference for the cache; the caller keeps the first. */
		atomic_fetch_add(&fresh->refs, 1);
		s = fresh;
	}
	pthread_mutex_unlock(&lock);
	wrench__snapshot_put(old);
	if (s == fresh) {
		if (tell)
			log_parse_errors(fresh->rules, path);
		return s;
	}
	wrench__snapshot_put(fresh);
	*stale = s == NULL;
	return s;
}

int wrench__check_dir_path(const char *path)
{
	if (path[0] != '/')
		return -EINVAL;
	if (strlen(path) >= PATH_MAX)
		return -ENAMETOOLONG;
	for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
		if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
			return -EINVAL;
	return 0;
}

/* The default directory: $WRENCH_DIR when set, else the built-in one.
 * NULL when there is none (logged), or with *OUT_OF_MEMORY when it could
 * not be copied (logged only when that is news: the next calls try again,
 * and must not flood the log while memory stays short). */
static char *default_dir(bool *out_of_memory)
{
	const char *env = secure_getenv("WRENCH_DIR");
	char *copy;

	*out_of_memory = false;
	if (env && *env && wrench__check_dir_path(env) < 0) {
		wrench__log(WRENCH_LOG_ERROR,
		            "WRENCH_DIR=\"%.256s\" is not an absolute path without \"..\"; "
		            "every failure point stays inactive",
		            env);
		return NULL;
	}
	copy = strdup(env && *env ? env : WRENCH_DEFAULT_DIR);
	if (!copy) {
		*out_of_memory = true;
		if (!atomic_exchange(&told_dir_out_of_memory, true))
			wrench__log(WRENCH_LOG_WARN,
			            "out of memory copying the trigger directory's path; calls "
			            "answer false until a call can copy it");
	} else {
		atomic_store(&told_dir_out_of_memory, false);
	}
	return copy;
}

int wrench__set_dir(const char *path)
{
	char *copy = NULL;
	bool out_of_memory = false;

	if (path) {
		int rc = wrench__check_dir_path(path);
		if (rc < 0)
			return rc;
		if (!(copy = strdup(path)))
			return -ENOMEM;
	} else {
		copy = default_dir(&out_of_memory);
		if (out_of_memory)
			return -ENOMEM;
	}
	pthread_mutex_lock(&lock);
	free(dir);
	dir = copy;
	dir_pending = false;
	drop_entries();
	pthread_mutex_unlock(&lock);
	return 0;
}

const char *wrench__get_dir(void)
{
	pthread_mutex_lock(&lock);
	const char *d = dir;
	pthread_mutex_unlock(&lock);
	return d;
}

void wrench__set_seed(const uint64_t *value)
{
	struct wrench__snapshot **dropped;
	size_t count;
	uint64_t from_env;
	bool use = value || wrench__seed_from_env(&from_env) == 0;

	pthread_mutex_lock(&lock);
	seeded = use;
	seed = value ? *value : use ? from_env : 0;
	/* Calls under way keep their version: their draws follow the old seed. */
	drop_snapshots(&dropped, &count);
	generation++;
	pthread_mutex_unlock(&lock);
	put_dropped(dropped, count);
}

void wrench__cache_init(void)
{
	uint64_t from_env;
	bool out_of_memory;
	char *d = default_dir(&out_of_memory);
	bool use = wrench__seed_from_env(&from_env) == 0;

	pthread_mutex_lock(&lock);
	dir = d;
	dir_pending = out_of_memory;
	seeded = use;
	seed = use ? from_env : 0;
	pthread_mutex_unlock(&lock);
}

void wrench__cache_atfork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

void wrench__cache_atfork_parent(void)
{
	pthread_mutex_unlock(&lock);
}

void wrench__cache_atfork_child(void)
{
	pthread_mutex_unlock(&lock);
}
