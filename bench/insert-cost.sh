#!/usr/bin/env bash
# The cost of a write feature on REST inserts: one binary, one store, `wrk -t2 -c64` POSTs of
# one record each (bench/wrk/insert.lua) as a superuser into an empty `posts` collection.
# Run it for two binaries (before and after a change) back to back to compare.
#
# usage: bench/insert-cost.sh BRIGADE_BIN sqlite|postgres [RUNS=3] [DURATION=10s]
# Prints one line per run: rps, p50 and p99 in ms. PostgreSQL: a throwaway cluster
# (PG_BIN [/usr/lib/postgresql/15/bin], default config, fsync on), needs root for runuser.
set -euo pipefail
BIN=${1:?brigade binary}; STORE=${2:?sqlite or postgres}
RUNS=${RUNS:-3}; DURATION=${DURATION:-10s}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d); chmod 755 "$work"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    [ -d "$work/pg" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$STORE" = postgres ]; then
    pgport=$(port); mkdir -p "$work/pg"; chown postgres "$work/pg"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
    touch "$work/pg.log"; chown postgres "$work/pg.log"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg" -o "-p $pgport -k /tmp" -l "$work/pg.log" start >/dev/null
    runuser -u postgres -- "$PG_BIN/createdb" -h /tmp -p "$pgport" brigade
    db="postgres://postgres@127.0.0.1:$pgport/brigade"
else
    db="sqlite://$work/app/data/brigade.db"
fi
mkdir -p "$work/app"
printf '[rate_limit]\ndefault = "off"\nauth = "off"\n' > "$work/app/brigade.toml"
echo 'Passw0rd!2345-long' | BRIGADE_DATABASE_URL=$db "$BIN" superuser create admin@example.com --password-stdin --dir "$work/app" >/dev/null
p=$(port)
BRIGADE_DATABASE_URL=$db BRIGADE_LOG=warn "$BIN" serve --dir "$work/app" --addr "127.0.0.1:$p" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "127.0.0.1:$p/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fs "127.0.0.1:$p/api/auth/login" -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.com","password":"Passw0rd!2345-long"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
curl -fs "127.0.0.1:$p/api/collections" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"posts","fields":[{"name":"title","type":"text"},{"name":"views","type":"integer"},{"name":"status","type":"text"}],"indexes":[["views"]]}' >/dev/null
url="http://127.0.0.1:$p/api/collections/posts/records"
wrk -t2 -c64 -d3s -H "Authorization: Bearer $token" -s "$here/wrk/insert.lua" "$url" >/dev/null
for i in $(seq "$RUNS"); do
    wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $token" -s "$here/wrk/insert.lua" "$url" \
        | grep '^BENCH' | sed -E 's/.* rps=([0-9.]+) p50_ms=([0-9.]+) .* p99_ms=([0-9.]+) .* non2xx=([0-9]+).*/rps=\1 p50_ms=\2 p99_ms=\3 non2xx=\4/'
done
