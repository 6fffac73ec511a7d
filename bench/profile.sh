#!/usr/bin/env bash
# Instruction and allocation profile of one server under a bounded load:
# the release `oidcgate` binary (or the no-op server) runs under
# `valgrind --tool=callgrind` with collection switched on only while wrk
# sends requests, so start-up and discovery are not counted. Prints the
# instructions and allocator calls per request and the functions with the
# most instructions of their own. Unlike requests/s, these counts do not
# depend on what else the machine is doing.
#
# Usage: bench/profile.sh TARGET [TARGET...]
#   TARGET: noop, noop-close, fa-excluded, fa, fa-close, proxy
#   (proxy forwards to the no-op server, which is not profiled)
# Environment: DURATION seconds of wrk per target (10), CONNECTIONS (4),
#   TOP functions listed (25), SESSION_GROUPS (2), SKIP_BUILD=1,
#   CARGO_TARGET_DIR, BIN_DIR (binaries to use instead of the release build:
#   oidcgate and examples/noop, examples/bench_gate), OUT (directory to keep the callgrind files in;
#   default: a temporary directory removed on exit).
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-4}
TOP=${TOP:-25}
[[ $# -ge 1 ]] || { sed -n '2,17p' "$0" >&2; exit 2; }

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --quiet --bin oidcgate --example noop --example bench_gate
fi
BIN=${BIN_DIR:-$TARGET/release}
for tool in wrk curl valgrind callgrind_control python3; do
    command -v "$tool" >/dev/null || { echo "profile.sh: $tool is required (apt-get install wrk curl valgrind python3)" >&2; exit 2; }
done

WORK=$(mktemp -d)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LIFETIME=$(( $# * (DURATION + 120) + 120 ))

free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}
wait_ok() { # url, seconds
    local i
    for i in $(seq $(( $2 * 10 ))); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]] && return 0
        sleep 0.1
    done
    echo "profile.sh: $1 never answered 200" >&2
    exit 1
}

timeout "$LIFETIME" "$BIN/examples/bench_gate" --dir "$WORK" --lifetime "$LIFETIME" \
    --groups "${SESSION_GROUPS:-2}" >"$WORK/idp.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1200); do grep -q '^ready' "$WORK/idp.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$WORK/idp.log" || { cat "$WORK/idp.log" >&2; exit 1; }
COOKIE=$(cat "$WORK/cookie")
UPSTREAM_PORT=$(free_port)
timeout "$LIFETIME" "$BIN/examples/noop" --listen "127.0.0.1:$UPSTREAM_PORT" --lifetime "$LIFETIME" \
    >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_ok "http://127.0.0.1:$UPSTREAM_PORT/" 30

FWD=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Proto: https"
     -H "X-Forwarded-Host: app.example.com" -H "X-Forwarded-For: 203.0.113.7")
for target in "$@"; do
    port=$(free_port)
    url="http://127.0.0.1:$port/"
    hdrs=(-H "Accept: text/html" -H "Cookie: $COOKIE")
    case $target in
        noop | noop-close)
            cmd=("$BIN/examples/noop" --listen "127.0.0.1:$port" --lifetime "$LIFETIME")
            ready=$url
            hdrs+=("${FWD[@]}" -H "X-Forwarded-Uri: /app/dashboard?tab=2") ;;
        fa | fa-close | fa-excluded | proxy)
            cfg="$WORK/$target.yaml"
            { cat "$WORK/provider.yaml"; echo "listen: 127.0.0.1:$port"; echo "excludedURLs: [/public]"; } >"$cfg"
            cmd=("$BIN/oidcgate" --config "$cfg")
            ready="${url}readyz"
            case $target in
                fa-excluded) hdrs+=("${FWD[@]}" -H "X-Forwarded-Uri: /public/site.css") ;;
                proxy) echo "upstream: http://127.0.0.1:$UPSTREAM_PORT" >>"$cfg"; url="${url}app/dashboard?tab=2" ;;
                *) hdrs+=("${FWD[@]}" -H "X-Forwarded-Uri: /app/dashboard?tab=2") ;;
            esac ;;
        *) echo "profile.sh: unknown target $target" >&2; exit 2 ;;
    esac
    [[ $target == *-close ]] && hdrs+=(-H "Connection: close")
    file="$OUT/callgrind.$target.out"
    TOKIO_WORKER_THREADS=1 timeout "$LIFETIME" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$file" "${cmd[@]}" >"$WORK/$target.log" 2>&1 &
    vg=$!
    PIDS+=($vg)
    wait_ok "$ready" 120
    # valgrind is timeout's child
    vgpid=$(pgrep -P "$vg" | head -1)
    code=$(curl -s -o /dev/null -w '%{http_code}' "${hdrs[@]}" "$url")
    [[ $code == 200 ]] || { echo "profile.sh: $target answered $code" >&2; exit 1; }
    callgrind_control -i on "$vgpid" >/dev/null
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${hdrs[@]}" "$url")
    callgrind_control -i off "$vgpid" >/dev/null
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx/ {print $NF}' <<<"$out")
    kill "$vg"
    wait "$vg" 2>/dev/null || true
    echo "## $target ($(cut -d' ' -f1-3 /proc/loadavg) loadavg)"
    [[ -z $bad ]] || echo "WARNING: $bad answers were not 2xx/3xx"
    python3 "$ROOT/bench/callgrind_summary.py" "$file" "$n" "$TOP"
    echo
done
