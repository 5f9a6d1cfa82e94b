#!/bin/sh
# Fails when docs/configuration.md is not exactly what the built binary's
# `chorus config-reference` prints, i.e. when the config table changed and
# the generated reference was not regenerated (STYLE.md habit 8).
#
# usage: scripts/check-docs.sh BUILD_DIR
set -eu

if [ $# -ne 1 ]; then
        echo "usage: $0 BUILD_DIR" >&2
        exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1/chorus
doc=$root/docs/configuration.md

if [ ! -x "$bin" ]; then
        echo "check-docs: $bin not found; build the chorus binary first" >&2
        exit 2
fi
tmp=$(mktemp "${TMPDIR:-/tmp}/chorus-configuration.XXXXXX")
trap 'rm -f "$tmp"' EXIT INT TERM

"$bin" config-reference >"$tmp"
if ! diff -u "$doc" "$tmp"; then
        echo "check-docs: docs/configuration.md is stale (the diff above is what the" >&2
        echo "config table generates now). Regenerate it with:" >&2
        echo "  $bin config-reference > docs/configuration.md" >&2
        exit 1
fi
echo "check-docs: docs/configuration.md is up to date"
