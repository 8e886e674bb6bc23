"""Writes the builtin embedder's assets and the Rust test fixtures.

crates/search/assets/builtin/vocab.txt      the WordPiece vocabulary (id = line number)
crates/search/assets/builtin/static-v1.bin  b"BSE1", u32 vocab, u32 dims (LE), then vocab f32
                                            row scales (LE), then vocab*dims int8 values:
                                            row i = scale[i] * values[i]
crates/search/assets/builtin/reference.json tokenisations and embeddings computed here, which
                                            the Rust tests must reproduce
"""

import json
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

import static

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/work/models/all-MiniLM-L6-v2"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "crates", "search", "assets", "builtin")
DIMS = 256

raw = np.load("/tmp/builtin-cache/raw.npy")
table = static.build(raw, dims=DIMS, weight="sif-rank")
scale = np.abs(table).max(1) / 127.0
q = np.zeros(table.shape, dtype=np.int8)
nz = scale > 0
q[nz] = np.round(table[nz] / scale[nz, None]).astype(np.int8)
deq = (q.astype(np.float32) * scale[:, None]).astype(np.float32)
np.save("/tmp/builtin-cache/table-int8.npy", deq)

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "static-v1.bin"), "wb") as f:
    f.write(b"BSE1" + struct.pack("<II", *table.shape))
    f.write(scale.astype("<f4").tobytes())
    f.write(q.tobytes())
with open(os.path.join(MODEL, "vocab.txt"), encoding="utf-8") as src:
    vocab = src.read()
with open(os.path.join(OUT, "vocab.txt"), "w", encoding="utf-8", newline="\n") as dst:
    dst.write(vocab)

tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
tok.no_truncation()
tok.no_padding()
TEXTS = [
    "How do I make a backup of one database while people keep using it?",
    "pg_dump extracts a PostgreSQL database into a script file or other archive file.",
    "VACUUM reclaims storage occupied by dead tuples; VACUUM FULL rewrites the table.",
]
TRICKY = [
    "",
    "   \t\n ",
    "Hello, World!",
    "Crème brûlée à la carte — naïve café",
    "ÀÉÎÕÜ ﬁ İstanbul ΣΊΣΥΦΟΣ straße",
    "emoji 🙂👍🏽 and zero\u200bwidth\u00adsoft hyphen\ufeffbom",
    "中文字符 and 日本語のテキスト, 한국어",
    "snake_case_identifier CamelCaseWord x86_64 3.14159 1e-12 $1,000.00",
    "SELECT * FROM t WHERE a <> b AND c >= 'x'::text; -- comment",
    "a" * 120 + " " + "ab" * 40 + " supercalifragilisticexpialidocious",
    "tab\tseparated\u00a0nbsp\u2003emspace\r\nwindows\x00nul\x07bell\ufffdrepl",
    "«quoted» “curly” ‘single’ ¿qué? ¡sí! … ·middot §section ¶pilcrow",
    "Ünïcödé Å ǅ ß ǰ ΐ ﬀ",
    "\ue000private use \U000e0001 tag",
]
ref = {
    "dims": DIMS,
    "tokens": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TRICKY + TEXTS],
    "embeddings": [
        {"text": t, "vector": [float(x) for x in static.embed(deq, tok.encode(t, add_special_tokens=False).ids)]}
        for t in TEXTS
    ],
}
with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
    json.dump(ref, f, ensure_ascii=False)
print("wrote", OUT, os.path.getsize(os.path.join(OUT, "static-v1.bin")), "bytes")
