#!/usr/bin/env bash
# Redis-mode cache throughput against redis-benchmark on the same server in
# the same run: starts a private redis-server on a free loopback port, then
# REPS times, back to back, `redis-benchmark -t get,set -c CLIENTS -n
# REQUESTS -q` and the `bench_cache` example (the `Caches` API, same client
# count and total) in redis, hybrid and memory modes (memory needs no server;
# its ratio only says how far the API is from the network). redis-benchmark
# also runs with `-P 16` (pipelined) as an upper bound for a multiplexing
# client. Prints every run and a summary with the median ratios.
#
# Usage: bench/cache.sh
# Environment: REPS (3), CLIENTS (32), REQUESTS (200000), POOL (the
#   configured Redis pool size; default: the gate's default), SKIP_BUILD=1,
#   CARGO_TARGET_DIR.
#
# Placement: with two or more CPUs, redis-server runs on CPU 0 and the client
# (redis-benchmark or bench_cache) on CPU 1. Every process stops by itself.
set -euo pipefail

REPS=${REPS:-3}
CLIENTS=${CLIENTS:-32}
REQUESTS=${REQUESTS:-200000}

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --quiet --example bench_cache
fi
BIN="$TARGET/release"
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "cache.sh: $tool is required (apt-get install redis-server)" >&2; exit 2; }
done

SRV=()
LOAD=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SRV=(taskset -c 0)
    LOAD=(taskset -c 1)
fi
LIMIT=300

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while :; do
    PORT=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
done
timeout $(( REPS * LIMIT + 60 )) "${SRV[@]}" redis-server --port "$PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
    redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done

POOL_ARG=()
[[ -n "${POOL:-}" ]] && POOL_ARG=(--pool "$POOL")

RESULTS="$WORK/results"
: >"$RESULTS"
for rep in $(seq "$REPS"); do
    # The baseline, then the same with 16-deep pipelining: an upper bound
    # for a client that multiplexes many callers over few connections.
    for pipeline in 1 16; do
        who=redis-benchmark
        [[ $pipeline == 1 ]] || who=redis-benchmark-P$pipeline
        out=$(timeout "$LIMIT" "${LOAD[@]}" redis-benchmark -p "$PORT" -t get,set -c "$CLIENTS" \
            -n "$REQUESTS" -P "$pipeline" -q 2>&1 | tr '\r' '\n')
        # Lines look like "SET: 123456.79 requests per second, p50=0.135 msec".
        for op in SET GET; do
            line=$(grep "^$op: " <<<"$out" | tail -1)
            rps=$(awk '{print $2}' <<<"$line")
            p50=$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$line")
            p50=$(awk -v m="${p50:-0}" 'BEGIN {printf "%.1f", m * 1000}')
            echo "$rep $who ${op,,} $rps $p50" | tee -a "$RESULTS" >&2
        done
    done
    out=$(timeout "$LIMIT" "${LOAD[@]}" "$BIN/examples/bench_cache" --redis "127.0.0.1:$PORT" \
        --modes redis,hybrid,memory --clients "$CLIENTS" --requests "$REQUESTS" "${POOL_ARG[@]}")
    echo "$out" >&2
    grep -q 'errors=[1-9]' <<<"$out" && echo "cache.sh: errors reported; this run is not valid" >&2
    awk -v rep="$rep" '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        printf "%s caches-%s %s %s %.1f\n", rep, f["mode"], f["op"], f["ops_per_sec"], f["p50_us"]
    }' <<<"$out" >>"$RESULTS"
done

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); -c $CLIENTS -n $REQUESTS; $REPS repetitions; pinning: ${SRV[*]:-none} / ${LOAD[*]:-none}"
echo
echo "| client | op | ops/s (median) | p50 µs (median) | ratio to redis-benchmark (median of per-rep ratios) |"
echo "|---|---|---:|---:|---:|"
awk '{print $2, $3}' "$RESULTS" | sort -u | while read -r who op; do
    base_op=$op
    [[ $op == set_sync ]] && base_op=set
    rps=$(awk -v w="$who" -v o="$op" '$2 == w && $3 == o {print $4}' "$RESULTS" | median)
    p50=$(awk -v w="$who" -v o="$op" '$2 == w && $3 == o {print $5}' "$RESULTS" | median)
    ratio=$(awk -v w="$who" -v o="$op" -v b="$base_op" \
        '$2 == "redis-benchmark" && $3 == b {base[$1] = $4} $2 == w && $3 == o {r[$1] = $4}
         END {for (k in r) printf "%.3f\n", r[k] / base[k]}' "$RESULTS" | median)
    printf '| %s | %s | %.0f | %s | %s |\n' "$who" "$op" "$rps" "$p50" "$ratio"
done
