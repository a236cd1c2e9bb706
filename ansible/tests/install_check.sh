#!/bin/sh
# The install role for real: installs PACKAGE... from the .deb files of
# DEBS-DIR on this machine, through the collection's install playbook
# (ansible_connection=local, as root), then runs it again, which must
# change nothing. tests/packages_check.sh installs the packages it built
# this way, then tests and purges them.
# Usage: ansible/tests/install_check.sh DEBS-DIR PACKAGE...
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DEBS-DIR PACKAGE..." >&2; exit 2; }
debs=$(cd "$1" && pwd)
shift
collection=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=ansible/tests/env.sh disable=SC2154
. "$collection/tests/env.sh"

cat > "$scratch/inventory" <<INVENTORY
this-machine ansible_connection=local ansible_python_interpreter=/usr/bin/python3
INVENTORY
# The packages as a JSON list: the role installs them in this order.
packages=$(printf '"%s",' "$@")
extra="{\"wrench_debs_dir\": \"$debs\", \"wrench_install_packages\": [${packages%,}]}"

cd "$scratch"
quietly install-first ansible-playbook -i inventory -e "$extra" libwrench.wrench.install
quietly install-again ansible-playbook -i inventory -e "$extra" libwrench.wrench.install
grep -Eq '^this-machine +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' \
	"$scratch/logs/install-again.log" || {
	echo "$0: the second run of the install playbook changed something:" >&2
	cat "$scratch/logs/install-again.log" >&2
	exit 1
}
for p in "$@"; do
	dpkg-query -W -f='${Status}\n' "$p" | grep -q 'install ok installed' || {
		echo "$0: $p is not installed after the playbook" >&2
		exit 1
	}
done
echo "install role: $* installed from $debs; a second run changed nothing"
