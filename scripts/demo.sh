#!/usr/bin/env bash
# Runs `regfsck verify` on the sample layout written by the real registry (testdata/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
demo=target/demo
rm -rf "$demo" && mkdir -p "$demo"
tar -xf testdata/registries/sample.tar -C "$demo"
echo "\$ regfsck verify --verbose $demo" >&2
status=0
target/release/regfsck verify --verbose "$demo" || status=$?
echo "(exit status $status)" >&2
exit "$status"
