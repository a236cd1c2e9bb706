/*
 * "Did you mean": the names nearest a word that matched none, for the
 * parser's message about an unknown directive and for the wrench command's
 * about a category or a feature that nothing names. The distance is the
 * optimal string alignment one (Damerau-Levenshtein where no substring is
 * edited twice): an insertion, a deletion, a substitution or a swap of two
 * neighbours costs one. It works on bytes: names are compared as the
 * parser and the library compare them, byte for byte.
 */
#include <string.h>

#include "internal.h"

/* Three rows of the table on the stack: nothing is allocated, so that the
 * parser can use it in any process, at any time. */
typedef unsigned short cell;

static size_t smallest(size_t a, size_t b)
{
	return a < b ? a : b;
}

size_t wrench__edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t max)
{
	cell rows[3][WRENCH__NEAREST_MAX_LEN + 1];
	cell *before = rows[0], *above = rows[1], *row = rows[2];

	/* No distance between names this long is larger: MAX + 1 cannot wrap. */
	max = smallest(max, WRENCH__NEAREST_MAX_LEN);
	if (alen > WRENCH__NEAREST_MAX_LEN || blen > WRENCH__NEAREST_MAX_LEN ||
	    (alen > blen ? alen - blen : blen - alen) > max)
		return max + 1;
	for (size_t j = 0; j <= blen; j++)
		above[j] = (cell)j;
	for (size_t i = 1; i <= alen; i++) {
		size_t best = row[0] = (cell)i;
		for (size_t j = 1; j <= blen; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t d = smallest(smallest(above[j] + 1u, row[j - 1] + 1u),
			                    above[j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				d = smallest(d, before[j - 2] + 1u);
			row[j] = (cell)d;
			best = smallest(best, d);
		}
		/* A row's smallest value never goes down in the rows after it. */
		if (best > max)
			return max + 1;
		cell *spare = before;
		before = above;
		above = row;
		row = spare;
	}
	return above[blen] <= max ? above[blen] : max + 1;
}

/* The distance past which a candidate is no typo of a word of LEN bytes:
 * two edits, and fewer than half its bytes ("ab" is no typo of "cd"). */
static size_t limit_for(size_t len)
{
	return smallest(WRENCH__NEAREST_MAX_EDITS, len ? (len - 1) / 2 : 0);
}

static bool already_in(const char *const *out, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(out[i], name) == 0)
			return true;
	return false;
}

size_t wrench__nearest(const char *word, const char *const *candidates, size_t count,
                       const char **out, size_t max_out)
{
	size_t wlen = strlen(word), best = limit_for(wlen), n = 0;

	if (wlen == 0 || max_out == 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		const char *name = candidates[i];
		size_t d = wrench__edit_distance(word, wlen, name, strlen(name), best);
		if (d > best)
			continue;
		/* A nearer name replaces every one found so far. */
		if (d < best)
			n = 0;
		best = d;
		if (n < max_out && !already_in(out, n, name))
			out[n++] = name;
	}
	return n;
}
