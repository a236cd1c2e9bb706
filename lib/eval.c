/*
 * Evaluation of the lines that name a feature: which fire, and what they do.
 *
 * Counters are atomics updated without a lock, so threads at the same
 * failure point see exact totals ("times=100" fires exactly 100 times over
 * all threads) without serialising on a mutex. They are a slot of the
 * shared state file (state.c) or the line's own: the same operations on
 * memory either way, and no system call.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "internal.h"

/* Later fires of a line are summed into one WARN per this period; 0 logs
 * every fire (tests of the loggers set it). */
static _Atomic int64_t fire_log_period_ns = 10 * 1000000000LL;

void wrench__set_fire_log_period_ns(int64_t ns)
{
	atomic_store(&fire_log_period_ns, ns);
}

/* This CPU's shard of a line no count decides. Threads on one CPU may
 * share it (they still add atomically); threads on two never fight over
 * one cache line, which costs a contended point ten times its price.
 * glibc reads the CPU from the thread's rseq area: no system call. */
static struct wrench__shard *shard_of(const struct wrench__rule *rule)
{
	int cpu = sched_getcpu();
	return rule->shard + (size_t)(cpu > 0 ? cpu % WRENCH__SHARDS : 0) * WRENCH__WINDOW_SLOTS;
}

/* A line whose decision depends on no count: the shard counts it. */
static bool counted_apart_fires(const struct wrench__rule *rule)
{
	struct wrench__shard *s = shard_of(rule);

	atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
	if (rule->has_chance && (wrench__draw(rule, false, 0) >> 11) >= rule->chance_threshold)
		return false;
	atomic_fetch_add_explicit(&s->fires, 1, memory_order_relaxed);
	return true;
}

bool wrench__rule_fires(struct wrench__rule *rule, bool seeded)
{
	struct wrench__counters *c = rule->counters;

	/* Only lines with until= read a clock, the vDSO's coarse one. */
	if (rule->until && wrench__coarse_now_ns() / 1000000000 >= rule->until)
		return false;
	/* Seeded draws are numbered by the slot's count of draws. */
	if (rule->shard && !(seeded && rule->has_chance))
		return counted_apart_fires(rule);
	/* A line that a count decides, without its machine-wide counters:
	 * it fails closed (state.c). */
	if (!c)
		return false;
	uint64_t n = atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed) + 1;
	if (n <= rule->after)
		return false;
	if (rule->every && (n - rule->after - 1) % rule->every >= rule->first)
		return false;
	if (rule->has_chance) {
		uint64_t k =
		        seeded ? atomic_fetch_add_explicit(&c->draws, 1, memory_order_relaxed) : 0;
		if ((wrench__draw(rule, seeded, k) >> 11) >= rule->chance_threshold)
			return false;
	}
	if (!rule->times) {
		atomic_fetch_add_explicit(&c->fires, 1, memory_order_relaxed);
		return true;
	}
	/* Claim one of the remaining fires; losing threads do not fire. */
	uint64_t fired = atomic_load_explicit(&c->fires, memory_order_relaxed);
	while (fired < rule->times)
		if (atomic_compare_exchange_weak_explicit(&c->fires, &fired, fired + 1,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed))
			return true;
	return false;
}

bool wrench__rules_expired(const struct wrench__rules *rules, int32_t first)
{
	if (first < 0 || !rules->rule[first].until)
		return false;
	int64_t now = wrench__coarse_now_ns() / 1000000000;
	for (int32_t i = first; i >= 0; i = rules->rule[i].next_same)
		if (!rules->rule[i].until || now < rules->rule[i].until)
			return false;
	return true;
}

/* The fire record: when the line last fired, and which process fired it.
 * Written only when it changes (the coarse clock ticks every few ms), so
 * that threads firing one line do not keep stealing its cache line. */
static void record_fire(const struct wrench__rule *rule)
{
	struct wrench__counters *c = rule->counters;
	int64_t now = wrench__coarse_now_ns();
	uint32_t pid = wrench__pid();

	if (atomic_load_explicit(&c->last_fire_ns, memory_order_relaxed) != now)
		atomic_store_explicit(&c->last_fire_ns, now, memory_order_relaxed);
	if (atomic_load_explicit(&c->last_pid, memory_order_relaxed) != pid)
		atomic_store_explicit(&c->last_pid, pid, memory_order_relaxed);
}

/* Sleeps the whole duration, whatever signals interrupt it. */
static void sleep_for(uint64_t ns)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(ns / 1000000000u);
	deadline.tv_nsec += (long)(ns % 1000000000u);
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
		;
}

/* " (errno ENOSPC, value=TEXT)" for a line that says how it fails, its
 * value as written (no control character, no white space) and cut to a
 * length a log line can carry; "" for one that does not. */
static void describe_payload(const struct wrench__rule *rule, char *buf, size_t len)
{
	char errnum[48] = "", value[80] = "";
	const char *name = wrench__errno_name(rule->errnum);
	const char *text = wrench__rule_value(rule);
	int shown = rule->value_len > 48 ? 48 : (int)rule->value_len;

	if (rule->errnum && name)
		snprintf(errnum, sizeof(errnum), "errno %s", name);
	else if (rule->errnum)
		snprintf(errnum, sizeof(errnum), "errno %d", rule->errnum);
	if (text)
		snprintf(value, sizeof(value), "%svalue=%.*s%s", rule->errnum ? ", " : "", shown,
		         text, shown < rule->value_len ? "..." : "");
	if (rule->errnum || text)
		snprintf(buf, len, " (%s%s)", errnum, value);
	else if (len)
		buf[0] = '\0';
}

void wrench__describe_action(const struct wrench__rule *rule, char *buf, size_t len)
{
	char slow[64] = "", kill[32] = "", payload[128];

	if (rule->has_slow) {
		char duration[32];
		wrench__format_duration(rule->slow_ns, duration, sizeof(duration));
		snprintf(slow, sizeof(slow), "slow %s%s", duration,
		         rule->fail || rule->kill_signal ? ", then " : "");
	}
	if (rule->kill_signal) {
		const char *abbrev = sigabbrev_np(rule->kill_signal);
		if (abbrev)
			snprintf(kill, sizeof(kill), "kill (SIG%s)", abbrev);
		else
			snprintf(kill, sizeof(kill), "kill (signal %d)", rule->kill_signal);
	}
	describe_payload(rule, payload, sizeof(payload));
	snprintf(buf, len, "%s%s%s", slow,
	         rule->kill_signal ? kill
	         : rule->fail      ? "fail"
	                           : "",
	         payload);
}

bool wrench__evaluate_each(struct wrench__rules *rules, const char *feature, bool seeded,
                           wrench__fire_fn *fire, void *ctx)
{
	struct wrench__name name = wrench__name_of(feature);

	return wrench__evaluate_from(rules, wrench__rules_find(rules, &name), seeded, fire, ctx);
}

const struct wrench__rule *wrench__evaluate_from(struct wrench__rules *rules, int32_t first,
                                                 bool seeded, wrench__fire_fn *fire, void *ctx)
{
	for (int32_t i = first; i >= 0; i = rules->rule[i].next_same) {
		struct wrench__rule *rule = &rules->rule[i];

		if (!wrench__rule_fires(rule, seeded))
			continue;
		fire(rule, ctx);
		/* A slow line lets the later lines have their turn. */
		if (rule->fail || rule->kill_signal)
			return rule;
	}
	return NULL;
}

/* Whether this fire of RULE is logged: the first one in this process and
 * every kill, then at most one summary per period. *MORE: the fires the
 * summary covers, this one included. */
static bool fire_is_logged(struct wrench__rule *rule, int64_t period, uint64_t *more)
{
	int64_t now = wrench__coarse_now_ns();
	int64_t next = atomic_load_explicit(&rule->log_next_ns, memory_order_relaxed);

	*more = 0;
	/* Read before any write: a line firing in several threads only
	 * shares its cache line once per period. */
	if (next == 0 &&
	    atomic_compare_exchange_strong_explicit(&rule->log_next_ns, &next, now + period,
	                                            memory_order_relaxed, memory_order_relaxed))
		return true; /* the first fire */
	if (rule->kill_signal || period == 0)
		return true;
	atomic_fetch_add_explicit(&rule->log_pending, 1, memory_order_relaxed);
	/* One thread wins the period's summary; the others only count. */
	if (now < next ||
	    !atomic_compare_exchange_strong_explicit(&rule->log_next_ns, &next, now + period,
	                                             memory_order_relaxed, memory_order_relaxed))
		return false;
	*more = atomic_exchange_explicit(&rule->log_pending, 0, memory_order_relaxed);
	return *more > 0;
}

static void log_fire(struct wrench__rule *rule, const struct wrench__context *ctx)
{
	int64_t period = atomic_load_explicit(&fire_log_period_ns, memory_order_relaxed);
	char what[WRENCH__ACTION_MAX];
	uint64_t more;

	if (!fire_is_logged(rule, period, &more))
		return;
	wrench__describe_action(rule, what, sizeof(what));
	if (more)
		wrench__log(WRENCH_LOG_WARN,
		            "%s/%s fired %llu more time(s) in the last %llds (line %u of %s): %s",
		            ctx->category, rule->feature, (unsigned long long)more,
		            (long long)(period / 1000000000), rule->line, ctx->path, what);
	else
		wrench__log(WRENCH_LOG_WARN, "%s/%s fired (line %u of %s): %s", ctx->category,
		            rule->feature, rule->line, ctx->path, what);
}

/* What a line that fires does in the library: record it, say so, then act. */
static void act(struct wrench__rule *rule, void *data)
{
	const struct wrench__context *ctx = data;

	record_fire(rule);
	/* Logged before acting: a killed process cannot say why later. The
	 * description is made only for a log that wants it: a hot failure
	 * point firing with the log off must not pay for formatting. */
	if (wrench__log_wanted(WRENCH_LOG_WARN))
		log_fire(rule, ctx);
	/* No lock is held while it sleeps or raises: a signal handler may
	 * call the library then, or leave the call with siglongjmp() (a test
	 * harness catching SIGABRT), which must not leave the thread marked
	 * as inside a call for good. */
	bool in_call = wrench__in_call;
	wrench__in_call = false;
	if (rule->has_slow)
		sleep_for(rule->slow_ns);
	/* If the process survives (a handler returned, or the signal is
	 * ignored), the point still counts as failing. */
	if (rule->kill_signal)
		raise(rule->kill_signal);
	wrench__in_call = in_call;
}

const struct wrench__rule *wrench__evaluate(struct wrench__rules *rules, int32_t first,
                                            const struct wrench__context *ctx)
{
	return wrench__evaluate_from(rules, first, ctx->seeded, act, (void *)ctx);
}

int wrench__rule_tell(const struct wrench__rule *rule, struct wrench_fault *out)
{
	int errnum = rule->errnum ? rule->errnum : EIO;

	if (out) {
		const char *value = wrench__rule_value(rule);
		out->errnum = errnum;
		if (value)
			wrench__value_decode(value, rule->value_len, out->value);
		else
			out->value[0] = '\0';
		memset(out->wrench__reserved, 0, sizeof(out->wrench__reserved));
	}
	return errnum;
}
