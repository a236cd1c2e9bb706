#!/bin/sh
# The Python binding's tests, as CI runs them: installs the package with
# `pip install --no-build-isolation` into a scratch virtual environment
# (which sees Debian's python3-pytest), then runs python/tests against the
# library built in BUILD_DIR, named by WRENCH_LIBRARY, and the command
# built there (wrench.points()), named by WRENCH_COMMAND. Changes nothing
# outside the scratch directory, which is removed at the end.
# Usage: python/run_tests.sh [BUILD_DIR]   (default: build/default)
#
# Always Debian's /usr/bin/python3, whatever python3 comes first in PATH
# and whatever $PYTHON says: the build is offline, with Debian's
# python3-setuptools and python3-wheel, and only Debian's interpreter sees
# them (a pyenv python3 fails with "invalid command 'bdist_wheel'").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/default}" && pwd)
python=/usr/bin/python3
library="$build/lib/libwrench.so.1"
command="$build/cli/wrench"
for built in "$library" "$command"; do
	test -f "$built" || { echo "python/run_tests.sh: $built not found; build first (cmake --workflow --preset default)" >&2; exit 2; }
done

scratch=$(mktemp -d /tmp/wrench-python.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# Built from a copy, so that concurrent runs never share setuptools'
# build directory in the tree.
cp -R "$here" "$scratch/src"
rm -rf "$scratch/src/build" "$scratch/src/src/"*.egg-info
"$python" -m venv --system-site-packages --without-pip "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index \
	--no-cache-dir "$scratch/src" > "$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log" >&2; exit 1; }

cd "$here/tests"
# The tests choose their trigger directories; nothing from the caller's
# environment may change what fires.
env -u WRENCH_SEED -u WRENCH_LOG -u WRENCH_RECHECK_MS \
	WRENCH_DIR=/nonexistent/wrench-tests WRENCH_LIBRARY="$library" WRENCH_COMMAND="$command" \
	PYTHONDONTWRITEBYTECODE=1 WRENCH_REPOSITORY="$root" \
	"$scratch/venv/bin/python" -m pytest -q -p no:cacheprovider \
	--basetemp="$scratch/pytest" .
