/*
 * The state file on disk (layout in state_file.h): reaching it, checking it
 * as trigger files are checked, creating it, growing it and mapping it.
 *
 * An agent that is not the owner of the trigger directory reaches
 * .wrench-state with search permission alone (O_PATH): the directory is
 * 0700 while only its owner's agents use it, and 0711 once `wrench --owner
 * USER` has prepared it for a non-root agent; no agent ever needs to list
 * it. The file is created complete under a temporary name and renamed into
 * place with RENAME_NOREPLACE: two processes starting at once share the
 * winner's file, never two. Every block of every published segment is
 * reserved before it is published, so that no store to the mapping can
 * raise SIGBUS on a full disk: growing fails instead, with ENOSPC, and the
 * lines that needed the room stay off (state.c).
 *
 * Each problem comes with a fix that fits its cause, and a fix never
 * re-arms a spent line without saying so: removing a counters file starts
 * every line counted in it again from zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state_file.h"

#define STATE_MAGIC   0x3354534e45525257ull /* "WRRENST3", little-endian */
#define STATE_VERSION 3u

/* What a fix that removes a counters file costs, said each time. */
#define REARMS "every line counted in it starts again from zero: a spent line fires again"

/* ---- problems ----------------------------------------------------------- */

/* Records a problem of PATH; every PATH in its fix is quoted for the shell. */
__attribute__((format(printf, 6, 7))) static int problem(struct wrench__problem *why, int err,
                                                         enum wrench_log_level level,
                                                         const struct stat *st, const char *path,
                                                         const char *fmt, ...)
{
	va_list ap;

	why->level = level;
	why->path = NULL;
	memset(&why->where, 0, sizeof(why->where));
	if (st) {
		why->where.dev = st->st_dev;
		why->where.ino = st->st_ino;
		why->where.size = st->st_size;
	}
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
	wrench__quote_fix(why->message, sizeof(why->message), path);
	return err < 0 ? err : -EIO; /* a problem is never success */
}

static uid_t agent_uid(const struct wrench__state_where *w)
{
	return w->for_uid ? w->uid : geteuid();
}

bool wrench__state_shortage(int err)
{
	return wrench__is_transient(err) || err == -ENOSPC || err == -EDQUOT;
}

/*
 * The fix of an error met opening or creating what the agent needs: room
 * for a full disk, nothing but time for a passing shortage, and for a
 * permission the command that prepares the directory for this agent
 * (wrench(1), prepare), which never touches a count.
 */
static const char *fix_for(int err, const struct wrench__state_where *w, char *buf, size_t len)
{
	char dir[PATH_MAX * 4 + 3];

	wrench__shell_quote(w->dir, dir, sizeof(dir));
	if (err == -ENOSPC || err == -EDQUOT)
		snprintf(buf, len, "free space on the file system of %s (df -h %s)", w->dir, dir);
	else if (wrench__state_shortage(err))
		snprintf(buf, len, "none needed: a passing shortage, tried again shortly");
	else if (err == -EACCES || err == -EPERM)
		snprintf(buf, len, "sudo wrench --dir %s --owner %u prepare", dir,
		         (unsigned)agent_uid(w));
	else
		snprintf(buf, len, "see why %s cannot be used (ls -ld %s)", w->dir, dir);
	return buf;
}

/* "cannot WHAT PATH: ERROR; fix: ..." at the level the error deserves. */
static int cannot(struct wrench__problem *why, int err, const struct wrench__state_where *w,
                  const char *what, const char *path)
{
	char fix[PATH_MAX * 4 + 128];

	return problem(why, err, wrench__state_shortage(err) ? WRENCH_LOG_WARN : WRENCH_LOG_ERROR,
	               NULL, path, "cannot %s %s: %s; fix: %s", what, path, strerror(-err),
	               fix_for(err, w, fix, sizeof(fix)));
}

/* The owner and mode rules of trigger files (trust.c), in the words of the
 * counters: RM is the command that removes PATH, and what that loses is
 * said. */
static int check_owner_mode(const struct stat *st, const struct wrench__state_where *w,
                            const char *path, const char *rm, struct wrench__problem *why)
{
	uid_t uid = agent_uid(w);
	unsigned broken = wrench__owner_mode_broken(st, uid, false);

	if (broken & WRENCH__BAD_OWNER)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, st, path,
		               "%s is owned by uid %u, not by root or uid %u, so its counts cannot "
		               "be trusted; fix: %s %s (" REARMS ")",
		               path, (unsigned)st->st_uid, (unsigned)uid, rm, path);
	if (broken & WRENCH__BAD_MODE)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, st, path,
		               "%s is writable by group or others (mode %04o); fix: chmod go-w %s "
		               "(its counts are kept)",
		               path, (unsigned)(st->st_mode & 07777), path);
	return 0;
}

/* ---- the state directory ------------------------------------------------ */

/* Gives a new .wrench-state the trigger directory's owner: given to one
 * agent of a shared directory, it would be refused by every other. Only a
 * directory of this process's user is given away: the trigger directory's
 * owner could have put one of its own in its place meanwhile. */
static int give_to_dir_owner(const struct wrench__state_where *w, int fd)
{
	struct stat parent, made;

	if (fstat(w->dirfd, &parent) < 0 || fstat(fd, &made) < 0)
		return -errno;
	if (parent.st_uid == geteuid())
		return 0;
	if (made.st_uid != geteuid())
		return -EEXIST;
	return fchown(fd, parent.st_uid, parent.st_gid) < 0 ? -errno : 0;
}

/* Makes the state directory searchable by others (0711) for a non-root
 * agent that does not own it: what W->open_up asks, and no more. FD is a
 * descriptor of it that may be read. */
static int open_up(int fd, const struct stat *st)
{
	if ((st->st_mode & 0011) == 0011)
		return 0;
	return fchmod(fd, (st->st_mode & 07777) | 0011) < 0 ? -errno : 0;
}

static int open_state_dir_at(const struct wrench__state_where *w, bool readable)
{
	int flags = O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | (readable ? O_RDONLY : O_PATH);
	return openat(w->dirfd, WRENCH_STATE_DIR, flags);
}

/*
 * Opens the state directory, creating it (0700) when W allows. READABLE: a
 * descriptor that can be read and locked (the wrench command's, which may
 * read it); else an O_PATH one, which needs search permission only.
 */
static int open_state_dir(const struct wrench__state_where *w, const char *path, bool readable,
                          struct wrench__problem *why)
{
	struct stat st;
	int fd = open_state_dir_at(w, readable);

	if (fd < 0 && errno == ENOENT && w->create) {
		if (mkdirat(w->dirfd, WRENCH_STATE_DIR, 0700) < 0 && errno != EEXIST)
			return cannot(why, -errno, w, "create", path);
		fd = open_state_dir_at(w, true);
		int rc = fd < 0 ? -errno : give_to_dir_owner(w, fd);
		if (rc < 0) {
			if (fd >= 0)
				close(fd);
			return cannot(why, rc, w, "create", path);
		}
		if (!readable) {
			int path_fd = open_state_dir_at(w, false);
			close(fd);
			fd = path_fd;
		}
	}
	if (fd < 0 && errno == ENOENT)
		return problem(why, -ENOENT, WRENCH_LOG_DEBUG, NULL, path, "%s does not exist",
		               path);
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		return problem(why, -ENOTDIR, WRENCH_LOG_ERROR, NULL, path,
		               "%s is not a directory; fix: rm %s (it holds no counts)", path,
		               path);
	if (fd < 0)
		return cannot(why, -errno, w, "open", path);
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = problem(why, -ENOTDIR, WRENCH_LOG_ERROR, &st, path,
		             "%s is not a directory; fix: rm %s (it holds no counts)", path, path);
	if (rc == 0)
		rc = check_owner_mode(&st, w, path, "rm -r", why);
	if (rc == 0 && w->open_up && readable)
		rc = open_up(fd, &st) < 0 ? cannot(why, -errno, w, "open up", path) : 0;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

static void state_dir_path(const struct wrench__state_where *w, char *buf, size_t len)
{
	size_t dlen = strlen(w->dir);
	snprintf(buf, len, "%s%s%s", w->dir, dlen && w->dir[dlen - 1] == '/' ? "" : "/",
	         WRENCH_STATE_DIR);
}

int wrench__state_dir(const struct wrench__state_where *w, struct wrench__problem *why)
{
	char path[PATH_MAX + 32];

	state_dir_path(w, path, sizeof(path));
	return open_state_dir(w, path, true, why);
}

int wrench__state_dir_reach(const struct wrench__state_where *w, char *path, size_t len,
                            struct wrench__problem *why)
{
	state_dir_path(w, path, len);
	return open_state_dir(w, path, false, why);
}

/* ---- the file ----------------------------------------------------------- */

static size_t state_size(unsigned segments)
{
	return state_segment_offset(segments);
}

/* The checks made on an opened state file: those of trigger files, and
 * the header this version writes, with the size its segments need. */
static int check_state_file(int fd, const struct wrench__state_where *w, const char *path,
                            struct stat *st, unsigned *checked, struct wrench__problem *why)
{
	struct state_header h;

	if (fstat(fd, st) < 0)
		return cannot(why, -errno, w, "stat", path);
	if (!S_ISREG(st->st_mode))
		return problem(why, -EPERM, WRENCH_LOG_ERROR, st, path,
		               "%s is not a regular file; fix: rm -r %s (it holds no counts)", path,
		               path);
	if (st->st_nlink != 1)
		return problem(
		        why, -EPERM, WRENCH_LOG_ERROR, st, path,
		        "%s has %lu links, so another name can reach its counts; fix: remove "
		        "the other names, which find / -xdev -samefile %s lists (its counts "
		        "are kept; rm %s instead means " REARMS ")",
		        path, (unsigned long)st->st_nlink, path, path);
	int rc = check_owner_mode(st, w, path, "rm", why);
	if (rc < 0)
		return rc;
	ssize_t got = pread(fd, &h, sizeof(h), 0);
	unsigned segments = got == sizeof(h) ? atomic_load(&h.segments) : 0;
	if (got != sizeof(h) || h.magic != STATE_MAGIC || h.version != STATE_VERSION ||
	    h.window_slots != WINDOW_SLOTS || h.shards != WRENCH__SHARDS ||
	    h.first_windows != FIRST_WINDOWS || h.max_segments != MAX_SEGMENTS || segments < 1 ||
	    segments > MAX_SEGMENTS || (size_t)st->st_size < state_size(segments))
		return problem(why, -EBADMSG, WRENCH_LOG_ERROR, st, path,
		               "%s is damaged (%lld bytes, not a version %u state file of that "
		               "size); fix: rm %s (its counts are lost: " REARMS ")",
		               path, (long long)st->st_size, STATE_VERSION, path);
	*checked = segments;
	return 0;
}

/*
 * Gives [OFFSET, OFFSET + LEN) its blocks, extending the file. A file
 * system without fallocate() gets zeroes written, but only past the end of
 * the file: within it, another process may count already. Callers hold
 * the file's lock when the file is in use.
 */
int wrench__state_reserve(int fd, size_t offset, size_t len)
{
	static const char zeroes[16384];
	struct stat st;

	if (fallocate(fd, 0, (off_t)offset, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	for (size_t at = (size_t)st.st_size > offset ? (size_t)st.st_size : offset;
	     at < offset + len;) {
		size_t n = offset + len - at < sizeof(zeroes) ? offset + len - at : sizeof(zeroes);
		ssize_t put = pwrite(fd, zeroes, n, (off_t)at);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return put < 0 ? -errno : -EIO;
		at += (size_t)put;
	}
	return 0;
}

/* Builds a complete state file of one segment under a temporary name and
 * renames it into place, unless another process was first: then its file
 * is used. */
static int create_state_file(int sdfd, const struct wrench__state_where *w, const char *name,
                             const char *path, struct wrench__problem *why)
{
	char tmp[32];
	struct state_header h = {.magic = STATE_MAGIC,
	                         .version = STATE_VERSION,
	                         .window_slots = WINDOW_SLOTS,
	                         .shards = WRENCH__SHARDS,
	                         .first_windows = FIRST_WINDOWS,
	                         .max_segments = MAX_SEGMENTS};
	int fd = -1;

	atomic_init(&h.segments, 1);
	for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
		snprintf(tmp, sizeof(tmp), ".#state.%08x", arc4random());
		fd = openat(sdfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return cannot(why, -errno, w, "create", path);
	int rc = 0;
	if (fchmod(fd, 0600) < 0 || (w->chown && fchown(fd, w->owner, w->group) < 0))
		rc = -errno;
	if (rc == 0)
		rc = wrench__state_reserve(fd, 0, state_size(1));
	if (rc == 0 && pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
		rc = -errno;
	if (rc == 0 && renameat2(sdfd, tmp, sdfd, name, RENAME_NOREPLACE) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		unlinkat(sdfd, tmp, 0);
	if (rc == -EEXIST)
		return 0; /* another process created it first: use theirs */
	return rc < 0 ? cannot(why, rc, w, "create", path) : 0;
}

/*
 * Where state files are mapped, so that the wrench command can tell a
 * SIGBUS from a state file cut short under it (its owner truncated it)
 * from any other: a few slots of plain atomics, read from a signal
 * handler. A process with more mappings at once leaves the rest out;
 * the command has one or two.
 */
#define MAPS_KNOWN 8
static _Atomic uintptr_t maps_known[MAPS_KNOWN];

static void map_known(const void *base)
{
	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t free_slot = 0;
		if (atomic_compare_exchange_strong(&maps_known[i], &free_slot, (uintptr_t)base))
			return;
	}
}

static void map_forgotten(const void *base)
{
	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t known = (uintptr_t)base;
		if (atomic_compare_exchange_strong(&maps_known[i], &known, 0))
			return;
	}
}

bool wrench__state_maps(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;

	for (size_t i = 0; i < MAPS_KNOWN; i++) {
		uintptr_t base = atomic_load(&maps_known[i]);
		if (base && a >= base && a - base < STATE_MAP_SIZE)
			return true;
	}
	return false;
}

/* Maps the checked file FD, of CHECKED segments, of the agent UID, and
 * closes it: the mapping outlives it, no descriptor stays open, and none
 * can leak to a child. */
static int map_file(int fd, const struct stat *st, unsigned checked, uid_t uid, const char *path,
                    struct state_map **out, struct wrench__problem *why)
{
	/* The largest size the file may reach, once: segments published
	 * later are then in every process's mapping already. Only published
	 * segments, within the file, are ever touched. */
	void *base = mmap(NULL, STATE_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int err = errno;
	struct state_map *map = base != MAP_FAILED ? malloc(sizeof(*map)) : NULL;

	close(fd);
	if (!map) {
		if (base != MAP_FAILED)
			munmap(base, STATE_MAP_SIZE);
		return problem(why, base == MAP_FAILED ? -err : -ENOMEM, WRENCH_LOG_WARN, NULL,
		               path,
		               "cannot map %s: %s; fix: none needed: a passing shortage, tried "
		               "again shortly",
		               path, strerror(base == MAP_FAILED ? err : ENOMEM));
	}
	atomic_init(&map->refs, 1);
	map->base = base;
	map->header = base;
	map->dev = st->st_dev;
	map->ino = st->st_ino;
	map->uid = uid;
	atomic_init(&map->verified, checked);
	map_known(base);
	*out = map;
	return 0;
}

static void state_file_name(uid_t uid, char *buf, size_t len)
{
	snprintf(buf, len, STATE_FILE_NAME "%u", (unsigned)uid);
}

static int open_state_file(int sdfd, const char *name)
{
	return openat(sdfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

/* Opens, checks and maps the state file NAME of the state directory SDFD
 * (PATH for messages), creating it when W allows. */
static int map_state_file(int sdfd, const struct wrench__state_where *w, const char *name,
                          const char *path, struct state_map *reuse, struct state_map **out,
                          struct wrench__problem *why)
{
	struct stat st;
	int fd = open_state_file(sdfd, name);

	if (fd < 0 && errno == ENOENT && w->create) {
		int rc = create_state_file(sdfd, w, name, path, why);
		if (rc < 0)
			return rc;
		fd = open_state_file(sdfd, name);
	}
	if (fd < 0 && errno == ENOENT)
		return problem(why, -ENOENT, WRENCH_LOG_DEBUG, NULL, path, "%s does not exist",
		               path);
	if (fd < 0 && (errno == ELOOP || errno == ENXIO || errno == EISDIR))
		return problem(why, -errno, WRENCH_LOG_ERROR, NULL, path,
		               "%s is not a regular file; fix: rm -r %s (it holds no counts)", path,
		               path);
	if (fd < 0)
		return cannot(why, -errno, w, "open", path);
	unsigned checked = 0;
	int rc = check_state_file(fd, w, path, &st, &checked, why);
	if (rc == 0 && reuse && reuse->dev == st.st_dev && reuse->ino == st.st_ino &&
	    reuse->uid == agent_uid(w)) {
		wrench__map_get(reuse);
		*out = reuse;
		close(fd);
		return 0;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return map_file(fd, &st, checked, agent_uid(w), path, out, why);
}

int wrench__map_open(const struct wrench__state_where *w, struct state_map *reuse,
                     struct state_map **out, struct wrench__problem *why)
{
	char dir_path[PATH_MAX + 32], path[PATH_MAX + 64], name[32];

	state_dir_path(w, dir_path, sizeof(dir_path));
	state_file_name(agent_uid(w), name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir_path, name);
	*out = NULL;
	int sdfd = open_state_dir(w, dir_path, false, why);
	if (sdfd < 0)
		return sdfd;
	int rc = map_state_file(sdfd, w, name, path, reuse, out, why);
	close(sdfd);
	return rc;
}

void wrench__map_get(struct state_map *map)
{
	atomic_fetch_add(&map->refs, 1);
}

void wrench__map_put(struct state_map *map)
{
	if (map && atomic_fetch_sub(&map->refs, 1) == 1) {
		map_forgotten(map->base);
		munmap(map->base, STATE_MAP_SIZE);
		free(map);
	}
}

/* The mapped file, opened again through the trigger directory DIRFD to
 * grow it, if the name still leads to it. */
static int reopen(const struct state_map *map, int dirfd)
{
	char name[32];
	struct stat st;
	int sdfd = openat(dirfd, WRENCH_STATE_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (sdfd < 0)
		return -errno;
	state_file_name(map->uid, name, sizeof(name));
	int fd = open_state_file(sdfd, name);
	int err = errno;
	close(sdfd);
	if (fd < 0)
		return -err;
	if (fstat(fd, &st) < 0 || st.st_dev != map->dev || st.st_ino != map->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/*
 * Reserves segment K and publishes it, holding the file's lock (each open
 * has its own, so it also keeps threads apart): without fallocate() the
 * zeroes written must not land on counts. Never waits: a grower elsewhere
 * means the segment comes shortly (-EAGAIN, a shortage that is tried
 * again), and nothing can hang a call on a lock.
 */
/* Raises what the map knows to lie within the file to VERIFIED. */
static void verified_up_to(struct state_map *map, unsigned verified)
{
	unsigned seen = atomic_load(&map->verified);
	while (seen < verified && !atomic_compare_exchange_weak(&map->verified, &seen, verified))
		;
}

/* How many of the PUBLISHED segments the file of FD holds. */
static unsigned segments_held(int fd, unsigned published)
{
	struct stat st;
	unsigned held = 0;

	if (fstat(fd, &st) == 0)
		while (held < published && (size_t)st.st_size >= state_segment_offset(held + 1))
			held++;
	return held;
}

int wrench__map_grow(struct state_map *map, int dirfd, unsigned k)
{
	if (k >= MAX_SEGMENTS)
		return -ENOSPC;
	if (dirfd < 0)
		return -EAGAIN;
	int fd = reopen(map, dirfd);
	if (fd < 0)
		return fd;
	int rc = flock(fd, LOCK_EX | LOCK_NB) < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : 0;
	unsigned published = state_segments(map);
	if (rc == 0 && published == k) {
		size_t windows = state_segment_windows(k);
		rc = wrench__state_reserve(fd, state_segment_offset(k), windows * WINDOW_BYTES);
		if (rc == 0) {
			atomic_store_explicit(&map->header->segments, k + 1, memory_order_release);
			verified_up_to(map, k + 1);
		}
	} else if (rc == 0) {
		/* Published by another process: there if the file holds it;
		 * else a number written without growing the file. */
		unsigned held = segments_held(fd, published);
		verified_up_to(map, held);
		rc = held > k ? 0 : -EBADMSG;
	}
	close(fd); /* and with it the lock */
	return rc;
}

unsigned wrench__map_segments(struct state_map *map, int dirfd)
{
	unsigned published = state_segments(map);
	unsigned verified = atomic_load(&map->verified);

	if (published <= verified || dirfd < 0)
		return published < verified ? published : verified;
	int fd = reopen(map, dirfd);
	if (fd < 0)
		return verified;
	verified_up_to(map, segments_held(fd, published));
	close(fd);
	verified = atomic_load(&map->verified);
	return published < verified ? published : verified;
}
