/*
 * libFuzzer harness for the trigger-file parser and evaluator, fed whole
 * file contents.
 *
 * The library parses only what its trust checks have read: at most
 * WRENCH_MAX_FILE_SIZE bytes, without a NUL byte. An input beyond those
 * limits is therefore not parsed here either (no file the parser sees can
 * hold it, and a NUL would cut the features short where the text does
 * not): it is written to a scratch file and read with the library's own
 * wrench__trust_read_file(), which must refuse it and say why.
 *
 * Every other input is parsed with wrench__parse_rules() and each of its
 * lines with wrench__parse_line(); both are checked against a reading of
 * wrench(5) written here independently of lib/parse.c (a value= is
 * decoded here too, and must decode the same through the library's
 * wrench__value_decode()). Then each feature
 * the file names, and names it does not, is evaluated for up to MAX_CALLS
 * calls, unseeded and seeded, with a callback that records what fires
 * instead of sleeping or killing, and the result is checked against the
 * Evaluation steps of wrench(5). A broken invariant aborts: libFuzzer
 * reports it as a crash and saves the input.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_PER_S    1000000000ull
#define MAX_SLOW_NS (3600 * NS_PER_S)
#define CHANCE_ONE  (1ull << 53) /* the threshold of chance=1 */
/* Calls per feature and mode: enough for after=, every= and times= to run
 * their course when they are small, few enough that a file of many lines
 * does not make every run slow. */
#define MIN_CALLS   4
#define MAX_CALLS   64
#define LINE_BUDGET 4096 /* lines evaluated per mode, when MIN_CALLS allows */
#define SEED        0x5eedull
#define CATEGORY    "fuzz"

typedef unsigned __int128 u128;

/* The line being checked, if any, named when an invariant breaks. */
static struct {
	const char *text;
	size_t len;
	unsigned number;
} where;

_Noreturn static void broken(int line, const char *what)
{
	fprintf(stderr, "fuzz_rules.c:%d: invariant broken: %s\n", line, what);
	if (where.text) {
		fprintf(stderr, "on line %u of the input: \"", where.number);
		for (size_t i = 0; i < where.len; i++) {
			unsigned char c = (unsigned char)where.text[i];
			if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
				fputc(c, stderr);
			else
				fprintf(stderr, "\\x%02x", c);
		}
		fprintf(stderr, "\"\n");
	}
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			broken(__LINE__, #cond);                                                   \
	} while (0)

/* ---- inputs the library refuses ------------------------------------------ */

static char scratch_dir[PATH_MAX];
static char scratch_file[PATH_MAX + sizeof(CATEGORY) + 1];
static int scratch_fd = -1;

static void remove_scratch(void)
{
	unlinkat(scratch_fd, CATEGORY, 0);
	rmdir(scratch_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	snprintf(scratch_dir, sizeof(scratch_dir), "%s/wrench-fuzz.XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch_dir) ||
	    (scratch_fd = open(scratch_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror("fuzz_rules: scratch directory");
		exit(1);
	}
	snprintf(scratch_file, sizeof(scratch_file), "%s/%s", scratch_dir, CATEGORY);
	atexit(remove_scratch);
	return 0;
}

static bool refused_by_library(const uint8_t *data, size_t size)
{
	return size > WRENCH_MAX_FILE_SIZE || (size > 0 && memchr(data, '\0', size));
}

/* The library must refuse the file, name it, and hand back no contents. */
static void check_refused(const uint8_t *data, size_t size)
{
	int fd = openat(scratch_fd, CATEGORY, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);

	struct wrench__trust t = {0};
	struct wrench__file file;
	int rc = wrench__trust_read_file(scratch_fd, CATEGORY, scratch_file, &file, &t);
	CHECK(rc == (size > WRENCH_MAX_FILE_SIZE ? -EFBIG : -EILSEQ));
	CHECK(file.data == NULL);
	CHECK(t.problems == 1 && strstr(t.first.message, scratch_file) != NULL);
	free(file.data);
	unlinkat(scratch_fd, CATEGORY, 0);
}

/* ---- wrench(5), read independently of lib/parse.c ----------------------- */

/* What a line means: its feature and directives, chance as a fraction. */
struct expected {
	const char *feature;
	size_t feature_len;
	bool fail, has_slow, has_chance;
	int kill_signal;
	uint64_t slow_ns;
	u128 chance_num, chance_den;
	uint64_t every, first, after, times;
	int64_t until;
	bool process_scope;
	int errnum;
	const char *value; /* as written, in the line; NULL: none */
	size_t value_len, decoded_len;
	char decoded[WRENCH_VALUE_MAX + 1];
};

/*
 * The white space at S, as its length in bytes (0: none): the characters
 * with Unicode's White_Space property, which Go's strings.TrimSpace
 * removes, in UTF-8. Decoded to a code point here and looked up, where the
 * library matches bytes; an overlong form is no character, as in Go.
 */
static size_t blank_length(const char *s, size_t len)
{
	static const uint32_t white_space[] = {
	        0x09,   0x0a,   0x0b,   0x0c,   0x0d,   0x20,   0x85,   0xa0,   0x1680,
	        0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
	        0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
	};
	const unsigned char *u = (const unsigned char *)s;
	uint32_t code;
	size_t n;

	if (u[0] < 0x80) {
		code = u[0];
		n = 1;
	} else if ((u[0] & 0xe0) == 0xc0 && len >= 2 && (u[1] & 0xc0) == 0x80) {
		code = (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
		n = 2;
		if (code < 0x80)
			return 0;
	} else if ((u[0] & 0xf0) == 0xe0 && len >= 3 && (u[1] & 0xc0) == 0x80 &&
	           (u[2] & 0xc0) == 0x80) {
		code = (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
		n = 3;
		if (code < 0x800)
			return 0;
	} else {
		return 0;
	}
	for (size_t i = 0; i < sizeof(white_space) / sizeof(white_space[0]); i++)
		if (code == white_space[i])
			return n;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The next word from *POS; false at the end of the line or at a comment. */
static bool next_word(const char *line, size_t len, size_t *pos, const char **word,
                      size_t *word_len)
{
	size_t i = *pos, n;

	while (i < len && (n = blank_length(line + i, len - i)) > 0)
		i += n;
	if (i == len || line[i] == '#')
		return false;
	*word = line + i;
	while (i < len && blank_length(line + i, len - i) == 0)
		i++;
	*word_len = (size_t)(line + i - *word);
	*pos = i;
	return true;
}

static bool whole_number(const char *s, size_t len, uint64_t *out)
{
	u128 value = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		value = value * 10 + (unsigned)(s[i] - '0');
		if (value > UINT64_MAX)
			return false;
	}
	*out = (uint64_t)value;
	return true;
}

/*
 * The decimal number at the start of S, in billionths (digits past the
 * ninth after the point dropped). Returns its length, 0 when there is no
 * digit. A whole part too large for any directive stops growing: it stays
 * too large.
 */
static size_t decimal(const char *s, size_t len, u128 *billionths)
{
	size_t i = 0, digits = 0;
	u128 whole = 0, fraction = 0, scale = NS_PER_S;

	for (; i < len && is_digit(s[i]); i++, digits++)
		if (whole < 1000000000000ull)
			whole = whole * 10 + (unsigned)(s[i] - '0');
	if (i < len && s[i] == '.') {
		for (i++; i < len && is_digit(s[i]); i++, digits++) {
			scale /= 10;
			fraction += scale * (unsigned)(s[i] - '0');
		}
	}
	*billionths = whole * NS_PER_S + fraction;
	return digits ? i : 0;
}

static bool duration(const char *s, size_t len, uint64_t *ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"us", 1000}, {"ms", 1000000}, {"s", NS_PER_S}, {"m", 60 * NS_PER_S}};
	u128 billionths;
	size_t n = decimal(s, len, &billionths);

	if (n == 0)
		return false;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strlen(units[u].name) != len - n || memcmp(s + n, units[u].name, len - n) != 0)
			continue;
		u128 total = billionths * units[u].ns / NS_PER_S;
		*ns = (uint64_t)total;
		return total <= (u128)MAX_SLOW_NS;
	}
	return false;
}

static bool chance(const char *s, size_t len, struct expected *e)
{
	bool percent = len > 0 && s[len - 1] == '%';

	if (percent)
		len--;
	if (len == 0 || decimal(s, len, &e->chance_num) != len)
		return false;
	e->chance_den = (u128)NS_PER_S * (percent ? 100 : 1);
	return e->chance_num <= e->chance_den;
}

static bool signal_value(const char *s, size_t len, int *sig)
{
	/* signal(7): the signals whose default action ends the process (Term
	 * or Core); those that stop, continue or are ignored are refused, by
	 * name and by number, and so are glibc's own 32 and 33. */
	static const struct {
		const char *name;
		int number;
	} names[] = {{"HUP", 1},     {"INT", 2},   {"QUIT", 3},  {"ILL", 4},     {"TRAP", 5},
	             {"ABRT", 6},    {"BUS", 7},   {"FPE", 8},   {"KILL", 9},    {"USR1", 10},
	             {"SEGV", 11},   {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14},   {"TERM", 15},
	             {"STKFLT", 16}, {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27},
	             {"IO", 29},     {"POLL", 29}, {"PWR", 30},  {"SYS", 31}};
	uint64_t number;

	if (whole_number(s, len, &number)) {
		bool ends = (number >= 1 && number <= 16) || (number >= 24 && number <= 27) ||
		            (number >= 29 && number <= 31) || (number >= 34 && number <= 64);
		if (!ends)
			return false;
		*sig = (int)number;
		return true;
	}
	if (len > 3 && strncasecmp(s, "SIG", 3) == 0) {
		s += 3;
		len -= 3;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0) {
			*sig = names[i].number;
			return true;
		}
	}
	return false;
}

/* errno=: a number from 1 to 4095, or a name glibc gives one of those
 * numbers (strerrorname_np), or one of the three aliases <errno.h> has,
 * in any case. */
static bool errno_value(const char *s, size_t len, int *errnum)
{
	static const struct {
		const char *name;
		int number;
	} aliases[] = {{"EWOULDBLOCK", EAGAIN}, {"EDEADLOCK", EDEADLK}, {"ENOTSUP", EOPNOTSUPP}};
	uint64_t number;
	size_t digits_only = 0;

	while (digits_only < len && is_digit(s[digits_only]))
		digits_only++;
	if (len > 0 && digits_only == len) {
		/* Too large for 64 bits is out of range too. */
		if (!whole_number(s, len, &number) || number < 1 || number > 4095)
			return false;
		*errnum = (int)number;
		return true;
	}
	for (int n = 1; n <= 4095; n++) {
		const char *name = strerrorname_np(n);
		if (name && strlen(name) == len && strncasecmp(s, name, len) == 0) {
			*errnum = n;
			return true;
		}
	}
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strlen(aliases[i].name) == len && strncasecmp(s, aliases[i].name, len) == 0) {
			*errnum = aliases[i].number;
			return true;
		}
	}
	return false;
}

static int hex(char c)
{
	if (is_digit(c))
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* value=: printable bytes (any but the control characters) and %XX
 * escapes of any byte but NUL, at most WRENCH_VALUE_MAX bytes decoded,
 * into E->decoded. */
static bool text_value(const char *s, size_t len, struct expected *e)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == '%') {
			if (i + 2 >= len || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
				return false;
			c = (unsigned char)(hex(s[i + 1]) << 4 | hex(s[i + 2]));
			if (c == 0)
				return false;
			i += 2;
		}
		if (n == WRENCH_VALUE_MAX)
			return false;
		e->decoded[n++] = (char)c;
	}
	e->decoded[n] = '\0';
	e->decoded_len = n;
	e->value = s;
	e->value_len = len;
	return true;
}

enum {
	FAIL,
	KILL,
	SLOW,
	CHANCE,
	EVERY,
	FIRST,
	AFTER,
	TIMES,
	UNTIL,
	SCOPE,
	ERRNO,
	VALUE,
	DIRECTIVES
};

static const char *const directive_names[DIRECTIVES] = {
        "fail",  "kill",  "slow",  "chance", "every", "first",
        "after", "times", "until", "scope",  "errno", "value",
};

/* N digits at S as a number, or -1. */
static int64_t digits(const char *s, size_t n)
{
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DDTHH:MM:SSZ" as Unix seconds, counting whole years and months
 * from 1970 (a different road from lib/parse.c's). */
static bool instant(const char *s, size_t len, int64_t *out)
{
	static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (len != 20 || s[4] != '-' || s[7] != '-' || (s[10] | 0x20) != 't' || s[13] != ':' ||
	    s[16] != ':' || (s[19] | 0x20) != 'z')
		return false;
	int64_t y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int64_t h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 60)
		return false;
	bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
	if (d > days_in[mo - 1] + (mo == 2 && leap))
		return false;
	/* Leap days in the years before Y, less those before 1970. */
	int64_t before = y - 1;
	int64_t leaps =
	        before / 4 - before / 100 + before / 400 - (1969 / 4 - 1969 / 100 + 1969 / 400);
	int64_t days = (y - 1970) * 365 + leaps + d - 1;
	for (int64_t m = 1; m < mo; m++)
		days += days_in[m - 1] + (m == 2 && leap);
	*out = days * 86400 + h * 3600 + mi * 60 + sec;
	return true;
}

/* Applies one NAME[=VALUE] word to E; false when wrench(5) refuses it. */
static bool expect_directive(struct expected *e, const char *word, size_t len, unsigned *seen)
{
	const char *eq = memchr(word, '=', len);
	size_t name_len = eq ? (size_t)(eq - word) : len;
	const char *value = eq ? eq + 1 : NULL;
	size_t value_len = eq ? len - name_len - 1 : 0;
	unsigned d = 0;

	while (d < DIRECTIVES && (strlen(directive_names[d]) != name_len ||
	                          memcmp(word, directive_names[d], name_len) != 0))
		d++;
	if (d == DIRECTIVES || (*seen & (1u << d)))
		return false;
	*seen |= 1u << d;
	switch (d) {
	case FAIL:
		e->fail = true;
		return !value;
	case KILL:
		e->kill_signal = SIGKILL;
		return !value || signal_value(value, value_len, &e->kill_signal);
	case SLOW:
		e->has_slow = true;
		return value && duration(value, value_len, &e->slow_ns);
	case CHANCE:
		e->has_chance = true;
		return value && chance(value, value_len, e);
	case AFTER:
		return value && whole_number(value, value_len, &e->after);
	case UNTIL:
		return value && instant(value, value_len, &e->until) && e->until > 0;
	case SCOPE:
		e->process_scope = value && value_len == 7 && memcmp(value, "process", 7) == 0;
		return value &&
		       (e->process_scope || (value_len == 7 && memcmp(value, "machine", 7) == 0));
	case ERRNO:
		return value && errno_value(value, value_len, &e->errnum);
	case VALUE:
		return value && value_len > 0 && text_value(value, value_len, e);
	default: {
		uint64_t *field = d == EVERY ? &e->every : d == FIRST ? &e->first : &e->times;
		return value && whole_number(value, value_len, field) && *field >= 1;
	}
	}
}

/* What wrench__parse_line must answer: 1 (and E) for a trigger, 0 for a
 * blank or comment line, -1 for a malformed one. */
static int expect_line(const char *line, size_t len, struct expected *e)
{
	size_t pos = 0, word_len;
	const char *word;
	unsigned seen = 0;

	memset(e, 0, sizeof(*e));
	if (!next_word(line, len, &pos, &e->feature, &e->feature_len))
		return 0;
	/* A feature is printable: a control character in it refuses the line. */
	for (size_t i = 0; i < e->feature_len; i++)
		if ((unsigned char)e->feature[i] < 0x20 || e->feature[i] == 0x7f)
			return -1;
	while (next_word(line, len, &pos, &word, &word_len))
		if (!expect_directive(e, word, word_len, &seen))
			return -1;
	/* errno= and value= say how the call fails: a killed process
	 * returns nothing, and a slow line that says it fails. */
	bool tells = seen & ((1u << ERRNO) | (1u << VALUE));
	if ((seen & (1u << FAIL)) && (seen & (1u << KILL)))
		return -1;
	if (tells && (seen & (1u << KILL)))
		return -1;
	if ((seen & (1u << FIRST)) && !(seen & (1u << EVERY)))
		return -1;
	if ((seen & (1u << EVERY)) && !(seen & (1u << FIRST)))
		e->first = 1;
	if (e->first > e->every)
		return -1;
	if (!(seen & (1u << KILL)) && (!(seen & (1u << SLOW)) || tells))
		e->fail = true;
	return 1;
}

/* ---- the parser, against that reading ------------------------------------- */

static void check_expected(const struct wrench__rule *rule, const struct expected *e)
{
	CHECK(rule->feature == e->feature);
	CHECK(rule->fail == e->fail && rule->kill_signal == e->kill_signal);
	CHECK(rule->has_slow == e->has_slow && rule->slow_ns == e->slow_ns);
	CHECK(rule->every == e->every && rule->first == e->first);
	CHECK(rule->after == e->after && rule->times == e->times);
	CHECK(rule->until == e->until && rule->process_scope == e->process_scope);
	CHECK(rule->errnum == e->errnum);
	/* The value as written, where the line has it; decoded only when
	 * asked, to what this reading decoded. */
	CHECK(wrench__rule_value(rule) == e->value && rule->value_len == e->value_len);
	if (e->value) {
		char decoded[WRENCH_VALUE_MAX + 1];
		CHECK(wrench__value_decode(wrench__rule_value(rule), rule->value_len, decoded) ==
		      e->decoded_len);
		CHECK(memcmp(decoded, e->decoded, e->decoded_len + 1) == 0);
	}
	CHECK(rule->has_chance == e->has_chance);
	if (!e->has_chance) {
		CHECK(rule->chance_threshold == 0);
		return;
	}
	/* The parser goes through a double: exact at 0 and 1, within a few
	 * units of 2^-53 elsewhere. */
	u128 exact = e->chance_num * CHANCE_ONE / e->chance_den;
	u128 got = rule->chance_threshold;
	if (exact == 0 || exact == CHANCE_ONE)
		CHECK(got == exact);
	CHECK(got + 4 >= exact && got <= exact + 4);
}

static bool same_rule(const struct wrench__rule *a, const struct wrench__rule *b)
{
	return a->fail == b->fail && a->kill_signal == b->kill_signal &&
	       a->has_slow == b->has_slow && a->slow_ns == b->slow_ns &&
	       a->has_chance == b->has_chance && a->chance_threshold == b->chance_threshold &&
	       a->every == b->every && a->first == b->first && a->after == b->after &&
	       a->times == b->times && a->until == b->until &&
	       a->process_scope == b->process_scope && a->errnum == b->errnum &&
	       a->value_len == b->value_len &&
	       (!a->value_len ||
	        memcmp(wrench__rule_value(a), wrench__rule_value(b), a->value_len) == 0);
}

/* A caller's small message buffer gets the start of the message, ended. */
static void check_short_message(const char *line, size_t len, const char *message)
{
	enum { SMALL = 8 };
	char *small = malloc(SMALL);
	struct wrench__rule rule;

	CHECK(small != NULL);
	CHECK(wrench__parse_line(line, len, &rule, small, SMALL) == -1);
	size_t n = strlen(message) < SMALL - 1 ? strlen(message) : SMALL - 1;
	CHECK(strlen(small) == n && strncmp(small, message, n) == 0);
	free(small);
}

/* Line NUMBER on its own, and what wrench__parse_rules kept of it: the
 * next of its rules (*R) or errors (*E), or nothing. */
static void check_line(const char *line, size_t len, unsigned number,
                       const struct wrench__rules *rules, size_t *r, size_t *e)
{
	char err[sizeof(rules->error->message)] = "";
	struct wrench__rule rule;
	struct expected want;

	where.text = line;
	where.len = len;
	where.number = number;
	int kind = wrench__parse_line(line, len, &rule, err, sizeof(err));
	CHECK(kind == expect_line(line, len, &want));
	if (kind > 0) {
		check_expected(&rule, &want);
		CHECK(*r < rules->count);
		const struct wrench__rule *kept = &rules->rule[(*r)++];
		CHECK(kept->line == number && same_rule(kept, &rule));
		CHECK(strlen(kept->feature) == want.feature_len &&
		      memcmp(kept->feature, want.feature, want.feature_len) == 0);
	} else if (kind < 0) {
		CHECK(err[0] != '\0');
		CHECK(*e < rules->error_count);
		const struct wrench__parse_error *kept = &rules->error[(*e)++];
		CHECK(kept->line == number && strcmp(kept->message, err) == 0);
		check_short_message(line, len, err);
	}
	where.text = NULL;
}

/* Splits TEXT into lines as wrench(5) does; returns how many there are. */
static unsigned check_lines(const char *text, size_t len, const struct wrench__rules *rules)
{
	size_t start = 0, r = 0, e = 0;
	unsigned number = 0;

	while (start < len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		check_line(text + start, end - start, ++number, rules, &r, &e);
		start = end + 1;
	}
	CHECK(r == rules->count && e == rules->error_count);
	return number;
}

/* What holds for any rule, whatever the text it came from. */
static void check_rule(const struct wrench__rule *rule, unsigned lines, unsigned previous_line)
{
	CHECK(rule->line >= 1 && rule->line <= lines && rule->line > previous_line);
	CHECK(rule->feature[0] != '\0' && rule->feature[0] != '#');
	size_t len = strlen(rule->feature);
	for (size_t i = 0; i < len; i++)
		CHECK(blank_length(rule->feature + i, len - i) == 0 &&
		      (unsigned char)rule->feature[i] >= 0x20 && rule->feature[i] != 0x7f);
	/* Every feature a line names is one wrench_is_active() accepts. */
	CHECK(wrench__feature_problem(rule->feature) == NULL);
	if (rule->every)
		CHECK(rule->first >= 1 && rule->first <= rule->every);
	else
		CHECK(rule->first == 0);
	CHECK(rule->chance_threshold <= CHANCE_ONE);
	CHECK(rule->has_chance || rule->chance_threshold == 0);
	CHECK(rule->slow_ns <= MAX_SLOW_NS && (rule->has_slow || rule->slow_ns == 0));
	CHECK(!(rule->fail && rule->kill_signal));
	CHECK(rule->fail || rule->kill_signal || rule->has_slow);
	CHECK(rule->kill_signal == 0 || (rule->kill_signal >= 1 && rule->kill_signal <= 31) ||
	      (rule->kill_signal >= 34 && rule->kill_signal <= 64));
	CHECK(rule->errnum >= 0 && rule->errnum <= WRENCH__ERRNO_MAX);
	/* A line that says how it fails is a failing line. */
	if (rule->errnum || rule->value_len)
		CHECK(rule->fail && !rule->kill_signal);
	if (!rule->value_len)
		return;
	/* The file's copy of the value, right after the feature's: ended,
	 * checked, and decoded whole to at most WRENCH_VALUE_MAX bytes, none
	 * of them NUL. */
	const char *value = wrench__rule_value(rule);
	size_t checked_len;
	char decoded[WRENCH_VALUE_MAX + 1];
	CHECK(value == rule->feature + strlen(rule->feature) + 1);
	CHECK(value[rule->value_len] == '\0');
	CHECK(wrench__check_value(value, rule->value_len, &checked_len) == 0);
	CHECK(checked_len <= WRENCH_VALUE_MAX && checked_len <= rule->value_len);
	CHECK(wrench__value_decode(wrench__rule_value(rule), rule->value_len, decoded) ==
	      checked_len);
	CHECK(strlen(decoded) == checked_len);
}

static void check_rules(const struct wrench__rules *rules, unsigned lines)
{
	for (size_t i = 0; i < rules->count; i++)
		check_rule(&rules->rule[i], lines, i ? rules->rule[i - 1].line : 0);
	for (size_t i = 0; i < rules->error_count; i++) {
		const struct wrench__parse_error *error = &rules->error[i];
		CHECK(error->line >= 1 && error->line <= lines);
		CHECK(i == 0 || error->line > rules->error[i - 1].line);
		CHECK(memchr(error->message, '\0', sizeof(error->message)) != NULL);
	}
	/* At most half full, or a lookup could probe forever. */
	size_t slots = rules->index_mask + 1;
	CHECK((slots & rules->index_mask) == 0 && slots >= 2 * rules->count);
}

/* ---- the evaluator, against wrench(5)'s Evaluation steps ---------------- */

/* What fired during one evaluation, in order. */
struct record {
	const struct wrench__rules *rules;
	const char *feature;
	size_t *fired; /* indexes of the lines that fired */
	size_t count;
	unsigned calls; /* per feature */
};

static void record_fire(struct wrench__rule *rule, void *ctx)
{
	struct record *rec = ctx;

	CHECK(rule >= rec->rules->rule && rule < rec->rules->rule + rec->rules->count);
	CHECK(strcmp(rule->feature, rec->feature) == 0);
	/* A line fires at most once per call. */
	CHECK(rec->count < rec->rules->count);
	rec->fired[rec->count++] = (size_t)(rule - rec->rules->rule);
}

/* The counters each line must have, kept apart from the library's. */
struct model {
	uint64_t *calls, *draws, *fires;
};

/*
 * Whether line I passes the steps of one call. An unseeded chance decision
 * cannot be foretold: FIRED, what the library did, stands for the draw,
 * and must be one the chance allows.
 */
static bool model_fires(const struct wrench__rule *rule, struct model *m, size_t i, bool seeded,
                        bool fired)
{
	/* An expired line is not reached: it neither counts nor fires. */
	if (rule->until && time(NULL) >= rule->until)
		return false;
	uint64_t n = ++m->calls[i];
	bool spent = rule->times && m->fires[i] >= rule->times;

	if (n <= rule->after)
		return false;
	if (rule->every && (n - rule->after - 1) % rule->every >= rule->first)
		return false;
	if (rule->has_chance) {
		bool pass = fired;
		if (seeded)
			pass = (wrench__draw(rule, true, m->draws[i]++) >> 11) <
			       rule->chance_threshold;
		CHECK(!pass || rule->chance_threshold > 0);
		CHECK(pass || spent || rule->chance_threshold < CHANCE_ONE);
		if (!pass)
			return false;
	}
	return !spent;
}

/* The lines of one feature, in file order, against one evaluation. */
static void check_call(const struct wrench__rule *const *group, size_t n, struct model *m,
                       const struct record *rec, bool active, bool seeded)
{
	size_t seen = 0;
	bool ended = false;

	for (size_t g = 0; g < n && !ended; g++) {
		size_t i = (size_t)(group[g] - rec->rules->rule);
		bool fired = seen < rec->count && rec->fired[seen] == i;
		if (!model_fires(group[g], m, i, seeded, fired)) {
			CHECK(!fired);
			continue;
		}
		CHECK(fired);
		seen++;
		/* What the library logs when a line fires; once per line is
		 * enough, and keeps the runs fast. */
		if (m->fires[i]++ == 0) {
			char what[WRENCH__ACTION_MAX];
			wrench__describe_action(group[g], what, sizeof(what));
			/* Whole: nothing cut at the end of the buffer. */
			CHECK(what[0] != '\0' && strlen(what) + 1 < sizeof(what));
			if (group[g]->errnum || group[g]->value_len)
				CHECK(strstr(what, "fail (") != NULL);
		}
		ended = group[g]->fail || group[g]->kill_signal;
	}
	CHECK(seen == rec->count && active == ended);
}

/* GROUP: the N lines of one feature, in file order. */
static void check_feature(struct wrench__rules *rules, const struct wrench__rule *const *group,
                          size_t n, struct model *m, struct record *rec, bool seeded)
{
	struct wrench__name feature = wrench__name_of(group[0]->feature);
	int32_t i = wrench__rules_find(rules, &feature);

	for (size_t g = 0; g < n; g++, i = rules->rule[i].next_same)
		CHECK(i >= 0 && (size_t)i < rules->count && &rules->rule[i] == group[g]);
	CHECK(i == -1);
	rec->feature = group[0]->feature;
	/* An until= within a few seconds of now may expire between the
	 * library's look at the clock and the model's: not foretold. */
	int64_t now = time(NULL);
	for (size_t g = 0; g < n; g++)
		if (group[g]->until && group[g]->until > now - 5 && group[g]->until < now + 5)
			return;
	for (unsigned call = 0; call < rec->calls; call++) {
		rec->count = 0;
		bool active = wrench__evaluate_each(rules, rec->feature, seeded, record_fire, rec);
		check_call(group, n, m, rec, active, seeded);
	}
}

/* The library counts only what a line's directives need. */
static void check_counters(const struct wrench__rules *rules, const struct model *m, bool seeded)
{
	for (size_t i = 0; i < rules->count; i++) {
		const struct wrench__rule *rule = &rules->rule[i];
		if (rule->after || rule->every)
			CHECK(atomic_load(&rule->counters->calls) == m->calls[i]);
		if (rule->has_chance && seeded)
			CHECK(atomic_load(&rule->counters->draws) == m->draws[i]);
		if (rule->times)
			CHECK(atomic_load(&rule->counters->fires) == m->fires[i] &&
			      m->fires[i] <= rule->times);
	}
}

/* Starts every counter again, as a changed file does. */
static void reset(struct wrench__rules *rules, struct model *m, bool seeded)
{
	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__rule *rule = &rules->rule[i];
		atomic_store(&rule->counters->calls, 0);
		atomic_store(&rule->counters->draws, 0);
		atomic_store(&rule->counters->fires, 0);
		rule->seed = seeded ? wrench__seed_for_line(SEED, wrench__hash_string(CATEGORY),
		                                            rule->line)
		                    : 0;
		m->calls[i] = m->draws[i] = m->fires[i] = 0;
	}
}

static int by_feature(const void *a, const void *b)
{
	const struct wrench__rule *x = *(const struct wrench__rule *const *)a;
	const struct wrench__rule *y = *(const struct wrench__rule *const *)b;
	int c = strcmp(x->feature, y->feature);
	return c ? c : (x > y) - (x < y);
}

static bool names_feature(const struct wrench__rule *const *sorted, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(sorted[mid]->feature, name);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A feature the file does not name is never found and never fires. */
static void check_absent(struct wrench__rules *rules, const struct wrench__rule *const *sorted,
                         struct record *rec, const char *name)
{
	if (names_feature(sorted, rules->count, name))
		return;
	struct wrench__name absent = wrench__name_of(name);
	CHECK(wrench__rules_find(rules, &absent) == -1);
	rec->feature = name;
	rec->count = 0;
	CHECK(!wrench__evaluate_each(rules, name, false, record_fire, rec) && rec->count == 0);
}

static void check_absent_names(struct wrench__rules *rules,
                               const struct wrench__rule *const *sorted, struct record *rec)
{
	static const char *const fixed[] = {"", "#", "fail", "db", "a", "x y", "\xff"};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_absent(rules, sorted, rec, fixed[i]);
	/* Near misses of the names it has, which hash close by. */
	for (size_t i = 0; i < rules->count; i++) {
		if (i > 0 && strcmp(sorted[i]->feature, sorted[i - 1]->feature) == 0)
			continue;
		char *shorter = strdup(sorted[i]->feature);
		CHECK(shorter != NULL);
		shorter[strlen(shorter) - 1] = '\0';
		check_absent(rules, sorted, rec, shorter);
		free(shorter);
	}
}

static void evaluate(struct wrench__rules *rules)
{
	size_t n = rules->count;
	const struct wrench__rule **sorted = malloc((n + 1) * sizeof(const struct wrench__rule *));
	uint64_t *counters = calloc(3 * n + 1, sizeof(*counters));
	struct model m = {counters, counters + n, counters + 2 * n};
	struct record rec = {.rules = rules, .fired = malloc((n + 1) * sizeof(size_t))};

	CHECK(sorted && counters && rec.fired);
	for (size_t i = 0; i < n; i++)
		sorted[i] = &rules->rule[i];
	qsort(sorted, n, sizeof(const struct wrench__rule *), by_feature);
	rec.calls = n ? LINE_BUDGET / (unsigned)n : MAX_CALLS;
	rec.calls = rec.calls < MIN_CALLS   ? MIN_CALLS
	            : rec.calls > MAX_CALLS ? MAX_CALLS
	                                    : rec.calls;
	for (int seeded = 0; seeded <= 1; seeded++) {
		reset(rules, &m, seeded);
		for (size_t g = 0, end; g < n; g = end) {
			for (end = g + 1;
			     end < n && !strcmp(sorted[end]->feature, sorted[g]->feature);)
				end++;
			check_feature(rules, sorted + g, end - g, &m, &rec, seeded);
		}
		check_counters(rules, &m, seeded);
	}
	check_absent_names(rules, sorted, &rec);
	free(rec.fired);
	free(counters);
	free(sorted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct wrench__rules *rules = NULL;

	if (refused_by_library(data, size)) {
		check_refused(data, size);
		return 0;
	}
	CHECK(wrench__parse_rules(text, size, &rules) == 0);
	unsigned lines = check_lines(text, size, rules);
	check_rules(rules, lines);
	evaluate(rules);
	wrench__rules_free(rules);
	return 0;
}
