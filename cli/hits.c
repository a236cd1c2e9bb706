/*
 * The commands that read or reset the machine-wide counters: hits (every
 * line with its calls, fires and last fire), wait (until a feature has
 * fired N times) and reset (counters back to zero). They read the trigger
 * files with the library's checks and parser, and the counters with its
 * state code, so a line here is the line an agent counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct wrench__rules *load_counted(const struct options *o, int dirfd, const char *category,
                                   struct wrench__state **state, bool *missing)
{
	struct wrench__trust t = {0};
	struct wrench__file file = {0};

	*state = NULL;
	int rc = judge_file(o, dirfd, category, &t, &file);
	if (missing)
		*missing = rc == -ENOENT;
	if (!file.data) {
		if (t.problems && t.first.level != WRENCH_LOG_DEBUG)
			note("ignored: %s", t.first.message);
		return NULL;
	}
	struct wrench__rules *rules = parse_keyed(file.data, file.len);
	free(file.data);
	if (rules)
		*state = open_counters(o, dirfd, category, false);
	return rules;
}

struct wrench__counters *counters_of(struct wrench__state *state, const struct wrench__rule *rule)
{
	if (!state || rule->process_scope)
		return NULL;
	return wrench__state_slot(state, rule->key, false);
}

/* ---- hits ------------------------------------------------------------------ */

struct hits {
	const struct options *o;
	int64_t now;
	bool first_json;
	/* Why the agent cannot use its counters (NULL: it can), and how many
	 * lines that leaves without them. */
	const char *unusable;
	unsigned unavailable;
};

/* Where a line counts, for the agent: machine-wide, in each process
 * (scope=process), or nowhere it can be seen (its counters unavailable). */
static const char *counted_in(const struct hits *h, const struct wrench__rule *rule)
{
	return rule->process_scope ? "process" : h->unusable ? "unavailable" : "machine";
}

/* The line as the parser reads it: its tokens, one space apart. */
static void tokens_of(const char *text, size_t len, struct buffer *b)
{
	const char *tok;
	size_t pos = 0, tok_len;
	for (bool first = true; wrench__next_token(text, len, &pos, &tok, &tok_len);
	     first = false) {
		if (!first)
			buffer_add(b, " ", 1);
		buffer_add(b, tok, tok_len);
	}
}

/* One line's counters, as read from its slot (zeros when it has none). */
struct hit {
	uint64_t calls, fires;
	int64_t last_ns;
	uint32_t pid;
	bool spent, expired;
	char when[32];
};

static void print_hit_text(const struct hits *h, const char *category, const char *shown,
                           const struct wrench__rule *rule, const struct hit *x)
{
	print_escaped_string(stdout, category);
	fputc(' ', stdout);
	print_escaped_string(stdout, shown);
	if (rule->process_scope)
		fputs("  (counted per process)", stdout);
	else if (h->unusable)
		fputs(wrench__rule_needs_counts(rule)
		              ? "  counters unavailable: never fires"
		              : "  counters unavailable: counted per process",
		      stdout);
	else
		printf("  calls=%llu fires=%llu", (unsigned long long)x->calls,
		       (unsigned long long)x->fires);
	if (x->last_ns)
		printf(" last=%s pid=%u", x->when, (unsigned)x->pid);
	printf("%s%s\n", x->spent ? " spent" : "", x->expired ? " expired" : "");
}

static void print_hit_json(struct hits *h, const char *category, const char *shown,
                           const struct wrench__rule *rule, const struct hit *x)
{
	FILE *out = stdout;

	fputs(h->first_json ? "\n  " : ",\n  ", out);
	h->first_json = false;
	fputs("{\"category\": ", out);
	json_string(out, category);
	fputs(", \"feature\": ", out);
	json_string(out, rule->feature);
	fprintf(out, ", \"line\": %u, \"text\": ", rule->line);
	json_string(out, shown);
	fprintf(out, ", \"scope\": \"%s\", \"counters\": \"%s\"",
	        rule->process_scope ? "process" : "machine", counted_in(h, rule));
	if (rule->process_scope || h->unusable)
		fputs(", \"calls\": null, \"fires\": null", out);
	else
		fprintf(out, ", \"calls\": %llu, \"fires\": %llu", (unsigned long long)x->calls,
		        (unsigned long long)x->fires);
	fputs(", \"last_fire\": ", out);
	json_string(out, x->last_ns ? x->when : NULL);
	if (x->last_ns)
		fprintf(out, ", \"last_pid\": %u", (unsigned)x->pid);
	else
		fputs(", \"last_pid\": null", out);
	fprintf(out, ", \"spent\": %s, \"expired\": %s", x->spent ? "true" : "false",
	        x->expired ? "true" : "false");
	json_payload(out, rule);
	fputc('}', out);
}

static void print_hit(struct hits *h, const char *category, const struct wrench__rule *rule,
                      const char *text, size_t len, const struct wrench__state *state,
                      const struct wrench__counters *c)
{
	struct hit x = {0};
	struct buffer line = {0};

	if (c) {
		struct wrench__totals totals;
		wrench__state_totals(state, c, &totals);
		x.calls = totals.calls;
		x.fires = totals.fires;
		x.last_ns = atomic_load(&c->last_fire_ns);
		x.pid = atomic_load(&c->last_pid);
	}
	x.spent = rule->times && x.fires >= rule->times;
	x.expired = rule_is_expired(rule, h->now);
	if (x.last_ns)
		wrench__format_time(x.last_ns / 1000000000, x.when, sizeof(x.when));
	tokens_of(text, len, &line);
	const char *shown = line.data && !line.failed ? line.data : rule->feature;
	h->unavailable += !rule->process_scope && h->unusable;
	if (h->o->json)
		print_hit_json(h, category, shown, rule, &x);
	else
		print_hit_text(h, category, shown, rule, &x);
	free(line.data);
}

struct hits_file {
	struct hits *h;
	const char *category;
	struct wrench__rules *rules;
	struct wrench__state *state;
	size_t next; /* the next rule, in file order */
	unsigned line;
};

static void hits_line(const char *text, size_t len, bool has_newline, bool names, void *ctx)
{
	struct hits_file *f = ctx;
	(void)has_newline;
	(void)names;
	f->line++;
	if (f->next >= f->rules->count || f->rules->rule[f->next].line != f->line)
		return;
	const struct wrench__rule *rule = &f->rules->rule[f->next++];
	print_hit(f->h, f->category, rule, text, len, f->state, counters_of(f->state, rule));
}

/* Shows the lines of CATEGORY; false when it has no trigger file. */
static bool hits_category(struct hits *h, int dirfd, const char *category)
{
	struct wrench__state *state;
	struct wrench__trust t = {0};
	struct wrench__file file = {0};

	if (judge_file(h->o, dirfd, category, &t, &file) == -ENOENT) {
		free(file.data);
		return false;
	}
	if (!file.data)
		return true;
	struct wrench__rules *rules = parse_keyed(file.data, file.len);
	if (rules) {
		state = open_counters(h->o, dirfd, category, false);
		struct hits_file f = {.h = h, .category = category, .rules = rules, .state = state};
		each_line(file.data, file.len, NULL, hits_line, &f);
		wrench__state_close(state);
	}
	wrench__rules_free(rules);
	free(file.data);
	return true;
}

/* Opens the trigger directory for hits and wait, and finds whether the
 * agent can use its counters (*UNUSABLE, malloc'ed: why not). A directory
 * that is missing or refused is said, and nothing can be counted there:
 * -1. */
static int open_counted_dir(const struct options *o, char **unusable)
{
	struct wrench__trust t = {0};
	int dirfd = open_checked_dir(o, &t, true);

	*unusable = NULL;
	if (dirfd == -ENOENT)
		note("%s does not exist: no trigger is set, and nothing fires", o->dir);
	else if (dirfd < 0)
		note("the agent ignores %s, and nothing fires: %s", o->dir,
		     t.problems ? t.first.message : strerror(-dirfd));
	if (dirfd < 0)
		return -1;
	*unusable = agent_counters_problem(o, dirfd);
	return dirfd;
}

int cmd_hits(const struct options *o, const char *category)
{
	struct hits h = {.o = o, .now = now_seconds(), .first_json = true};
	char *unusable;
	bool found = false;

	if (category && !wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	int dirfd = open_counted_dir(o, &unusable);
	h.unusable = unusable;
	if (unusable)
		note("%s", unusable);
	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		fputs(", \"lines\": [", stdout);
	}
	if (dirfd >= 0) {
		char *only[] = {(char *)category, NULL};
		char **names = category ? only : list_names(dirfd);
		for (size_t i = 0; names && names[i]; i++)
			if (is_category(names[i]))
				found |= hits_category(&h, dirfd, names[i]);
		if (!category)
			free_names(names);
	}
	if (o->json) {
		fputs(h.first_json ? "], " : "\n], ", stdout);
		fputs("\"counters_problem\": ", stdout);
		json_string(stdout, unusable);
		fputs("}\n", stdout);
	}
	/* A missing directory was said already. */
	if (category && !found && dirfd >= 0)
		say_no_trigger_file(o, dirfd, category, NULL);
	if (dirfd >= 0)
		close(dirfd);
	free(unusable);
	return dirfd < 0 || h.unavailable || (category && !found) ? EXIT_PROBLEMS : EXIT_OK;
}

/* ---- wait -------------------------------------------------------------------- */

/* Polling the mapped counters costs a few system calls per look; four
 * looks a second is quick enough for a person and idle for the machine. */
#define WAIT_POLL_NS (250 * 1000000ull)

/* The fires of FEATURE's lines in CATEGORY since they were set or reset. */
static uint64_t fires_of(const struct options *o, const char *category, const char *feature)
{
	uint64_t fires = 0;
	struct wrench__trust t = {0};
	int dirfd = open_checked_dir(o, &t, false);
	if (dirfd < 0)
		return 0;
	struct wrench__state *state;
	struct wrench__rules *rules = load_counted(o, dirfd, category, &state, NULL);
	close(dirfd);
	struct wrench__name name = wrench__name_of(feature);

	for (int32_t i = rules ? wrench__rules_find(rules, &name) : -1; i >= 0;
	     i = rules->rule[i].next_same) {
		const struct wrench__counters *c = counters_of(state, &rules->rule[i]);
		struct wrench__totals totals = {0};
		if (c)
			wrench__state_totals(state, c, &totals);
		fires += totals.fires;
	}
	wrench__state_close(state);
	wrench__rules_free(rules);
	return fires;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether FEATURE can be seen to fire at all: 0, with the lines of
 * CATEGORY as the agent reads them in *RULES. EXIT_PROBLEMS when it cannot
 * be seen: a directory that is missing or refused, counters the agent
 * cannot use, a file it refuses. EXIT_USAGE when no line names FEATURE: a
 * typo, or a wait started before its line was set, which would wait for
 * its whole timeout. Says why. */
static int check_waitable(const struct options *o, const char *category, const char *feature,
                          struct wrench__rules **rules)
{
	char *unusable, *because = NULL;
	int dirfd = open_counted_dir(o, &unusable);
	int rc = dirfd >= 0 && !unusable ? 0 : EXIT_PROBLEMS;

	*rules = NULL;
	if (unusable)
		note("%s; a fire would not be counted", unusable);
	free(unusable);
	if (dirfd < 0)
		return rc;
	struct wrench__trust t = {0};
	struct wrench__file file = {0};
	int judged = judge_file(o, dirfd, category, &t, &file);
	struct wrench__name name = wrench__name_of(feature);
	if (judged == -ENOENT) {
		if (asprintf(&because, ", so \"%s\" can never fire: set its line before waiting",
		             feature) < 0)
			because = NULL;
		say_no_trigger_file(o, dirfd, category, because);
		rc = EXIT_USAGE;
	} else if (judged < 0) {
		note("the agent ignores it: %s", t.problems ? t.first.message : strerror(-judged));
		rc = EXIT_PROBLEMS;
	} else if (wrench__parse_rules(file.data, file.len, rules) < 0) {
		note("out of memory");
		rc = EXIT_USAGE;
	} else if (wrench__rules_find(*rules, &name) < 0) {
		say_no_line_names(o, category, feature, *rules,
		                  ", so it can never fire: set its line before waiting", true);
		rc = EXIT_USAGE;
	}
	free(because);
	free(file.data);
	close(dirfd);
	return rc;
}

int cmd_wait(const struct options *o, const char *category, const char *feature)
{
	struct wrench__rules *rules;

	if (!wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	int rc = check_waitable(o, category, feature, &rules);
	wrench__rules_free(rules);
	if (rc != 0)
		return rc;
	/* Lines name the feature, but no program may ever ask for it: said,
	 * and the wait goes on (the program may not have started yet). */
	struct point_names *known = point_names_of(o);
	struct point_warning about = {category, feature};
	if (known)
		point_names_problems(known, category, feature, true, warn_about_point, &about);
	point_names_free(known);
	uint64_t start = monotonic_ns(), fires;
	bool timed_out = false;
	while ((fires = fires_of(o, category, feature)) < o->fires) {
		uint64_t waited = monotonic_ns() - start;
		if (waited >= o->timeout_ns) {
			timed_out = true;
			break;
		}
		uint64_t nap = o->timeout_ns - waited < WAIT_POLL_NS ? o->timeout_ns - waited
		                                                     : WAIT_POLL_NS;
		struct timespec ts = {(time_t)(nap / 1000000000u), (long)(nap % 1000000000u)};
		nanosleep(&ts, NULL);
	}
	double seconds = (double)(monotonic_ns() - start) / 1e9;
	if (o->json) {
		fputs("{\"category\": ", stdout);
		json_string(stdout, category);
		fputs(", \"feature\": ", stdout);
		json_string(stdout, feature);
		printf(", \"fires\": %llu, \"wanted\": %lu, \"waited_s\": %.3f, \"timed_out\": "
		       "%s}\n",
		       (unsigned long long)fires, o->fires, seconds, timed_out ? "true" : "false");
	} else if (timed_out) {
		fputs("wrench: timed out after ", stderr);
		fprintf(stderr, "%.1fs: ", seconds);
		print_escaped_string(stderr, category);
		fputc('/', stderr);
		print_escaped_string(stderr, feature);
		fprintf(stderr, " fired %llu time(s), %lu wanted\n", (unsigned long long)fires,
		        o->fires);
	} else {
		print_escaped_string(stdout, category);
		fputc('/', stdout);
		print_escaped_string(stdout, feature);
		printf(" fired %llu time(s)\n", (unsigned long long)fires);
	}
	return timed_out ? EXIT_PROBLEMS : EXIT_OK;
}

/* ---- reset -------------------------------------------------------------------- */

/* Resets the counters of CATEGORY's lines (FEATURE's only, when not
 * NULL). EXIT_PROBLEMS, said, when it has no trigger file, or no line
 * names FEATURE: nothing was reset, which a typo would hide. */
static int reset_category(const struct options *o, int dirfd, const char *category,
                          const char *feature)
{
	struct wrench__state *state;
	bool missing;
	struct wrench__rules *rules = load_counted(o, dirfd, category, &state, &missing);
	int rc = EXIT_OK;

	if (missing) {
		say_no_trigger_file(o, dirfd, category, NULL);
		rc = EXIT_PROBLEMS;
	} else if (rules && feature) {
		struct wrench__name name = wrench__name_of(feature);
		if (wrench__rules_find(rules, &name) < 0) {
			say_no_line_names(o, category, feature, rules, NULL, false);
			rc = EXIT_PROBLEMS;
		}
	}

	for (size_t i = 0; state && i < rules->count; i++) {
		const struct wrench__rule *rule = &rules->rule[i];
		if (feature && strcmp(rule->feature, feature) != 0)
			continue;
		struct wrench__counters *c = counters_of(state, rule);
		if (c)
			wrench__slot_reset(state, c, false);
	}
	wrench__state_close(state);
	wrench__rules_free(rules);
	tidy_counters(o, dirfd, category);
	return rc;
}

int cmd_reset(const struct options *o, const char *category, const char *feature)
{
	if (category && !wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	struct target target;
	int rc = open_target(o, false, &target);
	if (rc == -ENOENT && category)
		say_no_trigger_file(o, -1, category, NULL);
	if (rc == -ENOENT)
		return category ? EXIT_PROBLEMS : EXIT_OK;
	if (rc != 0)
		return EXIT_USAGE;
	int dirfd = target.fd;
	char *only[] = {(char *)category, NULL};
	char **names = category ? only : list_names(dirfd);
	for (size_t i = 0; names && names[i]; i++)
		if (is_category(names[i]))
			rc |= reset_category(o, dirfd, names[i], feature);
	if (!category) {
		free_names(names);
		tidy_all_counters(o, dirfd, target.state_fd);
	}
	close_target(&target);
	return rc;
}
