/*
 * Logging: the level filter, the default stderr sink and the user's logger.
 *
 * A logger can be replaced while other threads are delivering messages to
 * it. wrench_set_logger() promises that the previous logger is never called
 * once it has returned, so that the caller may free its context. Deliveries
 * are therefore counted per logger generation (two counters, used in turn),
 * and wrench_set_logger() waits for the old generation to drain. No lock is
 * held while a logger runs, so a logger may itself call the library, and a
 * fork() from inside a logger cannot deadlock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static _Atomic int threshold = WRENCH_LOG_WARN;

/* The logger in use and its generation, read together under sink_lock. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static wrench_log_fn *sink_fn;
static void *sink_ctx;
static unsigned sink_generation;
static _Atomic unsigned in_flight[2];

/* Serialises wrench_set_logger() calls so each drains its own generation. */
static pthread_mutex_t replace_lock = PTHREAD_MUTEX_INITIALIZER;

/* Deliveries this thread has in flight (a logger may log in turn): a
 * logger that replaces the logger must not wait for itself. */
static _Thread_local unsigned own_in_flight[2];

static const char *const level_names[] = {"error", "warning", "info", "debug"};

bool wrench__log_wanted(enum wrench_log_level level)
{
	return (int)level <= atomic_load_explicit(&threshold, memory_order_relaxed);
}

void wrench__set_log_threshold(int value)
{
	atomic_store(&threshold, value);
}

void wrench__log_init_from_env(void)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	const char *value = secure_getenv("WRENCH_LOG");

	if (!value)
		return;
	if (strcasecmp(value, "off") == 0) {
		wrench__set_log_threshold(-1);
		return;
	}
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(value, names[i]) == 0) {
			wrench__set_log_threshold(i);
			return;
		}
	}
	wrench__log(WRENCH_LOG_ERROR,
	            "WRENCH_LOG=\"%.64s\" is not one of error, warn, info, debug, off; using warn",
	            value);
}

/* One write() per message, so lines from several threads never interleave. */
static void write_to_stderr(enum wrench_log_level level, const char *message)
{
	char line[WRENCH_MAX_MESSAGE + 32];
	int n = snprintf(line, sizeof(line) - 1, "wrench: %s: %s", level_names[level], message);

	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t written;
	do
		written = write(STDERR_FILENO, line, (size_t)n);
	while (written < 0 && errno == EINTR);
}

static void deliver(enum wrench_log_level level, const char *message)
{
	pthread_mutex_lock(&sink_lock);
	wrench_log_fn *fn = sink_fn;
	void *ctx = sink_ctx;
	unsigned generation = sink_generation;
	if (fn)
		atomic_fetch_add(&in_flight[generation & 1], 1);
	pthread_mutex_unlock(&sink_lock);

	if (!fn) {
		write_to_stderr(level, message);
		return;
	}
	own_in_flight[generation & 1]++;
	fn(level, message, ctx);
	own_in_flight[generation & 1]--;
	atomic_fetch_sub(&in_flight[generation & 1], 1);
}

void wrench__log(enum wrench_log_level level, const char *fmt, ...)
{
	char message[WRENCH_MAX_MESSAGE];
	va_list ap;

	if (!wrench__log_wanted(level))
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	/* A message is one line, whatever a file name contained. */
	for (char *c = message; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	deliver(level, message);
}

void wrench_set_logger(wrench_log_fn *fn, void *ctx)
{
	wrench__init();
	pthread_mutex_lock(&replace_lock);
	pthread_mutex_lock(&sink_lock);
	unsigned old = sink_generation++;
	sink_fn = fn;
	sink_ctx = ctx;
	pthread_mutex_unlock(&sink_lock);

	/* Deliveries that copied the old logger finish before we return; a
	 * logger replacing itself only waits for the other threads. */
	while (atomic_load(&in_flight[old & 1]) > own_in_flight[old & 1])
		nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	pthread_mutex_unlock(&replace_lock);
}

void wrench__log_atfork_prepare(void)
{
	pthread_mutex_lock(&sink_lock);
}

void wrench__log_atfork_parent(void)
{
	pthread_mutex_unlock(&sink_lock);
}

/* In the child only the forking thread exists: deliveries of other
 * threads will never finish, and a replace in progress belonged to one. */
void wrench__log_atfork_child(void)
{
	pthread_mutex_unlock(&sink_lock);
	pthread_mutex_init(&replace_lock, NULL);
	atomic_store(&in_flight[0], own_in_flight[0]);
	atomic_store(&in_flight[1], own_in_flight[1]);
}
