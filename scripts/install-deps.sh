#!/usr/bin/env bash
# Installs what regfsck's tests and benchmarks need on a fresh Debian machine: the real registry
# (docker-registry 2.8), skopeo and umoci, and the Rust components for fmt and clippy.
set -euo pipefail
missing=()
for cmd in docker-registry skopeo umoci; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
