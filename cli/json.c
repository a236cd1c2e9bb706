/* JSON output: strings only need escaping; the rest is printed directly. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void json_string_n(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void json_string(FILE *out, const char *s)
{
	if (s)
		json_string_n(out, s, strlen(s));
	else
		fputs("null", out);
}
