/*
 * The trigger-file grammar, checked on the parser itself: which lines are
 * triggers, comments or blank, which directive values are accepted, and that
 * a bad line never takes its good neighbours down with it.
 */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN WRENCH__PARSE_ERROR_MAX

/* Counters for the lines parsed alone, which count in no file's state. */
static struct wrench__counters counters[8];
static unsigned next_counters;

static int parse(const char *line, struct wrench__rule *rule, char *err)
{
	memset(rule, 0, sizeof(*rule));
	err[0] = '\0';
	int rc = wrench__parse_line(line, strlen(line), rule, err, ERRLEN);
	struct wrench__counters *c = &counters[next_counters++ % 8];
	memset(c, 0, sizeof(*c));
	rule->counters = c;
	return rc;
}

static void assert_accepted(const char *line, struct wrench__rule *rule)
{
	char err[ERRLEN];
	int rc = parse(line, rule, err);
	if (rc != 1)
		fail_msg("\"%s\" was not accepted as a trigger (rc %d: %s)", line, rc, err);
}

static void assert_ignored(const char *line)
{
	struct wrench__rule rule;
	char err[ERRLEN];
	int rc = parse(line, &rule, err);
	if (rc != 0)
		fail_msg("\"%s\" was not ignored as blank or comment (rc %d: %s)", line, rc, err);
}

/* Asserts LINE is malformed and, when KEYWORD is not NULL, that the message
 * names it. */
static void assert_rejected(const char *line, const char *keyword)
{
	struct wrench__rule rule;
	char err[ERRLEN];
	int rc = parse(line, &rule, err);
	if (rc != -1)
		fail_msg("\"%s\" was accepted (rc %d)", line, rc);
	if (err[0] == '\0')
		fail_msg("\"%s\" was rejected without saying why", line);
	if (keyword && !strstr(err, keyword))
		fail_msg("rejecting \"%s\" said \"%s\", which does not mention \"%s\"", line, err,
		         keyword);
}

/* Calls rule_fires once per character of EXPECTED ('T' or 'F'). */
static void assert_fires(struct wrench__rule *rule, const char *expected)
{
	char got[128];
	size_t n = strlen(expected);
	assert_true(n < sizeof(got));
	for (size_t i = 0; i < n; i++)
		got[i] = wrench__rule_fires(rule, false) ? 'T' : 'F';
	got[n] = '\0';
	assert_string_equal(got, expected);
}

static unsigned count_fires(struct wrench__rule *rule, unsigned calls)
{
	unsigned fires = 0;
	for (unsigned i = 0; i < calls; i++)
		fires += wrench__rule_fires(rule, false);
	return fires;
}

static struct wrench__rules *parse_rules(const char *text)
{
	struct wrench__rules *rules = NULL;
	assert_int_equal(wrench__parse_rules(text, strlen(text), &rules), 0);
	assert_non_null(rules);
	return rules;
}

/* ---- lines that are not triggers ---------------------------------------- */

static void test_bare_feature_is_a_trigger_that_always_fails(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("refuse-upgrade", &rule);
	assert_true(rule.fail);
	assert_int_equal(rule.kill_signal, 0);
	assert_int_equal(rule.slow_ns, 0);
	assert_false(rule.has_slow);
	assert_false(rule.has_chance);
	assert_fires(&rule, "TTTTTTTTTT");
}

static void test_blank_lines_are_ignored(void **state)
{
	(void)state;
	assert_ignored("");
	assert_ignored(" ");
	assert_ignored("\t");
	assert_ignored(" \t\r\v\f ");
	assert_ignored("\r");
}

static void test_comment_lines_are_ignored(void **state)
{
	(void)state;
	assert_ignored("#");
	assert_ignored("# refuse-upgrade");
	assert_ignored("   # refuse-upgrade times=0");
	assert_ignored("\t#refuse-upgrade");
}

static void test_comment_after_white_space_ends_the_line(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step # times=0 bogus", &rule);
	assert_true(rule.fail);
	assert_int_equal(rule.times, 0);
	assert_accepted("step times=2\t#every=0", &rule);
	assert_int_equal(rule.times, 2);
}

static void test_hash_inside_a_token_is_part_of_the_feature(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("foo#bar\nbaz #qux\n");
	assert_int_equal(rules->error_count, 0);
	assert_int_equal(rules->count, 2);
	assert_string_equal(rules->rule[0].feature, "foo#bar");
	assert_string_equal(rules->rule[1].feature, "baz");
	wrench__rules_free(rules);
}

static void test_surrounding_white_space_is_ignored(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules(" \t foo \t\n\tbar   times=2  \n");
	assert_int_equal(rules->error_count, 0);
	assert_int_equal(rules->count, 2);
	assert_string_equal(rules->rule[0].feature, "foo");
	assert_string_equal(rules->rule[1].feature, "bar");
	assert_int_equal(rules->rule[1].times, 2);
	wrench__rules_free(rules);
}

/* Every character Go's strings.TrimSpace removes, in UTF-8. */
static const char *const go_spaces[] = {
        "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81",
        "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86",
        "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8",
        "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
};

/* A line means what it means to Juju's Go agents: "bar<U+00A0>" is "bar". */
static void test_unicode_white_space_is_trimmed_as_go_trims_it(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(go_spaces) / sizeof(go_spaces[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "%s\t%sbar%s %s", go_spaces[i], go_spaces[i],
		         go_spaces[i], go_spaces[i]);
		struct wrench__rules *rules = parse_rules(line);
		assert_int_equal(rules->error_count, 0);
		assert_int_equal(rules->count, 1);
		if (strcmp(rules->rule[0].feature, "bar") != 0)
			fail_msg("white space %zu was not trimmed from \"%s\"", i, line);
		wrench__rules_free(rules);
		assert_ignored(go_spaces[i]);
	}
}

/* Inside a line, the same characters separate the words. */
static void test_unicode_white_space_separates_directives(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("bar\xc2\xa0times=2\xe3\x80\x80"
	                                          "every=3\n"
	                                          "baz\xe2\x80\x89#\xc2\xa0"
	                                          "comment\n");
	assert_int_equal(rules->error_count, 0);
	assert_int_equal(rules->count, 2);
	assert_string_equal(rules->rule[0].feature, "bar");
	assert_int_equal(rules->rule[0].times, 2);
	assert_int_equal(rules->rule[0].every, 3);
	assert_string_equal(rules->rule[1].feature, "baz");
	wrench__rules_free(rules);
}

/* Look-alikes that Go does not trim stay part of the word: U+200B (zero
 * width space), U+180E, a lone 0x85 or 0xa0 byte (not UTF-8), and a cut
 * sequence at the end of the line or before an ASCII byte. */
static void test_characters_go_does_not_trim_stay_in_the_feature(void **state)
{
	(void)state;
	static const char *const kept[] = {"a\xe2\x80\x8b", "a\xe1\xa0\x8e", "a\x85",     "a\xa0",
	                                   "a\xc2",         "a\xe2\x80",     "a\xe2\x80m"};
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		struct wrench__rules *rules = parse_rules(kept[i]);
		assert_int_equal(rules->count, 1);
		assert_string_equal(rules->rule[0].feature, kept[i]);
		wrench__rules_free(rules);
	}
}

/* No program names a failure point with a control character. */
static void test_feature_with_a_control_character_is_rejected(void **state)
{
	(void)state;
	assert_rejected("a\x01"
	                "b",
	                "control character (byte 0x01 at column 2)");
	assert_rejected("  bell\x07 fail", "byte 0x07 at column 7");
	assert_rejected("del\x7f", "byte 0x7f");
	assert_rejected("esc\x1b[0m", "control character");
	/* In a comment, anything goes. */
	assert_ignored("# \x01\x02\x7f");
}

static void test_crlf_line_endings_are_accepted(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("a\r\nb times=2\r\n\r\n# c\r\nd");
	assert_int_equal(rules->error_count, 0);
	assert_int_equal(rules->count, 3);
	assert_string_equal(rules->rule[0].feature, "a");
	assert_string_equal(rules->rule[1].feature, "b");
	assert_int_equal(rules->rule[1].times, 2);
	assert_string_equal(rules->rule[2].feature, "d");
	assert_int_equal(rules->rule[2].line, 5);
	wrench__rules_free(rules);
}

/* ---- fail and kill ------------------------------------------------------ */

static void test_kill_defaults_to_sigkill(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step kill", &rule);
	assert_int_equal(rule.kill_signal, SIGKILL);
}

static void test_kill_accepts_signal_names_and_numbers(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int sig;
	} cases[] = {
	        {"step kill=KILL", SIGKILL},    {"step kill=ABRT", SIGABRT},
	        {"step kill=TERM", SIGTERM},    {"step kill=SEGV", SIGSEGV},
	        {"step kill=BUS", SIGBUS},      {"step kill=INT", SIGINT},
	        {"step kill=QUIT", SIGQUIT},    {"step kill=SIGTERM", SIGTERM},
	        {"step kill=SIGterm", SIGTERM}, {"step kill=term", SIGTERM},
	        {"step kill=sigsegv", SIGSEGV}, {"step kill=9", 9},
	        {"step kill=15", 15},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(cases[i].line, &rule);
		if (rule.kill_signal != cases[i].sig)
			fail_msg("\"%s\" gave signal %d, want %d", cases[i].line, rule.kill_signal,
			         cases[i].sig);
	}
}

static void test_kill_rejects_unknown_signals(void **state)
{
	(void)state;
	assert_rejected("step kill=0", NULL);
	assert_rejected("step kill=65", NULL);
	assert_rejected("step kill=-9", NULL);
	assert_rejected("step kill=9x", NULL);
	assert_rejected("step kill=FOO", NULL);
	assert_rejected("step kill=SIG", NULL);
}

/* glibc keeps 32 and 33 for its threads and its raise() refuses them: a
 * kill line with either would never kill, so it must be refused up front. */
static void test_kill_refuses_the_signals_the_c_library_reserves(void **state)
{
	(void)state;
	assert_rejected("step kill=32", "kill=32");
	assert_rejected("step kill=33", "kill=33");
	assert_rejected("step kill=65", "kill=65");

	static const int usable[] = {31, 34, 64};
	for (size_t i = 0; i < sizeof(usable) / sizeof(usable[0]); i++) {
		char line[32];
		struct wrench__rule rule;
		snprintf(line, sizeof(line), "step kill=%d", usable[i]);
		assert_accepted(line, &rule);
		if (rule.kill_signal != usable[i])
			fail_msg("\"%s\" gave signal %d", line, rule.kill_signal);
	}
}

/* A kill line must end the agent. By number or by name, a signal that
 * stops it (kill=19 left the agent stopped), continues it or is ignored by
 * default (kill=17 answered true and did nothing) is refused, and the
 * message lists what is accepted. */
static void test_kill_refuses_signals_that_do_not_end_the_process(void **state)
{
	(void)state;
	static const char *const refused[] = {
	        "STOP", "SIGSTOP", "TSTP", "TTIN", "TTOU", "CONT", "CHLD", "URG", "WINCH",
	        "19",   "20",      "21",   "22",   "18",   "17",   "23",   "28",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "step kill=%s", refused[i]);
		assert_rejected(line, "KILL, TERM");
		assert_rejected(line, "not STOP");
	}
}

static void test_kill_accepts_every_signal_that_ends_the_process_by_name_or_number(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int sig;
	} cases[] = {
	        {"HUP", SIGHUP},   {"USR1", SIGUSR1},        {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},
	        {"ALRM", SIGALRM}, {"sigvtalrm", SIGVTALRM}, {"SYS", SIGSYS},   {"XCPU", SIGXCPU},
	        {"IO", SIGIO},     {"PWR", SIGPWR},          {"1", SIGHUP},     {"10", SIGUSR1},
	        {"29", SIGIO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[64];
		struct wrench__rule rule;
		snprintf(line, sizeof(line), "step kill=%s", cases[i].name);
		assert_accepted(line, &rule);
		if (rule.kill_signal != cases[i].sig)
			fail_msg("\"%s\" gave signal %d, want %d", line, rule.kill_signal,
			         cases[i].sig);
	}
}

static void test_fail_and_kill_cannot_be_combined(void **state)
{
	(void)state;
	assert_rejected("step fail kill", "kill");
	assert_rejected("step kill=TERM fail", "kill");
}

/* ---- slow ---------------------------------------------------------------- */

static void test_slow_accepts_durations_up_to_an_hour(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		uint64_t ns;
	} cases[] = {
	        {"step slow=1.5s", 1500000000u},         {"step slow=250ms", 250000000u},
	        {"step slow=2.5ms", 2500000u},           {"step slow=10us", 10000u},
	        {"step slow=2m", 120000000000u},         {"step slow=0s", 0},
	        {"step slow=60m", 3600000000000u},       {"step slow=3600s", 3600000000000u},
	        {"step slow=3600000ms", 3600000000000u},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(cases[i].line, &rule);
		if (rule.slow_ns != cases[i].ns)
			fail_msg("\"%s\" gave %llu ns, want %llu", cases[i].line,
			         (unsigned long long)rule.slow_ns, (unsigned long long)cases[i].ns);
	}
}

static void test_slow_rejects_bad_durations(void **state)
{
	(void)state;
	assert_rejected("step slow=61m", NULL);
	assert_rejected("step slow=3601s", NULL);
	assert_rejected("step slow=3600001ms", NULL);
	assert_rejected("step slow=1h", NULL);
	assert_rejected("step slow=5", NULL);
	assert_rejected("step slow=", NULL);
	assert_rejected("step slow=ms", NULL);
	assert_rejected("step slow=-1s", NULL);
	assert_rejected("step slow=1.5.5s", NULL);
}

static void test_slow_line_delays_without_failing(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step slow=1s", &rule);
	assert_false(rule.fail);
	assert_int_equal(rule.kill_signal, 0);
	assert_accepted("step slow=0s", &rule);
	assert_false(rule.fail);
}

static void test_slow_combines_with_fail_or_kill(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step slow=1s fail", &rule);
	assert_true(rule.fail);
	assert_int_equal(rule.slow_ns, 1000000000u);
	assert_accepted("step kill=TERM slow=1s", &rule);
	assert_int_equal(rule.kill_signal, SIGTERM);
	assert_int_equal(rule.slow_ns, 1000000000u);
}

static void test_line_without_action_fails(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step times=2", &rule);
	assert_true(rule.fail);
	assert_accepted("step chance=0.5 every=2 after=1", &rule);
	assert_true(rule.fail);
}

/* ---- chance -------------------------------------------------------------- */

static void test_chance_accepts_fractions_and_percentages(void **state)
{
	(void)state;
	static const char *const lines[] = {
	        "step chance=0.25", "step chance=25%", "step chance=0",   "step chance=1",
	        "step chance=100%", "step chance=0%",  "step chance=0.5", "step chance=1.0",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(lines[i], &rule);
		assert_true(rule.has_chance);
	}
}

static void test_chance_rejects_values_outside_zero_to_one(void **state)
{
	(void)state;
	assert_rejected("step chance=1.5", "1.5");
	assert_rejected("step chance=101%", NULL);
	assert_rejected("step chance=-0.1", NULL);
	assert_rejected("step chance=abc", NULL);
	assert_rejected("step chance=1e-1", NULL);
	assert_rejected("step chance=nan", NULL);
	assert_rejected("step chance=inf", NULL);
	assert_rejected("step chance=%", NULL);
	assert_rejected("step chance=0.5%%", NULL);
}

static void test_decimals_may_have_many_digits(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step chance=0.3333333333", &rule);
	assert_accepted("step chance=33.3333333333%", &rule);
	assert_accepted("step slow=1.0000000000s", &rule);
	assert_int_equal(rule.slow_ns, 1000000000u);
}

static void test_chance_zero_never_fires(void **state)
{
	(void)state;
	static const char *const lines[] = {"step chance=0", "step chance=0%", "step chance=0.0"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(lines[i], &rule);
		assert_int_equal(count_fires(&rule, 1000), 0);
	}
}

static void test_chance_one_always_fires(void **state)
{
	(void)state;
	static const char *const lines[] = {"step chance=1", "step chance=100%", "step chance=1.0"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(lines[i], &rule);
		assert_int_equal(count_fires(&rule, 1000), 1000);
	}
}

static void test_chance_quarter_fires_about_a_quarter_of_calls(void **state)
{
	(void)state;
	struct wrench__rule rule;
	/* 10,000 draws at p = 0.25: sigma is 43.3, so +-346 is 8 sigma. */
	assert_accepted("step chance=0.25", &rule);
	unsigned fires = count_fires(&rule, 10000);
	assert_in_range(fires, 2500 - 346, 2500 + 346);
}

static void test_percentage_means_the_same_as_fraction(void **state)
{
	(void)state;
	struct wrench__rule fraction, percent;
	assert_accepted("step chance=0.25", &fraction);
	assert_accepted("step chance=25%", &percent);
	/* Same seed and line, so the same draws: the decisions must agree. */
	fraction.seed = percent.seed = 12345;
	fraction.line = percent.line = 1;
	for (unsigned i = 0; i < 2000; i++) {
		bool a = wrench__rule_fires(&fraction, true);
		bool b = wrench__rule_fires(&percent, true);
		if (a != b)
			fail_msg("call %u: chance=0.25 says %d, chance=25%% says %d", i + 1, a, b);
	}
}

/* ---- every, first, after, times ------------------------------------------ */

static void test_counting_directives_are_parsed(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step first=2 every=3 after=5 times=7", &rule);
	assert_int_equal(rule.first, 2);
	assert_int_equal(rule.every, 3);
	assert_int_equal(rule.after, 5);
	assert_int_equal(rule.times, 7);
}

static void test_every_alone_fires_the_first_of_each_run(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step every=3", &rule);
	assert_fires(&rule, "TFFTFFTFF");
}

static void test_counting_directives_accept_their_limits(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step every=1", &rule);
	assert_accepted("step first=1 every=1", &rule);
	assert_accepted("step first=5 every=5", &rule);
	assert_accepted("step after=0", &rule);
	assert_accepted("step times=1", &rule);
	assert_accepted("step times=18446744073709551615", &rule);
	assert_int_equal(rule.times, UINT64_MAX);
}

static void test_counting_directives_reject_bad_numbers(void **state)
{
	(void)state;
	assert_rejected("step every=0", NULL);
	assert_rejected("step first=0 every=2", NULL);
	assert_rejected("step times=0", NULL);
	assert_rejected("step after=-1", NULL);
	assert_rejected("step every=1.5", NULL);
	assert_rejected("step every=abc", NULL);
	assert_rejected("step times=+1", NULL);
	assert_rejected("step after=0x10", NULL);
	assert_rejected("step after=1e3", NULL);
	assert_rejected("step times=18446744073709551616", NULL);
}

static void test_first_needs_every(void **state)
{
	(void)state;
	assert_rejected("step first=2", "every");
	assert_rejected("step first=1 times=3", "every");
}

static void test_first_cannot_exceed_every(void **state)
{
	(void)state;
	assert_rejected("step first=3 every=2", NULL);
	assert_rejected("step every=2 first=3", NULL);
}

/* ---- errno and value ------------------------------------------------------ */

/* The message rejecting LINE, into ERR; fails the test if LINE is accepted. */
static const char *rejection(const char *line, char *err)
{
	struct wrench__rule rule;
	int rc = parse(line, &rule, err);
	if (rc != -1)
		fail_msg("\"%s\" was accepted (rc %d)", line, rc);
	return err;
}

/* RULE's value= decoded, into OUT (WRENCH_VALUE_MAX + 1 bytes); its length. */
static size_t decoded_value(const struct wrench__rule *rule, char *out)
{
	assert_non_null(wrench__rule_value(rule));
	return wrench__value_decode(wrench__rule_value(rule), rule->value_len, out);
}

static void test_errno_accepts_names_in_any_case_aliases_and_numbers(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int errnum;
	} cases[] = {
	        {"step errno=ENOSPC", ENOSPC},
	        {"step errno=enospc", ENOSPC},
	        {"step errno=EnOsPc", ENOSPC},
	        {"step errno=EIO", EIO},
	        {"step errno=E2BIG", E2BIG},
	        {"step errno=EWOULDBLOCK", EAGAIN},
	        {"step errno=ewouldblock", EAGAIN},
	        {"step errno=EDEADLOCK", EDEADLK},
	        {"step errno=ENOTSUP", EOPNOTSUPP},
	        {"step errno=28", 28},
	        {"step errno=1", 1},
	        {"step errno=4095", 4095},
	        {"step errno=1234", 1234},
	        {"step errno=0028", 28},
	        {"step errno=EHWPOISON", EHWPOISON},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wrench__rule rule;
		assert_accepted(cases[i].line, &rule);
		if (rule.errnum != cases[i].errnum)
			fail_msg("\"%s\" gave errno %d, want %d", cases[i].line, rule.errnum,
			         cases[i].errnum);
		assert_true(rule.fail);
		assert_null(wrench__rule_value(&rule));
	}
}

static void test_value_accepts_text_and_percent_escapes(void **state)
{
	(void)state;
	static const struct {
		const char *line, *written, *decoded;
	} cases[] = {
	        {"step value=abc", "abc", "abc"},
	        {"step value=disk%20full", "disk%20full", "disk full"},
	        {"step value=%25", "%25", "%"},
	        {"step value=%ff", "%ff", "\xff"},
	        {"step value=%FF%fE", "%FF%fE", "\xff\xfe"},
	        {"step value=%0a%09%01", "%0a%09%01", "\n\t\x01"},
	        {"step value=a#b", "a#b", "a#b"},
	        {"step value=x=y", "x=y", "x=y"},
	        {"step value=caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wrench__rule rule;
		char out[WRENCH_VALUE_MAX + 1];
		assert_accepted(cases[i].line, &rule);
		/* Kept as written: decoded only when a caller asks. */
		assert_int_equal(rule.value_len, strlen(cases[i].written));
		assert_memory_equal(wrench__rule_value(&rule), cases[i].written, rule.value_len);
		assert_int_equal(decoded_value(&rule, out), strlen(cases[i].decoded));
		assert_string_equal(out, cases[i].decoded);
		assert_true(rule.fail);
		assert_int_equal(rule.errnum, 0);
	}
}

/* The longest value, written plainly or with every byte escaped. */
static void test_a_value_of_255_decoded_bytes_is_accepted_whole(void **state)
{
	char line[16 + 3 * WRENCH_VALUE_MAX], out[WRENCH_VALUE_MAX + 1], want[WRENCH_VALUE_MAX];
	struct wrench__rule rule;
	(void)state;

	memset(want, 'v', sizeof(want));
	snprintf(line, sizeof(line), "step value=%.*s", WRENCH_VALUE_MAX, want);
	assert_accepted(line, &rule);
	assert_int_equal(decoded_value(&rule, out), WRENCH_VALUE_MAX);
	assert_memory_equal(out, want, WRENCH_VALUE_MAX);
	assert_int_equal(out[WRENCH_VALUE_MAX], '\0');

	/* Bytes 1 to 255, each as %XX: 765 bytes written, 255 decoded. */
	size_t used = (size_t)snprintf(line, sizeof(line), "step value=");
	for (int b = 1; b <= WRENCH_VALUE_MAX; b++) {
		want[b - 1] = (char)b;
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%%%02X", b);
	}
	assert_accepted(line, &rule);
	assert_int_equal(rule.value_len, 3 * WRENCH_VALUE_MAX);
	assert_int_equal(decoded_value(&rule, out), WRENCH_VALUE_MAX);
	assert_memory_equal(out, want, WRENCH_VALUE_MAX);
	assert_int_equal(out[WRENCH_VALUE_MAX], '\0');
}

/* wrench__value_decode() on checked text: each escape one byte, the rest
 * as it is, always ended, never past WRENCH_VALUE_MAX + 1 bytes. */
static void test_value_decode_turns_each_escape_into_its_byte(void **state)
{
	(void)state;
	static const struct {
		const char *text, *decoded;
	} cases[] = {
	        {"", ""},
	        {"plain", "plain"},
	        {"%41%42c", "ABc"},
	        {"%4a%4A", "JJ"},
	        {"100%25%20sure", "100% sure"},
	        {"%2541", "%41"},
	        {"a%7fb%80", "a\177b\200"},
	        {"\xc3\xa9%c3%a9", "\xc3\xa9\xc3\xa9"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct {
			char out[WRENCH_VALUE_MAX + 1];
			char guard[16];
		} buf;
		size_t len = strlen(cases[i].text), checked_len;
		memset(&buf, 0x5a, sizeof(buf));
		assert_int_equal(wrench__check_value(cases[i].text, len, &checked_len), 0);
		assert_int_equal(checked_len, strlen(cases[i].decoded));
		assert_int_equal(wrench__value_decode(cases[i].text, len, buf.out),
		                 strlen(cases[i].decoded));
		assert_string_equal(buf.out, cases[i].decoded);
		for (size_t g = 0; g < sizeof(buf.guard); g++)
			assert_int_equal(buf.guard[g], 0x5a);
	}
}

/* wrench__check_value() refuses what the decoder could not give back
 * whole: a cut or bad escape, %00, a control character, too long. */
static void test_check_value_refuses_what_cannot_be_decoded_whole(void **state)
{
	(void)state;
	static const char *const bad[] = {"%",   "%2",    "a%",    "%zz",  "%g0", "%0g",
	                                  "%00", "a%00b", "a\x01", "\x7f", "\t",  "%%41"};
	char long_text[3 * WRENCH_VALUE_MAX + 4];
	size_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (wrench__check_value(bad[i], strlen(bad[i]), &len) != -EINVAL)
			fail_msg("\"%s\" was not refused as a bad value", bad[i]);
	memset(long_text, 'x', WRENCH_VALUE_MAX + 1);
	assert_int_equal(wrench__check_value(long_text, WRENCH_VALUE_MAX + 1, &len), -ERANGE);
	assert_int_equal(len, WRENCH_VALUE_MAX + 1);
	assert_int_equal(wrench__check_value(long_text, WRENCH_VALUE_MAX, &len), 0);
	assert_int_equal(len, WRENCH_VALUE_MAX);
	for (size_t i = 0; i < WRENCH_VALUE_MAX + 1; i++)
		memcpy(long_text + 3 * i, "%41", 3);
	assert_int_equal(wrench__check_value(long_text, 3 * WRENCH_VALUE_MAX, &len), 0);
	assert_int_equal(len, WRENCH_VALUE_MAX);
	assert_int_equal(wrench__check_value(long_text, 3 * (WRENCH_VALUE_MAX + 1), &len), -ERANGE);
}

static void test_errno_and_value_combine_with_every_other_directive(void **state)
{
	(void)state;
	struct wrench__rule rule;
	char out[WRENCH_VALUE_MAX + 1];

	assert_accepted("step errno=EROFS value=read%20only fail slow=1ms chance=0.5 every=3 "
	                "first=2 after=1 times=4 until=2099-01-01T00:00:00Z scope=process",
	                &rule);
	assert_int_equal(rule.errnum, EROFS);
	assert_int_equal(decoded_value(&rule, out), 9);
	assert_string_equal(out, "read only");
	assert_true(rule.fail);
	assert_true(rule.has_slow);
	assert_int_equal(rule.slow_ns, 1000000u);
	assert_true(rule.has_chance);
	assert_int_equal(rule.every, 3);
	assert_int_equal(rule.first, 2);
	assert_int_equal(rule.after, 1);
	assert_int_equal(rule.times, 4);
	assert_true(rule.until > 0);
	assert_true(rule.process_scope);

	static const char *const pairs[] = {
	        "step errno=EIO fail",
	        "step value=x fail",
	        "step errno=EIO chance=25%",
	        "step value=x every=2",
	        "step first=1 every=2 errno=EIO",
	        "step errno=EIO after=3",
	        "step value=x times=1",
	        "step until=2099-01-01T00:00:00Z errno=5",
	        "step scope=machine value=x",
	        "step value=x errno=EIO",
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		assert_accepted(pairs[i], &rule);
		if (!rule.fail)
			fail_msg("\"%s\" is not a failing line", pairs[i]);
	}
}

/* errno= or value= says how the line fails: a slow line with either
 * fails after its delay; a slow line alone still only delays. */
static void test_errno_or_value_make_a_slow_line_fail(void **state)
{
	(void)state;
	struct wrench__rule rule;
	assert_accepted("step slow=1ms errno=EIO", &rule);
	assert_true(rule.fail);
	assert_true(rule.has_slow);
	assert_int_equal(rule.errnum, EIO);
	assert_accepted("step value=late slow=1ms", &rule);
	assert_true(rule.fail);
	assert_true(rule.has_slow);
	assert_accepted("step slow=1ms", &rule);
	assert_false(rule.fail);
	assert_int_equal(rule.errnum, 0);
	assert_null(wrench__rule_value(&rule));
}

/* A number out of range says the range, and that a name will do. */
static void test_errno_refuses_numbers_outside_1_to_4095(void **state)
{
	(void)state;
	static const char *const lines[] = {"step errno=0", "step errno=4096",
	                                    "step errno=99999999999999999999", "step errno=000"};
	char err[ERRLEN], want[ERRLEN];
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(want, sizeof(want),
		         "\"%s\": an errno number is from 1 to 4095 (or a name such as EIO)",
		         lines[i] + 5);
		assert_string_equal(rejection(lines[i], err), want);
	}
	assert_string_equal(rejection("step errno=", err), "\"errno=\" needs a value");
}

/* An unknown name says what was meant when a name is near, then the fix. */
static void test_errno_refuses_unknown_names_and_says_what_was_meant(void **state)
{
	(void)state;
	char err[ERRLEN];
	assert_string_equal(rejection("step errno=ENOSAPCE", err),
	                    "\"errno=ENOSAPCE\": unknown errno name (did you mean ENOSPC?; a name "
	                    "of <errno.h> such as EIO, ENOSPC, EACCES or ETIMEDOUT, listed in "
	                    "wrench(5), or a number from 1 to 4095)");
	/* A typo in lower case is still matched. */
	assert_non_null(strstr(rejection("step errno=enosapce", err), "did you mean ENOSPC?"));
	assert_string_equal(rejection("step errno=EFOO", err),
	                    "\"errno=EFOO\": unknown errno name (a name of <errno.h> such as EIO, "
	                    "ENOSPC, EACCES or ETIMEDOUT, listed in wrench(5), or a number from "
	                    "1 to 4095)");
	/* Not a number either: the same message, which gives the range. */
	assert_non_null(strstr(rejection("step errno=-1", err),
	                       "\"errno=-1\": unknown errno name (a name of <errno.h>"));
	assert_non_null(strstr(err, "or a number from 1 to 4095)"));
	assert_non_null(strstr(rejection("step errno=+5", err), "unknown errno name"));
	assert_non_null(strstr(rejection("step errno=EIO5", err), "unknown errno name"));
	assert_non_null(strstr(rejection("step errno=0x10", err), "unknown errno name"));
	/* Three near names, the most a message gives. */
	assert_non_null(strstr(rejection("step errno=EHHTDOWN", err),
	                       "(did you mean ENETDOWN or ESHUTDOWN or EHOSTDOWN?; "));
}

static void test_value_refuses_bad_escapes_nul_and_control_characters(void **state)
{
	(void)state;
	static const char *const lines[] = {
	        "step value=%",    "step value=%2",         "step value=%zz",   "step value=%00",
	        "step value=a%0",  "step value=%g1",        "step value=a%00b", "step value=a\001b",
	        "step value=\x7f", "step value=esc\x1b[0m",
	};
	char err[ERRLEN], want[ERRLEN];
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(want, sizeof(want),
		         "\"%s\": bad value (text without control characters; write a space as "
		         "%%20, a %% as %%25, any other byte but NUL as %%XX)",
		         lines[i] + 5);
		assert_string_equal(rejection(lines[i], err), want);
	}
	assert_string_equal(rejection("step value=", err), "\"value=\" needs a value");
}

static void test_value_refuses_more_than_255_decoded_bytes(void **state)
{
	char line[16 + 3 * (WRENCH_VALUE_MAX + 1)], err[ERRLEN];
	(void)state;

	snprintf(line, sizeof(line), "step value=");
	memset(line + 11, 'v', WRENCH_VALUE_MAX + 1);
	line[11 + WRENCH_VALUE_MAX + 1] = '\0';
	assert_non_null(strstr(rejection(line, err),
	                       "...\": the value is longer than 255 bytes once decoded"));
	for (size_t i = 0; i < WRENCH_VALUE_MAX + 1; i++)
		memcpy(line + 11 + 3 * i, "%41", 4);
	assert_non_null(strstr(rejection(line, err),
	                       "...\": the value is longer than 255 bytes once decoded"));
}

static void test_errno_and_value_appear_at_most_once(void **state)
{
	(void)state;
	char err[ERRLEN];
	assert_string_equal(rejection("step errno=EIO errno=EIO", err),
	                    "directive \"errno\" appears twice");
	assert_string_equal(rejection("step errno=EIO errno=ENOSPC", err),
	                    "directive \"errno\" appears twice");
	assert_string_equal(rejection("step value=a value=b", err),
	                    "directive \"value\" appears twice");
}

/* A killed process returns no error: a kill line cannot say one. */
static void test_errno_and_value_cannot_be_combined_with_kill(void **state)
{
	(void)state;
	char err[ERRLEN];
	assert_string_equal(rejection("step kill errno=EIO", err),
	                    "errno= cannot be combined with kill: a killed process returns no "
	                    "error");
	assert_string_equal(rejection("step errno=EIO kill=TERM", err),
	                    "errno= cannot be combined with kill: a killed process returns no "
	                    "error");
	assert_string_equal(rejection("step kill=TERM value=x", err),
	                    "value= cannot be combined with kill: a killed process returns no "
	                    "error");
	assert_string_equal(rejection("step slow=1ms value=x kill", err),
	                    "value= cannot be combined with kill: a killed process returns no "
	                    "error");
}

/* In a whole file, each line keeps its own value, ended, after its
 * feature, and a bad value only takes its own line down. */
static void test_each_line_of_a_file_keeps_its_own_errno_and_value(void **state)
{
	(void)state;
	char out[WRENCH_VALUE_MAX + 1];
	struct wrench__rules *rules = parse_rules("a value=x%20y errno=ENOSPC\n"
	                                          "b value=%00\n"
	                                          "c\n"
	                                          "d errno=28 value=z");
	assert_int_equal(rules->count, 3);
	assert_int_equal(rules->error_count, 1);
	assert_int_equal(rules->error[0].line, 2);
	assert_string_equal(rules->rule[0].feature, "a");
	assert_int_equal(rules->rule[0].errnum, ENOSPC);
	assert_string_equal(wrench__rule_value(&rules->rule[0]), "x%20y");
	assert_int_equal(decoded_value(&rules->rule[0], out), 3);
	assert_string_equal(out, "x y");
	assert_string_equal(rules->rule[1].feature, "c");
	assert_int_equal(rules->rule[1].errnum, 0);
	assert_null(wrench__rule_value(&rules->rule[1]));
	assert_string_equal(rules->rule[2].feature, "d");
	assert_int_equal(rules->rule[2].errnum, 28);
	assert_string_equal(wrench__rule_value(&rules->rule[2]), "z");
	wrench__rules_free(rules);
}

/* ---- malformed lines ----------------------------------------------------- */

static void test_duplicate_directive_is_rejected(void **state)
{
	(void)state;
	assert_rejected("step times=1 times=2", "times");
	assert_rejected("step fail fail", "fail");
	assert_rejected("step kill kill=TERM", "kill");
	assert_rejected("step slow=1s slow=2s", "slow");
	assert_rejected("step chance=0.5 chance=0.5", "chance");
	assert_rejected("step every=2 every=3", "every");
	assert_rejected("step after=1 after=1", "after");
	assert_rejected("step first=1 first=1 every=2", "first");
}

static void test_unknown_directive_is_rejected(void **state)
{
	(void)state;
	assert_rejected("step chanse=0.5", "chanse");
	assert_rejected("step bogus", "bogus");
	assert_rejected("step fail=1", NULL);
	assert_rejected("step =3", NULL);
}

/* The message says what was meant, when a directive is near, and every
 * directive: the fix, in an agent's log as in the command's output. */
static void test_unknown_directive_says_what_was_meant_and_lists_every_directive(void **state)
{
	struct wrench__rule rule;
	char err[ERRLEN];
	(void)state;
	assert_int_equal(parse("step chanse=25%", &rule, err), -1);
	assert_string_equal(err,
	                    "unknown directive \"chanse=25%\" (did you mean chance=?; "
	                    "directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, "
	                    "first=N, after=K, times=T, until=TIME, scope=process, errno=NAME, "
	                    "value=TEXT)");
	assert_int_equal(parse("step kil", &rule, err), -1);
	assert_non_null(strstr(err, "(did you mean kill?; directives: fail, kill[=SIG],"));
	assert_int_equal(parse("step bogus", &rule, err), -1);
	assert_null(strstr(err, "did you mean"));
	assert_non_null(strstr(err, "\"bogus\" (directives: fail, kill[=SIG], "));
}

/* Every kind of message, with the longest token a line can have, fits in
 * WRENCH__PARSE_ERROR_MAX bytes whole: a long token is cut, and says so
 * with "...", and nothing after it is lost. */
static void test_every_message_fits_whole_with_a_long_token(void **state)
{
	static const char *const lines[] = {"f %s",
	                                    "f chanse=%s",
	                                    "f kill=%s",
	                                    "f slow=%s",
	                                    "f until=%s",
	                                    "f scope=%s",
	                                    "f chance=%s",
	                                    "f times=%s",
	                                    "f every=%s",
	                                    "f first=%s",
	                                    "f after=%s",
	                                    "f fail=%s",
	                                    "f tim%s",
	                                    "f fist%s=1",
	                                    "f times=1 times=%s",
	                                    "f times=0 every=%s",
	                                    "f fail kill=%s",
	                                    "f errno=%s",
	                                    "f value=%s",
	                                    "f value=%%zz%s",
	                                    "f errno=1 errno=%s",
	                                    "f value=%%00%s"};
	char token[400], line[512], big[4096];
	struct wrench__rule rule;
	(void)state;
	memset(token, 'x', sizeof(token) - 1);
	token[sizeof(token) - 1] = '\0';
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(line, sizeof(line), lines[i], token);
		big[0] = '\0';
		if (wrench__parse_line(line, strlen(line), &rule, big, sizeof(big)) != -1)
			fail_msg("\"%s\" was accepted", lines[i]);
		if (strlen(big) >= WRENCH__PARSE_ERROR_MAX)
			fail_msg("%zu bytes for \"%s\": %s", strlen(big), lines[i], big);
		if (strstr(big, token))
			fail_msg("the token of \"%s\" is quoted whole: %s", lines[i], big);
	}
	/* The longest a "did you mean" can be: three names (the most any
	 * word has near it), after a token cut at its longest. */
	snprintf(line, sizeof(line), "f aftil=%s", token);
	assert_int_equal(wrench__parse_line(line, strlen(line), &rule, big, sizeof(big)), -1);
	assert_non_null(strstr(big, "...\" (did you mean fail or after= or until=?; directives: "));
	assert_true(strlen(big) < WRENCH__PARSE_ERROR_MAX);
	/* An errno number out of range, as long as a token can be. */
	memset(token, '9', sizeof(token) - 1);
	snprintf(line, sizeof(line), "f errno=%s", token);
	assert_int_equal(wrench__parse_line(line, strlen(line), &rule, big, sizeof(big)), -1);
	assert_non_null(strstr(big, "...\": an errno number is from 1 to 4095"));
	assert_true(strlen(big) < WRENCH__PARSE_ERROR_MAX);
}

/* The longest unknown errno name message: the token quoted at its
 * longest and three names near it. No token has both (names near one are
 * at most two bytes longer than the longest name, 15 bytes, and only a
 * value of at most 64 bytes is compared), so the bound is the message of
 * the longest token plus the three longest names' "did you mean". */
static void test_an_unknown_errno_message_fits_with_a_long_token_and_three_names(void **state)
{
	char line[128], big[4096], value[WRENCH__QUOTED_TOKEN_MAX + 1];
	struct wrench__rule rule;
	size_t count, longest[3] = {0, 0, 0};
	(void)state;

	/* A value of 64 bytes: compared with the names, and quoted cut. */
	memset(value, 'E', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(line, sizeof(line), "f errno=%s", value);
	assert_int_equal(wrench__parse_line(line, strlen(line), &rule, big, sizeof(big)), -1);
	assert_non_null(strstr(big, "...\": unknown errno name (a name of <errno.h>"));
	size_t without_names = strlen(big);

	const char *const *names = wrench__errno_names(&count);
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(names[i]);
		for (size_t k = 0; k < 3; k++) {
			if (len > longest[k]) {
				size_t spare = len;
				len = longest[k];
				longest[k] = spare;
			}
		}
	}
	size_t bound = without_names + strlen("did you mean ") + longest[0] + longest[1] +
	               longest[2] + 2 * strlen(" or ") + strlen("?; ");
	if (bound >= WRENCH__PARSE_ERROR_MAX)
		fail_msg("an unknown errno name message may take %zu bytes: %s", bound + 1, big);

	/* Three names near a word, as a message has them. */
	snprintf(line, sizeof(line), "f errno=EHHTDOWN");
	assert_int_equal(wrench__parse_line(line, strlen(line), &rule, big, sizeof(big)), -1);
	assert_non_null(strstr(big, "(did you mean ENETDOWN or ESHUTDOWN or EHOSTDOWN?; a name"));
	assert_true(strlen(big) < bound);
}

/* The quoted start of the token in ERR, up to its "...", in bytes. */
static long quoted_length(const char *err)
{
	const char *quoted = strchr(err, '"') + 1;
	const char *cut = strstr(quoted, "...\"");
	return cut ? cut - quoted : -1;
}

/* A token cut for a message is cut between two UTF-8 characters. */
static void test_a_long_token_is_cut_between_characters(void **state)
{
	char line[256] = "f ", err[ERRLEN];
	struct wrench__rule rule;
	(void)state;
	for (size_t i = 0; i < 40; i++)
		strcat(line, "\xc3\xa9"); /* two bytes each */
	assert_int_equal(parse(line, &rule, err), -1);
	assert_int_equal(quoted_length(err), WRENCH__QUOTED_TOKEN_MAX);
	/* One byte more before them: byte 64 is the second of a character. */
	memmove(line + 3, line + 2, strlen(line + 2) + 1);
	line[2] = 'a';
	assert_int_equal(parse(line, &rule, err), -1);
	assert_int_equal(quoted_length(err), WRENCH__QUOTED_TOKEN_MAX - 1);
}

/* A line given on a command line may be longer than a trigger file: a
 * value too far from the feature for the rule's 16-bit offset is refused,
 * never kept at a wrapped place that reads other bytes of the line. */
static void test_value_too_far_into_a_long_line_is_rejected(void **state)
{
	struct wrench__rule rule;
	char err[ERRLEN];
	size_t pad = 70000;
	char *line = malloc(pad + 64);
	(void)state;
	assert_non_null(line);
	/* chance= ignores digits past the ninth after the point. */
	int n = snprintf(line, 64, "step chance=0.");
	memset(line + n, '0', pad);
	snprintf(line + n + pad, 64, " value=far");
	assert_int_equal(parse(line, &rule, err), -1);
	assert_non_null(strstr(err, "too far into the line"));
	/* Just inside the limit, the value is read where it is. */
	line[n + 65000] = '\0';
	strcat(line, " value=near");
	assert_int_equal(parse(line, &rule, err), 1);
	assert_int_equal(rule.value_len, 4);
	assert_memory_equal(wrench__rule_value(&rule), "near", 4);
	free(line);
}

static void test_empty_value_is_rejected(void **state)
{
	(void)state;
	assert_rejected("step times=", NULL);
	assert_rejected("step every=", NULL);
	assert_rejected("step first= every=2", NULL);
	assert_rejected("step after=", NULL);
	assert_rejected("step chance=", NULL);
	assert_rejected("step slow=", NULL);
	assert_rejected("step kill=", NULL);
}

/* ---- whole files ---------------------------------------------------------- */

static void test_bad_lines_do_not_stop_good_ones(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("good1\n"
	                                          "bad1 times=0\n"
	                                          "# comment\n"
	                                          "\n"
	                                          "good2 every=2\n"
	                                          "bad2 first=2\n"
	                                          "good3 chance=1\n");
	assert_int_equal(rules->count, 3);
	assert_string_equal(rules->rule[0].feature, "good1");
	assert_int_equal(rules->rule[0].line, 1);
	assert_string_equal(rules->rule[1].feature, "good2");
	assert_int_equal(rules->rule[1].line, 5);
	assert_int_equal(rules->rule[1].every, 2);
	assert_string_equal(rules->rule[2].feature, "good3");
	assert_int_equal(rules->rule[2].line, 7);
	wrench__rules_free(rules);
}

static void test_bad_lines_are_reported_with_their_line_numbers(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("good1\r\n"
	                                          "bad1 times=0\r\n"
	                                          "# comment\n"
	                                          "\n"
	                                          "good2\n"
	                                          "bad2 chanse=0.5\n");
	assert_int_equal(rules->error_count, 2);
	assert_int_equal(rules->error[0].line, 2);
	assert_int_equal(rules->error[1].line, 6);
	assert_non_null(strstr(rules->error[1].message, "chanse"));
	wrench__rules_free(rules);
}

static void test_empty_file_has_no_rules(void **state)
{
	(void)state;
	struct wrench__rules *rules = parse_rules("");
	assert_int_equal(rules->count, 0);
	assert_int_equal(rules->error_count, 0);
	wrench__rules_free(rules);
	rules = parse_rules("# only a comment\n\n   \n");
	assert_int_equal(rules->count, 0);
	assert_int_equal(rules->error_count, 0);
	wrench__rules_free(rules);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bare_feature_is_a_trigger_that_always_fails),
	        cmocka_unit_test(test_blank_lines_are_ignored),
	        cmocka_unit_test(test_comment_lines_are_ignored),
	        cmocka_unit_test(test_comment_after_white_space_ends_the_line),
	        cmocka_unit_test(test_hash_inside_a_token_is_part_of_the_feature),
	        cmocka_unit_test(test_surrounding_white_space_is_ignored),
	        cmocka_unit_test(test_unicode_white_space_is_trimmed_as_go_trims_it),
	        cmocka_unit_test(test_unicode_white_space_separates_directives),
	        cmocka_unit_test(test_characters_go_does_not_trim_stay_in_the_feature),
	        cmocka_unit_test(test_feature_with_a_control_character_is_rejected),
	        cmocka_unit_test(test_crlf_line_endings_are_accepted),
	        cmocka_unit_test(test_kill_defaults_to_sigkill),
	        cmocka_unit_test(test_kill_accepts_signal_names_and_numbers),
	        cmocka_unit_test(test_kill_rejects_unknown_signals),
	        cmocka_unit_test(test_kill_refuses_the_signals_the_c_library_reserves),
	        cmocka_unit_test(test_kill_refuses_signals_that_do_not_end_the_process),
	        cmocka_unit_test(
	                test_kill_accepts_every_signal_that_ends_the_process_by_name_or_number),
	        cmocka_unit_test(test_fail_and_kill_cannot_be_combined),
	        cmocka_unit_test(test_slow_accepts_durations_up_to_an_hour),
	        cmocka_unit_test(test_slow_rejects_bad_durations),
	        cmocka_unit_test(test_slow_line_delays_without_failing),
	        cmocka_unit_test(test_slow_combines_with_fail_or_kill),
	        cmocka_unit_test(test_line_without_action_fails),
	        cmocka_unit_test(test_chance_accepts_fractions_and_percentages),
	        cmocka_unit_test(test_chance_rejects_values_outside_zero_to_one),
	        cmocka_unit_test(test_decimals_may_have_many_digits),
	        cmocka_unit_test(test_chance_zero_never_fires),
	        cmocka_unit_test(test_chance_one_always_fires),
	        cmocka_unit_test(test_chance_quarter_fires_about_a_quarter_of_calls),
	        cmocka_unit_test(test_percentage_means_the_same_as_fraction),
	        cmocka_unit_test(test_counting_directives_are_parsed),
	        cmocka_unit_test(test_every_alone_fires_the_first_of_each_run),
	        cmocka_unit_test(test_counting_directives_accept_their_limits),
	        cmocka_unit_test(test_counting_directives_reject_bad_numbers),
	        cmocka_unit_test(test_first_needs_every),
	        cmocka_unit_test(test_first_cannot_exceed_every),
	        cmocka_unit_test(test_errno_accepts_names_in_any_case_aliases_and_numbers),
	        cmocka_unit_test(test_value_accepts_text_and_percent_escapes),
	        cmocka_unit_test(test_a_value_of_255_decoded_bytes_is_accepted_whole),
	        cmocka_unit_test(test_value_decode_turns_each_escape_into_its_byte),
	        cmocka_unit_test(test_check_value_refuses_what_cannot_be_decoded_whole),
	        cmocka_unit_test(test_errno_and_value_combine_with_every_other_directive),
	        cmocka_unit_test(test_errno_or_value_make_a_slow_line_fail),
	        cmocka_unit_test(test_errno_refuses_numbers_outside_1_to_4095),
	        cmocka_unit_test(test_errno_refuses_unknown_names_and_says_what_was_meant),
	        cmocka_unit_test(test_value_refuses_bad_escapes_nul_and_control_characters),
	        cmocka_unit_test(test_value_refuses_more_than_255_decoded_bytes),
	        cmocka_unit_test(test_errno_and_value_appear_at_most_once),
	        cmocka_unit_test(test_errno_and_value_cannot_be_combined_with_kill),
	        cmocka_unit_test(test_each_line_of_a_file_keeps_its_own_errno_and_value),
	        cmocka_unit_test(test_value_too_far_into_a_long_line_is_rejected),
	        cmocka_unit_test(test_duplicate_directive_is_rejected),
	        cmocka_unit_test(test_unknown_directive_is_rejected),
	        cmocka_unit_test(
	                test_unknown_directive_says_what_was_meant_and_lists_every_directive),
	        cmocka_unit_test(test_every_message_fits_whole_with_a_long_token),
	        cmocka_unit_test(
	                test_an_unknown_errno_message_fits_with_a_long_token_and_three_names),
	        cmocka_unit_test(test_a_long_token_is_cut_between_characters),
	        cmocka_unit_test(test_empty_value_is_rejected),
	        cmocka_unit_test(test_bad_lines_do_not_stop_good_ones),
	        cmocka_unit_test(test_bad_lines_are_reported_with_their_line_numbers),
	        cmocka_unit_test(test_empty_file_has_no_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
