#!/usr/bin/env python3
"""Replays ranking candidates on the evaluation questions (BENCHMARKS.md, "Fusion" and
"Diversity").

Fetches each question's keyword and vector lists (top 40, as `hybrid` fetches them) from a
running `brigade serve`, then ranks them with several fusion functions, and with hits spread
over documents by several decays, and prints recall@5 / MRR@10 per index. Only the
development questions are scored unless --heldout is given. Serve the indexes with
`same_document_weight = 1` so the replay starts from plain rankings.

    brigade serve --dir /tmp/brigade-pgdocs --addr 127.0.0.1:8791 &
    python3 bench/fusion.py --url http://127.0.0.1:8791 --index pg_builtin --index pg_minilm
"""
import argparse
import json
import pathlib
import statistics
import urllib.parse
import urllib.request

FETCH = 40
EVAL = pathlib.Path(__file__).resolve().parent.parent / "eval" / "postgresql-docs"


def fetch(url, index, question, mode):
    query = urllib.parse.urlencode({"q": question, "k": FETCH, "mode": mode})
    with urllib.request.urlopen(f"{url}/api/search/{index}?{query}") as res:
        hits = json.load(res)["hits"]
    return [(h["id"], h["score"], h["source"]["document_id"].rsplit("/", 1)[-1]) for h in hits]


def rrf(k, w_vector):
    def fuse(kw, vec):
        scores = {}
        for weight, hits in ((1 - w_vector, kw), (w_vector, vec)):
            for rank, h in enumerate(hits):
                scores[h[0]] = scores.get(h[0], 0) + weight / (k + rank + 1)
        return sorted(scores, key=lambda c: (-scores[c], c))
    return fuse


def minmax(hits):
    xs = [h[1] for h in hits]
    lo, hi = min(xs, default=0), max(xs, default=0)
    return {h[0]: (h[1] - lo) / (hi - lo) if hi > lo else 1.0 for h in hits}


def zscore(hits):
    xs = [h[1] for h in hits]
    if len(xs) < 2:
        return {h[0]: 0.0 for h in hits}
    mean, sd = statistics.mean(xs), statistics.pstdev(xs) or 1.0
    return {h[0]: (h[1] - mean) / sd for h in hits}


def blend(norm, alpha):
    def fuse(kw, vec):
        a, b = norm(kw), norm(vec)
        floor_a, floor_b = min(a.values(), default=0), min(b.values(), default=0)
        scores = {c: alpha * b.get(c, floor_b) + (1 - alpha) * a.get(c, floor_a) for c in a.keys() | b.keys()}
        return sorted(scores, key=lambda c: (-scores[c], c))
    return fuse


CANDIDATES = [("keyword only", lambda kw, vec: [h[0] for h in kw]),
              ("vector only", lambda kw, vec: [h[0] for h in vec])]
for k in (10, 20, 60):
    for w in (0.5, 0.6, 2 / 3, 0.75):
        CANDIDATES.append((f"rrf k={k} w={w:.2f}", rrf(k, w)))
for alpha in (0.5, 0.6, 0.7):
    CANDIDATES.append((f"min-max a={alpha}", blend(minmax, alpha)))
    CANDIDATES.append((f"z-score a={alpha}", blend(zscore, alpha)))


def spread(fuse_scores, decay):
    """Greedy: each further chunk of a page counts decay**n of its score (query.rs)."""
    def fuse(kw, vec):
        scores = fuse_scores(kw, vec)
        page = {h[0]: h[2] for h in kw + vec}
        left, out, seen = sorted(scores, key=lambda c: (-scores[c], c)), [], {}
        while left and len(out) < 10:
            best = max(left, key=lambda c: scores[c] * decay ** seen.get(page[c], 0))
            left.remove(best)
            out.append(best)
            seen[page[best]] = seen.get(page[best], 0) + 1
        return out
    return fuse


def rrf_scores(k, w_vector):
    def scores(kw, vec):
        out = {}
        for weight, hits in ((1 - w_vector, kw), (w_vector, vec)):
            for rank, h in enumerate(hits):
                out[h[0]] = out.get(h[0], 0) + weight / (k + rank + 1)
        return out
    return scores


def score(questions, lists, fuse):
    recall = mrr = 0.0
    for q in questions:
        kw, vec = lists[q["id"]]
        page = {h[0]: h[2] for h in kw + vec}
        ranked = fuse(kw, vec)[:10]
        rank = next((i + 1 for i, c in enumerate(ranked) if page[c] in q["pages"]), None)
        recall += 1 if rank and rank <= 5 else 0
        mrr += 1 / rank if rank else 0
    return recall / len(questions), mrr / len(questions)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8791")
    p.add_argument("--index", action="append", required=True)
    p.add_argument("--heldout", action="store_true", help="score heldout.jsonl instead")
    p.add_argument("--weight", action="append", default=[],
                   help="INDEX=W: the index's vector_weight for the diversity replay (default 0.5)")
    args = p.parse_args()
    name = "heldout.jsonl" if args.heldout else "questions.jsonl"
    questions = [json.loads(line) for line in (EVAL / name).open()]
    for index in args.index:
        lists = {q["id"]: (fetch(args.url, index, q["question"], "keyword"),
                           fetch(args.url, index, q["question"], "vector")) for q in questions}
        print(f"{index} ({name})")
        for label, fuse in CANDIDATES:
            r, m = score(questions, lists, fuse)
            print(f"  {label:22} recall@5 {r:.3f}  MRR@10 {m:.3f}")
        weights = dict(w.split("=", 1) for w in args.weight)
        w = float(weights.get(index, 0.5))
        for decay in (1.0, 0.8, 0.6, 0.4, 0.0):
            r, m = score(questions, lists, spread(rrf_scores(20, w), decay))
            print(f"  hybrid w={w:.2f} decay={decay:<4} recall@5 {r:.3f}  MRR@10 {m:.3f}")


if __name__ == "__main__":
    main()
