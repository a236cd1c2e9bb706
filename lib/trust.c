/*
 * The trust rules (docs/security.md): which trigger files are honoured.
 *
 * A trigger file makes a root agent fail or die, so only a user who could
 * already do that may write one: root, or the agent's own user. As with
 * OpenSSH's StrictModes, that holds only if nobody else can write the file,
 * the directory or any ancestor, so all of them are checked. The path is
 * walked one component at a time with descriptors, from "/", never
 * following a symlink, and every check is an fstat() of the descriptor
 * that is then used: nothing can be swapped between a check and its use.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Directory walks: O_PATH needs only search permission on ancestors. */
#define DIR_OPEN_FLAGS (O_PATH | O_NOFOLLOW | O_CLOEXEC)
/* A FIFO must not block the agent; a tty must not become its terminal. */
#define FILE_OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

static void identity_of(const struct stat *st, struct wrench__identity *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime_sec = st->st_mtim.tv_sec;
	id->mtime_nsec = st->st_mtim.tv_nsec;
	id->ctime_sec = st->st_ctim.tv_sec;
	id->ctime_nsec = st->st_ctim.tv_nsec;
}

__attribute__((format(printf, 5, 6))) static int refuse(struct wrench__problem *why, int err,
                                                        enum wrench_log_level level,
                                                        const struct stat *st, const char *fmt, ...)
{
	va_list ap;

	why->level = level;
	if (st)
		identity_of(st, &why->where);
	else
		memset(&why->where, 0, sizeof(why->where));
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
	return err;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "a FIFO";
	case S_IFSOCK:
		return "a socket";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFDIR:
		return "a directory";
	case S_IFLNK:
		return "a symbolic link";
	case S_IFREG:
		return "a regular file";
	default:
		return "of an unknown type";
	}
}

/* Owner and mode rules shared by the directory, its ancestors and files. */
static int check_owner_and_mode(const struct stat *st, const char *path, bool sticky_ok,
                                struct wrench__problem *why)
{
	uid_t euid = geteuid();

	if (st->st_uid != 0 && st->st_uid != euid && euid == 0)
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, st,
		              "%s is owned by uid %u, not by root; fix: chown root %s", path,
		              (unsigned)st->st_uid, path);
	if (st->st_uid != 0 && st->st_uid != euid)
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, st,
		              "%s is owned by uid %u, not by root or uid %u (this process); "
		              "fix: chown root %s",
		              path, (unsigned)st->st_uid, (unsigned)euid, path);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_ok && (st->st_mode & S_ISVTX)))
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, st,
		              "%s is writable by group or others (mode %04o); fix: chmod go-w %s",
		              path, (unsigned)(st->st_mode & 07777), path);
	return 0;
}

/* Checks one step of the walk, opened with DIR_OPEN_FLAGS. */
static int check_directory(int fd, const char *path, bool is_ancestor, struct wrench__problem *why)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return refuse(why, -errno, WRENCH_LOG_ERROR, NULL, "cannot stat %s: %s", path,
		              strerror(errno));
	if (S_ISLNK(st.st_mode))
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, &st,
		              "%s is a symbolic link; the trigger directory and its ancestors "
		              "must be real directories: use the path the link points to",
		              path);
	if (!S_ISDIR(st.st_mode))
		return refuse(why, -ENOTDIR, WRENCH_LOG_ERROR, &st,
		              "%s is %s, not a directory; fix: remove it or choose another "
		              "trigger directory",
		              path, type_name(st.st_mode));
	/* The sticky bit protects others' entries in /tmp, so an ancestor
	 * may have it; the trigger directory itself must be ours alone. */
	return check_owner_and_mode(&st, path, is_ancestor, why);
}

static int open_failure(int err, const char *path, struct wrench__problem *why)
{
	if (err == ENOENT)
		return refuse(why, -ENOENT, WRENCH_LOG_DEBUG, NULL, "%s does not exist", path);
	return refuse(why, -err, WRENCH_LOG_ERROR, NULL, "cannot open %s: %s", path, strerror(err));
}

/* Skips slashes and "." components: what is left starts a real name. */
static const char *skip_separators(const char *p)
{
	while (*p == '/' || (p[0] == '.' && (p[1] == '/' || p[1] == '\0')))
		p++;
	return p;
}

int wrench__trust_open_dir(const char *path, struct wrench__problem *why)
{
	char walked[PATH_MAX];
	size_t walked_len = 0;

	if (path[0] != '/')
		return refuse(why, -EINVAL, WRENCH_LOG_ERROR, NULL,
		              "trigger directory %s is not an absolute path", path);
	int fd = open("/", DIR_OPEN_FLAGS | O_DIRECTORY);
	if (fd < 0)
		return open_failure(errno, "/", why);

	const char *p = path;
	int rc = check_directory(fd, "/", true, why);
	while (rc == 0) {
		p = skip_separators(p);
		if (*p == '\0')
			return fd;
		size_t len = strcspn(p, "/");
		if (walked_len + 1 + len >= sizeof(walked) || len > NAME_MAX) {
			rc = refuse(why, -ENAMETOOLONG, WRENCH_LOG_ERROR, NULL,
			            "trigger directory %s: path too long", path);
			break;
		}
		walked[walked_len++] = '/';
		memcpy(walked + walked_len, p, len);
		walked_len += len;
		walked[walked_len] = '\0';

		char name[NAME_MAX + 1];
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;

		int next = openat(fd, name, DIR_OPEN_FLAGS);
		if (next < 0) {
			rc = open_failure(errno, walked, why);
			break;
		}
		close(fd);
		fd = next;
		bool last = *skip_separators(p) == '\0';
		rc = check_directory(fd, walked, !last, why);
	}
	close(fd);
	return rc;
}

bool wrench__category_is_valid(const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	return len > 0 && len <= NAME_MAX && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       !strchr(name, '/');
}

/* open() refused the entry: say what it is, from a look that checks nothing. */
static int describe_unopenable(int err, int dirfd, const char *name, const char *path,
                               struct wrench__problem *why)
{
	struct stat st;

	if (err == ENOENT)
		return open_failure(err, path, why);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISLNK(st.st_mode))
			return refuse(why, -EPERM, WRENCH_LOG_ERROR, &st,
			              "%s is a symbolic link; trigger files must be regular "
			              "files: replace the link with a copy of its target",
			              path);
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, &st,
		              "%s is not a regular file (it is %s); fix: rm %s", path,
		              type_name(st.st_mode), path);
	}
	return open_failure(err, path, why);
}

/* The checks made on the opened descriptor, before anything is read. */
static int check_file(const struct stat *st, const char *path, struct wrench__problem *why)
{
	if (!S_ISREG(st->st_mode))
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, st,
		              "%s is not a regular file (it is %s); fix: rm %s", path,
		              type_name(st->st_mode), path);
	if (st->st_nlink != 1)
		return refuse(why, -EPERM, WRENCH_LOG_ERROR, st,
		              "%s has %lu hard links, so it may be changed through another "
		              "name; fix: cp %s %s.new && mv %s.new %s",
		              path, (unsigned long)st->st_nlink, path, path, path, path);
	int rc = check_owner_and_mode(st, path, false, why);
	if (rc < 0)
		return rc;
	if (st->st_size > WRENCH_MAX_FILE_SIZE)
		return refuse(why, -EFBIG, WRENCH_LOG_ERROR, st,
		              "%s is %lld bytes, more than the %d allowed; fix: shorten it", path,
		              (long long)st->st_size, WRENCH_MAX_FILE_SIZE);
	return 0;
}

/* Reads at most WRENCH_MAX_FILE_SIZE + 1 bytes: one more shows it grew. */
static int read_contents(int fd, const struct stat *st, const char *path, struct wrench__file *file,
                         struct wrench__problem *why)
{
	size_t cap = WRENCH_MAX_FILE_SIZE + 1, len = 0;
	char *data = malloc(cap);

	if (!data)
		return refuse(why, -ENOMEM, WRENCH_LOG_ERROR, st, "out of memory reading %s", path);
	while (len < cap) {
		ssize_t n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(data);
			return refuse(why, -err, WRENCH_LOG_ERROR, st, "cannot read %s: %s", path,
			              strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > WRENCH_MAX_FILE_SIZE) {
		free(data);
		return refuse(why, -EFBIG, WRENCH_LOG_ERROR, st,
		              "%s is more than the %d bytes allowed; fix: shorten it", path,
		              WRENCH_MAX_FILE_SIZE);
	}
	const char *nul = memchr(data, '\0', len);
	if (nul) {
		size_t offset = (size_t)(nul - data);
		free(data);
		return refuse(why, -EILSEQ, WRENCH_LOG_ERROR, st,
		              "%s contains a NUL byte at offset %zu; trigger files are text: "
		              "rewrite it",
		              path, offset);
	}
	file->data = data;
	file->len = len;
	identity_of(st, &file->id);
	return 0;
}

int wrench__trust_read_file(int dirfd, const char *dirpath, const char *name,
                            struct wrench__file *file, struct wrench__problem *why)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s", dirpath,
	         dirpath[strlen(dirpath) - 1] == '/' ? "" : "/", name);
	int fd = openat(dirfd, name, FILE_OPEN_FLAGS);
	if (fd < 0)
		return describe_unopenable(errno, dirfd, name, path, why);
	int rc;
	if (fstat(fd, &st) < 0)
		rc = refuse(why, -errno, WRENCH_LOG_ERROR, NULL, "cannot stat %s: %s", path,
		            strerror(errno));
	else
		rc = check_file(&st, path, why);
	if (rc == 0)
		rc = read_contents(fd, &st, path, file, why);
	close(fd);
	return rc;
}
