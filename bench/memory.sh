#!/usr/bin/env bash
# Peak memory of each command against the registry's own gc on the same layouts (60,000 and,
# with BENCH_GC_BIG=1, 600,000 blobs; the layouts bench/gc.sh makes), with bytes per object
# (every file of the layout: blob data and link files, what an object store counts as keys)
# and per blob, and how memory and time grow from 60k to 600k. One warm run each (memory does
# not vary between runs; times here are not the benchmark: see bench/gc.sh).
#
#   bash bench/memory.sh
#   BENCH_GC_BIG=1 bash bench/memory.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

# objects NAME: files in the layout (cached: counting 1.4M files takes a while).
objects() {
  local f="$dir/$1.objects"
  if [[ ! -f "$f" || "$f" -ot "$dir/$1.args" ]]; then
    find "$dir/$1/docker" -type f | wc -l > "$f"
  fi
  cat "$f"
}
# once CMD...: "seconds peak_kib" of one run after a warm-up.
once() {
  "$@" >/dev/null 2>&1 || true
  /usr/bin/time -f '%e %M' -o "$dir/time.out" "$@" >/dev/null 2>&1 || true
  cat "$dir/time.out"
}
per() { awk "BEGIN{printf \"%.0f\", $1 * 1024 / $2}"; }

sizes=(gc60k)
gen gc60k --repos 500 --images-per-repo 28 --layers 2 --layer-size 512 --small-blobs 4000 --small-size 512
if [[ "${BENCH_GC_BIG:-0}" == 1 ]]; then
  gen gc600k --repos 5000 --images-per-repo 28 --layers 2 --layer-size 512 --small-blobs 40000 --small-size 512
  sizes+=(gc600k)
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%F)"
echo
echo "| layout | command | time | peak memory | bytes/object | bytes/blob |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
declare -A peak time
for n in "${sizes[@]}"; do
  o="$(objects "$n")"
  b="$(blobs "$n")"
  cfg="$(config "$n")"
  while IFS='|' read -r label cmd; do
    # shellcheck disable=SC2086
    read -r t m < <(once $cmd)
    peak[$n,$label]=$m
    time[$n,$label]=$t
    echo "| $b blobs, $o objects | $label | $t s | $((m / 1024)) MiB | $(per "$m" "$o") | $(per "$m" "$b") |"
  done <<CMDS
docker-registry garbage-collect --dry-run|docker-registry garbage-collect --dry-run $cfg
regfsck gc --dry-run|$bin gc --dry-run --min-age 0 -q $dir/$n
regfsck gc --dry-run -m|$bin gc --dry-run -m --min-age 0 -q $dir/$n
regfsck verify --no-content|$bin verify --no-content -q $dir/$n
regfsck du|$bin du $dir/$n
regfsck ls|$bin ls $dir/$n
CMDS
done
if [[ "${#sizes[@]}" == 2 ]]; then
  echo
  for label in "regfsck gc --dry-run" "regfsck verify --no-content"; do
    echo "$label, 60k -> 600k: memory $(ratio "${peak[gc600k,$label]}" "${peak[gc60k,$label]}")x, time $(ratio "${time[gc600k,$label]}" "${time[gc60k,$label]}")x"
  done
fi
