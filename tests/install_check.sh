#!/bin/sh
# Installs the build into a scratch prefix, then builds a user's program
# against it with pkg-config and with find_package, shared and static, and
# runs each; a program with its own strlcpy() must build too, since libbsd
# is a private dependency whose headers must not reach users. Also
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

# libbsd is private: a user's flags never mention it, pkg-config needs no
# libbsd .pc file (only libwrench's is visible here), and a static link
# gets -lbsd.
cflags=$(PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --cflags libwrench) || {
	echo "pkg-config libwrench fails where libbsd's .pc file is not installed" >&2
	exit 1
}
case $cflags in
*bsd* | *BSD*)
	echo "pkg-config --cflags libwrench mentions libbsd: $cflags" >&2
	exit 1
	;;
esac
static_libs=$(pkg-config --static --libs libwrench)
case " $static_libs " in
*" -lbsd "*) ;;
*)
	echo "pkg-config --static --libs libwrench lacks -lbsd: $static_libs" >&2
	exit 1
	;;
esac
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/own-strlcpy-pc" "$src/tests/install/own_strlcpy.c" \
	$(pkg-config --cflags --libs libwrench)
LD_LIBRARY_PATH="$libdir" "$prefix/own-strlcpy-pc"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/consumer-pc-static" \
	"$src/tests/install/consumer.c" $(pkg-config --cflags libwrench) \
	$(pkg-config --static --libs libwrench | sed 's/-lwrench\b/-l:libwrench.a/')
"$prefix/consumer-pc-static"
if grep -n -i -E 'libbsd|/bsd|LIBBSD_OVERLAY' "$libdir"/cmake/wrench/*.cmake >&2; then
	echo "the CMake package passes libbsd's headers or definitions on to its users" >&2
	exit 1
fi

cmake -S "$src/tests/install" -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
	> "$prefix/consumer-configure.log"
cmake --build "$prefix/consumer-build" > "$prefix/consumer-build.log" || {
	cat "$prefix/consumer-build.log" >&2
	exit 1
}
"$prefix/consumer-build/consumer"
"$prefix/consumer-build/consumer_static"
"$prefix/consumer-build/own_strlcpy"

# Under /usr/local (staged here with DESTDIR) the install says that
# ldconfig must run before a program finds the library.
DESTDIR="$prefix/staged" cmake --install "$build" --prefix /usr/local > "$prefix/staged.log"
grep -q 'libwrench.so.1 was installed in /usr/local/lib.*run ldconfig' "$prefix/staged.log" || {
	echo "an install into /usr/local does not say that ldconfig must run" >&2
	exit 1
}
