/*
 * A program with failure points that never fire, for
 * no_files_without_trigger_dir.sh: it calls wrench_is_active() N times
 * from its main thread, from a second thread and from a forked child, with
 * literal names (call sites) and names made at run time, as an agent on a
 * production machine would. It writes nothing itself, so that every file
 * made or written under strace is the library's.
 *
 * Usage: quiet_calls N   (the trigger directory is WRENCH_DIR's)
 * Exits 0 when no call answered true, else 1; 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wrench.h"

static unsigned long calls;

/* Returns how many calls answered true. */
static unsigned long make_calls(void)
{
	unsigned long fired = 0;
	char feature[32];

	for (unsigned long i = 0; i < calls; i++) {
		fired += wrench_is_active("quiet-agent", "fetch-fails");
		snprintf(feature, sizeof(feature), "step-%lu", i % 8);
		fired += (wrench_is_active)("quiet-agent", feature);
	}
	return fired;
}

static void *thread_calls(void *result)
{
	*(unsigned long *)result = make_calls();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t thread;
	unsigned long fired_by_thread = 0;
	int status;

	if (argc != 2 || (calls = strtoul(argv[1], NULL, 10)) == 0)
		return 2;
	unsigned long fired = make_calls();
	if (pthread_create(&thread, NULL, thread_calls, &fired_by_thread) != 0)
		return 1;
	fired += make_calls();
	pthread_join(thread, NULL);
	pid_t child = fork();
	if (child == 0)
		_exit(make_calls() == 0 ? 0 : 1);
	if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return 1;
	return fired + fired_by_thread == 0 ? 0 : 1;
}
