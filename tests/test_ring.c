/*
 * The ring (lib/ring.c): strict mode with no system call per call, and
 * every way back to the inotify read() path.
 *
 * The executable is registered twice: with the ring where the kernel
 * allows it, and with WRENCH_IO_URING=0. It prints which path it
 * exercises; a test that needs the ring is skipped, saying why, when the
 * kernel refuses it. Linked with --wrap=read so that the library's read()
 * calls can be counted.
 *
 * Helper modes, for tests that need a fresh process:
 *   test_ring --fds              lists its open descriptors above 2
 *   test_ring --probe DIR N      makes N + 2 calls in DIR, prints the path
 *   test_ring --probe-without-memfd DIR N
 *                                the same where memfd_create fails (ENOSYS)
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAT  "cat"
#define FEAT "hit"

/* With the ring, at most one read() per FEW calls in the steady state:
 * not none, since unrelated changes in a watched ancestor make the owner
 * drain now and then. The scratch directories are under /var/tmp, not
 * /tmp: on a loaded machine, other tests and compilers make and remove
 * files in /tmp many times a second, and a loop of calls that the
 * scheduler stretches out hears of more of them. */
#define FEW 100

/* ---- Counting the library's read() calls -------------------------------- */

static _Atomic unsigned long reads;

/* Set on a thread whose next read() is to be parked (see
 * test_a_drain_in_progress_is_not_trusted): the test is told, and the
 * read waits until the test says go on. */
static _Thread_local bool park_next_read;
static sem_t parked, resume;

static void maybe_park(void)
{
	if (park_next_read) {
		park_next_read = false;
		sem_post(&parked);
		sem_wait(&resume);
	}
}

ssize_t __real_read(int fd, void *buf, size_t count);
ssize_t __wrap_read(int fd, void *buf, size_t count);
ssize_t __real___read_chk(int fd, void *buf, size_t count, size_t buflen);
ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen);

ssize_t __wrap_read(int fd, void *buf, size_t count)
{
	atomic_fetch_add(&reads, 1);
	maybe_park();
	return __real_read(fd, buf, count);
}

ssize_t __wrap___read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	atomic_fetch_add(&reads, 1);
	maybe_park();
	return __real___read_chk(fd, buf, count, buflen);
}

/* ---- Which path this run takes ------------------------------------------- */

static bool forced_off;    /* WRENCH_IO_URING=0 */
static bool ring_expected; /* the ring was made: tests that need it run */

static bool turned_off_by_env(void)
{
	const char *v = getenv("WRENCH_IO_URING");
	return v && strcmp(v, "0") == 0;
}

/* Makes the first load in a scratch directory, with INFO messages on, and
 * says which path strict mode takes in this process. */
static int group_setup(void **state)
{
	char dir[] = "/var/tmp/wrench-test-ring.XXXXXX";

	(void)state;
	if (sem_init(&parked, 0, 0) < 0 || sem_init(&resume, 0, 0) < 0)
		return -1;
	if (!mkdtemp(dir))
		return -1;
	wrench_get_dir(); /* the environment is read: now the level may be set */
	wrench__set_log_threshold(WRENCH_LOG_INFO);
	log_capture_install();
	log_capture_reset();
	wrench_set_recheck_ms(0);
	wrench_set_dir(dir);
	wrench_is_active(CAT, FEAT);
	forced_off = turned_off_by_env();
	ring_expected = wrench__ring_active();
	if (ring_expected)
		printf("test_ring: strict mode path: io_uring (no system call per call)\n");
	else
		printf("test_ring: strict mode path: inotify read() per call%s\n",
		       forced_off ? " (WRENCH_IO_URING=0)" : "; the kernel refused the ring:");
	if (!ring_expected && !forced_off)
		log_dump();
	fflush(stdout);
	wrench__set_log_threshold(WRENCH_LOG_WARN);
	wrench_set_dir(NULL);
	remove_state_dir(dir);
	rmdir(dir);
	return forced_off && ring_expected ? -1 : 0;
}

static bool need_ring(void)
{
	if (ring_expected)
		return true;
	printf("skipped: this test needs the ring, and %s\n",
	       forced_off ? "WRENCH_IO_URING=0 turned it off"
	                  : "the kernel refused it (see the INFO line above)");
	fflush(stdout);
	return false;
}

/* ---- Steady state ------------------------------------------------------- */

static void test_steady_state_makes_no_read_per_call(void **state)
{
	write_file(scratch_dir(state), CAT, "other\n" FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	assert_true(wrench_is_active(CAT, FEAT));

	unsigned long before = atomic_load(&reads);
	for (int i = 0; i < 10000; i++)
		assert_true(wrench_is_active(CAT, FEAT));
	unsigned long made = atomic_load(&reads) - before;
	printf("10000 steady-state calls made %lu read() calls (%s)\n", made,
	       ring_expected ? "ring" : "inotify path");
	if (ring_expected)
		assert_true(made <= 10000 / FEW);
	else
		assert_true(made >= 10000); /* the fallback reads inotify each call */
}

/* A change is seen by the next call, and then the ring is quiet again. */
static void test_change_seen_then_quiet_again(void **state)
{
	const char *dir = scratch_dir(state);

	write_file(dir, CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	rewrite_in_place(dir, CAT, "miss\n");
	assert_false(wrench_is_active(CAT, FEAT));
	assert_false(wrench_is_active(CAT, FEAT));
	if (!ring_expected)
		return;
	unsigned long before = atomic_load(&reads);
	for (int i = 0; i < 1000; i++)
		assert_false(wrench_is_active(CAT, FEAT));
	assert_true(atomic_load(&reads) - before <= 1000 / FEW);
}

/* ---- Threads ------------------------------------------------------------ */

static void *first_call_then_exit(void *arg)
{
	wrench_is_active(CAT, (const char *)arg);
	return NULL;
}

/* The thread that made the ring exits: another takes it over at once. */
static void test_owner_exit_moves_the_ring(void **state)
{
	const char *dir = scratch_dir(state);
	pthread_t t;

	if (!need_ring())
		return;
	write_file(dir, CAT, FEAT "\n", 0644);
	wrench__ring_stop(); /* the thread's call makes the next ring */
	assert_int_equal(pthread_create(&t, NULL, first_call_then_exit, FEAT), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(wrench_is_active(CAT, FEAT));
	rewrite_in_place(dir, CAT, "miss\n");
	assert_false(wrench_is_active(CAT, FEAT));
	assert_false(wrench_is_active(CAT, FEAT));
	assert_true(wrench__ring_active());
	unsigned long before = atomic_load(&reads);
	for (int i = 0; i < 1000; i++)
		assert_false(wrench_is_active(CAT, FEAT));
	assert_true(atomic_load(&reads) - before <= 1000 / FEW);
}

struct blocked_owner {
	sem_t made, release;
};

static void *own_then_block(void *arg)
{
	struct blocked_owner *b = arg;
	wrench__ring_stop();
	wrench_is_active(CAT, FEAT); /* makes the ring: this thread owns it */
	if (ring_expected)
		assert_true(wrench__ring_is_owner());
	sem_post(&b->made);
	sem_wait(&b->release);
	return NULL;
}

/* The owner is blocked (an application thread waiting on something else):
 * after a change, other threads see it at once, and stop paying a read()
 * per call after a bounded number of calls. */
static void test_blocked_owner_does_not_keep_others_slow(void **state)
{
	const char *dir = scratch_dir(state);
	struct blocked_owner b;
	pthread_t t;

	if (!need_ring())
		return;
	write_file(dir, CAT, FEAT "\n", 0644);
	sem_init(&b.made, 0, 0);
	sem_init(&b.release, 0, 0);
	assert_int_equal(pthread_create(&t, NULL, own_then_block, &b), 0);
	sem_wait(&b.made);
	rewrite_in_place(dir, CAT, "miss\n");
	assert_false(wrench_is_active(CAT, FEAT));
	for (int i = 0; i < 200; i++)
		assert_false(wrench_is_active(CAT, FEAT));
	unsigned long before = atomic_load(&reads);
	for (int i = 0; i < 1000; i++)
		assert_false(wrench_is_active(CAT, FEAT));
	unsigned long made = atomic_load(&reads) - before;
	sem_post(&b.release);
	pthread_join(t, NULL);
	sem_destroy(&b.made);
	sem_destroy(&b.release);
	assert_true(made <= 1000 / FEW);
}

/*
 * The owner's drain is parked in its read() of inotify: it has cleared the
 * ring's flag and consumed the completion, but not applied the events. A
 * call made then by another thread must not trust the quiet ring (the
 * generation is odd): it waits for the drain and sees the change.
 */
struct parked_drain {
	sem_t owns, go;
	const char *dir;
};

static void *owner_parked_in_drain(void *arg)
{
	struct parked_drain *p = arg;
	wrench__ring_stop();
	wrench_is_active(CAT, "absent"); /* makes the ring: this thread owns it */
	sem_post(&p->owns);
	sem_wait(&p->go);
	park_next_read = true;
	wrench_is_active(CAT, "absent"); /* drains, parked in its read() */
	return NULL;
}

struct other_call {
	_Atomic pid_t calling; /* the thread, once it is about to call */
	_Atomic int done;
	bool active;
};

static void *call_during_drain(void *arg)
{
	struct other_call *c = arg;
	atomic_store(&c->calling, gettid());
	c->active = wrench_is_active(CAT, FEAT);
	atomic_store(&c->done, 1);
	return NULL;
}

/* Waits until the other call has answered, or is asleep inside the
 * library (waiting for the drain), however long the scheduler takes to
 * run it; at most a generous deadline, after which it is taken as
 * waiting. */
static void wait_until_answered_or_waiting(struct other_call *c)
{
	uint64_t deadline = now_ns() + 30 * 1000000000ull;
	while (!atomic_load(&c->done) && now_ns() < deadline) {
		pid_t tid = atomic_load(&c->calling);
		if (tid && thread_is_asleep(tid))
			return;
		usleep(1000);
	}
}

static void test_a_drain_in_progress_is_not_trusted(void **state)
{
	const char *dir = scratch_dir(state);
	struct parked_drain p = {.dir = dir};
	struct other_call c = {0, 0, true};
	pthread_t owner, other;

	if (!need_ring())
		return;
	write_file(dir, CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	sem_init(&p.owns, 0, 0);
	sem_init(&p.go, 0, 0);
	assert_int_equal(pthread_create(&owner, NULL, owner_parked_in_drain, &p), 0);
	sem_wait(&p.owns);
	assert_true(wrench_is_active(CAT, FEAT)); /* loaded, ring quiet */
	rewrite_in_place(dir, CAT, "miss\n");
	sem_post(&p.go);
	sem_wait(&parked); /* the owner's drain is in its read() */
	assert_int_equal(pthread_create(&other, NULL, call_during_drain, &c), 0);
	/* Trusting the ring, the call would answer "active" at once. */
	wait_until_answered_or_waiting(&c);
	bool answered_early = atomic_load(&c.done);
	sem_post(&resume);
	pthread_join(owner, NULL);
	pthread_join(other, NULL);
	sem_destroy(&p.owns);
	sem_destroy(&p.go);
	assert_false(c.active);
	assert_false(answered_early);
}

/*
 * A writer process makes changes of every kind; after each one completes,
 * reader threads (not the ring's owner, which keeps calling too) must see
 * it on their very next call.
 */
#define READERS       2
#define CALLS_AFTER   10
#define MAX_CHANGES   4000
#define WRITER_SECS   3
#define DEADLINE_SECS 60

struct shared {
	_Atomic unsigned seq;  /* changes completed */
	_Atomic int expect;    /* the answer after change seq */
	_Atomic int kind;      /* of change seq */
	_Atomic unsigned acks; /* reader calls made after change seq */
	_Atomic int finished;  /* the writer is done (1) or failed (2) */
	_Atomic unsigned by_kind[8];
};

static const char *const kind_name[8] = {"create",
                                         "write in place",
                                         "chmod",
                                         "chown",
                                         "rename over",
                                         "unlink",
                                         "directory removed",
                                         "directory recreated"};

struct mt {
	struct shared *sh;
	const char *dir;
	_Atomic int stop;
	_Atomic unsigned misses, checks, owner_checks;
	unsigned first_miss_seq;
	int first_miss_kind;
};

/* Writes TEXT into DIR/CAT in place (O_TRUNC), or creating it. */
static int put(const char *dir, const char *text, int flags)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/" CAT, dir);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | flags, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	return close(fd) == 0 && n == (ssize_t)strlen(text) ? 0 : -1;
}

static int rename_over(const char *dir, const char *text)
{
	char tmp[512], path[512];
	snprintf(tmp, sizeof(tmp), "%s/.tmp", dir);
	snprintf(path, sizeof(path), "%s/" CAT, dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) < 0)
		return -1;
	return rename(tmp, path);
}

/* Change STEP of the cycle; sets *EXPECT and *KIND. Returns 0 or -1. */
static int make_change(const char *dir, unsigned step, int *expect, int *kind)
{
	char path[512];
	bool root = geteuid() == 0;
	snprintf(path, sizeof(path), "%s/" CAT, dir);

	switch (step % 12) {
	case 0:
		*kind = 0;
		*expect = 1;
		return put(dir, FEAT "\n", O_CREAT | O_EXCL);
	case 1:
		*kind = 1;
		*expect = 0;
		return put(dir, "miss\n", O_TRUNC);
	case 2:
		*kind = 1;
		*expect = 1;
		return put(dir, FEAT "\n", O_TRUNC);
	case 3:
		*kind = 2;
		*expect = 0;
		return chmod(path, 0646); /* writable by others */
	case 4:
		*kind = 2;
		*expect = 1;
		return chmod(path, 0644);
	case 5:
		*kind = 3;
		*expect = !root;
		return root ? chown(path, 12345, -1) : 0;
	case 6:
		*kind = 3;
		*expect = 1;
		return root ? chown(path, 0, -1) : 0;
	case 7:
		*kind = 4;
		*expect = 0;
		return rename_over(dir, "miss\n");
	case 8:
		*kind = 4;
		*expect = 1;
		return rename_over(dir, FEAT "\n");
	case 9:
		*kind = 5;
		*expect = 0;
		return unlink(path);
	case 10:
		*kind = 6;
		*expect = 0;
		/* The machine-wide counters live inside the directory; a load
		 * still under way may create them again: remove and retry. */
		for (int tries = 0; tries < 100; tries++) {
			remove_state_dir(dir);
			if (rmdir(dir) == 0)
				return 0;
			if (errno != ENOTEMPTY)
				return -1;
		}
		return -1;
	default:
		*kind = 7;
		*expect = 0;
		return mkdir(dir, 0700); /* empty */
	}
}

static void writer(struct shared *sh, const char *dir)
{
	uint64_t end = now_ns() + WRITER_SECS * 1000000000ull;
	uint64_t deadline = now_ns() + DEADLINE_SECS * 1000000000ull;
	unsigned i;

	for (i = 0; i < MAX_CHANGES && (i % 12 || now_ns() < end); i++) {
		int expect, kind;
		if (make_change(dir, i, &expect, &kind) < 0) {
			atomic_store(&sh->finished, 2);
			_exit(1);
		}
		sh->by_kind[kind]++;
		atomic_store(&sh->expect, expect);
		atomic_store(&sh->kind, kind);
		atomic_store_explicit(&sh->seq, i + 1, memory_order_release);
		while (atomic_load(&sh->acks) < READERS * (i + 1)) {
			if (now_ns() > deadline) {
				atomic_store(&sh->finished, 2);
				_exit(1);
			}
			sched_yield();
		}
	}
	atomic_store(&sh->finished, 1);
	_exit(0);
}

static void *reader(void *arg)
{
	struct mt *m = arg;
	unsigned last = 0;

	while (!atomic_load(&m->sh->finished)) {
		unsigned seq = atomic_load_explicit(&m->sh->seq, memory_order_acquire);
		if (seq == last) {
			sched_yield();
			continue;
		}
		int expect = atomic_load(&m->sh->expect);
		bool owner = wrench__ring_is_owner();
		bool got = wrench_is_active(CAT, FEAT); /* the very next call */
		/* And the calls after it, made while the owner drains: a call
		 * that trusted the ring between the drain's clearing of the
		 * flag and its applying of the events would miss the change. */
		for (int i = 0; i < CALLS_AFTER && got == (expect != 0); i++)
			got = wrench_is_active(CAT, FEAT);
		atomic_fetch_add(&m->checks, 1);
		atomic_fetch_add(&m->owner_checks, owner);
		if (got != (expect != 0) && atomic_fetch_add(&m->misses, 1) == 0) {
			m->first_miss_seq = seq;
			m->first_miss_kind = atomic_load(&m->sh->kind);
		}
		last = seq;
		atomic_fetch_add(&m->sh->acks, 1);
	}
	return NULL;
}

static void test_readers_see_every_change_on_their_next_call(void **state)
{
	const char *dir = scratch_dir(state);
	struct mt m = {.dir = dir};
	pthread_t readers[READERS];

	m.sh = mmap(NULL, sizeof(*m.sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(m.sh != MAP_FAILED);
	memset(m.sh, 0, sizeof(*m.sh));
	/* This thread makes the ring and keeps calling. */
	wrench__ring_stop();
	assert_false(wrench_is_active(CAT, FEAT));
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		writer(m.sh, dir);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, reader, &m), 0);
	unsigned long owner_calls = 0;
	while (!atomic_load(&m.sh->finished)) {
		wrench_is_active(CAT, FEAT);
		owner_calls++;
		sched_yield();
	}
	for (int i = 0; i < READERS; i++)
		pthread_join(readers[i], NULL);
	int status;
	waitpid(pid, &status, 0);
	unsigned changes = atomic_load(&m.sh->seq);
	printf("%u changes (", changes);
	for (int k = 0; k < 8; k++)
		printf("%s%s %u", k ? ", " : "", kind_name[k], m.sh->by_kind[k]);
	printf("), %u reader checks (%u by the ring's owner), %lu owner calls, %u misses, "
	       "path: %s\n",
	       atomic_load(&m.checks), atomic_load(&m.owner_checks), owner_calls,
	       atomic_load(&m.misses), wrench__ring_active() ? "ring" : "inotify read()");
	munmap(m.sh, sizeof(*m.sh));
	if (access(dir, F_OK) != 0)
		mkdir(dir, 0700);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (atomic_load(&m.misses))
		fail_msg("%u changes missed; the first: change %u (%s)", atomic_load(&m.misses),
		         m.first_miss_seq, kind_name[m.first_miss_kind]);
	assert_true(changes >= 12);
	assert_int_equal(atomic_load(&m.checks), READERS * changes);
	/* Most checks were made by threads other than the ring's owner. */
	assert_true(atomic_load(&m.checks) - atomic_load(&m.owner_checks) >= changes);
}

/* ---- fork, exec, descriptors ------------------------------------------------ */

static _Atomic int calling;

/* Calls for a feature that never fires, so that this thread never holds
 * the test's log-capture lock (which fork does not know of) when the
 * other forks. */
static void *keep_calling(void *arg)
{
	(void)arg;
	while (atomic_load(&calling))
		wrench_is_active(CAT, "absent");
	return NULL;
}

/* In the child: its own ring, changes seen at once, the parent's ring
 * untouched (one io_uring descriptor: its own). */
static void child_after_fork(void *arg)
{
	const char *dir = arg;
	bool ok = wrench_is_active(CAT, FEAT);
	ok = ok && wrench__ring_active() == ring_expected;
	rewrite_in_place(dir, CAT, "miss\n");
	ok = ok && !wrench_is_active(CAT, FEAT);
	rewrite_in_place(dir, CAT, FEAT "\n");
	ok = ok && wrench_is_active(CAT, FEAT);
	rewrite_in_place(dir, CAT, "miss\n"); /* the parent must see this one */
	ok = ok && !wrench_is_active(CAT, FEAT);
	_exit(ok ? 0 : 1);
}

static void test_fork_in_the_middle_of_calls(void **state)
{
	const char *dir = scratch_dir(state);
	pthread_t t;

	write_file(dir, CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	atomic_store(&calling, 1);
	assert_int_equal(pthread_create(&t, NULL, keep_calling, NULL), 0);
	int status = run_in_child(child_after_fork, (void *)dir);
	/* The child's last change, seen by the parent's very next call. */
	bool after_child = wrench_is_active(CAT, FEAT);
	rewrite_in_place(dir, CAT, FEAT "\n");
	bool after_parent = wrench_is_active(CAT, FEAT);
	atomic_store(&calling, 0);
	pthread_join(t, NULL);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(after_child);
	assert_true(after_parent);
	/* The calling thread may have taken the ring over while this one
	 * waited for the child; this call takes it back. */
	assert_true(wrench_is_active(CAT, FEAT));
	assert_true(wrench__ring_active() == ring_expected);
	if (ring_expected) {
		unsigned long before = atomic_load(&reads);
		for (int i = 0; i < 1000; i++)
			wrench_is_active(CAT, FEAT);
		assert_true(atomic_load(&reads) - before <= 1000 / FEW);
	}
}

/* Runs this executable with ARGS, environment ENV added; returns what it
 * printed (stdout and stderr). */
static void run_self(char *const args[], const char *env, char *out, size_t len)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (env)
			putenv((char *)env);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(p[1]);
	size_t got = 0;
	ssize_t n;
	char spill[512];
	/* Read to the end, keeping what fits, so that the child never blocks. */
	while ((n = read(p[0], got + 1 < len ? out + got : spill,
	                 got + 1 < len ? len - 1 - got : sizeof(spill))) > 0)
		if (got + 1 < len)
			got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_exec_inherits_no_descriptor(void **state)
{
	char out[4096];
	char *args[] = {"test_ring", "--fds", NULL};

	write_file(scratch_dir(state), CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	assert_true(wrench__ring_active() == ring_expected);
	run_self(args, NULL, out, sizeof(out));
	printf("descriptors after exec:\n%s", out);
	assert_null(strstr(out, "io_uring"));
	assert_null(strstr(out, "inotify"));
}

/* Runs the probe (1000 calls) in a new process whose environment has ENV
 * too, over a trigger file of the scratch directory; its output in OUT. */
static void probe_with(void **state, const char *env, char *out, size_t len)
{
	char *args[] = {"test_ring", "--probe", (char *)scratch_dir(state), "1000", NULL};

	write_file(scratch_dir(state), CAT, FEAT "\n", 0644);
	run_self(args, env, out, len);
}

static void test_io_uring_0_turns_the_ring_off(void **state)
{
	char out[4096];

	probe_with(state, "WRENCH_IO_URING=0", out, sizeof(out));
	printf("%s", out);
	assert_non_null(strstr(out, "path: inotify"));
	assert_non_null(strstr(out, "WRENCH_IO_URING=0"));
	assert_non_null(strstr(out, "reads: 1"));
}

/* Relaxed mode makes the ring too: a call then learns from the ring's
 * flags that nothing changed, without reading the clock. */
static void test_relaxed_mode_uses_the_ring_too(void **state)
{
	char out[4096];

	probe_with(state, "WRENCH_RECHECK_MS=100", out, sizeof(out));
	printf("relaxed mode: %s", out);
	if (!need_ring())
		return;
	assert_non_null(strstr(out, "path: io_uring"));
	assert_non_null(strstr(out, "reads: 0"));
}

/* An application closes every descriptor it did not open (closefrom):
 * changes are still seen, by the slow path, with an INFO line. */
static void child_closes_everything(void *arg)
{
	const char *dir = arg;
	wrench__set_log_threshold(WRENCH_LOG_INFO);
	bool ok = wrench_is_active(CAT, FEAT) && wrench__ring_active() == ring_expected;
	close_range(3, ~0U, 0);
	log_capture_reset();
	for (int i = 0; i < 6 && ok; i++) {
		rewrite_in_place(dir, CAT, i % 2 ? FEAT "\n" : "miss\n");
		ok = wrench_is_active(CAT, FEAT) == (i % 2 == 1);
	}
	ok = ok && !wrench__ring_active();
	ok = ok && log_has(WRENCH_LOG_INFO, "closed", NULL);
	if (!ok)
		log_dump();
	_exit(ok ? 0 : 1);
}

static void test_closing_every_descriptor_keeps_changes_seen(void **state)
{
	const char *dir = scratch_dir(state);

	write_file(dir, CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	int status = run_in_child(child_closes_everything, (void *)dir);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- seccomp --------------------------------------------------------------- */

struct refusal {
	int errnum;         /* what the filter makes io_uring_setup return */
	const char *reason; /* what the INFO line must say */
};

/* Makes the system call NR fail with ERRNUM in this process and every
 * program it runs from now on. Returns 0, or -1 with errno set. */
static int refuse_system_call(unsigned nr, int errnum)
{
	struct sock_filter f[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)errnum),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* A sandbox refuses io_uring_setup (Docker's default profile: EPERM; a
 * filter that pretends an old kernel: ENOSYS). The child's first load
 * tries a ring of its own, falls back, says why, and sees changes. */
static void child_under_seccomp(void *arg)
{
	const struct refusal *r = arg;
	const char *dir = wrench_get_dir();

	if (refuse_system_call(__NR_io_uring_setup, r->errnum) < 0)
		_exit(2);
	wrench__set_log_threshold(WRENCH_LOG_INFO);
	log_capture_reset();
	bool ok = wrench_is_active(CAT, FEAT) && !wrench__ring_active() &&
	          log_has(WRENCH_LOG_INFO, "io_uring not used", r->reason, NULL);
	rewrite_in_place(dir, CAT, "miss\n");
	ok = ok && !wrench_is_active(CAT, FEAT);
	if (!ok)
		log_dump();
	_exit(ok ? 0 : 1);
}

static void test_seccomp_refusal_falls_back(void **state)
{
	static const struct refusal refusals[] = {
	        {EPERM, "a seccomp filter or security policy forbids it"},
	        {ENOSYS, "older than 6.1"},
	};

	if (!need_ring())
		return;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		write_file(scratch_dir(state), CAT, FEAT "\n", 0644);
		assert_true(wrench_is_active(CAT, FEAT));
		int status = run_in_child(child_under_seccomp, (void *)&refusals[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("io_uring_setup refused with %s: the child failed (status %d)",
			         strerror(refusals[i].errnum), status);
	}
	assert_true(wrench__ring_active()); /* this process keeps its ring */
}

/* Without memfds (a kernel built without them, a sandbox) the self-test
 * cannot run, and nothing else is tried in its place: a new process turns
 * the ring off, says why in one INFO line, and reads inotify on each
 * call. A new process, as the self-test runs once in a process's life. */
static void test_self_test_without_memfd_turns_the_ring_off(void **state)
{
	char *args[] = {"test_ring", "--probe-without-memfd", (char *)scratch_dir(state), "1000",
	                NULL};
	char out[4096];

	if (!need_ring())
		return;
	write_file(scratch_dir(state), CAT, FEAT "\n", 0644);
	run_self(args, NULL, out, sizeof(out));
	printf("%s", out);
	assert_non_null(
	        strstr(out, "io_uring not used: its self-test failed (cannot make a memfd"));
	assert_non_null(strstr(out, "path: inotify"));
	assert_non_null(strstr(out, "reads: 1"));
}

/* ---- io_uring_disabled ---------------------------------------------------- */

#define SYSCTL "/proc/sys/kernel/io_uring_disabled"

static int write_sysctl(const char *value)
{
	int fd = open(SYSCTL, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* The child tries a ring while io_uring is disabled, tells the parent at
 * once (which restores the setting), and checks the fallback. */
static void child_with_io_uring_disabled(void *arg)
{
	int *p = arg;
	const char *dir = wrench_get_dir();
	wrench__set_log_threshold(WRENCH_LOG_INFO);
	log_capture_reset();
	bool first = wrench_is_active(CAT, FEAT); /* the child's first load makes its ring */
	bool on = wrench__ring_active();
	(void)!write(p[1], "x", 1);
	close(p[1]);
	bool ok = first && !on && log_has(WRENCH_LOG_INFO, "io_uring_disabled is 2", NULL);
	rewrite_in_place(dir, CAT, "miss\n");
	ok = ok && !wrench_is_active(CAT, FEAT);
	if (!ok)
		log_dump();
	_exit(ok ? 0 : 1);
}

static void test_io_uring_disabled_falls_back(void **state)
{
	char old[16] = "";
	int p[2];

	if (!need_root("writing " SYSCTL) || !need_ring())
		return;
	int fd = open(SYSCTL, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("skipped: %s does not exist (kernel before 6.6)\n", SYSCTL);
		return;
	}
	ssize_t n = read(fd, old, sizeof(old) - 1);
	close(fd);
	assert_true(n > 0);
	old[strcspn(old, "\n")] = '\0';
	write_file(scratch_dir(state), CAT, FEAT "\n", 0644);
	assert_true(wrench_is_active(CAT, FEAT));
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	/* Other processes on the machine cannot make rings meanwhile: keep
	 * the window to the child's first call. */
	assert_int_equal(write_sysctl("2"), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		child_with_io_uring_disabled(p);
	close(p[1]);
	char c;
	(void)!read(p[0], &c, 1);
	int restored = write_sysctl(old);
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(restored, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* This process keeps its ring. */
	assert_true(wrench__ring_active());
}

/* ---- Helper modes ---------------------------------------------------------- */

static int list_descriptors(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], target[256];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0)
			printf("%d -> %.*s\n", fd, (int)n, target);
	}
	return 0;
}

/* Makes N calls (for a feature that does not fire: nothing is logged)
 * after two that load; prints the path and the read() calls per call. */
static int probe(const char *dir, unsigned long n)
{
	wrench_get_dir();
	wrench__set_log_threshold(WRENCH_LOG_INFO);
	wrench_set_dir(dir);
	wrench_is_active(CAT, "absent");
	wrench_is_active(CAT, "absent");
	unsigned long before = atomic_load(&reads);
	for (unsigned long i = 0; i < n; i++)
		wrench_is_active(CAT, "absent");
	unsigned long made = atomic_load(&reads) - before;
	printf("path: %s; reads: %lu per call\n", wrench__ring_active() ? "io_uring" : "inotify",
	       n ? made / n : 0);
	return 0;
}

#define RING_TEST(fn) cmocka_unit_test_setup_teardown(fn, quiet_scratch_setup, scratch_teardown)

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--fds") == 0)
		return list_descriptors();
	if (argc == 4 && strcmp(argv[1], "--probe") == 0)
		return probe(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "--probe-without-memfd") == 0)
		return refuse_system_call(__NR_memfd_create, ENOSYS) < 0
		               ? 2
		               : probe(argv[2], strtoul(argv[3], NULL, 10));
	const struct CMUnitTest tests[] = {
	        RING_TEST(test_steady_state_makes_no_read_per_call),
	        RING_TEST(test_change_seen_then_quiet_again),
	        RING_TEST(test_owner_exit_moves_the_ring),
	        RING_TEST(test_blocked_owner_does_not_keep_others_slow),
	        RING_TEST(test_a_drain_in_progress_is_not_trusted),
	        RING_TEST(test_readers_see_every_change_on_their_next_call),
	        RING_TEST(test_fork_in_the_middle_of_calls),
	        RING_TEST(test_exec_inherits_no_descriptor),
	        RING_TEST(test_io_uring_0_turns_the_ring_off),
	        RING_TEST(test_relaxed_mode_uses_the_ring_too),
	        RING_TEST(test_closing_every_descriptor_keeps_changes_seen),
	        RING_TEST(test_seccomp_refusal_falls_back),
	        RING_TEST(test_self_test_without_memfd_turns_the_ring_off),
	        RING_TEST(test_io_uring_disabled_falls_back),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
