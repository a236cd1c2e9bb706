/*
 * The wrench command: shared declarations of its small files. The command
 * is a thin layer over the library: it parses with wrench__parse_line and
 * judges files with the library's trust checks, so that it can never
 * disagree with an agent about what a file means.
 */
#ifndef WRENCH_CLI_H
#define WRENCH_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "internal.h"

/* Exit codes (wrench(1)). */
enum {
	EXIT_OK = 0,
	/* check found problems; list showed ignored lines; eval never fired;
	 * unset found nothing to remove; set wrote a file the agent ignores */
	EXIT_PROBLEMS = 1,
	EXIT_USAGE = 2, /* bad usage or bad input: nothing was changed */
};

struct options {
	char dir[PATH_MAX];
	bool dir_given; /* --dir, so that a suggested command repeats it */
	bool json;
	unsigned long count; /* eval -n */
	bool has_owner;      /* --owner given, or implied */
	bool owner_implied;  /* root in a directory of another user: its owner */
	uid_t owner_uid;
	gid_t owner_gid;
	gid_t *owner_groups; /* every group of the agent's user */
	int owner_ngroups;
	char **argv; /* the command line, for "sudo wrench ..." */
	int argc;
	unsigned long fires; /* wait --fires */
	uint64_t timeout_ns; /* wait --timeout */
	uint64_t for_ns;     /* set --for: 0 when not given */
	bool expired;        /* clear --expired */
	const char *binary;  /* points, set, check: --binary */
};

/* Prints "wrench: MESSAGE" on stderr, control characters escaped. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Says "cannot WHAT PATH: ERROR" (ERR a negative errno), with "sudo" and
 * this command line as the fix when only root may do it. */
void cannot(const struct options *o, int err, const char *what, const char *path);

/* ---- escape.c: names in output ---------------------------------------- */

/* Writes TEXT for a terminal: control characters (C0, DEL, C1) and bytes
 * that are not UTF-8 as \xNN; the rest as is. */
void print_escaped(FILE *out, const char *text, size_t len);
void print_escaped_string(FILE *out, const char *text);
/* Formats one line and writes it escaped, with its newline. */
void print_line(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* S as one shell word (quoted when needed), malloc'ed; NULL when out of
 * memory. */
char *quoted(const char *s);

/* "wrench" with the --dir of this run when it is not the default: the
 * start of a suggested command. Malloc'ed; NULL when out of memory. */
char *wrench_command(const struct options *o);

/* The command line of this run, prefixed with "sudo ": the fix of a
 * refusal that only root can get past. Malloc'ed or NULL. */
char *sudo_command(const struct options *o);

/* ---- files.c: the trigger directory and atomic rewrites --------------- */

/* Path of NAME in the trigger directory, into BUF. */
const char *trigger_path(const struct options *o, const char *name, char *buf, size_t len);

/* The trigger directory, opened for writing. */
struct target {
	int fd;        /* a plain descriptor of the directory */
	int state_fd;  /* its state directory, checked */
	int lock_fd;   /* the lock file in it, locked */
	bool created;  /* by this command: it may be given to --owner's user */
	uid_t dir_uid; /* its owner */
};

/* Opens the trigger directory for a change, walking it with the library's
 * checks for the agent (creating what is missing when CREATE), and locks
 * it against other wrench commands. Returns 0, -ENOENT when it is missing
 * and not created (nothing said), or EXIT_USAGE after saying why nothing
 * may be changed there. */
int open_target(const struct options *o, bool create, struct target *target);
/* Lets go of the directory and of the lock. */
void close_target(struct target *target);

/* The current contents of a trigger file, for a rewrite. */
struct contents {
	char *data; /* NULL when there is no file */
	size_t len;
	uid_t uid;
};

/* Reads DIRFD/NAME for a rewrite, through the library's checks for the
 * agent: a line of a file that the agent would not trust is never carried
 * over into a file it trusts. Returns 0 (data NULL when missing), or
 * EXIT_USAGE after saying why the file may not be rewritten. */
int read_for_rewrite(const struct options *o, int dirfd, const char *name, struct contents *c);

/* Replaces DIRFD/NAME with DATA: a temporary file made as the rules of
 * wrench(1) say (owner and mode), fsync'ed and renamed into place. 0 or a
 * negative errno. */
int replace_file(int dirfd, const struct options *o, const struct target *target, const char *name,
                 const char *data, size_t len, const struct contents *old);

/* The command's lock file, in the state directory; no counters file has
 * that name. */
#define LOCK_FILE "lock"

/* ---- lock.c ------------------------------------------------------------- */

/* Takes the command's lock on the trigger directory DIRFD: the lock file
 * of its state directory (created, and opened up for a non-root agent,
 * OPEN_UP, when missing), waiting a bounded time for another holder; sets
 * TARGET's state_fd and lock_fd. 0, or EXIT_USAGE after saying why. */
int lock_dir(const struct options *o, int dirfd, bool open_up, struct target *target);

/* ---- lines.c: finding a feature's lines -------------------------------- */

/* Calls FN for each line of TEXT: the line without its "\n", whether it
 * had one, and whether it names FEATURE (a trigger line, or a malformed
 * one starting with it; never when FEATURE is NULL). */
typedef void line_fn(const char *line, size_t len, bool has_newline, bool names_feature, void *ctx);
void each_line(const char *text, size_t len, const char *feature, line_fn *fn, void *ctx);

/* A growing buffer for new file contents. */
struct buffer {
	char *data;
	size_t len, cap;
	bool failed;
};
void buffer_add(struct buffer *b, const char *data, size_t len);

/* ---- commands --------------------------------------------------------- */

int cmd_set(const struct options *o, const char *category, const char *feature,
            char *const directives[], int ndirectives);
int cmd_unset(const struct options *o, const char *category, const char *feature);
int cmd_clear(const struct options *o);
int cmd_list(const struct options *o, const char *category);
int cmd_check(const struct options *o);
int cmd_eval(const struct options *o, const char *category, const char *feature);
int cmd_hits(const struct options *o, const char *category);
int cmd_wait(const struct options *o, const char *category, const char *feature);
int cmd_reset(const struct options *o, const char *category, const char *feature);
int cmd_prepare(const struct options *o);
int cmd_points(const struct options *o, const char *category);

/* ---- points.c: the names of the points known -------------------------- */

/* What is known of the failure points: those reached on this machine (in
 * the trigger directory DIRFD; -1: none), and with --binary, those
 * compiled into it. NULL after saying why (out of memory, a binary that
 * cannot be read). */
struct point_names;
struct point_names *point_names_load(const struct options *o, int dirfd);
void point_names_free(struct point_names *k);
/* Says, through FN, what is wrong with a line naming CATEGORY/FEATURE: no
 * process reached it while others of its category were (WAITING: or at
 * all), the binary has no such point; each with the nearest names known.
 * Returns how many problems FN was given. */
typedef void point_problem_fn(const char *message, void *ctx);
size_t point_names_problems(const struct point_names *k, const char *category, const char *feature,
                            bool waiting, point_problem_fn *fn, void *ctx);

/* The same, for the trigger directory of O, reached by the walk. */
struct point_names *point_names_of(const struct options *o);
/* A point_problem_fn: "wrench: warning: CATEGORY/FEATURE: MESSAGE" on
 * stderr, escaped. */
struct point_warning {
	const char *category, *feature;
};
void warn_about_point(const char *message, void *ctx);

/* ---- hits.c: a category's lines with their counters -------------------- */

/* One category's trigger lines with their counters; NULL when it has no
 * readable trigger file (said, when it is refused; *MISSING, when not
 * NULL: none at all). The caller closes *STATE and frees the rules. */
struct wrench__rules *load_counted(const struct options *o, int dirfd, const char *category,
                                   struct wrench__state **state, bool *missing);
/* The shared counters of RULE: its slot, or NULL (none yet, or per process). */
struct wrench__counters *counters_of(struct wrench__state *state, const struct wrench__rule *rule);

/* ---- counters.c: the machine-wide counters ------------------------------- */

/* Fills the agent's side of W: its uid (--owner's, or this user's) for the
 * trust checks, and the owner given to what is created for it. */
void agent_of(const struct options *o, struct wrench__state_where *w);

/* The state of CATEGORY, judged as its agent judges it (--owner's uid, or
 * the owner of the trigger directory DIRFD); created when CREATE. NULL
 * when there is none, or it is refused (said on stderr). */
struct wrench__state *open_counters(const struct options *o, int dirfd, const char *category,
                                    bool create);
/* Judges the state of CATEGORY as open_counters() would, without saying
 * anything: 0 when it is usable or absent, else the problem in WHY. */
int judge_counters(const struct options *o, int dirfd, const char *category,
                   struct wrench__problem *why);
/* Parses TEXT with the keys of the lines' counters set; NULL (said) when
 * out of memory. */
struct wrench__rules *parse_keyed(const char *text, size_t len);
/* Re-arms LINE, just written into CATEGORY whose new contents are TEXT:
 * its counters start again from zero. The counters are created for the
 * agent, and every line of TEXT gets its slot. 0, or a negative errno
 * when some line has no counters (said on stderr): it will not fire. */
int rearm_line(const struct options *o, int dirfd, const char *category, const char *text,
               size_t len, const char *line);
/* Creates the agent's counters when they are missing. 0, or a negative
 * errno (said on stderr). */
int prepare_counters(const struct options *o, int dirfd);
/* Creates the agent's file of points reached when it is missing (beside
 * its counters, which an agent that does not own the state directory
 * cannot do). 0, or a negative errno (said on stderr). */
int prepare_points(const struct options *o, int dirfd);
/* Frees the counters of the lines CATEGORY no longer has, and its whole
 * state when it has no trigger file; for every category with a state. */
void tidy_counters(const struct options *o, int dirfd, const char *category);
/* SDFD: the state directory, checked, under the lock (the target's
 * state_fd). */
void tidy_all_counters(const struct options *o, int dirfd, int sdfd);
/* Removes every counters file (every agent user's) when the directory has
 * no category left: nothing is counted, and nothing is re-armed. */
void remove_counters_if_unused(int dirfd, int sdfd);
/* A duration: the trigger-file form (1.5s, 250ms, 30m) or whole hours and
 * days (2h, 7d). */
int parse_cli_duration(const char *text, uint64_t *ns);
int64_t now_seconds(void);
bool rule_is_expired(const struct wrench__rule *rule, int64_t now);

/* The library's trust checks, as the agent would make them (for --owner's
 * uid when given). With T->report set (a lint) every problem is reported,
 * else the first stays in T. */

/* Walks to the trigger directory. Returns a descriptor of it (LIST: a
 * plain one, for reading its entries; a lint gets one despite owner or
 * mode problems), or a negative errno: -ENOENT when it is missing. */
int open_checked_dir(const struct options *o, struct wrench__trust *t, bool list);

/* Judges the file NAME read through DIRFD, a descriptor from
 * open_checked_dir. FILE receives the contents when they can be read; the
 * caller frees them. 0 or the first problem's negative errno. */
int judge_file(const struct options *o, int dirfd, const char *name, struct wrench__trust *t,
               struct wrench__file *file);

/* ---- access.c: can the agent's user reach the file ---------------------- */

/* With --owner, makes T also report a directory the agent's user cannot
 * search and a file it cannot read, from the mode bits seen on the
 * descriptors the checks open; CTX lives as long as T is used. */
#define WALK_PATH_MAX (PATH_MAX + NAME_MAX + 2)

struct access_check {
	const struct options *o;
	struct wrench__trust *t;
	char path[WALK_PATH_MAX]; /* of what the walk opens next */
};

/* Follows the library's walk from its opened hook: PATH gets the path of
 * what was just opened (WHAT, NEXT as the hook has them), and WALKED, the
 * path the walk has reached, moves on past an ancestor. False when the
 * path is longer than the library accepts (it refuses it). */
bool walk_step(const struct options *o, enum wrench__opened what, const char *next,
               char walked[WALK_PATH_MAX], char path[WALK_PATH_MAX]);
void check_agent_access(const struct options *o, struct wrench__trust *t, struct access_check *ctx);

/* The names of the entries of the directory, in order; NULL-terminated,
 * free with free_names. NULL when they cannot be read. */
char **list_names(int dirfd);
void free_names(char **names);
/* A leftover of a wrench command, or of the library, interrupted before
 * its rename: a name that starts with ".#". */
bool is_temporary(const char *name);
/* A name that can be a category's trigger file: valid (the state
 * directory is not), and no leftover. */
bool is_category(const char *name);

/* The permission class ("u", "g" or "o") that applies to --owner's user
 * for a file with ST's owner and group, as the kernel picks it. */
const char *access_class(const struct options *o, const struct stat *st);

/* ---- agent.c: what the agent will meet, tried as the agent -------------- */

enum agent_finding_kind {
	AGENT_WALK,            /* the trigger directory cannot be reached */
	AGENT_READ,            /* a trigger file cannot be read */
	AGENT_WATCH,           /* a change is seen late: something cannot be watched */
	AGENT_COUNTERS,        /* the counters cannot be used: lines that count stay off */
	AGENT_COUNTERS_ABSENT, /* none yet, and the agent may make them (no finding) */
};

struct agent_finding {
	enum agent_finding_kind kind;
	char *path;    /* what it is about ("" when the message names it) */
	char *message; /* "...; fix: ..." */
};

struct agent_report {
	bool tried; /* the trial ran to its end as the agent */
	bool counters_absent;
	const char *counters_problem; /* one of the findings' messages, or NULL */
	struct agent_finding *finding;
	size_t count;
};

/* Forks a child that becomes the agent's user (--owner's, else this one)
 * and does what the library does at a first call: walks to the directory
 * (WATCHES: watching what it opens), reads each file of NAMES (NULL: none)
 * and opens its counters. 0 with R filled, or a negative errno (-EPERM:
 * only root can try as another user). Free R with free_agent_report. */
int try_as_agent(const struct options *o, char *const names[], bool watches,
                 struct agent_report *r);
void free_agent_report(struct agent_report *r);
/* What try_as_agent()'s error ERR means, for a message. */
const char *trial_error(int err);
/* Tries the setup as the agent (watches too) and says each finding as a
 * warning on stderr; REACH_TOLD: the lint already said why the agent
 * cannot reach something, which the trial would say again. Returns how
 * many were said. */
size_t warn_agent_findings(const struct options *o, char *const names[], bool reach_told);
/* Why the agent cannot use its counters, tried as the agent (from this
 * side, as its uid, when only root could try), malloc'ed; NULL when it can
 * (or will make them at its first call). */
char *agent_counters_problem(const struct options *o, int dirfd);

/* ---- missing.c: a category or a feature that nothing names ------------- */

/* Adds "; did you mean A or B?" to B for the NAMES nearest WORD, if any:
 * the one way the command words a suggestion. */
void add_nearest(struct buffer *b, const char *word, const char *const *names, size_t count);

/* Says that CATEGORY has no trigger file in the trigger directory DIRFD
 * (-1: the directory does not exist), then BECAUSE (NULL: nothing), with
 * the trigger files a few edits from it as "did you mean". */
void say_no_trigger_file(const struct options *o, int dirfd, const char *category,
                         const char *because);
/* Says that no line of CATEGORY's trigger file (RULES, its valid lines as
 * the agent reads them; NULL: none) names FEATURE, with LIST every feature
 * they name, then BECAUSE, and the ones a few edits from FEATURE as "did
 * you mean". */
void say_no_line_names(const struct options *o, const char *category, const char *feature,
                       const struct wrench__rules *rules, const char *because, bool list);

/* ---- sigbus.c ----------------------------------------------------------- */

/* From here on, a counters file cut short under the command ends it with
 * a message and EXIT_USAGE instead of a SIGBUS. */
void guard_mapped_files(const struct options *o);

/* ---- payload.c: what a failing line tells -------------------------------- */

/* Writes RULE's errno= and value= as JSON members, each after ", ":
 * "errno" (its number), "errno_name" (glibc's name for it) and "value"
 * (decoded), each null when the line has none, "errno_name" also for a
 * number glibc has no name for; all null for RULE NULL (a line that does
 * not parse). */
void json_payload(FILE *out, const struct wrench__rule *rule);
/* Answers whether the trigger line LINE (LEN bytes) has an errno= whose
 * name is none that errno= takes. */
bool line_has_unknown_errno(const char *line, size_t len);
/* Says on stderr every name errno= takes, in alphabetical order, in lines
 * of a terminal's width, each starting "wrench: ". */
void note_errno_names(void);

/* ---- json.c ----------------------------------------------------------- */

/* Writes S as a JSON string (quoted, escaped); NULL as null. */
void json_string(FILE *out, const char *s);
void json_string_n(FILE *out, const char *s, size_t len);

#endif
