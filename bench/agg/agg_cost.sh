#!/usr/bin/env bash
#
# Per-record cost of the state functions at 30, 720 and 43,200 points per
# window (issue #4). Builds Chorus (Release) in build-agg-bench/, compiles
# bench/agg/agg_cost.c against its core library, and runs it against a
# private redis-server (from $CHORUS_TEST_REDIS_SERVER or PATH).
#
#   bench/agg/agg_cost.sh [agg_cost options]   e.g. --calls 5000 --models 4
#   bench/agg/agg_cost.sh --compare-ref REF     also runs the chorus.lua of git REF
#
# See the header of agg_cost.c for what is measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${CHORUS_AGG_BUILD_DIR:-build-agg-bench}

compare_ref=
args=()
while (($#)); do
	case $1 in
	--compare-ref) compare_ref=$2; shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF -DCHORUS_WERROR=OFF >/dev/null
# Warnings are not errors here: this measures, the test suite judges.
cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target chorus_core >/dev/null
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -Iinclude bench/agg/agg_cost.c \
	"$BUILD/libchorus_core.a" $(pkg-config --libs hiredis avro-c rdkafka jansson) -lm \
	-o "$BUILD/agg_cost"

echo "# chorus.lua of the working tree"
"$BUILD/agg_cost" "${args[@]}"
if [[ -n $compare_ref ]]; then
	lua=$(mktemp)
	trap 'rm -f "$lua"' EXIT
	{ git show "$compare_ref:src/state/chorus.lua" 2>/dev/null || for p in $(git ls-tree --name-only "$compare_ref" src/state/lua/ | sort); do git show "$compare_ref:$p"; done; } >"$lua"
	echo "# chorus.lua of $compare_ref"
	"$BUILD/agg_cost" --lua "$lua" "${args[@]}"
fi
