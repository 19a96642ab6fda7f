#!/usr/bin/env bash
# The scale simulation (examples/scale.rs): gc's model built from generated names, no layout on
# disk (10 million objects would be 40 GB of 4 KiB files), then graph, mark and sweep, at 144,000,
# 1,440,000, 2,880,000, 5,760,000 and 10,000,000 objects of bench/gen_layout.py's shape; peak
# memory, bytes per object and time per object of each phase. bench/memory.sh measures real runs
# at the first two sizes.
#
#   bash bench/scale.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked --quiet --example scale
sim="${CARGO_TARGET_DIR:-target}/release/examples/scale"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo
runs=${BENCH_SCALE_RUNS:-3}
echo "Best of $runs runs a size (least graph + gc time)."
echo
echo "| objects | blobs | peak memory | bytes/object | model | graph | mark + sweep | µs/object (graph + gc) | vs 1,440,000 |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
base=""
# repos small-blobs: 28 images of 2 layers a repository, 10 objects an image.
for shape in "500 4000" "5000 40000" "10000 80000" "20000 160000" "34723 277778"; do
  read -r repos small <<<"$shape"
  best=""
  for _ in $(seq "$runs"); do
    line=$("$sim" --repos "$repos" --images-per-repo 28 --layers 2 --small-blobs "$small")
    read -r _ objects _ blobs _ model _ _ graph _ _ gc _ _ peak _ <<<"$line"
    t=$(awk "BEGIN{printf \"%.6f\", ($graph + $gc) * 1e6 / $objects}")
    if [[ -z "$best" ]] || awk "BEGIN{exit !($t < $best)}"; then
      best=$t
      row="| $objects | $blobs | $((peak / 1024)) MiB | $(awk "BEGIN{printf \"%.0f\", $peak * 1024 / $objects}") | $model s | $graph s | $gc s | $(awk "BEGIN{printf \"%.3f\", $t}")"
    fi
  done
  [[ "$repos" == 5000 ]] && base=$best
  echo "$row | $([[ -n "$base" ]] && awk "BEGIN{printf \"%.2fx\", $best / $base}") |"
done
