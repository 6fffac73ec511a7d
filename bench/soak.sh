#!/usr/bin/env bash
# Soak run: mixed traffic against the oidcgate binary (reverse-proxy mode) on
# loopback for DURATION seconds at a bounded rate, sampling the gate's memory,
# open file descriptors and threads every 10 s into a CSV.
#
# Traffic, from CONCURRENCY workers sharing RATE requests per second: a full
# browser login (gate -> provider -> callback -> upstream), SESSION_REQUESTS
# authenticated requests (tokens live TOKEN_TTL s and the refresh grace is
# most of it, so sessions refresh every few seconds), BEARER_REQUESTS bearer
# requests with a client-credentials token, then a logout; and again.
#
# Usage: bench/soak.sh
# Environment: DURATION (s, 1800), RATE (requests/s over all workers, 20),
#   CONCURRENCY (4), SESSION_REQUESTS (60), BEARER_REQUESTS (5),
#   TOKEN_TTL (s, 60), REDIS=1 (hybrid caches on a private redis-server),
#   PROFILE (cargo profile, release), SKIP_BUILD=1, CARGO_TARGET_DIR,
#   OUT (CSV path, bench/soak-<date>.csv).
#
# CSV columns: seconds since start, RSS (KiB), open file descriptors,
# threads, established TCP connections to the gate's port (the proxy for the
# tokio task count: the gate spawns one task per connection and a fixed set
# of background tasks, and exposes no task counter), and the cumulative
# request counts by status class. Every process binds 127.0.0.1 only, on free
# ports, runs under `timeout`, and stops by itself.
set -euo pipefail

DURATION=${DURATION:-1800}
RATE=${RATE:-20}
CONCURRENCY=${CONCURRENCY:-4}
SESSION_REQUESTS=${SESSION_REQUESTS:-60}
BEARER_REQUESTS=${BEARER_REQUESTS:-5}
TOKEN_TTL=${TOKEN_TTL:-60}
PROFILE=${PROFILE:-release}
SAMPLE_EVERY=10

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$ROOT/bench/soak-$(date -u +%Y%m%dT%H%M%SZ).csv}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --profile "$PROFILE" --quiet --bin oidcgate --example soak_idp --example noop
fi
case $PROFILE in dev) BIN="$TARGET/debug" ;; *) BIN="$TARGET/$PROFILE" ;; esac
for tool in curl timeout; do
    command -v "$tool" >/dev/null || { echo "soak.sh: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
LIMIT=$(( DURATION + 120 ))
start() { # name cmd...
    local name=$1
    shift
    timeout "$LIMIT" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}
wait_for() { # what cmd...: poll for up to 30 s
    local what=$1
    shift
    for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "soak.sh: $what did not come up" >&2
    cat "$WORK"/*.log >&2
    exit 1
}

# --- provider, upstream, optional Redis, gate --------------------------------
start idp "$BIN/examples/soak_idp" --dir "$WORK" --lifetime "$LIMIT" --token-ttl "$TOKEN_TTL"
wait_for provider grep -q '^ready' "$WORK/idp.log"
UP_PORT=$(free_port)
start upstream "$BIN/examples/noop" --listen "127.0.0.1:$UP_PORT" --lifetime "$LIMIT"
GATE_PORT=$(free_port)
{
    cat "$WORK/provider.yaml"
    echo "listen: 127.0.0.1:$GATE_PORT"
    echo "upstream: http://127.0.0.1:$UP_PORT"
    echo "refreshGracePeriodSeconds: $(( TOKEN_TTL * 5 / 6 ))"
    echo "logLevel: warn"
} >"$WORK/gate.yaml"
if [[ -n "${REDIS:-}" ]]; then
    command -v redis-server >/dev/null || { echo "soak.sh: REDIS=1 needs redis-server" >&2; exit 2; }
    REDIS_PORT=$(free_port)
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK"
    wait_for redis bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT"
    printf 'redis:\n  enabled: true\n  address: 127.0.0.1:%s\n  cacheMode: hybrid\n' "$REDIS_PORT" >>"$WORK/gate.yaml"
fi
start gate "$BIN/oidcgate" run --config "$WORK/gate.yaml"
GATE_PID=${PIDS[-1]}
wait_for gate curl -sf "http://127.0.0.1:$GATE_PORT/healthz"
# `timeout` forks the gate: sample the child.
GPID=$(pgrep -P "$GATE_PID" -x oidcgate || echo "$GATE_PID")
GATE="http://127.0.0.1:$GATE_PORT"
read -r CLIENT_ID CLIENT_SECRET TOKEN_URL <"$WORK/client"

# --- traffic -----------------------------------------------------------------
PAUSE=$(awk -v r="$RATE" -v c="$CONCURRENCY" 'BEGIN { printf "%.3f", c / r }')
END=$(( $(date +%s) + DURATION ))
worker() { # n
    local n=$1 jar="$WORK/jar.$n" log="$WORK/status.$n" token="" token_at=0 i code
    : >"$log"
    hit() { code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || echo 000); echo "$code" >>"$log"; sleep "$PAUSE"; }
    while (( $(date +%s) < END )); do
        rm -f "$jar"
        hit -L --max-redirs 5 -c "$jar" -b "$jar" -H 'accept: text/html' "$GATE/app/login"
        for (( i = 0; i < SESSION_REQUESTS && $(date +%s) < END; i++ )); do
            hit -c "$jar" -b "$jar" -H 'accept: text/html' "$GATE/app/page/$i"
        done
        if (( $(date +%s) - token_at > TOKEN_TTL / 2 )); then
            token=$(curl -s --max-time 10 -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials "$TOKEN_URL" |
                sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
            token_at=$(date +%s)
        fi
        for (( i = 0; i < BEARER_REQUESTS; i++ )); do
            hit -H "authorization: Bearer $token" -H 'accept: application/json' "$GATE/api/item/$i"
        done
        hit -c "$jar" -b "$jar" -H 'accept: text/html' "$GATE/oauth2/callback/logout"
    done
}
for n in $(seq "$CONCURRENCY"); do
    worker "$n" &
    PIDS+=($!)
done

# --- sampling ----------------------------------------------------------------
counts() { # 2xx 3xx 4xx 5xx/000 over every worker so far
    cat "$WORK"/status.* 2>/dev/null | awk '
        /^2/ { a++ } /^3/ { b++ } /^4/ { c++ } /^5|^000/ { d++ }
        END { printf "%d,%d,%d,%d", a, b, c, d }'
}
sample() { # seconds
    local rss fds threads conns hex
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GPID/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$GPID/status")
    fds=$(find "/proc/$GPID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    hex=$(printf '%04X' "$GATE_PORT")
    conns=$(awk -v p=":$hex" '$2 ~ p"$" && $4 == "01"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | wc -l)
    echo "$1,$rss,$fds,$threads,$conns,$(counts)"
}
echo "seconds,rss_kib,open_fds,threads,gate_connections,status_2xx,status_3xx,status_4xx,status_5xx_or_failed" >"$OUT"
START=$(date +%s)
while (( $(date +%s) < END )) && [[ -d /proc/$GPID ]]; do
    sample $(( $(date +%s) - START )) >>"$OUT"
    sleep "$SAMPLE_EVERY"
done
sample $(( $(date +%s) - START )) >>"$OUT"
[[ -d /proc/$GPID ]] || { echo "soak.sh: the gate exited" >&2; tail -20 "$WORK/gate.log" >&2; exit 1; }
wait "${PIDS[@]: -$CONCURRENCY}" 2>/dev/null || true

first=$(sed -n 2p "$OUT")
last=$(tail -1 "$OUT")
echo "soak: ${DURATION}s at ~${RATE} req/s, ${CONCURRENCY} workers; samples in $OUT"
echo "  first: $first"
echo "  last:  $last"
awk -F, 'NR == 2 { r0 = $2; f0 = $3 } END { printf "  rss %+.1f%%, open fds %+d\n", ($2 - r0) * 100 / r0, $3 - f0 }' "$OUT"
