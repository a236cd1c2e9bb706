/*
 * Fixtures shared by the test executables: a scratch wrench directory per
 * test, trigger files written with a chosen mode, and a logger that records
 * what the library says so that tests can assert on it.
 */
#ifndef WRENCH_TEST_SUPPORT_H
#define WRENCH_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "internal.h"
#include "wrench.h"

/* A scratch directory under /tmp, trusted, made the wrench directory. */
struct scratch {
	char dir[256];
};

/* Group setup/teardown helpers: make and remove a scratch directory (mode
 * 0700) and point the library at it; the recording logger is installed. */
int scratch_setup(void **state);
int scratch_teardown(void **state);
/* The same under /var/tmp, whose ancestors nothing else changes: in /tmp,
 * the other tests' directories come and go, and the watch on /tmp hears
 * of them, which a test of what happens when nothing changes cannot
 * have. */
int quiet_scratch_setup(void **state);

/* For a test that changes a file and asserts on the very next call: it
 * depends on strict mode, so it runs strict in the relaxed pass too.
 * scratch_setup() puts back the suite's mode for the next test. */
void need_strict_visibility(void);

/* Writes CONTENT to DIR/NAME through a temporary file renamed into place,
 * then sets MODE. Fails the test on any error. */
void write_file(const char *dir, const char *name, const char *content, mode_t mode);
/* The same without asserting, for threads other than the test's and for
 * forked children, where cmocka's asserts must not run: 0 or a negative
 * errno. */
int try_write_file(const char *dir, const char *name, const char *content, mode_t mode);
/* Writes all of TEXT to FD, across short writes: 0 or a negative errno. */
int write_all_text(int fd, const char *text);
/* Rewrites DIR/NAME in place (same inode), truncating it first. */
void rewrite_in_place(const char *dir, const char *name, const char *content);
/* Builds DIR/NAME into BUF. */
const char *path_in(const char *dir, const char *name, char *buf, size_t len);

/* The recording logger: every message delivered since the last reset. */
void log_capture_reset(void);
size_t log_capture_count(void);
/* Answers whether a message at LEVEL contains every NULL-terminated needle. */
bool log_has(enum wrench_log_level level, ...);
/* Number of messages at LEVEL containing NEEDLE. */
size_t log_count(enum wrench_log_level level, const char *needle);
/* Prints the captured log, for a failing test's diagnostics. */
void log_dump(void);
void log_capture_install(void);

/* Removes DIR's state sub-directory (the machine-wide counters), if any:
 * for tests that remove the directory itself, or start counting afresh. */
void remove_state_dir(const char *dir);

/* Counts how many of N calls of wrench_is_active(C, F) answer true. */
unsigned count_active(const char *category, const char *feature, unsigned n);

/* Fails, showing the captured log, unless one ERROR contains every needle. */
#define assert_error_logged(...)                                                                   \
	do {                                                                                       \
		if (!log_has(WRENCH_LOG_ERROR, __VA_ARGS__, (const char *)NULL)) {                 \
			log_dump();                                                                \
			fail_msg("no ERROR message containing all of: %s", #__VA_ARGS__);          \
		}                                                                                  \
	} while (0)

/* Makes the directory PATH with exactly MODE, whatever the umask. */
void make_dir_with_mode(const char *path, mode_t mode);

/* The scratch directory of a test set up by scratch_setup(). */
const char *scratch_dir(void **state);

/* The number of descriptors this process has open (/proc/self/fd; the
 * descriptor that reads it is counted too, the same every time). */
size_t count_open_descriptors(void);

/* Runs FN in a forked child; returns its wait status. */
int run_in_child(void (*fn)(void *), void *arg);

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);

/* Answers whether thread TID of this process is asleep (state S: waiting
 * for a lock, a sleep, an event), for a test that waits until another
 * thread blocks rather than for a fixed time. */
bool thread_is_asleep(pid_t tid);

/* Answers whether the tests run as root; prints why a test is skipped. */
bool need_root(const char *why);

#endif
