# Shared by ab.sh and writes.sh (sourced): a fresh node and a seeded load.
#
#   start_node BIN PORT DIR          → sets NODE_PID once /ready answers
#   start_load BIN PORT SCENARIO ITEMS DURATION OUT ERR
#                                    → sets LOAD_PID once seeding is done
# The node: 127.0.0.1, data in DIR, rate limits off, payment latency 0.
# The load: `agora load --concurrency 64 --json` into OUT (progress in ERR),
# or the harness LOAD_BIN (an `agora-load`) with the same options, if set.

start_node() {
  AGORA_PAYMENT_LATENCY_MS=0 "$1" serve --http "127.0.0.1:$2" --data-dir "$3" \
    --rate-limit-per-sec 0 >/dev/null 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/ready" >/dev/null && break; sleep 0.2; done
}

start_load() {
  local harness=("$1" load)
  if [ -n "${LOAD_BIN:-}" ]; then harness=("$LOAD_BIN"); fi
  "${harness[@]}" --scenario "$3" --target "http://127.0.0.1:$2" --items "$4" \
    --duration "$5" --concurrency 64 --json >"$6" 2>"$7" &
  LOAD_PID=$!
  until grep -q "seeded" "$7" 2>/dev/null; do sleep 0.1; done
}
