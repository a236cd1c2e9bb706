#!/bin/sh
# Where the trigger directory does not exist (a production machine), the
# library creates and writes nothing, in any file system: a program that
# calls it many times (quiet_calls: two threads and a forked child) runs
# under strace with WRENCH_DIR naming a directory that does not exist, and
# every system call that could make, change or write a file is looked at.
# The mode (strict with the ring, strict without it, relaxed) comes from
# the environment CTest sets.
#
# Every system call is traced (no -e filter), with -y so that each
# descriptor shows what it is. Flagged, whether it succeeded or not (an
# attempt that fails here may succeed on another machine):
# - calls that make, remove, rename or change a name or its metadata:
#   creat, mkdir(at), mknod(at), link(at), symlink(at), rename(at)(2),
#   unlink(at), rmdir, truncate, chmod, chown, utimes, xattrs;
# - open, openat and openat2 for writing, creating or truncating;
# - writes (write, pwrite, writev, sendfile, splice, copy_file_range),
#   ftruncate, fallocate, fchmod, fchown and f*xattr on a descriptor of a
#   file, and mmap(MAP_SHARED, PROT_WRITE) of one.
# Descriptors that are not files are allowed: pipes (standard output and
# error are pipes here, so logging to stderr passes), sockets, the ring and
# inotify, and a memfd (/memfd:..., never linked in a file system).
# Requests the ring's kernel side runs are not system calls; the library's
# ring only ever polls the inotify descriptor (lib/ring.c).
# Usage: no_files_without_trigger_dir.sh QUIET_CALLS
set -eu

if ! command -v strace > /dev/null 2>&1; then
	echo "skipped: strace is not installed (scripts/deps.sh installs it)"
	exit 77
fi

program=$1
calls=2000
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dir="$scratch/absent/wrench"
echo "mode: WRENCH_IO_URING=${WRENCH_IO_URING:-unset} WRENCH_RECHECK_MS=${WRENCH_RECHECK_MS:-unset}"
echo "trigger directory: $dir (does not exist)"

# Standard output and error through a pipe, as a service's often are: a
# write to either is then a pipe's, never a file's.
{
	rc=0
	WRENCH_DIR=$dir WRENCH_LOG=info strace -f -y -o "$scratch/trace" "$program" "$calls" 2>&1 ||
		rc=$?
	echo "exit status: $rc"
} | cat > "$scratch/out"
cat "$scratch/out"
grep -qx "exit status: 0" "$scratch/out" || { echo "FAIL: the program failed"; exit 1; }
test ! -e "$dir" || { echo "FAIL: $dir was made"; exit 1; }

# The library must have got as far as watching for the directory, or the
# test proves nothing.
grep -Eq '^[0-9]+ +inotify_add_watch\(.*= [0-9]+$' "$scratch/trace" ||
	{ echo "FAIL: the trace shows no watch set: change detection never ran"; exit 1; }
if grep -Eq '^[0-9]+ +io_uring_setup\(.*= [0-9]+' "$scratch/trace"; then
	echo "the ring was made (and its self-test run)"
else
	echo "no ring was made (turned off, refused by the kernel, or not strict mode)"
fi

awk '
# The descriptors of a call that name a file (one of the form N</path>),
# other than terminals, /dev/null and memfds, as a space-separated list.
function files(line,    out, m) {
	out = ""
	while (match(line, /[0-9]+<\/[^>]*>/)) {
		m = substr(line, RSTART, RLENGTH)
		line = substr(line, RSTART + RLENGTH)
		if (m ~ /<\/memfd:/ || m ~ /<\/dev\/(null|pts\/[0-9]+|tty[0-9]*)>/)
			continue
		out = out " " m
	}
	return out
}
BEGIN {
	split("creat mkdir mkdirat mknod mknodat link linkat symlink symlinkat rename renameat " \
	      "renameat2 unlink unlinkat rmdir truncate chmod fchmodat fchmodat2 chown lchown " \
	      "fchownat utime utimes utimensat futimesat setxattr lsetxattr removexattr " \
	      "lremovexattr", list, " ")
	for (i in list)
		by_name[list[i]] = 1
	split("write pwrite64 writev pwritev pwritev2 sendfile sendfile64 splice tee " \
	      "copy_file_range ftruncate fallocate fchmod fchown fsetxattr fremovexattr", list, " ")
	for (i in list)
		on_file[list[i]] = 1
}
{
	if (!match($0, /^[0-9]+ +[a-z0-9_]+\(/))
		next
	call = substr($0, RSTART, RLENGTH - 1)
	sub(/^[0-9]+ +/, "", call)
	bad = 0
	if (call in by_name)
		bad = 1
	else if (call ~ /^open(at2?)?$/ && $0 ~ /O_(WRONLY|RDWR|CREAT|TRUNC|TMPFILE|APPEND)/)
		bad = 1
	else if (call in on_file && files($0) != "")
		bad = 1
	else if (call == "mmap" && $0 ~ /PROT_WRITE/ && $0 ~ /MAP_SHARED/ && files($0) != "")
		bad = 1
	if (bad) {
		print
		found = 1
	}
}
END { exit found }
' "$scratch/trace" > "$scratch/bad" || true

if [ -s "$scratch/bad" ]; then
	echo "FAIL: with the trigger directory absent, these system calls made or wrote files:"
	cat "$scratch/bad"
	exit 1
fi
echo "no file made or written in $(wc -l < "$scratch/trace") lines of strace"
