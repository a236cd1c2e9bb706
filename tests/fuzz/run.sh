#!/bin/sh
# Fuzzes the trigger-file parser and evaluator for SECONDS (default 60):
# builds the fuzz preset, then runs fuzz_rules on a scratch copy of the seed
# corpus, so that the inputs it finds do not land in the source tree.
# Exits with libFuzzer's status: non-zero on any crash, leak, timeout or
# broken invariant, whose report is printed along with the input's path,
# kept under build/fuzz/artifacts/ to be replayed with
#   build/fuzz/tests/fuzz/fuzz_rules FILE
# Prints one line when it passes. WRENCH_SKIP_FUZZ=1 makes scripts/test
# skip this script.
set -eu
seconds=${1:-60}
cd "$(dirname "$0")/../.."

scratch=$(mktemp -d "${TMPDIR:-/tmp}/wrench-fuzz-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if ! { cmake --preset fuzz && cmake --build --preset fuzz; } > "$scratch/build.log" 2>&1; then
	cat "$scratch/build.log"
	echo "fuzz: the fuzz preset does not build" >&2
	exit 1
fi
mkdir "$scratch/corpus" "$scratch/tmp"
cp tests/fuzz/corpus/* "$scratch/corpus/"
artifacts=build/fuzz/artifacts
mkdir -p "$artifacts"
log=$scratch/fuzz.log

status=0
# The harness's own scratch files go under $scratch/tmp, not in the corpus.
TMPDIR=$scratch/tmp UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	build/fuzz/tests/fuzz/fuzz_rules -max_total_time="$seconds" \
	-dict=tests/fuzz/wrench.dict -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$artifacts/" -print_final_stats=1 \
	"$scratch/corpus" tests/fuzz/corpus > "$log" 2>&1 || status=$?

if [ "$status" -ne 0 ]; then
	# From the start of the report; the lines before are progress.
	start=$(grep -n -m 1 -E '^==[0-9]+==|runtime error:|invariant broken|^ALARM|^ERROR: libFuzzer' \
		"$log" | cut -d: -f1)
	tail -n +"${start:-1}" "$log" | tail -n 200
	echo "fuzz_rules failed (exit status $status); the input is in $artifacts/" >&2
	exit "$status"
fi
runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log")
echo "fuzz: ${runs:-?} inputs in ${seconds}s, no crash, leak or broken invariant"
