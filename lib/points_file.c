/*
 * The file of points reached on disk (layout in points_file.h): reaching
 * it beside the counters, checking it as they are checked, creating it
 * complete, mapping it for the library, and reading a copy of it for the
 * wrench command.
 *
 * The file is made at its full size under a temporary name, every block
 * reserved, and renamed into place with RENAME_NOREPLACE: no store to the
 * mapping can raise SIGBUS on a full disk, and two processes starting at
 * once share the winner's file. Its owner can write anything in it, so a
 * reader trusts nothing it holds: wrench__points_slot_names() checks every
 * length and name before one is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "points_file.h"

/* What removing the file costs, said in each fix that removes it. */
#define LOSES "it only lists the points reached so far, and programs record them again"

__attribute__((format(printf, 5, 6))) static int problem(struct wrench__problem *why, int err,
                                                         enum wrench_log_level level,
                                                         const char *path, const char *fmt, ...)
{
	va_list ap;

	why->level = level;
	why->path = NULL;
	memset(&why->where, 0, sizeof(why->where));
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
	wrench__quote_fix(why->message, sizeof(why->message), path);
	return err < 0 ? err : -EIO;
}

int wrench__points_check(int fd, uid_t uid, const char *path, struct wrench__problem *why)
{
	struct points_header h;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return problem(why, -errno, WRENCH_LOG_WARN, path, "cannot stat %s: %s", path,
		               strerror(errno));
	if (!S_ISREG(st.st_mode))
		return problem(why, -EPERM, WRENCH_LOG_ERROR, path,
		               "%s is not a regular file; fix: rm -r %s (" LOSES ")", path, path);
	if (st.st_nlink != 1)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, path,
		               "%s has %lu links, so another name can reach it; fix: rm %s (" LOSES
		               ")",
		               path, (unsigned long)st.st_nlink, path);
	unsigned broken = wrench__owner_mode_broken(&st, uid, false);
	if (broken & WRENCH__BAD_OWNER)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, path,
		               "%s is owned by uid %u, not by root or uid %u, so it cannot be "
		               "trusted; fix: rm %s (" LOSES ")",
		               path, (unsigned)st.st_uid, (unsigned)uid, path);
	if (broken & WRENCH__BAD_MODE)
		return problem(why, -EPERM, WRENCH_LOG_ERROR, path,
		               "%s is writable by group or others (mode %04o); fix: chmod go-w %s",
		               path, (unsigned)(st.st_mode & 07777), path);
	ssize_t got = pread(fd, &h, sizeof(h), 0);
	if (got != sizeof(h) || h.magic != POINTS_MAGIC || h.version != POINTS_VERSION ||
	    h.slots != POINTS_SLOTS || h.slot_bytes != POINTS_SLOT_BYTES ||
	    (size_t)st.st_size != POINTS_FILE_SIZE)
		return problem(why, -EBADMSG, WRENCH_LOG_ERROR, path,
		               "%s is damaged (%lld bytes, not a version %u file of points "
		               "reached); fix: rm %s (" LOSES ")",
		               path, (long long)st.st_size, POINTS_VERSION, path);
	return 0;
}

static uid_t agent_uid(const struct wrench__state_where *w)
{
	return w->for_uid ? w->uid : geteuid();
}

/* Builds the whole file under a temporary name and renames it into place,
 * unless another process was first: then that one is used. */
static int create_points_file(int sdfd, const struct wrench__state_where *w, const char *name,
                              const char *path, struct wrench__problem *why)
{
	struct points_header h = {.magic = POINTS_MAGIC,
	                          .version = POINTS_VERSION,
	                          .slots = POINTS_SLOTS,
	                          .slot_bytes = POINTS_SLOT_BYTES};
	char tmp[32];
	int fd = -1;

	for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
		snprintf(tmp, sizeof(tmp), ".#points.%08x", arc4random());
		fd = openat(sdfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return problem(why, -errno, WRENCH_LOG_INFO, path, "cannot create %s: %s", path,
		               strerror(errno));
	int rc = 0;
	if (fchmod(fd, 0600) < 0 || (w->chown && fchown(fd, w->owner, w->group) < 0))
		rc = -errno;
	if (rc == 0)
		rc = wrench__state_reserve(fd, 0, POINTS_FILE_SIZE);
	if (rc == 0 && pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
		rc = -errno;
	if (rc == 0 && renameat2(sdfd, tmp, sdfd, name, RENAME_NOREPLACE) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		unlinkat(sdfd, tmp, 0);
	if (rc == -EEXIST)
		return 0;
	return rc < 0 ? problem(why, rc, WRENCH_LOG_INFO, path, "cannot create %s: %s", path,
	                        strerror(-rc))
	              : 0;
}

static int open_points_file(int sdfd, const char *name, int flags)
{
	return openat(sdfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

void wrench__points_file_name(uid_t uid, char *buf, size_t len)
{
	snprintf(buf, len, POINTS_FILE_NAME "%u", (unsigned)uid);
}

int wrench__points_open(const struct wrench__state_where *w, struct stat *st,
                        struct wrench__problem *why)
{
	char dir_path[PATH_MAX + 32], path[PATH_MAX + 64], name[32];

	int sdfd = wrench__state_dir_reach(w, dir_path, sizeof(dir_path), why);
	if (sdfd < 0)
		return sdfd;
	wrench__points_file_name(agent_uid(w), name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir_path, name);
	int fd = open_points_file(sdfd, name, O_RDWR);
	int rc = fd < 0 ? -errno : 0;
	if (rc == -ENOENT && w->create) {
		rc = create_points_file(sdfd, w, name, path, why);
		fd = rc == 0 ? open_points_file(sdfd, name, O_RDWR) : -1;
		if (rc == 0 && fd < 0)
			rc = problem(why, -errno, WRENCH_LOG_INFO, path, "cannot open %s: %s", path,
			             strerror(errno));
	} else if (rc == -ENOENT) {
		problem(why, rc, WRENCH_LOG_DEBUG, path, "%s does not exist", path);
	} else if (rc < 0) {
		problem(why, rc, WRENCH_LOG_INFO, path, "cannot open %s: %s", path, strerror(-rc));
	}
	close(sdfd);
	if (fd < 0)
		return rc;
	rc = wrench__points_check(fd, agent_uid(w), path, why);
	if (rc == 0 && fstat(fd, st) < 0)
		rc = problem(why, -errno, WRENCH_LOG_INFO, path, "cannot stat %s: %s", path,
		             strerror(errno));
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

char *wrench__points_map(int fd, struct wrench__problem *why)
{
	char *base = mmap(NULL, POINTS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (base != MAP_FAILED)
		return base;
	problem(why, -errno, WRENCH_LOG_INFO, "", "cannot map the file of points reached: %s",
	        strerror(errno));
	return NULL;
}

int wrench__points_read(int sdfd, const char *name, uid_t uid, const char *path, char **data,
                        struct wrench__problem *why)
{
	*data = NULL;
	int fd = open_points_file(sdfd, name, O_RDONLY);
	if (fd < 0)
		return problem(why, -errno, errno == ENOENT ? WRENCH_LOG_DEBUG : WRENCH_LOG_ERROR,
		               path, "cannot open %s: %s", path, strerror(errno));
	int rc = wrench__points_check(fd, uid, path, why);
	char *copy = rc == 0 ? malloc(POINTS_FILE_SIZE) : NULL;
	if (rc == 0 && !copy)
		rc = problem(why, -ENOMEM, WRENCH_LOG_ERROR, path, "out of memory reading %s",
		             path);
	for (size_t at = 0; rc == 0 && at < POINTS_FILE_SIZE;) {
		ssize_t got = pread(fd, copy + at, POINTS_FILE_SIZE - at, (off_t)at);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			rc = problem(why, got < 0 ? -errno : -EIO, WRENCH_LOG_ERROR, path,
			             "cannot read %s: %s", path,
			             got < 0 ? strerror(errno) : "cut short");
		at += got > 0 ? (size_t)got : 0;
	}
	close(fd);
	if (rc < 0)
		free(copy);
	else
		*data = copy;
	return rc;
}

/* The name of LEN bytes at TEXT + *AT, ending in a NUL within the slot. */
static const char *slot_name(const struct points_slot *s, size_t *at, uint16_t len)
{
	const char *name = s->names + *at;

	if (*at + (size_t)len + 1 > sizeof(s->names) || name[len] != '\0' ||
	    strnlen(name, len) != len)
		return NULL;
	*at += (size_t)len + 1;
	return name;
}

bool wrench__points_slot_names(const struct points_slot *s, struct wrench__reached *out)
{
	size_t at = 0;

	if (!atomic_load_explicit(&s->key, memory_order_relaxed) ||
	    !atomic_load_explicit(&s->ready, memory_order_acquire))
		return false;
	out->category = slot_name(s, &at, s->category_len);
	out->feature = out->category ? slot_name(s, &at, s->feature_len) : NULL;
	out->program = out->feature ? slot_name(s, &at, s->program_len) : NULL;
	if (!out->program || !wrench__category_is_valid(out->category) ||
	    wrench__category_problem(out->category) || wrench__feature_problem(out->feature))
		return false;
	out->first_ms = atomic_load_explicit(&s->first_ms, memory_order_relaxed);
	out->last_ms = atomic_load_explicit(&s->last_ms, memory_order_relaxed);
	out->last_pid = atomic_load_explicit(&s->last_pid, memory_order_relaxed);
	return true;
}
