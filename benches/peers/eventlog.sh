#!/bin/bash
# The event log's size under a steady checkout load: events in sled
# (entries, bytes), archive segments, and the whole data directory after
# 10k, 50k and 100k checkouts.
#
#   bash benches/peers/eventlog.sh BIN [STATS_BIN] [CHECKPOINTS...]
#   e.g. bash benches/peers/eventlog.sh target/release/agora
#
# BIN runs the node and the load; STATS_BIN (default BIN) runs `agora
# events stats` on the stopped node (so a build without that command can be
# measured with one that has it). A fresh node (temp data dir, 127.0.0.1,
# rate limits off, payment latency 0, the archive's default settings) under
# `agora load --scenario checkout --items 200 --concurrency 64`. At each
# checkpoint the load and the node stop (SIGTERM: flushed), the node's data
# is measured, and both start again on the same data. Only sizes are
# reported: the machine is shared, so speed is not. Stops only the
# processes it started.
set -euo pipefail
BIN=$1; STATS=${2:-$1}; shift; shift || true
CHECKPOINTS=${*:-10000 50000 100000}
PORT=28402
. "$(dirname "$0")/node.sh"
dir=$(mktemp -d); err=$(mktemp)
confirmed() {
  curl -sf "http://127.0.0.1:$PORT/metrics" |
    awk '/^agora_checkout_outcomes_total\{outcome="CONFIRMED"\}/ {print int($2)}'
}
total=0
printf "%10s %12s %14s %9s %14s %14s %14s\n" checkouts live_events live_bytes segments archive_bytes db_bytes data_dir_bytes
for target in $CHECKPOINTS; do
  start_node "$BIN" $PORT "$dir"; pid=$NODE_PID
  : >"$err"
  start_load "$BIN" $PORT checkout 200 100000 /dev/null "$err"; lp=$LOAD_PID
  while :; do
    kill -0 "$pid" 2>/dev/null || { echo "the node stopped" >&2; exit 1; }
    n=$(confirmed); n=${n:-0}
    [ $((total + n)) -ge "$target" ] && break
    sleep 1
  done
  kill "$lp"; wait "$lp" 2>/dev/null || true
  sleep 2  # checkouts in flight end; consumers catch up
  n=$(confirmed); total=$((total + ${n:-0}))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  stats=$("$STATS" events stats --data-dir "$dir" 2>/dev/null)
  db=$(du -sb "$dir/db" | cut -f1); all=$(du -sb "$dir" | cut -f1)
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print("%10s %12d %14d %9d %14d %14s %14s" % (sys.argv[2], s["liveEvents"], s["liveBytes"],
      s["segments"], s["archiveBytes"], sys.argv[3], sys.argv[4]))
' "$stats" "$total" "$db" "$all"
done
rm -rf "$dir" "$err"
