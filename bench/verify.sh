#!/usr/bin/env bash
# Benchmark of `regfsck verify`, warm page cache, in one run:
#   A: >= 2 GiB of blobs: regfsck vs sha256sum (one process per core) vs the machine's limit
#      (nproc x single-core SHA-256 speed from `openssl speed -evp sha256`);
#   B: 100,000 small blobs: blobs/s of regfsck (with and without hashing) and sha256sum.
# Layouts are generated once into $BENCH_DIR (default target/bench) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BENCH_DIR:-target/bench}"
mkdir -p "$dir"
cargo build --release --locked --quiet
bin=target/release/regfsck
cores="$(nproc)"

gen() { # gen NAME ARGS...
  local name="$1"; shift
  local stamp="$dir/$name.args"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$*" ]; then
    rm -rf "${dir:?}/$name"
    echo "generating $name: $*" >&2
    python3 bench/gen_layout.py "$dir/$name" "$@"
    echo "$*" > "$stamp"
  fi
}
# Seconds taken by a command (second of two runs: the first warms the page cache).
timed() {
  "$@" >/dev/null 2>&1 || true
  local t0 t1
  t0="$(date +%s.%N)"
  "$@" >/dev/null 2>&1 || true
  t1="$(date +%s.%N)"
  echo "$t1 - $t0" | bc -l
}
sha_all() { find "$1/docker/registry/v2/blobs" -name data -print0 | xargs -0 -P "$cores" -n 64 sha256sum; }

gen big --repos 16 --images-per-repo 8 --layers 4 --layer-size 4194304 --big-layers 4 --big-size 67108864
gen small --repos 100 --images-per-repo 10 --layers 2 --layer-size 2048 --small-blobs 96000 --small-size 2048
"$bin" verify -q "$dir/big" >/dev/null || { echo "generated layout does not verify clean" >&2; exit 1; }

bytes="$(du -sb --apparent-size "$dir/big/docker/registry/v2/blobs" | cut -f1)"
nblobs="$(find "$dir/small/docker/registry/v2/blobs" -name data | wc -l)"

t_reg="$(timed "$bin" verify -q "$dir/big")"
t_sum="$(timed sha_all "$dir/big")"
# Single-core SHA-256 speed: the largest block size column of `openssl speed`, in 1000s of B/s.
single_k="$(openssl speed -evp sha256 -seconds 2 2>/dev/null | awk '/^sha256/ || /^SHA256/ {v=$NF} END {sub(/k$/,"",v); print v}')"
limit="$(echo "$single_k * 1000 * $cores" | bc -l)"

s_reg="$(timed "$bin" verify -q "$dir/small")"
s_nc="$(timed "$bin" verify -q --no-content "$dir/small")"
s_sum="$(timed sha_all "$dir/small")"

mbs() { echo "scale=0; $1 / $2 / 1000000" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
r_reg="$(echo "$bytes / $t_reg" | bc -l)"
r_sum="$(echo "$bytes / $t_sum" | bc -l)"

echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "A: $(echo "scale=2; $bytes / 1073741824" | bc -l) GiB in $(find "$dir/big/docker/registry/v2/blobs" -name data | wc -l) blobs, warm cache"
echo "B: $nblobs small blobs"
echo
echo "| measurement | figure |"
echo "| --- | --- |"
echo "| regfsck verify, ${bytes} B | $(printf %.2f "$t_reg") s, $(mbs "$bytes" "$t_reg") MB/s |"
echo "| sha256sum, one process per core | $(printf %.2f "$t_sum") s, $(mbs "$bytes" "$t_sum") MB/s |"
echo "| limit: $cores x openssl sha256 single core | $(echo "scale=0; $limit / 1000000" | bc -l) MB/s |"
echo "| regfsck / sha256sum | $(ratio "$r_reg" "$r_sum")x |"
echo "| regfsck / limit | $(ratio "$r_reg" "$limit") |"
echo "| regfsck verify, $nblobs small blobs | $(printf %.2f "$s_reg") s, $(echo "scale=0; $nblobs / $s_reg" | bc -l) blobs/s |"
echo "| regfsck verify --no-content, same | $(printf %.2f "$s_nc") s, $(echo "scale=0; $nblobs / $s_nc" | bc -l) blobs/s |"
echo "| sha256sum per core, same | $(printf %.2f "$s_sum") s, $(echo "scale=0; $nblobs / $s_sum" | bc -l) blobs/s |"
