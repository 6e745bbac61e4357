#!/usr/bin/env bash
# Memory at growing catalogue sizes: boots one node on 127.0.0.1:0 with a temp
# data dir, seeds and browses with `agora load --scenario browse` at each size,
# and records what the server holds.
#
#   bash benches/memory.sh NAME "100000 1000000" [VAR=value ...]
#
# The VAR=value pairs go to the server's environment (e.g.
# AGORA_STORAGE_CACHE_MB=32) to switch one part off at a time. Output in
# target/memory/NAME/: `timeline` (RSS and threads every 2 s), and after each
# step `status-N`, `rollup-N` (/proc smaps_rollup: anonymous against
# file-backed), `maps-N` (RSS per mapping), `metrics-N`, `load-N.json`.
# Env: AGORA_BIN (default target/release/agora, built if missing), DUR (20 s
# of browsing per step). The server is stopped by PID at the end.
set -u
cd "$(dirname "$0")/.."
NAME=$1; LADDER=$2; shift 2
BIN=${AGORA_BIN:-${CARGO_TARGET_DIR:-target}/release/agora}
[ -x "$BIN" ] || cargo build --release -q --bin agora
OUT=target/memory/$NAME; mkdir -p "$OUT"; DATA=$(mktemp -d)
env RUST_LOG=warn "$@" "$BIN" serve --http 127.0.0.1:0 --data-dir "$DATA" --rate-limit-per-sec 0 \
  >"$OUT/stdout" 2>"$OUT/stderr" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
BASE=
for _ in $(seq 100); do BASE=$(grep -o 'http://[0-9.:]*' "$OUT/stdout" | head -1); [ -n "$BASE" ] && break; sleep 0.2; done
[ -n "$BASE" ] || { echo "agora did not start" >&2; exit 1; }
( while kill -0 $PID 2>/dev/null; do
    echo "$(date +%T) $(grep -E '^(Threads|VmRSS)' /proc/$PID/status | tr -s ' \t' ' ' | tr '\n' ' ')" >>"$OUT/timeline"
    sleep 2
  done ) &
snap() {
  cp /proc/$PID/smaps_rollup "$OUT/rollup-$1"
  awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{rss[name]+=$2}
       END{for (n in rss) if (rss[n] > 1024) printf "%8d KiB %s\n", rss[n], n}' /proc/$PID/smaps \
    | sort -rn >"$OUT/maps-$1"
  curl -s "$BASE/metrics" >"$OUT/metrics-$1"
  grep -E 'VmRSS|RssAnon|RssFile|Threads' /proc/$PID/status >"$OUT/status-$1"
  echo "$1: $(grep VmRSS "$OUT/status-$1" | tr -s ' \t' ' ')"
}
snap idle
seeded=0
for n in $LADDER; do
  "$BIN" load --json --target "$BASE" --scenario browse --items $((n - seeded)) --concurrency 32 \
    --duration "${DUR:-20}" >"$OUT/load-$n.json" 2>"$OUT/load-$n.err"
  seeded=$n; snap "$n"
done
