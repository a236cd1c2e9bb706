/*
 * What the agent will meet, tried as the agent: a child process takes the
 * agent's user and groups, then does what the library does at a first
 * call (walks to the trigger directory, watches each descriptor it opens,
 * reads each trigger file, opens its counters), and tells the command each
 * way the agent would degrade. The mode bits seen from root (access.c)
 * cannot tell an ACL, a security module, a watch limit or a counters file
 * the agent cannot open: trying can. Nothing is created or changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A new state file's size (state_file.h): one segment and its header. */
#define NEW_STATE_BYTES (132u * 1024)

/* What the child writes down the pipe, one record per finding. */
struct record {
	enum agent_finding_kind kind;
	char path[PATH_MAX];
	char message[WRENCH_MAX_MESSAGE];
};

/* The child's side of a try: where to write, what it walks. */
struct trial {
	const struct options *o;
	int out;
	int inotify;
	char path[WALK_PATH_MAX]; /* of what the walk opens next */
};

static void tell(struct trial *t, enum agent_finding_kind kind, const char *path, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void tell(struct trial *t, enum agent_finding_kind kind, const char *path, const char *fmt,
                 ...)
{
	struct record r = {.kind = kind};
	va_list ap;

	snprintf(r.path, sizeof(r.path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(r.message, sizeof(r.message), fmt, ap);
	va_end(ap);
	for (const char *p = (const char *)&r; p < (const char *)(&r + 1);) {
		ssize_t n = write(t->out, p, (size_t)((const char *)(&r + 1) - p));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		p += n;
	}
}

static uid_t agent_uid(const struct options *o)
{
	return o->has_owner ? o->owner_uid : geteuid();
}

/* The library watches each descriptor its walk opens: so does the trial,
 * and a watch that cannot be set is a change the agent sees late. */
static void watch_opened(int fd, enum wrench__opened what, const char *next, void *ctx)
{
	struct trial *t = ctx;
	char path[sizeof(t->path)], proc[64];

	if (!walk_step(t->o, what, next, t->path, path))
		return; /* longer than the library accepts: it refuses it */
	if (t->inotify < 0)
		return;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (inotify_add_watch(t->inotify, proc, IN_ATTRIB | IN_MASK_ADD) >= 0)
		return;
	int err = errno;
	struct stat st;
	const char *who = "o";
	char word[sizeof(path) * 4 + 3];
	if (fstat(fd, &st) == 0)
		who = access_class(t->o, &st);
	wrench__shell_quote(path, word, sizeof(word));
	if (err == EACCES)
		tell(t, AGENT_WATCH, path,
		     "%s cannot be watched by the agent (uid %u): inotify needs read permission, "
		     "so a change to it is seen at the agent's next try, up to 10 s later, not at "
		     "its next call; fix: chmod %s+r %s",
		     path, (unsigned)agent_uid(t->o), who, word);
	else
		tell(t, AGENT_WATCH, path,
		     "%s cannot be watched by the agent (uid %u): %s, so a change to it is seen at "
		     "the agent's next try, not at its next call%s",
		     path, (unsigned)agent_uid(t->o), strerror(err),
		     err == ENOSPC ? "; fix: raise fs.inotify.max_user_watches (sysctl)" : "");
}

/* Could the agent create its counters, missing now? */
static void judge_creation(struct trial *t, int dirfd)
{
	struct statvfs fs;
	char dir[PATH_MAX * 4 + 3];
	bool has_state_dir = faccessat(dirfd, WRENCH_STATE_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	const char *where = has_state_dir ? WRENCH_STATE_DIR : ".";

	wrench__shell_quote(t->o->dir, dir, sizeof(dir));
	if (faccessat(dirfd, where, W_OK | X_OK, AT_EACCESS) < 0) {
		tell(t, AGENT_COUNTERS, t->o->dir,
		     "the agent (uid %u) has no counters in %s/%s and may not create them, so its "
		     "lines that a count decides never fire; fix: sudo wrench --dir %s --owner %u "
		     "prepare",
		     (unsigned)agent_uid(t->o), t->o->dir, WRENCH_STATE_DIR, dir,
		     (unsigned)agent_uid(t->o));
		return;
	}
	if (fstatvfs(dirfd, &fs) == 0 &&
	    (unsigned long long)fs.f_bavail * fs.f_frsize < NEW_STATE_BYTES + 8192) {
		tell(t, AGENT_COUNTERS, t->o->dir,
		     "the file system of %s has %llu bytes free, less than the agent's counters "
		     "need (%u), so its lines that a count decides never fire; fix: free space "
		     "(df -h %s)",
		     t->o->dir, (unsigned long long)fs.f_bavail * fs.f_frsize, NEW_STATE_BYTES,
		     dir);
		return;
	}
	tell(t, AGENT_COUNTERS_ABSENT, t->o->dir, "no counters yet: the agent makes them");
}

static void try_counters(struct trial *t, int dirfd)
{
	struct wrench__state_where w = {.dirfd = dirfd, .dir = t->o->dir};
	struct wrench__state *state;
	struct wrench__problem why;

	int rc = wrench__state_open(&w, NULL, &state, &why);
	wrench__state_close(state);
	if (rc == -ENOENT)
		judge_creation(t, dirfd);
	else if (rc < 0)
		tell(t, AGENT_COUNTERS, t->o->dir,
		     "the agent (uid %u) cannot use its counters, so its lines that a count "
		     "decides never fire: %s",
		     (unsigned)agent_uid(t->o), why.message);
}

/* Takes the agent's identity for good: groups first, while it may. */
static int become_agent(const struct options *o)
{
	if (!o->has_owner || o->owner_uid == geteuid())
		return 0;
	if (setgroups((size_t)o->owner_ngroups, o->owner_groups) < 0 ||
	    setresgid(o->owner_gid, o->owner_gid, o->owner_gid) < 0 ||
	    setresuid(o->owner_uid, o->owner_uid, o->owner_uid) < 0)
		return -errno;
	return 0;
}

static void child(const struct options *o, char *const names[], bool watches, int out)
{
	struct trial t = {.o = o, .out = out, .inotify = -1};
	struct wrench__trust trust = {0};

	snprintf(t.path, sizeof(t.path), "/");
	if (become_agent(o) < 0)
		_exit(4);
	if (watches) {
		trust.opened = watch_opened;
		trust.opened_ctx = &t;
		t.inotify = inotify_init1(IN_CLOEXEC);
		if (t.inotify < 0)
			tell(&t, AGENT_WATCH, o->dir,
			     "the agent (uid %u) cannot start change detection (inotify_init1: "
			     "%s), "
			     "so it reads the files at every call%s",
			     (unsigned)agent_uid(o), strerror(errno),
			     errno == EMFILE ? "; fix: raise fs.inotify.max_user_instances (sysctl)"
			                     : "");
	}
	int dirfd = wrench__trust_open_dir(o->dir, &trust);
	if (dirfd < 0) {
		if (dirfd != -ENOENT)
			tell(&t, AGENT_WALK, trust.problems ? "" : o->dir, "%s",
			     trust.problems ? trust.first.message : strerror(-dirfd));
		_exit(0);
	}
	/* Reached, but not searched: nothing in it can be opened, which is
	 * the one thing to fix. */
	if (faccessat(dirfd, ".", X_OK, AT_EACCESS) < 0) {
		tell(&t, AGENT_WALK, o->dir, "%s cannot be searched by the agent (uid %u): %s",
		     o->dir, (unsigned)agent_uid(o), strerror(errno));
		_exit(0);
	}
	for (size_t i = 0; names && names[i]; i++) {
		char path[PATH_MAX + NAME_MAX + 2];
		if (!is_category(names[i]))
			continue;
		struct wrench__file file = {0};
		struct wrench__trust ft = trust;
		ft.problems = 0;
		int rc = wrench__trust_read_file(
		        dirfd, names[i], trigger_path(o, names[i], path, sizeof(path)), &file, &ft);
		free(file.data);
		if (rc < 0 && rc != -ENOENT && ft.problems)
			tell(&t, AGENT_READ, path, "%s", ft.first.message);
	}
	try_counters(&t, dirfd);
	close(dirfd);
	_exit(0);
}

/* How long the trial may take: the agent's user may stop the child (it
 * runs as that user) or slow its walk, and the command never waits on
 * another user without bound. */
#define TRIAL_WAIT_MS 10000

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until IN has something to read, at most until DEADLINE (ms). */
static int readable_by(int in, long deadline)
{
	for (;;) {
		long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = in, .events = POLLIN};
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int read_records(int in, struct agent_report *r)
{
	struct record rec;
	size_t got = 0;
	long deadline = now_ms() + TRIAL_WAIT_MS;

	for (;;) {
		int ready = readable_by(in, deadline);
		if (ready < 0)
			return ready;
		ssize_t n = read(in, (char *)&rec + got, sizeof(rec) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		got += (size_t)n;
		if (got < sizeof(rec))
			continue;
		got = 0;
		rec.path[sizeof(rec.path) - 1] = '\0';
		rec.message[sizeof(rec.message) - 1] = '\0';
		if (rec.kind == AGENT_COUNTERS_ABSENT) {
			r->counters_absent = true;
			continue;
		}
		struct agent_finding *more =
		        realloc(r->finding, (r->count + 1) * sizeof(*r->finding));
		char *path = strdup(rec.path), *message = strdup(rec.message);
		if (!more || !path || !message) {
			free(path);
			free(message);
			r->finding = more ? more : r->finding;
			return -ENOMEM;
		}
		r->finding = more;
		r->finding[r->count++] = (struct agent_finding){rec.kind, path, message};
		if (rec.kind == AGENT_COUNTERS)
			r->counters_problem = message;
	}
}

/* A directory the agent cannot search is the one thing to fix about it:
 * the fix of that gives read permission too, and the watch it could not
 * set is not told apart. */
static void drop_watches_of_unreached(struct agent_report *r)
{
	size_t kept = 0;

	for (size_t i = 0; i < r->count; i++) {
		bool unreached = false;
		for (size_t j = 0; j < r->count && r->finding[i].kind == AGENT_WATCH; j++)
			unreached |= r->finding[j].kind == AGENT_WALK &&
			             strcmp(r->finding[j].path, r->finding[i].path) == 0;
		if (unreached) {
			free(r->finding[i].path);
			free(r->finding[i].message);
			continue;
		}
		r->finding[kept++] = r->finding[i];
	}
	r->count = kept;
}

int try_as_agent(const struct options *o, char *const names[], bool watches, struct agent_report *r)
{
	int pipefd[2];

	memset(r, 0, sizeof(*r));
	if (o->has_owner && o->owner_uid != geteuid() && geteuid() != 0)
		return -EPERM; /* only root can become another user */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return -err;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child(o, names, watches, pipefd[1]);
	}
	close(pipefd[1]);
	int rc = read_records(pipefd[0], r);
	close(pipefd[0]);
	if (rc == -ETIMEDOUT)
		kill(pid, SIGKILL); /* root may: it became another user */
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = -ECHILD;
	drop_watches_of_unreached(r);
	r->tried = rc == 0;
	return rc;
}

void free_agent_report(struct agent_report *r)
{
	for (size_t i = 0; i < r->count; i++) {
		free(r->finding[i].path);
		free(r->finding[i].message);
	}
	free(r->finding);
	memset(r, 0, sizeof(*r));
}

const char *trial_error(int err)
{
	return err == -ETIMEDOUT ? "it did not finish within 10 s (stopped, or slowed down?)"
	                         : strerror(-err);
}

size_t warn_agent_findings(const struct options *o, char *const names[], bool reach_told)
{
	struct agent_report r;
	size_t warned = 0;

	int rc = try_as_agent(o, names, true, &r);
	if (rc < 0) {
		note("warning: the setup could not be tried as uid %u: %s", (unsigned)agent_uid(o),
		     trial_error(rc));
		free_agent_report(&r);
		return 1;
	}
	for (size_t i = 0; i < r.count; i++) {
		bool reach = r.finding[i].kind == AGENT_WALK || r.finding[i].kind == AGENT_READ;
		if (reach && reach_told)
			continue;
		note("warning: %s", r.finding[i].message);
		warned++;
	}
	free_agent_report(&r);
	return warned;
}

char *agent_counters_problem(const struct options *o, int dirfd)
{
	struct agent_report r;
	struct wrench__problem why;
	char *problem = NULL;

	int rc = try_as_agent(o, NULL, false, &r);
	for (size_t i = 0; rc == 0 && i < r.count && !problem; i++)
		if (r.finding[i].kind == AGENT_COUNTERS || r.finding[i].kind == AGENT_WALK)
			problem = strdup(r.finding[i].message);
	free_agent_report(&r);
	if (rc == 0)
		return problem;
	/* Not root: judged from this side, as the agent's uid. */
	if (rc == -EPERM)
		return judge_counters(o, dirfd, NULL, &why) < 0 ? strdup(why.message) : NULL;
	/* Untried is not fine: a tool that cannot tell says so. */
	if (asprintf(&problem, "the setup could not be tried as uid %u: %s", (unsigned)agent_uid(o),
	             trial_error(rc)) < 0)
		problem = NULL;
	return problem;
}
