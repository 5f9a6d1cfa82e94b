#!/usr/bin/env bash
#
# A throwaway redis-server for tests: loopback only, a free port, no
# persistence, noeviction (state must never be evicted silently).
#
#   redis.sh start DIR    start a server whose config, log and pid live in DIR;
#                         prints the port. DIR must be new or empty.
#   redis.sh stop DIR     stop it (SIGTERM, SIGKILL after a bounded wait) and
#                         delete DIR (CHORUS_TEST_KEEP_DIRS=1 keeps it).
#   redis.sh port DIR     print the port of a running server.
#   redis.sh cli DIR ARGS run redis-cli against it.
#
# Environment: CHORUS_TEST_REDIS_SERVER (the redis-server binary; default from
# PATH), CHORUS_TIMEOUT_MULT (scales every wait).
set -euo pipefail
# shellcheck source=tests/harness/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REDIS_SERVER="${CHORUS_TEST_REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
REDIS_CLI="$(command -v redis-cli || echo /usr/bin/redis-cli)"

usage() {
	chorus_usage "${BASH_SOURCE[0]}" >&2
	exit 2
}

_redis_ping() {
	[[ $("$REDIS_CLI" -h 127.0.0.1 -p "$1" ping 2>/dev/null </dev/null) == PONG ]]
}

cmd_start() {
	local dir=$1 attempt port pid rc
	[[ -x $REDIS_SERVER ]] || chorus_die "redis-server not found (set CHORUS_TEST_REDIS_SERVER)"
	[[ -x $REDIS_CLI ]] || chorus_die "redis-cli not found"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/pid ]] && chorus_pid_alive "$(cat "$dir/pid")"; then
		chorus_die "a redis-server from $dir is already running (pid $(cat "$dir/pid"))"
	fi
	if [[ ! -f $dir/.chorus-harness && -n $(ls -A "$dir") ]]; then
		chorus_die "$dir is not empty and was not made by the harness"
	fi
	touch "$dir/.chorus-harness"

	for attempt in 1 2 3; do
		port=$(chorus_free_ports 1)
		cat >"$dir/redis.conf" <<EOF
# Written by tests/harness/redis.sh; a test server, not a deployment.
port $port
bind 127.0.0.1
protected-mode yes
dir $dir
logfile $dir/redis.log
daemonize no
supervised no
set-proc-title no
save ""
appendonly no
maxmemory-policy noeviction
enable-debug-command local
EOF
		: >"$dir/redis.log"
		"$REDIS_SERVER" "$dir/redis.conf" </dev/null >"$dir/redis.stdout" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/pid"
		rc=0
		chorus_wait_for_pid "$pid" "$(chorus_scale 20)" _redis_ping "$port" || rc=$?
		if ((rc == 0)); then
			echo "$port" >"$dir/port"
			echo "$port"
			return 0
		fi
		if ((rc == 2)) && grep -q 'Address already in use' "$dir/redis.log" "$dir/redis.stdout"; then
			chorus_log "redis: port $port was taken before the server bound it; retrying ($attempt/3)"
			continue
		fi
		chorus_stop_pid "$pid" "$dir/redis.conf" 5
		chorus_tail "$dir/redis.stdout" 20
		chorus_tail "$dir/redis.log" 40
		chorus_die "redis-server did not answer PING on 127.0.0.1:$port ($([[ $rc == 1 ]] && echo timed out || echo exited))"
	done
	chorus_die "redis-server could not bind a free port after 3 attempts"
}

cmd_stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/pid ]]; then
		chorus_stop_pid "$(cat "$dir/pid")" "$dir/redis.conf" 10
	fi
	chorus_remove_harness_dir "$dir"
}

cmd_port() {
	[[ -f $1/port ]] || chorus_die "no redis started in $1"
	cat "$1/port"
}

(($# >= 2)) || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
port) cmd_port "$2" ;;
cli)
	dir=$2
	shift 2
	exec "$REDIS_CLI" -h 127.0.0.1 -p "$(cmd_port "$dir")" "$@"
	;;
*) usage ;;
esac
