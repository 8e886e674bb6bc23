#!/usr/bin/env bash
# Fuzzes a fresh Brigade app against its own OpenAPI document with schemathesis (all checks),
# authenticated as a superuser. Exits non-zero when schemathesis reports a failure.
# scripts/openapi-fuzz.toml pins what keeps the run from undoing itself and lists, with the
# reason for each, the operations whose rules JSON Schema cannot express.
#
#   scripts/openapi-fuzz.sh [extra schemathesis arguments]
#
# Environment: FUZZ_MAX_EXAMPLES (default 50 per operation), FUZZ_VENV (default
# target/openapi-fuzz/venv), BRIGADE_BIN (default: built with cargo), SCHEMATHESIS_VERSION.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FUZZ_VENV:-$root/target/openapi-fuzz/venv}"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
max_examples="${FUZZ_MAX_EXAMPLES:-50}"

if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

bin="${BRIGADE_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --quiet -p brigade)
    bin="$root/target/debug/brigade"
fi

work="$(mktemp -d)"
server_pid=""
report_dir="${FUZZ_REPORT_DIR:-$root/target/openapi-fuzz/report}"
mkdir -p "$report_dir"
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    # The server's log outlives the run, beside the report, to explain a failure.
    if [ -f "$work/server.log" ]; then cp "$work/server.log" "$report_dir/server.log"; fi
    rm -rf "$work"
}
trap cleanup EXIT

app="$work/app"
"$bin" init "$app" >/dev/null
mkdir -p "$app/docs"
printf '# Brigade\n\nBrigade is a backend with collections, pipelines and search.\n' >"$app/docs/intro.md"
cat >>"$app/brigade.toml" <<'EOF'

[rate_limit]
default = "off"
auth = "off"

[[search.indexes]]
name = "docs"
path = "docs/**/*.md"
EOF
email="fuzz-admin@example.com"
password="Fuzz-admin-pass-1!"
printf '%s\n' "$password" | "$bin" superuser create "$email" --password-stdin --dir "$app" >/dev/null
# The account whose roles the fuzzer changes (see openapi-fuzz.toml).
printf '%s\n' "$password" | "$bin" superuser create fuzz-target@example.com --password-stdin --dir "$app" >/dev/null

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# A token that outlives the run; the fuzzer logs in again never.
BRIGADE_AUTH_ACCESS_TOKEN_TTL=6h "$bin" serve --dir "$app" --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

token="$(curl -fsS "$base/api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\": \"$email\", \"password\": \"$password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')

# Collections with every field type, required and optional fields and a relation. (A
# relation to accounts, `users`, is refused by this version of the store.)
curl -sS --fail-with-body "$base/api/collections" "${auth[@]}" -d '{"name": "tags", "fields": [
    {"name": "label", "type": "text", "required": true, "unique": true}],
    "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""}}' >/dev/null
curl -sS --fail-with-body "$base/api/collections" "${auth[@]}" -d '{"name": "posts", "fields": [
    {"name": "title", "type": "text", "required": true},
    {"name": "views", "type": "integer"},
    {"name": "score", "type": "number"},
    {"name": "published", "type": "bool"},
    {"name": "at", "type": "datetime"},
    {"name": "meta", "type": "json"},
    {"name": "contact", "type": "email"},
    {"name": "link", "type": "url"},
    {"name": "status", "type": "select", "options": {"values": ["draft", "live"]}},
    {"name": "tag", "type": "relation", "options": {"collection": "tags"}}],
    "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""}}' >/dev/null
curl -sS --fail-with-body "$base/api/collections/posts/records" "${auth[@]}" -d '{"title": "only a title"}' >/dev/null
# The collections the schema routes change and drop (see openapi-fuzz.toml).
for scratch in scratch scratch_drop; do
    curl -sS --fail-with-body "$base/api/collections" "${auth[@]}" -d "{\"name\": \"$scratch\", \"fields\": [
        {\"name\": \"note\", \"type\": \"text\"}]}" >/dev/null
done

FUZZ_TARGET_USER_ID="$(curl -fsS "$base/api/users?per_page=500" "${auth[@]}" |
    python3 -c 'import json, sys; print(next(u["id"] for u in json.load(sys.stdin)["items"] if u["email"] == "fuzz-target@example.com"))')"
export FUZZ_TARGET_USER_ID

started=$SECONDS
status=0
# Every check runs: that is schemathesis's default. (`--checks all` would also override the
# per-operation settings of openapi-fuzz.toml, which say why each exception is there.)
"$venv/bin/schemathesis" --config-file "$root/scripts/openapi-fuzz.toml" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --max-examples "$max_examples" \
    --phases examples,coverage,fuzzing \
    --suppress-health-check all \
    --report junit --report-dir "$report_dir" \
    "$@" || status=$?
echo "schemathesis finished in $((SECONDS - started)) s with status $status" >&2
if [ "$status" -ne 0 ]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 20 "$work/server.log" >&2
    echo "(the whole log is kept as $report_dir/server.log)" >&2
fi
exit "$status"
