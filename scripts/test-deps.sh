#!/usr/bin/env bash
# Installs the Debian packages the tests need, only when something is
# missing, so a second run does nothing. Tests that need a server start it
# themselves on loopback.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc)   # -race needs cgo
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
