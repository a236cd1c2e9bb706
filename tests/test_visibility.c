/*
 * Visibility: a change to the trigger files that completed before a call
 * starts is seen by that call. No test sleeps or calls anything between the
 * change and the query: that is exactly what a unit test of an agent does.
 */
#include "support.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Not root, not the test's uid: the owner of files that must be refused. */
#define OTHER_UID 12345

/* ---- The file ------------------------------------------------------------ */

static void test_created_file_is_seen_by_the_next_call(void **state)
{
	assert_false(wrench_is_active("cat", "feat"));
	write_file(scratch_dir(state), "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));
}

static void test_file_rewritten_through_rename_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));

	write_file(dir, "cat", "other\n", 0644);
	assert_false(wrench_is_active("cat", "feat"));
	assert_true(wrench_is_active("cat", "other"));
}

/*
 * Same inode, same size, and on many systems the same mtime and ctime: where
 * file timestamps are coarse (they tick every few milliseconds unless the
 * kernel has fine-grained timestamps), many of these rewrites happen within
 * one tick, and only the contents tell the versions apart. The shared
 * mapping test below makes that case certain.
 */
static void test_same_size_rewrite_in_place_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "aaa\n", 0644);
	assert_true(wrench_is_active("cat", "aaa"));

	for (int i = 0; i < 200; i++) {
		rewrite_in_place(dir, "cat", "bbb\n");
		assert_false(wrench_is_active("cat", "aaa"));
		assert_true(wrench_is_active("cat", "bbb"));
		rewrite_in_place(dir, "cat", "aaa\n");
		assert_true(wrench_is_active("cat", "aaa"));
		assert_false(wrench_is_active("cat", "bbb"));
	}
}

/* As "rsync --inplace --times" or "cp --preserve" leave a file: new contents
 * under the old size and modification time. */
static void test_rewrite_in_place_keeping_the_mtime_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	struct stat st;
	write_file(dir, "cat", "aaa\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true(wrench_is_active("cat", "aaa"));

	rewrite_in_place(dir, "cat", "bbb\n");
	const struct timespec times[2] = {st.st_atim, st.st_mtim};
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);

	assert_false(wrench_is_active("cat", "aaa"));
	assert_true(wrench_is_active("cat", "bbb"));
}

static void test_deleted_file_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(unlink(path_in(dir, "cat", path, sizeof(path))), 0);
	assert_false(wrench_is_active("cat", "feat"));
}

static void test_file_renamed_into_place_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char staged[512], path[512];
	path_in(dir, "cat", path, sizeof(path));
	write_file(dir, "staged", "feat\n", 0644);
	assert_false(wrench_is_active("cat", "feat"));

	assert_int_equal(rename(path_in(dir, "staged", staged, sizeof(staged)), path), 0);
	assert_true(wrench_is_active("cat", "feat"));

	/* Over an existing file, too. */
	write_file(dir, "staged", "other\n", 0644);
	assert_int_equal(rename(staged, path), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_true(wrench_is_active("cat", "other"));
}

static void test_file_chmod_bad_then_good_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(chmod(path, 0664), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(chmod(path, 0644), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

static void test_file_chown_to_another_uid_and_back_is_seen(void **state)
{
	if (!need_root("chown a trigger file to another uid"))
		skip();
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(chown(path, 0, 0), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

/* ---- The directory -------------------------------------------------------- */

static void test_directory_appearing_vanishing_and_reappearing_is_seen(void **state)
{
	char wrench[512], path[512];
	path_in(scratch_dir(state), "w", wrench, sizeof(wrench));
	path_in(wrench, "cat", path, sizeof(path));
	assert_int_equal(wrench_set_dir(wrench), 0);
	assert_false(wrench_is_active("cat", "feat"));

	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(unlink(path), 0);
	remove_state_dir(wrench);
	assert_int_equal(rmdir(wrench), 0);
	assert_false(wrench_is_active("cat", "feat"));

	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));
}

/* A library that kept the directory open would still see the old one. */
static void test_directory_renamed_away_or_replaced_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char wrench[512], old[512], next[512];
	path_in(dir, "w", wrench, sizeof(wrench));
	path_in(dir, "w.old", old, sizeof(old));
	path_in(dir, "w.next", next, sizeof(next));
	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "feat\n", 0644);
	make_dir_with_mode(next, 0700);
	write_file(next, "cat", "other\n", 0644);
	assert_int_equal(wrench_set_dir(wrench), 0);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(rename(wrench, old), 0);
	assert_false(wrench_is_active("cat", "feat"));

	assert_int_equal(rename(next, wrench), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_true(wrench_is_active("cat", "other"));
}

static void test_directory_replaced_by_a_symlink_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	char wrench[512], real[512];
	path_in(dir, "w", wrench, sizeof(wrench));
	path_in(dir, "real", real, sizeof(real));
	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "feat\n", 0644);
	assert_int_equal(wrench_set_dir(wrench), 0);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(rename(wrench, real), 0);
	assert_int_equal(symlink("real", wrench), 0);
	assert_false(wrench_is_active("cat", "feat"));
}

static void test_directory_chmod_group_writable_and_back_is_seen(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(chmod(dir, 0770), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

static void test_directory_chown_to_another_uid_and_back_is_seen(void **state)
{
	if (!need_root("chown the wrench directory to another uid"))
		skip();
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));

	assert_int_equal(chown(dir, OTHER_UID, OTHER_UID), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(chown(dir, 0, 0), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

/* ---- Threads --------------------------------------------------------------- */

#define PEER_STEPS 4

/* A thread that queries once per step, when the main thread says so. The
 * barrier orders the main thread's file changes before the peer's call, as
 * any lock or join in a real program would. */
struct peer {
	pthread_barrier_t go, done;
	bool seen[PEER_STEPS];
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	for (int step = 0; step < PEER_STEPS; step++) {
		pthread_barrier_wait(&p->go);
		p->seen[step] = wrench_is_active("cat", "feat");
		pthread_barrier_wait(&p->done);
	}
	return NULL;
}

static bool peer_query(struct peer *p, int step)
{
	pthread_barrier_wait(&p->go);
	pthread_barrier_wait(&p->done);
	return p->seen[step];
}

static void test_change_is_seen_by_another_thread(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	struct peer p;
	pthread_t thread;
	path_in(dir, "cat", path, sizeof(path));
	assert_int_equal(pthread_barrier_init(&p.go, NULL, 2), 0);
	assert_int_equal(pthread_barrier_init(&p.done, NULL, 2), 0);
	assert_int_equal(pthread_create(&thread, NULL, peer_main, &p), 0);

	/* Each step: the main thread queries (filling any cache), changes the
	 * file, and the peer must see the change. */
	assert_false(wrench_is_active("cat", "feat"));
	write_file(dir, "cat", "feat\n", 0644);
	bool created = peer_query(&p, 0);

	assert_true(wrench_is_active("cat", "feat"));
	rewrite_in_place(dir, "cat", "fea\n\n");
	bool rewritten = peer_query(&p, 1);

	assert_false(wrench_is_active("cat", "feat"));
	rewrite_in_place(dir, "cat", "feat\n");
	bool restored = peer_query(&p, 2);

	assert_true(wrench_is_active("cat", "feat"));
	assert_int_equal(unlink(path), 0);
	bool deleted = peer_query(&p, 3);

	assert_int_equal(pthread_join(thread, NULL), 0);
	pthread_barrier_destroy(&p.go);
	pthread_barrier_destroy(&p.done);
	assert_true(created);
	assert_false(rewritten);
	assert_true(restored);
	assert_false(deleted);
}

/* ---- Counters ---------------------------------------------------------------- */

static void test_counters_restart_after_the_file_changes(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	path_in(dir, "cat", path, sizeof(path));
	write_file(dir, "cat", "feat times=1 scope=process\n", 0644);
	assert_int_equal(count_active("cat", "feat", 5), 1);

	/* The same text in a new file is a new version. */
	write_file(dir, "cat", "feat times=1 scope=process\n", 0644);
	assert_int_equal(count_active("cat", "feat", 5), 1);

	/* New contents in the same inode, too. */
	rewrite_in_place(dir, "cat", "feat  times=1 scope=process\n");
	assert_int_equal(count_active("cat", "feat", 5), 1);

	/* Gone and back. */
	assert_int_equal(unlink(path), 0);
	assert_false(wrench_is_active("cat", "feat"));
	write_file(dir, "cat", "feat times=1 scope=process\n", 0644);
	assert_int_equal(count_active("cat", "feat", 5), 1);
}

static void test_counters_continue_while_nothing_changes(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat every=3\nquiet times=1\n", 0644);
	assert_true(wrench_is_active("cat", "quiet"));

	/* Other features, other categories and other files come and go; the
	 * every=3 pattern and the spent times=1 carry on regardless. */
	static const bool expected[] = {true, false, false, true, false, false, true};
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		char other[32];
		snprintf(other, sizeof(other), "other-%zu", i);
		write_file(dir, other, "feat\n", 0644);
		assert_true(wrench_is_active(other, "feat"));
		assert_false(wrench_is_active("cat", "unknown"));
		assert_false(wrench_is_active("cat", "quiet"));
		assert_int_equal(wrench_is_active("cat", "feat"), expected[i]);
	}
	assert_int_equal(count_active("cat", "quiet", 100), 0);
}

/*
 * A directory that vanishes or stops being trusted takes its files with it,
 * as a deleted file does: when it is back, the per-process counters of its
 * lines (scope=process) start again.
 * Each test first checks that a spent times=1 stays spent while nothing
 * changes, so that a restart cannot be mistaken for a cache that never
 * remembers anything.
 */
static void test_counters_restart_after_the_directory_is_moved_away_and_back(void **state)
{
	char wrench[512], away[512];
	path_in(scratch_dir(state), "w", wrench, sizeof(wrench));
	path_in(scratch_dir(state), "w.away", away, sizeof(away));
	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "boom times=1 scope=process\n", 0644);
	assert_int_equal(wrench_set_dir(wrench), 0);
	assert_true(wrench_is_active("cat", "boom"));
	assert_false(wrench_is_active("cat", "boom"));

	assert_int_equal(rename(wrench, away), 0);
	assert_false(wrench_is_active("cat", "boom"));
	assert_int_equal(rename(away, wrench), 0);

	assert_true(wrench_is_active("cat", "boom"));
	assert_int_equal(count_active("cat", "boom", 5), 0);
}

static void test_counters_restart_after_the_directory_is_refused_and_fixed(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "boom times=1 scope=process\n", 0644);
	assert_true(wrench_is_active("cat", "boom"));
	assert_false(wrench_is_active("cat", "boom"));

	assert_int_equal(chmod(dir, 0770), 0);
	assert_false(wrench_is_active("cat", "boom"));
	assert_int_equal(chmod(dir, 0700), 0);

	assert_true(wrench_is_active("cat", "boom"));
	assert_int_equal(count_active("cat", "boom", 5), 0);
}

#define VISIBILITY_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

/* Relaxed mode trades immediacy for no system call: a change is seen
 * within the period. The bound is generous (four periods), and it only
 * asserts that the change is seen, never that it was seen late. */
static void test_relaxed_mode_sees_a_change_within_the_period(void **state)
{
	const char *dir = scratch_dir(state);
	struct timespec pause = {0, 200 * 1000000L};

	wrench_set_recheck_ms(50);
	write_file(dir, "cat", "aaa\n", 0600);
	assert_true(wrench_is_active("cat", "aaa"));
	write_file(dir, "cat", "bbb\n", 0600);
	nanosleep(&pause, NULL);
	assert_false(wrench_is_active("cat", "aaa"));
	assert_true(wrench_is_active("cat", "bbb"));
	wrench_set_recheck_ms(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        VISIBILITY_TEST(test_relaxed_mode_sees_a_change_within_the_period),
	        VISIBILITY_TEST(test_created_file_is_seen_by_the_next_call),
	        VISIBILITY_TEST(test_file_rewritten_through_rename_is_seen),
	        VISIBILITY_TEST(test_same_size_rewrite_in_place_is_seen),
	        VISIBILITY_TEST(test_rewrite_in_place_keeping_the_mtime_is_seen),
	        VISIBILITY_TEST(test_deleted_file_is_seen),
	        VISIBILITY_TEST(test_file_renamed_into_place_is_seen),
	        VISIBILITY_TEST(test_file_chmod_bad_then_good_is_seen),
	        VISIBILITY_TEST(test_file_chown_to_another_uid_and_back_is_seen),
	        VISIBILITY_TEST(test_directory_appearing_vanishing_and_reappearing_is_seen),
	        VISIBILITY_TEST(test_directory_renamed_away_or_replaced_is_seen),
	        VISIBILITY_TEST(test_directory_replaced_by_a_symlink_is_seen),
	        VISIBILITY_TEST(test_directory_chmod_group_writable_and_back_is_seen),
	        VISIBILITY_TEST(test_directory_chown_to_another_uid_and_back_is_seen),
	        VISIBILITY_TEST(test_change_is_seen_by_another_thread),
	        VISIBILITY_TEST(test_counters_restart_after_the_file_changes),
	        VISIBILITY_TEST(test_counters_continue_while_nothing_changes),
	        VISIBILITY_TEST(test_counters_restart_after_the_directory_is_moved_away_and_back),
	        VISIBILITY_TEST(test_counters_restart_after_the_directory_is_refused_and_fixed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
