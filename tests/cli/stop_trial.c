/*
 * Preloaded into the wrench command by test_cli.sh: the child that tries
 * the setup as the agent stops itself (SIGSTOP) when it starts its change
 * detection, as the agent's user could stop it, since it runs as that
 * user. The command must give up on it after a bounded wait.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <sys/inotify.h>

typedef int init_fn(int);

/* Exported: the project builds with hidden visibility. */
__attribute__((visibility("default"))) int inotify_init1(int flags)
{
	init_fn *real = (init_fn *)dlsym(RTLD_NEXT, "inotify_init1");

	raise(SIGSTOP);
	return real(flags);
}
