/*
 * What the library does when the process runs short or is interrupted:
 * a passing shortage (EMFILE, ENOMEM) is never remembered as "no trigger"
 * or "directory unusable", change detection survives a watch that cannot
 * be set and a main thread that exits, and a call from a signal handler
 * answers false instead of deadlocking.
 *
 * The failures are injected, not provoked: this executable is linked with
 * --wrap for openat, malloc, calloc, strdup, inotify_add_watch, read and
 * fallocate (see tests/CMakeLists.txt), so the library's calls go through
 * the wrappers below, which fail when the test asks them to.
 */
#include "quiet.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAT   "agent"
#define OTHER "other"

/* ---- the wrappers ----------------------------------------------------------- */

/* What to fail, for the thread that asked: the next COUNT calls (for
 * openat, only those that open NAME), with ERR. */
struct injection {
	unsigned count;
	int err;
	const char *name;
	size_t size; /* malloc: only allocations of this size (0: any) */
};

static _Thread_local struct injection fail_openat, fail_malloc, fail_calloc, fail_strdup;
/* Every thread: the test counts a detection that keeps failing. */
static _Atomic int fail_watch;          /* the errno of a failing inotify_add_watch, or 0 */
static _Atomic unsigned opened_by_name; /* openat() calls for opened_name */
static const char *_Atomic opened_name;
static _Thread_local bool raise_in_read;
static _Atomic int fail_fallocate; /* the errno of a failing fallocate, or 0 */

int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
char *__real_strdup(const char *s);
char *__wrap_strdup(const char *s);
int __real_inotify_add_watch(int fd, const char *path, uint32_t mask);
int __wrap_inotify_add_watch(int fd, const char *path, uint32_t mask);
ssize_t __real_read(int fd, void *buf, size_t count);
ssize_t __wrap_read(int fd, void *buf, size_t count);
ssize_t __real___read_chk(int fd, void *buf, size_t count, size_t buflen);
ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen);
int __real_fallocate(int fd, int mode, off_t offset, off_t len);
int __wrap_fallocate(int fd, int mode, off_t offset, off_t len);

int __wrap_fallocate(int fd, int mode, off_t offset, off_t len)
{
	int err = atomic_load(&fail_fallocate);
	if (err) {
		errno = err;
		return -1;
	}
	return __real_fallocate(fd, mode, offset, len);
}

/* Answers whether this call is one to fail, counting it. */
static bool injected(struct injection *what)
{
	if (what->count == 0)
		return false;
	what->count--;
	errno = what->err;
	return true;
}

int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	const char *counted = atomic_load(&opened_name);
	/* Loads only: the category's counters, opened for writing, share its
	 * name. */
	if (counted && strcmp(path, counted) == 0 && (flags & O_ACCMODE) == O_RDONLY)
		atomic_fetch_add(&opened_by_name, 1);
	if (fail_openat.count && strcmp(path, fail_openat.name) == 0 && injected(&fail_openat))
		return -1;
	return __real_openat(dirfd, path, flags, mode);
}

void *__wrap_malloc(size_t size)
{
	if ((fail_malloc.size == 0 || fail_malloc.size == size) && injected(&fail_malloc))
		return NULL;
	return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (injected(&fail_calloc))
		return NULL;
	return __real_calloc(n, size);
}

char *__wrap_strdup(const char *s)
{
	if (injected(&fail_strdup))
		return NULL;
	return __real_strdup(s);
}

int __wrap_inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	int err = atomic_load(&fail_watch);
	if (err) {
		errno = err;
		return -1;
	}
	return __real_inotify_add_watch(fd, path, mask);
}

/* The signal comes while the library is inside read(): in the steady
 * state, the read of the change detection, under its lock. */
static void maybe_raise(void)
{
	if (raise_in_read) {
		raise_in_read = false;
		raise(SIGUSR1);
	}
}

ssize_t __wrap_read(int fd, void *buf, size_t count)
{
	maybe_raise();
	return __real_read(fd, buf, count);
}

ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	maybe_raise();
	return __real___read_chk(fd, buf, count, buflen);
}

/* ---- fixtures --------------------------------------------------------------- */

/* Nothing injected: a name left over would point into a freed test's
 * scratch directory. */
static void inject_nothing(void)
{
	fail_openat = fail_malloc = fail_calloc = fail_strdup = (struct injection){0};
	atomic_store(&fail_watch, 0);
	atomic_store(&fail_fallocate, 0);
	atomic_store(&opened_name, NULL);
}

static int setup(void **state)
{
	inject_nothing();
	return scratch_setup(state);
}

static int teardown(void **state)
{
	inject_nothing();
	return scratch_teardown(state);
}

static int quiet_setup(void **state)
{
	inject_nothing();
	return quiet_scratch_setup(state);
}

/* Where most tests start: CAT loaded (the directory watched, the ring
 * made), OTHER written and not yet loaded. */
static void cat_loaded_other_written(const char *dir)
{
	write_file(dir, CAT, "step\n", 0600);
	write_file(dir, OTHER, "step\n", 0600);
	assert_true(wrench_is_active(CAT, "step"));
}

/* The last component of PATH. */
static const char *base_name(const char *path)
{
	return strrchr(path, '/') + 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the counters fail closed ------------------------------------------- */

/* This process's counters file in DIR's state directory, by name. */
static const char *counters_name(char *buf, size_t len)
{
	snprintf(buf, len, "counters-v3-%u", (unsigned)geteuid());
	return buf;
}

/* Calls FEATURE, which must answer false, until the counters are in use
 * again (the back-off is over and a load attached them), within a minute. */
static void call_until_the_counters_are_back(const char *feature)
{
	uint64_t deadline = now_ns() + 60ull * 1000000000u;

	do {
		assert_false(wrench_is_active(CAT, feature));
		if (!wrench__state_next_try_ms())
			return;
		sleep_ms(5);
	} while (now_ns() < deadline);
	fail_msg("the counters were not tried again within a minute");
}

/* One EMFILE opening the counters file (a connection flood, say) must not
 * make a spent line count per process: it would fire again. */
static void test_a_shortage_opening_the_counters_never_rearms_a_spent_line(void **state)
{
	const char *dir = scratch_dir(state);
	char name[64];
	write_file(dir, CAT, "crash times=1\nplain\n", 0600);
	assert_true(wrench_is_active(CAT, "crash"));
	assert_false(wrench_is_active(CAT, "crash"));

	/* As a restarted agent: everything is loaded again. */
	fail_openat = (struct injection){
	        .count = 1000000, .err = EMFILE, .name = counters_name(name, sizeof(name))};
	assert_int_equal(wrench_set_dir(dir), 0);
	log_capture_reset();
	assert_int_equal(count_active(CAT, "crash", 5), 0);
	assert_true(wrench_is_active(CAT, "plain"));
	if (!log_has(WRENCH_LOG_WARN, "Too many open files", "never fire", "tried again shortly",
	             (const char *)NULL)) {
		log_dump();
		fail_msg("the shortage was not told with its consequence");
	}
	/* The shortage passes: the line keeps the counts it had. */
	fail_openat = (struct injection){0};
	call_until_the_counters_are_back("crash");
	assert_false(wrench_is_active(CAT, "crash"));
}

/* A line not yet spent fires again, once the shortage is over, from the
 * counts it had: no fire is lost or added. */
static void test_a_line_fires_from_its_counts_once_a_shortage_is_over(void **state)
{
	const char *dir = scratch_dir(state);
	char name[64];
	write_file(dir, CAT, "step times=2\n", 0600);
	assert_true(wrench_is_active(CAT, "step"));

	fail_openat = (struct injection){
	        .count = 1000000, .err = ENFILE, .name = counters_name(name, sizeof(name))};
	assert_int_equal(wrench_set_dir(dir), 0);
	assert_int_equal(count_active(CAT, "step", 3), 0);
	fail_openat = (struct injection){0};
	uint64_t deadline = now_ns() + 60ull * 1000000000u;
	while (!wrench_is_active(CAT, "step"))
		if (now_ns() > deadline)
			fail_msg("the line never fired again after the shortage");
	assert_int_equal(count_active(CAT, "step", 5), 0);
}

/* Lines that need the file to grow, on a full disk: they stay off (no
 * SIGBUS, no per-process count), those with room work, and they get their
 * room once there is space. */
static void test_a_full_disk_keeps_off_the_lines_that_need_room(void **state)
{
	enum { LINES = 300 }; /* more than a category's windows in the first segment */
	static char text[LINES * 24];
	char feature[16];
	size_t len = 0;
	const char *dir = scratch_dir(state);

	write_file(dir, CAT, "first times=1\n", 0600);
	assert_true(wrench_is_active(CAT, "first")); /* creates the state file */
	write_file(dir, OTHER, "step times=2\n", 0600);
	assert_true(wrench_is_active(OTHER, "step"));
	for (int i = 0; i < LINES; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "f%d times=1\n", i);
	atomic_store(&fail_fallocate, ENOSPC);
	write_file(dir, CAT, text, 0600);
	assert_int_equal(wrench_set_dir(dir), 0);
	assert_true(wrench_is_active(CAT, "f0"));
	assert_false(wrench_is_active(CAT, "f0"));
	assert_false(wrench_is_active(CAT, "f299"));
	assert_false(wrench_is_active(CAT, "f299"));
	assert_true(log_has(WRENCH_LOG_WARN, "no room for", "No space left on device",
	                    "fix: free space", (const char *)NULL));
	/* Lines that have their room keep it, in the loads that follow. */
	assert_true(wrench_is_active(OTHER, "step"));
	assert_false(wrench_is_active(OTHER, "step"));
	atomic_store(&fail_fallocate, 0);
	uint64_t deadline = now_ns() + 60ull * 1000000000u;
	while (!wrench_is_active(CAT, "f299"))
		if (now_ns() > deadline)
			fail_msg("the line never got its room");
	assert_false(wrench_is_active(CAT, "f299"));
	for (int i = 1; i < LINES; i += 37) {
		snprintf(feature, sizeof(feature), "f%d", i);
		assert_int_equal(count_active(CAT, feature, 3), 1);
	}
}

/* A file system without fallocate(): the file gets zeroes written, past
 * its end only, and every block is there before it is used. */
static void test_counters_grow_without_fallocate(void **state)
{
	enum { LINES = 300 };
	static char text[LINES * 24];
	char path[600];
	size_t len = 0;
	struct stat st;
	const char *dir = scratch_dir(state);

	for (int i = 0; i < LINES; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "f%d every=2\n", i);
	write_file(dir, CAT, text, 0600);
	atomic_store(&fail_fallocate, EOPNOTSUPP);
	assert_true(wrench_is_active(CAT, "f0"));
	assert_true(wrench_is_active(CAT, "f299"));
	assert_false(wrench_is_active(CAT, "f299"));
	snprintf(path, sizeof(path), "%s/%s/counters-v3-%u", dir, WRENCH_STATE_DIR,
	         (unsigned)geteuid());
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 132 * 1024);
	assert_true((long long)st.st_blocks * 512 >= (long long)st.st_size);
}

/* ---- transient errors are not cached ------------------------------------ */

/* One EMFILE when the trigger file is opened: that call answers false, the
 * next one reads the unchanged file and answers true. */
static void test_emfile_opening_the_file_is_not_remembered_as_no_trigger(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	write_file(dir, CAT, "step\n", 0600);

	fail_openat = (struct injection){.count = 1, .err = EMFILE, .name = CAT};
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(fail_openat.count, 0);
	assert_true(wrench_is_active(CAT, "step"));
	assert_int_equal(count_active(CAT, "step", 10), 10);
	if (log_count(WRENCH_LOG_WARN, "Too many open files") != 1) {
		log_dump();
		fail_msg("the shortage was not logged exactly once");
	}
}

/* One EMFILE while the directory is walked must not switch off every
 * category. */
static void test_emfile_walking_the_directory_is_not_remembered_as_unusable(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	write_file(dir, CAT, "step\n", 0600);
	write_file(dir, OTHER, "step\n", 0600);

	fail_openat = (struct injection){.count = 1, .err = EMFILE, .name = base_name(dir)};
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(fail_openat.count, 0);
	assert_true(wrench_is_active(CAT, "step"));
	assert_true(wrench_is_active(OTHER, "step"));
}

/* The read buffer cannot be had once: not "no trigger" either. */
static void test_failed_read_buffer_is_not_remembered_as_no_trigger(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	/* A size nothing else allocates: the buffer is the file's size plus
	 * the byte that shows growth. */
	char text[1001];
	memset(text, '#', sizeof(text) - 2);
	memcpy(text, "step ", 5);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	write_file(dir, CAT, text, 0600);

	fail_malloc = (struct injection){.count = 1, .err = ENOMEM, .size = sizeof(text)};
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(fail_malloc.count, 0);
	assert_true(wrench_is_active(CAT, "step"));
}

/* A failed allocation when the cache looks a category up is not "the
 * directory is unusable", which switched off every category. */
static void test_allocation_failure_in_the_cache_does_not_switch_everything_off(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	cat_loaded_other_written(dir);

	fail_calloc = (struct injection){.count = 1, .err = ENOMEM};
	assert_false(wrench_is_active(OTHER, "step"));
	assert_int_equal(fail_calloc.count, 0);
	assert_true(wrench_is_active(OTHER, "step"));
	assert_true(wrench_is_active(CAT, "step"));
	assert_true(log_has(WRENCH_LOG_WARN, "out of memory", OTHER, NULL));
}

/* Run in a fresh process (the setup runs once per process): the copy of
 * the directory's path fails at initialisation. Exits 0 when the library
 * recovers, 1 when it stays disabled. */
static int strdup_fails_at_initialisation(void)
{
	fail_strdup = (struct injection){.count = 1, .err = ENOMEM};
	unsigned active = count_active(CAT, "step", 3);
	fprintf(stderr, "%u of 3 calls answered true after a failed strdup\n", active);
	return fail_strdup.count == 0 && active >= 2 ? 0 : 1;
}

static char self[4096];

static void exec_strdup_scenario(void *arg)
{
	setenv("WRENCH_DIR", arg, 1);
	execl(self, self, "strdup-fails-at-initialisation", (char *)NULL);
	_exit(127);
}

static void test_failed_strdup_at_initialisation_does_not_disable_the_library(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, CAT, "step\n", 0600);
	int status = run_in_child(exec_strdup_scenario, (void *)dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- first use of many categories is O(N) ------------------------------- */

/* Each new category used to copy the whole view, and walk the path from
 * "/" again: 100,000 categories took 303 s. A new category goes into the
 * view in place (the view in force stays the same), and the checked
 * directory is reused while nothing on the way to it changes. */
static void test_new_categories_neither_copy_the_view_nor_walk_the_path_again(void **state)
{
	const char *dir = scratch_dir(state);
	enum { CATEGORIES = 200 };
	char names[CATEGORIES][16];

	need_strict_visibility();
	for (int i = 0; i < CATEGORIES; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		write_file(dir, names[i], "step\n", 0600);
	}
	assert_true(wrench_is_active(names[0], "step"));
	struct wrench__view *view = wrench__view_acquire(false);
	assert_non_null(view);
	uint64_t serial = wrench__view_serial(view);

	atomic_store(&opened_by_name, 0);
	atomic_store(&opened_name, base_name(dir));
	unsigned active = 0, copies = 0;
	for (int i = 1; i < CATEGORIES; i++) {
		active += wrench_is_active(names[i], "step");
		view = wrench__view_acquire(false);
		copies += wrench__view_serial(view) != serial;
		serial = wrench__view_serial(view);
	}
	assert_int_equal(active, CATEGORIES - 1);
	/* The table doubles now and then: a handful of copies, not one each. */
	if (copies > 8)
		fail_msg("%u new views for %d new categories", copies, CATEGORIES - 1);
	if (atomic_load(&opened_by_name) > 1)
		fail_msg("the directory was walked %u times for %d new categories",
		         atomic_load(&opened_by_name), CATEGORIES - 1);
	assert_int_equal(count_active(names[CATEGORIES - 1], "step", 10), 10);

	/* A change on the way to the directory is still seen at once. */
	assert_int_equal(chmod(dir, 0770), 0);
	assert_false(wrench_is_active(names[1], "step"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_true(wrench_is_active(names[1], "step"));
}

/* ---- change detection does not stop for good ---------------------------- */

/* The longest a test waits for something that comes in a fraction of a
 * second (a retry after its back-off, which is at most 10 s; a thread's
 * exit): a loaded machine takes longer, a correct library never this. */
#define WAIT_NS (30 * 1000000000ull)

/* Calls for OTHER every 10 ms, each answering true, until OTHER has been
 * loaded LOADS times in all (opened_by_name counts them), as the retry of
 * what could not be watched loads it again; fails at the deadline. */
static void wait_for_loads_of_other(unsigned loads)
{
	uint64_t deadline = now_ns() + WAIT_NS;
	while (atomic_load(&opened_by_name) < loads && now_ns() < deadline) {
		assert_true(wrench_is_active(OTHER, "step"));
		sleep_ms(10);
	}
	if (atomic_load(&opened_by_name) < loads)
		fail_msg("no retry loaded " OTHER " again in %llu s",
		         (unsigned long long)(WAIT_NS / 1000000000u));
}

/* Watches cannot be set (a squatted name, a stalled mount, a limit): the
 * detection keeps running, calls stay cheap, and once watches can be set
 * again a change is seen at once. */
static void test_a_failed_watch_does_not_stop_change_detection(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	cat_loaded_other_written(dir);

	atomic_store(&fail_watch, ENOSPC);
	atomic_store(&opened_by_name, 0);
	atomic_store(&opened_name, OTHER);
	assert_int_equal(count_active(OTHER, "step", 1000), 1000);
	assert_true(wrench__watch_running());
	/* At most a load per retry, not one per call. */
	if (atomic_load(&opened_by_name) > 20)
		fail_msg("%u loads in 1000 calls while watches failed",
		         atomic_load(&opened_by_name));
	if (!log_has(WRENCH_LOG_WARN, "inotify_add_watch", "No space left on device", NULL)) {
		log_dump();
		fail_msg("no WARN saying why watches could not be set");
	}

	/* What was watched before still is. */
	char path[512];
	assert_int_equal(unlink(path_in(dir, CAT, path, sizeof(path))), 0);
	assert_false(wrench_is_active(CAT, "step"));

	/* After the retry, the file is watched: its removal is seen at once.
	 * The retry comes after a back-off that doubled with each failed one
	 * while the calls ran, which on a loaded machine can be seconds. */
	atomic_store(&fail_watch, 0);
	atomic_store(&opened_by_name, 0);
	wait_for_loads_of_other(1);
	assert_true(wrench_is_active(OTHER, "step"));
	atomic_store(&opened_by_name, 0);
	assert_int_equal(count_active(OTHER, "step", 100), 100);
	assert_int_equal(atomic_load(&opened_by_name), 0);
	assert_int_equal(unlink(path_in(dir, OTHER, path, sizeof(path))), 0);
	assert_false(wrench_is_active(OTHER, "step"));
}

/* A failed watch is set again at the retry even when nothing else
 * happens meanwhile: in strict mode with the ring, a quiet ring says that
 * no watched thing changed, not that every thing is watched. The change
 * after the retry (a hard link made in a directory the library does not
 * watch) reaches only the file's own watch. An event on anything watched
 * (an ancestor shared with other tests) would set the retry off anyway
 * and prove nothing: such a round is tried again with another category. */
static void test_a_failed_watch_is_set_again_at_the_retry_when_all_is_quiet(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512], sub[512], link_path[600], name[32];
	bool proved = false;

	need_strict_visibility();
	assert_int_equal(mkdir(path_in(dir, "elsewhere", sub, sizeof(sub)), 0700), 0);
	/* The directory and its ancestors watched, the ring made. */
	write_file(dir, CAT, "step\n", 0600);
	assert_true(wrench_is_active(CAT, "step"));
	for (int round = 0; round < 20 && !proved; round++) {
		snprintf(name, sizeof(name), "other-%d", round);
		write_file(dir, name, "step\n", 0600);
		/* Not ENOSPC: its WARN, told once, is another test's. */
		atomic_store(&fail_watch, EACCES);
		assert_true(wrench_is_active(name, "step"));
		atomic_store(&fail_watch, 0);
		sleep_ms(300); /* past the retry, 100 ms after the failure */
		bool quiet = !wrench__ring_active() || wrench__ring_quiet();
		assert_true(wrench_is_active(name, "step"));

		snprintf(link_path, sizeof(link_path), "%s/%s", sub, name);
		assert_int_equal(link(path_in(dir, name, path, sizeof(path)), link_path), 0);
		bool seen = !wrench_is_active(name, "step");
		if (quiet && !seen)
			fail_msg("round %d: a hard link made after the retry was not seen: the "
			         "retry did not come while all was quiet",
			         round);
		proved = quiet;
	}
	if (!proved)
		fprintf(stderr, "not proved: something watched changed in each of 20 rounds\n");
}

/* The name a new watch is kept under cannot be copied: that load is
 * remembered until the retry only, like one whose watch failed, and
 * change detection goes on. */
static void test_a_watch_name_that_cannot_be_copied_fails_that_load_only(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	cat_loaded_other_written(dir);

	fail_strdup = (struct injection){.count = 1, .err = ENOMEM};
	atomic_store(&opened_by_name, 0);
	atomic_store(&opened_name, OTHER);
	assert_int_equal(count_active(OTHER, "step", 1000), 1000);
	assert_int_equal(fail_strdup.count, 0);
	assert_true(wrench__watch_running());
	if (atomic_load(&opened_by_name) > 20)
		fail_msg("%u loads in 1000 calls after a failed copy",
		         atomic_load(&opened_by_name));
	if (!log_has(WRENCH_LOG_WARN, "inotify_add_watch", "Cannot allocate memory", NULL)) {
		log_dump();
		fail_msg("no WARN saying why the watch could not be kept");
	}

	/* After the retry, the file itself is watched: a hard link made in
	 * another directory, which no watch of the trigger directory hears
	 * of, is seen at once (the file then has two links and is refused).
	 * The retry loads OTHER a second time: during the calls above, or
	 * now. */
	wait_for_loads_of_other(2);
	assert_true(wrench_is_active(OTHER, "step"));
	char path[512], sub[512], link_path[600];
	assert_int_equal(mkdir(path_in(dir, "elsewhere", sub, sizeof(sub)), 0700), 0);
	assert_true(wrench_is_active(OTHER, "step"));
	snprintf(link_path, sizeof(link_path), "%s/second-name", sub);
	assert_int_equal(link(path_in(dir, OTHER, path, sizeof(path)), link_path), 0);
	assert_false(wrench_is_active(OTHER, "step"));
	/* And the category watched before still is. */
	assert_int_equal(unlink(path_in(dir, CAT, path, sizeof(path))), 0);
	assert_false(wrench_is_active(CAT, "step"));
}

/* Waits until the main thread is gone, then loads a category that was
 * never loaded: its watches are set from this thread. */
static void *outlive_main(void *arg)
{
	(void)arg;
	/* Once the main thread is gone, /proc/self/fd is empty. */
	char probe[64];
	int fd = open("/", O_PATH | O_CLOEXEC);
	snprintf(probe, sizeof(probe), "/proc/self/fd/%d", fd);
	uint64_t deadline = now_ns() + WAIT_NS;
	while (access(probe, F_OK) == 0 && now_ns() < deadline)
		sleep_ms(10);
	if (access(probe, F_OK) == 0)
		_exit(3); /* the main thread did not go */
	close(fd);
	atomic_store(&opened_by_name, 0);
	atomic_store(&opened_name, OTHER);
	unsigned active = count_active(OTHER, "step", 1000);
	bool running = wrench__watch_running();
	unsigned loads = atomic_load(&opened_by_name);
	fprintf(stderr, "after the main thread exited: %u active, running %d, %u loads\n", active,
	        running, loads);
	/* _exit: the test's own state is left behind on purpose. */
	_exit(active == 1000 && running && loads <= 2 ? 0 : 1);
}

static void main_thread_exits(void *arg)
{
	pthread_t t;
	if (pthread_create(&t, NULL, outlive_main, arg) != 0)
		_exit(4);
	pthread_exit(NULL);
}

static void test_change_detection_survives_the_main_thread_exiting(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	cat_loaded_other_written(dir);

	int status = run_in_child(main_thread_exits, NULL);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- a call from a signal handler --------------------------------------- */

static volatile sig_atomic_t handler_ran, handler_answer;

static void call_from_handler(int sig)
{
	(void)sig;
	handler_answer = wrench_is_active(CAT, "step");
	handler_ran = 1;
}

/* In a child, so that a deadlock ends with SIGALRM instead of hanging. */
static void signal_during_a_call(void *arg)
{
	const char *dir = arg;
	char path[512];
	struct sigaction sa = {.sa_handler = call_from_handler};
	sigaction(SIGUSR1, &sa, NULL);
	alarm(10);
	/* A child starts its own detection: the first call loads; in the
	 * second, the first read() is the detection's, under its lock. A
	 * change in between makes the second call read inotify with the
	 * io_uring ring too, which otherwise spares it the read(). */
	if (!wrench_is_active(CAT, "step"))
		_exit(2);
	if (chmod(path_in(dir, CAT, path, sizeof(path)), 0600) < 0)
		_exit(3);
	raise_in_read = true;
	bool outer = wrench_is_active(CAT, "step");
	_exit(handler_ran && !handler_answer && outer && !raise_in_read ? 0 : 1);
}

static void test_a_call_from_a_signal_handler_answers_false_instead_of_deadlocking(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	write_file(dir, CAT, "step\n", 0600);
	assert_true(wrench_is_active(CAT, "step"));

	int status = run_in_child(signal_during_a_call, (void *)dir);
	if (WIFSIGNALED(status))
		fail_msg("the child was killed by signal %d (SIGALRM: the handler's call "
		         "deadlocked)",
		         WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* And the thread answers as before once the handler has returned. */
	assert_true(wrench_is_active(CAT, "step"));
}

static sigjmp_buf escape;

static void jump_out(int sig)
{
	siglongjmp(escape, sig);
}

/* A handler of a kill line's signal that leaves with siglongjmp() (as a
 * test harness catching SIGABRT does) must not leave the thread marked as
 * inside a call: its later calls answer as before. */
static void test_leaving_a_kill_with_siglongjmp_leaves_later_calls_working(void **state)
{
	const char *dir = scratch_dir(state);
	need_strict_visibility();
	/* after=1: the call that loads does not fire; the next one fires on
	 * the hot path, which holds nothing that a jump out would leak. */
	write_file(dir, CAT, "step kill=USR2 after=1\n", 0600);
	write_file(dir, OTHER, "step\n", 0600);
	assert_false(wrench_is_active(CAT, "step"));

	struct sigaction sa = {.sa_handler = jump_out}, old;
	assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
	volatile int jumped = 0;
	if (sigsetjmp(escape, 1) == 0)
		(void)wrench_is_active(CAT, "step");
	else
		jumped = 1;
	assert_int_equal(sigaction(SIGUSR2, &old, NULL), 0);
	assert_int_equal(jumped, 1);
	assert_true(wrench_is_active(OTHER, "step"));
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "strdup-fails-at-initialisation") == 0)
		return strdup_fails_at_initialisation();
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return 1;
	self[n] = '\0';

	const struct CMUnitTest tests[] = {
	        /* First: the tests under /tmp leave a watch on /tmp, which
	         * hears the other tests and would keep the ring from being
	         * quiet. */
	        cmocka_unit_test_setup_teardown(
	                test_a_failed_watch_is_set_again_at_the_retry_when_all_is_quiet,
	                quiet_setup, teardown),
	        TEST(test_a_shortage_opening_the_counters_never_rearms_a_spent_line),
	        TEST(test_a_line_fires_from_its_counts_once_a_shortage_is_over),
	        TEST(test_a_full_disk_keeps_off_the_lines_that_need_room),
	        TEST(test_counters_grow_without_fallocate),
	        TEST(test_emfile_opening_the_file_is_not_remembered_as_no_trigger),
	        TEST(test_emfile_walking_the_directory_is_not_remembered_as_unusable),
	        TEST(test_failed_read_buffer_is_not_remembered_as_no_trigger),
	        TEST(test_allocation_failure_in_the_cache_does_not_switch_everything_off),
	        TEST(test_failed_strdup_at_initialisation_does_not_disable_the_library),
	        TEST(test_new_categories_neither_copy_the_view_nor_walk_the_path_again),
	        TEST(test_a_failed_watch_does_not_stop_change_detection),
	        TEST(test_a_watch_name_that_cannot_be_copied_fails_that_load_only),
	        TEST(test_change_detection_survives_the_main_thread_exiting),
	        TEST(test_a_call_from_a_signal_handler_answers_false_instead_of_deadlocking),
	        TEST(test_leaving_a_kill_with_siglongjmp_leaves_later_calls_working),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
