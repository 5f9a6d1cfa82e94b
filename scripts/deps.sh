#!/usr/bin/env bash
#
# Install what building and testing Chorus needs, on Debian 12. Idempotent:
# it installs only what is missing, and runs `apt-get update` at most once,
# and only when a package is missing.
#
#   scripts/deps.sh               everything the full test suite needs: the
#                                 Debian packages, the Python test venv
#                                 ($CHORUS_CACHE_DIR/venv) and the Kafka
#                                 broker jars ($CHORUS_CACHE_DIR/kafka-*)
#   scripts/deps.sh --build-only  only the Debian packages that building
#                                 chorus and running Redis need (the demo)
#
# Environment: CHORUS_CACHE_DIR (default ~/.cache/chorus), CHORUS_TEST_PYTHON (the
# interpreter the venv is made from; default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/harness/common.sh
source tests/harness/common.sh

# Building chorus, and the Redis server that the demo and tests start.
BUILD_PKGS=(build-essential cmake pkg-config librdkafka-dev libavro-dev libhiredis-dev
	libjansson-dev libmicrohttpd-dev redis-server)
# The test tiers: Criterion, the sanitizer and libFuzzer runtimes, the style
# check, kcat for poking at topics (and the benchmark's consume ceiling),
# valgrind for the benchmark's instruction counts, and the Python venv for
# the integration tests and the benchmark; docker-compose and systemd (its
# systemd-analyze) for the offline checks of the deployment files.
TEST_PKGS=(libcriterion-dev kcat clang libclang-rt-14-dev clang-format python3-venv
	valgrind ca-certificates docker-compose systemd)

mode=all
for arg in "$@"; do
	case $arg in
	--build-only) mode=build ;;
	-h | --help)
		chorus_usage "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) chorus_die "deps.sh: unknown option '$arg' (try --help)" ;;
	esac
done

# ------------------------------------------------------------ Debian packages --

pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

install_debian_packages() {
	local wanted=("$@") missing=() p
	for p in "${wanted[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		chorus_log "deps: Debian packages present"
		return 0
	fi
	chorus_log "deps: installing ${missing[*]}"
	# Wait for another apt (e.g. unattended-upgrades on a fresh machine)
	# rather than failing on its lock.
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
		-o Dpkg::Use-Pty=0 -q)
	chorus_as_root "${apt[@]}" update </dev/null
	chorus_as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null
}

pkgs=("${BUILD_PKGS[@]}")
if [[ $mode == all ]]; then
	pkgs+=("${TEST_PKGS[@]}")
	# Java 17 and Maven may come from elsewhere (e.g. SDKMAN); only install
	# Debian's when the commands are missing.
	command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
	command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
fi
install_debian_packages "${pkgs[@]}"

[[ $mode == build ]] && exit 0

# ---------------------------------------------------------------- Python venv --

ensure_venv() {
	local req=tests/integration/requirements.txt py stamp want
	py=${CHORUS_TEST_PYTHON:-/usr/bin/python3}
	[[ -x $py ]] || py=$(command -v python3) || chorus_die "no python3"
	stamp=$CHORUS_TEST_VENV/.chorus-stamp
	want="$(sha256sum <"$req" | cut -d' ' -f1) $("$py" -c 'import sys; print(sys.version.split()[0])') $py"
	if [[ -x $CHORUS_TEST_VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
		chorus_log "deps: Python venv up to date ($CHORUS_TEST_VENV)"
		return 0
	fi
	chorus_log "deps: creating the Python venv $CHORUS_TEST_VENV"
	mkdir -p "$(dirname "$CHORUS_TEST_VENV")"
	"$py" -m venv --clear "$CHORUS_TEST_VENV"
	# Wheels only: confluent-kafka must not try to compile against the
	# system's older librdkafka headers.
	"$CHORUS_TEST_VENV/bin/python" -m pip install --no-input --disable-pip-version-check -q \
		--only-binary=:all: -r "$req" </dev/null
	echo "$want" >"$stamp"
}
ensure_venv

# ---------------------------------------------------------- Kafka broker jars --

chorus_log "deps: Kafka broker jars in $(tests/harness/kafka.sh fetch)"
