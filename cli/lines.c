/* Walking the lines of a trigger file, and building new contents. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void each_line(const char *text, size_t len, const char *feature, line_fn *fn, void *ctx)
{
	for (size_t start = 0; start < len;) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *line = text + start, *tok;
		size_t pos = 0, tok_len;

		/* The first token is the feature of a trigger line, and of a
		 * malformed one too: both belong to that feature. */
		bool names = feature &&
		             wrench__next_token(line, end - start, &pos, &tok, &tok_len) &&
		             tok_len == strlen(feature) && memcmp(tok, feature, tok_len) == 0;
		fn(line, end - start, nl != NULL, names, ctx);
		start = end + 1;
	}
}

void buffer_add(struct buffer *b, const char *data, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;
		char *bigger = realloc(b->data, cap);
		if (!bigger) {
			b->failed = true;
			return;
		}
		b->data = bigger;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}
