/*
 * Evaluation of the lines that name a feature: which fire, and what they do.
 *
 * Counters are atomics updated without a lock, so threads at the same
 * failure point see exact totals ("times=100" fires exactly 100 times over
 * all threads) without serialising on a mutex.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

bool wrench__rule_fires(struct wrench__rule *rule, bool seeded)
{
	/* Only the lines that need a count share a counter between threads:
	 * a bare line costs no write to memory other threads read. */
	if (rule->after || rule->every) {
		uint64_t n = atomic_fetch_add_explicit(&rule->calls, 1, memory_order_relaxed) + 1;
		if (n <= rule->after)
			return false;
		if (rule->every && (n - rule->after - 1) % rule->every >= rule->first)
			return false;
	}
	if (rule->has_chance) {
		uint64_t k =
		        seeded ? atomic_fetch_add_explicit(&rule->draws, 1, memory_order_relaxed)
		               : 0;
		if ((wrench__draw(rule, seeded, k) >> 11) >= rule->chance_threshold)
			return false;
	}
	if (!rule->times)
		return true;
	/* Claim one of the remaining fires; losing threads do not fire. */
	uint64_t fired = atomic_load_explicit(&rule->fires, memory_order_relaxed);
	while (fired < rule->times)
		if (atomic_compare_exchange_weak_explicit(&rule->fires, &fired, fired + 1,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed))
			return true;
	return false;
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

void wrench__describe_action(const struct wrench__rule *rule, char *buf, size_t len)
{
	char slow[64] = "", kill[32] = "";

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
	snprintf(buf, len, "%s%s", slow, rule->kill_signal ? kill : rule->fail ? "fail" : "");
}

bool wrench__evaluate_each(struct wrench__rules *rules, const char *feature, bool seeded,
                           wrench__fire_fn *fire, void *ctx)
{
	return wrench__evaluate_from(rules, wrench__rules_find(rules, feature), seeded, fire, ctx);
}

bool wrench__evaluate_from(struct wrench__rules *rules, int32_t first, bool seeded,
                           wrench__fire_fn *fire, void *ctx)
{
	for (int32_t i = first; i >= 0; i = rules->rule[i].next_same) {
		struct wrench__rule *rule = &rules->rule[i];

		if (!wrench__rule_fires(rule, seeded))
			continue;
		fire(rule, ctx);
		/* A slow line lets the later lines have their turn. */
		if (rule->fail || rule->kill_signal)
			return true;
	}
	return false;
}

/* What a line that fires does in the library: say so, then act. */
static void act(const struct wrench__rule *rule, void *data)
{
	const struct wrench__context *ctx = data;

	/* Logged before acting: a killed process cannot say why later. The
	 * description is made only for a log that wants it: a hot failure
	 * point firing with the log off must not pay for formatting. */
	if (wrench__log_wanted(WRENCH_LOG_WARN)) {
		char what[96];
		wrench__describe_action(rule, what, sizeof(what));
		wrench__log(WRENCH_LOG_WARN, "%s/%s fired (line %u of %s): %s", ctx->category,
		            rule->feature, rule->line, ctx->path, what);
	}
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

bool wrench__evaluate(struct wrench__rules *rules, int32_t first, const struct wrench__context *ctx)
{
	return wrench__evaluate_from(rules, first, ctx->seeded, act, (void *)ctx);
}
