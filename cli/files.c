/*
 * The trigger directory on disk: opening and creating it, reading a file
 * to rewrite it, and replacing a file so that an agent never sees half of
 * it or a wrong mode: the new version is complete, 0600 and fsync'ed
 * before it is renamed over the old one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define TRIGGER_MODE 0600
#define DIR_MODE     0700
/* Directories created above the trigger directory, like /var/lib/juju. */
#define PARENT_MODE 0755

void note(const char *fmt, ...)
{
	va_list ap;

	fputs("wrench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *trigger_path(const struct options *o, const char *name, char *buf, size_t len)
{
	size_t dlen = strlen(o->dir);
	snprintf(buf, len, "%s%s%s", o->dir, dlen && o->dir[dlen - 1] == '/' ? "" : "/", name);
	return buf;
}

/* mkdir -p, with the trigger directory itself private to its owner. */
static int create_dir(const struct options *o)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", o->dir);
	for (char *p = path + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, last ? DIR_MODE : PARENT_MODE) < 0 && errno != EEXIST)
			return -errno;
		if (last)
			break;
		*p = '/';
	}
	/* mkdir() is subject to the umask; the mode must not be. */
	if (chmod(path, DIR_MODE) < 0)
		return -errno;
	note("created %s (mode 0%o)", o->dir, DIR_MODE);
	return 0;
}

int open_trigger_dir(const struct options *o, bool create)
{
	int fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		int rc = create_dir(o);
		if (rc < 0) {
			note("cannot create %s: %s", o->dir, strerror(-rc));
			return rc;
		}
		fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		int err = errno;
		if (err != ENOENT)
			note("cannot open %s: %s", o->dir, strerror(err));
		return -err;
	}
	/* --owner makes the directory the agent's, existing or not. */
	if (create && o->has_owner && fchown(fd, o->owner_uid, o->owner_gid) < 0) {
		int err = errno;
		note("cannot chown %s: %s", o->dir, strerror(err));
		close(fd);
		return -err;
	}
	/* Two wrench commands editing one file would lose an edit. */
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	return fd;
}

int open_plain_dir(const struct options *o)
{
	int fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int read_all(int fd, struct contents *c, size_t size)
{
	c->data = malloc(size + 1);
	if (!c->data)
		return -ENOMEM;
	while (c->len <= size) {
		ssize_t n = read(fd, c->data + c->len, size + 1 - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		c->len += (size_t)n;
	}
	return 0;
}

int read_for_rewrite(int dirfd, const char *path, const char *name, struct contents *c)
{
	struct stat st;

	memset(c, 0, sizeof(*c));
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 && errno == ELOOP) {
		note("%s is a symbolic link; not following it: remove it first (wrench unset %s)",
		     path, name);
		return EXIT_USAGE;
	}
	if (fd < 0) {
		note("cannot open %s: %s; remove it first (wrench unset %s)", path, strerror(errno),
		     name);
		return EXIT_USAGE;
	}
	int rc = EXIT_USAGE;
	if (fstat(fd, &st) < 0)
		note("cannot stat %s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		note("%s is not a regular file; remove it first (wrench unset %s)", path, name);
	else if (st.st_size > WRENCH_MAX_FILE_SIZE)
		note("%s is %lld bytes, more than the %d a trigger file may have; not rewriting it",
		     path, (long long)st.st_size, WRENCH_MAX_FILE_SIZE);
	else if (read_all(fd, c, (size_t)st.st_size) < 0)
		note("cannot read %s: %s", path, strerror(errno));
	else if (c->len > (size_t)st.st_size || memchr(c->data, '\0', c->len))
		note("%s changed while it was read, or holds NUL bytes; not rewriting it", path);
	else
		rc = 0;
	c->uid = st.st_uid;
	c->gid = st.st_gid;
	close(fd);
	if (rc != 0) {
		free(c->data);
		c->data = NULL;
	}
	return rc;
}

/* Creates a fresh temporary file next to the trigger files. */
static int create_temporary(int dirfd, char *name, size_t len)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		snprintf(name, len, ".#wrench.%08x", arc4random());
		int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		                TRIGGER_MODE);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Mode and owner first, contents next, then to disk: once renamed, the
 * file is complete and right whenever an agent opens it. */
static int fill_temporary(int fd, const struct options *o, const char *data, size_t len,
                          const struct contents *old)
{
	if (fchmod(fd, TRIGGER_MODE) < 0)
		return -errno;
	if (o->has_owner && fchown(fd, o->owner_uid, o->owner_gid) < 0)
		return -errno;
	/* Root rewriting another user's file keeps it theirs. */
	if (!o->has_owner && old->data && geteuid() == 0 && fchown(fd, old->uid, old->gid) < 0)
		return -errno;
	int rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	return rc;
}

int replace_file(int dirfd, const struct options *o, const char *name, const char *data, size_t len,
                 const struct contents *old)
{
	char tmp[32];
	int fd = create_temporary(dirfd, tmp, sizeof(tmp));

	if (fd < 0)
		return fd;
	int rc = fill_temporary(fd, o, data, len, old);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	/* The rename itself must survive a crash too. */
	return fsync(dirfd) < 0 ? -errno : 0;
}

int judge_dir(const struct options *o, struct wrench__trust *t)
{
	t->for_uid = o->has_owner;
	t->uid = o->owner_uid;
	int fd = wrench__trust_open_dir(o->dir, t);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int judge_file(const struct options *o, int dirfd, const char *name, struct wrench__trust *t,
               struct wrench__file *file)
{
	char path[PATH_MAX + NAME_MAX + 2];

	t->for_uid = o->has_owner;
	t->uid = o->owner_uid;
	return wrench__trust_read_file(dirfd, name, trigger_path(o, name, path, sizeof(path)), file,
	                               t);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void free_names(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

char **list_names(int dirfd)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	char **names = calloc(1, sizeof(*names));
	size_t n = 0;

	if (!dir || !names) {
		if (fd >= 0 && !dir)
			close(fd);
		free(names);
		return NULL;
	}
	rewinddir(dir);
	for (struct dirent *e; (e = readdir(dir)) != NULL;) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char **more = realloc(names, (n + 2) * sizeof(*names));
		if (!more || !(more[n] = strdup(e->d_name))) {
			names = more ? more : names;
			names[n] = NULL;
			free_names(names);
			closedir(dir);
			return NULL;
		}
		names = more;
		names[++n] = NULL;
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), by_name);
	return names;
}
