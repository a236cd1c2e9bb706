/*
 * Logging: the level filter, the default stderr sink and the user's logger.
 *
 * A logger can be replaced while other threads are delivering messages to
 * it. wrench_set_logger() promises that the previous logger is never called
 * once it has returned, so that the caller may free its context. So each
 * logger is a reference-counted sink, referenced by every delivery in
 * flight, and wrench_set_logger() waits for the old one's deliveries to
 * finish. No lock is held while a logger runs or while anybody waits, so a
 * logger may call the library, replace the logger, or fork.
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

/* A user's logger; refs counts its deliveries in flight, plus one while
 * it is the logger in use. The last reference frees it. */
struct sink {
	wrench_log_fn *fn;
	void *ctx;
	_Atomic unsigned refs;
};

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sink *current_sink; /* NULL: the default stderr sink */

/* The sink this thread is delivering to. A message logged from inside a
 * logger (which called the library, and a failure point fired) goes to
 * stderr instead: calling the logger again could recurse without end. */
static WRENCH_TLS struct sink *delivering;

WRENCH_TLS bool wrench__in_call;

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

static void sink_put(struct sink *sink)
{
	if (atomic_fetch_sub(&sink->refs, 1) == 1)
		free(sink);
}

static void deliver(enum wrench_log_level level, const char *message)
{
	if (delivering) {
		write_to_stderr(level, message);
		return;
	}
	pthread_mutex_lock(&sink_lock);
	struct sink *sink = current_sink;
	if (sink)
		atomic_fetch_add(&sink->refs, 1);
	pthread_mutex_unlock(&sink_lock);

	if (!sink) {
		write_to_stderr(level, message);
		return;
	}
	delivering = sink;
	bool in_call = wrench__in_call;
	wrench__in_call = false;
	sink->fn(level, message, sink->ctx);
	wrench__in_call = in_call;
	delivering = NULL;
	sink_put(sink);
}

/* Answers whether the byte at S starts a control character: C0, DEL, or
 * C1 (U+0080 to U+009F) as UTF-8 spells it; returns its length, or 0. */
static size_t control_length(const unsigned char *s)
{
	if (*s < 0x20 || *s == 0x7f)
		return 1;
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	return 0;
}

/*
 * Copies RAW into OUT (of WRENCH_MAX_MESSAGE bytes) as one line that a
 * terminal shows as it is: a category, a feature or a file name may come
 * from the agent's input, and an escape sequence in it must not reach an
 * operator's terminal or forge a line of its own. A line break or a tab
 * becomes a space, as line breaks always have; every other control
 * character becomes \xNN, byte by byte.
 */
static void escape_controls(const char *raw, char *out)
{
	const unsigned char *s = (const unsigned char *)raw;
	size_t n = 0;

	for (; *s; s++) {
		size_t len = control_length(s);
		if (len == 0 || *s == '\n' || *s == '\r' || *s == '\t') {
			if (n + 1 >= WRENCH_MAX_MESSAGE)
				break;
			out[n++] = len ? ' ' : (char)*s;
			continue;
		}
		if (n + 4 * len >= WRENCH_MAX_MESSAGE)
			break;
		for (size_t i = 0; i < len; i++, n += 4)
			snprintf(out + n, 5, "\\x%02x", s[i]);
		s += len - 1;
	}
	out[n] = '\0';
}

void wrench__log(enum wrench_log_level level, const char *fmt, ...)
{
	char raw[WRENCH_MAX_MESSAGE], message[WRENCH_MAX_MESSAGE];
	va_list ap;

	if (!wrench__log_wanted(level))
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_controls(raw, message);
	deliver(level, message);
}

void wrench__log_set_sink(wrench_log_fn *fn, void *ctx)
{
	struct sink *sink = NULL;

	if (fn && (sink = malloc(sizeof(*sink))) != NULL) {
		sink->fn = fn;
		sink->ctx = ctx;
		atomic_init(&sink->refs, 1);
	} else if (fn) {
		write_to_stderr(WRENCH_LOG_ERROR, "out of memory: messages go to stderr");
	}
	pthread_mutex_lock(&sink_lock);
	struct sink *old = current_sink;
	current_sink = sink;
	pthread_mutex_unlock(&sink_lock);
	if (!old)
		return;

	/* Only deliveries that took the old sink before the swap remain.
	 * A logger replacing itself does not wait for its own delivery,
	 * which then drops the last reference. */
	unsigned own = delivering == old;
	while (atomic_load(&old->refs) > 1 + own)
		nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	sink_put(old);
}

void wrench__log_atfork_prepare(void)
{
	pthread_mutex_lock(&sink_lock);
}

void wrench__log_atfork_parent(void)
{
	pthread_mutex_unlock(&sink_lock);
}

/* In the child only the forking thread exists: deliveries by the other
 * threads will never finish, so they no longer hold the sink. */
void wrench__log_atfork_child(void)
{
	if (current_sink)
		atomic_store(&current_sink->refs, 1 + (delivering == current_sink));
	pthread_mutex_unlock(&sink_lock);
}
