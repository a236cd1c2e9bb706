/*
 * The environment: WRENCH_DIR, WRENCH_SEED and WRENCH_LOG are read once, at
 * the first call, so every case runs in a forked child that sets them before
 * its first wrench call. This process never calls the library itself: a
 * child would inherit its state. Children report through their exit status,
 * a pipe for what they saw, and their stderr, where the default sink writes.
 */
#include "support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEQUENCE_LENGTH 128

/* Fails the child, saying why on its stderr (cmocka asserts would jump
 * into the child's copy of the test runner). */
#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond);   \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

struct env_case {
	const char *dir;   /* the scratch directory, with trigger files */
	const char *value; /* the value of the variable under test */
	int out_fd;        /* where the child writes what it saw */
};

struct child {
	void (*body)(const struct env_case *);
	struct env_case env;
	int err_fd;
};

struct outcome {
	int status;
	char out[1024];
	char err[16384];
};

static int make_dir(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/wrench-env.XXXXXX");
	if (!mkdtemp(s->dir)) {
		free(s);
		return -1;
	}
	write_file(s->dir, "agent", "step\ncoin chance=0.5 scope=process\n", 0600);
	write_file(s->dir, "broken", "step chanse=1\n", 0600);
	*state = s;
	return 0;
}

static int remove_dir(void **state)
{
	struct scratch *s = *state;
	remove_state_dir(s->dir); /* what the agents counted in it */
	DIR *d = opendir(s->dir);
	if (d) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(s->dir);
	free(s);
	return 0;
}

/* Sets the three variables, NULL meaning unset. */
static void child_env(const char *dir, const char *seed, const char *log)
{
	const char *names[] = {"WRENCH_DIR", "WRENCH_SEED", "WRENCH_LOG"};
	const char *values[] = {dir, seed, log};
	for (int i = 0; i < 3; i++) {
		if (values[i])
			setenv(names[i], values[i], 1);
		else
			unsetenv(names[i]);
	}
}

static void child_main(void *arg)
{
	struct child *ch = arg;
	dup2(ch->err_fd, STDERR_FILENO);
	ch->body(&ch->env);
	_exit(0);
}

static void read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
}

static void run_child(void (*body)(const struct env_case *), void **state, const char *value,
                      struct outcome *o)
{
	struct scratch *s = *state;
	int out[2], err[2];
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	struct child ch = {body, {s->dir, value, out[1]}, err[1]};
	o->status = run_in_child(child_main, &ch);
	close(out[1]);
	close(err[1]);
	read_all(out[0], o->out, sizeof(o->out));
	read_all(err[0], o->err, sizeof(o->err));
	close(out[0]);
	close(err[0]);
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != 0)
		fail_msg("child failed (wait status 0x%x); its stderr:\n%s", (unsigned)o->status,
		         o->err);
}

static size_t occurrences(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void assert_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("\"%s\" not found in:\n%s", needle, text);
}

static void assert_lacks(const char *text, const char *needle)
{
	if (strstr(text, needle))
		fail_msg("\"%s\" unexpectedly found in:\n%s", needle, text);
}

/* ---- WRENCH_DIR ------------------------------------------------------------------ */

static void child_dir_chooses(const struct env_case *c)
{
	child_env(c->dir, NULL, NULL);
	CHILD_CHECK(wrench_get_dir() != NULL);
	CHILD_CHECK(strcmp(wrench_get_dir(), c->dir) == 0);
	CHILD_CHECK(wrench_is_active("agent", "step"));
}

static void test_wrench_dir_chooses_the_directory(void **state)
{
	struct outcome o;
	run_child(child_dir_chooses, state, NULL, &o);
}

static void child_relative_dir(const struct env_case *c)
{
	/* The relative name would reach the real directory from /tmp. */
	CHILD_CHECK(chdir("/tmp") == 0);
	child_env(c->dir + strlen("/tmp/"), NULL, NULL);
	CHILD_CHECK(wrench_get_dir() == NULL);
	CHILD_CHECK(!wrench_is_active("agent", "step"));
	CHILD_CHECK(!wrench_is_active("agent", "step"));
	CHILD_CHECK(wrench_get_dir() == NULL);
}

static void test_relative_wrench_dir_makes_every_point_inactive(void **state)
{
	struct outcome o;
	run_child(child_relative_dir, state, NULL, &o);
	assert_contains(o.err, "WRENCH_DIR");
	if (occurrences(o.err, "wrench: error: ") != 1)
		fail_msg("want exactly one ERROR, got:\n%s", o.err);
}

static void child_dir_read_once(const struct env_case *c)
{
	child_env(c->dir, NULL, NULL);
	CHILD_CHECK(wrench_is_active("agent", "step"));
	setenv("WRENCH_DIR", "/nonexistent/other", 1);
	CHILD_CHECK(strcmp(wrench_get_dir(), c->dir) == 0);
	CHILD_CHECK(wrench_is_active("agent", "step"));
}

static void test_wrench_dir_is_read_once(void **state)
{
	struct outcome o;
	run_child(child_dir_read_once, state, NULL, &o);
}

static void child_set_dir_null(const struct env_case *c)
{
	child_env(c->dir, NULL, NULL);
	CHILD_CHECK(wrench_set_dir("/nonexistent/other") == 0);
	CHILD_CHECK(!wrench_is_active("agent", "step"));
	CHILD_CHECK(wrench_set_dir(NULL) == 0);
	CHILD_CHECK(wrench_get_dir() != NULL);
	CHILD_CHECK(strcmp(wrench_get_dir(), c->dir) == 0);
	CHILD_CHECK(wrench_is_active("agent", "step"));
}

static void test_set_dir_null_goes_back_to_wrench_dir(void **state)
{
	struct outcome o;
	run_child(child_set_dir_null, state, NULL, &o);
}

/* ---- WRENCH_SEED ------------------------------------------------------------------- */

static void write_sequence(int fd)
{
	char seq[SEQUENCE_LENGTH];
	for (size_t i = 0; i < sizeof(seq); i++)
		seq[i] = wrench_is_active("agent", "coin") ? 'T' : 'F';
	CHILD_CHECK(write(fd, seq, sizeof(seq)) == (ssize_t)sizeof(seq));
}

static void child_env_seed(const struct env_case *c)
{
	child_env(c->dir, c->value, NULL);
	write_sequence(c->out_fd);
}

static void child_api_seed(const struct env_case *c)
{
	child_env(c->dir, NULL, NULL);
	wrench_set_seed(&(uint64_t){42});
	write_sequence(c->out_fd);
}

static void child_seed_null(const struct env_case *c)
{
	child_env(c->dir, c->value, NULL);
	wrench_set_seed(&(uint64_t){7});
	count_active("agent", "coin", 10);
	wrench_set_seed(NULL);
	write_sequence(c->out_fd);
}

static void sequence(void (*body)(const struct env_case *), void **state, const char *seed,
                     struct outcome *o)
{
	run_child(body, state, seed, o);
	assert_int_equal(strlen(o->out), SEQUENCE_LENGTH);
}

static void test_wrench_seed_repeats_across_processes(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, "42", &a);
	sequence(child_env_seed, state, "42", &b);
	assert_string_equal(a.out, b.out);
}

static void test_wrench_seed_matches_the_same_seed_set_by_the_api(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, "42", &a);
	sequence(child_api_seed, state, NULL, &b);
	assert_string_equal(a.out, b.out);
}

static void test_different_wrench_seeds_give_different_sequences(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, "42", &a);
	sequence(child_env_seed, state, "43", &b);
	assert_string_not_equal(a.out, b.out);
}

static void test_unseeded_processes_give_different_sequences(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, NULL, &a);
	sequence(child_env_seed, state, NULL, &b);
	assert_string_not_equal(a.out, b.out);
}

static void test_set_seed_null_goes_back_to_wrench_seed(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, "42", &a);
	sequence(child_seed_null, state, "42", &b);
	assert_string_equal(a.out, b.out);
}

static void test_largest_wrench_seed_is_accepted(void **state)
{
	struct outcome a, b;
	sequence(child_env_seed, state, "18446744073709551615", &a);
	assert_lacks(a.err, "wrench: error: ");
	sequence(child_env_seed, state, "18446744073709551615", &b);
	assert_string_equal(a.out, b.out);
}

static void test_invalid_wrench_seed_is_reported(void **state)
{
	static const char *const bad[] = {"abc", "-1", "42x", "18446744073709551616"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct outcome o;
		sequence(child_env_seed, state, bad[i], &o);
		if (!strstr(o.err, "wrench: error: ") || !strstr(o.err, "WRENCH_SEED"))
			fail_msg("WRENCH_SEED=%s: no ERROR naming WRENCH_SEED in:\n%s", bad[i],
			         o.err);
	}
}

/* ---- WRENCH_LOG ---------------------------------------------------------------------- */

/* One WARN (a fire), one ERROR (a bad line) and one DEBUG (a missing file). */
static void child_log(const struct env_case *c)
{
	child_env(c->dir, NULL, c->value);
	CHILD_CHECK(wrench_is_active("agent", "step"));
	CHILD_CHECK(!wrench_is_active("broken", "step"));
	CHILD_CHECK(!wrench_is_active("missing", "step"));
}

static void test_wrench_log_off_silences_everything(void **state)
{
	struct outcome o;
	run_child(child_log, state, "off", &o);
	assert_string_equal(o.err, "");
}

static void test_wrench_log_debug_shows_debug_messages(void **state)
{
	static const char *const values[] = {"debug", "DEBUG"};
	for (size_t i = 0; i < 2; i++) {
		struct outcome o;
		run_child(child_log, state, values[i], &o);
		assert_contains(o.err, "wrench: debug: ");
		assert_contains(o.err, "does not exist");
		assert_contains(o.err, "wrench: warning: ");
		assert_contains(o.err, "wrench: error: ");
	}
}

static void test_wrench_log_error_hides_warnings(void **state)
{
	struct outcome o;
	run_child(child_log, state, "error", &o);
	assert_contains(o.err, "wrench: error: ");
	assert_lacks(o.err, "wrench: warning: ");
	assert_lacks(o.err, "wrench: debug: ");
}

static void test_unset_wrench_log_shows_warnings_and_errors(void **state)
{
	struct outcome o;
	run_child(child_log, state, NULL, &o);
	assert_contains(o.err, "wrench: error: ");
	assert_contains(o.err, "wrench: warning: ");
	assert_lacks(o.err, "wrench: debug: ");
}

static void test_invalid_wrench_log_is_reported_and_warn_used(void **state)
{
	struct outcome o;
	run_child(child_log, state, "loud", &o);
	assert_contains(o.err, "WRENCH_LOG");
	assert_contains(o.err, "wrench: warning: ");
	assert_lacks(o.err, "wrench: debug: ");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, make_dir, remove_dir)

int main(void)
{
	/* No wrench call here: the children must start from a fresh library. */
	const struct CMUnitTest tests[] = {
	        TEST(test_wrench_dir_chooses_the_directory),
	        TEST(test_relative_wrench_dir_makes_every_point_inactive),
	        TEST(test_wrench_dir_is_read_once),
	        TEST(test_set_dir_null_goes_back_to_wrench_dir),
	        TEST(test_wrench_seed_repeats_across_processes),
	        TEST(test_wrench_seed_matches_the_same_seed_set_by_the_api),
	        TEST(test_different_wrench_seeds_give_different_sequences),
	        TEST(test_unseeded_processes_give_different_sequences),
	        TEST(test_set_seed_null_goes_back_to_wrench_seed),
	        TEST(test_largest_wrench_seed_is_accepted),
	        TEST(test_invalid_wrench_seed_is_reported),
	        TEST(test_wrench_log_off_silences_everything),
	        TEST(test_wrench_log_debug_shows_debug_messages),
	        TEST(test_wrench_log_error_hides_warnings),
	        TEST(test_unset_wrench_log_shows_warnings_and_errors),
	        TEST(test_invalid_wrench_log_is_reported_and_warn_used),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
