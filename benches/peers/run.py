#!/usr/bin/env python3
"""Regenerates the measured part of BENCHMARKS.md: Agora beside its peers,
one after the other on this machine, in one run.

    python3 benches/peers/run.py              # everything (~25 min), writes BENCHMARKS.md
    QUICK=1 python3 benches/peers/run.py      # a short smoke run (~4 min), writes target/bench-run/BENCHMARKS.generated.md only

What runs (each Agora server is the release binary on a fresh temp data dir,
127.0.0.1 only, rate limits off, stopped by its PID):

1. Item reads: wrk -t1 -c64 on GET /items/{id} (Agora), GET / and GET
   /item/{sku} (bare axum, ../shared/peers/http_peer), interleaved per round.
2. Search and memory: items seeded through the API in a ladder (10k, 100k,
   1M), `agora load --scenario browse` at each step, the server's RSS after
   each; the peer is raw tantivy in-process (../shared/peers/search_peer).
3. Durable writes, `agora load` with 64 workers (payment latency 0): stock
   (hot-SKU single-row update), cart, checkout spread over 1,000 SKUs and on
   one hot SKU, and a flash sale; the checkout run is profiled with perf.
   Peers: PostgreSQL (pgbench, synchronous_commit on and off) and Redis
   (Lua check-and-decrement, appendfsync always / everysec), from
   ../shared/peers.
4. Websocket push lag: 10k sockets (1,000 buyers) while checkouts flow; the
   server's RSS with the sockets open.

Env: ROUNDS (3), DUR (10 s per measured run), ITEMS_LADDER ("10000 100000
1000000"), SOCKETS (10000), PEERS (../shared/peers), QUICK (1: short runs,
the file is not replaced), OUT (target/bench-run), STAGES (a subset of "http
search writes ws peers" to re-run; the others' results are kept from the last
run in OUT/results.json), RENDER_ONLY (1: rewrite the section from the last
run's results without measuring).
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402  (next to this script)
from render import op  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("QUICK") == "1"
ROUNDS = int(os.environ.get("ROUNDS", "1" if QUICK else "3"))
DUR = int(os.environ.get("DUR", "3" if QUICK else "10"))
LADDER = [int(n) for n in os.environ.get(
    "ITEMS_LADDER", "2000 10000" if QUICK else "10000 100000 1000000").split()]
SOCKETS = int(os.environ.get("SOCKETS", "1000" if QUICK else "10000"))
PEERS = Path(os.environ.get("PEERS", ROOT.parent / "shared" / "peers")).resolve()
OUT = Path(os.environ.get("OUT", ROOT / "target" / "bench-run"))
PEER_TARGET = Path(os.environ.get("PEER_TARGET", "/tmp/peers-target"))
AGORA = ROOT / "target" / "release" / "agora"
# Peers listen below the ephemeral port range (32768-60999), so the tens of
# thousands of client connections a run opens and leaves in TIME_WAIT never
# hold their port.
HTTP_PEER_ADDR = "127.0.0.1:28181"
PG_PORT, REDIS_PORT = "25432", "26379"
STAGES = os.environ.get("STAGES", "http search writes ws peers").split()
SEARCH_RATE = 300

started_processes = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw).stdout


class Agora:
    """A release `agora serve` on a fresh temp dir, stopped by its PID."""

    def __init__(self, *extra, env=None):
        self.dir = tempfile.mkdtemp(prefix="agora-bench-")
        self.log = open(OUT / f"server-{len(started_processes)}.log", "w")
        self.proc = subprocess.Popen(
            [str(AGORA), "serve", "--http", "127.0.0.1:0", "--data-dir", self.dir,
             "--rate-limit-per-sec", "0", *extra],
            cwd=self.dir, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "RUST_LOG": "warn", **(env or {})})
        started_processes.append(self.proc)
        for line in self.proc.stdout:
            if line.startswith("agora listening on "):
                self.base = line.split()[-1]
                break
        else:
            raise RuntimeError("agora did not start")
        # Keep draining stdout (logs) so a full pipe never blocks the server.
        threading.Thread(target=lambda: [self.log.write(l) for l in self.proc.stdout], daemon=True).start()

    def rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def search_cache(self):
        """(hits, misses) of the search result cache so far, from /metrics."""
        text = urllib.request.urlopen(f"{self.base}/metrics", timeout=10).read().decode()
        counts = {m.group(1): int(float(m.group(2))) for m in
                  re.finditer(r'^agora_search_cache_total\{result="(\w+)"\} (\S+)', text, re.M)}
        return counts.get("hit", 0), counts.get("miss", 0)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def load(server, scenario, *args, name=None):
    """Runs `agora load --json`; its report (saved under OUT)."""
    name = name or scenario
    cmd = [str(AGORA), "load", "--json", "--target", server.base, "--scenario", scenario, *map(str, args)]
    log(f"agora load {scenario} {' '.join(map(str, args))}")
    with open(OUT / f"load-{name}.err", "w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=3600)
    if not done.stdout.strip():
        tail = (OUT / f"load-{name}.err").read_text()[-800:]
        raise RuntimeError(f"agora load {name} exited {done.returncode}:\n{tail}")
    report = json.loads(done.stdout)
    (OUT / f"load-{name}.json").write_text(done.stdout)
    if not report["held"]:
        log(f"INVARIANT BROKEN in {name}: see {OUT}/load-{name}.json")
    return report


def machine():
    fsync = ""
    pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_test_fsync"))
    if pg_bin:
        out = subprocess.run([str(pg_bin[-1]), "-f", "/tmp/bench-fsync.tmp", "-s", "1"],
                             capture_output=True, text=True).stdout
        m = re.search(r"^\s+fdatasync\s+([\d,.]+) ops/sec\s+([\d,.]+) usecs/op", out, re.M)
        if m:
            fsync = f"{m.group(1)} fdatasync/s ({m.group(2)} µs each, pg_test_fsync)"
        Path("/tmp/bench-fsync.tmp").unlink(missing_ok=True)
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'").strip()
    mem = sh("free -g | awk '/Mem:/{print $2}'").strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()),
        "cpu": f"{os.cpu_count()} cores, {cpu}",
        "memory": f"{mem} GiB",
        "kernel": os.uname().release,
        "rustc": sh("rustc --version").strip(),
        "fsync": fsync,
    }


def wrk(url):
    out = sh(f"wrk -t1 -c64 -d{DUR}s --latency {url}")

    def ms(text):
        m = re.match(r"([\d.]+)(us|ms|s)$", text)
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = "Non-2xx" in out or "Socket errors" in out
    if errors:
        log(f"  wrk saw errors on {url}: " + " ".join(l.strip() for l in out.splitlines()
                                                      if "Non-2xx" in l or "Socket errors" in l))
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


def median_run(runs):
    """The run with the median req/s."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def item_reads():
    log("1. item reads beside bare axum")
    sh(f"cd {PEERS} && CARGO_TARGET_DIR={PEER_TARGET} cargo build --release -q -p http_peer -p search_peer")
    server = Agora()
    peer = subprocess.Popen([str(PEER_TARGET / "release" / "http_peer")],
                            env={**os.environ, "BIND": HTTP_PEER_ADDR},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started_processes.append(peer)
    try:
        report = load(server, "browse", "--items", 1, "--concurrency", 1, "--duration", 1, name="http-seed")
        found = json.loads(sh(f"curl -sf '{server.base}/items?term={report['run']}'"))
        item = found["items"][0]["id"]
        agora_bytes = len(sh(f"curl -sf {server.base}/items/{item}"))
        peer_bytes = len(sh(f"curl -sf http://{HTTP_PEER_ADDR}/item/sku-004242"))
        runs = {"agora": [], "hello": [], "peer_item": []}
        for r in range(ROUNDS):
            runs["agora"].append(wrk(f"{server.base}/items/{item}"))
            runs["hello"].append(wrk(f"http://{HTTP_PEER_ADDR}/"))
            runs["peer_item"].append(wrk(f"http://{HTTP_PEER_ADDR}/item/sku-004242"))
            log(f"  round {r + 1}: agora {runs['agora'][-1]['rps']:.0f}, hello {runs['hello'][-1]['rps']:.0f}")
        ratios = [a["rps"] / h["rps"] for a, h in zip(runs["agora"], runs["hello"])]
        # Agora's own harness on the same item, for its client cost.
        harness = load(server, "browse", "--items", 100, "--concurrency", 64, "--duration", DUR, name="browse-http")
    finally:
        peer.terminate()
        peer.wait()
        server.stop()
    return {
        "agora": median_run(runs["agora"]), "hello": median_run(runs["hello"]),
        "peer_item": median_run(runs["peer_item"]), "ratios": ratios,
        "agora_bytes": agora_bytes, "peer_bytes": peer_bytes,
        "harness_item": op(harness, "item.get"), "harness_search": op(harness, "search"),
    }


def search_and_memory():
    log("2. search and memory at growing catalogue sizes")
    sh(f"cd {PEERS} && CARGO_TARGET_DIR={PEER_TARGET} cargo build --release -q -p search_peer")
    server = Agora()
    steps = []
    try:
        idle = server.rss_mib()
        seeded = 0
        for target in LADDER:
            before = server.search_cache()
            report = load(server, "browse", "--items", target - seeded, "--concurrency", 32,
                          "--duration", DUR, name=f"browse-{target}")
            after = server.search_cache()
            seed_secs = report["seedSeconds"]
            seeded = target
            # Latency at a set load (open loop: 300 searches/s and 600 item
            # views/s), apart from the saturating run's queueing.
            paced = load(server, "browse", "--items", 1, "--concurrency", 32, "--rate", SEARCH_RATE * 3,
                         "--duration", DUR, name=f"browse-{target}-paced")
            steps.append({
                "items": target, "rss": server.rss_mib(), "seed_secs": seed_secs,
                "search": op(report, "search"), "item": op(report, "item.get"),
                "paced_search": op(paced, "search"), "paced_item": op(paced, "item.get"),
                "data_mib": int(sh(f"du -sm {server.dir}").split()[0]),
                "cache_hits": after[0] - before[0], "cache_misses": after[1] - before[1],
            })
            log(f"  {target} items: RSS {steps[-1]['rss']:.0f} MiB, search p99 {steps[-1]['search']['p99Ms']} ms")
    finally:
        server.stop()
    # The same saturated run with the result cache off: every search
    # computed, at the largest size up to 100k.
    cold_items = max([n for n in LADDER if n <= 100_000] or [LADDER[0]])
    server = Agora(env={"AGORA_SEARCH_CACHE_ENTRIES": "0"})
    try:
        load(server, "browse", "--items", cold_items, "--concurrency", 32, "--duration", 1,
             name=f"browse-{cold_items}-nocache-seed")
        cold = load(server, "browse", "--items", 1, "--concurrency", 32, "--duration", DUR,
                    name=f"browse-{cold_items}-nocache")
        cold_step = {"items": cold_items, "search": op(cold, "search"), "item": op(cold, "item.get")}
    finally:
        server.stop()
    docs = max(n for n in LADDER if n <= 100_000) if any(n <= 100_000 for n in LADDER) else LADDER[0]
    out = sh(f"{PEER_TARGET}/release/search_peer --docs {docs} --queries 2000 --rounds 1 "
             f"--dir /tmp/peers-tantivy --heap-mb 200 --threads 2")
    peer = {}
    for line in out.split("# medians")[-1].splitlines():
        cols = line.split("\t")
        if len(cols) >= 3 and cols[0] not in ("query",) and not cols[0].startswith("index"):
            try:
                peer[cols[0]] = {"p50_us": float(cols[1]), "p99_us": float(cols[2])}
            except ValueError:
                pass
    return {"idle_rss": idle, "steps": steps, "peer": peer, "peer_docs": docs, "cold": cold_step}


def durable_writes():
    log("3. durable writes: stock, cart, checkout, flash sale (payment latency 0)")
    results = {}
    server = Agora("--payment-latency-ms", "0")
    try:
        results["stock"] = load(server, "stock", "--concurrency", 64, "--duration", DUR)
        results["cart"] = load(server, "cart", "--concurrency", 64, "--items", 1000, "--duration", DUR)
        results["checkout-spread"] = load(server, "checkout", "--concurrency", 64, "--items", 1000,
                                          "--duration", DUR, name="checkout-spread")
        # Profiled apart (perf's sampling slows the server), once past seeding.
        _, results["profile"] = profiled_checkout(server)
        results["checkout-hot"] = load(server, "checkout", "--concurrency", 64, "--items", 1,
                                       "--duration", DUR, name="checkout-hot")
        buyers, stock = (200, 50) if QUICK else (1000, 200)
        results["flash-sale"] = load(server, "flash-sale", "--buyers", buyers, "--stock", stock,
                                     "--concurrency", 64)
    finally:
        server.stop()
    return results


def profiled_checkout(server):
    cmd = [str(AGORA), "load", "--json", "--target", server.base, "--scenario", "checkout",
           "--concurrency", "64", "--items", "1000", "--duration", str(DUR)]
    log("agora load checkout (spread, profiled)")
    err_path = OUT / "load-checkout-profiled.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        started_processes.append(proc)
        while "seeded run" not in err_path.read_text():
            if proc.poll() is not None:
                raise RuntimeError(f"agora load exited while seeding: {err_path}")
            time.sleep(0.2)
        perf_data = OUT / "perf.data"
        perf = subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(server.proc.pid),
                               "-o", str(perf_data), "--", "sleep", str(max(DUR - 2, 1))],
                              capture_output=True, text=True)
        stdout, _ = proc.communicate(timeout=3600)
    report = json.loads(stdout)
    (OUT / "load-checkout-profiled.json").write_text(stdout)
    profile = {"error": perf.stderr[-300:]} if perf.returncode else perf_profile(perf_data)
    return report, profile


COMPONENTS = [
    ("sled (storage engine)", re.compile(r"^sled::|crossbeam_epoch|^<sled::")),
    ("allocator (mimalloc)", re.compile(r"^_?mi_|mimalloc")),
    ("memcpy/memcmp (libc)", re.compile(r"^__mem|^memcpy|^memmove")),
    ("tokio runtime", re.compile(r"^tokio::|^<tokio::")),
    ("HTTP (hyper, axum, tower)", re.compile(r"hyper|axum|tower|^h2::|^http::")),
    ("JSON (serde_json)", re.compile(r"serde_json|serde::")),
    ("codec (bincode)", re.compile(r"bincode")),
    ("ractor", re.compile(r"ractor")),
    ("agora's own code", re.compile(r"agora::|^<agora::")),
    ("search (tantivy)", re.compile(r"tantivy")),
]


def perf_profile(perf_data):
    text = sh(f"perf report -i {perf_data} --no-children --sort dso,symbol --stdio -g none 2>/dev/null")
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            symbol = re.sub(r"\s+-\s+-\s*$", "", m.group(4)).strip()
            rows.append((float(m.group(1)), m.group(2), m.group(3), symbol))
    groups = {}
    for pct, dso, kind, symbol in rows:
        if kind == "k":
            io = re.search(r"ext4|jbd2|blk|nvme|virtio|iomap|filemap|folio|sync_file|fdatasync|page", symbol)
            name = "kernel: I/O, page cache" if io else "kernel: scheduler, futex, network"
        else:
            name = next((label for label, rx in COMPONENTS if rx.search(symbol)), "other user space")
        groups[name] = groups.get(name, 0.0) + pct
    top = [{"pct": pct, "symbol": symbol[:90], "kernel": kind == "k"} for pct, _, kind, symbol in rows[:20]]
    return {"groups": sorted(groups.items(), key=lambda kv: -kv[1]), "top": top}


def websockets():
    log(f"4. websocket push lag with {SOCKETS} sockets")
    server = Agora()
    try:
        before = server.rss_mib()
        peak = [before]
        buyers = max(SOCKETS // 10, 32)
        cmd = [str(AGORA), "load", "--json", "--target", server.base, "--scenario", "websocket",
               "--sockets", str(SOCKETS), "--buyers", str(buyers), "--concurrency", "32",
               "--duration", str(DUR)]
        log(f"agora load websocket --sockets {SOCKETS} --buyers {buyers}")
        with open(OUT / "load-websocket.err", "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            while proc.poll() is None:
                peak.append(server.rss_mib())
                time.sleep(0.5)
            stdout = proc.stdout.read()
        report = json.loads(stdout)
        (OUT / "load-websocket.json").write_text(stdout)
    finally:
        server.stop()
    return {"report": report, "rss_before": before, "rss_peak": max(peak), "buyers": buyers}


def peer_script(script, env, tsv, key, rate):
    """Runs one of ../shared/peers' scripts; its runs.tsv rows by `key`."""
    with open(OUT / f"{script}.txt", "w") as out, open(OUT / f"{script}.err", "w") as err:
        subprocess.run(["bash", str(PEERS / f"{script}.sh")], env={**os.environ, **env},
                       check=True, stdout=out, stderr=err)
    rows = {}
    for line in Path(tsv).read_text().splitlines()[1:]:
        c = line.split("\t")
        rows[key(c)] = {rate: float(c[4]), "p50": float(c[5]), "p99": float(c[6])}
    return rows


def pg_and_redis():
    log("5. peers: PostgreSQL (pgbench) and Redis (Lua)")
    pg = peer_script("bench_pg", {"RUNS": "1", "DUR": str(DUR), "CLIENTS": "64", "PGPORT": PG_PORT},
                     "/tmp/peers-pg/runs.tsv", lambda c: f"{c[1]}-{c[3]}", "tps")
    redis = peer_script("bench_redis", {"RUNS": "1", "CLIENTS": "64", "RPORT": REDIS_PORT,
                                        "N": "100000" if QUICK else "200000"},
                        "/tmp/peers-redis/runs.tsv", lambda c: f"{c[2]}-{c[1]}", "rps")
    return {"pg": pg, "redis": redis}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    saved = OUT / "results.json"
    if os.environ.get("RENDER_ONLY") == "1":
        # Re-render the last run's results (after a change to render.py).
        render.splice(ROOT / "BENCHMARKS.md", render.render(json.loads(saved.read_text())))
        return
    # `STAGES=peers` (say) re-runs only those stages and keeps the others'
    # results from the last run.
    results = json.loads(saved.read_text()) if "STAGES" in os.environ and saved.exists() else {}
    results.update({"machine": machine(), "quick": QUICK, "rounds": ROUNDS, "dur": DUR})
    for stage, run in [("http", item_reads), ("search", search_and_memory), ("writes", durable_writes),
                       ("ws", websockets), ("peers", pg_and_redis)]:
        if stage in STAGES:
            results[stage] = run()
            saved.write_text(json.dumps(results, indent=1))
    markdown = render.render(results)
    (OUT / "BENCHMARKS.generated.md").write_text(markdown)
    if QUICK:
        log(f"quick run: {OUT}/BENCHMARKS.generated.md (BENCHMARKS.md left as it was)")
    else:
        render.splice(ROOT / "BENCHMARKS.md", markdown)
        log("BENCHMARKS.md regenerated")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in started_processes:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
