#!/usr/bin/env bash
# Runs modhost and the Node baseline on core 0 and the load generator on
# core 1, as BENCHMARKS.md describes. From the repository root:
#
#   bench/run.sh start            build (release), sign echo into a temp
#                                 plugins folder, start both servers
#   bench/run.sh both  ARGS...    modhost-bench ARGS against modhost and node
#   bench/run.sh host  ARGS...    modhost-bench ARGS against modhost only
#   bench/run.sh node  ARGS...    modhost-bench ARGS against node only
#   bench/run.sh suite            every figure in BENCHMARKS.md, in order
#   bench/run.sh restart          restart both servers (fresh RSS baseline)
#   bench/run.sh stop
#
# BENCH_DIR (default /tmp/modhost-bench) holds the config, keys, plugins
# and the servers' logs and pids.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/modhost-bench}
HOST_PORT=${HOST_PORT:-18080}
NODE_PORT=${NODE_PORT:-18081}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REL=$ROOT/target/release

pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }

wait_health() {
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not come up; see $DIR/*.log" >&2
  return 1
}

start() {
  (cd "$ROOT" && cargo build --release -p modhost -p modhost-echo -p modhost-bench)
  [ -d "$ROOT/bench/baseline/node_modules/ws" ] || (cd "$ROOT/bench/baseline" && npm ci --no-audit --no-fund)
  mkdir -p "$DIR/plugins" "$DIR/keys" "$DIR/verify" "$DIR/state"
  [ -f "$DIR/keys/echo.key" ] || "$REL/modhost" keygen echo --out "$DIR/keys" --verify-keys "$DIR/verify"
  cat >"$DIR/config.toml" <<EOF
[server]
listen = "127.0.0.1:$HOST_PORT"
idle_timeout_secs = 3600

[admin]
token = "change-me"

[[auth.tokens]]
token = "bench-secret"
user = "bench"
roles = ["user"]
allowed_rooms = [{ target = "bench", room = "*" }]

[trigger]
tokens = ["trigger-secret"]

[limits]
# The defaults, except: room for 19,000 idle connections plus the
# benchmark's own, a burst of 1,000+ publishes per subscriber, and
# single-connection call rates above the default 10,000/s.
max_connections = 19500
send_queue = 4096
calls_per_second = 1000000
max_calls_in_flight = 1024

[diagnostics]
# The websocket round trip without a module (rpc --raw-echo /echo).
ws_echo_path = "/echo"

[modules]
dir = "plugins"
verify_keys = ["verify"]
state_dir = "state"
EOF
  launch
}

# (Re)starts both servers on the prepared BENCH_DIR, without building.
launch() {
  stop_servers
  # A fresh signature each start: the rollback guard refuses a seq it has
  # already accepted.
  cp "$REL/libecho.so" "$DIR/plugins/.echo.so.tmp"
  mv "$DIR/plugins/.echo.so.tmp" "$DIR/plugins/echo.so"
  "$REL/modhost" sign "$DIR/plugins/echo.so" --key "$DIR/keys/echo.key" --seq "$(date +%s%3N)" >/dev/null
  ulimit -n "$(ulimit -Hn)"
  # exec: the recorded pid is the server's own (for kill and /proc/PID/status).
  (cd "$DIR" && MODHOST_LOG=${MODHOST_LOG:-warn} exec taskset -c "$SERVER_CPU" "$REL/modhost" run --config "$DIR/config.toml") \
    </dev/null >"$DIR/modhost.log" 2>&1 &
  echo $! >"$DIR/modhost.pid"
  (cd "$ROOT/bench/baseline" && PORT=$NODE_PORT exec taskset -c "$SERVER_CPU" node server.js) \
    </dev/null >"$DIR/node.log" 2>&1 &
  echo $! >"$DIR/node.pid"
  wait_health "$HOST_PORT"
  wait_health "$NODE_PORT"
  echo "modhost pid $(pid_of modhost) on :$HOST_PORT, node pid $(pid_of node) on :$NODE_PORT (cpu $SERVER_CPU)"
}

stop_servers() {
  for s in modhost node; do
    local p
    p=$(pid_of $s)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill "$p"
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/$s.pid"
  done
}

host_target() { echo "--target=modhost=127.0.0.1:$HOST_PORT/$(pid_of modhost)"; }
node_target() { echo "--target=node=127.0.0.1:$NODE_PORT/$(pid_of node)"; }

load() {
  ulimit -n "$(ulimit -Hn)"
  echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) :: modhost-bench $*" >&2
  taskset -c "$LOAD_CPU" "$REL/modhost-bench" "$@"
}

suite() {
  local H N
  H=$(host_target)
  N=$(node_target)
  # Fan-out burst, 1,000 connections, 1 room, alternately with node
  # (4 concurrent publishers keep the server busy between requests).
  load "$H" "$N" --rounds 5 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 4
  # p99 at 5 publishes/s to 1,000 subscribers.
  load "$H" "$N" --rounds 3 fanout --conns 1000 --rooms 1 --publishes 50 --rate 5
  # Same through the echo module's publish command.
  load "$H" --rounds 3 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 4 --via module
  # Echo round trip over one websocket, then 16.
  load "$H" --rounds 3 rpc --conns 1 --depth 1 --secs 5
  load "$H" --rounds 3 rpc --conns 1 --depth 1 --secs 5 --raw-echo /echo
  load "$H" --rounds 3 rpc --conns 16 --depth 1 --secs 5
  load "$H" --rounds 3 rpc --conns 16 --depth 8 --secs 5
  # 19,000 idle connections, on freshly started servers: memory freed by
  # an earlier run stays in the process and would hide the growth.
  launch
  H=$(host_target)
  N=$(node_target)
  load "$H" --source-ips 4 idle --conns 19000
  load "$N" --source-ips 4 idle --conns 19000
  # Reload under load, three times.
  for _ in 1 2 3; do
    load "$H" reload --conns 16 --depth 4 --secs 6 --at 2 --plugins-dir "$DIR/plugins" \
      --so "$REL/libecho.so" --key "$DIR/keys/echo.key" --modhost "$REL/modhost"
  done
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) start ;;
  stop) stop_servers ;;
  restart) launch ;;
  both) load "$(host_target)" "$(node_target)" "$@" ;;
  host) load "$(host_target)" "$@" ;;
  node) load "$(node_target)" "$@" ;;
  suite) suite ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
