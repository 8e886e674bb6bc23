"""Corpus and evaluation harness for choosing the builtin embedder.

Extracts the PostgreSQL 15 manual into sections (navigation stripped, title and heading path
kept), chunks them like brigade-search (~300 words, 40 overlap), builds a SQLite FTS5 index
(porter unicode61, bm25(), OR-query of non-stopword terms) and scores keyword, vector and
hybrid (RRF k=60) retrieval at page level: recall@5 and MRR@10.
"""

import json
import os
import pickle
import re
import sqlite3
import tarfile

from bs4 import BeautifulSoup, NavigableString

CORPUS = "/work/shared/data/postgresql-docs/postgresql-15-html.tar.gz"
CACHE = "/tmp/builtin-cache/chunks.pkl"
MAX_TOKENS, OVERLAP = 300, 40
RRF_K = 60
MRR_CAP = 10

STOPWORDS = set(
    """a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
s t don i'd i'm it's what's let's get i'll we'd use using""".split()
)


def extract(html):
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for sel in ["div.navheader", "div.navfooter", "script", "style"]:
        for el in soup.select(sel):
            el.decompose()
    body = soup.body or soup
    for h in body.find_all(["h1", "h2", "h3", "h4", "h5"]):
        level = int(h.name[1])
        text = " ".join(h.get_text(" ", strip=True).split())
        h.replace_with(NavigableString(f"\n@@H{level}@@{text}\n"))
    lines = body.get_text("\n").split("\n")
    sections, path, buf = [], [], []

    def flush():
        words = " ".join(buf).split()
        if words:
            sections.append((" > ".join(path), words))
        buf.clear()

    for line in lines:
        m = re.match(r"@@H(\d)@@(.*)", line)
        if m:
            flush()
            level = int(m.group(1))
            path = path[: max(0, level - 1)]
            while len(path) < level - 1:
                path.append("")
            path.append(m.group(2))
            path = [p for p in path if p]
        else:
            buf.append(line)
    flush()
    return title, sections


def load_chunks():
    if os.path.exists(CACHE):
        return pickle.load(open(CACHE, "rb"))
    chunks = []  # dicts: page, heading, text
    with tarfile.open(CORPUS) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not m.name.endswith(".html"):
                continue
            page = os.path.basename(m.name)
            title, sections = extract(tar.extractfile(m).read())
            step = MAX_TOKENS - OVERLAP
            for heading, words in sections:
                heading = heading or title
                start = 0
                while start < len(words):
                    end = min(start + MAX_TOKENS, len(words))
                    chunks.append(
                        {"page": page, "heading": heading, "text": " ".join(words[start:end])}
                    )
                    if end == len(words):
                        break
                    start += step
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    pickle.dump(chunks, open(CACHE, "wb"))
    return chunks


def embed_text(c):
    """What the vector side embeds: heading path, then the chunk text."""
    return f"{c['heading']}\n{c['text']}"


def questions(path="/work/main/eval/postgresql-docs/questions.jsonl"):
    return [json.loads(l) for l in open(path)]


class Keyword:
    def __init__(self, chunks):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("create virtual table t using fts5(heading, text, tokenize='porter unicode61')")
        self.db.executemany(
            "insert into t(rowid, heading, text) values (?,?,?)",
            [(i, c["heading"], c["text"]) for i, c in enumerate(chunks)],
        )

    def search(self, q, n=50):
        terms = [w for w in re.findall(r"[\w]+", q.lower()) if w not in STOPWORDS]
        if not terms:
            return []
        expr = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
        rows = self.db.execute(
            "select rowid from t where t match ? order by bm25(t) limit ?", (expr, n)
        ).fetchall()
        return [r[0] for r in rows]


def rrf(*lists, k=RRF_K, n=50):
    score = {}
    for lst in lists:
        for r, i in enumerate(lst):
            score[i] = score.get(i, 0.0) + 1.0 / (k + r + 1)
    return sorted(score, key=lambda i: -score[i])[:n]


def score(ranked, pages, chunks):
    """(hit@5, reciprocal rank capped at MRR_CAP) of one ranked chunk list."""
    pages = set(pages)
    hit5 = any(chunks[i]["page"] in pages for i in ranked[:5])
    rr = 0.0
    for r, i in enumerate(ranked[:MRR_CAP]):
        if chunks[i]["page"] in pages:
            rr = 1.0 / (r + 1)
            break
    return hit5, rr


def evaluate(name, qs, chunks, kw_lists, vec_lists, out=None):
    """Prints recall@5 / MRR@10 for keyword, vector, hybrid, overall and per kind."""
    kinds = ["all"] + sorted({q["kind"] for q in qs})
    res = {}
    for mode in ["keyword", "vector", "hybrid"]:
        for kind in kinds:
            hs, rs = [], []
            for q, kl, vl in zip(qs, kw_lists, vec_lists):
                if kind != "all" and q["kind"] != kind:
                    continue
                ranked = {"keyword": kl, "vector": vl, "hybrid": rrf(kl, vl)}[mode]
                h, r = score(ranked, q["pages"], chunks)
                hs.append(h)
                rs.append(r)
            res[(mode, kind)] = (sum(hs) / len(hs), sum(rs) / len(rs))
    line = f"{name:28s}"
    for mode in ["keyword", "vector", "hybrid"]:
        line += " | " + " ".join(f"{res[(mode, k)][0]:.3f}/{res[(mode, k)][1]:.3f}" for k in kinds)
    print(line, flush=True)
    if out is not None:
        out[name] = {f"{m}/{k}": v for (m, k), v in res.items()}
    return res
