/*
 * Call sites: wrench_is_active() called with two string literals, as
 * product code writes it. The header may give each such call site a record
 * of its own (its names, made once, and the answer it last got with the
 * state that answer was valid for), so that a quiet point answers from it.
 * These tests hold a site to what any call promises: strict mode sees every
 * change by the next call, in every thread; sites never mix up their names
 * or answers; and a site's record outlives no change of directory, seed or
 * switch, and is not trusted across fork() or dlclose().
 *
 * Every call under test has its literals in the call itself, never passed
 * through a helper taking const char *: the point is that the macro sees
 * literals. Where it helps, the same check runs with the names in buffers
 * filled at run time, which take the ordinary path.
 */
#include "support.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A hung child, a reader thread or a change not seen within a period is
 * given this long before the test says so: far more than a loaded
 * machine needs, so only a broken library reaches it. */
#define DEADLINE_NS (30 * 1000000000ull)

/* Names filled at run time: read through a volatile pointer, so that no
 * compiler can see them as literals. */
static const char *volatile runtime_category = "sitecat";
static const char *volatile runtime_feature = "feat";

static void runtime_names(char *category, size_t clen, char *feature, size_t flen)
{
	snprintf(category, clen, "%s", runtime_category);
	snprintf(feature, flen, "%s", runtime_feature);
}

/* ---- Changes that never assert ------------------------------------------- */

/* These return 0, or a negative number on failure: cmocka's asserts must
 * not run in another thread than the test's, nor in a forked child. */

/* Opens DIR/NAME with FLAGS (O_CREAT | O_EXCL, O_TRUNC, O_APPEND) and
 * writes TEXT: the same inode when it exists. */
static int write_in(const char *dir, const char *name, const char *text, int flags)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | flags, 0644);
	if (fd < 0)
		return -1;
	int rc = write_all_text(fd, text);
	return close(fd) == 0 ? rc : -1;
}

enum change_op { REPLACE, CREATE, REWRITE, REMOVE, CHMOD };

/* One change to a trigger file, and whether the feature "feat" is active
 * once it completed. */
struct change {
	const char *what;
	enum change_op op;
	const char *text; /* the contents written, or NULL */
	mode_t mode;      /* for CHMOD */
	bool active;
};

static int make_change(const char *dir, const char *name, const struct change *c)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	switch (c->op) {
	case REPLACE:
		return try_write_file(dir, name, c->text, 0644);
	case CREATE:
		return write_in(dir, name, c->text, O_CREAT | O_EXCL);
	case REWRITE:
		return write_in(dir, name, c->text, O_TRUNC);
	case REMOVE:
		return unlink(path);
	case CHMOD:
		return chmod(path, c->mode);
	}
	return -1;
}

/* Every kind of change to the file, each direction, from a file naming
 * "feat" (mode 0644) back to the same. */
static const struct change file_cycle[] = {
        {"replaced by rename, without the feature", REPLACE, "other\n", 0, false},
        {"replaced by rename, with the feature", REPLACE, "feat\n", 0, true},
        {"removed", REMOVE, NULL, 0, false},
        {"created with the feature", CREATE, "feat\n", 0, true},
        {"made writable by group (0664)", CHMOD, NULL, 0664, false},
        {"made 0644 again", CHMOD, NULL, 0644, true},
        {"rewritten in place without the feature", REWRITE, "other\n", 0, false},
        {"rewritten in place with the feature", REWRITE, "feat\n", 0, true},
};

#define FILE_CYCLE (sizeof(file_cycle) / sizeof(file_cycle[0]))

/* Waits for PID, at most DEADLINE_NS; a child still there then is killed
 * and the test fails. Returns its wait status. */
static int wait_for_child(pid_t pid)
{
	uint64_t deadline = now_ns() + DEADLINE_NS;
	int status;

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			return status;
		if (got < 0 && errno != EINTR)
			fail_msg("waitpid(%d): %s", (int)pid, strerror(errno));
		if (now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("the child %d did not exit within %llu s", (int)pid,
			         DEADLINE_NS / 1000000000ull);
		}
		usleep(1000);
	}
}

static pid_t fork_child(void)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	return pid;
}

/* ---- Every change, seen at one site -------------------------------------- */

/*
 * The wrench directory is TOP/w; TOP is its parent, checked as an
 * ancestor. The steps go round: the last leaves no directory, as the
 * first finds it. Directories made aside carry the round in their name.
 */
struct tree {
	char top[256], w[300], file[320];
};

static void tree_init(struct tree *t, void **state)
{
	snprintf(t->top, sizeof(t->top), "%s", scratch_dir(state));
	snprintf(t->w, sizeof(t->w), "%s/w", t->top);
	snprintf(t->file, sizeof(t->file), "%s/sitecat", t->w);
	assert_int_equal(wrench_set_dir(t->w), 0);
}

static const struct step {
	const char *what;
	bool active;
} steps[] = {
        {"no directory", false},
        {"the directory created", false},
        {"the file created without the feature", false},
        {"a line naming the feature appended", true},
        {"that line removed", false},
        {"the file replaced by rename, with the feature", true},
        {"the file made writable by group", false},
        {"the file made 0644 again", true},
        {"the file made writable by others", false},
        {"the file made 0644 once more", true},
        {"the file replaced by rename, without the feature", false},
        {"the file rewritten in place with the feature", true},
        {"the file removed", false},
        {"the file created with the feature", true},
        {"the directory made writable by group", false},
        {"the directory made 0700 again", true},
        {"the directory made writable by others", false},
        {"the directory made 0700 once more", true},
        {"an ancestor made writable by group", false},
        {"the ancestor made 0700 again", true},
        {"the directory renamed away", false},
        {"the directory renamed back", true},
        {"the directory renamed away again", false},
        {"a directory without the feature renamed into place", false},
        {"its file removed", false},
        {"the directory removed", false},
        {"a directory with the feature renamed into place", true},
        {"the directory renamed away for good", false},
};

#define STEPS (sizeof(steps) / sizeof(steps[0]))

/* Makes a directory NAME.ROUND beside the wrench directory, with a file
 * for the category holding TEXT; its path in BUF. */
static void make_aside(const struct tree *t, const char *name, int round, const char *text,
                       char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.%d", t->top, name, round);
	make_dir_with_mode(buf, 0700);
	write_file(buf, "sitecat", text, 0644);
}

static void aside_path(const struct tree *t, const char *name, int round, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.%d", t->top, name, round);
}

/* Makes step I of round ROUND. */
static void make_step(const struct tree *t, size_t i, int round)
{
	char aside[400];

	switch (i) {
	case 0:
		break;
	case 1:
		make_dir_with_mode(t->w, 0700);
		break;
	case 2:
		assert_int_equal(write_in(t->w, "sitecat", "other\n", O_CREAT | O_EXCL), 0);
		break;
	case 3:
		assert_int_equal(write_in(t->w, "sitecat", "feat\n", O_APPEND), 0);
		break;
	case 4:
		rewrite_in_place(t->w, "sitecat", "other\n");
		break;
	case 5:
		write_file(t->w, "sitecat", "other\nfeat\n", 0644);
		break;
	case 6:
	case 8:
		assert_int_equal(chmod(t->file, i == 6 ? 0664 : 0646), 0);
		break;
	case 7:
	case 9:
		assert_int_equal(chmod(t->file, 0644), 0);
		break;
	case 10:
		write_file(t->w, "sitecat", "other\n", 0644);
		break;
	case 11:
		rewrite_in_place(t->w, "sitecat", "other\nfeat\n");
		break;
	case 12:
	case 24:
		assert_int_equal(unlink(t->file), 0);
		break;
	case 13:
		assert_int_equal(write_in(t->w, "sitecat", "feat\n", O_CREAT | O_EXCL), 0);
		break;
	case 14:
	case 16:
		assert_int_equal(chmod(t->w, i == 14 ? 0770 : 0707), 0);
		break;
	case 15:
	case 17:
		assert_int_equal(chmod(t->w, 0700), 0);
		break;
	case 18:
		assert_int_equal(chmod(t->top, 0770), 0);
		break;
	case 19:
		assert_int_equal(chmod(t->top, 0700), 0);
		break;
	case 20:
	case 22:
		aside_path(t, i == 20 ? "away" : "old", round, aside, sizeof(aside));
		assert_int_equal(rename(t->w, aside), 0);
		break;
	case 21:
		aside_path(t, "away", round, aside, sizeof(aside));
		assert_int_equal(rename(aside, t->w), 0);
		break;
	case 23:
		make_aside(t, "quiet", round, "other\n", aside, sizeof(aside));
		assert_int_equal(rename(aside, t->w), 0);
		break;
	case 25:
		remove_state_dir(t->w);
		assert_int_equal(rmdir(t->w), 0);
		break;
	case 26:
		make_aside(t, "active", round, "feat\n", aside, sizeof(aside));
		assert_int_equal(rename(aside, t->w), 0);
		break;
	case 27:
		aside_path(t, "gone", round, aside, sizeof(aside));
		assert_int_equal(rename(t->w, aside), 0);
		break;
	default:
		fail_msg("no step %zu", i);
	}
}

#define ROUNDS 3

/* One call site in a loop sees each step by its next call, and keeps
 * answering the same while nothing changes. LITERAL: the site has its
 * names as literals; else they are in buffers filled at run time. */
static void check_every_step(void **state, bool literal)
{
	struct tree t;
	char category[32], feature[32];

	need_strict_visibility();
	tree_init(&t, state);
	runtime_names(category, sizeof(category), feature, sizeof(feature));
	for (int round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < STEPS; i++) {
			make_step(&t, i, round);
			/* One to three calls a step: a record that lets a
			 * fixed number of calls go by is caught too. */
			for (int call = 0; call < 1 + (int)(i + round) % 3; call++) {
				bool got = literal ? wrench_is_active("sitecat", "feat")
				                   : wrench_is_active(category, feature);
				if (got != steps[i].active) {
					log_dump();
					fail_msg("round %d, after %s, call %d answered %s", round,
					         steps[i].what, call + 1, got ? "true" : "false");
				}
			}
		}
	}
}

static void test_a_literal_site_sees_every_change_by_its_next_call(void **state)
{
	check_every_step(state, true);
}

static void test_run_time_names_see_every_change_by_the_next_call(void **state)
{
	check_every_step(state, false);
}

/* Relaxed mode: each change is seen within the period (waited for, up to
 * a generous deadline), then the site keeps answering the same. One round:
 * each step may take a period. */
static void test_a_literal_site_sees_every_change_within_the_period_in_relaxed_mode(void **state)
{
	struct tree t;

	wrench_set_recheck_ms(100);
	tree_init(&t, state);
	for (size_t i = 0; i < STEPS; i++) {
		make_step(&t, i, 0);
		uint64_t deadline = now_ns() + DEADLINE_NS;
		bool got;
		while ((got = wrench_is_active("sitecat", "feat")) != steps[i].active &&
		       now_ns() < deadline)
			usleep(1000);
		if (got != steps[i].active)
			fail_msg("after %s: not seen within %llu s", steps[i].what,
			         DEADLINE_NS / 1000000000ull);
		for (int call = 0; call < 3; call++)
			if (wrench_is_active("sitecat", "feat") != steps[i].active)
				fail_msg("after %s: seen, then answered otherwise", steps[i].what);
	}
}

/* ---- Sites of one point, sites of others --------------------------------- */

/* Writes TEXT as DIR/NAME, or removes it for NULL. */
static void set_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	if (text) {
		write_file(dir, name, text, 0644);
		return;
	}
	path_in(dir, name, path, sizeof(path));
	assert_true(unlink(path) == 0 || errno == ENOENT);
}

/* The two trigger files, and what each site must answer with them. */
static const struct site_row {
	const char *sitecat, *othercat;
	bool feat, other, elsewhere;
} site_rows[] = {
        {NULL, NULL, false, false, false},
        {"feat\n", NULL, true, false, false},
        {"other\n", NULL, false, true, false},
        {"other\n", "feat\n", false, true, true},
        {"feat\nother\n", "feat\n", true, true, true},
        {"feat\nother\n", NULL, true, true, false},
        {NULL, "feat\n", false, false, true},
        {"other\n", "other\n", false, true, false},
        {"feat\n", "feat\n", true, false, true},
        {"feat\n", "other\n", true, false, false},
};

/* Asks site WHICH, one call site each: 'a' and 'b' are two sites of the
 * same point, 'c' another feature, 'd' another category. */
static bool ask_site(char which, const struct site_row *r, bool *want)
{
	switch (which) {
	case 'a':
		*want = r->feat;
		return wrench_is_active("sitecat", "feat");
	case 'b':
		*want = r->feat;
		return wrench_is_active("sitecat", "feat");
	case 'c':
		*want = r->other;
		return wrench_is_active("sitecat", "other");
	default:
		*want = r->elsewhere;
		return wrench_is_active("othercat", "feat");
	}
}

/* Each row's sites in another order, some left out: a site that missed a
 * change meets two at once, and each site is first after a change in
 * some row. */
static const char *const site_orders[] = {"abcd", "dcb", "bca", "cad", "adcb", "b", "dab", "cd"};

static void test_sites_of_one_point_and_of_others_answer_independently(void **state)
{
	const char *dir = scratch_dir(state);
	size_t rows = sizeof(site_rows) / sizeof(site_rows[0]);
	size_t orders = sizeof(site_orders) / sizeof(site_orders[0]);

	need_strict_visibility();
	for (size_t n = 0; n < 3 * rows; n++) {
		const struct site_row *r = &site_rows[n % rows];
		set_file(dir, "sitecat", r->sitecat);
		set_file(dir, "othercat", r->othercat);
		for (int call = 0; call < 2; call++) {
			for (const char *s = site_orders[n % orders]; *s; s++) {
				bool want;
				bool got = ask_site(*s, r, &want);
				if (got != want)
					fail_msg("row %zu, call %d: site %c answered %s", n % rows,
					         call + 1, *s, got ? "true" : "false");
			}
		}
	}
}

/* Two sites of one point count in the one line's counters: the every=2
 * pattern runs over the calls of both, whichever makes them. */
static void test_two_sites_of_one_point_share_its_counters(void **state)
{
	static const char order[] = "ababbabaabbbaaab";
	unsigned calls = 0;

	write_file(scratch_dir(state), "sitecat", "feat every=2 scope=process\n", 0644);
	for (const char *s = order; *s; s++) {
		bool got = *s == 'a' ? wrench_is_active("sitecat", "feat")
		                     : wrench_is_active("sitecat", "feat");
		calls++;
		if (got != (calls % 2 == 1))
			fail_msg("call %u (site %c) answered %s", calls, *s,
			         got ? "true" : "false");
		assert_false(wrench_is_active("sitecat", "other"));
	}
}

/* One call site whose names change from call to call: each call answers
 * for its own names. So does a site with a literal category and a
 * feature from a buffer. */
static void test_a_site_with_run_time_names_answers_for_each_call_s_names(void **state)
{
	static const struct {
		const char *category, *feature;
		bool before, after;
	} calls[] = {
	        {"sitecat", "a", true, false},   {"sitecat", "b", true, false},
	        {"sitecat", "c", false, true},   {"othercat", "c", true, false},
	        {"othercat", "a", false, true},  {"sitecat", "x", false, false},
	        {"othercat", "b", false, false}, {"sitecat", "a", true, false},
	};
	const char *dir = scratch_dir(state);
	char category[32], feature[32];

	need_strict_visibility();
	write_file(dir, "sitecat", "a\nb\n", 0644);
	write_file(dir, "othercat", "c\n", 0644);
	for (int phase = 0; phase < 2; phase++) {
		if (phase == 1) {
			write_file(dir, "sitecat", "c\n", 0644);
			write_file(dir, "othercat", "a\n", 0644);
		}
		for (int round = 0; round < 2; round++) {
			for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
				snprintf(category, sizeof(category), "%s", calls[i].category);
				snprintf(feature, sizeof(feature), "%s", calls[i].feature);
				bool want = phase ? calls[i].after : calls[i].before;
				if (wrench_is_active(category, feature) != want)
					fail_msg("phase %d: (%s, %s) did not answer %s", phase,
					         category, feature, want ? "true" : "false");
				bool in_sitecat = strcmp(category, "sitecat") == 0;
				if (in_sitecat && wrench_is_active("sitecat", feature) != want)
					fail_msg("phase %d: (\"sitecat\", %s) did not answer %s",
					         phase, feature, want ? "true" : "false");
			}
		}
	}
}

/* ---- A site in an inline helper ------------------------------------------ */

/* One site in the source, inlined into each caller with another feature:
 * after inlining the feature is a constant in each copy, but a record
 * kept for the site would be one for all of them. */
static inline bool probe(const char *feature)
{
	return wrench_is_active("sitecat", feature);
}

static inline __attribute__((always_inline)) bool probe_in(const char *category,
                                                           const char *feature)
{
	return wrench_is_active(category, feature);
}

static void test_a_site_in_an_inline_helper_answers_for_each_caller_s_feature(void **state)
{
	static const struct {
		const char *text;
		bool a, b;
	} states[] = {
	        {"a\n", true, false},   {"b\n", false, true}, {NULL, false, false},
	        {"a\nb\n", true, true}, {"a\n", true, false}, {"b\n", false, true},
	};
	const char *dir = scratch_dir(state);

	need_strict_visibility();
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
			set_file(dir, "sitecat", states[i].text);
			/* Each helper's first call is the one whose feature would
			 * stick: "a" for probe, "b" for probe_in. */
			for (int call = 0; call < 2; call++) {
				assert_int_equal(probe("a"), states[i].a);
				assert_int_equal(probe("b"), states[i].b);
				assert_int_equal(probe("b"), states[i].b);
				assert_int_equal(probe("a"), states[i].a);
				assert_int_equal(probe_in("sitecat", "b"), states[i].b);
				assert_int_equal(probe_in("sitecat", "a"), states[i].a);
				assert_false(probe_in("othercat", "a"));
				assert_int_equal(probe_in("sitecat", "b"), states[i].b);
			}
		}
	}
}

/* ---- A site in a plug-in --------------------------------------------------- */

typedef bool site_fn(void);

struct plugin {
	void *handle;
	site_fn *feat, *other;
};

static void plugin_open(struct plugin *p)
{
	p->handle = dlopen(SITE_MODULE, RTLD_NOW | RTLD_LOCAL);
	if (!p->handle)
		fail_msg("dlopen: %s", dlerror());
	p->feat = (site_fn *)dlsym(p->handle, "site_module_feat");
	p->other = (site_fn *)dlsym(p->handle, "site_module_other");
	assert_non_null(p->feat);
	assert_non_null(p->other);
}

static void plugin_close(struct plugin *p)
{
	assert_int_equal(dlclose(p->handle), 0);
	/* Really gone: what the library might keep of its sites now points
	 * at unmapped memory, or at whatever is mapped there next. */
	void *still = dlopen(SITE_MODULE, RTLD_NOW | RTLD_NOLOAD);
	if (still) {
		dlclose(still);
		fail_msg("dlclose left %s loaded", SITE_MODULE);
	}
	*p = (struct plugin){0};
}

static void test_a_site_in_a_plug_in_answers_across_dlclose_and_dlopen(void **state)
{
	const char *dir = scratch_dir(state);
	struct plugin p;

	need_strict_visibility();
	write_file(dir, "sitecat", "other\n", 0644);
	plugin_open(&p);
	/* One library state: the plug-in reads the directory this executable
	 * chose (a copy of its own would read $WRENCH_DIR), and obeys its
	 * switch. */
	assert_false(p.feat());
	assert_true(p.other());
	write_file(dir, "sitecat", "feat\n", 0644);
	assert_true(p.feat());
	assert_false(p.other());
	wrench_set_enabled(false);
	assert_false(p.feat());
	wrench_set_enabled(true);
	assert_true(p.feat());

	for (int round = 0; round < 4; round++) {
		bool quiet_at_close = round % 2 == 0;
		write_file(dir, "sitecat", quiet_at_close ? "other\n" : "feat\n", 0644);
		assert_int_equal(p.feat(), !quiet_at_close);
		plugin_close(&p);

		/* Changes while it is unloaded, seen by this executable's own
		 * site: the library handles them with the plug-in gone. */
		write_file(dir, "sitecat", "feat\n", 0644);
		assert_true(wrench_is_active("sitecat", "feat"));
		set_file(dir, "sitecat", NULL);
		assert_false(wrench_is_active("sitecat", "feat"));
		write_file(dir, "sitecat", quiet_at_close ? "feat\n" : "other\n", 0644);
		assert_int_equal(wrench_is_active("sitecat", "feat"), quiet_at_close);

		plugin_open(&p);
		assert_int_equal(p.feat(), quiet_at_close);
		assert_int_equal(p.other(), !quiet_at_close);
		write_file(dir, "sitecat", quiet_at_close ? "other\n" : "feat\n", 0644);
		assert_int_equal(p.feat(), !quiet_at_close);
		set_file(dir, "sitecat", NULL);
		assert_false(p.feat());
		assert_false(p.other());
	}
	plugin_close(&p);
}

/* ---- fork ------------------------------------------------------------------ */

/* The site both the parent and the child use. */
static bool fork_site(void)
{
	return wrench_is_active("sitecat", "feat");
}

/* In the child: the site answers for the state the parent left, then for
 * each change the child makes; the file is left active (END) or not.
 * Exits with 0, or the number of the first wrong answer. */
static void child_changes_the_file(const char *dir, bool start, bool end)
{
	int answer = 1;
	if (fork_site() != start)
		_exit(answer);
	for (size_t i = 0; i < FILE_CYCLE + !end; i++) {
		const struct change *c = &file_cycle[i % FILE_CYCLE];
		answer++;
		if (make_change(dir, "sitecat", c) < 0) {
			fprintf(stderr, "child: %s: %s\n", c->what, strerror(errno));
			_exit(100);
		}
		if (fork_site() != c->active) {
			fprintf(stderr, "child: after the file was %s, the site answered %s\n",
			        c->what, c->active ? "false" : "true");
			_exit(answer);
		}
	}
	_exit(0);
}

static void test_a_forked_child_and_its_parent_each_see_changes_at_a_used_site(void **state)
{
	const char *dir = scratch_dir(state);

	need_strict_visibility();
	for (int round = 0; round < 2; round++) {
		/* The parent's site answers in both states, and the child
		 * inherits it with the last. */
		bool start = round == 1, end = !start;
		write_file(dir, "sitecat", start ? "other\n" : "feat\n", 0644);
		assert_int_equal(fork_site(), !start);
		write_file(dir, "sitecat", start ? "feat\n" : "other\n", 0644);
		assert_int_equal(fork_site(), start);

		pid_t pid = fork_child();
		if (pid == 0)
			child_changes_the_file(dir, start, end);
		int status = wait_for_child(pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("round %d: the child failed (status 0x%x)", round, status);

		/* The child's last change, then the parent's own. */
		assert_int_equal(fork_site(), end);
		write_file(dir, "sitecat", end ? "other\n" : "feat\n", 0644);
		assert_int_equal(fork_site(), !end);
	}
}

/* ---- The control functions ------------------------------------------------- */

/* Directories under the scratch directory: a and e name the feature, b
 * does not, d has no file, c is missing. Each step switches to one, and
 * the site must answer for it at once, in either mode. */
static void test_a_site_follows_set_dir_to_each_directory(void **state)
{
	static const struct {
		const char *sub; /* NULL: back to the default */
		bool active;
	} seq[] = {
	        {"a", true},  {"b", false}, {"a", true},  {"c", false}, {"a", true},
	        {"d", false}, {"b", false}, {"a", true},  {"a", true},  {NULL, false},
	        {"a", true},  {"e", true},  {"b", false}, {"e", true},
	};
	const char *top = scratch_dir(state);
	char sub[400], category[32], feature[32];

	runtime_names(category, sizeof(category), feature, sizeof(feature));
	snprintf(sub, sizeof(sub), "%s/a", top);
	make_dir_with_mode(sub, 0700);
	write_file(sub, "sitecat", "feat\n", 0644);
	snprintf(sub, sizeof(sub), "%s/b", top);
	make_dir_with_mode(sub, 0700);
	write_file(sub, "sitecat", "other\n", 0644);
	snprintf(sub, sizeof(sub), "%s/d", top);
	make_dir_with_mode(sub, 0700);
	snprintf(sub, sizeof(sub), "%s/e", top);
	make_dir_with_mode(sub, 0700);
	write_file(sub, "sitecat", "other\nfeat\n", 0644);
	/* The default must be a directory without the file (CTest's is
	 * /nonexistent/wrench-tests). */
	assert_int_equal(wrench_set_dir(NULL), 0);
	char path[PATH_MAX];
	bool default_usable =
	        wrench_get_dir() &&
	        access(path_in(wrench_get_dir(), "sitecat", path, sizeof(path)), F_OK) != 0;
	if (!default_usable)
		printf("the default directory has a file sitecat: its step is left out\n");

	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
			if (!seq[i].sub && !default_usable)
				continue;
			if (seq[i].sub)
				snprintf(sub, sizeof(sub), "%s/%s", top, seq[i].sub);
			assert_int_equal(wrench_set_dir(seq[i].sub ? sub : NULL), 0);
			for (int call = 0; call < 3; call++) {
				if (wrench_is_active("sitecat", "feat") != seq[i].active)
					fail_msg("in %s, call %d did not answer %s",
					         seq[i].sub ? seq[i].sub : "the default", call + 1,
					         seq[i].active ? "true" : "false");
				assert_int_equal(wrench_is_active(category, feature),
				                 seq[i].active);
			}
		}
	}
}

#define DRAWS 64

/* The decisions of one site, N calls in a row. */
static void draw_at_site(bool *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = wrench_is_active("sitecat", "feat");
}

static void test_a_seeded_site_repeats_its_chance_decisions_after_set_seed(void **state)
{
	bool first[DRAWS], again[DRAWS], other[DRAWS], back[DRAWS];
	uint64_t seed = 42, another = 43;
	size_t fired = 0;

	write_file(scratch_dir(state), "sitecat", "feat chance=0.5 scope=process\n", 0644);
	wrench_set_seed(&seed);
	draw_at_site(first, DRAWS);
	wrench_set_seed(&seed);
	draw_at_site(again, DRAWS);
	wrench_set_seed(&another);
	draw_at_site(other, DRAWS);
	wrench_set_seed(&seed);
	draw_at_site(back, DRAWS);
	wrench_set_seed(NULL);

	for (size_t i = 0; i < DRAWS; i++)
		fired += first[i];
	/* Decisions, not a constant: both answers come up. */
	assert_true(fired > 0 && fired < DRAWS);
	assert_memory_equal(first, again, sizeof(first));
	assert_memory_equal(first, back, sizeof(first));
	assert_memory_not_equal(first, other, sizeof(first));
}

/* Off, a site answers false and does nothing: a times=1 line is not spent
 * by the calls made while off, and a kill line kills no one. */
static void child_calls_a_kill_line(bool on)
{
	wrench_set_enabled(on);
	for (int i = 0; i < 3; i++)
		if (wrench_is_active("sitecat", "kill"))
			_exit(1);
	_exit(0);
}

static void test_a_site_switched_off_answers_false_and_takes_no_action(void **state)
{
	const char *dir = scratch_dir(state);

	write_file(dir, "sitecat", "feat times=1 scope=process\nkill kill\n", 0644);
	wrench_set_enabled(false);
	for (int i = 0; i < 5; i++)
		assert_false(wrench_is_active("sitecat", "feat"));
	wrench_set_enabled(true);
	assert_true(wrench_is_active("sitecat", "feat"));
	assert_false(wrench_is_active("sitecat", "feat"));

	pid_t pid = fork_child();
	if (pid == 0)
		child_calls_a_kill_line(false);
	int status = wait_for_child(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("switched off, the kill line's site did something (status 0x%x)", status);
	/* The same site switched on kills: the line is not inert. */
	pid = fork_child();
	if (pid == 0)
		child_calls_a_kill_line(true);
	status = wait_for_child(pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("switched on, the kill line's site did not kill (status 0x%x)", status);
}

/* Changes made while the switch is off are seen by the first call after
 * it is back on, quiet to active and back. */
static void test_a_site_sees_changes_made_while_switched_off(void **state)
{
	const char *dir = scratch_dir(state);

	need_strict_visibility();
	for (int round = 0; round < 3; round++) {
		write_file(dir, "sitecat", "other\n", 0644);
		assert_false(wrench_is_active("sitecat", "feat"));
		wrench_set_enabled(false);
		write_file(dir, "sitecat", "feat\n", 0644);
		assert_false(wrench_is_active("sitecat", "feat"));
		wrench_set_enabled(true);
		assert_true(wrench_is_active("sitecat", "feat"));

		wrench_set_enabled(false);
		set_file(dir, "sitecat", NULL);
		assert_false(wrench_is_active("sitecat", "feat"));
		wrench_set_enabled(true);
		assert_false(wrench_is_active("sitecat", "feat"));
	}
}

/* ---- Threads ---------------------------------------------------------------- */

#define READERS 2
#define CYCLES  25

/*
 * VERSION is 2k once k changes of FILE_CYCLE have completed (from the
 * file naming the feature), and odd while change k + 1 is under way. A
 * reader that reads the same even version before and after its call made
 * that call with change k completed before it started and the next not
 * begun: the answer must be that of change k. Other calls may meet a
 * change in flight, and either answer is right.
 */
struct flips {
	_Atomic unsigned version;
	_Atomic bool stop;
	struct reader {
		struct flips *flips;
		_Atomic unsigned judged; /* 1 + the last version it judged a call at */
		unsigned long calls, judged_calls, in_flight, wrong;
		unsigned first_wrong_version;
	} reader[READERS];
};

static bool active_at(unsigned version)
{
	unsigned done = version / 2;
	return done == 0 || file_cycle[(done - 1) % FILE_CYCLE].active;
}

static void *site_reader(void *arg)
{
	struct reader *r = arg;
	struct flips *f = r->flips;

	while (!atomic_load(&f->stop)) {
		unsigned before = atomic_load(&f->version);
		bool got = wrench_is_active("sitecat", "feat");
		unsigned after = atomic_load(&f->version);
		r->calls++;
		if (before != after || before % 2) {
			r->in_flight++;
			continue;
		}
		r->judged_calls++;
		if (got != active_at(before) && r->wrong++ == 0)
			r->first_wrong_version = before;
		atomic_store(&r->judged, before + 1);
	}
	return NULL;
}

/* Waits until every reader has judged a call at VERSION. */
static bool readers_judged(struct flips *f, unsigned version, uint64_t deadline)
{
	for (int i = 0; i < READERS; i++) {
		while (atomic_load(&f->reader[i].judged) < version + 1) {
			if (now_ns() > deadline)
				return false;
			sched_yield();
		}
	}
	return true;
}

static void test_threads_at_one_site_see_each_completed_change(void **state)
{
	const char *dir = scratch_dir(state);
	struct flips f = {0};
	pthread_t thread[READERS];
	const char *failed = NULL;

	need_strict_visibility();
	write_file(dir, "sitecat", "feat\n", 0644);
	for (int i = 0; i < READERS; i++) {
		f.reader[i].flips = &f;
		assert_int_equal(pthread_create(&thread[i], NULL, site_reader, &f.reader[i]), 0);
	}
	uint64_t deadline = now_ns() + 2 * DEADLINE_NS;
	unsigned changes = CYCLES * FILE_CYCLE;
	if (!readers_judged(&f, 0, deadline))
		failed = "the readers never judged a call";
	for (unsigned k = 1; k <= changes && !failed; k++) {
		atomic_store(&f.version, 2 * k - 1);
		int rc = make_change(dir, "sitecat", &file_cycle[(k - 1) % FILE_CYCLE]);
		atomic_store(&f.version, 2 * k);
		if (rc < 0)
			failed = file_cycle[(k - 1) % FILE_CYCLE].what;
		else if (!readers_judged(&f, 2 * k, deadline))
			failed = "a reader judged no call after a change before the deadline";
	}
	atomic_store(&f.stop, true);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_join(thread[i], NULL), 0);

	for (int i = 0; i < READERS; i++) {
		struct reader *r = &f.reader[i];
		printf("reader %d: %lu calls, %lu judged, %lu met a change in flight, %lu wrong\n",
		       i, r->calls, r->judged_calls, r->in_flight, r->wrong);
	}
	for (int i = 0; i < READERS; i++) {
		struct reader *r = &f.reader[i];
		unsigned v = r->first_wrong_version;
		if (r->wrong)
			fail_msg("reader %d: %lu wrong answers; the first after the file was %s", i,
			         r->wrong,
			         v ? file_cycle[(v / 2 - 1) % FILE_CYCLE].what : "written");
	}
	if (failed)
		fail_msg("%s", failed);
	/* Every state was judged by each reader. */
	for (int i = 0; i < READERS; i++)
		assert_true(f.reader[i].judged_calls >= changes + 1);
}

/* ---- NULL at a site ------------------------------------------------------------ */

static void test_null_names_at_a_site_answer_false_and_log_once(void **state)
{
	const char *volatile none = NULL;

	/* A file a call with real names would honour. */
	write_file(scratch_dir(state), "sitecat", "sitenull\nnullrt\n", 0644);
	for (int i = 0; i < 100; i++) {
		assert_false(wrench_is_active(NULL, "sitenull"));
		assert_false(wrench_is_active("sitecat", NULL));
		assert_false(wrench_is_active(NULL, NULL));
		assert_false(wrench_is_active(none, "nullrt"));
	}
	size_t errors = log_count(WRENCH_LOG_ERROR, "");
	size_t category = log_count(WRENCH_LOG_ERROR, "wrench_is_active(NULL, \"sitenull\") "
	                                              "was given a NULL category");
	size_t feature = log_count(WRENCH_LOG_ERROR, "wrench_is_active(\"sitecat\", NULL) "
	                                             "was given a NULL feature");
	size_t both = log_count(WRENCH_LOG_ERROR, "wrench_is_active(NULL, NULL) "
	                                          "was given a NULL category");
	size_t runtime = log_count(WRENCH_LOG_ERROR, "wrench_is_active(NULL, \"nullrt\") "
	                                             "was given a NULL category");
	if (category != 1 || feature != 1 || both != 1 || runtime != 1 || errors != 4) {
		log_dump();
		fail_msg("want one ERROR for each of the four NULL sites, over 100 calls each");
	}
	/* The names were the only reason. */
	assert_true(wrench_is_active("sitecat", "sitenull"));
}

static int site_teardown(void **state)
{
	wrench_set_enabled(true);
	wrench_set_seed(NULL);
	return scratch_teardown(state);
}

#define SITE_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, site_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        SITE_TEST(test_a_literal_site_sees_every_change_by_its_next_call),
	        SITE_TEST(test_run_time_names_see_every_change_by_the_next_call),
	        SITE_TEST(test_a_literal_site_sees_every_change_within_the_period_in_relaxed_mode),
	        SITE_TEST(test_sites_of_one_point_and_of_others_answer_independently),
	        SITE_TEST(test_two_sites_of_one_point_share_its_counters),
	        SITE_TEST(test_a_site_with_run_time_names_answers_for_each_call_s_names),
	        SITE_TEST(test_a_site_in_an_inline_helper_answers_for_each_caller_s_feature),
	        SITE_TEST(test_a_site_in_a_plug_in_answers_across_dlclose_and_dlopen),
	        SITE_TEST(test_a_forked_child_and_its_parent_each_see_changes_at_a_used_site),
	        SITE_TEST(test_a_site_follows_set_dir_to_each_directory),
	        SITE_TEST(test_a_seeded_site_repeats_its_chance_decisions_after_set_seed),
	        SITE_TEST(test_a_site_switched_off_answers_false_and_takes_no_action),
	        SITE_TEST(test_a_site_sees_changes_made_while_switched_off),
	        SITE_TEST(test_threads_at_one_site_see_each_completed_change),
	        SITE_TEST(test_null_names_at_a_site_answer_false_and_log_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
