# Sourced by scripts/demo and scripts/test: installs what the build needs
# when it is missing, as root or through sudo, or stops with the command
# to run. Debian and Ubuntu only.
wrench_packages="cmake gcc clang make pkg-config libbsd-dev libcmocka-dev jq libfiu-dev clang-tidy
cppcheck clang-format strace libelf-dev"
# The Python binding's tests, and the Debian packages (python/run_tests.sh,
# scripts/packages, tests/packages_check.sh).
wrench_packages="$wrench_packages python3-pytest python3-setuptools python3-pip python3-venv
python3-all debhelper dpkg-dev dh-python pybuild-plugin-pyproject lintian fakeroot liburing-dev"
# The Ansible collection's tests (ansible/tests/run.sh), and the check of
# the provisioning recipes, which reads their YAML (tests/provision_check.sh).
wrench_packages="$wrench_packages ansible-core python3-yaml"

wrench_missing() {
	missing=""
	for p in $wrench_packages; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	echo "$missing"
}

wrench_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		DEBIAN_FRONTEND=noninteractive "$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo DEBIAN_FRONTEND=noninteractive "$@"
	else
		echo "missing packages:$missing" >&2
		echo "run as root: apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
}

wrench_install_deps() {
	missing=$(wrench_missing)
	if [ -n "$missing" ]; then
		echo "installing:$missing"
		wrench_as_root apt-get update -qq
		# shellcheck disable=SC2086
		wrench_as_root apt-get install -y -qq $missing > /dev/null
	fi
	# The sanitizer and libFuzzer runtimes of the clang just installed:
	# a package of their own on Debian 12 and later, part of clang before.
	rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
	if ! dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q 'install ok installed' &&
		apt-cache show "$rt" > /dev/null 2>&1; then
		missing=" $rt"
		wrench_as_root apt-get install -y -qq "$rt" > /dev/null
	fi
}
