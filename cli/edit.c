/*
 * The commands that change trigger files: set, unset and clear. Each
 * validates everything before it touches anything, and rewrites a file
 * only through replace_file(), so an agent never reads a torn file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* A word of a trigger line given on the command line: one token that the
 * parser will read back as the same token. */
static bool is_word(const char *s)
{
	if (!*s || *s == '#')
		return false;
	for (; *s; s++)
		if (strchr(" \t\r\n\v\f", *s))
			return false;
	return true;
}

static int check_category(const char *category)
{
	if (wrench__category_is_valid(category))
		return 0;
	note("invalid category \"%s\": it must be one file name (not empty, not . or .., not "
	     "%s, no /)",
	     category, WRENCH_STATE_DIR);
	return EXIT_USAGE;
}

/* Builds "FEATURE DIRECTIVE..." into LINE and validates it with the
 * library's own parser. */
static int build_line(const char *feature, char *const directives[], int ndirectives,
                      struct buffer *line)
{
	struct wrench__rule rule;
	char err[WRENCH__PARSE_ERROR_MAX];

	if (!is_word(feature)) {
		note("invalid feature \"%s\": one word, not starting with #", feature);
		return EXIT_USAGE;
	}
	buffer_add(line, feature, strlen(feature));
	for (int i = 0; i < ndirectives; i++) {
		if (!is_word(directives[i])) {
			note("invalid directive \"%s\": one word, not starting with #",
			     directives[i]);
			return EXIT_USAGE;
		}
		buffer_add(line, " ", 1);
		buffer_add(line, directives[i], strlen(directives[i]));
	}
	if (line->failed) {
		note("out of memory");
		return EXIT_USAGE;
	}
	if (wrench__parse_line(line->data, line->len, &rule, err, sizeof(err)) < 0) {
		note("invalid trigger \"%s\": %s", line->data, err);
		/* The parser's message has no room for the whole list. */
		if (line_has_unknown_errno(line->data, line->len))
			note_errno_names();
		return EXIT_USAGE;
	}
	return 0;
}

/* The rewrite of one file: which feature, what replaces its first line. */
struct rewrite {
	const char *new_line; /* NULL: the feature's lines go */
	struct buffer out;
	bool matched;
	int64_t expired_at; /* clear --expired: lines expired by then go (0: no) */
};

/* Keeps a trailing "# comment" of a replaced line, and its "\r". */
static void add_replacement(struct rewrite *r, const char *old, size_t len)
{
	const char *comment = NULL;
	for (size_t i = 1; i < len && !comment; i++)
		if (old[i] == '#' && strchr(" \t", old[i - 1]))
			comment = old + i;
	buffer_add(&r->out, r->new_line, strlen(r->new_line));
	if (comment) {
		size_t clen = (size_t)(old + len - comment);
		while (clen > 0 && strchr(" \t\r", comment[clen - 1]))
			clen--;
		buffer_add(&r->out, " ", 1);
		buffer_add(&r->out, comment, clen);
	}
	if (len > 0 && old[len - 1] == '\r')
		buffer_add(&r->out, "\r", 1);
}

static void rewrite_line(const char *line, size_t len, bool has_newline, bool names_feature,
                         void *ctx)
{
	struct rewrite *r = ctx;

	if (r->expired_at) {
		struct wrench__rule rule;
		char err[WRENCH__PARSE_ERROR_MAX];
		bool expired = wrench__parse_line(line, len, &rule, err, sizeof(err)) > 0 &&
		               rule_is_expired(&rule, r->expired_at);
		if (!expired)
			buffer_add(&r->out, line, len + has_newline);
		r->matched |= expired;
		return;
	}
	if (!names_feature) {
		buffer_add(&r->out, line, len + has_newline);
		return;
	}
	if (r->new_line && !r->matched) {
		add_replacement(r, line, len);
		buffer_add(&r->out, "\n", 1);
	}
	r->matched = true;
}

/* Reports how the agent would judge what was written; CTX: what it would
 * ignore. */
static void warn_problem(const struct wrench__problem *problem, void *ctx)
{
	note("warning: the agent will ignore %s: %s", (const char *)ctx, problem->message);
}

/* The file is written (CATEGORY; NULL: the directory is prepared): would
 * the agent honour it and could it read it, and, tried as the agent, would
 * it see changes at once and count machine-wide? */
static int verify_written(const struct options *o, const char *category)
{
	struct wrench__trust t = {.report = warn_problem,
	                          .ctx = category ? "this trigger" : "this directory"};
	struct access_check access;
	struct wrench__file file = {0};
	char *names[] = {(char *)category, NULL};

	check_agent_access(o, &t, &access);
	int dirfd = open_checked_dir(o, &t, false);
	if (dirfd >= 0 && category)
		judge_file(o, dirfd, category, &t, &file);
	if (dirfd >= 0)
		close(dirfd);
	free(file.data);
	size_t warned = warn_agent_findings(o, names, t.problems > 0);
	return t.problems || warned ? EXIT_PROBLEMS : EXIT_OK;
}

/* Reads CATEGORY, applies R to it and writes the result (deleting the
 * file when nothing but white space is left). */
static int edit(const struct options *o, const struct target *target, const char *category,
                const char *feature, struct rewrite *r)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct contents old;
	int dirfd = target->fd;

	trigger_path(o, category, path, sizeof(path));
	int rc = read_for_rewrite(o, dirfd, category, &old);
	if (rc != 0)
		return rc;
	if (old.data)
		each_line(old.data, old.len, feature, rewrite_line, r);
	if (r->new_line && !r->matched) {
		if (r->out.len > 0 && r->out.data[r->out.len - 1] != '\n')
			buffer_add(&r->out, "\n", 1);
		buffer_add(&r->out, r->new_line, strlen(r->new_line));
		buffer_add(&r->out, "\n", 1);
	}
	/* The line written starts counting again from zero: before the
	 * rename, so that no fire under the new file is counted and then
	 * forgotten. */
	int counted = 0;
	if (!r->out.failed && r->new_line)
		counted = rearm_line(o, dirfd, category, r->out.data, r->out.len, r->new_line);
	if (r->out.failed) {
		note("out of memory");
		rc = EXIT_USAGE;
	} else if (!r->new_line && !r->matched && r->expired_at) {
		rc = EXIT_OK; /* clear --expired: nothing expired here */
	} else if (!r->new_line && !r->matched) {
		/* A cleanup with a typo in it must not pass in silence. */
		if (old.data)
			note("%s has no line for %s; nothing was changed", path, feature);
		else
			note("%s does not exist; nothing was changed", path);
		rc = EXIT_PROBLEMS;
	} else if (!r->new_line &&
	           strspn(r->out.data ? r->out.data : "", " \t\r\n\v\f") == r->out.len) {
		if (unlinkat(dirfd, category, 0) < 0 && errno != ENOENT) {
			cannot(o, -errno, "remove", path);
			rc = EXIT_USAGE;
		}
	} else if ((rc = replace_file(dirfd, o, target, category, r->out.data, r->out.len, &old)) <
	           0) {
		cannot(o, rc, "write", path);
		rc = EXIT_USAGE;
	}
	/* The counters of lines that are gone go too. */
	if (rc == 0)
		tidy_counters(o, dirfd, category);
	if (rc == 0 && counted < 0) {
		note("%s is written, but a line of it that a count decides (times=, every=, "
		     "first=, after=) never fires until its counters can be made (see above); "
		     "then run this command again",
		     path);
		rc = EXIT_PROBLEMS;
	}
	free(old.data);
	free(r->out.data);
	return rc;
}

/* --for: the directives with until= the end of the duration, in *WITH
 * (free it, and its last entry). */
static int add_until(const struct options *o, char *const directives[], int ndirectives,
                     char ***with)
{
	char when[32], until[64];

	*with = NULL;
	for (int i = 0; i < ndirectives; i++) {
		if (strncmp(directives[i], "until=", 6) == 0) {
			note("give --for or until=, not both");
			return EXIT_USAGE;
		}
	}
	wrench__format_time(now_seconds() + (int64_t)((o->for_ns + 999999999) / 1000000000), when,
	                    sizeof(when));
	snprintf(until, sizeof(until), "until=%s", when);
	*with = calloc((size_t)ndirectives + 1, sizeof(char *));
	if (*with)
		(*with)[ndirectives] = strdup(until);
	if (!*with || !(*with)[ndirectives]) {
		free(*with);
		*with = NULL;
		note("out of memory");
		return EXIT_USAGE;
	}
	for (int i = 0; i < ndirectives; i++)
		(*with)[i] = directives[i];
	return 0;
}

int cmd_set(const struct options *o, const char *category, const char *feature,
            char *const directives[], int ndirectives)
{
	struct buffer line = {0};
	struct target target;
	char **with = NULL;
	int rc = check_category(category);

	if (rc == 0 && o->for_ns)
		rc = add_until(o, directives, ndirectives, &with);
	if (rc == 0)
		rc = build_line(feature, with ? with : directives, ndirectives + (with != NULL),
		                &line);
	if (with)
		free(with[ndirectives]);
	free(with);
	/* The names known, read before anything is changed: a --binary that
	 * cannot be read is bad usage, and nothing is written. */
	struct point_names *known = rc == 0 ? point_names_of(o) : NULL;
	if (rc == 0 && !known && o->binary)
		rc = EXIT_USAGE;
	if (rc == 0)
		rc = open_target(o, true, &target);
	if (rc != 0) {
		point_names_free(known);
		free(line.data);
		return EXIT_USAGE;
	}
	struct rewrite r = {.new_line = line.data};
	rc = edit(o, &target, category, feature, &r);
	close_target(&target);
	if (rc == 0 || rc == EXIT_PROBLEMS) {
		int verified = verify_written(o, category);
		rc = rc ? rc : verified;
	}
	/* A typo is written as asked, and said: the line may be meant for a
	 * program that has not run yet. */
	struct point_warning about = {category, feature};
	if (known && (rc == 0 || rc == EXIT_PROBLEMS))
		point_names_problems(known, category, feature, false, warn_about_point, &about);
	point_names_free(known);
	free(line.data);
	return rc;
}

/* Nothing to unset: said, and exit 1. */
static int nothing_to_unset(const struct options *o, const char *what)
{
	note("%s %s; nothing was changed", o->dir, what);
	return EXIT_PROBLEMS;
}

int cmd_unset(const struct options *o, const char *category, const char *feature)
{
	struct target target;
	int rc = check_category(category);

	if (rc != 0)
		return rc;
	rc = open_target(o, false, &target);
	if (rc == -ENOENT)
		return nothing_to_unset(o, "does not exist");
	if (rc != 0)
		return EXIT_USAGE;
	if (feature) {
		struct rewrite r = {.new_line = NULL};
		rc = edit(o, &target, category, feature, &r);
	} else if (unlinkat(target.fd, category, 0) < 0) {
		char path[PATH_MAX + NAME_MAX + 2];
		trigger_path(o, category, path, sizeof(path));
		if (errno == ENOENT) {
			note("%s does not exist; nothing was changed", path);
			rc = EXIT_PROBLEMS;
		} else {
			cannot(o, -errno, "remove", path);
			rc = EXIT_USAGE;
		}
	} else {
		tidy_counters(o, target.fd, category);
	}
	close_target(&target);
	return rc;
}

/* clear --expired, for one entry: a trigger file loses its expired lines. */
static int clear_expired_lines(const struct options *o, const struct target *target,
                               const char *name, int64_t now)
{
	struct stat st;

	if (!is_category(name) || fstatat(target->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return EXIT_OK;
	struct rewrite r = {.expired_at = now};
	return edit(o, target, name, NULL, &r);
}

/* clear, for one entry: removed, unless it is a directory. */
static int clear_entry(const struct options *o, const struct target *target, const char *name)
{
	struct stat st;

	/* Directories are not trigger files: they stay. */
	if (fstatat(target->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return EXIT_OK;
	if (unlinkat(target->fd, name, 0) < 0 && errno != ENOENT) {
		char path[PATH_MAX + NAME_MAX + 2];
		cannot(o, -errno, "remove", trigger_path(o, name, path, sizeof(path)));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int cmd_clear(const struct options *o)
{
	struct target target;
	int rc = open_target(o, false, &target);

	if (rc == -ENOENT)
		return EXIT_OK;
	if (rc != 0)
		return EXIT_USAGE;
	char **names = list_names(target.fd);
	rc = names ? EXIT_OK : EXIT_USAGE;
	if (!names)
		note("cannot read %s: %s", o->dir, strerror(errno));
	int64_t now = now_seconds();
	for (size_t i = 0; names && names[i]; i++) {
		int step = o->expired ? clear_expired_lines(o, &target, names[i], now)
		                      : clear_entry(o, &target, names[i]);
		rc = rc ? rc : step;
	}
	/* No trigger file is left: neither are the counters of its lines
	 * (--expired removed those of each line it removed), nor, once no
	 * category is left at all, the counters files. */
	if (!o->expired) {
		tidy_all_counters(o, target.fd, target.state_fd);
		remove_counters_if_unused(target.fd, target.state_fd);
	}
	free_names(names);
	close_target(&target);
	return rc;
}

int cmd_prepare(const struct options *o)
{
	struct target target;

	if (open_target(o, true, &target) != 0)
		return EXIT_USAGE;
	int made = prepare_counters(o, target.fd);
	close_target(&target);
	int rc = verify_written(o, NULL);
	if (made < 0)
		return EXIT_PROBLEMS;
	if (rc == EXIT_OK)
		print_line(stdout, "%s: ready for an agent running as uid %u", o->dir,
		           (unsigned)(o->has_owner ? o->owner_uid : geteuid()));
	return rc;
}
