/*
 * The failure points read from a binary (cli/binary.c, for `wrench points
 * --binary`): the exact list of literal points of a program built as a PIE,
 * as a non-PIE and with --gc-sections, and of a shared library; clear
 * refusals of files that are no such thing; and no crash, whatever bytes
 * the file holds.
 */
#include "support.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binary.h"

/* What points_program.c and points_no_sites.c compile in: sorted, each
 * once; without the names made at run time, the invalid names and the one
 * longer than 4096 bytes. */
static const char *const program_points[][2] = {
        {"cache", "full"}, {"disk", "enospc"}, {"long", NULL},
        {"net", "accept"}, {"net", "connect"}, {"nosites", "still-listed"},
};

static char *long_feature(void)
{
	char *s = malloc(4097);

	assert_non_null(s);
	memset(s, 'x', 4096);
	s[4096] = '\0';
	return s;
}

static void assert_program_points(const char *path)
{
	struct binary_point *p;
	size_t n;
	char why[512] = "";
	char *longest = long_feature();

	assert_int_equal(binary_points(path, &p, &n, why, sizeof(why)), 0);
	assert_int_equal(n, sizeof(program_points) / sizeof(program_points[0]));
	for (size_t i = 0; i < n; i++) {
		const char *feature = program_points[i][1] ? program_points[i][1] : longest;
		assert_string_equal(p[i].category, program_points[i][0]);
		assert_string_equal(p[i].feature, feature);
	}
	free_binary_points(p, n);
	free(longest);
}

static void test_pie_program_lists_its_literal_points(void **state)
{
	(void)state;
	assert_program_points(POINTS_PIE);
}

static void test_non_pie_program_lists_its_literal_points(void **state)
{
	(void)state;
	assert_program_points(POINTS_NOPIE);
}

static void test_gc_sections_keeps_every_record(void **state)
{
	(void)state;
	assert_program_points(POINTS_GC);
}

/* lld leaves a relocated slot zero: the address is the addend of its
 * R_X86_64_RELATIVE entry (or the machine's own). */
static void test_addresses_from_rela_entries(void **state)
{
	(void)state;
#ifdef POINTS_LLD
	assert_program_points(POINTS_LLD);
#else
	skip();
#endif
}

/* With RELR, the loader adds its base to the address the slot holds. */
static void test_addresses_with_relr(void **state)
{
	(void)state;
#ifdef POINTS_RELR
	assert_program_points(POINTS_RELR);
#else
	skip();
#endif
}

static void test_shared_library_lists_its_literal_points(void **state)
{
	struct binary_point *p;
	size_t n;
	char why[512] = "";

	(void)state;
	assert_int_equal(binary_points(SITE_MODULE, &p, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].category, "sitecat");
	assert_string_equal(p[0].feature, "feat");
	assert_string_equal(p[1].category, "sitecat");
	assert_string_equal(p[1].feature, "other");
	free_binary_points(p, n);
}

/* Expects binary_points(PATH) to fail with ERR and a message holding
 * NEEDLE and the path. */
static void assert_refused(const char *path, int err, const char *needle)
{
	struct binary_point *p = (struct binary_point *)&p;
	size_t n = 1;
	char why[512] = "";

	assert_int_equal(binary_points(path, &p, &n, why, sizeof(why)), err);
	assert_null(p);
	assert_int_equal(n, 0);
	assert_non_null(strstr(why, needle));
	assert_non_null(strstr(why, path));
}

/* The library has no failure points of its own. */
static void test_binary_without_records_says_so(void **state)
{
	(void)state;
	assert_refused(LIBWRENCH, -ENODATA, "has no failure points recorded");
}

static void test_text_file_is_not_elf(void **state)
{
	char path[PATH_MAX];

	write_file(scratch_dir(state), "text", "net connect\n", 0644);
	assert_refused(path_in(scratch_dir(state), "text", path, sizeof(path)), -ENOEXEC,
	               "is not an ELF file");
}

static void test_missing_file_is_refused(void **state)
{
	char path[PATH_MAX];

	assert_refused(path_in(scratch_dir(state), "absent", path, sizeof(path)), -ENOENT,
	               "cannot open");
}

static void test_device_and_directory_are_refused(void **state)
{
	assert_refused("/dev/null", -EINVAL, "is not a regular file");
	assert_refused(scratch_dir(state), -EISDIR, "is not a regular file");
}

/* The bytes of the PIE program, to damage copies of. */
static unsigned char *read_program(size_t *size)
{
	int fd = open(POINTS_PIE, O_RDONLY | O_CLOEXEC);
	struct stat st;
	unsigned char *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	return buf;
}

static void write_copy(const char *path, const unsigned char *buf, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
}

/* Whatever the copy holds: a list of valid names, or a refusal with a
 * message; never a crash. */
static void assert_read_or_refused(const char *path)
{
	struct binary_point *p;
	size_t n;
	char why[512] = "";
	int rc = binary_points(path, &p, &n, why, sizeof(why));

	if (rc < 0) {
		assert_true(why[0] != '\0');
		return;
	}
	for (size_t i = 0; i < n; i++) {
		assert_true(wrench__category_is_valid(p[i].category));
		assert_null(wrench__feature_problem(p[i].feature));
		assert_true(strlen(p[i].feature) <= 4096);
	}
	free_binary_points(p, n);
}

static void test_truncated_copies_are_refused(void **state)
{
	char path[PATH_MAX];
	size_t size;
	unsigned char *buf = read_program(&size);

	path_in(scratch_dir(state), "truncated", path, sizeof(path));
	/* Every length through the headers, then steps through the rest. */
	for (size_t len = 0; len < size; len += len < 4096 ? 1 : 509) {
		write_copy(path, buf, len);
		assert_read_or_refused(path);
	}
	/* The section headers sit at the end: without their last byte the
	 * file is refused. */
	write_copy(path, buf, size - 1);
	struct binary_point *p;
	size_t n;
	char why[512] = "";
	assert_true(binary_points(path, &p, &n, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, path));
	write_copy(path, buf, size);
	assert_program_points(path);
	free(buf);
}

static void test_corrupted_copies_never_crash(void **state)
{
	char path[PATH_MAX];
	size_t size;
	unsigned char *buf = read_program(&size);
	unsigned char *copy = malloc(size);
	/* A fixed seed: a failure can be replayed. */
	unsigned seed = 12345;
	Elf64_Ehdr ehdr;

	assert_non_null(copy);
	assert_true(size > sizeof(Elf64_Ehdr));
	memcpy(&ehdr, buf, sizeof(ehdr));
	size_t shoff = ehdr.e_shoff < size ? (size_t)ehdr.e_shoff : 0;
	path_in(scratch_dir(state), "corrupted", path, sizeof(path));
	for (int round = 0; round < 400; round++) {
		memcpy(copy, buf, size);
		for (int k = 0; k < 1 + round % 16; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % size;
			/* Half the damage lands in the ELF header or the
			 * section headers, where it does most harm. */
			if (k % 2 == 0)
				at = k % 4 == 0 ? at % sizeof(Elf64_Ehdr)
				                : shoff + at % (size - shoff);
			copy[at] ^= (unsigned char)(1u << (seed % 8));
			if (round % 3 == 0)
				copy[at] = (unsigned char)(seed >> 16);
		}
		write_copy(path, copy, size);
		assert_read_or_refused(path);
	}
	free(copy);
	free(buf);
}

#define BINARY_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        BINARY_TEST(test_pie_program_lists_its_literal_points),
	        BINARY_TEST(test_non_pie_program_lists_its_literal_points),
	        BINARY_TEST(test_gc_sections_keeps_every_record),
	        BINARY_TEST(test_addresses_from_rela_entries),
	        BINARY_TEST(test_addresses_with_relr),
	        BINARY_TEST(test_shared_library_lists_its_literal_points),
	        BINARY_TEST(test_binary_without_records_says_so),
	        BINARY_TEST(test_text_file_is_not_elf),
	        BINARY_TEST(test_missing_file_is_refused),
	        BINARY_TEST(test_device_and_directory_are_refused),
	        BINARY_TEST(test_truncated_copies_are_refused),
	        BINARY_TEST(test_corrupted_copies_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
