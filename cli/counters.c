/*
 * The command's side of the machine-wide counters (wrench(5), COUNTERS):
 * opening a category's state as its agent would trust it, re-arming the
 * lines a command writes, and removing the counters of lines that are gone,
 * so that the state never grows without bound. The library only ever claims
 * slots; freeing them is done here, under the directory lock that every
 * editing command holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "points_file.h"

void agent_of(const struct options *o, struct wrench__state_where *w)
{
	w->for_uid = true;
	w->uid = o->has_owner ? o->owner_uid : geteuid();
	/* What is made for an agent of another user is given to it. */
	w->chown = o->has_owner && o->owner_uid != geteuid();
	w->owner = o->owner_uid;
	w->group = o->owner_gid;
}

int judge_counters(const struct options *o, int dirfd, const char *category,
                   struct wrench__problem *why)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = o->dir};
	struct wrench__state *state;

	agent_of(o, &w);
	int rc = wrench__state_open(&w, category, &state, why);
	wrench__state_close(state);
	return rc == -ENOENT ? 0 : rc;
}

struct wrench__state *open_counters(const struct options *o, int dirfd, const char *category,
                                    bool create)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = o->dir, .create = create};
	struct wrench__state *state;
	struct wrench__problem why;

	agent_of(o, &w);
	if (wrench__state_open(&w, category, &state, &why) == 0)
		return state;
	if (why.level != WRENCH_LOG_DEBUG)
		note("%s", why.message);
	return NULL;
}

struct wrench__rules *parse_keyed(const char *text, size_t len)
{
	struct wrench__rules *rules = NULL;

	if (wrench__parse_rules(text ? text : "", text ? len : 0, &rules) < 0 ||
	    wrench__rules_set_keys(rules) < 0) {
		wrench__rules_free(rules);
		note("out of memory");
		return NULL;
	}
	return rules;
}

/* ---- removing what no line counts in any more --------------------------- */

/* A growing, then sorted, set of 64-bit values. */
struct set {
	uint64_t *value;
	size_t count, capacity;
	bool failed;
};

static void set_add(struct set *set, uint64_t value)
{
	if (set->count == set->capacity && !set->failed) {
		size_t capacity = set->capacity ? 2 * set->capacity : 64;
		uint64_t *more = realloc(set->value, capacity * sizeof(uint64_t));
		if (more) {
			set->value = more;
			set->capacity = capacity;
		} else {
			set->failed = true;
		}
	}
	if (!set->failed)
		set->value[set->count++] = value;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static bool set_has(const struct set *set, uint64_t value)
{
	return set->count &&
	       bsearch(&value, set->value, set->count, sizeof(uint64_t), by_value) != NULL;
}

/* What stays: the slots of the lines that exist, and every slot of the
 * categories whose file the agent ignores. */
struct keep {
	struct set lines, categories;
};

static void free_unless_kept(struct wrench__state *state, struct wrench__counters *slot, void *ctx)
{
	const struct keep *keep = ctx;

	if (!set_has(&keep->lines, atomic_load(&slot->key)) &&
	    !set_has(&keep->categories, atomic_load(&slot->category)))
		wrench__slot_reset(state, slot, true);
}

/* Adds what CATEGORY keeps to KEEP: the slots of its lines, or, when the
 * agent ignores its file, all its slots (they stay until the file is
 * mended or removed); nothing when it has no file. */
static void keep_category(const struct options *o, int dirfd, const char *category,
                          struct keep *keep)
{
	struct wrench__trust t = {0};
	struct wrench__file file;
	int rc = judge_file(o, dirfd, category, &t, &file);
	struct wrench__rules *rules = rc == 0 ? parse_keyed(file.data, file.len) : NULL;

	free(file.data);
	if (rc == -ENOENT)
		return;
	if (!rules) {
		set_add(&keep->categories, wrench__state_category_hash(category));
		return;
	}
	for (size_t i = 0; i < rules->count; i++)
		if (!rules->rule[i].process_scope)
			set_add(&keep->lines, wrench__state_line_key(category, rules->rule[i].key));
	wrench__rules_free(rules);
}

/* Whether NAME is a state file of this version: counters-v3-UID. */
static bool is_state_file(const char *name)
{
	const char prefix[] = "counters-v3-";

	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return false;
	const char *uid = name + sizeof(prefix) - 1;
	return *uid && strspn(uid, "0123456789") == strlen(uid);
}

/* A state file left by a creation that was interrupted: renamed into place
 * within milliseconds when it goes well. */
static bool is_abandoned(int sdfd, const char *name)
{
	struct stat st;

	return strncmp(name, ".#state.", 8) == 0 &&
	       fstatat(sdfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_mtime < now_seconds() - 60;
}

/* Removes the state files of an earlier version, which no agent of this
 * one reads, and those abandoned while being created, from the state
 * directory SDFD (checked and locked): what is left is the files of the
 * agents' users, and those being created. */
static void remove_old_state_files(int sdfd)
{
	char **names = list_names(sdfd);

	for (size_t i = 0; names && names[i]; i++)
		if (!is_state_file(names[i]) && strcmp(names[i], LOCK_FILE) != 0 &&
		    (!is_temporary(names[i]) || is_abandoned(sdfd, names[i])))
			unlinkat(sdfd, names[i], 0);
	free_names(names);
}

/* Frees the slots of STATE (NULL: none) that KEEP does not keep; nothing
 * when KEEP could not be made whole. */
static void free_all_but(struct wrench__state *state, struct keep *keep)
{
	if (!state || keep->lines.failed || keep->categories.failed)
		return;
	if (keep->lines.count)
		qsort(keep->lines.value, keep->lines.count, sizeof(uint64_t), by_value);
	if (keep->categories.count)
		qsort(keep->categories.value, keep->categories.count, sizeof(uint64_t), by_value);
	wrench__state_each(state, free_unless_kept, keep);
}

static void free_keep(struct keep *keep)
{
	free(keep->lines.value);
	free(keep->categories.value);
}

void tidy_counters(const struct options *o, int dirfd, const char *category)
{
	struct keep keep = {0};

	keep_category(o, dirfd, category, &keep);
	struct wrench__state *state = open_counters(o, dirfd, category, false);
	free_all_but(state, &keep);
	wrench__state_close(state);
	free_keep(&keep);
}

/* One pass over the table for the whole directory: a pass per category
 * would read the table once per category. */
void tidy_all_counters(const struct options *o, int dirfd, int sdfd)
{
	remove_old_state_files(sdfd);
	char **list = list_names(dirfd);
	struct wrench__state *state = list ? open_counters(o, dirfd, NULL, false) : NULL;
	struct keep keep = {0};

	for (size_t i = 0; state && list[i]; i++)
		if (is_category(list[i]))
			keep_category(o, dirfd, list[i], &keep);
	free_all_but(state, &keep);
	wrench__state_close(state);
	free_keep(&keep);
	free_names(list);
}

void remove_counters_if_unused(int dirfd, int sdfd)
{
	char **list = list_names(dirfd);
	bool used = !list;

	for (size_t i = 0; list && list[i] && !used; i++)
		used = is_category(list[i]);
	free_names(list);
	if (used)
		return;
	char **names = list_names(sdfd);
	for (size_t i = 0; names && names[i]; i++) {
		struct stat st;
		if (strcmp(names[i], LOCK_FILE) != 0 &&
		    fstatat(sdfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
			unlinkat(sdfd, names[i], 0);
	}
	free_names(names);
}

/* ---- re-arming ------------------------------------------------------------ */

int rearm_line(const struct options *o, int dirfd, const char *category, const char *text,
               size_t len, const char *line)
{
	struct wrench__rule written;
	char err[WRENCH__PARSE_ERROR_MAX];

	if (wrench__parse_line(line, strlen(line), &written, err, sizeof(err)) <= 0)
		return 0;
	struct wrench__rules *rules = parse_keyed(text, len);
	if (!rules)
		return -ENOMEM;
	/* The keys replaced the hashes of the text: compare a fresh parse. */
	struct wrench__rules *plain = NULL;
	if (wrench__parse_rules(text, len, &plain) < 0) {
		wrench__rules_free(rules);
		return -ENOMEM;
	}
	/* The counters are made now, for the agent, and the line's slot
	 * claimed: an agent that could not make them (a full disk, a user
	 * who may not write here) would keep the line off, and a command
	 * that said nothing would be lying. */
	int rc = 0;
	struct wrench__state *state = open_counters(o, dirfd, category, true);
	/* The agent records the points it reaches beside its counters: a
	 * non-root one could not create that file itself. */
	if (state)
		prepare_points(o, dirfd);
	for (size_t i = 0; state && i < rules->count; i++) {
		if (rules->rule[i].process_scope)
			continue;
		struct wrench__counters *slot = wrench__state_slot(state, rules->rule[i].key, true);
		if (!slot && rc == 0) {
			rc = wrench__state_claim_error(state);
			note("%s/%s has no room for line %u of %s: %s", o->dir, WRENCH_STATE_DIR,
			     rules->rule[i].line, category, strerror(-rc));
		}
		if (slot && plain->rule[i].key == written.key)
			wrench__slot_reset(state, slot, false);
	}
	if (!state)
		rc = -EIO;
	wrench__state_close(state);
	wrench__rules_free(plain);
	wrench__rules_free(rules);
	return rc;
}

int prepare_counters(const struct options *o, int dirfd)
{
	struct wrench__state *state = open_counters(o, dirfd, NULL, true);

	wrench__state_close(state);
	return state ? prepare_points(o, dirfd) : -EIO;
}

int prepare_points(const struct options *o, int dirfd)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = o->dir, .create = true};
	struct wrench__problem why;
	struct stat st;

	agent_of(o, &w);
	int fd = wrench__points_open(&w, &st, &why);
	if (fd < 0) {
		note("%s", why.message);
		return fd;
	}
	close(fd);
	return 0;
}

/* ---- durations and instants ------------------------------------------------ */

int parse_cli_duration(const char *text, uint64_t *ns)
{
	size_t len = strlen(text);
	uint64_t n;

	if (wrench__parse_duration(text, len, ns) == 0)
		return 0;
	/* Hours and days, whole, for expiry and long waits. */
	if (len < 2 || (text[len - 1] != 'h' && text[len - 1] != 'd') ||
	    wrench__parse_uint(text, len - 1, &n) < 0 || n > 366ULL * 24)
		return -EINVAL;
	*ns = n * (text[len - 1] == 'h' ? 3600ULL : 86400ULL) * 1000000000ULL;
	return 0;
}

int64_t now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

bool rule_is_expired(const struct wrench__rule *rule, int64_t now)
{
	return rule->until && now >= rule->until;
}
