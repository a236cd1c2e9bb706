/*
 * An agent that reads a trigger file while `wrench set` and `wrench unset`
 * rewrite it, for test_cli.sh: it calls wrench_is_active() in a tight loop
 * and fails if it ever sees a torn or wrongly-permissioned file.
 *
 * Usage: reader DIR CATEGORY FEATURE SECONDS [TOGGLED]
 *        reader --sequence N DIR CATEGORY FEATURE
 *
 * The file under test is many valid lines followed by FEATURE alone, so
 * FEATURE must be active on every call; the writer only adds and removes
 * the line for TOGGLED, which set appends after FEATURE's line. That makes
 * each kind of unsafe write visible:
 * - a file read while it is being written (truncated, or written in place)
 *   is a prefix of the new contents; the padding before FEATURE is large,
 *   so almost every prefix lacks FEATURE's line and the call answers false;
 *   a prefix cut inside a padding line also often parses badly (ERROR);
 * - a file briefly missing (removed, then written again) answers false;
 * - a file briefly group- or world-writable (the writer runs under umask
 *   000, so a file created with 0666 and chmod'ed later shows), or owned
 *   by another user, is refused with an ERROR and answers false.
 * Parse and trust problems are logged at ERROR, so a logger counts them.
 *
 * Runs for SECONDS, or until SIGTERM or SIGINT. Prints "ready" once the
 * first call answered, then at exit one line of counts; with TOGGLED, also
 * how often TOGGLED was seen active and inactive, so the caller can check
 * that the reader really ran while the file changed, and as it runs "seen
 * toggled on" and "seen toggled off" the first time each is seen, so the
 * caller can go on changing the file until then. Exits 0 when FEATURE
 * was active on every call and no ERROR was logged, else 1; 2 on bad usage.
 *
 * With --sequence, it makes N calls and prints one line per call, 1 when
 * the call answered true and 0 otherwise: what an agent does, to compare
 * with what `wrench eval` says it would do (with the same WRENCH_SEED).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wrench.h"

/* The first few messages are kept for the report; the rest only counted. */
#define KEPT_MESSAGES 5

struct log_count {
	atomic_ulong errors;
	char kept[KEPT_MESSAGES][256];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void count_errors(enum wrench_log_level level, const char *message, void *ctx)
{
	struct log_count *count = ctx;

	/* WARN "fired" lines come on every call and say nothing wrong. */
	if (level != WRENCH_LOG_ERROR)
		return;
	unsigned long n = atomic_fetch_add(&count->errors, 1);
	if (n < KEPT_MESSAGES)
		snprintf(count->kept[n], sizeof(count->kept[n]), "%s", message);
}

/* Prints LINE at once: the caller waits for it. */
static void said(const char *line)
{
	printf("%s\n", line);
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints what N calls answer, one line each. */
static int print_sequence(int argc, char **argv)
{
	if (argc != 6 || atol(argv[2]) <= 0 || wrench_set_dir(argv[3]) != 0) {
		fprintf(stderr, "usage: reader --sequence N DIR CATEGORY FEATURE\n");
		return 2;
	}
	for (long i = atol(argv[2]); i > 0; i--)
		printf("%d\n", wrench_is_active(argv[4], argv[5]) ? 1 : 0);
	return 0;
}

int main(int argc, char **argv)
{
	static struct log_count count;
	unsigned long calls = 0, misses = 0, toggled_on = 0, toggled_off = 0;
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "--sequence") == 0)
		return print_sequence(argc, argv);
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: reader DIR CATEGORY FEATURE SECONDS [TOGGLED]\n");
		return 2;
	}
	const char *category = argv[2], *feature = argv[3];
	const char *toggled = argc == 6 ? argv[5] : NULL;
	double seconds = atof(argv[4]);
	if (wrench_set_dir(argv[1]) != 0 || seconds <= 0) {
		fprintf(stderr, "reader: bad directory %s or duration %s\n", argv[1], argv[4]);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	wrench_set_logger(count_errors, &count);

	double end = now() + seconds;
	while (!stop && now() < end) {
		if (!wrench_is_active(category, feature))
			misses++;
		if (toggled && wrench_is_active(category, toggled)) {
			if (toggled_on++ == 0)
				said("seen toggled on");
		} else if (toggled && toggled_off++ == 0) {
			said("seen toggled off");
		}
		if (calls++ == 0)
			said("ready");
	}
	/* No message can arrive once the logger is replaced. */
	wrench_set_logger(NULL, NULL);

	unsigned long errors = atomic_load(&count.errors);
	printf("calls=%lu misses=%lu errors=%lu toggled_on=%lu toggled_off=%lu\n", calls, misses,
	       errors, toggled_on, toggled_off);
	for (unsigned long i = 0; i < errors && i < KEPT_MESSAGES; i++)
		printf("error: %s\n", count.kept[i]);
	return misses == 0 && errors == 0 ? 0 : 1;
}
