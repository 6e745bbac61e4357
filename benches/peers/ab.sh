#!/bin/bash
# Interleaved A/B of two agora binaries under one `agora load` scenario.
#
#   bash benches/peers/ab.sh OLD_BIN NEW_BIN [SCENARIO] [ITEMS] [ROUNDS]
#   e.g. bash benches/peers/ab.sh /tmp/agora-old target/release/agora checkout 1000 2
#
# Each run: a fresh node (temp data dir, 127.0.0.1, rate limits off, payment
# latency 0), `agora load --scenario S --items N --concurrency 64 --duration
# 10`, then the node's CPU per operation over the measured window (from
# /proc/<pid>/stat, after seeding). Runs alternate old/new ROUNDS times, so
# drift of the shared box hits both. Stops only the node it started.
# One harness loads both nodes, so only the server differs: LOAD_BIN, else
# the agora-load beside NEW_BIN, else target/release/agora-load (a copied
# binary has no harness beside it); with none, each binary's `agora load`.
set -euo pipefail
OLD=$1; NEW=$2; SCENARIO=${3:-checkout}; ITEMS=${4:-1000}; ROUNDS=${5:-2}
for candidate in "${LOAD_BIN:-}" "$(dirname "$NEW")/agora-load" target/release/agora-load; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then LOAD_BIN=$candidate; break; fi
done
PORT=28400
. "$(dirname "$0")/node.sh"
run() {
  local bin=$1 dir err pid lp c0 c1 t0 t1
  dir=$(mktemp -d); err=$(mktemp)
  start_node "$bin" $PORT "$dir"; pid=$NODE_PID
  start_load "$bin" $PORT "$SCENARIO" "$ITEMS" 10 "$dir.json" "$err"; lp=$LOAD_PID
  c0=$(awk '{print $14+$15}' /proc/$pid/stat); t0=$(date +%s.%N)
  wait $lp || true
  c1=$(awk '{print $14+$15}' /proc/$pid/stat); t1=$(date +%s.%N)
  kill $pid; wait $pid 2>/dev/null || true
  python3 - "$dir.json" "$c0" "$c1" "$t0" "$t1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
c0, c1, t0, t1 = map(float, sys.argv[2:])
ops = {o["operation"]: o for o in report["operations"]}
main = "checkout" if "checkout" in ops else next(iter(ops))
o = ops[main]
tick_ms = 10  # USER_HZ = 100
print(f"{main}: {o['perSec']:.0f}/s p50 {o['p50Ms']} ms; server CPU "
      f"{(c1 - c0) * tick_ms / max(o['count'], 1):.3f} ms per {main}, {(c1 - c0) / (t1 - t0):.0f}% of a core")
PY
  rm -rf "$dir" "$dir.json" "$err"
}
for _ in $(seq 1 "$ROUNDS"); do
  echo -n "old "; run "$OLD"
  echo -n "new "; run "$NEW"
done
