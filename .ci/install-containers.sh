#!/usr/bin/env bash
# System tools for the container tests: podman (the engine, served to the docker SDK through its
# Docker-compatible socket), runc (crun fails on this machine's cgroup setup) and debootstrap (no
# registry is reachable, so the tests build their Debian base root themselves).
# Idempotent: returns at once when every tool is already installed.
set -euo pipefail

needed=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || needed+=("$tool")
done
if [ "${#needed[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-containers: missing ${needed[*]}; run as root (or install them) to enable the container tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-containers: apt-get install ${needed[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
