#!/bin/sh
# Runs examples/push_config.py three times, as separate processes, the way
# Juju runs a hook, against a scratch trigger directory whose file says
# "push-fails first=2 every=3": two pushes fail out of every three.
#
# Run 1 has up to 5 attempts, run 2 only 2 (a hook short of time), run 3
# up to 5 again. The line's counters are machine-wide (the default), so
# the pattern advances across the runs: run 1 fails twice and then pushes,
# run 2 fails twice and gives up, and run 3 continues the pattern where run 2
# left it (the sixth call, which does not fail) and pushes at its first
# attempt. With "scope=process" on the line, each run would start the
# pattern afresh: runs 1 and 3 would fail twice and then push.
#
# Uses the installed wrench module, else the one in python/src; the library
# is the installed libwrench.so.1, or the one WRENCH_LIBRARY names (an
# absolute path). The interpreter is Debian's /usr/bin/python3, not the
# python3 first in PATH; PYTHON names another, such as a virtual
# environment's where the module is installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import wrench' 2> /dev/null; then
	PYTHONPATH="$here/../python/src${PYTHONPATH:+:$PYTHONPATH}"
	export PYTHONPATH
fi

scratch=$(mktemp -d /tmp/wrench-push.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -m 0700 "$scratch/wrench" "$scratch/service"
printf 'push-fails first=2 every=3\n' > "$scratch/wrench/my-charm"
chmod 0600 "$scratch/wrench/my-charm"
export WRENCH_DIR="$scratch/wrench"
unset WRENCH_SEED WRENCH_RECHECK_MS

echo "== trigger file my-charm: $(cat "$scratch/wrench/my-charm")"
hook() {
	echo "== hook run $1 (up to $2 attempts)"
	status=0
	"$python" "$here/push_config.py" "$scratch/service" --attempts "$2" || status=$?
	echo "== hook run $1 exited $status"
}
hook 1 5
hook 2 2
hook 3 5
test -f "$scratch/service/app.conf"
echo "== the service has app.conf"
