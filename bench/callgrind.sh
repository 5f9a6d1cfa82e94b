#!/usr/bin/env bash
#
# Instruction counts of Chorus's core on a fixed in-process workload
# (bench/src/callgrind_workload.c: encode a Prediction, decode it, build the
# group's forecast - scores, weights, z-guard - and encode the
# EnsembleForecast; no I/O), under valgrind --tool=callgrind:
#
#   bench/callgrind.sh [--smoke] [--no-build] [--out DIR]
#
# Only bench_workload_run() is counted (--toggle-collect), so the figure is
# instructions per record of Chorus's own code path, repeatable to the
# instruction on any machine with the same binaries. It runs at 30 points per
# window (the daily case, the headline figure) and, to show how the compute
# grows with the window, at 720 and 43,200 points. Prints one JSON object;
# DIR (default build-bench/callgrind) keeps callgrind.out.<points> and
# callgrind_annotate's flat (exclusive) and inclusive listings.
# BENCH_CHORUS_SRC=DIR measures the Chorus sources in DIR (see bench/run.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/harness/common.sh
source tests/harness/common.sh

MODE=full BUILD=1 OUT=$PWD/build-bench/callgrind
while (($#)); do
	case $1 in
	--smoke) MODE=smoke ;;
	--no-build) BUILD=0 ;;
	--out)
		OUT=$2
		shift
		;;
	-h | --help)
		chorus_usage "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) chorus_die "callgrind.sh: unknown option '$1'" ;;
	esac
	shift
done
command -v valgrind >/dev/null || chorus_die "valgrind is not installed (apt-get install valgrind)"
SRC=$(cd "${BENCH_CHORUS_SRC:-.}" && pwd)
if ((BUILD)); then
	{
		cmake -S "$SRC" -B "$SRC/build-bench" -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF \
			-DCHORUS_WERROR=OFF
		cmake --build "$SRC/build-bench" -j "$(nproc)" --target chorus_core
		cmake -S bench -B "$SRC/build-bench/tools" -DCMAKE_BUILD_TYPE=Release \
			-DCHORUS_BUILD_DIR="$SRC/build-bench" -DCHORUS_SOURCE_DIR="$SRC"
		cmake --build "$SRC/build-bench/tools" -j "$(nproc)" --target callgrind_workload
	} >&2
fi
BIN=$SRC/build-bench/tools/callgrind_workload
mkdir -p "$OUT"

# points:records
if [[ $MODE == smoke ]]; then
	RUNS="30:2000 720:200 43200:4"
else
	RUNS="30:20000 720:2000 43200:40"
fi

results=()
for run in $RUNS; do
	points=${run%%:*} records=${run##*:}
	native=$("$BIN" --records "$records" --points "$points")
	valgrind --tool=callgrind --toggle-collect=bench_workload_run \
		--callgrind-out-file="$OUT/callgrind.out.$points" \
		"$BIN" --records "$records" --points "$points" >/dev/null 2>"$OUT/valgrind.$points.log"
	ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/callgrind.out.$points")
	callgrind_annotate "$OUT/callgrind.out.$points" >"$OUT/annotate.$points.txt" 2>/dev/null
	callgrind_annotate --inclusive=yes "$OUT/callgrind.out.$points" >"$OUT/annotate-inclusive.$points.txt" 2>/dev/null
	results+=("{\"points\": $points, \"records\": $records, \"ir\": $ir, \"ir_per_record\": $((ir / records)), \"native\": $native}")
done

# The hottest functions of the headline run (exclusive, then inclusive).
top() {
	awk '/^-+$/ {sec++} sec >= 5 && /[0-9] \(/ {
		ir = $1; gsub(",", "", ir)
		pct = ""; if (match($0, /\( *[0-9.]+%\)/)) { pct = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", pct) }
		if (pct == "100.0%") next
		fn = $0; sub(/^[^)]*\)  */, "", fn); sub(/ \[.*$/, "", fn); sub(/^.*:/, "", fn)
		gsub(/"/, "", fn)
		printf "%s{\"function\": \"%s\", \"ir_per_record\": %d, \"percent\": \"%s\"}", (n++ ? ", " : ""), fn, ir / rec, pct
		if (n >= 15) exit }' rec="$2" "$1"
}
first=${RUNS%% *}
echo "{\"runs\": [$(IFS=,; echo "${results[*]}")], \"top_exclusive\": [$(top "$OUT/annotate.${first%%:*}.txt" "${first##*:}")], \"top_inclusive\": [$(top "$OUT/annotate-inclusive.${first%%:*}.txt" "${first##*:}")], \"valgrind\": \"$(valgrind --version)\"}"
