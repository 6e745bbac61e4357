#!/bin/bash
# sled keys written per operation, by tree, for one `agora load` scenario.
#
#   bash benches/peers/writes.sh BIN [SCENARIO] [ITEMS] [DURATION]
#   e.g. bash benches/peers/writes.sh target/release/agora checkout 1000 10
#
# A fresh node (temp data dir, 127.0.0.1, rate limits off, payment latency
# 0) under `agora load --scenario S --items N --concurrency 64`; the node's
# `agora_storage_writes_total{tree}` is read when seeding ends and again
# after the run, and the difference is divided by the scenario's main
# operation count. The count is exact (no timing in it), so two builds can
# be compared in one run each. Stops only the node it started.
set -euo pipefail
BIN=$1; SCENARIO=${2:-checkout}; ITEMS=${3:-1000}; DURATION=${4:-10}
PORT=28401
. "$(dirname "$0")/node.sh"
dir=$(mktemp -d); err=$(mktemp)
start_node "$BIN" $PORT "$dir"; pid=$NODE_PID
start_load "$BIN" $PORT "$SCENARIO" "$ITEMS" "$DURATION" "$dir.json" "$err"; lp=$LOAD_PID
curl -sf http://127.0.0.1:$PORT/metrics >"$dir.m0"
wait $lp || true
sleep 1  # event consumers (search, notifications) catch up
curl -sf http://127.0.0.1:$PORT/metrics >"$dir.m1"
kill $pid; wait $pid 2>/dev/null || true
python3 - "$dir.json" "$dir.m0" "$dir.m1" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))
def writes(path):
    out = {}
    for line in open(path):
        m = re.match(r'agora_storage_writes_total\{tree="([a-z_]+)"\} (\d+)', line)
        if m:
            out[m[1]] = int(m[2])
    return out
before, after = writes(sys.argv[2]), writes(sys.argv[3])
ops = {o["operation"]: o for o in report["operations"]}
main = "checkout" if "checkout" in ops else next(iter(ops))
count = max(ops[main]["count"], 1)
delta = {t: after.get(t, 0) - before.get(t, 0) for t in after}
total = sum(delta.values())
print(f"{main}: {count} in the run; sled keys written per {main}: {total / count:.2f}")
for tree, n in sorted(delta.items(), key=lambda kv: -kv[1]):
    if n:
        print(f"  {tree:<18} {n / count:6.2f}")
PY
rm -rf "$dir" "$dir.json" "$dir.m0" "$dir.m1" "$err"
