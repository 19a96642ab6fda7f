#!/usr/bin/env bash
# Benchmark of `regfsck gc --dry-run` against the registry's own
# `docker-registry garbage-collect --dry-run` on the same layout, warm cache, best of 3, in one run; plus
# peak memory, and how regfsck's time grows from 60k to 600k blobs (BENCH_GC_BIG=1). Cold cache
# too (the page, dentry and inode caches dropped before each run: echo 3 >
# /proc/sys/vm/drop_caches, which needs root; skipped otherwise), best of 2.
#
#   bash bench/gc.sh                 # 60,000 blobs, 14,000 manifests, 500 repositories
#   BENCH_GC_BIG=1 bash bench/gc.sh  # also 600,000 blobs (takes a while to generate), warm and cold
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

gen gc60k --repos 500 --images-per-repo 28 --layers 2 --layer-size 512 --small-blobs 4000 --small-size 512
cfg="$(config gc60k)"
read -r t_reg m_reg < <(run docker-registry garbage-collect --dry-run "$cfg")
read -r t_us m_us < <(run "$bin" gc --dry-run --min-age 0 -q "$dir/gc60k")
read -r t_reg_m m_reg_m < <(run docker-registry garbage-collect --dry-run --delete-untagged "$cfg")
read -r t_us_m m_us_m < <(run "$bin" gc --dry-run --delete-untagged --min-age 0 -q "$dir/gc60k")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "layout: $(blobs gc60k) blobs, $(manifests gc60k) manifests, 500 repositories, warm cache"
echo
echo "| command | time | peak memory |"
echo "| --- | --- | --- |"
echo "| docker-registry garbage-collect --dry-run | ${t_reg} s | $((m_reg / 1024)) MiB |"
echo "| regfsck gc --dry-run | ${t_us} s | $((m_us / 1024)) MiB |"
echo "| speed-up | $(awk "BEGIN{printf \"%.0f\", $t_reg / ($t_us > 0 ? $t_us : 0.01)}")x | |"
echo "| docker-registry garbage-collect --dry-run -m | ${t_reg_m} s | $((m_reg_m / 1024)) MiB |"
echo "| regfsck gc --dry-run -m | ${t_us_m} s | $((m_us_m / 1024)) MiB |"
echo "| speed-up (-m) | $(awk "BEGIN{printf \"%.0f\", $t_reg_m / ($t_us_m > 0 ? $t_us_m : 0.01)}")x | |"
if can_drop; then
  read -r c_reg _ < <(cold docker-registry garbage-collect --dry-run "$cfg")
  read -r c_us _ < <(cold "$bin" gc --dry-run --min-age 0 -q "$dir/gc60k")
  echo "| docker-registry garbage-collect --dry-run, cold cache | ${c_reg} s | |"
  echo "| regfsck gc --dry-run, cold cache | ${c_us} s | |"
  echo "| speed-up (cold) | $(ratio "$c_reg" "$c_us")x | |"
fi

if [[ "${BENCH_GC_BIG:-0}" == 1 ]]; then
  gen gc600k --repos 5000 --images-per-repo 28 --layers 2 --layer-size 512 --small-blobs 40000 --small-size 512
  read -r t_big m_big < <(run "$bin" gc --dry-run --min-age 0 -q "$dir/gc600k")
  echo "| regfsck gc --dry-run, $(blobs gc600k) blobs, $(manifests gc600k) manifests, 5000 repositories | ${t_big} s | $((m_big / 1024)) MiB |"
  cfg_big="$(config gc600k)"
  read -r t_big_reg m_big_reg < <(run docker-registry garbage-collect --dry-run "$cfg_big")
  echo "| docker-registry garbage-collect --dry-run, 600k | ${t_big_reg} s | $((m_big_reg / 1024)) MiB |"
  echo "| speed-up (600k) | $(ratio "$t_big_reg" "$t_big")x | |"
  echo "| growth 60k -> 600k blobs | $(awk "BEGIN{printf \"%.1f\", $t_big / ($t_us > 0 ? $t_us : 0.01)}")x time | |"
  if can_drop; then
    read -r c_big_reg _ < <(cold docker-registry garbage-collect --dry-run "$cfg_big")
    read -r c_big _ < <(cold "$bin" gc --dry-run --min-age 0 -q "$dir/gc600k")
    echo "| docker-registry garbage-collect --dry-run, 600k, cold cache | ${c_big_reg} s | |"
    echo "| regfsck gc --dry-run, 600k, cold cache | ${c_big} s | |"
    echo "| speed-up (600k, cold) | $(ratio "$c_big_reg" "$c_big")x | |"
  fi
fi
