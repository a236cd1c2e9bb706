/*
 * libwrench: failure points that stay in the code, switched on by trigger files.
 *
 * Product code calls wrench_is_active() at a failure point. It answers true
 * only when a trusted trigger file names the point (see wrench(5)); on a
 * machine without trigger files it answers false and does nothing else.
 *
 * The header has two parts: what product code calls at a failure point, and
 * what tests and tools call to control the library. Every function is
 * thread-safe. The full manual is wrench(3).
 */
#ifndef WRENCH_H
#define WRENCH_H

#include <stdint.h>

#ifndef __cplusplus
#include <stdbool.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WRENCH_EXPORT __attribute__((visibility("default")))
#else
#define WRENCH_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- At a failure point ------------------------------------------------ */

/*
 * Answers whether the failure point FEATURE of CATEGORY should fail now:
 * true when a line of the trusted trigger file <dir>/CATEGORY names FEATURE
 * and fires on this call. Directives on the line may instead make the call
 * sleep (slow=) or kill the process (kill). Any error (NULL or invalid
 * argument, missing or untrusted file, bad line) answers false and, where a
 * user would want to know, logs why. Never crashes or blocks, except for a
 * slow directive. With the global switch off it makes no system call.
 */
WRENCH_EXPORT bool wrench_is_active(const char *category, const char *feature);

/*
 * What a failure point that fires says of its failure, filled by
 * wrench_fault(). The space after the fields is reserved: later versions
 * tell more there without changing the struct's size, and this version
 * zeroes it when a point fires.
 */
#define WRENCH_VALUE_MAX 255
struct wrench_fault {
	/* The errno the line asks the caller to pretend (errno=), or EIO when
	 * it names none; 0 when the point does not fire. Not "errno", which
	 * <errno.h> makes a macro. */
	int errnum;
	/* The line's value= as text, decoded, NUL-terminated; "" when it has
	 * none or the point does not fire. */
	char value[WRENCH_VALUE_MAX + 1];
	uint64_t wrench__reserved[8];
};

/* What wrench_fault() leaves in OUT (may be NULL) when the point does not
 * fire, here and in the library alike: nothing else is written. */
static inline void wrench__fault_clear(struct wrench_fault *out)
{
	if (out) {
		out->errnum = 0;
		out->value[0] = '\0';
	}
}

/*
 * The same question as wrench_is_active(), answered as an error number:
 * 0 when the point does not fire (and on any error, as there), else the
 * errno of the line that fired (errno=), or EIO when it names none. One
 * call is one decision, counted once, as in wrench_is_active(). Typical:
 *     if ((err = wrench_error("disk", "write"))) { errno = err; return -1; }
 */
WRENCH_EXPORT int wrench_error(const char *category, const char *feature);

/*
 * The same question as wrench_is_active(), with what the line that fired
 * says: when the point fires, returns true and fills OUT (errnum, and a
 * copy of the value); else returns false and sets OUT->errnum to 0 and
 * OUT->value to "". OUT may be NULL. Writes nothing past *OUT.
 */
WRENCH_EXPORT bool wrench_fault(const char *category, const char *feature,
                                struct wrench_fault *out);

/*
 * The global switch itself, exported so that the check below is inline: a
 * disabled failure point then costs a load and a test, not a call. Change
 * it only with wrench_set_enabled().
 */
WRENCH_EXPORT extern unsigned char wrench__switch;

/*
 * A call site's record, made by the library at the site's first call and
 * kept in the caller's static storage: the names made once (measured,
 * hashed, checked) and the answer the site last got with the state it was
 * valid for. Its layout is the library's own; it is all zeroes until then.
 * Only the macro below makes one.
 */
struct wrench__site {
	uint64_t wrench__private[16];
}
#if defined(__GNUC__) || defined(__clang__)
__attribute__((aligned(32)))
#endif
;

/*
 * The same question as wrench_is_active(), asked from the call site SITE,
 * which CATEGORY and FEATURE, string literals, never change for. Called by
 * the macro below only.
 */
WRENCH_EXPORT bool wrench__site_is_active(struct wrench__site *site, const char *category,
                                          const char *feature);

/*
 * wrench_error() and wrench_fault() asked from the call site SITE: 0 when
 * the point does not fire, else the line's errno, with OUT (may be NULL)
 * filled as wrench_fault() does. Two entry points, so that a quiet
 * wrench_error() tests nothing wrench_is_active() does not. Called by the
 * macros below only.
 */
WRENCH_EXPORT int wrench__site_error(struct wrench__site *site, const char *category,
                                     const char *feature);
WRENCH_EXPORT int wrench__site_fault(struct wrench__site *site, const char *category,
                                     const char *feature, struct wrench_fault *out);

/*
 * Defining WRENCH_NO_FAULTS before including this header compiles every
 * failure point out: wrench_is_active(c, f) becomes a constant false. Its
 * arguments are still evaluated, once, and still type-checked.
 *
 * Otherwise, with GCC or Clang, wrench_is_active(c, f) checks the switch
 * inline before calling the library. Where both names are string literals
 * (known at compile time, down to their contents), the call also gets a
 * record of its own (struct wrench__site, in static storage), and a quiet
 * failure point answers from it without a system call; other names take
 * the ordinary path. The record is a static variable: a call in an inline
 * function that is not static is compiled the ordinary way only if
 * WRENCH_NO_SITES is defined (C forbids such a variable there).
 * (wrench_is_active)(c, f) always calls the function itself.
 * wrench_error(c, f) and wrench_fault(c, f, out) are made the same way
 * (a constant 0 and false with WRENCH_NO_FAULTS, OUT then cleared).
 *
 * In C, each call also leaves a record of its two names (struct
 * wrench__point_record) in the section wrench_points of the object, with
 * or without WRENCH_NO_SITES: data written by the compiler, nothing run,
 * so that `wrench points --binary` can list the literal points of a
 * program or library. Names computed at run time leave an empty record,
 * which the reader skips. Not in C++: g++ puts the statics of an inline
 * function in a group of their own and refuses to share a section with
 * them ("section type conflict").
 */
#ifdef WRENCH_NO_FAULTS
static inline bool wrench__no_faults(const char *category, const char *feature)
{
	(void)category;
	(void)feature;
	return false;
}
static inline int wrench__no_error(const char *category, const char *feature)
{
	(void)category;
	(void)feature;
	return 0;
}
static inline bool wrench__no_fault(const char *category, const char *feature,
                                    struct wrench_fault *out)
{
	(void)category;
	(void)feature;
	wrench__fault_clear(out);
	return false;
}
#define wrench_is_active(category, feature)  wrench__no_faults((category), (feature))
#define wrench_error(category, feature)      wrench__no_error((category), (feature))
#define wrench_fault(category, feature, out) wrench__no_fault((category), (feature), (out))
#elif defined(__GNUC__) || defined(__clang__)
#ifndef __cplusplus
/* A failure point's names, as the compiler knows them; read from the file
 * only, never at run time. */
struct wrench__point_record {
	const char *wrench__category;
	const char *wrench__feature;
};
/* Kept by the linker's --gc-sections, though nothing refers to it. */
#ifdef __has_attribute
#if __has_attribute(retain)
#define WRENCH__RETAIN retain,
#endif
#endif
#ifndef WRENCH__RETAIN
#define WRENCH__RETAIN
#endif
/* The name when the compiler knows it, else "" (GCC and Clang accept a
 * name known only at run time here, unevaluated). "" rather than a null
 * pointer: every record then holds addresses to relocate, and under -fPIC
 * gets the same section flags as the others. Const, so that it may sit in
 * an inline function that is not static; aligned to its size, so that
 * records lie end to end. */
#define wrench__record_name(s) (__builtin_constant_p(s) ? (const char *)(s) : "")
#define wrench__point_record(category, feature)                                                    \
	static const struct wrench__point_record wrench__record_                                   \
	        __attribute__((section("wrench_points"), used,                                     \
	                       WRENCH__RETAIN aligned(2 * sizeof(const char *)))) = {              \
	                wrench__record_name(category), wrench__record_name(feature)}
#else
#define wrench__point_record(category, feature) (void)0
#endif
/* SITE: the call site's record, or NULL for names computed at run time. */
static inline bool wrench__site_switched_on(struct wrench__site *site, const char *category,
                                            const char *feature)
{
	if (!__atomic_load_n(&wrench__switch, __ATOMIC_RELAXED))
		return false;
	if (site)
		return wrench__site_is_active(site, category, feature);
	return (wrench_is_active)(category, feature);
}
/* Both the address and the first byte known at compile time: a string
 * literal (or a constant the compiler can read), never a buffer that can
 * change. Nothing here is evaluated by GCC; clang at -O0 emits the
 * operands (with their sanitizer checks), so there a null pointer reads
 * "" instead. */
#ifdef __clang__
#define wrench__literal(s)                                                                         \
	(__builtin_constant_p(s) &&                                                                \
	 __builtin_constant_p(((const char *)(s) ? (const char *)(s) : "")[0]))
#else
#define wrench__literal(s) (__builtin_constant_p(s) && __builtin_constant_p(((const char *)(s))[0]))
#endif
/* The same for wrench_error() and wrench_fault(): OUT may be NULL. */
static inline int wrench__site_error_on(struct wrench__site *site, const char *category,
                                        const char *feature, struct wrench_fault *out)
{
	if (!__atomic_load_n(&wrench__switch, __ATOMIC_RELAXED)) {
		wrench__fault_clear(out);
		return 0;
	}
	if (site)
		return out ? wrench__site_fault(site, category, feature, out)
		           : wrench__site_error(site, category, feature);
	if (out)
		return (wrench_fault)(category, feature, out) ? out->errnum : 0;
	return (wrench_error)(category, feature);
}
/* The call site's record when both names are literals, else NULL. */
#ifdef WRENCH_NO_SITES
#define wrench__site_of(category, feature) ((struct wrench__site *)0)
#else
#define wrench__site_of(category, feature)                                                         \
	(wrench__literal(category) && wrench__literal(feature) ? __extension__({                   \
		static struct wrench__site wrench__site_;                                          \
		&wrench__site_;                                                                    \
	})                                                                                         \
	                                                       : (struct wrench__site *)0)
#endif
/* The record stays out of the conditional above: GCC at -O0 drops a branch
 * it knows is never taken, statics and all. */
#define wrench_is_active(category, feature)                                                        \
	__extension__({                                                                            \
		wrench__point_record(category, feature);                                           \
		wrench__site_switched_on(wrench__site_of(category, feature), (category),           \
		                         (feature));                                               \
	})
#define wrench_error(category, feature)                                                            \
	__extension__({                                                                            \
		wrench__point_record(category, feature);                                           \
		wrench__site_error_on(wrench__site_of(category, feature), (category), (feature),   \
		                      (struct wrench_fault *)0);                                   \
	})
#define wrench_fault(category, feature, out)                                                       \
	__extension__({                                                                            \
		wrench__point_record(category, feature);                                           \
		wrench__site_error_on(wrench__site_of(category, feature), (category), (feature),   \
		                      (out)) != 0;                                                 \
	})
#endif

/* ---- Control, for tests and tools -------------------------------------- */

/*
 * The global switch. Turns every failure point on (true, the initial state)
 * or off (false). Returns the previous value. Unit-test suites turn it off
 * in their setup so that stray trigger files never change their results.
 */
WRENCH_EXPORT bool wrench_set_enabled(bool enabled);

/* Answers the current state of the global switch. */
WRENCH_EXPORT bool wrench_is_enabled(void);

/*
 * Makes PATH, an absolute path, the directory of trigger files. NULL goes
 * back to the default: $WRENCH_DIR (ignored in secure-execution mode) or
 * the built-in /var/lib/juju/wrench. Forgets every cached file and the
 * counters of scope=process lines; machine-wide counters live in the
 * directory and go on. Returns 0, -EINVAL for an empty or relative path or
 * one with a ".." component, or -ENAMETOOLONG.
 */
WRENCH_EXPORT int wrench_set_dir(const char *path);

/*
 * Answers the directory of trigger files in use. The string stays valid
 * until the next wrench_set_dir() call. Answers NULL only when the default
 * is unusable ($WRENCH_DIR set to a relative path): every failure point is
 * then inactive.
 */
WRENCH_EXPORT const char *wrench_get_dir(void);

/*
 * Makes chance decisions reproducible: with a seed, the same trigger file
 * gives the same sequence of decisions at each line, whatever other lines or
 * threads do. NULL goes back to the default: $WRENCH_SEED if set, else the
 * system's random source. Forgets the counters of scope=process lines, as
 * wrench_set_dir() does, so that their sequences start from the beginning;
 * machine-wide counters go on (reset them with `wrench reset`).
 */
WRENCH_EXPORT void wrench_set_seed(const uint64_t *seed);

/*
 * Chooses how soon a change to the trigger files is seen. 0 (strict, the
 * default, or $WRENCH_RECHECK_MS): by the next call, in every thread,
 * with no system call per call where the kernel offers io_uring, else one
 * cheap system call per call. MS > 0 (relaxed, for
 * hot paths): within MS milliseconds (plus the clock's granularity), and
 * a call in the steady state makes no system call at all. Returns 0.
 */
WRENCH_EXPORT int wrench_set_recheck_ms(unsigned ms);

enum wrench_log_level {
	WRENCH_LOG_ERROR,
	WRENCH_LOG_WARN,
	WRENCH_LOG_INFO,
	WRENCH_LOG_DEBUG,
};

/* Receives one message: a single line, without "wrench: " or newline. */
typedef void wrench_log_fn(enum wrench_log_level level, const char *message, void *ctx);

/*
 * Sends messages to FN, with CTX passed back; NULL goes back to the default
 * sink (one line each on stderr, prefixed "wrench: "). Only messages at the
 * level chosen by $WRENCH_LOG (error, warn, info, debug or off; default
 * warn) or more severe are delivered. Once this returns, the previous
 * logger is no longer called (deliveries in flight on other threads are
 * waited for), so its CTX may be freed. No lock is held while FN runs.
 */
WRENCH_EXPORT void wrench_set_logger(wrench_log_fn *fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* WRENCH_H */
