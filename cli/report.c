/*
 * The commands that only look: list (what is set, and what is ignored and
 * why) and check (every problem, with the command that fixes it). Both
 * judge files with the library's trust checks and read them with its
 * parser. They never change anything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- list --------------------------------------------------------------- */

struct lister {
	const struct options *o;
	const char *category;
	const char *path;
	const char *file_reason; /* the file or directory is ignored: why */
	unsigned line;
	unsigned ignored; /* lines (or files) shown as ignored */
	bool first_json;
};

/* One line of text, escaped as a whole: a name holding a newline or an
 * ESC sequence cannot forge a line of the listing or hide "# ignored". */
static void list_text(struct lister *l, const char *line, size_t len, const char *reason)
{
	struct buffer b = {0};
	const char *tok;
	size_t pos = 0, tok_len;

	buffer_add(&b, l->category, strlen(l->category));
	while (wrench__next_token(line, len, &pos, &tok, &tok_len)) {
		buffer_add(&b, " ", 1);
		buffer_add(&b, tok, tok_len);
	}
	if (!line)
		buffer_add(&b, " *", 2);
	if (reason) {
		buffer_add(&b, "  # ignored: ", strlen("  # ignored: "));
		buffer_add(&b, reason, strlen(reason));
	}
	if (b.failed)
		fputs("(out of memory)", stdout);
	else
		print_escaped(stdout, b.data, b.len);
	fputc('\n', stdout);
	free(b.data);
}

/* RULE: the line as parsed, or NULL when it does not parse. */
static void list_one(struct lister *l, const char *line, size_t len,
                     const struct wrench__rule *rule, const char *reason)
{
	const char *tok;
	size_t pos = 0, tok_len;
	FILE *out = stdout;

	l->ignored += reason != NULL;
	if (!l->o->json) {
		list_text(l, line, len, reason);
		return;
	}
	fputs(l->first_json ? "\n  " : ",\n  ", out);
	l->first_json = false;
	fputs("{\"category\": ", out);
	json_string(out, l->category);
	fputs(", \"feature\": ", out);
	if (line && wrench__next_token(line, len, &pos, &tok, &tok_len))
		json_string_n(out, tok, tok_len);
	else
		fputs("null", out);
	fputs(", \"directives\": [", out);
	for (bool first = true; line && wrench__next_token(line, len, &pos, &tok, &tok_len);
	     first = false) {
		fputs(first ? "" : ", ", out);
		json_string_n(out, tok, tok_len);
	}
	fputs("], \"line\": ", out);
	if (line)
		fprintf(out, "%u", l->line);
	else
		fputs("null", out);
	fputs(", \"path\": ", out);
	json_string(out, l->path);
	fprintf(out, ", \"ignored\": %s, \"reason\": ", reason ? "true" : "false");
	json_string(out, reason);
	json_payload(out, rule);
	fputc('}', out);
}

static void list_line(const char *line, size_t len, bool has_newline, bool names, void *ctx)
{
	struct lister *l = ctx;
	struct wrench__rule rule;
	char err[WRENCH__PARSE_ERROR_MAX], reason[WRENCH__PARSE_ERROR_MAX + 32];

	(void)has_newline;
	(void)names;
	l->line++;
	int kind = wrench__parse_line(line, len, &rule, err, sizeof(err));
	if (kind == 0)
		return;
	bool expired = kind > 0 && rule_is_expired(&rule, now_seconds());
	if (kind < 0)
		snprintf(reason, sizeof(reason), "line %u: %s", l->line, err);
	else if (expired)
		snprintf(reason, sizeof(reason), "expired (until=); fix: wrench clear --expired");
	list_one(l, line, len, kind > 0 ? &rule : NULL,
	         l->file_reason        ? l->file_reason
	         : kind < 0 || expired ? reason
	                               : NULL);
}

static void ignore_problem(const struct wrench__problem *problem, void *ctx)
{
	(void)problem;
	(void)ctx;
}

/* Lists the lines of L's category; false when it has no trigger file. */
static bool list_category(struct lister *l, int dirfd, const char *dir_reason)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {0};
	struct access_check access;
	struct wrench__file file;

	l->path = trigger_path(l->o, l->category, path, sizeof(path));
	l->line = 0;
	/* A lint reads an untrusted file too, so its lines can be shown. */
	t.report = ignore_problem;
	check_agent_access(l->o, &t, &access);
	int rc = judge_file(l->o, dirfd, l->category, &t, &file);
	if (rc == -ENOENT) {
		free(file.data);
		return false;
	}
	l->file_reason = dir_reason ? dir_reason : t.problems ? t.first.message : NULL;
	if (file.data)
		each_line(file.data, file.len, NULL, list_line, l);
	else
		list_one(l, NULL, 0, NULL, l->file_reason);
	free(file.data);
	l->file_reason = NULL; /* it may point into T, which ends here */
	return true;
}

int cmd_list(const struct options *o, const char *category)
{
	struct wrench__trust dir_trust = {.report = ignore_problem};
	struct access_check access;
	struct lister l = {.o = o, .first_json = true};
	bool found = false;

	if (category && !wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	check_agent_access(o, &dir_trust, &access);
	int dirfd = open_checked_dir(o, &dir_trust, true);
	if (dirfd < 0 && dirfd != -ENOENT)
		note("cannot list %s: %s", o->dir,
		     dir_trust.problems ? dir_trust.first.message : strerror(-dirfd));
	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		fputs(", \"triggers\": [", stdout);
	}
	if (dirfd >= 0) {
		const char *dir_reason = dir_trust.problems ? dir_trust.first.message : NULL;
		char *only[] = {(char *)category, NULL};
		char **names = category ? only : list_names(dirfd);
		if (!names)
			note("cannot read %s: %s", o->dir, strerror(errno));
		for (size_t i = 0; names && names[i]; i++) {
			if (is_temporary(names[i]) || strcmp(names[i], WRENCH_STATE_DIR) == 0)
				continue;
			l.category = names[i];
			found |= list_category(&l, dirfd, dir_reason);
		}
		if (!category)
			free_names(names);
		l.ignored += !names;
	}
	if (o->json)
		fputs(l.first_json ? "]}\n" : "\n]}\n", stdout);
	/* A category asked for and missing is a typo more often than not. */
	if (category && !found && (dirfd >= 0 || dirfd == -ENOENT))
		say_no_trigger_file(o, dirfd, category, NULL);
	if (dirfd >= 0)
		close(dirfd);
	/* A script that lists triggers learns that some will not fire. */
	return l.ignored || (category && !found) || (dirfd < 0 && dirfd != -ENOENT) ? EXIT_PROBLEMS
	                                                                            : EXIT_OK;
}

/* ---- check -------------------------------------------------------------- */

struct checker {
	const struct options *o;
	const char *category;
	const char *path;
	unsigned line;
	unsigned problems;
	/* What the lint found reaching the directory and each file: the
	 * trial as the agent would find it again. */
	bool dir_told;
	struct buffer told; /* the paths told, each with its NUL */
	/* The points reached, and --binary's: a line naming none of them is
	 * a likely typo. */
	struct point_names *known;
	const char *feature; /* of the line checked */
	/* A line names an errno= that is none: the names are listed once,
	 * at the end, and not after every such line. */
	bool unknown_errno;
};

static bool was_told(const struct checker *c, const char *path)
{
	for (size_t at = 0; at < c->told.len; at += strlen(c->told.data + at) + 1)
		if (strcmp(c->told.data + at, path) == 0)
			return true;
	return false;
}

/* One problem: "PATH[:LINE]: MESSAGE", the fix split out for --json. The
 * fix starts at the first "; fix: " from FROM, a point of MESSAGE past
 * every name in it: a name may hold "; fix: " too, and what follows it
 * must not pass for a command. */
static void print_problem(struct checker *c, const char *path, unsigned line, const char *message,
                          const char *from)
{
	const char *fix = strstr(from, "; fix: ");
	FILE *out = stdout;

	buffer_add(&c->told, path, strlen(path) + 1);
	if (c->o->json) {
		fputs(c->problems ? ",\n  " : "\n  ", out);
		fputs("{\"path\": ", out);
		json_string(out, path);
		if (line)
			fprintf(out, ", \"line\": %u", line);
		else
			fputs(", \"line\": null", out);
		fputs(", \"message\": ", out);
		json_string_n(out, message, fix ? (size_t)(fix - message) : strlen(message));
		fputs(", \"fix\": ", out);
		json_string(out, fix ? fix + strlen("; fix: ") : NULL);
		fputc('}', out);
	} else if (line) {
		print_line(out, "%s:%u: %s", path, line, message);
	} else if (message[0] == '/') {
		print_line(out, "%s", message); /* the library's messages start with a path */
	} else {
		print_line(out, "%s: %s", path, message);
	}
	c->problems++;
}

static void check_problem(const struct wrench__problem *problem, void *ctx)
{
	struct checker *c = ctx;

	/* A file deleted while we look is gone, not wrong. */
	if (problem->level == WRENCH_LOG_DEBUG)
		return;
	const char *path = problem->path ? problem->path : c->path;
	/* The library's messages name PATH once, before the fix. */
	const char *named = strstr(problem->message, path);
	print_problem(c, path, 0, problem->message,
	              named ? named + strlen(path) : problem->message);
}

/* "WORD" or "'WORD'" in B, as one shell word. */
static void add_quoted(struct buffer *b, const char *word, size_t len)
{
	char *copy = strndup(word, len);
	char *q = copy ? quoted(copy) : NULL;

	if (q)
		buffer_add(b, q, strlen(q));
	else
		b->failed = true;
	free(q);
	free(copy);
}

/* "wrench [--dir DIR] VERB [--] CATEGORY FEATURE", every name quoted. */
static void add_fix(struct buffer *b, const char *wrench, const char *verb, const char *category,
                    const char *feature, size_t flen)
{
	buffer_add(b, wrench, strlen(wrench));
	buffer_add(b, verb, strlen(verb));
	/* A name starting with "-" must not be read as an option. */
	if (category[0] == '-' || feature[0] == '-')
		buffer_add(b, " --", 3);
	buffer_add(b, " ", 1);
	add_quoted(b, category, strlen(category));
	buffer_add(b, " ", 1);
	add_quoted(b, feature, flen);
}

/* A line naming a point that nothing knows: a problem of the line. */
static void unknown_point(const char *message, void *ctx)
{
	struct checker *c = ctx;
	char *text = NULL;
	char name[80];

	snprintf(name, sizeof(name), "%s", c->feature ? c->feature : "");
	if (asprintf(&text, "%s: %s", name, message) < 0)
		text = NULL;
	print_problem(c, c->path, c->line, text ? text : "out of memory", "");
	free(text);
}

static void check_line(const char *line, size_t len, bool has_newline, bool names, void *ctx)
{
	struct checker *c = ctx;
	struct wrench__rule rule;
	char err[WRENCH__PARSE_ERROR_MAX];

	(void)has_newline;
	(void)names;
	c->line++;
	int kind = wrench__parse_line(line, len, &rule, err, sizeof(err));
	if (kind > 0 && rule_is_expired(&rule, now_seconds())) {
		char when[32];
		char *expired = NULL;
		char *wrench = wrench_command(c->o);
		wrench__format_time(rule.until, when, sizeof(when));
		/* A feature is one token: it cannot hold "; fix: ". */
		if (asprintf(&expired,
		             "%.*s expired at %s and never fires; fix: %s clear --expired",
		             (int)strcspn(rule.feature, " \t\r\v\f"), rule.feature, when,
		             wrench ? wrench : "wrench") < 0)
			expired = NULL;
		print_problem(c, c->path, c->line, expired ? expired : "out of memory",
		              expired ? expired : "");
		free(expired);
		free(wrench);
		return;
	}
	if (kind > 0 && c->known) {
		/* The feature is the line's first token. */
		size_t room = len - (size_t)(rule.feature - line);
		size_t flen = strcspn(rule.feature, " \t\r\n\v\f");
		char *feature = strndup(rule.feature, flen < room ? flen : room);
		c->feature = feature;
		if (feature)
			point_names_problems(c->known, c->category, feature, false, unknown_point,
			                     c);
		free(feature);
		c->feature = NULL;
	}
	if (kind >= 0)
		return;
	c->unknown_errno |= line_has_unknown_errno(line, len);
	size_t flen = strcspn(rule.feature, " \t\r\v\f");
	/* The fix must act on the directory checked: --dir is repeated. */
	char *wrench = wrench_command(c->o);
	struct buffer message = {0};
	/* The fix is one command, which can be run as it is; the other way
	 * out needs the user's choice of directives. */
	buffer_add(&message, err, strlen(err));
	buffer_add(&message, " (or rewrite the line: ", strlen(" (or rewrite the line: "));
	add_fix(&message, wrench ? wrench : "wrench", " set", c->category, rule.feature, flen);
	buffer_add(&message, " DIRECTIVE...)", strlen(" DIRECTIVE...)"));
	size_t fix_at = message.len;
	buffer_add(&message, "; fix: ", strlen("; fix: "));
	add_fix(&message, wrench ? wrench : "wrench", " unset", c->category, rule.feature, flen);
	if (message.failed)
		print_problem(c, c->path, c->line, "out of memory", "");
	else
		print_problem(c, c->path, c->line, message.data, message.data + fix_at);
	free(message.data);
	free(wrench);
}

static void check_category(struct checker *c, int dirfd, const char *name)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {.report = check_problem, .ctx = c};
	struct access_check access;
	struct wrench__file file;

	c->category = name;
	c->path = trigger_path(c->o, name, path, sizeof(path));
	c->line = 0;
	if (strcmp(name, WRENCH_STATE_DIR) == 0)
		return; /* the counters: checked by the agents that use them */
	if (is_temporary(name)) {
		char *word = quoted(path);
		char *message = NULL;
		if (asprintf(&message,
		             "%s is left over from an interrupted wrench command; fix: rm -- %s",
		             path, word ? word : "FILE") < 0)
			message = NULL;
		if (message)
			print_problem(c, path, 0, message, message + strlen(path));
		else
			print_problem(c, path, 0, "out of memory", "");
		free(message);
		free(word);
		return;
	}
	check_agent_access(c->o, &t, &access);
	judge_file(c->o, dirfd, name, &t, &file);
	if (file.data)
		each_line(file.data, file.len, NULL, check_line, c);
	free(file.data);
}

/* What the agent will meet, tried as the agent: its watches and its
 * counters, and what keeps it from a file or the directory that the lint
 * did not already say. */
static void check_as_agent(struct checker *c, char **names)
{
	struct agent_report r;
	char uid[32];

	snprintf(uid, sizeof(uid), "%u", (unsigned)(c->o->has_owner ? c->o->owner_uid : geteuid()));
	int rc = try_as_agent(c->o, names, true, &r);
	if (rc == -EPERM) {
		char *message = NULL;
		char *sudo = sudo_command(c->o);
		if (asprintf(&message,
		             "only root can try the setup as uid %s: its watches and counters were "
		             "not tried; fix: %s",
		             uid, sudo ? sudo : "sudo wrench ... check") < 0)
			message = NULL;
		print_problem(c, c->o->dir, 0, message ? message : "out of memory",
		              message ? message : "");
		free(message);
		free(sudo);
	} else if (rc < 0) {
		char message[128];
		snprintf(message, sizeof(message), "the setup could not be tried as uid %s: %s",
		         uid, trial_error(rc));
		print_problem(c, c->o->dir, 0, message, "");
	}
	for (size_t i = 0; i < r.count; i++) {
		const struct agent_finding *f = &r.finding[i];
		if ((f->kind == AGENT_WALK && c->dir_told) ||
		    (f->kind == AGENT_READ && was_told(c, f->path)))
			continue;
		const char *path = *f->path ? f->path : c->o->dir;
		const char *named = strstr(f->message, path);
		print_problem(c, path, 0, f->message, named ? named + strlen(path) : f->message);
	}
	free_agent_report(&r);
}

int cmd_check(const struct options *o)
{
	struct checker c = {.o = o, .path = o->dir};
	struct wrench__trust t = {.report = check_problem, .ctx = &c};
	struct access_check access;

	/* A --binary that cannot be read is bad usage: said before any
	 * output. */
	c.known = point_names_of(o);
	if (!c.known && o->binary)
		return EXIT_USAGE;
	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		fputs(", \"problems\": [", stdout);
	}
	check_agent_access(o, &t, &access);
	int dirfd = open_checked_dir(o, &t, true);
	if (dirfd == -ENOENT) {
		if (!o->json)
			print_line(stdout, "%s does not exist: no triggers", o->dir);
	} else if (dirfd < 0) {
		/* The walk reported what stopped it; a failure to open the
		 * directory for listing it is said here. */
		if (c.problems == 0)
			print_problem(&c, o->dir, 0, strerror(-dirfd), "");
	} else {
		char **names = list_names(dirfd);
		c.dir_told = c.problems > 0;
		if (!names)
			print_problem(&c, o->dir, 0, "cannot list the directory", "");
		for (size_t i = 0; names && names[i]; i++)
			check_category(&c, dirfd, names[i]);
		close(dirfd);
		check_as_agent(&c, names);
		free_names(names);
	}
	free(c.told.data);
	point_names_free(c.known);
	if (o->json)
		printf("%s], \"ok\": %s}\n", c.problems ? "\n" : "", c.problems ? "false" : "true");
	else if (c.problems == 0 && dirfd != -ENOENT)
		print_line(stdout, "%s: no problems", o->dir);
	if (c.unknown_errno)
		note_errno_names();
	return c.problems ? EXIT_PROBLEMS : EXIT_OK;
}
