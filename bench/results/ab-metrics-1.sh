#!/usr/bin/env bash
cd /tmp/modhost-bench
B=/work/main/target/release/modhost-bench
echo "# start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3; do   # then 4 5 6 7
  for v in old new; do
    (MODHOST_LOG=warn exec taskset -c 0 /tmp/ab/modhost-$v run --config /tmp/modhost-bench/config.toml) </dev/null >/tmp/ab/$v.log 2>&1 &
    P=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done
    sleep 1
    echo "# $v round $r $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    taskset -c 1 $B --target=$v=127.0.0.1:18080/$P rpc --conns 16 --depth 1 --secs 4
    taskset -c 1 $B --target=$v=127.0.0.1:18080/$P rpc --conns 1 --depth 1 --secs 4
    kill $P; wait $P 2>/dev/null
    sleep 1
  done
done
echo "# done $(date -u +%T)"
