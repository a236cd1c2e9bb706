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

static void usage(FILE *out)
{
	fputs("usage: wrench [--dir DIR] [--owner USER] set CATEGORY FEATURE [DIRECTIVE ...]\n"
	      "                    [--for DURATION]\n"
	      "       wrench [--dir DIR] [--owner USER] unset CATEGORY [FEATURE]\n"
	      "       wrench [--dir DIR] [--owner USER] clear [--expired]\n"
	      "       wrench [--dir DIR] [--owner USER] prepare\n"
	      "       wrench [--dir DIR] [--json] list [CATEGORY]\n"
	      "       wrench [--dir DIR] [--json] check\n"
	      "       wrench [--dir DIR] [--json] eval CATEGORY FEATURE [-n N]\n"
	      "       wrench [--dir DIR] [--json] hits [CATEGORY]\n"
	      "       wrench [--dir DIR] [--json] wait CATEGORY FEATURE [--fires N]\n"
	      "                    [--timeout DURATION]\n"
	      "       wrench [--dir DIR] reset [CATEGORY [FEATURE]]\n"
	      "Directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, first=N,\n"
	      "after=K, times=T, until=TIME, scope=process (see wrench(5)). Exit status:\n"
	      "0 ok, 1 problems found, never fired or timed out, 2 bad usage or input.\n",
	      out);
}

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

/* Which options and how many operands each command takes: a new command
 * is one more row, and its run_ function. */
static const struct command {
	const char *name;
	int min_args, max_args; /* after the command name; -1: any */
	bool json, owner, count;
	bool writes; /* --owner then gives files away, which needs root */
	/* Run by root without --owner in a directory of another user, it
	 * acts for that user's agent (adopt_dir_owner()). */
	bool adopts;
	char only; /* the one command that takes --for (f), --expired (x), or
	            * --fires and --timeout (w) */
	int (*run)(const struct options *o, char **args, int nargs);
} commands[] = {
        {"set", 2, -1, false, true, false, true, false, 'f', run_set},
        {"unset", 1, 2, false, true, false, true, false, 0, run_unset},
        {"clear", 0, 0, false, true, false, true, true, 'x', run_clear},
        {"prepare", 0, 0, false, true, false, true, false, 0, run_prepare},
        {"list", 0, 1, true, true, false, false, false, 0, run_list},
        {"check", 0, 0, true, true, false, false, false, 0, run_check},
        {"eval", 2, 2, true, true, true, false, false, 0, run_eval},
        {"hits", 0, 1, true, true, false, false, true, 0, run_hits},
        {"wait", 2, 2, true, true, false, false, true, 'w', run_wait},
        {"reset", 0, 2, false, true, false, false, true, 0, run_reset},
        {"points", 0, 1, true, true, false, false, true, 'b', run_points},
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"dir", required_argument, NULL, 'd'},
	        {"owner", required_argument, NULL, 'o'},
	        {"json", no_argument, NULL, 'j'},
	        {"count", required_argument, NULL, 'n'},
	        {"fires", required_argument, NULL, 'F'},
	        {"timeout", required_argument, NULL, 'T'},
	        {"for", required_argument, NULL, 'L'},
	        {"expired", no_argument, NULL, 'X'},
	        {"binary", required_argument, NULL, 'B'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	/* wait: one fire, within a minute, unless told otherwise. */
	struct options o = {.count = 1,
	                    .fires = 1,
	                    .timeout_ns = 60 * 1000000000ull,
	                    .argv = argv,
	                    .argc = argc};
	char only_given = 0;

	/* Every error is one "wrench: " line: getopt's own messages are not. */
	opterr = 0;
	const char *dir = NULL, *owner = NULL;
	bool count_given = false;
	int opt;

	while ((opt = getopt_long(argc, argv, ":hn:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'o':
			owner = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'n':
			if (parse_count(optarg, &o) != 0)
				return EXIT_USAGE;
			count_given = true;
			break;
		case 'F':
			if (parse_fires(optarg, &o) != 0)
				return EXIT_USAGE;
			only_given = 'w';
			break;
		case 'T':
			if (parse_duration_option("--timeout", optarg, &o.timeout_ns) != 0)
				return EXIT_USAGE;
			only_given = 'w';
			break;
		case 'L':
			if (parse_duration_option("--for", optarg, &o.for_ns) != 0)
				return EXIT_USAGE;
			only_given = 'f';
			break;
		case 'B':
			o.binary = optarg;
			only_given = 'b';
			break;
		case 'X':
			o.expired = true;
			only_given = 'x';
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
	const struct command *c = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			c = &commands[i];
	int nargs = argc - optind - 1;
	if (!c) {
		note("unknown command \"%s\"; try 'wrench --help'", argv[optind]);
		return EXIT_USAGE;
	}
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args) ||
	    (o.json && !c->json) || (owner && !c->owner) || (count_given && !c->count) ||
	    (only_given && only_given != c->only)) {
		note("wrong arguments or options for \"%s\"; try 'wrench --help'", c->name);
		return EXIT_USAGE;
	}
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
