/*
 * Races between calls for one category: a call that is slow with its I/O
 * must never undo what a later call found, or a times=1 line fires twice.
 *
 * The interleavings are exact, not a matter of timing. This executable is
 * linked with --wrap=read and --wrap=openat (see tests/CMakeLists.txt), so
 * the library's read() and openat() go through the wrappers below. A thread
 * that asks for it is parked inside one of them, at the point chosen, until
 * the test has made its change and let another call run; then it goes on.
 *
 * A race with the kernel cannot be parked: inotify_add_watch() goes
 * through a wrapper too, which tells whether a walk ever set a watch in a
 * way that leaves a gap for a change to fall through.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CAT "race"

/* How long a parked thread, or the test waiting for one or for the
 * library, waits at most: on a loaded machine a thread may wait seconds
 * for its turn. */
#define WAIT_SECONDS 30

/* Where the calling thread is to be parked, once. */
enum park_point {
	PARK_NOWHERE,
	PARK_AFTER_READ,         /* read() returned the file's bytes */
	PARK_AFTER_MISSING_OPEN, /* openat() of the trigger file said ENOENT */
};

static _Thread_local enum park_point park_at;
static sem_t parked, resume;

ssize_t __real_read(int fd, void *buf, size_t count);
ssize_t __wrap_read(int fd, void *buf, size_t count);
ssize_t __real___read_chk(int fd, void *buf, size_t count, size_t buflen);
ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);

static struct timespec deadline(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECONDS;
	return ts;
}

static int wait_at_most(sem_t *sem)
{
	struct timespec until = deadline();
	int rc;
	while ((rc = sem_timedwait(sem, &until)) < 0 && errno == EINTR)
		;
	return rc;
}

/* Tells the test this thread got there, and waits until it says go on. */
static void park(void)
{
	int saved = errno;
	park_at = PARK_NOWHERE;
	sem_post(&parked);
	wait_at_most(&resume);
	errno = saved;
}

/*
 * The thread is parked after the read, not before: it then holds the old
 * contents whatever happens to the file meanwhile (even a rewrite in
 * place), and the library has taken its look at the cache before opening
 * the file. All that is left for the call is to store what it read.
 */
ssize_t __wrap_read(int fd, void *buf, size_t count)
{
	ssize_t n = __real_read(fd, buf, count);
	if (n > 0 && park_at == PARK_AFTER_READ)
		park();
	return n;
}

/* What read() becomes in builds with _FORTIFY_SOURCE (Ubuntu's default). */
ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	ssize_t n = __real___read_chk(fd, buf, count, buflen);
	if (n > 0 && park_at == PARK_AFTER_READ)
		park();
	return n;
}

/* Parked once the trigger file is known to be missing: the call has yet to
 * record that it found nothing. The walk down the directory's path uses
 * openat() too, but never with the category's name. */
int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	int fd = __real_openat(dirfd, path, flags, mode);
	if (fd < 0 && errno == ENOENT && park_at == PARK_AFTER_MISSING_OPEN &&
	    strcmp(path, CAT) == 0)
		park();
	return fd;
}

/* The watches the library was given, and how often it set one again
 * without IN_MASK_ADD. The kernel replaces the mask by clearing it first:
 * a change made in that instant, by another process or thread, is dropped
 * without a trace (the trigger directory recreated in /tmp while a walk
 * passes /tmp), and the next calls answer from what is no longer there. */
#define KNOWN_WDS 4096
static pthread_mutex_t watch_record_lock = PTHREAD_MUTEX_INITIALIZER;
static bool wd_known[KNOWN_WDS];
static unsigned watch_calls, watch_replaced;

int __real_inotify_add_watch(int fd, const char *path, uint32_t mask);
int __wrap_inotify_add_watch(int fd, const char *path, uint32_t mask);

int __wrap_inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	int wd = __real_inotify_add_watch(fd, path, mask);
	int saved = errno;

	pthread_mutex_lock(&watch_record_lock);
	watch_calls++;
	if (wd >= 0 && wd < KNOWN_WDS) {
		if (wd_known[wd] && !(mask & IN_MASK_ADD))
			watch_replaced++;
		wd_known[wd] = true;
	}
	pthread_mutex_unlock(&watch_record_lock);
	errno = saved;
	return wd;
}

static unsigned watch_record(unsigned *replaced)
{
	pthread_mutex_lock(&watch_record_lock);
	unsigned calls = watch_calls;
	*replaced = watch_replaced;
	pthread_mutex_unlock(&watch_record_lock);
	return calls;
}

static int group_setup(void **state)
{
	(void)state;
	if (sem_init(&parked, 0, 0) < 0 || sem_init(&resume, 0, 0) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sem_destroy(&parked);
	sem_destroy(&resume);
	return 0;
}

/* Thread A: one call for "boom", parked at AT on the way. */
struct slow_call {
	enum park_point at;
	bool active;
};

static void *slow_call_main(void *arg)
{
	struct slow_call *a = arg;
	park_at = a->at;
	a->active = wrench_is_active(CAT, "boom");
	park_at = PARK_NOWHERE;
	return NULL;
}

static void start_parked(pthread_t *thread, struct slow_call *a)
{
	assert_int_equal(pthread_create(thread, NULL, slow_call_main, a), 0);
	if (wait_at_most(&parked) < 0) {
		/* Release it should it get there late, then give up. */
		sem_post(&resume);
		pthread_join(*thread, NULL);
		while (sem_trywait(&resume) == 0)
			;
		fail_msg("the call never reached the point where it was to be parked: does the "
		         "library still use read() and openat(), and is the test linked with "
		         "--wrap?");
	}
}

static void finish(pthread_t thread)
{
	sem_post(&resume);
	assert_int_equal(pthread_join(thread, NULL), 0);
}

static void test_slow_reader_of_an_old_version_does_not_undo_a_newer_one(void **state)
{
	const char *dir = scratch_dir(state);
	struct slow_call a = {PARK_AFTER_READ, false};
	pthread_t thread;

	/* A reads the old version, which nobody has cached yet. */
	write_file(dir, CAT, "quiet\n", 0644);
	start_parked(&thread, &a);

	/* Meanwhile the file is replaced, and B's call fires the new line. */
	write_file(dir, CAT, "boom times=1\n", 0644);
	assert_true(wrench_is_active(CAT, "boom"));

	/* A now stores what it read: it must not be the old version, or B's
	 * next call finds a new version again, with fresh counters. */
	finish(thread);
	assert_false(a.active);
	assert_false(wrench_is_active(CAT, "boom"));
	assert_int_equal(count_active(CAT, "boom", 5), 0);
}

static void test_call_that_found_no_file_does_not_drop_a_newer_version(void **state)
{
	const char *dir = scratch_dir(state);
	struct slow_call a = {PARK_AFTER_MISSING_OPEN, false};
	pthread_t thread;

	/* A finds no trigger file... */
	start_parked(&thread, &a);

	/* ...just before it is created, and B's call fires it. */
	write_file(dir, CAT, "boom times=1\n", 0644);
	assert_true(wrench_is_active(CAT, "boom"));

	/* A records that it saw no file: that must not drop the version B
	 * found, with its spent times=1. */
	finish(thread);
	assert_false(a.active);
	assert_false(wrench_is_active(CAT, "boom"));
	assert_int_equal(count_active(CAT, "boom", 5), 0);
}

static void test_a_walk_sets_its_watches_again_without_a_gap(void **state)
{
	const char *dir = scratch_dir(state);
	struct stat st;
	unsigned replaced;

	/* The first call walks from "/" and watches every step. */
	write_file(dir, CAT, "boom\n", 0644);
	assert_true(wrench_is_active(CAT, "boom"));
	unsigned before = watch_record(&replaced);
	assert_true(before >= 3);

	/* A change to the directory itself: the next call walks again, past
	 * the same ancestors, and sets their watches again. Relaxed mode sees
	 * it within its period; the deadline is generous. */
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(chmod(dir, st.st_mode & 07777), 0);
	uint64_t until = now_ns() + WAIT_SECONDS * 1000000000ull;
	while (watch_record(&replaced) == before && now_ns() < until) {
		assert_true(wrench_is_active(CAT, "boom"));
		struct timespec pause = {0, 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	assert_true(watch_record(&replaced) > before);
	assert_true(wrench_is_active(CAT, "boom"));
	if (replaced)
		fail_msg("%u watch(es) set again without IN_MASK_ADD: the kernel clears the mask "
		         "meanwhile, and a change made in that instant is lost",
		         replaced);
}

#define RACE_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        RACE_TEST(test_slow_reader_of_an_old_version_does_not_undo_a_newer_one),
	        RACE_TEST(test_call_that_found_no_file_does_not_drop_a_newer_version),
	        RACE_TEST(test_a_walk_sets_its_watches_again_without_a_gap),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
