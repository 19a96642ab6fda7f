#!/usr/bin/env bash
# What bounds a cold-cache gc on this disk: the device's random 4 KiB read rate (fio, direct
# I/O, at several queue depths) against the reads regfsck and the registry make on a cold cache
# of the 600,000-blob layout (bench/gc.sh's, BENCH_GC_BIG), counted in /proc/diskstats. The
# time a cold run cannot beat is its reads divided by the best rate the device gives.
#
#   bash bench/cold_limit.sh            # needs root (drop_caches), fio, and the 600k layout
#   BENCH_COLD_REGISTRY=1 bash bench/cold_limit.sh   # also the registry's own cold run (~2 min)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
can_drop || { echo "needs root to drop caches" >&2; exit 1; }
command -v fio >/dev/null || { echo "needs fio (apt-get install fio)" >&2; exit 1; }
gen gc600k --repos 5000 --images-per-repo 28 --layers 2 --layer-size 512 --small-blobs 40000 --small-size 512
dev=$(df --output=source "$dir" | tail -1)
disk=$(basename "$(readlink -f "$dev")")
disk=${disk%%[0-9]*}
reads() { awk -v d="$disk" '$3 == d {print $4, $6}' /proc/diskstats; }  # reads completed, sectors
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), disk $disk, $(date -u +%F)"
echo
echo "| fio randread 4 KiB, direct | iodepth 1 | 16 | 64 | 128 |"
echo "| --- | ---: | ---: | ---: | ---: |"
file="$dir/fio.dat"
[[ -f "$file" ]] || fio --name=prep --filename="$file" --size=4G --rw=write --bs=1M --direct=1 >/dev/null
row="| IOPS"
best=0
for qd in 1 16 64 128; do
  iops=$(fio --name=r --filename="$file" --size=4G --rw=randread --bs=4k --direct=1 \
    --ioengine=libaio --iodepth="$qd" --runtime=10 --time_based --output-format=json |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))')
  row="$row | $iops"
  (( iops > best )) && best=$iops
done
echo "$row |"
echo
measure() { # measure LABEL CMD...: one cold run; its time, reads and the bound
  local label="$1"; shift
  sync
  echo 3 > /proc/sys/vm/drop_caches
  read -r r0 s0 < <(reads)
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  read -r r1 s1 < <(reads)
  local n=$((r1 - r0)) secs
  secs=$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")
  echo "| $label | $secs s | $n | $(( (s1 - s0) / 2 / 1024 )) MiB | $(awk "BEGIN{printf \"%.0f\", $n / $secs}") | $(awk "BEGIN{printf \"%.2f\", $n / $best}") s |"
}
echo "| cold run, 600k | time | reads | read | reads/s | reads / best fio IOPS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
measure "regfsck gc --dry-run (default: 128 I/O threads when cold)" "$bin" gc --dry-run --min-age 0 -q "$dir/gc600k"
measure "regfsck gc --dry-run (default, again)" "$bin" gc --dry-run --min-age 0 -q "$dir/gc600k"
measure "regfsck gc --dry-run -j 16 (16 threads, cold or not)" "$bin" gc --dry-run --min-age 0 -q -j 16 "$dir/gc600k"
if [[ -n "${BENCH_COLD_REGISTRY:-}" ]]; then
  cfg=$(config gc600k)
  measure "docker-registry garbage-collect --dry-run" docker-registry garbage-collect --dry-run "$cfg"
fi
