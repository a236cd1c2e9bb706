#!/bin/sh
# Counts, with strace, the system calls of N calls of wrench_is_active() in
# the steady state: with the io_uring ring, far fewer than one per call
# (unrelated changes in a watched ancestor make the ring's owner drain now
# and then); with WRENCH_IO_URING=0, at least one per call. The directory
# is under /var/tmp, not /tmp, where other tests and compilers on a loaded
# machine make and remove files many times a second.
# Usage: ring_strace.sh TEST_RING   (the test_ring executable: --probe mode)
set -eu

if ! command -v strace > /dev/null 2>&1; then
	echo "skipped: strace is not installed (scripts/deps.sh installs it)"
	exit 77
fi

probe=$1
calls=20000
scratch=$(mktemp -d /var/tmp/wrench-ring-strace.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -m 0700 "$scratch/dir"
printf 'other\n' > "$scratch/dir/cat"
chmod 0644 "$scratch/dir/cat"

# The calls column of strace -c's "total" line: % time, seconds,
# usecs/call, calls, [errors], "total".
total() {
	awk '$NF == "total" { print $4 }' "$scratch/count"
}

# Runs the probe for $1 calls under strace; prints its system calls.
traced() {
	WRENCH_LOG=info strace -f -c -o "$scratch/count" "$probe" --probe "$scratch/dir" "$1" \
		> "$scratch/out" 2>&1 || { cat "$scratch/out" >&2; echo "FAIL: the probe failed" >&2; exit 1; }
	total
}

base=$(traced 0)
busy=$(traced "$calls")
cat "$scratch/out"
extra=$((busy - base))
echo "system calls: $base for the loads alone, $busy with $calls more calls: $extra extra"

if [ "${WRENCH_IO_URING:-1}" = 0 ]; then
	# The loads alone vary by a few calls between the two runs (what a
	# load finds cached); a call that skipped its read() would show as
	# hundreds missing.
	test "$extra" -ge $((calls - calls / 100)) || { echo "FAIL: the read() path should make one per call"; exit 1; }
	echo "path: inotify read() (WRENCH_IO_URING=0): one system call per call, as expected"
	exit 0
fi
if ! grep -q "path: io_uring" "$scratch/out"; then
	echo "skipped: the kernel refused the ring (the INFO line above says why)"
	exit 77
fi
test "$extra" -le $((calls / 100)) || { echo "FAIL: more than one system call per 100 calls"; exit 1; }
echo "path: io_uring: no system call per call in the steady state"
