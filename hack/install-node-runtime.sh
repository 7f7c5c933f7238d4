#!/usr/bin/env bash
# Installs what the `local` machine provider's real kubelets need on this host, when it is missing: Debian's
# containerd, runc, containernetworking-plugins, iptables, conntrack and busybox-static (apt-get, as root).
# The kubelet itself is built by `hack/setup.sh --with-kubelet`. The real-node tests do the same by themselves.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${KUBE_NODE_VENV:-$repo/.venv}/bin/python
exec "$python" - <<'PY'
import sys

from nodeset_controller.providers import HostError, install_runtime

try:
    installed = install_runtime()
except HostError as error:
    sys.exit(f"install-node-runtime: {error}")
print(f"installed {', '.join(installed)}" if installed else "the node runtime is installed")
PY
