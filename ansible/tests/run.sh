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
