#!/usr/bin/env bash
# Benchmark of `regfsck gc --dry-run` against the registry's own `docker-registry garbage-collect
# --dry-run` on the same layout in an S3 bucket (a local SeaweedFS, scripts/seaweedfs.sh), warm,
# and a real gc by each on its own copy of it,
# best of 3, in one run; regfsck at 16, 64 (the default) and 256 requests in flight; -m for both;
# the same layout on local disk for reference; peak memory; keys per second. The two dry runs must
# list the same blobs (and manifests), or the script fails.
#
#   bash bench/s3.sh                 # 18,000 objects: 100 repositories x 16 images, 2,000 orphans
#   BENCH_S3_BIG=1 bash bench/s3.sh  # also 60,000 objects (300 x 18, 6,000 orphans)
#
# The server keeps its data in $BENCH_DIR/s3-seaweedfs (default target/bench) between runs and is
# stopped at exit; a prefix that already holds the layout (same keys, same MD5s) is not uploaded
# again (bench/s3_load.py syncs). Every process gets an explicit environment (no inherited AWS_*:
# the registry panics at start with AWS_CA_BUNDLE set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t_start=$(date +%s.%N)
dir="${BENCH_DIR:-target/bench}"
bin=target/release/regfsck
command -v docker-registry >/dev/null || { echo "needs docker-registry (bash scripts/install-deps.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
cargo build --release --locked --quiet
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

die() { echo "bench/s3.sh: $*" >&2; exit 1; }
log() { echo "bench/s3.sh: $*" >&2; }
secs() { awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $1}"; }

# The server: its own directory, restarted with the same ports, keys and data on a later run.
sw="$dir/s3-seaweedfs"
stop_server() { bash scripts/seaweedfs.sh stop --dir "$sw" >/dev/null 2>&1 || true; }
if [[ -f "$sw/seaweedfs.env" ]]; then stop_server; fi # a server left by a killed run
trap stop_server EXIT
trap 'exit 130' INT TERM
# --watch-pid: the server goes with this shell even when it is killed without running the trap.
eval "$(bash scripts/seaweedfs.sh start --dir "$sw" --bucket bench --watch-pid $$)"
endpoint="$AWS_ENDPOINT_URL" key="$AWS_ACCESS_KEY_ID" secret="$AWS_SECRET_ACCESS_KEY" bucket="${BUCKET:?}"
server_pid="${SEAWEEDFS_PID:?}"
unset AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
mkdir -p "$dir/home"
# "${s3env[@]}" CMD...: CMD with only PATH, HOME and this server's AWS_* in its environment.
s3env=(env -i PATH="$PATH" HOME="$dir/home" AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID="$key"
  AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1)
# "${plain[@]}" CMD...: no AWS_* at all (the registry: its S3 settings come from its config).
plain=(env -i PATH="$PATH" HOME="$dir/home")

gen() { # gen NAME ARGS...: the layout in $dir/NAME (regenerated when the arguments change)
  local name="$1"; shift
  local stamp="$dir/$name.args" want
  want="$* gen=$(sha256sum bench/gen_layout.py | cut -c1-16)"
  if [[ ! -f "$stamp" || "$(<"$stamp")" != "$want" ]]; then
    log "generating $dir/$name: $*"
    rm -rf "${dir:?}/$name" "$stamp"
    python3 bench/gen_layout.py "$dir/$name" "$@"
    printf '%s' "$want" > "$stamp"
  fi
}
config_s3() { # config_s3 PREFIX: the registry's config for s3://$bucket/PREFIX
  cat > "$dir/$1.s3.yml" <<CFG
version: 0.1
log: {level: error}
storage:
  s3:
    region: us-east-1
    regionendpoint: '$endpoint'
    bucket: '$bucket'
    accesskey: '$key'
    secretkey: '$secret'
    secure: false
    v4auth: true
    rootdirectory: /$1
  redirect: {disable: true}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
CFG
  chmod 600 "$dir/$1.s3.yml"
  echo "$dir/$1.s3.yml"
}
config_fs() {
  cat > "$dir/$1.fs.yml" <<CFG
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $dir/$1}
  delete: {enabled: true}
CFG
  echo "$dir/$1.fs.yml"
}
# timed CMD...: one run under /usr/bin/time, stdout to $dir/out, stderr to $dir/err; dies
# unless it exits 0. Leaves "seconds peak_kib" in $dir/time.out. (No subshells here: a failure
# must end the script.)
# The server's CPU seconds so far (user + system), from /proc.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$server_pid/stat"; }
timed() {
  local rc=0 c0 e mem u sy
  c0=$(server_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$dir/time.out" "$@" >"$dir/out" 2>"$dir/err" || rc=$?
  # "seconds peak_kib client_cpu server_cpu"
  read -r e mem u sy < "$dir/time.out"
  echo "$e $mem $(awk "BEGIN{printf \"%.2f\", $u + $sy}") $(awk "BEGIN{printf \"%.2f\", $(server_cpu) - $c0}")" > "$dir/time.out"
  if [[ $rc != 0 ]]; then
    tail -20 "$dir/err" >&2
    die "exit $rc: $*"
  fi
}
# run CMD...: the best of 3 timed runs (the host is shared: times vary between runs), after a
# warm-up run that the caller has made. Sets t_best (seconds), m_best (peak KiB), c_best and
# s_best (client and server CPU seconds) of the fastest.
run() {
  local best="" t
  for _ in 1 2 3; do
    timed "$@"
    t="$(<"$dir/time.out")"
    if [[ -z "$best" ]] || awk "BEGIN{exit !(${t%% *} < ${best%% *})}"; then best="$t"; fi
  done
  read -r t_best m_best c_best s_best <<<"$best"
}
# warm CMD...: one untimed run (caches, connections, the server's own caches); keeps its stdout in
# $dir/warm.out.
warm() { timed "$@"; cp "$dir/out" "$dir/warm.out"; }
reg_set() { # reg_set blob|manifest: what the registry's dry run (in $dir/warm.out) lists
  sed -n "s/^$1 eligible for deletion: //p" "$dir/warm.out" | tr -d ' \r' | sort -u
}
us_set() { # us_set blobs|manifests: what regfsck's --json dry run (in $dir/warm.out) lists
  python3 -c 'import json,sys; [print(b["digest"]) for b in json.load(open(sys.argv[1]))["sweep"][sys.argv[2]]]' \
    "$dir/warm.out" "$1" | sort -u
}
same() { # same WHAT FILE_A FILE_B
  if ! cmp -s "$2" "$3"; then
    diff "$2" "$3" | head -20 >&2
    die "$1: the registry's dry run and regfsck's differ ($(wc -l <"$2") vs $(wc -l <"$3") lines)"
  fi
}

rows=()
row() { local s="|" x; for x; do s+=" $x |"; done; rows+=("$s"); }
ratio() { awk "BEGIN{printf \"%.1f\", $1 / ($2 > 0 ? $2 : 0.01)}"; }
rate() { awk "BEGIN{printf \"%.0f\", $1 / ($2 > 0 ? $2 : 0.01)}"; }
mib() { echo "$(($1 / 1024)) MiB"; }

# bench NAME GEN_ARGS...: generate, load into prefix NAME, time, compare; appends table rows.
bench() {
  local name="$1"; shift
  gen "$name" "$@"
  local files
  files=$(find "$dir/$name/docker/registry/v2" -type f | wc -l)
  log "$name: loading $files objects into s3://$bucket/$name"
  local load
  load="$("${s3env[@]}" python3 bench/s3_load.py "$dir/$name" "$bucket" "$name" --jobs 48)"
  log "$name: $load"
  local put lsecs
  put="$(sed -n 's/.*put=\([0-9]*\).*/\1/p' <<<"$load")"
  lsecs="$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$load")"
  # What the server holds now (after the sync): the number the table calls "keys listed".
  local n
  n="$("${s3env[@]}" python3 scripts/s3.py ls "$bucket" "$name/" | wc -l)"
  [[ "$n" == "$files" ]] || die "$name: s3://$bucket/$name holds $n keys, the layout $files files"
  if [[ "$put" == 0 ]]; then
    loads+=("$name: $n objects already in the bucket (cached: listed and checked in ${lsecs} s)")
  else
    loads+=("$name: $n objects, $put PUT in ${lsecs} s ($(rate "$put" "$lsecs") PUT/s, 48 in flight)")
  fi

  local cfg url=s3://$bucket/$name m
  cfg="$(config_s3 "$name")"
  for m in "" "-m"; do
    local flag=() sfx="${m:+ -m}"
    [[ -n "$m" ]] && flag=(--delete-untagged)
    log "$name: docker-registry garbage-collect --dry-run$sfx on S3"
    local t0
    t0=$(date +%s.%N)
    warm "${plain[@]}" docker-registry garbage-collect --dry-run "${flag[@]}" "$cfg"
    log "$name:   first run $(secs "$t0") s"
    reg_set blob > "$dir/reg-blobs"; reg_set manifest > "$dir/reg-manifests"
    run "${plain[@]}" docker-registry garbage-collect --dry-run "${flag[@]}" "$cfg"
    local t_reg="$t_best" m_reg="$m_best"
    row "docker-registry garbage-collect --dry-run$sfx" "S3" "1" "$t_reg s" "1.0x" "$(mib "$m_reg")" "$n" "$(rate "$n" "$t_reg")" "$c_best s" "$s_best s"

    log "$name: regfsck gc --dry-run$sfx on S3"
    warm "${s3env[@]}" "$bin" gc --dry-run "${flag[@]}" --min-age 0 -q --json "$url"
    us_set blobs > "$dir/us-blobs"; us_set manifests > "$dir/us-manifests"
    same "$name$sfx: blobs" "$dir/reg-blobs" "$dir/us-blobs"
    same "$name$sfx: manifests" "$dir/reg-manifests" "$dir/us-manifests"
    [[ -s "$dir/reg-blobs" ]] || die "$name$sfx: no blob eligible for deletion: the check proves nothing"
    checks+=("$name$sfx: both list the same $(wc -l <"$dir/reg-blobs") blobs and $(wc -l <"$dir/reg-manifests") manifests")
    local c concs=(16 64 256)
    [[ -n "$m" ]] && concs=(64)
    for c in "${concs[@]}"; do
      run "${s3env[@]}" "$bin" gc --dry-run "${flag[@]}" --min-age 0 -q --io-concurrency "$c" "$url"
      local t_us="$t_best" m_us="$m_best"
      row "regfsck gc --dry-run$sfx" "S3" "$c" "$t_us s" "$(ratio "$t_reg" "$t_us")x" "$(mib "$m_us")" "$n" "$(rate "$n" "$t_us")" "$c_best s" "$s_best s"
    done
  done

  # Where regfsck's time goes: ls reads the listing, the links and the tagged manifests (the mark
  # phase's inputs); gc adds the sweep's bookkeeping.
  warm "${s3env[@]}" "$bin" ls -q "$url"
  run "${s3env[@]}" "$bin" ls -q "$url"
  local t_ls="$t_best" m_ls="$m_best"
  row "regfsck ls" "S3" "64" "$t_ls s" "" "$(mib "$m_ls")" "$n" "$(rate "$n" "$t_ls")" "$c_best s" "$s_best s"

  # The same layout on local disk, for reference.
  local fcfg t_rd m_rd t_fd m_fd
  fcfg="$(config_fs "$name")"
  warm "${plain[@]}" docker-registry garbage-collect --dry-run "$fcfg"
  run "${plain[@]}" docker-registry garbage-collect --dry-run "$fcfg"
  t_rd="$t_best" m_rd="$m_best"
  row "docker-registry garbage-collect --dry-run" "disk" "" "$t_rd s" "" "$(mib "$m_rd")" "$files" "$(rate "$files" "$t_rd")" "$c_best s" ""
  warm "${plain[@]}" "$bin" gc --dry-run --min-age 0 -q "$dir/$name"
  run "${plain[@]}" "$bin" gc --dry-run --min-age 0 -q "$dir/$name"
  t_fd="$t_best" m_fd="$m_best"
  row "regfsck gc --dry-run" "disk" "" "$t_fd s" "$(ratio "$t_rd" "$t_fd")x vs registry on disk" "$(mib "$m_fd")" "$files" "$(rate "$files" "$t_fd")" "$c_best s" ""

  local blobs manifests repos
  blobs=$(find "$dir/$name/docker/registry/v2/blobs" -name data | wc -l)
  manifests=$(find "$dir/$name/docker/registry/v2/repositories" -path '*/_manifests/revisions/*/link' | wc -l)
  repos=$(find "$dir/$name/docker/registry/v2/repositories" -mindepth 2 -maxdepth 2 -type d | wc -l)
  layouts+=("$name: $n objects ($blobs blobs, $manifests manifests, $repos repositories; no untagged manifests, so -m sweeps the same)")
}

# real_gc NAME: a real gc by each tool on its own copy of layout NAME (synced into prefixes
# NAME-real-reg and NAME-real-us first), one run each (a run changes the bucket); both must
# leave the same blobs. Appends table rows.
real_gc() {
  local name="$1" t_reg m_reg t_us m_us
  for who in reg us; do
    "${s3env[@]}" python3 bench/s3_load.py "$dir/$name" "$bucket" "$name-real-$who" --jobs 48 >/dev/null
  done
  local cfg
  cfg="$(config_s3 "$name-real-reg")"
  log "$name: docker-registry garbage-collect (real) on S3"
  timed "${plain[@]}" docker-registry garbage-collect "$cfg"
  local c_reg s_reg c_us s_us
  read -r t_reg m_reg c_reg s_reg < "$dir/time.out"
  log "$name: regfsck gc (real) on S3"
  timed "${s3env[@]}" "$bin" gc --min-age 0 -q --json "s3://$bucket/$name-real-us"
  read -r t_us m_us c_us s_us < "$dir/time.out"
  local requests
  requests="$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["applied"]; print(a["blobs"], a["links"])' "$dir/out")"
  blobs_left() { "${s3env[@]}" python3 scripts/s3.py ls "$bucket" "$1/docker/registry/v2/blobs/" | cut -f1 | sed "s|^$1/||" | sort; }
  blobs_left "$name-real-reg" > "$dir/reg-left"
  blobs_left "$name-real-us" > "$dir/us-left"
  same "$name real gc: blobs left" "$dir/reg-left" "$dir/us-left"
  local n_blobs n_links
  read -r n_blobs n_links <<<"$requests"
  checks+=("$name real gc: both leave the same $(wc -l <"$dir/us-left") blob keys; regfsck deleted $n_blobs blobs and $n_links _layers links in $(( (n_blobs + 999) / 1000 + (n_links + 999) / 1000 )) DeleteObjects requests (at most --write-rate 100 a second)")
  row "docker-registry garbage-collect (real)" "S3" "1" "$t_reg s" "1.0x" "$(mib "$m_reg")" "" "" "$c_reg s" "$s_reg s"
  row "regfsck gc (real)" "S3" "64" "$t_us s" "$(ratio "$t_reg" "$t_us")x" "$(mib "$m_us")" "" "" "$c_us s" "$s_us s"
}

loads=() checks=() layouts=()
bench s3-18k --repos 100 --images-per-repo 16 --layers 2 --layer-size 256 --small-blobs 2000 --small-size 256
real_gc s3-18k
if [[ "${BENCH_S3_BIG:-0}" == 1 ]]; then
  bench s3-60k --repos 300 --images-per-repo 18 --layers 2 --layer-size 256 --small-blobs 6000 --small-size 256
fi

weed_version="$("$(bash scripts/seaweedfs.sh install)" version 2>/dev/null | head -1 | sed 's/^version //')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "server: SeaweedFS ($weed_version) weed mini on 127.0.0.1, same machine; warm, best of 3"
printf 'layout: %s\n' "${layouts[@]}"
printf 'load: %s\n' "${loads[@]}"
printf 'check: %s\n' "${checks[@]}"
echo
echo "| command | storage | requests in flight | time | speed-up | peak memory | keys listed | keys/s | client CPU | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "The client and the server share the machine's $(nproc) cores: a run cannot take less than"
echo "(client CPU + server CPU) / $(nproc) seconds, whatever the requests in flight."
echo "total run time: $(secs "$t_start") s"
