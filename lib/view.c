/*
 * The view: what the change detection knows to be current, published for
 * the hot path to read without a lock.
 *
 * A view is a table from category to the snapshot of its trigger file (or
 * to "no usable file"), plus whether the directory itself is unusable.
 * What a view says of a category never changes: a change builds a new
 * view and publishes it. A view only grows in place: a category it did
 * not know is added to it while it has room, so that the first use of N
 * categories costs O(N) in all, not a copy of the view each (100,000
 * categories took 303 s). A reader sees the new slot or an empty one,
 * and an empty one sends it to the slow path, which is right. Each thread
 * keeps a reference to the view it last used, so that reading the view a
 * thread already holds costs no write to shared memory: two threads at
 * the same failure point never contend. A thread takes the lock only when
 * a new view was published, to swap its reference.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "quiet.h"

/* One category the view knows; shared by the views that contain it. */
struct known {
	_Atomic unsigned refs;
	struct wrench__snapshot *snapshot; /* NULL: no usable file */
	uint64_t hash;
	size_t len;
	char category[];
};

struct wrench__view {
	_Atomic unsigned refs;
	uint64_t serial; /* never reused, unlike the address */
	bool dir_unusable;
	size_t mask; /* slots - 1; the table is at most half full */
	size_t count;
	/* Written under view_lock, read without it: a slot goes from empty
	 * to a category, published with release, and never back. */
	struct known *_Atomic *slot;
};

#define MAX_REMEMBERED 1024

/* How the view holds and lets go of a snapshot: the cache's functions,
 * handed down at initialisation, so that the view calls nothing above it. */
static void (*hold)(struct wrench__snapshot *snapshot);
static void (*put)(struct wrench__snapshot *snapshot);

void wrench__view_init(void (*hold_fn)(struct wrench__snapshot *),
                       void (*put_fn)(struct wrench__snapshot *))
{
	hold = hold_fn;
	put = put_fn;
}

static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t serials;
static struct wrench__view *_Atomic current;

/* The view this thread holds a reference to, released at thread exit. */
static WRENCH_TLS struct wrench__view *held;
static pthread_key_t held_key;
static pthread_once_t held_key_once = PTHREAD_ONCE_INIT;

static void known_put(struct known *k)
{
	if (k && atomic_fetch_sub(&k->refs, 1) == 1) {
		if (k->snapshot)
			put(k->snapshot);
		free(k);
	}
}

static void view_put(struct wrench__view *v)
{
	if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	for (size_t i = 0; i <= v->mask; i++)
		known_put(atomic_load_explicit(&v->slot[i], memory_order_relaxed));
	free(v->slot);
	free(v);
}

static struct known *slot_at(const struct wrench__view *v, size_t i)
{
	return atomic_load_explicit(&v->slot[i], memory_order_acquire);
}

static size_t find_slot(const struct wrench__view *v, const struct wrench__name *category)
{
	size_t i = category->hash & v->mask;
	for (struct known *k; (k = slot_at(v, i)) != NULL; i = (i + 1) & v->mask)
		if (wrench__name_is(category, k->hash, k->len, k->category))
			break;
	return i;
}

/* An empty view with room for COUNT categories. */
static struct wrench__view *view_new(size_t count)
{
	struct wrench__view *v = calloc(1, sizeof(*v));
	size_t size = 8;

	while (size < 2 * count)
		size *= 2;
	if (!v || !(v->slot = calloc(size, sizeof(*v->slot)))) {
		free(v);
		return NULL;
	}
	atomic_init(&v->refs, 1);
	v->serial = atomic_fetch_add(&serials, 1) + 1;
	v->mask = size - 1;
	return v;
}

/* Adds K (taking a reference); V has room and does not hold K's name.
 * The release store publishes K whole to readers of V. */
static void view_add(struct wrench__view *v, struct known *k)
{
	struct wrench__name name = {k->category, k->len, k->hash};

	atomic_fetch_add(&k->refs, 1);
	atomic_store_explicit(&v->slot[find_slot(v, &name)], k, memory_order_release);
	v->count++;
}

/* Answers whether V can take one more category in place. */
static bool has_room(const struct wrench__view *v)
{
	return 2 * (v->count + 1) <= v->mask + 1;
}

/* A copy of OLD without SKIP (NULL: none), with room for as many again,
 * so that the categories added next go in place. */
static struct wrench__view *view_copy(const struct wrench__view *old, const struct known *skip)
{
	struct wrench__view *v = view_new(old ? 2 * (old->count + 1) : 1);

	for (size_t i = 0; v && old && i <= old->mask; i++) {
		struct known *k = slot_at(old, i);
		if (k && k != skip)
			view_add(v, k);
	}
	return v;
}

/* Makes V the current view; the caller holds view_lock. */
static void publish(struct wrench__view *v)
{
	struct wrench__view *old = atomic_load(&current);
	atomic_store_explicit(&current, v, memory_order_release);
	atomic_store_explicit(&wrench__hot.view_now, v ? v->serial : 0, memory_order_release);
	view_put(old);
}

int wrench__view_set(const struct wrench__name *category, struct wrench__snapshot *snapshot)
{
	struct known *k = malloc(sizeof(*k) + category->len + 1);

	if (!k)
		return -ENOMEM;
	atomic_init(&k->refs, 1);
	k->snapshot = snapshot;
	if (snapshot)
		hold(snapshot);
	k->hash = category->hash;
	k->len = category->len;
	memcpy(k->category, category->s, category->len + 1);

	pthread_mutex_lock(&view_lock);
	struct wrench__view *old = atomic_load(&current);
	struct wrench__view *v = old;
	/* An agent making up category names must not grow the view without
	 * end: past the cap, names without a file are not remembered, and
	 * each call for them looks for the file. */
	if (!snapshot && old && old->count >= MAX_REMEMBERED)
		goto out;
	const struct known *replaced = old ? slot_at(old, find_slot(old, category)) : NULL;
	/* A category the view did not know goes in place; anything else
	 * changes what the view says, and makes a new one. */
	if (!old || replaced || old->dir_unusable || !has_room(old)) {
		v = view_copy(old, replaced);
		if (v)
			publish(v);
	}
	if (v)
		view_add(v, k);
out:
	pthread_mutex_unlock(&view_lock);
	known_put(k); /* the view holds its own reference */
	return v ? 0 : -ENOMEM;
}

/* Publishes an empty view, which knows nothing, or that the directory
 * is unusable. */
static void publish_empty(bool dir_unusable)
{
	struct wrench__view *v = view_new(0);

	pthread_mutex_lock(&view_lock);
	if (v) {
		v->dir_unusable = dir_unusable;
		publish(v);
	} else {
		/* Out of memory: no view at all sends every call the slow way. */
		publish(NULL);
	}
	pthread_mutex_unlock(&view_lock);
}

void wrench__view_forget_all(void)
{
	publish_empty(false);
}

void wrench__view_set_dir_unusable(void)
{
	publish_empty(true);
}

void wrench__view_forget(const struct wrench__name *category)
{
	pthread_mutex_lock(&view_lock);
	struct wrench__view *old = atomic_load(&current);
	struct known *k = old ? slot_at(old, find_slot(old, category)) : NULL;
	if (k)
		publish(view_copy(old, k));
	pthread_mutex_unlock(&view_lock);
}

static void release_held(void *unused)
{
	(void)unused;
	view_put(held);
	held = NULL;
}

static void make_held_key(void)
{
	pthread_key_create(&held_key, release_held);
}

struct wrench__view *wrench__view_acquire(bool nested)
{
	struct wrench__view *v = atomic_load_explicit(&current, memory_order_acquire);

	if (v == held && !nested)
		return v;
	pthread_mutex_lock(&view_lock);
	v = atomic_load(&current);
	if (v)
		atomic_fetch_add(&v->refs, 1);
	pthread_mutex_unlock(&view_lock);
	if (nested)
		return v; /* the caller releases it */
	pthread_once(&held_key_once, make_held_key);
	struct wrench__view *old = held;
	held = v;
	/* A non-NULL value makes pthreads call release_held at thread exit. */
	pthread_setspecific(held_key, v ? (void *)1 : NULL);
	view_put(old);
	return v;
}

uint64_t wrench__view_serial(const struct wrench__view *v)
{
	return v->serial;
}

void wrench__view_release(struct wrench__view *v)
{
	view_put(v);
}

bool wrench__view_lookup(const struct wrench__view *v, const struct wrench__name *category,
                         struct wrench__snapshot **snapshot)
{
	if (v->dir_unusable) {
		*snapshot = NULL;
		return true;
	}
	struct known *k = slot_at(v, find_slot(v, category));
	if (!k)
		return false;
	*snapshot = k->snapshot;
	return true;
}

void wrench__view_atfork_prepare(void)
{
	pthread_mutex_lock(&view_lock);
}

void wrench__view_atfork_parent(void)
{
	pthread_mutex_unlock(&view_lock);
}

void wrench__view_atfork_child(void)
{
	pthread_mutex_unlock(&view_lock);
}
