/*
 * Threads and fork: an agent calls the library from many threads while an
 * operator (or an accident) changes the trigger files and the switch under
 * them, forks in the middle of it, and reconfigures the library while calls
 * are under way. No call may crash, hang or give an answer that no version
 * of the files allows; a forked child must keep working on its own.
 *
 * A run lasts a few seconds, and longer on a loaded machine: it ends once
 * what its judge needs has happened (every change made at least once, the
 * fork done, every calling thread's checks made), never after a number of
 * rounds or a time window that a busy machine may not fit its work into.
 * Only a broken library keeps it going to the deadline, after which the
 * judge says what never happened. A thread that does not finish is
 * reported and the process aborted, rather than left to the CTest timeout.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALLERS    8
#define FEATURES   50
#define CATEGORIES 5

/* Features f00..f09 may be written from the start; more are allowed as the
 * run goes on, up to f39. f40..f49 are never written to any file. */
#define FIRST_ALLOWED 10
#define NEVER_WRITTEN 40

/* The least time the files change under the calls, and the switch and
 * the configuration under theirs. */
#define STRESS_NS   (2000 * 1000000ull)
#define CONTROLS_NS (1000 * 1000000ull)
/* The most a run may take to get done what its judge needs; a loaded
 * machine takes seconds. Then the longest a thread may take to finish,
 * counted from the start (a fork under way when the deadline comes has
 * its two children to wait for), and a child before it is taken as hung. */
#define DEADLINE_NS    (60 * 1000000000ull)
#define JOIN_SECONDS   120
#define CHILD_SECONDS  20
#define CHILDREN       2
#define DRAWS          256
#define CHILD_ROUNDS   20
#define CONTROL_CALLER 4

static const char *const category_name[CATEGORIES] = {"net", "disk", "db", "rpc", "auth"};

/* A file the writer never touches: its one line must always be seen. */
#define STEADY_CATEGORY "steady"
#define STEADY_FEATURE  "s00"
/* In files written with mode 0666 only, which must never be honoured. */
#define POISON_FEATURE "p00"
/* A category that never has a file. */
#define ABSENT_CATEGORY "absent"
#define COIN_CATEGORY   "coin"
#define COIN_FEATURE    "flip"

static char feature_name[FEATURES][4];

static const char *category_of(unsigned feature)
{
	return category_name[feature % CATEGORIES];
}

static void name_features(void)
{
	for (unsigned i = 0; i < FEATURES; i++)
		snprintf(feature_name[i], sizeof(feature_name[i]), "f%02u", i);
}

/* The first thing a thread found wrong, and how many it found. */
struct verdict {
	unsigned long count;
	char first[192];
};

static void found_wrong(struct verdict *v, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void found_wrong(struct verdict *v, const char *fmt, ...)
{
	if (v->count++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(v->first, sizeof(v->first), fmt, ap);
		va_end(ap);
	}
}

/* ---- Files --------------------------------------------------------------- */

/* These return a negative errno rather than assert: cmocka's asserts must
 * not run in another thread than the test's, nor in a child. */

static void path_of(const char *dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Truncates NAME and writes it again: readers may see it empty or half
 * written, which the feature names are chosen to survive (see below). */
static int put_in_place(const char *dir, const char *name, const char *content)
{
	char path[512];
	path_of(dir, name, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write_all_text(fd, content);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int rename_in(const char *dir, const char *from, const char *to)
{
	char a[512], b[512];
	path_of(dir, from, a, sizeof(a));
	path_of(dir, to, b, sizeof(b));
	return rename(a, b) < 0 ? -errno : 0;
}

static int chmod_in(const char *dir, const char *name, mode_t mode)
{
	char path[512];
	path_of(dir, name, path, sizeof(path));
	return chmod(path, mode) < 0 ? -errno : 0;
}

static int unlink_in(const char *dir, const char *name)
{
	char path[512];
	path_of(dir, name, path, sizeof(path));
	return unlink(path) < 0 ? -errno : 0;
}

/* ---- The stress ---------------------------------------------------------- */

/*
 * What an answer may be. The files only ever hold bare lines ("f12"), which
 * fire on every call, so an answer is consistent with some version of the
 * files when:
 *
 * - true for fNN: some version of some file had the line fNN. The writer
 *   sets written[NN] before any version with that line can be seen, so a
 *   true answer for a feature not (yet) written is wrong. f40..f49 are never
 *   written: true for them is always wrong. The names are all three bytes
 *   long, so a file read half written gives either whole names or shorter
 *   fragments that nobody asks about.
 * - true for p00: never. It is only in files created with mode 0666 (by a
 *   rename, so the name never leads to it with another mode), which are
 *   never chmod'ed good nor rewritten, only replaced or removed.
 * - false for s00 in "steady": only while the switch is off. Its file never
 *   changes. The writer bumps FLIPS before turning the switch off and after
 *   turning it on again, so a call that starts and ends with the same even
 *   FLIPS ran with the switch on and must answer true.
 * - anything for "absent": false; it never has a file.
 *
 * False is otherwise always allowed: files are removed, refused and
 * switched off at any moment.
 */
struct caller {
	struct stress *stress;
	unsigned id;
	unsigned long calls, answered_true, steady_checks;
	struct verdict wrong;
};

/* What the thread that forks saw, for the main thread to judge. */
struct fork_report {
	char error[192]; /* a failure of the parent's side: pipe, fork, wait */
	int status[CHILDREN];
	size_t child_bytes[CHILDREN];
	unsigned char parent_bits[CHILDREN][DRAWS / 8];
	unsigned char child_bits[CHILDREN][DRAWS / 8];
};

enum op {
	OP_REPLACE,    /* write a new version, rename it over the old */
	OP_IN_PLACE,   /* truncate and write the same inode */
	OP_CHMOD_BAD,  /* 0666: refused until chmod'ed back */
	OP_CHMOD_GOOD, /* back to 0644 */
	OP_DELETE,     /* unlink */
	OP_ASIDE,      /* rename to another name, not a category */
	OP_BACK,       /* and back */
	OP_ACROSS,     /* rename over the next category's file */
	OP_POISON,     /* a version with p00, created 0666 */
	OP_SWITCH,     /* the switch off and on */
	OP_COUNT,
};

static const char *const op_name[OP_COUNT] = {
        "replace",      "rewrite in place", "chmod 0666",    "chmod 0644",    "delete",
        "rename aside", "rename back",      "rename across", "poisoned 0666", "switch off and on",
};

/* The writer's own record of each category's file. */
struct file_state {
	enum { MISSING, PRESENT, ASIDE } where;
	bool bad_mode;
	bool poisoned; /* never made good again */
};

struct writer {
	struct stress *stress;
	uint64_t random;
	uint64_t start_ns, elapsed_ns;
	unsigned long rounds, done[OP_COUNT];
	struct file_state file[CATEGORIES];
	char error[192];
};

struct stress {
	const char *dir;
	bool with_fork;
	_Atomic bool written[FEATURES];
	atomic_bool stop, fork_now, fork_done;
	atomic_uint flips;
	/* Calling threads that have made both checks that can fail. */
	atomic_uint callers_checked;
	/* Held by the writer while the switch is off, and by the forking
	 * thread around fork() and its draws, which need the switch on. */
	pthread_mutex_t switch_guard;
	pthread_barrier_t start;
	struct writer writer;
	struct caller caller[CALLERS];
	struct fork_report fork;
};

static uint64_t next_random(uint64_t *state)
{
	/* xorshift64: a fixed sequence of operations, whatever the timing. */
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* Features below this may be written now: more as the run goes on. */
static unsigned allowed_features(const struct writer *w)
{
	uint64_t elapsed = now_ns() - w->start_ns;
	if (elapsed >= STRESS_NS)
		return NEVER_WRITTEN;
	return FIRST_ALLOWED + (unsigned)((NEVER_WRITTEN - FIRST_ALLOWED) * elapsed / STRESS_NS);
}

/* A new version of category C: some of its allowed features, each marked
 * written before the version exists. */
static void compose(struct writer *w, unsigned c, bool poison, char *buf, size_t len)
{
	unsigned allowed = allowed_features(w);
	size_t used = (size_t)snprintf(buf, len, "# round %lu\n", w->rounds);

	for (unsigned i = c; i < allowed; i += CATEGORIES) {
		if (next_random(&w->random) & 1)
			continue;
		atomic_store(&w->stress->written[i], true);
		used += (size_t)snprintf(buf + used, len - used, "%s\n", feature_name[i]);
	}
	if (poison)
		snprintf(buf + used, len - used, POISON_FEATURE "\n");
}

static int replace(struct writer *w, unsigned c, bool poison)
{
	char content[256];
	compose(w, c, poison, content, sizeof(content));
	int rc = try_write_file(w->stress->dir, category_name[c], content, poison ? 0666 : 0644);
	w->file[c] = (struct file_state){PRESENT, poison, poison};
	return rc;
}

/* Off for as short a time as can be: calls that find the switch off answer
 * at once, and would otherwise crowd out the calls that do work. */
static void switch_off_and_on(struct stress *s)
{
	pthread_mutex_lock(&s->switch_guard);
	atomic_fetch_add(&s->flips, 1);
	wrench_set_enabled(false);
	wrench_set_enabled(true);
	atomic_fetch_add(&s->flips, 1);
	pthread_mutex_unlock(&s->switch_guard);
}

/* Does OP to category C if the file's state allows it, else replaces it;
 * *DONE says which was done. */
static int apply_op(struct writer *w, enum op op, unsigned c, enum op *done)
{
	const char *dir = w->stress->dir, *name = category_name[c];
	struct file_state *f = &w->file[c];
	unsigned next = (c + 1) % CATEGORIES;
	char aside[32], content[256];
	int rc;

	snprintf(aside, sizeof(aside), "aside-%s", name);
	*done = op;
	switch (op) {
	case OP_IN_PLACE:
		if (f->where != PRESENT || f->poisoned)
			break;
		compose(w, c, false, content, sizeof(content));
		return put_in_place(dir, name, content);
	case OP_CHMOD_BAD:
		if (f->where != PRESENT || f->bad_mode)
			break;
		f->bad_mode = true;
		return chmod_in(dir, name, 0666);
	case OP_CHMOD_GOOD:
		if (f->where != PRESENT || !f->bad_mode || f->poisoned)
			break;
		f->bad_mode = false;
		return chmod_in(dir, name, 0644);
	case OP_DELETE:
		if (f->where != PRESENT)
			break;
		f->where = MISSING;
		return unlink_in(dir, name);
	case OP_ASIDE:
		if (f->where != PRESENT)
			break;
		f->where = ASIDE;
		return rename_in(dir, name, aside);
	case OP_BACK:
		if (f->where != ASIDE)
			break;
		f->where = PRESENT;
		return rename_in(dir, aside, name);
	case OP_ACROSS:
		/* The next category then holds this one's features, which
		 * nobody asks it about: its answers are false, as allowed. */
		if (f->where != PRESENT || w->file[next].where == ASIDE)
			break;
		rc = rename_in(dir, name, category_name[next]);
		w->file[next] = *f;
		f->where = MISSING;
		return rc;
	case OP_POISON:
		return replace(w, c, true);
	case OP_SWITCH:
		switch_off_and_on(w->stress);
		return 0;
	case OP_REPLACE:
	case OP_COUNT:
		break;
	}
	*done = OP_REPLACE;
	return replace(w, c, false);
}

/* Has the run got what its judge needs? STRESS_NS of changes, every
 * operation done at least once (which ones come when depends on the
 * timing: a version holds more features as the run goes on, and draws
 * more numbers), the fork done, and every calling thread's checks made. */
static bool writer_may_stop(const struct writer *w, uint64_t elapsed)
{
	struct stress *s = w->stress;

	if (elapsed < STRESS_NS)
		return false;
	for (unsigned op = 0; op < OP_COUNT; op++)
		if (w->done[op] == 0)
			return false;
	if (s->with_fork && !atomic_load(&s->fork_done))
		return false;
	return atomic_load(&s->callers_checked) == CALLERS;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct stress *s = w->stress;

	pthread_barrier_wait(&s->start);
	w->start_ns = now_ns();
	for (;; w->rounds++) {
		uint64_t elapsed = now_ns() - w->start_ns;
		w->elapsed_ns = elapsed;
		if (elapsed >= STRESS_NS / 2)
			atomic_store(&s->fork_now, true);
		if (writer_may_stop(w, elapsed) || elapsed >= DEADLINE_NS)
			break;
		uint64_t r = next_random(&w->random);
		enum op done;
		int rc = apply_op(w, (enum op)(r % OP_COUNT), (unsigned)(r >> 32) % CATEGORIES,
		                  &done);
		if (rc < 0) {
			snprintf(w->error, sizeof(w->error), "%s in round %lu: %s", op_name[done],
			         w->rounds, strerror(-rc));
			break;
		}
		w->done[done]++;
	}
	atomic_store(&s->stop, true);
	return NULL;
}

static void ask_feature(struct caller *c, unsigned i)
{
	bool active = wrench_is_active(category_of(i), feature_name[i]);

	c->calls++;
	if (!active)
		return;
	c->answered_true++;
	if (i >= NEVER_WRITTEN)
		found_wrong(&c->wrong, "%s %s answered true, but it is in no file", category_of(i),
		            feature_name[i]);
	else if (!atomic_load(&c->stress->written[i]))
		found_wrong(&c->wrong, "%s %s answered true before any file had it", category_of(i),
		            feature_name[i]);
}

static void ask_never_active(struct caller *c)
{
	for (unsigned k = 0; k < CATEGORIES; k++) {
		c->calls++;
		if (wrench_is_active(category_name[k], POISON_FEATURE))
			found_wrong(&c->wrong,
			            "%s " POISON_FEATURE " answered true from a mode "
			            "0666 file",
			            category_name[k]);
	}
	c->calls++;
	if (wrench_is_active(ABSENT_CATEGORY, feature_name[0]))
		found_wrong(&c->wrong, ABSENT_CATEGORY " answered true without a file");
}

static void ask_steady(struct caller *c)
{
	unsigned before = atomic_load(&c->stress->flips);
	bool active = wrench_is_active(STEADY_CATEGORY, STEADY_FEATURE);
	/* The call reads the switch with a relaxed load. If it read "off",
	 * this fence orders the writer's flips++ (made before it turned the
	 * switch off) before the load below, which then differs. */
	atomic_thread_fence(memory_order_acquire);
	unsigned after = atomic_load(&c->stress->flips);

	c->calls++;
	if (before != after || before % 2)
		return;
	c->steady_checks++;
	if (!active)
		found_wrong(&c->wrong, STEADY_CATEGORY " " STEADY_FEATURE " answered false with "
		                                       "the switch on and its file unchanged");
}

/* ---- The fork ------------------------------------------------------------ */

/* Fails the child, saying why on its stderr with one write(): stdio's
 * locks may have been held by a thread that the child does not have. */
#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_failed(__LINE__, #cond);                                             \
	} while (0)

__attribute__((noreturn)) static void child_failed(int line, const char *what)
{
	char message[256];
	int n = snprintf(message, sizeof(message), "forked child: check failed at line %d: %s\n",
	                 line, what);
	if (n > 0 && write(STDERR_FILENO, message, (size_t)n) < 0)
		_exit(2);
	_exit(1);
}

static void draw(unsigned char bits[DRAWS / 8])
{
	memset(bits, 0, DRAWS / 8);
	for (unsigned i = 0; i < DRAWS; i++)
		if (wrench_is_active(COIN_CATEGORY, COIN_FEATURE))
			bits[i / 8] |= (unsigned char)(1u << (i % 8));
}

/*
 * The child of a process whose other threads were calling the library and
 * changing its files. It must find every lock free, see the changes it
 * makes to its own file by its next call (strict mode), answer the others
 * as the parent's threads must, and make chance decisions of its own.
 */
__attribute__((noreturn)) static void child_main(struct stress *s, const char *category, int out_fd)
{
	unsigned char bits[DRAWS / 8];
	char path[512];

	/* A lock taken by a thread that the child does not have would block
	 * it for ever: SIGALRM ends it, and the parent reports that. */
	alarm(CHILD_SECONDS);
	need_strict_visibility();
	path_of(s->dir, category, path, sizeof(path));

	/* The parent's view knew the first version. */
	CHILD_CHECK(wrench_is_active(category, "before"));
	CHILD_CHECK(try_write_file(s->dir, category, "after\n", 0644) == 0);
	CHILD_CHECK(!wrench_is_active(category, "before"));
	CHILD_CHECK(wrench_is_active(category, "after"));
	CHILD_CHECK(put_in_place(s->dir, category, "again\n") == 0);
	CHILD_CHECK(!wrench_is_active(category, "after"));
	CHILD_CHECK(wrench_is_active(category, "again"));
	CHILD_CHECK(unlink(path) == 0);
	CHILD_CHECK(!wrench_is_active(category, "again"));
	CHILD_CHECK(try_write_file(s->dir, category, "again\n", 0644) == 0);
	CHILD_CHECK(wrench_is_active(category, "again"));
	CHILD_CHECK(unlink(path) == 0);

	/* The parent's writer goes on meanwhile, in the same directory. The
	 * child has no writer thread: its switch stays on. */
	for (unsigned round = 0; round < CHILD_ROUNDS; round++) {
		for (unsigned i = NEVER_WRITTEN; i < FEATURES; i++)
			CHILD_CHECK(!wrench_is_active(category_of(i), feature_name[i]));
		for (unsigned k = 0; k < CATEGORIES; k++)
			CHILD_CHECK(!wrench_is_active(category_name[k], POISON_FEATURE));
		CHILD_CHECK(wrench_is_active(STEADY_CATEGORY, STEADY_FEATURE));
	}

	draw(bits);
	CHILD_CHECK(write(out_fd, bits, sizeof(bits)) == (ssize_t)sizeof(bits));
	_exit(0);
}

static size_t read_bits(int fd, unsigned char *bits, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, bits + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Forks child K from this (calling) thread while the others run, and
 * draws DRAWS chance decisions on each side of the fork. */
static void fork_one(struct stress *s, unsigned k)
{
	struct fork_report *r = &s->fork;
	char category[16];
	int fds[2];

	snprintf(category, sizeof(category), "forked-%u", k);
	int rc = try_write_file(s->dir, category, "before\n", 0644);
	if (rc < 0 || pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(r->error, sizeof(r->error), "child %u: setting up: %s", k,
		         strerror(rc < 0 ? -rc : errno));
		return;
	}
	pthread_mutex_lock(&s->switch_guard);
	/* Seeds this thread's generator (the switch is on now): the child
	 * inherits its state, and must not replay what the parent draws. */
	draw(r->parent_bits[k]);
	/* Loads the file into the view that the child inherits. */
	(void)wrench_is_active(category, "before");
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child_main(s, category, fds[1]);
	}
	close(fds[1]);
	if (pid > 0)
		draw(r->parent_bits[k]);
	pthread_mutex_unlock(&s->switch_guard);
	if (pid < 0) {
		snprintf(r->error, sizeof(r->error), "fork: %s", strerror(errno));
		close(fds[0]);
		return;
	}
	/* EOF at the latest when the child's alarm ends it. */
	r->child_bytes[k] = read_bits(fds[0], r->child_bits[k], sizeof(r->child_bits[k]));
	close(fds[0]);
	while (waitpid(pid, &r->status[k], 0) < 0) {
		if (errno != EINTR) {
			snprintf(r->error, sizeof(r->error), "waitpid: %s", strerror(errno));
			return;
		}
	}
}

static void fork_children(struct stress *s)
{
	for (unsigned k = 0; k < CHILDREN && !s->fork.error[0]; k++)
		fork_one(s, k);
	atomic_store(&s->fork_done, true);
}

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct stress *s = c->stress;
	bool forks = s->with_fork && c->id == 0, checked = false;

	pthread_barrier_wait(&s->start);
	while (!atomic_load(&s->stop)) {
		/* Each thread starts at its own feature, so that the threads
		 * are at different failure points at a time. */
		for (unsigned k = 0; k < FEATURES; k++)
			ask_feature(c, (k + 7 * c->id) % FEATURES);
		ask_never_active(c);
		ask_steady(c);
		if (!checked && c->answered_true > 0 && c->steady_checks > 0) {
			atomic_fetch_add(&s->callers_checked, 1);
			checked = true;
		}
		if (forks && atomic_load(&s->fork_now)) {
			fork_children(s);
			forks = false;
		}
	}
	return NULL;
}

/* ---- Running and judging ------------------------------------------------- */

static struct timespec join_deadline(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_SECONDS;
	return ts;
}

/* A hung thread cannot be failed cleanly: cmocka would return from the
 * test while it still uses the test's memory. */
static void join_or_abort(pthread_t thread, const struct timespec *deadline, const char *who)
{
	int rc = pthread_timedjoin_np(thread, NULL, deadline);
	if (rc == 0)
		return;
	fprintf(stderr, "%s did not finish within %d s (%s): a call hung or deadlocked\n", who,
	        JOIN_SECONDS, strerror(rc));
	abort();
}

static void prepare_stress(struct stress *s, const char *dir, bool with_fork)
{
	name_features();
	s->dir = dir;
	s->with_fork = with_fork;
	s->writer.stress = s;
	s->writer.random = 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < CALLERS; i++)
		s->caller[i] = (struct caller){.stress = s, .id = i};
	assert_int_equal(pthread_mutex_init(&s->switch_guard, NULL), 0);
	assert_int_equal(pthread_barrier_init(&s->start, NULL, CALLERS + 1), 0);

	assert_int_equal(try_write_file(dir, STEADY_CATEGORY, STEADY_FEATURE "\n", 0644), 0);
	assert_int_equal(try_write_file(dir, COIN_CATEGORY, COIN_FEATURE " chance=0.5\n", 0644), 0);
	s->writer.start_ns = now_ns();
	for (unsigned c = 0; c < CATEGORIES; c++)
		assert_int_equal(replace(&s->writer, c, false), 0);
}

static void run_stress(struct stress *s)
{
	pthread_t writer, caller[CALLERS];

	assert_int_equal(pthread_create(&writer, NULL, writer_main, &s->writer), 0);
	for (unsigned i = 0; i < CALLERS; i++)
		assert_int_equal(pthread_create(&caller[i], NULL, caller_main, &s->caller[i]), 0);
	struct timespec deadline = join_deadline();
	join_or_abort(writer, &deadline, "the writer thread");
	for (unsigned i = 0; i < CALLERS; i++)
		join_or_abort(caller[i], &deadline, "a calling thread");
	pthread_barrier_destroy(&s->start);
	pthread_mutex_destroy(&s->switch_guard);
	wrench_set_enabled(true);
}

static void judge_stress(const struct stress *s)
{
	unsigned long calls = 0, answered_true = 0, steady_checks = 0, wrong = 0;

	if (s->writer.error[0])
		fail_msg("the writer failed: %s", s->writer.error);
	for (unsigned i = 0; i < CALLERS; i++) {
		const struct caller *c = &s->caller[i];
		calls += c->calls;
		answered_true += c->answered_true;
		steady_checks += c->steady_checks;
		wrong += c->wrong.count;
		if (c->wrong.count)
			fprintf(stderr, "thread %u: %lu wrong answer(s), the first: %s\n", i,
			        c->wrong.count, c->wrong.first);
	}
	if (wrong)
		fail_msg("%lu of %lu answers fit no version of the files", wrong, calls);
	/* The writer went on until it had done each, or the deadline. */
	for (unsigned op = 0; op < OP_COUNT; op++)
		if (s->writer.done[op] == 0)
			fail_msg("the writer never did \"%s\" in %lu rounds (%llu s)", op_name[op],
			         s->writer.rounds,
			         (unsigned long long)(s->writer.elapsed_ns / 1000000000u));
	/* Not vacuous: the checks that can fail did run, in every thread. */
	assert_true(answered_true > 0);
	assert_true(steady_checks > 0);
	if (atomic_load(&s->callers_checked) != CALLERS)
		fail_msg("only %u of %d calling threads got a true answer and a steady check in "
		         "%llu s",
		         atomic_load(&s->callers_checked), CALLERS,
		         (unsigned long long)(s->writer.elapsed_ns / 1000000000u));
}

/* The logger for the stress: no lock, so a child forked while another
 * thread was logging can log too. */
static atomic_ulong stress_messages;

static void count_message(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)level;
	(void)message;
	(void)ctx;
	atomic_fetch_add(&stress_messages, 1);
}

static int stress_setup(void **state)
{
	int rc = scratch_setup(state);
	if (rc == 0)
		wrench_set_logger(count_message, NULL);
	return rc;
}

static void test_answers_fit_some_version_while_files_and_switch_change(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	prepare_stress(s, scratch_dir(state), false);
	run_stress(s);
	judge_stress(s);
	free(s);
}

static bool same_bits(const unsigned char *a, const unsigned char *b)
{
	return memcmp(a, b, DRAWS / 8) == 0;
}

static unsigned ones(const unsigned char *bits)
{
	unsigned n = 0;
	for (unsigned i = 0; i < DRAWS / 8; i++)
		n += (unsigned)__builtin_popcount(bits[i]);
	return n;
}

static void judge_child(const struct fork_report *r, unsigned k)
{
	int status = r->status[k];

	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		fail_msg("forked child %u was still running after %d s: it deadlocked", k,
		         CHILD_SECONDS);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("forked child %u failed (wait status 0x%x; its stderr says why)", k,
		         (unsigned)status);
	assert_int_equal(r->child_bytes[k], DRAWS / 8);
	/* Both sides do draw: all equal has a chance of 2^-255. */
	assert_in_range(ones(r->child_bits[k]), 1, DRAWS - 1);
	assert_in_range(ones(r->parent_bits[k]), 1, DRAWS - 1);
	/* Identical sequences of 256 fair decisions: a chance of 2^-256. */
	if (same_bits(r->parent_bits[k], r->child_bits[k]))
		fail_msg("forked child %u made the same %d chance decisions as its parent", k,
		         DRAWS);
}

static void test_child_forked_mid_stress_works_and_draws_its_own_chances(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	/* Unseeded draws are the point; CTest unsets it, a person may not.
	 * No other thread runs yet. */
	unsetenv("WRENCH_SEED");
	wrench_set_seed(NULL);
	prepare_stress(s, scratch_dir(state), true);
	run_stress(s);

	if (s->fork.error[0])
		fail_msg("the forking thread failed: %s", s->fork.error);
	if (!atomic_load(&s->fork_done))
		fail_msg("the forks were not done in %llu s",
		         (unsigned long long)(s->writer.elapsed_ns / 1000000000u));
	for (unsigned k = 0; k < CHILDREN; k++)
		judge_child(&s->fork, k);
	/* Two children of one thread reseed from the system's generator:
	 * they must not inherit one state from it either. */
	if (same_bits(s->fork.child_bits[0], s->fork.child_bits[1]))
		fail_msg("two forked children made the same %d chance decisions", DRAWS);
	judge_stress(s);
	free(s);
}

/* ---- Control calls during queries ---------------------------------------- */

/* A logger's context, freed once the logger is replaced: the library
 * promises not to call a replaced logger, so a late delivery is a
 * use-after-free that the sanitizers catch. */
struct sink {
	atomic_uint messages;
};

static void count_into(enum wrench_log_level level, const char *message, void *ctx)
{
	struct sink *sink = ctx;
	(void)level;
	(void)message;
	atomic_fetch_add(&sink->messages, 1);
}

struct controls {
	char other_dir[300];
	const char *dir;
	atomic_bool stop;
	/* Calling threads that have made a round of calls. */
	atomic_uint callers_checked;
	/* Odd while wrench_set_dir() and wrench_set_seed() run. */
	atomic_uint reconfiguring;
	pthread_barrier_t start;
	unsigned long rounds;
	char error[192];
	struct verdict wrong[CONTROL_CALLER];
	unsigned long calls[CONTROL_CALLER], quiet_checks[CONTROL_CALLER];
};

struct control_caller {
	struct controls *controls;
	unsigned id;
};

/*
 * Both directories have "app" with the same lines; only the first has
 * "bad", refused (and logged) after each switch to it. So "app ok" must be
 * true on every call, also one that overlaps wrench_set_dir() or
 * wrench_set_seed(): a call that finds the cache reconfigured under it
 * looks again, and any version it can find holds the line.
 */
static void ask_app_ok(struct controls *ctl, unsigned id)
{
	bool active = wrench_is_active("app", "ok");

	ctl->quiet_checks[id]++;
	if (!active)
		found_wrong(&ctl->wrong[id], "app ok answered false, though every version of its "
		                             "file holds the line");
}

static void *control_caller_main(void *arg)
{
	struct control_caller *cc = arg;
	struct controls *ctl = cc->controls;
	struct verdict *wrong = &ctl->wrong[cc->id];
	bool checked = false;

	pthread_barrier_wait(&ctl->start);
	while (!atomic_load(&ctl->stop)) {
		(void)wrench_is_active("app", "coin");
		if (wrench_is_active("bad", "ok"))
			found_wrong(wrong, "bad ok answered true from a mode 0666 file");
		if (wrench_is_active("app", "nope"))
			found_wrong(wrong, "app nope answered true, but it is in no file");
		ask_app_ok(ctl, cc->id);
		ctl->calls[cc->id] += 4;
		if (!checked) {
			atomic_fetch_add(&ctl->callers_checked, 1);
			checked = true;
		}
	}
	return NULL;
}

static int control_once(struct controls *ctl, unsigned long round, struct sink **sink)
{
	static const unsigned recheck[] = {0, 1, 100};
	const uint64_t seed = 42;

	atomic_fetch_add(&ctl->reconfiguring, 1);
	int rc = wrench_set_dir(round % 2 ? ctl->other_dir : ctl->dir);
	wrench_set_seed(round % 3 ? &seed : NULL);
	atomic_fetch_add(&ctl->reconfiguring, 1);
	if (rc < 0)
		return rc;
	wrench_set_recheck_ms(recheck[round % 3]);
	struct sink *fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	wrench_set_logger(count_into, fresh);
	free(*sink);
	*sink = fresh;
	return 0;
}

static void *controller_main(void *arg)
{
	struct controls *ctl = arg;
	struct sink *sink = NULL;

	pthread_barrier_wait(&ctl->start);
	uint64_t start = now_ns();
	/* At least CONTROLS_NS, and until every calling thread has made its
	 * calls under the control calls. */
	for (;; ctl->rounds++) {
		uint64_t elapsed = now_ns() - start;
		if ((elapsed >= CONTROLS_NS &&
		     atomic_load(&ctl->callers_checked) == CONTROL_CALLER) ||
		    elapsed >= DEADLINE_NS)
			break;
		int rc = control_once(ctl, ctl->rounds, &sink);
		if (rc < 0) {
			snprintf(ctl->error, sizeof(ctl->error), "round %lu: %s", ctl->rounds,
			         strerror(-rc));
			break;
		}
	}
	atomic_store(&ctl->stop, true);
	/* The last context is freed only once no logger uses it. */
	wrench_set_logger(count_message, NULL);
	free(sink);
	return NULL;
}

static void test_control_calls_during_queries_neither_crash_nor_deadlock(void **state)
{
	const char *dir = scratch_dir(state);
	struct controls ctl = {.dir = dir};
	struct control_caller cc[CONTROL_CALLER];
	pthread_t controller, caller[CONTROL_CALLER];

	path_in(dir, "other", ctl.other_dir, sizeof(ctl.other_dir));
	assert_int_equal(mkdir(ctl.other_dir, 0700), 0);
	assert_int_equal(try_write_file(dir, "app", "ok\ncoin chance=0.5\n", 0644), 0);
	assert_int_equal(try_write_file(ctl.other_dir, "app", "ok\ncoin chance=0.5\n", 0644), 0);
	assert_int_equal(try_write_file(dir, "bad", "ok\n", 0666), 0);
	assert_int_equal(pthread_barrier_init(&ctl.start, NULL, CONTROL_CALLER + 1), 0);

	assert_int_equal(pthread_create(&controller, NULL, controller_main, &ctl), 0);
	for (unsigned i = 0; i < CONTROL_CALLER; i++) {
		cc[i] = (struct control_caller){&ctl, i};
		assert_int_equal(pthread_create(&caller[i], NULL, control_caller_main, &cc[i]), 0);
	}
	struct timespec deadline = join_deadline();
	join_or_abort(controller, &deadline, "the controlling thread");
	for (unsigned i = 0; i < CONTROL_CALLER; i++)
		join_or_abort(caller[i], &deadline, "a calling thread");
	pthread_barrier_destroy(&ctl.start);

	if (ctl.error[0])
		fail_msg("a control call failed: %s", ctl.error);
	for (unsigned i = 0; i < CONTROL_CALLER; i++) {
		if (ctl.wrong[i].count)
			fail_msg("thread %u: %lu wrong answer(s), the first: %s", i,
			         ctl.wrong[i].count, ctl.wrong[i].first);
		if (ctl.quiet_checks[i] == 0)
			fail_msg("thread %u made no call in %llu s of control calls", i,
			         (unsigned long long)(DEADLINE_NS / 1000000000u));
	}
	assert_true(ctl.rounds > 0);

	/* Afterwards it answers as configured, and still says why it
	 * refuses a file. */
	need_strict_visibility();
	wrench_set_seed(NULL);
	assert_int_equal(wrench_set_dir(dir), 0);
	log_capture_install();
	log_capture_reset();
	assert_true(wrench_is_active("app", "ok"));
	assert_false(wrench_is_active("bad", "ok"));
	assert_true(log_has(WRENCH_LOG_ERROR, "writable by group or others", NULL));
}

#define STRESS_TEST(fn) cmocka_unit_test_setup_teardown(fn, stress_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        STRESS_TEST(test_answers_fit_some_version_while_files_and_switch_change),
	        STRESS_TEST(test_child_forked_mid_stress_works_and_draws_its_own_chances),
	        STRESS_TEST(test_control_calls_during_queries_neither_crash_nor_deadlock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
