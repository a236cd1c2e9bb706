/*
 * The public entry points: the global switch, argument checks, and the
 * once-only setup that every entry point runs before touching any state.
 *
 * Nothing runs at load time: an agent that never calls the library pays
 * nothing, and the environment is read at the first call, when the agent
 * has had its chance to set it.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* The switch, exported for the inline check in wrench.h. Relaxed atomic
 * accesses are enough: it orders nothing else, and a disabled call must
 * cost one load and no system call. */
WRENCH_EXPORT unsigned char wrench__switch = 1;

static bool switch_is_on(void)
{
	return __atomic_load_n(&wrench__switch, __ATOMIC_RELAXED);
}

/* The bad arguments already logged as an ERROR, by hash: a failure point
 * in a loop logs once, and a program that makes up names cannot grow the
 * memory used (past the table's size, new ones are DEBUG). */
#define TOLD_SLOTS 64
static _Atomic uint64_t told[TOLD_SLOTS];

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Set once init_once has run: the hot path skips pthread_once. */
static atomic_bool initialized;

static void init_once(void)
{
	wrench__log_init_from_env();
	wrench__cache_init();
	wrench__watch_init_from_env();
	pthread_atfork(wrench__fork_prepare, wrench__fork_parent, wrench__fork_child);
	atomic_store_explicit(&initialized, true, memory_order_release);
}

void wrench__init(void)
{
	pthread_once(&once, init_once);
}

static uint64_t hash_name(const char *name, uint64_t h)
{
	unsigned char is_null = name == NULL;

	h = wrench__hash_bytes(&is_null, 1, h);
	return name ? wrench__hash_bytes(name, strlen(name) + 1, h) : h;
}

/* Answers whether this pair of arguments is seen bad for the first time. */
static bool first_time_told(const char *category, const char *feature)
{
	uint64_t h = hash_name(feature, hash_name(category, WRENCH__HASH_START));

	h = h ? h : 1; /* 0 marks a free slot */
	for (size_t i = 0; i < TOLD_SLOTS; i++) {
		_Atomic uint64_t *slot = &told[(h + i) % TOLD_SLOTS];
		uint64_t seen = atomic_load_explicit(slot, memory_order_relaxed);
		if (seen == 0 && atomic_compare_exchange_strong(slot, &seen, h))
			return true;
		if (seen == h)
			return false;
	}
	return false;
}

/* Writes S quoted into OUT, at most its first 64 bytes, every byte that
 * is not printable ASCII as \xHH: a control character or invisible white
 * space in a name is the very thing the reader must see. */
static void quote(const char *s, char *out, size_t len)
{
	size_t n = 0;

	if (!s) {
		snprintf(out, len, "NULL");
		return;
	}
	out[n++] = '"';
	for (size_t i = 0; i < 64 && s[i] && n + 8 < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			n += (size_t)snprintf(out + n, len - n, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			n += (size_t)snprintf(out + n, len - n, "\\x%02x", c);
		else
			out[n++] = (char)c;
	}
	snprintf(out + n, len - n, "%s\"", strnlen(s, 65) > 64 ? "..." : "");
}

/* Writes into BUF why the arguments can never make the call fire; false
 * when they can. */
static bool argument_problem(const char *category, const char *feature, char *buf, size_t len)
{
	const char *problem;

	if (!category)
		snprintf(buf, len, "a NULL category");
	else if (!wrench__category_is_valid(category))
		snprintf(buf, len,
		         "an invalid category (it must be one file name: not empty, not ., .. "
		         "or " WRENCH_STATE_DIR ", no /, at most NAME_MAX bytes)");
	else if ((problem = wrench__category_problem(category)))
		snprintf(buf, len, "a category that %s: no trigger file is read for it", problem);
	else if (!feature)
		snprintf(buf, len, "a NULL feature");
	else if ((problem = wrench__feature_problem(feature)))
		snprintf(buf, len, "a feature that %s: no line of a trigger file can name it",
		         problem);
	else
		return false;
	return true;
}

/* Validates the arguments on the slow path only: the hot path answers
 * from the lines that match, and declines a feature that none does. */
static bool bad_argument(const char *category, const char *feature)
{
	char problem[200], c[300], f[300];

	if (!argument_problem(category, feature, problem, sizeof(problem)))
		return false;
	enum wrench_log_level level =
	        first_time_told(category, feature) ? WRENCH_LOG_ERROR : WRENCH_LOG_DEBUG;
	/* A bad call in a loop is cheap when its repeats are filtered out. */
	if (!wrench__log_wanted(level))
		return true;
	quote(category, c, sizeof(c));
	quote(feature, f, sizeof(f));
	wrench__log(level, "wrench_is_active(%s, %s) was given %s; it answers false", c, f,
	            problem);
	return true;
}

WRENCH_TLS bool wrench__in_call;

static bool answer(const char *category, const char *feature)
{
	bool active;

	/* Once set up, a known failure point is answered at once. */
	bool tried =
	        atomic_load_explicit(&initialized, memory_order_acquire) && category && feature;
	if (tried && wrench__fast_query(category, feature, &active))
		return active;
	wrench__init();
	if (bad_argument(category, feature))
		return false;
	return wrench__query(category, feature, tried);
}

/* Everything but the switch, kept out of line so that the disabled path
 * is a load, a test and a return. */
__attribute__((noinline)) static bool is_active_enabled(const char *category, const char *feature)
{
	/* A signal handler that calls us while this thread is inside a call
	 * would wait for a lock its own thread holds: it gets false instead.
	 * One thread-local byte, no atomic: only this thread touches it; the
	 * signal fences (no instruction) keep the compiler from moving the
	 * stores across the call. */
	if (wrench__in_call)
		return false;
	wrench__in_call = true;
	atomic_signal_fence(memory_order_seq_cst);
	bool active = answer(category, feature);
	atomic_signal_fence(memory_order_seq_cst);
	wrench__in_call = false;
	return active;
}

/* In parentheses: wrench.h makes the name a macro for callers. */
bool(wrench_is_active)(const char *category, const char *feature)
{
	if (__builtin_expect(!switch_is_on(), 0))
		return false;
	return is_active_enabled(category, feature);
}

bool wrench_set_enabled(bool on)
{
	return __atomic_exchange_n(&wrench__switch, on, __ATOMIC_SEQ_CST);
}

bool wrench_is_enabled(void)
{
	return switch_is_on();
}

int wrench_set_dir(const char *path)
{
	wrench__init();
	return wrench__set_dir(path);
}

const char *wrench_get_dir(void)
{
	wrench__init();
	return wrench__get_dir();
}

void wrench_set_seed(const uint64_t *seed)
{
	wrench__init();
	wrench__set_seed(seed);
}

int wrench_set_recheck_ms(unsigned ms)
{
	wrench__init();
	wrench__set_recheck_ms(ms);
	return 0;
}
