#!/usr/bin/env bash
# Install checkov into its own virtual environment.
#
# checkov pins packaging<24 and networkx<2.7 (which break pytest>=8 and pre-commit's virtualenv)
# and ships bc-python-hcl2, which installs into the same `hcl2` package directory as
# python-hcl2 (removing one breaks the other). So it never goes into the project's venv.
#
# Usage: .ci/install-checkov.sh [VENV_DIR]   (default: .cache/checkov-venv)
# The tests find it there (or via $KERNELSHIM_CHECKOV, or `checkov` on PATH).
set -euo pipefail

venv="${1:-.cache/checkov-venv}"
python="${PYTHON:-python3}"  # only needs the venv module

if [ -x "$venv/bin/checkov" ]; then
  echo "install-checkov: $venv/bin/checkov already installed" >&2
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "checkov>=3.2,<4"
"$venv/bin/checkov" --version >&2
