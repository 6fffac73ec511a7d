#!/usr/bin/env bash
# Load benchmark on loopback: wrk against a no-op hyper server (the baseline)
# and against the release `oidcgate` binary in forward-auth and reverse-proxy
# modes (and forward-auth with Redis and hybrid caches when redis-server is
# installed), back to back, REPS times. Prints requests/s, p50/p99 latency and
# the ratio of each gate mode to the no-op server of the same repetition, then
# the median over the repetitions.
#
# Usage: bench/load.sh            (from the repository root or anywhere)
# Environment: REPS (3), DURATION seconds per wrk run (10), THREADS (2),
#   CONNECTIONS (32), MODES (default "fa-excluded fa proxy fa-redis
#   fa-hybrid"), SESSION_GROUPS (groups in the session, default 2: one cookie;
#   52 gives a three-cookie session),
#   SKIP_BUILD=1 to reuse existing release binaries, CARGO_TARGET_DIR.
#
# Placement: with two or more CPUs, every server (no-op, oidcgate, Redis) is
# pinned to CPU 0 and wrk to CPU 1 with taskset; Tokio then runs one worker
# thread in each server. The test provider (idle once discovery is done) is
# not pinned. Every process is started under `timeout` and stops by itself.
#
# Besides requests/s, every run records the CPU time (user + system, from
# /proc) the server processes of that target used per request: the proxy
# target counts oidcgate and the no-op upstream, the Redis targets oidcgate
# and redis-server. On a machine where other work competes for the pinned
# CPUs, requests/s follows the share of CPU the servers get, while CPU per
# request does not; the load average at the end of each run is printed so
# that disturbed runs can be recognised.
set -euo pipefail

REPS=${REPS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
MODES=${MODES:-"fa-excluded fa proxy fa-redis fa-hybrid"}

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --quiet --bin oidcgate --example noop --example bench_gate
fi
BIN="$TARGET/release"

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "load.sh: $tool is required (apt-get install $tool)" >&2; exit 2; }
done
if ! command -v redis-server >/dev/null; then
    MODES=$(tr ' ' '\n' <<<"$MODES" | grep -v -e '^fa-redis$' -e '^fa-hybrid$' | tr '\n' ' ')
    echo "redis-server not installed: Redis modes skipped" >&2
fi

SRV=()
LOAD=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SRV=(taskset -c 0)
    LOAD=(taskset -c 1)
fi

n_modes=$(wc -w <<<"$MODES")
LIFETIME=$(( (REPS * (n_modes + 1) * (DURATION + 3)) + 120 ))

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nobody answers on (checked, not reserved).
free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# Waits until URL answers 200 (at most 30 s).
wait_ok() {
    local url=$1 i
    for i in $(seq 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    echo "load.sh: $url never answered 200" >&2
    exit 1
}

declare -A SERVER_PID
start() { # name, command...
    local name=$1 i
    shift
    timeout "$LIFETIME" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    # The server itself is timeout's child (taskset execs it).
    SERVER_PID[$name]=$!
    for i in $(seq 50); do
        if pgrep -P "$!" >/dev/null; then
            SERVER_PID[$name]=$(pgrep -P "$!" | head -1)
            break
        fi
        sleep 0.02
    done
}

# CPU time (clock ticks, user + system) used so far by the named servers.
cpu_ticks() {
    local total=0 name
    for name in "$@"; do
        total=$(( total + $(sed 's/^.*) //' "/proc/${SERVER_PID[$name]}/stat" | awk '{print $12 + $13}') ))
    done
    echo "$total"
}
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# --- the provider and the session cookie ---------------------------------
start idp "$BIN/examples/bench_gate" --dir "$WORK" --lifetime "$LIFETIME" --groups "${SESSION_GROUPS:-2}"
for i in $(seq 300); do
    grep -q '^ready' "$WORK/idp.log" 2>/dev/null && break
    sleep 0.1
done
grep '^ready' "$WORK/idp.log" >&2 || { cat "$WORK/idp.log" >&2; exit 1; }
COOKIE=$(cat "$WORK/cookie")

# --- servers --------------------------------------------------------------
NOOP_PORT=$(free_port)
start noop "${SRV[@]}" "$BIN/examples/noop" --listen "127.0.0.1:$NOOP_PORT" --lifetime "$LIFETIME"
wait_ok "http://127.0.0.1:$NOOP_PORT/"

REDIS_PORT=
if grep -q redis <<<"$MODES"; then
    REDIS_PORT=$(free_port)
    start redis "${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$WORK"
    for i in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
fi

# One oidcgate per mode; fa-excluded is served by the fa gate.
declare -A PORT
GATES=$(tr ' ' '\n' <<<"fa $MODES" | grep -v -e '^fa-excluded$' -e '^$' | awk '!seen[$0]++' | tr '\n' ' ')
for mode in $GATES; do
    PORT[$mode]=$(free_port)
    cfg="$WORK/$mode.yaml"
    {
        cat "$WORK/provider.yaml"
        echo "listen: 127.0.0.1:${PORT[$mode]}"
        echo "excludedURLs: [/public]"
    } >"$cfg"
    case $mode in
        proxy) echo "upstream: http://127.0.0.1:$NOOP_PORT" >>"$cfg" ;;
        fa-redis | fa-hybrid)
            printf 'redis:\n  enabled: true\n  address: 127.0.0.1:%s\n  cacheMode: %s\n' \
                "$REDIS_PORT" "${mode#fa-}" >>"$cfg" ;;
    esac
    start "$mode" "${SRV[@]}" "$BIN/oidcgate" --config "$cfg"
    wait_ok "http://127.0.0.1:${PORT[$mode]}/readyz"
done

# --- requests -------------------------------------------------------------
FWD=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Proto: https"
     -H "X-Forwarded-Host: app.example.com" -H "X-Forwarded-Uri: /app/dashboard?tab=2"
     -H "X-Forwarded-For: 203.0.113.7")
FWD_EXCLUDED=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Proto: https"
     -H "X-Forwarded-Host: app.example.com" -H "X-Forwarded-Uri: /public/site.css"
     -H "X-Forwarded-For: 203.0.113.7")
COMMON=(-H "Accept: text/html" -H "Cookie: $COOKIE")
url_of() {
    case $1 in
        noop) echo "http://127.0.0.1:$NOOP_PORT/app/dashboard?tab=2" ;;
        proxy) echo "http://127.0.0.1:${PORT[proxy]}/app/dashboard?tab=2" ;;
        fa-excluded) echo "http://127.0.0.1:${PORT[fa]}/" ;;
        *) echo "http://127.0.0.1:${PORT[$1]}/" ;;
    esac
}
headers_of() {
    case $1 in
        proxy) HDRS=("${COMMON[@]}") ;;
        fa-excluded) HDRS=("${COMMON[@]}" "${FWD_EXCLUDED[@]}") ;;
        *) HDRS=("${COMMON[@]}" "${FWD[@]}") ;;
    esac
}

# Every gate must let the cookie through (200) and send a browser without
# it to the provider (302): otherwise wrk would be timing redirects. The
# fa-excluded target asks the fa gate about an excluded path (same request
# size, cookie included): the cost of the door without the session work.
check() {
    local mode=$1 code
    headers_of "$mode"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${HDRS[@]}" "$(url_of "$mode")")
    [[ $code == 200 ]] || { echo "load.sh: $mode answered $code with the session" >&2; exit 1; }
    if [[ $mode != noop && $mode != fa-excluded ]]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: text/html" "${FWD[@]}" "$(url_of "$mode")")
        [[ $code == 302 ]] || { echo "load.sh: $mode answered $code without a session" >&2; exit 1; }
    fi
}

# wrk latency text (e.g. 512.00us, 1.20ms, 2.00s) to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# The server processes that do the work of each target.
servers_of() {
    case $1 in
        noop | fa) echo "$1" ;;
        fa-excluded) echo fa ;;
        proxy) echo "proxy noop" ;;
        fa-redis | fa-hybrid) echo "$1 redis" ;;
    esac
}

RESULTS="$WORK/results"
: >"$RESULTS"
run() { # rep, mode
    local rep=$1 mode=$2 out rps p50 p99 errs n t0 t1 cpu load
    check "$mode"
    headers_of "$mode"
    # shellcheck disable=SC2046
    t0=$(cpu_ticks $(servers_of "$mode"))
    out=$("${LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${HDRS[@]}" "$(url_of "$mode")")
    # shellcheck disable=SC2046
    t1=$(cpu_ticks $(servers_of "$mode"))
    load=$(cut -d' ' -f1 /proc/loadavg)
    check "$mode"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    cpu=$(awk -v t=$(( t1 - t0 )) -v us="$TICK_US" -v n="$n" 'BEGIN {printf "%.2f", t * us / n}')
    errs=$(awk '/Non-2xx or 3xx/ {print $NF} /Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    [[ -z $errs ]] || echo "load.sh: rep $rep $mode: $errs" >&2
    echo "$rep $mode $rps $p50 $p99 $cpu $load" | tee -a "$RESULTS" >&2
}

echo "rep mode req/s p50_ms p99_ms server_cpu_us_per_req loadavg" >&2
for rep in $(seq "$REPS"); do
    run "$rep" noop
    for mode in $MODES; do run "$rep" "$mode"; done
done

# --- summary --------------------------------------------------------------
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s; $REPS repetitions; pinning: ${SRV[*]:-none} / ${LOAD[*]:-none}"
echo
echo "| target | req/s | req/s ratio to no-op | p50 ms | p99 ms | server CPU µs/req | CPU ratio (no-op / target) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# Medians over the repetitions; ratios are per repetition, then the median.
for mode in noop $MODES; do
    col() { awk -v m="$mode" -v c="$1" '$2 == m {print $c}' "$RESULTS" | median; }
    ratio() {
        awk -v m="$mode" -v c="$1" -v inv="$2" '$2 == "noop" {base[$1] = $c} $2 == m {r[$1] = $c}
            END {for (k in r) printf "%.3f\n", inv ? base[k] / r[k] : r[k] / base[k]}' "$RESULTS" | median
    }
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$mode" "$(col 3)" "$(ratio 3 0)" \
        "$(col 4)" "$(col 5)" "$(col 6)" "$(ratio 6 1)"
done
