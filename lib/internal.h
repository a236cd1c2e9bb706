/*
 * Private declarations shared by the files of lib/ (and by the tests and the
 * wrench command, which link the static library). Nothing here is exported
 * from the shared library: every name is wrench__ and hidden.
 */
#ifndef WRENCH_INTERNAL_H
#define WRENCH_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "wrench.h"

/* Thread-local storage reached without a call to __tls_get_addr, which
 * would cost the hot path more than the rest of it: the library's few
 * thread-local bytes fit in the static TLS that glibc reserves, also when
 * the library is loaded with dlopen(). */
#define WRENCH_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* FNV-1a, for names, contents and problem marks: fast, and spread well
 * enough for hash tables. Nothing hashed comes from an untrusted writer. */
#define WRENCH__HASH_START 0xcbf29ce484222325ull

static inline uint64_t wrench__hash_bytes(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = (const unsigned char *)data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- a name made once at the door ---------------------------------------- */

/* A category or a feature as the library's entry points made it: the
 * string, measured and hashed once, so that no layer below measures or
 * hashes it again (the view, the cache, change detection and the counters
 * all key on HASH). */
struct wrench__name {
	const char *s;
	size_t len;
	uint64_t hash; /* wrench__hash_string(s) */
};

static inline struct wrench__name wrench__name_of(const char *s)
{
	struct wrench__name n = {s, 0, WRENCH__HASH_START};
	for (; s[n.len]; n.len++)
		n.hash = (n.hash ^ (unsigned char)s[n.len]) * 0x100000001b3ull;
	return n;
}

/* The hash of a name made elsewhere than at the door (wrench__name_of()). */
static inline uint64_t wrench__hash_string(const char *s)
{
	return wrench__name_of(s).hash;
}

/* Answers whether A is the name B, kept with its hash and length. */
static inline bool wrench__name_is(const struct wrench__name *a, uint64_t hash, size_t len,
                                   const char *b)
{
	return a->hash == hash && a->len == len && memcmp(a->s, b, len) == 0;
}

/* A failure point: both its names, made and checked at the door. */
struct wrench__point {
	struct wrench__name category, feature;
};

/* Trigger files larger than this are refused: they are hand-written lists.
 * One byte less than 64 KiB: Go's bufio.Scanner, which Juju's agents read
 * the files with, fails on a line of 65536 bytes or more, so a larger file
 * could mean something here and nothing to them. */
#define WRENCH_MAX_FILE_SIZE 65535

/* Longest message handed to a logger; longer ones are cut. */
#define WRENCH_MAX_MESSAGE 1024

/* ---- log.c: the logger and the level filter ---------------------------- */

void wrench__log(enum wrench_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
bool wrench__log_wanted(enum wrench_log_level level);
/* Set while this thread is inside wrench_is_active() (api.c), so that a
 * call from a signal handler that interrupted it answers false instead of
 * waiting for a lock this thread holds. Cleared while a user's logger
 * runs (here) and while a line sleeps or kills (eval.c): no lock is held
 * then, and a logger or a handler may call the library. */
extern WRENCH_TLS bool wrench__in_call;
/* wrench_set_logger(), once the library is set up. */
void wrench__log_set_sink(wrench_log_fn *fn, void *ctx);
/* Sets the level filter; -1 silences everything. */
void wrench__set_log_threshold(int threshold);
/* Reads $WRENCH_LOG; called once, on first use. */
void wrench__log_init_from_env(void);
void wrench__log_atfork_prepare(void);
void wrench__log_atfork_parent(void);
void wrench__log_atfork_child(void);

/* ---- state.c: counters shared by every process on the machine -------- */

/* One line's counters: a slot of a state file, mapped shared, or a line's
 * own. 64 bytes, one cache line; the layout is the file format. */
struct wrench__counters {
	_Atomic uint64_t key;      /* the line it counts (0: never used, 1: freed) */
	_Atomic uint64_t category; /* the hash of its category's name; 0: not yet */
	_Atomic uint64_t calls;    /* calls that reached the line */
	_Atomic uint64_t draws;    /* chance draws made */
	_Atomic uint64_t fires;
	_Atomic int64_t last_fire_ns; /* CLOCK_REALTIME of the last fire; 0: none */
	_Atomic uint32_t last_pid;    /* the process that fired last */
	uint32_t reserved32;
	uint64_t reserved;
};

/* A line's calls and fires counted on one CPU: lines whose decisions do not
 * depend on a count add there, so that threads firing one point on several
 * CPUs do not fight over one cache line. A slot's totals add them all. */
struct wrench__shard {
	_Atomic uint64_t calls;
	_Atomic uint64_t fires;
};

/* A window of the state file: this many slots, then a row of their shards
 * per CPU slot, each row this many shards long (state_file.h). CPUs past
 * the shards share them, correctly. */
#define WRENCH__WINDOW_SLOTS 64u
#define WRENCH__SHARDS       4u

/* ---- parse.c: the trigger-file grammar --------------------------------- */

/* One valid line of a trigger file, with the counters that drive it. */
struct wrench__rule {
	const char *feature; /* points into the owning wrench__rules */
	unsigned line;       /* 1-based line number in the file */
	int32_t next_same;   /* the next line for the same feature, or -1 */
	/* Bits: a rule is 128 bytes, two to a cache line, and a file of
	 * 100,000 lines is that many rules. */
	bool fail : 1; /* returns true when it fires */
	bool has_slow : 1;
	bool has_chance : 1;
	bool process_scope : 1; /* scope=process: counted in this process alone */
	uint8_t kill_signal;    /* 0, or the signal sent when it fires */
	/* What a failing line tells its caller: errno= (0: none, EIO is
	 * told), and value= as written, percent-encoded and checked, at
	 * VALUE_AT bytes from FEATURE, VALUE_LEN bytes long (0: none; see
	 * wrench__rule_value()). Decoded only when a caller asks. */
	uint16_t errnum;
	uint16_t value_at, value_len;
	uint64_t slow_ns;          /* sleep when it fires (0: none) */
	uint64_t chance_threshold; /* fires when a 53-bit draw is below this */
	uint64_t every, first;     /* every == 0: no every/first */
	uint64_t after;
	uint64_t times; /* 0: no cap */
	uint64_t seed;  /* per-line seed for reproducible draws */
	int64_t until;  /* until=: never fires from this second (UTC) on; 0: none */
	/* The hash of the line's tokens; once wrench__rules_set_keys() ran,
	 * the key of its shared counters (never 0 or 1). */
	uint64_t key;

	/* The counters in use: a slot of the machine-wide state (state.c), or
	 * the line's entry of its rules' LOCAL when it counts per process, or
	 * NULL for a line that a count decides and that has no slot: it never
	 * fires (fail closed). wrench__parse_line() leaves it NULL for its
	 * caller to set; wrench__parse_rules() gives every line its LOCAL. */
	struct wrench__counters *counters;
	/* With a slot, for a line no count decides (no after=, every= or
	 * times=): its shard on the first CPU; the others follow, one table
	 * row of shards apart. NULL: everything counts in COUNTERS. */
	struct wrench__shard *shard;
	/* This process's fire log (eval.c): fires not yet logged, and when
	 * the next summary may be written (0: no fire logged yet). */
	_Atomic uint64_t log_pending;
	_Atomic int64_t log_next_ns;
};

_Static_assert(sizeof(struct wrench__rule) <= 128, "a rule stays two to a cache line");

/* The value= text of RULE as written (VALUE_LEN bytes, not terminated),
 * or NULL. The parser keeps it after the feature, in the line or in the
 * rules' copy of the names. */
static inline const char *wrench__rule_value(const struct wrench__rule *rule)
{
	return rule->value_len ? rule->feature + rule->value_at : NULL;
}

/* A message of wrench__parse_line() quotes a token whole up to this many
 * bytes, else its start and "...": a message has a bounded length. */
#define WRENCH__QUOTED_TOKEN_MAX 64
/* Room for the longest message of wrench__parse_line(), with its NUL
 * (tests/test_parse.c measures every kind at its longest). */
#define WRENCH__PARSE_ERROR_MAX 320

/* One line that did not parse, kept so that every user can report it. */
struct wrench__parse_error {
	unsigned line;
	char message[WRENCH__PARSE_ERROR_MAX];
};

/* A parsed trigger file: its valid lines in file order, and its bad ones. */
struct wrench__rules {
	size_t count;
	struct wrench__rule *rule;
	size_t error_count;
	struct wrench__parse_error *error;
	char *features; /* storage for every rule's feature */
	/* Features to their first line, open addressing: a file of many
	 * lines costs a call no more than a file of one. */
	int32_t *index;
	size_t index_mask;
	/* Per-process counters, one per line, for the lines that have no
	 * shared slot; NULL once every line has one. */
	struct wrench__counters *local;
	bool keyed; /* the keys are set */
};

/* The first line for FEATURE in RULES (follow next_same), or -1. */
int32_t wrench__rules_find(const struct wrench__rules *rules, const struct wrench__name *feature);

/*
 * Parses one line (without its line terminator). Returns 1 and fills RULE
 * when the line is a trigger, 0 when it is blank or a comment, -1 with a
 * message in ERR when it is malformed (WRENCH__PARSE_ERROR_MAX bytes hold
 * the longest). RULE's feature points into LINE.
 */
int wrench__parse_line(const char *line, size_t len, struct wrench__rule *rule, char *err,
                       size_t errlen);

/*
 * The tokens of a line, as the parser sees them: sets TOK and TOK_LEN to
 * the next white-space-separated token from *POS, or returns false at the
 * end of the line or at a comment. The first token is the feature.
 */
bool wrench__next_token(const char *line, size_t len, size_t *pos, const char **tok,
                        size_t *tok_len);

/*
 * Parses a whole file. Returns 0 and a new wrench__rules in *OUT (free it
 * with wrench__rules_free), or -ENOMEM. Malformed lines do not stop the
 * parse: they are listed in (*OUT)->error.
 */
int wrench__parse_rules(const char *text, size_t len, struct wrench__rules **out);
void wrench__rules_free(struct wrench__rules *rules);

/*
 * Why a wrench_is_active() argument can never match a trigger file, as a
 * phrase ("is empty", "contains white space", ...), or NULL when it can.
 * A feature can never match when it is empty, starts with #, or contains
 * white space or a control character; a category (already a valid file
 * name) when it starts or ends with white space or contains a control
 * character.
 */
const char *wrench__feature_problem(const char *feature);
const char *wrench__category_problem(const char *category);

/* Parsers of the directive values, shared with the wrench command. */
int wrench__parse_uint(const char *s, size_t len, uint64_t *out);
/* errno=: a name of <errno.h> that glibc knows, in any case (and the
 * aliases EWOULDBLOCK, EDEADLOCK, ENOTSUP), or a number from 1 to
 * WRENCH__ERRNO_MAX. -EINVAL: an unknown name; -ERANGE: a bad number. */
#define WRENCH__ERRNO_MAX 4095
int wrench__parse_errno(const char *s, size_t len, int *errnum);
/* value=: checks TEXT as written (no control character, %XX escapes
 * only, no %00) and gives the length it decodes to; -EINVAL otherwise,
 * -ERANGE when that is over WRENCH_VALUE_MAX. */
int wrench__check_value(const char *s, size_t len, size_t *decoded_len);
/* Decodes checked TEXT into OUT (WRENCH_VALUE_MAX + 1 bytes), with its
 * NUL; returns the decoded length. */
size_t wrench__value_decode(const char *s, size_t len, char *out);
int wrench__parse_duration(const char *s, size_t len, uint64_t *ns);
int wrench__parse_chance(const char *s, size_t len, double *p);
int wrench__parse_signal(const char *s, size_t len, int *sig);
/* An instant "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC) as Unix seconds. */
int wrench__parse_time(const char *s, size_t len, int64_t *seconds);
/* Writes Unix SECONDS as "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with the NUL). */
void wrench__format_time(int64_t seconds, char *buf, size_t len);
/* Writes a duration the way a person would, e.g. "1.5s" or "250ms". */
void wrench__format_duration(uint64_t ns, char *buf, size_t len);

/* ---- errno_names.c: the names errno= takes ----------------------------- */

/* The name glibc gives ERRNUM ("ENOSPC"), or NULL for a number it has
 * none for. */
const char *wrench__errno_name(int errnum);
/* ERRNUM by NAME, in any case, aliases included; 0 when unknown. */
int wrench__errno_by_name(const char *name, size_t len);
/* Every name, in the order of their numbers (aliases last), and how many:
 * for a "did you mean" and the list in a message. */
const char *const *wrench__errno_names(size_t *count);

/* ---- nearest.c: "did you mean" ------------------------------------------ */

/* Names longer than this are never suggested, nor compared: the distance
 * is computed on the stack, without allocating. */
#define WRENCH__NEAREST_MAX_LEN 255
/* The most edits a suggestion may be away from the word. */
#define WRENCH__NEAREST_MAX_EDITS 2

/*
 * The optimal string alignment distance between A and B (bytes): the
 * fewest insertions, deletions, substitutions and swaps of two neighbours
 * that turn one into the other, no substring being edited twice. Returns
 * MAX + 1 as soon as it is known to be more than MAX, and when either is
 * longer than WRENCH__NEAREST_MAX_LEN.
 */
size_t wrench__edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t max);

/*
 * The CANDIDATES nearest WORD, for a "did you mean": into OUT, up to
 * MAX_OUT of those at the smallest distance, in the order of CANDIDATES,
 * each once. Returns how many, 0 when none is near: a suggestion is at
 * most WRENCH__NEAREST_MAX_EDITS edits away and at fewer than half of
 * WORD's length (so a short word gets no far-fetched suggestion). A
 * candidate equal to WORD is at distance 0, and is the only one returned.
 */
size_t wrench__nearest(const char *word, const char *const *candidates, size_t count,
                       const char **out, size_t max_out);

/* ---- trust.c: which files are honoured --------------------------------- */

/* What identifies one version of a file; any difference is a change. */
struct wrench__identity {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_sec, mtime_nsec;
	int64_t ctime_sec, ctime_nsec;
};

/* What a descriptor opened by the trust checks is. */
enum wrench__opened { WRENCH__ANCESTOR, WRENCH__DIR, WRENCH__FILE };

/* One broken rule: the message, and what it was found on. */
struct wrench__problem {
	enum wrench_log_level level;
	const char *path; /* what is wrong; valid during a report callback only */
	char message[WRENCH_MAX_MESSAGE];
	struct wrench__identity where;
};

/*
 * One trust check in progress. The library stops at the first broken rule
 * (report == NULL); a lint, such as the wrench command's check, sets
 * report and is told of every broken rule it can find.
 */
struct wrench__trust {
	struct wrench__problem first; /* valid when problems > 0 */
	unsigned problems;
	void (*report)(const struct wrench__problem *problem, void *ctx);
	void *ctx;
	/* The agent's uid, when it is not this process's euid (the wrench
	 * command checks files for an agent running as another user). */
	bool for_uid;
	uid_t uid;
	/* Told of each descriptor the checks open, before anything is
	 * checked on it, so that a watch set on it misses no later change:
	 * an ancestor (NEXT: the name under it that leads on), the trigger
	 * directory (NEXT: NULL) or a trigger file (NEXT: its name). */
	void (*opened)(int fd, enum wrench__opened what, const char *next, void *ctx);
	void *opened_ctx;
};

/* The checked contents of one trigger file. */
struct wrench__file {
	char *data; /* malloc'ed, not NUL-terminated; the caller frees it */
	size_t len;
	struct wrench__identity id;
	/* Where it was read (set by the loader, borrowed): the trusted
	 * directory, whose state sub-directory holds the line counters. */
	int dirfd;
	const char *dir;
	uint64_t epoch; /* the state epoch (wrench__watch_epoch()) when DIRFD was
	                 * opened; 0: none */
};

/*
 * Opens the trigger directory PATH (absolute) by walking it with
 * descriptors from "/", checking it and every ancestor. Returns a
 * close-on-exec descriptor, or a negative errno with the problem in T:
 * -ENOENT when it does not exist, another errno when it is not trusted.
 */
int wrench__trust_open_dir(const char *path, struct wrench__trust *t);

/* What wrench__trust_make_dir() creates, and what it did. */
struct wrench__make_dir {
	bool create;        /* false: only walk, as wrench__trust_open_dir */
	mode_t parent_mode; /* of missing ancestors */
	mode_t mode;        /* of the trigger directory, when it is missing */
	bool created;       /* out: the trigger directory itself was created */
	/* A lint that reads what it refuses: the descriptor of a directory
	 * that the walk reached is returned despite owner or mode problems
	 * (counted in T); the caller must look at T->problems. */
	bool keep_untrusted;
};

/*
 * wrench__trust_open_dir() for a writer (the wrench command): walks PATH
 * the same way, creating each missing component with mkdirat() under its
 * parent once that parent has passed the checks, and checks what it
 * creates as it checks what it finds. Nothing is created under a directory
 * that is not trusted. MAKE NULL, or MAKE->create false, creates nothing.
 */
int wrench__trust_make_dir(const char *path, struct wrench__make_dir *make,
                           struct wrench__trust *t);

/* The rules a file or directory that an agent of uid AGENT reads breaks
 * (docs/security.md), 0 when none: its owner is neither root nor AGENT
 * (WRENCH__BAD_OWNER); group or others may write it (WRENCH__BAD_MODE),
 * which an ancestor may allow with the sticky bit (STICKY_OK). Every check
 * of an owner or a mode, of trigger files and of counters, asks this. */
#define WRENCH__BAD_OWNER 1u
#define WRENCH__BAD_MODE  2u
struct stat;
unsigned wrench__owner_mode_broken(const struct stat *st, uid_t agent, bool sticky_ok);

/* Writes S into BUF as one shell word, quoted when it holds anything but
 * letters, digits and "/._+-,:@%=", so that a suggested command is safe to
 * paste. Returns the length needed, as snprintf() does. */
size_t wrench__shell_quote(const char *s, char *buf, size_t size);
/* Quotes, with wrench__shell_quote, every PATH in the fix part ("; fix: ...")
 * of MESSAGE (SIZE bytes), in place. */
void wrench__quote_fix(char *message, size_t size, const char *path);

/*
 * Opens, checks and reads the trigger file NAME inside the directory DIRFD;
 * PATH names it in messages. Returns 0 and fills FILE, or a negative errno
 * with the problem in T: -ENOENT when there is no such file, another errno
 * when it is not trusted or cannot be read. A lint also gets the contents
 * of an untrusted file when they can be read. FILE->data is always the
 * caller's to free, NULL or not.
 */
int wrench__trust_read_file(int dirfd, const char *name, const char *path,
                            struct wrench__file *file, struct wrench__trust *t);

/* Answers whether NAME can be a category: one path component, not the
 * state directory. */
bool wrench__category_is_valid(const char *name);

/* Errors that say nothing about the files, only that the process ran
 * short for a moment: the call answers false and remembers nothing, so
 * that the next one looks again. Cached, one EMFILE would leave a point
 * inactive until its file changed. */
static inline bool wrench__is_transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -EINTR ||
	       err == -EAGAIN || err == -ENOBUFS;
}

/* ---- state.c: the machine-wide state files -------------------------- */

/* The sub-directory of the trigger directory that holds the state files,
 * one per agent user; it is no category. */
#define WRENCH_STATE_DIR ".wrench-state"

struct wrench__state;

/* Where a state is opened: the trigger directory, as a trusted descriptor
 * and as a path for messages, and whose files it may trust. */
struct wrench__state_where {
	int dirfd;
	const char *dir;
	bool for_uid; /* trust UID's files rather than this process's euid's */
	uid_t uid;
	bool create; /* create what is missing */
	uid_t owner; /* with create: the owner given to what is created */
	gid_t group;
	bool chown;
	/* Make the state directory searchable by others (0711), for an agent
	 * that is not root and does not own it (the wrench command's
	 * --owner); created, it is 0700. */
	bool open_up;
};

/*
 * Opens the counters of CATEGORY: the state file of the agent's user in the
 * trigger directory (created when WHERE allows), mapped, seen through
 * CATEGORY's slots; a NULL CATEGORY sees every slot. WHERE's dirfd must
 * stay open while the state is used: claims grow the file through it. Returns 0 and *OUT, or
 * a negative errno with the problem in WHY (WHY->level DEBUG for a state
 * that does not exist and was not to be created).
 */
int wrench__state_open(const struct wrench__state_where *where, const char *category,
                       struct wrench__state **out, struct wrench__problem *why);
void wrench__state_close(struct wrench__state *state);
/* The state directory, created when WHERE allows and opened up as it asks,
 * checked, as a descriptor that can be read and locked (the wrench
 * command's lock: nobody who cannot read it can take it). */
int wrench__state_dir(const struct wrench__state_where *where, struct wrench__problem *why);
/* The same, as a descriptor for reaching files in it only (O_PATH), which
 * an agent that does not own it can get; PATH (LEN bytes) gets its path. */
int wrench__state_dir_reach(const struct wrench__state_where *where, char *path, size_t len,
                            struct wrench__problem *why);
/* Gives the file FD blocks for [OFFSET, OFFSET + LEN), extending it, so
 * that no store to a mapping of them can raise SIGBUS on a full disk. */
int wrench__state_reserve(int fd, size_t offset, size_t len);
/* Whether ADDR lies in a state file mapped now (the first few mappings of
 * the process only). Async-signal-safe: the wrench command's SIGBUS
 * handler asks it. */
bool wrench__state_maps(const void *addr);

/* Errors that are a shortage, never remembered: those of
 * wrench__is_transient() and a full disk or quota. */
bool wrench__state_shortage(int err);

/* Sets the key of every line of RULES: its text and its occurrence among
 * identical lines, so that two identical lines are two lines. */
int wrench__rules_set_keys(struct wrench__rules *rules);

/* The slot of the line KEY of the state's category; CLAIM: take a free one
 * when there is none, growing the file when there is no room. NULL when
 * there is none (wrench__state_claim_error() then says why a claim
 * failed: -ENOSPC, -EAGAIN while another process grows the file...). */
struct wrench__counters *wrench__state_slot(struct wrench__state *state, uint64_t key, bool claim);
int wrench__state_claim_error(const struct wrench__state *state);

/* Whether RULE's decision depends on a count at machine scope (times=,
 * every=, first=, after=): without a slot it never fires. */
bool wrench__rule_needs_counts(const struct wrench__rule *rule);

/* Points the counters of RULES' lines at their slots, claiming free ones.
 * Lines with scope=process keep their own; a line left without a slot
 * stays off when a count decides it, else counts per process. Returns how
 * many lines were left without one. */
size_t wrench__state_attach(struct wrench__state *state, struct wrench__rules *rules);
/* What wrench__state_attach() does to lines when there is no state: the
 * same for every line not counted per process, which it returns. */
size_t wrench__rules_close_counted(struct wrench__rules *rules);

/* The library's side: attaches RULES to the state of CATEGORY in the
 * trusted directory DIRFD (DIR for messages), creating it when it may.
 * EPOCH (the state epoch of wrench__watch_epoch(), 0: none) says whether
 * the directory is unchanged since the last load, when its mapped state
 * can be used again. Returns the state for the snapshot to hold, or NULL
 * (none needed, or none usable: said once). *MISSING: some line that
 * counts machine-wide has no slot; the state is to be tried again at
 * wrench__state_next_try_ms(). */
struct wrench__state *wrench__state_load(int dirfd, const char *dir, uint64_t epoch,
                                         const struct wrench__name *category,
                                         struct wrench__rules *rules, bool *missing);
/* When a state that failed may be tried again (CLOCK_MONOTONIC_COARSE ms;
 * 0: at once), and whether that time has come. */
uint64_t wrench__state_next_try_ms(void);
bool wrench__state_retry_due(void);
/* Another directory: its state is tried at once. */
void wrench__state_forget_failures(void);

/* A slot's counts, its shards added. */
struct wrench__totals {
	uint64_t calls, draws, fires;
};
void wrench__state_totals(const struct wrench__state *state, const struct wrench__counters *slot,
                          struct wrench__totals *out);

/* Calls FN for each slot in use of the state's category (every slot in use
 * without one); the command's garbage removal. */
typedef void wrench__slot_fn(struct wrench__state *state, struct wrench__counters *slot, void *ctx);
void wrench__state_each(struct wrench__state *state, wrench__slot_fn *fn, void *ctx);
/* Zeroes SLOT's counters (a re-arm), or frees it too (FREE_IT). */
void wrench__slot_reset(struct wrench__state *state, struct wrench__counters *slot, bool free_it);
/* The hash a slot keeps of its category's name, and the key it keeps of
 * the line LINE (a key of wrench__rules_set_keys()) of CATEGORY. */
uint64_t wrench__state_category_hash(const char *category);
uint64_t wrench__state_line_key(const char *category, uint64_t line);

/* This process's id, without a system call once known; a child forgets
 * its parent's. */
uint32_t wrench__pid(void);
void wrench__pid_atfork_child(void);
/* Around fork() (fork.c): the mapped state file's lock, and the lock of
 * the problems told once. */
void wrench__state_mapped_atfork_prepare(void);
void wrench__state_mapped_atfork_parent(void);
void wrench__state_mapped_atfork_child(void);
void wrench__state_told_atfork_prepare(void);
void wrench__state_told_atfork_parent(void);
void wrench__state_told_atfork_child(void);

/* ---- points.c: the points reached on this machine ----------------------- */

/* Attaches the file of points reached in the trusted trigger directory
 * DIRFD (DIR; EPOCH: the state epoch of wrench__watch_epoch(), 0: none),
 * creating it when this process may: a load calls it once it has walked
 * there. A problem is logged once, and the file tried again later. */
void wrench__points_attach(int dirfd, const char *dir, uint64_t epoch);
/* Lets go of the file: a load found no trigger directory. */
void wrench__points_detach(void);
/* Records that this process asked about P, when a file is attached and P
 * was not stamped in the last few seconds; never fails a call. */
void wrench__points_reached(const struct wrench__point *p);
void wrench__points_atfork_prepare(void);
void wrench__points_atfork_parent(void);
void wrench__points_atfork_child(void);

/* ---- random.c: chance draws --------------------------------------------- */

/* Reads $WRENCH_SEED: 0, -ENOENT when unset, -EINVAL (logged) when bad. */
int wrench__seed_from_env(uint64_t *seed);
/* Per-line seed, from the global seed, the category (its name's hash) and
 * the line number. */
uint64_t wrench__seed_for_line(uint64_t seed, uint64_t category_hash, unsigned line);
/* A child must not replay its parent's unseeded draws: call in the child. */
void wrench__random_atfork_child(void);
/* The K-th draw of a seeded line, or a fresh one from this thread's
 * generator (seeded from the system). */
uint64_t wrench__draw(const struct wrench__rule *rule, bool seeded, uint64_t k);

/* ---- eval.c: deciding and acting ---------------------------------------- */

/* What evaluate needs to know of the file it works on. */
struct wrench__context {
	const char *category;
	const char *path; /* the trigger file, for messages */
	bool seeded;
};

/* Evaluates the lines of one feature in file order, from FIRST (as
 * wrench__rules_find gives it), sleeping or killing as the lines that fire
 * say. Returns the line that ended the call (a failing line, or a kill
 * the process survived), or NULL when none did: the call does not fail. */
const struct wrench__rule *wrench__evaluate(struct wrench__rules *rules, int32_t first,
                                            const struct wrench__context *ctx);

/* What RULE, the line that ended a call, tells the caller: returns its
 * errno (EIO when it names none) and, when OUT is not NULL, fills it as
 * wrench_fault() does. The only place a call's payload is made, from the
 * one decision its evaluation took. */
int wrench__rule_tell(const struct wrench__rule *rule, struct wrench_fault *out);

/* Called for each line that fires, in file order. */
typedef void wrench__fire_fn(struct wrench__rule *rule, void *ctx);

/* The decisions of wrench__evaluate() without its actions, for callers that
 * report rather than act (the wrench command's eval): calls FIRE for each
 * line that fires; returns true when one that fails or kills ended it. */
bool wrench__evaluate_each(struct wrench__rules *rules, const char *feature, bool seeded,
                           wrench__fire_fn *fire, void *ctx);
const struct wrench__rule *wrench__evaluate_from(struct wrench__rules *rules, int32_t first,
                                                 bool seeded, wrench__fire_fn *fire, void *ctx);

/* Answers whether every line of a feature, from FIRST, has an until= that
 * has passed: none of them can fire again (unless the clock is set back,
 * which the library does not follow: such a point stays off). */
bool wrench__rules_expired(const struct wrench__rules *rules, int32_t first);

/* Answers whether RULE fires on this call, counting the call. */
bool wrench__rule_fires(struct wrench__rule *rule, bool seeded);

/* The fire log's period: the first fire of a line is logged, later ones
 * summed once per period; 0 logs every fire. 10 s unless set. */
void wrench__set_fire_log_period_ns(int64_t ns);

/* Says what a line does when it fires, in at most WRENCH__ACTION_MAX
 * bytes: "fail", "fail (errno ENOSPC, value=disk%20full)", "slow 1.5s,
 * then kill (SIGTERM)"... */
#define WRENCH__ACTION_MAX 224
void wrench__describe_action(const struct wrench__rule *rule, char *buf, size_t len);

/* ---- told.c: problems told once, at a bounded rate ---------------------- */

#define WRENCH__TOLD_RECENT 64

/* The problems logged lately, and the rate limit; guarded by the owner's
 * lock (the cache's). */
struct wrench__told {
	uint64_t recent[WRENCH__TOLD_RECENT];
	unsigned next;
	uint64_t tokens_ms; /* the rate limit's bucket was full at this time */
	unsigned suppressed;
};

/* Answers whether WHY, in EPISODE of what it is about, is to be logged at
 * LEVEL, and records it: the level is wanted, it is not one of the problems
 * logged lately, and the rate limit allows it. */
bool wrench__told_is_news(struct wrench__told *t, uint64_t episode,
                          const struct wrench__problem *why, enum wrench_log_level level);
/* Takes the count of problems the rate limit held back, when NEWS is to be
 * logged (0 otherwise). */
unsigned wrench__told_take_suppressed(struct wrench__told *t, bool news);
/* Forgets what was told (a new directory: its problems are news). */
void wrench__told_forget(struct wrench__told *t);
/* Logs WHY, after a line saying how many problems were held back. */
void wrench__told_log(const struct wrench__problem *why, unsigned suppressed);
void wrench__told_log_suppressed(unsigned suppressed);

/* ---- cache.c: parsed files, kept while they do not change ------------- */

/* A parsed file version shared by the calls that use it. */
struct wrench__snapshot {
	_Atomic unsigned refs;
	char *path; /* the trigger file, for messages */
	struct wrench__identity id;
	uint64_t content_hash;
	bool seeded;
	struct wrench__rules *rules;
	struct wrench__state *state; /* the machine-wide counters; NULL: none */
	/* A line that counts machine-wide has no slot: this version is not
	 * reused once the state may be tried again. */
	bool state_missing;
};

/* What a query saw of the cache before its I/O. What it learnt is stored
 * only if nothing was stored for the category since, so that a slow call
 * never overwrites what a later one found. */
struct wrench__ticket {
	uint64_t generation; /* of the whole cache: set_dir, set_seed */
	uint64_t version;    /* of the category's entry */
};

/* Copies the directory in force into DIR and takes a ticket for CATEGORY.
 * Returns 0, -ENOENT when there is no usable directory, or -ENOMEM (a
 * passing shortage, which says nothing about the directory). */
int wrench__cache_begin(const struct wrench__name *category, char *dir, size_t len,
                        struct wrench__ticket *t);

/*
 * Returns a referenced snapshot of FILE, the category's trigger file: the
 * cached one when the file has not changed, else a new one, cached when
 * the ticket is still current. Sets *STALE (and returns NULL) when another
 * call stored a different version meanwhile: the caller looks again.
 * NULL without *STALE when memory runs out.
 */
struct wrench__snapshot *wrench__cache_acquire(const struct wrench__name *category,
                                               const char *path, const struct wrench__ticket *t,
                                               const struct wrench__file *file, bool *stale);
/* Parses FILE into a snapshot that is not cached; NULL when out of memory. */
struct wrench__snapshot *wrench__snapshot_private(const struct wrench__name *category,
                                                  const char *path,
                                                  const struct wrench__file *file);
void wrench__snapshot_hold(struct wrench__snapshot *snapshot);
void wrench__snapshot_put(struct wrench__snapshot *snapshot);

/* The directory or the file is missing or refused: forget the counters
 * that depended on it, and log the problem once while it lasts (rate
 * limited). */
void wrench__cache_dir_problem(const struct wrench__ticket *t, const struct wrench__problem *why);
void wrench__cache_file_problem(const struct wrench__name *category, const struct wrench__ticket *t,
                                const struct wrench__problem *why);
/* A passing shortage (descriptors, memory, an interrupted call) stopped a
 * load: nothing is forgotten or remembered; logged once, as WARN. */
void wrench__cache_transient_problem(const struct wrench__problem *why);

/* Reads the environment ($WRENCH_DIR, $WRENCH_SEED); called once. */
void wrench__cache_init(void);
/* 0, or -EINVAL / -ENAMETOOLONG for a path wrench_set_dir() refuses. */
int wrench__check_dir_path(const char *path);
/* The state behind wrench_set_dir(), wrench_get_dir(), wrench_set_seed();
 * setting either forgets every cached file and counter (the caller then
 * resets what depends on them: change detection, the state's failures). */
int wrench__set_dir(const char *path);
const char *wrench__get_dir(void);
void wrench__set_seed(const uint64_t *seed);
void wrench__cache_atfork_prepare(void);
void wrench__cache_atfork_parent(void);
void wrench__cache_atfork_child(void);

/* ---- query.c ----------------------------------------------------------- */

struct wrench__recall; /* quiet.h */

/* The whole query behind wrench_is_active(), wrench_error() and
 * wrench_fault(), for a point made at the door: from the view that change
 * detection keeps current when it knows the category, else a load. R: the
 * caller's record of the point (a call site's, or a thread's memory of a
 * name), kept up to date; NULL: none. Returns 0 when the point does not
 * fire, else the errno its line tells, with OUT filled if not NULL. */
int wrench__query(const struct wrench__point *point, struct wrench__recall *r,
                  struct wrench_fault *out);
/* Forgets what R remembers. */
void wrench__recall_clear(struct wrench__recall *r);
/* Whether this thread is inside an evaluation (a logger calling back). */
bool wrench__query_nested(void);

/* What loading a category found. */
enum wrench__outcome {
	WRENCH__LOADED,        /* a snapshot of the file */
	WRENCH__FILE_UNUSABLE, /* no file, or one refused: the category is inactive */
	WRENCH__DIR_UNUSABLE,  /* no usable directory: every category is inactive */
	WRENCH__RETRY,         /* nothing that may be remembered: look again next time */
};

void wrench__query_atfork_prepare(void);
void wrench__query_atfork_parent(void);
void wrench__query_atfork_child(void);

/* ---- watch.c: change detection ------------------------------------------ */

/* Whether change detection runs; while it does not, every call loads. */
bool wrench__watch_running(void);
/* A number that stays the same while no change to the trigger directory
 * or its ancestors has been seen; 0 when detection cannot tell (not
 * running, or a watch failed). *STATE_EPOCH: the same, counting changes to
 * the entry of the state directory too. */
uint64_t wrench__watch_epoch(uint64_t *state_epoch);
/* The hot path's wrench__watch_refresh() is inline: quiet.h. */

/* One load of a category, watched: what change detection saw before it,
 * and what it found while the trust checks opened what they check. */
struct wrench__watching {
	uint64_t before, before_category;
	int failed; /* 0, or the errno of a watch that could not be set */
	/* The load's lines lack counters: load again at RETRY_MS (0: soon). */
	bool retry;
	uint64_t retry_ms;
};

/* Before a load of CATEGORY: starts the detection on first use, and sets
 * TRUST's hook so that everything the checks open is watched before it is
 * checked. */
void wrench__watch_begin(const struct wrench__name *category, struct wrench__watching *load,
                         struct wrench__trust *trust);
/* After it: tells the view what the load found (OUTCOME, SNAPSHOT) when no
 * change came in meanwhile. */
void wrench__watch_end(const struct wrench__name *category, struct wrench__watching *load,
                       struct wrench__snapshot *snapshot, enum wrench__outcome outcome);
/* Forgets every watch and what the view knew: for set_dir and set_seed. */
void wrench__watch_reset(void);
void wrench__set_recheck_ms(unsigned ms);
void wrench__watch_init_from_env(void);
void wrench__watch_atfork_prepare(void);
void wrench__watch_atfork_parent(void);
void wrench__watch_atfork_child(void);

/* ---- ring.c: strict mode with no system call (io_uring) ---------------- */

/* The hot path's check, wrench__ring_quiet(), is inline: quiet.h. */
/* The strict slow path, with the watch lock held: makes the ring on first
 * use, drains it (its owner) or takes it over (after many slow calls by
 * other threads), and always has READ_EVENTS read and apply what inotify
 * holds (INOTIFY_FD, which the ring polls). */
void wrench__ring_refresh(int inotify_fd, void (*read_events)(void));
/* Change detection stopped: lets go of the ring (made again on restart). */
void wrench__ring_stop(void);
/* Whether a ring serves strict mode now, and whether the calling thread
 * owns it (tests, diagnostics). */
bool wrench__ring_active(void);
bool wrench__ring_is_owner(void);
/* Logs, once the caller holds no lock, why the ring went off, if it did. */
void wrench__ring_tell(void);
/* Reads $WRENCH_IO_URING (0: off); called once. */
void wrench__ring_init_from_env(void);
void wrench__ring_atfork_prepare(void);
void wrench__ring_atfork_parent(void);
void wrench__ring_atfork_child(void);

/* ---- view.c: what is known current, for the lock-free hot path ---------- */

struct wrench__view;

/* Hands the view the functions that hold and let go of a snapshot (the
 * cache's); called once, at initialisation, before any view is made. */
void wrench__view_init(void (*hold)(struct wrench__snapshot *),
                       void (*put)(struct wrench__snapshot *));

/* The current view. Not NESTED: held by this thread until a newer one is
 * published, never to be released. NESTED (a call made during an
 * evaluation on this thread): a reference of the caller's, to release. */
struct wrench__view *wrench__view_acquire(bool nested);
void wrench__view_release(struct wrench__view *view);
/* A number no other view has had or will have. */
uint64_t wrench__view_serial(const struct wrench__view *view);
/* Answers whether the view knows CATEGORY, and if so its snapshot (NULL:
 * inactive). */
bool wrench__view_lookup(const struct wrench__view *view, const struct wrench__name *category,
                         struct wrench__snapshot **snapshot);
/* The serial of the current view is in quiet.h (wrench__hot.view_now). */
/* Changes, each published as a new view. */
int wrench__view_set(const struct wrench__name *category, struct wrench__snapshot *snapshot);
void wrench__view_forget(const struct wrench__name *category);
void wrench__view_forget_all(void);
void wrench__view_set_dir_unusable(void);
void wrench__view_atfork_prepare(void);
void wrench__view_atfork_parent(void);
void wrench__view_atfork_child(void);

/* ---- fork.c: the library's locks around fork() ------------------------- */

/* The fork handlers, made from the one list of the library's locks in the
 * order they nest; registered once, by the setup in api.c. */
void wrench__fork_prepare(void);
void wrench__fork_parent(void);
void wrench__fork_child(void);

#endif /* WRENCH_INTERNAL_H */
