#!/bin/sh
# Checks the provisioning recipes of docs/ci.md, docs/examples/*.yaml, the
# way a new machine would read them, and runs their trigger lines:
#   - each file is valid YAML of the right shape: Juju's model config has
#     its one key, cloudinit-userdata, holding cloud-init YAML with no key
#     Juju refuses there (runcmd, bootcmd, users); the plain user data
#     starts with #cloud-config and has a runcmd list;
#   - every `wrench set` in them expires (--for), so that a job that dies
#     leaves nothing firing for long, and every package they fetch is of
#     this version (a release cannot leave a recipe installing the last);
#   - their `wrench` commands, run as cloud-init would (sh -c, as root),
#     with the wrench command of BUILD_DIR against a scratch directory,
#     leave the lines in force with an until= in the future.
# The install line itself is the one tests/packages_check.sh runs.
# Usage: tests/provision_check.sh [BUILD_DIR [EXAMPLES_DIR]]
#   (default: build/default and docs/examples)
set -eu
cd "$(dirname "$0")/.."
build=$(cd "${1:-build/default}" && pwd)
examples=${2:-docs/examples}
wrench=$build/cli/wrench
[ -x "$wrench" ] || { echo "provision_check: $wrench not found: build first" >&2; exit 2; }
version=$(sed -n 's/^project(wrench VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
scratch=$(mktemp -d /tmp/wrench-provision.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=0
fail() {
	echo "provision_check: $*"
	failed=1
}

# The commands of each recipe, one per line, as cloud-init runs them.
/usr/bin/python3 - "$scratch" "$examples/juju-cloudinit-userdata.yaml" \
	"$examples/cloud-init-user-data.yaml" << 'EOF' || fail "a recipe is not what cloud-init expects"
import sys, yaml
scratch, juju, plain = sys.argv[1:]
outer = yaml.safe_load(open(juju))
assert list(outer) == ["cloudinit-userdata"], f"{juju}: keys {list(outer)}"
inner = yaml.safe_load(outer["cloudinit-userdata"])
refused = {"runcmd", "bootcmd", "users"} & set(inner)
assert not refused, f"{juju}: Juju refuses {sorted(refused)} in cloudinit-userdata"
assert open(plain).readline().strip() == "#cloud-config", f"{plain}: no #cloud-config line"
user_data = yaml.safe_load(open(plain))
for name, commands in (("juju", inner["preruncmd"]), ("plain", user_data["runcmd"])):
    assert all(isinstance(c, str) for c in commands), f"{name}: a command is not a string"
    with open(f"{scratch}/{name}.commands", "w") as out:
        out.write("\n".join(commands) + "\n")
EOF

for recipe in juju plain; do
	[ -f "$scratch/$recipe.commands" ] || continue
	forever=$(grep 'wrench set' "$scratch/$recipe.commands" | grep -v -- '--for ' || true)
	[ -z "$forever" ] || fail "$recipe: lines that never expire: $forever"
	stale=$(grep -o '[a-z0-9]*_[0-9.]*_amd64\.deb' "$scratch/$recipe.commands" |
		grep -v "_${version}_" || true)
	[ -z "$stale" ] || fail "$recipe: packages not of version $version: $stale"
	grep -q "_${version}_amd64.deb" "$scratch/$recipe.commands" ||
		fail "$recipe: installs no package of version $version"
	# Its wrench commands, against a directory of its own, through sh -c.
	dir=$scratch/$recipe-wrench
	grep '^wrench ' "$scratch/$recipe.commands" > "$scratch/$recipe.wrench"
	while read -r command; do
		echo "# $command"
		PATH=$build/cli:$PATH WRENCH_DIR=$dir sh -c "$command" || fail "$recipe: $command failed"
	done < "$scratch/$recipe.wrench"
	"$wrench" --dir "$dir" list || fail "$recipe: wrench list failed"
	# Each line set is in force, and expires within the hour it asked for.
	now=$(date -u +%s)
	"$wrench" --dir "$dir" list --json | /usr/bin/python3 -c '
import json, sys, datetime
now, want = int(sys.argv[1]), int(sys.argv[2])
lines = [l for l in json.load(sys.stdin)["triggers"] if not l["ignored"]]
until = [d[6:] for l in lines for d in l["directives"] if d.startswith("until=")]
assert len(lines) == want and len(until) == want, (lines, want)
for u in until:
    t = datetime.datetime.strptime(u, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert now < t.timestamp() <= now + 3600 + 5, u
' "$now" "$(wc -l < "$scratch/$recipe.wrench")" || fail "$recipe: its lines are not in force until the hour is over"
done
[ "$failed" -eq 0 ] && echo "provision_check: both recipes are valid and their lines expire within the hour"
exit "$failed"
