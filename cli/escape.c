/*
 * Names in output. A file name, a token of a trigger file or an argument
 * can hold any byte but "/" and NUL, so what reaches a terminal is escaped
 * (an ESC sequence could rewrite the screen, a newline could forge a line
 * of a listing) and what is suggested as a command is quoted for the shell
 * (a ";" in a name must not run anything when the fix is pasted or piped
 * to sh). JSON output is exact and needs neither (json.c).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at S (at most LEN bytes) that is not
 * a C1 control character, or 0. */
static size_t utf8_printable(const unsigned char *s, size_t len)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

	if (n == 0 || s[0] > 0xf4 || n > len)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong forms, surrogates and code points above U+10FFFF. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	/* U+0080 to U+009F: a terminal may act on them as on ESC sequences. */
	if (s[0] == 0xc2 && s[1] < 0xa0)
		return 0;
	return n;
}

/* A backslash is left as it is, so that a quoted fix can be pasted; a
 * name that holds the text "\x1b" then reads like one holding ESC, which
 * --json tells apart. */
void print_escaped(FILE *out, const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;

	for (size_t i = 0; i < len;) {
		size_t n = s[i] >= 0x80 ? utf8_printable(s + i, len - i) : 0;
		if (n > 0) {
			fwrite(s + i, 1, n, out);
			i += n;
		} else if (s[i] < 0x20 || s[i] >= 0x7f) {
			fprintf(out, "\\x%02x", s[i]);
			i++;
		} else {
			fputc(s[i], out);
			i++;
		}
	}
}

void print_escaped_string(FILE *out, const char *text)
{
	print_escaped(out, text, strlen(text));
}

void print_line(FILE *out, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;

	va_start(ap, fmt);
	int n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fputs("(out of memory)\n", out);
		return;
	}
	print_escaped(out, line, (size_t)n);
	fputc('\n', out);
	free(line);
}

char *quoted(const char *s)
{
	size_t len = wrench__shell_quote(s, NULL, 0) + 1;
	char *word = malloc(len);

	if (word)
		wrench__shell_quote(s, word, len);
	return word;
}

/* Adds " WORD", quoted, to B. */
static void add_word(struct buffer *b, const char *word)
{
	char *q = quoted(word);

	if (!q) {
		b->failed = true;
		return;
	}
	buffer_add(b, " ", 1);
	buffer_add(b, q, strlen(q));
	free(q);
}

char *wrench_command(const struct options *o)
{
	struct buffer b = {0};

	buffer_add(&b, "wrench", strlen("wrench"));
	if (o->dir_given) {
		buffer_add(&b, " --dir", strlen(" --dir"));
		add_word(&b, o->dir);
	}
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	return b.data;
}

char *sudo_command(const struct options *o)
{
	struct buffer b = {0};

	buffer_add(&b, "sudo wrench", strlen("sudo wrench"));
	/* sudo does not pass WRENCH_DIR on. */
	if (!o->dir_given) {
		buffer_add(&b, " --dir", strlen(" --dir"));
		add_word(&b, o->dir);
	}
	for (int i = 1; i < o->argc; i++)
		add_word(&b, o->argv[i]);
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	return b.data;
}
