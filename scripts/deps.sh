# Sourced by scripts/demo and scripts/test: installs what the build needs
# when it is missing, as root or through sudo, or stops with the command
# to run. Debian and Ubuntu only.
wrench_packages="cmake gcc clang make pkg-config libbsd-dev libcmocka-dev jq libclang-rt-14-dev libfiu-dev clang-tidy cppcheck clang-format"

wrench_missing() {
	missing=""
	for p in $wrench_packages; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	echo "$missing"
}

wrench_install_deps() {
	missing=$(wrench_missing)
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		as_root=""
	elif command -v sudo >/dev/null 2>&1; then
		as_root="sudo"
	else
		echo "missing packages:$missing" >&2
		echo "run as root: apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
	echo "installing:$missing"
	$as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $missing > /dev/null
}
