import sys
import numpy as np
import wordfreq
import corpus, hashing

ch = corpus.load_chunks(); qs = corpus.questions(); kw = corpus.Keyword(ch)
kl = [kw.search(q["question"]) for q in qs]
texts = [corpus.embed_text(c) for c in ch]

def wf_idf(w):
    return max(0.5, 7.0 - wordfreq.zipf_frequency(w, "en"))

configs = {
    "hash512 uni": dict(bigrams=0, chars=0),
    "hash512 uni+bi": dict(bigrams=0.5, chars=0),
    "hash512 uni+bi+char3": dict(bigrams=0.5, chars=1.0),
    "hash512 uni+bi wf-idf": dict(bigrams=0.5, chars=0, idf=wf_idf),
}
print("modes: keyword | vector | hybrid; each: all howto keyword paraphrase as R@5/MRR@10")
for name, cfg in configs.items():
    D = np.stack([hashing.embed(t, **cfg) for t in texts])
    vl = [list(np.argsort(-(D @ hashing.embed(q["question"], **cfg)))[:50]) for q in qs]
    corpus.evaluate(name, qs, ch, kl, vl)
