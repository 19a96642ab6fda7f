# Shared by the benchmarks (sourced from the repository's top): the release build, the
# registry's presence, generated layouts cached under $dir (BENCH_DIR, default target/bench),
# registry configs, best-of-3 timing with peak memory, cold-cache runs, ratios and counts.
dir="${BENCH_DIR:-target/bench}"
bin=target/release/regfsck
command -v docker-registry >/dev/null || { echo "needs docker-registry (bash scripts/install-deps.sh)" >&2; exit 1; }
cargo build --release --locked --quiet
mkdir -p "$dir"

gen() { # gen NAME ARGS...
  local name="$1"; shift
  local stamp="$dir/$name.args" want="$* gen=$(sha256sum bench/gen_layout.py | cut -c1-16)"
  if [[ ! -f "$stamp" || "$(<"$stamp")" != "$want" ]]; then
    echo "generating $dir/$name: $*" >&2
    rm -rf "${dir:?}/$name" "$stamp"
    python3 bench/gen_layout.py "$dir/$name" "$@"
    printf '%s' "$want" > "$stamp"
  fi
}
config() {
  cat > "$dir/$1.yml" <<CFG
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $PWD/$dir/$1}
  delete: {enabled: true}
CFG
  echo "$dir/$1.yml"
}
# run CMD...: warm once, then the best of 3 timed runs (the host is shared and the registry's
# time varies by 1.5x between runs); prints "seconds peak_kib" of the fastest run.
run() {
  "$@" >/dev/null 2>&1 || true
  local best="" i
  for i in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$dir/time.out" "$@" >/dev/null 2>&1 || true
    if [[ -z "$best" ]] || awk "BEGIN{exit !($(cut -d' ' -f1 "$dir/time.out") < ${best%% *})}"; then
      best="$(<"$dir/time.out")"
    fi
  done
  echo "$best"
}
# cold CMD...: the best of 2 runs, each after dropping every cache; prints "seconds peak_kib".
can_drop() { [[ -w /proc/sys/vm/drop_caches ]]; }
cold() {
  local best="" i
  for i in 1 2; do
    sync
    echo 3 > /proc/sys/vm/drop_caches
    /usr/bin/time -f '%e %M' -o "$dir/time.out" "$@" >/dev/null 2>&1 || true
    if [[ -z "$best" ]] || awk "BEGIN{exit !($(cut -d' ' -f1 "$dir/time.out") < ${best%% *})}"; then
      best="$(<"$dir/time.out")"
    fi
  done
  echo "$best"
}
ratio() { awk "BEGIN{printf \"%.1f\", $1 / ($2 > 0 ? $2 : 0.01)}"; }
blobs() { find "$dir/$1/docker/registry/v2/blobs" -name data | wc -l; }
manifests() { find "$dir/$1/docker/registry/v2/repositories" -path '*/_manifests/revisions/*/link' | wc -l; }

