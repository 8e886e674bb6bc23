"""Candidate (a): signed feature hashing of stems, stem bigrams and char n-grams."""

import math
import re
import zlib
from collections import Counter

import numpy as np
import snowballstemmer

from corpus import STOPWORDS

_stem = snowballstemmer.stemmer("english").stemWord
_cache = {}


def stem(w):
    s = _cache.get(w)
    if s is None:
        s = _cache[w] = _stem(w)
    return s


def features(text, bigrams=0.5, chars=0.0, idf=None):
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and len(w) > 1]
    f = Counter()
    stems = [stem(w) for w in words]
    for w, s in zip(words, stems):
        f["w:" + s] += idf(w) if idf else 1.0
        if chars:
            g = f"#{w}#"
            grams = [g[i : i + 3] for i in range(len(g) - 2)]
            for gr in grams:
                f["c:" + gr] += chars / len(grams)
    if bigrams:
        for a, b in zip(stems, stems[1:]):
            f["b:" + a + " " + b] += bigrams
    return f


def embed(text, dims=512, **kw):
    v = np.zeros(dims, dtype=np.float32)
    for feat, tf in features(text, **kw).items():
        h = zlib.crc32(feat.encode())
        v[h % dims] += (1.0 if (h >> 31) & 1 else -1.0) * (1.0 + math.log(tf) if tf > 1 else tf)
    n = np.linalg.norm(v)
    return v / n if n else v
