/*
 * The names errno= takes: those of <errno.h> that the C library knows,
 * asked of glibc itself (strerrorname_np), so that a name means on this
 * machine what the agent's own C library means by it. The table is made
 * once, at the first trigger file that needs it, never on a call's path.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Names with a number of their own, plus the aliases <errno.h> defines
 * for some of them, which strerrorname_np() never gives. */
#define ALIASES   3
#define MAX_NAMES (WRENCH__ERRNO_MAX + ALIASES)

static const struct {
	const char *name;
	int number;
} aliases[ALIASES] = {
        {"EWOULDBLOCK", EWOULDBLOCK},
        {"EDEADLOCK", EDEADLOCK},
        {"ENOTSUP", ENOTSUP},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *names[MAX_NAMES];
static int numbers[MAX_NAMES];
static size_t count;

static void make_table(void)
{
	for (int n = 1; n <= WRENCH__ERRNO_MAX; n++) {
		const char *name = strerrorname_np(n);
		if (name) {
			names[count] = name;
			numbers[count++] = n;
		}
	}
	for (size_t i = 0; i < ALIASES; i++) {
		names[count] = aliases[i].name;
		numbers[count++] = aliases[i].number;
	}
}

const char *wrench__errno_name(int errnum)
{
	return errnum > 0 && errnum <= WRENCH__ERRNO_MAX ? strerrorname_np(errnum) : NULL;
}

int wrench__errno_by_name(const char *name, size_t len)
{
	pthread_once(&once, make_table);
	for (size_t i = 0; i < count; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
			return numbers[i];
	return 0;
}

const char *const *wrench__errno_names(size_t *n)
{
	pthread_once(&once, make_table);
	*n = count;
	return names;
}
