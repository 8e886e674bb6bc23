"""Step 1 of the static model: every WordPiece token through all-MiniLM-L6-v2, model2vec-style.

Each vocabulary token t is run as `[CLS] t [SEP]`; its output vector is the mean of the three
output states (mean pooling, as the sentence model does). Writes raw 384-d vectors to
OUT_DIR/raw.npy (float32, vocab order).
"""

import os
import sys
import time

import numpy as np

from bert import Bert

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/work/models/all-MiniLM-L6-v2"
OUT_DIR = "/tmp/builtin-cache"

bert = Bert(MODEL)
vocab = bert.w["embeddings.word_embeddings.weight"].shape[0]
cls, sep = 101, 102
out = np.zeros((vocab, 384), dtype=np.float32)
t0 = time.time()
B = 512
for s in range(0, vocab, B):
    ids = np.array([[cls, i, sep] for i in range(s, min(s + B, vocab))])
    x = bert.forward(ids, np.ones_like(ids))
    out[s : s + len(ids)] = x.mean(1)
    if s % (B * 10) == 0:
        print(f"{s}/{vocab} {time.time() - t0:.1f}s", flush=True)
os.makedirs(OUT_DIR, exist_ok=True)
np.save(os.path.join(OUT_DIR, "raw.npy"), out)
print(f"distilled {vocab} tokens in {time.time() - t0:.1f}s")
