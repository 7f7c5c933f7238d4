#!/usr/bin/env bash
# Sets up everything (hack/setup.sh) and runs kube-node's main job on its embedded default: a real local
# control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) with kube-node's CRDs and a
# sample simulator NodeClass and NodeSet. Prints how to use kubectl with it; `kube-node dev down` (or
# `.venv/bin/kube-node dev down`) stops it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KUBE_NODE_VENV:-$repo/.venv}
bash "$repo/hack/setup.sh"
exec "$venv/bin/kube-node" dev up "$@"
