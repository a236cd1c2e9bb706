/*
 * The control API and the argument checks of wrench_is_active: the global
 * switch, choosing the directory, names that cannot be categories, an
 * agent that makes up many category names, and counters that stay exact
 * when many threads share one failure point.
 */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAT "agent"

static int setup(void **state)
{
	return scratch_setup(state);
}

static int teardown(void **state)
{
	wrench_set_enabled(true);
	return scratch_teardown(state);
}

static void trigger(void **state, const char *content)
{
	struct scratch *s = *state;
	write_file(s->dir, CAT, content, 0600);
}

/* ---- the global switch ------------------------------------------------------ */

/* Runs first, before any fixture has touched the switch. */
static void test_switch_starts_enabled(void **state)
{
	(void)state;
	assert_true(wrench_is_enabled());
}

static void test_set_enabled_returns_the_previous_value(void **state)
{
	(void)state;
	assert_true(wrench_set_enabled(false));
	assert_false(wrench_set_enabled(false));
	assert_false(wrench_is_enabled());
	assert_false(wrench_set_enabled(true));
	assert_true(wrench_set_enabled(true));
	assert_true(wrench_is_enabled());
}

static void test_disabled_switch_answers_false_with_a_trigger_present(void **state)
{
	trigger(state, "step\n");
	assert_true(wrench_is_active(CAT, "step"));
	wrench_set_enabled(false);
	assert_int_equal(count_active(CAT, "step", 10), 0);
}

static void test_reenabled_switch_takes_effect_at_once(void **state)
{
	trigger(state, "step\n");
	wrench_set_enabled(false);
	assert_false(wrench_is_active(CAT, "step"));
	wrench_set_enabled(true);
	assert_true(wrench_is_active(CAT, "step"));
}

/* ---- the directory ------------------------------------------------------------ */

static void test_get_dir_answers_the_directory_set(void **state)
{
	struct scratch *s = *state;
	assert_string_equal(wrench_get_dir(), s->dir);
}

static void test_set_dir_rejects_empty_relative_and_dotdot_paths(void **state)
{
	struct scratch *s = *state;
	static const char *const bad[] = {
	        "", "relative/x", "x", "./x", "..", "/a/../b", "/a/..",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = wrench_set_dir(bad[i]);
		if (rc != -EINVAL)
			fail_msg("wrench_set_dir(\"%s\") returned %d, want -EINVAL", bad[i], rc);
	}
	/* A refused path leaves the directory in use alone. */
	assert_string_equal(wrench_get_dir(), s->dir);
}

static void test_set_dir_accepts_dotdot_inside_a_name(void **state)
{
	(void)state;
	assert_int_equal(wrench_set_dir("/a/..b/c.."), 0);
	assert_string_equal(wrench_get_dir(), "/a/..b/c..");
}

static void test_set_dir_rejects_a_path_of_path_max_bytes(void **state)
{
	struct scratch *s = *state;
	char *path = malloc(PATH_MAX + 1);
	assert_non_null(path);
	memset(path, 'a', PATH_MAX);
	path[0] = '/';
	path[PATH_MAX] = '\0';
	assert_int_equal(wrench_set_dir(path), -ENAMETOOLONG);
	assert_string_equal(wrench_get_dir(), s->dir);
	path[PATH_MAX - 1] = '\0';
	assert_int_equal(wrench_set_dir(path), 0);
	free(path);
}

static void test_set_dir_accepts_trailing_and_repeated_slashes(void **state)
{
	struct scratch *s = *state;
	char path[512];
	trigger(state, "step\n");
	snprintf(path, sizeof(path), "%s/", s->dir);
	assert_int_equal(wrench_set_dir(path), 0);
	assert_true(wrench_is_active(CAT, "step"));
	snprintf(path, sizeof(path), "/%s//.//", s->dir);
	assert_int_equal(wrench_set_dir(path), 0);
	assert_true(wrench_is_active(CAT, "step"));
}

static void test_set_dir_null_restores_the_default(void **state)
{
	(void)state;
	/* CTest sets WRENCH_DIR for every test. */
	const char *env = getenv("WRENCH_DIR");
	assert_int_equal(wrench_set_dir(NULL), 0);
	assert_non_null(wrench_get_dir());
	assert_string_equal(wrench_get_dir(), env ? env : "/var/lib/juju/wrench");
}

static void test_set_dir_switches_files_on_the_next_call(void **state)
{
	struct scratch *s = *state;
	char other[] = "/tmp/wrench-test-other.XXXXXX";
	trigger(state, "step\n");
	assert_non_null(mkdtemp(other));
	assert_int_equal(wrench_set_dir(other), 0);
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(wrench_set_dir(s->dir), 0);
	assert_true(wrench_is_active(CAT, "step"));
	/* The point was recorded there: the directory was trusted. */
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/" WRENCH_STATE_DIR "/points-v1-%u", other,
	         (unsigned)geteuid());
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/" WRENCH_STATE_DIR, other);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(other), 0);
}

/* Whether DIR's file of points reached holds CAT/FEATURE: its names are
 * stored as "category\0feature\0program\0". */
static bool points_file_names(const char *dir, const char *feature)
{
	char path[PATH_MAX], needle[128];
	snprintf(path, sizeof(path), "%s/" WRENCH_STATE_DIR "/points-v1-%u", dir,
	         (unsigned)geteuid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	char *data = malloc((size_t)st.st_size);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	close(fd);
	int len = snprintf(needle, sizeof(needle), "%s%c%s%c", CAT, '\0', feature, '\0');
	bool found = memmem(data, (size_t)st.st_size, needle, (size_t)len) != NULL;
	free(data);
	return found;
}

/* A test suite gives each test its own directory: a point its tests all
 * reach, within seconds, is recorded in each. */
static void test_set_dir_records_a_point_again_in_the_new_directory(void **state)
{
	struct scratch *s = *state;
	char other[] = "/tmp/wrench-test-other.XXXXXX";
	trigger(state, "step\n");
	assert_true(wrench_is_active(CAT, "step"));
	assert_true(points_file_names(s->dir, "step"));
	assert_non_null(mkdtemp(other));
	assert_int_equal(wrench_set_dir(other), 0);
	assert_false(wrench_is_active(CAT, "step"));
	assert_true(points_file_names(other, "step"));
	remove_state_dir(other);
	assert_int_equal(rmdir(other), 0);
}

static void test_set_dir_forgets_per_process_counters(void **state)
{
	struct scratch *s = *state;
	trigger(state, "step times=1 scope=process\n");
	assert_int_equal(count_active(CAT, "step", 3), 1);
	assert_int_equal(wrench_set_dir(s->dir), 0);
	assert_int_equal(count_active(CAT, "step", 3), 1);
}

static void test_set_dir_keeps_machine_wide_counters(void **state)
{
	struct scratch *s = *state;
	trigger(state, "step times=1\n");
	assert_int_equal(count_active(CAT, "step", 3), 1);
	assert_int_equal(wrench_set_dir(s->dir), 0);
	assert_int_equal(count_active(CAT, "step", 3), 0);
}

/* ---- names that cannot be categories ---------------------------------------- */

static void test_invalid_category_is_logged_once(void **state)
{
	(void)state;
	assert_int_equal(count_active("a/b", "step", 100), 0);
	if (log_count(WRENCH_LOG_ERROR, "") != 1) {
		log_dump();
		fail_msg("want one ERROR for 100 calls with an invalid category");
	}
}

static void test_invalid_names_are_inactive(void **state)
{
	struct scratch *s = *state;
	char sub[512], name[NAME_MAX + 2];

	/* Files that the invalid names would reach if they were used as paths. */
	trigger(state, "step\n");
	path_in(s->dir, "a", sub, sizeof(sub));
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "b", "step\n", 0600);

	assert_false(wrench_is_active(NULL, "step"));
	assert_false(wrench_is_active(CAT, NULL));
	assert_false(wrench_is_active("", "step"));
	assert_false(wrench_is_active(".", "step"));
	assert_false(wrench_is_active("..", "step"));
	assert_false(wrench_is_active("a/b", "step"));
	assert_false(wrench_is_active(CAT "/", "step"));
	memset(name, 'c', NAME_MAX + 1);
	name[NAME_MAX + 1] = '\0';
	assert_false(wrench_is_active(name, "step"));
}

static void test_category_of_name_max_bytes_is_valid(void **state)
{
	struct scratch *s = *state;
	char name[NAME_MAX + 1];
	char path[PATH_MAX];
	memset(name, 'c', NAME_MAX);
	name[NAME_MAX] = '\0';
	/* write_file's temporary name would be too long: write it in place. */
	int fd = open(path_in(s->dir, name, path, sizeof(path)), O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "step\n", 5), 5);
	assert_int_equal(close(fd), 0);
	assert_true(wrench_is_active(name, "step"));
}

static void test_calls_leave_no_descriptor_open(void **state)
{
	struct scratch *s = *state;
	trigger(state, "step\n");
	write_file(s->dir, "broken", "step chanse=1\n", 0600);
	write_file(s->dir, "refused", "step\n", 0666);
	size_t before = count_open_descriptors();
	for (int i = 0; i < 100; i++) {
		wrench_is_active(CAT, "step");
		wrench_is_active("broken", "step");
		wrench_is_active("refused", "step");
		wrench_is_active("missing", "step");
	}
	assert_int_equal(count_open_descriptors(), before);
}

/* ---- many categories ------------------------------------------------------------ */

/* An agent may build category names from data (one per job, per unit...):
 * most of them have no trigger file. */
static unsigned query_missing_categories(unsigned from, unsigned count)
{
	unsigned active = 0;
	for (unsigned i = from; i < from + count; i++) {
		char category[32];
		snprintf(category, sizeof(category), "made-up-%u", i);
		active += wrench_is_active(category, "step");
	}
	return active;
}

static void test_many_missing_categories_do_not_disturb_real_ones(void **state)
{
	struct scratch *s = *state;
	write_file(s->dir, "real", "x every=2\n", 0600);

	/* The every=2 pattern carries on between the batches. */
	bool expected = true;
	for (unsigned batch = 0; batch < 10; batch++) {
		assert_int_equal(wrench_is_active("real", "x"), expected);
		expected = !expected;
		assert_int_equal(query_missing_categories(batch * 1000, 1000), 0);
	}
	assert_int_equal(wrench_is_active("real", "x"), expected);

	write_file(s->dir, "late", "y\n", 0600);
	assert_true(wrench_is_active("late", "y"));
}

/* Heap in use: small blocks, and the large ones malloc maps on their own. */
static size_t heap_in_use(void)
{
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
}

/* Remembering every name ever asked about would grow a long-running agent
 * without bound. Old names may be forgotten; memory must level off. */
static void test_many_missing_categories_do_not_grow_memory_without_bound(void **state)
{
	(void)state;
	/* Let whatever the library keeps reach its steady state first. */
	assert_int_equal(query_missing_categories(0, 10000), 0);
	size_t before = heap_in_use();
	assert_int_equal(query_missing_categories(10000, 50000), 0);
	size_t after = heap_in_use();

	/* Remembering all 50,000 names takes more than 2 MiB; what the library
	 * needs for the names it keeps is a small fraction of the bound. */
	if (after > before + 1024 * 1024)
		fail_msg("50,000 made-up categories grew the heap by %zu KiB",
		         (after - before) / 1024);
}

/* ---- threads ------------------------------------------------------------------ */

#define THREADS 8
#define CALLS   10000

struct hammer {
	const char *feature;
	unsigned active;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	h->active = count_active(CAT, h->feature, CALLS);
	return NULL;
}

static unsigned hammer_together(const char *feature)
{
	pthread_t thread[THREADS];
	struct hammer h[THREADS];
	unsigned total = 0;

	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){feature, 0};
		assert_int_equal(pthread_create(&thread[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(thread[i], NULL);
		total += h[i].active;
	}
	return total;
}

static void test_times_is_exact_across_threads(void **state)
{
	trigger(state, "step times=100\n");
	assert_int_equal(hammer_together("step"), 100);
}

static void test_every_is_exact_across_threads(void **state)
{
	trigger(state, "step every=4\n");
	assert_int_equal(hammer_together("step"), THREADS * CALLS / 4);
}

/* ---- arguments that can never match a line ---------------------------------- */

/* Fails unless exactly one ERROR contains NEEDLE. */
static void assert_one_error(const char *needle)
{
	if (log_count(WRENCH_LOG_ERROR, needle) != 1) {
		log_dump();
		fail_msg("want exactly one ERROR containing %s", needle);
	}
}

/* In Go a blank line matches the empty feature; here it answers false,
 * and the caller is told once. */
static void test_empty_feature_answers_false_with_one_error(void **state)
{
	trigger(state, "step\n\n   \n");
	assert_true(wrench_is_active(CAT, "step")); /* the file is loaded and known */
	assert_int_equal(count_active(CAT, "", 100), 0);
	assert_one_error("wrench_is_active(\"" CAT "\", \"\") was given a feature that is empty");
	assert_int_equal(log_count(WRENCH_LOG_ERROR, ""), 1);
}

/* Each distinct bad feature is told once, its bytes escaped, whether or not
 * the category's file was loaded already. */
static void test_features_that_cannot_match_are_each_logged_once(void **state)
{
	static const char *const bad[] = {" step", "step ", "step\xc2\xa0", "st\001ep",
	                                  "st ep", "#step", "step\n"};
	static const char *const shown[] = {"\" step\"",     "\"step \"", "\"step\\xc2\\xa0\"",
	                                    "\"st\\x01ep\"", "\"st ep\"", "\"#step\"",
	                                    "\"step\\x0a\""};
	trigger(state, "step\n");
	assert_false(wrench_is_active("other", "step"));
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_false(wrench_is_active(CAT, bad[i]));
			assert_false(wrench_is_active("other", bad[i]));
		}
	}
	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		char needle[128];
		snprintf(needle, sizeof(needle), "(\"" CAT "\", %s) was given a feature that",
		         shown[i]);
		assert_one_error(needle);
	}
	assert_int_equal(log_count(WRENCH_LOG_ERROR, ""), 2 * sizeof(bad) / sizeof(bad[0]));
	/* The good feature still fires. */
	assert_true(wrench_is_active(CAT, "step"));
}

/* A category with white space at either end or a control character names
 * no file that the wrench command writes: told, not looked up. */
static void test_categories_that_cannot_match_are_logged(void **state)
{
	struct scratch *s = *state;
	write_file(s->dir, CAT " ", "step\n", 0600);
	write_file(s->dir, "\t" CAT, "step\n", 0600);
	write_file(s->dir, CAT "\x1b", "step\n", 0600);

	assert_int_equal(count_active(CAT " ", "step", 10), 0);
	assert_int_equal(count_active("\t" CAT, "step", 10), 0);
	assert_int_equal(count_active(CAT "\x1b", "step", 10), 0);
	assert_one_error("(\"" CAT
	                 " \", \"step\") was given a category that ends with white space");
	assert_one_error("(\"\\x09" CAT
	                 "\", \"step\") was given a category that starts with white");
	assert_one_error("(\"" CAT
	                 "\\x1b\", \"step\") was given a category that contains a control");
}

/* A program that makes up bad names cannot make the library remember
 * them all, nor flood the log when it repeats them. */
static void test_many_bad_features_are_logged_at_most_once_each(void **state)
{
	trigger(state, "step\n");
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1000; i++) {
			char name[32];
			snprintf(name, sizeof(name), "bad %d", i);
			assert_false(wrench_is_active(CAT, name));
		}
		size_t errors = log_count(WRENCH_LOG_ERROR, "was given a feature that");
		if (round == 0 && (errors == 0 || errors > 1000))
			fail_msg("%zu ERRORs for 1000 distinct bad features", errors);
		if (round == 1 && log_capture_count() != 0) {
			log_dump();
			fail_msg("repeating the same bad features logged %zu more messages",
			         log_capture_count());
		}
		log_capture_reset();
	}
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_switch_starts_enabled),
	        TEST(test_set_enabled_returns_the_previous_value),
	        TEST(test_disabled_switch_answers_false_with_a_trigger_present),
	        TEST(test_reenabled_switch_takes_effect_at_once),
	        TEST(test_get_dir_answers_the_directory_set),
	        TEST(test_set_dir_rejects_empty_relative_and_dotdot_paths),
	        TEST(test_set_dir_accepts_dotdot_inside_a_name),
	        TEST(test_set_dir_rejects_a_path_of_path_max_bytes),
	        TEST(test_set_dir_accepts_trailing_and_repeated_slashes),
	        TEST(test_set_dir_null_restores_the_default),
	        TEST(test_set_dir_switches_files_on_the_next_call),
	        TEST(test_set_dir_records_a_point_again_in_the_new_directory),
	        TEST(test_set_dir_forgets_per_process_counters),
	        TEST(test_set_dir_keeps_machine_wide_counters),
	        TEST(test_invalid_category_is_logged_once),
	        TEST(test_invalid_names_are_inactive),
	        TEST(test_category_of_name_max_bytes_is_valid),
	        TEST(test_calls_leave_no_descriptor_open),
	        TEST(test_many_missing_categories_do_not_disturb_real_ones),
	        TEST(test_many_missing_categories_do_not_grow_memory_without_bound),
	        TEST(test_times_is_exact_across_threads),
	        TEST(test_every_is_exact_across_threads),
	        TEST(test_empty_feature_answers_false_with_one_error),
	        TEST(test_features_that_cannot_match_are_each_logged_once),
	        TEST(test_categories_that_cannot_match_are_logged),
	        /* Last: it fills the memory of bad arguments already told. */
	        TEST(test_many_bad_features_are_logged_at_most_once_each),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
