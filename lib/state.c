/*
 * The machine-wide state: the counters of every trigger line, shared by all
 * the processes that read the same trigger directory, kept across their
 * restarts (wrench(5), "COUNTERS"). The file that holds them, one per
 * trigger directory and agent user, is state_file.c's.
 *
 * A line's slot is keyed by its category and its line (the line's tokens
 * and its occurrence among identical lines). It is looked for in one of
 * its category's windows in each segment in turn, by linear probing, and
 * claimed with a compare-and-swap, so processes need no lock: every count
 * is one atomic operation on the shared mapping, and a process killed at
 * any instant leaves the table whole. A line goes on to the next segment
 * only when its window in this one has no free slot: a window that still
 * has a never-used slot never sent a line further, so a key missing from
 * it is missing everywhere. When the window of every segment on a line's
 * way is full, the file grows by one segment. A category's lines stay on
 * few pages (the first store to a page of a file costs tens of
 * microseconds), and a look-up reads one window per segment at most.
 *
 * Only the wrench command frees slots (under its lock); a freed slot keeps
 * key 1, a tombstone, so that the probe sequences of the other keys stay
 * unbroken, and is reused by the next claim that passes it.
 *
 * Fail closed. A line whose decision depends on a count (times=, every=,
 * first=, after=) and that has no slot, because the state cannot be used
 * or has no room, never fires: counting it per process would make a spent
 * "kill times=1" kill every restart. Lines that no count decides keep
 * working, counted per process. The problem is logged once, with its fix,
 * and the state is tried again with back-off: a shortage is never
 * remembered, and a line fires again only from the counts it had.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "state_file.h"

#define KEY_FREE  0u
#define KEY_FREED 1u

struct wrench__state {
	struct state_map *map;
	uint64_t category; /* the hash of its name; 0: every category */
	bool full;         /* a claim found no room: later ones only look */
	int claim_error;   /* why the last claim failed (0: none did) */
	/* The trigger directory, borrowed while the opener's load lasts, to
	 * grow the file; -1 after, when a claim cannot grow it. */
	int dirfd;
};

/* ---- this process, without system calls ------------------------------- */

static _Atomic uint32_t cached_pid;

void wrench__pid_atfork_child(void)
{
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

uint32_t wrench__pid(void)
{
	uint32_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
	if (!pid) {
		pid = (uint32_t)getpid();
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

/* ---- keys ----------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

int wrench__rules_set_keys(struct wrench__rules *rules)
{
	/* Occurrences are counted in a table of the lines' hashes, so that a
	 * file of 30,000 identical lines costs no more than a varied one. */
	if (rules->keyed)
		return 0;
	size_t size = 2;
	while (size < 2 * rules->count)
		size *= 2;
	struct seen {
		uint64_t hash;
		uint64_t count;
	} *seen = calloc(size, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		uint64_t text = rule->key;
		uint64_t h = text | 1; /* 0 marks an empty entry */
		size_t at = (size_t)mix(h) & (size - 1);
		while (seen[at].hash && seen[at].hash != h)
			at = (at + 1) & (size - 1);
		seen[at].hash = h;
		uint64_t key = mix(text ^ mix(seen[at].count++));
		rule->key = key > KEY_FREED ? key : key + 2;
	}
	free(seen);
	rules->keyed = true;
	return 0;
}

/* What a slot keeps of a category whose name hashes to NAME_HASH. */
uint64_t wrench__state_category_key(uint64_t name_hash)
{
	uint64_t h = mix(name_hash);
	return h ? h : 1; /* 0 marks a slot whose category is not yet set */
}

uint64_t wrench__state_category_hash(const char *category)
{
	return wrench__state_category_key(wrench__hash_string(category));
}

/* The key of a category's line in the shared table. */
static uint64_t key_in(uint64_t category, uint64_t line)
{
	uint64_t key = mix(line ^ category);
	return key > KEY_FREED ? key : key + 2;
}

uint64_t wrench__state_line_key(const char *category, uint64_t line)
{
	return key_in(wrench__state_category_hash(category), line);
}

/* ---- slots ---------------------------------------------------------------- */

/* What a probe for a key found in one window. */
struct probe {
	struct wrench__counters *found; /* the key's slot */
	struct wrench__counters *reuse; /* the first freed or never-used slot */
	bool ended;                     /* it met a never-used slot */
};

static struct probe probe_window(struct wrench__counters *window, uint32_t at, uint64_t key)
{
	struct probe p = {0};

	for (uint32_t n = 0; n < WINDOW_SLOTS; n++, at = (at + 1) & (WINDOW_SLOTS - 1)) {
		struct wrench__counters *s = &window[at];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k == key) {
			p.found = s;
			return p;
		}
		if (k == KEY_FREED && !p.reuse)
			p.reuse = s;
		if (k != KEY_FREE)
			continue;
		if (!p.reuse)
			p.reuse = s;
		p.ended = true;
		return p;
	}
	return p;
}

/* How many windows of segment K a category's lines spread over: a
 * quarter of them, so that one category can count 130,816 lines, and a
 * category of a few lines still touches few pages. */
static uint32_t span_of(unsigned k)
{
	return state_segment_windows(k) / 4;
}

/* The J-th window of the state's category in segment K: the category's
 * first is spread over twice the windows in each segment, so that
 * categories crowded together in one are apart in the next. */
static struct wrench__counters *window_of(const struct wrench__state *state, unsigned k, uint32_t j)
{
	uint32_t windows = state_segment_windows(k);
	return state_window(state->map, k, (uint32_t)((state->category + j) % windows));
}

/* Looks for KEY on its way: one window of its category's in each segment
 * (chosen by the key), up to the first that has a slot never used, so
 * that a look-up reads a few windows however full the file is; *REUSE:
 * the first free slot met, where a claim would go. */
static struct wrench__counters *look_up(const struct wrench__state *state, uint64_t key,
                                        unsigned segments, struct wrench__counters **reuse)
{
	uint64_t h = mix(key);
	uint32_t at = (uint32_t)h & (WINDOW_SLOTS - 1);

	*reuse = NULL;
	for (unsigned k = 0; k < segments; k++) {
		uint32_t j = (uint32_t)((h >> 6) % span_of(k));
		struct probe p = probe_window(window_of(state, k, j), at, key);
		if (p.found)
			return p.found;
		if (!*reuse)
			*reuse = p.reuse;
		if (p.ended)
			return NULL;
	}
	return NULL;
}

/*
 * Two claims of one key can each take a slot when the wrench command frees
 * a slot earlier on the key's way between them: the one met first on the
 * way is the key's, for everyone who looks it up. A claim that took
 * another gives it back before anything is counted in it.
 */
static struct wrench__counters *first_of_key(struct wrench__state *state, uint64_t key,
                                             struct wrench__counters *claimed)
{
	struct wrench__counters *reuse;
	struct wrench__counters *first =
	        look_up(state, key, wrench__map_segments(state->map, state->dirfd), &reuse);

	if (first && first != claimed) {
		wrench__slot_reset(state, claimed, true);
		return first;
	}
	return claimed;
}

struct wrench__counters *wrench__state_slot(struct wrench__state *state, uint64_t line, bool claim)
{
	uint64_t key = key_in(state->category, line);

	for (;;) {
		unsigned segments = wrench__map_segments(state->map, state->dirfd);
		struct wrench__counters *reuse;
		struct wrench__counters *found = look_up(state, key, segments, &reuse);
		if (found || !claim)
			return found;
		if (!reuse) {
			/* Every window on the key's way is full: one more
			 * segment, which another process may add first. */
			int rc = wrench__map_grow(state->map, state->dirfd, segments);
			if (rc < 0) {
				state->claim_error = rc;
				return NULL;
			}
			continue;
		}
		/* The counters of a free slot are zero: whoever freed it
		 * zeroed them first. Losing the race means another process
		 * claimed it, perhaps for this very key: look again. */
		uint64_t expected = atomic_load_explicit(&reuse->key, memory_order_relaxed);
		if (expected <= KEY_FREED && atomic_compare_exchange_strong_explicit(
		                                     &reuse->key, &expected, key,
		                                     memory_order_acq_rel, memory_order_acquire)) {
			atomic_store_explicit(&reuse->category, state->category,
			                      memory_order_release);
			return first_of_key(state, key, reuse);
		}
	}
}

void wrench__state_let_go_of_dir(struct wrench__state *state)
{
	state->dirfd = -1;
}

int wrench__state_claim_error(const struct wrench__state *state)
{
	return state->claim_error;
}

/* SLOT's shard on the first CPU; the others follow, WINDOW_SLOTS apart:
 * the shards fill the page after their window's slots. */
static struct wrench__shard *shard_of(const struct state_map *map,
                                      const struct wrench__counters *slot)
{
	size_t from = (size_t)((const char *)slot - map->base) - STATE_PAGE;
	char *window = map->base + STATE_PAGE + from / WINDOW_BYTES * WINDOW_BYTES;
	size_t index = from % WINDOW_BYTES / sizeof(struct wrench__counters);
	return (struct wrench__shard *)(window + STATE_PAGE) + index;
}

/* Whether a line's decisions depend on nothing counted: then its calls
 * and fires may be counted per CPU. Seeded chance draws are numbered, so
 * those count in the slot (eval.c checks the seed). */
static bool count_free(const struct wrench__rule *rule)
{
	return !rule->after && !rule->every && !rule->times;
}

bool wrench__rule_needs_counts(const struct wrench__rule *rule)
{
	return !rule->process_scope && !count_free(rule);
}

/* RULE has no slot: a line that counts stays off (NULL counters, which
 * eval.c reads as "never fires"); any other counts in this process. */
static void leave_unslotted(struct wrench__rules *rules, struct wrench__rule *rule)
{
	rule->counters = wrench__rule_needs_counts(rule) ? NULL : &rules->local[rule - rules->rule];
	rule->shard = NULL;
}

/* The per-process counters are kept only while a line uses them: most
 * files count nothing per process, and a parsed line then costs no more. */
static void free_unused_local(struct wrench__rules *rules)
{
	struct wrench__counters *local = rules->local;

	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__counters *c = rules->rule[i].counters;
		if (c && c >= local && c < local + rules->count)
			return;
	}
	free(rules->local);
	rules->local = NULL;
}

size_t wrench__rules_close_counted(struct wrench__rules *rules)
{
	size_t left = 0;

	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		if (rule->process_scope)
			continue;
		leave_unslotted(rules, rule);
		left++;
	}
	return left;
}

size_t wrench__state_attach(struct wrench__state *state, struct wrench__rules *rules)
{
	size_t left = 0;

	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		if (rule->process_scope)
			continue;
		/* Past a claim that found no room, lines still find the
		 * slots they have. */
		struct wrench__counters *slot = wrench__state_slot(state, rule->key, !state->full);
		if (!slot) {
			state->full = true;
			leave_unslotted(rules, rule);
			left++;
			continue;
		}
		rule->counters = slot;
		if (count_free(rule))
			rule->shard = shard_of(state->map, slot);
	}
	free_unused_local(rules);
	return left;
}

void wrench__state_totals(const struct wrench__state *state, const struct wrench__counters *slot,
                          struct wrench__totals *out)
{
	const struct wrench__shard *shard = shard_of(state->map, slot);

	out->calls = atomic_load(&slot->calls);
	out->draws = atomic_load(&slot->draws);
	out->fires = atomic_load(&slot->fires);
	for (uint32_t i = 0; i < WRENCH__SHARDS; i++, shard += WINDOW_SLOTS) {
		out->calls += atomic_load(&shard->calls);
		out->fires += atomic_load(&shard->fires);
	}
}

void wrench__slot_reset(struct wrench__state *state, struct wrench__counters *slot, bool free_it)
{
	struct wrench__shard *shard = shard_of(state->map, slot);

	atomic_store(&slot->calls, 0);
	atomic_store(&slot->draws, 0);
	atomic_store(&slot->fires, 0);
	for (uint32_t i = 0; i < WRENCH__SHARDS; i++, shard += WINDOW_SLOTS) {
		atomic_store(&shard->calls, 0);
		atomic_store(&shard->fires, 0);
	}
	atomic_store(&slot->last_fire_ns, 0);
	atomic_store(&slot->last_pid, 0);
	if (free_it) {
		atomic_store(&slot->category, 0);
		atomic_store_explicit(&slot->key, KEY_FREED, memory_order_release);
	}
}

/* Calls FN for each slot in use of WINDOW that is the state's category's
 * (any category's, without one). Returns whether one of its slots was
 * never used. */
static bool each_in(struct wrench__state *state, struct wrench__counters *window,
                    wrench__slot_fn *fn, void *ctx)
{
	bool never_used = false;

	for (uint32_t i = 0; i < WINDOW_SLOTS; i++) {
		uint64_t key = atomic_load(&window[i].key);
		never_used |= key == KEY_FREE;
		if (key <= KEY_FREED)
			continue;
		uint64_t category = atomic_load(&window[i].category);
		/* A slot being claimed has no category yet: it is nobody's
		 * garbage. */
		if (category && (!state->category || category == state->category))
			fn(state, &window[i], ctx);
	}
	return never_used;
}

/* A category's slots are in its windows; past a segment where each of
 * them has a slot never used, none went further (see look_up()). Every
 * category's are in every window. */
void wrench__state_each(struct wrench__state *state, wrench__slot_fn *fn, void *ctx)
{
	unsigned segments = wrench__map_segments(state->map, state->dirfd);

	for (unsigned k = 0; k < segments; k++) {
		bool last = state->category != 0;
		if (!state->category) {
			for (uint32_t w = 0; w < state_segment_windows(k); w++)
				each_in(state, state_window(state->map, k, w), fn, ctx);
			continue;
		}
		for (uint32_t j = 0; j < span_of(k); j++)
			last &= each_in(state, window_of(state, k, j), fn, ctx);
		if (last)
			return;
	}
}

/* ---- states ---------------------------------------------------------------- */

/* A state of the category whose key (category_key()) is CATEGORY, 0 for
 * every category, over MAP, which takes over the caller's reference to it
 * (let go of when there is no memory for the state). */
struct wrench__state *wrench__state_of(struct state_map *map, uint64_t category, int dirfd)
{
	struct wrench__state *state = malloc(sizeof(*state));

	if (!state) {
		wrench__map_put(map);
		return NULL;
	}
	state->map = map;
	state->category = category;
	state->full = false;
	state->claim_error = 0;
	state->dirfd = dirfd;
	return state;
}

int wrench__state_open(const struct wrench__state_where *w, const char *category,
                       struct wrench__state **out, struct wrench__problem *why)
{
	struct state_map *map;

	*out = NULL;
	int rc = wrench__map_open(w, NULL, &map, why);
	if (rc < 0)
		return rc;
	*out = wrench__state_of(map, category ? wrench__state_category_hash(category) : 0,
	                        w->dirfd);
	if (!*out) {
		why->level = WRENCH_LOG_WARN;
		why->path = NULL;
		snprintf(why->message, sizeof(why->message), "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void wrench__state_close(struct wrench__state *state)
{
	if (!state)
		return;
	wrench__map_put(state->map);
	free(state);
}
