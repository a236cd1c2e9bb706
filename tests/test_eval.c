/*
 * What a failure point does, driven by real trigger files in a scratch
 * directory: which calls fire, in what order the directives apply, how
 * several lines for one feature combine, chance with and without a seed,
 * kill and slow, and the WARN line that says a point fired.
 */
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAT "agent"
#define MS  UINT64_C(1000000)

static int setup(void **state)
{
	return scratch_setup(state);
}

static int teardown(void **state)
{
	wrench_set_seed(NULL);
	return scratch_teardown(state);
}

static void trigger(void **state, const char *content)
{
	struct scratch *s = *state;
	write_file(s->dir, CAT, content, 0600);
}

static void record_sequence(const char *category, const char *feature, char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = wrench_is_active(category, feature) ? 'T' : 'F';
	buf[n] = '\0';
}

/* Calls FEATURE once per character of EXPECTED ('T' or 'F') and compares. */
static void assert_sequence(const char *feature, const char *expected)
{
	char got[256];
	size_t n = strlen(expected);
	assert_true(n < sizeof(got));
	record_sequence(CAT, feature, got, n);
	assert_string_equal(got, expected);
}

/* ---- one line ------------------------------------------------------------- */

static void test_bare_line_fires_on_every_call(void **state)
{
	trigger(state, "step\n");
	assert_int_equal(count_active(CAT, "step", 100), 100);
}

static void test_feature_not_in_file_is_inactive(void **state)
{
	trigger(state, "step\n");
	assert_false(wrench_is_active(CAT, "other"));
	assert_false(wrench_is_active(CAT, "ste"));
	assert_false(wrench_is_active(CAT, "step2"));
	assert_false(wrench_is_active("no-such-category", "step"));
}

static void test_fail_directive_fires_on_every_call(void **state)
{
	trigger(state, "step fail\n");
	assert_sequence("step", "TTTTTT");
}

static void test_times_caps_the_number_of_fires(void **state)
{
	trigger(state, "step times=3\n");
	assert_sequence("step", "TTTFFFFF");
}

static void test_after_skips_the_first_calls(void **state)
{
	trigger(state, "step after=2\n");
	assert_sequence("step", "FFTTTT");
}

static void test_every_fires_the_first_call_of_each_run(void **state)
{
	trigger(state, "step every=3\n");
	assert_sequence("step", "TFFTFFTFF");
}

static void test_first_of_every_fires_the_first_calls_of_each_run(void **state)
{
	trigger(state, "step first=2 every=3\n");
	assert_sequence("step", "TTFTTFTTF");
}

static void test_first_equal_to_every_fires_always(void **state)
{
	trigger(state, "step first=3 every=3\n");
	assert_sequence("step", "TTTTTTT");
}

static void test_every_counts_from_the_end_of_after(void **state)
{
	trigger(state, "step after=2 every=2\n");
	assert_sequence("step", "FFTFTFTF");
}

static void test_times_counts_fires_not_calls(void **state)
{
	trigger(state, "step every=2 times=2\n");
	assert_sequence("step", "TFTFFFFF");
}

static void test_after_every_times_apply_in_order(void **state)
{
	trigger(state, "step after=2 every=2 times=2\n");
	assert_sequence("step", "FFTFTFFFF");
}

static void test_after_first_every_times_apply_in_order(void **state)
{
	trigger(state, "step times=3 every=3 after=1 first=2\n");
	assert_sequence("step", "FTTFTFFFF");
}

static void test_chance_one_with_times_fires_up_to_times(void **state)
{
	trigger(state, "step chance=1 times=2\n");
	assert_sequence("step", "TTFFF");
}

static void test_chance_zero_never_fires(void **state)
{
	trigger(state, "step chance=0\n");
	assert_int_equal(count_active(CAT, "step", 1000), 0);
}

static void test_chance_is_rolled_only_on_calls_after_and_every_keep(void **state)
{
	need_strict_visibility();
	static const uint64_t seed = 7;
	char alone[41], got[3 + 80 + 1];

	wrench_set_seed(&seed);
	trigger(state, "step chance=0.5\n");
	record_sequence(CAT, "step", alone, 40);

	/* The k-th draw of line 1 is the same whatever the other directives:
	 * only the calls that pass after and every consume a draw. */
	trigger(state, "step after=3 every=2 chance=0.5\n");
	record_sequence(CAT, "step", got, 3 + 80);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(got[i], 'F');
	for (size_t k = 0; k < 40; k++) {
		if (got[3 + 2 * k] != alone[k])
			fail_msg("eligible call %zu: got %c, want %c", k + 1, got[3 + 2 * k],
			         alone[k]);
		assert_int_equal(got[3 + 2 * k + 1], 'F');
	}
}

static void test_times_caps_fires_chosen_by_chance(void **state)
{
	need_strict_visibility();
	static const uint64_t seed = 11;
	char alone[101], got[101];

	wrench_set_seed(&seed);
	trigger(state, "step chance=0.5\n");
	record_sequence(CAT, "step", alone, 100);

	trigger(state, "step chance=0.5 times=3\n");
	record_sequence(CAT, "step", got, 100);
	unsigned fires = 0;
	for (size_t i = 0; i < 100; i++) {
		char want = fires < 3 ? alone[i] : 'F';
		if (got[i] != want)
			fail_msg("call %zu: got %c, want %c", i + 1, got[i], want);
		fires += got[i] == 'T';
	}
	assert_int_equal(fires, 3);
}

/* ---- several lines -------------------------------------------------------- */

static void test_lines_for_other_features_do_not_count_calls(void **state)
{
	trigger(state, "step after=1\nother\n");
	assert_int_equal(count_active(CAT, "other", 5), 5);
	assert_sequence("step", "FT");
}

static void test_first_fail_line_that_fires_wins(void **state)
{
	trigger(state, "step every=2\nstep\n");
	assert_sequence("step", "TTTT");
	/* Each line's first fire is logged; the second is left to a summary. */
	assert_int_equal(log_count(WRENCH_LOG_WARN, "line 1 "), 1);
	assert_int_equal(log_count(WRENCH_LOG_WARN, "line 2 "), 1);
}

static void test_later_line_counts_only_calls_that_reach_it(void **state)
{
	/* Call 1 is answered by line 1, so call 2 is line 2's first call. */
	trigger(state, "step times=1\nstep every=2\n");
	assert_sequence("step", "TTFTFT");
}

static void test_malformed_line_is_ignored_and_reported_once(void **state)
{
	struct scratch *s = *state;
	char path[512];
	trigger(state, "step chanse=1\nstep after=1\n");
	assert_sequence("step", "FTT");
	path_in(s->dir, CAT, path, sizeof(path));
	if (!log_has(WRENCH_LOG_ERROR, path, ":1:", "chanse", NULL)) {
		log_dump();
		fail_msg("no ERROR naming %s:1: and the bad directive", path);
	}
	assert_int_equal(log_count(WRENCH_LOG_ERROR, "chanse"), 1);
}

static void child_expect_active(void *arg)
{
	_exit(wrench_is_active(CAT, arg) ? 0 : 1);
}

static void test_kill_line_after_a_firing_fail_line_is_not_reached(void **state)
{
	trigger(state, "step\nstep kill\n");
	int status = run_in_child(child_expect_active, "step");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- slow ----------------------------------------------------------------- */

static void test_slow_line_alone_delays_and_does_not_fail(void **state)
{
	trigger(state, "step slow=50ms\n");
	uint64_t start = now_ns();
	assert_false(wrench_is_active(CAT, "step"));
	uint64_t elapsed = now_ns() - start;
	assert_true(elapsed >= 50 * MS);
	assert_true(elapsed < 5000 * MS);
}

static void test_slow_with_fail_delays_then_fails(void **state)
{
	trigger(state, "step slow=50ms fail\n");
	uint64_t start = now_ns();
	assert_true(wrench_is_active(CAT, "step"));
	uint64_t elapsed = now_ns() - start;
	assert_true(elapsed >= 50 * MS);
	assert_true(elapsed < 5000 * MS);
}

static void test_slow_line_then_fail_line_delays_then_fails(void **state)
{
	trigger(state, "step slow=50ms\nstep\n");
	uint64_t start = now_ns();
	assert_true(wrench_is_active(CAT, "step"));
	assert_true(now_ns() - start >= 50 * MS);
}

static void test_slow_line_does_not_sleep_when_it_does_not_fire(void **state)
{
	trigger(state, "step slow=30s after=1\n");
	uint64_t start = now_ns();
	assert_false(wrench_is_active(CAT, "step"));
	assert_true(now_ns() - start < 5000 * MS);
}

static atomic_uint alarms;

static void count_alarm(int sig)
{
	(void)sig;
	atomic_fetch_add(&alarms, 1);
}

static void test_slow_sleeps_the_whole_duration_despite_signals(void **state)
{
	struct sigaction sa = {.sa_handler = count_alarm}, old;
	struct itimerval every_10ms = {{0, 10000}, {0, 10000}}, off = {{0, 0}, {0, 0}};

	trigger(state, "step slow=100ms\n");
	atomic_store(&alarms, 0);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &every_10ms, NULL), 0);
	uint64_t start = now_ns();
	assert_false(wrench_is_active(CAT, "step"));
	uint64_t elapsed = now_ns() - start;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_true(atomic_load(&alarms) > 0);
	assert_true(elapsed >= 100 * MS);
}

/* ---- kill ----------------------------------------------------------------- */

struct kill_case {
	const char *feature;
	int calls;
	int log_fd; /* when >= 0, the default log sink writes here */
};

static void child_call(void *arg)
{
	const struct kill_case *c = arg;
	struct rlimit no_core = {0, 0};
	sigset_t none;

	/* Die of the signal itself: no core file, nothing blocked or ignored. */
	setrlimit(RLIMIT_CORE, &no_core);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	if (c->log_fd >= 0) {
		dup2(c->log_fd, STDERR_FILENO);
		wrench_set_logger(NULL, NULL);
	}
	for (int i = 0; i < c->calls; i++)
		wrench_is_active(CAT, c->feature);
	_exit(0);
}

static void assert_killed_by(int status, int sig)
{
	if (WIFEXITED(status))
		fail_msg("child exited with %d instead of dying of signal %d", WEXITSTATUS(status),
		         sig);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), sig);
}

static void test_kill_kills_with_sigkill(void **state)
{
	trigger(state, "step kill\n");
	struct kill_case c = {"step", 1, -1};
	assert_killed_by(run_in_child(child_call, &c), SIGKILL);
}

static void test_kill_term_kills_with_sigterm(void **state)
{
	trigger(state, "step kill=TERM\n");
	struct kill_case c = {"step", 1, -1};
	assert_killed_by(run_in_child(child_call, &c), SIGTERM);
}

static void test_kill_segv_kills_with_sigsegv(void **state)
{
	trigger(state, "step kill=SEGV\n");
	struct kill_case c = {"step", 1, -1};
	assert_killed_by(run_in_child(child_call, &c), SIGSEGV);
}

static void test_kill_after_one_call_kills_on_the_second(void **state)
{
	trigger(state, "step kill times=1 after=1\n");
	struct kill_case one = {"step", 1, -1}, two = {"step", 2, -1};
	int status = run_in_child(child_call, &one);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_killed_by(run_in_child(child_call, &two), SIGKILL);
}

static void child_ignoring_sigterm(void *arg)
{
	(void)arg;
	signal(SIGTERM, SIG_IGN);
	_exit(wrench_is_active(CAT, "step") ? 0 : 1);
}

static void test_kill_that_the_process_survives_fails_instead(void **state)
{
	trigger(state, "step kill=TERM\n");
	int status = run_in_child(child_ignoring_sigterm, NULL);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_slow_with_kill_delays_then_kills(void **state)
{
	trigger(state, "step slow=50ms kill=TERM\n");
	struct kill_case c = {"step", 1, -1};
	uint64_t start = now_ns();
	int status = run_in_child(child_call, &c);
	assert_true(now_ns() - start >= 50 * MS);
	assert_killed_by(status, SIGTERM);
}

static void test_kill_is_logged_before_the_signal(void **state)
{
	int fds[2];
	char out[4096];
	size_t len = 0;
	ssize_t n;

	trigger(state, "doom kill=TERM\n");
	assert_int_equal(pipe(fds), 0);
	struct kill_case c = {"doom", 1, fds[1]};
	int status = run_in_child(child_call, &c);
	close(fds[1]);
	while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	out[len] = '\0';
	assert_killed_by(status, SIGTERM);
	if (!strstr(out, CAT "/doom") || !strstr(out, "kill") || !strstr(out, "SIGTERM"))
		fail_msg("the child's log does not announce the kill: \"%s\"", out);
}

/* ---- the WARN on firing ---------------------------------------------------- */

static void test_fail_is_logged_as_a_warning(void **state)
{
	trigger(state, "refuse times=3\n");
	assert_int_equal(count_active(CAT, "refuse", 5), 3);
	if (!log_has(WRENCH_LOG_WARN, CAT "/refuse", "fail", NULL)) {
		log_dump();
		fail_msg("no WARN naming " CAT "/refuse and fail");
	}
	/* The first fire is logged, the next ones are summed later. */
	assert_int_equal(log_count(WRENCH_LOG_WARN, CAT "/refuse"), 1);
}

static void test_slow_is_logged_with_its_duration(void **state)
{
	trigger(state, "lag slow=50ms\n");
	assert_false(wrench_is_active(CAT, "lag"));
	if (!log_has(WRENCH_LOG_WARN, CAT "/lag", "slow", "50ms", NULL)) {
		log_dump();
		fail_msg("no WARN naming " CAT "/lag and slow 50ms");
	}
}

static void test_call_that_does_not_fire_logs_nothing(void **state)
{
	trigger(state, "step after=1\n");
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(log_capture_count(), 0);
}

/* ---- chance ---------------------------------------------------------------- */

/* 10,000 draws at p = 0.25: sigma is 43.3, so +-346 is 8 sigma. */
static void assert_about_a_quarter(unsigned fires)
{
	assert_in_range(fires, 2500 - 346, 2500 + 346);
}

static void test_seeded_chance_fires_about_as_often_as_asked(void **state)
{
	static const uint64_t seed = 1;
	wrench_set_seed(&seed);
	trigger(state, "step chance=0.25\n");
	assert_about_a_quarter(count_active(CAT, "step", 10000));
}

static void test_unseeded_chance_fires_about_as_often_as_asked(void **state)
{
	trigger(state, "step chance=25%\n");
	assert_about_a_quarter(count_active(CAT, "step", 10000));
}

static void test_same_seed_gives_the_same_sequence(void **state)
{
	static const uint64_t seed = 42;
	char first[201], second[201];

	trigger(state, "step chance=0.5 scope=process\n");
	wrench_set_seed(&seed);
	record_sequence(CAT, "step", first, 200);
	wrench_set_seed(&seed);
	record_sequence(CAT, "step", second, 200);
	assert_string_equal(first, second);
}

static void test_different_seeds_give_different_sequences(void **state)
{
	static const uint64_t one = 1, two = 2;
	char first[201], second[201];

	trigger(state, "step chance=0.5 scope=process\n");
	wrench_set_seed(&one);
	record_sequence(CAT, "step", first, 200);
	wrench_set_seed(&two);
	record_sequence(CAT, "step", second, 200);
	assert_string_not_equal(first, second);
}

static void test_seeded_line_ignores_calls_to_other_lines(void **state)
{
	struct scratch *s = *state;
	static const uint64_t seed = 5;
	char alone[201], mixed[201];

	trigger(state, "noise chance=0.5 scope=process\nstep chance=0.5 scope=process\n");
	write_file(s->dir, "other", "step chance=0.5 scope=process\n", 0600);
	wrench_set_seed(&seed);
	record_sequence(CAT, "step", alone, 200);

	wrench_set_seed(&seed);
	for (size_t i = 0; i < 200; i++) {
		count_active(CAT, "noise", (unsigned)(i % 3));
		count_active("other", "step", (unsigned)(i % 2));
		mixed[i] = wrench_is_active(CAT, "step") ? 'T' : 'F';
	}
	mixed[200] = '\0';
	assert_string_equal(alone, mixed);
}

static atomic_bool noise_stop;

static void *make_noise(void *arg)
{
	(void)arg;
	while (!atomic_load(&noise_stop)) {
		wrench_is_active(CAT, "noise");
		wrench_is_active("other", "step");
	}
	return NULL;
}

static void test_seeded_line_ignores_other_threads(void **state)
{
	struct scratch *s = *state;
	static const uint64_t seed = 9;
	char alone[501], mixed[501];
	pthread_t noise;

	trigger(state, "noise chance=0.5 scope=process\nstep chance=0.5 scope=process\n");
	write_file(s->dir, "other", "step chance=0.5 scope=process\n", 0600);
	wrench_set_seed(&seed);
	record_sequence(CAT, "step", alone, 500);

	wrench_set_seed(&seed);
	atomic_store(&noise_stop, false);
	assert_int_equal(pthread_create(&noise, NULL, make_noise, NULL), 0);
	record_sequence(CAT, "step", mixed, 500);
	atomic_store(&noise_stop, true);
	pthread_join(noise, NULL);
	assert_string_equal(alone, mixed);
}

/* ---- counters restart ------------------------------------------------------ */

static void test_per_process_counters_restart_when_the_file_is_replaced(void **state)
{
	need_strict_visibility();
	trigger(state, "step after=1 scope=process\n");
	assert_sequence("step", "FTT");
	trigger(state, "step after=1 scope=process\n");
	assert_sequence("step", "FTT");
}

static void test_per_process_counters_restart_when_the_file_is_rewritten(void **state)
{
	need_strict_visibility();
	struct scratch *s = *state;
	trigger(state, "step times=1 scope=process\n");
	assert_sequence("step", "TF");
	rewrite_in_place(s->dir, CAT, "step  times=1 scope=process\n");
	assert_sequence("step", "TF");
}

static void test_per_process_counters_restart_when_the_seed_is_set(void **state)
{
	static const uint64_t seed = 3;
	trigger(state, "step times=1 scope=process\n");
	assert_sequence("step", "TF");
	wrench_set_seed(&seed);
	assert_sequence("step", "TF");
}

static void test_machine_wide_counters_continue_when_the_seed_is_set(void **state)
{
	static const uint64_t seed = 3;
	trigger(state, "step times=1\n");
	assert_sequence("step", "TF");
	wrench_set_seed(&seed);
	assert_sequence("step", "FF");
}

/*
 * Setting the seed restarts the counters, but the files have not changed:
 * a problem already reported about them is not news. An agent's test
 * suite may set the seed in every test's setup.
 */
static void test_setting_the_seed_again_does_not_repeat_a_trust_error(void **state)
{
	struct scratch *s = *state;
	static const uint64_t seed = 11;
	char path[512];
	write_file(s->dir, CAT, "step\n", 0666);
	path_in(s->dir, CAT, path, sizeof(path));

	for (int i = 0; i < 3; i++) {
		wrench_set_seed(&seed);
		assert_false(wrench_is_active(CAT, "step"));
	}
	if (log_count(WRENCH_LOG_ERROR, path) != 1) {
		log_dump();
		fail_msg("the refused %s was reported %zu times, not once", path,
		         log_count(WRENCH_LOG_ERROR, path));
	}
}

static void test_setting_the_seed_again_does_not_repeat_a_malformed_line_error(void **state)
{
	static const uint64_t seed = 11;
	trigger(state, "step chanse=1\nstep\n");

	for (int i = 0; i < 3; i++) {
		wrench_set_seed(&seed);
		assert_true(wrench_is_active(CAT, "step"));
	}
	if (log_count(WRENCH_LOG_ERROR, "chanse") != 1) {
		log_dump();
		fail_msg("the unchanged malformed line was reported %zu times, not once",
		         log_count(WRENCH_LOG_ERROR, "chanse"));
	}
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TEST(test_bare_line_fires_on_every_call),
	        TEST(test_feature_not_in_file_is_inactive),
	        TEST(test_fail_directive_fires_on_every_call),
	        TEST(test_times_caps_the_number_of_fires),
	        TEST(test_after_skips_the_first_calls),
	        TEST(test_every_fires_the_first_call_of_each_run),
	        TEST(test_first_of_every_fires_the_first_calls_of_each_run),
	        TEST(test_first_equal_to_every_fires_always),
	        TEST(test_every_counts_from_the_end_of_after),
	        TEST(test_times_counts_fires_not_calls),
	        TEST(test_after_every_times_apply_in_order),
	        TEST(test_after_first_every_times_apply_in_order),
	        TEST(test_chance_one_with_times_fires_up_to_times),
	        TEST(test_chance_zero_never_fires),
	        TEST(test_chance_is_rolled_only_on_calls_after_and_every_keep),
	        TEST(test_times_caps_fires_chosen_by_chance),
	        TEST(test_lines_for_other_features_do_not_count_calls),
	        TEST(test_first_fail_line_that_fires_wins),
	        TEST(test_later_line_counts_only_calls_that_reach_it),
	        TEST(test_malformed_line_is_ignored_and_reported_once),
	        TEST(test_kill_line_after_a_firing_fail_line_is_not_reached),
	        TEST(test_slow_line_alone_delays_and_does_not_fail),
	        TEST(test_slow_with_fail_delays_then_fails),
	        TEST(test_slow_line_then_fail_line_delays_then_fails),
	        TEST(test_slow_line_does_not_sleep_when_it_does_not_fire),
	        TEST(test_slow_sleeps_the_whole_duration_despite_signals),
	        TEST(test_kill_kills_with_sigkill),
	        TEST(test_kill_term_kills_with_sigterm),
	        TEST(test_kill_segv_kills_with_sigsegv),
	        TEST(test_kill_after_one_call_kills_on_the_second),
	        TEST(test_kill_that_the_process_survives_fails_instead),
	        TEST(test_slow_with_kill_delays_then_kills),
	        TEST(test_kill_is_logged_before_the_signal),
	        TEST(test_fail_is_logged_as_a_warning),
	        TEST(test_slow_is_logged_with_its_duration),
	        TEST(test_call_that_does_not_fire_logs_nothing),
	        TEST(test_seeded_chance_fires_about_as_often_as_asked),
	        TEST(test_unseeded_chance_fires_about_as_often_as_asked),
	        TEST(test_same_seed_gives_the_same_sequence),
	        TEST(test_different_seeds_give_different_sequences),
	        TEST(test_seeded_line_ignores_calls_to_other_lines),
	        TEST(test_seeded_line_ignores_other_threads),
	        TEST(test_per_process_counters_restart_when_the_file_is_replaced),
	        TEST(test_per_process_counters_restart_when_the_file_is_rewritten),
	        TEST(test_per_process_counters_restart_when_the_seed_is_set),
	        TEST(test_machine_wide_counters_continue_when_the_seed_is_set),
	        TEST(test_setting_the_seed_again_does_not_repeat_a_trust_error),
	        TEST(test_setting_the_seed_again_does_not_repeat_a_malformed_line_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
