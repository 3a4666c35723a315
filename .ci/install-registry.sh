#!/usr/bin/env bash
# Debian's docker-registry (the Docker Distribution registry, v2 HTTP API) for the `shim deploy`
# end-to-end test, which starts its own instance on a free localhost port with a temporary config.
# The package's system service is not used (and need not run). Idempotent.
set -euo pipefail

if command -v docker-registry >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-registry: docker-registry is missing; run as root (or install it) to enable the deploy test" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-registry: apt-get install docker-registry" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
