/*
 * Hostile file systems: what an attacker or an accident can put where a
 * trigger file is looked for, beyond the trust rules that test_trust.c
 * covers one by one. Whatever is there, a call must return, promptly and
 * without crashing, answer false where the file is refused, and log an
 * ERROR that names the problem; a file that is merely odd (invalid UTF-8,
 * many lines, no final newline, carriage returns) is read by the grammar
 * of wrench(5), byte for byte.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Fails, showing the captured log, when anything at ERROR was logged. */
#define assert_no_error()                                                                          \
	do {                                                                                       \
		if (log_count(WRENCH_LOG_ERROR, "") != 0) {                                        \
			log_dump();                                                                \
			fail_msg("unexpected ERROR");                                              \
		}                                                                                  \
	} while (0)

/* A call that has not returned after this long is a hang. */
#define HANG_SECONDS 10

struct query {
	const char *category, *feature;
};

/* In a child, so that a hang is a failed test rather than a stuck suite. */
static void query_with_alarm(void *arg)
{
	const struct query *q = arg;
	alarm(HANG_SECONDS);
	_exit(wrench_is_active(q->category, q->feature) ? 1 : 0);
}

/*
 * Asserts that a first call for CATEGORY, made in a child, returns false
 * within MAX_NS. The parent's own call, which the caller makes next to see
 * the log, is then known not to hang either.
 */
static void assert_false_within(const char *category, const char *feature, uint64_t max_ns)
{
	struct query q = {category, feature};
	uint64_t start = now_ns();
	int status = run_in_child(query_with_alarm, &q);
	uint64_t elapsed = now_ns() - start;

	if (WIFSIGNALED(status))
		fail_msg("wrench_is_active(\"%s\", \"%s\") did not return (killed by signal %d)",
		         category, feature, WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("wrench_is_active(\"%s\", \"%s\") answered true", category, feature);
	if (elapsed > max_ns)
		fail_msg("wrench_is_active(\"%s\", \"%s\") took %llu ms", category, feature,
		         (unsigned long long)(elapsed / 1000000));
}

/* ---- Symbolic links that lead somewhere dangerous ------------------------- */

/* Reading /dev/zero never ends: the link must be refused, not followed. */
static void test_symlink_to_dev_zero_is_ignored_promptly(void **state)
{
	char link[512];
	path_in(scratch_dir(state), "cat", link, sizeof(link));
	assert_int_equal(symlink("/dev/zero", link), 0);

	assert_false_within("cat", "feat", 5000000000u);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(link, "symbolic link");
}

/* Opening a FIFO without a writer blocks, unless it is never opened. */
static void test_symlink_to_a_fifo_is_ignored_promptly(void **state)
{
	const char *dir = scratch_dir(state);
	char fifo[512], link[512];
	assert_int_equal(mkfifo(path_in(dir, "fifo", fifo, sizeof(fifo)), 0600), 0);
	assert_int_equal(symlink(fifo, path_in(dir, "cat", link, sizeof(link))), 0);

	assert_false_within("cat", "feat", 5000000000u);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(link, "symbolic link");
}

static void test_symlink_loops_are_ignored_with_an_error(void **state)
{
	const char *dir = scratch_dir(state);
	char self[512], a[512], b[512];
	/* A link to itself, and two links to each other. */
	assert_int_equal(symlink("self", path_in(dir, "self", self, sizeof(self))), 0);
	assert_int_equal(symlink("loop-b", path_in(dir, "loop-a", a, sizeof(a))), 0);
	assert_int_equal(symlink("loop-a", path_in(dir, "loop-b", b, sizeof(b))), 0);

	assert_false_within("self", "feat", 5000000000u);
	assert_false_within("loop-a", "feat", 5000000000u);
	assert_false(wrench_is_active("self", "feat"));
	assert_false(wrench_is_active("loop-a", "feat"));
	assert_false(wrench_is_active("loop-b", "feat"));
	assert_error_logged(self, "symbolic link");
	assert_error_logged(a, "symbolic link");
	assert_error_logged(b, "symbolic link");
}

/* ---- Size ------------------------------------------------------------------- */

/*
 * A sparse file of 2 GiB costs no disk space to make, and whoever reads it
 * through reads 2 GiB of zeros. Its size alone refuses it: the message
 * gives the size (a refusal after reading would be about the NUL bytes),
 * and the call returns at once.
 */
static void test_sparse_2_gib_file_is_refused_by_its_size(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)2 << 30), 0);

	assert_false_within("cat", "feat", 2000000000u);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "2147483648 bytes", "more than the 65535 allowed");
	if (log_count(WRENCH_LOG_ERROR, "NUL") != 0) {
		log_dump();
		fail_msg("the 2 GiB file was read before its size refused it");
	}
}

/* One line of 1 MiB: a comment after a good feature, so that only the size
 * limit can refuse it. */
static void test_single_line_of_1_mib_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	const size_t size = 1024 * 1024;
	char path[512];
	char *text = malloc(size + 1);
	assert_non_null(text);
	memcpy(text, "feat #", 6);
	memset(text + 6, 'x', size - 7);
	text[size - 1] = '\n';
	text[size] = '\0';
	write_file(dir, "cat", text, 0644);
	free(text);
	path_in(dir, "cat", path, sizeof(path));

	assert_false_within("cat", "feat", 5000000000u);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "1048576 bytes", "more than the 65535 allowed");
}

/* 100,000 lines cannot fit in 64 KiB: each needs its newline. */
static void test_100000_short_lines_are_refused_by_size(void **state)
{
	const char *dir = scratch_dir(state);
	const size_t lines = 100000;
	char path[512];
	char *text = malloc(2 * lines + 1);
	assert_non_null(text);
	for (size_t i = 0; i < lines; i++)
		memcpy(text + 2 * i, "a\n", 2);
	text[2 * lines] = '\0';
	write_file(dir, "cat", text, 0644);
	free(text);
	path_in(dir, "cat", path, sizeof(path));

	assert_false(wrench_is_active("cat", "a"));
	assert_error_logged(path, "200000 bytes");
}

/* ---- Many lines within the size limit ------------------------------------- */

static const char name_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* The I-th of the three-character features below. */
static void feature_name(size_t i, char out[4])
{
	const size_t base = sizeof(name_chars) - 1;
	out[0] = name_chars[i / (base * base) % base];
	out[1] = name_chars[i / base % base];
	out[2] = name_chars[i % base];
	out[3] = '\0';
}

/* As many distinct features as 64 KiB holds: 16,384 lines of "abc\n". */
static void test_16384_distinct_features_in_64_kib_all_work(void **state)
{
	const size_t lines = WRENCH_MAX_FILE_SIZE / 4;
	char *text = malloc(WRENCH_MAX_FILE_SIZE + 1);
	assert_non_null(text);
	for (size_t i = 0; i < lines; i++) {
		feature_name(i, text + 4 * i);
		text[4 * i + 3] = '\n';
	}
	text[WRENCH_MAX_FILE_SIZE] = '\0';
	write_file(scratch_dir(state), "cat", text, 0644);
	free(text);

	/* The fired messages would only fill the captured log. */
	wrench__set_log_threshold(WRENCH_LOG_ERROR);
	size_t inactive = 0, first_inactive = 0;
	for (size_t i = 0; i < lines; i++) {
		char name[4];
		feature_name(i, name);
		if (!wrench_is_active("cat", name) && inactive++ == 0)
			first_inactive = i;
	}
	bool unknown = wrench_is_active("cat", "zzz");
	wrench__set_log_threshold(WRENCH_LOG_WARN);

	if (inactive != 0)
		fail_msg("%zu of %zu features inactive, the first on line %zu", inactive, lines,
		         first_inactive + 1);
	assert_false(unknown);
	assert_no_error();
}

/* The most lines the size limit allows: 65,534 empty ones, then a feature
 * without a newline on line 65,535. */
static void test_65535_lines_in_the_size_limit_the_last_one_works(void **state)
{
	char *text = malloc(WRENCH_MAX_FILE_SIZE + 1);
	assert_non_null(text);
	memset(text, '\n', WRENCH_MAX_FILE_SIZE - 1);
	text[WRENCH_MAX_FILE_SIZE - 1] = 'z';
	text[WRENCH_MAX_FILE_SIZE] = '\0';
	write_file(scratch_dir(state), "cat", text, 0644);
	free(text);

	assert_true(wrench_is_active("cat", "z"));
	assert_true(log_has(WRENCH_LOG_WARN, "cat/z fired (line 65535 ", (const char *)NULL));
	assert_no_error();
}

/* 5,957 lines for one feature that never fire, then one that does: every
 * call walks all of them, and must still answer, and answer true. */
static void test_thousands_of_lines_for_one_feature_reach_the_last(void **state)
{
	static const char never[] = "a chance=0\n";
	const size_t lines = (WRENCH_MAX_FILE_SIZE - 2) / (sizeof(never) - 1);
	size_t len = lines * (sizeof(never) - 1);
	char *text = malloc(len + 3);
	assert_non_null(text);
	for (size_t i = 0; i < lines; i++)
		memcpy(text + i * (sizeof(never) - 1), never, sizeof(never) - 1);
	memcpy(text + len, "a\n", 3);
	write_file(scratch_dir(state), "cat", text, 0644);
	free(text);
	char fired[64];
	snprintf(fired, sizeof(fired), "cat/a fired (line %zu ", lines + 1);

	uint64_t start = now_ns();
	assert_int_equal(count_active("cat", "a", 100), 100);
	assert_true(now_ns() - start < 10000000000u);
	assert_true(log_has(WRENCH_LOG_WARN, fired, (const char *)NULL));
	assert_no_error();
}

/* ---- Contents the grammar reads byte for byte ------------------------------- */

static void test_invalid_utf8_feature_works_for_its_exact_bytes(void **state)
{
	static const char text[] = "\xff\xfe\n"             /* never valid in UTF-8 */
	                           "caf\xc3\n"              /* cut short */
	                           "\xc0\xaf\n"             /* overlong "/" */
	                           "\xed\xa0\x80 times=1\n" /* a UTF-16 surrogate */
	                           "x\x80y\n";              /* a stray continuation */
	write_file(scratch_dir(state), "cat", text, 0644);

	assert_true(wrench_is_active("cat", "\xff\xfe"));
	assert_true(wrench_is_active("cat", "caf\xc3"));
	assert_true(wrench_is_active("cat", "\xc0\xaf"));
	assert_true(wrench_is_active("cat", "x\x80y"));
	assert_int_equal(count_active("cat", "\xed\xa0\x80", 3), 1);
	/* Only those exact bytes: no decoding, repair or normalisation. */
	assert_false(wrench_is_active("cat", "\xff"));
	assert_false(wrench_is_active("cat", "caf\xc3\xa9"));
	assert_false(wrench_is_active("cat", "caf"));
	assert_false(wrench_is_active("cat", "/"));
	assert_false(wrench_is_active("cat", "xy"));
	assert_false(wrench_is_active("cat", "x\xef\xbf\xbdy"));
	assert_no_error();
}

static void test_invalid_utf8_in_comments_is_ignored(void **state)
{
	static const char text[] = "# \xff\xfe\xc3\x28 comment\n"
	                           "#\x80\xbf\n"
	                           "feat # caf\xe9 \xed\xa0\x80\n"
	                           "\t# \xf8\x88\x80\x80\x80 five-byte form\n";
	write_file(scratch_dir(state), "cat", text, 0644);

	assert_true(wrench_is_active("cat", "feat"));
	assert_false(wrench_is_active("cat", "\xff\xfe\xc3\x28"));
	assert_false(wrench_is_active("cat", "caf\xe9"));
	assert_no_error();
	/* A comment names no feature, and a call that asks for one is told. */
	assert_false(wrench_is_active("cat", "#\x80\xbf"));
	assert_error_logged("\"#\\x80\\xbf\"", "starts with #");
}

/* A category is a file name: any bytes but "/" and NUL. */
static void test_invalid_utf8_category_names_a_file_like_any_other(void **state)
{
	write_file(scratch_dir(state), "\xff\xfe-cat", "feat\n", 0644);

	assert_true(wrench_is_active("\xff\xfe-cat", "feat"));
	assert_false(wrench_is_active("\xff-cat", "feat"));
	assert_no_error();
}

static void test_last_line_without_newline_is_a_line(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "one\ntwo times=1", 0644);
	write_file(dir, "solo", "alone", 0644);
	write_file(dir, "commented", "three # no newline after this", 0644);

	assert_true(wrench_is_active("cat", "one"));
	/* Its directive is read too: it fires once. */
	assert_int_equal(count_active("cat", "two", 3), 1);
	assert_true(wrench_is_active("solo", "alone"));
	assert_true(wrench_is_active("commented", "three"));
	assert_false(wrench_is_active("commented", "newline"));
	assert_no_error();
}

/*
 * wrench(5): lines end with a newline, and a carriage return is white
 * space. A file with only "\r" line ends is therefore one line: its first
 * word is the feature, and the rest are its directives.
 */
static void test_file_with_only_carriage_returns_is_one_line(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512], where[600];
	write_file(dir, "cat", "x\rfail\r", 0644);
	write_file(dir, "bad", "a\rb\rc\r", 0644);
	path_in(dir, "bad", path, sizeof(path));
	snprintf(where, sizeof(where), "%s:1: ", path);

	assert_true(wrench_is_active("cat", "x"));
	assert_false(wrench_is_active("cat", "fail"));
	assert_no_error();
	assert_false(wrench_is_active("cat", "x\rfail"));
	assert_error_logged("\"x\\x0dfail\"", "contains white space");
	log_capture_reset();

	/* "b" is no directive: the one line is malformed, and names nothing. */
	assert_false(wrench_is_active("bad", "a"));
	assert_false(wrench_is_active("bad", "b"));
	assert_false(wrench_is_active("bad", "c"));
	assert_error_logged(where, "unknown directive \"b\"");
	assert_int_equal(log_count(WRENCH_LOG_ERROR, path), 1);
}

/* ---- Modes not covered by test_trust.c ----------------------------------------- */

static void test_file_of_mode_0777_is_ignored(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0777);
	path_in(dir, "cat", path, sizeof(path));

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "writable by group or others", "mode 0777", "chmod go-w");
}

static void test_world_writable_wrench_dir_without_sticky_bit_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_int_equal(chmod(dir, 0777), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(dir, "writable by group or others", "mode 0777", "chmod go-w");
}

/* ---- The directory removed and recreated ----------------------------------------- */

static void remove_wrench_dir(const char *wrench)
{
	char path[512];
	struct stat st;
	if (lstat(wrench, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		assert_int_equal(unlink(wrench), 0);
		return;
	}
	unlink(path_in(wrench, "cat", path, sizeof(path)));
	remove_state_dir(wrench);
	assert_int_equal(rmdir(wrench), 0);
}

/*
 * Between two calls, the wrench directory is removed and made again: as a
 * good directory with a new trigger file, as a group-writable one, or as a
 * plain file. Each call must answer for what is there now.
 */
static void test_directory_removed_and_recreated_between_calls(void **state)
{
	need_strict_visibility();
	char wrench[512], feature[32], previous[32] = "none";
	path_in(scratch_dir(state), "w", wrench, sizeof(wrench));
	assert_int_equal(wrench_set_dir(wrench), 0);

	for (int i = 0; i < 60; i++) {
		snprintf(feature, sizeof(feature), "feat-%d", i);
		char content[40];
		snprintf(content, sizeof(content), "%s\n", feature);
		remove_wrench_dir(wrench);
		if (i % 3 == 2) {
			write_file(scratch_dir(state), "w", content, 0644);
		} else {
			assert_int_equal(mkdir(wrench, 0700), 0);
			assert_int_equal(chmod(wrench, i % 3 ? 0770 : 0700), 0);
			write_file(wrench, "cat", content, 0644);
		}

		bool good = i % 3 == 0;
		if (wrench_is_active("cat", feature) != good) {
			log_dump();
			fail_msg("round %d: %s answered %s", i, feature, good ? "false" : "true");
		}
		assert_false(wrench_is_active("cat", previous));
		snprintf(previous, sizeof(previous), "%s", feature);
	}
	assert_error_logged(wrench, "writable by group or others", "mode 0770");
	assert_error_logged(wrench, "not a directory");
	/* Nothing else went wrong. */
	size_t errors = log_count(WRENCH_LOG_ERROR, "");
	size_t explained = log_count(WRENCH_LOG_ERROR, "mode 0770") +
	                   log_count(WRENCH_LOG_ERROR, "not a directory");
	if (errors != explained) {
		log_dump();
		fail_msg("%zu ERROR messages, only %zu about the refused directories", errors,
		         explained);
	}
}

/* ---- Another process rewriting the file during calls ----------------------------------- */

/*
 * The writer goes through these versions of DIR/cat in a random order,
 * each made the way the comment says; the in-place ones only ever change
 * the file that V_X renamed into place, never a refused one. No version
 * names "never"; "z" is only ever in a file that is group- and
 * world-writable from the moment it has the name, and "n" only in a file
 * with a NUL byte, so both are always refused; "bad" is only on a
 * malformed line. A call may see any version, or the file missing or
 * empty, but never one of those four features active.
 *
 * Each call answers from one version, but two calls in a row may see two:
 * "x" then "y" both active is no inconsistency, so the invariant is on
 * what no single version allows. The ERRORs must likewise all be ones a
 * version explains, and once the writer stops, the next call must see the
 * file as it is: no version survives the storm in a cache.
 */
enum {
	V_X,         /* "x" and a malformed line, renamed into place */
	V_Y,         /* "y", rewritten in place: truncated, then one write */
	V_Y_CHMOD,   /* the same, group-writable for a moment */
	V_TRUNCATED, /* empty: truncated in place */
	V_Z,         /* "z", mode 0666, renamed into place */
	V_NUL,       /* "n" and a NUL byte, renamed into place */
	V_DELETED,   /* no file at all */
	V_COUNT
};

static const char *const never_active[] = {"z", "n", "bad", "never"};

/* Every ERROR a version above justifies. */
static const char *const justified_errors[] = {
        "is writable by group or others (mode 0664)",
        "is writable by group or others (mode 0666)",
        "contains a NUL byte at offset 2",
        ":2: unknown directive \"chanse=1\"",
};

static volatile sig_atomic_t writer_stop;

static void stop_writer(int sig)
{
	(void)sig;
	writer_stop = 1;
}

static bool replace_file(const char *dir, const char *content, size_t len, mode_t mode)
{
	char tmp[512], path[512];
	snprintf(tmp, sizeof(tmp), "%s/.writer-tmp", dir);
	snprintf(path, sizeof(path), "%s/cat", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	bool ok = fchmod(fd, mode) == 0 && write(fd, content, len) == (ssize_t)len;
	return close(fd) == 0 && ok && rename(tmp, path) == 0;
}

static bool rewrite_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = write(fd, content, strlen(content)) == (ssize_t)strlen(content);
	return close(fd) == 0 && ok;
}

static bool write_version(const char *dir, int version)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/cat", dir);
	switch (version) {
	case V_X:
		return replace_file(dir, "x\nbad chanse=1\n", 15, 0644);
	case V_Y:
		return rewrite_file(path, "y\n");
	case V_Y_CHMOD:
		return chmod(path, 0664) == 0 && chmod(path, 0644) == 0;
	case V_TRUNCATED:
		return truncate(path, 0) == 0;
	case V_Z:
		return replace_file(dir, "z\n", 2, 0666);
	case V_NUL:
		return replace_file(dir, "n\n\0", 3, 0644);
	default:
		return unlink(path) == 0;
	}
}

/* A step of a 64-bit linear congruential generator: the top bits are
 * random enough to pick a version. */
static uint32_t next_random(uint64_t *state)
{
	*state = *state * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(*state >> 33);
}

/* The next version to write: any while the file is the one V_X made,
 * otherwise one that replaces or removes the file. The weights keep "x"
 * and "y" each in the file a good part of the time. */
static int pick_version(uint64_t *lcg, bool x_file)
{
	static const int from_x_file[] = {V_Y, V_Y, V_Y_CHMOD, V_Y_CHMOD, V_TRUNCATED,
	                                  V_X, V_Z, V_NUL,     V_DELETED};
	static const int from_other[] = {V_X, V_X, V_X, V_Z, V_NUL, V_DELETED};
	uint32_t r = next_random(lcg);

	if (x_file)
		return from_x_file[r % (sizeof(from_x_file) / sizeof(from_x_file[0]))];
	return from_other[r % (sizeof(from_other) / sizeof(from_other[0]))];
}

/*
 * The writer: runs until SIGTERM, or at most 120 s should the parent die
 * without sending it; exits 0, or 1 when a change failed. After half of
 * the versions, at random, it waits 200 us, so that a call can also find
 * one quiet and keep it (a load during which the file changed is not
 * kept); the others follow at once, for the races. The order is random
 * because relaxed mode samples the file once per period: with a fixed
 * cycle, on a loaded machine, the samples fell on the same few versions
 * for 15 s and never on "x".
 */
static uint64_t writer_seed; /* set before the fork, told on failure */

static void write_versions(void *arg)
{
	const char *dir = arg;
	const struct timespec hold = {0, 200000};
	uint64_t deadline = now_ns() + 120000000000u;
	uint64_t lcg = writer_seed;
	bool x_file = false, exists = false;
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	signal(SIGTERM, stop_writer);
	sigprocmask(SIG_UNBLOCK, &term, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (!writer_stop && now_ns() < deadline) {
		int version = pick_version(&lcg, x_file);
		if (version == V_DELETED && !exists)
			continue;
		if (!write_version(dir, version))
			_exit(1);
		exists = version != V_DELETED;
		x_file = version != V_DELETED && version != V_Z && version != V_NUL;
		if (next_random(&lcg) % 2)
			nanosleep(&hold, NULL);
	}
	_exit(0);
}

struct error_audit {
	unsigned errors, unjustified;
	char first_unjustified[WRENCH_MAX_MESSAGE];
};

static void audit_errors(enum wrench_log_level level, const char *message, void *ctx)
{
	struct error_audit *audit = ctx;
	if (level != WRENCH_LOG_ERROR)
		return;
	audit->errors++;
	for (size_t i = 0; i < sizeof(justified_errors) / sizeof(justified_errors[0]); i++)
		if (strstr(message, justified_errors[i]))
			return;
	if (audit->unjustified++ == 0)
		snprintf(audit->first_unjustified, sizeof(audit->first_unjustified), "%s", message);
}

static void test_file_changed_by_another_process_during_calls(void **state)
{
	const char *dir = scratch_dir(state);
	struct error_audit audit = {0};
	unsigned calls = 0, x_active = 0, y_active = 0;
	const char *wrong = NULL;

	wrench_set_logger(audit_errors, &audit);
	/* SIGTERM stays blocked until the writer has its handler, so that
	 * stopping it early cannot kill it. */
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	assert_int_equal(sigprocmask(SIG_BLOCK, &term, &old), 0);
	fflush(NULL);
	writer_seed = now_ns();
	pid_t writer = fork();
	assert_true(writer >= 0);
	if (writer == 0)
		write_versions((void *)dir);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);

	/* At least a second of calls, and until both versions with a feature
	 * have been seen, which takes a second or two; on a loaded machine,
	 * where the writer and the calls wait for their turns, longer: the
	 * deadline is generous. Relaxed mode sees one version per period: a
	 * period of 10 ms, not the 100 of the test run, gives it 100 chances
	 * a second, not 10, to see each of the two. The alarm turns a call
	 * that hangs into a failed test. */
	const char *recheck = getenv("WRENCH_RECHECK_MS");
	if (recheck && strcmp(recheck, "0") != 0)
		wrench_set_recheck_ms(10);
	uint64_t start = now_ns(), elapsed = 0;
	alarm(75);
	while (!wrong && (elapsed < 1000000000u || !x_active || !y_active) &&
	       elapsed < 60000000000u) {
		x_active += wrench_is_active("cat", "x");
		y_active += wrench_is_active("cat", "y");
		for (size_t i = 0; i < sizeof(never_active) / sizeof(never_active[0]); i++)
			if (wrench_is_active("cat", never_active[i]))
				wrong = never_active[i];
		calls++;
		elapsed = now_ns() - start;
	}
	alarm(0);
	kill(writer, SIGTERM);
	int status;
	assert_int_equal(waitpid(writer, &status, 0), writer);
	log_capture_install();

	if (wrong)
		fail_msg("\"%s\" answered true after %u rounds of calls; no version names it",
		         wrong, calls);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the writer failed (status 0x%x)", (unsigned)status);
	if (audit.unjustified)
		fail_msg("%u of %u ERROR messages are not about a version written, the first: %s",
		         audit.unjustified, audit.errors, audit.first_unjustified);
	if (!x_active || !y_active)
		fail_msg("in %u rounds, x was active %u times and y %u times: the calls did not "
		         "see the file change (writer seed %llu)",
		         calls, x_active, y_active, (unsigned long long)writer_seed);

	/* Once the writer is gone, the next call sees the file as it is. */
	need_strict_visibility();
	write_file(dir, "cat", "final\n", 0644);
	assert_true(wrench_is_active("cat", "final"));
	assert_false(wrench_is_active("cat", "x"));
	assert_false(wrench_is_active("cat", "y"));
	rewrite_in_place(dir, "cat", "y\n");
	assert_true(wrench_is_active("cat", "y"));
	assert_false(wrench_is_active("cat", "final"));
}

#define HOSTILE_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        HOSTILE_TEST(test_symlink_to_dev_zero_is_ignored_promptly),
	        HOSTILE_TEST(test_symlink_to_a_fifo_is_ignored_promptly),
	        HOSTILE_TEST(test_symlink_loops_are_ignored_with_an_error),
	        HOSTILE_TEST(test_sparse_2_gib_file_is_refused_by_its_size),
	        HOSTILE_TEST(test_single_line_of_1_mib_is_refused),
	        HOSTILE_TEST(test_100000_short_lines_are_refused_by_size),
	        HOSTILE_TEST(test_16384_distinct_features_in_64_kib_all_work),
	        HOSTILE_TEST(test_65535_lines_in_the_size_limit_the_last_one_works),
	        HOSTILE_TEST(test_thousands_of_lines_for_one_feature_reach_the_last),
	        HOSTILE_TEST(test_invalid_utf8_feature_works_for_its_exact_bytes),
	        HOSTILE_TEST(test_invalid_utf8_in_comments_is_ignored),
	        HOSTILE_TEST(test_invalid_utf8_category_names_a_file_like_any_other),
	        HOSTILE_TEST(test_last_line_without_newline_is_a_line),
	        HOSTILE_TEST(test_file_with_only_carriage_returns_is_one_line),
	        HOSTILE_TEST(test_file_of_mode_0777_is_ignored),
	        HOSTILE_TEST(test_world_writable_wrench_dir_without_sticky_bit_is_refused),
	        HOSTILE_TEST(test_directory_removed_and_recreated_between_calls),
	        HOSTILE_TEST(test_file_changed_by_another_process_during_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
