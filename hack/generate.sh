#!/usr/bin/env bash
# Regenerates every generated file in the repository; with --check, changes nothing and fails if any
# generated file is stale (CI runs that through hack/test.sh).
#   - charts/kube-node/crds/: copies of the CRDs shipped in nodeset_controller/api/crds/
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
check=false
[[ "${1:-}" == "--check" ]] && check=true

out=$repo
if $check; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

mkdir -p "$out/charts/kube-node/crds"
cp "$repo"/nodeset_controller/api/crds/*.yaml "$out/charts/kube-node/crds/"

if $check; then
  if ! diff -ru "$repo/charts/kube-node/crds" "$out/charts/kube-node/crds"; then
    echo "generated files are stale: run hack/generate.sh and commit the result" >&2
    exit 1
  fi
fi
