#!/bin/sh
# Tests of the machine-wide counters through the wrench command (wrench(1):
# hits, wait, reset, set --for, clear --expired; wrench(5): COUNTERS), with
# real agent processes: READER --sequence N DIR CATEGORY FEATURE makes N
# calls and prints 1 or 0 per call, as a restarted agent would.
# Each test is a function run in a subshell in its own directory $t, with $D
# the trigger directory. Prints one line per test and "N passed, N failed";
# exits 1 if any failed. Tests that need root skip when not run as root.
# Usage: test_counters.sh WRENCH READER [TRUNCATE_STATE]
# TRUNCATE_STATE: the module preloaded to cut a counters file short under
# the command (truncate_state.c); without it, that test skips.
# jq filters are in single quotes on purpose.
# shellcheck disable=SC2016
set -u
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: test_counters.sh WRENCH READER [TRUNCATE_STATE]" >&2
	exit 2
fi
W=$1
reader=$2
truncate_state=${3:-}
command -v jq > /dev/null 2>&1 || {
	echo "test_counters.sh: jq is needed; apt-get install jq" >&2
	exit 1
}
scratch=$(mktemp -d /tmp/wrench-counters.XXXXXX) || exit 1
# Users the tests made, and tmpfs they mounted, go with the scratch.
cleanup() {
	grep -o "$scratch/[^ ]*/mnt" /proc/mounts 2> /dev/null | while read -r m; do
		umount "$m"
	done
	[ -f "$scratch/users" ] && while read -r u; do userdel "$u"; done < "$scratch/users"
	rm -rf "$scratch"
}
trap cleanup EXIT
chmod 0755 "$scratch"
unset WRENCH_DIR WRENCH_SEED WRENCH_LOG
uid=$(id -u)

# An agent running as another user must reach what it runs, from a build
# anywhere (a root user's clone in /root is mode 0700): the reader and the
# library it was built with are copied where it can.
reader_copy=$scratch/reader
libdir=$scratch/lib
mkdir -m 0755 "$libdir"
cp "$reader" "$reader_copy" && chmod 0755 "$reader_copy"
library=$(ldd "$reader" | awk '/libwrench/ { print $3 }')
cp "$library" "$libdir/libwrench.so.1" && chmod 0644 "$libdir/libwrench.so.1"

# The reader run as nobody, with its copied library.
agent_as_nobody() {
	setpriv --reuid nobody --regid nogroup --clear-groups \
		env LD_LIBRARY_PATH="$libdir" "$reader_copy" "$@"
}

# Runs the command: stdout in $t/out, stderr in $t/err, status in $rc.
w() {
	timeout 60 "$W" --dir "$D" "$@" > "$t/out" 2> "$t/err"
	rc=$?
}

# One agent process making N calls of FEATURE in category cat; $agent_rc is
# its exit status (137: killed), and what each call answered is added to
# $got (1 or 0 per call).
agent() {
	timeout 60 "$reader" --sequence "$2" "$D" cat "$1" > "$t/agent" 2> "$t/agent.err"
	agent_rc=$?
	got="$got$(tr -d '\n' < "$t/agent")"
}

expect_rc() {
	[ "$rc" -eq "$1" ] || fail "exit $rc, expected $1: $(cat "$t/err")"
}

# Waits until the command of process $1 is waiting: asleep, with its
# SIGBUS handler (which it installs just before running its command) in
# place. Returns 1 when the process has ended first, 2 after 60 s.
wait_until_waiting() {
	deadline=$(($(date +%s) + 60))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		# The state follows the command name in parentheses.
		state=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -d ' ' -f 1)
		case $state in
		'' | Z | X) return 1 ;;
		S)
			# SIGBUS is 7: bit 6 of the mask's last hexadecimal word.
			caught=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2> /dev/null)
			caught=${caught#"${caught%????????}"}
			[ -n "$caught" ] && [ $((0x$caught >> 6 & 1)) -eq 1 ] && return 0
			;;
		esac
		sleep 0.05
	done
	return 2
}

# ---- kill once means once -------------------------------------------------

test_kill_times_one_kills_the_agent_once() {
	w set cat crash kill times=1
	got=""
	agent crash 1
	[ "$agent_rc" -eq 137 ] || fail "first run exited $agent_rc, expected 137 (SIGKILL)"
	got=""
	agent crash 1
	[ "$agent_rc" -eq 0 ] && [ "$got" = 0 ] || fail "restarted agent: exit $agent_rc, answered '$got'"
	agent crash 1
	[ "$agent_rc" -eq 0 ] || fail "third run exited $agent_rc"
	w --json hits cat
	jq -e '.lines[0] | .fires == 1 and .calls == 3 and .spent and (.last_pid > 0) and
		(.last_fire | test("^[0-9-]+T[0-9:]+Z$"))' "$t/out" > /dev/null ||
		fail "hits: $(cat "$t/out")"
}

test_first_every_follows_its_pattern_over_restarts() {
	w set cat fetch first=2 every=3
	got=""
	for _ in 1 2 3 4 5 6; do
		agent fetch 1
	done
	[ "$got" = 110110 ] || fail "six agents answered $got, expected 110110"
}

# ---- which edits keep or restart the counters --------------------------------

test_set_of_another_line_keeps_the_counters() {
	w set cat step every=2
	got=""
	agent step 1
	w set cat other
	agent step 1
	[ "$got" = 10 ] || fail "answered $got, expected 10"
}

test_set_of_the_same_line_rearms_it() {
	w set cat step times=1
	got=""
	agent step 2
	w set cat step times=1
	agent step 2
	[ "$got" = 1010 ] || fail "answered $got, expected 1010"
}

test_reset_restarts_the_counters() {
	w set cat step times=1
	w set cat other times=1
	got=""
	agent step 2
	agent other 1
	w reset cat step
	expect_rc 0
	agent step 1
	agent other 1
	w reset
	expect_rc 0
	agent step 1
	agent other 1
	[ "$got" = 1011011 ] || fail "answered $got, expected 1011011"
}

test_counters_of_removed_lines_are_removed() {
	w set cat step times=1
	w set cat keep
	agent step 1
	w unset cat step
	# Written back by hand, not by set (which would re-arm it): the old
	# counters are gone, so it fires again.
	printf 'keep\nstep times=1\n' > "$D/cat.new"
	chmod 0600 "$D/cat.new"
	mv "$D/cat.new" "$D/cat"
	got=""
	agent step 1
	[ "$got" = 1 ] || fail "the removed line's counters were kept (answered $got)"
}

# What is left of a line's counters: written back by hand (set would re-arm
# it), a line whose counters were removed shows none.
expect_no_counters_left() {
	printf 'step\n' > "$D/$1"
	chmod 0600 "$D/$1"
	w hits "$1"
	grep -q "^$1 step  calls=0 fires=0\$" "$t/out" || fail "$1 kept its counters: $(cat "$t/out")"
	rm -f "$D/$1"
}

# More lines than a category's first place in the table holds (256 slots):
# the counters of a removed line past it are found and removed too.
test_counters_of_a_removed_line_past_the_window_are_removed() {
	i=0
	while [ $i -lt 300 ]; do
		echo "f$i times=1"
		i=$((i + 1))
	done > "$D.new"
	mkdir -m 0700 "$D"
	chmod 0600 "$D.new"
	mv "$D.new" "$D/cat"
	agent f299 1 # its load gives every line its slot
	agent f0 1
	[ "$got" = 11 ] || fail "f299 and f0 answered $got"
	w unset cat f299
	expect_rc 0
	echo "f299 times=1" >> "$D/cat"
	w hits cat
	grep -q '^cat f299 times=1  calls=0 fires=0$' "$t/out" || fail "hits: $(grep f299 "$t/out")"
	grep -q '^cat f0 times=1  calls=1 fires=1 ' "$t/out" || fail "hits: $(grep 'f0 ' "$t/out")"
}

test_unset_and_clear_remove_the_counters() {
	w set cat step
	w set other step
	agent step 1
	"$reader" --sequence 1 "$D" other step > /dev/null 2>&1
	w unset cat
	expect_no_counters_left cat
	w hits other
	grep -q '^other step  calls=1 fires=1' "$t/out" || fail "unset cat took other's: $(cat "$t/out")"
	# A state file of the version before, one per category.
	printf 'old' > "$D/.wrench-state/cat"
	w clear
	expect_rc 0
	expect_no_counters_left other
	# No category is left: neither is any counters file, nor the earlier
	# version's; the state directory and the command's lock file stay.
	[ "$(ls -A "$D/.wrench-state")" = lock ] || fail "state: $(ls -A "$D/.wrench-state")"
}

# ---- wait ----------------------------------------------------------------------

test_wait_returns_at_once_for_an_earlier_fire() {
	w set cat step times=1
	agent step 1
	w wait cat step --timeout 5s
	expect_rc 0
	grep -q 'cat/step fired 1 time' "$t/out" || fail "wait said: $(cat "$t/out")"
}

test_wait_returns_when_a_running_program_fires() {
	w set cat step
	"$W" --dir "$D" wait cat step --timeout 120s > "$t/wait.out" 2>&1 &
	waiter=$!
	wait_until_waiting "$waiter"
	case $? in
	1) fail "wait returned before anything fired: $(cat "$t/wait.out")" ;;
	2) fail "wait was not seen waiting in 60 s" ;;
	esac
	start=$(date +%s)
	agent step 1
	wait "$waiter"
	wrc=$?
	[ "$wrc" -eq 0 ] || fail "wait exited $wrc: $(cat "$t/wait.out")"
	[ $(($(date +%s) - start)) -lt 25 ] || fail "wait did not return when the point fired"
}

test_wait_times_out_with_exit_1() {
	w set cat step
	w wait cat step --timeout 300ms
	expect_rc 1
	grep -q 'timed out.*fired 0 time(s), 1 wanted' "$t/err" || fail "said: $(cat "$t/err")"
	w --json wait cat step --fires 2 --timeout 100ms
	expect_rc 1
	jq -e '.timed_out and .fires == 0 and .wanted == 2' "$t/out" > /dev/null ||
		fail "json: $(cat "$t/out")"
}

test_wait_counts_the_fires_asked_for() {
	w set cat step every=2
	agent step 6
	w wait cat step --fires 3 --timeout 1s
	expect_rc 0
	w wait cat step --fires 4 --timeout 200ms
	expect_rc 1
}

test_wait_rejects_bad_options() {
	w wait cat step --fires 0
	expect_rc 2
	w wait cat step --timeout soon
	expect_rc 2
	w hits --fires 2
	expect_rc 2
}

# A typo in the feature, or a wait started before its line was set, would
# wait for the whole timeout: it exits 2 at once, with the features the
# lines name.
test_wait_for_a_feature_no_line_names_exits_2_at_once() {
	w set syncd crash-in-flush kill times=1
	w set syncd sync-fails
	start=$(date +%s)
	w wait syncd crash-in-flsh --timeout 60s
	expect_rc 2
	[ $(($(date +%s) - start)) -lt 30 ] || fail "wait waited for its timeout"
	[ -s "$t/out" ] && fail "wait printed: $(cat "$t/out")"
	grep -qxF "wrench: no line of $D/syncd names the feature \"crash-in-flsh\" (its lines name: crash-in-flush, sync-fails), so it can never fire: set its line before waiting; did you mean crash-in-flush?" \
		"$t/err" || fail "wait said: $(cat "$t/err")"
	w --json wait syncd other --timeout 60s
	expect_rc 2
	[ -s "$t/out" ] && fail "wait printed: $(cat "$t/out")"
	grep -qxF "wrench: no line of $D/syncd names the feature \"other\" (its lines name: crash-in-flush, sync-fails), so it can never fire: set its line before waiting" \
		"$t/err" || fail "wait said: $(cat "$t/err")"
	w wait sync crash-in-flush --timeout 60s
	expect_rc 2
	grep -qxF "wrench: category \"sync\" has no trigger file in $D, so \"crash-in-flush\" can never fire: set its line before waiting; did you mean syncd?" \
		"$t/err" || fail "wait said: $(cat "$t/err")"
	[ $(($(date +%s) - start)) -lt 30 ] || fail "wait waited for its timeout"
}

# ---- hits and eval --------------------------------------------------------------

# hits and reset of a category or a feature that nothing names say so, with
# what was meant, and exit 1; what is there is shown and reset as before.
test_hits_and_reset_of_what_nothing_names_say_so_and_exit_1() {
	w set cache get-fail
	w set cache put-fails times=1
	w hits nosuchcat
	expect_rc 1
	[ -s "$t/out" ] && fail "hits printed: $(cat "$t/out")"
	grep -qxF "wrench: category \"nosuchcat\" has no trigger file in $D" "$t/err" ||
		fail "hits said: $(cat "$t/err")"
	w --json hits cahce
	expect_rc 1
	jq -e '.lines == []' "$t/out" > /dev/null || fail "json: $(cat "$t/out")"
	grep -qxF "wrench: category \"cahce\" has no trigger file in $D; did you mean cache?" \
		"$t/err" || fail "hits said: $(cat "$t/err")"
	w reset nosuch
	expect_rc 1
	grep -qxF "wrench: category \"nosuch\" has no trigger file in $D" "$t/err" ||
		fail "reset said: $(cat "$t/err")"
	w reset cache put-fail
	expect_rc 1
	grep -qxF "wrench: no line of $D/cache names the feature \"put-fail\"; did you mean put-fails?" \
		"$t/err" || fail "reset said: $(cat "$t/err")"
	w reset cache put-fails
	expect_rc 0
	w hits cache
	expect_rc 0
	[ "$(wc -l < "$t/out")" = 2 ] || fail "hits: $(cat "$t/out")"
	rm -r "$D"
	w reset nosuch
	expect_rc 1
	grep -qxF "wrench: category \"nosuch\" has no trigger file: $D does not exist" "$t/err" ||
		fail "reset said: $(cat "$t/err")"
	w reset
	expect_rc 0
}

test_hits_lists_every_line_with_its_counters() {
	w set cat a every=2
	w set cat b scope=process
	agent a 3
	w hits
	expect_rc 0
	grep -q '^cat a every=2  calls=3 fires=2 last=.* pid=[0-9]*$' "$t/out" ||
		fail "hits: $(cat "$t/out")"
	grep -q '^cat b scope=process  (counted per process)' "$t/out" || fail "hits: $(cat "$t/out")"
	w --json hits
	jq -e '.lines | length == 2 and .[1].calls == null and .[1].scope == "process"' \
		"$t/out" > /dev/null || fail "json: $(cat "$t/out")"
}

test_eval_previews_from_the_counters_without_changing_them() {
	w set cat step times=2
	agent step 1
	w eval cat step -n 3
	grep -q 'step fired on 1 of 3 calls' "$t/out" || fail "eval: $(cat "$t/out")"
	w --json hits cat
	jq -e '.lines[0] | .calls == 1 and .fires == 1' "$t/out" > /dev/null ||
		fail "eval changed the counters: $(cat "$t/out")"
}

# The agent's user owns its counters file and can truncate it while root's
# command reads it: the command stops with a message, not a SIGBUS.
test_counters_file_cut_short_under_the_command_stops_it_with_a_message() {
	[ -n "$truncate_state" ] || skip "no module to preload"
	w set cat step every=2
	agent step 2
	LD_PRELOAD=$truncate_state ASAN_OPTIONS=verify_asan_link_order=0 \
		timeout 60 "$W" --dir "$D" hits > "$t/out" 2> "$t/err"
	rc=$?
	expect_rc 2
	grep -q 'truncate_state: cut .*/counters-' "$t/err" ||
		fail "the file was not cut: $(cat "$t/err")"
	grep -q "^wrench: a counters file in $D/.wrench-state could not be read through its mapping" \
		"$t/err" || fail "no message: $(cat "$t/err")"
}

# Any other SIGBUS kills the command as before: the handler hides no bug,
# whether the SIGBUS comes from another mapped file cut short or is sent.
test_another_sigbus_still_kills_the_command() {
	[ -n "$truncate_state" ] || skip "no module to preload"
	w set cat step every=2
	agent step 1
	LD_PRELOAD=$truncate_state ASAN_OPTIONS=verify_asan_link_order=0 \
		TRUNCATE_STATE_OTHER=$t/other timeout 60 "$W" --dir "$D" hits > "$t/out" 2> "$t/err"
	rc=$?
	expect_rc 135
	grep -q "truncate_state: reading $t/other past its end" "$t/err" ||
		fail "the other file was not read: $(cat "$t/err")"

	"$W" --dir "$D" wait cat step --fires 5 --timeout 120s > "$t/out" 2> "$t/err" &
	pid=$!
	wait_until_waiting "$pid" || fail "the command was not seen waiting with its handler"
	kill -BUS "$pid"
	wait "$pid"
	rc=$?
	expect_rc 135
	if grep -q 'could not be read through its mapping' "$t/err"; then
		fail "kill -BUS was taken for a counters file cut short"
	fi
}

test_hits_escapes_control_characters() {
	mkdir -m 0700 "$D"
	# A feature with a control character is a malformed line: the category,
	# a file name, is where such bytes can still reach the output.
	name=$(printf 'a\033]0;owned\007b')
	printf 'feat\n' > "$D/$name"
	chmod 0600 "$D/$name"
	w hits
	expect_rc 0
	grep -q 'a\\x1b]0;owned\\x07b' "$t/out" || fail "hits: $(od -c "$t/out" | head -3)"
	if grep -q "$(printf '\033')" "$t/out"; then
		fail "hits wrote an escape character to the terminal"
	fi
}

# ---- expiry -----------------------------------------------------------------------

test_until_in_the_past_never_fires_and_in_the_future_fires() {
	w set cat old until=2020-01-01T00:00:00Z
	w set cat new until=2999-01-01T00:00:00Z
	got=""
	agent old 2
	agent new 2
	[ "$got" = 0011 ] || fail "answered $got, expected 0011"
	w hits
	grep -q '^cat old until=2020-01-01T00:00:00Z .* expired$' "$t/out" || fail "hits: $(cat "$t/out")"
	w list
	grep -q 'old .*expired' "$t/out" || fail "list: $(cat "$t/out")"
	w check
	expect_rc 1
	grep -q 'expired at 2020-01-01T00:00:00Z.*wrench clear --expired' "$t/out" ||
		fail "check: $(cat "$t/out")"
}

test_set_for_writes_until_and_clear_expired_removes_it() {
	w set cat soon --for 2h
	expect_rc 0
	grep -Eq '^soon until=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$D/cat" || fail "wrote: $(cat "$D/cat")"
	w set cat both until=2999-01-01T00:00:00Z --for 1h
	expect_rc 2
	w set cat old until=2020-01-01T00:00:00Z
	w clear --expired
	expect_rc 0
	grep -q '^old' "$D/cat" && fail "clear --expired left the expired line"
	grep -q '^soon' "$D/cat" || fail "clear --expired removed a live line"
}

# ---- the state directory -----------------------------------------------------------

test_state_directory_is_not_a_category() {
	w set .wrench-state step
	expect_rc 2
}

test_check_reports_counters_an_agent_would_not_use() {
	w set cat step times=1
	agent step 1
	chmod 0666 "$D/.wrench-state/counters-v3-$uid"
	w check
	expect_rc 1
	grep -q "\.wrench-state/counters-v3-$uid is writable by group or others.*fix: chmod go-w" "$t/out" ||
		fail "check: $(cat "$t/out")"
	# The agent does not trust them either: the line stays off, and it says so.
	got=""
	agent step 1
	[ "$got" = 0 ] || fail "answered $got with untrusted counters"
	grep -q 'never fire' "$t/agent.err" || fail "agent said: $(cat "$t/agent.err")"
}

test_owner_gets_the_state_files() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root (chown to nobody)"
	w --owner nobody set cat step times=1
	expect_rc 0
	[ "$(stat -c %U "$D/.wrench-state")" = nobody ] || fail "state directory not nobody's"
	state_file="$D/.wrench-state/counters-v3-$(id -u nobody)"
	[ "$(stat -c %U%a "$state_file")" = nobody600 ] || fail "state file: $(stat -c %U%a "$state_file")"
	# The agent, running as nobody, counts in it.
	got=$(agent_as_nobody --sequence 2 "$D" cat step 2> "$t/agent.err" | tr -d '\n')
	[ "$got" = 10 ] || fail "agent as nobody answered $got: $(cat "$t/agent.err")"
	w --owner nobody hits cat
	grep -q 'fires=1' "$t/out" || fail "hits: $(cat "$t/out")"
}

# --owner in a shared directory (root's, used by other agents too): the
# counters' directory stays the directory owner's, so that every agent of
# the directory still trusts it; the category's file is the agent's.
test_owner_in_a_shared_directory_leaves_the_counters_usable_by_all() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root (chown to nobody)"
	mkdir -m 0755 "$D"
	w --owner nobody set cat step times=1
	expect_rc 0
	[ "$(stat -c %U%a "$D/.wrench-state")" = root711 ] ||
		fail "state directory: $(stat -c %U%a "$D/.wrench-state")"
	state_file="$D/.wrench-state/counters-v3-$(id -u nobody)"
	[ "$(stat -c %U%a "$state_file")" = nobody600 ] ||
		fail "state file: $(stat -c %U%a "$state_file")"
	got=$(agent_as_nobody --sequence 2 "$D" cat step 2> "$t/agent.err" | tr -d '\n')
	[ "$got" = 10 ] || fail "agent as nobody answered $got: $(cat "$t/agent.err")"
	# A root agent of another category counts machine-wide in the same
	# directory: its times=1 line fires once over two runs.
	w set other step times=1
	got=""
	for _ in 1 2; do
		got="$got$("$reader" --sequence 1 "$D" other step 2>> "$t/agent.err" | tr -d '\n')"
	done
	[ "$got" = 10 ] || fail "root agent answered $got: $(cat "$t/agent.err")"
}

# ---- counters that never fail open ------------------------------------------------

# A user of its own for the non-root agent, made by the test and removed
# when the tests end: what a machine running an agent as a service user
# has. Sets $agent_user, or skips.
make_agent_user() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root (creates a user)"
	command -v useradd > /dev/null 2>&1 || skip "skipped: no useradd"
	agent_user=wrench-t$$-$(cat "$scratch/users" 2> /dev/null | wc -l)
	useradd --system --no-create-home --shell /usr/sbin/nologin "$agent_user" ||
		skip "skipped: useradd failed"
	echo "$agent_user" >> "$scratch/users"
}

# The reader run as $agent_user, with its copied library.
agent_as_user() {
	timeout 60 setpriv --reuid "$agent_user" --regid "$agent_user" --clear-groups \
		env LD_LIBRARY_PATH="$libdir" "$reader_copy" "$@"
}

# Issue 16: a non-root agent, in a root-owned directory (as a package
# makes /var/lib/juju/wrench), set up as wrench(1) says; restarted three
# times under "kill times=1", it is killed once, and hits shows one fire.
test_a_non_root_agent_is_killed_once_over_restarts() {
	make_agent_user
	mkdir -m 0700 "$D"
	w --owner "$agent_user" set cat crash kill times=1
	expect_rc 1
	grep -q "fix: chmod o+rx $D" "$t/err" || fail "set said: $(cat "$t/err")"
	chmod o+rx "$D"
	w --owner "$agent_user" set cat crash kill times=1
	expect_rc 0
	w --owner "$agent_user" check
	expect_rc 0
	[ "$(stat -c %U%a "$D/.wrench-state")" = root711 ] ||
		fail "state directory: $(stat -c %U%a "$D/.wrench-state")"
	codes=""
	for _ in 1 2 3; do
		agent_as_user --sequence 1 "$D" cat crash > /dev/null 2> "$t/agent.err"
		codes="$codes $?"
	done
	[ "$codes" = " 137 0 0" ] || fail "the agent exited$codes: $(cat "$t/agent.err")"
	w --owner "$agent_user" --json hits cat
	expect_rc 0
	jq -e '.lines[0] | .fires == 1 and .calls == 3 and .counters == "machine"' "$t/out" \
		> /dev/null || fail "hits: $(cat "$t/out")"
}

# The same agent before its directory is prepared: it never fires a line
# that a count decides, says why, and the tools say so too.
test_a_non_root_agent_without_its_counters_fails_closed() {
	make_agent_user
	mkdir -m 0755 "$D"
	w set cat crash kill times=1
	chmod 0644 "$D/cat"
	codes=""
	for _ in 1 2; do
		agent_as_user --sequence 1 "$D" cat crash > /dev/null 2> "$t/agent.err"
		codes="$codes $?"
	done
	[ "$codes" = " 0 0" ] || fail "the agent exited$codes: $(cat "$t/agent.err")"
	grep -q "never fire.*prepare\|prepare.*never fire" "$t/agent.err" ||
		fail "the agent said: $(cat "$t/agent.err")"
	w --owner "$agent_user" hits
	expect_rc 1
	grep -q '^cat crash kill times=1  counters unavailable: never fires$' "$t/out" ||
		fail "hits: $(cat "$t/out")"
	w --owner "$agent_user" check
	expect_rc 1
	grep -q "cannot use its counters.*--owner $(id -u "$agent_user") prepare" "$t/out" ||
		fail "check: $(cat "$t/out")"
	w --owner "$agent_user" prepare
	expect_rc 0
	agent_as_user --sequence 1 "$D" cat crash > /dev/null 2>&1
	[ $? -eq 137 ] || fail "the prepared agent was not killed"
}

# A full file system (a tmpfs that a user filled): the counters cannot be
# made, so the kill line stays off instead of killing every restart, and
# every tool says so; with room again, it fires once.
test_a_full_disk_never_makes_a_line_fire_more() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root (mounts a tmpfs)"
	mkdir "$t/mnt"
	mount -t tmpfs -o size=1m,mode=0755 tmpfs "$t/mnt" 2> /dev/null ||
		skip "skipped: cannot mount a tmpfs"
	D=$t/mnt/wrench
	mkdir -m 0700 "$D"
	# Less room than the counters need, enough for a trigger file.
	free_kib=$(df -k --output=avail "$t/mnt" | tail -1)
	dd if=/dev/zero of="$t/mnt/fill" bs=4k count=$(((free_kib - 64) / 4)) 2> /dev/null
	w set cat crash kill times=1
	expect_rc 1
	grep -q "No space left on device" "$t/err" && grep -q "never fires" "$t/err" ||
		fail "set said: $(cat "$t/err")"
	got=""
	agent crash 1
	agent crash 1
	[ "$got" = 00 ] && [ "$agent_rc" -eq 0 ] || fail "agents answered $got, exit $agent_rc"
	w hits
	expect_rc 1
	grep -q 'counters unavailable: never fires' "$t/out" || fail "hits: $(cat "$t/out")"
	w check
	expect_rc 1
	grep -q "fix: free space" "$t/out" || fail "check: $(cat "$t/out")"
	w wait cat crash --timeout 30s
	expect_rc 1
	rm "$t/mnt/fill"
	got=""
	agent crash 1
	[ "$agent_rc" -eq 137 ] || fail "with room, the first agent exited $agent_rc"
	agent crash 1
	[ "$agent_rc" -eq 0 ] || fail "with room, the second agent exited $agent_rc"
	# Full again, once spent: the spent line stays spent.
	dd if=/dev/zero of="$t/mnt/fill" bs=4k count=1000 2> /dev/null
	agent crash 1
	[ "$agent_rc" -eq 0 ] || fail "on a full disk, a spent line fired: exit $agent_rc"
	w --json hits
	jq -e '.lines[0].fires == 1' "$t/out" > /dev/null || fail "hits: $(cat "$t/out")"
	umount "$t/mnt"
}

# A second name of the counters file: every agent refuses the file and
# keeps the spent line off; the fix keeps the counts.
test_a_second_link_to_the_counters_keeps_a_spent_line_off() {
	w set cat crash kill times=1
	agent crash 1
	[ "$agent_rc" -eq 137 ] || fail "first agent exited $agent_rc"
	ln "$D/.wrench-state/counters-v3-$uid" "$t/other-name"
	got=""
	agent crash 1
	[ "$agent_rc" -eq 0 ] || fail "with two links, the agent exited $agent_rc"
	grep -q '2 links' "$t/agent.err" || fail "the agent said: $(cat "$t/agent.err")"
	w hits
	expect_rc 1
	grep -q 'find / -xdev -samefile' "$t/err" || fail "hits said: $(cat "$t/err")"
	w check
	expect_rc 1
	grep -q 'its counts are kept' "$t/out" || fail "check: $(cat "$t/out")"
	rm "$t/other-name"
	agent crash 1
	[ "$agent_rc" -eq 0 ] || fail "once mended, the agent exited $agent_rc"
	w --json hits
	expect_rc 0
	jq -e '.lines[0].fires == 1' "$t/out" > /dev/null || fail "hits: $(cat "$t/out")"
}

# wait and hits on a directory the agent refuses, or that is missing: at
# once, with the reason, never the whole timeout.
test_wait_and_hits_on_a_refused_directory_fail_at_once() {
	mkdir -m 0777 "$D"
	printf 'step\n' > "$D/cat"
	chmod 0600 "$D/cat"
	start=$(date +%s)
	w wait cat step --timeout 60s
	expect_rc 1
	[ $(($(date +%s) - start)) -lt 30 ] || fail "wait waited for its timeout"
	grep -q 'writable by group or others' "$t/err" || fail "wait said: $(cat "$t/err")"
	w hits
	expect_rc 1
	grep -q 'writable by group or others' "$t/err" || fail "hits said: $(cat "$t/err")"
	rm -r "$D"
	w wait cat step --timeout 60s
	expect_rc 1
	grep -q 'does not exist' "$t/err" || fail "wait said: $(cat "$t/err")"
	w hits
	expect_rc 1
}

# A directory with a handful of trigger files costs its state at most 1 MiB.
test_the_state_of_a_few_triggers_is_small() {
	for c in a b c d e; do
		w set "$c" step times=3
		w set "$c" other every=2
	done
	"$reader" --sequence 1 "$D" a step > /dev/null 2>&1
	kib=$(du -sk "$D/.wrench-state" | cut -f1)
	[ "$kib" -le 1024 ] || fail "the state takes $kib KiB"
}

run_tests "$0" 0755
