#!/usr/bin/env bash
#
# The Chorus fault suite: real Kafka, real Redis, real faults.
#
#   tests/faults/run.sh [--quick] [--iterations N] [--seed N] [--json FILE]
#                       [--guarantee exactly_once|at_least_once] [scenario...]
#
# Starts its own Kafka broker and redis-server with tests/harness/ (always
# stopped again, also on failure or Ctrl-C), runs the scenarios with
# tests/faults/faults.py in the test venv, and prints a Markdown table:
# fault | iterations | records in | forecasts, alerts and validation windows
# expected vs seen | duplicates | lost | Redis state equal to a clean run |
# notes.
# Exit status: 0 when every row shows 0 lost, 0 duplicates, no unexpected
# output and state equal to the clean run; 1 otherwise; 2 on a usage or
# setup error.
#
# Scenarios: control replay control_live kill9 crash_inflight zombie zombie_midbatch
# settle_stable_id settle_fresh_id kill_at_release rebalance rolling_restart
# redis_restart redis_pause redis_fnflush duplicates shuffled garbage
# nonfinite broker_restart (default: all; replay, control_live, crash_inflight,
# rolling_restart and redis_fnflush are extras beyond the issue's list).
# Monitoring is on in every run (alerts.enabled=1; --no-alerts turns it off):
# the table also compares chorus.alerts and chorus.validation with the clean
# run (alerts and windows expected vs seen).
# --quick runs a few iterations of each (CI, a few minutes); the default
# is the full run (kill -9 24 times, ...). See docs/reliability.md.
#
# Environment: CHORUS_BIN (default build/chorus; nothing is built here),
# CHORUS_CACHE_DIR, CHORUS_TEST_VENV, CHORUS_TIMEOUT_MULT (stretches every
# wait), CHORUS_FAULTS_KEEP=1 keeps the work directory (worker logs, broker
# and redis logs); it is kept anyway when the suite fails.
set -euo pipefail
# shellcheck source=tests/harness/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../harness/common.sh"

for arg in "$@"; do
	case $arg in
	-h | --help)
		chorus_usage "${BASH_SOURCE[0]}"
		exit 0
		;;
	esac
done

CHORUS_BIN_PATH="${CHORUS_BIN:-$CHORUS_REPO/build/chorus}"
[[ -x $CHORUS_BIN_PATH ]] || {
	chorus_log "no chorus binary at $CHORUS_BIN_PATH; build it (cmake --build build --target chorus) or set CHORUS_BIN"
	exit 2
}
CHORUS_BIN_PATH=$(cd "$(dirname "$CHORUS_BIN_PATH")" && pwd)/$(basename "$CHORUS_BIN_PATH")
PY="$CHORUS_TEST_VENV/bin/python"
"$PY" -c 'import confluent_kafka, fastavro, redis, pytest' 2>/dev/null || {
	chorus_log "the test venv ($CHORUS_TEST_VENV) is missing or incomplete; run scripts/deps.sh"
	exit 2
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-faults.XXXXXX")
KAFKA_DIR=$WORK/kafka
REDIS_DIR=$WORK/redis
status=2

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local pid pid_file
	trap - EXIT INT TERM
	# Processes the driver started (workers, its own redis) that outlived
	# it: only pids it recorded, and only if they still run from $WORK.
	if [[ -f $WORK/pids ]]; then
		while read -r pid; do
			if chorus_pid_alive "$pid" && chorus_pid_matches "$pid" "$WORK"; then
				kill -CONT "$pid" 2>/dev/null || true
				chorus_stop_pid "$pid" "$WORK" 10
			fi
		done <"$WORK/pids"
	fi
	# A redis or broker left stopped by an interrupted scenario must be
	# continued before it can be stopped.
	for pid_file in "$REDIS_DIR/pid" "$KAFKA_DIR/pid"; do
		if [[ -f $pid_file ]]; then
			kill -CONT "$(cat "$pid_file")" 2>/dev/null || true
		fi
	done
	"$CHORUS_REPO/tests/harness/kafka.sh" stop "$KAFKA_DIR" || true
	"$CHORUS_REPO/tests/harness/redis.sh" stop "$REDIS_DIR" || true
	if [[ $status == 0 && ${CHORUS_FAULTS_KEEP:-0} != 1 ]]; then
		rm -rf -- "$WORK"
	else
		chorus_log "fault suite work directory kept: $WORK"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

# The harness removes its directories on stop; keep them (logs) with ours.
export CHORUS_TEST_KEEP_DIRS=1
chorus_log "starting Kafka and Redis (work dir $WORK)"
BOOTSTRAP=$("$CHORUS_REPO/tests/harness/kafka.sh" start "$KAFKA_DIR")
REDIS_PORT=$("$CHORUS_REPO/tests/harness/redis.sh" start "$REDIS_DIR")
chorus_log "kafka $BOOTSTRAP, redis 127.0.0.1:$REDIS_PORT"

set +e
"$PY" "$CHORUS_REPO/tests/faults/faults.py" \
	--bootstrap "$BOOTSTRAP" --kafka-dir "$KAFKA_DIR" \
	--redis-dir "$REDIS_DIR" --redis-port "$REDIS_PORT" \
	--work "$WORK" --chorus-bin "$CHORUS_BIN_PATH" "$@"
status=$?
set -e
exit "$status"
