#!/usr/bin/env bash
# Install KServe's Python SDK (for its InferenceGRPCClient) into its own virtual environment.
#
# kserve pins protobuf<7, an older grpcio-tools and pulls fastapi/starlette/pandas/kubernetes:
# installed into the project's venv it would downgrade protobuf under the generated OIP stubs.
# The acceptance test (tests/server/test_kserve_client.py) runs the client, unmodified, in this
# venv as a subprocess against `shim serve`.
#
# Usage: .ci/install-kserve-client.sh [VENV_DIR]   (default: .cache/kserve-venv)
# The test finds it there (or via $KERNELSHIM_KSERVE_PYTHON).
set -euo pipefail

venv="${1:-.cache/kserve-venv}"
python="${PYTHON:-python3}"  # only needs the venv module

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import kserve" 2>/dev/null; then
  echo "install-kserve-client: $venv already has kserve" >&2
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "kserve>=0.14,<1"
"$venv/bin/python" -c "import kserve, importlib.metadata as m; print('kserve', m.version('kserve'))" >&2
