/*
 * wrench(1): drop, inspect and lint trigger files safely. This file reads
 * the command line and hands over to one function per command.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
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
	      "       wrench [--dir DIR] clear [--expired]\n"
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

/* --dir as given, or what the library would use; made absolute. */
static int resolve_dir(const char *given, struct options *o)
{
	const char *dir = given ? given : wrench_get_dir();
	char cwd[PATH_MAX];

	if (!dir) {
		note("WRENCH_DIR is not an absolute path; give --dir");
		return EXIT_USAGE;
	}
	if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		note("cannot find the current directory: %s", strerror(errno));
		return EXIT_USAGE;
	}
	int n = dir[0] == '/' ? snprintf(o->dir, sizeof(o->dir), "%s", dir)
	                      : snprintf(o->dir, sizeof(o->dir), "%s/%s", cwd, dir);
	if (n < 0 || (size_t)n >= sizeof(o->dir) || wrench__check_dir_path(o->dir) < 0) {
		note("invalid directory \"%s\": it must not be too long nor contain \"..\"", dir);
		return EXIT_USAGE;
	}
	return 0;
}

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
	return 0;
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

/* Which options and how many operands each command takes. */
static const struct command {
	const char *name;
	int min_args, max_args; /* after the command name; -1: any */
	bool json, owner, count;
	bool writes; /* --owner then gives files away, which needs root */
	char only;   /* the one command that takes --for (f), --expired (x), or
	              * --fires and --timeout (w) */
} commands[] = {
        {"set", 2, -1, false, true, false, true, 'f'},
        {"unset", 1, 2, false, true, false, true, 0},
        {"clear", 0, 0, false, false, false, true, 'x'},
        {"list", 0, 1, true, true, false, false, 0},
        {"check", 0, 0, true, true, false, false, 0},
        {"eval", 2, 2, true, true, true, false, 0},
        {"hits", 0, 1, true, true, false, false, 0},
        {"wait", 2, 2, true, true, false, false, 'w'},
        {"reset", 0, 2, false, true, false, false, 0},
};

static int run(const struct command *c, const struct options *o, char **args, int nargs)
{
	switch (c - commands) {
	case 0:
		return cmd_set(o, args[0], args[1], args + 2, nargs - 2);
	case 1:
		return cmd_unset(o, args[0], nargs > 1 ? args[1] : NULL);
	case 2:
		return o->expired ? cmd_clear_expired(o) : cmd_clear(o);
	case 3:
		return cmd_list(o, nargs ? args[0] : NULL);
	case 4:
		return cmd_check(o);
	case 5:
		return cmd_eval(o, args[0], args[1]);
	case 6:
		return cmd_hits(o, nargs ? args[0] : NULL);
	case 7:
		return cmd_wait(o, args[0], args[1]);
	default:
		return cmd_reset(o, nargs ? args[0] : NULL, nargs > 1 ? args[1] : NULL);
	}
}

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
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	/* wait: one fire, within a minute, unless told otherwise. */
	struct options o = {.count = 1, .fires = 1, .timeout_ns = 60 * 1000000000ull};
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
	if (owner && c->writes && geteuid() != 0) {
		note("--owner with %s needs root", c->name);
		return EXIT_USAGE;
	}
	if (resolve_dir(dir, &o) != 0 || (owner && resolve_owner(owner, &o) != 0))
		return EXIT_USAGE;
	int rc = run(c, &o, argv + optind + 1, nargs);
	return fflush(stdout) == 0 ? rc : EXIT_USAGE;
}
