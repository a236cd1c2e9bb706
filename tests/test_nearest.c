/*
 * "Did you mean": the edit distance and the choice of the names to suggest,
 * which the parser's message about an unknown directive and the wrench
 * command's about a missing category or feature both rest on.
 */
#include "support.h"

#include <string.h>

static size_t distance(const char *a, const char *b, size_t max)
{
	return wrench__edit_distance(a, strlen(a), b, strlen(b), max);
}

static void test_distance_counts_each_kind_of_edit_as_one(void **state)
{
	(void)state;
	assert_int_equal(distance("chance", "chance", 2), 0);
	assert_int_equal(distance("chanse", "chance", 2), 1);  /* substitution */
	assert_int_equal(distance("chane", "chance", 2), 1);   /* insertion */
	assert_int_equal(distance("chancee", "chance", 2), 1); /* deletion */
	assert_int_equal(distance("cahnce", "chance", 2), 1);  /* swap of neighbours */
	assert_int_equal(distance("", "ab", 2), 2);
	assert_int_equal(distance("kitten", "sitting", 5), 3);
}

/* Optimal string alignment: a swapped pair is not edited again. */
static void test_distance_edits_no_substring_twice(void **state)
{
	(void)state;
	assert_int_equal(distance("ca", "abc", 5), 3);
}

static void test_distance_past_the_bound_is_bound_plus_one(void **state)
{
	(void)state;
	assert_int_equal(distance("kitten", "sitting", 2), 3);
	assert_int_equal(distance("a", "abcdef", 1), 2);
	assert_int_equal(distance("abcdef", "uvwxyz", 0), 1);
}

static void test_names_too_long_are_never_compared(void **state)
{
	char long_name[WRENCH__NEAREST_MAX_LEN + 2];
	(void)state;
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(wrench__edit_distance(long_name, strlen(long_name), long_name,
	                                       strlen(long_name), 2),
	                 3);
}

static const char *const directives[] = {"fail",  "kill",  "slow",  "chance", "every",
                                         "first", "after", "times", "until",  "scope"};
#define DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

static void test_a_typo_gets_the_name_it_was_meant_to_be(void **state)
{
	const char *out[3];
	(void)state;
	assert_int_equal(wrench__nearest("chanse", directives, DIRECTIVES, out, 3), 1);
	assert_string_equal(out[0], "chance");
	assert_int_equal(wrench__nearest("kil", directives, DIRECTIVES, out, 3), 1);
	assert_string_equal(out[0], "kill");
	assert_int_equal(wrench__nearest("Times", directives, DIRECTIVES, out, 3), 1);
	assert_string_equal(out[0], "times");

	const char *features[] = {"crash-before-commit", "crash-in-flush", "refuse-upgrade"};
	assert_int_equal(wrench__nearest("crash-in-flsh", features, 3, out, 3), 1);
	assert_string_equal(out[0], "crash-in-flush");
}

static void test_a_word_far_from_every_name_gets_none(void **state)
{
	const char *out[3] = {NULL, NULL, NULL};
	(void)state;
	assert_int_equal(wrench__nearest("bogus", directives, DIRECTIVES, out, 3), 0);
	assert_int_equal(wrench__nearest("", directives, DIRECTIVES, out, 3), 0);
	assert_null(out[0]);
}

/* Two edits at most, and fewer than half the word's bytes: "ab" is not
 * a typo of "cd", nor "abc" of "xyc". */
static void test_a_short_word_gets_no_far_fetched_name(void **state)
{
	const char *names[] = {"cd", "xyc", "abcxy"};
	const char *out[3];
	(void)state;
	assert_int_equal(wrench__nearest("ab", names, 3, out, 3), 0);
	assert_int_equal(wrench__nearest("abc", names, 3, out, 3), 0);
	assert_int_equal(wrench__nearest("abcx", names, 3, out, 3), 1);
	assert_string_equal(out[0], "abcxy");
	/* Two edits in six bytes are still a typo; three are not. */
	const char *far[] = {"chaxxe", "cxaxxe"};
	assert_int_equal(wrench__nearest("chance", far, 2, out, 3), 1);
	assert_string_equal(out[0], "chaxxe");
}

static void test_the_nearest_names_come_in_their_given_order_each_once(void **state)
{
	const char *names[] = {"tame", "tmx", "time", "tame", "tme2x"};
	const char *out[3];
	(void)state;
	assert_int_equal(wrench__nearest("tme", names, 5, out, 3), 3);
	assert_string_equal(out[0], "tame");
	assert_string_equal(out[1], "tmx");
	assert_string_equal(out[2], "time");
	assert_int_equal(wrench__nearest("tme", names, 5, out, 2), 2);
	assert_string_equal(out[1], "tmx");
}

static void test_a_nearer_name_replaces_the_farther_ones(void **state)
{
	const char *names[] = {"chaxxe", "chanxe", "chance", "chanxe"};
	const char *out[3];
	(void)state;
	assert_int_equal(wrench__nearest("chance", names, 4, out, 3), 1);
	assert_string_equal(out[0], "chance");
	assert_int_equal(wrench__nearest("chancx", names + 1, 1, out, 3), 1);
	assert_string_equal(out[0], "chanxe");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_distance_counts_each_kind_of_edit_as_one),
	        cmocka_unit_test(test_distance_edits_no_substring_twice),
	        cmocka_unit_test(test_distance_past_the_bound_is_bound_plus_one),
	        cmocka_unit_test(test_names_too_long_are_never_compared),
	        cmocka_unit_test(test_a_typo_gets_the_name_it_was_meant_to_be),
	        cmocka_unit_test(test_a_word_far_from_every_name_gets_none),
	        cmocka_unit_test(test_a_short_word_gets_no_far_fetched_name),
	        cmocka_unit_test(test_the_nearest_names_come_in_their_given_order_each_once),
	        cmocka_unit_test(test_a_nearer_name_replaces_the_farther_ones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
