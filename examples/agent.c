/*
 * A small upgrade agent with failure points left in for good.
 *
 * It upgrades in four steps (fetch, verify, install, commit), records each
 * finished step in a state file, retries a failed fetch with back-off, and
 * resumes where it stopped when it is restarted after a crash. The trigger
 * file <wrench dir>/upgrader can make each step fail, slow down or die:
 *
 *   fetch-fails first=2 every=3 errno=ETIMEDOUT  # the mirror times out two fetches in three
 *   install-fails errno=ENOSPC        # the disk is full
 *   slow-verify slow=300ms            # verification drags
 *   crash-before-commit kill times=1  # the machine dies before the commit, once
 *
 * The counters are machine-wide, so the restarted agent finds the kill
 * spent and finishes: the recovery is what the test checks.
 *
 * Usage: agent STATE-FILE   (run it again after a crash to resume)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wrench.h>

#define MAX_FETCH_ATTEMPTS 5

static const char *const steps[] = {"fetch", "verify", "install", "commit"};
#define STEP_COUNT (int)(sizeof(steps) / sizeof(steps[0]))

static int fetch(void)
{
	for (int attempt = 1; attempt <= MAX_FETCH_ATTEMPTS; attempt++) {
		/* The line says which error the download fails with (EIO when
		 * it names none): the agent handles it as it would the real one. */
		int err = wrench_error("upgrader", "fetch-fails");
		if (!err)
			return 0;
		printf("agent: fetch attempt %d failed (%s), retrying in %d ms\n", attempt,
		       strerror(err), attempt * 50);
		struct timespec backoff = {0, attempt * 50 * 1000000L};
		nanosleep(&backoff, NULL);
	}
	return -EAGAIN;
}

static int verify(void)
{
	/* A slow line only delays: the step still succeeds. */
	if (wrench_is_active("upgrader", "slow-verify"))
		return -EIO;
	return 0;
}

static int install(void)
{
	int err = wrench_error("upgrader", "install-fails");
	return err ? -err : 0;
}

static int commit(void)
{
	/* With "kill" on this line the process dies here, as if the machine
	 * lost power between install and commit. */
	if (wrench_is_active("upgrader", "crash-before-commit"))
		return -EIO;
	return 0;
}

static int (*const run_step[])(void) = {fetch, verify, install, commit};

static int load_progress(const char *state_file)
{
	FILE *f = fopen(state_file, "r");
	int done = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%d", &done) != 1 || done < 0 || done > STEP_COUNT)
		done = 0;
	fclose(f);
	return done;
}

static int save_progress(const char *state_file, int done)
{
	FILE *f = fopen(state_file, "w");

	if (!f)
		return -errno;
	fprintf(f, "%d\n", done);
	return fclose(f) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s STATE-FILE\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int done = load_progress(argv[1]);
	if (done > 0)
		printf("agent: resuming after step %s\n", steps[done - 1]);
	for (int i = done; i < STEP_COUNT; i++) {
		printf("agent: %s...\n", steps[i]);
		int rc = run_step[i]();
		if (rc < 0) {
			printf("agent: %s failed: %s; giving up until the next run\n", steps[i],
			       strerror(-rc));
			return 1;
		}
		if (save_progress(argv[1], i + 1) < 0) {
			perror("agent: saving progress");
			return 1;
		}
	}
	printf("agent: upgrade complete\n");
	return 0;
}
