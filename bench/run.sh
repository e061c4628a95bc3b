#!/usr/bin/env bash
# Runs modhost and its peers (the Node `ws` baseline, the uWebSockets
# baseline, the messidge broker and node) on core 0 and the load generator
# on core 1, as BENCHMARKS.md describes. From the repository root:
#
#   bench/run.sh start            build (release), sign echo and divide into
#                                 a temp plugins folder, install the peers
#                                 (npm, a Python venv, Debian's libuv1),
#                                 start every server
#   bench/run.sh both  ARGS...    modhost-bench ARGS against modhost and node
#   bench/run.sh all   ARGS...    modhost-bench ARGS against modhost, node, uws
#   bench/run.sh host  ARGS...    modhost-bench ARGS against modhost only
#   bench/run.sh node  ARGS...    modhost-bench ARGS against node only
#   bench/run.sh uws   ARGS...    modhost-bench ARGS against uws only
#   bench/run.sh messidge ARGS... the messidge load client (calls `divide`
#                                 through the broker; ARGS: --secs --rounds)
#   bench/run.sh suite            every figure in BENCHMARKS.md, in order
#   bench/run.sh history          room history (issue 18): two more hosts,
#                                 history off and on, fan-out CPU per
#                                 delivery alternately, then recovery of
#                                 1,000 missed publications (release build
#                                 of modhost and modhost-bench only)
#   bench/run.sh cluster          scale-out over NATS (issue 19): a lone host
#                                 and two [cluster] hosts on a local
#                                 nats-server, fan-out latency with the
#                                 publish on the same host vs on the other
#                                 one, alternately, and NATS's message
#                                 counts per publish (from /varz)
#   bench/run.sh cluster-history  the same paced fan-out with a history room
#                                 on every host (lone: in-memory history;
#                                 cross: the JetStream stream)
#   bench/run.sh cluster-calls    module calls across hosts (issue 19): a
#                                 lone host with echo, and two [cluster]
#                                 hosts where only the other one has echo;
#                                 call latency and rate on each, alternately,
#                                 and NATS's message counts per call (from
#                                 /varz)
#   bench/run.sh restart          restart every server (fresh RSS baseline)
#   bench/run.sh stop
#
# BENCH_DIR (default /tmp/modhost-bench) holds the config, keys, plugins
# and the servers' logs and pids. messidge listens on tcp 2020 and 2021
# whatever is set here: its client library hard-codes the port.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/modhost-bench}
HOST_PORT=${HOST_PORT:-18080}
NODE_PORT=${NODE_PORT:-18081}
UWS_PORT=${UWS_PORT:-18082}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REL=$ROOT/target/release
# The peers' Python packages (socketify, messidge) live here; ignored by git.
VENV=$ROOT/bench/.venv
SERVERS="modhost node uws messidge-broker messidge-node pymod"
# examples/python-module's packages, where .ci/run puts them too.
PYMOD_VENV=$ROOT/target/python-module/venv

pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }

wait_health() {
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not come up; see $DIR/*.log" >&2
  return 1
}

# Debian's libuv1 (socketify's native library links it) and a venv with
# the pinned peers, each installed only when missing.
install_peers() {
  if ! dpkg -s libuv1 >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y libuv1 || { $sudo apt-get update && $sudo apt-get install -y libuv1; }
  fi
  [ -x "$PYMOD_VENV/bin/python" ] || python3 -m venv "$PYMOD_VENV"
  "$PYMOD_VENV/bin/python" -c 'import websockets, nacl' 2>/dev/null ||
    "$PYMOD_VENV/bin/pip" install --quiet -r "$ROOT/examples/python-module/requirements.txt"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import socketify, messidge' 2>/dev/null ||
    "$VENV/bin/pip" install --quiet -r "$ROOT/bench/requirements-peers.txt"
}

wait_listen() {
  for _ in $(seq 1 100); do
    [ -n "$(ss -Hltn "sport = :$1")" ] && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1; see $DIR/*.log" >&2
  return 1
}

start() {
  (cd "$ROOT" && cargo build --release -p modhost -p modhost-echo -p modhost-divide -p modhost-bench)
  [ -d "$ROOT/bench/baseline/node_modules/ws" ] || (cd "$ROOT/bench/baseline" && npm ci --no-audit --no-fund)
  install_peers
  mkdir -p "$DIR/plugins" "$DIR/keys" "$DIR/verify" "$DIR/state"
  for m in echo divide; do
    [ -f "$DIR/keys/$m.key" ] || "$REL/modhost" keygen $m --out "$DIR/keys" --verify-keys "$DIR/verify"
  done
  [ -f "$DIR/keys/pymod.key" ] ||
    "$PYMOD_VENV/bin/python" "$ROOT/examples/python-module/module.py" keygen pymod --out "$DIR/keys" --verify-keys "$DIR/verify"
  "$VENV/bin/python" "$ROOT/bench/baseline-messidge/messidge_bench.py" setup "$DIR/messidge"
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

[external]
# examples/python-module connects here as "pymod" (bench/run.sh launch).
enabled = true

[modules]
dir = "plugins"
verify_keys = ["verify"]
state_dir = "state"
EOF
  launch
}

# (Re)starts every server on the prepared BENCH_DIR, without building.
launch() {
  stop_servers
  # A fresh signature each start: the rollback guard refuses a seq it has
  # already accepted.
  for m in echo divide; do
    cp "$REL/lib$m.so" "$DIR/plugins/.$m.so.tmp"
    mv "$DIR/plugins/.$m.so.tmp" "$DIR/plugins/$m.so"
    "$REL/modhost" sign "$DIR/plugins/$m.so" --key "$DIR/keys/$m.key" --seq "$(date +%s%3N)" >/dev/null
  done
  ulimit -n "$(ulimit -Hn)"
  # exec: the recorded pid is the server's own (for kill and /proc/PID/status).
  (cd "$DIR" && MODHOST_LOG=${MODHOST_LOG:-warn} exec taskset -c "$SERVER_CPU" "$REL/modhost" run --config "$DIR/config.toml") \
    </dev/null >"$DIR/modhost.log" 2>&1 &
  echo $! >"$DIR/modhost.pid"
  (cd "$ROOT/bench/baseline" && PORT=$NODE_PORT exec taskset -c "$SERVER_CPU" node server.js) \
    </dev/null >"$DIR/node.log" 2>&1 &
  echo $! >"$DIR/node.pid"
  (cd "$ROOT/bench/baseline-uws" && PORT=$UWS_PORT exec taskset -c "$SERVER_CPU" "$VENV/bin/python" server.py) \
    </dev/null >"$DIR/uws.log" 2>&1 &
  echo $! >"$DIR/uws.pid"
  local mb=("$VENV/bin/python" "$ROOT/bench/baseline-messidge/messidge_bench.py")
  (exec taskset -c "$SERVER_CPU" "${mb[@]}" broker "$DIR/messidge") </dev/null >"$DIR/messidge-broker.log" 2>&1 &
  echo $! >"$DIR/messidge-broker.pid"
  # The node only after the broker listens: one that connected first was
  # seen to leave the next client without a handshake.
  wait_listen 2020
  (exec taskset -c "$SERVER_CPU" "${mb[@]}" node "$DIR/messidge") </dev/null >"$DIR/messidge-node.log" 2>&1 &
  echo $! >"$DIR/messidge-node.pid"
  wait_health "$HOST_PORT"
  # The Python external module, beside the host on its core.
  (exec taskset -c "$SERVER_CPU" "$PYMOD_VENV/bin/python" "$ROOT/examples/python-module/module.py" run \
    "ws://127.0.0.1:$HOST_PORT/module" pymod --key "$DIR/keys/pymod.key") </dev/null >"$DIR/pymod.log" 2>&1 &
  echo $! >"$DIR/pymod.pid"
  wait_health "$NODE_PORT"
  wait_health "$UWS_PORT"
  echo "modhost pid $(pid_of modhost) on :$HOST_PORT, node pid $(pid_of node) on :$NODE_PORT," \
    "uws pid $(pid_of uws) on :$UWS_PORT, messidge broker pid $(pid_of messidge-broker) on :2020" \
    "with node pid $(pid_of messidge-node) (cpu $SERVER_CPU)"
}

# Stops a server and its children (the messidge broker's encryption agent
# is a child process), by the pids recorded at launch.
stop_pid() {
  local p=$1 c
  kill -0 "$p" 2>/dev/null || return 0
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do kill "$c" 2>/dev/null || true; done
  kill "$p"
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
}

# Stops the servers named (without names, all of $SERVERS) and forgets
# their pids.
stop_servers() {
  local s p
  for s in ${*:-$SERVERS}; do
    p=$(pid_of "$s")
    [ -z "$p" ] || stop_pid "$p"
    rm -f "$DIR/$s.pid"
  done
}

host_target() { echo "--target=modhost=127.0.0.1:$HOST_PORT/$(pid_of modhost)"; }
node_target() { echo "--target=node=127.0.0.1:$NODE_PORT/$(pid_of node)"; }
uws_target() { echo "--target=uws=127.0.0.1:$UWS_PORT/$(pid_of uws)"; }

load() {
  ulimit -n "$(ulimit -Hn)"
  echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) :: modhost-bench $*" >&2
  taskset -c "$LOAD_CPU" "$REL/modhost-bench" "$@"
}

# The messidge load client on the load generator's core: `divide` through
# the broker, one call in flight; server CPU is the broker's (with its
# encryption agent) plus the node's.
messidge_load() {
  echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) :: messidge_bench.py client $*" >&2
  taskset -c "$LOAD_CPU" "$VENV/bin/python" "$ROOT/bench/baseline-messidge/messidge_bench.py" client \
    "$DIR/messidge" --server-pids "$(pid_of messidge-broker),$(pid_of messidge-node)" "$@"
}

suite() {
  local H N U
  H=$(host_target)
  N=$(node_target)
  U=$(uws_target)
  # Fan-out burst, 1,000 connections, 1 room, alternately with node and uws
  # (4 concurrent publishers keep the server busy between requests).
  load "$H" "$N" "$U" --rounds 5 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 4
  # The same with one publisher (the issue's figure).
  load "$H" "$N" "$U" --rounds 3 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 1
  # p99 at 5 publishes/s to 1,000 subscribers.
  load "$H" "$N" "$U" --rounds 3 fanout --conns 1000 --rooms 1 --publishes 50 --rate 5
  # Same through the echo module's publish command.
  load "$H" --rounds 3 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 4 --via module
  # Echo round trip over one websocket, then 16.
  load "$H" --rounds 3 rpc --conns 1 --depth 1 --secs 5
  load "$H" --rounds 3 rpc --conns 1 --depth 1 --secs 5 --raw-echo /echo
  load "$H" --rounds 3 rpc --conns 16 --depth 1 --secs 5
  load "$H" --rounds 3 rpc --conns 16 --depth 8 --secs 5
  # divide over one websocket, one call in flight, alternately with the
  # messidge broker and node doing the same.
  for _ in 1 2 3; do
    load "$H" rpc --conns 1 --depth 1 --secs 5 --module divide --command divide \
      --params '{"dividend":7.0,"divisor":2.0}'
    messidge_load --secs 5
  done
  # The same divide served by the Python external module
  # (examples/python-module), alternately with the in-process one.
  for _ in 1 2 3; do
    load "$H" rpc --conns 1 --depth 1 --secs 5 --module divide --command divide \
      --params '{"dividend":7.0,"divisor":2.0}'
    load "$H" rpc --conns 1 --depth 1 --secs 5 --module pymod --command divide \
      --params '{"dividend":7.0,"divisor":2.0}'
  done
  # 10,000 and 19,000 idle connections, each subscribed to a room of its
  # own, modhost, node and uws, each on a freshly started server: memory
  # freed by an earlier run stays in the process and would hide the growth.
  # The 19,000 spread over 4 source addresses (one has ~28k ports).
  for n in 10000 19000; do
    for t in host_target node_target uws_target; do
      launch
      load "$($t)" --source-ips 4 idle --conns "$n" --subscribe
    done
  done
  launch
  H=$(host_target)
  # Reload under load, three times.
  for _ in 1 2 3; do
    load "$H" reload --conns 16 --depth 4 --secs 6 --at 2 --plugins-dir "$DIR/plugins" \
      --so "$REL/libecho.so" --key "$DIR/keys/echo.key" --modhost "$REL/modhost"
  done
}

cmd=${1:-}
shift || true
# Two hosts that differ only in [[history.rooms]] for the bench rooms, on
# HIST_OFF_PORT and HIST_ON_PORT, each in its own folder under BENCH_DIR.
history_host() {
  local name=$1 port=$2 extra=$3 dir=$DIR/$1
  mkdir -p "$dir/plugins" "$dir/verify" "$dir/state"
  cat >"$dir/config.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
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
send_queue = 4096
# Above the default 10,000 calls/s per connection, which cluster-calls'
# pipelined load on one host would reach (rate-limited errors, not calls).
calls_per_second = 1000000
[modules]
dir = "plugins"
verify_keys = ["verify"]
state_dir = "state"
$extra
EOF
  (cd "$dir" && MODHOST_LOG=${MODHOST_LOG:-warn} exec taskset -c "$SERVER_CPU" "$REL/modhost" run --config "$dir/config.toml") \
    </dev/null >"$dir/modhost.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
  wait_health "$port"
}

history_bench() {
  local off_port=${HIST_OFF_PORT:-18083} on_port=${HIST_ON_PORT:-18084} off on
  (cd "$ROOT" && cargo build --release -p modhost -p modhost-bench)
  mkdir -p "$DIR"
  history_host history-off "$off_port" ""
  history_host history-on "$on_port" $'[[history.rooms]]\nroom = { target = "bench", room = "*" }\nsize = 1000\nage_secs = 600'
  off="--target=off=127.0.0.1:$off_port/$(pid_of history-off)"
  on="--target=on=127.0.0.1:$on_port/$(pid_of history-on)"
  # Publish cost: 1,000 subscribers of one room, and 10 subscribers (where
  # the per-publish work of recording weighs more per delivery).
  load "$off" "$on" --rounds 5 fanout --conns 1000 --rooms 1 --publishes 1000 --publishers 4
  load "$off" "$on" --rounds 5 fanout --conns 10 --rooms 1 --publishes 20000 --publishers 4
  # A client back after 1,000 missed publications.
  load "$on" --rounds 5 recover --missed 1000
  stop_servers history-off history-on
}

# A JetStream NATS server on port $1 (monitoring on $2), as server `nats`;
# on the servers' core too, so a cluster's whole cost is measured.
start_nats() {
  mkdir -p "$DIR/nats"
  taskset -c "$SERVER_CPU" nats-server -a 127.0.0.1 -p "$1" -m "$2" -js -sd "$DIR/nats/store" \
    </dev/null >"$DIR/nats/nats.log" 2>&1 &
  echo $! >"$DIR/nats.pid"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/varz" >/dev/null && break; sleep 0.1; done
}

# The NATS server's message counters: "in_msgs out_msgs".
nats_counts() {
  curl -sf "http://127.0.0.1:$1/varz" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["in_msgs"], v["out_msgs"])'
}

# $1: config every host gets beside its own (cluster-history: a history
# room, so the cross-host path is the JetStream stream); $2: "burst" to
# measure a burst after the paced run.
cluster_bench() {
  local extra=$1 burst=$2
  local lone_port=${CLUSTER_LONE_PORT:-18085} sub_port=${CLUSTER_SUB_PORT:-18086} pub_port=${CLUSTER_PUB_PORT:-18087}
  local nats_port=${NATS_PORT:-14222} nats_mon=${NATS_MON_PORT:-18222} lone cross before after
  local publishes=2000 rounds=5
  (cd "$ROOT" && cargo build --release -p modhost -p modhost-bench)
  start_nats "$nats_port" "$nats_mon"
  local cluster=$'[cluster]\nnats_url = "nats://127.0.0.1:'"$nats_port"$'"\nname = '
  history_host cluster-lone "$lone_port" "$extra"
  history_host cluster-sub "$sub_port" "$extra"$'\n'"$cluster\"sub\""
  history_host cluster-pub "$pub_port" "$extra"$'\n'"$cluster\"pub\""
  lone="--target=lone=127.0.0.1:$lone_port/$(pid_of cluster-lone)"
  cross="--target=cross=127.0.0.1:$sub_port/$(pid_of cluster-sub)@127.0.0.1:$pub_port"
  # Latency at a steady pace (1,000 publishes/s), then a burst.
  before=$(nats_counts "$nats_mon")
  load "$lone" "$cross" --rounds "$rounds" fanout --conns 100 --rooms 1 --publishes "$publishes" --rate 1000
  after=$(nats_counts "$nats_mon")
  echo "# nats /varz in_msgs out_msgs before: $before after: $after ($((rounds * publishes)) cross-host publishes)" >&2
  [ "$burst" != burst ] || load "$lone" "$cross" --rounds "$rounds" fanout --conns 100 --rooms 1 --publishes 20000 --publishers 4
  stop_servers cluster-lone cluster-sub cluster-pub nats
}

# Signs the release echo into the history_host folder named $1 (with the
# bench's echo key, made once), before that host starts.
sign_echo_into() {
  local dir=$DIR/$1
  mkdir -p "$dir/plugins" "$dir/verify" "$DIR/keys" "$DIR/verify"
  [ -f "$DIR/keys/echo.key" ] || "$REL/modhost" keygen echo --out "$DIR/keys" --verify-keys "$DIR/verify"
  cp "$DIR/verify/echo.pub" "$dir/verify/echo.pub"
  cp "$REL/libecho.so" "$dir/plugins/.echo.so.tmp"
  mv "$dir/plugins/.echo.so.tmp" "$dir/plugins/echo.so"
  "$REL/modhost" sign "$dir/plugins/echo.so" --key "$DIR/keys/echo.key" --seq "$(date +%s%3N)" >/dev/null
}

# NATS messages for `calls` sequential POST /api/call to the host on port
# $1 (module echo, command $2, params $3), less the announcements counted
# over the same time: prints "in out seconds".
nats_per_calls() {
  local port=$1 command=$2 params=$3 calls=$4 mon=$5 hosts=$6
  python3 - "$port" "$command" "$params" "$calls" "$mon" "$hosts" <<'PY'
import http.client, json, sys, time, urllib.request
port, command, params, calls, mon, hosts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
def varz():
    v = json.load(urllib.request.urlopen(f"http://127.0.0.1:{mon}/varz"))
    return v["in_msgs"], v["out_msgs"]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
body = json.dumps({"module": "echo", "command": command, "params": json.loads(params)})
before, t0 = varz(), time.monotonic()
for _ in range(calls):
    conn.request("POST", "/api/call", body, {"Authorization": "Bearer change-me", "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
after, secs = varz(), time.monotonic() - t0
# Each clustered host announces once a second: one message in, one out to
# every host (its own included).
ann_in, ann_out = hosts * secs, hosts * hosts * secs
print(f"{(after[0]-before[0]-ann_in)/calls:.2f} {(after[1]-before[1]-ann_out)/calls:.2f} "
      f"(raw in {after[0]-before[0]} out {after[1]-before[1]} over {secs:.1f} s, {calls} calls)")
PY
}

cluster_calls_bench() {
  local lone_port=${CALLS_LONE_PORT:-18088} caller_port=${CALLS_CALLER_PORT:-18089} callee_port=${CALLS_CALLEE_PORT:-18090}
  local nats_port=${NATS_PORT:-14222} nats_mon=${NATS_MON_PORT:-18222} lone cross rounds=5
  (cd "$ROOT" && cargo build --release -p modhost -p modhost-echo -p modhost-bench)
  start_nats "$nats_port" "$nats_mon"
  local cluster=$'[cluster]\nnats_url = "nats://127.0.0.1:'"$nats_port"$'"\nname = '
  sign_echo_into calls-lone
  sign_echo_into calls-callee
  mkdir -p "$DIR/calls-caller/plugins"
  rm -f "$DIR/calls-caller/plugins/"*
  history_host calls-lone "$lone_port" ""
  history_host calls-callee "$callee_port" "$cluster\"callee\""
  history_host calls-caller "$caller_port" "$cluster\"caller\""
  # The caller learns of the callee's echo from its next announcement.
  for _ in $(seq 1 50); do
    curl -sf -H 'Authorization: Bearer change-me' -H 'Content-Type: application/json' \
      -d '{"module":"echo","command":"echo","params":{}}' "http://127.0.0.1:$caller_port/api/call" >/dev/null && break
    sleep 0.1
  done
  lone="--target=lone=127.0.0.1:$lone_port/$(pid_of calls-lone)"
  cross="--target=cross=127.0.0.1:$caller_port/$(pid_of calls-caller)"
  # One call in flight per connection (latency), then eight (rate).
  load "$lone" "$cross" --rounds "$rounds" rpc --conns 16 --depth 1 --secs 4
  load "$lone" "$cross" --rounds "$rounds" rpc --conns 16 --depth 8 --secs 4
  echo "# nats messages per call (in out), echo.echo: $(nats_per_calls "$caller_port" echo '{}' 2000 "$nats_mon" 2)" >&2
  echo "# nats messages per call (in out), echo.count n=10: $(nats_per_calls "$caller_port" count '{"n":10}' 1000 "$nats_mon" 2)" >&2
  stop_servers calls-lone calls-caller calls-callee nats
}

case "$cmd" in
  start) start ;;
  stop) stop_servers ;;
  restart) launch ;;
  both) load "$(host_target)" "$(node_target)" "$@" ;;
  host) load "$(host_target)" "$@" ;;
  node) load "$(node_target)" "$@" ;;
  uws) load "$(uws_target)" "$@" ;;
  all) load "$(host_target)" "$(node_target)" "$(uws_target)" "$@" ;;
  messidge) messidge_load "$@" ;;
  suite) suite ;;
  history) history_bench ;;
  cluster) cluster_bench "" burst ;;
  cluster-history) cluster_bench $'[[history.rooms]]\nroom = { target = "bench", room = "*" }\nsize = 1000\nage_secs = 600' "" ;;
  cluster-calls) cluster_calls_bench ;;
  *) sed -n '2,40p' "$0"; exit 2 ;;
esac
