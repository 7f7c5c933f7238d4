#!/usr/bin/env bash
# Sets up everything (hack/setup.sh) and runs every check: generated files fresh, ruff, mypy --strict,
# import-linter layering, and the pytest suite against a real local control plane.
# Extra arguments go to pytest, e.g. `bash hack/test.sh -k nodeset -x`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KUBE_NODE_VENV:-$repo/.venv}
cd "$repo"
bash hack/setup.sh --with-autoscaler --with-kubelet

step() { printf '\n==> %s\n' "$*"; }

step "generated files are fresh"
bash hack/generate.sh --check
step "ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
step "mypy --strict"
"$venv/bin/mypy"
step "import-linter"
"$venv/bin/lint-imports"
step "pytest"
set +e
"$venv/bin/python" -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests" >&2
fi
exit $status
