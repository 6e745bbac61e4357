#!/usr/bin/env bash
# HTTP benchmark: GET /items/{id} on agora beside a bare axum peer
# (../shared/peers/http_peer: hello-world and a 1 KB DashMap item), measured
# in the same run, interleaved per round. wrk and the servers share the
# machine's cores: figures are a ceiling for this box; read the ratios.
#
# Env: ROUNDS (3) DUR (10) CONNS (64) THREADS (1) PEERS (../shared/peers)
# AGORA_BIN (the release build in $CARGO_TARGET_DIR, else target/; when set,
# nothing is built: e.g. a copy of an older build to compare)
# Servers bind 127.0.0.1 only and are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; CONNS=${CONNS:-64}; THREADS=${THREADS:-1}
PEERS=${PEERS:-../shared/peers}
AGORA_PORT=${AGORA_PORT:-38180}; PEER_PORT=${PEER_PORT:-38181}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ -z "${AGORA_BIN:-}" ]; then
  cargo build --release -q
  AGORA_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/agora")
fi
(cd "$PEERS" && CARGO_TARGET_DIR=${PEER_TARGET:-/tmp/peers-target} cargo build --release -q -p http_peer)
PEER_BIN=${PEER_TARGET:-/tmp/peers-target}/release/http_peer

DATA=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

(cd "$DATA" && exec "$AGORA_BIN" serve --http 127.0.0.1:$AGORA_PORT --data-dir "$DATA/node" \
  --rate-limit-per-sec 0 >"$DATA/agora.log" 2>&1) & PIDS+=($!)
BIND=127.0.0.1:$PEER_PORT "$PEER_BIN" >"$DATA/peer.log" 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$AGORA_PORT/health"; wait_up "http://127.0.0.1:$PEER_PORT/"

B=http://127.0.0.1:$AGORA_PORT; J='content-type: application/json'
curl -sf -XPOST $B/users -H "$J" -d '{"email":"bench@example.com","password":"benchmark","name":"Bench","role":"seller"}' >/dev/null
TOKEN=$(curl -sf -XPOST $B/sessions -H "$J" -d '{"email":"bench@example.com","password":"benchmark"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
BODY='{"name":"Wireless Mouse","description":"Ergonomic Bluetooth Mouse with a long battery life, silent clicks and a comfortable shape for long working days. Pairs with three devices.","price":999,"quantity":100,"sku":"MOUSE-001","brand":"Logi","category":"electronics","tags":["mouse","bluetooth","wireless"],"attributes":{"color":"black","dpi":1600,"battery":"AA"}}'
ITEM=$(curl -sf -XPOST $B/items -H "$J" -H "authorization: Bearer $TOKEN" -d "$BODY" | sed 's/^{"id":"\([^"]*\)".*/\1/')
echo "# agora item: $(curl -s $B/items/$ITEM | wc -c) bytes; peer item: $(curl -s http://127.0.0.1:$PEER_PORT/item/sku-004242 | wc -c) bytes"

to_ms() { awk -v x="$1" 'BEGIN{ if (x ~ /us$/) {sub(/us$/,"",x); print x/1000} else if (x ~ /ms$/) {sub(/ms$/,"",x); print x+0} else if (x ~ /s$/) {sub(/s$/,"",x); print x*1000} else print x }'; }
run() { # name url
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$2")
  rps=$(echo "$out" | awk '/^Requests\/sec:/{print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1=="50%"{print $2}')"); p99=$(to_ms "$(echo "$out" | awk '$1=="99%"{print $2}')")
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/{e=e $0 ";"} END{print (e==""?"none":e)}')
  printf "%s\t%s\t%.0f\t%s\t%s\t%s\n" "$round" "$1" "$rps" "$p50" "$p99" "$errs"
}
printf "round\ttarget\treq/s\tp50_ms\tp99_ms\terrors\n"
for round in $(seq "$ROUNDS"); do
  run agora_get_item "$B/items/$ITEM"
  run peer_hello "http://127.0.0.1:$PEER_PORT/"
  run peer_item "http://127.0.0.1:$PEER_PORT/item/sku-004242"
done | tee "$DATA/runs.tsv"
echo "# medians over $ROUNDS rounds (wrk -t$THREADS -c$CONNS -d${DUR}s)"
for t in agora_get_item peer_hello peer_item; do
  awk -F'\t' -v t=$t '$2==t{print $3"\t"$4"\t"$5}' "$DATA/runs.tsv" | sort -n | awk -v t=$t '{r[NR]=$1; a[NR]=$2; b[NR]=$3} END{m=int((NR+1)/2); printf "%s\treq/s %s\tp50 %s ms\tp99 %s ms (run with median req/s)\n", t, r[m], a[m], b[m]}'
done
echo "# per-round ratio agora_get_item / peer_item:"
awk -F'\t' '{v[$1"|"$2]=$3} END{for (k in v){split(k,a,"|"); if(a[2]=="agora_get_item") printf "round %s: %.3f\n", a[1], v[k]/v[a[1]"|peer_item"]}}' "$DATA/runs.tsv" | sort
