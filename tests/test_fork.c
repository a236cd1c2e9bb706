/*
 * fork() while other threads load: the child must find every lock of the
 * library free, whatever the other threads held at that instant.
 *
 * Loader threads keep loading categories never seen before, each with a
 * trigger file of its own, so that every call goes the whole way: the
 * walk, the parse, the machine-wide counters and what they tell once. The
 * main thread forks meanwhile; each child loads a category of its own and
 * exits. A lock that a loader held at the fork, and that no fork handler
 * took, stays held in the child for ever: the child hangs, and the parent,
 * which waits for it a bounded time, kills it and fails the test.
 *
 * Such a window is a few instructions wide, so it is made certain: this
 * executable is linked with --wrap=pthread_mutex_lock (tests/CMakeLists.txt).
 * A first fork, before the loaders start, tells which mutexes the library's
 * fork handlers take (the forking thread locks them inside fork()); then a
 * loader that takes any other is parked right after, holding it, until a
 * child has been forked. The forks go on after that, at whatever instants
 * the loads are at, until enough of them were made while loads were under
 * way.
 *
 * Under ThreadSanitizer and AddressSanitizer the instants are narrowed:
 * clang 14's runtimes do not take their allocators' locks around fork()
 * (ThreadSanitizer's came with LLVM 19, llvm-project pull request 96600),
 * and a child forked while another thread allocates or frees memory can
 * hang in the sanitizer's allocator, whatever the library does (a hung
 * child under AddressSanitizer was seen waiting in its allocator's
 * semaphore, from malloc in the parser). There, fork() goes on only once
 * every loader is blocked on a lock the fork handlers hold: loads are
 * under way, and none is inside the allocator.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FEATURE "boom"
#define LOADERS 3
/* Forks made while a load was under way, after the one with a loader
 * parked; the run ends once it has them. */
#define FORKS_UNDER_LOAD 100
/* The most the run may take, and a child, before it is taken as hung; a
 * loaded machine, or a sanitizer, takes seconds. A 2-core VM running
 * another suite beside it took over 60 s for the 100 forks under load
 * (each child's copy-on-write faults are slow there), with the library
 * before and after the points reached alike: the run ends as soon as it
 * has them, so only a slow machine waits longer. A parked loader waits
 * for the fork at most PARK_SECONDS. */
#define DEADLINE_NS  (150 * 1000000000ull)
#define CHILD_NS     (20 * 1000000000ull)
#define PARK_SECONDS 60
#define MAX_LOCKS    32

/* ThreadSanitizer and AddressSanitizer of clang 14 take no lock of their
 * allocators around fork(): a child forked while another thread is inside
 * malloc() can hang in the sanitizer's allocator, not in the library (seen
 * with gdb in both). Under them, fork() waits until the loaders block. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WITH_SANITIZER_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WITH_SANITIZER_ALLOCATOR 1
#endif
#ifndef WITH_SANITIZER_ALLOCATOR
#define WITH_SANITIZER_ALLOCATOR 0
#endif

int __real_pthread_mutex_lock(pthread_mutex_t *mutex);
int __wrap_pthread_mutex_lock(pthread_mutex_t *mutex);

/* Set around fork() by the thread that forks, and around its calls by a
 * loader: what each locks then is the library's. */
static _Thread_local bool forking, loading;

/* The mutexes the fork handlers take; written by the forking thread only. */
static _Atomic(pthread_mutex_t *) fork_locks[MAX_LOCKS];
static atomic_uint fork_lock_count;

/* Armed: the next loader to take a mutex that no fork handler takes parks
 * (and disarms it). */
static atomic_bool park_armed;
static sem_t parked, resume;

static bool taken_by_fork(pthread_mutex_t *mutex)
{
	unsigned n = atomic_load(&fork_lock_count);
	for (unsigned i = 0; i < n; i++)
		if (atomic_load(&fork_locks[i]) == mutex)
			return true;
	return false;
}

static void note_fork_lock(pthread_mutex_t *mutex)
{
	unsigned n = atomic_load(&fork_lock_count);
	if (n < MAX_LOCKS && !taken_by_fork(mutex)) {
		atomic_store(&fork_locks[n], mutex);
		atomic_store(&fork_lock_count, n + 1);
	}
}

static int wait_at_most(sem_t *sem, unsigned seconds)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	while ((rc = sem_timedwait(sem, &until)) < 0 && errno == EINTR)
		;
	return rc;
}

int __wrap_pthread_mutex_lock(pthread_mutex_t *mutex)
{
	int rc = __real_pthread_mutex_lock(mutex);

	if (rc == 0 && forking) {
		note_fork_lock(mutex);
	} else if (rc == 0 && loading && !taken_by_fork(mutex) &&
	           atomic_exchange(&park_armed, false)) {
		int saved = errno;
		sem_post(&parked);
		wait_at_most(&resume, PARK_SECONDS);
		errno = saved;
	}
	return rc;
}

/* What the loaders did, and the first thing that went wrong. */
struct run {
	const char *dir;
	atomic_bool stop;
	atomic_uint in_flight;
	_Atomic uint64_t loads;
	atomic_bool failed;
	char failure[256]; /* written by the thread that set failed */
};

/* The one run: the logger judges it too. */
static struct run run;

static void fail_run(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_run(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&r->failed, true))
		return;
	va_start(ap, fmt);
	vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
	va_end(ap);
}

/* Writes the trigger file NAME, with one line; no assertion: loaders are
 * not the thread that cmocka runs the test in. */
static int put_trigger(const char *dir, const char *name)
{
	char path[512];
	static const char line[] = FEATURE "\n";

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = write(fd, line, sizeof(line) - 1) == (ssize_t)sizeof(line) - 1 ? 0 : -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

struct loader {
	struct run *run;
	unsigned id;
	_Atomic pid_t tid; /* 0: not started */
	atomic_bool loaded, done;
};

/* The loaders, for the fork handler below. */
static struct loader loader[LOADERS];

/* Under a sanitizer (above), the last handler to run before the test's fork()
 * (it was registered before the library's, and prepare handlers run in
 * the reverse order): waits until every loader sleeps, which it soon does
 * on one of the library's locks, held by the handlers that ran before. */
static void wait_for_loaders_to_block(void)
{
	uint64_t until = now_ns() + CHILD_NS;

	if (!WITH_SANITIZER_ALLOCATOR || !forking)
		return;
	for (unsigned i = 0; i < LOADERS; i++) {
		pid_t tid = atomic_load(&loader[i].tid);
		while (tid && !atomic_load(&loader[i].done) && !thread_is_asleep(tid)) {
			if (now_ns() >= until) {
				fail_run(&run,
				         "loader %u never blocked while the fork handlers held "
				         "the library's locks",
				         i);
				return;
			}
			nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
		}
	}
}

static void *loader_main(void *arg)
{
	struct loader *l = arg;
	struct run *r = l->run;
	char name[64];

	atomic_store(&l->tid, gettid());
	for (unsigned n = 0; !atomic_load(&r->stop) && !atomic_load(&r->failed); n++) {
		snprintf(name, sizeof(name), "load-%u-%u", l->id, n);
		int rc = put_trigger(r->dir, name);
		if (rc < 0) {
			fail_run(r, "writing %s: %s", name, strerror(-rc));
			break;
		}
		atomic_fetch_add(&r->in_flight, 1);
		loading = true;
		bool active = wrench_is_active(name, FEATURE);
		loading = false;
		atomic_fetch_sub(&r->in_flight, 1);
		atomic_fetch_add(&r->loads, 1);
		atomic_store(&l->loaded, true);
		if (!active)
			fail_run(r, "a loader's call for %s answered false", name);
	}
	atomic_store(&l->done, true);
	return NULL;
}

/* Waits for PID at most CHILD_NS; kills it past that. Returns whether it
 * ended by itself, with its status in *STATUS. */
static bool wait_for_child(pid_t pid, int *status)
{
	uint64_t until = now_ns() + CHILD_NS;

	for (;;) {
		pid_t got = waitpid(pid, status, WNOHANG);
		if (got == pid)
			return true;
		if (got < 0 && errno != EINTR)
			return false;
		if (now_ns() >= until) {
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return false;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
}

/* Forks child K, which loads its own category, never loaded before, and
 * exits; fails the run unless the call answered true and it exited in
 * time. WHEN says when it was forked, for the failure. */
static void fork_child(struct run *r, unsigned k, const char *when)
{
	char name[32];
	int status = 0;

	snprintf(name, sizeof(name), "child-%u", k);
	int rc = put_trigger(r->dir, name);
	if (rc < 0) {
		fail_run(r, "writing %s: %s", name, strerror(-rc));
		return;
	}
	forking = true;
	pid_t pid = fork();
	if (pid == 0) {
		forking = false;
		_exit(wrench_is_active(name, FEATURE) ? 0 : 1);
	}
	forking = false;
	if (pid < 0)
		fail_run(r, "fork: %s", strerror(errno));
	else if (!wait_for_child(pid, &status))
		fail_run(r,
		         "child %u, forked %s, was still running after %llu s: a lock it needed "
		         "was held by a thread it does not have",
		         k, when, CHILD_NS / 1000000000ull);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_run(r, "child %u, forked %s, failed (wait status %#x)", k, when,
		         (unsigned)status);
}

/* Waits until every loader made a load, or the run failed, or UNTIL. */
static bool wait_for_loads(struct run *r, uint64_t until)
{
	for (unsigned i = 0; i < LOADERS && !atomic_load(&r->failed); i++) {
		while (!atomic_load(&loader[i].loaded) && !atomic_load(&r->failed)) {
			if (now_ns() >= until) {
				fail_run(r, "loader %u made no load", i);
				return false;
			}
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		}
	}
	return !atomic_load(&r->failed);
}

/*
 * Arms the park and forks child *K once a loader is parked holding a mutex
 * that no fork handler took. Returns whether a loader parked; none does
 * once a whole load went by without taking such a mutex: each loader
 * finishes at most one load begun before the park was armed.
 */
static bool fork_with_a_loader_parked(struct run *r, unsigned *k, uint64_t until)
{
	uint64_t armed_at = atomic_load(&r->loads);

	atomic_store(&park_armed, true);
	while (sem_trywait(&parked) < 0) {
		bool whole_load = atomic_load(&r->loads) > armed_at + LOADERS;
		bool give_up = atomic_load(&r->failed) || now_ns() >= until;
		/* Not disarmed: a loader took the park, and parks at once. */
		if ((whole_load || give_up) && atomic_exchange(&park_armed, false)) {
			if (!whole_load)
				fail_run(r, "no whole load went by after the park was armed");
			return false;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	if (!atomic_load(&r->failed))
		fork_child(r, (*k)++, "while a loader held a mutex that no fork handler takes");
	sem_post(&resume);
	return true;
}

static void test_a_child_forked_while_threads_load_new_categories_runs(void **state)
{
	struct run *r = &run;
	pthread_t thread[LOADERS];
	uint64_t until = now_ns() + DEADLINE_NS;
	unsigned k = 0, under_load = 0;
	bool parked_one = false;

	r->dir = scratch_dir(state);
	/* The fork handlers take their mutexes whatever other threads do. */
	fork_child(r, k++, "before the loaders started");
	for (unsigned i = 0; i < LOADERS; i++) {
		loader[i].run = r;
		loader[i].id = i;
		assert_int_equal(pthread_create(&thread[i], NULL, loader_main, &loader[i]), 0);
	}
	if (wait_for_loads(r, until))
		parked_one = fork_with_a_loader_parked(r, &k, until);
	while (!atomic_load(&r->failed) && under_load < FORKS_UNDER_LOAD) {
		if (now_ns() >= until) {
			fail_run(r, "only %u of %u forks were made while loads were under way",
			         under_load, FORKS_UNDER_LOAD);
			break;
		}
		bool busy = atomic_load(&r->in_flight) > 0;
		fork_child(r, k++, "while loaders ran");
		under_load += busy;
	}
	atomic_store(&r->stop, true);
	for (unsigned i = 0; i < LOADERS; i++)
		assert_int_equal(pthread_join(thread[i], NULL), 0);
	if (atomic_load(&r->failed))
		fail_msg("%s", r->failure);
	print_message("%u children forked, %u during loads, %s; %llu loads\n", k, under_load,
	              parked_one ? "one with a loader parked holding a lock no fork handler takes"
	                         : "every mutex a load took was the fork handlers'",
	              (unsigned long long)atomic_load(&r->loads));
}

/* Takes no lock: the loaders must hold none of the test's own when a child
 * is forked. Each first fire is a WARN, and no ERROR is expected. */
static void judge_message(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)ctx;
	if (level == WRENCH_LOG_ERROR)
		fail_run(&run, "the library logged an ERROR: %s", message);
}

static int fork_setup(void **state)
{
	int rc = scratch_setup(state);
	wrench_set_logger(judge_message, NULL);
	return rc;
}

static int fork_teardown(void **state)
{
	log_capture_install();
	return scratch_teardown(state);
}

static int group_setup(void **state)
{
	(void)state;
	return sem_init(&parked, 0, 0) < 0 || sem_init(&resume, 0, 0) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sem_destroy(&parked);
	sem_destroy(&resume);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(
	                test_a_child_forked_while_threads_load_new_categories_runs, fork_setup,
	                fork_teardown),
	};
	/* Before the library registers its handlers, at its first use. */
	if (pthread_atfork(wait_for_loaders_to_block, NULL, NULL) != 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
