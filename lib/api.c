/*
 * The public entry points: the global switch, argument checks, and the
 * once-only setup that every entry point runs before touching any state.
 *
 * Nothing runs at load time: an agent that never calls the library pays
 * nothing, and the environment is read at the first call, when the agent
 * has had its chance to set it.
 */
#include <pthread.h>

#include "internal.h"

/* The switch, exported for the inline check in wrench.h. Relaxed atomic
 * accesses are enough: it orders nothing else, and a disabled call must
 * cost one load and no system call. */
WRENCH_EXPORT unsigned char wrench__switch = 1;

static bool switch_is_on(void)
{
	return __atomic_load_n(&wrench__switch, __ATOMIC_RELAXED);
}

/* The first bad argument in a process is an ERROR; repeats in a hot loop
 * are DEBUG so that they cannot flood the log. */
static atomic_bool told_bad_argument;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Every lock is taken around fork(), in the order the library nests them,
 * so that the child finds them free and the state they guard whole. */
static void fork_prepare(void)
{
	wrench__query_atfork_prepare();
	wrench__watch_atfork_prepare();
	wrench__view_atfork_prepare();
	wrench__log_atfork_prepare();
	wrench__cache_atfork_prepare();
}

static void fork_parent(void)
{
	wrench__cache_atfork_parent();
	wrench__log_atfork_parent();
	wrench__view_atfork_parent();
	wrench__watch_atfork_parent();
	wrench__query_atfork_parent();
}

static void fork_child(void)
{
	wrench__random_atfork_child();
	wrench__state_atfork_child();
	wrench__cache_atfork_child();
	wrench__log_atfork_child();
	wrench__view_atfork_child();
	wrench__watch_atfork_child();
	wrench__query_atfork_child();
}

/* Set once init_once has run: the hot path skips pthread_once. */
static atomic_bool initialized;

static void init_once(void)
{
	wrench__log_init_from_env();
	wrench__cache_init();
	wrench__watch_init_from_env();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	atomic_store_explicit(&initialized, true, memory_order_release);
}

void wrench__init(void)
{
	pthread_once(&once, init_once);
}

static bool bad_argument(const char *category, const char *feature)
{
	const char *problem = NULL;

	if (!category)
		problem = "a NULL category";
	else if (!feature)
		problem = "a NULL feature";
	else if (!wrench__category_is_valid(category))
		problem = "an invalid category (it must be one file name: not empty, not ., .. "
		          "or " WRENCH_STATE_DIR ", no /, at most NAME_MAX bytes)";
	if (!problem)
		return false;
	bool first = !atomic_exchange(&told_bad_argument, true);
	wrench__log(first ? WRENCH_LOG_ERROR : WRENCH_LOG_DEBUG,
	            "wrench_is_active(\"%.64s\", \"%.64s\") was given %s; it answers false",
	            category ? category : "(null)", feature ? feature : "(null)", problem);
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
