/*
 * eval: N calls of wrench_is_active(CATEGORY, FEATURE) as the library would
 * make them (the same trust checks, parser, counters, seed and evaluation
 * order), reporting what each line that fires would do instead of doing
 * it: nobody is killed and nothing sleeps. The calls start from the lines'
 * current machine-wide counters, copied: the preview changes none of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* What one call did, for its report line. */
struct call {
	const struct options *o;
	unsigned fired;
	bool active;
};

static void report_fire(struct wrench__rule *rule, void *ctx)
{
	struct call *call = ctx;
	char what[WRENCH__ACTION_MAX];

	wrench__describe_action(rule, what, sizeof(what));
	if (call->o->json) {
		fputs(call->fired ? ", {\"line\": " : "{\"line\": ", stdout);
		fprintf(stdout, "%u, \"action\": ", rule->line);
		json_string(stdout, what);
		json_payload(stdout, rule);
		fputc('}', stdout);
	} else {
		/* A value as written may hold any byte from 0x80 up. */
		fputs(call->fired ? ", then " : " ", stdout);
		print_escaped_string(stdout, what);
		printf(" (line %u)", rule->line);
	}
	call->fired++;
}

static void run_call(const struct options *o, struct wrench__rules *rules, const char *feature,
                     bool seeded, unsigned long number, unsigned long *fired, unsigned long *active)
{
	struct call call = {.o = o};

	if (o->json)
		printf("%s{\"call\": %lu, \"fired\": [", number > 1 ? ",\n    " : "\n    ", number);
	else
		printf("call %lu:", number);
	if (rules)
		call.active = wrench__evaluate_each(rules, feature, seeded, report_fire, &call);
	if (o->json)
		printf("], \"active\": %s}", call.active ? "true" : "false");
	else
		printf("%s\n", call.fired ? "" : " -");
	*fired += call.fired > 0;
	*active += call.active;
}

/* Copies the machine-wide counters of RULES' lines into their own; when
 * the agent cannot use them, its lines that a count decides stay off, as
 * they do in the agent. */
static void start_from_counters(const struct options *o, int dirfd, const char *category,
                                struct wrench__rules *rules)
{
	char *unusable = agent_counters_problem(o, dirfd);
	if (unusable) {
		note("%s", unusable);
		free(unusable);
		wrench__rules_close_counted(rules);
		return;
	}
	if (wrench__rules_set_keys(rules) < 0)
		return;
	struct wrench__state *state = open_counters(o, dirfd, category, false);
	for (size_t i = 0; state && i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		const struct wrench__counters *slot =
		        rule->process_scope ? NULL : wrench__state_slot(state, rule->key, false);
		if (!slot)
			continue;
		struct wrench__totals totals;
		wrench__state_totals(state, slot, &totals);
		atomic_store(&rule->counters->calls, totals.calls);
		atomic_store(&rule->counters->draws, totals.draws);
		atomic_store(&rule->counters->fires, totals.fires);
	}
	wrench__state_close(state);
}

/* Loads the file as the library would; NULL (reason in T) when ignored,
 * and when there is none: then *MISSING, said with the trigger files
 * near CATEGORY. */
static struct wrench__rules *load(const struct options *o, const char *category, bool *seeded,
                                  struct wrench__trust *t, bool *missing)
{
	struct wrench__file file = {0};
	struct wrench__rules *rules = NULL;
	uint64_t seed;

	struct access_check access;

	check_agent_access(o, t, &access);
	int dirfd = open_checked_dir(o, t, false);
	*missing = dirfd == -ENOENT;
	if (*missing)
		say_no_trigger_file(o, -1, category, NULL);
	if (dirfd < 0)
		return NULL;
	*missing = judge_file(o, dirfd, category, t, &file) == -ENOENT;
	if (*missing)
		say_no_trigger_file(o, dirfd, category, NULL);
	if (t->problems == 0 && wrench__parse_rules(file.data, file.len, &rules) < 0)
		note("out of memory");
	if (rules)
		start_from_counters(o, dirfd, category, rules);
	close(dirfd);
	free(file.data);
	*seeded = rules && wrench__seed_from_env(&seed) == 0;
	for (size_t i = 0; *seeded && i < rules->count; i++)
		rules->rule[i].seed = wrench__seed_for_line(seed, wrench__hash_string(category),
		                                            rules->rule[i].line);
	return rules;
}

int cmd_eval(const struct options *o, const char *category, const char *feature)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {0};
	unsigned long fired = 0, active = 0;
	bool seeded = false, missing;

	if (!wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	trigger_path(o, category, path, sizeof(path));
	struct wrench__rules *rules = load(o, category, &seeded, &t, &missing);
	const char *reason = t.problems && !missing ? t.first.message : NULL;
	if (reason)
		note("ignored: %s", reason);
	for (size_t i = 0; rules && i < rules->error_count; i++)
		note("%s:%u: %s; the line is ignored", path, rules->error[i].line,
		     rules->error[i].message);

	if (o->json) {
		fputs("{\"category\": ", stdout);
		json_string(stdout, category);
		fputs(", \"feature\": ", stdout);
		json_string(stdout, feature);
		fputs(", \"path\": ", stdout);
		json_string(stdout, path);
		fputs(", \"calls\": [", stdout);
	}
	for (unsigned long n = 1; n <= o->count; n++)
		run_call(o, rules, feature, seeded, n, &fired, &active);
	if (o->json) {
		printf("\n  ], \"fired\": %lu, \"active\": %lu, \"ignored\": %s, \"reason\": ",
		       fired, active, reason ? "true" : "false");
		json_string(stdout, reason);
		fputs("}\n", stdout);
	} else {
		print_line(stdout, "%s fired on %lu of %lu calls (active on %lu)", feature, fired,
		           o->count, active);
	}
	/* Said last, under the result it explains. */
	struct wrench__name name = wrench__name_of(feature);
	if (rules && wrench__rules_find(rules, &name) < 0)
		say_no_line_names(o, category, feature, rules, NULL, false);
	wrench__rules_free(rules);
	return fired ? EXIT_OK : EXIT_PROBLEMS;
}
