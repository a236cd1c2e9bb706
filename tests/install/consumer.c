/*
 * A user's program, written only against wrench.h and wrench(5), built
 * against an installed libwrench (pkg-config or find_package). Exits 0
 * when the installed library behaves as documented, else names the check.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wrench.h>

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "consumer: FAILED: %s\n", what);
		failures++;
	}
}

static void write_trigger(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) == EOF || fclose(f) != 0 || chmod(path, mode) != 0) {
		perror(path);
		exit(2);
	}
}

static void sequence(const char *category, const char *feature, int n, char *out)
{
	for (int i = 0; i < n; i++)
		out[i] = wrench_is_active(category, feature) ? 'T' : 'F';
	out[n] = '\0';
}

int main(void)
{
	char dir[] = "/tmp/wrench-consumer.XXXXXX", seq[64], again[64];

	if (!mkdtemp(dir))
		return 2;
	check(wrench_set_dir(dir) == 0, "wrench_set_dir accepts an absolute path");
	check(strcmp(wrench_get_dir(), dir) == 0, "wrench_get_dir returns it");
	check(!wrench_is_active("agent", "bare"), "no file: inactive");

	write_trigger(dir, "agent",
	              "bare\n"
	              "# a comment\n"
	              "two-of-three first=2 every=3\n"
	              "coin chance=50% scope=process\n"
	              "delay slow=1ms\n",
	              0600);
	check(wrench_is_active("agent", "bare"), "a bare line fires");
	check(!wrench_is_active("agent", "absent"), "an absent feature does not");
	sequence("agent", "two-of-three", 6, seq);
	check(strcmp(seq, "TTFTTF") == 0, "first=2 every=3 fires TTFTTF");
	check(!wrench_is_active("agent", "delay"), "a slow line alone does not fail");

	uint64_t seed = 7;
	wrench_set_seed(&seed);
	sequence("agent", "coin", 40, seq);
	wrench_set_seed(&seed);
	sequence("agent", "coin", 40, again);
	check(strcmp(seq, again) == 0, "the same seed gives the same decisions");
	check(strchr(seq, 'T') && strchr(seq, 'F'), "chance=50% both fires and does not");

	check(wrench_set_enabled(false), "the switch starts enabled");
	check(!wrench_is_active("agent", "bare"), "disabled: inactive");
	check(!wrench_set_enabled(true), "set_enabled returns the previous value");

	write_trigger(dir, "agent", "bare\n", 0666);
	check(!wrench_is_active("agent", "bare"), "a world-writable file is ignored");

	/* Nothing left behind: the file, and the machine-wide counters. */
	char path[512];
	snprintf(path, sizeof(path), "%s/agent", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.wrench-state/counters-v3-%u", dir, (unsigned)geteuid());
	unlink(path);
	/* The points this program reached, recorded beside the counters. */
	snprintf(path, sizeof(path), "%s/.wrench-state/points-v1-%u", dir, (unsigned)geteuid());
	check(unlink(path) == 0, "the points reached were recorded");
	snprintf(path, sizeof(path), "%s/.wrench-state", dir);
	rmdir(path);
	check(rmdir(dir) == 0, "the scratch directory is removed");
	if (failures == 0)
		printf("consumer: all checks passed\n");
	return failures ? 1 : 0;
}
