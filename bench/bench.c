/*
 * wrench_bench: what a failure point costs, in ns per call (median of
 * several repetitions), next to the baselines measured in the same run:
 * an empty call, one non-blocking inotify read(), Juju's per-call
 * algorithm (naive.c) and, when built with it, libfiu's fiu_fail().
 * Strict mode is measured both ways: with the io_uring ring where the
 * kernel allows it, and with it turned off (WRENCH_IO_URING=0, in a child
 * process forked before the library is first called), and the path each
 * took is printed. It prints figures and ratios; it asserts nothing.
 *
 * Usage: wrench_bench [--quick]   (--quick: short runs, for a CI smoke test)
 */
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wrench.h>

#include "naive.h"

#ifdef HAVE_LIBFIU
#define FIU_ENABLE 1
#include <fiu-control.h>
#include <fiu.h>
#endif

#define REPETITIONS 7
#define BIG_FILES   1000
#define BIG_LINES   100

static double run_ms = 20; /* target length of one repetition */
static volatile unsigned long sink;
static char base[64];

/* Wall time, except for the paired rows (measure_pair), which count the
 * thread's CPU time: on a busy machine time spent preempted is not the
 * library's, and would weigh on one row of a pair and not the other. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(bench_clock, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* A scenario: N calls of something. */
typedef void loop_fn(void *arg, unsigned long n);

/* Median ns per call over the repetitions, N sized to last run_ms. */
static double measure(loop_fn *loop, void *arg)
{
	unsigned long n = 64;
	double samples[REPETITIONS], t;

	for (;;) {
		t = now_ns();
		loop(arg, n);
		t = now_ns() - t;
		if (t > run_ms * 1e6 / 4 || n > (1ul << 40))
			break;
		n *= 4;
	}
	n = (unsigned long)(n * (run_ms * 1e6 / t)) + 1;
	for (int r = 0; r < REPETITIONS; r++) {
		t = now_ns();
		loop(arg, n);
		samples[r] = (now_ns() - t) / n;
	}
	qsort(samples, REPETITIONS, sizeof(double), by_value);
	return samples[REPETITIONS / 2];
}

/* ---- the scenarios ------------------------------------------------------ */

struct point {
	const char *dir, *category, *feature;
};

/* A loop of N calls of ASK, which names the point by the variables
 * category and feature: the names are copied out of ARG, since a loop
 * re-reading a struct on another thread's stack would measure that cache
 * line, not the library. ASK's answer counts when it is not 0 (a bool or
 * an errno: the same instructions as adding a bool). */
#define NAMED_LOOP(fn, ask)                                                                        \
	static void fn(void *arg, unsigned long n)                                                 \
	{                                                                                          \
		const char *category = ((const struct point *)arg)->category;                      \
		const char *feature = ((const struct point *)arg)->feature;                        \
		unsigned long active = 0;                                                          \
		for (unsigned long i = 0; i < n; i++)                                              \
			active += (ask) != 0;                                                      \
		sink += active;                                                                    \
	}

NAMED_LOOP(loop_wrench, wrench_is_active(category, feature))
/* The function itself, as a caller without the inline check (another
 * language through its FFI, say) calls it. */
NAMED_LOOP(loop_wrench_call, (wrench_is_active)(category, feature))
/* wrench_error() where wrench_is_active() is measured. */
NAMED_LOOP(loop_error, wrench_error(category, feature))

/* A literal call site: both names string literals, as in most product
 * code, so that the call gets a record of its own (wrench.h). One loop
 * per point and question, each with its own site. */
#define LITERAL_LOOP_OF(fn, ask)                                                                   \
	static void fn(void *arg, unsigned long n)                                                 \
	{                                                                                          \
		unsigned long active = 0;                                                          \
		(void)arg;                                                                         \
		for (unsigned long i = 0; i < n; i++)                                              \
			active += (ask) != 0;                                                      \
		sink += active;                                                                    \
	}
#define LITERAL_LOOP(fn, category, feature) LITERAL_LOOP_OF(fn, wrench_is_active(category, feature))

LITERAL_LOOP(literal_hot, "bench", "hot")
LITERAL_LOOP(literal_absent, "bench", "absent")
LITERAL_LOOP(literal_coin, "bench", "coin")
LITERAL_LOOP(literal_big, "category-500", "feature-51")
LITERAL_LOOP(literal_hot_old, "bench", "hot-old")
LITERAL_LOOP(literal_every, "bench", "every")
LITERAL_LOOP(literal_every_old, "bench", "every-old")
LITERAL_LOOP(literal_times, "bench", "times")
LITERAL_LOOP(literal_times_old, "bench", "times-old")
LITERAL_LOOP(literal_after, "bench", "after")
LITERAL_LOOP(literal_after_old, "bench", "after-old")
LITERAL_LOOP_OF(literal_error_hot, wrench_error("bench", "hot"))
LITERAL_LOOP_OF(literal_error_absent, wrench_error("bench", "absent"))

static void loop_naive(void *arg, unsigned long n)
{
	const struct point *p = arg;
	unsigned long active = 0;
	for (unsigned long i = 0; i < n; i++)
		active += naive_is_active(p->dir, p->category, p->feature);
	sink += active;
}

__attribute__((noinline)) static int empty_call(const char *category, const char *feature)
{
	__asm__ volatile("" ::"r"(category), "r"(feature));
	return 0;
}

static int (*volatile empty_ptr)(const char *, const char *) = empty_call;

static void loop_empty(void *arg, unsigned long n)
{
	(void)arg;
	unsigned long active = 0;
	for (unsigned long i = 0; i < n; i++)
		active += empty_ptr("bench", "hot");
	sink += active;
}

static void loop_inotify(void *arg, unsigned long n)
{
	int fd = *(int *)arg;
	char buf[4096];
	for (unsigned long i = 0; i < n; i++)
		sink += read(fd, buf, sizeof(buf)) < 0;
}

#ifdef HAVE_LIBFIU
static void loop_fiu(void *arg, unsigned long n)
{
	const char *name = arg;
	unsigned long active = 0;
	for (unsigned long i = 0; i < n; i++)
		active += fiu_fail(name) != 0;
	sink += active;
}
#endif

/* Two threads at the same failure point at once: ns per call per thread. */
struct pair {
	loop_fn *loop;
	void *arg;
	unsigned long n;
	pthread_barrier_t *start;
};

static void *pair_thread(void *arg)
{
	struct pair *pair = arg;
	pthread_barrier_wait(pair->start);
	pair->loop(pair->arg, pair->n);
	return NULL;
}

static void loop_two_threads_of(loop_fn *loop, void *arg, unsigned long n)
{
	pthread_barrier_t start;
	pthread_t other;
	struct pair pair = {loop, arg, n, &start};

	pthread_barrier_init(&start, NULL, 2);
	pthread_create(&other, NULL, pair_thread, &pair);
	pair_thread(&pair);
	pthread_join(other, NULL);
	pthread_barrier_destroy(&start);
}

static void loop_two_threads(void *arg, unsigned long n)
{
	loop_two_threads_of(loop_wrench, arg, n);
}

static void loop_two_threads_literal(void *arg, unsigned long n)
{
	loop_two_threads_of(literal_hot, arg, n);
}

static void loop_two_threads_naive(void *arg, unsigned long n)
{
	loop_two_threads_of(loop_naive, arg, n);
}

/* CPU time per call of one thread running LOOP: unlike wall time, not
 * inflated when a busy machine deschedules the thread. */
struct cpu_run {
	loop_fn *loop;
	void *arg;
	unsigned long n;
	double ns;
};

static void *cpu_run_thread(void *arg)
{
	struct cpu_run *r = arg;
	struct timespec a, b;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	r->loop(r->arg, r->n);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	r->ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / r->n;
	return NULL;
}

/* CPU ns per call: of one thread alone (*ONE), and the slower of two
 * threads at once (returned). */
static double cpu_two_threads(loop_fn *loop, void *arg, double *one)
{
	unsigned long n = (unsigned long)(run_ms * 1e6 / 10);
	struct cpu_run r[2] = {{loop, arg, n, 0}, {loop, arg, n, 0}};
	pthread_t t;

	cpu_run_thread(&r[0]);
	*one = r[0].ns;
	pthread_create(&t, NULL, cpu_run_thread, &r[1]);
	cpu_run_thread(&r[0]);
	pthread_join(t, NULL);
	return r[0].ns > r[1].ns ? r[0].ns : r[1].ns;
}

/* The machine's own share: what a second busy thread costs an empty loop. */
static void loop_two_threads_empty(void *arg, unsigned long n)
{
	loop_two_threads_of(loop_empty, arg, n);
}

/* ---- the files ------------------------------------------------------------ */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) == EOF || fclose(f) != 0 || chmod(path, 0600) != 0) {
		perror(path);
		exit(1);
	}
}

static void make_dir(const char *path)
{
	if (mkdir(path, 0700) < 0) {
		perror(path);
		exit(1);
	}
}

static void make_big_dir(const char *dir)
{
	static char text[BIG_LINES * 32];

	make_dir(dir);
	for (int f = 0; f < BIG_FILES; f++) {
		char name[32];
		size_t len = 0;
		for (int l = 0; l < BIG_LINES; l++)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "feature-%d%s\n", l,
			                        l % 3 ? " chance=0.5" : "");
		snprintf(name, sizeof(name), "category-%d", f);
		write_file(dir, name, text);
	}
}

/* First use of many categories, each with its file: the first pass loads
 * each one, the second answers from what change detection knows. */
struct many {
	double first_ns, second_ns;         /* per call */
	double first_cpu_ns, second_cpu_ns; /* per call, this thread's CPU time */
	double syscalls_ns;                 /* per file: a load's system calls alone */
	unsigned syscalls_files;            /* how many files that measure took */
	unsigned watches_refused;           /* and how many of its watches failed */
	unsigned count;
};

static double cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* One pass: wall time per call, and (in *CPU) CPU time per call, which
 * other processes on a shared machine do not inflate. */
static double pass_ns(char (*names)[32], unsigned count, double *cpu)
{
	double t = now_ns(), c = cpu_ns();
	for (unsigned i = 0; i < count; i++)
		sink += wrench_is_active(names[i], "hot");
	*cpu = (cpu_ns() - c) / count;
	return (now_ns() - t) / count;
}

/* The system calls a first use cannot do without, alone, per file: open
 * by name in the directory, fstat, the watch on the descriptor, read,
 * close, geteuid. A floor for the first pass, from an inotify instance of
 * its own, so that each of its watches is a new one (each file also has
 * the library's). Over at most 50,000 of the files: the library already
 * holds a watch on each, and both together must stay under the kernel's
 * max_user_watches (a watch refused fails fast and would lower the
 * figure); a refusal is counted in *REFUSED all the same. */
static double syscalls_per_file(const char *dir, char (*names)[32], unsigned *count,
                                unsigned *refused)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int in = inotify_init1(IN_CLOEXEC);
	char buf[64], proc[64];

	if (dirfd < 0 || in < 0) {
		perror(dir);
		exit(1);
	}
	if (*count > 50000)
		*count = 50000;
	*refused = 0;
	double t = now_ns();
	for (unsigned i = 0; i < *count; i++) {
		struct stat st;
		int fd = openat(dirfd, names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(names[i]);
			exit(1);
		}
		snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", fd);
		if (inotify_add_watch(in, proc, IN_MODIFY | IN_ATTRIB | IN_MASK_ADD) < 0)
			(*refused)++;
		sink += (unsigned long)read(fd, buf, sizeof(buf));
		close(fd);
		sink += geteuid();
	}
	t = (now_ns() - t) / *count;
	close(in);
	close(dirfd);
	return t;
}

static struct many many_categories(const char *dir, unsigned count)
{
	struct many m = {.count = count};
	char(*names)[32] = calloc(count, sizeof(*names));

	if (!names) {
		perror("calloc");
		exit(1);
	}
	make_dir(dir);
	for (unsigned i = 0; i < count; i++) {
		snprintf(names[i], sizeof(names[i]), "category-%u", i);
		write_file(dir, names[i], "hot\n");
	}
	wrench_set_recheck_ms(0);
	wrench_set_dir(dir);
	m.first_ns = pass_ns(names, count, &m.first_cpu_ns);
	m.second_ns = pass_ns(names, count, &m.second_cpu_ns);
	m.syscalls_files = count;
	m.syscalls_ns = syscalls_per_file(dir, names, &m.syscalls_files, &m.watches_refused);
	free(names);
	return m;
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", base);
}

/* ---- the table ------------------------------------------------------------ */

struct row {
	const char *name;
	const char *dir; /* wrench_set_dir() for it */
	struct point point;
	double strict, relaxed, naive;
	bool has_naive;
	double strict_off; /* strict mode with the ring turned off */
};

/* A row's point asked from a literal call site, in the three modes. */
struct literal_row {
	loop_fn *loop;
	double strict, off, relaxed;
};

static double in_mode(unsigned recheck_ms, struct row *r, loop_fn *loop)
{
	wrench_set_recheck_ms(recheck_ms);
	wrench_set_dir(r->dir);
	loop(&r->point, 1); /* load what the scenario needs, outside the timing */
	return measure(loop, &r->point);
}

/* Measures NEW and OLD in turn, PAIR_ROUNDS times each, in one mode, and
 * keeps the fastest median of each: a load on the machine falls on both
 * alike, and the fastest round is the least disturbed one. */
#define PAIR_ROUNDS 5

static void measure_pair(unsigned recheck_ms, struct row *new_row, loop_fn *new_loop,
                         struct row *old_row, loop_fn *old_loop, double *new_ns, double *old_ns)
{
	*new_ns = *old_ns = 1e300;
	bench_clock = CLOCK_THREAD_CPUTIME_ID;
	for (int r = 0; r < PAIR_ROUNDS; r++) {
		double a = in_mode(recheck_ms, new_row, new_loop);
		double b = in_mode(recheck_ms, old_row, old_loop);
		*new_ns = a < *new_ns ? a : *new_ns;
		*old_ns = b < *old_ns ? b : *old_ns;
	}
	bench_clock = CLOCK_MONOTONIC;
}

/* A literal site's row against a baseline (the floor, libfiu's enabled
 * point), in turn, PAIR_ROUNDS times, fastest of each, in CPU time: the
 * VM's speed drifts from one second to the next, and a ratio of two
 * figures taken a minute apart measures that drift as much as the code. */
static void measure_against(unsigned recheck_ms, struct row *r, loop_fn *site, loop_fn *baseline,
                            void *baseline_arg, double *site_ns, double *baseline_ns)
{
	*site_ns = *baseline_ns = 1e300;
	bench_clock = CLOCK_THREAD_CPUTIME_ID;
	for (int i = 0; i < PAIR_ROUNDS; i++) {
		double a = in_mode(recheck_ms, r, site);
		double b = measure(baseline, baseline_arg);
		*site_ns = a < *site_ns ? a : *site_ns;
		*baseline_ns = b < *baseline_ns ? b : *baseline_ns;
	}
	bench_clock = CLOCK_MONOTONIC;
}

/* Time to load one category of BIG_LINES lines: the first call after the
 * cache was emptied, median over several categories. */
static double load_us(const char *dir)
{
	double samples[REPETITIONS];
	for (int r = 0; r < REPETITIONS; r++) {
		char category[32];
		snprintf(category, sizeof(category), "category-%d", r * 7);
		wrench_set_dir(dir);
		double t = now_ns();
		sink += wrench_is_active(category, "feature-0");
		samples[r] = (now_ns() - t) / 1e3;
	}
	qsort(samples, REPETITIONS, sizeof(double), by_value);
	return samples[REPETITIONS / 2];
}

static double heap_per_line(const char *dir)
{
	wrench_set_dir(dir);
	wrench_is_active("category-0", "feature-0"); /* start what is started once */
	size_t before = mallinfo2().uordblks;
	for (int f = 1; f < BIG_FILES; f++) {
		char category[32];
		snprintf(category, sizeof(category), "category-%d", f);
		sink += wrench_is_active(category, "feature-0");
	}
	size_t after = mallinfo2().uordblks;
	return (double)(after - before) / ((BIG_FILES - 1) * BIG_LINES);
}

/* Set by --quick: repetitions of 2 ms are too short and too noisy for a
 * figure to be held against a target, so none is judged. */
static bool quick;

static void verdict(const char *target, double value, double limit, const char *unit)
{
	const char *result = quick ? "not judged (--quick)" : value <= limit ? "met" : "MISSED";
	printf("  %-58s %8.2f%-3s %s\n", target, value, unit, result);
}

/* Which path strict mode takes: the library holds an io_uring descriptor
 * only while its ring serves it. */
static const char *strict_path(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	bool ring = false;

	while (d && (e = readdir(d))) {
		char link[300], target[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		ring |= n > 0 && (target[n] = '\0', strstr(target, "io_uring") != NULL);
	}
	if (d)
		closedir(d);
	return ring ? "io_uring ring, no system call per call"
	            : "inotify read() per call (no ring: WRENCH_LOG=info says why)";
}

/*
 * Strict mode with the ring turned off, measured in a child process: the
 * library reads WRENCH_IO_URING once, at its first call, and this process
 * has not called it yet. Fills each row's strict_off and TWO's; writes the
 * child's path into PATH.
 */
static void measure_ring_off(struct row *rows, struct literal_row *lit, size_t nrows,
                             struct row *two, char *path, size_t len)
{
	double got[32];
	int p[2];

	if (2 * (nrows + 1) > sizeof(got) / sizeof(got[0]) || pipe(p) < 0)
		exit(1);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("WRENCH_IO_URING", "0", 1);
		for (size_t i = 0; i < nrows; i++)
			got[i] = in_mode(0, &rows[i], loop_wrench);
		got[nrows] = in_mode(0, two, loop_two_threads);
		for (size_t i = 0; i < nrows; i++)
			got[nrows + 1 + i] = in_mode(0, &rows[i], lit[i].loop);
		got[2 * nrows + 1] = in_mode(0, two, lit[nrows].loop);
		snprintf(path, len, "%s", strict_path());
		if (write(p[1], got, sizeof(got)) != (ssize_t)sizeof(got) ||
		    write(p[1], path, len) != (ssize_t)len)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], got, sizeof(got)) != (ssize_t)sizeof(got) ||
	    read(p[0], path, len) != (ssize_t)len || waitpid(pid, NULL, 0) != pid) {
		fprintf(stderr, "the child measuring strict mode without the ring failed\n");
		exit(1);
	}
	close(p[0]);
	for (size_t i = 0; i < nrows; i++) {
		rows[i].strict_off = got[i];
		lit[i].off = got[nrows + 1 + i];
	}
	two->strict_off = got[nrows];
	lit[nrows].off = got[2 * nrows + 1];
}

int main(int argc, char **argv)
{
	quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	if (quick)
		run_ms = 2;
	/* A WARN per fire would measure stderr, not the library. */
	setenv("WRENCH_LOG", "off", 0);
	snprintf(base, sizeof(base), "/tmp/wrench-bench.XXXXXX");
	if (!mkdtemp(base))
		return 1;
	atexit(cleanup);

	char missing[96], empty[96], small[96], big[96];
	snprintf(missing, sizeof(missing), "%s/missing", base);
	snprintf(empty, sizeof(empty), "%s/empty", base);
	snprintf(small, sizeof(small), "%s/small", base);
	snprintf(big, sizeof(big), "%s/big", base);
	make_dir(empty);
	make_dir(small);
	/* Each counted line twice: machine-wide (the default) and counted in
	 * the process alone, as every line was before the shared state. */
	write_file(small, "bench",
	           "other\nhot\ncoin chance=0.5\nhot-old scope=process\n"
	           "every every=3\nevery-old every=3 scope=process\n"
	           "times times=1000000\ntimes-old times=1000000 scope=process\n"
	           "after after=5\nafter-old after=5 scope=process\n");
	make_big_dir(big);

	struct row rows[] = {
	        {"directory missing", missing, {missing, "bench", "hot"}, 0, 0, 0, true, 0},
	        {"directory present, no file", empty, {empty, "bench", "hot"}, 0, 0, 0, true, 0},
	        {"file present, feature absent",
	         small,
	         {small, "bench", "absent"},
	         0,
	         0,
	         0,
	         true,
	         0},
	        {"feature active (fail)", small, {small, "bench", "hot"}, 0, 0, 0, true, 0},
	        {"feature with chance=0.5", small, {small, "bench", "coin"}, 0, 0, 0, true, 0},
	        {"1000 files x 100 lines, active",
	         big,
	         {big, "category-500", "feature-51"},
	         0,
	         0,
	         0,
	         true,
	         0},
	        /* Counted lines, then the same counted per process ("old"). */
	        {"feature active, scope=process (old)",
	         small,
	         {small, "bench", "hot-old"},
	         0,
	         0,
	         0,
	         false,
	         0},
	        {"every=3", small, {small, "bench", "every"}, 0, 0, 0, false, 0},
	        {"every=3, scope=process (old)",
	         small,
	         {small, "bench", "every-old"},
	         0,
	         0,
	         0,
	         false,
	         0},
	        {"times=1000000", small, {small, "bench", "times"}, 0, 0, 0, false, 0},
	        {"times=1000000, scope=process (old)",
	         small,
	         {small, "bench", "times-old"},
	         0,
	         0,
	         0,
	         false,
	         0},
	        {"after=5", small, {small, "bench", "after"}, 0, 0, 0, false, 0},
	        {"after=5, scope=process (old)",
	         small,
	         {small, "bench", "after-old"},
	         0,
	         0,
	         0,
	         false,
	         0},
	};
	size_t nrows = sizeof(rows) / sizeof(rows[0]);
	struct row two = {
	        "2 threads, feature active", small, {small, "bench", "hot"}, 0, 0, 0, true, 0};
	/* The literal site of each row's point, in the order of the rows,
	 * then the two threads'. */
	struct literal_row lit[] = {
	        {literal_hot, 0, 0, 0},       {literal_hot, 0, 0, 0},
	        {literal_absent, 0, 0, 0},    {literal_hot, 0, 0, 0},
	        {literal_coin, 0, 0, 0},      {literal_big, 0, 0, 0},
	        {literal_hot_old, 0, 0, 0},   {literal_every, 0, 0, 0},
	        {literal_every_old, 0, 0, 0}, {literal_times, 0, 0, 0},
	        {literal_times_old, 0, 0, 0}, {literal_after, 0, 0, 0},
	        {literal_after_old, 0, 0, 0}, {loop_two_threads_literal, 0, 0, 0},
	};
	_Static_assert(sizeof(lit) / sizeof(lit[0]) == sizeof(rows) / sizeof(rows[0]) + 1,
	               "one literal site per row, and the two threads'");
	char path_off[96];
	measure_ring_off(rows, lit, nrows, &two, path_off, sizeof(path_off));

	double floor_ns = measure(loop_empty, NULL);
	double floor_two_ns = measure(loop_two_threads_empty, NULL);
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	inotify_add_watch(ifd, small, IN_MODIFY);
	double inotify_ns = measure(loop_inotify, &ifd);
	close(ifd);

	wrench_set_enabled(false);
	struct point disabled_point = {small, "bench", "hot"};
	double disabled_ns = measure(loop_wrench, &disabled_point);
	double disabled_call_ns = measure(loop_wrench_call, &disabled_point);
	wrench_set_enabled(true);

	for (size_t i = 0; i < nrows; i++) {
		rows[i].strict = in_mode(0, &rows[i], loop_wrench);
		rows[i].relaxed = in_mode(100, &rows[i], loop_wrench);
		if (rows[i].has_naive)
			rows[i].naive = measure(loop_naive, &rows[i].point);
		lit[i].strict = in_mode(0, &rows[i], lit[i].loop);
		lit[i].relaxed = in_mode(100, &rows[i], lit[i].loop);
	}
	two.strict = in_mode(0, &two, loop_two_threads);
	const char *path_on = strict_path();
	double cpu_one, cpu_two = cpu_two_threads(loop_wrench, &two.point, &cpu_one);
	two.relaxed = in_mode(100, &two, loop_two_threads);
	lit[nrows].strict = in_mode(0, &two, lit[nrows].loop);
	lit[nrows].relaxed = in_mode(100, &two, lit[nrows].loop);
	two.naive = measure(loop_two_threads_naive, &two.point);
	/* Machine-wide counters against the per-process ones they replace:
	 * rows 6 to 12 are old, new, old, new, old, new, old in pairs. */
	static const struct {
		size_t new_row, old_row;
	} pairs[] = {{3, 6}, {7, 8}, {9, 10}, {11, 12}};
	double pair_ns[4][4]; /* strict new, strict old, relaxed new, relaxed old */
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct row *n = &rows[pairs[i].new_row], *o = &rows[pairs[i].old_row];
		measure_pair(0, n, loop_wrench, o, loop_wrench, &pair_ns[i][0], &pair_ns[i][1]);
		measure_pair(100, n, loop_wrench, o, loop_wrench, &pair_ns[i][2], &pair_ns[i][3]);
	}
	/* wrench_error() against wrench_is_active() on the same point, in
	 * turn: rows 3 (active) and 2 (feature absent, quiet). */
	static const struct {
		const char *name;
		size_t row;
		loop_fn *is_active, *error;
	} errors[] = {
	        {"active, literal site", 3, literal_hot, literal_error_hot},
	        {"quiet, literal site", 2, literal_absent, literal_error_absent},
	        {"active, names at run time", 3, loop_wrench, loop_error},
	        {"quiet, names at run time", 2, loop_wrench, loop_error},
	};
	double error_ns[4][2][2]; /* row, mode, {wrench_error, wrench_is_active} */
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		struct row *r = &rows[errors[i].row];
		for (int m = 0; m < 2; m++)
			measure_pair(m ? 100 : 0, r, errors[i].error, r, errors[i].is_active,
			             &error_ns[i][m][0], &error_ns[i][m][1]);
	}
	/* The literal sites' targets, each measured in turn with its
	 * baseline: the three quiet rows against the floor, the active row
	 * against libfiu's enabled point; strict, then relaxed. */
	double against[4][2][2]; /* row, mode, {site, baseline} */
	for (size_t i = 0; i < 4; i++) {
		for (int m = 0; m < 2; m++) {
#ifdef HAVE_LIBFIU
			if (i == 3) {
				fiu_init(0);
				fiu_enable("bench/on", 1, NULL, 0);
				measure_against(m ? 100 : 0, &rows[i], lit[i].loop, loop_fiu,
				                "bench/on", &against[i][m][0], &against[i][m][1]);
				continue;
			}
#endif
			measure_against(m ? 100 : 0, &rows[i], lit[i].loop, loop_empty, NULL,
			                &against[i][m][0], &against[i][m][1]);
		}
	}
	wrench_set_recheck_ms(0);
	double load = load_us(big);
	double heap = heap_per_line(big);
	char many_dir[96];
	snprintf(many_dir, sizeof(many_dir), "%s/many", base);
	/* --quick: a tenth, so that CI's smoke test stays short. */
	struct many many = many_categories(many_dir, run_ms < 20 ? 10000 : 100000);

	printf("ns per call, median of %d repetitions\n", REPETITIONS);
	printf("strict: %s\n", path_on);
	printf("strict, ring off: %s\n\n", path_off);
	printf("%-34s %10s %10s %10s %10s\n", "scenario", "strict", "ring off", "relaxed", "naive");
	printf("%-34s %10.1f %10.1f %10.1f %10s\n", "disabled", disabled_ns, disabled_ns,
	       disabled_ns, "-");
	printf("%-34s %10.1f %10.1f %10.1f %10s\n", "disabled, out-of-line call", disabled_call_ns,
	       disabled_call_ns, disabled_call_ns, "-");
	for (size_t i = 0; i < nrows; i++) {
		printf("%-34s %10.1f %10.1f %10.1f", rows[i].name, rows[i].strict,
		       rows[i].strict_off, rows[i].relaxed);
		if (rows[i].has_naive)
			printf(" %10.1f\n", rows[i].naive);
		else
			printf(" %10s\n", "-");
	}
	printf("%-34s %10.1f %10.1f %10.1f %10.1f\n", two.name, two.strict, two.strict_off,
	       two.relaxed, two.naive);

	printf("\nthe same points from a literal call site (wrench_is_active(\"bench\", "
	       "\"hot\"))\n");
	printf("%-34s %10s %10s %10s\n", "scenario", "strict", "ring off", "relaxed");
	for (size_t i = 0; i <= nrows; i++) {
		const struct row *r = i < nrows ? &rows[i] : &two;
		printf("%-34s %10.1f %10.1f %10.1f\n", r->name, lit[i].strict, lit[i].off,
		       lit[i].relaxed);
	}

	printf("\nliteral sites against their baselines, in turn, fastest of %d, CPU time\n",
	       PAIR_ROUNDS);
	printf("%-34s %10s %10s %10s %10s\n", "scenario", "strict", "baseline", "relaxed",
	       "baseline");
	for (size_t i = 0; i < 4; i++)
		printf("%-34s %10.1f %10.1f %10.1f %10.1f  (%s)\n", rows[i].name, against[i][0][0],
		       against[i][0][1], against[i][1][0], against[i][1][1],
		       i < 3 ? "floor" : "libfiu, point enabled");

	printf("\ncounted lines: machine-wide (new) and scope=process (old), in turn, "
	       "fastest of %d, CPU time\n",
	       PAIR_ROUNDS);
	printf("%-34s %10s %10s %10s %10s\n", "line", "strict", "old", "relaxed", "old");
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		printf("%-34s %10.1f %10.1f %10.1f %10.1f\n", rows[pairs[i].new_row].name,
		       pair_ns[i][0], pair_ns[i][1], pair_ns[i][2], pair_ns[i][3]);

	printf("\nwrench_error() and wrench_is_active() on one point, in turn, fastest of %d, "
	       "CPU time\n",
	       PAIR_ROUNDS);
	printf("%-34s %10s %10s %10s %10s\n", "point", "strict", "is_active", "relaxed",
	       "is_active");
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		printf("%-34s %10.1f %10.1f %10.1f %10.1f\n", errors[i].name, error_ns[i][0][0],
		       error_ns[i][0][1], error_ns[i][1][0], error_ns[i][1][1]);

	printf("\nbaselines\n");
	printf("%-45s %10.1f\n", "empty non-inlined call (floor)", floor_ns);
	printf("%-45s %10.1f\n", "the same, 2 threads at once", floor_two_ns);
	printf("%-45s %10.1f\n", "inotify read(), nothing pending (EAGAIN)", inotify_ns);
	printf("%-45s %10.1f\n", "strict, feature active, CPU ns, 1 thread", cpu_one);
	printf("%-45s %10.1f\n", "the same, each of 2 threads at once", cpu_two);
	double fiu_none = 0;
#ifdef HAVE_LIBFIU
	fiu_init(0);
	fiu_none = measure(loop_fiu, "bench/none");
	fiu_enable("bench/on", 1, NULL, 0);
	double fiu_on = measure(loop_fiu, "bench/on");
	fiu_enable_random("bench/half", 1, NULL, 0, 0.5);
	double fiu_half = measure(loop_fiu, "bench/half");
	printf("%-45s %10.1f\n", "libfiu fiu_fail(), nothing enabled", fiu_none);
	printf("%-45s %10.1f\n", "libfiu fiu_fail(), point enabled", fiu_on);
	printf("%-45s %10.1f\n", "libfiu fiu_fail(), enabled at 50%", fiu_half);
#else
	printf("%-45s %10s\n", "libfiu fiu_fail()", "not built");
#endif
	printf("%-45s %10.1f us\n", "load one category of 100 lines", load);
	printf("%-45s %10.1f bytes\n", "heap per trigger line", heap);
	char many_name[64];
	snprintf(many_name, sizeof(many_name), "%u categories, first pass, per call", many.count);
	printf("%-45s %10.2f us (CPU %.2f us)\n", many_name, many.first_ns / 1e3,
	       many.first_cpu_ns / 1e3);
	snprintf(many_name, sizeof(many_name), "%u categories, second pass, per call", many.count);
	printf("%-45s %10.2f us (CPU %.2f us)\n", many_name, many.second_ns / 1e3,
	       many.second_cpu_ns / 1e3);
	snprintf(many_name, sizeof(many_name), "%u files, a load's system calls alone",
	         many.syscalls_files);
	printf("%-45s %10.2f us (%.1f x the second pass)\n", many_name, many.syscalls_ns / 1e3,
	       many.syscalls_ns / many.second_ns);
	if (many.watches_refused)
		printf("  (%u of those watches were refused: the figure is too low)\n",
		       many.watches_refused);

	printf("\ntargets\n");
	verdict("disabled / floor (<= 1.5)", disabled_ns / floor_ns, 1.5, "x");
	verdict("disabled, out-of-line call / floor (<= 1.5)", disabled_call_ns / floor_ns, 1.5,
	        "x");
	/* Strict mode's targets cover the two-thread row too. */
	for (size_t i = 0; i <= nrows; i++) {
		const struct row *r = i < nrows ? &rows[i] : &two;
		char what[96];
		if (r->has_naive) {
			snprintf(what, sizeof(what), "strict, %s: strict / naive (<= 0.1)",
			         r->name);
			verdict(what, r->strict / r->naive, 0.1, "x");
		}
		if (fiu_none > 0) {
			snprintf(what, sizeof(what), "strict, %s: / libfiu (<= 1)", r->name);
			verdict(what, r->strict / fiu_none, 1.0, "x");
		}
		snprintf(what, sizeof(what), "strict, %s: / floor (aim <= 3)", r->name);
		verdict(what, r->strict / (i < nrows ? floor_ns : floor_two_ns), 3.0, "x");
		snprintf(what, sizeof(what), "ring off, %s: / inotify read (<= 1.3)", r->name);
		verdict(what, r->strict_off / inotify_ns, 1.3, "x");
		if (fiu_none > 0 && i < nrows) {
			snprintf(what, sizeof(what), "relaxed, %s: / libfiu (<= 1, aim 0.33)",
			         r->name);
			verdict(what, r->relaxed / fiu_none, 1.0, "x");
		}
	}
	verdict("1000 x 100 lookup / small active, relaxed (<= 2)",
	        rows[5].relaxed / rows[3].relaxed, 2.0, "x");
	verdict("1000 x 100 lookup / small active, strict (<= 2)", rows[5].strict / rows[3].strict,
	        2.0, "x");
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char what[96];
		const char *name = rows[pairs[i].new_row].name;
		snprintf(what, sizeof(what), "%s: machine-wide / old, strict (<= 1.2)", name);
		verdict(what, pair_ns[i][0] / pair_ns[i][1], 1.2, "x");
		snprintf(what, sizeof(what), "%s: machine-wide / old, relaxed (<= 1.2)", name);
		verdict(what, pair_ns[i][2] / pair_ns[i][3], 1.2, "x");
	}
#ifdef HAVE_LIBFIU
	verdict("relaxed, feature active / libfiu point enabled (<= 1)", rows[3].relaxed / fiu_on,
	        1.0, "x");
#endif
	/* A literal call site: a quiet point costs a few times an empty call,
	 * an active one no more than libfiu's enabled point; each judged
	 * against its baseline measured in turn with it. */
	for (size_t i = 0; i < 4; i++) {
		for (int m = 0; m < 2; m++) {
			char what[112];
#ifndef HAVE_LIBFIU
			if (i == 3)
				continue;
#endif
			snprintf(what, sizeof(what), "literal site, %s, %s: / %s",
			         m ? "relaxed" : "strict", rows[i].name,
			         i < 3 ? "floor (<= 3)" : "libfiu point enabled (<= 1)");
			verdict(what, against[i][m][0] / against[i][m][1], i < 3 ? 3.0 : 1.0, "x");
		}
	}
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		for (int m = 0; m < 2; m++) {
			char what[112];
			snprintf(what, sizeof(what),
			         "wrench_error / wrench_is_active, %s, %s (<= 1.1)",
			         m ? "relaxed" : "strict", errors[i].name);
			verdict(what, error_ns[i][m][0] / error_ns[i][m][1], 1.1, "x");
		}
	}
	verdict("load one category of 100 lines (< 1000 us)", load, 1000, "us");
	verdict("heap per trigger line (< 200 bytes)", heap, 200, "B");
	verdict("2 threads / 1 thread, relaxed (<= 1.5)", two.relaxed / rows[3].relaxed, 1.5, "x");
	verdict("2 threads / 1 thread, strict, CPU time (<= 1.5)", cpu_two / cpu_one, 1.5, "x");
	verdict("many categories: first pass / second pass (<= 10)", many.first_ns / many.second_ns,
	        10, "x");
	verdict("many categories, CPU time: first / second pass (<= 10)",
	        many.first_cpu_ns / many.second_cpu_ns, 10, "x");
	printf("\n(active calls: %lu)\n", sink);
	return 0;
}
