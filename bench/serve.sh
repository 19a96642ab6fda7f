#!/usr/bin/env bash
# Benchmark of `regfsck serve` against the real registry (`docker-registry serve`) on the same
# layout, same run, warm cache, with wrk: manifest GETs per second (many concurrent clients)
# and blob throughput (a 64 MiB layer, several concurrent clients).
#
#   bash bench/serve.sh     # needs docker-registry and wrk (apt-get install docker-registry wrk)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for cmd in docker-registry wrk python3; do
  command -v "$cmd" >/dev/null || { echo "needs $cmd (apt-get install docker-registry wrk)" >&2; exit 1; }
done
dir="${BENCH_DIR:-target/bench}"
secs="${BENCH_SECONDS:-10}"
cargo build --release --locked --quiet
bin=target/release/regfsck
layout="$dir/serve"
if [[ ! -d "$layout/docker" ]]; then
  echo "generating $layout" >&2
  python3 bench/gen_layout.py "$layout" --repos 4 --images-per-repo 4 --layers 2 --layer-size 65536 \
    --big-layers 1 --big-size 67108864
fi
repo=bench/repo0000
manifest="$(cat "$layout/docker/registry/v2/repositories/$repo/_manifests/tags/v0/current/link")"
big="$(find "$layout/docker/registry/v2/blobs" -name data -size +60M | head -1)"
big="sha256:$(basename "$(dirname "$big")")"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
accept="application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json"

# run_wrk URL CONNECTIONS -> "requests/s transfer/s"
run_wrk() {
  wrk -t2 -c"$2" -d2s -H "Accept: $accept" "$1" >/dev/null 2>&1 || true
  wrk -t2 -c"$2" -d"${secs}s" -H "Accept: $accept" "$1" 2>/dev/null |
    awk '/Requests\/sec/ {r=$2} /Transfer\/sec/ {t=$2} /Non-2xx/ {bad=$NF} END {print r, t, (bad ? bad : 0)}'
}

results=()
for server in registry regfsck; do
  port="$(free_port)"
  if [[ "$server" == registry ]]; then
    cat > "$dir/serve.yml" <<CFG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $PWD/$layout}
http: {addr: 127.0.0.1:$port}
CFG
    docker-registry serve "$dir/serve.yml" >/dev/null 2>&1 &
  else
    "$bin" serve --addr "127.0.0.1:$port" "$layout" >/dev/null 2>&1 &
  fi
  pid=$!
  wait_port "$port"
  m="$(run_wrk "http://127.0.0.1:$port/v2/$repo/manifests/v0" 32)"
  b="$(run_wrk "http://127.0.0.1:$port/v2/$repo/blobs/$big" 4)"
  # regfsck stops on SIGINT; the registry is simply killed.
  if [[ "$server" == regfsck ]]; then kill -INT "$pid"; else kill -KILL "$pid"; fi
  wait "$pid" 2>/dev/null || true
  results+=("$server $m $b")
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "wrk -t2, ${secs}s each, warm cache; manifest: 32 connections; blob (64 MiB): 4 connections"
echo
echo "| server | manifest GETs/s | non-2xx | blob throughput | non-2xx |"
echo "| --- | ---: | ---: | ---: | ---: |"
for r in "${results[@]}"; do
  read -r name mreq _mtr mbad _breq btr bbad <<<"$r"
  echo "| $name | $mreq | $mbad | $btr/s | $bbad |"
done
