#!/bin/sh
# The Ansible collection's tests: builds the collection, installs it in a
# scratch directory, and runs tests/fleet_test.yml against three hosts on
# this machine (ansible_connection=local), each with its own trigger
# directory, using the wrench command and libwrench of a build tree; then
# checks that ansible-doc renders every module and filter.
# Quiet unless something fails: then the failing command's output is
# printed.
# Usage: ansible/tests/run.sh BUILD-DIR   (for example build/default)
set -eu
[ $# -eq 1 ] || { echo "usage: $0 BUILD-DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
collection=$(cd "$(dirname "$0")/.." && pwd)
for f in "$build/cli/wrench" "$build/lib/libwrench.so.1"; do
	[ -e "$f" ] || { echo "$0: $f is missing; build $build first" >&2; exit 2; }
done

# shellcheck source=ansible/tests/env.sh disable=SC2154
. "$collection/tests/env.sh"
# Trigger directories are trusted only when nobody else may write in them
# or in an ancestor; mktemp's 0700 would keep out a non-root agent.
chmod 0755 "$scratch"
mkdir -m 0755 "$scratch/host1" "$scratch/host2" "$scratch/host3" "$scratch/untrusted"
chmod 0777 "$scratch/untrusted"

cat > "$scratch/inventory" <<INVENTORY
[fleet]
host1 wrench_dir=$scratch/host1
host2 wrench_dir=$scratch/host2
host3 wrench_dir=$scratch/host3

[fleet:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
wrench_executable=$build/cli/wrench
wrench_library=$build/lib/libwrench.so.1
wrench_scratch=$scratch
INVENTORY

cd "$scratch"
quietly playbook ansible-playbook -i inventory "$collection/tests/fleet_test.yml"
echo "fleet playbook: ok"

# docs/ci.md's fleet job, as written, against the same three hosts while
# an agent on each keeps calling its failure point (a process per call,
# as short-lived hooks do): the job waits until each was refused twice,
# prints the fires and removes the lines.
stop="$scratch/agents.stop"
for host in host1 host2 host3; do
	(
		while [ ! -e "$stop" ]; do
			WRENCH_DIR="$scratch/$host" /usr/bin/python3 "$collection/tests/fire_point.py" \
				"$build/lib/libwrench.so.1" machine-agent refuse-upgrade 1 > /dev/null 2>&1
		done
	) &
done
status=0
ansible-playbook -i inventory -e wrench_executable="$build/cli/wrench" \
	-e wrench_fleet_json="$scratch/fires.json" "$collection/../docs/examples/fleet-job.yml" \
	> "$scratch/logs/fleet-job.log" 2>&1 || status=$?
touch "$stop"
wait
if [ "$status" -ne 0 ]; then
	cat "$scratch/logs/fleet-job.log" >&2
	echo "$0: docs/examples/fleet-job.yml failed" >&2
	exit 1
fi
[ -n "${WRENCH_ANSIBLE_SHOW:-}" ] && cat "$scratch/logs/fleet-job.log" "$scratch/fires.json"
/usr/bin/python3 - "$scratch/fires.json" <<'CHECK' || { cat "$scratch/logs/fleet-job.log" >&2; exit 1; }
import json, sys
fires = json.load(open(sys.argv[1]))
point, = fires["points"]
assert (point["category"], point["feature"]) == ("machine-agent", "refuse-upgrade"), point
assert sorted(point["hosts_fired"]) == ["host1", "host2", "host3"], point
assert all(n >= 2 for n in point["fires"].values()) and fires["total"] >= 6, fires
CHECK
for host in host1 host2 host3; do
	! find "$scratch/$host" -mindepth 1 -maxdepth 1 ! -name .wrench-state | grep -q . ||
		{ echo "$0: fleet-job.yml left trigger files on $host" >&2; exit 1; }
done
echo "docs/examples/fleet-job.yml: every host refused twice, fires summed, lines removed"
quietly install-syntax ansible-playbook -i inventory --syntax-check \
	-e wrench_debs_dir="$scratch" libwrench.wrench.install
for module in trigger hits clear; do
	quietly "doc-$module" ansible-doc libwrench.wrench.$module
	grep -q '^EXAMPLES:' "$scratch/logs/doc-$module.log" || {
		echo "$0: ansible-doc libwrench.wrench.$module shows no examples" >&2
		cat "$scratch/logs/doc-$module.log" >&2
		exit 1
	}
done
for filter in fleet_fires fleet_table; do
	quietly "doc-$filter" ansible-doc -t filter libwrench.wrench.$filter
done
quietly doc-role ansible-doc -t role libwrench.wrench.install
echo "ansible-doc: every module, filter and the role render"
