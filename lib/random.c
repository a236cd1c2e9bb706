/*
 * Chance draws: from the system's generator, or reproducible from a seed.
 *
 * A seeded draw is a pure function of (seed, category, line, k), where k
 * counts the draws made at that line. Nothing is shared between lines, so
 * the sequence of decisions at one line does not depend on what other lines
 * or other threads do: a failure seen in CI replays with the same seed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* SplitMix64's finaliser: a bijection that spreads every input bit. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t wrench__seed_for_line(uint64_t seed, uint64_t category_hash, unsigned line)
{
	/* The category's hash keeps categories apart; mix() spreads it. */
	return mix(seed ^ mix(category_hash ^ mix(line)));
}

/* Unseeded draws come from a generator per thread, seeded once from the
 * system: arc4random() makes a system call (getpid) on every use, which a
 * hot failure point cannot afford. A fork() bumps the epoch so that a
 * child does not replay its parent's decisions. */
static _Atomic unsigned fork_epoch;
struct generator {
	uint64_t s[4];
	unsigned epoch; /* the fork_epoch it was seeded in */
	bool seeded;
};
static WRENCH_TLS struct generator thread_rng;

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: fast, and statistically sound for coin flips. */
static uint64_t thread_next(void)
{
	unsigned epoch = atomic_load_explicit(&fork_epoch, memory_order_relaxed);
	uint64_t *s = thread_rng.s;

	if (!thread_rng.seeded || thread_rng.epoch != epoch) {
		do
			arc4random_buf(s, sizeof(thread_rng.s));
		while ((s[0] | s[1] | s[2] | s[3]) == 0);
		thread_rng.seeded = true;
		thread_rng.epoch = epoch;
	}
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

void wrench__random_atfork_child(void)
{
	atomic_fetch_add(&fork_epoch, 1);
}

uint64_t wrench__draw(const struct wrench__rule *rule, bool use_seed, uint64_t k)
{
	if (use_seed)
		return mix(rule->seed + (k + 1) * 0x9e3779b97f4a7c15ull);
	return thread_next();
}

int wrench__seed_from_env(uint64_t *seed)
{
	const char *text = secure_getenv("WRENCH_SEED");

	if (!text)
		return -ENOENT;
	if (wrench__parse_uint(text, strlen(text), seed) < 0) {
		wrench__log(WRENCH_LOG_ERROR,
		            "WRENCH_SEED=\"%.64s\" is not an unsigned 64-bit integer; chance "
		            "decisions stay random",
		            text);
		return -EINVAL;
	}
	return 0;
}
