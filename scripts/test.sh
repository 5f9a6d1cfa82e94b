#!/usr/bin/env bash
#
# The whole Chorus test suite, in one command (CI runs exactly this):
#
#   ./scripts/test.sh                 every stage, in order
#   ./scripts/test.sh unit asan       only the stages named (deps always runs,
#                                     and build runs when a named stage needs it)
#   ./scripts/test.sh --list          list the stages
#
# Stages:
#   deps         scripts/deps.sh: Debian packages, Python venv, Kafka jars
#   build        Release build in build/, warnings are errors
#   unit         ctest -L unit in build/
#   asan         Debug build with ASan+UBSan in build-asan/, and its unit tests
#   brokerless   ctest -L brokerless in build/ (librdkafka mock cluster; the
#                tests start their own redis-server: CHORUS_TEST_REDIS_SERVER)
#   demo         build/chorus demo: the README's main command, to its summary
#   docs         scripts/check-docs.sh build (when that script exists)
#   deploy       scripts/check-deploy.sh build: docker-compose config, the k8s
#                manifests against the bundled Kubernetes schemas, the systemd
#                unit, check-config on the shipped configurations (all offline)
#   format       clang-format --dry-run --Werror (fatal; CHORUS_STRICT_FORMAT=0
#                makes it a warning while iterating)
#   integration  a real Kafka broker and Redis from tests/harness, then
#                pytest tests/integration against build/chorus
#   faults       tests/faults/run.sh --quick: the fault-injection suite
#   bench        bench/run.sh --smoke: the benchmark scaled down, with its
#                correctness gate
#   fuzz         libFuzzer build (clang) in build-fuzz/, each fuzzer for
#                CHORUS_TEST_FUZZ_SECONDS (20) on tests/fuzz/corpus/<name>/
#
# Every stage runs even when an earlier one failed, unless it needs the
# failed one (or CHORUS_TEST_FAIL_FAST=1). The exit status is non-zero when any
# stage failed, and the summary names the stages.
#
# Environment: CHORUS_TIMEOUT_MULT (scales every timeout; default 1),
# CHORUS_TEST_JOBS (build and test parallelism; default nproc), CHORUS_CACHE_DIR
# (default ~/.cache/chorus), CHORUS_STRICT_FORMAT, CHORUS_TEST_FUZZ_SECONDS,
# CHORUS_TEST_FAIL_FAST, CHORUS_TEST_KEEP_DIRS=1 (keep the servers' directories).
# tests/lsan.supp, if present, holds LeakSanitizer suppressions for leaks in
# third-party libraries (asan and fuzz stages).
#
# Artifacts: build/integration-junit.xml; on an integration failure the
# servers' logs in build/test-logs/; fuzz logs and crash inputs in
# build-fuzz/logs/ and build-fuzz/artifacts/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/harness/common.sh
source tests/harness/common.sh

ALL_STAGES=(deps build unit asan brokerless demo docs deploy format integration faults bench fuzz)
# Exit codes a stage function uses besides 0 (pass) and others (fail).
SKIP=77
WARN=78

JOBS=${CHORUS_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
# Leaks inside third-party libraries that Chorus cannot fix may be listed in
# tests/lsan.supp (LeakSanitizer suppressions); the sanitizer stages use it.
# Avro-C puts a 4-byte refcount before each value, so the pointers inside
# are misaligned; LeakSanitizer must scan unaligned words to see them.
LSAN_SUPP=use_unaligned=1
[[ -f tests/lsan.supp ]] && LSAN_SUPP="$LSAN_SUPP:suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
FUZZ_SECONDS=${CHORUS_TEST_FUZZ_SECONDS:-20}
chorus_scale 1 >/dev/null || exit 2 # rejects a malformed CHORUS_TIMEOUT_MULT

describe() {
	case $1 in
	deps) echo "install dependencies (scripts/deps.sh)" ;;
	build) echo "Release build, warnings as errors (build/)" ;;
	unit) echo "unit tests (ctest -L unit)" ;;
	asan) echo "ASan+UBSan build and unit tests (build-asan/)" ;;
	brokerless) echo "broker-less tests: librdkafka mock cluster + redis-server (ctest -L brokerless)" ;;
	demo) echo "the README's demo command works: chorus demo, in process, with its summary" ;;
	docs) echo "docs check (scripts/check-docs.sh)" ;;
	deploy) echo "deployment files, offline (scripts/check-deploy.sh)" ;;
	format) echo "clang-format check" ;;
	integration) echo "integration tests against a real Kafka broker and Redis (pytest)" ;;
	faults) echo "fault-injection suite, quick mode (tests/faults/run.sh --quick)" ;;
	bench) echo "benchmark smoke test, scaled down (bench/run.sh --smoke)" ;;
	fuzz) echo "fuzz smoke test (libFuzzer, ${FUZZ_SECONDS}s per fuzzer)" ;;
	esac
}

# The stage whose success a stage needs, if any.
needs() {
	case $1 in
	unit | brokerless | demo | docs | deploy | faults) echo build ;;
	*) echo "" ;;
	esac
}

# ------------------------------------------------------------------- stages --

stage_deps() {
	scripts/deps.sh
}

stage_build() {
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCHORUS_WERROR=ON -DCHORUS_BUILD_TESTS=ON -DCHORUS_FAULT_HOOKS=ON
	cmake --build build -j "$JOBS"
}

stage_unit() {
	ctest --test-dir build -L unit --output-on-failure --no-tests=error \
		--timeout "$(chorus_scale 300)" -j "$JOBS"
}

stage_asan() {
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCHORUS_SANITIZE=ON -DCHORUS_WERROR=ON \
		-DCHORUS_BUILD_TESTS=ON
	cmake --build build-asan -j "$JOBS"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS=$LSAN_SUPP \
		ctest --test-dir build-asan -L unit --output-on-failure --no-tests=error \
		--timeout "$(chorus_scale 600)" -j "$JOBS"
}

stage_brokerless() {
	CHORUS_TEST_REDIS_SERVER=$(command -v redis-server)
	export CHORUS_TEST_REDIS_SERVER
	local listing
	listing=$(ctest --test-dir build -L brokerless -N)
	if [[ $listing == *"Total Tests: 0"* ]]; then
		echo "no tests labelled brokerless yet"
		return $SKIP
	fi
	# One at a time: the mock cluster's group timing is wall-clock based.
	ctest --test-dir build -L brokerless --output-on-failure --timeout "$(chorus_scale 600)" -j 1
	# Again under ASan+UBSan when the asan stage built it: this is where
	# the worker loop's memory handling is checked.
	if [[ -d build-asan ]] && ctest --test-dir build-asan -L brokerless -N >/dev/null 2>&1; then
		echo "-- again under ASan+UBSan (build-asan/)"
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			LSAN_OPTIONS=$LSAN_SUPP \
			ctest --test-dir build-asan -L brokerless --output-on-failure \
			--timeout "$(chorus_scale 900)" -j 1
	fi
}

# The main job of the README, on this build: it must run to its summary,
# forecasts and the alerts section included.
stage_demo() {
	local out
	out=$(build/chorus demo --days 120) || return 1
	printf '%s\n' "$out" | tail -n 12
	grep -q '^== Chorus demo ==' <<<"$out" && grep -q '^alerts (chorus.alerts' <<<"$out"
}

stage_docs() {
	if [[ ! -f scripts/check-docs.sh ]]; then
		echo "scripts/check-docs.sh does not exist yet"
		return $SKIP
	fi
	bash scripts/check-docs.sh build
}

stage_deploy() {
	bash scripts/check-deploy.sh build
}

stage_format() {
	local files=()
	mapfile -t files < <(find src include tests/unit tests/brokerless tests/fuzz bench/src \
		-type f \( -name '*.c' -o -name '*.h' \) -not -path '*/corpus*' 2>/dev/null | sort)
	if ((${#files[@]} == 0)); then
		echo "no C sources to check"
		return $SKIP
	fi
	local bad=() f
	echo "checking ${#files[@]} files with $(clang-format --version)"
	for f in "${files[@]}"; do
		clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
	done
	if ((${#bad[@]} == 0)); then
		return 0
	fi
	echo "${#bad[@]} files are not clang-formatted:"
	printf '  %s\n' "${bad[@]}"
	echo "fix with: clang-format -i ${bad[*]}"
	if [[ ${CHORUS_STRICT_FORMAT:-1} == 1 ]]; then
		clang-format --dry-run "${bad[@]}" 2>&1 | head -n 60
		return 1
	fi
	echo "(a warning because CHORUS_STRICT_FORMAT=0)"
	return $WARN
}

stage_integration() {
	local work
	work=$(mktemp -d "${TMPDIR:-/tmp}/chorus-it.XXXXXX")
	# Stop both servers whatever happens; on failure keep their logs.
	IT_WORK=$work
	trap _integration_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT

	CHORUS_TEST_REDIS_PORT=$(tests/harness/redis.sh start "$work/redis")
	local t0
	t0=$(chorus_now_ms)
	CHORUS_TEST_KAFKA_BOOTSTRAP=$(tests/harness/kafka.sh start "$work/kafka")
	echo "redis on 127.0.0.1:$CHORUS_TEST_REDIS_PORT; kafka on $CHORUS_TEST_KAFKA_BOOTSTRAP (started in $(($(chorus_now_ms) - t0)) ms)"
	CHORUS_TEST_KAFKA_DIR=$work/kafka
	export CHORUS_TEST_REDIS_PORT CHORUS_TEST_KAFKA_BOOTSTRAP CHORUS_TEST_KAFKA_DIR
	CHORUS_BIN=$PWD/build/chorus
	export CHORUS_BIN
	if [[ ${STAGE_RESULT[build]:-} == FAIL ]]; then
		export CHORUS_TEST_BIN_UNAVAILABLE="the build stage failed"
	fi

	mkdir -p build
	# --foreground keeps pytest in this stage's process group, so an
	# interrupt reaches the workers it started too.
	timeout --foreground -k 30 "$(chorus_scale 2400)" \
		"$CHORUS_TEST_VENV/bin/python" -m pytest -v -p no:cacheprovider -rfEs \
		--junitxml=build/integration-junit.xml tests/integration </dev/null
}

# The reduced fault suite against a real broker and Redis (its own servers).
stage_faults() {
	CHORUS_BIN=$PWD/build/chorus tests/faults/run.sh --quick </dev/null
}

# The whole benchmark, scaled down to seconds per measurement, so that it
# cannot rot: its own Release build (build-bench/), servers and correctness
# gate (a failed gate fails the stage). The figures are not judged here.
stage_bench() {
	bench/run.sh --smoke </dev/null
}

_integration_cleanup() {
	local rc=$? d
	if ((rc != 0)); then
		mkdir -p build/test-logs
		for d in redis kafka; do
			[[ -d $IT_WORK/$d ]] || continue
			find "$IT_WORK/$d" -maxdepth 2 -name '*.log' -exec cp {} build/test-logs/ \; 2>/dev/null
		done
		echo "server logs copied to build/test-logs/"
	fi
	tests/harness/kafka.sh stop "$IT_WORK/kafka" || true
	tests/harness/redis.sh stop "$IT_WORK/redis" || true
	rmdir "$IT_WORK" 2>/dev/null || true
	exit "$rc"
}

stage_fuzz() {
	local srcs=() names=() src name short bin seeds work log rc=0
	mapfile -t srcs < <(find tests/fuzz -maxdepth 1 -name 'fuzz_*.c' 2>/dev/null | sort)
	if ((${#srcs[@]} == 0)); then
		echo "no tests/fuzz/fuzz_*.c yet"
		return $SKIP
	fi
	if ! command -v clang >/dev/null 2>&1; then
		echo "clang is not installed"
		return $SKIP
	fi
	for src in "${srcs[@]}"; do
		names+=("$(basename "$src" .c)")
	done
	# Coverage instrumentation (fuzzer-no-link) for every object, not only the
	# fuzz targets, so libFuzzer is guided by the code under test.
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCHORUS_FUZZ=ON -DCHORUS_SANITIZE=ON -DCHORUS_BUILD_TESTS=OFF -DCHORUS_WERROR=OFF \
		-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link
	cmake --build build-fuzz -j "$JOBS" --target "${names[@]}"
	mkdir -p build-fuzz/artifacts
	for name in "${names[@]}"; do
		short=${name#fuzz_}
		bin=$(find build-fuzz -maxdepth 3 -type f -name "$name" -perm -u+x | head -n 1)
		[[ -n $bin ]] || {
			echo "$name: binary not found in build-fuzz/"
			rc=1
			continue
		}
		seeds=tests/fuzz/corpus/$short
		work=build-fuzz/corpus-run/$short
		mkdir -p "$work"
		local dirs=("$work")
		if [[ -d $seeds ]]; then
			dirs+=("$seeds")
		else
			echo "$name: no seed corpus at $seeds; starting from an empty one"
		fi
		echo "--- $name: ${FUZZ_SECONDS}s on ${dirs[*]} (log: build-fuzz/logs/$name.log)"
		mkdir -p build-fuzz/logs
		log=build-fuzz/logs/$name.log
		touch "$log.start"
		# New inputs go to the first directory (build-fuzz/), never into the
		# checked-in seeds. libFuzzer's progress lines go to the log only.
		if ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			LSAN_OPTIONS=$LSAN_SUPP \
			timeout --foreground -k 10 "$(chorus_scale $((FUZZ_SECONDS + 120)))" \
			"$bin" -max_total_time="$FUZZ_SECONDS" -timeout="$(chorus_scale 10)" -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name-" "${dirs[@]}" \
			</dev/null >"$log" 2>&1; then
			grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|Done )' "$log" || true
		else
			tail -n 80 "$log"
			echo "$name FAILED. Inputs that failed (run the binary on one to reproduce):"
			find build-fuzz/artifacts -name "$name-*" -newer "$log.start" -printf '  %p\n' 2>/dev/null || true
			rc=1
		fi
	done
	return $rc
}

# ------------------------------------------------------------------- runner --

declare -A STAGE_RESULT=() STAGE_SECS=()
STAGE_PID=

on_signal() {
	local sig=$1
	echo
	chorus_log "test.sh: got SIG$sig; stopping the running stage"
	if [[ -n $STAGE_PID ]]; then
		kill -TERM -- "-$STAGE_PID" 2>/dev/null
		wait "$STAGE_PID" 2>/dev/null
	fi
	if [[ $sig == INT ]]; then exit 130; fi
	exit 143
}

# Each stage runs as a background job in its own process group (set -m), so
# that an interrupt can stop the stage and everything it started, and the
# stage's own traps (the integration servers) still run.
set -m
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

run_stage() {
	local stage=$1 dep t0 rc
	dep=$(needs "$stage")
	printf '\n==================== [%s] %s ====================\n' "$stage" "$(describe "$stage")"
	if [[ -n $dep && ${STAGE_RESULT[$dep]:-} != PASS && ${STAGE_RESULT[$dep]:-} != WARN ]]; then
		echo "skipped: needs the $dep stage, which did not pass (${STAGE_RESULT[$dep]:-not run})"
		STAGE_RESULT[$stage]=SKIP
		STAGE_SECS[$stage]=0
		return
	fi
	t0=$(chorus_now_ms)
	(
		set -eo pipefail
		"stage_$stage"
	) </dev/null &
	STAGE_PID=$!
	wait "$STAGE_PID"
	rc=$?
	STAGE_PID=
	STAGE_SECS[$stage]=$((($(chorus_now_ms) - t0 + 500) / 1000))
	case $rc in
	0) STAGE_RESULT[$stage]=PASS ;;
	"$SKIP") STAGE_RESULT[$stage]=SKIP ;;
	"$WARN") STAGE_RESULT[$stage]=WARN ;;
	*) STAGE_RESULT[$stage]=FAIL ;;
	esac
	printf -- '---- [%s] %s in %ss\n' "$stage" "${STAGE_RESULT[$stage]}" "${STAGE_SECS[$stage]}"
}

selected=()
for arg in "$@"; do
	case $arg in
	-h | --help)
		chorus_usage "${BASH_SOURCE[0]}"
		exit 0
		;;
	--list)
		for s in "${ALL_STAGES[@]}"; do printf '%-12s %s\n' "$s" "$(describe "$s")"; done
		exit 0
		;;
	*)
		[[ " ${ALL_STAGES[*]} " == *" $arg "* ]] || chorus_die "unknown stage '$arg' (stages: ${ALL_STAGES[*]})"
		selected+=("$arg")
		;;
	esac
done
declare -A want=()
if ((${#selected[@]} == 0)); then
	for s in "${ALL_STAGES[@]}"; do want[$s]=1; done
else
	want[deps]=1
	for s in "${selected[@]}"; do
		want[$s]=1
		dep=$(needs "$s")
		[[ -n $dep ]] && want[$dep]=1
	done
fi

chorus_log "chorus test suite: CHORUS_TIMEOUT_MULT=$CHORUS_TIMEOUT_MULT jobs=$JOBS cache=$CHORUS_CACHE_DIR CI=${CI:-}"
suite_t0=$(chorus_now_ms)
ran=()
for s in "${ALL_STAGES[@]}"; do
	[[ -n ${want[$s]:-} ]] || continue
	run_stage "$s"
	ran+=("$s")
	if [[ ${STAGE_RESULT[$s]} == FAIL && (${CHORUS_TEST_FAIL_FAST:-0} == 1 || $s == deps) ]]; then
		break
	fi
done

failed=() warned=() skipped=()
printf '\n==================== summary ====================\n'
for s in "${ran[@]}"; do
	printf '  %-12s %-5s %5ss\n' "$s" "${STAGE_RESULT[$s]}" "${STAGE_SECS[$s]}"
	case ${STAGE_RESULT[$s]} in
	FAIL) failed+=("$s") ;;
	WARN) warned+=("$s") ;;
	SKIP) skipped+=("$s") ;;
	esac
done
total=$((($(chorus_now_ms) - suite_t0 + 500) / 1000))
extra="${warned[*]:+; warnings: ${warned[*]}}${skipped[*]:+; skipped: ${skipped[*]}}"
if ((${#failed[@]})); then
	echo "chorus test suite: FAILED in ${total}s; failed stages: ${failed[*]}$extra"
	exit 1
fi
echo "chorus test suite: PASSED in ${total}s ($((${#ran[@]} - ${#skipped[@]})) stages passed$extra)"
