/*
 * The query behind wrench_is_active(), and the state it keeps between calls:
 * the directory and seed in force, and per category the parsed version of
 * its trigger file (a snapshot) with its counters.
 *
 * Every call re-checks the directory and the file, so a change that
 * completed before a call starts is seen by it. A snapshot is reused only
 * while the file keeps its identity (inode, size, times) and its contents:
 * then the counters go on; otherwise the file is parsed again and the
 * counters start from zero.
 *
 * One mutex guards this state. It is never held during I/O, a sleep or a
 * call to the user's logger, so it cannot make a caller wait long, and it
 * is taken around fork() so that a child always finds it free. A snapshot
 * is reference-counted: a call keeps using the version it started with
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
	uint64_t logged_problem;           /* mark of the last problem logged */
	char category[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **table;
static size_t table_size, entry_count;
static char *dir;           /* NULL: no usable directory */
static uint64_t generation; /* bumped whenever cached state is dropped */
static uint64_t dir_logged_problem;
static bool seeded;
static uint64_t seed;

static uint64_t hash_bytes(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define HASH_START 0xcbf29ce484222325ull

static bool same_identity(const struct wrench__identity *a, const struct wrench__identity *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

/* A problem is logged again only when its message or its object changes. */
static uint64_t problem_mark(const struct wrench__problem *why)
{
	uint64_t h = hash_bytes(why->message, strlen(why->message), HASH_START);
	h = hash_bytes(&why->where, sizeof(why->where), h);
	return h ? h : 1;
}

static void snapshot_put(struct wrench__snapshot *snapshot)
{
	if (snapshot && atomic_fetch_sub(&snapshot->refs, 1) == 1) {
		wrench__rules_free(snapshot->rules);
		free(snapshot);
	}
}

static struct entry **bucket_of(const char *category)
{
	return &table[hash_bytes(category, strlen(category), HASH_START) % table_size];
}

static int grow_table(void)
{
	size_t size = table_size ? table_size * 2 : 16;
	struct entry **bigger = calloc(size, sizeof(*bigger));

	if (!bigger)
		return -ENOMEM;
	struct entry **old = table;
	size_t old_size = table_size;
	table = bigger;
	table_size = size;
	for (size_t i = 0; i < old_size; i++) {
		for (struct entry *e = old[i], *next; e; e = next) {
			next = e->next;
			struct entry **b = bucket_of(e->category);
			e->next = *b;
			*b = e;
		}
	}
	free(old);
	return 0;
}

/* Finds the entry of CATEGORY, adding it if missing. Call with lock held. */
static struct entry *entry_of(const char *category)
{
	if (table_size) {
		for (struct entry *e = *bucket_of(category); e; e = e->next)
			if (strcmp(e->category, category) == 0)
				return e;
	}
	if (entry_count >= table_size && grow_table() < 0)
		return NULL;
	size_t len = strlen(category) + 1;
	struct entry *e = calloc(1, sizeof(*e) + len);
	if (!e)
		return NULL;
	memcpy(e->category, category, len);
	struct entry **b = bucket_of(category);
	e->next = *b;
	*b = e;
	entry_count++;
	return e;
}

static void drop_entries(void)
{
	for (size_t i = 0; i < table_size; i++) {
		for (struct entry *e = table[i], *next; e; e = next) {
			next = e->next;
			snapshot_put(e->snapshot);
			free(e);
		}
	}
	free(table);
	table = NULL;
	table_size = entry_count = 0;
	dir_logged_problem = 0;
	generation++;
}

/* Answers whether WHY is new for its slot (and records it); lock held. */
static bool problem_is_new(uint64_t *slot, const struct wrench__problem *why)
{
	uint64_t mark = problem_mark(why);
	bool fresh = *slot != mark;
	*slot = mark;
	return fresh;
}

static void report_dir_problem(uint64_t gen, const struct wrench__problem *why)
{
	pthread_mutex_lock(&lock);
	bool fresh = gen == generation && problem_is_new(&dir_logged_problem, why);
	pthread_mutex_unlock(&lock);
	if (fresh)
		wrench__log(why->level, "%s", why->message);
}

/* The file is gone or refused: its counters go, its problem is told once. */
static void report_file_problem(const char *category, uint64_t gen,
                                const struct wrench__problem *why)
{
	struct wrench__snapshot *old = NULL;
	bool fresh = false;

	pthread_mutex_lock(&lock);
	dir_logged_problem = 0;
	struct entry *e = gen == generation ? entry_of(category) : NULL;
	if (e) {
		old = e->snapshot;
		e->snapshot = NULL;
		fresh = problem_is_new(&e->logged_problem, why);
	}
	pthread_mutex_unlock(&lock);
	snapshot_put(old);
	if (fresh)
		wrench__log(why->level, "%s", why->message);
}

static struct wrench__snapshot *snapshot_new(const char *category, const struct wrench__file *file,
                                             uint64_t hash, bool use_seed, uint64_t seed_value)
{
	struct wrench__snapshot *s = calloc(1, sizeof(*s));

	if (!s || wrench__parse_rules(file->data, file->len, &s->rules) < 0) {
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->id = file->id;
	s->content_hash = hash;
	s->seeded = use_seed;
	for (size_t i = 0; use_seed && i < s->rules->count; i++)
		s->rules->rule[i].seed =
		        wrench__seed_for_line(seed_value, category, s->rules->rule[i].line);
	return s;
}

/* Looks for a cached snapshot of this exact file version; lock held. */
static struct wrench__snapshot *cached(struct entry *e, const struct wrench__file *file,
                                       uint64_t hash)
{
	struct wrench__snapshot *s = e->snapshot;

	if (!s || !same_identity(&s->id, &file->id) || s->content_hash != hash)
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

/*
 * Returns a referenced snapshot of FILE for CATEGORY: the cached one when
 * the file has not changed, else a new one installed in the cache. NULL when
 * memory runs out or the directory was changed meanwhile.
 */
static struct wrench__snapshot *acquire(const char *category, const char *path, uint64_t gen,
                                        const struct wrench__file *file)
{
	uint64_t hash = hash_bytes(file->data, file->len, HASH_START);
	struct wrench__snapshot *s = NULL, *old = NULL, *fresh;

	pthread_mutex_lock(&lock);
	dir_logged_problem = 0;
	struct entry *e = gen == generation ? entry_of(category) : NULL;
	if (e)
		s = cached(e, file, hash);
	bool use_seed = seeded;
	uint64_t seed_value = seed;
	pthread_mutex_unlock(&lock);
	if (s || !e)
		return s;

	/* Parse outside the lock; if another thread installed the same
	 * version meanwhile, its snapshot wins and ours goes. */
	fresh = snapshot_new(category, file, hash, use_seed, seed_value);
	if (!fresh)
		return NULL;
	pthread_mutex_lock(&lock);
	e = gen == generation ? entry_of(category) : NULL;
	if (e && !(s = cached(e, file, hash))) {
		old = e->snapshot;
		e->snapshot = fresh;
		e->logged_problem = 0;
		/* One reference for the cache; the caller keeps the first. */
		atomic_fetch_add(&fresh->refs, 1);
		s = fresh;
	}
	pthread_mutex_unlock(&lock);
	snapshot_put(old);
	if (s == fresh)
		log_parse_errors(fresh->rules, path);
	else
		snapshot_put(fresh);
	return s;
}

/* Copies the directory in force; false when there is none. */
static bool current_dir(char *buf, size_t len, uint64_t *gen)
{
	pthread_mutex_lock(&lock);
	bool usable = dir && strlen(dir) < len;
	if (usable)
		memcpy(buf, dir, strlen(dir) + 1);
	*gen = generation;
	pthread_mutex_unlock(&lock);
	return usable;
}

bool wrench__query(const char *category, const char *feature)
{
	char dirpath[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct wrench__problem why;
	struct wrench__file file;
	uint64_t gen;

	if (!current_dir(dirpath, sizeof(dirpath), &gen))
		return false;
	int dirfd = wrench__trust_open_dir(dirpath, &why);
	if (dirfd < 0) {
		report_dir_problem(gen, &why);
		return false;
	}
	int rc = wrench__trust_read_file(dirfd, dirpath, category, &file, &why);
	close(dirfd);
	if (rc < 0) {
		report_file_problem(category, gen, &why);
		return false;
	}
	snprintf(path, sizeof(path), "%s%s%s", dirpath,
	         dirpath[strlen(dirpath) - 1] == '/' ? "" : "/", category);
	struct wrench__snapshot *s = acquire(category, path, gen, &file);
	free(file.data);
	if (!s)
		return false;
	struct wrench__context ctx = {.category = category, .path = path, .seeded = s->seeded};
	bool active = wrench__evaluate(s->rules, feature, &ctx);
	snapshot_put(s);
	return active;
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

/* The default directory: $WRENCH_DIR when set, else the built-in one. */
static char *default_dir(void)
{
	const char *env = secure_getenv("WRENCH_DIR");

	if (!env || !*env)
		return strdup(WRENCH_DEFAULT_DIR);
	if (wrench__check_dir_path(env) < 0) {
		wrench__log(WRENCH_LOG_ERROR,
		            "WRENCH_DIR=\"%.256s\" is not an absolute path without \"..\"; "
		            "every failure point stays inactive",
		            env);
		return NULL;
	}
	return strdup(env);
}

int wrench__set_dir(const char *path)
{
	char *copy = NULL;

	if (path) {
		int rc = wrench__check_dir_path(path);
		if (rc < 0)
			return rc;
		if (!(copy = strdup(path)))
			return -ENOMEM;
	} else {
		copy = default_dir();
	}
	pthread_mutex_lock(&lock);
	free(dir);
	dir = copy;
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
	uint64_t from_env;
	bool use = value || wrench__seed_from_env(&from_env) == 0;

	pthread_mutex_lock(&lock);
	seeded = use;
	seed = value ? *value : use ? from_env : 0;
	drop_entries();
	pthread_mutex_unlock(&lock);
}

void wrench__cache_init(void)
{
	uint64_t from_env;
	char *d = default_dir();
	bool use = wrench__seed_from_env(&from_env) == 0;

	pthread_mutex_lock(&lock);
	dir = d;
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
