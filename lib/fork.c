/*
 * fork() and the library's locks: the one list of them, in the order they
 * nest, from which the fork handlers are made (api.c registers them once).
 *
 * In the child only the thread that forked exists. A lock another thread
 * held at that instant would stay held for ever, and whatever it guarded
 * could be half changed; so every lock is taken before fork() and released
 * after it, on both sides, and the child first makes what each guards fit
 * for a process of its own (its file's child handler says how).
 *
 * The order is the nesting: a lock comes before every lock that may be
 * taken while it is held, or two threads, one forking, could each wait for
 * the other. Today only change detection nests:
 *   watch_lock (watch.c)  is held around the ring's refresh and the view's
 *                         changes;
 *   ring_lock (ring.c)    is taken inside it, and its inotify reader, called
 *                         back, may clear the view;
 *   view_lock (view.c)    is taken inside both.
 * The others are leaves: no lock is taken while one is held (a load calls
 * down holding none, and messages are logged once locks are released), so
 * their place is free; they follow the calls down. A new lock goes in the
 * list where its nesting puts it: one left out can hang a child on it, as
 * told_lock did (tests/test_fork.c).
 *
 * Prepare takes the locks in order. The parent releases them in reverse.
 * The child runs its handlers in reverse too, each releasing its lock last:
 * a handler then runs with the locks after it free, which it may take
 * (watch.c's clears the view), and the ones before it still held.
 */
#include <stddef.h>

#include "internal.h"

/* One lock: PREPARE takes it, PARENT releases it, CHILD makes what it
 * guards fit for the child and releases it. NULL: nothing to do. */
struct fork_lock {
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(void);
};

/* A lock's handlers: its file's wrench__NAME_atfork_prepare, _parent and
 * _child. */
#define HANDLER(name, when) wrench__##name##_atfork_##when
#define HANDLERS(name)      HANDLER(name, prepare), HANDLER(name, parent), HANDLER(name, child)

static const struct fork_lock locks[] = {
        {HANDLERS(watch)},        /* watch.c's watch_lock */
        {HANDLERS(ring)},         /* ring.c's ring_lock */
        {HANDLERS(view)},         /* view.c's view_lock */
        {HANDLERS(query)},        /* query.c's dir_cache_lock */
        {HANDLERS(cache)},        /* cache.c's lock */
        {HANDLERS(state_mapped)}, /* state.c's mapped_lock */
        {HANDLERS(state_told)},   /* state.c's told_lock */
        {HANDLERS(points)},       /* points.c's points_lock */
        {HANDLERS(log)},          /* log.c's sink_lock */
        /* No lock: each thread draws from its own generator, which the
         * child must not share with its parent (random.c). */
        {NULL, NULL, wrench__random_atfork_child},
        /* No lock: the process id kept to spare a system call (state.c). */
        {NULL, NULL, wrench__pid_atfork_child},
};

#define LOCKS (sizeof(locks) / sizeof(locks[0]))

void wrench__fork_prepare(void)
{
	for (size_t i = 0; i < LOCKS; i++)
		if (locks[i].prepare)
			locks[i].prepare();
}

void wrench__fork_parent(void)
{
	for (size_t i = LOCKS; i-- > 0;)
		if (locks[i].parent)
			locks[i].parent();
}

void wrench__fork_child(void)
{
	for (size_t i = LOCKS; i-- > 0;)
		if (locks[i].child)
			locks[i].child();
}
