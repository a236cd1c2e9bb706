# The runner of the command's shell tests (test_cli.sh, test_counters.sh),
# sourced by each. A test is a function named test_..., run in a subshell
# in its own directory $t (under $scratch), with $D=$t/wrench the trigger
# directory, not created. It reports with fail(), or skips with skip()
# (exit status 77). Prints one line per test and "N passed, N failed".

fail() {
	echo "  FAIL: $*"
	failed_here=1
}

skip() {
	echo "  $*"
	exit 77
}

# Runs every test of SCRIPT, each directory $t with MODE; returns 1 if any
# failed.
run_tests() {
	passed=0
	failed=0
	skipped=0
	for name in $(sed -n 's/^\(test_[A-Za-z0-9_]*\)() {$/\1/p' "$1"); do
		t=$(mktemp -d "$scratch/t.XXXXXX")
		chmod "$2" "$t"
		D=$t/wrench
		(
			failed_here=0
			got=""
			cd "$t" || exit 1
			"$name"
			exit $failed_here
		) > "$scratch/test.log" 2>&1
		case $? in
		0)
			passed=$((passed + 1))
			echo "ok   $name"
			;;
		77)
			skipped=$((skipped + 1))
			echo "skip $name: $(sed 's/^ *//' "$scratch/test.log")"
			;;
		*)
			failed=$((failed + 1))
			echo "FAIL $name"
			cat "$scratch/test.log"
			;;
		esac
	done
	[ "$skipped" -eq 0 ] || echo "($skipped skipped)"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
