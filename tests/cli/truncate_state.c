/*
 * Preloaded into the wrench command by test_counters.sh: each time the
 * command maps a counters file, the file is cut to its first page right
 * after, as the agent's user could do at any moment. The command's next
 * read past that page then raises SIGBUS, deterministically.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Exported: the project builds with hidden visibility. */
__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
                                                  int fd, off_t off)
{
	static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
	char link[64], target[4096];

	if (!real_mmap)
		real_mmap =
		        (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
	void *p = real_mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED || fd < 0 || !(flags & MAP_SHARED))
		return p;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n > 0) {
		target[n] = '\0';
		if (strstr(target, "/.wrench-state/counters-") && ftruncate(fd, 4096) == 0)
			fprintf(stderr, "truncate_state: cut %s to 4096 bytes\n", target);
	}
	return p;
}
