#!/usr/bin/env bash
# The flights pipeline on PostgreSQL with its steps one at a time (threads = 1) and in
# parallel (threads = 4): `brigade bench pipeline` full rebuilds, medians per step and in all.
#
# Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash bench/parallel-steps.sh
# env:   BIN=target/release/brigade  RUNS=5  POOL=8  WORK=/tmp  DATA=../shared/data/nycflights13
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/brigade}
RUNS=${RUNS:-5}
POOL=${POOL:-8}
WORK=${WORK:-/tmp}
DATA=$(cd "${DATA:-$ROOT/../shared/data/nycflights13}" && pwd)
: "${DATABASE_URL:?set DATABASE_URL to an empty PostgreSQL database}"

for threads in 1 4; do
  APP=$WORK/brigade-parallel-$threads
  rm -rf "$APP"; mkdir -p "$APP"
  cp -r "$ROOT/examples/flights/models" "$ROOT/examples/flights/pipelines" "$APP/"
  sed -i "s#\"data/nycflights13/flights.csv\"#\"$DATA/flights.csv.gz\"#; s#\"data/nycflights13/#\"$DATA/#; s#^run_on_start.*##" "$APP/pipelines/flights.toml"
  sed -i "0,/^schedule/s//threads = $threads\nschedule/" "$APP/pipelines/flights.toml"
  printf '[database]\nurl = "%s"\npool_size = %s\n' "$DATABASE_URL" "$POOL" > "$APP/brigade.toml"
  echo "== threads = $threads"
  "$BIN" bench pipeline flights --runs "$RUNS" --dir "$APP"
done
