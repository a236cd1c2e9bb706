/*
 * The lock that keeps two wrench commands from losing each other's edit: a
 * flock() on DIR/.wrench-state/lock, a regular file of mode 0600 owned by
 * root or the owner of the state directory, in a directory that is 0700
 * (0711 at most, once prepared for a non-root agent). Taking a flock needs
 * a descriptor of the file, and opening it needs its read permission:
 * nobody but root and its owner can take the lock, so a user who can read
 * the trigger directory or any file in it cannot delay an edit. A lock
 * file that anyone else might have opened (its mode or owner wrong) is
 * replaced by a new one before it is used: a descriptor opened earlier
 * keeps a lock on the old file only. A holder that keeps the lock longer
 * than LOCK_WAIT_MS (another wrench command of the same users, stuck) is
 * named (from /proc/locks) and the command gives up, having changed
 * nothing.
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

/* Locks the lock file DIRFD, of PATH. */
static int lock_file(int dirfd, const char *path)
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

/* Whether the lock file ST is one nobody else can have opened. */
static bool lock_file_is_private(const struct stat *st, const struct stat *state_dir)
{
	return S_ISREG(st->st_mode) && st->st_nlink == 1 && (st->st_mode & 077) == 0 &&
	       (st->st_uid == 0 || st->st_uid == geteuid() || st->st_uid == state_dir->st_uid);
}

/* Opens the lock file in the state directory SDFD, replacing one that
 * others may have opened. A descriptor, or a negative errno. */
static int open_lock_file(int sdfd)
{
	struct stat dir, st;

	if (fstat(sdfd, &dir) < 0)
		return -errno;
	for (int attempt = 0; attempt < 4; attempt++) {
		int fd = openat(sdfd, LOCK_FILE,
		                O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
		                0600);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) == 0 && lock_file_is_private(&st, &dir))
			return fd;
		close(fd);
		if (unlinkat(sdfd, LOCK_FILE, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 &&
		    errno != ENOENT)
			return -errno;
	}
	return -EAGAIN;
}

int lock_dir(const struct options *o, int dirfd, bool open_up, struct target *target)
{
	struct wrench__state_where w = {
	        .dirfd = dirfd, .dir = o->dir, .create = true, .open_up = open_up};
	struct wrench__problem why;
	char path[PATH_MAX + 32], lock_path[PATH_MAX + 48];

	agent_of(o, &w);
	trigger_path(o, WRENCH_STATE_DIR, path, sizeof(path));
	snprintf(lock_path, sizeof(lock_path), "%s/" LOCK_FILE, path);
	int sdfd = wrench__state_dir(&w, &why);
	if ((sdfd == -EACCES || sdfd == -EPERM) && geteuid() != 0) {
		cannot(o, -EACCES, "lock", path);
		return EXIT_USAGE;
	}
	if (sdfd < 0) {
		note("nothing was changed: %s", why.message);
		return EXIT_USAGE;
	}
	int fd = open_lock_file(sdfd);
	if (fd < 0) {
		cannot(o, fd, "lock", lock_path);
		close(sdfd);
		return EXIT_USAGE;
	}
	int rc = lock_file(fd, lock_path);
	if (rc != 0) {
		close(fd);
		close(sdfd);
		return rc;
	}
	target->state_fd = sdfd;
	target->lock_fd = fd;
	return 0;
}
