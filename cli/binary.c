/*
 * The failure points of a program or a shared library, read from its file.
 * Where both names of a call are string literals, wrench.h leaves a record
 * of two pointers to them in the section wrench_points; this file finds
 * that section, resolves each pointer as the loader would, and reads the
 * names it points to.
 *
 * The path is a user's, perhaps read by root, and the file may be anything:
 * every offset, address and length read from it is checked before use, and
 * a name that is too long, unterminated or invalid is skipped, never
 * trusted.
 */
#include "binary.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define POINTS_SECTION "wrench_points"
/* A record is two 64-bit addresses: only 64-bit files are read. */
#define SLOT_SIZE 8
/* Longest name read; a category is much shorter (NAME_MAX). */
#define NAME_LIMIT 4096

struct image {
	const char *path;
	Elf *elf;
	GElf_Ehdr ehdr;
	Elf_Scn *last; /* the section the last name was found in */
	char *why;
	size_t len;
};

/* The slots of the records: what each address is once relocated, and
 * whether it can be known from the file at all. */
struct slots {
	uint64_t *value;
	unsigned char *known;
	size_t count;
	GElf_Addr addr; /* where the section is loaded */
};

static int fail(struct image *img, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(struct image *img, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->why, img->len, fmt, ap);
	va_end(ap);
	return err;
}

static int damaged(struct image *img)
{
	return fail(img, -ENOEXEC, "%s is a damaged ELF file: %s", img->path, elf_errmsg(-1));
}

/* The type of the relocation that adds the load address, for the
 * machines whose loaders apply it; -1 for the others. */
static long relative_type(unsigned machine)
{
	switch (machine) {
	case EM_X86_64:
		return R_X86_64_RELATIVE;
	case EM_AARCH64:
		return R_AARCH64_RELATIVE;
	case EM_PPC64:
		return R_PPC64_RELATIVE;
	case EM_S390:
		return R_390_RELATIVE;
	case EM_RISCV:
		return R_RISCV_RELATIVE;
	case EM_SPARCV9:
		return R_SPARC_RELATIVE;
#ifdef EM_LOONGARCH
	case EM_LOONGARCH:
		return R_LARCH_RELATIVE;
#endif
	default:
		return -1;
	}
}

/* A regular file only: a device could block or change state when read. */
static int open_regular(struct image *img, int *fd)
{
	struct stat st;

	*fd = open(img->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0)
		return fail(img, -errno, "cannot open %s: %s", img->path, strerror(errno));
	if (fstat(*fd, &st) < 0) {
		int err = -errno;
		close(*fd);
		*fd = -1;
		return fail(img, err, "cannot read %s: %s", img->path, strerror(-err));
	}
	if (!S_ISREG(st.st_mode)) {
		int err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		close(*fd);
		*fd = -1;
		return fail(img, err,
		            "%s is not a regular file: give a program or a shared library",
		            img->path);
	}
	return 0;
}

static int check_header(struct image *img)
{
	if (elf_kind(img->elf) != ELF_K_ELF)
		return fail(img, -ENOEXEC, "%s is not an ELF file", img->path);
	if (gelf_getclass(img->elf) != ELFCLASS64)
		return fail(img, -ENOEXEC,
		            "%s is a 32-bit ELF file: only 64-bit ones are supported", img->path);
	if (!gelf_getehdr(img->elf, &img->ehdr))
		return damaged(img);
	if (img->ehdr.e_type != ET_EXEC && img->ehdr.e_type != ET_DYN)
		return fail(img, -ENOEXEC,
		            "%s is neither a program nor a shared library (ELF type %u): give a "
		            "linked file, not an object",
		            img->path, (unsigned)img->ehdr.e_type);
	return 0;
}

static int find_points_section(struct image *img, Elf_Scn **out, GElf_Shdr *shdr)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(img->elf, &shstrndx) < 0)
		return damaged(img);
	while ((scn = elf_nextscn(img->elf, scn))) {
		const char *name;
		if (!gelf_getshdr(scn, shdr))
			return damaged(img);
		name = elf_strptr(img->elf, shstrndx, shdr->sh_name);
		if (name && strcmp(name, POINTS_SECTION) == 0 && shdr->sh_type == SHT_PROGBITS) {
			*out = scn;
			return 0;
		}
	}
	return fail(img, -ENODATA,
	            "%s has no failure points recorded: built without wrench.h's records, or "
	            "stripped of them",
	            img->path);
}

/* Data whose size is the section's, so that no offset within the section
 * can fall outside it. */
static Elf_Data *section_bytes(Elf_Scn *scn, const GElf_Shdr *shdr)
{
	Elf_Data *data = elf_getdata(scn, NULL);

	if (!data || !data->d_buf || data->d_size != shdr->sh_size)
		return NULL;
	return data;
}

static uint64_t read_slot(const struct image *img, const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < SLOT_SIZE; i++) {
		int k = img->ehdr.e_ident[EI_DATA] == ELFDATA2MSB ? i : SLOT_SIZE - 1 - i;
		v = v << 8 | p[k];
	}
	return v;
}

/* As stored: the address itself in a file loaded where it was linked, and
 * the addend where the loader relocates with RELR or REL. */
static int read_slots(struct image *img, Elf_Scn *scn, const GElf_Shdr *shdr, struct slots *s)
{
	Elf_Data *data = section_bytes(scn, shdr);

	if (!data || shdr->sh_size % ((size_t)2 * SLOT_SIZE) != 0)
		return fail(img, -ENOEXEC, "%s is a damaged ELF file: its section %s is unreadable",
		            img->path, POINTS_SECTION);
	s->count = shdr->sh_size / SLOT_SIZE;
	s->addr = shdr->sh_addr;
	s->value = calloc(s->count ? s->count : 1, sizeof(*s->value));
	s->known = calloc(s->count ? s->count : 1, 1);
	if (!s->value || !s->known)
		return fail(img, -ENOMEM, "out of memory reading %s", img->path);
	for (size_t i = 0; i < s->count; i++) {
		s->value[i] = read_slot(img, (const unsigned char *)data->d_buf + i * SLOT_SIZE);
		s->known[i] = 1;
	}
	return 0;
}

/* One dynamic relocation: a relative one gives the slot its addend; any
 * other names a symbol, which only the loader can resolve. */
static int apply_rela(struct image *img, const GElf_Rela *r, struct slots *s)
{
	GElf_Addr off;
	long relative = relative_type(img->ehdr.e_machine);

	if (r->r_offset < s->addr || r->r_offset - s->addr >= s->count * SLOT_SIZE)
		return 0;
	off = r->r_offset - s->addr;
	if (off % SLOT_SIZE != 0)
		return 0;
	if (relative < 0)
		return fail(img, -ENOEXEC,
		            "%s is for a machine (ELF machine %u) whose relocations "
		            "are not known",
		            img->path, (unsigned)img->ehdr.e_machine);
	s->value[off / SLOT_SIZE] = (uint64_t)r->r_addend;
	s->known[off / SLOT_SIZE] = GELF_R_TYPE(r->r_info) == (unsigned long)relative;
	return 0;
}

/* The dynamic relocations (allocated SHT_RELA sections, as .rela.dyn):
 * others, left by a link with --emit-relocs, are the linker's input. */
static int apply_relocations(struct image *img, struct slots *s)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr = {0};

	while ((scn = elf_nextscn(img->elf, scn))) {
		if (!gelf_getshdr(scn, &shdr))
			return damaged(img);
		if (shdr.sh_type != SHT_RELA || !(shdr.sh_flags & SHF_ALLOC))
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		size_t size = gelf_fsize(img->elf, ELF_T_RELA, 1, EV_CURRENT);
		if (!data || size == 0 || data->d_size / size > INT_MAX)
			return damaged(img);
		size_t n = data->d_size / size;
		for (size_t i = 0; i < n; i++) {
			GElf_Rela r;
			if (!gelf_getrela(data, (int)i, &r))
				return damaged(img);
			int rc = apply_rela(img, &r, s);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* The loaded section that holds ADDR, with its data: the last one found
 * first, as names sit together. */
static Elf_Data *section_holding(struct image *img, uint64_t addr, GElf_Shdr *shdr)
{
	Elf_Scn *scn = img->last;

	if (scn && gelf_getshdr(scn, shdr) && addr >= shdr->sh_addr &&
	    addr - shdr->sh_addr < shdr->sh_size)
		return section_bytes(scn, shdr);
	scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn))) {
		if (!gelf_getshdr(scn, shdr) || shdr->sh_type != SHT_PROGBITS ||
		    !(shdr->sh_flags & SHF_ALLOC) || addr < shdr->sh_addr ||
		    addr - shdr->sh_addr >= shdr->sh_size)
			continue;
		img->last = scn;
		return section_bytes(scn, shdr);
	}
	return NULL;
}

/* A copy of the string at ADDR in *NAME: NULL when no loaded section
 * holds it whole, NUL included, within NAME_LIMIT bytes. */
static int read_name(struct image *img, uint64_t addr, char **name)
{
	GElf_Shdr shdr = {0};
	Elf_Data *data = section_holding(img, addr, &shdr);

	*name = NULL;
	if (!data)
		return 0;
	size_t off = addr - shdr.sh_addr;
	size_t avail = data->d_size - off;
	const char *s = (const char *)data->d_buf + off;
	if (!memchr(s, '\0', avail < NAME_LIMIT + 1 ? avail : NAME_LIMIT + 1))
		return 0;
	*name = strdup(s);
	return *name ? 0 : fail(img, -ENOMEM, "out of memory reading %s", img->path);
}

/* The same checks as a call's (api.c): a name no trigger file can match
 * is no failure point. */
static bool names_valid(const char *category, const char *feature)
{
	return wrench__category_is_valid(category) && !wrench__category_problem(category) &&
	       !wrench__feature_problem(feature);
}

static int compare_points(const void *a, const void *b)
{
	const struct binary_point *x = a, *y = b;
	int c = strcmp(x->category, y->category);

	return c ? c : strcmp(x->feature, y->feature);
}

/* The records whose names can all be read and are valid, sorted, each
 * once. */
static int collect_points(struct image *img, const struct slots *s, struct binary_point **out,
                          size_t *count)
{
	struct binary_point *p = calloc(s->count / 2 + 1, sizeof(*p));
	size_t n = 0;

	if (!p)
		return fail(img, -ENOMEM, "out of memory reading %s", img->path);
	for (size_t i = 0; i + 1 < s->count; i += 2) {
		char *category = NULL, *feature = NULL;
		if (!s->known[i] || !s->known[i + 1] || !s->value[i] || !s->value[i + 1])
			continue;
		int rc = read_name(img, s->value[i], &category);
		if (rc == 0 && category)
			rc = read_name(img, s->value[i + 1], &feature);
		if (rc == 0 && category && feature && names_valid(category, feature)) {
			p[n++] = (struct binary_point){category, feature};
			continue;
		}
		free(category);
		free(feature);
		if (rc < 0) {
			free_binary_points(p, n);
			return rc;
		}
	}
	qsort(p, n, sizeof(*p), compare_points);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (kept && compare_points(&p[kept - 1], &p[i]) == 0) {
			free(p[i].category);
			free(p[i].feature);
			continue;
		}
		p[kept++] = p[i];
	}
	*out = p;
	*count = kept;
	return 0;
}

static int read_points(struct image *img, struct binary_point **out, size_t *count)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr = {0};
	struct slots s = {0};
	int rc = check_header(img);

	if (rc == 0)
		rc = find_points_section(img, &scn, &shdr);
	if (rc == 0)
		rc = read_slots(img, scn, &shdr, &s);
	if (rc == 0)
		rc = apply_relocations(img, &s);
	if (rc == 0)
		rc = collect_points(img, &s, out, count);
	free(s.value);
	free(s.known);
	return rc;
}

int binary_points(const char *path, struct binary_point **out, size_t *count, char *why, size_t len)
{
	struct image img = {.path = path, .why = why, .len = len};
	int fd, rc;

	*out = NULL;
	*count = 0;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return fail(&img, -ENOSYS, "cannot read %s: libelf is unusable", path);
	rc = open_regular(&img, &fd);
	if (rc < 0)
		return rc;
	/* Read, not mapped: a file cut short while it is read then gives an
	 * error, not SIGBUS. */
	img.elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!img.elf)
		rc = damaged(&img);
	else
		rc = read_points(&img, out, count);
	elf_end(img.elf);
	close(fd);
	return rc;
}

void free_binary_points(struct binary_point *points, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(points[i].category);
		free(points[i].feature);
	}
	free(points);
}
