/*
 * The public entry points, and the door through which a failure point's
 * names enter the library: checked, measured and hashed once into a
 * struct wrench__point that every layer below takes whole. A literal call
 * site keeps its point (and what it was last answered) in its own static
 * record; names computed at run time are kept per thread, by name. Also
 * the global switch and the once-only setup that every entry point runs
 * before touching any state.
 *
 * Nothing runs at load time: an agent that never calls the library pays
 * nothing, and the environment is read at the first call, when the agent
 * has had its chance to set it.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "quiet.h"

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
	wrench__view_init(wrench__snapshot_hold, wrench__snapshot_put);
	wrench__watch_init_from_env();
	pthread_atfork(wrench__fork_prepare, wrench__fork_parent, wrench__fork_child);
	atomic_store_explicit(&initialized, true, memory_order_release);
}

static void init(void)
{
	if (!atomic_load_explicit(&initialized, memory_order_acquire))
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

/* Logs, once per pair, why the arguments can never make a call fire;
 * false when they can. */
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

/* The door: makes the point of CATEGORY and FEATURE, each measured and
 * hashed once, or answers false (logged) when they can never match. */
static bool make_point(struct wrench__point *p, const char *category, const char *feature)
{
	if (bad_argument(category, feature))
		return false;
	p->category = wrench__name_of(category);
	p->feature = wrench__name_of(feature);
	return true;
}

/* Marks the thread as inside a call: a signal handler that calls the
 * library while this thread is inside a call would wait for a lock its
 * own thread holds, and gets false instead (enter() fails). One
 * thread-local byte, no atomic: only this thread touches it; the signal
 * fences (no instruction) keep the compiler from moving the stores across
 * the call. */
static inline bool enter(void)
{
	if (wrench__in_call)
		return false;
	wrench__in_call = true;
	atomic_signal_fence(memory_order_seq_cst);
	return true;
}

static inline void leave(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	wrench__in_call = false;
}

/* ---- names computed at run time ------------------------------------------ */

/*
 * A thread's memory of the last points it was asked about by name, so that
 * a point asked again is not measured, hashed and checked again: the
 * point made once, and what the view answered. A hit is checked against
 * copies of the names, since a caller may reuse a buffer for other names.
 * Names too long for the copies are made at every call.
 */
#define MEMO_SLOTS 8
#define MEMO_NAME  40

struct memo {
	char category[MEMO_NAME], feature[MEMO_NAME];
	struct wrench__point point; /* its names point into the copies; NULL: empty */
	struct wrench__recall recall;
};

static WRENCH_TLS struct memo memo[MEMO_SLOTS];

/* Copies S into a memo name; false when it does not fit. */
static bool memo_copy(char *to, const char *s, size_t len)
{
	if (len >= MEMO_NAME)
		return false;
	memcpy(to, s, len + 1);
	return true;
}

static bool memo_same(const char *copy, const char *s)
{
	size_t i = 0;
	while (copy[i] && copy[i] == s[i])
		i++;
	return copy[i] == s[i];
}

static struct memo *memo_slot(const char *category, const char *feature)
{
	uintptr_t h = (uintptr_t)category ^ ((uintptr_t)feature >> 3);
	return &memo[(h ^ (h >> 7)) % MEMO_SLOTS];
}

/* Keeps P in M; false when its names do not fit. */
static bool memo_keep(struct memo *m, const struct wrench__point *p)
{
	m->point.category.s = NULL;
	if (!memo_copy(m->category, p->category.s, p->category.len) ||
	    !memo_copy(m->feature, p->feature.s, p->feature.len))
		return false;
	m->point = *p;
	m->point.category.s = m->category;
	m->point.feature.s = m->feature;
	wrench__recall_clear(&m->recall);
	return true;
}

/* A name this thread's memo does not hold: made at the door, kept in the
 * memo when it fits. Out of line: the hot path is a memo hit. */
__attribute__((noinline)) static int answer_new_name(const char *category, const char *feature,
                                                     struct wrench_fault *out)
{
	struct wrench__point point;

	init();
	if (!make_point(&point, category, feature))
		return false;
	/* A call made while another is evaluating (from a logger) must not
	 * change the entry that call may be using. */
	struct memo *m = memo_slot(category, feature);
	if (!wrench__query_nested() && memo_keep(m, &point))
		return wrench__query(&m->point, &m->recall, out);
	return wrench__query(&point, NULL, out);
}

static inline int answer_by_name(const char *category, const char *feature,
                                 struct wrench_fault *out)
{
	/* A memo is only ever filled once the library is set up. */
	if (__builtin_expect(category && feature, 1)) {
		struct memo *m = memo_slot(category, feature);
		if (m->point.category.s && memo_same(m->category, category) &&
		    memo_same(m->feature, feature))
			return wrench__query(&m->point, &m->recall, out);
	}
	return answer_new_name(category, feature, out);
}

/* Everything but the switch: 0, or the errno the line that fired tells,
 * with OUT (may be NULL) filled, the answer of all three questions. Made
 * into each one's answer by a function of its own, out of line so that
 * the disabled path is a load, a test and a return, and each a tail call
 * of its entry point. */
static inline __attribute__((always_inline)) int
answer_enabled(const char *category, const char *feature, struct wrench_fault *out)
{
	if (!enter())
		return 0;
	int errnum = answer_by_name(category, feature, out);
	leave();
	return errnum;
}

__attribute__((noinline)) static bool is_active_enabled(const char *category, const char *feature)
{
	return answer_enabled(category, feature, NULL) != 0;
}

__attribute__((noinline)) static int error_enabled(const char *category, const char *feature)
{
	return answer_enabled(category, feature, NULL);
}

__attribute__((noinline)) static bool fault_enabled(const char *category, const char *feature,
                                                    struct wrench_fault *out)
{
	return answer_enabled(category, feature, out) != 0;
}

/* ---- call sites ------------------------------------------------------------ */

/*
 * The record behind struct wrench__site, in the caller's static storage.
 * The layout is fixed for every binary built against this header: a new
 * one needs a new entry point, so that old binaries keep theirs.
 */
enum { SITE_NEW, SITE_MAKING, SITE_MADE, SITE_BAD };

struct site {
	/* What a quiet call reads, first, in the 32 bytes the header aligns
	 * the record to: never two cache lines. The pointers are the point's
	 * strings, the caller's literals. */
	const char *category, *feature;
	struct wrench__recall recall;
	_Atomic uint32_t made;
	/* The names the site was made with, measured and hashed. Written
	 * once, with the pointers above, before MADE. */
	struct wrench__point point;
};

_Static_assert(sizeof(struct site) <= sizeof(struct wrench__site),
               "a site's record must fit the storage the header gives it");
_Static_assert(_Alignof(struct site) <= _Alignof(struct wrench__site),
               "a site's record must be aligned as the header's storage is");

/* Makes the site's names, once: the first call to reach it wins, and a
 * call that finds it being made takes the ordinary path meanwhile.
 * Returns the site's state. */
static uint32_t make_site(struct site *s, const char *category, const char *feature)
{
	uint32_t made = SITE_NEW;

	if (!atomic_compare_exchange_strong_explicit(&s->made, &made, SITE_MAKING,
	                                             memory_order_acquire, memory_order_acquire))
		return made;
	made = make_point(&s->point, category, feature) ? SITE_MADE : SITE_BAD;
	s->category = category;
	s->feature = feature;
	atomic_store_explicit(&s->made, made, memory_order_release);
	return made;
}

static int answer_at_site(struct site *s, const char *category, const char *feature,
                          struct wrench_fault *out)
{
	init();
	uint32_t made = atomic_load_explicit(&s->made, memory_order_acquire);
	if (made == SITE_NEW)
		made = make_site(s, category, feature);
	/* A site reached with other names (a static record shared by the
	 * inlined copies of a function, say) is no record of theirs. */
	bool ours = (made == SITE_MADE || made == SITE_BAD) && s->category == category &&
	            s->feature == feature;
	if (!ours)
		return answer_by_name(category, feature, out);
	return made == SITE_MADE ? wrench__query(&s->point, &s->recall, out) : 0;
}

/* What the site's record alone can say: that no line names the point in
 * the view that is current, and that the ring saw nothing come in since. */
static inline bool site_steady_quiet(const struct site *s, uint64_t quiet, const char *category,
                                     const char *feature)
{
	return wrench__ring_quiet() &&
	       !atomic_load_explicit(&wrench__hot.retry_at_ms, memory_order_relaxed) &&
	       quiet == atomic_load_explicit(&wrench__hot.view_now, memory_order_acquire) &&
	       s->category == category && s->feature == feature;
}

/* Every other state of a site, made into the answer of each entry point
 * below by a function of its own, out of line: one call deep, as the
 * answer was when it was a bool, and no conversion left after a call. A
 * quiet point (QUIET, its record's serial) that the ring cannot vouch for
 * alone (a retry due, relaxed mode without a ring, a record to check
 * first) is checked against its record before it is evaluated. */
static inline __attribute__((always_inline)) int site_answer(struct site *s, uint64_t quiet,
                                                             const char *category,
                                                             const char *feature,
                                                             struct wrench_fault *out)
{
	if (quiet && wrench__recall_quiet(&s->recall) && s->category == category &&
	    s->feature == feature)
		return 0;
	if (!enter())
		return 0;
	int errnum = answer_at_site(s, category, feature, out);
	leave();
	return errnum;
}

__attribute__((noinline)) static bool site_is_active_slow(struct site *s, uint64_t quiet,
                                                          const char *category, const char *feature)
{
	return site_answer(s, quiet, category, feature, NULL) != 0;
}

__attribute__((noinline)) static int site_error_slow(struct site *s, uint64_t quiet,
                                                     const char *category, const char *feature)
{
	return site_answer(s, quiet, category, feature, NULL);
}

__attribute__((noinline)) static int site_fault_slow(struct site *s, uint64_t quiet,
                                                     const char *category, const char *feature,
                                                     struct wrench_fault *out)
{
	int errnum = site_answer(s, quiet, category, feature, out);
	if (!errnum)
		wrench__fault_clear(out);
	return errnum;
}

/* The steady state of a quiet point: its record says that no line names
 * it in the view that is current, and the ring says that nothing came in
 * since. No lock, no system call, no clock, nothing written: a few loads
 * and compares, which the compiler keeps free of any register saving by
 * leaving everything else to a tail call. A point that some line names
 * is evaluated at every call. */
bool wrench__site_is_active(struct wrench__site *site, const char *category, const char *feature)
{
	struct site *s = (struct site *)site;
	uint64_t quiet = atomic_load_explicit(&s->recall.quiet, memory_order_acquire);

	if (quiet && site_steady_quiet(s, quiet, category, feature))
		return false;
	return site_is_active_slow(s, quiet, category, feature);
}

/* The same steps for wrench_error() and wrench_fault(): a quiet
 * wrench_error() runs the very instructions of a quiet
 * wrench_is_active(). */
int wrench__site_error(struct wrench__site *site, const char *category, const char *feature)
{
	struct site *s = (struct site *)site;
	uint64_t quiet = atomic_load_explicit(&s->recall.quiet, memory_order_acquire);

	if (quiet && site_steady_quiet(s, quiet, category, feature))
		return 0;
	return site_error_slow(s, quiet, category, feature);
}

int wrench__site_fault(struct wrench__site *site, const char *category, const char *feature,
                       struct wrench_fault *out)
{
	struct site *s = (struct site *)site;
	uint64_t quiet = atomic_load_explicit(&s->recall.quiet, memory_order_acquire);

	if (quiet && site_steady_quiet(s, quiet, category, feature)) {
		wrench__fault_clear(out);
		return 0;
	}
	return site_fault_slow(s, quiet, category, feature, out);
}

/* In parentheses: wrench.h makes the name a macro for callers. */
bool(wrench_is_active)(const char *category, const char *feature)
{
	if (__builtin_expect(!switch_is_on(), 0))
		return false;
	return is_active_enabled(category, feature);
}

int(wrench_error)(const char *category, const char *feature)
{
	if (__builtin_expect(!switch_is_on(), 0))
		return 0;
	return error_enabled(category, feature);
}

bool(wrench_fault)(const char *category, const char *feature, struct wrench_fault *out)
{
	if (switch_is_on() && fault_enabled(category, feature, out))
		return true;
	wrench__fault_clear(out);
	return false;
}

bool wrench_set_enabled(bool on)
{
	return __atomic_exchange_n(&wrench__switch, on, __ATOMIC_SEQ_CST);
}

bool wrench_is_enabled(void)
{
	return switch_is_on();
}

void wrench_set_logger(wrench_log_fn *fn, void *ctx)
{
	init();
	wrench__log_set_sink(fn, ctx);
}

/* A new directory: the cache forgets its files, the state its failures
 * (the new directory's counters are tried at once), and the view what it
 * knew. */
int wrench_set_dir(const char *path)
{
	init();
	int rc = wrench__set_dir(path);
	if (rc == 0) {
		wrench__state_forget_failures();
		wrench__watch_reset();
	}
	return rc;
}

const char *wrench_get_dir(void)
{
	init();
	return wrench__get_dir();
}

void wrench_set_seed(const uint64_t *seed)
{
	init();
	wrench__set_seed(seed);
	wrench__watch_reset();
}

int wrench_set_recheck_ms(unsigned ms)
{
	init();
	wrench__set_recheck_ms(ms);
	return 0;
}
