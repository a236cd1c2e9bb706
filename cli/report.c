/*
 * The commands that only look: list (what is set, and what is ignored and
 * why) and check (every problem, with the command that fixes it). Both
 * judge files with the library's trust checks and read them with its
 * parser. They never change anything.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Leftovers of a wrench command interrupted before its rename. */
static bool is_temporary(const char *name)
{
	return strncmp(name, ".#", 2) == 0;
}

/* ---- list --------------------------------------------------------------- */

struct lister {
	const struct options *o;
	const char *category;
	const char *path;
	const char *file_reason; /* the file or directory is ignored: why */
	unsigned line;
	bool first_json;
};

static void list_one(struct lister *l, const char *line, size_t len, const char *reason)
{
	const char *tok;
	size_t pos = 0, tok_len;
	FILE *out = stdout;

	if (!l->o->json) {
		fputs(l->category, out);
		while (wrench__next_token(line, len, &pos, &tok, &tok_len))
			fprintf(out, " %.*s", (int)tok_len, tok);
		if (!line)
			fputs(" *", out);
		if (reason)
			fprintf(out, "  # ignored: %s", reason);
		fputc('\n', out);
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
	fputc('}', out);
}

static void list_line(const char *line, size_t len, bool has_newline, bool names, void *ctx)
{
	struct lister *l = ctx;
	struct wrench__rule rule;
	char err[160], reason[200];

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
	list_one(l, line, len,
	         l->file_reason        ? l->file_reason
	         : kind < 0 || expired ? reason
	                               : NULL);
}

static void ignore_problem(const struct wrench__problem *problem, void *ctx)
{
	(void)problem;
	(void)ctx;
}

static void list_category(struct lister *l, int dirfd, const char *dir_reason)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {0};
	struct wrench__file file;

	l->path = trigger_path(l->o, l->category, path, sizeof(path));
	l->line = 0;
	/* A lint reads an untrusted file too, so its lines can be shown. */
	t.report = ignore_problem;
	int rc = judge_file(l->o, dirfd, l->category, &t, &file);
	if (rc == -ENOENT) {
		free(file.data);
		return;
	}
	l->file_reason = dir_reason ? dir_reason : t.problems ? t.first.message : NULL;
	if (file.data)
		each_line(file.data, file.len, NULL, list_line, l);
	else
		list_one(l, NULL, 0, l->file_reason);
	free(file.data);
	l->file_reason = NULL; /* it may point into T, which ends here */
}

int cmd_list(const struct options *o, const char *category)
{
	struct wrench__trust dir_trust = {0};
	struct lister l = {.o = o, .first_json = true};

	if (category && !wrench__category_is_valid(category)) {
		note("invalid category \"%s\"", category);
		return EXIT_USAGE;
	}
	int dirfd = open_plain_dir(o);
	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		fputs(", \"triggers\": [", stdout);
	}
	if (dirfd >= 0) {
		judge_dir(o, &dir_trust);
		const char *dir_reason = dir_trust.problems ? dir_trust.first.message : NULL;
		char *only[] = {(char *)category, NULL};
		char **names = category ? only : list_names(dirfd);
		for (size_t i = 0; names && names[i]; i++) {
			if (is_temporary(names[i]) || strcmp(names[i], WRENCH_STATE_DIR) == 0)
				continue;
			l.category = names[i];
			list_category(&l, dirfd, dir_reason);
		}
		if (!category)
			free_names(names);
		close(dirfd);
	}
	if (o->json)
		fputs(l.first_json ? "]}\n" : "\n]}\n", stdout);
	return EXIT_OK;
}

/* ---- check -------------------------------------------------------------- */

struct checker {
	const struct options *o;
	const char *category;
	const char *path;
	unsigned line;
	unsigned problems;
};

/* One problem: "PATH[:LINE]: MESSAGE", the fix split out for --json. */
static void print_problem(struct checker *c, const char *path, unsigned line, const char *message)
{
	const char *fix = strstr(message, "; fix: ");
	FILE *out = stdout;

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
		fprintf(out, "%s:%u: %s\n", path, line, message);
	} else if (message[0] == '/') {
		fprintf(out, "%s\n", message); /* the library's messages start with a path */
	} else {
		fprintf(out, "%s: %s\n", path, message);
	}
	c->problems++;
}

static void check_problem(const struct wrench__problem *problem, void *ctx)
{
	struct checker *c = ctx;

	/* A file deleted while we look is gone, not wrong. */
	if (problem->level != WRENCH_LOG_DEBUG)
		print_problem(c, problem->path ? problem->path : c->path, 0, problem->message);
}

static void check_line(const char *line, size_t len, bool has_newline, bool names, void *ctx)
{
	struct checker *c = ctx;
	struct wrench__rule rule;
	char err[160], message[2 * PATH_MAX + 512];

	(void)has_newline;
	(void)names;
	c->line++;
	int kind = wrench__parse_line(line, len, &rule, err, sizeof(err));
	if (kind > 0 && rule_is_expired(&rule, now_seconds())) {
		char when[32];
		wrench__format_time(rule.until, when, sizeof(when));
		snprintf(message, sizeof(message),
		         "%.*s expired at %s and never fires; fix: wrench clear --expired",
		         (int)strcspn(rule.feature, " \t\r\v\f"), rule.feature, when);
		print_problem(c, c->path, c->line, message);
		return;
	}
	if (kind >= 0)
		return;
	size_t flen = strcspn(rule.feature, " \t\r\v\f");
	/* The fix must act on the directory checked, not the default one. */
	const char *lib_dir = wrench_get_dir();
	bool other_dir = !lib_dir || strcmp(lib_dir, c->o->dir) != 0;
	char wrench[PATH_MAX + 16];
	snprintf(wrench, sizeof(wrench), "wrench%s%s", other_dir ? " --dir " : "",
	         other_dir ? c->o->dir : "");
	snprintf(message, sizeof(message),
	         "%s; fix: %s unset %s %.*s, or rewrite the line with %s set %s %.*s "
	         "DIRECTIVE...",
	         err, wrench, c->category, (int)flen, rule.feature, wrench, c->category, (int)flen,
	         rule.feature);
	print_problem(c, c->path, c->line, message);
}

static void check_category(struct checker *c, int dirfd, const char *name)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {.report = check_problem, .ctx = c};
	struct wrench__file file;

	c->category = name;
	c->path = trigger_path(c->o, name, path, sizeof(path));
	c->line = 0;
	if (strcmp(name, WRENCH_STATE_DIR) == 0)
		return; /* the counters: checked by the agents that use them */
	if (is_temporary(name)) {
		char message[2 * sizeof(path) + 64];
		snprintf(message, sizeof(message),
		         "%s is left over from an interrupted wrench command; fix: rm %s", path,
		         path);
		print_problem(c, path, 0, message);
		return;
	}
	judge_file(c->o, dirfd, name, &t, &file);
	if (file.data)
		each_line(file.data, file.len, NULL, check_line, c);
	free(file.data);
	/* Counters the agent could not use make it count per process. */
	struct wrench__problem why;
	if (wrench__category_is_valid(name) && judge_counters(c->o, dirfd, name, &why) < 0)
		print_problem(c, c->path, 0, why.message);
}

int cmd_check(const struct options *o)
{
	struct checker c = {.o = o, .path = o->dir};
	struct wrench__trust t = {.report = check_problem, .ctx = &c};

	if (o->json) {
		fputs("{\"dir\": ", stdout);
		json_string(stdout, o->dir);
		fputs(", \"problems\": [", stdout);
	}
	int dirfd = open_plain_dir(o);
	if (dirfd == -ENOENT) {
		if (!o->json)
			printf("%s does not exist: no triggers\n", o->dir);
	} else if (dirfd < 0) {
		print_problem(&c, o->dir, 0, strerror(-dirfd));
	} else {
		judge_dir(o, &t);
		char **names = list_names(dirfd);
		if (!names)
			print_problem(&c, o->dir, 0, "cannot list the directory");
		for (size_t i = 0; names && names[i]; i++)
			check_category(&c, dirfd, names[i]);
		free_names(names);
		close(dirfd);
	}
	if (o->json)
		printf("%s], \"ok\": %s}\n", c.problems ? "\n" : "", c.problems ? "false" : "true");
	else if (c.problems == 0 && dirfd != -ENOENT)
		printf("%s: no problems\n", o->dir);
	return c.problems ? EXIT_PROBLEMS : EXIT_OK;
}
