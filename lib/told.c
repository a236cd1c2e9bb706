/*
 * Which problems are told: each once while it lasts, however often its
 * file changes or other problems come in between, and past a burst at a
 * bounded rate, so that nobody can flood the log by making up new
 * problems. The cache tells the problems of trigger files and directories
 * through one such record, under its own lock.
 */
#include <string.h>

#include "clock.h"
#include "internal.h"

/* Past a burst, problem messages are logged at this rate at most. */
#define PROBLEM_BURST       100
#define PROBLEMS_PER_SECOND 10

/* A problem is its message (which names the path and the reason) in one
 * episode of its file: not its ctime, which whoever owns a squatted file
 * can change at will. */
static uint64_t problem_mark(const struct wrench__problem *why, uint64_t episode)
{
	uint64_t h = wrench__hash_bytes(why->message, strlen(why->message), WRENCH__HASH_START);
	h = wrench__hash_bytes(&episode, sizeof(episode), h);
	return h ? h : 1;
}

/* The rate limit, a token bucket: PROBLEM_BURST at once, then
 * PROBLEMS_PER_SECOND. The bucket is full at T->tokens_ms. */
static bool rate_allows(struct wrench__told *t)
{
	const uint64_t per_token = 1000 / PROBLEMS_PER_SECOND;
	uint64_t now = wrench__coarse_ms(), empty_ms = PROBLEM_BURST * per_token;

	if (t->tokens_ms + empty_ms < now)
		t->tokens_ms = now - empty_ms;
	if (t->tokens_ms + per_token > now)
		return false;
	t->tokens_ms += per_token;
	return true;
}

bool wrench__told_is_news(struct wrench__told *t, uint64_t episode,
                          const struct wrench__problem *why, enum wrench_log_level level)
{
	uint64_t mark = problem_mark(why, episode);

	/* A message nobody sees must not use up the rate limit. */
	if (!wrench__log_wanted(level))
		return false;
	for (size_t i = 0; i < WRENCH__TOLD_RECENT; i++)
		if (t->recent[i] == mark)
			return false;
	if (!rate_allows(t)) {
		t->suppressed++;
		return false;
	}
	t->recent[t->next++ % WRENCH__TOLD_RECENT] = mark;
	return true;
}

unsigned wrench__told_take_suppressed(struct wrench__told *t, bool news)
{
	unsigned n = news ? t->suppressed : 0;
	if (news)
		t->suppressed = 0;
	return n;
}

void wrench__told_forget(struct wrench__told *t)
{
	memset(t->recent, 0, sizeof(t->recent));
	t->tokens_ms = 0;
}

void wrench__told_log_suppressed(unsigned suppressed)
{
	if (suppressed)
		wrench__log(WRENCH_LOG_WARN,
		            "%u problem message(s) were not logged: at most %d are logged at "
		            "once, then %d a second",
		            suppressed, PROBLEM_BURST, PROBLEMS_PER_SECOND);
}

void wrench__told_log(const struct wrench__problem *why, unsigned suppressed)
{
	wrench__told_log_suppressed(suppressed);
	wrench__log(why->level, "%s", why->message);
}
