#!/usr/bin/env bash
#
# Offline checks of the deployment files (nothing is started):
#   - docker-compose.yml: `docker-compose config -q` (Debian's docker-compose
#     1.29; no engine needed);
#   - deploy/k8s/*.yaml: validated against the Kubernetes OpenAPI schemas
#     bundled in the kubernetes-validate package (Python venv), strictly
#     (unknown fields are errors);
#   - deploy/systemd/chorus.service: `systemd-analyze verify`, pointed at
#     the built binary;
#   - deploy/chorus.conf and the ConfigMap's chorus.conf: `chorus check-config`.
#
# usage: scripts/check-deploy.sh [BUILD_DIR]   (default build; the checks that
#        need the binary are skipped, and said so, when it is absent)
# Environment: CHORUS_TEST_VENV (default $CHORUS_CACHE_DIR/venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/harness/common.sh
source tests/harness/common.sh

build=${1:-build}
venv=${CHORUS_TEST_VENV:-${CHORUS_CACHE_DIR:-$HOME/.cache/chorus}/venv}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chorus-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "--- docker-compose config -q"
command -v docker-compose >/dev/null || chorus_die "docker-compose not installed (scripts/deps.sh)"
docker-compose -f docker-compose.yml config -q
echo "docker-compose.yml is valid"

echo "--- kubernetes-validate --strict deploy/k8s"
[[ -x $venv/bin/kubernetes-validate ]] || chorus_die "no kubernetes-validate in $venv (scripts/deps.sh)"
manifests=()
for f in deploy/k8s/*.yaml; do
	[[ $(basename "$f") == kustomization.yaml ]] && continue # not a cluster resource
	manifests+=("$f")
done
"$venv/bin/kubernetes-validate" --strict "${manifests[@]}"

bin=$build/chorus
if [[ ! -x $bin ]]; then
	echo "--- $bin not built: systemd and check-config checks skipped"
	exit 0
fi
bin=$(cd "$(dirname "$bin")" && pwd)/chorus

echo "--- systemd-analyze verify deploy/systemd/chorus.service"
if command -v systemd-analyze >/dev/null; then
	sed "s|/usr/local/bin/chorus|$bin|g" deploy/systemd/chorus.service >"$tmp/chorus.service"
	out=$(systemd-analyze verify "$tmp/chorus.service" 2>&1) || {
		echo "$out"
		exit 1
	}
	# verify exits 0 on some warnings; none is acceptable.
	if [[ -n $out ]]; then
		echo "$out"
		exit 1
	fi
	echo "chorus.service is valid"
else
	echo "systemd-analyze not installed: skipped"
fi

echo "--- chorus check-config on the shipped configurations"
"$bin" check-config -c deploy/chorus.conf
"$venv/bin/python" - "$tmp/configmap.conf" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["chorus.conf"])
PY
"$bin" check-config -c "$tmp/configmap.conf"
