/*
 * Preloaded into the wrench command by test_counters.sh: each time the
 * command maps a counters file, the file is cut to its first page right
 * after, as the agent's user could do at any moment. The command's next
 * read past that page then raises SIGBUS, deterministically.
 *
 * With TRUNCATE_STATE_OTHER=FILE in the environment, it leaves the
 * counters file alone and raises a SIGBUS of the same kind on another
 * file instead: FILE, mapped, cut to nothing and read.
 *
 * Only in the command's own process: the child it forks to try the setup
 * as the agent maps the file too, and is left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);

static pid_t command_pid;

__attribute__((constructor)) static void remember_the_command(void)
{
	command_pid = getpid();
}

/* Maps PATH (a page of it), cuts it to nothing and reads the page. */
static void touch_past_the_end(mmap_fn *real_mmap, const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		return;
	volatile char *page = real_mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED || ftruncate(fd, 0) < 0)
		return;
	fprintf(stderr, "truncate_state: reading %s past its end\n", path);
	(void)page[0];
}

/* Exported: the project builds with hidden visibility. */
__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
                                                  int fd, off_t off)
{
	static mmap_fn *real_mmap;
	char link[64], target[4096];

	if (!real_mmap)
		real_mmap = (mmap_fn *)dlsym(RTLD_NEXT, "mmap");
	void *p = real_mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED || fd < 0 || !(flags & MAP_SHARED) || getpid() != command_pid)
		return p;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return p;
	target[n] = '\0';
	if (!strstr(target, "/.wrench-state/counters-"))
		return p;
	const char *other = getenv("TRUNCATE_STATE_OTHER");
	if (other)
		touch_past_the_end(real_mmap, other);
	else if (ftruncate(fd, 4096) == 0)
		fprintf(stderr, "truncate_state: cut %s to 4096 bytes\n", target);
	return p;
}
