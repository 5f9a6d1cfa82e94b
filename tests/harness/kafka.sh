#!/usr/bin/env bash
#
# A real single-node Apache Kafka broker (KRaft, broker and controller in one
# JVM) for the integration tests, run from the broker's jars without Docker.
#
#   kafka.sh fetch                 download the broker jars (once) into the
#                                  cache; prints the libs directory
#   kafka.sh start DIR             start a broker whose config, data, logs and
#                                  pid live in DIR; prints host:port. DIR must
#                                  be new or empty.
#   kafka.sh stop DIR              stop it (SIGTERM, SIGKILL after a bounded
#                                  wait) and delete DIR (CHORUS_TEST_KEEP_DIRS=1
#                                  keeps it)
#   kafka.sh bootstrap DIR         print host:port of a running broker
#   kafka.sh create-topic DIR NAME PARTITIONS [CONFIG=VALUE...]
#                                  create a topic (replication factor 1) and
#                                  wait until every partition has a leader
#
# Environment: CHORUS_CACHE_DIR (default ~/.cache/chorus), CHORUS_TEST_KAFKA_VERSION
# (default: 3.9.1, falling back to 3.9.0), CHORUS_TIMEOUT_MULT, JAVA_HOME.
set -euo pipefail
# shellcheck source=tests/harness/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HARNESS_DIR="$CHORUS_REPO/tests/harness"
KAFKA_VERSIONS="${CHORUS_TEST_KAFKA_VERSION:-3.9.1 3.9.0}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

usage() {
	chorus_usage "${BASH_SOURCE[0]}" >&2
	exit 2
}

# ----------------------------------------------------------------- fetching --

# _kafka_libs: the libs directory of the first fully fetched version, if any.
_kafka_libs() {
	local v
	for v in $KAFKA_VERSIONS; do
		if [[ -f $CHORUS_CACHE_DIR/kafka-$v/libs/.complete ]]; then
			echo "$CHORUS_CACHE_DIR/kafka-$v/libs"
			return 0
		fi
	done
	return 1
}

cmd_fetch() {
	local libs v dest tmp
	if libs=$(_kafka_libs); then
		echo "$libs"
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || chorus_die "mvn not found; run scripts/deps.sh"
	mvn -v >/dev/null 2>&1 || chorus_die "mvn -v failed; is a JDK installed?"
	for v in $KAFKA_VERSIONS; do
		dest=$CHORUS_CACHE_DIR/kafka-$v
		tmp=$dest/libs.partial
		rm -rf -- "$tmp"
		mkdir -p "$tmp"
		chorus_log "kafka: fetching Apache Kafka $v broker jars into $dest/libs"
		# The Maven repository lives in the cache too, so deleting the cache
		# directory resets everything this harness downloaded.
		if (cd "$HARNESS_DIR/kafka" &&
			mvn -q -B -ntp -Dstyle.color=never \
				-Dmaven.repo.local="$CHORUS_CACHE_DIR/m2" \
				-Dkafka.version="$v" \
				dependency:copy-dependencies \
				-DincludeScope=runtime \
				-DoutputDirectory="$tmp" </dev/null 2>&1 |
				sed 's/\x1b\[[0-9;]*m//g' >&2) &&
			compgen -G "$tmp/kafka_2.13-$v.jar" >/dev/null; then
			touch "$tmp/.complete"
			rm -rf -- "$dest/libs"
			mv "$tmp" "$dest/libs"
			echo "$dest/libs"
			return 0
		fi
		chorus_log "kafka: could not fetch Kafka $v"
		rm -rf -- "$tmp"
		rmdir -- "$dest" 2>/dev/null || true
	done
	chorus_die "could not fetch any of the Kafka versions: $KAFKA_VERSIONS"
}

# ----------------------------------------------------------------- starting --

# _kafka_cluster_id: a random Kafka Uuid (16 bytes, URL-safe base64, no
# padding), as StorageTool random-uuid makes, without a JVM start. Kafka never
# hands out ids that start with '-' (they read as options), so neither do we.
_kafka_cluster_id() {
	chorus_python - <<'PY'
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
PY
}

_kafka_started() {
	grep -q 'Kafka Server started' "$1/logs/server.log"
}

_kafka_write_config() {
	local dir=$1 port=$2 cport=$3
	cat >"$dir/server.properties" <<EOF
# Written by tests/harness/kafka.sh: a single-node KRaft test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# One broker: every internal topic has one replica. Fewer partitions than
# the defaults (50) make the first group and the first transaction faster.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
# Tests start consuming at once rather than waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Auto-creation stays on (the default), but tests create their topics.
auto.create.topics.enable=true
delete.topic.enable=true
log.segment.bytes=67108864
EOF
	cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
}

cmd_start() {
	local dir=$1 libs attempt port cport pid rc cluster_id
	libs=$(cmd_fetch)
	command -v "$JAVA" >/dev/null 2>&1 || chorus_die "java not found; run scripts/deps.sh"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/pid ]] && chorus_pid_alive "$(cat "$dir/pid")"; then
		chorus_die "a broker from $dir is already running (pid $(cat "$dir/pid"))"
	fi
	if [[ ! -f $dir/.chorus-harness && -n $(ls -A "$dir") ]]; then
		chorus_die "$dir is not empty and was not made by the harness"
	fi
	touch "$dir/.chorus-harness"

	for attempt in 1 2 3; do
		rm -rf -- "$dir/data" "$dir/logs"
		mkdir -p "$dir/data" "$dir/logs"
		read -r port cport < <(chorus_free_ports 2)
		_kafka_write_config "$dir" "$port" "$cport"
		cluster_id=$(_kafka_cluster_id)
		# A short-lived tool: the client JIT and serial GC start fastest.
		if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
			-Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
			-cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
			-c "$dir/server.properties" --ignore-formatted \
			</dev/null >"$dir/logs/format.log" 2>&1; then
			chorus_tail "$dir/logs/format.log" 40
			chorus_die "kafka: formatting the storage in $dir/data failed"
		fi
		"$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
			-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Xshare:auto \
			-Dkafka.logs.dir="$dir/logs" -Dlog4j.configuration="file:$dir/log4j.properties" \
			-cp "$libs/*" kafka.Kafka "$dir/server.properties" \
			</dev/null >"$dir/logs/stdout.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/pid"
		rc=0
		chorus_wait_for_pid "$pid" "$(chorus_scale 60)" _kafka_started "$dir" || rc=$?
		if ((rc == 0)); then
			echo "127.0.0.1:$port" >"$dir/bootstrap"
			echo "127.0.0.1:$port"
			return 0
		fi
		chorus_stop_pid "$pid" "$dir/server.properties" 10
		if grep -qs 'Address already in use' "$dir/logs/server.log" "$dir/logs/stdout.log"; then
			chorus_log "kafka: port $port or $cport was taken before the broker bound it; retrying ($attempt/3)"
			continue
		fi
		chorus_tail "$dir/logs/stdout.log" 30
		chorus_tail "$dir/logs/server.log" 80
		chorus_die "kafka: the broker did not log 'Kafka Server started' ($([[ $rc == 1 ]] && echo "timed out after $(chorus_scale 60)s" || echo "the JVM exited"))"
	done
	chorus_die "kafka: could not bind free ports after 3 attempts"
}

cmd_stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/pid ]]; then
		chorus_stop_pid "$(cat "$dir/pid")" "$dir/server.properties" 30
	fi
	chorus_remove_harness_dir "$dir"
}

cmd_bootstrap() {
	[[ -f $1/bootstrap ]] || chorus_die "no broker started in $1"
	cat "$1/bootstrap"
}

# create-topic uses the test venv's AdminClient (milliseconds, where a JVM
# tool would take seconds; the broker jars do not include TopicCommand).
cmd_create_topic() {
	local dir=$1 name=$2 partitions=$3 bootstrap
	shift 3
	bootstrap=$(cmd_bootstrap "$dir")
	[[ $partitions =~ ^[1-9][0-9]*$ ]] || chorus_die "PARTITIONS must be a positive integer"
	"$CHORUS_TEST_VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null ||
		chorus_die "no confluent-kafka in $CHORUS_TEST_VENV; run scripts/deps.sh"
	"$CHORUS_TEST_VENV/bin/python" - "$bootstrap" "$name" "$partitions" "$(chorus_scale 30)" "$@" <<'PY'
import sys, time
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, name, partitions, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
config = dict(kv.split("=", 1) for kv in sys.argv[5:])
admin = AdminClient({"bootstrap.servers": bootstrap})
fut = admin.create_topics([NewTopic(name, partitions, 1, config=config)],
                          operation_timeout=timeout, request_timeout=timeout)[name]
try:
    fut.result(timeout=timeout)
except KafkaException as e:
    sys.exit(f"create-topic {name}: {e.args[0].str()}")
deadline = time.monotonic() + timeout
while True:
    md = admin.list_topics(name, timeout=timeout).topics.get(name)
    if md is not None and md.error is None and len(md.partitions) == partitions \
            and all(p.leader >= 0 for p in md.partitions.values()):
        break
    if time.monotonic() > deadline:
        sys.exit(f"create-topic {name}: partitions have no leader after {timeout}s")
    time.sleep(0.05)
PY
}

(($# >= 1)) || usage
case $1 in
fetch) cmd_fetch ;;
start | stop | bootstrap)
	(($# == 2)) || usage
	"cmd_$1" "$2"
	;;
create-topic)
	(($# >= 4)) || usage
	shift
	cmd_create_topic "$@"
	;;
*) usage ;;
esac
