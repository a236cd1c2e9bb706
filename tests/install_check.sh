#!/bin/sh
# Installs the build into a scratch prefix, then builds a user's program
# against it twice (pkg-config, then find_package) and runs both. Also
# checks that the shared library exports nothing but wrench_* symbols and
# that the man pages are installed.
# Usage: install_check.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
prefix=$(mktemp -d /tmp/wrench-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
libdir=$(find "$prefix" -name 'libwrench.so.1' -printf '%h\n' | head -n 1)
test -n "$libdir" || { echo "libwrench.so.1 was not installed" >&2; exit 1; }
test -f "$prefix/include/wrench.h"
test -f "$prefix/share/man/man3/wrench.3"
test -f "$prefix/share/man/man5/wrench.5"

exported=$(nm -D --defined-only "$libdir/libwrench.so.1" | awk '{print $3}' | grep -v '^wrench_' || true)
if [ -n "$exported" ]; then
	echo "symbols outside wrench_* are exported:" >&2
	echo "$exported" >&2
	exit 1
fi

export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/consumer-pc" "$src/tests/install/consumer.c" \
	$(pkg-config --cflags --libs libwrench)
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-pc"

cmake -S "$src/tests/install" -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
	> "$prefix/consumer-configure.log"
cmake --build "$prefix/consumer-build" > "$prefix/consumer-build.log"
"$prefix/consumer-build/consumer"
