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

/* Characters that never need quoting in a shell word. */
static bool is_plain_word(const char *s)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789/._+-,:@%=";

	return *s && strspn(s, plain) == strlen(s);
}

/* Counts every byte, writes those that fit: the size needed is known at
 * the end, as with snprintf(). */
static void put(char *buf, size_t size, size_t *n, const char *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++, (*n)++)
		if (buf && *n + 1 < size)
			buf[*n] = bytes[i];
}

size_t wrench__shell_quote(const char *s, char *buf, size_t size)
{
	bool plain = is_plain_word(s);
	size_t n = 0;

	put(buf, size, &n, "'", !plain);
	for (; *s; s++) {
		/* Inside single quotes only the quote is special: it becomes
		 * '\'' (close, an escaped quote, open again). */
		if (*s == '\'' && !plain)
			put(buf, size, &n, "'\\'", 3);
		put(buf, size, &n, s, 1);
	}
	put(buf, size, &n, "'", !plain);
	if (buf && size > 0)
		buf[n < size ? n : size - 1] = '\0';
	return n;
}

/* A fix is a command that a user pastes, or pipes to sh: PATH may hold
 * ";", "$(...)" or a newline, so each PATH in the fix part of MESSAGE
 * becomes one quoted word. A fix cut short by the size leaves its quote
 * open, which the shell refuses as a whole rather than run a part of. */
void wrench__quote_fix(char *message, size_t size, const char *path)
{
	char *fix = strstr(message, "; fix: ");
	char out[WRENCH_MAX_MESSAGE], quoted[WRENCH_MAX_MESSAGE];
	size_t plen = strlen(path), n;

	if (!fix || is_plain_word(path) || size > sizeof(out))
		return;
	fix += strlen("; fix: ");
	wrench__shell_quote(path, quoted, sizeof(quoted));
	n = (size_t)(fix - message);
	memcpy(out, message, n);
	for (const char *p = fix; *p && n + 1 < size;) {
		size_t take = plen && strncmp(p, path, plen) == 0 ? strlen(quoted) : 1;
		const char *from = take == 1 ? p : quoted;
		if (n + take >= size)
			take = size - 1 - n;
		memcpy(out + n, from, take);
		n += take;
		p += from == quoted ? plen : 1;
	}
	out[n] = '\0';
	memcpy(message, out, n + 1);
}

/* Records one broken rule of PATH: the first is kept, a lint is told of
 * each. */
__attribute__((format(printf, 6, 7))) static int refuse(struct wrench__trust *t, int err,
                                                        enum wrench_log_level level,
                                                        const struct stat *st, const char *path,
                                                        const char *fmt, ...)
{
	struct wrench__problem problem;
	va_list ap;

	problem.level = level;
	problem.path = path;
	if (st)
		identity_of(st, &problem.where);
	else
		memset(&problem.where, 0, sizeof(problem.where));
	va_start(ap, fmt);
	vsnprintf(problem.message, sizeof(problem.message), fmt, ap);
	va_end(ap);
	wrench__quote_fix(problem.message, sizeof(problem.message), path);
	if (t->report)
		t->report(&problem, t->ctx);
	if (t->problems++ == 0) {
		t->first = problem;
		t->first.path = NULL; /* PATH lives no longer than this call */
	}
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

/* Whoever may write what the agent reads could make it do anything: so
 * only root and the agent's own user, never a group or others. */
unsigned wrench__owner_mode_broken(const struct stat *st, uid_t agent, bool sticky_ok)
{
	unsigned broken = 0;

	if (st->st_uid != 0 && st->st_uid != agent)
		broken |= WRENCH__BAD_OWNER;
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_ok && (st->st_mode & S_ISVTX)))
		broken |= WRENCH__BAD_MODE;
	return broken;
}

static int refuse_owner(const struct stat *st, const char *path, uid_t agent,
                        struct wrench__trust *t)
{
	if (agent == 0)
		return refuse(t, -EPERM, WRENCH_LOG_ERROR, st, path,
		              "%s is owned by uid %u, not by root; fix: chown root %s", path,
		              (unsigned)st->st_uid, path);
	return refuse(t, -EPERM, WRENCH_LOG_ERROR, st, path,
	              "%s is owned by uid %u, not by root or uid %u (%s); fix: chown root %s", path,
	              (unsigned)st->st_uid, (unsigned)agent,
	              t->for_uid ? "the agent's" : "this process", path);
}

/* Owner and mode rules shared by the directory, its ancestors and files.
 * The library stops at the first broken rule; a lint reports both. */
static int check_owner_and_mode(const struct stat *st, const char *path, bool sticky_ok,
                                struct wrench__trust *t)
{
	uid_t agent = t->for_uid ? t->uid : geteuid();
	unsigned broken = wrench__owner_mode_broken(st, agent, sticky_ok);
	int rc = broken & WRENCH__BAD_OWNER ? refuse_owner(st, path, agent, t) : 0;

	if (rc < 0 && !t->report)
		return rc;
	if (broken & WRENCH__BAD_MODE) {
		int mode_rc = refuse(t, -EPERM, WRENCH_LOG_ERROR, st, path,
		                     "%s is writable by group or others (mode %04o); fix: chmod "
		                     "go-w %s",
		                     path, (unsigned)(st->st_mode & 07777), path);
		rc = rc < 0 ? rc : mode_rc;
	}
	return rc;
}

/* Checks one step of the walk, opened with DIR_OPEN_FLAGS. BLOCKED is set
 * when the walk cannot go on through it. */
static int check_directory(int fd, const char *path, bool is_ancestor, struct wrench__trust *t,
                           bool *blocked)
{
	struct stat st;

	*blocked = true;
	if (fstat(fd, &st) < 0)
		return refuse(t, -errno, WRENCH_LOG_ERROR, NULL, path, "cannot stat %s: %s", path,
		              strerror(errno));
	if (S_ISLNK(st.st_mode))
		return refuse(t, -ELOOP, WRENCH_LOG_ERROR, &st, path,
		              "%s is a symbolic link; the trigger directory and its ancestors "
		              "must be real directories; fix: use the real path, which "
		              "realpath -- %s prints, in WRENCH_DIR and --dir",
		              path, path);
	if (!S_ISDIR(st.st_mode))
		return refuse(t, -ENOTDIR, WRENCH_LOG_ERROR, &st, path,
		              "%s is %s, not a directory; fix: remove it or choose another "
		              "trigger directory",
		              path, type_name(st.st_mode));
	*blocked = false;
	/* The sticky bit protects others' entries in /tmp, so an ancestor
	 * may have it; the trigger directory itself must be ours alone. */
	return check_owner_and_mode(&st, path, is_ancestor, t);
}

static int open_failure(int err, const char *path, struct wrench__trust *t)
{
	if (err == ENOENT)
		return refuse(t, -ENOENT, WRENCH_LOG_DEBUG, NULL, path, "%s does not exist", path);
	return refuse(t, -err, WRENCH_LOG_ERROR, NULL, path, "cannot open %s: %s", path,
	              strerror(err));
}

/* Skips slashes and "." components: what is left starts a real name. */
static const char *skip_separators(const char *p)
{
	while (*p == '/' || (p[0] == '.' && (p[1] == '/' || p[1] == '\0')))
		p++;
	return p;
}

/* Tells T's opened hook of a step of the walk; REST is the path still to
 * walk, whose first name is what leads on from this step. */
static void tell_opened(struct wrench__trust *t, int fd, const char *rest)
{
	char next[NAME_MAX + 1];

	if (!t->opened)
		return;
	rest = skip_separators(rest);
	size_t len = strcspn(rest, "/");
	if (len == 0 || len > NAME_MAX) {
		t->opened(fd, WRENCH__DIR, NULL, t->opened_ctx);
		return;
	}
	memcpy(next, rest, len);
	next[len] = '\0';
	t->opened(fd, WRENCH__ANCESTOR, next, t->opened_ctx);
}

/* Opens NAME under the checked directory FD; with MAKE, creates it first
 * when it is missing (LAST: it is the trigger directory). The mode is set
 * with fchmod() on a descriptor, so that the umask does not count and a
 * rename of the new entry cannot redirect the change elsewhere. Returns a
 * descriptor or a negative errno, the problem in T. */
static int open_step(int fd, const char *name, const char *walked, bool last,
                     struct wrench__make_dir *make, struct wrench__trust *t)
{
	int next = openat(fd, name, DIR_OPEN_FLAGS);

	if (next >= 0 || errno != ENOENT || !make || !make->create)
		return next >= 0 ? next : open_failure(errno, walked, t);
	mode_t mode = last ? make->mode : make->parent_mode;
	if (mkdirat(fd, name, mode) < 0)
		return errno == EEXIST ? open_step(fd, name, walked, last, NULL, t)
		                       : refuse(t, -errno, WRENCH_LOG_ERROR, NULL, walked,
		                                "cannot create %s: %s", walked, strerror(errno));
	next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (next < 0 || fchmod(next, mode) < 0) {
		int err = errno;
		if (next >= 0)
			close(next);
		return refuse(t, -err, WRENCH_LOG_ERROR, NULL, walked,
		              "cannot set the mode of %s: %s", walked, strerror(err));
	}
	make->created = last;
	return next;
}

int wrench__trust_open_dir(const char *path, struct wrench__trust *t)
{
	return wrench__trust_make_dir(path, NULL, t);
}

int wrench__trust_make_dir(const char *path, struct wrench__make_dir *make, struct wrench__trust *t)
{
	char walked[PATH_MAX];
	size_t walked_len = 0;
	bool walk_blocked = false;

	if (path[0] != '/')
		return refuse(t, -EINVAL, WRENCH_LOG_ERROR, NULL, path,
		              "trigger directory %s is not an absolute path", path);
	int fd = open("/", DIR_OPEN_FLAGS | O_DIRECTORY);
	if (fd < 0)
		return open_failure(errno, "/", t);

	const char *p = path;
	tell_opened(t, fd, p);
	int rc = check_directory(fd, "/", true, t, &walk_blocked);
	/* A lint walks on past owner and mode problems to find them all; a
	 * directory that is not one ends every walk. */
	while (rc == 0 || (t->report && rc == -EPERM && !walk_blocked)) {
		p = skip_separators(p);
		if (*p == '\0') {
			if (rc == 0 || (make && make->keep_untrusted))
				return fd;
			break;
		}
		size_t len = strcspn(p, "/");
		if (walked_len + 1 + len >= sizeof(walked) || len > NAME_MAX) {
			rc = refuse(t, -ENAMETOOLONG, WRENCH_LOG_ERROR, NULL, path,
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

		bool last = *skip_separators(p) == '\0';
		int next = open_step(fd, name, walked, last, make, t);
		if (next < 0) {
			rc = next;
			break;
		}
		close(fd);
		fd = next;
		tell_opened(t, fd, p);
		int step = check_directory(fd, walked, !last, t, &walk_blocked);
		rc = rc < 0 ? rc : step;
	}
	close(fd);
	return rc;
}

bool wrench__category_is_valid(const char *name)
{
	size_t len = 0;

	/* One pass, no library calls: this runs on the hot path. */
	for (; name[len]; len++)
		if (name[len] == '/' || len == NAME_MAX)
			return false;
	/* The state directory sits among the trigger files, and is none. */
	return len > 0 && !(name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.') ||
	                                       strcmp(name, WRENCH_STATE_DIR) == 0));
}

/* open() refused the entry: say what it is, from a look that checks nothing. */
static int describe_unopenable(int err, int dirfd, const char *name, const char *path,
                               struct wrench__trust *t)
{
	struct stat st;

	if (err == ENOENT)
		return open_failure(err, path, t);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISLNK(st.st_mode))
			return refuse(t, -EPERM, WRENCH_LOG_ERROR, &st, path,
			              "%s is a symbolic link; trigger files must be regular "
			              "files: replace the link with a copy of its target",
			              path);
		return refuse(t, -EPERM, WRENCH_LOG_ERROR, &st, path,
		              "%s is not a regular file (it is %s); fix: rm %s", path,
		              type_name(st.st_mode), path);
	}
	return open_failure(err, path, t);
}

/* The checks made on the opened descriptor, before anything is read.
 * Returns the first broken rule; a lint goes on through every rule that
 * applies to a regular file. */
static int check_file(const struct stat *st, const char *path, struct wrench__trust *t)
{
	if (!S_ISREG(st->st_mode))
		return refuse(t, -EPERM, WRENCH_LOG_ERROR, st, path,
		              "%s is not a regular file (it is %s); fix: rm %s", path,
		              type_name(st->st_mode), path);
	int rc = 0;
	if (st->st_nlink != 1)
		rc = refuse(t, -EPERM, WRENCH_LOG_ERROR, st, path,
		            "%s has %lu hard links, so it may be changed through another "
		            "name; fix: cp %s %s.new && mv %s.new %s",
		            path, (unsigned long)st->st_nlink, path, path, path, path);
	if (rc == 0 || t->report) {
		int step = check_owner_and_mode(st, path, false, t);
		rc = rc < 0 ? rc : step;
	}
	if ((rc == 0 || t->report) && st->st_size > WRENCH_MAX_FILE_SIZE) {
		int step = refuse(t, -EFBIG, WRENCH_LOG_ERROR, st, path,
		                  "%s is %lld bytes, more than the %d allowed; fix: shorten it",
		                  path, (long long)st->st_size, WRENCH_MAX_FILE_SIZE);
		rc = rc < 0 ? rc : step;
	}
	return rc;
}

/* Makes room for more of a file being read, up to CAP bytes. */
static char *grow(char *data, size_t *size, size_t cap)
{
	size_t more = *size < cap / 2 ? 2 * *size : cap;
	char *bigger = realloc(data, more);

	if (bigger)
		*size = more;
	else
		free(data);
	return bigger;
}

/* Reads at most WRENCH_MAX_FILE_SIZE + 1 bytes: one more shows it grew.
 * The buffer starts at the size fstat() gave, plus the byte that shows
 * growth: a 64 KiB buffer per load would have the heap trimmed and grown
 * again, a page fault per load. */
static int read_contents(int fd, const struct stat *st, const char *path, struct wrench__file *file,
                         struct wrench__trust *t)
{
	size_t cap = WRENCH_MAX_FILE_SIZE + 1, len = 0;
	size_t size = st->st_size >= 0 && (size_t)st->st_size < cap ? (size_t)st->st_size + 1 : cap;
	char *data = malloc(size);

	while (data && len < cap) {
		if (len == size && !(data = grow(data, &size, cap)))
			break;
		ssize_t n = read(fd, data + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(data);
			return refuse(t, -err, WRENCH_LOG_ERROR, st, path, "cannot read %s: %s",
			              path, strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		/* A short read that ends where fstat() said the file ends
		 * is its end: a write after it is a change, which change
		 * detection or the file's identity reports. The read that
		 * would find nothing more is a system call per load. */
		if (len < cap && len == (size_t)st->st_size)
			break;
	}
	if (!data)
		return refuse(t, -ENOMEM, WRENCH_LOG_ERROR, st, path, "out of memory reading %s",
		              path);
	if (len > WRENCH_MAX_FILE_SIZE) {
		free(data);
		return refuse(t, -EFBIG, WRENCH_LOG_ERROR, st, path,
		              "%s is more than the %d bytes allowed; fix: shorten it", path,
		              WRENCH_MAX_FILE_SIZE);
	}
	const char *nul = memchr(data, '\0', len);
	if (nul) {
		size_t offset = (size_t)(nul - data);
		free(data);
		return refuse(t, -EILSEQ, WRENCH_LOG_ERROR, st, path,
		              "%s contains a NUL byte at offset %zu; trigger files are text: "
		              "rewrite it",
		              path, offset);
	}
	file->data = data;
	file->len = len;
	identity_of(st, &file->id);
	return 0;
}

/* Attempts at opening a file that is replaced under our feet. */
#define MAX_REPLACED_RETRIES 8

/*
 * Opens DIRFD/NAME and fstats it. A file replaced by a rename (the right
 * way to rewrite a trigger file) between our open and our fstat shows no
 * link left: that is the old version, gone; open again to get the new one.
 * Returns the descriptor, or a negative errno; *VANISHED tells an -ENOENT
 * of a file that was there and went from one that was never seen.
 */
static int open_current(int dirfd, const char *name, struct stat *st, bool *vanished,
                        struct wrench__trust *t)
{
	*vanished = true;
	for (int attempt = 0; attempt < MAX_REPLACED_RETRIES; attempt++) {
		int fd = openat(dirfd, name, FILE_OPEN_FLAGS);
		if (fd < 0) {
			*vanished = attempt > 0;
			return -errno;
		}
		if (t->opened)
			t->opened(fd, WRENCH__FILE, name, t->opened_ctx);
		if (fstat(fd, st) < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		if (st->st_nlink != 0)
			return fd;
		close(fd);
	}
	return -ENOENT;
}

int wrench__trust_read_file(int dirfd, const char *name, const char *path,
                            struct wrench__file *file, struct wrench__trust *t)
{
	struct stat st = {0};
	bool vanished;

	file->data = NULL;
	file->len = 0;
	int fd = open_current(dirfd, name, &st, &vanished, t);
	if (fd == -ENOENT && vanished)
		return refuse(t, -ENOENT, WRENCH_LOG_DEBUG, NULL, path,
		              "%s does not exist (it was removed while it was opened)", path);
	if (fd < 0)
		return describe_unopenable(-fd, dirfd, name, path, t);
	int rc = check_file(&st, path, t);
	/* A lint reads an untrusted file too, to report its lines. */
	bool readable = S_ISREG(st.st_mode) && st.st_size <= WRENCH_MAX_FILE_SIZE;
	if (rc == 0 || (t->report && rc != -EFBIG && readable)) {
		int step = read_contents(fd, &st, path, file, t);
		rc = rc < 0 ? rc : step;
	}
	close(fd);
	return rc;
}
