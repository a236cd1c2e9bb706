/*
 * What a failing line tells its caller (errno= and value=), as the
 * command shows it: exact in --json, where a script wants the number and
 * the decoded bytes, and the list of names when one is refused, which the
 * parser's message has no room for.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A terminal's width, "wrench: " included. */
#define NOTE_WIDTH 79

void json_payload(FILE *out, const struct wrench__rule *rule)
{
	fputs(", \"errno\": ", out);
	if (rule && rule->errnum)
		fprintf(out, "%d", rule->errnum);
	else
		fputs("null", out);
	/* A number glibc has no name for is valid: only its name is null. */
	fputs(", \"errno_name\": ", out);
	json_string(out, rule ? wrench__errno_name(rule->errnum) : NULL);
	fputs(", \"value\": ", out);
	if (rule && rule->value_len) {
		char value[WRENCH_VALUE_MAX + 1];
		size_t len = wrench__value_decode(wrench__rule_value(rule), rule->value_len, value);
		json_string_n(out, value, len);
	} else {
		fputs("null", out);
	}
}

bool line_has_unknown_errno(const char *line, size_t len)
{
	const char *tok;
	size_t pos = 0, tok_len;
	const size_t prefix = strlen("errno=");
	int errnum;

	/* The first token is the feature, whatever it looks like. */
	if (!wrench__next_token(line, len, &pos, &tok, &tok_len))
		return false;
	while (wrench__next_token(line, len, &pos, &tok, &tok_len))
		if (tok_len > prefix && memcmp(tok, "errno=", prefix) == 0 &&
		    wrench__parse_errno(tok + prefix, tok_len - prefix, &errnum) == -EINVAL)
			return true;
	return false;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void note_errno_names(void)
{
	size_t count;
	const char *const *names = wrench__errno_names(&count);
	const char **sorted = malloc(count * sizeof(*sorted));
	const char *const *shown = names;
	const char *head = "wrench: errno= takes one of:";
	size_t column = strlen(head);

	/* A reader finds a name at a glance in alphabetical order; short of
	 * memory, the order of the numbers still lists them all. */
	if (sorted) {
		memcpy(sorted, names, count * sizeof(*sorted));
		qsort(sorted, count, sizeof(*sorted), compare_names);
		shown = sorted;
	}
	/* Every line of a note starts with "wrench: ", as wrench(1) says. */
	fputs(head, stderr);
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(shown[i]);
		if (column + 1 + len > NOTE_WIDTH) {
			fputs("\nwrench:  ", stderr);
			column = strlen("wrench:  ");
		}
		fputc(' ', stderr);
		print_escaped_string(stderr, shown[i]);
		column += 1 + len;
	}
	fputc('\n', stderr);
	free(sorted);
}
