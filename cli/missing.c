/*
 * What a command was asked about and nothing names: a category without a
 * trigger file, a feature that no line names. A typo there would
 * otherwise pass in silence (an empty listing, "fired on 0 of 1 calls", a
 * wait for its whole timeout), so it is said, with the names a few edits
 * away as "did you mean".
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Suggestions shown at most, and features listed at most. */
#define MAX_NEAR   3
#define MAX_LISTED 10

void add_nearest(struct buffer *b, const char *word, const char *const *names, size_t count)
{
	const char *near[MAX_NEAR];
	size_t n = wrench__nearest(word, names, count, near, MAX_NEAR);

	for (size_t i = 0; i < n; i++) {
		const char *before = i == 0 ? "; did you mean " : " or ";
		buffer_add(b, before, strlen(before));
		buffer_add(b, near[i], strlen(near[i]));
	}
	if (n)
		buffer_add(b, "?", 1);
}

static void say(struct buffer *b)
{
	if (b->failed)
		note("out of memory");
	else
		note("%s", b->data);
	free(b->data);
}

void say_no_trigger_file(const struct options *o, int dirfd, const char *category,
                         const char *because)
{
	struct buffer b = {0};
	char **names = NULL;
	const char *head = "category \"";

	buffer_add(&b, head, strlen(head));
	buffer_add(&b, category, strlen(category));
	if (dirfd < 0) {
		buffer_add(&b, "\" has no trigger file: ", strlen("\" has no trigger file: "));
		buffer_add(&b, o->dir, strlen(o->dir));
		buffer_add(&b, " does not exist", strlen(" does not exist"));
	} else {
		buffer_add(&b, "\" has no trigger file in ", strlen("\" has no trigger file in "));
		buffer_add(&b, o->dir, strlen(o->dir));
		/* The descriptor may be one only for walking: listing needs
		 * one opened for reading, from it. */
		int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		names = fd >= 0 ? list_names(fd) : NULL;
		if (fd >= 0)
			close(fd);
	}
	if (because)
		buffer_add(&b, because, strlen(because));
	size_t count = 0;
	for (size_t i = 0; names && names[i]; i++)
		if (is_category(names[i]))
			names[count++] = names[i];
		else
			free(names[i]);
	add_nearest(&b, category, (const char *const *)names, count);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	say(&b);
}

/* The features RULES name, each once, in file order; NULL when out of
 * memory. *COUNT: how many. */
static const char **features_of(const struct wrench__rules *rules, size_t *count)
{
	const char **features =
	        malloc((rules && rules->count ? rules->count : 1) * sizeof(*features));

	*count = 0;
	for (size_t i = 0; features && rules && i < rules->count; i++) {
		bool seen = false;
		for (size_t j = 0; j < *count && !seen; j++)
			seen = strcmp(features[j], rules->rule[i].feature) == 0;
		if (!seen)
			features[(*count)++] = rules->rule[i].feature;
	}
	return features;
}

/* Adds " (its lines name: A, B, ...)", at most MAX_LISTED of them. */
static void add_listed(struct buffer *b, const char *const *features, size_t count)
{
	if (count == 0) {
		buffer_add(b, " (it has no valid line)", strlen(" (it has no valid line)"));
		return;
	}
	buffer_add(b, " (its lines name: ", strlen(" (its lines name: "));
	for (size_t i = 0; i < count && i < MAX_LISTED; i++) {
		if (i)
			buffer_add(b, ", ", 2);
		buffer_add(b, features[i], strlen(features[i]));
	}
	if (count > MAX_LISTED) {
		char more[32];
		snprintf(more, sizeof(more), " and %zu more", count - MAX_LISTED);
		buffer_add(b, more, strlen(more));
	}
	buffer_add(b, ")", 1);
}

void say_no_line_names(const struct options *o, const char *category, const char *feature,
                       const struct wrench__rules *rules, const char *because, bool list)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct buffer b = {0};
	size_t count;
	const char **features = features_of(rules, &count);

	buffer_add(&b, "no line of ", strlen("no line of "));
	trigger_path(o, category, path, sizeof(path));
	buffer_add(&b, path, strlen(path));
	buffer_add(&b, " names the feature \"", strlen(" names the feature \""));
	buffer_add(&b, feature, strlen(feature));
	buffer_add(&b, "\"", 1);
	if (list && features)
		add_listed(&b, features, count);
	if (because)
		buffer_add(&b, because, strlen(because));
	if (features)
		add_nearest(&b, feature, features, count);
	free(features);
	say(&b);
}
