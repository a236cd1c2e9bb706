#!/bin/sh
# Tests of the wrench command (issue 3, interface in wrench(1)): installs the
# build into a scratch prefix and runs PREFIX/bin/wrench, the installed
# layout, on scratch trigger directories under /tmp. Each test is a small
# function run in a subshell, in its own directory $t, with $D the trigger
# directory (not created unless the test creates it). Prints one line per
# test and ends with "N passed, N failed"; exits 1 if any failed.
# Tests that need root skip with a message when not run as root.
# Usage: test_cli.sh SOURCE_DIR BUILD_DIR READER
#   READER is the wrench_cli_reader helper (tests/cli/reader.c).
# jq filters use jq variables ($D, $t) in single quotes on purpose.
# shellcheck disable=SC2016
set -u
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

if [ $# -ne 3 ]; then
	echo "usage: test_cli.sh SOURCE_DIR BUILD_DIR READER" >&2
	exit 2
fi
build=$2
reader=$3

if ! command -v jq > /dev/null 2>&1; then
	echo "test_cli.sh: jq is needed to check the --json output; install it (apt-get install jq)" >&2
	exit 1
fi

# The scratch tree is searchable by all (0755) so that tests can run the
# command as nobody; nothing in it is group- or world-writable, and /tmp
# is sticky, so trigger directories under it are trusted.
scratch=$(mktemp -d /tmp/wrench-cli.XXXXXX) || exit 1
trap 'rm -rf "$scratch"' EXIT
chmod 0755 "$scratch"
prefix=$scratch/prefix
if ! cmake --install "$build" --prefix "$prefix" > "$scratch/install.log" 2>&1; then
	cat "$scratch/install.log" >&2
	echo "test_cli.sh: cmake --install failed" >&2
	exit 1
fi
W=$prefix/bin/wrench
if [ ! -x "$W" ]; then
	echo "test_cli.sh: $W was not installed" >&2
	exit 1
fi
chmod -R go+rX "$prefix"

# The command must be tested against its own defaults.
unset WRENCH_DIR WRENCH_SEED WRENCH_LOG

uid=$(id -u)
nobody_uid=$(id -u nobody 2> /dev/null || echo 65534)
nobody_gid=$(id -g nobody 2> /dev/null || echo 65534)

# Tests that run a program as nobody need it where nobody can reach it:
# the build tree may be in a directory others cannot enter, such as /root
# (issue 9, item 14). The install above is in $scratch; the reader and its
# library are copied next to it.
libdir=$(dirname "$(find "$prefix" -name 'libwrench.so.1' | head -n 1)")
reader_copy=$scratch/reader
cp "$reader" "$reader_copy"
chmod 0755 "$reader_copy"

# A second unprivileged user, for the tests of another user's directory;
# its name is unique to this run, and it is removed at the end.
second_user=
if [ "$uid" -eq 0 ] && command -v useradd > /dev/null 2>&1; then
	name=wrench-t-cli-$$
	if useradd --system --no-create-home --shell /usr/sbin/nologin "$name" > /dev/null 2>&1; then
		second_user=$name
	fi
fi
cleanup() {
	[ -z "$second_user" ] || userdel "$second_user" > /dev/null 2>&1
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP # so that the cleanup runs on a signal too

# ---- Helpers ------------------------------------------------------------

need_root() {
	[ "$uid" -eq 0 ] || skip "skipped: needs root ($1)"
}

# Runs a command with stdout in $t/out, stderr in $t/err, status in $rc.
# The timeout turns a hang (a FIFO opened for reading) into a failure.
wrun() {
	last="$*"
	timeout 30 "$@" > "$t/out" 2> "$t/err"
	rc=$?
}

w() {
	wrun "$W" "$@"
}

# Runs the command as nobody, with nobody's group only.
w_nobody() {
	wrun setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups "$W" "$@"
}

show_output() {
	echo "    command: $last"
	echo "    exit code: $rc"
	sed -n '1,12s/^/    stdout: /p' "$t/out"
	sed -n '1,12s/^/    stderr: /p' "$t/err"
}

expect_rc() {
	if [ "$rc" != "$1" ]; then
		fail "exit code $rc, expected $1"
		show_output
	fi
}

expect_stdout_empty() {
	if [ -s "$t/out" ]; then
		fail "stdout is not empty"
		show_output
	fi
}

expect_stderr_empty() {
	if [ -s "$t/err" ]; then
		fail "stderr is not empty"
		show_output
	fi
}

# stdout is exactly the lines given (printf %b escapes allowed).
expect_stdout() {
	printf '%b' "$1" > "$t/expected"
	if ! cmp -s "$t/expected" "$t/out"; then
		fail "stdout differs from what was expected"
		diff "$t/expected" "$t/out" | sed 's/^/    /'
		show_output
	fi
}

expect_stdout_line() {
	if ! grep -Fqx -- "$1" "$t/out"; then
		fail "stdout has no line: $1"
		show_output
	fi
}

expect_stdout_match() {
	if ! grep -Eq -- "$1" "$t/out"; then
		fail "stdout has no line matching: $1"
		show_output
	fi
}

expect_stderr_line() {
	if ! grep -Fqx -- "$1" "$t/err"; then
		fail "stderr has no line: $1"
		show_output
	fi
}

expect_stderr_contains() {
	if ! grep -Fq -- "$1" "$t/err"; then
		fail "stderr does not say: $1"
		show_output
	fi
}

# Errors and notes: at least one line, every line starting "wrench: ".
expect_stderr_prefixed() {
	if [ ! -s "$t/err" ]; then
		fail "nothing on stderr"
		show_output
	elif grep -qv '^wrench: ' "$t/err"; then
		fail "a line of stderr does not start with \"wrench: \""
		show_output
	fi
}

# A usage or input error: exit 2, a "wrench: " message, nothing on stdout.
expect_usage_error() {
	expect_rc 2
	expect_stderr_prefixed
	expect_stdout_empty
}

# Bad usage: exit 2, nothing on stdout, and stderr starting with a
# "wrench: " line. Whether every line is so is tested once, in
# test_usage_errors_are_wrench_lines, not in every test of usage.
expect_bad_usage() {
	expect_rc 2
	expect_stdout_empty
	if ! head -n 1 "$t/err" | grep -q '^wrench: .'; then
		fail "stderr does not start with a \"wrench: \" line"
		show_output
	fi
}

# Some stdout line reports WHERE (a path, or PATH:LINE) and contains every
# other argument. The line starts with WHERE, then ": " or the space of the
# library's message ("PATH is writable by ...").
expect_problem() {
	awk -v p="$1" 'index($0, p ": ") == 1 || index($0, p " ") == 1' "$t/out" > "$t/match"
	what="line about $1"
	shift
	for s in "$@"; do
		grep -F -- "$s" "$t/match" > "$t/match2"
		mv "$t/match2" "$t/match"
		what="$what containing \"$s\""
	done
	if [ ! -s "$t/match" ]; then
		fail "stdout has no $what"
		show_output
	fi
}

# jq -e FILTER [JQ-OPTION...] on stdout, with $D and $t as jq variables.
expect_json() {
	filter=$1
	shift
	if ! jq -e --arg D "$D" --arg t "$t" "$@" "$filter" "$t/out" > /dev/null 2>&1; then
		fail "JSON does not satisfy: $filter"
		show_output
	fi
}

# Writes CONTENT (printf %b escapes) to PATH with MODE (default 0600).
mkfile() {
	printf '%b' "$2" > "$1"
	chmod "${3:-0600}" "$1"
}

mkd() {
	mkdir -p "$D"
	chmod 0700 "$D"
}

expect_file() {
	printf '%b' "$2" > "$t/expected"
	if [ -L "$1" ] || [ ! -f "$1" ]; then
		fail "$1 is not a regular file"
	elif ! cmp -s "$t/expected" "$1"; then
		fail "$1 differs from what was expected"
		diff "$t/expected" "$1" | sed 's/^/    /'
	fi
}

expect_unchanged() {
	if ! cmp -s "$2" "$1"; then
		fail "$1 was changed (compare with $2)"
		diff "$2" "$1" | sed 's/^/    /'
	fi
}

expect_mode() {
	m=$(stat -c %a "$1" 2> /dev/null)
	[ "$m" = "$2" ] || fail "$1 has mode ${m:-?}, expected $2"
}

expect_owner() {
	o=$(stat -c %u:%g "$1" 2> /dev/null)
	[ "$o" = "$2" ] || fail "$1 is owned by ${o:-?}, expected $2"
}

expect_missing() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		fail "$1 exists, expected it not to"
	fi
}

# The entries of a trigger directory but the state directory, which every
# command that edits makes (its lock).
expect_entries() {
	# Names here are plain: ls is fine.
	# shellcheck disable=SC2012
	got=$(ls -A "$1" | grep -vx '\.wrench-state' | tr '\n' ' ')
	[ "$got" = "$2" ] || fail "$1 holds \"$got\", expected \"$2\""
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# A listing of everything under the given paths that changes with any
# write, mode or owner change, and the contents of every regular file.
snapshot() {
	for p in "$@"; do
		find "$p" -exec stat -c '%n %F %a %u %g %s %i %h %y %z' {} +
		find "$p" -type f -exec sha256sum {} +
	done | sort
}

# ---- General usage ------------------------------------------------------

test_help_lists_every_command() {
	for opt in --help -h; do
		w $opt
		expect_rc 0
		for cmd in set unset clear list check eval; do
			grep -qw "$cmd" "$t/out" || fail "wrench $opt does not mention $cmd"
		done
	done
}

# One line under each command says what it does; every option it takes
# is shown with it (--owner for list, check and eval too).
test_help_says_what_each_command_does_and_every_option_it_takes() {
	w --help
	expect_rc 0
	for cmd in set unset clear prepare list check eval hits wait reset points; do
		awk -v c="  wrench $cmd" 'index($0, c) == 1 && (length($0) == length(c) ||
			substr($0, length(c) + 1, 1) == " ") {getline d; found = d ~ /^      [a-z]/}
			END {exit !found}' "$t/out" || fail "--help has no line saying what $cmd does"
	done
	for cmd in list check eval; do
		grep -q "^  wrench $cmd .*\[--owner USER\]" "$t/out" || fail "--help shows no --owner for $cmd"
	done
	expect_stdout_line '  wrench eval CATEGORY FEATURE [--owner USER] [--json] [-n N]'
	expect_stdout_line '  wrench wait CATEGORY FEATURE [--owner USER] [--json] [--fires N] [--timeout DURATION]'
	expect_stdout_line '  wrench set CATEGORY FEATURE [DIRECTIVE ...] [--owner USER] [--for DURATION] [--binary PATH]'
	expect_stdout_line '  wrench clear [--owner USER] [--expired]'
	expect_stdout_line '  wrench check [--owner USER] [--json] [--binary PATH]'
	expect_stdout_line '  wrench points [CATEGORY] [--owner USER] [--json] [--binary PATH]'
}

test_version_prints_a_version() {
	w --version
	expect_rc 0
	expect_stdout_match '[0-9]+\.[0-9]+'
}

test_no_command_is_a_usage_error() {
	w
	expect_bad_usage
}

test_unknown_command_is_a_usage_error() {
	w --dir "$D" frobnicate
	expect_bad_usage
	expect_missing "$D"
}

test_unknown_option_is_a_usage_error() {
	w --dir "$D" --frobnicate list
	expect_bad_usage
	w --dir
	expect_bad_usage
}

test_usage_errors_are_wrench_lines() {
	for args in "frobnicate" "--frobnicate list" "--dir" "list a b" "set" "eval cat t -n 0" \
		"--json set cat feat"; do
		# shellcheck disable=SC2086
		w $args
		expect_usage_error
	done
}

test_wrong_number_of_arguments_is_a_usage_error() {
	mkd
	for args in "set" "set cat" "unset" "unset cat t extra" "clear extra" "list a b" \
		"check extra" "eval" "eval cat" "eval cat t extra"; do
		# shellcheck disable=SC2086
		w --dir "$D" $args
		expect_bad_usage
	done
	expect_entries "$D" ""
}

# Every usage error names what is missing or extra, and shows the usage
# of the command, on one line.
test_usage_errors_name_what_is_missing_or_extra() {
	w --dir "$D" set syncd
	expect_bad_usage
	expect_stderr_line 'wrench: set needs FEATURE after CATEGORY; usage: wrench set CATEGORY FEATURE [DIRECTIVE ...] [--owner USER] [--for DURATION] [--binary PATH]'
	[ "$(wc -l < "$t/err")" = 1 ] || fail "not one line"
	w --dir "$D" eval
	expect_bad_usage
	expect_stderr_line 'wrench: eval needs CATEGORY and FEATURE; usage: wrench eval CATEGORY FEATURE [--owner USER] [--json] [-n N]'
	w --dir "$D" unset
	expect_bad_usage
	expect_stderr_contains 'wrench: unset needs CATEGORY; usage: wrench unset CATEGORY [FEATURE]'
	w --dir "$D" list x y
	expect_bad_usage
	expect_stderr_line 'wrench: unexpected operand "y" for list; usage: wrench list [CATEGORY] [--owner USER] [--json]'
	w --dir "$D" unset cat t extra
	expect_bad_usage
	expect_stderr_contains 'wrench: unexpected operand "extra" for unset; '
	w --dir "$D" --json set cat feat
	expect_bad_usage
	expect_stderr_line 'wrench: --json does not apply to set; usage: wrench set CATEGORY FEATURE [DIRECTIVE ...] [--owner USER] [--for DURATION] [--binary PATH]'
	w --dir "$D" -n 2 list
	expect_bad_usage
	expect_stderr_contains 'wrench: -n does not apply to list; '
	w --dir "$D" --count 2 check
	expect_bad_usage
	expect_stderr_contains 'wrench: --count does not apply to check; '
	w --dir "$D" set cat feat --timeout 2s
	expect_bad_usage
	expect_stderr_contains 'wrench: --timeout does not apply to set; '
	w --dir "$D" wait cat feat --for 1h
	expect_bad_usage
	expect_stderr_contains 'wrench: --for does not apply to wait; '
	w --dir "$D" reset --expired
	expect_bad_usage
	expect_stderr_contains 'wrench: --expired does not apply to reset; '
	w --dir "$D" lsit
	expect_bad_usage
	expect_stderr_line "wrench: unknown command \"lsit\"; did you mean list?; try 'wrench --help'"
	expect_missing "$D"
}

test_invalid_category_is_a_usage_error() {
	long=$(printf '%0256d' 0)
	for cat in "" "." ".." "a/b" "$long"; do
		w --dir "$D" set "$cat" feat
		expect_bad_usage
		w --dir "$D" unset "$cat" feat
		expect_bad_usage
		w --dir "$D" unset "$cat"
		expect_bad_usage
		w --dir "$D" list "$cat"
		expect_bad_usage
		w --dir "$D" eval "$cat" feat
		expect_bad_usage
	done
	expect_missing "$D"
}

test_option_of_another_command_is_a_usage_error() {
	w --dir "$D" --json set cat feat
	expect_bad_usage
	w --dir "$D" --json unset cat
	expect_bad_usage
	w --dir "$D" --json clear
	expect_bad_usage
	w --dir "$D" -n 2 list
	expect_bad_usage
	w --dir "$D" --count 2 check
	expect_bad_usage
	w --dir "$D" -n 2 set cat feat
	expect_bad_usage
	w --dir "$D" -n 2 clear
	expect_bad_usage
	expect_missing "$D"
}

# A directory made with --owner is its agent's: root cleans it with or
# without --owner, and nothing it suggests would give it to root.
test_clear_cleans_a_directory_made_for_an_agent() {
	need_root "chown to nobody"
	chmod 0755 "$t"
	w --dir "$D" --owner nobody set cat feat times=1
	expect_rc 0
	w --dir "$D" clear
	expect_rc 0
	expect_entries "$D" ""
	expect_owner "$D" "$nobody_uid:$nobody_gid"
	w --dir "$D" --owner nobody set cat feat times=1
	w --dir "$D" --owner nobody clear
	expect_rc 0
	expect_entries "$D" ""
	expect_owner "$D" "$nobody_uid:$nobody_gid"
	[ "$(ls -A "$D/.wrench-state")" = lock ] || fail "counters left: $(ls -A "$D/.wrench-state")"
}

# list, check and eval judge files for the agent's uid given by --owner:
# a file owned by nobody is fine for an agent running as nobody, and is
# refused for an agent running as root.
test_owner_on_list_check_eval_judges_for_that_agent() {
	need_root "chown to nobody"
	chmod 0755 "$t" # the agent must be able to reach its directory
	w --dir "$D" --owner nobody set cat feat
	expect_rc 0
	w --dir "$D" --owner nobody check
	expect_rc 0
	w --dir "$D" check
	expect_rc 1
	expect_stdout_match 'owned by uid [0-9]+, not by root'
	w --dir "$D" --owner nobody list
	expect_rc 0
	expect_stdout 'cat feat\n'
	w --dir "$D" list
	expect_stdout_match '^cat feat  # ignored: .*owned by uid'
	w --dir "$D" --owner nobody eval cat feat
	expect_rc 0
	w --dir "$D" eval cat feat
	expect_rc 1
}

test_dir_with_dotdot_is_a_usage_error() {
	w --dir "$t/x/../wrench" set cat feat
	expect_bad_usage
	expect_missing "$t/wrench"
	expect_missing "$t/x"
	w --dir "$t/wrench/.." list
	expect_bad_usage
}

# An agent given a relative WRENCH_DIR stays inactive: the command refuses
# one too, rather than write triggers that nothing reads (issue 9, item 10).
test_relative_dir_is_refused() {
	cd "$t" || return
	for cmd in "set cat feat" "unset cat" clear list check "eval cat feat"; do
		# shellcheck disable=SC2086
		w --dir rel/wrench $cmd
		expect_usage_error
		expect_stderr_contains "not an absolute path"
		# shellcheck disable=SC2086
		wrun env WRENCH_DIR=rel/wrench "$W" $cmd
		expect_usage_error
		[ "$(wc -l < "$t/err")" = 1 ] || fail "WRENCH_DIR=rel/wrench: not one message"
		expect_stderr_contains "WRENCH_DIR \"rel/wrench\" is not an absolute path"
	done
	expect_missing "$t/rel"
}

test_options_may_follow_the_command() {
	w set cat feat --dir "$D"
	expect_rc 0
	expect_file "$D/cat" 'feat\n'
	w list --json cat --dir "$D"
	expect_rc 0
	expect_json '.triggers[0].feature == "feat"'
	w eval cat feat --dir "$D" -n 2
	expect_rc 0
	expect_stdout_line "call 2: fail (line 1)"
	w eval cat feat --dir="$D" -n3
	expect_rc 0
	expect_stdout_line "call 3: fail (line 1)"
	w eval cat feat --dir="$D" --count=2 --json
	expect_rc 0
	expect_json '.calls | length == 2'
}

test_double_dash_ends_options() {
	w --dir "$D" set -- cat --feat
	expect_rc 0
	expect_file "$D/cat" '--feat\n'
	w --dir "$D" eval -- cat --feat
	expect_rc 0
	expect_stdout_line "call 1: fail (line 1)"
}

test_WRENCH_DIR_is_the_default_directory() {
	wrun env WRENCH_DIR="$D" "$W" set cat feat
	expect_rc 0
	expect_file "$D/cat" 'feat\n'
	wrun env WRENCH_DIR="$D" "$W" list --json
	expect_rc 0
	expect_json '.dir == $D and (.triggers | length) == 1'
}

test_dir_option_overrides_WRENCH_DIR() {
	wrun env WRENCH_DIR="$t/other" "$W" --dir "$D" set cat feat
	expect_rc 0
	expect_file "$D/cat" 'feat\n'
	expect_missing "$t/other"
}

test_empty_or_unset_WRENCH_DIR_means_the_builtin_directory() {
	wrun env WRENCH_DIR= "$W" list --json
	expect_rc 0
	expect_json '.dir == "/var/lib/juju/wrench"'
	wrun env -u WRENCH_DIR "$W" list --json
	expect_rc 0
	expect_json '.dir == "/var/lib/juju/wrench"'
}

# ---- set ----------------------------------------------------------------

test_set_creates_the_directory_0700_and_says_so() {
	umask 000
	D=$t/a/b/wrench
	w --dir "$D" set cat feat
	expect_rc 0
	expect_stdout_empty
	expect_stderr_line "wrench: created $D (mode 0700)"
	expect_stderr_prefixed
	expect_mode "$D" 700
	expect_mode "$t/a" 755
	expect_mode "$t/a/b" 755
	expect_file "$D/cat" 'feat\n'
	expect_mode "$D/cat" 600
}

test_set_in_an_existing_directory_prints_nothing() {
	mkd
	w --dir "$D" set cat feat chance=25% slow=1s
	expect_rc 0
	expect_stdout_empty
	expect_stderr_empty
	expect_file "$D/cat" 'feat chance=25% slow=1s\n'
}

test_set_writes_mode_0600_owned_by_the_caller() {
	umask 000
	mkd
	w --dir "$D" set cat feat
	expect_rc 0
	expect_mode "$D/cat" 600
	expect_owner "$D/cat" "$uid:$(id -g)"
	mkfile "$D/other" 'x\n' 0644
	w --dir "$D" set other feat
	expect_rc 0
	expect_mode "$D/other" 600
}

test_set_accepts_a_hash_inside_a_feature() {
	w --dir "$D" set cat 'foo#bar' every=2
	expect_rc 0
	expect_file "$D/cat" 'foo#bar every=2\n'
	w --dir "$D" list
	expect_stdout 'cat foo#bar every=2\n'
}

test_set_file_is_honoured_by_the_library() {
	w --dir "$D" set cat feat every=1
	expect_rc 0
	wrun "$reader" "$D" cat feat 0.1
	[ "$rc" = 0 ] || fail "the library does not see cat/feat active: $(cat "$t/out")"
}

test_set_keeps_other_lines_comments_and_order() {
	mkd
	mkfile "$D/cat" '# header\n\nalpha every=2\n  # indented comment\ntarget fail   # why it fails\nbeta\n\n# tail\n'
	cp "$D/cat" "$t/orig"
	w --dir "$D" set cat target chance=50%
	expect_rc 0
	expect_stdout_empty
	[ "$(wc -l < "$D/cat")" = 8 ] || fail "the file no longer has 8 lines"
	sed 5d "$t/orig" > "$t/orig-others"
	sed 5d "$D/cat" > "$t/new-others"
	expect_unchanged "$t/new-others" "$t/orig-others"
	sed -n 5p "$D/cat" | grep -Eqx 'target chance=50%[[:space:]]*# why it fails' ||
		fail "line 5 is \"$(sed -n 5p "$D/cat")\", expected the new line with its comment"
}

test_set_appends_a_new_feature_after_a_last_line_without_newline() {
	mkd
	mkfile "$D/cat" 'alpha\n# no newline'
	w --dir "$D" set cat new fail
	expect_rc 0
	expect_file "$D/cat" 'alpha\n# no newline\nnew fail\n'
}

test_set_replaces_every_line_of_the_feature() {
	mkd
	mkfile "$D/cat" 'a\nt slow=1s\nb\nt bogus=1\nc t\nt chance=1\n'
	w --dir "$D" set cat t every=3
	expect_rc 0
	expect_file "$D/cat" 'a\nt every=3\nb\nc t\n'
}

test_set_replaces_a_malformed_line_of_the_feature() {
	mkd
	mkfile "$D/cat" 'x\nt chanse=1\nother bogus\ny\n'
	w --dir "$D" set cat t
	expect_rc 0
	expect_file "$D/cat" 'x\nt\nother bogus\ny\n'
}

test_set_keeps_crlf_line_ends() {
	mkd
	mkfile "$D/cat" 'a\r\nt fail\r\nb\r\n'
	w --dir "$D" set cat t every=2
	expect_rc 0
	sed -n '1p;3p' "$D/cat" > "$t/kept"
	expect_file "$t/kept" 'a\r\nb\r\n'
	[ "$(sed -n 2p "$D/cat" | tr -d '\r')" = "t every=2" ] ||
		fail "line 2 is \"$(sed -n 2p "$D/cat")\", expected \"t every=2\""
	[ "$(wc -l < "$D/cat")" = 3 ] || fail "the file no longer has 3 lines"
}

test_set_bad_directive_leaves_the_file_byte_for_byte_unchanged() {
	mkd
	mkfile "$D/cat" '# keep me\r\nt fail\nother chance=10%   # note\n' 0644
	cp -p "$D/cat" "$t/orig"
	ino=$(stat -c %i "$D/cat")
	w --dir "$D" set cat t chanse=0.5
	expect_usage_error
	expect_stderr_line 'wrench: invalid trigger "t chanse=0.5": unknown directive "chanse=0.5" (did you mean chance=?; directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, first=N, after=K, times=T, until=TIME, scope=process, errno=NAME, value=TEXT)'
	for bad in chance=1.5 first=2 "fail kill" "times=1 times=2" slow=5 kill=32 every=0 \
		"first=3 every=2" fail=1 slow=2h; do
		# shellcheck disable=SC2086
		w --dir "$D" set cat t $bad
		expect_usage_error
		expect_stderr_contains "wrench: invalid trigger \"t $bad\": "
	done
	expect_unchanged "$D/cat" "$t/orig"
	expect_mode "$D/cat" 644
	[ "$(stat -c %i "$D/cat")" = "$ino" ] || fail "$D/cat was replaced"
	expect_entries "$D" "cat "
}

test_set_bad_directive_creates_nothing() {
	w --dir "$D" set cat t bogus
	expect_usage_error
	expect_missing "$D"
}

set_is_refused() {
	w --dir "$D" set "$@"
	expect_usage_error
}

test_set_refuses_bad_feature_or_directive_words() {
	tab=$(printf '\t')
	set_is_refused cat ""
	set_is_refused cat "a b"
	set_is_refused cat "a${tab}b"
	set_is_refused cat "#x"
	set_is_refused cat t ""
	set_is_refused cat t "#c"
	set_is_refused cat t "fail kill"
	set_is_refused cat t fail ""
	expect_missing "$D"
}

test_set_refuses_a_symlinked_trigger_file() {
	mkd
	mkfile "$t/outside" 'x\n'
	ln -s "$t/outside" "$D/cat"
	w --dir "$D" set cat t
	expect_usage_error
	if [ ! -L "$D/cat" ] || [ "$(readlink "$D/cat")" != "$t/outside" ]; then
		fail "the symlink $D/cat was changed"
	fi
	expect_file "$t/outside" 'x\n'
	expect_entries "$D" "cat "
}

test_set_refuses_a_fifo() {
	mkd
	mkfifo -m 0600 "$D/cat"
	w --dir "$D" set cat t
	expect_usage_error
	[ -p "$D/cat" ] || fail "the FIFO $D/cat was replaced"
	mkdir -m 0700 "$D/sub"
	w --dir "$D" set sub t
	expect_usage_error
	expect_entries "$D/sub" ""
}

test_set_refuses_an_oversized_file() {
	mkd
	yes pad | head -c 65537 > "$D/cat"
	chmod 0600 "$D/cat"
	cp "$D/cat" "$t/orig"
	w --dir "$D" set cat t
	expect_usage_error
	expect_unchanged "$D/cat" "$t/orig"
}

test_set_refuses_a_file_with_a_nul_byte() {
	mkd
	mkfile "$D/cat" 'a\n\0b\n'
	cp "$D/cat" "$t/orig"
	w --dir "$D" set cat t
	expect_usage_error
	expect_unchanged "$D/cat" "$t/orig"
}

# A directory the agent would not trust is not written to (issue 8, item 2):
# the refusal says why and how to fix it, and nothing is created.
test_set_refuses_a_directory_the_agent_would_not_trust() {
	mkd
	chmod 0770 "$D"
	w --dir "$D" set cat t
	expect_usage_error
	expect_stderr_contains "nothing was changed"
	expect_stderr_contains "writable by group or others (mode 0770); fix: chmod go-w $D"
	expect_entries "$D" ""
}

test_set_renames_a_new_file_into_place() {
	mkd
	mkfile "$D/cat" 'a\n'
	ino=$(stat -c %i "$D/cat")
	w --dir "$D" set cat t
	expect_rc 0
	[ "$(stat -c %i "$D/cat")" != "$ino" ] || fail "$D/cat was rewritten in place"
}

test_set_and_unset_leave_no_temporary_files() {
	w --dir "$D" set cat a
	w --dir "$D" set cat b
	w --dir "$D" set cat a every=2
	w --dir "$D" unset cat b
	expect_rc 0
	expect_entries "$D" "cat "
}

test_concurrent_sets_are_serialised() {
	mkd
	pids=""
	i=0
	while [ $i -lt 20 ]; do
		"$W" --dir "$D" set cat "f$i" > "$t/out.$i" 2>&1 &
		pids="$pids $!"
		i=$((i + 1))
	done
	for p in $pids; do
		wait "$p" || fail "a concurrent set exited $?"
	done
	seq 0 19 | sed 's/^/f/' | sort > "$t/expected"
	sort "$D/cat" > "$t/got"
	expect_unchanged "$t/got" "$t/expected"
	expect_entries "$D" "cat "
}

test_set_owner_chowns_a_created_directory_and_the_file() {
	need_root "chown to nobody"
	chmod 0755 "$t"
	w --dir "$D" --owner nobody set cat feat
	expect_rc 0
	expect_owner "$D" "$nobody_uid:$nobody_gid"
	expect_mode "$D" 700
	expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
	expect_mode "$D/cat" 600
	w --dir "$t/numeric" --owner "$nobody_uid" set cat feat
	expect_rc 0
	expect_owner "$t/numeric" "$nobody_uid:$nobody_gid"
	expect_owner "$t/numeric/cat" "$nobody_uid:$nobody_gid"
	w --dir "$D" --owner nobody unset cat other
	expect_rc 1
	w --dir "$D" --owner nobody set cat other
	w --dir "$D" --owner nobody unset cat feat
	expect_rc 0
	expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
	expect_file "$D/cat" 'other\n'
}

test_set_owner_makes_a_file_the_agent_user_trusts() {
	need_root "run the agent as nobody"
	chmod 0755 "$t"
	w --dir "$D" --owner nobody set cat feat
	expect_rc 0
	wrun setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups \
		env LD_LIBRARY_PATH="$libdir" "$reader_copy" "$D" cat feat 0.1
	[ "$rc" = 0 ] || fail "an agent running as nobody does not see cat/feat: $(cat "$t/out")"
}

test_set_owner_warns_when_the_agent_cannot_reach_the_file() {
	need_root "chown to nobody"
	# $t is root's, mode 0700: an agent running as nobody cannot enter it,
	# so it would not read the file, however it is owned.
	w --dir "$D" --owner nobody set cat feat
	expect_rc 1
	expect_stderr_prefixed
	expect_stderr_contains "wrench: warning: "
	expect_stderr_contains "$t"
	expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
}

test_set_owner_of_an_unknown_user_is_a_usage_error() {
	need_root "--owner is for root"
	w --dir "$D" --owner no-such-user-wrench set cat feat
	expect_usage_error
	expect_missing "$D"
}

test_set_owner_is_refused_for_non_root() {
	if [ "$uid" -eq 0 ]; then
		chmod 0755 "$t"
		mkdir -m 0700 "$t/n"
		chown nobody "$t/n"
		D=$t/n/wrench
		w_nobody --dir "$D" --owner nobody set cat feat
		expect_usage_error
		expect_stderr_contains "needs root; fix: sudo wrench --dir $D --owner nobody set cat feat"
		expect_missing "$D"
		# Without --owner, nobody may write its own triggers.
		w_nobody --dir "$D" set cat feat
		expect_rc 0
		expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
	else
		w --dir "$D" --owner "$uid" set cat feat
		expect_usage_error
		expect_missing "$D"
	fi
}

test_set_keeps_the_owner_of_the_file_it_replaces() {
	need_root "chown to nobody"
	chmod 0755 "$t"
	mkd
	chmod 0755 "$D"
	mkfile "$D/cat" 'a\n'
	chown "$nobody_uid:$nobody_gid" "$D/cat"
	w --dir "$D" --owner nobody set cat b
	expect_rc 0
	expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
	expect_mode "$D/cat" 600
	expect_file "$D/cat" 'a\nb\n'
	# Without --owner, the agent is root, which ignores a file owned by
	# another user: its lines are not carried over (issue 8, item 1).
	cp -p "$D/cat" "$t/orig"
	w --dir "$D" set cat c
	expect_usage_error
	expect_stderr_contains "owned by uid $nobody_uid"
	expect_unchanged "$D/cat" "$t/orig"
	expect_owner "$D/cat" "$nobody_uid:$nobody_gid"
}

# ---- unset --------------------------------------------------------------

test_unset_removes_every_line_of_the_feature() {
	mkd
	mkfile "$D/cat" '# c\na\nt fail\nb\r\nt slow=1s\nt bogus\nc t\n'
	w --dir "$D" unset cat t
	expect_rc 0
	expect_stdout_empty
	expect_stderr_empty
	expect_file "$D/cat" '# c\na\nb\r\nc t\n'
	expect_mode "$D/cat" 600
}

test_unset_deletes_a_file_left_with_only_white_space() {
	mkd
	mkfile "$D/cat" ' \n\t\nt\n\n'
	w --dir "$D" unset cat t
	expect_rc 0
	expect_missing "$D/cat"
}

test_unset_keeps_a_file_left_with_a_comment() {
	mkd
	mkfile "$D/cat" '# note\nt\n'
	w --dir "$D" unset cat t
	expect_rc 0
	expect_file "$D/cat" '# note\n'
}

# A cleanup with a typo must not pass in silence (issue 9, item 9): unset of
# what is not there says so and exits 1, changing nothing.
test_unset_of_a_missing_feature_says_so_and_exits_1() {
	mkd
	mkfile "$D/cat" 'a\n'
	cp "$D/cat" "$t/orig"
	w --dir "$D" unset cat zzz
	expect_rc 1
	expect_stdout_empty
	expect_stderr_line "wrench: $D/cat has no line for zzz; nothing was changed"
	expect_unchanged "$D/cat" "$t/orig"
	w --dir "$D" unset other t
	expect_rc 1
	expect_stdout_empty
	expect_stderr_line "wrench: $D/other does not exist; nothing was changed"
	w --dir "$D" unset other
	expect_rc 1
	expect_stderr_line "wrench: $D/other does not exist; nothing was changed"
	expect_entries "$D" "cat "
}

test_unset_without_a_directory_says_so_and_creates_nothing() {
	w --dir "$D" unset cat t
	expect_rc 1
	expect_stdout_empty
	expect_stderr_line "wrench: $D does not exist; nothing was changed"
	w --dir "$D" unset cat
	expect_rc 1
	expect_stdout_empty
	expect_missing "$D"
}

test_unset_category_removes_the_file() {
	mkd
	mkfile "$D/cat" 'a\nb\n'
	mkfile "$D/other" 'x\n'
	w --dir "$D" unset cat
	expect_rc 0
	expect_stdout_empty
	expect_stderr_empty
	expect_missing "$D/cat"
	expect_file "$D/other" 'x\n'
	w --dir "$D" unset cat
	expect_rc 1
}

test_unset_category_removes_a_symlink_not_its_target() {
	mkd
	mkfile "$t/outside" 'x\n'
	ln -s "$t/outside" "$D/cat"
	mkfifo "$D/fifo"
	w --dir "$D" unset cat
	expect_rc 0
	expect_missing "$D/cat"
	expect_file "$t/outside" 'x\n'
	w --dir "$D" unset fifo
	expect_rc 0
	expect_missing "$D/fifo"
}

test_unset_feature_refuses_a_symlinked_trigger_file() {
	mkd
	mkfile "$t/outside" 't\nu\n'
	ln -s "$t/outside" "$D/cat"
	w --dir "$D" unset cat t
	expect_usage_error
	[ -L "$D/cat" ] || fail "the symlink $D/cat was replaced"
	expect_file "$t/outside" 't\nu\n'
}

# ---- clear --------------------------------------------------------------

test_clear_removes_every_trigger_file() {
	mkd
	mkfile "$D/a" 'x\n'
	mkfile "$D/b" 'y\n' 0666
	mkfile "$D/.#a.Ab12Cd" 'x\n'
	mkfile "$t/outside" 'z\n'
	ln -s "$t/outside" "$D/link"
	mkfifo "$D/fifo"
	mkdir "$D/sub"
	mkfile "$D/sub/keep" 'k\n'
	w --dir "$D" clear
	expect_rc 0
	expect_stdout_empty
	expect_entries "$D" "sub "
	expect_file "$D/sub/keep" 'k\n'
	expect_file "$t/outside" 'z\n'
	expect_mode "$D" 700
}

test_clear_without_a_directory_creates_nothing() {
	w --dir "$D" clear
	expect_rc 0
	expect_stdout_empty
	expect_missing "$D"
}

# ---- list ---------------------------------------------------------------

test_list_prints_each_trigger_in_order() {
	mkd
	mkfile "$D/b" '# comment\nx every=2 first=1\n\ny\n'
	mkfile "$D/a" 't chance=25%\n'
	w --dir "$D" list
	expect_rc 0
	expect_stderr_empty
	expect_stdout 'a t chance=25%\nb x every=2 first=1\nb y\n'
	w --dir "$D" list b
	expect_rc 0
	expect_stdout 'b x every=2 first=1\nb y\n'
}

test_list_without_a_directory_prints_nothing() {
	w --dir "$D" list
	expect_rc 0
	expect_stdout_empty
	expect_missing "$D"
}

test_list_marks_a_malformed_line() {
	mkd
	mkfile "$D/c" 'ok\nbad chanse=1\n'
	w --dir "$D" list
	expect_rc 1
	expect_stdout_line "c ok"
	expect_stdout_line 'c bad chanse=1  # ignored: line 2: unknown directive "chanse=1" (did you mean chance=?; directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, first=N, after=K, times=T, until=TIME, scope=process, errno=NAME, value=TEXT)'
}

# A directive far from every other gets the list alone.
test_an_unknown_directive_is_shown_with_the_list_of_directives() {
	mkd
	w --dir "$D" set c t bogus=1
	expect_usage_error
	expect_stderr_line 'wrench: invalid trigger "t bogus=1": unknown directive "bogus=1" (directives: fail, kill[=SIG], slow=DURATION, chance=P, every=M, first=N, after=K, times=T, until=TIME, scope=process, errno=NAME, value=TEXT)'
}

test_list_marks_every_line_of_an_untrusted_file() {
	mkd
	mkfile "$D/c" 'x\ny every=2\n' 0666
	why="$D/c is writable by group or others (mode 0666); fix: chmod go-w $D/c"
	w --dir "$D" list
	expect_rc 1
	expect_stdout "c x  # ignored: $why\nc y every=2  # ignored: $why\n"
}

test_list_marks_every_line_in_an_untrusted_directory() {
	mkd
	mkfile "$D/c" 'x\n'
	chmod 0770 "$D"
	w --dir "$D" list
	expect_rc 1
	expect_stdout "c x  # ignored: $D is writable by group or others (mode 0770); fix: chmod go-w $D\n"
}

test_list_shows_an_unreadable_file_as_a_star() {
	mkd
	mkfile "$t/outside" 'x\n'
	ln -s "$t/outside" "$D/link"
	mkfifo -m 0600 "$D/fifo"
	w --dir "$D" list
	expect_rc 1
	expect_stdout_match "^fifo \\*  # ignored: .*is not a regular file \\(it is a FIFO\\)"
	expect_stdout_match "^link \\*  # ignored: .*is a symbolic link"
	[ "$(wc -l < "$t/out")" = 2 ] || fail "expected 2 lines"
}

test_list_json() {
	mkd
	mkfile "$D/a" 't chance=25%\n'
	mkfile "$D/b" 'x every=2 first=1\nbad chanse=1\n'
	ln -s "$t/nowhere" "$D/l"
	w --dir "$D" list --json
	expect_rc 1
	expect_json '.dir == $D'
	expect_json '.triggers | length == 4'
	expect_json '.triggers[0] == {"category": "a", "feature": "t", "directives": ["chance=25%"],
		"line": 1, "path": ($D + "/a"), "ignored": false, "reason": null,
		"errno": null, "errno_name": null, "value": null}'
	expect_json '.triggers[1] == {"category": "b", "feature": "x",
		"directives": ["every=2", "first=1"], "line": 1, "path": ($D + "/b"),
		"ignored": false, "reason": null, "errno": null, "errno_name": null, "value": null}'
	expect_json '.triggers[2] | .category == "b" and .line == 2 and .ignored == true
		and (.reason | contains("unknown directive"))'
	expect_json '.triggers[3] | .category == "l" and .feature == null and .line == null
		and .ignored == true and (.reason | contains("symbolic link"))'
	w --dir "$D" list --json a
	expect_rc 0
	expect_json '.triggers | length == 1'
}

test_list_json_without_a_directory() {
	w --dir "$D" list --json
	expect_rc 0
	expect_json '. == {"dir": $D, "triggers": []}'
}

# ---- check --------------------------------------------------------------

test_check_passes_a_clean_directory() {
	mkd
	mkfile "$D/a" 't\n# comment\n'
	mkfile "$D/b" 'x every=2\n' 0644
	w --dir "$D" check
	expect_rc 0
	expect_stderr_empty
	expect_stdout_match "^$D: no problems"
	w --dir "$D" check --json
	expect_rc 0
	expect_json '. == {"dir": $D, "ok": true, "problems": []}'
}

test_check_of_a_missing_directory_is_not_a_problem() {
	w --dir "$D" check
	expect_rc 0
	expect_stdout_line "$D does not exist: no triggers"
	expect_missing "$D"
	w --dir "$D" check --json
	expect_rc 0
	expect_json '.ok == true and .problems == []'
}

# check_flags PATH SUBSTRING...: check exits 1 and reports PATH with the
# substrings, in text and in JSON; the good file next to it is not reported.
check_flags() {
	[ -e "$D/good" ] || mkfile "$D/good" 'fine\n'
	w --dir "$D" check
	expect_rc 1
	expect_problem "$@"
	grep -Fq "$D/good" "$t/out" && fail "the good file is reported"
	path=${1%%:[0-9]*}
	w --dir "$D" check --json
	expect_rc 1
	expect_json '.dir == $D and .ok == false'
	expect_json 'any(.problems[]; .path == $p and (.message | contains($m)))' \
		--arg p "$path" --arg m "$2"
	expect_json 'all(.problems[]; has("path") and has("line") and has("message") and has("fix"))'
}

test_check_flags_a_group_writable_file() {
	mkd
	mkfile "$D/c" 'x\n' 0620
	check_flags "$D/c" "writable by group or others (mode 0620)" "fix: chmod go-w $D/c"
	expect_json 'any(.problems[]; .path == ($D + "/c") and .line == null
		and (.fix | contains("chmod go-w")))'
}

test_check_flags_a_world_writable_file() {
	mkd
	mkfile "$D/c" 'x\n' 0602
	check_flags "$D/c" "writable by group or others (mode 0602)" "fix: chmod go-w $D/c"
}

test_check_flags_a_symlink() {
	mkd
	mkfile "$t/outside" 'x\n'
	ln -s "$t/outside" "$D/c"
	check_flags "$D/c" "is a symbolic link"
}

test_check_flags_a_fifo() {
	mkd
	mkfifo -m 0600 "$D/c"
	check_flags "$D/c" "not a regular file (it is a FIFO)" "fix: rm $D/c"
}

test_check_flags_a_device() {
	need_root "mknod"
	mkd
	mknod -m 0600 "$D/c" c 1 3 || skip "skipped: mknod is not allowed here"
	check_flags "$D/c" "not a regular file (it is a character device)"
}

test_check_flags_a_hard_link() {
	mkd
	mkfile "$D/c" 'x\n'
	ln "$D/c" "$D/d"
	check_flags "$D/c" "has 2 hard links"
	w --dir "$D" check
	expect_problem "$D/d" "has 2 hard links"
}

test_check_flags_an_oversized_file() {
	mkd
	yes pad | head -c 65537 > "$D/c"
	chmod 0600 "$D/c"
	check_flags "$D/c" "is 65537 bytes, more than the 65535 allowed"
}

test_check_flags_a_nul_byte() {
	mkd
	mkfile "$D/c" 'a\n\0b\n'
	check_flags "$D/c" "contains a NUL byte at offset 2"
}

test_check_flags_a_file_owned_by_another_user() {
	need_root "chown to nobody"
	mkd
	mkfile "$D/c" 'x\n'
	chown "$nobody_uid" "$D/c"
	check_flags "$D/c" "owned by uid $nobody_uid" "fix: chown root $D/c"
}

test_check_flags_a_group_writable_directory() {
	mkd
	chmod 0770 "$D"
	check_flags "$D" "writable by group or others (mode 0770)" "fix: chmod go-w $D"
}

test_check_flags_a_directory_owned_by_another_user() {
	need_root "chown to nobody"
	mkd
	chown "$nobody_uid" "$D"
	check_flags "$D" "owned by uid $nobody_uid"
}

test_check_flags_a_writable_ancestor() {
	A=$t/anc
	mkdir -m 0777 "$A"
	chmod 0777 "$A"
	D=$A/wrench
	mkd
	check_flags "$A" "writable by group or others (mode 0777)" "fix: chmod go-w $A"
}

test_check_flags_a_symlinked_ancestor() {
	mkdir -m 0700 "$t/real"
	ln -s "$t/real" "$t/link"
	D=$t/link/wrench
	mkd
	mkfile "$D/good" 'fine\n'
	w --dir "$D" check
	expect_rc 1
	expect_problem "$t/link" "is a symbolic link"
}

test_check_flags_a_symlinked_directory() {
	mkdir -m 0700 "$t/real"
	mkfile "$t/real/good" 'fine\n'
	ln -s "$t/real" "$t/wrench"
	check_flags "$D" "is a symbolic link"
}

test_check_flags_a_malformed_line_with_file_and_line() {
	mkd
	mkfile "$D/c" 'ok\nbad chanse=1\n'
	check_flags "$D/c:2" 'unknown directive "chanse=1"' "fix: wrench" "unset c bad"
	expect_json 'any(.problems[]; .path == ($D + "/c") and .line == 2
		and (.fix | contains("unset c bad")))'
}

test_check_flags_a_leftover_temporary_file() {
	mkd
	mkfile "$D/.#c.Ab12Cd" 'x\n'
	w --dir "$D" check
	expect_rc 1
	expect_problem "$D/.#c.Ab12Cd"
}

test_check_reports_every_problem_and_changes_nothing() {
	A=$t/anc
	mkdir -m 0777 "$A"
	chmod 0777 "$A"
	D=$A/wrench
	mkdir -m 0770 "$D"
	chmod 0770 "$D"
	mkfile "$D/good" 'fine\n'
	mkfile "$D/gw" 'x\n' 0620
	mkfile "$D/ww" 'x\n' 0602
	mkfile "$t/outside" 'x\n'
	ln -s "$t/outside" "$D/link"
	mkfifo -m 0600 "$D/fifo"
	mkfile "$D/hard" 'x\n'
	ln "$D/hard" "$D/hard2"
	yes pad | head -c 65537 > "$D/big"
	chmod 0600 "$D/big"
	mkfile "$D/nul" 'a\n\0b\n'
	mkfile "$D/bad" 'ok\nbad chanse=1\n'
	mkfile "$D/.#bad.Ab12Cd" 'x\n'
	if [ "$uid" -eq 0 ]; then
		mkfile "$D/owned" 'x\n'
		chown "$nobody_uid" "$D/owned"
	fi
	snapshot "$A" "$t/outside" > "$t/before"
	sleep 0.1
	w --dir "$D" check
	expect_rc 1
	for p in "$A" "$D" "$D/gw" "$D/ww" "$D/link" "$D/fifo" "$D/hard" "$D/hard2" "$D/big" \
		"$D/nul" "$D/bad:2" "$D/.#bad.Ab12Cd"; do
		expect_problem "$p"
	done
	[ "$uid" -eq 0 ] && expect_problem "$D/owned" "owned by uid $nobody_uid"
	w --dir "$D" check --json
	expect_rc 1
	snapshot "$A" "$t/outside" > "$t/after"
	if ! cmp -s "$t/before" "$t/after"; then
		fail "check changed the directory"
		diff "$t/before" "$t/after" | sed 's/^/    /'
	fi
}

# ---- eval ---------------------------------------------------------------

test_eval_reports_each_call() {
	mkd
	mkfile "$D/cat" 't every=2\n'
	w --dir "$D" eval cat t -n 4
	expect_rc 0
	expect_stdout 'call 1: fail (line 1)\ncall 2: -\ncall 3: fail (line 1)\ncall 4: -\nt fired on 2 of 4 calls (active on 2)\n'
	w --dir "$D" eval cat t --count 3
	expect_rc 0
	expect_stdout_line "t fired on 2 of 3 calls (active on 2)"
}

test_eval_makes_one_call_by_default() {
	mkd
	mkfile "$D/cat" 't\n'
	w --dir "$D" eval cat t
	expect_rc 0
	[ "$(sed -n 1p "$t/out")" = "call 1: fail (line 1)" ] || fail "call 1 is not reported"
	[ "$(wc -l < "$t/out")" = 2 ] || fail "expected 2 lines"
	expect_stdout_match '^t fired on 1 of 1 calls? \(active on 1\)$'
}

test_eval_follows_the_library_counters() {
	mkd
	mkfile "$D/cat" 't after=1 every=2 times=2\n'
	w --dir "$D" eval cat t -n 7
	expect_rc 0
	expect_stdout 'call 1: -\ncall 2: fail (line 1)\ncall 3: -\ncall 4: fail (line 1)\ncall 5: -\ncall 6: -\ncall 7: -\nt fired on 2 of 7 calls (active on 2)\n'
}

test_eval_reports_lines_in_file_order() {
	mkd
	mkfile "$D/cat" 'other\nt slow=300ms\nt fail every=2\n'
	w --dir "$D" eval cat t -n 2
	expect_rc 0
	expect_stdout 'call 1: slow 300ms (line 2), then fail (line 3)\ncall 2: slow 300ms (line 2)\nt fired on 2 of 2 calls (active on 1)\n'
}

test_eval_exits_1_when_nothing_fires() {
	mkd
	mkfile "$D/cat" 't chance=0\nother\n'
	w --dir "$D" eval cat t -n 3
	expect_rc 1
	expect_stdout 'call 1: -\ncall 2: -\ncall 3: -\nt fired on 0 of 3 calls (active on 0)\n'
	w --dir "$D" eval cat absent
	expect_rc 1
	expect_stdout_match '^absent fired on 0 of 1 calls? \(active on 0\)$'
}

# ---- errno= and value=: shown by list, hits and eval, checked by set ----

test_list_json_carries_errno_and_value() {
	mkd
	mkfile "$D/c" 'full errno=ENOSPC value=disk%20full\nodd errno=999 value=say%20%22hi%22%0Abye\nplain\nbad errno=ENOSAPCE\n'
	w --dir "$D" list --json
	expect_rc 1
	expect_json '.triggers[0] | .errno == 28 and .errno_name == "ENOSPC" and .value == "disk full"'
	# glibc has no name for 999; the value decoded, with a quote and a newline.
	expect_json '.triggers[1] | .errno == 999 and .errno_name == null and .value == "say \"hi\"\nbye"'
	grep -Fq '"value": "say \"hi\"\nbye"' "$t/out" || fail "the value is not escaped as JSON"
	expect_json '.triggers[2] | .errno == null and .errno_name == null and .value == null'
	expect_json '.triggers[3] | .ignored and .errno == null and .value == null
		and (.reason | contains("did you mean ENOSPC?"))'
	w --dir "$D" list c
	expect_stdout_line 'c full errno=ENOSPC value=disk%20full'
}

test_list_json_value_keeps_utf8_and_escapes_controls() {
	mkd
	mkfile "$D/c" 't value=ok%20%E2%9C%93%09%1B[2J\n'
	w --dir "$D" list --json
	expect_rc 0
	expect_json '.triggers[0] | .value == "ok \u2713\t\u001b[2J" and .errno == null'
	grep -Fq '"value": "ok ✓\t\u001b[2J"' "$t/out" || fail "the value is not written as expected"
}

test_hits_json_carries_errno_and_value() {
	w --dir "$D" set cat t errno=EACCES value=no%20way
	expect_rc 0
	w --dir "$D" set cat u slow=1ms
	expect_rc 0
	w --dir "$D" hits --json
	expect_rc 0
	expect_json '.lines[0] | .text == "t errno=EACCES value=no%20way" and .errno == 13
		and .errno_name == "EACCES" and .value == "no way" and .calls == 0'
	expect_json '.lines[1] | .errno == null and .errno_name == null and .value == null'
	w --dir "$D" hits
	expect_rc 0
	expect_stdout_line 'cat t errno=EACCES value=no%20way  calls=0 fires=0'
}

test_eval_shows_errno_and_value() {
	mkd
	mkfile "$D/cat" 't slow=1ms\nt errno=ENOSPC value=disk%20full\nn errno=999\n'
	w --dir "$D" eval cat t
	expect_rc 0
	expect_stdout_line 'call 1: slow 1ms (line 1), then fail (errno ENOSPC, value=disk%20full) (line 2)'
	w --dir "$D" eval --json cat t
	expect_rc 0
	expect_json '.calls[0].fired == [
		{"line": 1, "action": "slow 1ms", "errno": null, "errno_name": null, "value": null},
		{"line": 2, "action": "fail (errno ENOSPC, value=disk%20full)", "errno": 28,
		 "errno_name": "ENOSPC", "value": "disk full"}]'
	w --dir "$D" eval --json cat n
	expect_json '.calls[0].fired[0] | .errno == 999 and .errno_name == null
		and .action == "fail (errno 999)"'
}

# A value written with raw bytes reaches the terminal escaped.
test_eval_escapes_a_raw_value() {
	mkd
	mkfile "$D/cat" 't value=a\0302\0233b\0377\n'
	w --dir "$D" eval cat t
	expect_rc 0
	expect_stdout_line 'call 1: fail (value=a\xc2\x9bb\xff) (line 1)'
}

# The names errno= takes, said after a refusal: the last lines of stderr,
# each a "wrench: " line of at most 79 columns, the names in alphabetical
# order into $t/names.
expect_errno_names_listed() {
	sed -n '/^wrench: errno= takes one of: /,$p' "$t/err" > "$t/list"
	if [ ! -s "$t/list" ]; then
		fail "stderr does not list the names errno= takes"
		show_output
		return
	fi
	if awk 'length > 79 || !/^wrench: /' "$t/list" | grep -q .; then
		fail "a line of the list is longer than 79 columns or does not start with \"wrench: \""
	fi
	sed 's/^wrench: errno= takes one of://; s/^wrench://' "$t/list" |
		tr -s ' ' '\n' | sed '/^$/d' > "$t/names"
	LC_ALL=C sort -cu "$t/names" 2> /dev/null || fail "the names are not in alphabetical order"
	for name in E2BIG EACCES EIO ENOSPC ETIMEDOUT EWOULDBLOCK EXDEV; do
		grep -qx "$name" "$t/names" || fail "the list has no $name"
	done
	[ "$(wc -l < "$t/names")" -gt 100 ] || fail "the list has only $(wc -l < "$t/names") names"
}

test_set_refuses_an_unknown_errno_name_with_every_name() {
	mkd
	mkfile "$D/cat" '# keep\nt fail\n' 0644
	cp -p "$D/cat" "$t/orig"
	ino=$(stat -c %i "$D/cat")
	w --dir "$D" set cat t errno=ENOSAPCE
	expect_usage_error
	expect_stderr_line 'wrench: invalid trigger "t errno=ENOSAPCE": "errno=ENOSAPCE": unknown errno name (did you mean ENOSPC?; a name of <errno.h> such as EIO, ENOSPC, EACCES or ETIMEDOUT, listed in wrench(5), or a number from 1 to 4095)'
	expect_errno_names_listed
	w --dir "$D" set cat t value=x errno=nosuch
	expect_usage_error
	expect_errno_names_listed
	expect_unchanged "$D/cat" "$t/orig"
	[ "$(stat -c %i "$D/cat")" = "$ino" ] || fail "$D/cat was replaced"
}

# Only an unknown name gets the list: a bad number gets the range.
test_set_refuses_a_bad_errno_number_with_the_range() {
	for bad in errno=0 errno=4096; do
		w --dir "$D" set cat t "$bad"
		expect_usage_error
		expect_stderr_line "wrench: invalid trigger \"t $bad\": \"$bad\": an errno number is from 1 to 4095 (or a name such as EIO)"
		if grep -q 'takes one of' "$t/err"; then
			fail "the names are listed for $bad"
		fi
	done
	expect_missing "$D"
}

test_set_refuses_errno_with_kill() {
	mkd
	w --dir "$D" set cat t kill errno=EIO
	expect_usage_error
	expect_stderr_line 'wrench: invalid trigger "t kill errno=EIO": errno= cannot be combined with kill: a killed process returns no error'
	if grep -q 'takes one of' "$t/err"; then
		fail "the names are listed for a name that is known"
	fi
	expect_entries "$D" ""
}

test_set_writes_errno_and_value() {
	w --dir "$D" set cat t errno=enospc value=disk%20full
	expect_rc 0
	expect_file "$D/cat" 't errno=enospc value=disk%20full\n'
	w --dir "$D" list --json
	expect_json '.triggers[0] | .errno == 28 and .errno_name == "ENOSPC"'
}

test_check_reports_an_unknown_errno_name_and_lists_the_names_once() {
	mkd
	mkfile "$D/c" 'ok errno=EIO\nbad errno=ENOSAPCE\nworse errno=EIOO fail\n'
	w --dir "$D" check
	expect_rc 1
	expect_problem "$D/c:2" 'unknown errno name (did you mean ENOSPC?'
	expect_problem "$D/c:3" 'unknown errno name (did you mean EIO?'
	expect_errno_names_listed
	[ "$(grep -c 'takes one of' "$t/err")" = 1 ] || fail "the names are not listed once"
	w --dir "$D" check --json
	expect_rc 1
	expect_json '.ok == false and (.problems | length) == 2'
	expect_errno_names_listed
}

# ---- What nothing names: said, with what was meant ---------------------------

test_list_of_a_category_without_a_trigger_file_says_so_and_exits_1() {
	mkd
	mkfile "$D/cache" 'get-fail\n'
	w --dir "$D" list nosuchcat
	expect_rc 1
	expect_stdout_empty
	expect_stderr_line "wrench: category \"nosuchcat\" has no trigger file in $D"
	w --dir "$D" list cach
	expect_rc 1
	expect_stderr_line "wrench: category \"cach\" has no trigger file in $D; did you mean cache?"
	w --dir "$D" --json list cach
	expect_rc 1
	expect_json '.triggers == []'
	w --dir "$D" list cache
	expect_rc 0
	expect_stderr_empty
	expect_stdout 'cache get-fail\n'
}

test_list_of_a_category_in_a_missing_directory_says_so_and_exits_1() {
	w --dir "$D" list cache
	expect_rc 1
	expect_stdout_empty
	expect_stderr_line "wrench: category \"cache\" has no trigger file: $D does not exist"
	expect_missing "$D"
}

# eval still shows its calls, and says under them why nothing fired.
test_eval_of_a_feature_no_line_names_says_so_and_exits_1() {
	mkd
	mkfile "$D/cache" 'get-fail\nput-fails times=1\n'
	w --dir "$D" eval cache put-fail
	expect_rc 1
	expect_stdout 'call 1: -\nput-fail fired on 0 of 1 calls (active on 0)\n'
	expect_stderr_line "wrench: no line of $D/cache names the feature \"put-fail\"; did you mean put-fails?"
	w --dir "$D" eval cache zzz
	expect_rc 1
	expect_stderr_line "wrench: no line of $D/cache names the feature \"zzz\""
	w --dir "$D" eval cach get-fail
	expect_rc 1
	expect_stdout_line 'get-fail fired on 0 of 1 calls (active on 0)'
	expect_stderr_line "wrench: category \"cach\" has no trigger file in $D; did you mean cache?"
	w --dir "$D" eval cache get-fail
	expect_rc 0
	expect_stderr_empty
}

test_eval_of_a_missing_file_says_why_and_exits_1() {
	w --dir "$D" eval cat t -n 2
	expect_rc 1
	expect_stderr_prefixed
	expect_stdout_line "call 1: -"
	expect_stdout_line "call 2: -"
	expect_missing "$D"
}

test_eval_of_an_untrusted_file_says_why_and_exits_1() {
	mkd
	mkfile "$D/cat" 't\n' 0666
	w --dir "$D" eval cat t -n 2
	expect_rc 1
	expect_stderr_prefixed
	expect_stderr_contains "$D/cat is writable by group or others (mode 0666)"
	expect_stdout 'call 1: -\ncall 2: -\nt fired on 0 of 2 calls (active on 0)\n'
}

test_eval_reports_malformed_lines_and_evaluates_the_rest() {
	mkd
	mkfile "$D/cat" 't bogus\nt\n'
	w --dir "$D" eval cat t
	expect_rc 0
	expect_stderr_prefixed
	expect_stderr_contains "wrench: $D/cat:1: "
	expect_stderr_contains 'unknown directive "bogus"'
	expect_stdout_line "call 1: fail (line 2)"
}

test_eval_reports_kill_without_killing() {
	mkd
	mkfile "$D/cat" 't kill\nu kill=TERM times=1\n'
	w --dir "$D" eval cat t -n 2
	expect_rc 0
	expect_stdout 'call 1: kill (SIGKILL) (line 1)\ncall 2: kill (SIGKILL) (line 1)\nt fired on 2 of 2 calls (active on 2)\n'
	w --dir "$D" eval cat u -n 2
	expect_rc 0
	expect_stdout 'call 1: kill (SIGTERM) (line 2)\ncall 2: -\nu fired on 1 of 2 calls (active on 1)\n'
}

# A delay far longer than the command takes on a loaded machine: one
# sleep shows, and the timeout of w() ends three.
test_eval_reports_slow_without_sleeping() {
	mkd
	mkfile "$D/cat" 't slow=20s\n'
	start=$(now_ms)
	w --dir "$D" eval cat t -n 3
	elapsed=$(($(now_ms) - start))
	expect_rc 0
	[ "$elapsed" -lt 15000 ] || fail "eval of 3 calls of slow=20s took ${elapsed} ms: it slept"
	expect_stdout 'call 1: slow 20s (line 1)\ncall 2: slow 20s (line 1)\ncall 3: slow 20s (line 1)\nt fired on 3 of 3 calls (active on 0)\n'
}

test_eval_json() {
	mkd
	mkfile "$D/cat" 't slow=300ms\nt every=2\n'
	w --dir "$D" eval --json cat t -n 2
	expect_rc 0
	expect_json '.category == "cat" and .feature == "t" and .path == ($D + "/cat")'
	expect_json '.fired == 2 and .active == 1 and .ignored == false and .reason == null'
	none='"errno": null, "errno_name": null, "value": null'
	expect_json ".calls == [
		{\"call\": 1, \"active\": true,
		 \"fired\": [{\"line\": 1, \"action\": \"slow 300ms\", $none},
		           {\"line\": 2, \"action\": \"fail\", $none}]},
		{\"call\": 2, \"active\": false,
		 \"fired\": [{\"line\": 1, \"action\": \"slow 300ms\", $none}]}]"
}

test_eval_json_of_an_untrusted_file() {
	mkd
	mkfile "$D/cat" 't\n' 0666
	w --dir "$D" eval --json cat t -n 2
	expect_rc 1
	expect_json '.ignored == true and (.reason | contains("mode 0666"))'
	expect_json '.fired == 0 and .active == 0 and (.calls | length) == 2'
	expect_json 'all(.calls[]; .active == false and .fired == [])'
}

test_eval_with_WRENCH_SEED_is_reproducible() {
	mkd
	mkfile "$D/cat" 't chance=0.5\n'
	wrun env WRENCH_SEED=42 "$W" --dir "$D" eval cat t -n 200
	expect_rc 0
	cp "$t/out" "$t/first"
	wrun env WRENCH_SEED=42 "$W" --dir "$D" eval cat t -n 200
	expect_unchanged "$t/out" "$t/first"
	if ! grep -q ': -$' "$t/first" || ! grep -q ': fail (line 1)$' "$t/first"; then
		fail "chance=0.5 over 200 calls did not both fire and not fire"
	fi
	wrun env WRENCH_SEED=43 "$W" --dir "$D" eval cat t -n 200
	cmp -s "$t/out" "$t/first" && fail "WRENCH_SEED=43 gave the same sequence as 42"
}

test_eval_makes_the_decisions_an_agent_makes() {
	mkd
	mkfile "$D/cat" 'other chance=0.3\nt chance=0.5\nt chance=25% slow=1ms\nt every=3 chance=0.7\n'
	wrun env WRENCH_SEED=7 "$W" --dir "$D" eval cat t -n 300
	grep '^call ' "$t/out" | sed -e 's/.*: -$/0/' -e 's/.*fail (line [0-9]*)$/1/' \
		-e 's/.*(line [0-9]*)$/0/' > "$t/eval"
	wrun env WRENCH_SEED=7 WRENCH_LOG=off "$reader" --sequence 300 "$D" cat t
	[ "$rc" = 0 ] || fail "the reader failed"
	if ! cmp -s "$t/eval" "$t/out"; then
		fail "eval's decisions (WRENCH_SEED=7) differ from the library's"
		diff "$t/eval" "$t/out" | head -n 10 | sed 's/^/    /'
	fi
	if ! grep -q 0 "$t/out" || ! grep -q 1 "$t/out"; then
		fail "the sequence is constant"
	fi
}

test_eval_count_out_of_range_is_a_usage_error() {
	mkd
	mkfile "$D/cat" 't\n'
	for n in 0 1000001 -1 abc 2x ""; do
		w --dir "$D" eval cat t -n "$n"
		expect_bad_usage
	done
}

# ---- A reader never sees a torn or wrongly-permissioned file -------------

# A round of the writer below: the line set, then unset.
toggle_line() {
	"$W" --dir "$D" set cat toggled fail 2>> "$t/writer.err" || errors=$((errors + 1))
	"$W" --dir "$D" unset cat toggled 2>> "$t/writer.err" || errors=$((errors + 1))
	rounds=$((rounds + 1))
}

# Answers whether the reader has seen the line both there and not.
reader_saw_both() {
	grep -q '^seen toggled on$' "$t/reader.out" && grep -q '^seen toggled off$' "$t/reader.out"
}

test_concurrent_reader_never_sees_a_torn_file() {
	mkd
	# See reader.c: many valid lines, then the feature the reader needs
	# on every call; set and unset toggle a line after it. The writer
	# runs under umask 000 so that a file ever created with a default
	# mode would be world-writable and refused by the reader.
	i=0
	while [ $i -lt 1000 ]; do
		printf 'pad-%04d every=1000 first=999 after=100 times=9\n' $i
		i=$((i + 1))
	done > "$D/cat"
	echo sentinel >> "$D/cat"
	chmod 0600 "$D/cat"
	cp "$D/cat" "$t/orig"
	"$reader" "$D" cat sentinel 500 toggled > "$t/reader.out" 2>&1 &
	rpid=$!
	deadline=$(($(now_ms) + 60000))
	while ! grep -q '^ready$' "$t/reader.out" && [ "$(now_ms)" -lt "$deadline" ]; do
		sleep 0.1
	done
	grep -q '^ready$' "$t/reader.out" || fail "the reader did not start"
	umask 000
	errors=0
	rounds=0
	while [ $rounds -lt 500 ]; do
		toggle_line
	done
	# On a loaded machine the reader may have waited for its turns all
	# along: more rounds, until it has seen the line both there and not.
	deadline=$(($(now_ms) + 60000))
	while ! reader_saw_both && [ "$(now_ms)" -lt "$deadline" ]; do
		toggle_line
	done
	kill -TERM "$rpid"
	wait "$rpid"
	rrc=$?
	[ "$errors" -eq 0 ] ||
		fail "$errors of $((2 * rounds)) set/unset commands failed: $(head -n 3 "$t/writer.err")"
	if [ "$rrc" -ne 0 ]; then
		fail "the reader saw a torn or untrusted file (exit $rrc):"
		sed 's/^/    /' "$t/reader.out"
	fi
	if ! grep -Eq 'toggled_on=[1-9]' "$t/reader.out" ||
		! grep -Eq 'toggled_off=[1-9]' "$t/reader.out"; then
		fail "the reader did not run while the file changed: $(tail -n 1 "$t/reader.out")"
	fi
	expect_unchanged "$D/cat" "$t/orig"
	expect_mode "$D/cat" 600
	# The reader's counters live in the state directory (wrench(5)).
	expect_entries "$D" "cat "
}

# ---- Security (issue 8) and the first hour (issue 9) ---------------------

# Runs a shell command line as nobody.
sh_nobody() {
	setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups sh -c "$1"
}

# A second unprivileged user, other than nobody, made for this run.
need_second_user() {
	need_root "create a user"
	[ -n "$second_user" ] || skip "skipped: cannot create a user (useradd failed)"
}

# Issue 8, item 1: a root-owned trigger file left at mode 0666, which the
# library rightly ignores, gets a line appended by another user; root then
# sets another feature in it. The line must not reach a trusted file.
test_set_never_carries_over_lines_of_an_untrusted_file() {
	mkd
	chmod 0755 "$t" "$D"
	mkfile "$D/machine-agent" 'start-fails\n' 0666
	if [ "$uid" -eq 0 ]; then
		sh_nobody "echo 'crash-before-commit kill' >> '$D/machine-agent'"
	else
		echo 'crash-before-commit kill' >> "$D/machine-agent"
	fi
	cp -p "$D/machine-agent" "$t/orig"
	for args in "set machine-agent fetch-fails every=3" "unset machine-agent start-fails"; do
		# shellcheck disable=SC2086
		w --dir "$D" $args
		expect_usage_error
		expect_stderr_contains "$D/machine-agent is writable by group or others (mode 0666)"
		expect_stderr_contains "nothing was changed"
		expect_stderr_contains "rm -- $D/machine-agent"
		expect_unchanged "$D/machine-agent" "$t/orig"
		expect_mode "$D/machine-agent" 666
	done
	expect_entries "$D" "machine-agent "
	# The fix it gives: remove the file, and set again.
	rm -- "$D/machine-agent"
	w --dir "$D" set machine-agent fetch-fails every=3
	expect_rc 0
	expect_file "$D/machine-agent" 'fetch-fails every=3\n'
}

# The same for a file owned by another user, and for one behind a
# symlink: nothing of them is kept, nothing is changed.
test_set_refuses_a_file_owned_by_another_user() {
	need_root "chown to nobody"
	mkd
	mkfile "$D/cat" 'crash kill\n'
	chown "$nobody_uid" "$D/cat"
	cp -p "$D/cat" "$t/orig"
	w --dir "$D" set cat t
	expect_usage_error
	expect_stderr_contains "owned by uid $nobody_uid"
	expect_stderr_contains "nothing was changed"
	expect_unchanged "$D/cat" "$t/orig"
	expect_owner "$D/cat" "$nobody_uid:0"
}

# Issue 8, item 1: --owner USER never adopts a directory that another user
# made (with a kill line in it): refused, exit 2, owner and lines intact.
test_set_owner_never_adopts_a_directory_it_did_not_create() {
	need_second_user
	chmod 0755 "$t"
	mkdir -m 0700 "$D"
	mkfile "$D/machine-agent" 'crash-before-commit kill\n'
	chown -R "$nobody_uid:$nobody_gid" "$D"
	snapshot "$D" > "$t/before"
	w --dir "$D" --owner "$second_user" set machine-agent fetch-fails
	expect_usage_error
	expect_stderr_contains "$D is owned by uid $nobody_uid"
	expect_stderr_contains "nothing was changed"
	snapshot "$D" > "$t/after"
	expect_unchanged "$t/after" "$t/before"
	expect_owner "$D" "$nobody_uid:$nobody_gid"
}

# Issue 9, item 7: --owner on a shared, root-owned directory leaves its
# owner alone, and writes a file both agents honour: a root agent keeps
# its trigger, the agent running as nobody gets its own.
test_set_owner_leaves_a_shared_directory_to_its_owner() {
	need_root "run agents as root and as nobody"
	chmod 0755 "$t"
	mkd
	chmod 0755 "$D"
	w --dir "$D" set machine-agent root-trigger
	expect_rc 0
	w --dir "$D" --owner nobody set unit-agent fail-hook
	expect_rc 0
	expect_stderr_empty
	expect_owner "$D" "0:0"
	expect_mode "$D" 755
	expect_owner "$D/unit-agent" "0:0"
	expect_mode "$D/unit-agent" 644
	wrun "$reader" "$D" machine-agent root-trigger 0.1
	[ "$rc" = 0 ] || fail "a root agent no longer sees its trigger: $(cat "$t/out")"
	wrun "$reader" "$D" unit-agent fail-hook 0.1
	[ "$rc" = 0 ] || fail "a root agent does not trust the file: $(cat "$t/out")"
	wrun setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups \
		env LD_LIBRARY_PATH="$libdir" "$reader_copy" "$D" unit-agent fail-hook 0.1
	[ "$rc" = 0 ] || fail "an agent running as nobody does not see its trigger: $(cat "$t/out")"
	# A shared directory that the agent cannot enter: a warning with the
	# fix, exit 1, and still no change of owner.
	chmod 0700 "$D"
	w --dir "$D" --owner nobody set unit-agent other
	expect_rc 1
	expect_stderr_contains "$D cannot be searched by the agent (uid $nobody_uid)"
	expect_stderr_contains "fix: chmod o+rx $D"
	expect_owner "$D" "0:0"
}

# Issue 8, item 2: a symlink above --dir does not redirect writes, and clear
# does not empty the directory it points to.
test_dir_behind_a_symlinked_ancestor_is_refused_before_writing() {
	mkdir -p "$t/att" "$t/victim/wrench"
	mkfile "$t/victim/wrench/keep" 'k\n'
	chmod 0700 "$t/victim/wrench"
	ln -s "$t/victim" "$t/att/sub"
	D=$t/att/sub/wrench
	snapshot "$t/victim" > "$t/before"
	for args in "set cat feat" "unset cat feat" "unset keep" clear; do
		# shellcheck disable=SC2086
		w --dir "$D" $args
		expect_usage_error
		expect_stderr_contains "$t/att/sub is a symbolic link"
		expect_stderr_contains "fix: "
	done
	snapshot "$t/victim" > "$t/after"
	expect_unchanged "$t/after" "$t/before"
	# A symlinked trigger directory itself is refused the same way, not
	# with "Not a directory" (issue 9, item 8).
	ln -s "$t/victim/wrench" "$t/link"
	w --dir "$t/link" set cat feat
	expect_usage_error
	expect_stderr_contains "$t/link is a symbolic link"
	expect_stderr_contains "fix: use the real path, which realpath -- $t/link prints"
	w --dir "$t/link" check --json
	expect_rc 1
	expect_json 'any(.problems[]; .path == ($t + "/link") and (.fix | type) == "string")'
}

# Issue 8, item 2: an ancestor that others may write is refused before
# anything is created under it.
test_set_refuses_an_untrusted_ancestor_before_creating_anything() {
	mkdir -m 0777 "$t/open"
	chmod 0777 "$t/open"
	D=$t/open/a/wrench
	w --dir "$D" set cat feat
	expect_usage_error
	expect_stderr_contains "$t/open is writable by group or others (mode 0777)"
	expect_stderr_contains "nothing was changed"
	expect_entries "$t/open" ""
}

# Issue 8, item 2: set creates what is missing under checked parents only,
# with its modes set on descriptors (the umask does not count), and never
# through a link that replaces a created directory's parent.
test_set_creates_the_directory_through_descriptors() {
	umask 077
	D=$t/new/parent/wrench
	w --dir "$D" set cat feat
	expect_rc 0
	expect_mode "$t/new" 755
	expect_mode "$t/new/parent" 755
	expect_mode "$D" 700
	expect_file "$D/cat" 'feat\n'
}

# Issue 8, item 3: another command of the same user that keeps the lock
# cannot hang the command: it gives up after a bounded wait, names the
# holder and changes nothing.
test_a_lock_held_by_another_process_does_not_hang_the_command() {
	mkd
	mkfile "$D/cat" 'a\n'
	w --dir "$D" set cat a
	cp "$D/cat" "$t/orig"
	flock --no-fork "$D/.wrench-state/lock" sleep 60 &
	holder=$!
	wait_for_lock "$D/.wrench-state/lock"
	w --dir "$D" set cat b
	kill "$holder" 2> /dev/null
	wait "$holder" 2> /dev/null
	expect_usage_error
	expect_stderr_contains "$D/.wrench-state/lock is locked by process $holder (sleep"
	expect_stderr_contains "nothing was changed"
	expect_unchanged "$D/cat" "$t/orig"
	w --dir "$D" set cat b
	expect_rc 0
}

# Waits until someone holds a flock on PATH (from /proc/locks).
wait_for_lock() {
	ino=$(stat -c %i "$1")
	for _ in $(seq 1 3000); do
		grep -q "FLOCK.*:$ino " /proc/locks && return 0
		sleep 0.01
	done
	fail "nobody took the lock on $1"
}

# Issue 16, item 4: a user who can read the trigger directory and its files
# locks everything it can open: root's edits are not delayed at all. Even
# with the state directory and the lock file made readable by hand, which
# let the reader open them: the lock file is then replaced.
test_a_reader_cannot_delay_an_edit() {
	need_root "run a reader as nobody"
	chmod 0755 "$t"
	for d in "$D" "$t/same"; do
		mkdir -m 0755 "$d"
		w --dir "$d" --owner nobody set cat a
		w --dir "$d" set other a
		chmod 0644 "$d/other"
		chmod 0755 "$d/.wrench-state"
		chmod 0644 "$d/.wrench-state/lock"
	done
	cat > "$t/lock-all" <<-'EOF'
		#!/bin/sh
		# Tries to hold a flock on every entry it can open; each try
		# says "locked PATH" (and holds it) or "failed PATH".
		for f in "$1" "$1"/* "$1"/.wrench-state "$1"/.wrench-state/*; do
			[ -e "$f" ] || continue
			{ flock -n "$f" sh -c 'echo "locked $1" >> "$2"; exec sleep 60' sh "$f" "$2" ||
				echo "failed $f" >> "$2"; } &
			echo "$f" >> "$2.tried"
		done
		wait
	EOF
	chmod 0755 "$t/lock-all"
	: > "$t/locked"
	: > "$t/locked.tried"
	chmod 0666 "$t/locked" "$t/locked.tried"
	# In a process group of its own, so that it goes as a whole.
	setsid setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups \
		"$t/lock-all" "$D" "$t/locked" &
	holder=$!
	# Until every try has said how it went.
	for _ in $(seq 1 3000); do
		[ -s "$t/locked.tried" ] &&
			[ "$(wc -l < "$t/locked")" -eq "$(wc -l < "$t/locked.tried")" ] && break
		sleep 0.01
	done
	grep -q "locked $D\$" "$t/locked" || fail "the reader could not lock the directory: $(cat "$t/locked")"
	grep -q "locked $D/.wrench-state/lock\$" "$t/locked" ||
		fail "the reader could not lock the lock file: $(cat "$t/locked")"
	# Each edit takes no more than the same edit of a directory nobody
	# locks, plus less than a second (a wait for the lock is 10 s).
	for verb in "set cat b" "unset cat b" "reset" "clear"; do
		start=$(now_ms)
		# shellcheck disable=SC2086
		w --dir "$t/same" $verb
		alone=$(($(now_ms) - start))
		start=$(now_ms)
		# shellcheck disable=SC2086
		w --dir "$D" $verb
		elapsed=$(($(now_ms) - start))
		[ "$rc" -le 1 ] || fail "$verb: exit $rc: $(cat "$t/err")"
		[ "$elapsed" -lt $((alone + 1000)) ] ||
			fail "$verb took ${elapsed} ms with a reader holding locks, ${alone} ms without"
	done
	kill -- "-$holder" 2> /dev/null
	wait "$holder" 2> /dev/null
}

# Issue 8, item 4: a file name with a newline cannot forge a line of list,
# and control characters never reach the terminal.
test_list_cannot_be_forged_by_a_file_name() {
	mkd
	name=$(printf 'x\nmachine-agent crash-before-commit kill')
	mkfile "$D/$name" 'start-fails\n' 0666
	w --dir "$D" list
	expect_rc 1
	expect_stdout "x\\\\x0amachine-agent crash-before-commit kill start-fails  # ignored: $D/x\\\\x0amachine-agent crash-before-commit kill is writable by group or others (mode 0666); fix: chmod go-w '$D/x\\\\x0amachine-agent crash-before-commit kill'\n"
	w --dir "$D" list --json
	expect_json '.triggers[0].category == $n and .triggers[0].ignored' --arg n "$name"
}

# Control characters in names and tokens are escaped in every human-readable
# output; JSON keeps them exact.
test_output_escapes_control_characters() {
	mkd
	esc=$(printf '\033')
	bel=$(printf '\007')
	cat="c${esc}[31m"
	mkfile "$D/$cat" "f${bel} fail\nbad${esc}]0;x${bel} chanse=1\n"
	for args in list check "eval $cat f$bel" "eval --json $cat f$bel" "unset $cat nothing" \
		"set $cat g${esc}x"; do
		# shellcheck disable=SC2086
		w --dir "$D" $args
		if grep -q "[$esc$bel]" "$t/out" "$t/err"; then
			fail "wrench $args printed a control character"
			show_output
		fi
	done
	# A feature with a control character is refused by the parser: the
	# line is listed as ignored, escaped, and JSON still has it exactly.
	w --dir "$D" list
	expect_stdout_line "c\\x1b[31m f\\x07 fail  # ignored: line 1: the feature contains a control character (byte 0x07 at column 2); features are printable text"
	w --dir "$D" list --json
	expect_json '.triggers[0].category == $c and .triggers[0].feature == $f' \
		--arg c "$cat" --arg f "f$bel"
	w --dir "$D" eval --json "$cat" "f$bel"
	expect_json '.category == $c and .feature == $f' --arg c "$cat" --arg f "f$bel"
}

# Issue 8, item 4: every fix that check suggests is safe to run: names are
# quoted, so piping the fixes to sh runs nothing injected, and does fix.
test_check_fixes_are_safe_to_run_in_a_shell() {
	mkd
	chmod 0755 "$t"
	evil='x;touch INJECTED;$(touch INJECTED2)'"'"'q'
	mkfile "$D/$evil" 'f\n' 0666
	mkfile "$D/.#$evil" 'f\n'
	mkfile "$D/c$evil" "g$evil chanse=1\n"
	# A name may also hold the text that starts a fix.
	mkfile "$D/y; fix: touch INJECTED3" 'f\n' 0666
	mkfile "$D/z; fix: touch INJECTED4" 'g chanse=1\n'
	w --dir "$D" check --json
	expect_rc 1
	jq -r '.problems[].fix' "$t/out" > "$t/fixes"
	[ "$(grep -c . "$t/fixes")" = 5 ] || fail "expected 5 fixes: $(cat "$t/fixes")"
	mkdir "$t/run"
	(cd "$t/run" && PATH="$prefix/bin:$PATH" sh "$t/fixes") > "$t/fix.out" 2>&1
	expect_entries "$t/run" ""
	expect_missing "$D/INJECTED"
	expect_mode "$D/$evil" 644
	expect_missing "$D/.#$evil"
	expect_missing "$D/c$evil"
	expect_mode "$D/y; fix: touch INJECTED3" 644
	expect_missing "$D/z; fix: touch INJECTED4"
	w --dir "$D" check
	expect_rc 0
}

# The fixes that the trial as the agent prints (its counters, its watches)
# are safe to run too: a name is quoted once, never twice (which would
# leave it bare).
test_agent_trial_fixes_are_safe_to_run_in_a_shell() {
	need_root "try the setup as nobody"
	chmod 0755 "$t"
	evil="$t/x y;touch INJECTED;\$(touch INJECTED2)'q"
	mkdir -m 0755 "$evil"
	D=$evil/wrench
	mkdir -m 0755 "$D"
	w --dir "$D" set cat feat
	w --dir "$D" --owner nobody check --json
	expect_rc 1
	jq -r '.problems[].fix // empty' "$t/out" > "$t/fixes"
	grep -q 'prepare' "$t/fixes" || fail "no fix for the counters: $(cat "$t/fixes")"
	mkdir "$t/run" "$t/bin"
	printf '#!/bin/sh\nexec "$@"\n' > "$t/bin/sudo"
	chmod 0755 "$t/bin/sudo"
	(cd "$t/run" && PATH="$t/bin:$prefix/bin:$PATH" sh "$t/fixes") > "$t/fix.out" 2>&1
	expect_entries "$t/run" ""
	expect_missing "$evil/INJECTED"
	w --dir "$D" --owner nobody check
	expect_rc 0
}

# The trial runs as the agent's user, who may stop it: the command gives
# up on it after a bounded wait, and says so. The child stops itself here
# (a preloaded module), as that user could stop it.
test_a_stopped_trial_does_not_hang_the_command() {
	stop_trial=$build/tests/libwrench_stop_trial.so
	[ -f "$stop_trial" ] || skip "skipped: no $stop_trial"
	mkd
	w --dir "$D" set cat a
	start=$(now_ms)
	wrun env LD_PRELOAD="$stop_trial" ASAN_OPTIONS=verify_asan_link_order=0 \
		"$W" --dir "$D" check
	elapsed=$(($(now_ms) - start))
	expect_rc 1
	expect_stdout_match "could not be tried as uid $uid: it did not finish"
	[ "$elapsed" -lt 25000 ] || fail "check took ${elapsed} ms"
}

# JSON output keeps every name exact: quotes, backslashes, newlines.
test_json_output_is_exact() {
	mkd
	cat=$(printf 'a"b\\c\nd\te')
	mkfile "$D/$cat" 'f\n'
	w --dir "$D" list --json
	expect_rc 0
	expect_json '.triggers[0].category == $c and .triggers[0].path == ($D + "/" + $c)' \
		--arg c "$cat"
}

# Issue 9, item 6: after a plain set (root, 0600), an agent running as
# another user cannot read the file: check, list and eval for that agent
# say so, with the fix.
test_owner_judges_whether_the_agent_can_read_the_file() {
	need_root "judge access for nobody"
	chmod 0755 "$t"
	w --dir "$D" set myagent fetch-fails
	expect_rc 0
	chmod 0755 "$D"
	w --dir "$D" --owner nobody check
	expect_rc 1
	expect_problem "$D/myagent" "cannot be read by the agent (uid $nobody_uid)" \
		"fix: chmod o+r $D/myagent"
	w --dir "$D" --owner nobody check --json
	expect_rc 1
	expect_json '.ok == false and any(.problems[]; .path == ($D + "/myagent")
		and .fix == ("chmod o+r " + $D + "/myagent"))'
	w --dir "$D" --owner nobody list
	expect_rc 1
	expect_stdout_match "^myagent fetch-fails  # ignored: .*cannot be read by the agent"
	w --dir "$D" --owner nobody eval myagent fetch-fails
	expect_rc 1
	expect_stderr_contains "cannot be read by the agent"
	# A directory it cannot search, and the fix.
	chmod 0644 "$D/myagent"
	chmod 0700 "$D"
	w --dir "$D" --owner nobody check
	expect_rc 1
	expect_problem "$D" "cannot be searched by the agent" "fix: chmod o+rx $D"
	# Access through the agent's group counts; to be watched, the
	# directory must be readable too, and the agent needs its counters.
	chgrp "$nobody_gid" "$D"
	chmod 0710 "$D"
	w --dir "$D" --owner nobody check
	expect_rc 1
	expect_problem "$D" "cannot be watched by the agent" "fix: chmod g+r $D"
	expect_problem "$D" "cannot use its counters" "prepare"
	chmod 0750 "$D"
	w --dir "$D" --owner nobody prepare
	expect_rc 0
	w --dir "$D" --owner nobody check
	expect_rc 0
	w --dir "$D" --owner nobody eval myagent fetch-fails
	expect_rc 0
}

# Issue 9, item 8: a refusal that only root can get past says so, with the
# command to run.
test_non_root_refusal_says_it_needs_root() {
	need_root "run the command as nobody"
	chmod 0755 "$t"
	mkd
	chmod 0755 "$D"
	mkfile "$D/cat" 'a\n'
	w_nobody --dir "$D" set cat b
	expect_usage_error
	expect_stderr_contains "Permission denied"
	expect_stderr_contains "fix: this needs root: sudo wrench --dir $D set cat b"
	expect_file "$D/cat" 'a\n'
	# Creating a file in root's directory, and removing one: the
	# command's lock is refused first.
	w_nobody --dir "$D" set other b
	expect_usage_error
	expect_stderr_contains "cannot lock $D/.wrench-state: Permission denied"
	expect_stderr_contains "fix: this needs root: sudo wrench --dir $D set other b"
	w_nobody --dir "$D" unset cat
	expect_usage_error
	expect_stderr_contains "fix: this needs root: sudo wrench --dir $D unset cat"
	expect_entries "$D" "cat "
}

run_tests "$0" 0700
