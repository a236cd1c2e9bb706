#!/bin/sh
# The Debian packages, as CI checks them: builds them (scripts/packages,
# from a copy of the tree), checks them with lintian (an error fails),
# installs them with the Ansible collection's install role
# (ansible/tests/install_check.sh), runs the install-consumer test against the
# installed files (a program built with pkg-config and with find_package,
# the wrench command, the Python binding's test suite), then purges them,
# on success or failure. Needs root; changes nothing it does not undo.
# Usage: tests/packages_check.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
packages="libwrench1 libwrench-dev wrench python3-wrench"

fail() {
	echo "packages_check.sh: FAILED: $*" >&2
	exit 1
}

# One version everywhere: the project, the packages, the Python module.
project=$(sed -n 's/^project(wrench VERSION \([0-9.]*\) .*/\1/p' "$root/CMakeLists.txt")
changelog=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
pyproject=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/python/pyproject.toml")
module=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/python/src/wrench/__init__.py")
if [ -z "$project" ] || [ "$changelog" != "$project" ] || [ "$pyproject" != "$project" ] ||
	[ "$module" != "$project" ]; then
	fail "versions differ: CMakeLists.txt '$project', debian/changelog '$changelog'," \
		"python/pyproject.toml '$pyproject', wrench.__version__ '$module'; make them equal"
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "packages_check.sh: skipped: installing packages needs root (CI runs it as root)"
	exit 0
fi
for p in $packages; do
	if dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'install ok installed'; then
		echo "packages_check.sh: $p is already installed, and this check would remove it;" \
			"remove it first: dpkg --purge $packages" >&2
		exit 1
	fi
done

scratch=$(mktemp -d /tmp/wrench-debs.XXXXXX)
installed=no
cleanup() {
	if [ "$installed" = yes ]; then
		# shellcheck disable=SC2086
		dpkg --purge $packages > "$scratch/purge.log" 2>&1 || cat "$scratch/purge.log" >&2
	fi
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The suites already ran in this CI run: the build skips them unless the
# caller sets DEB_BUILD_OPTIONS.
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} "$root/scripts/packages" "$scratch/debs" > /dev/null

lintian --fail-on error "$scratch"/debs/*.changes > "$scratch/lintian.log" 2>&1 || {
	cat "$scratch/lintian.log" >&2
	echo "packages_check.sh: lintian found errors (above)" >&2
	exit 1
}
echo "lintian: $(grep -c '^E:' "$scratch/lintian.log" || true) errors," \
	"$(grep -c '^W:' "$scratch/lintian.log" || true) warnings"

installed=yes
# Installed as a fleet would be: by the Ansible collection's install role,
# from the directory of .deb files (it checks that a second run changes
# nothing).
# shellcheck disable=SC2086
"$root/ansible/tests/install_check.sh" "$scratch/debs" $packages
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
test -f "/usr/lib/$multiarch/libwrench.so.1" || fail "libwrench1 did not install libwrench.so.1"

# A user's program, against the system's files only.
unset PKG_CONFIG_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH PYTHONPATH WRENCH_LIBRARY WRENCH_COMMAND
unset WRENCH_DIR WRENCH_SEED WRENCH_LOG WRENCH_RECHECK_MS
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$scratch/consumer-pc" "$root/tests/install/consumer.c" \
	$(pkg-config --cflags --libs libwrench)
ldd "$scratch/consumer-pc" | grep -q "libwrench.so.1 => .*/lib/$multiarch/libwrench.so.1" ||
	fail "the pkg-config consumer does not use the installed libwrench.so.1"
WRENCH_LOG=off "$scratch/consumer-pc" || fail "the pkg-config consumer"
cmake -S "$root/tests/install" -B "$scratch/consumer-build" > "$scratch/consumer.log"
cmake --build "$scratch/consumer-build" >> "$scratch/consumer.log"
WRENCH_LOG=off "$scratch/consumer-build/consumer" || fail "the find_package consumer"

# The command, and its manual.
wrench --version | grep -q '1\.2\.0' || fail "wrench --version does not say 1.2.0"
test -f /usr/share/man/man1/wrench.1.gz || fail "wrench(1) is not installed"
mkdir -m 0700 "$scratch/wrench"
wrench --dir "$scratch/wrench" set my-charm push-fails first=2 every=3
wrench --dir "$scratch/wrench" eval my-charm push-fails -n 3 > "$scratch/eval.out" ||
	fail "wrench eval: the line set just before does not fire"
echo "wrench: set and eval work"

# The Python binding from python3-wrench, with the installed library, and
# its pytest plugin registered: the whole Python suite runs against them.
/usr/bin/python3 -c 'import wrench; assert wrench.available(); print("python3-wrench:", wrench.__file__)' |
	grep -q '^python3-wrench: /usr/lib/python3/dist-packages/wrench/' ||
	fail "python3-wrench is not the module imported, or it did not load libwrench.so.1"
(cd "$root/python/tests" &&
	PYTHONDONTWRITEBYTECODE=1 WRENCH_DIR=/nonexistent/wrench-tests \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider --basetemp="$scratch/pytest" .)

# shellcheck disable=SC2086
dpkg --purge $packages > "$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log" >&2; exit 1; }
installed=no
test ! -e "/usr/lib/$multiarch/libwrench.so.1" || fail "libwrench.so.1 is still there after the purge"
echo "packages: built, lintian-clean, installed, consumer test passed, removed"
