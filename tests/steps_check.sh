#!/bin/sh
# Checks scripts/steps.sh, which scripts/test and scripts/lint report
# through: one line per step with its result, the output of a step in its
# log and not on the terminal, the log's path printed when a step fails,
# skipped steps said so, one summary, and the exit status.
# Usage: steps_check.sh SOURCE_DIR
set -eu
src=$1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/wrench-steps.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fail() {
	echo "steps_check: $*" >&2
	echo "--- output:" >&2
	cat "$scratch/out" >&2
	exit 1
}

run() {
	status=0
	WRENCH_LOG_DIR="$scratch/logs" sh -c ". '$src/scripts/steps.sh'; $1" > "$scratch/out" 2>&1 ||
		status=$?
}

run 'steps_begin t; step "quiet" sh -c "echo noise; echo more >&2"; step_skip "fuzz" "WRENCH_SKIP_FUZZ=1"; steps_end'
[ "$status" -eq 0 ] || fail "a passing run exited with $status"
[ "$(wc -l < "$scratch/out")" -eq 3 ] || fail "a passing run of two steps is not three lines"
grep -q '^t: quiet \.\.\. ok (' "$scratch/out" || fail "no ok line for the passing step"
grep -q '^t: fuzz \.\.\. skipped (WRENCH_SKIP_FUZZ=1)$' "$scratch/out" || fail "no skipped line"
grep -q '^t: passed (1 steps, 1 skipped, ' "$scratch/out" || fail "no summary"
! grep -q noise "$scratch/out" || fail "a passing step's output reached the terminal"
grep -q noise "$scratch/logs/t/01-quiet.log" && grep -q more "$scratch/logs/t/01-quiet.log" ||
	fail "the step's output is not in its log"

run 'steps_begin t; step "broken" sh -c "echo the-reason; exit 3"; step "after" true; steps_end'
[ "$status" -eq 1 ] || fail "a failing run exited with $status, not 1"
grep -q '^t: broken \.\.\. FAILED (exit status 3, ' "$scratch/out" || fail "no FAILED line"
grep -q '| the-reason' "$scratch/out" || fail "the end of the failed step's log is not shown"
grep -q "the whole output: $scratch/logs/t/01-broken.log\$" "$scratch/out" ||
	fail "the failed step's log path is not printed"
grep -q '^t: after \.\.\. ok' "$scratch/out" || fail "a failure stopped the later steps"
grep -q "^t: FAILED: broken (2 steps, .*logs in $scratch/logs/t\$" "$scratch/out" ||
	fail "no summary naming the failed step"
