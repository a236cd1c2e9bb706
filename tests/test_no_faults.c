/*
 * A production build defines WRENCH_NO_FAULTS: every failure point becomes a
 * constant false, yet its arguments are still evaluated, exactly once.
 */
#define WRENCH_NO_FAULTS
#include "wrench.h"

#include "support.h"

static const char *counted(int *calls, const char *value)
{
	(*calls)++;
	return value;
}

static void test_failure_point_is_false_with_a_trigger_present(void **state)
{
	struct scratch *s = *state;
	write_file(s->dir, "agent", "step\n", 0600);
	/* The parenthesised name calls the library itself: the file works. */
	assert_true((wrench_is_active)("agent", "step"));
	assert_false(wrench_is_active("agent", "step"));
}

static void test_arguments_are_evaluated_exactly_once(void **state)
{
	(void)state;
	int categories = 0, features = 0;
	assert_false(wrench_is_active(counted(&categories, "agent"), counted(&features, "step")));
	assert_int_equal(categories, 1);
	assert_int_equal(features, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_failure_point_is_false_with_a_trigger_present,
	                                        scratch_setup, scratch_teardown),
	        cmocka_unit_test_setup_teardown(test_arguments_are_evaluated_exactly_once,
	                                        scratch_setup, scratch_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
