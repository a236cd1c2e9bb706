/*
 * Which trigger files are honoured: every trust rule of wrench(5). A refused
 * file answers false and logs one ERROR that names the path, what is wrong
 * and how to fix it; an honoured one answers true. Each rule is also shown
 * met (the same setup with the problem gone answers true), so that a
 * library refusing everything cannot pass.
 */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Not root, not the test's uid: the owner of files that must be refused. */
#define OTHER_UID 12345

/* Fails, showing the captured log, when any ERROR mentions NEEDLE. */
#define assert_no_error_about(needle)                                                              \
	do {                                                                                       \
		if (log_count(WRENCH_LOG_ERROR, (needle)) != 0) {                                  \
			log_dump();                                                                \
			fail_msg("unexpected ERROR about %s", (needle));                           \
		}                                                                                  \
	} while (0)

/* Writes LEN bytes, NUL bytes included, to DIR/NAME with MODE. */
static void write_bytes(const char *dir, const char *name, const char *content, size_t len,
                        mode_t mode)
{
	char path[512];
	int fd = open(path_in(dir, name, path, sizeof(path)),
	              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* A valid trigger file of exactly SIZE bytes naming "feat": the feature
 * line, then one long comment line as padding. */
static char *padded_trigger(size_t size)
{
	static const char head[] = "feat\n#";
	char *text = malloc(size + 1);
	assert_non_null(text);
	assert_true(size > sizeof(head));
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'x', size - sizeof(head));
	text[size - 1] = '\n';
	text[size] = '\0';
	return text;
}

/* Binds a Unix socket at DIR/NAME, mode 0600; returns its descriptor. */
static int bind_socket(const char *dir, const char *name)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char path[512];
	path_in(dir, name, path, sizeof(path));
	assert_true(strlen(path) < sizeof(addr.sun_path));
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	/* Only the file type may be wrong, not the mode the umask gave it. */
	assert_int_equal(chmod(path, 0600), 0);
	return fd;
}

/* ---- File modes --------------------------------------------------------- */

static void test_file_writable_by_group_or_others_is_ignored(void **state)
{
	static const mode_t modes[] = {0620, 0602, 0666, 0664};
	const char *dir = scratch_dir(state);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char category[32], path[512], mode[32];
		snprintf(category, sizeof(category), "mode-%04o", (unsigned)modes[i]);
		snprintf(mode, sizeof(mode), "mode %04o", (unsigned)modes[i]);
		write_file(dir, category, "feat\n", modes[i]);
		path_in(dir, category, path, sizeof(path));

		assert_false(wrench_is_active(category, "feat"));
		assert_error_logged(path, "writable by group or others", mode, "chmod go-w");
	}
}

static void test_file_writable_only_by_owner_is_honoured(void **state)
{
	static const mode_t modes[] = {0600, 0644, 0400};
	const char *dir = scratch_dir(state);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char category[32];
		snprintf(category, sizeof(category), "mode-%04o", (unsigned)modes[i]);
		write_file(dir, category, "feat\n", modes[i]);

		assert_true(wrench_is_active(category, "feat"));
	}
	assert_no_error_about(dir);
}

/* ---- File type and links ------------------------------------------------- */

static void test_symlink_to_good_file_is_ignored(void **state)
{
	const char *dir = scratch_dir(state);
	char link[512];
	write_file(dir, "real", "feat\n", 0644);
	assert_int_equal(symlink("real", path_in(dir, "cat", link, sizeof(link))), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(link, "symbolic link");
	/* The file it points to is fine on its own. */
	assert_true(wrench_is_active("real", "feat"));
}

static void test_dangling_symlink_is_ignored_with_an_error(void **state)
{
	const char *dir = scratch_dir(state);
	char link[512];
	assert_int_equal(
	        symlink("/nonexistent/wrench-target", path_in(dir, "cat", link, sizeof(link))), 0);

	assert_false(wrench_is_active("cat", "feat"));
	/* It exists as a link: the user must hear about it, not a silent miss. */
	assert_error_logged(link, "symbolic link");
}

static void test_file_with_two_hard_links_is_ignored(void **state)
{
	need_strict_visibility();
	const char *dir = scratch_dir(state);
	char path[512], other[512];
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_int_equal(link(path, path_in(dir, "second-name", other, sizeof(other))), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "2 hard links");

	/* Removing the extra link, as the message asks, makes it count again. */
	assert_int_equal(unlink(other), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

/* A link made after the load, in another directory, reaches no watch of
 * the trigger directory: the change (and any write through the new name)
 * is seen only through the watch on the file itself. */
static void test_hard_link_made_elsewhere_after_a_load_is_seen(void **state)
{
	need_strict_visibility();
	const char *dir = scratch_dir(state);
	char path[512], sub[512], other[600];
	write_file(dir, "cat", "feat\n", 0644);
	assert_true(wrench_is_active("cat", "feat"));
	assert_int_equal(mkdir(path_in(dir, "elsewhere", sub, sizeof(sub)), 0700), 0);
	assert_true(wrench_is_active("cat", "feat"));

	snprintf(other, sizeof(other), "%s/second-name", sub);
	assert_int_equal(link(path_in(dir, "cat", path, sizeof(path)), other), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "2 hard links");
}

/* In a child, so that a hang is a failed test rather than a stuck suite. */
static void query_fifo_with_alarm(void *arg)
{
	(void)arg;
	alarm(10);
	_exit(wrench_is_active("cat", "feat") ? 1 : 0);
}

static void test_fifo_without_writer_is_ignored_promptly(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	assert_int_equal(mkfifo(path_in(dir, "cat", path, sizeof(path)), 0644), 0);

	uint64_t start = now_ns();
	int status = run_in_child(query_fifo_with_alarm, NULL);
	uint64_t elapsed = now_ns() - start;
	if (WIFSIGNALED(status))
		fail_msg("wrench_is_active on a FIFO did not return (killed by signal %d)",
		         WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(elapsed < 5000000000u);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "not a regular file", "FIFO");
}

static void test_unix_socket_is_ignored(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	int fd = bind_socket(dir, "cat");
	path_in(dir, "cat", path, sizeof(path));

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "not a regular file", "socket");
	close(fd);
}

static void test_directory_named_like_the_category_is_ignored(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	make_dir_with_mode(path_in(dir, "cat", path, sizeof(path)), 0700);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "not a regular file", "directory");
}

static void test_character_device_is_ignored(void **state)
{
	if (!need_root("create a device node"))
		skip();
	const char *dir = scratch_dir(state);
	char path[512];
	struct stat null_dev;
	assert_int_equal(stat("/dev/null", &null_dev), 0);
	/* The same device as /dev/null: opening it by mistake is harmless. */
	if (mknod(path_in(dir, "cat", path, sizeof(path)), S_IFCHR | 0644, null_dev.st_rdev) != 0) {
		fprintf(stderr, "skipped: mknod refused here (%s)\n", strerror(errno));
		skip();
	}

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "not a regular file", "character device");
}

/* ---- Size and contents -------------------------------------------------- */

/* 65,535 bytes: the most that Go's bufio.Scanner, which Juju's agents
 * read the files with, reads whatever the lines. */
static void test_file_of_65535_bytes_is_honoured(void **state)
{
	char *text = padded_trigger(65535);
	write_file(scratch_dir(state), "cat", text, 0644);
	free(text);

	assert_true(wrench_is_active("cat", "feat"));
	assert_no_error_about(scratch_dir(state));
}

/* 64 KiB may hold a line of 65,536 bytes, which Go fails to read: the
 * file is refused here too, so that it means the same to both. */
static void test_file_of_64_kib_is_ignored(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	char *text = padded_trigger(65536);
	write_file(dir, "cat", text, 0644);
	free(text);
	path_in(dir, "cat", path, sizeof(path));

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "65536 bytes", "more than the 65535 allowed", "fix: shorten it");
}

static void test_file_with_nul_byte_is_ignored(void **state)
{
	static const char text[] = "feat\nx\0y\n";
	const char *dir = scratch_dir(state);
	char path[512];
	write_bytes(dir, "cat", text, sizeof(text) - 1, 0644);
	path_in(dir, "cat", path, sizeof(path));

	/* Even the well-formed line before the NUL does not count. */
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "NUL", "offset 6");
}

/* ---- Owners ------------------------------------------------------------- */

static void test_file_owned_by_another_uid_is_ignored(void **state)
{
	need_strict_visibility();
	if (!need_root("chown a trigger file to another uid"))
		skip();
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));
	assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(path, "owned by uid 12345", "chown");

	assert_int_equal(chown(path, 0, 0), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

/*
 * Runs with euid OTHER_UID, so that "owned by root" and "owned by the
 * effective uid" are different owners. Reports what went wrong as bits of
 * the exit status: the child's log is not visible to the parent.
 */
enum {
	ROOT_FILE_REFUSED = 1 << 0,
	EUID_FILE_REFUSED = 1 << 1,
	FOREIGN_FILE_HONOURED = 1 << 2,
	FOREIGN_FILE_NOT_REPORTED = 1 << 3,
	CANNOT_DROP_PRIVILEGES = 1 << 4,
};

static void query_owners_as_other_uid(void *arg)
{
	const char *dir = arg;
	char path[512];
	int bad = 0;

	if (setgroups(0, NULL) != 0 || setresgid(OTHER_UID, OTHER_UID, OTHER_UID) != 0 ||
	    setresuid(OTHER_UID, OTHER_UID, OTHER_UID) != 0)
		_exit(CANNOT_DROP_PRIVILEGES);
	if (!wrench_is_active("root-owned", "feat"))
		bad |= ROOT_FILE_REFUSED;
	if (!wrench_is_active("euid-owned", "feat"))
		bad |= EUID_FILE_REFUSED;
	if (wrench_is_active("foreign", "feat"))
		bad |= FOREIGN_FILE_HONOURED;
	if (!log_has(WRENCH_LOG_ERROR, path_in(dir, "foreign", path, sizeof(path)),
	             "owned by uid 12346", "uid 12345", (const char *)NULL))
		bad |= FOREIGN_FILE_NOT_REPORTED;
	_exit(bad);
}

static void test_files_owned_by_root_or_the_effective_uid_are_honoured(void **state)
{
	if (!need_root("run as another uid"))
		skip();
	const char *dir = scratch_dir(state);
	char path[512];
	/* The unprivileged child must be able to reach the files. */
	assert_int_equal(chmod(dir, 0755), 0);
	write_file(dir, "root-owned", "feat\n", 0644);
	write_file(dir, "euid-owned", "feat\n", 0644);
	assert_int_equal(
	        chown(path_in(dir, "euid-owned", path, sizeof(path)), OTHER_UID, OTHER_UID), 0);
	write_file(dir, "foreign", "feat\n", 0644);
	assert_int_equal(chown(path_in(dir, "foreign", path, sizeof(path)), OTHER_UID + 1, 0), 0);

	int status = run_in_child(query_owners_as_other_uid, (void *)dir);
	assert_true(WIFEXITED(status));
	int bad = WEXITSTATUS(status);
	if (bad & CANNOT_DROP_PRIVILEGES)
		fail_msg("could not switch to uid %d", OTHER_UID);
	if (bad & ROOT_FILE_REFUSED)
		fail_msg("a file owned by root was refused to uid %d", OTHER_UID);
	if (bad & EUID_FILE_REFUSED)
		fail_msg("a file owned by the effective uid %d was refused", OTHER_UID);
	if (bad & FOREIGN_FILE_HONOURED)
		fail_msg("a file owned by uid %d was honoured for uid %d", OTHER_UID + 1,
		         OTHER_UID);
	if (bad & FOREIGN_FILE_NOT_REPORTED)
		fail_msg("no ERROR naming the foreign owner 12346 and the process uid 12345");
	assert_int_equal(bad, 0);
}

/* ---- The wrench directory ------------------------------------------------ */

static void test_wrench_dir_that_is_a_symlink_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	char real[512], link[512];
	make_dir_with_mode(path_in(dir, "real", real, sizeof(real)), 0700);
	write_file(real, "cat", "feat\n", 0644);
	assert_int_equal(symlink("real", path_in(dir, "link", link, sizeof(link))), 0);

	assert_int_equal(wrench_set_dir(link), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(link, "symbolic link");

	assert_int_equal(wrench_set_dir(real), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

static void test_wrench_dir_that_is_a_file_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	char file[512];
	write_file(dir, "not-a-dir", "feat\n", 0644);
	path_in(dir, "not-a-dir", file, sizeof(file));

	assert_int_equal(wrench_set_dir(file), 0);
	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(file, "not a directory");
}

static void test_group_writable_wrench_dir_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_int_equal(chmod(dir, 0770), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(dir, "writable by group or others", "mode 0770", "chmod go-w");
}

static void test_world_writable_sticky_wrench_dir_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	/* The sticky bit excuses ancestors such as /tmp, never the directory
	 * that holds the trigger files: anyone could create one there. */
	assert_int_equal(chmod(dir, 01777), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(dir, "writable by group or others", "chmod go-w");
}

/* "dir/." and "dir/./" name the wrench directory itself, not an ancestor:
 * the sticky bit must not excuse it however the path is spelt. */
static void test_sticky_wrench_dir_is_refused_however_its_path_is_spelt(void **state)
{
	static const char *const suffixes[] = {"", "/", "//", "/.", "/./", "/./."};
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_int_equal(chmod(dir, 01777), 0);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char spelt[512];
		snprintf(spelt, sizeof(spelt), "%s%s", dir, suffixes[i]);
		assert_int_equal(wrench_set_dir(spelt), 0);
		if (wrench_is_active("cat", "feat"))
			fail_msg("a world-writable sticky wrench directory set as \"%s\" was "
			         "trusted",
			         spelt);
	}
}

static void test_wrench_dir_owned_by_another_uid_is_refused(void **state)
{
	if (!need_root("chown the wrench directory to another uid"))
		skip();
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_int_equal(chown(dir, OTHER_UID, OTHER_UID), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(dir, "owned by uid 12345", "chown");
}

/* ---- Ancestors ----------------------------------------------------------- */

/* Builds DIR/anc (mode ANC_MODE) / wrench (0700) holding a good trigger
 * file "cat", and makes it the wrench directory. */
static void make_tree_under_ancestor(const char *dir, mode_t anc_mode, char *anc, char *wrench,
                                     size_t len)
{
	path_in(dir, "anc", anc, len);
	path_in(anc, "wrench", wrench, len);
	assert_int_equal(mkdir(anc, 0700), 0);
	make_dir_with_mode(wrench, 0700);
	write_file(wrench, "cat", "feat\n", 0644);
	assert_int_equal(chmod(anc, anc_mode), 0);
	assert_int_equal(wrench_set_dir(wrench), 0);
}

static void test_group_writable_ancestor_is_refused(void **state)
{
	char anc[512], wrench[512];
	make_tree_under_ancestor(scratch_dir(state), 0770, anc, wrench, sizeof(anc));

	assert_false(wrench_is_active("cat", "feat"));
	/* The mode tells it from the wrench directory below, which is 0700. */
	assert_error_logged(anc, "writable by group or others", "mode 0770", "chmod go-w");
}

static void test_world_writable_ancestor_is_refused(void **state)
{
	char anc[512], wrench[512];
	make_tree_under_ancestor(scratch_dir(state), 0777, anc, wrench, sizeof(anc));

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(anc, "writable by group or others", "mode 0777", "chmod go-w");
}

static void test_sticky_world_writable_ancestor_is_accepted(void **state)
{
	char anc[512], wrench[512];
	/* Like /tmp: others may create entries but not replace ours. */
	make_tree_under_ancestor(scratch_dir(state), 01777, anc, wrench, sizeof(anc));

	assert_true(wrench_is_active("cat", "feat"));
	assert_no_error_about(anc);
}

static void test_ancestor_owned_by_another_uid_is_refused(void **state)
{
	if (!need_root("chown an ancestor directory to another uid"))
		skip();
	char anc[512], wrench[512];
	make_tree_under_ancestor(scratch_dir(state), 0755, anc, wrench, sizeof(anc));
	assert_int_equal(chown(anc, OTHER_UID, OTHER_UID), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(anc, "owned by uid 12345", "chown");
}

static void test_symlink_among_ancestors_is_refused(void **state)
{
	const char *dir = scratch_dir(state);
	char anc[512], wrench[512], link[512], via_link[512];
	make_tree_under_ancestor(dir, 0755, anc, wrench, sizeof(anc));
	assert_int_equal(symlink("anc", path_in(dir, "anc-link", link, sizeof(link))), 0);
	assert_int_equal(wrench_set_dir(path_in(link, "wrench", via_link, sizeof(via_link))), 0);

	assert_false(wrench_is_active("cat", "feat"));
	assert_error_logged(link, "symbolic link");

	assert_int_equal(wrench_set_dir(wrench), 0);
	assert_true(wrench_is_active("cat", "feat"));
}

/* ---- Categories ---------------------------------------------------------- */

static void test_category_of_name_max_bytes_is_honoured(void **state)
{
	char category[NAME_MAX + 1];
	memset(category, 'c', NAME_MAX);
	category[NAME_MAX] = '\0';
	/* Written directly: write_file's temporary name would be too long. */
	write_bytes(scratch_dir(state), category, "feat\n", 5, 0644);

	assert_true(wrench_is_active(category, "feat"));
}

/*
 * Categories that are not one path component. Each is laid out so that a
 * library that did build and open "<dir>/<category>" would find a good
 * trigger file naming "feat" (or the wrench directory itself), and so
 * answer true; and with DEBUG messages on, a library that looked would say
 * what it found ("does not exist", "not a regular file", ...).
 */
static void test_category_that_is_not_one_path_component_is_never_looked_up(void **state)
{
	const char *dir = scratch_dir(state);
	char wrench[512], sub[512], bait[512], too_long[NAME_MAX + 2];
	path_in(dir, "w", wrench, sizeof(wrench));
	make_dir_with_mode(wrench, 0700);
	make_dir_with_mode(path_in(wrench, "a", sub, sizeof(sub)), 0700);
	write_file(sub, "b", "feat\n", 0644);
	write_file(dir, "x", "feat\n", 0644);
	path_in(dir, "x", bait, sizeof(bait));
	memset(too_long, 'c', NAME_MAX + 1);
	too_long[NAME_MAX + 1] = '\0';

	/* The bait files themselves are good trigger files. */
	assert_int_equal(wrench_set_dir(sub), 0);
	assert_true(wrench_is_active("b", "feat"));
	assert_int_equal(wrench_set_dir(dir), 0);
	assert_true(wrench_is_active("x", "feat"));

	assert_int_equal(wrench_set_dir(wrench), 0);
	log_capture_reset();
	wrench__set_log_threshold(WRENCH_LOG_DEBUG);
	const char *categories[] = {"",   ".",     "..", "../x",        "a/b",
	                            "a/", "./a/b", bait, "/etc/passwd", too_long};
	for (size_t i = 0; i < sizeof(categories) / sizeof(categories[0]); i++) {
		if (wrench_is_active(categories[i], "feat")) {
			wrench__set_log_threshold(WRENCH_LOG_WARN);
			fail_msg("category \"%s\" was looked up and answered true", categories[i]);
		}
	}
	wrench__set_log_threshold(WRENCH_LOG_WARN);

	static const char *lookups[] = {"does not exist",    "not a regular file", "symbolic link",
	                                "writable by group", "owned by uid",       "fired"};
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		for (int level = WRENCH_LOG_ERROR; level <= WRENCH_LOG_DEBUG; level++) {
			if (log_count((enum wrench_log_level)level, lookups[i]) != 0) {
				log_dump();
				fail_msg("an invalid category was looked up: \"%s\" logged",
				         lookups[i]);
			}
		}
	}
}

static void test_invalid_category_does_not_flood_the_log(void **state)
{
	(void)state;
	/* A failure point with a bad category in a hot loop. */
	for (int i = 0; i < 100; i++)
		assert_false(wrench_is_active("a/b", "feat"));

	if (log_capture_count() > 1) {
		log_dump();
		fail_msg("100 calls with an invalid category logged %zu messages at WARN or above",
		         log_capture_count());
	}
}

/* ---- Missing files ------------------------------------------------------- */

/* A file that was never there is the normal case: it is not a race. */
static void test_file_that_never_existed_is_said_not_to_exist(void **state)
{
	char path[512], expected[600];
	path_in(scratch_dir(state), "missing", path, sizeof(path));
	snprintf(expected, sizeof(expected), "%s does not exist", path);

	wrench__set_log_threshold(WRENCH_LOG_DEBUG);
	assert_false(wrench_is_active("missing", "feat"));
	wrench__set_log_threshold(WRENCH_LOG_WARN);
	if (!log_has(WRENCH_LOG_DEBUG, expected, NULL) ||
	    log_count(WRENCH_LOG_DEBUG, "removed while") != 0) {
		log_dump();
		fail_msg("want a DEBUG saying \"%s\", and nothing about a removal", expected);
	}
}

/* Removes the trigger file as soon as the checks have opened it. */
static void remove_when_opened(int fd, enum wrench__opened what, const char *next, void *ctx)
{
	(void)fd;
	if (what == WRENCH__FILE)
		assert_int_equal(unlinkat(*(int *)ctx, next, 0), 0);
}

/* The real race: the file was there when opened and is gone by its check. */
static void test_file_removed_while_opened_says_so(void **state)
{
	const char *dir = scratch_dir(state);
	char path[512];
	struct wrench__file file;
	struct wrench__trust t = {.opened = remove_when_opened};
	write_file(dir, "cat", "feat\n", 0644);
	path_in(dir, "cat", path, sizeof(path));

	int dirfd = wrench__trust_open_dir(dir, &(struct wrench__trust){0});
	assert_true(dirfd >= 0);
	t.opened_ctx = &dirfd;
	assert_int_equal(wrench__trust_read_file(dirfd, "cat", path, &file, &t), -ENOENT);
	free(file.data);
	close(dirfd);
	assert_int_equal(t.problems, 1);
	assert_non_null(
	        strstr(t.first.message, "does not exist (it was removed while it was opened)"));
	assert_non_null(strstr(t.first.message, path));
}

/* ---- Logging once per change -------------------------------------------- */

static void test_file_problem_is_logged_once_per_change(void **state)
{
	need_strict_visibility();
	const char *dir = scratch_dir(state);
	char path[512];
	write_file(dir, "cat", "feat\n", 0664);
	path_in(dir, "cat", path, sizeof(path));

	for (int i = 0; i < 10; i++)
		assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, path), 1);

	/* Another problem with the same file is news. */
	assert_int_equal(chmod(path, 0666), 0);
	for (int i = 0; i < 10; i++)
		assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, path), 2);
	assert_error_logged(path, "mode 0666");

	/* Fixed, then broken again the same way: also news. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_true(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, path), 2);
	assert_int_equal(chmod(path, 0664), 0);
	for (int i = 0; i < 10; i++)
		assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, path), 3);
}

static void test_directory_problem_is_logged_once_per_change(void **state)
{
	need_strict_visibility();
	const char *dir = scratch_dir(state);
	write_file(dir, "cat", "feat\n", 0644);
	assert_int_equal(chmod(dir, 0770), 0);

	for (int i = 0; i < 10; i++)
		assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, dir), 1);

	assert_int_equal(chmod(dir, 0777), 0);
	for (int i = 0; i < 10; i++)
		assert_false(wrench_is_active("cat", "feat"));
	assert_int_equal(log_count(WRENCH_LOG_ERROR, dir), 2);
}

/* ---- Descriptors ---------------------------------------------------------- */

/* One trigger directory holding one of every kind of refused file, plus a
 * good one, a missing one and a malformed one. */
static const char *const zoo[] = {
        "good",   "bad-mode", "symlink", "dangling", "hard",      "fifo",    "socket",
        "subdir", "big",      "nul",     "missing",  "malformed", "../good", "",
};

static int make_zoo(const char *dir)
{
	char path[512], other[512];
	write_file(dir, "good", "feat\n", 0644);
	write_file(dir, "bad-mode", "feat\n", 0666);
	assert_int_equal(symlink("good", path_in(dir, "symlink", path, sizeof(path))), 0);
	assert_int_equal(symlink("/nonexistent", path_in(dir, "dangling", path, sizeof(path))), 0);
	write_file(dir, "hard", "feat\n", 0644);
	assert_int_equal(link(path_in(dir, "hard", path, sizeof(path)),
	                      path_in(dir, "hard-2", other, sizeof(other))),
	                 0);
	assert_int_equal(mkfifo(path_in(dir, "fifo", path, sizeof(path)), 0644), 0);
	make_dir_with_mode(path_in(dir, "subdir", path, sizeof(path)), 0700);
	char *text = padded_trigger(WRENCH_MAX_FILE_SIZE + 1);
	write_file(dir, "big", text, 0644);
	free(text);
	write_bytes(dir, "nul", "feat\n\0", 6, 0644);
	write_file(dir, "malformed", "feat chanse=1\n", 0644);
	return bind_socket(dir, "socket");
}

/* Queries every category of the zoo once, in a wrench directory that is
 * good, missing, then untrusted, with the files changing in between. */
static void query_zoo_round(const char *dir, unsigned round,
                            bool (*query)(const char *, const char *))
{
	char missing[512], path[512];
	path_in(dir, "no-such-dir", missing, sizeof(missing));

	/* New versions of the files take the paths that read and log. */
	assert_int_equal(
	        chmod(path_in(dir, "bad-mode", path, sizeof(path)), round % 2 ? 0666 : 0664), 0);
	write_file(dir, "good", round % 2 ? "feat\n" : "feat\nother\n", 0644);

	for (size_t i = 0; i < sizeof(zoo) / sizeof(zoo[0]); i++)
		query(zoo[i], "feat");
	assert_int_equal(wrench_set_dir(missing), 0);
	query("good", "feat");
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(wrench_set_dir(dir), 0);
	query("good", "feat");
	assert_int_equal(chmod(dir, 0700), 0);
	query("good", "feat");
}

static void test_no_descriptor_leaks_across_1000_calls(void **state)
{
	const char *dir = scratch_dir(state);
	int sock = make_zoo(dir);
	const unsigned calls_per_round = sizeof(zoo) / sizeof(zoo[0]) + 3;

	/* The first round opens whatever the library keeps (the directory). */
	query_zoo_round(dir, 0, wrench_is_active);
	size_t before = count_open_descriptors();
	unsigned calls = 0;
	for (unsigned round = 1; calls < 1000; round++) {
		query_zoo_round(dir, round, wrench_is_active);
		calls += calls_per_round;
	}
	size_t after = count_open_descriptors();
	close(sock);

	assert_int_equal(after, before);
}

/*
 * Every descriptor the library opens must be close-on-exec, or a child that
 * another thread of the agent forks and execs inherits it.
 *
 * Method: a descriptor the library opens during a call is, when the call
 * returns, either still open or closed again. The open ones are found by
 * looking at every descriptor number with fcntl(F_GETFD) after the calls.
 * The closed ones all pass through close(): this executable defines close()
 * itself (the library is linked statically, so its calls bind to this
 * definition), and while the test runs, our close() looks at the flags of
 * each descriptor just before closing it. Descriptors open before the test
 * started are left out; everything the test opens meanwhile (write_file,
 * rewrite_in_place) is close-on-exec, so any descriptor flagged is the
 * library's. To show the interposition is in effect, the test also asserts
 * that the library's own closes were seen.
 */
#define MAX_WATCHED_FD 4096

static bool fd_known[MAX_WATCHED_FD];
static bool watching, in_library;
static unsigned library_closes;
static int fd_offender = -1;

static void check_close_on_exec(int fd)
{
	if (fd < 0 || (fd < MAX_WATCHED_FD && fd_known[fd]))
		return;
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0 && !(flags & FD_CLOEXEC) && fd_offender < 0)
		fd_offender = fd;
}

int close(int fd)
{
	if (watching)
		check_close_on_exec(fd);
	if (in_library)
		library_closes++;
	return (int)syscall(SYS_close, fd);
}

static bool is_active_watched(const char *category, const char *feature)
{
	in_library = true;
	bool active = wrench_is_active(category, feature);
	in_library = false;
	for (int fd = 3; fd < MAX_WATCHED_FD; fd++)
		check_close_on_exec(fd);
	return active;
}

static int stop_watching_teardown(void **state)
{
	watching = in_library = false;
	return scratch_teardown(state);
}

static void test_every_library_descriptor_is_close_on_exec(void **state)
{
	const char *dir = scratch_dir(state);
	int sock = make_zoo(dir);
	write_file(dir, "fires", "feat\nslow slow=1ms\n", 0644);

	for (int fd = 0; fd < MAX_WATCHED_FD; fd++)
		fd_known[fd] = fcntl(fd, F_GETFD) >= 0;
	library_closes = 0;
	fd_offender = -1;
	watching = true;
	for (unsigned round = 0; round < 5; round++) {
		query_zoo_round(dir, round, is_active_watched);
		is_active_watched("fires", "feat");
		is_active_watched("fires", "slow");
	}
	watching = false;
	close(sock);

	if (fd_offender >= 0)
		fail_msg("descriptor %d was opened without FD_CLOEXEC during a call", fd_offender);
	/* Each round reads "good" and "fires", so their descriptors were
	 * closed at least that often. */
	if (library_closes < 5 * 2)
		fail_msg("only %u close() calls seen from the library: the check did not "
		         "take effect",
		         library_closes);
}

#define TRUST_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TRUST_TEST(test_file_writable_by_group_or_others_is_ignored),
	        TRUST_TEST(test_file_writable_only_by_owner_is_honoured),
	        TRUST_TEST(test_symlink_to_good_file_is_ignored),
	        TRUST_TEST(test_dangling_symlink_is_ignored_with_an_error),
	        TRUST_TEST(test_file_with_two_hard_links_is_ignored),
	        TRUST_TEST(test_hard_link_made_elsewhere_after_a_load_is_seen),
	        TRUST_TEST(test_fifo_without_writer_is_ignored_promptly),
	        TRUST_TEST(test_unix_socket_is_ignored),
	        TRUST_TEST(test_directory_named_like_the_category_is_ignored),
	        TRUST_TEST(test_character_device_is_ignored),
	        TRUST_TEST(test_file_of_65535_bytes_is_honoured),
	        TRUST_TEST(test_file_of_64_kib_is_ignored),
	        TRUST_TEST(test_file_with_nul_byte_is_ignored),
	        TRUST_TEST(test_file_owned_by_another_uid_is_ignored),
	        TRUST_TEST(test_files_owned_by_root_or_the_effective_uid_are_honoured),
	        TRUST_TEST(test_wrench_dir_that_is_a_symlink_is_refused),
	        TRUST_TEST(test_wrench_dir_that_is_a_file_is_refused),
	        TRUST_TEST(test_group_writable_wrench_dir_is_refused),
	        TRUST_TEST(test_world_writable_sticky_wrench_dir_is_refused),
	        TRUST_TEST(test_sticky_wrench_dir_is_refused_however_its_path_is_spelt),
	        TRUST_TEST(test_wrench_dir_owned_by_another_uid_is_refused),
	        TRUST_TEST(test_group_writable_ancestor_is_refused),
	        TRUST_TEST(test_world_writable_ancestor_is_refused),
	        TRUST_TEST(test_sticky_world_writable_ancestor_is_accepted),
	        TRUST_TEST(test_ancestor_owned_by_another_uid_is_refused),
	        TRUST_TEST(test_symlink_among_ancestors_is_refused),
	        TRUST_TEST(test_category_of_name_max_bytes_is_honoured),
	        TRUST_TEST(test_category_that_is_not_one_path_component_is_never_looked_up),
	        TRUST_TEST(test_invalid_category_does_not_flood_the_log),
	        TRUST_TEST(test_file_that_never_existed_is_said_not_to_exist),
	        TRUST_TEST(test_file_removed_while_opened_says_so),
	        TRUST_TEST(test_file_problem_is_logged_once_per_change),
	        TRUST_TEST(test_directory_problem_is_logged_once_per_change),
	        TRUST_TEST(test_no_descriptor_leaks_across_1000_calls),
	        cmocka_unit_test_setup_teardown(test_every_library_descriptor_is_close_on_exec,
	                                        scratch_setup, stop_watching_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
