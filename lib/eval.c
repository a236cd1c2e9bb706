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
	uint64_t n = atomic_fetch_add_explicit(&rule->calls, 1, memory_order_relaxed) + 1;

	if (n <= rule->after)
		return false;
	if (rule->every && (n - rule->after - 1) % rule->every >= rule->first)
		return false;
	if (rule->has_chance) {
		uint64_t k = atomic_fetch_add_explicit(&rule->draws, 1, memory_order_relaxed);
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

static void describe(const struct wrench__rule *rule, char *buf, size_t len)
{
	char duration[32] = "";
	const char *sep = "";

	if (rule->has_slow) {
		wrench__format_duration(rule->slow_ns, duration, sizeof(duration));
		sep = rule->fail || rule->kill_signal ? ", then " : "";
	}
	if (rule->kill_signal) {
		const char *abbrev = sigabbrev_np(rule->kill_signal);
		snprintf(buf, len, "%s%s%skill (SIG%s)", rule->has_slow ? "slow " : "", duration,
		         sep, abbrev ? abbrev : "?");
		if (!abbrev)
			snprintf(buf, len, "%s%s%skill (signal %d)", rule->has_slow ? "slow " : "",
			         duration, sep, rule->kill_signal);
	} else {
		snprintf(buf, len, "%s%s%s%s", rule->has_slow ? "slow " : "", duration, sep,
		         rule->fail ? "fail" : "");
	}
}

bool wrench__evaluate(struct wrench__rules *rules, const char *feature,
                      const struct wrench__context *ctx)
{
	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		char what[96];

		if (strcmp(rule->feature, feature) != 0 || !wrench__rule_fires(rule, ctx->seeded))
			continue;
		describe(rule, what, sizeof(what));
		/* Logged before acting: a killed process cannot say why later. */
		wrench__log(WRENCH_LOG_WARN, "%s/%s fired (line %u of %s): %s", ctx->category,
		            feature, rule->line, ctx->path, what);
		if (rule->has_slow)
			sleep_for(rule->slow_ns);
		if (rule->kill_signal) {
			raise(rule->kill_signal);
			/* Still alive: a handler ran or the signal is ignored.
			 * The point still counts as failing. */
			return true;
		}
		if (rule->fail)
			return true;
	}
	return false;
}
