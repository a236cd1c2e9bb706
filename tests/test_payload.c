/*
 * What a failing line tells its caller: wrench_error() and wrench_fault(),
 * as macros with a call site of their own and as functions, across
 * processes (the counters are machine-wide), with slow and kill lines,
 * with the switch off, and the struct a caller hands over, which the
 * library fills and never writes past.
 */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAT "payload"
#define MS  1000000ull

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
	write_file(scratch_dir(state), CAT, content, 0600);
}

/* Names made at run time, which take the ordinary path (no call site). */
struct names {
	char category[32], feature[64];
};

static struct names names_of(const char *feature)
{
	struct names n;
	snprintf(n.category, sizeof(n.category), "%s", CAT);
	snprintf(n.feature, sizeof(n.feature), "%s", feature);
	return n;
}

/* A struct wrench_fault that is all 0xAA: whatever the library leaves
 * alone stays 0xAA. */
static void fill(struct wrench_fault *out)
{
	memset(out, 0xaa, sizeof(*out));
}

static bool all_bytes_are(const void *p, size_t len, unsigned char byte)
{
	const unsigned char *u = p;
	for (size_t i = 0; i < len; i++)
		if (u[i] != byte)
			return false;
	return true;
}

/* A letter per call of a pattern: the errno as E (when it is WANT), 0
 * for none, ? for any other. */
static char letter(int errnum, int want)
{
	return errnum == want ? 'E' : errnum == 0 ? '0' : '?';
}

/* The exit status of a child that exited; fails the test if it died. */
static int exit_status(int status)
{
	if (!WIFEXITED(status))
		fail_msg("the child did not exit (status 0x%x)", (unsigned)status);
	return WEXITSTATUS(status);
}

/* ---- across processes ----------------------------------------------------- */

/* One call in a process of its own, its errno as the exit status. */
static void error_at_site(void *arg)
{
	(void)arg;
	_exit(wrench_error(CAT, "by-site"));
}

static void error_by_function(void *arg)
{
	const struct names *n = arg;
	_exit((wrench_error)(n->category, n->feature));
}

/* first=2 every=3 counts every call of every process: the first two of
 * each three calls fire, each in a process of its own. */
static void
test_error_tells_the_errno_only_on_the_fires_of_first_every_across_processes(void **state)
{
	char got[10];
	struct names n = names_of("by-function");

	trigger(state, "by-site first=2 every=3 errno=ENOSPC\n"
	               "by-function first=2 every=3 errno=EACCES\n");
	for (int i = 0; i < 9; i++)
		got[i] = letter(exit_status(run_in_child(error_at_site, NULL)), ENOSPC);
	got[9] = '\0';
	assert_string_equal(got, "EE0EE0EE0");
	for (int i = 0; i < 9; i++)
		got[i] = letter(exit_status(run_in_child(error_by_function, &n)), EACCES);
	assert_string_equal(got, "EE0EE0EE0");
}

/* The same pattern from one process, which keeps the site's record and
 * the thread's memo of the names. */
static void test_error_follows_first_every_call_after_call_in_one_process(void **state)
{
	char site[10], function[10];
	struct names n = names_of("by-function");

	trigger(state, "by-site first=2 every=3 errno=ENOSPC\n"
	               "by-function first=2 every=3 errno=EACCES\n");
	for (int i = 0; i < 9; i++) {
		site[i] = letter(wrench_error(CAT, "by-site"), ENOSPC);
		function[i] = letter((wrench_error)(n.category, n.feature), EACCES);
	}
	site[9] = function[9] = '\0';
	assert_string_equal(site, "EE0EE0EE0");
	assert_string_equal(function, "EE0EE0EE0");
}

/* ---- which errno ------------------------------------------------------------ */

static void test_error_is_eio_when_the_line_names_no_errno(void **state)
{
	struct names n = names_of("plain");
	struct wrench_fault out;

	trigger(state, "plain\nworded value=disk%20full\n");
	assert_int_equal(wrench_error(CAT, "plain"), EIO);
	assert_int_equal((wrench_error)(n.category, n.feature), EIO);
	fill(&out);
	assert_true(wrench_fault(CAT, "plain", &out));
	assert_int_equal(out.errnum, EIO);
	assert_string_equal(out.value, "");
	fill(&out);
	assert_true(wrench_fault(CAT, "worded", &out));
	assert_int_equal(out.errnum, EIO);
	assert_string_equal(out.value, "disk full");
}

static void test_error_tells_a_numbered_errno_and_a_name_in_any_case(void **state)
{
	struct names n = names_of("numbered");
	struct wrench_fault out;

	trigger(state, "numbered errno=1234\nnamed errno=enospc\nalias errno=EWOULDBLOCK\n");
	assert_int_equal(wrench_error(CAT, "numbered"), 1234);
	assert_int_equal((wrench_error)(n.category, n.feature), 1234);
	assert_true((wrench_fault)(n.category, n.feature, &out));
	assert_int_equal(out.errnum, 1234);
	assert_int_equal(wrench_error(CAT, "named"), ENOSPC);
	assert_int_equal(wrench_error(CAT, "alias"), EAGAIN);
}

/* ---- the caller's struct ---------------------------------------------------- */

/* The struct with room on both sides that the library must leave alone. */
struct guarded {
	unsigned char before[64];
	struct wrench_fault fault;
	unsigned char after[64];
};
_Static_assert(offsetof(struct guarded, fault) == 64 &&
                       offsetof(struct guarded, after) == 64 + sizeof(struct wrench_fault),
               "the guards touch the struct on both sides");

static void guard(struct guarded *g)
{
	memset(g, 0x5a, sizeof(*g));
	fill(&g->fault);
}

static void assert_guards_intact(const struct guarded *g)
{
	if (!all_bytes_are(g->before, sizeof(g->before), 0x5a))
		fail_msg("the bytes before the struct were written");
	if (!all_bytes_are(g->after, sizeof(g->after), 0x5a))
		fail_msg("the bytes after the struct were written");
}

/* A value of 255 bytes, every byte from 1 to 255 (escaped): copied
 * whole, ended in the struct's last byte, the reserved space zeroed, and
 * nothing written on either side. */
static void test_fault_copies_the_longest_value_and_writes_nothing_past_the_struct(void **state)
{
	static char line[64 + 3 * WRENCH_VALUE_MAX];
	char want[WRENCH_VALUE_MAX + 1];
	struct names n = names_of("big");
	struct guarded g;

	size_t used = (size_t)snprintf(line, sizeof(line), "big errno=E2BIG value=");
	for (int b = 1; b <= WRENCH_VALUE_MAX; b++) {
		want[b - 1] = (char)b;
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%%%02x", b);
	}
	want[WRENCH_VALUE_MAX] = '\0';
	snprintf(line + used, sizeof(line) - used, "\n");
	trigger(state, line);

	for (int form = 0; form < 2; form++) {
		guard(&g);
		bool fired = form ? (wrench_fault)(n.category, n.feature, &g.fault)
		                  : wrench_fault(CAT, "big", &g.fault);
		assert_true(fired);
		assert_guards_intact(&g);
		assert_int_equal(g.fault.errnum, E2BIG);
		assert_memory_equal(g.fault.value, want, sizeof(want));
		if (!all_bytes_are(g.fault.wrench__reserved, sizeof(g.fault.wrench__reserved), 0))
			fail_msg("the reserved space is not zeroed after a fire");
	}
}

/* A call that does not fire sets the errno and the value's first byte,
 * nothing else: a caller may reuse one struct for many calls. */
static void test_fault_that_does_not_fire_sets_only_errnum_and_the_first_byte(void **state)
{
	struct names n = names_of("second");
	struct guarded g;

	trigger(state, "second after=1 every=2 errno=EPIPE value=x\n");
	for (int form = 0; form < 2; form++) {
		/* A point no line names, then a line that does not fire now. */
		for (int call = 0; call < 2; call++) {
			guard(&g);
			bool fired = form ? (wrench_fault)(n.category, "unnamed", &g.fault)
			                  : wrench_fault(CAT, "unnamed", &g.fault);
			assert_false(fired);
			assert_int_equal(g.fault.errnum, 0);
			assert_int_equal(g.fault.value[0], '\0');
			assert_true(all_bytes_are(g.fault.value + 1, WRENCH_VALUE_MAX, 0xaa));
			assert_true(all_bytes_are(g.fault.wrench__reserved,
			                          sizeof(g.fault.wrench__reserved), 0xaa));
			assert_guards_intact(&g);
		}
	}
	/* Calls 1 and 3 do not fire (after=1 every=2), 2 and 4 do. */
	for (int call = 1; call <= 4; call++) {
		guard(&g);
		bool fired = call <= 2 ? wrench_fault(CAT, "second", &g.fault)
		                       : (wrench_fault)(n.category, n.feature, &g.fault);
		assert_guards_intact(&g);
		if (call % 2 == 0) {
			assert_true(fired);
			assert_int_equal(g.fault.errnum, EPIPE);
			assert_string_equal(g.fault.value, "x");
			continue;
		}
		assert_false(fired);
		assert_int_equal(g.fault.errnum, 0);
		assert_int_equal(g.fault.value[0], '\0');
		assert_true(all_bytes_are(g.fault.value + 1, WRENCH_VALUE_MAX, 0xaa));
		assert_true(all_bytes_are(g.fault.wrench__reserved,
		                          sizeof(g.fault.wrench__reserved), 0xaa));
	}
}

/* OUT may be NULL: the answer is still given, and still counted once. */
static void test_fault_without_a_struct_still_answers(void **state)
{
	struct names n = names_of("alternate");

	trigger(state, "alternate every=2 value=x\n");
	assert_true(wrench_fault(CAT, "alternate", NULL));
	assert_false(wrench_fault(CAT, "alternate", NULL));
	assert_true((wrench_fault)(n.category, n.feature, NULL));
	assert_false((wrench_fault)(n.category, n.feature, NULL));
	assert_false(wrench_fault(CAT, "unnamed", NULL));
	assert_false((wrench_fault)(n.category, "unnamed", NULL));
}

/* Names the library refuses: no fire, no crash, the struct cleared. */
static void test_error_and_fault_answer_nothing_for_bad_names(void **state)
{
	struct wrench_fault out;

	trigger(state, "step\n");
	assert_int_equal((wrench_error)(NULL, "step"), 0);
	assert_int_equal((wrench_error)(CAT, NULL), 0);
	assert_int_equal((wrench_error)("a/b", "step"), 0);
	fill(&out);
	assert_false((wrench_fault)(NULL, "step", &out));
	assert_int_equal(out.errnum, 0);
	assert_int_equal(out.value[0], '\0');
	fill(&out);
	assert_false((wrench_fault)(CAT, "two words", &out));
	assert_int_equal(out.errnum, 0);
	assert_int_equal(out.value[0], '\0');
}

/* ---- one decision per call -------------------------------------------------- */

enum entry { IS_ACTIVE, ERROR, FAULT };

/* Call I of a sequence that gives each entry point each place of a run
 * of three in turn: 0 1 2, 1 2 0, 2 0 1. */
static enum entry entry_for_call(int i)
{
	return (enum entry)((i + i / 3) % 3);
}

/* What wrench_error() or wrench_fault() said, as an answer: fired or not,
 * with the errno WANT when fired, 0 and "" when not. */
static bool told(int errnum, const struct wrench_fault *out, int want)
{
	if (out && errnum != out->errnum)
		fail_msg("the errno returned, %d, is not the one in the struct, %d", errnum,
		         out->errnum);
	if (errnum != 0 && errnum != want)
		fail_msg("errno %d, want %d", errnum, want);
	if (out && !errnum && out->value[0] != '\0')
		fail_msg("a call that does not fire left the value \"%s\"", out->value);
	return errnum != 0;
}

/* Whether a call fires, asked through entry point E at the literal call
 * sites of "by-site" (each a literal, so that each has a record). */
static bool fires_at_site(enum entry e, int want)
{
	struct wrench_fault out;

	fill(&out);
	switch (e) {
	case IS_ACTIVE:
		return wrench_is_active(CAT, "by-site");
	case ERROR:
		return told(wrench_error(CAT, "by-site"), NULL, want);
	default:
		return told(wrench_fault(CAT, "by-site", &out) ? out.errnum : 0, &out, want);
	}
}

/* The same, by the names in N, made at run time. */
static bool fires_by_name(enum entry e, const struct names *n, int want)
{
	struct wrench_fault out;

	fill(&out);
	switch (e) {
	case IS_ACTIVE:
		return (wrench_is_active)(n->category, n->feature);
	case ERROR:
		return told((wrench_error)(n->category, n->feature), NULL, want);
	default:
		return told((wrench_fault)(n->category, n->feature, &out) ? out.errnum : 0, &out,
		            want);
	}
}

/* The three entry points of one line take their turns in one sequence
 * of decisions, one count per call: first=2 every=3 answers yes, yes,
 * no, whichever asks. */
static void test_is_active_error_and_fault_share_one_sequence_of_decisions(void **state)
{
	struct names n = names_of("by-function");
	char site[10], function[10];

	trigger(state, "by-site first=2 every=3 errno=EPIPE\n"
	               "by-function first=2 every=3 errno=EPIPE\n");
	for (int i = 0; i < 9; i++) {
		site[i] = fires_at_site(entry_for_call(i), EPIPE) ? 'T' : 'F';
		function[i] = fires_by_name(entry_for_call(i), &n, EPIPE) ? 'T' : 'F';
	}
	site[9] = function[9] = '\0';
	assert_string_equal(site, "TTFTTFTTF");
	assert_string_equal(function, "TTFTTFTTF");
}

/* times=3: three fires in all, the first three calls, one through each
 * entry point. */
static void test_times_is_shared_by_the_three_entry_points(void **state)
{
	struct names n = names_of("by-function");
	char site[13], function[13];

	trigger(state, "by-site times=3\nby-function times=3\n");
	for (int i = 0; i < 12; i++) {
		site[i] = fires_at_site((enum entry)(i % 3), EIO) ? 'T' : 'F';
		function[i] = fires_by_name((enum entry)(i % 3), &n, EIO) ? 'T' : 'F';
	}
	site[12] = function[12] = '\0';
	assert_string_equal(site, "TTTFFFFFFFFF");
	assert_string_equal(function, "TTTFFFFFFFFF");
}

/* ---- slow lines ------------------------------------------------------------- */

/* A slow line lets the next line have its turn: the errno is the failing
 * line's, after the delay. */
static void test_a_slow_line_then_a_failing_line_tells_the_failing_lines_errno(void **state)
{
	struct wrench_fault out;

	trigger(state, "step slow=20ms\nstep errno=ENOSPC value=full\n");
	uint64_t start = now_ns();
	assert_int_equal(wrench_error(CAT, "step"), ENOSPC);
	assert_true(now_ns() - start >= 20 * MS);
	fill(&out);
	assert_true(wrench_fault(CAT, "step", &out));
	assert_int_equal(out.errnum, ENOSPC);
	assert_string_equal(out.value, "full");
}

/* A slow line with errno= fails itself, after its delay, and ends the
 * call: the line after it is not reached. */
static void test_a_slow_line_with_an_errno_fails_with_it(void **state)
{
	struct wrench_fault out;

	trigger(state, "step slow=20ms errno=EROFS value=late\nstep errno=ENOSPC\n");
	uint64_t start = now_ns();
	assert_int_equal(wrench_error(CAT, "step"), EROFS);
	assert_true(now_ns() - start >= 20 * MS);
	fill(&out);
	assert_true(wrench_fault(CAT, "step", &out));
	assert_int_equal(out.errnum, EROFS);
	assert_string_equal(out.value, "late");
}

/* A slow line alone only delays: no errno, the struct cleared. */
static void test_a_slow_line_alone_tells_no_errno(void **state)
{
	struct wrench_fault out;

	trigger(state, "step slow=1ms\n");
	assert_int_equal(wrench_error(CAT, "step"), 0);
	fill(&out);
	assert_false(wrench_fault(CAT, "step", &out));
	assert_int_equal(out.errnum, 0);
	assert_int_equal(out.value[0], '\0');
	assert_true(all_bytes_are(out.value + 1, WRENCH_VALUE_MAX, 0xaa));
	assert_true(all_bytes_are(out.wrench__reserved, sizeof(out.wrench__reserved), 0xaa));
}

/* ---- the switch and kill ---------------------------------------------------- */

static void test_with_the_switch_off_error_and_fault_answer_nothing(void **state)
{
	struct names n = names_of("step");
	struct wrench_fault out;

	trigger(state, "step times=1 errno=ENOSPC value=x\n");
	wrench_set_enabled(false);
	assert_int_equal(wrench_error(CAT, "step"), 0);
	assert_int_equal((wrench_error)(n.category, n.feature), 0);
	fill(&out);
	assert_false(wrench_fault(CAT, "step", &out));
	assert_int_equal(out.errnum, 0);
	assert_int_equal(out.value[0], '\0');
	fill(&out);
	assert_false((wrench_fault)(n.category, n.feature, &out));
	assert_int_equal(out.errnum, 0);
	assert_int_equal(out.value[0], '\0');
	/* Those calls were not counted: the line's one fire is still there. */
	wrench_set_enabled(true);
	assert_int_equal(wrench_error(CAT, "step"), ENOSPC);
	assert_int_equal(wrench_error(CAT, "step"), 0);
}

/* The process ignores SIGTERM: the kill line's call then fails, with
 * EIO (a kill line names no errno), through each entry point. */
static void survive_kill(void *arg)
{
	const struct names *n = arg;
	struct wrench_fault out;

	signal(SIGTERM, SIG_IGN);
	int at_site = wrench_error(CAT, "term");
	int by_name = (wrench_error)(n->category, n->feature);
	fill(&out);
	bool fault = wrench_fault(CAT, "term", &out);
	/* One bit per answer that is not the one expected. */
	_exit((at_site != EIO) | (by_name != EIO) << 1 | !fault << 2 | (out.errnum != EIO) << 3 |
	      (out.value[0] != '\0') << 4);
}

static void test_a_kill_line_the_process_survives_makes_error_tell_eio(void **state)
{
	struct names n = names_of("term");

	trigger(state, "term kill=TERM\n");
	int wrong = exit_status(run_in_child(survive_kill, &n));
	if (wrong)
		fail_msg("wrong answers after a kill the process survived (bits 0x%x: site, "
		         "function, fired, errnum, value)",
		         (unsigned)wrong);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TEST(test_error_tells_the_errno_only_on_the_fires_of_first_every_across_processes),
	        TEST(test_error_follows_first_every_call_after_call_in_one_process),
	        TEST(test_error_is_eio_when_the_line_names_no_errno),
	        TEST(test_error_tells_a_numbered_errno_and_a_name_in_any_case),
	        TEST(test_fault_copies_the_longest_value_and_writes_nothing_past_the_struct),
	        TEST(test_fault_that_does_not_fire_sets_only_errnum_and_the_first_byte),
	        TEST(test_fault_without_a_struct_still_answers),
	        TEST(test_error_and_fault_answer_nothing_for_bad_names),
	        TEST(test_is_active_error_and_fault_share_one_sequence_of_decisions),
	        TEST(test_times_is_shared_by_the_three_entry_points),
	        TEST(test_a_slow_line_then_a_failing_line_tells_the_failing_lines_errno),
	        TEST(test_a_slow_line_with_an_errno_fails_with_it),
	        TEST(test_a_slow_line_alone_tells_no_errno),
	        TEST(test_with_the_switch_off_error_and_fault_answer_nothing),
	        TEST(test_a_kill_line_the_process_survives_makes_error_tell_eio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
