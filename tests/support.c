#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_CAPACITY 256

struct captured {
	enum wrench_log_level level;
	char message[WRENCH_MAX_MESSAGE];
};

/* The logger may be called from several threads in the stress tests. */
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static struct captured captured[LOG_CAPACITY];
static size_t captured_count;

static void record(enum wrench_log_level level, const char *message, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&capture_lock);
	if (captured_count < LOG_CAPACITY) {
		captured[captured_count].level = level;
		snprintf(captured[captured_count].message, sizeof(captured[0].message), "%s",
		         message);
		captured_count++;
	}
	pthread_mutex_unlock(&capture_lock);
}

void log_capture_install(void)
{
	wrench_set_logger(record, NULL);
}

void log_capture_reset(void)
{
	pthread_mutex_lock(&capture_lock);
	captured_count = 0;
	pthread_mutex_unlock(&capture_lock);
}

size_t log_capture_count(void)
{
	pthread_mutex_lock(&capture_lock);
	size_t n = captured_count;
	pthread_mutex_unlock(&capture_lock);
	return n;
}

bool log_has(enum wrench_log_level level, ...)
{
	bool found = false;

	pthread_mutex_lock(&capture_lock);
	for (size_t i = 0; i < captured_count && !found; i++) {
		if (captured[i].level != level)
			continue;
		va_list ap;
		va_start(ap, level);
		found = true;
		for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
			if (!strstr(captured[i].message, needle))
				found = false;
		va_end(ap);
	}
	pthread_mutex_unlock(&capture_lock);
	return found;
}

size_t log_count(enum wrench_log_level level, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&capture_lock);
	for (size_t i = 0; i < captured_count; i++)
		if (captured[i].level == level && strstr(captured[i].message, needle))
			n++;
	pthread_mutex_unlock(&capture_lock);
	return n;
}

void log_dump(void)
{
	static const char *names[] = {"error", "warn", "info", "debug"};

	pthread_mutex_lock(&capture_lock);
	for (size_t i = 0; i < captured_count; i++)
		fprintf(stderr, "  log[%zu] %s: %s\n", i, names[captured[i].level],
		        captured[i].message);
	pthread_mutex_unlock(&capture_lock);
}

const char *path_in(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	assert_true(n > 0 && (size_t)n < len);
	return buf;
}

int write_all_text(int fd, const char *text)
{
	size_t len = strlen(text);
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

int try_write_file(const char *dir, const char *name, const char *content, mode_t mode)
{
	char final[512], tmp[512];
	int n = snprintf(final, sizeof(final), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(final))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s/.tmp.%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = write_all_text(fd, content);
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, final) < 0)
		rc = -errno;
	return rc;
}

void write_file(const char *dir, const char *name, const char *content, mode_t mode)
{
	assert_int_equal(try_write_file(dir, name, content, mode), 0);
}

void rewrite_in_place(const char *dir, const char *name, const char *content)
{
	char path[512];
	path_in(dir, name, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all_text(fd, content), 0);
	assert_int_equal(close(fd), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The mode the suite runs in: CTest runs it strict, then relaxed. */
static unsigned recheck_ms_from_env(void)
{
	const char *text = getenv("WRENCH_RECHECK_MS");
	return text ? (unsigned)strtoul(text, NULL, 10) : 0;
}

void need_strict_visibility(void)
{
	wrench_set_recheck_ms(0);
}

static int scratch_setup_in(void **state, const char *template)
{
	struct scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "%s", template);
	if (!mkdtemp(s->dir)) {
		free(s);
		return -1;
	}
	log_capture_install();
	log_capture_reset();
	wrench_set_enabled(true);
	wrench_set_recheck_ms(recheck_ms_from_env());
	if (wrench_set_dir(s->dir) != 0) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

int scratch_setup(void **state)
{
	return scratch_setup_in(state, "/tmp/wrench-test.XXXXXX");
}

int quiet_scratch_setup(void **state)
{
	return scratch_setup_in(state, "/var/tmp/wrench-test.XXXXXX");
}

int scratch_teardown(void **state)
{
	struct scratch *s = *state;
	/* Make removable whatever a test chmod'ed or chown'ed. */
	chmod(s->dir, 0700);
	nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	wrench_set_dir(NULL);
	free(s);
	return 0;
}

void remove_state_dir(const char *dir)
{
	char path[512];
	path_in(dir, WRENCH_STATE_DIR, path, sizeof(path));
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

unsigned count_active(const char *category, const char *feature, unsigned n)
{
	unsigned active = 0;
	for (unsigned i = 0; i < n; i++)
		active += wrench_is_active(category, feature);
	return active;
}

int run_in_child(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool thread_is_asleep(pid_t tid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	/* The state follows the command name, which may hold anything. */
	const char *end = strrchr(line, ')');
	return end && end[1] == ' ' && end[2] == 'S';
}

bool need_root(const char *why)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "skipped: needs root to %s\n", why);
	return false;
}

const char *scratch_dir(void **state)
{
	return ((struct scratch *)*state)->dir;
}

size_t count_open_descriptors(void)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void make_dir_with_mode(const char *path, mode_t mode)
{
	assert_int_equal(mkdir(path, mode), 0);
	/* mkdir honours the umask; the tests need the exact mode. */
	assert_int_equal(chmod(path, mode), 0);
}
