# Sourced by scripts/test and scripts/lint: runs a check as a short list of
# steps, one line each with its result and duration, and one summary at the
# end. What a step prints goes to its own log file, whose path is printed
# (with the log's last lines) when the step fails; a failed step does not
# stop the later ones, so that one run reports every failure.
#
#   steps_begin NAME            once, first: logs go to build/logs/NAME/
#                               (or to $WRENCH_LOG_DIR/NAME/)
#   step "what" COMMAND [ARG...]
#   step_skip "what" "why"
#   steps_end                   the summary; returns 1 when a step failed

steps_begin() {
	steps_name=$1
	steps_dir=${WRENCH_LOG_DIR:-$PWD/build/logs}/$1
	rm -rf "$steps_dir"
	mkdir -p "$steps_dir"
	steps_count=0
	steps_failed=""
	steps_skipped=0
	steps_start=$(date +%s)
}

# The log file of step number $1 called $2: its name made file-safe.
steps_log_path() {
	printf '%s/%02d-%s.log' "$steps_dir" "$1" "$(printf '%s' "$2" | tr -c 'A-Za-z0-9' '-')"
}

step() {
	step_what=$1
	shift
	steps_count=$((steps_count + 1))
	step_log=$(steps_log_path "$steps_count" "$step_what")
	step_start=$(date +%s)
	printf '%s: %s ... ' "$steps_name" "$step_what"
	if "$@" > "$step_log" 2>&1 < /dev/null; then
		printf 'ok (%ss)\n' "$(($(date +%s) - step_start))"
	else
		step_status=$?
		printf 'FAILED (exit status %s, %ss)\n' "$step_status" "$(($(date +%s) - step_start))"
		tail -n 25 "$step_log" | sed 's/^/    | /'
		printf '    the whole output: %s\n' "$step_log"
		steps_failed="$steps_failed${steps_failed:+, }$step_what"
	fi
}

step_skip() {
	steps_count=$((steps_count + 1))
	steps_skipped=$((steps_skipped + 1))
	printf '%s: %s ... skipped (%s)\n' "$steps_name" "$1" "$2"
}

steps_end() {
	steps_time=$(($(date +%s) - steps_start))
	if [ -n "$steps_failed" ]; then
		printf '%s: FAILED: %s (%s steps, %ss); logs in %s\n' "$steps_name" "$steps_failed" \
			"$steps_count" "$steps_time" "$steps_dir"
		return 1
	fi
	printf '%s: passed (%s steps' "$steps_name" "$((steps_count - steps_skipped))"
	[ "$steps_skipped" -eq 0 ] || printf ', %s skipped' "$steps_skipped"
	printf ', %ss)\n' "$steps_time"
}
