/*
 * A user's program with a strlcpy() of its own, as many C programs have.
 * It must build with the flags an installed libwrench gives (pkg-config
 * --cflags, or the CMake package): libbsd is the library's private
 * dependency, and its overlay headers, which declare strlcpy(), must not
 * reach a user's compiler.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <wrench.h>

static size_t strlcpy(char *dst, const char *src, int size)
{
	size_t len = strlen(src);
	if (size > 0) {
		size_t n = len < (size_t)size - 1 ? len : (size_t)size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int main(void)
{
	char buf[8];

	strlcpy(buf, "wrench", (int)sizeof(buf));
	/* No trigger directory: the call answers false. */
	if (wrench_set_dir("/nonexistent/wrench-own-strlcpy") != 0 || wrench_is_active("c", "f")) {
		fprintf(stderr, "own_strlcpy: FAILED\n");
		return 1;
	}
	return strcmp(buf, "wrench") != 0;
}
