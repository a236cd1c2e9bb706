/*
 * How a unit-test suite keeps trigger files out of its results: the group
 * setup turns the global switch off, so a trigger file lying around on a
 * developer's machine cannot make a failure point fire during the tests.
 * The group teardown restores the switch for whatever runs next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <wrench.h>

/* The code under test, with a failure point as an agent would have it. */
static int reserve_port(void)
{
	if (wrench_is_active("machine-agent", "no-free-port"))
		return -1;
	return 17070;
}

static int wrench_off(void **state)
{
	static bool was_enabled;

	was_enabled = wrench_set_enabled(false);
	*state = &was_enabled;
	return 0;
}

static int wrench_restore(void **state)
{
	wrench_set_enabled(*(bool *)*state);
	return 0;
}

static void test_reserve_port_gets_the_api_port(void **state)
{
	(void)state;
	assert_int_equal(reserve_port(), 17070);
}

static void test_wrench_is_off_during_the_suite(void **state)
{
	(void)state;
	assert_false(wrench_is_enabled());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_reserve_port_gets_the_api_port),
	        cmocka_unit_test(test_wrench_is_off_during_the_suite),
	};
	return cmocka_run_group_tests(tests, wrench_off, wrench_restore);
}
