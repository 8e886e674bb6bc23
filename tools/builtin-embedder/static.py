"""Turning distilled token vectors into a static embedding table, and embedding with it."""

import numpy as np

SPECIAL = {0, 100, 101, 102, 103}  # [PAD] [UNK] [CLS] [SEP] [MASK]


def wordpiece_freq(tok, top=200_000):
    """General-English probability of each WordPiece token (from wordfreq's word list)."""
    import wordfreq

    words = list(wordfreq.get_frequency_dict("en").items())[:top]
    enc = tok.encode_batch([w for w, _ in words], add_special_tokens=False)
    f = np.zeros(tok.get_vocab_size(), dtype=np.float64)
    for (w, p), e in zip(words, enc):
        for i in e.ids:
            f[i] += p
    return f / f.sum()


def pca(x, dims):
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:dims].T


def build(raw, dims=256, weight="sif-wf", freq=None, sif=1e-4, stop=False, vocab=None):
    """The table: PCA of the raw token vectors, scaled per token by its weight."""
    e = raw.astype(np.float64)
    if dims:
        e = pca(e, dims)
    n = len(e)
    if weight == "zipf":
        w = np.log1p(np.arange(n))
    elif weight == "sif-rank":
        p = 1.0 / np.arange(1, n + 1)
        p /= p.sum()
        w = sif / (sif + p)
    elif weight == "sif-wf":
        w = sif / (sif + freq)
    else:
        w = np.ones(n)
    w = w.copy()
    w[list(SPECIAL)] = 0.0
    w[1:999] = 0.0  # [unusedN]
    if stop:
        from corpus import STOPWORDS

        for i, t in enumerate(vocab):
            if t in STOPWORDS or (len(t) == 1 and not t.isalnum()):
                w[i] = 0.0
    return (e * w[:, None]).astype(np.float32)


def embed(table, ids):
    v = table[ids].sum(0) if len(ids) else np.zeros(table.shape[1], np.float32)
    n = np.linalg.norm(v)
    return v / n if n else v
