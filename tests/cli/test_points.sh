#!/bin/sh
# Tests of the points reached (wrench(1): points; wrench(5): POINTS
# REACHED), with real agent processes: PROGRAM has literal failure points,
# some reached when it runs and one never (tests/points_program.c), and
# MANY_NAMES makes up names in a loop (many_names.c).
# Each test is a function run in a subshell in its own directory $t, with $D
# the trigger directory. Prints one line per test and "N passed, N failed";
# exits 1 if any failed. Tests that need root skip when not run as root.
# Usage: test_points.sh WRENCH READER PROGRAM MANY_NAMES
# jq filters are in single quotes on purpose.
# shellcheck disable=SC2016
set -u
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

if [ $# -ne 4 ]; then
	echo "usage: test_points.sh WRENCH READER PROGRAM MANY_NAMES" >&2
	exit 2
fi
W=$1
reader=$2
program=$3
many_names=$4
command -v jq > /dev/null 2>&1 || {
	echo "test_points.sh: jq is needed; apt-get install jq" >&2
	exit 1
}
scratch=$(mktemp -d /tmp/wrench-points.XXXXXX) || exit 1
trap 'rm -rf "$scratch"' EXIT
chmod 0755 "$scratch"
unset WRENCH_DIR WRENCH_SEED WRENCH_LOG
uid=$(id -u)

# Runs the command: stdout in $t/out, stderr in $t/err, status in $rc.
w() {
	timeout 60 "$W" --dir "$D" "$@" > "$t/out" 2> "$t/err"
	rc=$?
}

# Runs PROGRAM as an agent of $D; its status in $agent_rc.
run_program() {
	WRENCH_DIR=$D "$program" > /dev/null 2> "$t/agent.err"
	agent_rc=$?
}

points_file() {
	echo "$D/.wrench-state/points-v1-$uid"
}

# The JSON object of POINT (category/feature) in $t/out.
point() {
	jq -c --arg c "${1%%/*}" --arg f "${1#*/}" \
		'.points[] | select(.category == $c and .feature == $f)' "$t/out"
}

test_a_run_is_reported_point_by_point_against_its_binary() {
	w set net connect
	run_program
	# Two calls of net/connect fired: the program says how many did.
	[ "$agent_rc" -eq 2 ] || fail "the program saw $agent_rc fire(s), not 2"
	w points --binary "$program"
	[ "$rc" -eq 0 ] || fail "points --binary: status $rc: $(cat "$t/err")"
	# A 4096-byte name does not fit a record: it shows as never reached,
	# and the command says that a point found no room.
	grep -qx '6 point(s): 4 reached, 1 fired, 2 never reached' "$t/out" ||
		fail "summary: $(tail -1 "$t/out")"
	grep -q "found no room in the records" "$t/err" ||
		fail "the point not recorded is not said: $(cat "$t/err")"
	grep -q '^net  *connect  *20[0-9-]*T[0-9:]*Z  *points_program_pie  *1  *2$' "$t/out" ||
		fail "net/connect row: $(grep connect "$t/out")"
	grep -q '^disk  *enospc  *never  *-  *0  *0$' "$t/out" ||
		fail "disk/enospc row: $(grep enospc "$t/out")"
	w --json points --binary "$program"
	[ "$(jq -c .summary "$t/out")" = \
		'{"points":6,"reached":4,"fired":1,"never_reached":2}' ] ||
		fail "JSON summary: $(jq -c .summary "$t/out")"
	[ "$(point net/connect | jq -c '[.reached, .lines, .fires, .programs[0].program]')" = \
		'[true,1,2,"points_program_pie"]' ] || fail "net/connect: $(point net/connect)"
	[ "$(point net/accept | jq -c '[.reached, .lines, .fires]')" = '[true,0,0]' ] ||
		fail "net/accept: $(point net/accept)"
	[ "$(point disk/enospc | jq -c '[.reached, .first_reached, .programs]')" = \
		'[false,null,[]]' ] || fail "disk/enospc: $(point disk/enospc)"
	# Names made at run time are reached, but not in the binary.
	[ -z "$(point runtime/runtime-feature)" ] || fail "a run-time name is listed as compiled in"
	[ "$(jq .not_recorded "$t/out")" -ge 1 ] || fail "not_recorded: $(jq .not_recorded "$t/out")"
}

test_points_lists_every_point_reached_with_its_program() {
	w set net connect
	run_program
	w --json points
	[ "$rc" -eq 0 ] || fail "points: status $rc: $(cat "$t/err")"
	[ "$(point runtime/runtime-feature | jq -c '[.reached, .lines, .programs[0].program]')" = \
		'[true,0,"points_program_pie"]' ] ||
		fail "runtime/runtime-feature: $(point runtime/runtime-feature)"
	pid=$(point net/connect | jq '.programs[0].last_pid')
	[ "$pid" -gt 0 ] || fail "no pid: $(point net/connect)"
	w points net
	[ "$(cut -d' ' -f1 "$t/out" | sort -u | tr '\n' ' ')" = "CATEGORY net " ] ||
		fail "points net: $(cat "$t/out")"
}

test_made_up_names_leave_records_of_bounded_size() {
	w set names other
	WRENCH_DIR=$D "$many_names" names 100000 > "$t/agent.out" 2> "$t/agent.err" ||
		fail "many_names failed: $(cat "$t/agent.err")"
	grep -qx '100000 calls, 0 fired' "$t/agent.out" || fail "many_names: $(cat "$t/agent.out")"
	# The file is made at its full size, once: 1,024 records of 512 bytes
	# after a page.
	[ "$(stat -c %s "$(points_file)")" -eq 528384 ] ||
		fail "the records take $(stat -c %s "$(points_file)") bytes"
	kib=$(du -sk "$D/.wrench-state" | cut -f1)
	[ "$kib" -le 1024 ] || fail "the state takes $kib KiB"
	w --json points names
	n=$(jq '.points | length' "$t/out")
	[ "$n" -ge 100 ] && [ "$n" -le 1024 ] || fail "$n points recorded"
}

test_clear_removes_the_records() {
	w set net connect
	run_program
	[ -f "$(points_file)" ] || fail "no records were made"
	w clear
	[ ! -e "$(points_file)" ] || fail "clear left the records"
	w --json points
	[ "$(jq '.points | length' "$t/out")" -eq 0 ] || fail "points after clear: $(cat "$t/out")"
}

test_unset_keeps_the_records() {
	w set net connect
	run_program
	w unset net
	w --json points
	[ "$(point net/connect | jq .reached)" = true ] || fail "unset lost the records"
}

test_records_writable_by_others_are_refused_and_left_alone() {
	w set net connect
	run_program
	chmod 0666 "$(points_file)"
	sum=$(md5sum < "$(points_file)")
	run_program
	[ "$agent_rc" -eq 2 ] || fail "the agent's answers changed"
	grep -q "points reached are not recorded: .*writable by group or others" "$t/agent.err" ||
		fail "the agent did not say why: $(cat "$t/agent.err")"
	[ "$(md5sum < "$(points_file)")" = "$sum" ] || fail "the agent wrote in a file it refused"
	w points
	[ "$rc" -eq 1 ] || fail "points: status $rc"
	grep -q "ignored: .*writable by group or others" "$t/err" || fail "points: $(cat "$t/err")"
}

test_nothing_is_recorded_where_the_directory_is_missing() {
	run_program
	[ ! -e "$D" ] || fail "the program created $D"
	w points
	[ "$rc" -eq 0 ] || fail "points: status $rc"
	grep -q "does not exist" "$t/err" || fail "points: $(cat "$t/err")"
	w --json points --binary "$program"
	[ "$(jq -c .summary "$t/out")" = '{"points":6,"reached":0,"fired":0,"never_reached":6}' ] ||
		fail "summary without records: $(jq -c .summary "$t/out")"
}

test_a_non_root_agent_records_in_its_own_file() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root (an agent running as nobody)"
	command -v setpriv > /dev/null 2>&1 || skip "skipped: setpriv is missing"
	cp "$reader" "$scratch/reader" && chmod 0755 "$scratch/reader"
	library=$(ldd "$reader" | awk '/libwrench/ { print $3 }')
	mkdir -p -m 0755 "$scratch/lib" && cp "$library" "$scratch/lib/libwrench.so.1" &&
		chmod 0644 "$scratch/lib/libwrench.so.1"
	w --owner nobody set cat step
	nobody=$(id -u nobody)
	setpriv --reuid nobody --regid nogroup --clear-groups \
		env LD_LIBRARY_PATH="$scratch/lib" "$scratch/reader" --sequence 1 "$D" cat step \
		> /dev/null 2> "$t/agent.err"
	[ "$(stat -c %U%a "$D/.wrench-state/points-v1-$nobody")" = nobody600 ] ||
		fail "records: $(ls -l "$D/.wrench-state")"
	w --json points
	[ "$(point cat/step | jq -c '[.programs[0].program, .lines]')" = '["reader",1]' ] ||
		fail "cat/step: $(cat "$t/out") $(cat "$t/err")"
}

test_set_warns_of_a_feature_no_process_reached() {
	w set net connect
	run_program
	w set net conect
	[ "$rc" -eq 0 ] || fail "set: status $rc"
	grep -qx "wrench: warning: net/conect: no process on this machine has reached the point, while 2 other point(s) of its category were; did you mean connect?" "$t/err" ||
		fail "set: $(cat "$t/err")"
	grep -qx conect "$D/net" || fail "the line was not written as asked"
	# A category no process reached gives no warning: nothing is known.
	w set fresh anything
	[ ! -s "$t/err" ] || fail "set in a new category: $(cat "$t/err")"
}

test_set_with_binary_warns_of_a_feature_the_binary_lacks() {
	w set net acept --binary "$program"
	[ "$rc" -eq 0 ] || fail "set: status $rc"
	grep -qx "wrench: warning: net/acept: the binary has no such failure point; did you mean accept?" "$t/err" ||
		fail "set: $(cat "$t/err")"
	w set nosuch thing --binary "$program"
	grep -qx "wrench: warning: nosuch/thing: the binary has no failure point in this category" "$t/err" ||
		fail "set: $(cat "$t/err")"
}

test_set_with_an_unreadable_binary_changes_nothing() {
	w set net accept --binary "$t/missing"
	[ "$rc" -eq 2 ] || fail "set: status $rc"
	grep -q "missing" "$t/err" || fail "set: $(cat "$t/err")"
	[ ! -e "$D/net" ] || fail "set wrote the line"
}

test_check_fails_on_lines_naming_points_nothing_knows() {
	w set net connect
	run_program
	w check
	[ "$rc" -eq 0 ] || fail "check of known points: status $rc: $(cat "$t/out")"
	w set net conect
	w check
	[ "$rc" -eq 1 ] || fail "check: status $rc"
	grep -qx "$D/net:2: conect: no process on this machine has reached the point, while 2 other point(s) of its category were; did you mean connect?" "$t/out" ||
		fail "check: $(cat "$t/out")"
	w --json check --binary "$program"
	[ "$rc" -eq 1 ] || fail "check --binary: status $rc"
	[ "$(jq -c '[.problems[] | select(.line == 2) | .message]' "$t/out")" = 		'["conect: no process on this machine has reached the point, while 2 other point(s) of its category were; did you mean connect?","conect: the binary has no such failure point; did you mean connect?"]' ] ||
		fail "check --binary: $(cat "$t/out")"
}

test_wait_warns_and_waits_when_no_process_reached_the_point() {
	w set net accept
	timeout 60 "$W" --dir "$D" wait net accept --timeout 60s > "$t/wait.out" 2> "$t/wait.err" &
	waiter=$!
	# The warning comes before the wait: the program runs once it is said.
	until grep -q "reached the point yet" "$t/wait.err"; do
		kill -0 "$waiter" 2> /dev/null || break
		sleep 0.05
	done
	grep -qx "wrench: warning: net/accept: no process on this machine has reached the point yet (a program records it when it first asks)" "$t/wait.err" ||
		fail "wait: $(cat "$t/wait.err")"
	run_program
	wait "$waiter"
	[ $? -eq 0 ] || fail "wait: $(cat "$t/wait.err")"
	grep -qx "net/accept fired 1 time(s)" "$t/wait.out" || fail "wait: $(cat "$t/wait.out")"
}

run_tests "$0" 0755
