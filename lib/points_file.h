/*
 * The file of points reached (wrench(5), "Points reached"): its layout,
 * private to points.c, which records in it, and points_file.c, which
 * opens, checks, creates and reads it.
 *
 * DIR/.wrench-state/points-v1-UID, one per agent user beside its counters,
 * is a header page and POINTS_SLOTS slots of POINTS_SLOT_BYTES, made at its
 * full size once and never grown: a program that makes up names in a loop
 * fills it and no more (the header counts what found no room).
 */
#ifndef WRENCH_POINTS_FILE_H
#define WRENCH_POINTS_FILE_H

#include <sys/stat.h>

#include "internal.h"

#define POINTS_PAGE       ((size_t)4096)
#define POINTS_SLOTS      1024u
#define POINTS_SLOT_BYTES 512u
#define POINTS_FILE_SIZE  (POINTS_PAGE + (size_t)POINTS_SLOTS * POINTS_SLOT_BYTES)
#define POINTS_FILE_NAME  "points-v1-"
#define POINTS_MAGIC      0x3154505452525257ull /* "WRRTPT1", little-endian */
#define POINTS_VERSION    1u

struct points_header {
	uint64_t magic;
	uint32_t version;
	uint32_t slots;
	uint32_t slot_bytes;
	uint32_t reserved32;
	_Atomic uint64_t dropped; /* points that found no slot */
	uint64_t reserved[4];
};

_Static_assert(sizeof(struct points_header) == 64, "the header is one cache line");

/* The names, "CATEGORY\0FEATURE\0PROGRAM\0", fill the rest of a slot. */
#define POINTS_NAMES_BYTES (POINTS_SLOT_BYTES - 40u)

struct points_slot {
	_Atomic uint64_t key;   /* 0: free */
	_Atomic uint32_t ready; /* the names are written */
	uint16_t category_len, feature_len;
	uint16_t program_len, reserved16;
	_Atomic uint32_t last_pid;
	_Atomic int64_t first_ms; /* CLOCK_REALTIME, ms */
	_Atomic int64_t last_ms;
	char names[POINTS_NAMES_BYTES];
};

_Static_assert(sizeof(struct points_slot) == POINTS_SLOT_BYTES, "a slot has its size");

static inline struct points_slot *points_slot_at(char *base, uint32_t i)
{
	return (struct points_slot *)(base + POINTS_PAGE + (size_t)i * POINTS_SLOT_BYTES);
}

/* Opens the file of this process's user (W->uid's when W->for_uid) in W's
 * trigger directory, created complete when W allows, and checked as the
 * counters are: a descriptor, with *ST, or a negative errno with the
 * problem in WHY (level DEBUG when it does not exist and was not to be
 * made). */
int wrench__points_open(const struct wrench__state_where *w, struct stat *st,
                        struct wrench__problem *why);
/* Maps the file FD opened: POINTS_FILE_SIZE bytes, or NULL (said in WHY). */
char *wrench__points_map(int fd, struct wrench__problem *why);

/* The file's name for the agent user UID, into BUF. */
void wrench__points_file_name(uid_t uid, char *buf, size_t len);

/* The checks of an opened file of points reached, for the agent UID: those
 * of the counters (a regular file with one link, owned by root or UID, not
 * writable by group or others), and the header and size of this version.
 * 0, or a negative errno with the problem in WHY (PATH names it). */
int wrench__points_check(int fd, uid_t uid, const char *path, struct wrench__problem *why);

/* Reads the file NAME of the state directory SDFD, checked for UID, into
 * a copy of POINTS_FILE_SIZE bytes (*DATA, malloc'ed): 0, or a negative
 * errno with the problem in WHY (level DEBUG when there is no file). */
int wrench__points_read(int sdfd, const char *name, uid_t uid, const char *path, char **data,
                        struct wrench__problem *why);

/* One slot, read: its names point into the slot. */
struct wrench__reached {
	const char *category, *feature, *program;
	int64_t first_ms, last_ms;
	uint32_t last_pid;
};

/* Reads slot S of a copy, trusting nothing in it: false when it is free,
 * not yet written, or holds names that do not end within it or that no
 * trigger file could name. */
bool wrench__points_slot_names(const struct points_slot *s, struct wrench__reached *out);

#endif /* WRENCH_POINTS_FILE_H */
