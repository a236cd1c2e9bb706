/*
 * Can the agent reach its trigger file? The trust checks say whether the
 * agent would honour a file; an agent running as another user (--owner)
 * must also be able to search every directory on the way and read the
 * file, or it logs "Permission denied" and never fires. The command runs
 * as root, so it cannot simply try: it judges the mode bits seen on the
 * very descriptors that the library's walk opens (its opened hook), for
 * the agent's uid and every group of its user. ACLs are not read.
 */
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static bool in_groups(const struct options *o, gid_t gid)
{
	if (gid == o->owner_gid)
		return true;
	for (int i = 0; i < o->owner_ngroups; i++)
		if (o->owner_groups[i] == gid)
			return true;
	return false;
}

const char *access_class(const struct options *o, const struct stat *st)
{
	return st->st_uid == o->owner_uid ? "u" : in_groups(o, st->st_gid) ? "g" : "o";
}

/* The permission class that applies to the agent, as the kernel picks it:
 * owner, else group, else others. Returns the shift of its bits. */
static int class_shift(const struct options *o, const struct stat *st, const char **who)
{
	if (st->st_uid == o->owner_uid) {
		*who = "u";
		return 0;
	}
	if (in_groups(o, st->st_gid)) {
		*who = "g";
		return 3;
	}
	*who = "o";
	return 6;
}

static void add_problem(struct access_check *c, const struct stat *st, const char *path,
                        bool is_dir, const char *who, const char *bits)
{
	struct wrench__problem problem = {.level = WRENCH_LOG_ERROR, .path = path};
	struct wrench__trust *t = c->t;
	char word[PATH_MAX * 4 + 3];

	wrench__shell_quote(path, word, sizeof(word));
	/* A message cut short leaves the quote of its fix open: a shell
	 * refuses it whole. */
	int n = snprintf(
	        problem.message, sizeof(problem.message),
	        "%s cannot be %s by the agent (uid %u): it is owned by uid %u, gid %u, mode "
	        "%04o; fix: chmod %s+%s %s",
	        path, is_dir ? "searched" : "read", (unsigned)c->o->owner_uid, (unsigned)st->st_uid,
	        (unsigned)st->st_gid, (unsigned)(st->st_mode & 07777), who, bits, word);
	if (n < 0)
		snprintf(problem.message, sizeof(problem.message), "%.*s cannot be reached",
		         (int)sizeof(problem.message) - 32, path);
	if (t->report)
		t->report(&problem, t->ctx);
	if (t->problems++ == 0) {
		t->first = problem;
		t->first.path = NULL;
	}
}

bool walk_step(const struct options *o, enum wrench__opened what, const char *next,
               char walked[WALK_PATH_MAX], char path[WALK_PATH_MAX])
{
	if (what == WRENCH__FILE)
		trigger_path(o, next, path, WALK_PATH_MAX);
	else
		snprintf(path, WALK_PATH_MAX, "%s", walked);
	return what != WRENCH__ANCESTOR ||
	       snprintf(walked, WALK_PATH_MAX, "%s%s%s", path,
	                path[strlen(path) - 1] == '/' ? "" : "/", next) < WALK_PATH_MAX;
}

/* The walk tells of each directory it opens, then of the file. */
static void opened(int fd, enum wrench__opened what, const char *next, void *ctx)
{
	struct access_check *c = ctx;
	char path[sizeof(c->path)];
	struct stat st;
	const char *who;

	if (!walk_step(c->o, what, next, c->path, path))
		return; /* longer than the library accepts: it refuses it */
	/* A symlink or a wrong type is the trust checks' to report. */
	if (fstat(fd, &st) < 0 ||
	    (what == WRENCH__FILE ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)))
		return;
	bool is_dir = what != WRENCH__FILE;
	int shift = class_shift(c->o, &st, &who);
	mode_t need = (is_dir ? S_IXUSR : S_IRUSR) >> shift;
	/* A directory the agent cannot search, it cannot watch either
	 * without read permission: one fix gives both. */
	bool unreadable = !(st.st_mode & (S_IRUSR >> shift));
	if (!(st.st_mode & need))
		add_problem(c, &st, path, is_dir, who,
		            is_dir && unreadable ? "rx"
		            : is_dir             ? "x"
		                                 : "r");
}

void check_agent_access(const struct options *o, struct wrench__trust *t, struct access_check *ctx)
{
	/* Root reads and searches everything; without --owner, the agent
	 * is this user, and the library's own opens fail as the agent's
	 * would. */
	if (!o->has_owner || o->owner_uid == 0)
		return;
	ctx->o = o;
	ctx->t = t;
	snprintf(ctx->path, sizeof(ctx->path), "/");
	t->opened = opened;
	t->opened_ctx = ctx;
}
