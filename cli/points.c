/*
 * wrench points: the failure points reached on this machine, read from
 * the files the library records them in (lib/points.c), each with the
 * programs that asked, when, the lines that name it and its fires. With
 * --binary PATH, the points compiled into PATH instead, each reached or
 * not: the fault coverage of a run. The same records tell set, check and
 * wait which features exist (reached_features()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binary.h"
#include "cli.h"
#include "points_file.h"

/* A program's record of a point. */
struct asker {
	char *program;
	int64_t first_ms, last_ms;
	uint32_t pid;
};

/* A point: every program's record of it, merged, and its lines. */
struct point_row {
	char *category, *feature;
	struct asker *askers;
	size_t naskers;
	int64_t first_ms, last_ms; /* 0: never reached */
	unsigned lines;            /* lines of the category's file naming it */
	uint64_t fires;
	bool fires_unknown; /* a line counted per process, or counters unusable */
	bool compiled;      /* with --binary: in the binary */
};

struct point_table {
	struct point_row *row;
	size_t count, cap;
	uint64_t not_recorded; /* what found no room in the files */
	bool failed;           /* out of memory */
};

static void free_row(struct point_row *r)
{
	for (size_t j = 0; j < r->naskers; j++)
		free(r->askers[j].program);
	free(r->askers);
	free(r->category);
	free(r->feature);
}

static void free_table(struct point_table *t)
{
	for (size_t i = 0; i < t->count; i++)
		free_row(&t->row[i]);
	free(t->row);
	memset(t, 0, sizeof(*t));
}

static struct point_row *find_row(struct point_table *t, const char *category, const char *feature)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->row[i].category, category) == 0 &&
		    strcmp(t->row[i].feature, feature) == 0)
			return &t->row[i];
	return NULL;
}

/* The row of the point, added when new; NULL when out of memory. */
static struct point_row *row_of(struct point_table *t, const char *category, const char *feature)
{
	struct point_row *r = find_row(t, category, feature);

	if (r)
		return r;
	if (t->count == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct point_row *grown = realloc(t->row, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		t->row = grown;
		t->cap = cap;
	}
	r = &t->row[t->count];
	memset(r, 0, sizeof(*r));
	r->category = strdup(category);
	r->feature = strdup(feature);
	if (!r->category || !r->feature) {
		free(r->category);
		free(r->feature);
		return NULL;
	}
	t->count++;
	return r;
}

static bool add_asker(struct point_row *r, const struct wrench__reached *x)
{
	struct asker *grown = realloc(r->askers, (r->naskers + 1) * sizeof(*grown));

	if (!grown)
		return false;
	r->askers = grown;
	struct asker *a = &r->askers[r->naskers];
	a->program = strdup(x->program);
	if (!a->program)
		return false;
	a->first_ms = x->first_ms;
	a->last_ms = x->last_ms;
	a->pid = x->last_pid;
	r->naskers++;
	if (!r->first_ms || (x->first_ms && x->first_ms < r->first_ms))
		r->first_ms = x->first_ms;
	if (x->last_ms > r->last_ms)
		r->last_ms = x->last_ms;
	return true;
}

/* Adds the records of one file, a copy of POINTS_FILE_SIZE bytes at DATA. */
static void add_file(struct point_table *t, char *data, const char *only)
{
	const struct points_header *h = (const struct points_header *)data;

	t->not_recorded += atomic_load_explicit(&h->dropped, memory_order_relaxed);
	for (uint32_t i = 0; i < POINTS_SLOTS && !t->failed; i++) {
		struct wrench__reached x;
		if (!wrench__points_slot_names(points_slot_at(data, i), &x) ||
		    (only && strcmp(x.category, only) != 0))
			continue;
		struct point_row *r = row_of(t, x.category, x.feature);
		t->failed = !r || !add_asker(r, &x);
	}
}

/* The uid N of a name "points-v1-N", or false when NAME is not one. */
static bool points_file_uid(const char *name, uid_t *uid)
{
	size_t prefix = strlen(POINTS_FILE_NAME);
	uint64_t n;

	if (strncmp(name, POINTS_FILE_NAME, prefix) != 0 ||
	    wrench__parse_uint(name + prefix, strlen(name + prefix), &n) < 0 || n > UINT32_MAX)
		return false;
	*uid = (uid_t)n;
	return true;
}

/* Reads every file of points reached in the trigger directory DIRFD, each
 * trusted for the agent user its name gives (root or that user owns it,
 * nobody else may write it). A file that is refused is said and skipped:
 * its points are then missing, never made up. Returns how many files
 * were refused. */
static unsigned read_files(const struct options *o, int dirfd, const char *only,
                           struct point_table *t, bool quiet)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = o->dir};
	struct wrench__problem why = {0};
	unsigned refused = 0;

	agent_of(o, &w);
	int sdfd = wrench__state_dir(&w, &why);
	if (sdfd < 0) {
		if (why.level != WRENCH_LOG_DEBUG) {
			if (!quiet)
				note("%s", why.message);
			refused++;
		}
		return refused;
	}
	char **names = list_names(sdfd);
	for (size_t i = 0; names && names[i] && !t->failed; i++) {
		char path[WALK_PATH_MAX], *data;
		uid_t uid;
		if (!points_file_uid(names[i], &uid))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", o->dir, WRENCH_STATE_DIR, names[i]);
		if (wrench__points_read(sdfd, names[i], uid, path, &data, &why) < 0) {
			if (why.level != WRENCH_LOG_DEBUG) {
				if (!quiet)
					note("ignored: %s", why.message);
				refused++;
			}
			continue;
		}
		add_file(t, data, only);
		free(data);
	}
	free_names(names);
	close(sdfd);
	return refused;
}

static unsigned read_reached(const struct options *o, int dirfd, const char *only,
                             struct point_table *t)
{
	return read_files(o, dirfd, only, t, false);
}

static void read_reached_quietly(const struct options *o, int dirfd, struct point_table *t)
{
	read_files(o, dirfd, NULL, t, true);
}

/* ---- lines and fires ------------------------------------------------------ */

/* Counts, for every row of CATEGORY, the lines of its trigger file that
 * name the row's feature, and their fires. */
static void count_lines(const struct options *o, int dirfd, struct point_table *t,
                        const char *category, const char *unusable)
{
	struct wrench__state *state;
	struct wrench__rules *rules = load_counted(o, dirfd, category, &state, NULL);

	for (size_t i = 0; rules && i < rules->count; i++) {
		const struct wrench__rule *rule = &rules->rule[i];
		struct point_row *r = find_row(t, category, rule->feature);
		if (!r)
			continue;
		r->lines++;
		const struct wrench__counters *c = unusable ? NULL : counters_of(state, rule);
		if (rule->process_scope || unusable) {
			r->fires_unknown = true;
		} else if (c) {
			struct wrench__totals totals;
			wrench__state_totals(state, c, &totals);
			r->fires += totals.fires;
		}
	}
	wrench__state_close(state);
	wrench__rules_free(rules);
}

static int by_point(const void *a, const void *b)
{
	const struct point_row *x = a, *y = b;
	int c = strcmp(x->category, y->category);
	return c ? c : strcmp(x->feature, y->feature);
}

/* Lines and fires of every row, each category's file read once. */
static void sort_rows(struct point_table *t)
{
	if (t->count)
		qsort(t->row, t->count, sizeof(*t->row), by_point);
}

static void count_all_lines(const struct options *o, int dirfd, struct point_table *t,
                            const char *unusable)
{
	sort_rows(t);
	for (size_t i = 0; i < t->count; i++)
		if (i == 0 || strcmp(t->row[i].category, t->row[i - 1].category) != 0)
			count_lines(o, dirfd, t, t->row[i].category, unusable);
}

/* ---- the points of a binary ---------------------------------------------- */

/* Keeps only the points compiled into the binary, adding those never
 * reached. Returns 0, or EXIT_USAGE after saying why PATH cannot be read. */
static int keep_compiled(const struct options *o, struct point_table *t, const char *only)
{
	struct binary_point *points;
	size_t count;
	char why[512];

	if (binary_points(o->binary, &points, &count, why, sizeof(why)) < 0) {
		note("%s", why);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < count && !t->failed; i++) {
		if (only && strcmp(points[i].category, only) != 0)
			continue;
		struct point_row *r = row_of(t, points[i].category, points[i].feature);
		if (r)
			r->compiled = true;
		t->failed = !r;
	}
	free_binary_points(points, count);
	size_t kept = 0;
	for (size_t i = 0; i < t->count; i++) {
		if (t->row[i].compiled) {
			t->row[kept++] = t->row[i];
			continue;
		}
		free_row(&t->row[i]);
	}
	t->count = kept;
	return 0;
}

/* ---- output ------------------------------------------------------------------ */

static void format_ms(int64_t ms, char *buf, size_t len)
{
	if (ms > 0)
		wrench__format_time(ms / 1000, buf, len);
	else
		snprintf(buf, len, "never");
}

/* The programs that asked, "a, b", malloc'ed ("-" for none). */
static char *askers_text(const struct point_row *r)
{
	struct buffer b = {0};

	for (size_t j = 0; j < r->naskers; j++) {
		if (j)
			buffer_add(&b, ", ", 2);
		buffer_add(&b, r->askers[j].program, strlen(r->askers[j].program));
	}
	if (!r->naskers)
		buffer_add(&b, "-", 1);
	buffer_add(&b, "", 1);
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	return b.data;
}

static void fires_text(const struct point_row *r, char *buf, size_t len)
{
	if (r->fires_unknown && !r->fires)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%llu%s", (unsigned long long)r->fires,
		         r->fires_unknown ? "+" : "");
}

/* One cell, escaped, padded to WIDTH bytes of its unescaped text. */
static void cell(const char *text, size_t width)
{
	print_escaped_string(stdout, text);
	for (size_t n = strlen(text); n < width; n++)
		fputc(' ', stdout);
	fputs("  ", stdout);
}

#define MAX_WIDTH 40

enum { COL_CATEGORY, COL_FEATURE, COL_REACHED, COL_BY, COL_LINES, COL_FIRES, COLS };

static const char *const headings[COLS] = {"CATEGORY", "FEATURE", "LAST REACHED",
                                           "PROGRAMS", "LINES",   "FIRES"};

/* The table: one row per point, columns as wide as their widest cell. */
static void print_rows_text(const struct point_table *t)
{
	size_t width[COLS];
	char when[32], lines[16], fires[32];

	for (int c = 0; c < COLS; c++)
		width[c] = strlen(headings[c]);
	for (size_t i = 0; i < t->count; i++) {
		const struct point_row *r = &t->row[i];
		char *by = askers_text(r);
		size_t n[COLS] = {
		        strlen(r->category), strlen(r->feature), 20, by ? strlen(by) : 1, 5, 5};
		free(by);
		/* A very long name overflows its cell rather than widen
		 * every other row. */
		for (int c = 0; c < COLS; c++)
			width[c] = n[c] > width[c] && n[c] <= MAX_WIDTH ? n[c] : width[c];
	}
	if (!t->count)
		return;
	for (int c = 0; c < COLS - 1; c++)
		cell(headings[c], width[c]);
	puts(headings[COLS - 1]);
	for (size_t i = 0; i < t->count; i++) {
		const struct point_row *r = &t->row[i];
		char *by = askers_text(r);
		format_ms(r->last_ms, when, sizeof(when));
		snprintf(lines, sizeof(lines), "%u", r->lines);
		fires_text(r, fires, sizeof(fires));
		cell(r->category, width[COL_CATEGORY]);
		cell(r->feature, width[COL_FEATURE]);
		cell(when, width[COL_REACHED]);
		cell(by ? by : "?", width[COL_BY]);
		cell(lines, width[COL_LINES]);
		print_escaped_string(stdout, fires);
		fputc('\n', stdout);
		free(by);
	}
}

static void print_row_json(const struct point_row *r, bool first)
{
	char when[32];

	fputs(first ? "\n  {\"category\": " : ",\n  {\"category\": ", stdout);
	json_string(stdout, r->category);
	fputs(", \"feature\": ", stdout);
	json_string(stdout, r->feature);
	printf(", \"reached\": %s, \"first_reached\": ", r->last_ms ? "true" : "false");
	format_ms(r->first_ms, when, sizeof(when));
	json_string(stdout, r->first_ms ? when : NULL);
	fputs(", \"last_reached\": ", stdout);
	format_ms(r->last_ms, when, sizeof(when));
	json_string(stdout, r->last_ms ? when : NULL);
	fputs(", \"programs\": [", stdout);
	for (size_t j = 0; j < r->naskers; j++) {
		const struct asker *a = &r->askers[j];
		fputs(j ? ", {\"program\": " : "{\"program\": ", stdout);
		json_string(stdout, a->program);
		printf(", \"last_pid\": %u, \"first_reached\": ", (unsigned)a->pid);
		format_ms(a->first_ms, when, sizeof(when));
		json_string(stdout, a->first_ms ? when : NULL);
		fputs(", \"last_reached\": ", stdout);
		format_ms(a->last_ms, when, sizeof(when));
		json_string(stdout, a->last_ms ? when : NULL);
		fputs("}", stdout);
	}
	printf("], \"lines\": %u, \"fires\": ", r->lines);
	if (r->fires_unknown)
		fputs("null", stdout);
	else
		printf("%llu", (unsigned long long)r->fires);
	fputs("}", stdout);
}

struct summary {
	size_t points, reached, fired, never;
};

static struct summary summarize(const struct point_table *t)
{
	struct summary s = {.points = t->count};

	for (size_t i = 0; i < t->count; i++) {
		s.reached += t->row[i].last_ms != 0;
		s.fired += t->row[i].fires != 0;
		s.never += t->row[i].last_ms == 0;
	}
	return s;
}

static void print_table(const struct options *o, const struct point_table *t)
{
	struct summary s = summarize(t);

	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		if (o->binary) {
			fputs(", \"binary\": ", stdout);
			json_string(stdout, o->binary);
		}
		fputs(", \"points\": [", stdout);
		for (size_t i = 0; i < t->count; i++)
			print_row_json(&t->row[i], i == 0);
		fputs(t->count ? "\n]" : "]", stdout);
		if (o->binary)
			printf(", \"summary\": {\"points\": %zu, \"reached\": %zu, \"fired\": %zu, "
			       "\"never_reached\": %zu}",
			       s.points, s.reached, s.fired, s.never);
		printf(", \"not_recorded\": %llu}\n", (unsigned long long)t->not_recorded);
		return;
	}
	print_rows_text(t);
	if (o->binary)
		printf("%zu point(s): %zu reached, %zu fired, %zu never reached\n", s.points,
		       s.reached, s.fired, s.never);
}

int cmd_points(const struct options *o, const char *category)
{
	struct point_table t = {0};
	struct wrench__trust trust = {0};
	int rc = EXIT_OK;

	if (category && !wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	int dirfd = open_checked_dir(o, &trust, true);
	if (dirfd == -ENOENT)
		note("%s does not exist: no point was recorded on this machine", o->dir);
	else if (dirfd < 0)
		note("the agent ignores %s, and records no point there: %s", o->dir,
		     trust.problems ? trust.first.message : strerror(-dirfd));
	if (dirfd >= 0 && read_reached(o, dirfd, category, &t) > 0)
		rc = EXIT_PROBLEMS;
	if (o->binary && keep_compiled(o, &t, category) != 0)
		rc = EXIT_USAGE;
	char *unusable = dirfd >= 0 ? agent_counters_problem(o, dirfd) : NULL;
	if (dirfd >= 0 && rc != EXIT_USAGE)
		count_all_lines(o, dirfd, &t, unusable);
	else
		sort_rows(&t);
	if (t.failed) {
		note("out of memory");
		rc = EXIT_USAGE;
	}
	if (rc != EXIT_USAGE)
		print_table(o, &t);
	if (t.not_recorded)
		note("%llu time(s) a point found no room in the records (%u slots per agent "
		     "user): some points reached may show as never reached; wrench clear empties "
		     "the records",
		     (unsigned long long)t.not_recorded, POINTS_SLOTS);
	free(unusable);
	free_table(&t);
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

/* ---- what set, check and wait are told -------------------------------------- */

struct point_names {
	struct point_table reached;    /* every point reached on this machine */
	struct binary_point *compiled; /* with --binary: the binary's points */
	size_t ncompiled;
	const char *binary;
};

struct point_names *point_names_load(const struct options *o, int dirfd)
{
	struct point_names *k = calloc(1, sizeof(*k));
	char why[512];

	if (!k)
		return NULL;
	/* Quietly: a file the listing would refuse is the listing's to say;
	 * here it only means fewer names are known, so fewer warnings. */
	if (dirfd >= 0)
		read_reached_quietly(o, dirfd, &k->reached);
	if (o->binary &&
	    binary_points(o->binary, &k->compiled, &k->ncompiled, why, sizeof(why)) < 0) {
		note("%s", why);
		point_names_free(k);
		return NULL;
	}
	k->binary = o->binary;
	return k;
}

void point_names_free(struct point_names *k)
{
	if (!k)
		return;
	free_table(&k->reached);
	free_binary_points(k->compiled, k->ncompiled);
	free(k);
}

/* The features of CATEGORY among the reached points (REACHED) or the
 * binary's (else), into a malloc'ed array; its length in *N. */
static const char **features_of(const struct point_names *k, const char *category, bool reached,
                                size_t *n)
{
	size_t total = reached ? k->reached.count : k->ncompiled;
	const char **names = calloc(total ? total : 1, sizeof(*names));

	*n = 0;
	for (size_t i = 0; names && i < total; i++) {
		const char *c = reached ? k->reached.row[i].category : k->compiled[i].category;
		if (strcmp(c, category) == 0)
			names[(*n)++] =
			        reached ? k->reached.row[i].feature : k->compiled[i].feature;
	}
	return names;
}

static bool contains(const char **names, size_t n, const char *feature)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], feature) == 0)
			return true;
	return false;
}

size_t point_names_problems(const struct point_names *k, const char *category, const char *feature,
                            bool waiting, point_problem_fn *fn, void *ctx)
{
	size_t nreached, ncompiled, told = 0;
	const char **reached = features_of(k, category, true, &nreached);
	const char **compiled = k->binary ? features_of(k, category, false, &ncompiled) : NULL;
	struct buffer b = {0};

	if (!reached || (k->binary && !compiled)) {
		fn("out of memory", ctx);
		told++;
	} else if (!contains(reached, nreached, feature) && (nreached || waiting)) {
		char head[160];
		if (nreached)
			snprintf(
			        head, sizeof(head),
			        "no process on this machine has reached the point, while %zu other "
			        "point(s) of its category were",
			        nreached);
		else
			snprintf(head, sizeof(head),
			         "no process on this machine has reached the point yet (a program "
			         "records it when it first asks)");
		buffer_add(&b, head, strlen(head));
		add_nearest(&b, feature, reached, nreached);
		buffer_add(&b, "", 1);
		fn(b.failed ? "out of memory" : b.data, ctx);
		told++;
	}
	if (compiled && !contains(compiled, ncompiled, feature)) {
		b.len = 0;
		const char *head = ncompiled ? "the binary has no such failure point"
		                             : "the binary has no failure point in this category";
		buffer_add(&b, head, strlen(head));
		add_nearest(&b, feature, compiled, ncompiled);
		buffer_add(&b, "", 1);
		fn(b.failed ? "out of memory" : b.data, ctx);
		told++;
	}
	free(b.data);
	free(reached);
	free(compiled);
	return told;
}

struct point_names *point_names_of(const struct options *o)
{
	struct wrench__trust t = {0};
	int dirfd = open_checked_dir(o, &t, false);
	struct point_names *k = point_names_load(o, dirfd);

	if (dirfd >= 0)
		close(dirfd);
	return k;
}

void warn_about_point(const char *message, void *ctx)
{
	const struct point_warning *w = ctx;

	fputs("wrench: warning: ", stderr);
	print_escaped_string(stderr, w->category);
	fputc('/', stderr);
	print_escaped_string(stderr, w->feature);
	fputs(": ", stderr);
	print_escaped_string(stderr, message);
	fputc('\n', stderr);
}
