/*
 * The lock that keeps two wrench commands from losing each other's edit.
 * It is a flock() on the trigger directory, which anyone who may open the
 * directory can also take: so it is never waited for without bound. A
 * holder that keeps it longer than LOCK_WAIT_MS is named (from
 * /proc/locks) and the command gives up, having changed nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A wrench command holds the lock for milliseconds; this is plenty. */
#define LOCK_WAIT_MS 10000
#define LOCK_POLL_MS 10

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a line of /proc/locks, "1: FLOCK  ADVISORY  WRITE 1234
 * 08:01:5678 0 EOF", is a flock held on ST's inode; its pid in *PID.
 * Waiters have "->" where the kind is, and are not matched. */
static bool holds(char *line, const struct stat *st, long *pid)
{
	char *save = NULL, *field[6];
	int n = 0;

	for (char *tok = strtok_r(line, " \t\n", &save); tok && n < 6;
	     tok = strtok_r(NULL, " \t\n", &save))
		field[n++] = tok;
	if (n < 6 || strcmp(field[1], "FLOCK") != 0)
		return false;
	char *end;
	unsigned long maj = strtoul(field[5], &end, 16);
	unsigned long min = *end == ':' ? strtoul(end + 1, &end, 16) : 0;
	unsigned long long ino = *end == ':' ? strtoull(end + 1, &end, 10) : 0;
	*pid = strtol(field[4], NULL, 10);
	return *end == '\0' && maj == major(st->st_dev) && min == minor(st->st_dev) &&
	       ino == (unsigned long long)st->st_ino && *pid > 0;
}

/* The pid holding a flock on ST's inode, from /proc/locks; 0 if unknown. */
static long lock_holder(const struct stat *st)
{
	FILE *locks = fopen("/proc/locks", "re");
	char line[256];
	long pid = 0;

	if (!locks)
		return 0;
	while (fgets(line, sizeof(line), locks))
		if (holds(line, st, &pid))
			break;
		else
			pid = 0;
	fclose(locks);
	return pid;
}

static void name_holder(const struct stat *st, const char *path)
{
	long pid = lock_holder(st);
	char proc[64], comm[64] = "";
	struct stat pst;

	if (pid <= 0) {
		char *word = quoted(path);
		note("%s is locked by another process, for more than %d s; nothing was changed; "
		     "fix: find it (lsof +d %s) and let it finish",
		     path, LOCK_WAIT_MS / 1000, word ? word : "DIR");
		free(word);
		return;
	}
	snprintf(proc, sizeof(proc), "/proc/%ld/comm", pid);
	FILE *f = fopen(proc, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(proc, sizeof(proc), "/proc/%ld", pid);
	long uid = stat(proc, &pst) == 0 ? (long)pst.st_uid : -1;
	note("%s is locked by process %ld (%s, uid %ld), for more than %d s; nothing was "
	     "changed; fix: let it finish, or stop it (kill %ld)",
	     path, pid, comm, uid, LOCK_WAIT_MS / 1000, pid);
}

int lock_dir(int dirfd, const char *path)
{
	long deadline = now_ms() + LOCK_WAIT_MS;
	struct stat st;

	for (;;) {
		if (flock(dirfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			note("cannot lock %s: %s", path, strerror(errno));
			return EXIT_USAGE;
		}
		if (now_ms() >= deadline)
			break;
		struct timespec pause = {0, LOCK_POLL_MS * 1000000L};
		nanosleep(&pause, NULL);
	}
	if (fstat(dirfd, &st) == 0)
		name_holder(&st, path);
	else
		note("%s is locked by another process; nothing was changed", path);
	return EXIT_USAGE;
}
