#!/usr/bin/env bash
#
# The Chorus demo in one command: no external Kafka, a Redis it starts itself,
# generated data, a readable summary.
#
#   ./scripts/demo.sh [ARGS...]     ARGS go to `chorus demo`
#
# Installs only what building chorus and running Redis need (no Kafka broker,
# Maven or Python venv), builds build/ in Release if it is missing or stale,
# then runs build/chorus demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh --build-only >&2

if [[ ! -f build/CMakeCache.txt ]]; then
	# The demo needs neither the test libraries nor -Werror.
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF -DCHORUS_WERROR=OFF >&2
fi
# An up-to-date build is a no-op; otherwise only chorus itself is built.
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target chorus >&2

exec build/chorus demo "$@"
