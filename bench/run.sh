#!/usr/bin/env bash
#
# The Chorus benchmark (issue 4), in one command, against a real Kafka broker
# and a real redis-server started on free loopback ports by tests/harness/:
#
#   bench/run.sh            the full benchmark: 2,001,000 input records over
#                           1,000 series x 4 models x 1 horizon (about an hour
#                           on 2 cores with the walking-skeleton functions)
#   bench/run.sh --smoke    the same measurements, scaled down (20 series,
#                           about 6,000 records; about 80 s): what CI runs
#
# In one run it builds Chorus (Release, build-bench/) and the benchmark's own
# tools (build-bench/tools/), preloads the input topics with the
# deterministic workload (bench/src/workload.c), then measures:
#   (a) Chorus catch-up: records/s from the earliest offset until the group's
#       committed offsets reach the end, worker CPU-us per record, peak RSS,
#       with Redis and broker CPU per record on the side; again with 2
#       workers; again with the default replay settings (c1d: see below);
#   (b) end-to-end latency p50/p99/p99.9 at 50 % of (a)'s rate, with the
#       default exactly-once transactions and with at_least_once delivery;
#   (c) the ceilings: consume-only (kcat), Redis running Chorus's own state
#       functions pipelined with no Kafka (bench_redis), produce-only (the
#       preload itself, timed after encoding);
#   (d) the Python peer (bench/peer/) on the same input;
#   the correctness gate ((a) against the 2-worker run, byte for byte; against
#   the peer, field by field; in --smoke also against a run with batches of
#   100), cost growth with the window length (30 / 720 / 43,200 points; 1,440
#   in --smoke), Redis memory per window, and the callgrind instruction counts
#   (bench/callgrind.sh). It prints one report and exits non-zero if the gate
#   fails. The main runs set join.max_wait_ms
#   = 600000: with the defaults, the output of a catch-up of this backlog
#   depends on timing (see MAIN_EXTRA below and docs/performance.md).
#
# Results: build-bench/results/<UTC stamp>[-smoke]/ (JSON per step, logs, and
# report.md, the printed report). BENCH_KEEP=1 keeps the servers' directories.
# BENCH_CHORUS_SRC=DIR benchmarks the Chorus sources in DIR instead of this
# checkout (e.g. a `git worktree` of another commit; built in DIR/build-bench),
# BENCH_CHORUS_COMMIT names it in the report.
# Environment (all optional): BENCH_SERIES, BENCH_DAYS, BENCH_LAT_SECONDS,
# BENCH_GROWTH ("label:resolution_ms:series:buckets:window_days ...": the same
# number of measured records, series x buckets x 5, at every resolution),
# BENCH_SKIP (space-separated steps to skip: compute latency c2 c1d gate peer
# growth callgrind perf; default "gate" in the full run, "" in --smoke),
# CHORUS_CACHE_DIR, CHORUS_TIMEOUT_MULT. With perf installed, (a) is profiled
# for a few seconds (perf record -F 499, no call graphs) in the worker and in
# redis-server: perf.c1.{worker,redis}.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/harness/common.sh
source tests/harness/common.sh

MODE=full
for arg in "$@"; do
	case $arg in
	--smoke) MODE=smoke ;;
	-h | --help)
		chorus_usage "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) chorus_die "run.sh: unknown option '$arg' (try --help)" ;;
	esac
done

if [[ $MODE == smoke ]]; then
	SERIES=${BENCH_SERIES:-20}
	DAYS=${BENCH_DAYS:-60}
	LAT_SECONDS=${BENCH_LAT_SECONDS:-6}
	LAT_WARMUP=1
	GROWTH=${BENCH_GROWTH:-"1d:86400000:5:4:30 1h:3600000:2:10:30 1m:60000:1:20:1"}
	CMP_SAMPLE=1
	PERF_DELAY=1
	PERF_SECONDS=1
else
	SERIES=${BENCH_SERIES:-1000}
	DAYS=${BENCH_DAYS:-400}
	LAT_SECONDS=${BENCH_LAT_SECONDS:-60}
	LAT_WARMUP=5
	GROWTH=${BENCH_GROWTH:-"1d:86400000:50:4:30 1h:3600000:10:20:30 1m:60000:2:100:30"}
	CMP_SAMPLE=10
	PERF_DELAY=20
	PERF_SECONDS=10
fi
MODELS=4
GATE_BATCH=100
# The reference run with small batches repeats (a) at a lower rate: part of
# the smoke run, opt-in for the full one (BENCH_SKIP= runs everything); the
# 2-worker run (a second run of the same input) and the peer gate both modes.
if [[ $MODE == smoke ]]; then
	SKIP=" ${BENCH_SKIP-} "
else
	SKIP=" ${BENCH_SKIP-gate} "
fi
skipped() { [[ $SKIP == *" $1 "* ]]; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SMOKE_FLAG=()
[[ $MODE == smoke ]] && SMOKE_FLAG=(--smoke)
RES=$PWD/build-bench/results/$STAMP${SMOKE_FLAG:+-smoke}
mkdir -p "$RES"
PY=$CHORUS_TEST_VENV/bin/python
BPY=$PWD/bench/py
SRC=$(cd "${BENCH_CHORUS_SRC:-.}" && pwd)
BUILD=$SRC/build-bench
TOOLS=$BUILD/tools
CHORUS=$BUILD/chorus
HTTP_KEY= # set once the binary is built: does it know http.listen?
T_ALL=$(chorus_now_ms)

step() { chorus_log "bench: $*"; }

# ------------------------------------------------------------------ setup --

if [[ ! -x $PY ]] || ! "$PY" -c 'import confluent_kafka, fastavro, redis' 2>/dev/null ||
	! tests/harness/kafka.sh fetch >/dev/null 2>&1 || ! command -v kcat >/dev/null; then
	step "preparing dependencies (scripts/deps.sh)"
	scripts/deps.sh
fi

step "building Chorus (Release) in $BUILD and the tools in $TOOLS"
{
	cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF -DCHORUS_WERROR=OFF
	cmake --build "$BUILD" -j "$(nproc)"
	cmake -S bench -B "$TOOLS" -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_DIR="$BUILD" \
		-DCHORUS_SOURCE_DIR="$SRC"
	cmake --build "$TOOLS" -j "$(nproc)"
} >"$RES/build.log" 2>&1 || {
	chorus_tail "$RES/build.log" 40
	chorus_die "build failed"
}
# (grep reads to the end: -q would stop early and fail the pipeline on SIGPIPE)
if "$CHORUS" config-reference | grep '`http.listen`' >/dev/null; then HTTP_KEY=1; fi
COMMIT=${BENCH_CHORUS_COMMIT:-$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
DIRTY=$({ git -C "$SRC" status --porcelain -- src include CMakeLists.txt cmake schemas 2>/dev/null || true; } | wc -l)
cat >"$RES/build.json" <<EOF
{"commit": "$COMMIT", "dirty_files": $DIRTY, "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "mode": "$MODE",
 "command": "bench/run.sh${SMOKE_FLAG:+ --smoke}", "cc": "$(cc --version | head -1)",
 "nproc": $(nproc), "series": $SERIES, "days": $DAYS, "models": $MODELS}
EOF

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-bench.XXXXXX")
cleanup() {
	local rc=$?
	set +e
	if ((rc != 0)); then
		find "$WORK" -maxdepth 3 -name '*.log' -exec cp {} "$RES/" \; 2>/dev/null
	fi
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		export CHORUS_TEST_KEEP_DIRS=1
	fi
	tests/harness/kafka.sh stop "$WORK/kafka" >/dev/null 2>&1
	tests/harness/redis.sh stop "$WORK/redis" >/dev/null 2>&1
	[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf -- "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

step "starting redis-server and a Kafka broker (tests/harness)"
RPORT=$(tests/harness/redis.sh start "$WORK/redis")
BOOT=$(tests/harness/kafka.sh start "$WORK/kafka")
BROKER_PID=$(cat "$WORK/kafka/pid")
rcli() { tests/harness/redis.sh cli "$WORK/redis" "$@"; }
topic() { tests/harness/kafka.sh create-topic "$WORK/kafka" "$@" >/dev/null; }
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# A worker configuration: conf NAME GROUP PREFIX PRED ACT FORECASTS [EXTRA LINES]
conf() {
	local name=$1 group=$2 prefix=$3 pred=$4 act=$5 out=$6
	shift 6
	{
		echo "# written by bench/run.sh"
		echo "kafka.bootstrap.servers = $BOOT"
		echo "kafka.group.id = $group"
		echo "topic.predictions = $pred"
		echo "topic.actuals = $act"
		echo "topic.forecasts = $out"
		echo "topic.dlq = $out.dlq"
		echo "redis.port = $RPORT"
		echo "redis.key_prefix = $prefix"
		# Workers run side by side: a free port each for the HTTP endpoints
		# (a binary from before the endpoints has no such key).
		if [[ -n $HTTP_KEY ]]; then echo "http.listen = 127.0.0.1:0"; fi
		# The forecast runs are compared with the peer, which has no
		# overfitting fallback; c1m turns monitoring on (a later line wins).
		echo "alerts.enabled = 0"
		for line in "$@"; do echo "$line"; done
	} >"$WORK/$name.conf"
	"$CHORUS" check-config -c "$WORK/$name.conf" >/dev/null
	echo "$WORK/$name.conf"
}
# chorus reads every CHORUS_* variable as configuration: keep ours out.
worker_env=(env)
while IFS='=' read -r name _; do
	[[ $name == CHORUS_* || $name == ENABLE_* || $name == ENSEMBLE_* || $name == CANARY_SYMBOLS ]] &&
		worker_env+=(-u "$name")
done < <(env)

step "topics"
for t in in.predictions in.actuals; do topic "$t" 4; done
for run in c1 c1d c1x c1m c2 gate peer; do
	topic "out.$run" 4
	topic "out.$run.dlq" 1
done
# Monitoring's outputs (c1m).
topic out.c1m.alerts 1
topic out.c1m.validation 1

# ----------------------------------------------------------- (c) produce --

N_EXPECT=$(((DAYS + 1) * SERIES + DAYS * SERIES * MODELS))
step "preload: $N_EXPECT records ($SERIES series x $MODELS models, $DAYS days) = produce-only ceiling"
"$TOOLS/bench_produce" --brokers "$BOOT" --pred-topic in.predictions --act-topic in.actuals \
	--series "$SERIES" --models "$MODELS" --from 0 --to "$DAYS" --order natural >"$RES/preload.json" \
	2>"$RES/preload.log"
[[ $(jget "$RES/preload.json" 'd["records"]') == "$N_EXPECT" ]] || chorus_die "preload wrote an unexpected count"

# ----------------------------------------------------------- (c) consume --

step "consume-only ceiling (kcat, both topics at once)"
t0=$(chorus_now_ms)
kcat -C -b "$BOOT" -t in.predictions -o beginning -e -q -f '.' 2>/dev/null | wc -c >"$WORK/kcat.p" &
kp=$!
kcat -C -b "$BOOT" -t in.actuals -o beginning -e -q -f '.' 2>/dev/null | wc -c >"$WORK/kcat.a" &
ka=$!
wait "$kp" "$ka"
t1=$(chorus_now_ms)
kn=$(($(cat "$WORK/kcat.p") + $(cat "$WORK/kcat.a")))
awk -v n="$kn" -v ms=$((t1 - t0)) 'BEGIN { printf "{\"records\": %d, \"seconds\": %.3f, \"records_per_s\": %.1f}\n", n, ms / 1000, n * 1000 / ms }' >"$RES/consume.json"
((kn == N_EXPECT)) || chorus_die "kcat read $kn records, expected $N_EXPECT"

# ------------------------------------------------------------- (c) Redis --

step "Redis state-function ceiling (bench_redis: Chorus's state module, pipelines of 1000, no Kafka)"
rcli flushall >/dev/null
r0=$(rcli info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}')
"$TOOLS/bench_redis" --port "$RPORT" --prefix ceil --series "$SERIES" --models "$MODELS" --to "$DAYS" \
	--pipeline 1000 >"$WORK/redis.json"
r1=$(rcli info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}')
"$PY" - "$WORK/redis.json" "$r0" "$r1" >"$RES/redis_ceiling.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["redis_cpu_us_per_call"] = round((float(sys.argv[3]) - float(sys.argv[2])) * 1e6 / d["calls"], 2)
print(json.dumps(d))
PY
if ! skipped compute; then
	step "Redis state + compute (parse + forecast_build), no Kafka, on the first eighth"
	rcli flushall >/dev/null
	"$TOOLS/bench_redis" --port "$RPORT" --prefix ceilc --series "$SERIES" --models "$MODELS" --to "$DAYS" \
		--pipeline 1000 --compute 1 --limit $((N_EXPECT / 8)) >"$RES/redis_compute.json"
fi
rcli flushall >/dev/null

# ----------------------------------------------------- (a) Chorus, 1 worker --

# Replay settings of the main runs. The default state.retention_days is
# safe for a catch-up longer than the retention: trimming follows the
# series' watermark, the older of its actuals and predictions (issue 9;
# before, the main runs needed retention 1000 because the actuals topic is
# read long before the predictions). What remains is the hold's wall-clock
# bound: at the start the consumer can hand over tens of thousands of
# predictions before the first actuals; they are held, and with the default
# join.max_wait_ms (5 s) they are forced out with whatever actuals have been
# applied by then. So the main runs set join.max_wait_ms = 600000; c1d runs
# with every default and shows the effect (docs/performance.md).
MAIN_EXTRA=("join.max_wait_ms = 600000")

catchup() { # catchup LABEL GROUP WORKERS [--perf-dir DIR] CMD...
	local label=$1 group=$2 workers=$3 perf=()
	shift 3
	if [[ $1 == --perf-dir ]]; then
		perf=(--perf-dir "$2" --redis-pid "$(cat "$WORK/redis/pid")" --perf-delay "$PERF_DELAY"
			--perf-seconds "$PERF_SECONDS")
		shift 2
	fi
	"$PY" "$BPY/catchup.py" --bootstrap "$BOOT" --group "$group" --topics in.predictions,in.actuals \
		--redis-port "$RPORT" --broker-pid "$BROKER_PID" --workers "$workers" --expect "$N_EXPECT" "${perf[@]}" \
		--timeout "$(chorus_scale 7200)" --log "$WORK/$label" --label "$label" -- "$@" >"$RES/$label.json" ||
		{
			chorus_tail "$WORK/$label.0.log" 40
			chorus_die "$label: catch-up failed: $(jget "$RES/$label.json" 'd["error"]' 2>/dev/null)"
		}
}

step "(a) Chorus catch-up, 1 worker"
C1=$(conf c1 g.c1 c1 in.predictions in.actuals out.c1 "${MAIN_EXTRA[@]}")
perf_args=()
if ! skipped perf && command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
	perf_args=(--perf-dir "$RES")
fi
catchup c1 g.c1 1 "${perf_args[@]}" "${worker_env[@]}" "$CHORUS" run -c "$C1"
"$PY" "$BPY/mem.py" --redis-port "$RPORT" --prefix c1 --series "$SERIES" --models "$MODELS" >"$RES/memory.json"
C1_RATE=$(jget "$RES/c1.json" 'd["records_per_s"]')

# -------------------------------------------------------------- (b) latency --

if ! skipped latency; then
	LAT_RATE=$("$PY" -c "print(round($C1_RATE / 2))")
	PER_BUCKET=$((SERIES * (1 + MODELS)))
	LAT_BUCKETS=$("$PY" -c "import math; print(max(2, math.ceil($LAT_RATE * $LAT_SECONDS / $PER_BUCKET)))")
	from=$((DAYS + 1))
	for variant in default alo; do
		extra=("${MAIN_EXTRA[@]}")
		[[ $variant == alo ]] && extra+=("processing.guarantee = at_least_once")
		step "(b) latency at $LAT_RATE records/s (50 % of (a)), $LAT_BUCKETS days, config: $variant"
		for t in lat.$variant.predictions lat.$variant.actuals; do topic "$t" 4; done
		topic "lat.$variant.forecasts" 4 message.timestamp.type=LogAppendTime
		topic "lat.$variant.forecasts.dlq" 1
		# The state of (a) continues: full windows, fresh groups for the new days.
		LC=$(conf "lat.$variant" "g.lat.$variant" c1 "lat.$variant.predictions" "lat.$variant.actuals" \
			"lat.$variant.forecasts" "${extra[@]}")
		"$PY" "$BPY/latency.py" --bootstrap "$BOOT" --group "g.lat.$variant" \
			--topics "lat.$variant.predictions,lat.$variant.actuals" --forecasts "lat.$variant.forecasts" \
			--ts-file "$WORK/lat.$variant.ts" --warmup-s "$LAT_WARMUP" --log "$WORK/lat.$variant" \
			--worker "${worker_env[*]} $CHORUS run -c $LC" -- \
			"$TOOLS/bench_produce" --brokers "$BOOT" --pred-topic "lat.$variant.predictions" \
			--act-topic "lat.$variant.actuals" --series "$SERIES" --models "$MODELS" --order slices \
			--from "$from" --to $((from + LAT_BUCKETS)) --rate "$LAT_RATE" --linger-ms 0 \
			--ts-file "$WORK/lat.$variant.ts" >"$RES/latency_$variant.json" ||
			chorus_die "latency ($variant) failed"
		from=$((from + LAT_BUCKETS))
	done
fi
rcli flushall >/dev/null

# ---------------------------------------------------- (a) Chorus, 2 workers --

if ! skipped c2; then
	step "(a) Chorus catch-up, 2 workers (same group)"
	C2=$(conf c2 g.c2 c2 in.predictions in.actuals out.c2 "${MAIN_EXTRA[@]}")
	catchup c2 g.c2 2 "${worker_env[@]}" "$CHORUS" run -c "$C2"
	rcli flushall >/dev/null
	"$PY" "$BPY/compare.py" bytes --bootstrap "$BOOT" out.c1 out.c2 >"$RES/gate_c2.json" || true
fi

# ------------------------------------------- (a) Chorus, default retention --

if ! skipped c1d; then
	step "(a) Chorus catch-up, 1 worker, default state.retention_days and join.max_wait_ms"
	CD=$(conf c1d g.c1d c1d in.predictions in.actuals out.c1d)
	catchup c1d g.c1d 1 "${worker_env[@]}" "$CHORUS" run -c "$CD"
	rcli flushall >/dev/null
	"$PY" "$BPY/compare.py" fields --bootstrap "$BOOT" --sample "$CMP_SAMPLE" out.c1 out.c1d \
		>"$RES/retention_effect.json" || true
fi

# ------------------------------------------- (a) Chorus, monitoring on --

# The cost of monitoring (issue 10): the same catch-up with every alert rule,
# the validation windows and the global call on; the report gives its rate
# as a share of (a)'s, measured in the same run (target: at least 70 %).
if ! skipped c1m; then
	# Its reference: the same settings with monitoring off, run just before
	# (not (a) itself, which may run under perf).
	step "(a) Chorus catch-up, 1 worker, monitoring off (reference of the next step)"
	CX=$(conf c1x g.c1x c1x in.predictions in.actuals out.c1x "${MAIN_EXTRA[@]}")
	catchup c1x g.c1x 1 "${worker_env[@]}" "$CHORUS" run -c "$CX"
	rcli flushall >/dev/null
	step "(a) Chorus catch-up, 1 worker, monitoring on (alerts.enabled = 1)"
	CM=$(conf c1m g.c1m c1m in.predictions in.actuals out.c1m "${MAIN_EXTRA[@]}" "alerts.enabled = 1" \
		"topic.alerts = out.c1m.alerts" "topic.validation = out.c1m.validation")
	catchup c1m g.c1m 1 "${worker_env[@]}" "$CHORUS" run -c "$CM"
	rcli flushall >/dev/null
fi

# ------------------------------------------------------------------ gate --

if ! skipped gate; then
	step "gate: reference run (1 worker, batch.max_records = $GATE_BATCH)"
	CG=$(conf gate g.gate gate in.predictions in.actuals out.gate "${MAIN_EXTRA[@]}" \
		"batch.max_records = $GATE_BATCH")
	catchup gate g.gate 1 "${worker_env[@]}" "$CHORUS" run -c "$CG"
	rcli flushall >/dev/null
	"$PY" "$BPY/compare.py" bytes --bootstrap "$BOOT" out.c1 out.gate >"$RES/gate_ref.json" || true
fi

# ------------------------------------------------------------------ peer --

if ! skipped peer; then
	step "(d) the Python peer (bench/peer/peer.py), 1 process"
	catchup peer g.peer 1 "$PY" "$PWD/bench/peer/peer.py" --bootstrap "$BOOT" --group g.peer \
		--predictions in.predictions --actuals in.actuals --forecasts out.peer --redis-port "$RPORT" \
		--prefix peer --retention-days 1000 --join-max-wait-ms 600000
	rcli flushall >/dev/null
	"$PY" "$BPY/compare.py" fields --bootstrap "$BOOT" --sample "$CMP_SAMPLE" out.c1 out.peer \
		>"$RES/gate_peer.json" || true
fi

# ----------------------------------------------------------- cost growth --

if ! skipped growth; then
	for spec in $GROWTH; do
		IFS=: read -r label res series buckets wdays <<<"$spec"
		step "cost growth: $label resolution, $wdays-day window, $series series, $buckets buckets measured"
		"$PY" "$BPY/growth.py" --bootstrap "$BOOT" --kafka-dir "$WORK/kafka" --redis-port "$RPORT" \
			--chorus "$CHORUS" --tools "$TOOLS" --label "$label" --resolution-ms "$res" \
			--window-days "$wdays" --series "$series" --measure "$buckets" --workdir "$WORK" \
			--timeout "$(chorus_scale 3600)" >"$RES/growth_$label.json" || chorus_die "cost growth $label failed"
	done
fi

# -------------------------------------------------------------- callgrind --

if ! skipped callgrind; then
	if command -v valgrind >/dev/null; then
		step "callgrind (bench/callgrind.sh)"
		BENCH_CHORUS_SRC=$SRC bench/callgrind.sh "${SMOKE_FLAG[@]}" --no-build --out "$RES/callgrind" \
			>"$RES/callgrind.json"
	else
		step "valgrind is not installed: no instruction counts"
	fi
fi

echo "{\"seconds\": $((($(chorus_now_ms) - T_ALL) / 1000))}" >"$RES/total.json"
"$PY" "$BPY/report.py" "$RES" | tee "$RES/report.md"
step "results in $RES"
"$PY" "$BPY/report.py" --gate "$RES"
