#!/usr/bin/env bash
# Search at 100k chunks: the PostgreSQL manual copied COPIES times (each copy's page titles
# suffixed, so every chunk is embedded anew), ingested with the builtin embedder, then the
# evaluation questions timed in every mode (the HNSW graph is built before timing).
#
#   COPIES=11 bash bench/search-100k.sh [app dir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
APP="${1:-/tmp/brigade-pg100k}"
COPIES="${COPIES:-11}"
CORPUS="$ROOT/../shared/data/postgresql-docs/postgresql-15-html.tar.gz"
BIN="$ROOT/target/release/brigade"

cargo build --release -p brigade --manifest-path "$ROOT/Cargo.toml" >/dev/null
mkdir -p "$APP/scaled"
for i in $(seq 1 "$COPIES"); do
  dir="$APP/scaled/copy$i"
  if [ ! -d "$dir/html" ]; then
    mkdir -p "$dir"
    tar xzf "$CORPUS" -C "$dir"
    sed -i "s|</title>| (copy $i)</title>|" "$dir"/html/*.html
  fi
done
printf '[[search.indexes]]\nname = "pg_scaled"\npath = "scaled/**/*.html"\n' > "$APP/brigade.toml"
/usr/bin/time -f "   wall %e s, peak RSS %M KiB" "$BIN" search ingest pg_scaled --dir "$APP"
/usr/bin/time -f "   wall %e s, peak RSS %M KiB" "$BIN" bench search --index pg_scaled \
  --questions "$ROOT/eval/postgresql-docs/questions.jsonl" --repeat 3 --dir "$APP" --json "$APP/scores.json"
