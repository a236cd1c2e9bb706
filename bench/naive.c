/*
 * The reference the benchmark compares against: the per-call algorithm of
 * Juju's Go wrench package, written in C. Every call stats the directory
 * and the file, checks the file's owner and mode, then opens it and scans
 * its lines for the feature.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "naive.h"

static bool line_is(const char *line, size_t len, const char *feature)
{
	while (len && strchr(" \t\r", *line)) {
		line++;
		len--;
	}
	while (len && strchr(" \t\r", line[len - 1]))
		len--;
	return len == strlen(feature) && memcmp(line, feature, len) == 0;
}

bool naive_is_active(const char *dir, const char *category, const char *feature)
{
	char path[4096], buf[65536];
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, category);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	for (ssize_t start = 0; start < n;) {
		const char *nl = memchr(buf + start, '\n', (size_t)(n - start));
		ssize_t end = nl ? nl - buf : n;
		if (line_is(buf + start, (size_t)(end - start), feature))
			return true;
		start = end + 1;
	}
	return false;
}
