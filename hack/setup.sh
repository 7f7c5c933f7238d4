#!/usr/bin/env bash
# Sets up everything kube-node needs on a fresh machine, idempotently:
#   - a virtualenv in .venv (override with KUBE_NODE_VENV) with kube-node installed editable, test and lint extras;
#   - the pinned control-plane binaries and helm, built once into ~/.cache/kube-node (hack/build-tools.sh).
# Arguments are passed to hack/build-tools.sh (e.g. --with-autoscaler, --with-kubelet).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KUBE_NODE_VENV:-$repo/.venv}
python=${PYTHON:-python3}

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
  log "creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.kube-node-installed"
if [[ ! -f "$stamp" || "$repo/pyproject.toml" -nt "$stamp" ]]; then
  log "installing kube-node and its test dependencies into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test,lint]"
  touch "$stamp"
fi
bash "$repo/hack/build-tools.sh" "$@" >/dev/null
log "ready: $venv/bin/kube-node"
