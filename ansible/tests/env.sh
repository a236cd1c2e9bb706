# shellcheck shell=sh disable=SC2154
# Sourced by the collection's test scripts: a scratch directory ($scratch,
# removed on exit) where everything Ansible writes stays, with no
# ansible.cfg of the caller's; quietly(); and the collection, built and
# installed there from $collection, which the sourcing script sets.
scratch=$(mktemp -d /tmp/wrench-ansible.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/logs" "$scratch/home"
export HOME="$scratch/home"
export ANSIBLE_CONFIG="$scratch/ansible.cfg"
export ANSIBLE_LOCAL_TEMP="$scratch/tmp/local"
export ANSIBLE_REMOTE_TEMP="$scratch/tmp/remote"
export ANSIBLE_ASYNC_DIR="$scratch/tmp/async"
export ANSIBLE_COLLECTIONS_PATH="$scratch/collections"
export ANSIBLE_RETRY_FILES_ENABLED=false
export ANSIBLE_NOCOLOR=true
: > "$ANSIBLE_CONFIG"

# quietly NAME COMMAND [ARG...]: runs the command with its output in
# logs/NAME.log, printed when it fails.
quietly() {
	log="$scratch/logs/$1.log"
	shift
	if ! "$@" > "$log" 2>&1; then
		echo "$0: failed: $*" >&2
		cat "$log" >&2
		exit 1
	fi
}

quietly build ansible-galaxy collection build "$collection" --output-path "$scratch"
quietly install ansible-galaxy collection install -p "$scratch/collections" \
	"$scratch"/libwrench-wrench-*.tar.gz
