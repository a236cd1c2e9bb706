/*
 * Where the library's messages go: a custom logger gets bare messages, the
 * default sink writes one prefixed line per message on stderr, the level
 * threshold filters both, and a replaced logger is never called again.
 */
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAT "agent"

/* The longest a test waits for another thread to get somewhere: a loaded
 * machine takes seconds, a correct library never this long. */
#define WAIT_NS (20 * 1000000000ull)

static int setup(void **state)
{
	/* These tests follow each message to the logger: every fire logs. */
	wrench__set_fire_log_period_ns(0);
	return scratch_setup(state);
}

static int teardown(void **state)
{
	/* Tests install loggers whose context lives on their stack. */
	log_capture_install();
	wrench__set_log_threshold(WRENCH_LOG_WARN);
	return scratch_teardown(state);
}

static void trigger(void **state, const char *content)
{
	struct scratch *s = *state;
	write_file(s->dir, CAT, content, 0600);
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	nanosleep(&ts, NULL);
}

/* A logger that counts its calls and remembers the last message. */
struct counter {
	atomic_uint calls;
	enum wrench_log_level level;
	void *ctx;
	size_t length;
};

static void count_message(enum wrench_log_level level, const char *message, void *ctx)
{
	struct counter *c = ctx;
	c->level = level;
	c->ctx = ctx;
	c->length = strlen(message);
	atomic_fetch_add(&c->calls, 1);
}

/* Runs FN in a child whose stderr is a pipe; returns its status and output. */
static int run_with_stderr(void (*fn)(void *), void *arg, char *out, size_t len)
{
	int fds[2], saved;
	size_t got = 0;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	int status = run_in_child(fn, arg);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fds[1]);
	while (got < len - 1 && (n = read(fds[0], out + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	out[got] = '\0';
	if (!WIFEXITED(status))
		fail_msg("the child was killed by signal %d; its stderr: %s", WTERMSIG(status),
		         out);
	return WEXITSTATUS(status);
}

/* Counts the lines of OUT and checks that each one starts with PREFIX. */
static size_t lines_with_prefix(const char *out, const char *prefix)
{
	size_t lines = 0;
	for (const char *line = out; *line; lines++) {
		const char *end = strchr(line, '\n');
		if (!end)
			fail_msg("last line has no newline: \"%s\"", line);
		if (strncmp(line, prefix, strlen(prefix)) != 0)
			fail_msg("line without \"%s\": \"%.*s\"", prefix, (int)(end - line), line);
		line = end + 1;
	}
	return lines;
}

/* ---- custom loggers ----------------------------------------------------------- */

static void test_custom_logger_gets_bare_messages(void **state)
{
	trigger(state, "step\n");
	assert_true(wrench_is_active(CAT, "step"));
	if (!log_has(WRENCH_LOG_WARN, CAT "/step", NULL)) {
		log_dump();
		fail_msg("the logger did not get the WARN for " CAT "/step");
	}
	assert_int_equal(log_count(WRENCH_LOG_WARN, "wrench:"), 0);
	assert_int_equal(log_count(WRENCH_LOG_WARN, "\n"), 0);
}

static void test_custom_logger_gets_its_context_back(void **state)
{
	struct counter c = {0};
	trigger(state, "step\n");
	wrench_set_logger(count_message, &c);
	assert_true(wrench_is_active(CAT, "step"));
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_ptr_equal(c.ctx, &c);
	assert_int_equal(c.level, WRENCH_LOG_WARN);
}

static void test_long_message_is_cut_not_overflowed(void **state)
{
	struct counter c = {0};
	char content[3000];
	memset(content, 'x', 2000);
	strcpy(content + 2000, "\n");
	trigger(state, content);
	content[2000] = '\0';
	wrench_set_logger(count_message, &c);
	assert_true(wrench_is_active(CAT, content));
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_true(c.length > 0 && c.length < WRENCH_MAX_MESSAGE);
}

/* ---- the default sink ------------------------------------------------------------ */

static void child_default_sink(void *arg)
{
	(void)arg;
	wrench_set_logger(NULL, NULL);
	/* One ERROR for the bad line, one WARN per call. */
	wrench_is_active(CAT, "step");
	wrench_is_active(CAT, "step");
	_exit(0);
}

static void test_null_logger_restores_the_stderr_sink(void **state)
{
	char out[8192];
	trigger(state, "step\nstep chanse=1\n");
	assert_int_equal(run_with_stderr(child_default_sink, NULL, out, sizeof(out)), 0);
	assert_int_equal(lines_with_prefix(out, "wrench: "), 3);
	assert_non_null(strstr(out, "wrench: error: "));
	assert_non_null(strstr(out, "wrench: warning: "));
	assert_non_null(strstr(out, CAT "/step"));
}

static void child_replaced_by_default(void *arg)
{
	struct counter *c = arg;
	wrench_set_logger(count_message, c);
	wrench_is_active(CAT, "step");
	wrench_set_logger(NULL, NULL);
	wrench_is_active(CAT, "step");
	wrench_is_active(CAT, "step");
	_exit(atomic_load(&c->calls) == 1 ? 0 : 1);
}

static void test_logger_replaced_by_null_is_not_called_again(void **state)
{
	struct counter c = {0};
	char out[8192];
	trigger(state, "step\n");
	assert_int_equal(run_with_stderr(child_replaced_by_default, &c, out, sizeof(out)), 0);
	assert_int_equal(lines_with_prefix(out, "wrench: "), 2);
}

static void test_replaced_logger_is_not_called_again(void **state)
{
	struct counter old = {0}, new = {0};
	trigger(state, "step\n");
	wrench_set_logger(count_message, &old);
	assert_true(wrench_is_active(CAT, "step"));
	wrench_set_logger(count_message, &new);
	assert_int_equal(count_active(CAT, "step", 5), 5);
	assert_int_equal(atomic_load(&old.calls), 1);
	assert_int_equal(atomic_load(&new.calls), 5);
}

/* A logger slow enough that a delivery is usually in flight on a swap. */
static atomic_uint slow_entered, slow_left;
static atomic_bool firing_stop;

static void slow_logger(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)level;
	(void)message;
	(void)ctx;
	atomic_fetch_add(&slow_entered, 1);
	sleep_us(200);
	atomic_fetch_add(&slow_left, 1);
}

static void *keep_firing(void *arg)
{
	(void)arg;
	while (!atomic_load(&firing_stop))
		wrench_is_active(CAT, "step");
	return NULL;
}

static void wait_until_at_least(atomic_uint *value, unsigned want)
{
	uint64_t deadline = now_ns() + WAIT_NS;
	while (atomic_load(value) < want && now_ns() < deadline)
		sleep_us(100);
	assert_true(atomic_load(value) >= want);
}

static void test_logger_swap_waits_for_deliveries_in_flight(void **state)
{
	struct counter after = {0};
	pthread_t thread;

	trigger(state, "step\n");
	atomic_store(&firing_stop, false);
	wrench_set_logger(slow_logger, NULL);
	assert_int_equal(pthread_create(&thread, NULL, keep_firing, NULL), 0);
	wait_until_at_least(&slow_entered, 3);

	wrench_set_logger(count_message, &after);
	unsigned entered = atomic_load(&slow_entered);
	unsigned left = atomic_load(&slow_left);
	wait_until_at_least(&after.calls, 10);
	atomic_store(&firing_stop, true);
	pthread_join(thread, NULL);

	assert_int_equal(left, entered);
	assert_int_equal(atomic_load(&slow_entered), entered);
}

/*
 * Thread A replaces the logger while thread B is inside it, and the logger,
 * on B, replaces the logger too. A waits for B's delivery to end; B must not
 * wait for A in turn. Run in a child with an alarm, so that a deadlock
 * fails the test instead of hanging the suite; it comes after the longest
 * the waits below can take.
 */
#define CHILD_ALARM_SECONDS 60

static atomic_bool b_in_logger, a_replacing, b_replaced;
static _Atomic pid_t a_thread;

static void ignore_message(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)level;
	(void)message;
	(void)ctx;
}

static void wait_for_flag(atomic_bool *flag)
{
	uint64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(flag) && now_ns() < deadline)
		sleep_us(100);
	if (!atomic_load(flag))
		_exit(3);
}

static void replacing_logger(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)level;
	(void)message;
	(void)ctx;
	if (atomic_exchange(&b_in_logger, true))
		return;
	wait_for_flag(&a_replacing);
	/* A cannot return while this delivery is in flight: let it get into
	 * wrench_set_logger() and wait for it there, asleep (nothing else
	 * puts it to sleep on the way). Should it not be seen asleep, the
	 * test merely misses the deadlock; it cannot fail. */
	uint64_t deadline = now_ns() + WAIT_NS / 4;
	while (!thread_is_asleep(atomic_load(&a_thread)) && now_ns() < deadline)
		sleep_us(100);
	wrench_set_logger(ignore_message, NULL);
	atomic_store(&b_replaced, true);
}

static void *fire_once(void *arg)
{
	(void)arg;
	wrench_is_active(CAT, "step");
	return NULL;
}

static void child_replace_while_logger_replaces(void *arg)
{
	pthread_t b;
	(void)arg;
	alarm(CHILD_ALARM_SECONDS);
	atomic_store(&a_thread, gettid());
	wrench_set_logger(replacing_logger, NULL);
	if (pthread_create(&b, NULL, fire_once, NULL) != 0)
		_exit(4);
	wait_for_flag(&b_in_logger);
	atomic_store(&a_replacing, true);
	wrench_set_logger(NULL, NULL);
	pthread_join(b, NULL);
	_exit(atomic_load(&b_replaced) ? 0 : 1);
}

static void test_logger_replacing_itself_during_another_replacement_does_not_deadlock(void **state)
{
	trigger(state, "step\n");
	int status = run_in_child(child_replace_while_logger_replaces, NULL);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		fail_msg("the two wrench_set_logger() calls deadlocked (still waiting after %d s)",
		         CHILD_ALARM_SECONDS);
	if (!WIFEXITED(status))
		fail_msg("the child was killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("exit %d (1: the logger on B never replaced the logger, 3: a thread never "
		         "got where it was awaited, 4: no thread)",
		         WEXITSTATUS(status));
}

/*
 * A logger that checks a failure point which fires: the WARN of that
 * nested call cannot go to the logger (which would check again, and so on
 * without end), so it goes to stderr, and both calls answer true.
 */
struct nested {
	atomic_uint calls;
	bool inner_active;
};

static void logger_checking_a_failure_point(enum wrench_log_level level, const char *message,
                                            void *ctx)
{
	struct nested *n = ctx;
	(void)level;
	(void)message;
	atomic_fetch_add(&n->calls, 1);
	n->inner_active = wrench_is_active(CAT, "logfail");
}

static void child_logger_checking_a_failure_point(void *arg)
{
	struct nested n = {0};
	struct rlimit no_core = {0, 0};
	(void)arg;
	/* The bug this guards against overflows the stack: no core file. */
	setrlimit(RLIMIT_CORE, &no_core);
	alarm(CHILD_ALARM_SECONDS);
	wrench_set_logger(logger_checking_a_failure_point, &n);
	bool outer_active = wrench_is_active(CAT, "logfail");
	wrench_set_logger(NULL, NULL);
	if (!outer_active)
		_exit(1);
	if (atomic_load(&n.calls) != 1)
		_exit(2);
	_exit(n.inner_active ? 0 : 3);
}

static void test_failure_point_checked_by_the_logger_does_not_recurse(void **state)
{
	char out[8192];
	trigger(state, "logfail\n");
	int code = run_with_stderr(child_logger_checking_a_failure_point, NULL, out, sizeof(out));
	if (code != 0)
		fail_msg("exit %d (1: outer call false, 2: logger not called exactly once, 3: "
		         "nested call false); stderr: %s",
		         code, out);
	/* The nested call's WARN, and nothing else. */
	assert_int_equal(lines_with_prefix(out, "wrench: warning: "), 1);
	assert_non_null(strstr(out, CAT "/logfail"));
}

/* ---- the threshold ---------------------------------------------------------------- */

static void test_off_threshold_silences_everything(void **state)
{
	trigger(state, "step\nstep chanse=1\n");
	wrench__set_log_threshold(-1);
	assert_true(wrench_is_active(CAT, "step"));
	assert_false(wrench_is_active(CAT, "missing"));
	assert_int_equal(log_capture_count(), 0);
}

static void test_error_threshold_hides_warnings(void **state)
{
	trigger(state, "step\nstep chanse=1\n");
	wrench__set_log_threshold(WRENCH_LOG_ERROR);
	assert_true(wrench_is_active(CAT, "step"));
	assert_true(log_has(WRENCH_LOG_ERROR, "chanse", NULL));
	assert_int_equal(log_count(WRENCH_LOG_WARN, ""), 0);
}

static void test_debug_threshold_reports_a_missing_file(void **state)
{
	(void)state;
	wrench__set_log_threshold(WRENCH_LOG_DEBUG);
	assert_false(wrench_is_active("missing", "step"));
	if (!log_has(WRENCH_LOG_DEBUG, "missing", "does not exist", NULL)) {
		log_dump();
		fail_msg("no DEBUG saying the file does not exist");
	}
}

static void test_missing_file_or_directory_is_silent_by_default(void **state)
{
	(void)state;
	assert_false(wrench_is_active("missing", "step"));
	assert_int_equal(wrench_set_dir("/nonexistent/wrench-log-test"), 0);
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(log_capture_count(), 0);
}

/* A logger that fails the test when a message holds a control byte. */
static void no_control_bytes(enum wrench_log_level level, const char *message, void *ctx)
{
	unsigned *escaped = ctx;
	(void)level;
	for (const unsigned char *c = (const unsigned char *)message; *c; c++)
		if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f))
			fail_msg("a message holds control byte 0x%02x: %s", *c, message);
	*escaped += strstr(message, "\\x1b[2J") != NULL;
}

/* A category may come from the agent's input: ESC, BEL and C1 bytes in it
 * (or in a feature, or in the path of the trigger directory) must not
 * reach the terminal of whoever reads the log. */
static void test_control_characters_in_names_are_escaped_in_messages(void **state)
{
	struct scratch *s = *state;
	static const char category[] = "agent\x1b[2J\x07\xc2\x9b";
	char dir[512];
	unsigned escaped = 0;

	path_in(s->dir, "d\x1b[2J", dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(dir, CAT, "step\n", 0600);
	assert_int_equal(wrench_set_dir(dir), 0);
	wrench_set_logger(no_control_bytes, &escaped);
	/* The WARN of the firing line names its file. */
	assert_true(wrench_is_active(CAT, "step"));
	/* Neither can ever match: the ERROR of each names the call's strings. */
	assert_false(wrench_is_active(category, "step"));
	assert_false(wrench_is_active("a/b", "feature\x1b[2J\x07"));
	wrench_set_logger(NULL, NULL);
	assert_int_equal(escaped, 3);
}

/* Whoever owns a squatted or refused file can change its ctime at will:
 * each change used to log the problem again (22,538 ERROR lines in a few
 * seconds). A problem is its path and reason: logged once while it lasts,
 * even when it alternates with another. */
static void test_a_problem_is_logged_once_however_often_its_file_changes(void **state)
{
	struct scratch *s = *state;
	char path[512];

	need_strict_visibility();
	trigger(state, "step\n");
	path_in(s->dir, CAT, path, sizeof(path));
	for (int i = 0; i < 200; i++) {
		assert_int_equal(chmod(path, i % 2 ? 0666 : 0646), 0);
		assert_false(wrench_is_active(CAT, "step"));
	}
	if (log_count(WRENCH_LOG_ERROR, "writable by group or others") != 2) {
		log_dump();
		fail_msg("want one ERROR for each of the two problems");
	}
	/* Fixed, then broken again: that is news. */
	assert_int_equal(chmod(path, 0600), 0);
	assert_true(wrench_is_active(CAT, "step"));
	assert_int_equal(chmod(path, 0666), 0);
	assert_false(wrench_is_active(CAT, "step"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, "writable by group or others"), 3);
}

/* Distinct problems made up faster than anybody reads them are rate
 * limited, and the next one logged says how many were held back. The
 * first 100 are logged, then 10 a second: problems are made up until one
 * is held back, the 101st unless the machine makes fewer than 10 a
 * second. A library that never holds one back is stopped at 1000, or
 * after 20 s. */
static void test_problem_messages_are_rate_limited(void **state)
{
	struct scratch *s = *state;
	enum { BURST = 100, MOST = 1000 };
	unsigned made = 0, logged = 0;
	uint64_t deadline = now_ns() + WAIT_NS;

	while (logged == made && made < MOST && now_ns() < deadline) {
		char name[32];
		snprintf(name, sizeof(name), "bad-%u", made);
		write_file(s->dir, name, "step\n", 0666);
		log_capture_reset();
		assert_false(wrench_is_active(name, "step"));
		made++;
		logged += log_count(WRENCH_LOG_ERROR, "writable by group or others") != 0;
	}
	if (logged == made)
		fail_msg("all %u distinct problems made up were logged: no rate limit", made);
	if (logged < BURST)
		fail_msg("problem %u was held back; want the first %d logged", logged + 1, BURST);
	/* The rate limit lets one more through every 100 ms. */
	sleep_us(1100 * 1000);
	write_file(s->dir, "late", "step\n", 0666);
	assert_false(wrench_is_active("late", "step"));
	assert_true(log_has(WRENCH_LOG_ERROR, "late", "writable by group or others", NULL));
	assert_true(log_has(WRENCH_LOG_WARN, "problem message(s) were not logged", NULL));
}

/* Messages below the threshold are not logged, so they must not use up
 * the rate limit: an agent asking for many categories without a file
 * (each a DEBUG "does not exist") must not hide the next ERROR. */
static void test_unseen_messages_do_not_use_up_the_rate_limit(void **state)
{
	struct scratch *s = *state;

	for (int i = 0; i < 300; i++) {
		char name[32];
		snprintf(name, sizeof(name), "missing-%d", i);
		assert_false(wrench_is_active(name, "step"));
	}
	write_file(s->dir, "bad", "step\n", 0666);
	assert_false(wrench_is_active("bad", "step"));
	assert_true(log_has(WRENCH_LOG_ERROR, "bad", "writable by group or others", NULL));
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TEST(test_custom_logger_gets_bare_messages),
	        TEST(test_custom_logger_gets_its_context_back),
	        TEST(test_long_message_is_cut_not_overflowed),
	        TEST(test_null_logger_restores_the_stderr_sink),
	        TEST(test_logger_replaced_by_null_is_not_called_again),
	        TEST(test_replaced_logger_is_not_called_again),
	        TEST(test_logger_swap_waits_for_deliveries_in_flight),
	        TEST(test_logger_replacing_itself_during_another_replacement_does_not_deadlock),
	        TEST(test_failure_point_checked_by_the_logger_does_not_recurse),
	        TEST(test_off_threshold_silences_everything),
	        TEST(test_error_threshold_hides_warnings),
	        TEST(test_debug_threshold_reports_a_missing_file),
	        TEST(test_missing_file_or_directory_is_silent_by_default),
	        TEST(test_control_characters_in_names_are_escaped_in_messages),
	        TEST(test_a_problem_is_logged_once_however_often_its_file_changes),
	        TEST(test_problem_messages_are_rate_limited),
	        TEST(test_unseen_messages_do_not_use_up_the_rate_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
