#!/bin/sh
# Runs the example cmocka suite with a trigger file present that fires for
# the example agent (the control), proving that the suite passes because it
# switched wrench off, not because the file was ignored.
# Usage: example_suite.sh AGENT CMOCKA_SUITE
set -eu
agent=$1
suite=$2
dir=$(mktemp -d /tmp/wrench-example.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -m 0700 "$dir/wrench"
printf 'no-free-port\n' > "$dir/wrench/machine-agent"
printf 'install-fails\n' > "$dir/wrench/upgrader"
chmod 0600 "$dir/wrench/machine-agent" "$dir/wrench/upgrader"
export WRENCH_DIR="$dir/wrench"

# Control: the same directory is honoured, so a fault does fire.
if "$agent" "$dir/state" > "$dir/agent.out" 2>&1; then
	echo "control failed: the agent ignored $WRENCH_DIR" >&2
	cat "$dir/agent.out" >&2
	exit 1
fi
grep -q 'install failed' "$dir/agent.out"

"$suite"
