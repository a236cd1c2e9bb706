/*
 * The state file's layout and its mapping: private to state.c, which finds
 * and counts in slots, state_load.c, which attaches a loaded file's lines
 * to them, and state_file.c, which opens, checks, creates and grows the
 * file.
 *
 * DIR/.wrench-state/counters-v3-UID is a header page, then segments of
 * windows. A window is WRENCH__WINDOW_SLOTS slots of 64 bytes followed by
 * their per-CPU shards, one row of WRENCH__WINDOW_SLOTS per CPU slot: 8 KiB,
 * two pages. Segment 0 has FIRST_WINDOWS windows and each later one twice
 * the windows of the one before, so that a file starts small (132 KiB) and
 * grows, by whole segments, only when a window of every segment so far is
 * full. Segments never move: a line's slot keeps its address for as long as
 * the file is mapped, and every process maps the largest size the file may
 * reach once, touching only the segments published in the header, whose
 * blocks were all reserved before they were published.
 */
#ifndef WRENCH_STATE_FILE_H
#define WRENCH_STATE_FILE_H

#include "internal.h"

#define STATE_PAGE      ((size_t)4096)
#define WINDOW_SLOTS    WRENCH__WINDOW_SLOTS
#define WINDOW_BYTES    (2 * STATE_PAGE)
#define FIRST_WINDOWS   16u
#define MAX_SEGMENTS    9u /* 8,176 windows, 523,264 slots, 64 MiB */
#define STATE_FILE_NAME "counters-v3-"

_Static_assert(WINDOW_SLOTS * sizeof(struct wrench__counters) == STATE_PAGE,
               "a window's slots fill one page");
_Static_assert((size_t)WRENCH__SHARDS *WINDOW_SLOTS * sizeof(struct wrench__shard) == STATE_PAGE,
               "a window's shards fill the next");

/* Where segment K starts, which is also the size of a file of K segments. */
static inline size_t state_segment_offset(unsigned k)
{
	return STATE_PAGE + (size_t)FIRST_WINDOWS * (((size_t)1 << k) - 1) * WINDOW_BYTES;
}

static inline uint32_t state_segment_windows(unsigned k)
{
	return FIRST_WINDOWS << k;
}

#define STATE_MAP_SIZE state_segment_offset(MAX_SEGMENTS)

/* The first page of the file. */
struct state_header {
	uint64_t magic;
	uint32_t version;
	uint32_t window_slots;
	uint32_t shards;
	uint32_t first_windows;
	uint32_t max_segments;
	_Atomic uint32_t segments; /* published: each one's blocks are reserved */
	uint64_t reserved[4];
};

_Static_assert(sizeof(struct state_header) == 64, "the header is one cache line");

/* One mapped state file, shared by the states of its categories. */
struct state_map {
	_Atomic unsigned refs;
	char *base; /* STATE_MAP_SIZE bytes; only published segments are touched */
	struct state_header *header;
	/* The file, found again by name to grow it: no descriptor is kept. */
	dev_t dev;
	ino_t ino;
	uid_t uid; /* its agent's */
	/* Segments known to lie within the file: checked against its size at
	 * open, or published by this process after reserving them. */
	_Atomic unsigned verified;
};

/*
 * Opens the state file of W's agent (W->uid's, or this process's euid's),
 * creating .wrench-state and the file when W allows, checks both as trigger
 * files are checked, and maps it. When REUSE is the map of the same file
 * (device and inode), it is returned with one more reference instead of a
 * new mapping. Returns 0 and *OUT, or a negative errno with the problem in
 * WHY (WHY->level DEBUG for a file that does not exist and was not to be
 * created).
 */
int wrench__map_open(const struct wrench__state_where *w, struct state_map *reuse,
                     struct state_map **out, struct wrench__problem *why);
void wrench__map_get(struct state_map *map);
void wrench__map_put(struct state_map *map);

/* How many segments the header says are published (they only ever grow),
 * held within the mapping: the file's owner can write any number there. */
static inline unsigned state_segments(const struct state_map *map)
{
	unsigned n = atomic_load_explicit(&map->header->segments, memory_order_acquire);
	return n < MAX_SEGMENTS ? n : MAX_SEGMENTS;
}

/*
 * How many segments may be touched: those published, as far as the file
 * is known to hold them. Segments another process published since are
 * checked against the file's size, reached again through the trigger
 * directory DIRFD (-1: not now), so that a number its owner wrote without
 * growing the file never leads past its end.
 */
unsigned wrench__map_segments(struct state_map *map, int dirfd);

/* The first slot of window W of segment K. */
static inline struct wrench__counters *state_window(const struct state_map *map, unsigned k,
                                                    uint32_t w)
{
	return (struct wrench__counters *)(map->base + state_segment_offset(k) +
	                                   (size_t)w * WINDOW_BYTES);
}

/*
 * Publishes segment K, the next one, after reserving its blocks, reaching
 * the file through the trigger directory DIRFD: 0 (also when another
 * process published it first), or a negative errno: -ENOSPC when the disk
 * is full or the file is as large as it may be, -EAGAIN while another
 * process grows it (nothing waits), -ESTALE when the name leads to another
 * file now.
 */
int wrench__map_grow(struct state_map *map, int dirfd, unsigned k);

/* state.c, for state_load.c: a state of the category whose key is
 * CATEGORY (wrench__state_category_key() of its name's hash; 0: every
 * category) over MAP, which takes over the caller's reference to it (let
 * go of when there is no memory for the state); and that key. */
struct wrench__state *wrench__state_of(struct state_map *map, uint64_t category, int dirfd);
uint64_t wrench__state_category_key(uint64_t name_hash);
/* The trigger directory that STATE borrowed to grow its file is closed
 * by its opener: later claims cannot grow the file. */
void wrench__state_let_go_of_dir(struct wrench__state *state);

#endif /* WRENCH_STATE_FILE_H */
