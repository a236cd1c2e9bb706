/*
 * The trigger-file grammar (wrench(5)): FEATURE [DIRECTIVE ...] per line.
 *
 * Numbers are parsed by hand rather than with strtod()/strtoull(): those
 * accept signs, exponents, hex and leading space, and strtod() follows the
 * process's locale, which an agent may have set to one with a decimal comma.
 * A trigger file must mean the same thing in every process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define NS_PER_US   1000ull
#define NS_PER_MS   1000000ull
#define NS_PER_S    1000000000ull
#define MAX_SLOW_NS (3600 * NS_PER_S)

/*
 * The length of the white space character at S (LEN > 0 bytes), or 0.
 * White space is exactly what Go's strings.TrimSpace removes (Unicode's
 * White_Space, as unicode.IsSpace), so that a line means the same to
 * Juju's Go agents: ASCII space, tab, CR, VT and FF, and the UTF-8 forms
 * of U+0085, U+00A0, U+1680, U+2000 to U+200A, U+2028, U+2029, U+202F,
 * U+205F and U+3000. A byte that is not valid UTF-8 is not white space,
 * as in Go.
 */
static size_t space_length(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	if (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r'))
		return 1;
	if (len >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0))
		return 2;
	if (len < 3)
		return 0;
	if ((u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80) ||
	    (u[0] == 0xe2 && u[1] == 0x80 &&
	     ((u[2] >= 0x80 && u[2] <= 0x8a) || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf)) ||
	    (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f) ||
	    (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80))
		return 3;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int wrench__parse_uint(const char *s, size_t len, uint64_t *out)
{
	uint64_t value = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		unsigned digit = (unsigned)(s[i] - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		value = value * 10 + digit;
	}
	*out = value;
	return 0;
}

/*
 * A decimal "I[.F]" or ".F", as an integer part and a fraction in
 * billionths. Returns the number of bytes used, or -EINVAL.
 */
static int parse_decimal(const char *s, size_t len, uint64_t *whole, uint64_t *billionths)
{
	size_t i = 0, digits = 0;
	uint64_t w = 0, f = 0, scale = NS_PER_S;

	for (; i < len && is_digit(s[i]); i++, digits++) {
		if (w > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		w = w * 10 + (uint64_t)(s[i] - '0');
	}
	if (i < len && s[i] == '.') {
		/* Digits past the ninth are below a nanosecond or a
		 * billionth of a chance: accepted, and dropped. */
		for (i++; i < len && is_digit(s[i]); i++, digits++) {
			scale /= 10;
			f += (uint64_t)(s[i] - '0') * scale;
		}
	}
	if (digits == 0)
		return -EINVAL;
	*whole = w;
	*billionths = f;
	return (int)i;
}

int wrench__parse_duration(const char *s, size_t len, uint64_t *ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"us", NS_PER_US}, {"ms", NS_PER_MS}, {"s", NS_PER_S}, {"m", 60 * NS_PER_S}};
	uint64_t whole, billionths;
	int used = parse_decimal(s, len, &whole, &billionths);

	if (used < 0)
		return -EINVAL;
	const char *unit = s + used;
	size_t unit_len = len - (size_t)used;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strlen(units[u].name) != unit_len || memcmp(unit, units[u].name, unit_len) != 0)
			continue;
		/* Compare before multiplying so that huge values cannot wrap. */
		if (whole > MAX_SLOW_NS / units[u].ns)
			return -ERANGE;
		uint64_t unit_ns = units[u].ns;
		uint64_t fraction = unit_ns >= NS_PER_S ? billionths * (unit_ns / NS_PER_S)
		                                        : billionths / (NS_PER_S / unit_ns);
		uint64_t total = whole * unit_ns + fraction;
		if (total > MAX_SLOW_NS)
			return -ERANGE;
		*ns = total;
		return 0;
	}
	return -EINVAL;
}

int wrench__parse_chance(const char *s, size_t len, double *p)
{
	bool percent = len > 0 && s[len - 1] == '%';
	uint64_t whole, billionths;

	if (percent)
		len--;
	if (parse_decimal(s, len, &whole, &billionths) != (int)len)
		return -EINVAL;
	double value = (double)whole + (double)billionths / (double)NS_PER_S;
	if (percent)
		value /= 100.0;
	if (whole > 100 || value > 1.0)
		return -ERANGE;
	*p = value;
	return 0;
}

/* The signals a kill line may send, by name: every one whose default action
 * ends the process. The others are named too, so that a name is refused by
 * the same rule as its number rather than as unknown. */
static const struct {
	const char *name;
	int number;
} signal_names[] = {
        {"KILL", SIGKILL}, {"TERM", SIGTERM}, {"ABRT", SIGABRT},     {"SEGV", SIGSEGV},
        {"BUS", SIGBUS},   {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"HUP", SIGHUP},
        {"ILL", SIGILL},   {"TRAP", SIGTRAP}, {"FPE", SIGFPE},       {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"STKFLT", SIGSTKFLT},
        {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
        {"IO", SIGIO},     {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS},
        {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},
        {"CONT", SIGCONT}, {"CHLD", SIGCHLD}, {"URG", SIGURG},       {"WINCH", SIGWINCH},
};

/* One rule for names and numbers: a kill line must end the process. A
 * signal that stops it, continues it or is ignored by default would leave
 * the call answering true with the agent stopped or unharmed; glibc keeps
 * the numbers from 32 to SIGRTMIN - 1 for itself and raise() refuses them. */
static bool signal_is_usable(uint64_t number)
{
	switch (number) {
	case SIGSTOP:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU:
	case SIGCONT:
	case SIGCHLD:
	case SIGURG:
	case SIGWINCH:
		return false;
	default:
		return number >= 1 && number < (uint64_t)NSIG &&
		       (number < 32 || number >= (uint64_t)SIGRTMIN);
	}
}

int wrench__parse_signal(const char *s, size_t len, int *sig)
{
	uint64_t number;

	if (wrench__parse_uint(s, len, &number) < 0) {
		bool named = false;
		if (len > 3 && strncasecmp(s, "SIG", 3) == 0) {
			s += 3;
			len -= 3;
		}
		for (size_t i = 0; !named && i < sizeof(signal_names) / sizeof(signal_names[0]);
		     i++) {
			named = strlen(signal_names[i].name) == len &&
			        strncasecmp(s, signal_names[i].name, len) == 0;
			number = (uint64_t)signal_names[i].number;
		}
		if (!named)
			return -EINVAL;
	}
	if (!signal_is_usable(number))
		return -ERANGE;
	*sig = (int)number;
	return 0;
}

int wrench__parse_errno(const char *s, size_t len, int *errnum)
{
	uint64_t number = 0;
	int rc = wrench__parse_uint(s, len, &number);

	if (rc == 0 || rc == -ERANGE) {
		if (rc < 0 || number < 1 || number > WRENCH__ERRNO_MAX)
			return -ERANGE;
		*errnum = (int)number;
		return 0;
	}
	*errnum = wrench__errno_by_name(s, len);
	return *errnum ? 0 : -EINVAL;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte of the escape "%XX" at S (LEN bytes left), or -1. */
static int escaped_byte(const char *s, size_t len)
{
	if (len < 3 || hex_digit(s[1]) < 0 || hex_digit(s[2]) < 0)
		return -1;
	return hex_digit(s[1]) * 16 + hex_digit(s[2]);
}

int wrench__check_value(const char *s, size_t len, size_t *decoded_len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; n++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return -EINVAL;
		if (c != '%') {
			i++;
			continue;
		}
		/* A NUL would end the value early in the caller's copy. */
		if (escaped_byte(s + i, len - i) <= 0)
			return -EINVAL;
		i += 3;
	}
	*decoded_len = n;
	return n > WRENCH_VALUE_MAX ? -ERANGE : 0;
}

size_t wrench__value_decode(const char *s, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < WRENCH_VALUE_MAX; n++) {
		int byte = s[i] == '%' ? escaped_byte(s + i, len - i) : -1;
		out[n] = byte > 0 ? (char)byte : s[i];
		i += byte > 0 ? 3 : 1;
	}
	out[n] = '\0';
	return n;
}

/* Days since 1970-01-01 of a date in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil): no time zone, no locale, no libc. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The digits S[AT..AT+N) as a number; -1 when one is not a digit. */
static int64_t digits_at(const char *s, size_t at, size_t n)
{
	int64_t v = 0;
	for (size_t i = at; i < at + n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int wrench__parse_time(const char *s, size_t len, int64_t *seconds)
{
	static const unsigned month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (len != 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':' || (s[19] != 'Z' && s[19] != 'z'))
		return -EINVAL;
	int64_t y = digits_at(s, 0, 4), mo = digits_at(s, 5, 2), d = digits_at(s, 8, 2);
	int64_t h = digits_at(s, 11, 2), mi = digits_at(s, 14, 2), sec = digits_at(s, 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return -EINVAL;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -EINVAL;
	*seconds = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

void wrench__format_time(int64_t seconds, char *buf, size_t len)
{
	/* civil_from_days, the inverse of days_from_civil. */
	int64_t z = (seconds >= 0 ? seconds : seconds - 86399) / 86400 + 719468;
	int64_t rest = seconds - (z - 719468) * 86400;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = (int64_t)yoe + era * 400 + (m <= 2);

	snprintf(buf, len, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", (long long)y, m, d,
	         (long long)(rest / 3600), (long long)(rest / 60 % 60), (long long)(rest % 60));
}

void wrench__format_duration(uint64_t ns, char *buf, size_t len)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"m", 60 * NS_PER_S}, {"s", NS_PER_S}, {"ms", NS_PER_MS}, {"us", NS_PER_US}};

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (ns >= units[u].ns || u == sizeof(units) / sizeof(units[0]) - 1) {
			/* Three decimals are plenty for a person; %g drops the zeros. */
			snprintf(buf, len, "%.4g%s", (double)ns / (double)units[u].ns,
			         units[u].name);
			return;
		}
	}
}

/* The directives a line may carry, each at most once. */
enum directive {
	D_FAIL,
	D_KILL,
	D_SLOW,
	D_CHANCE,
	D_EVERY,
	D_FIRST,
	D_AFTER,
	D_TIMES,
	D_UNTIL,
	D_SCOPE,
	D_ERRNO,
	D_VALUE,
	D_COUNT
};

static const char *const directive_names[D_COUNT] = {
        "fail",  "kill",  "slow",  "chance", "every", "first",
        "after", "times", "until", "scope",  "errno", "value",
};

/* What a value directive looks like, for the list in a message. */
static const char *const directive_forms[D_COUNT] = {
        "fail",    "kill[=SIG]", "slow=DURATION", "chance=P",      "every=M",    "first=N",
        "after=K", "times=T",    "until=TIME",    "scope=process", "errno=NAME", "value=TEXT",
};

/* TOK (LEN bytes) as a message quotes it, into SHOWN: whole up to
 * WRENCH__QUOTED_TOKEN_MAX bytes, else its start and "...", cut between
 * two UTF-8 characters. A line may be long; the message may not. */
static void show_token(const char *tok, size_t len, char shown[WRENCH__QUOTED_TOKEN_MAX + 4])
{
	size_t cut = len;

	if (len > WRENCH__QUOTED_TOKEN_MAX) {
		cut = WRENCH__QUOTED_TOKEN_MAX;
		while (cut > 0 && ((unsigned char)tok[cut] & 0xc0) == 0x80)
			cut--;
	}
	snprintf(shown, WRENCH__QUOTED_TOKEN_MAX + 4, "%.*s%s", (int)cut, tok,
	         cut < len ? "..." : "");
}

/* Writes the message FMT, whose one %s is the token TOK (LEN bytes). */
static int set_error(char *err, size_t errlen, const char *fmt, const char *tok, int len)
{
	char shown[WRENCH__QUOTED_TOKEN_MAX + 4];

	show_token(tok, (size_t)len, shown);
	snprintf(err, errlen, fmt, shown);
	return -1;
}

/* Appends "did you mean A or B?; " to ERR (USED bytes of ERRLEN written)
 * for the N names NEAR, each followed by SUFFIX(name) when SUFFIX is not
 * NULL; returns the bytes written in all. */
static size_t say_did_you_mean(char *err, size_t errlen, size_t used, const char *const *near,
                               size_t n, const char *(*suffix)(const char *name))
{
	for (size_t i = 0; i < n && used < errlen; i++)
		used += (size_t)snprintf(err + used, errlen - used, "%s%s%s%s",
		                         i ? " or " : "did you mean ", near[i],
		                         suffix ? suffix(near[i]) : "", i + 1 == n ? "?; " : "");
	return used;
}

/* A directive's name as it is written: "chance=" for one that takes a
 * value. */
static const char *directive_suffix(const char *name)
{
	return strcmp(name, "fail") != 0 && strcmp(name, "kill") != 0 ? "=" : "";
}

/* "unknown directive", with the directives a typo of NAME (NAME_LEN bytes
 * of TOK) may have meant and the list of them all: the fix is in the
 * message, in the agent's log as in the command's. */
static int unknown_directive(const char *tok, size_t len, size_t name_len, char *err, size_t errlen)
{
	char shown[WRENCH__QUOTED_TOKEN_MAX + 4];
	const char *near[3];
	size_t n = 0, used;

	show_token(tok, len, shown);
	/* A longer name is no typo of a directive's: nothing is near it. */
	if (name_len <= WRENCH__QUOTED_TOKEN_MAX) {
		char name[WRENCH__QUOTED_TOKEN_MAX + 1];
		memcpy(name, tok, name_len);
		name[name_len] = '\0';
		n = wrench__nearest(name, directive_names, D_COUNT, near, 3);
	}
	used = (size_t)snprintf(err, errlen, "unknown directive \"%s\" (", shown);
	used = say_did_you_mean(err, errlen, used, near, n, directive_suffix);
	for (size_t d = 0; d < D_COUNT && used < errlen; d++)
		used += (size_t)snprintf(err + used, errlen - used, "%s%s%s",
		                         d ? ", " : "directives: ", directive_forms[d],
		                         d + 1 == D_COUNT ? ")" : "");
	return -1;
}

/* errno= with a name that is none: the names a typo of it may have
 * meant, a few common ones and the range. The full list would not fit a
 * message (the wrench command prints it, and wrench(5) has it). */
static int unknown_errno(const char *tok, size_t len, const char *value, size_t value_len,
                         char *err, size_t errlen)
{
	char shown[WRENCH__QUOTED_TOKEN_MAX + 4];
	const char *near[3];
	size_t n = 0, count, used;

	show_token(tok, len, shown);
	if (value_len <= WRENCH__QUOTED_TOKEN_MAX) {
		char upper[WRENCH__QUOTED_TOKEN_MAX + 1];
		for (size_t i = 0; i < value_len; i++)
			upper[i] = value[i] >= 'a' && value[i] <= 'z' ? (char)(value[i] - 32)
			                                              : value[i];
		upper[value_len] = '\0';
		const char *const *names = wrench__errno_names(&count);
		n = wrench__nearest(upper, names, count, near, 3);
	}
	used = (size_t)snprintf(err, errlen, "\"%s\": unknown errno name (", shown);
	used = say_did_you_mean(err, errlen, used, near, n, NULL);
	if (used < errlen)
		snprintf(err + used, errlen - used,
		         "a name of <errno.h> such as EIO, ENOSPC, EACCES or ETIMEDOUT, listed in "
		         "wrench(5), or a number from 1 to %d)",
		         WRENCH__ERRNO_MAX);
	return -1;
}

_Static_assert(WRENCH__ERRNO_MAX == 4095 && WRENCH_VALUE_MAX == 255,
               "the messages below name the limits");

static int parse_errno_value(struct wrench__rule *rule, const char *value, size_t value_len,
                             const char *tok, int t, char *err, size_t errlen)
{
	int errnum = 0;
	int rc = wrench__parse_errno(value, value_len, &errnum);

	rule->errnum = (uint16_t)errnum;
	if (rc == -EINVAL)
		return unknown_errno(tok, (size_t)t, value, value_len, err, errlen);
	if (rc < 0)
		return set_error(
		        err, errlen,
		        "\"%s\": an errno number is from 1 to 4095 (or a name such as EIO)", tok,
		        t);
	return 0;
}

static int parse_value_text(struct wrench__rule *rule, const char *value, size_t value_len,
                            const char *tok, int t, char *err, size_t errlen)
{
	size_t decoded;
	int rc = wrench__check_value(value, value_len, &decoded);

	if (rc == -ERANGE)
		return set_error(err, errlen,
		                 "\"%s\": the value is longer than 255 bytes once decoded", tok, t);
	if (rc < 0)
		return set_error(err, errlen,
		                 "\"%s\": bad value (text without control characters; write a "
		                 "space as %%20, a %% as %%25, any other byte but NUL as %%XX)",
		                 tok, t);
	/* The rule keeps the value's place as 16 bits from the feature: a
	 * trigger file is at most 64 KiB, but a line given on a command line
	 * may be longer. */
	if (value - rule->feature > UINT16_MAX)
		return set_error(err, errlen,
		                 "\"%s\": too far into the line (more than 65535 bytes from "
		                 "the feature)",
		                 tok, t);
	rule->value_at = (uint16_t)(value - rule->feature);
	rule->value_len = (uint16_t)value_len;
	return 0;
}

/* The counting directives' values, and where each one goes. */
static uint64_t *count_field(struct wrench__rule *rule, enum directive d)
{
	switch (d) {
	case D_EVERY:
		return &rule->every;
	case D_FIRST:
		return &rule->first;
	case D_AFTER:
		return &rule->after;
	default:
		return &rule->times;
	}
}

/* Parses the VALUE of directive D (in token TOK, for messages) into RULE. */
static int parse_value(struct wrench__rule *rule, enum directive d, const char *value,
                       size_t value_len, const char *tok, int t, char *err, size_t errlen)
{
	double p;
	int signal = SIGKILL;

	switch (d) {
	case D_FAIL:
		rule->fail = true;
		return 0;
	case D_KILL:
		rule->kill_signal = SIGKILL;
		if (value && wrench__parse_signal(value, value_len, &signal) < 0)
			return set_error(
			        err, errlen,
			        "\"%s\": not a usable signal (one that ends the process: KILL, "
			        "TERM, ABRT, SEGV, INT...; not STOP, TSTP, TTIN, TTOU, CONT, CHLD, "
			        "URG, WINCH, 32, 33)",
			        tok, t);
		if (value)
			rule->kill_signal = (uint8_t)signal; /* at most SIGRTMAX */
		return 0;
	case D_SLOW:
		rule->has_slow = true;
		if (wrench__parse_duration(value, value_len, &rule->slow_ns) < 0)
			return set_error(err, errlen,
			                 "\"%s\": bad duration (a number with a unit us, ms, s "
			                 "or m, at most 1 hour, e.g. slow=1.5s)",
			                 tok, t);
		return 0;
	case D_UNTIL:
		if (wrench__parse_time(value, value_len, &rule->until) < 0 || rule->until <= 0)
			return set_error(err, errlen,
			                 "\"%s\": not an instant in UTC (RFC 3339, e.g. "
			                 "until=2026-12-01T18:30:00Z)",
			                 tok, t);
		return 0;
	case D_SCOPE:
		if (value_len == 7 && memcmp(value, "process", 7) == 0) {
			rule->process_scope = true;
			return 0;
		}
		if (value_len == 7 && memcmp(value, "machine", 7) == 0)
			return 0;
		return set_error(err, errlen,
		                 "\"%s\": scope is machine (the default: counted by every "
		                 "process) or process",
		                 tok, t);
	case D_CHANCE:
		rule->has_chance = true;
		if (wrench__parse_chance(value, value_len, &p) < 0)
			return set_error(err, errlen,
			                 "\"%s\": chance must be from 0 to 1, or 0%% to 100%% "
			                 "(e.g. chance=0.25 or chance=25%%)",
			                 tok, t);
		/* Fires when a 53-bit draw is below p * 2^53: exact for p = 0 and 1. */
		rule->chance_threshold = (uint64_t)(p * 9007199254740992.0);
		return 0;
	case D_ERRNO:
		return parse_errno_value(rule, value, value_len, tok, t, err, errlen);
	case D_VALUE:
		return parse_value_text(rule, value, value_len, tok, t, err, errlen);
	default:
		break;
	}
	uint64_t *field = count_field(rule, d);
	if (wrench__parse_uint(value, value_len, field) < 0)
		return set_error(err, errlen, "\"%s\": not a whole number", tok, t);
	if (*field == 0 && d != D_AFTER)
		return set_error(err, errlen, "\"%s\": must be at least 1", tok, t);
	return 0;
}

/* Applies one NAME[=VALUE] token to RULE; -1 with ERR on a bad one. */
static int apply_directive(struct wrench__rule *rule, const char *tok, size_t len, unsigned *seen,
                           char *err, size_t errlen)
{
	const char *eq = memchr(tok, '=', len);
	size_t name_len = eq ? (size_t)(eq - tok) : len;
	const char *value = eq ? eq + 1 : NULL;
	size_t value_len = eq ? len - name_len - 1 : 0;
	int t = (int)len;
	enum directive d;

	for (d = 0; d < D_COUNT; d++)
		if (strlen(directive_names[d]) == name_len &&
		    memcmp(tok, directive_names[d], name_len) == 0)
			break;
	if (d == D_COUNT)
		return unknown_directive(tok, len, name_len, err, errlen);
	if (*seen & (1u << d))
		return set_error(err, errlen, "directive \"%s\" appears twice", tok, (int)name_len);
	*seen |= 1u << d;

	if (d == D_FAIL && value)
		return set_error(err, errlen, "\"%s\": fail takes no value", tok, t);
	if (d != D_FAIL && d != D_KILL && (!value || value_len == 0))
		return set_error(err, errlen, "\"%s\" needs a value", tok, t);
	return parse_value(rule, d, value, value_len, tok, t, err, errlen);
}

/* The checks that involve several directives of one line. */
static int check_combination(struct wrench__rule *rule, unsigned seen, char *err, size_t errlen)
{
	if ((seen & (1u << D_FAIL)) && (seen & (1u << D_KILL))) {
		snprintf(err, errlen,
		         "fail and kill cannot be combined: a line does one or the other");
		return -1;
	}
	bool tells = seen & ((1u << D_ERRNO) | (1u << D_VALUE));
	if (tells && (seen & (1u << D_KILL))) {
		snprintf(err, errlen,
		         "%s cannot be combined with kill: a killed process returns no error",
		         seen & (1u << D_ERRNO) ? "errno=" : "value=");
		return -1;
	}
	if ((seen & (1u << D_FIRST)) && !(seen & (1u << D_EVERY))) {
		snprintf(err, errlen, "first=%llu needs every=M (\"first N of every M calls\")",
		         (unsigned long long)rule->first);
		return -1;
	}
	if (rule->every && !(seen & (1u << D_FIRST)))
		rule->first = 1;
	if (rule->first > rule->every) {
		snprintf(err, errlen, "first=%llu is more than every=%llu",
		         (unsigned long long)rule->first, (unsigned long long)rule->every);
		return -1;
	}
	/* Failing is the default action; a slow line alone only delays,
	 * unless it says how it fails. */
	if (!rule->kill_signal && (!rule->has_slow || tells))
		rule->fail = true;
	return 0;
}

bool wrench__next_token(const char *line, size_t len, size_t *pos, const char **tok,
                        size_t *tok_len)
{
	size_t i = *pos;

	size_t n;

	while (i < len && (n = space_length(line + i, len - i)) > 0)
		i += n;
	/* A '#' that starts a token starts a comment: the rest is not read. */
	if (i == len || line[i] == '#') {
		*pos = len;
		return false;
	}
	size_t start = i;
	while (i < len && space_length(line + i, len - i) == 0)
		i++;
	*tok = line + start;
	*tok_len = i - start;
	*pos = i;
	return true;
}

/* The first control character of S (LEN bytes), or NULL. White space
 * ends a token, so a control character here is not white space. */
static const char *find_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return s + i;
	return NULL;
}

int wrench__parse_line(const char *line, size_t len, struct wrench__rule *rule, char *err,
                       size_t errlen)
{
	size_t pos = 0, tok_len;
	const char *tok;
	unsigned seen = 0;

	memset(rule, 0, sizeof(*rule));
	if (!wrench__next_token(line, len, &pos, &rule->feature, &tok_len))
		return 0;
	/* No program names a failure point with a control character, and
	 * wrench_is_active() refuses such a feature: say so at the line. */
	const char *control = find_control(rule->feature, tok_len);
	if (control) {
		snprintf(err, errlen,
		         "the feature contains a control character (byte 0x%02x at column %zu); "
		         "features are printable text",
		         (unsigned)(unsigned char)*control, (size_t)(control - line) + 1);
		return -1;
	}
	/* The counters are keyed by the tokens, so that white space and
	 * comments can change without restarting them. */
	uint64_t h = wrench__hash_bytes(rule->feature, tok_len, WRENCH__HASH_START);
	while (wrench__next_token(line, len, &pos, &tok, &tok_len)) {
		h = wrench__hash_bytes(tok, tok_len, wrench__hash_bytes(" ", 1, h));
		if (apply_directive(rule, tok, tok_len, &seen, err, errlen) < 0)
			return -1;
	}
	rule->key = h;
	return check_combination(rule, seen, err, errlen) < 0 ? -1 : 1;
}

const char *wrench__feature_problem(const char *feature)
{
	size_t len = strlen(feature);

	if (len == 0)
		return "is empty";
	if (feature[0] == '#')
		return "starts with #, which starts a comment";
	for (size_t i = 0; i < len; i++)
		if (space_length(feature + i, len - i) > 0)
			return "contains white space, which separates the words of a line";
	if (find_control(feature, len))
		return "contains a control character";
	return NULL;
}

const char *wrench__category_problem(const char *category)
{
	size_t len = strlen(category);

	/* A white space character at the end is one to three bytes long. */
	for (size_t k = 1; k <= 3 && k <= len; k++)
		if (space_length(category + len - k, k) == k)
			return "ends with white space";
	if (len > 0 && space_length(category, len) > 0)
		return "starts with white space";
	if (find_control(category, len))
		return "contains a control character";
	return NULL;
}

/* The length of the token at S: up to white space or LEN. */
static size_t token_length(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && space_length(s + i, len - i) == 0)
		i++;
	return i;
}

/* Feature names, each followed by the line's value= text if any, are
 * copied NUL-terminated into one block, in line order. FIRST_CAPACITY:
 * the number of rules the first allocation holds. */
static int add_rule(struct wrench__rules *rules, size_t *capacity, size_t first_capacity,
                    struct wrench__rule *rule, size_t flen, size_t *features_used)
{
	if (rules->count == *capacity) {
		size_t grown = *capacity ? *capacity * 2 : first_capacity;
		struct wrench__rule *more = reallocarray(rules->rule, grown, sizeof(*more));
		if (!more)
			return -ENOMEM;
		rules->rule = more;
		*capacity = grown;
	}
	char *copy = rules->features + *features_used;
	const char *value = wrench__rule_value(rule);
	memcpy(copy, rule->feature, flen);
	copy[flen] = '\0';
	*features_used += flen + 1;
	rule->feature = copy;
	if (value) {
		memcpy(copy + flen + 1, value, rule->value_len);
		copy[flen + 1 + rule->value_len] = '\0';
		*features_used += rule->value_len + 1u;
		rule->value_at = (uint16_t)(flen + 1);
	}
	rules->rule[rules->count++] = *rule;
	return 0;
}

static int add_error(struct wrench__rules *rules, unsigned line, const char *message)
{
	struct wrench__parse_error *more =
	        reallocarray(rules->error, rules->error_count + 1, sizeof(*more));
	if (!more)
		return -ENOMEM;
	rules->error = more;
	more[rules->error_count].line = line;
	snprintf(more[rules->error_count].message, sizeof(more->message), "%s", message);
	rules->error_count++;
	return 0;
}

static size_t feature_slot(uint64_t hash)
{
	return (size_t)(hash ^ (hash >> 32));
}

/* The slot of FEATURE: where its first line is, or the empty slot where
 * it would go. The table is at most half full, so probing ends. */
static size_t index_slot(const struct wrench__rules *rules, const struct wrench__name *feature)
{
	size_t slot = feature_slot(feature->hash) & rules->index_mask;
	while (rules->index[slot] >= 0 &&
	       strcmp(rules->rule[rules->index[slot]].feature, feature->s) != 0)
		slot = (slot + 1) & rules->index_mask;
	return slot;
}

int32_t wrench__rules_find(const struct wrench__rules *rules, const struct wrench__name *feature)
{
	return rules->index[index_slot(rules, feature)];
}

/* Chains the lines of each feature in file order, and indexes the first. */
static int build_index(struct wrench__rules *rules)
{
	size_t size = 2;
	while (size < 2 * rules->count)
		size *= 2;
	int32_t *last = malloc(size * sizeof(*last));
	rules->index = malloc(size * sizeof(*rules->index));
	rules->local = calloc(rules->count ? rules->count : 1, sizeof(*rules->local));
	if (!last || !rules->index || !rules->local) {
		free(last);
		return -ENOMEM;
	}
	rules->index_mask = size - 1;
	for (size_t i = 0; i < size; i++)
		rules->index[i] = -1;
	for (size_t i = 0; i < rules->count; i++) {
		struct wrench__name feature = wrench__name_of(rules->rule[i].feature);
		size_t slot = index_slot(rules, &feature);
		/* Until state.c attaches them, the lines count on their own. */
		rules->rule[i].counters = &rules->local[i];
		rules->rule[i].next_same = -1;
		if (rules->index[slot] < 0)
			rules->index[slot] = (int32_t)i;
		else
			rules->rule[last[slot]].next_same = (int32_t)i;
		last[slot] = (int32_t)i;
	}
	free(last);
	return 0;
}

/* The number of lines in TEXT, at least 1, counting no further than MAX. */
static size_t lines_in(const char *text, size_t len, size_t max)
{
	size_t lines = 1;

	for (size_t at = 0; lines < max && at < len; lines++) {
		const char *nl = memchr(text + at, '\n', len - at);
		if (!nl || (size_t)(nl - text) + 1 == len)
			break; /* no line after this one */
		at = (size_t)(nl - text) + 1;
	}
	return lines;
}

int wrench__parse_rules(const char *text, size_t len, struct wrench__rules **out)
{
	struct wrench__rules *rules = calloc(1, sizeof(*rules));
	size_t capacity = 0, features_used = 0;
	unsigned number = 0;
	int rc = 0;
	/* A rule is 128 bytes: a file of one line, as most are, gets room for
	 * one, not eight; a process that loads 100,000 categories keeps 100 MB
	 * less. Files of more lines grow the array as usual. */
	size_t first_capacity = lines_in(text, len, 8);

	/* Each feature is followed by at least one byte of the file or by its
	 * end, so len + 1 bytes hold them all with their terminators; a value's
	 * text and its terminator take fewer bytes than "value=" before it. */
	if (!rules || !(rules->features = malloc(len + 1))) {
		free(rules);
		return -ENOMEM;
	}
	for (size_t start = 0; start < len && rc == 0; number++) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		char err[sizeof(rules->error->message)];
		struct wrench__rule rule;

		int kind = wrench__parse_line(text + start, end - start, &rule, err, sizeof(err));
		rule.line = number + 1;
		if (kind > 0) {
			size_t flen =
			        token_length(rule.feature, (size_t)(text + end - rule.feature));
			rc = add_rule(rules, &capacity, first_capacity, &rule, flen,
			              &features_used);
		} else if (kind < 0) {
			rc = add_error(rules, number + 1, err);
		}
		start = end + 1;
	}
	if (rc == 0)
		rc = build_index(rules);
	if (rc < 0) {
		wrench__rules_free(rules);
		return rc;
	}
	*out = rules;
	return 0;
}

void wrench__rules_free(struct wrench__rules *rules)
{
	if (!rules)
		return;
	free(rules->index);
	free(rules->local);
	free(rules->rule);
	free(rules->error);
	free(rules->features);
	free(rules);
}
