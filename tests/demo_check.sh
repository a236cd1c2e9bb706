#!/bin/sh
# Runs scripts/demo, the README's first command, and checks that it tells
# what it does and shows the workflow it promises: it announces its build,
# the agent is killed once by a `times=1` kill line, `wrench wait` sees the
# fire, the restarted agent recovers by itself, `wrench hits` shows one
# fire of the kill line, and `wrench points --binary` the agent's four
# points, each reached. Prints the demo's output; exits 1 on a miss.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp /tmp/wrench-demo-check.XXXXXX)
trap 'rm -f "$out"' EXIT

status=0
./scripts/demo > "$out" 2>&1 || status=$?
cat "$out"
failed=0
expect() {
	grep -Eq "$1" "$out" || {
		echo "demo_check: no line matching: $1"
		failed=1
	}
}
[ "$status" -eq 0 ] || {
	echo "demo_check: scripts/demo exited $status"
	failed=1
}
expect 'agent: fetch attempt 1 failed \(Connection timed out\), retrying'
expect '^== building libwrench'
expect '^== built in [0-9]+ s'
expect 'crash-before-commit fired 1 time'
expect '^== agent killed by signal 9'
expect '^== the agent recovered by itself'
expect 'crash-before-commit kill times=1 until=[0-9TZ:-]+ +calls=[0-9]+ fires=1 .*spent'
expect '^   upgrader +crash-before-commit +[0-9TZ:-]+ +agent +1 +1$'
expect '^   4 point\(s\): 4 reached, 3 fired, 0 never reached$'
[ "$failed" -eq 0 ] && echo "demo_check: the demo shows the workflow it promises"
exit "$failed"
