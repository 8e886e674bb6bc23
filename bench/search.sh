#!/usr/bin/env bash
# Search benchmark: builds an app directory holding the PostgreSQL 15 manual, ingests it into
# one index per embedder (timed, with peak RSS), then scores each index on the evaluation
# questions (recall@5, MRR@10 per mode) and times its queries — see BENCHMARKS.md.
#
#   bash bench/search.sh [questions.jsonl] [app dir]
#
# The `local:` MiniLM index is included when BRIGADE_MINILM points at a sentence-transformers
# directory (scripts/fetch-minilm.sh DIR fetches all-MiniLM-L6-v2); it embeds ~8-9 chunks/s
# on 2 cores, so its ingest takes a long time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
QUESTIONS="${1:-$ROOT/eval/postgresql-docs/questions.jsonl}"
APP="${2:-/tmp/brigade-pgdocs}"
CORPUS="$ROOT/../shared/data/postgresql-docs/postgresql-15-html.tar.gz"
BIN="$ROOT/target/release/brigade"

cargo build --release -p brigade --manifest-path "$ROOT/Cargo.toml" >/dev/null
mkdir -p "$APP/docs"
if [ ! -d "$APP/docs/html" ]; then
  tar xzf "$CORPUS" -C "$APP/docs"
fi
{
  printf '[[search.indexes]]\nname = "pg_builtin"\npath = "docs/**/*.html"\n'
  if [ -n "${BRIGADE_MINILM:-}" ]; then
    printf '\n[[search.indexes]]\nname = "pg_minilm"\npath = "docs/**/*.html"\nembedder = "local:%s"\n' "$BRIGADE_MINILM"
  fi
} > "$APP/brigade.toml"

for index in $(grep -o 'name = "[a-z_]*"' "$APP/brigade.toml" | cut -d'"' -f2); do
  echo "== ingest $index"
  /usr/bin/time -f "   wall %e s, peak RSS %M KiB" "$BIN" search ingest "$index" --dir "$APP"
done
echo "== scores ($QUESTIONS)"
"$BIN" bench search --questions "$QUESTIONS" --repeat 3 --dir "$APP" --json "$APP/scores.json"
