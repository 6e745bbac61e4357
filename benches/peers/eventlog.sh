#!/bin/bash
# The event log's size under a steady checkout load: events in sled
# (entries, bytes), archive segments, and the whole data directory after
# 10k, 50k and 100k checkouts.
#
#   bash benches/peers/eventlog.sh BIN [STATS_BIN] [CHECKPOINTS...]
#   e.g. bash benches/peers/eventlog.sh target/release/agora
#   AGORA_EVENT_ARCHIVE_SECS=5 bash benches/peers/eventlog.sh target/release/agora
#
# `AGORA_*` settings in the environment reach the node: a run compresses
# hours of traffic into minutes, so a shorter archive cadence than the
# default 60 s shows the steady state.
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
BIN=$(realpath "$1"); STATS=$(realpath "${2:-$1}"); shift; shift || true
CHECKPOINTS=${*:-10000 50000 100000}
PORT=28402
dir=$(mktemp -d); err=$(mktemp); log=$(mktemp)
pid=; lp=
# Run where no cluster.toml is: the node takes its defaults and the flags.
work=$(mktemp -d); cd "$work"
# Whatever happens, stop the node and the load this script started.
trap '[ -n "$lp" ] && kill "$lp" 2>/dev/null; [ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
# node.sh's, with longer waits: a node on a busy machine may take a while
# to open a large database.
start_node() {
  AGORA_PAYMENT_LATENCY_MS=0 "$BIN" serve --http "127.0.0.1:$PORT" --data-dir "$dir" \
    --rate-limit-per-sec 0 >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && return; sleep 0.2; done
  echo "the node did not start (log: $log)" >&2; exit 1
}
start_load() {
  : >"$err"
  "$BIN" load --scenario checkout --target "http://127.0.0.1:$PORT" --items 200 \
    --duration 3600 --concurrency 64 --json >/dev/null 2>"$err" &
  lp=$!
  until grep -q "seeded" "$err" 2>/dev/null; do
    kill -0 "$lp" 2>/dev/null || { cat "$err" >&2; exit 1; }
    sleep 0.1
  done
}
confirmed() {
  curl -sf "http://127.0.0.1:$PORT/metrics" |
    awk '/^agora_checkout_outcomes_total\{outcome="CONFIRMED"\}/ {print int($2)}'
}
total=0
printf "%10s %12s %14s %9s %14s %14s %14s\n" checkouts live_events live_bytes segments archive_bytes db_bytes data_dir_bytes
for target in $CHECKPOINTS; do
  start_node
  start_load
  while :; do
    kill -0 "$pid" 2>/dev/null || { echo "the node stopped" >&2; exit 1; }
    n=$(confirmed); n=${n:-0}
    [ $((total + n)) -ge "$target" ] && break
    sleep 1
  done
  kill "$lp"; wait "$lp" 2>/dev/null || true; lp=
  sleep 2  # checkouts in flight end; consumers catch up
  n=$(confirmed); total=$((total + ${n:-0}))
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  stats=$("$STATS" events stats --data-dir "$dir" 2>/dev/null)
  db=$(du -sb "$dir/db" | cut -f1); all=$(du -sb "$dir" | cut -f1)
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print("%10s %12d %14d %9d %14d %14s %14s" % (sys.argv[2], s["liveEvents"], s["liveBytes"],
      s["segments"], s["archiveBytes"], sys.argv[3], sys.argv[4]))
' "$stats" "$total" "$db" "$all"
done
rm -rf "$dir" "$err" "$log" "$work"
