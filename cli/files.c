/*
 * The trigger directory on disk: opening and creating it, reading a file
 * to rewrite it, and replacing a file so that an agent never sees half of
 * it or a wrong mode: the new version is complete, with its mode and owner,
 * and fsync'ed before it is renamed over the old one. Every path is walked
 * by the library's trust checks, with descriptors: the command has no
 * other way to reach a file, so it can neither be redirected by a link nor
 * copy what the agent would refuse.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define TRIGGER_MODE 0600
/* A file written with --owner into a shared directory (wrench(1)). */
#define SHARED_MODE 0644
#define DIR_MODE    0700
/* Directories created above the trigger directory, like /var/lib/juju. */
#define PARENT_MODE 0755

void note(const char *fmt, ...)
{
	va_list ap;
	char *message = NULL;

	va_start(ap, fmt);
	int n = vasprintf(&message, fmt, ap);
	va_end(ap);
	fputs("wrench: ", stderr);
	if (n < 0)
		fputs("out of memory", stderr);
	else
		print_escaped(stderr, message, (size_t)n);
	fputc('\n', stderr);
	free(message);
}

const char *trigger_path(const struct options *o, const char *name, char *buf, size_t len)
{
	size_t dlen = strlen(o->dir);
	snprintf(buf, len, "%s%s%s", o->dir, dlen && o->dir[dlen - 1] == '/' ? "" : "/", name);
	return buf;
}

/* The fix of a permission that only root has: "sudo" and this command
 * line; NULL when root would not get further either. */
static char *root_fix(const struct options *o, int err)
{
	return err == -EACCES && geteuid() != 0 ? sudo_command(o) : NULL;
}

/* Says why nothing may be changed: MESSAGE, the library's, with its fix,
 * or the root_fix when it has none. */
static void refuse_change(const struct options *o, int err, const char *message)
{
	char *sudo = strstr(message, "; fix: ") ? NULL : root_fix(o, err);

	note("nothing was changed: %s%s%s", message, sudo ? "; fix: this needs root: " : "",
	     sudo ? sudo : "");
	free(sudo);
}

void cannot(const struct options *o, int err, const char *what, const char *path)
{
	char *sudo = root_fix(o, err);

	note("cannot %s %s: %s%s%s", what, path, strerror(-err),
	     sudo ? "; fix: this needs root: " : "", sudo ? sudo : "");
	free(sudo);
}

int open_target(const struct options *o, bool create, struct target *target)
{
	struct wrench__trust t = {.for_uid = o->has_owner, .uid = o->owner_uid};
	struct wrench__make_dir make = {
	        .create = create, .parent_mode = PARENT_MODE, .mode = DIR_MODE};
	struct stat st;

	target->fd = -1;
	target->state_fd = -1;
	target->lock_fd = -1;
	/* Every ancestor is checked, for the agent, before anything is
	 * created under it: a path through a link or a directory that
	 * others can write is refused before anything is written. */
	int walked = wrench__trust_make_dir(o->dir, &make, &t);
	if (walked == -ENOENT && !create)
		return -ENOENT;
	if (walked < 0) {
		refuse_change(o, walked, t.problems ? t.first.message : strerror(-walked));
		return EXIT_USAGE;
	}
	int fd = openat(walked, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = errno;
	close(walked);
	if (fd < 0) {
		char message[PATH_MAX + 64];
		snprintf(message, sizeof(message), "cannot open %s: %s", o->dir, strerror(err));
		refuse_change(o, -err, message);
		return EXIT_USAGE;
	}
	if (make.created)
		note("created %s (mode 0%o)", o->dir, DIR_MODE);
	/* --owner gives the agent a directory made for it, never one that
	 * was there: other agents may use it, or another user made it. */
	if ((make.created && o->has_owner && fchown(fd, o->owner_uid, o->owner_gid) < 0) ||
	    fstat(fd, &st) < 0) {
		note("cannot chown %s: %s", o->dir, strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	/* The state directory is opened up for a non-root agent that does
	 * not own it: what --owner asks for. */
	bool open_up = o->has_owner && o->owner_uid != 0 && st.st_uid != o->owner_uid;
	if (lock_dir(o, fd, open_up, target) != 0) {
		close(fd);
		return EXIT_USAGE;
	}
	target->fd = fd;
	target->created = make.created;
	target->dir_uid = st.st_uid;
	return 0;
}

void close_target(struct target *target)
{
	if (target->fd >= 0)
		close(target->fd);
	if (target->state_fd >= 0)
		close(target->state_fd);
	if (target->lock_fd >= 0)
		close(target->lock_fd); /* and with it the lock */
	target->fd = target->state_fd = target->lock_fd = -1;
}

/* The owner of the file being read: the checks' descriptor tells it. */
static void remember_owner(int fd, enum wrench__opened what, const char *next, void *ctx)
{
	struct stat st;

	(void)next;
	if (what == WRENCH__FILE && fstat(fd, &st) == 0)
		*(uid_t *)ctx = st.st_uid;
}

/* The length of the library's message about PATH without its fix, which
 * may be wrong here: making an untrusted file trusted would keep what
 * another user wrote in it. The fix starts past PATH, which may hold the
 * same words. */
static int without_fix(const char *message, const char *path)
{
	const char *named = strstr(message, path);
	const char *fix = strstr(named ? named + strlen(path) : message, "; fix: ");
	return fix ? (int)(fix - message) : (int)strlen(message);
}

int read_for_rewrite(const struct options *o, int dirfd, const char *name, struct contents *c)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct wrench__trust t = {.opened = remember_owner, .opened_ctx = &c->uid};
	struct wrench__file file;

	memset(c, 0, sizeof(*c));
	trigger_path(o, name, path, sizeof(path));
	int rc = judge_file(o, dirfd, name, &t, &file);
	if (rc == -ENOENT) {
		free(file.data);
		return 0;
	}
	if (rc < 0) {
		free(file.data);
		const char *message = t.problems ? t.first.message : strerror(-rc);
		if (rc == -EACCES && geteuid() != 0) {
			refuse_change(o, rc, message);
			return EXIT_USAGE;
		}
		char *word = quoted(path);
		note("%.*s; the agent would ignore this file, so its lines are not carried over "
		     "into a file it trusts, and nothing was changed; fix: look at it, remove it "
		     "(rm -- %s) and run this command again",
		     without_fix(message, path), message, word ? word : "FILE");
		free(word);
		return EXIT_USAGE;
	}
	c->data = file.data;
	c->len = file.len;
	return 0;
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

/* Who owns a new version of a file, and its mode (wrench(1), OWNERS):
 * --owner's user when the directory is the agent's or the file was, else
 * root with mode 0644, which every agent trusts and may read; without
 * --owner, the caller. */
static void new_owner(const struct options *o, const struct target *target,
                      const struct contents *old, uid_t *uid, gid_t *gid, mode_t *mode)
{
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	*mode = TRIGGER_MODE;
	if (!o->has_owner)
		return;
	if (target->created || target->dir_uid == o->owner_uid ||
	    (old->data && old->uid == o->owner_uid)) {
		*uid = o->owner_uid;
		*gid = o->owner_gid;
	} else {
		*mode = SHARED_MODE;
	}
}

/* Mode and owner first, contents next, then to disk: once renamed, the
 * file is complete and right whenever an agent opens it. */
static int fill_temporary(int fd, const struct options *o, const struct target *target,
                          const char *data, size_t len, const struct contents *old)
{
	uid_t uid;
	gid_t gid;
	mode_t mode;

	new_owner(o, target, old, &uid, &gid, &mode);
	if (fchmod(fd, mode) < 0)
		return -errno;
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
		return -errno;
	int rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	return rc;
}

int replace_file(int dirfd, const struct options *o, const struct target *target, const char *name,
                 const char *data, size_t len, const struct contents *old)
{
	char tmp[32];
	int fd = create_temporary(dirfd, tmp, sizeof(tmp));

	if (fd < 0)
		return fd;
	int rc = fill_temporary(fd, o, target, data, len, old);
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

int open_checked_dir(const struct options *o, struct wrench__trust *t, bool list)
{
	/* A lint gets the directory despite owner or mode problems, to show
	 * what the agent ignores in it; never through a link. */
	struct wrench__make_dir walk = {.keep_untrusted = t->report != NULL};

	t->for_uid = o->has_owner;
	t->uid = o->owner_uid;
	int fd = wrench__trust_make_dir(o->dir, &walk, t);
	if (fd < 0 || !list)
		return fd;
	int listed = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = errno;
	close(fd);
	return listed < 0 ? -err : listed;
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

bool is_temporary(const char *name)
{
	return strncmp(name, ".#", 2) == 0;
}

bool is_category(const char *name)
{
	return !is_temporary(name) && wrench__category_is_valid(name);
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
	/* A listing cut short by an error would look like files removed, and
	 * their counters would go: it is no listing at all. */
	errno = 0;
	for (struct dirent *e; (e = readdir(dir)) != NULL; errno = 0) {
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
	if (errno) {
		free_names(names);
		closedir(dir);
		return NULL;
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), by_name);
	return names;
}
