#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real registry, skopeo and umoci
# (the tests compare against them), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --locked --all-targets
