/*
 * The machine-wide counters (wrench(5), COUNTERS): shared by processes and
 * threads, kept across restarts, keyed by line, in a file sized to need;
 * the fire records; expiry with until=; lines that fail closed when the
 * state cannot be used; and the bounded fire log.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAT "agent"

static int setup(void **state)
{
	return scratch_setup(state);
}

static int teardown(void **state)
{
	wrench__set_fire_log_period_ns(10 * 1000000000LL);
	return scratch_teardown(state);
}

static void trigger(void **state, const char *content)
{
	write_file(scratch_dir(state), CAT, content, 0600);
}

/* What a freshly started agent answers on its first call: the child
 * forgets what it inherited, as a new program has nothing to inherit. */
static void one_call(void *arg)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", wrench_get_dir());
	if (wrench_set_dir(dir) != 0)
		_exit(255);
	_exit(wrench_is_active(CAT, (const char *)arg) ? 1 : 0);
}

/* Runs one call of FEATURE in a new process: 1 active, 0 not, -SIG killed. */
static int call_in_new_process(const char *feature)
{
	int status = run_in_child(one_call, (void *)feature);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A line's counters, as plain numbers. */
struct counts {
	uint64_t calls, draws, fires;
	int64_t last_fire_ns;
	uint32_t last_pid;
};

/* The shared counters of line LINE (1-based, among the trigger lines) of
 * CAT, read as the wrench command reads them. */
static struct counts read_counters(void **state, size_t line)
{
	char path[512];
	struct wrench__rules *rules;
	struct wrench__state *st;
	struct wrench__problem why;
	struct counts copy = {0};
	const char *dir = scratch_dir(state);

	FILE *f = fopen(path_in(dir, CAT, path, sizeof(path)), "r");
	assert_non_null(f);
	static char text[16384];
	size_t len = fread(text, 1, sizeof(text), f);
	fclose(f);
	assert_int_equal(wrench__parse_rules(text, len, &rules), 0);
	assert_int_equal(wrench__rules_set_keys(rules), 0);
	assert_true(line >= 1 && line <= rules->count);
	int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir};
	assert_int_equal(wrench__state_open(&w, CAT, &st, &why), 0);
	close(dirfd);
	struct wrench__counters *slot = wrench__state_slot(st, rules->rule[line - 1].key, false);
	if (slot) {
		struct wrench__totals totals;
		wrench__state_totals(st, slot, &totals);
		copy.calls = totals.calls;
		copy.fires = totals.fires;
		copy.draws = totals.draws;
		copy.last_fire_ns = atomic_load(&slot->last_fire_ns);
		copy.last_pid = atomic_load(&slot->last_pid);
	}
	wrench__state_close(st);
	wrench__rules_free(rules);
	return copy;
}

/* ---- across processes ----------------------------------------------------- */

static void test_kill_times_one_kills_only_the_first_process(void **state)
{
	trigger(state, "crash kill times=1\n");
	assert_int_equal(call_in_new_process("crash"), -SIGKILL);
	/* The restarted agent recovers: the line is spent. */
	assert_int_equal(call_in_new_process("crash"), 0);
	assert_int_equal(call_in_new_process("crash"), 0);
	assert_int_equal(read_counters(state, 1).fires, 1);
}

static void test_first_every_follows_the_pattern_across_processes(void **state)
{
	char got[7];
	trigger(state, "fetch first=2 every=3\n");
	for (int i = 0; i < 6; i++)
		got[i] = (char)('0' + call_in_new_process("fetch"));
	got[6] = '\0';
	assert_string_equal(got, "110110");
}

static void test_fire_record_names_the_process_and_the_time(void **state)
{
	trigger(state, "step times=2\n");
	struct timespec before;
	clock_gettime(CLOCK_REALTIME, &before);
	assert_true(wrench_is_active(CAT, "step"));
	struct counts c = read_counters(state, 1);
	assert_int_equal(c.last_pid, (uint32_t)getpid());
	/* The coarse clock may lag by a tick: a generous second. */
	assert_true(c.last_fire_ns >= (int64_t)before.tv_sec * 1000000000 - 1000000000);
	assert_true(c.last_fire_ns <= (int64_t)before.tv_sec * 1000000000 + 60ll * 1000000000);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.fires, 1);
}

/* ---- processes and threads at once --------------------------------------- */

#define PROCESSES 4
#define THREADS   2

struct hammer {
	const char *feature;
	unsigned calls;
	_Atomic unsigned active;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	atomic_fetch_add(&h->active, count_active(CAT, h->feature, h->calls));
	return NULL;
}

/* Each process runs THREADS threads and writes how often it was active. */
static void hammer_process(void *arg)
{
	struct hammer *h = arg;
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, hammer_thread, h) != 0)
			_exit(255);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	unsigned active = atomic_load(&h->active);
	_exit(active > 254 ? 254 : (int)active);
}

/* Starts PROCESSES processes at once; returns the total of their counts
 * as read back from the shared state. */
static void hammer(void **state, const char *feature, unsigned calls)
{
	struct hammer h = {.feature = feature, .calls = calls};
	pid_t pid[PROCESSES];

	fflush(NULL);
	for (int p = 0; p < PROCESSES; p++) {
		pid[p] = fork();
		assert_true(pid[p] >= 0);
		if (pid[p] == 0)
			hammer_process(&h);
	}
	for (int p = 0; p < PROCESSES; p++) {
		int status;
		assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 255);
	}
	(void)state;
}

static void test_times_is_exact_over_processes_and_threads(void **state)
{
	trigger(state, "step times=1000\n");
	hammer(state, "step", 2000);
	struct counts c = read_counters(state, 1);
	assert_int_equal(c.fires, 1000);
	assert_int_equal(c.calls, PROCESSES * THREADS * 2000);
}

static void test_every_is_exact_over_processes_and_threads(void **state)
{
	trigger(state, "step every=4\n");
	hammer(state, "step", 1000);
	struct counts c = read_counters(state, 1);
	assert_int_equal(c.calls, PROCESSES * THREADS * 1000);
	assert_int_equal(c.fires, PROCESSES * THREADS * 1000 / 4);
}

/* A line no count decides counts per CPU: the totals stay exact. */
static void test_lines_no_count_decides_are_exact_over_processes_and_threads(void **state)
{
	trigger(state, "step\nhalf chance=0.5\n");
	hammer(state, "step", 2000);
	hammer(state, "half", 2000);
	struct counts c = read_counters(state, 1);
	assert_int_equal(c.calls, PROCESSES * THREADS * 2000);
	assert_int_equal(c.fires, PROCESSES * THREADS * 2000);
	struct counts half = read_counters(state, 2);
	assert_int_equal(half.calls, PROCESSES * THREADS * 2000);
	assert_true(half.fires > 0 && half.fires < half.calls);
}

/* The state file of this process's user in DIR. */
static char *state_file_in(const char *dir, char *path, size_t len)
{
	snprintf(path, len, "%s/%s/counters-v3-%u", dir, WRENCH_STATE_DIR, (unsigned)geteuid());
	return path;
}

static off_t state_file_size(void **state)
{
	char path[600];
	struct stat st;

	assert_int_equal(stat(state_file_in(scratch_dir(state), path, sizeof(path)), &st), 0);
	return st.st_size;
}

/* More lines than a category's first place in the table holds: every
 * line still has counters of its own, found again by a new process. */
static void test_a_category_of_many_lines_keeps_each_line_apart(void **state)
{
	enum { LINES = 600 };
	static char text[LINES * 24];
	size_t len = 0;
	char feature[16];

	for (int i = 0; i < LINES; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "f%d times=1\n", i);
	trigger(state, text);
	for (int i = 0; i < LINES; i++) {
		snprintf(feature, sizeof(feature), "f%d", i);
		assert_true(wrench_is_active(CAT, feature));
		assert_false(wrench_is_active(CAT, feature));
	}
	for (unsigned line = 1; line <= LINES; line += 199) {
		struct counts c = read_counters(state, line);
		assert_int_equal(c.calls, 2);
		assert_int_equal(c.fires, 1);
	}
	assert_int_equal(call_in_new_process("f0"), 0);
	assert_int_equal(call_in_new_process("f599"), 0);
	/* They took more room than the file starts with: it grew. */
	assert_true(state_file_size(state) > 132 * 1024);
}

static void test_processes_starting_at_once_share_one_state(void **state)
{
	char path[512];
	/* No state yet: every process creates it at its first call. */
	trigger(state, "step times=1\n");
	hammer(state, "step", 1);
	assert_int_equal(read_counters(state, 1).fires, 1);
	/* One state file, no temporary left behind. */
	path_in(scratch_dir(state), WRENCH_STATE_DIR, path, sizeof(path));
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
	         "test \"$(ls -A '%s' | tr '\\n' ' ')\" = 'counters-v3-%u points-v1-%u '", path,
	         (unsigned)geteuid(), (unsigned)geteuid());
	assert_int_equal(system(cmd), 0);
}

/* The state file has its blocks from the start, and is small: the first
 * store to a hole of a shared mapping that a full disk cannot back raises
 * SIGBUS, in the middle of a call; a handful of trigger files costs at
 * most 1 MiB of disk. */
static void test_state_file_is_small_and_allocated_when_created(void **state)
{
	char path[600];
	struct stat st;

	for (int i = 0; i < 10; i++) {
		char category[16];
		snprintf(category, sizeof(category), "cat%d", i);
		write_file(scratch_dir(state), category, "step times=5\nother every=2\nplain\n",
		           0600);
		assert_true(wrench_is_active(category, "step"));
	}
	assert_int_equal(stat(state_file_in(scratch_dir(state), path, sizeof(path)), &st), 0);
	printf("state file: %lld bytes, %lld allocated\n", (long long)st.st_size,
	       (long long)st.st_blocks * 512);
	assert_true((long long)st.st_blocks * 512 >= (long long)st.st_size);
	assert_true(st.st_blocks * 512 <= 1024 * 1024);
}

/* ---- which changes restart a line's counters --------------------------------- */

static void test_changing_another_line_keeps_the_counters(void **state)
{
	need_strict_visibility();
	trigger(state, "step times=2\nother\n");
	assert_true(wrench_is_active(CAT, "step"));
	trigger(state, "step times=2\nother fail\n");
	assert_true(wrench_is_active(CAT, "step"));
	assert_false(wrench_is_active(CAT, "step"));
}

static void test_adding_a_line_keeps_the_counters(void **state)
{
	need_strict_visibility();
	trigger(state, "step first=1 every=2\n");
	assert_true(wrench_is_active(CAT, "step"));
	trigger(state, "new\nstep first=1 every=2   # a comment\n");
	assert_false(wrench_is_active(CAT, "step"));
	assert_true(wrench_is_active(CAT, "step"));
}

static void test_changing_the_line_restarts_its_counters(void **state)
{
	need_strict_visibility();
	trigger(state, "step times=1\n");
	assert_int_equal(count_active(CAT, "step", 3), 1);
	trigger(state, "step times=1 fail\n");
	assert_int_equal(count_active(CAT, "step", 3), 1);
}

static void test_identical_lines_are_two_lines(void **state)
{
	trigger(state, "step times=1\nstep times=1\n");
	assert_int_equal(count_active(CAT, "step", 5), 2);
	assert_int_equal(read_counters(state, 1).fires, 1);
	assert_int_equal(read_counters(state, 2).fires, 1);
}

static void test_removing_the_state_rearms_the_lines(void **state)
{
	trigger(state, "step times=1\n");
	assert_int_equal(call_in_new_process("step"), 1);
	assert_int_equal(call_in_new_process("step"), 0);
	remove_state_dir(scratch_dir(state));
	assert_int_equal(call_in_new_process("step"), 1);
}

static void test_scope_process_counts_per_process(void **state)
{
	trigger(state, "step times=1 scope=process\n");
	assert_int_equal(call_in_new_process("step"), 1);
	assert_int_equal(call_in_new_process("step"), 1);
}

/* ---- killed in the middle ------------------------------------------------------- */

/* What a spinning process tells the test, in memory they share. */
struct spinner {
	atomic_bool started; /* about to make its first call */
	atomic_bool called;  /* a call has returned */
};

static void spin(void *arg)
{
	struct spinner *s = arg;
	atomic_store(&s->started, true);
	for (;;) {
		wrench_is_active(CAT, "step");
		atomic_store(&s->called, true);
	}
}

/* Waits until FLAG is set, at most 30 s: a loaded machine may not run a
 * new process for a while. */
static bool wait_for_flag(atomic_bool *flag)
{
	uint64_t deadline = now_ns() + 30 * 1000000000ull;
	struct timespec pause = {0, 20000};
	while (!atomic_load(flag) && now_ns() < deadline)
		nanosleep(&pause, NULL);
	return atomic_load(flag);
}

static void test_processes_killed_while_counting_leave_a_usable_state(void **state)
{
	struct spinner *s =
	        mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s != MAP_FAILED);
	trigger(state, "step every=2 times=100000000\nlast times=1\n");
	for (int i = 0; i < 100; i++) {
		atomic_store(&s->started, false);
		atomic_store(&s->called, false);
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			spin(s);
		/* Killed at some point of its loop, counted from when it runs,
		 * the first ones while they create or attach the state. Every
		 * tenth has made a call first: the state is made and counts,
		 * however late the machine runs the others. */
		bool ran = wait_for_flag(&s->started) && (i % 10 != 9 || wait_for_flag(&s->called));
		struct timespec pause = {0, (long)(i % 10) * 100000};
		if (ran)
			nanosleep(&pause, NULL);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!ran)
			fail_msg("process %d did not start, or made no call, in 30 s", i);
	}
	munmap(s, sizeof(*s));
	struct counts c = read_counters(state, 1);
	/* A process killed between counting a call and its fire loses the
	 * fire, never more. */
	assert_true(c.fires <= (c.calls + 1) / 2);
	assert_true(c.fires + 100 >= (c.calls + 1) / 2);
	assert_int_equal(call_in_new_process("last"), 1);
	assert_int_equal(call_in_new_process("last"), 0);
}

/* ---- when the state cannot be used ------------------------------------------ */

/*
 * The state cannot be used: the line "step times=1" (spent, or never
 * fired) never fires, in this process or a new one, and NEEDLE is in the
 * message that says so; a line no count decides still fires.
 */
static void assert_fails_closed(void **state, const char *needle)
{
	log_capture_reset();
	assert_int_equal(count_active(CAT, "step", 3), 0);
	assert_true(wrench_is_active(CAT, "plain"));
	if (!log_has(WRENCH_LOG_WARN, needle, "never fire", (const char *)NULL)) {
		log_dump();
		fail_msg("no message containing %s and \"never fire\"", needle);
	}
	/* A new process does not count again from zero. */
	assert_int_equal(call_in_new_process("step"), 0);
	(void)state;
}

static void make_state_file(void **state, const char *content, size_t len, mode_t mode)
{
	char sdir[512], path[600];
	path_in(scratch_dir(state), WRENCH_STATE_DIR, sdir, sizeof(sdir));
	make_dir_with_mode(sdir, 0700);
	state_file_in(scratch_dir(state), path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_damaged_state_keeps_the_lines_that_count_off(void **state)
{
	make_state_file(state, "garbage", 7, 0600);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state, "is damaged");
	assert_true(
	        log_has(WRENCH_LOG_WARN, "fix: rm", "starts again from zero", (const char *)NULL));
	/* Told once, not at every reload. */
	log_capture_reset();
	trigger(state, "step times=1\nplain\nother\n");
	count_active(CAT, "step", 2);
	assert_int_equal(log_count(WRENCH_LOG_WARN, "is damaged"), 0);
}

/* The fix keeps the counts: once the mode is mended, the spent line stays
 * spent. */
static void test_group_writable_state_keeps_a_spent_line_off(void **state)
{
	char path[600];

	trigger(state, "step times=1\nplain\n");
	assert_int_equal(call_in_new_process("step"), 1); /* creates the state */
	assert_int_equal(chmod(state_file_in(scratch_dir(state), path, sizeof(path)), 0660), 0);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state, "writable by group or others");
	assert_true(log_has(WRENCH_LOG_WARN, "fix: chmod go-w", "its counts are kept",
	                    (const char *)NULL));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(call_in_new_process("step"), 0);
}

static void test_state_owned_by_another_user_keeps_the_lines_that_count_off(void **state)
{
	if (!need_root("chown a state file to another user"))
		return;
	trigger(state, "step times=1\nplain\n");
	assert_int_equal(call_in_new_process("step"), 1);
	char path[600];
	assert_int_equal(chown(state_file_in(scratch_dir(state), path, sizeof(path)), 4242, 4242),
	                 0);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state, "owned by uid 4242");
}

/* A second name of the counters file (possible where protected_hardlinks
 * is 0): refused, the line stays off, and the fix keeps the counts. */
static void test_state_file_with_a_second_link_keeps_a_spent_line_off(void **state)
{
	char path[600], other[600];

	trigger(state, "step times=1\nplain\n");
	assert_int_equal(call_in_new_process("step"), 1);
	state_file_in(scratch_dir(state), path, sizeof(path));
	assert_int_equal(link(path, path_in(scratch_dir(state), "elsewhere", other, sizeof(other))),
	                 0);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state, "2 links");
	assert_true(
	        log_has(WRENCH_LOG_WARN, "-samefile", "its counts are kept", (const char *)NULL));
	assert_int_equal(unlink(other), 0);
	assert_int_equal(call_in_new_process("step"), 0);
}

/* The fix of a state problem is a command to paste: a path with a space or
 * "$(...)" in it is one quoted word. */
static void test_fix_of_a_state_problem_is_quoted_for_the_shell(void **state)
{
	char dir[512], path[700], quoted[64];

	path_in(scratch_dir(state), "d $(touch x)", dir, sizeof(dir));
	make_dir_with_mode(dir, 0700);
	assert_int_equal(wrench_set_dir(dir), 0);
	write_file(dir, CAT, "step times=1\n", 0600);
	assert_int_equal(call_in_new_process("step"), 1); /* creates the state */
	assert_int_equal(chmod(state_file_in(dir, path, sizeof(path)), 0660), 0);
	write_file(dir, CAT, "step times=1\nother\n", 0600);
	log_capture_reset();
	count_active(CAT, "step", 1);
	snprintf(quoted, sizeof(quoted), "$(touch x)/.wrench-state/counters-v3-%u'",
	         (unsigned)geteuid());
	if (!log_has(WRENCH_LOG_WARN, "fix: chmod go-w '", quoted, (const char *)NULL)) {
		log_dump();
		fail_msg("the fix does not quote the path");
	}
}

static void test_state_that_cannot_be_created_keeps_the_lines_that_count_off(void **state)
{
	char sdir[512];
	/* Something that is not a directory where the state would go. */
	write_file(scratch_dir(state), WRENCH_STATE_DIR, "x\n", 0600);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state,
	                    path_in(scratch_dir(state), WRENCH_STATE_DIR, sdir, sizeof(sdir)));
}

/* What an agent running as nobody finds: a trusted root directory it may
 * read but not write, so no state. Exits 0 when its line stayed off and
 * it said why, with the command that prepares the directory for it. */
static void agent_as_nobody(void *arg)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", (const char *)arg);
	if (setgid(65534) != 0 || setuid(65534) != 0 || wrench_set_dir(dir) != 0)
		_exit(2);
	log_capture_reset();
	if (count_active(CAT, "step", 3) != 0 || !wrench_is_active(CAT, "plain"))
		_exit(3);
	_exit(log_has(WRENCH_LOG_WARN, "cannot create", "--owner 65534 prepare", "never fire",
	              (const char *)NULL)
	              ? 0
	              : 4);
}

static void test_agent_that_may_not_create_the_state_keeps_the_lines_that_count_off(void **state)
{
	if (!need_root("run an agent as nobody"))
		return;
	const char *dir = scratch_dir(state);
	assert_int_equal(chmod(dir, 0755), 0);
	write_file(dir, CAT, "step times=1\nplain\n", 0644);
	int status = run_in_child(agent_as_nobody, (void *)dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* An agent that is not the owner of the directory needs no read
 * permission on .wrench-state (0711), only search: with its counters made
 * for it, it counts machine-wide. Exits with the number of fires. */
static void calls_as_nobody(void *arg)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", (const char *)arg);
	if (setgid(65534) != 0 || setuid(65534) != 0 || wrench_set_dir(dir) != 0)
		_exit(200);
	_exit((int)count_active(CAT, "step", 3));
}

static void test_agent_reaches_its_counters_with_search_permission_only(void **state)
{
	if (!need_root("run an agent as nobody"))
		return;
	const char *dir = scratch_dir(state);
	char sdir[512];
	struct wrench__problem why;
	struct wrench__state *st;
	assert_int_equal(chmod(dir, 0755), 0);
	write_file(dir, CAT, "step times=1\n", 0644);
	/* What `wrench --owner nobody prepare` makes: .wrench-state 0711,
	 * root's, and the counters file nobody's. */
	int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct wrench__state_where w = {.dirfd = dirfd,
	                                .dir = dir,
	                                .for_uid = true,
	                                .uid = 65534,
	                                .create = true,
	                                .owner = 65534,
	                                .group = 65534,
	                                .chown = true,
	                                .open_up = true};
	int sdfd = wrench__state_dir(&w, &why);
	assert_true(sdfd >= 0);
	close(sdfd);
	assert_int_equal(wrench__state_open(&w, CAT, &st, &why), 0);
	wrench__state_close(st);
	close(dirfd);
	struct stat sst;
	assert_int_equal(stat(path_in(dir, WRENCH_STATE_DIR, sdir, sizeof(sdir)), &sst), 0);
	assert_int_equal(sst.st_mode & 07777, 0711);
	assert_int_equal(sst.st_uid, 0);
	int status = run_in_child(calls_as_nobody, (void *)dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	status = run_in_child(calls_as_nobody, (void *)dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void count_slot(struct wrench__state *st, struct wrench__counters *slot, void *ctx)
{
	(void)st;
	(void)slot;
	(*(unsigned *)ctx)++;
}

/* The file's owner can write any number of segments in its header: the
 * wrench command (root, reading a user's file) then never reads or writes
 * past the end of the file, nor out of its mapping. */
static void test_a_segment_count_past_the_file_is_never_followed(void **state)
{
	static const uint32_t lies[] = {2, 9, 10, 64, 0xffffffffu};
	char path[600];
	struct wrench__problem why;
	struct wrench__state *st;
	const char *dir = scratch_dir(state);

	trigger(state, "step times=1\n");
	assert_true(wrench_is_active(CAT, "step"));
	int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct wrench__state_where w = {.dirfd = dirfd, .dir = dir};
	assert_int_equal(wrench__state_open(&w, NULL, &st, &why), 0);
	int fd = open(state_file_in(dir, path, sizeof(path)), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		/* The header's segment count, after magic, version and four
		 * sizes. */
		assert_int_equal(pwrite(fd, &lies[i], sizeof(lies[i]), 28),
		                 (ssize_t)sizeof(lies[i]));
		unsigned slots = 0;
		wrench__state_each(st, count_slot, &slots);
		assert_int_equal(slots, 1);
		/* A claim that would need another segment finds none. */
		for (uint64_t key = 1; key < 5000; key++)
			wrench__state_slot(st, key * 0x9e3779b97f4a7c15ull, true);
		struct stat sst;
		assert_int_equal(fstat(fd, &sst), 0);
		assert_int_equal(sst.st_size, 132 * 1024);
	}
	close(fd);
	wrench__state_close(st);
	close(dirfd);
}

/* Made by a root agent, the state directory is root's alone. */
static void test_state_directory_is_private_when_made(void **state)
{
	char sdir[512];
	struct stat st;

	trigger(state, "step times=1\n");
	assert_true(wrench_is_active(CAT, "step"));
	assert_int_equal(
	        stat(path_in(scratch_dir(state), WRENCH_STATE_DIR, sdir, sizeof(sdir)), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
}

static void test_symlinked_state_is_not_followed(void **state)
{
	char sdir[512], path[600], target[600];
	path_in(scratch_dir(state), WRENCH_STATE_DIR, sdir, sizeof(sdir));
	make_dir_with_mode(sdir, 0700);
	path_in(scratch_dir(state), "elsewhere", target, sizeof(target));
	assert_int_equal(symlink(target, state_file_in(scratch_dir(state), path, sizeof(path))), 0);
	trigger(state, "step times=1\nplain\n");
	assert_fails_closed(state, path);
	struct stat st;
	assert_int_equal(lstat(target, &st), -1);
}

static void test_state_directory_is_not_a_category(void **state)
{
	(void)state;
	assert_false(wrench__category_is_valid(WRENCH_STATE_DIR));
	assert_false(wrench_is_active(WRENCH_STATE_DIR, "step"));
	assert_error_logged("invalid category", WRENCH_STATE_DIR);
}

/* ---- until= ------------------------------------------------------------------- */

static void test_until_in_the_past_never_fires(void **state)
{
	trigger(state, "step until=2020-01-01T00:00:00Z\n");
	assert_int_equal(count_active(CAT, "step", 10), 0);
}

static void test_until_in_the_future_fires(void **state)
{
	trigger(state, "step until=2999-12-31T23:59:59Z\n");
	assert_int_equal(count_active(CAT, "step", 10), 10);
}

static void test_until_is_parsed_as_utc(void **state)
{
	(void)state;
	int64_t t;
	char buf[32];
	assert_int_equal(wrench__parse_time("2026-12-01T18:30:00Z", 20, &t), 0);
	assert_int_equal(t, 1796149800);
	wrench__format_time(t, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-01T18:30:00Z");
	assert_int_equal(wrench__parse_time("2024-02-29T00:00:00Z", 20, &t), 0);
	assert_int_equal(wrench__parse_time("2023-02-29T00:00:00Z", 20, &t), -EINVAL);
	assert_int_equal(wrench__parse_time("2026-12-01T18:30:00+01:00", 25, &t), -EINVAL);
	assert_int_equal(wrench__parse_time("2026-12-01 18:30:00Z", 20, &t), -EINVAL);
}

/* ---- the fire log ------------------------------------------------------------- */

static void test_a_million_fires_log_a_bounded_number_of_lines(void **state)
{
	trigger(state, "step chance=10%\n");
	uint64_t start = now_ns();
	unsigned fired = count_active(CAT, "step", 1000000);
	uint64_t seconds = (now_ns() - start) / 1000000000u;
	assert_true(fired > 90000 && fired < 110000);
	size_t lines = log_count(WRENCH_LOG_WARN, CAT "/step");
	/* The first fire, then one summary per 10 s at most. */
	assert_true(lines >= 1);
	assert_true(lines <= 2 + seconds / 10);
}

static void test_later_fires_are_summed_in_one_line(void **state)
{
	wrench__set_fire_log_period_ns(1);
	trigger(state, "step\n");
	assert_true(wrench_is_active(CAT, "step"));
	struct timespec tick = {0, 20 * 1000000}; /* past a coarse clock tick */
	nanosleep(&tick, NULL);
	assert_true(wrench_is_active(CAT, "step"));
	if (!log_has(WRENCH_LOG_WARN, CAT "/step fired 1 more time(s)", (const char *)NULL)) {
		log_dump();
		fail_msg("no summary line");
	}
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TEST(test_kill_times_one_kills_only_the_first_process),
	        TEST(test_first_every_follows_the_pattern_across_processes),
	        TEST(test_fire_record_names_the_process_and_the_time),
	        TEST(test_times_is_exact_over_processes_and_threads),
	        TEST(test_every_is_exact_over_processes_and_threads),
	        TEST(test_lines_no_count_decides_are_exact_over_processes_and_threads),
	        TEST(test_a_category_of_many_lines_keeps_each_line_apart),
	        TEST(test_processes_starting_at_once_share_one_state),
	        TEST(test_state_file_is_small_and_allocated_when_created),
	        TEST(test_changing_another_line_keeps_the_counters),
	        TEST(test_adding_a_line_keeps_the_counters),
	        TEST(test_changing_the_line_restarts_its_counters),
	        TEST(test_identical_lines_are_two_lines),
	        TEST(test_removing_the_state_rearms_the_lines),
	        TEST(test_scope_process_counts_per_process),
	        TEST(test_processes_killed_while_counting_leave_a_usable_state),
	        TEST(test_damaged_state_keeps_the_lines_that_count_off),
	        TEST(test_group_writable_state_keeps_a_spent_line_off),
	        TEST(test_state_owned_by_another_user_keeps_the_lines_that_count_off),
	        TEST(test_state_file_with_a_second_link_keeps_a_spent_line_off),
	        TEST(test_fix_of_a_state_problem_is_quoted_for_the_shell),
	        TEST(test_state_that_cannot_be_created_keeps_the_lines_that_count_off),
	        TEST(test_agent_that_may_not_create_the_state_keeps_the_lines_that_count_off),
	        TEST(test_agent_reaches_its_counters_with_search_permission_only),
	        TEST(test_state_directory_is_private_when_made),
	        TEST(test_a_segment_count_past_the_file_is_never_followed),
	        TEST(test_symlinked_state_is_not_followed),
	        TEST(test_state_directory_is_not_a_category),
	        TEST(test_until_in_the_past_never_fires),
	        TEST(test_until_in_the_future_fires),
	        TEST(test_until_is_parsed_as_utc),
	        TEST(test_a_million_fires_log_a_bounded_number_of_lines),
	        TEST(test_later_fires_are_summed_in_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
