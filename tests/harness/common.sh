# shellcheck shell=bash
#
# Shared helpers for the test harness and the build scripts. Source it; it
# sets no shell options of its own, and every helper is safe under
# `set -euo pipefail`.
#
# Invariants the helpers keep:
#  - every wait is bounded, and every bound goes through chorus_scale, so one
#    variable (CHORUS_TIMEOUT_MULT, default 1, may be fractional) stretches all
#    of them on a slow machine; polling loops are the only place that sleeps;
#  - a process is stopped only by the pid its own start recorded, and only
#    after /proc confirms that the pid still runs a command line naming the
#    directory it was started for (a recycled pid is never signalled);
#  - servers bind 127.0.0.1 only.

# ---------------------------------------------------------------- locations --

# Nothing here is exported: chorus reads every CHORUS_<KEY> variable as a
# configuration override, so the harness keeps its own settings out of the
# environment of the processes it starts (only CHORUS_TEST_* is safe there).
# shellcheck disable=SC2034 # used by the scripts that source this file
CHORUS_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHORUS_CACHE_DIR="${CHORUS_CACHE_DIR:-${HOME:-/tmp}/.cache/chorus}"
CHORUS_TIMEOUT_MULT="${CHORUS_TIMEOUT_MULT:-1}"
CHORUS_TEST_VENV="${CHORUS_TEST_VENV:-$CHORUS_CACHE_DIR/venv}"

# ------------------------------------------------------------------ logging --

chorus_log() {
	printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

chorus_die() {
	printf '[%s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
	exit 1
}

# chorus_usage FILE: print the comment block at the top of a script (after
# the shebang and the first '#' line) as its usage text.
chorus_usage() {
	awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$1"
}

# chorus_tail FILE [LINES]: show the end of a log file, framed, on stderr.
chorus_tail() {
	local file=$1 lines=${2:-60}
	if [[ -f $file ]]; then
		printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
		tail -n "$lines" "$file" >&2 || true
		printf -- '----- end of %s -----\n' "$file" >&2
	else
		printf -- '----- (no log at %s) -----\n' "$file" >&2
	fi
}

# ------------------------------------------------------------------- timing --

# chorus_scale SECONDS: SECONDS × CHORUS_TIMEOUT_MULT, rounded up, at least 1.
chorus_scale() {
	awk -v s="$1" -v m="$CHORUS_TIMEOUT_MULT" 'BEGIN {
		if (m !~ /^[0-9]*\.?[0-9]+$/ || m <= 0) { print "bad CHORUS_TIMEOUT_MULT" > "/dev/stderr"; exit 1 }
		v = s * m; i = int(v); if (i < v) i++; if (i < 1) i = 1; print i }'
}

# chorus_now_ms: wall clock in milliseconds, without forking.
chorus_now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# chorus_wait_for SECONDS CMD [ARGS...]: run CMD every 100 ms until it
# succeeds (return 0) or SECONDS (already scaled by the caller) pass
# (return 1). CMD's output is discarded.
chorus_wait_for() {
	local limit=$1
	shift
	local deadline=$(($(chorus_now_ms) + limit * 1000))
	until "$@" >/dev/null 2>&1; do
		if (($(chorus_now_ms) >= deadline)); then
			return 1
		fi
		sleep 0.1
	done
}

# -------------------------------------------------------------------- ports --

# chorus_python: a python3 for small helpers (not the test venv).
chorus_python() {
	if [[ -x /usr/bin/python3 ]]; then
		/usr/bin/python3 "$@"
	else
		python3 "$@"
	fi
}

# chorus_free_ports N: print N distinct free TCP ports on 127.0.0.1. All N
# sockets are held open together, so the ports differ; a server may still lose
# a port to another process before it binds, so callers retry on EADDRINUSE.
chorus_free_ports() {
	chorus_python - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# ---------------------------------------------------------------- processes --

# chorus_pid_alive PID: true if PID exists and is not a zombie.
chorus_pid_alive() {
	local pid=$1 stat rest
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	[[ ${rest%% *} != Z ]]
}

# chorus_pid_matches PID NEEDLE: true if PID's command line contains NEEDLE.
chorus_pid_matches() {
	local pid=$1 needle=$2 cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$needle"* ]]
}

_chorus_pid_gone() {
	! chorus_pid_alive "$1"
}

# chorus_wait_for_pid PID SECONDS CMD [ARGS...]: like chorus_wait_for, but
# gives up as soon as PID dies. Returns 0 ready, 1 timed out, 2 PID died.
chorus_wait_for_pid() {
	local pid=$1 limit=$2
	shift 2
	local deadline=$(($(chorus_now_ms) + limit * 1000))
	until "$@" >/dev/null 2>&1; do
		chorus_pid_alive "$pid" || return 2
		if (($(chorus_now_ms) >= deadline)); then
			return 1
		fi
		sleep 0.1
	done
}

# chorus_stop_pid PID NEEDLE GRACE: SIGTERM PID, wait up to GRACE seconds
# (scaled here), then SIGKILL. Does nothing if PID is gone or no longer runs a
# command line containing NEEDLE.
chorus_stop_pid() {
	local pid=$1 needle=$2 grace
	grace=$(chorus_scale "$3")
	chorus_pid_alive "$pid" || return 0
	if ! chorus_pid_matches "$pid" "$needle"; then
		chorus_log "pid $pid no longer runs '$needle'; not signalling it"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || return 0
	if chorus_wait_for "$grace" _chorus_pid_gone "$pid"; then
		return 0
	fi
	chorus_log "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || return 0
	chorus_wait_for "$(chorus_scale 10)" _chorus_pid_gone "$pid" ||
		chorus_log "pid $pid still present after SIGKILL"
}

# chorus_remove_harness_dir DIR: delete DIR, but only if the harness created
# it (start writes the marker file); CHORUS_TEST_KEEP_DIRS=1 keeps it.
chorus_remove_harness_dir() {
	local dir=$1
	if [[ -n $dir && -f $dir/.chorus-harness ]]; then
		if [[ ${CHORUS_TEST_KEEP_DIRS:-0} == 1 ]]; then
			chorus_log "keeping $dir (CHORUS_TEST_KEEP_DIRS=1)"
		else
			rm -rf -- "$dir"
		fi
	fi
}

# chorus_as_root CMD...: run CMD as root (directly, or through sudo -n).
chorus_as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		chorus_die "need root (or sudo) to run: $*"
	fi
}
