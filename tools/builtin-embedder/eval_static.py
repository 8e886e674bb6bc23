"""Candidate (b): static token vectors distilled from all-MiniLM-L6-v2 (model2vec-style)."""

import sys

import numpy as np
from tokenizers import Tokenizer

import corpus
import static

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/work/models/all-MiniLM-L6-v2"
ch = corpus.load_chunks()
qs = corpus.questions()
kw = corpus.Keyword(ch)
kl = [kw.search(q["question"]) for q in qs]
texts = [corpus.embed_text(c) for c in ch]

tok = Tokenizer.from_file(f"{MODEL}/tokenizer.json")
tok.no_truncation()
tok.no_padding()
doc_ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
q_ids = [e.ids for e in tok.encode_batch([q["question"] for q in qs], add_special_tokens=False)]
raw = np.load("/tmp/builtin-cache/raw.npy")
freq = static.wordpiece_freq(tok)
vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda x: x[1])]

configs = [
    ("static384 no-weight", dict(dims=0, weight="none")),
    ("static256 zipf-id", dict(dims=256, weight="zipf")),
    ("static256 sif-id", dict(dims=256, weight="sif-rank")),
    ("static256 sif-wordfreq", dict(dims=256, weight="sif-wf")),
    ("static384 sif-wordfreq", dict(dims=0, weight="sif-wf")),
    ("static128 sif-wordfreq", dict(dims=128, weight="sif-wf")),
    ("static256 sif-id 1e-3", dict(dims=256, weight="sif-rank", sif=1e-3)),
    ("static256 sif-id 1e-5", dict(dims=256, weight="sif-rank", sif=1e-5)),
    ("static192 sif-id", dict(dims=192, weight="sif-rank")),
    ("static384 sif-id", dict(dims=0, weight="sif-rank")),
    ("static256 sif-id stop", dict(dims=256, weight="sif-rank", stop=True)),
    ("static256 sif-id int8 (shipped)", None),
]
only = set(sys.argv[2:])
print("modes: keyword | vector | hybrid; each: all howto keyword paraphrase as R@5/MRR@10")
for name, cfg in configs:
    if only and name not in only:
        continue
    if cfg is None:
        E = np.load("/tmp/builtin-cache/table-int8.npy")  # written by export.py
    else:
        E = static.build(raw, freq=freq, vocab=vocab, **cfg)
    D = np.stack([static.embed(E, ids) for ids in doc_ids])
    vl = [list(np.argsort(-(D @ static.embed(E, ids)))[:50]) for ids in q_ids]
    corpus.evaluate(name, qs, ch, kl, vl)
