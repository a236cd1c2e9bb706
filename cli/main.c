/*
 * wrench(1): drop, inspect and lint trigger files safely. This file reads
 * the command line and hands over to one function per command.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_COUNT 1000000ul

/* getopt returned OPT ('?' unknown, ':' missing value) for ARG. */
static int usage_error(int opt, const char *arg)
{
	if (optopt && strchr("n", optopt))
		note("option -%c %s; try 'wrench --help'", optopt,
		     opt == ':' ? "needs a value" : "is unknown");
	else if (optopt && opt == '?')
		note("unknown option -%c; try 'wrench --help'", optopt);
	else
		note("%s option \"%s\"; try 'wrench --help'",
		     opt == ':' ? "missing the value of the" : "unknown", arg);
	return EXIT_USAGE;
}

/* --dir as given, or what the library would use. A relative path is
 * refused, as the library refuses it: an agent given it stays inactive. */
static int resolve_dir(const char *given, struct options *o)
{
	const char *env = getenv("WRENCH_DIR");
	/* A WRENCH_DIR that is set is judged here, before the library logs
	 * an error of its own about it: one message is enough. */
	const char *dir = given ? given : env && *env ? env : wrench_get_dir();

	if (!dir || dir[0] != '/') {
		const char *pwd = getenv("PWD");
		note("%s \"%s\" is not an absolute path, which the library refuses (an agent "
		     "given it stays inactive); fix: give an absolute path, such as \"%s/%s\"",
		     given ? "--dir" : "WRENCH_DIR", dir ? dir : "", pwd && *pwd == '/' ? pwd : "",
		     dir ? dir : "");
		return EXIT_USAGE;
	}
	int n = snprintf(o->dir, sizeof(o->dir), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(o->dir) || wrench__check_dir_path(o->dir) < 0) {
		note("invalid directory \"%s\": it must not be too long nor contain \"..\"", dir);
		return EXIT_USAGE;
	}
	o->dir_given = given != NULL;
	return 0;
}

/* The groups of the agent's user NAME: its access to its files is judged
 * with them. */
static void resolve_groups(const char *name, struct options *o)
{
	int n = 64;
	for (int attempt = 0; attempt < 4; attempt++) {
		gid_t *groups = realloc(o->owner_groups, (size_t)n * sizeof(*groups));
		if (!groups)
			break;
		o->owner_groups = groups;
		int want = n;
		if (getgrouplist(name, o->owner_gid, groups, &want) >= 0) {
			o->owner_ngroups = want;
			return;
		}
		n = want > n ? want : n * 2;
	}
	/* Without the list, only the primary group counts: an access
	 * through another group is then reported as missing, never the
	 * reverse. */
	o->owner_ngroups = 0;
}

/* The agent's user, with every group it is in. */
static int resolve_owner(const char *user, struct options *o)
{
	char *end;
	errno = 0;
	struct passwd *pw = getpwnam(user);
	unsigned long uid = strtoul(user, &end, 10);

	if (!pw && *user && !*end && errno == 0)
		pw = getpwuid((uid_t)uid);
	if (!pw) {
		note("unknown user \"%s\"", user);
		return EXIT_USAGE;
	}
	o->has_owner = true;
	o->owner_uid = pw->pw_uid;
	o->owner_gid = pw->pw_gid;
	resolve_groups(pw->pw_name, o);
	return 0;
}

/*
 * Root, without --owner, in a trigger directory that belongs to another
 * user (one that `wrench --owner USER` made for USER's agent), running a
 * command that cleans up or reads counters (clear, reset, hits, wait): the
 * agent is that user, as if --owner named it. Judging for root would
 * refuse everything and suggest giving the directory to root, which would
 * make the agent refuse it instead. The commands that judge or write
 * files (check, list, eval, set, unset, prepare) keep judging for root
 * unless told: a directory some user took over must not pass for theirs.
 * The directory is reached by the library's walk, with descriptors.
 */
static void ignore(const struct wrench__problem *problem, void *ctx)
{
	(void)problem;
	(void)ctx;
}

static void adopt_dir_owner(struct options *o)
{
	/* A walk that goes on past owner problems, as a lint's does. */
	struct wrench__trust t = {.report = ignore};
	struct wrench__make_dir walk = {.keep_untrusted = true};
	struct stat st;

	if (geteuid() != 0)
		return;
	int fd = wrench__trust_make_dir(o->dir, &walk, &t);
	if (fd < 0)
		return;
	int rc = fstat(fd, &st);
	close(fd);
	if (rc < 0 || st.st_uid == 0)
		return;
	struct passwd *pw = getpwuid(st.st_uid);
	o->has_owner = true;
	o->owner_implied = true;
	o->owner_uid = st.st_uid;
	o->owner_gid = pw ? pw->pw_gid : st.st_gid;
	if (pw)
		resolve_groups(pw->pw_name, o);
}

static int parse_fires(const char *text, struct options *o)
{
	uint64_t n;

	if (wrench__parse_uint(text, strlen(text), &n) < 0 || n < 1 || n > UINT32_MAX) {
		note("--fires takes a whole number of at least 1, not \"%s\"", text);
		return EXIT_USAGE;
	}
	o->fires = (unsigned long)n;
	return 0;
}

static int parse_duration_option(const char *name, const char *text, uint64_t *ns)
{
	if (parse_cli_duration(text, ns) < 0 || *ns == 0) {
		note("%s takes a duration such as 30s, 10m, 2h or 7d, not \"%s\"", name, text);
		return EXIT_USAGE;
	}
	return 0;
}

static int parse_count(const char *text, struct options *o)
{
	uint64_t n;

	if (wrench__parse_uint(text, strlen(text), &n) < 0 || n < 1 || n > MAX_COUNT) {
		note("-n takes a whole number from 1 to %lu, not \"%s\"", MAX_COUNT, text);
		return EXIT_USAGE;
	}
	o->count = (unsigned long)n;
	return 0;
}

/* Each command's entry, from its operands (their number already checked
 * against the table below). */
static int run_set(const struct options *o, char **args, int nargs)
{
	return cmd_set(o, args[0], args[1], args + 2, nargs - 2);
}

static int run_unset(const struct options *o, char **args, int nargs)
{
	return cmd_unset(o, args[0], nargs > 1 ? args[1] : NULL);
}

static int run_clear(const struct options *o, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	return cmd_clear(o);
}

static int run_prepare(const struct options *o, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	return cmd_prepare(o);
}

static int run_list(const struct options *o, char **args, int nargs)
{
	return cmd_list(o, nargs ? args[0] : NULL);
}

static int run_check(const struct options *o, char **args, int nargs)
{
	(void)args;
	(void)nargs;
	return cmd_check(o);
}

static int run_eval(const struct options *o, char **args, int nargs)
{
	(void)nargs;
	return cmd_eval(o, args[0], args[1]);
}

static int run_hits(const struct options *o, char **args, int nargs)
{
	return cmd_hits(o, nargs ? args[0] : NULL);
}

static int run_wait(const struct options *o, char **args, int nargs)
{
	(void)nargs;
	return cmd_wait(o, args[0], args[1]);
}

static int run_points(const struct options *o, char **args, int nargs)
{
	return cmd_points(o, nargs ? args[0] : NULL);
}

static int run_reset(const struct options *o, char **args, int nargs)
{
	return cmd_reset(o, nargs ? args[0] : NULL, nargs > 1 ? args[1] : NULL);
}

/* The options a command may take, besides --dir, which every command
 * takes. */
enum option_bit {
	TAKES_OWNER = 1u << 0,
	TAKES_JSON = 1u << 1,
	TAKES_COUNT = 1u << 2,
	TAKES_FIRES = 1u << 3,
	TAKES_TIMEOUT = 1u << 4,
	TAKES_FOR = 1u << 5,
	TAKES_EXPIRED = 1u << 6,
	TAKES_BINARY = 1u << 7,
};

/* Each option as --help and the messages show it, in the order they are
 * shown. */
static const struct option_help {
	unsigned bit;
	const char *name; /* in full */
	const char *shown;
} option_help[] = {
        {TAKES_OWNER, "--owner", "--owner USER"},
        {TAKES_JSON, "--json", "--json"},
        {TAKES_COUNT, "--count", "-n N"},
        {TAKES_FIRES, "--fires", "--fires N"},
        {TAKES_TIMEOUT, "--timeout", "--timeout DURATION"},
        {TAKES_FOR, "--for", "--for DURATION"},
        {TAKES_EXPIRED, "--expired", "--expired"},
        {TAKES_BINARY, "--binary", "--binary PATH"},
};

/* Which operands and options each command takes, and what it does: a new
 * command is one more row, and its run_ function. --help and the usage
 * messages are made from this table. */
static const struct command {
	const char *name;
	/* As --help shows them; the words before the first "[" are required,
	 * and a usage message names the ones missing. */
	const char *operands;
	int min_args, max_args; /* after the command name; -1: any */
	unsigned takes;         /* enum option_bit */
	bool writes;            /* --owner then gives files away, which needs root */
	/* Run by root without --owner in a directory of another user, it
	 * acts for that user's agent (adopt_dir_owner()). */
	bool adopts;
	const char *does; /* one line of --help */
	int (*run)(const struct options *o, char **args, int nargs);
} commands[] = {
        {.name = "set",
         .operands = "CATEGORY FEATURE [DIRECTIVE ...]",
         .min_args = 2,
         .max_args = -1,
         .takes = TAKES_OWNER | TAKES_FOR | TAKES_BINARY,
         .writes = true,
         .does = "add FEATURE's line to CATEGORY's trigger file, or replace it; its counters "
                 "restart",
         .run = run_set},
        {.name = "unset",
         .operands = "CATEGORY [FEATURE]",
         .min_args = 1,
         .max_args = 2,
         .takes = TAKES_OWNER,
         .writes = true,
         .does = "remove FEATURE's lines, or the whole trigger file",
         .run = run_unset},
        {.name = "clear",
         .operands = "",
         .takes = TAKES_OWNER | TAKES_EXPIRED,
         .writes = true,
         .adopts = true,
         .does = "remove every trigger file (--expired: only the lines past their until=)",
         .run = run_clear},
        {.name = "prepare",
         .operands = "",
         .takes = TAKES_OWNER,
         .writes = true,
         .does = "make the directory and the counters ready for the agent (--owner's user)",
         .run = run_prepare},
        {.name = "list",
         .operands = "[CATEGORY]",
         .max_args = 1,
         .takes = TAKES_OWNER | TAKES_JSON,
         .does = "show the lines in force, and each ignored line or file with why",
         .run = run_list},
        {.name = "check",
         .operands = "",
         .takes = TAKES_OWNER | TAKES_JSON | TAKES_BINARY,
         .does = "lint the directory as the agent sees it: every problem, with its fix",
         .run = run_check},
        {.name = "eval",
         .operands = "CATEGORY FEATURE",
         .min_args = 2,
         .max_args = 2,
         .takes = TAKES_OWNER | TAKES_JSON | TAKES_COUNT,
         .does = "preview N calls of FEATURE from the current counters; nothing is done",
         .run = run_eval},
        {.name = "hits",
         .operands = "[CATEGORY]",
         .max_args = 1,
         .takes = TAKES_OWNER | TAKES_JSON,
         .adopts = true,
         .does = "show every line with its calls, fires and last fire",
         .run = run_hits},
        {.name = "wait",
         .operands = "CATEGORY FEATURE",
         .min_args = 2,
         .max_args = 2,
         .takes = TAKES_OWNER | TAKES_JSON | TAKES_FIRES | TAKES_TIMEOUT,
         .adopts = true,
         .does = "wait until FEATURE's lines have fired N times (default 1); a feature no "
                 "line names is an error",
         .run = run_wait},
        {.name = "reset",
         .operands = "[CATEGORY [FEATURE]]",
         .max_args = 2,
         .takes = TAKES_OWNER,
         .adopts = true,
         .does = "set counters back to zero",
         .run = run_reset},
        {.name = "points",
         .operands = "[CATEGORY]",
         .max_args = 1,
         .takes = TAKES_OWNER | TAKES_JSON | TAKES_BINARY,
         .adopts = true,
         .does = "show the points programs reached here, with their lines and fires "
                 "(--binary: PATH's points, reached or not: a run's coverage)",
         .run = run_points},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

/* "wrench NAME OPERANDS [OPTION]...", as --help and usage messages show a
 * command. */
static void print_synopsis(FILE *out, const struct command *c)
{
	fprintf(out, "wrench %s%s%s", c->name, *c->operands ? " " : "", c->operands);
	for (size_t i = 0; i < sizeof(option_help) / sizeof(option_help[0]); i++)
		if (c->takes & option_help[i].bit)
			fprintf(out, " [%s]", option_help[i].shown);
}

static void usage(FILE *out)
{
	fputs("usage: wrench [--dir DIR] COMMAND [OPERAND ...] [OPTION ...]\n"
	      "Options may come before or after the command; -- ends them.\n"
	      "--dir DIR: the trigger directory (default: $WRENCH_DIR, else the library's).\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		fputs("  ", out);
		print_synopsis(out, &commands[i]);
		fprintf(out, "\n      %s\n", commands[i].does);
	}
	fputs("--owner USER: the user the agent runs as; set, unset, clear and prepare give\n"
	      "it what they create (as root), the other commands judge files as its agent.\n"
	      "Directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, first=N,\n"
	      "after=K, times=T, until=TIME, scope=process, errno=NAME, value=TEXT\n"
	      "(see wrench(5)).\n"
	      "Exit status: 0 ok; 1 problems found, a category or feature that nothing\n"
	      "names, never fired or timed out; 2 bad usage or input (wait: also a\n"
	      "feature that no line names).\n",
	      out);
}

/* "CATEGORY and FEATURE": N operands of C from the Ith on, into WORDS. */
static const char *operand_names(const struct command *c, int i, int n, char *words, size_t len)
{
	const char *p = c->operands;
	size_t used = 0;

	words[0] = '\0';
	for (int k = 0; k < i + n && *p && used < len; k++) {
		size_t word = strcspn(p, " ");
		if (k >= i)
			used += (size_t)snprintf(words + used, len - used, "%s%.*s",
			                         k > i ? " and " : "", (int)word, p);
		p += word + (p[word] == ' ');
	}
	return words;
}

/* Says what is wrong with the operands or options given to C, and how
 * C is used: every usage error names what is missing or extra.
 * OPTIONS_GIVEN: the option bits given, SPELLED[i]: how the option of
 * option_help[i] was written. */
static int command_usage_error(const struct command *c, char **args, int nargs,
                               unsigned options_given, const char *const spelled[])
{
	char *synopsis = NULL;
	size_t size;
	FILE *out = open_memstream(&synopsis, &size);

	if (out) {
		print_synopsis(out, c);
		fclose(out);
	}
	const char *shown = synopsis ? synopsis : c->name;
	for (size_t i = 0; i < sizeof(option_help) / sizeof(option_help[0]); i++)
		if (options_given & option_help[i].bit & ~c->takes) {
			note("%s does not apply to %s; usage: %s", spelled[i], c->name, shown);
			free(synopsis);
			return EXIT_USAGE;
		}
	if (nargs < c->min_args) {
		char missing[128], after[64];
		note("%s needs %s%s%s; usage: %s", c->name,
		     operand_names(c, nargs, c->min_args - nargs, missing, sizeof(missing)),
		     nargs ? " after " : "",
		     nargs ? operand_names(c, nargs - 1, 1, after, sizeof(after)) : "", shown);
	} else {
		note("unexpected operand \"%s\" for %s; usage: %s", args[c->max_args], c->name,
		     shown);
	}
	free(synopsis);
	return EXIT_USAGE;
}

/* Records that the option of BIT was given, written AS (NULL: in full).
 * Returns BIT. */
static unsigned was_given(unsigned bit, const char *as, const char *spelled[])
{
	for (size_t i = 0; i < sizeof(option_help) / sizeof(option_help[0]); i++)
		if (option_help[i].bit == bit)
			spelled[i] = as ? as : option_help[i].name;
	return bit;
}

/* The command named NAME; NULL after saying that there is none, and
 * which one a typo may have meant. */
static const struct command *find_command(const char *name)
{
	const char *names[COMMAND_COUNT], *near[2];

	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
		names[i] = commands[i].name;
	}
	size_t n = wrench__nearest(name, names, COMMAND_COUNT, near, 2);
	note("unknown command \"%s\"%s%s%s%s%s; try 'wrench --help'", name,
	     n ? "; did you mean " : "", n ? near[0] : "", n > 1 ? " or " : "",
	     n > 1 ? near[1] : "", n ? "?" : "");
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"dir", required_argument, NULL, 'd'},    {"owner", required_argument, NULL, 'o'},
	        {"json", no_argument, NULL, 'j'},         {"count", required_argument, NULL, 'n'},
	        {"fires", required_argument, NULL, 'F'},  {"timeout", required_argument, NULL, 'T'},
	        {"for", required_argument, NULL, 'L'},    {"expired", no_argument, NULL, 'X'},
	        {"binary", required_argument, NULL, 'B'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	/* wait: one fire, within a minute, unless told otherwise. */
	struct options o = {.count = 1,
	                    .fires = 1,
	                    .timeout_ns = 60 * 1000000000ull,
	                    .argv = argv,
	                    .argc = argc};
	/* The options given that not every command takes, and how each was
	 * written, for a message naming one that does not apply. */
	unsigned given = 0;
	const char *spelled[sizeof(option_help) / sizeof(option_help[0])] = {0};

	/* Every error is one "wrench: " line: getopt's own messages are not. */
	opterr = 0;
	const char *dir = NULL, *owner = NULL;
	int opt, index = -1;

	while ((opt = getopt_long(argc, argv, ":hn:", longopts, &index)) != -1) {
		const char *as = index >= 0 ? NULL : "-n"; /* the one short option */
		index = -1;
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'o':
			owner = optarg;
			given |= was_given(TAKES_OWNER, as, spelled);
			break;
		case 'j':
			o.json = true;
			given |= was_given(TAKES_JSON, as, spelled);
			break;
		case 'n':
			if (parse_count(optarg, &o) != 0)
				return EXIT_USAGE;
			given |= was_given(TAKES_COUNT, as, spelled);
			break;
		case 'F':
			if (parse_fires(optarg, &o) != 0)
				return EXIT_USAGE;
			given |= was_given(TAKES_FIRES, as, spelled);
			break;
		case 'T':
			if (parse_duration_option("--timeout", optarg, &o.timeout_ns) != 0)
				return EXIT_USAGE;
			given |= was_given(TAKES_TIMEOUT, as, spelled);
			break;
		case 'L':
			if (parse_duration_option("--for", optarg, &o.for_ns) != 0)
				return EXIT_USAGE;
			given |= was_given(TAKES_FOR, as, spelled);
			break;
		case 'B':
			o.binary = optarg;
			given |= was_given(TAKES_BINARY, as, spelled);
			break;
		case 'X':
			o.expired = true;
			given |= was_given(TAKES_EXPIRED, as, spelled);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			puts("wrench " WRENCH_VERSION);
			return EXIT_OK;
		default:
			return usage_error(opt, argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		note("no command given; try 'wrench --help'");
		return EXIT_USAGE;
	}
	const struct command *c = find_command(argv[optind]);
	int nargs = argc - optind - 1;
	if (!c)
		return EXIT_USAGE;
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args) || (given & ~c->takes))
		return command_usage_error(c, argv + optind + 1, nargs, given, spelled);
	if (resolve_dir(dir, &o) != 0)
		return EXIT_USAGE;
	if (owner && c->writes && geteuid() != 0) {
		char *sudo = sudo_command(&o);
		note("--owner with %s gives files away, which needs root; fix: %s", c->name,
		     sudo ? sudo : "sudo wrench ...");
		free(sudo);
		return EXIT_USAGE;
	}
	if (owner && resolve_owner(owner, &o) != 0)
		return EXIT_USAGE;
	if (!owner && c->adopts)
		adopt_dir_owner(&o);
	guard_mapped_files(&o);
	int rc = c->run(&o, argv + optind + 1, nargs);
	free(o.owner_groups);
	return fflush(stdout) == 0 ? rc : EXIT_USAGE;
}
