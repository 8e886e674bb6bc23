#!/usr/bin/env python3
"""Summarise bench/load.sh results as Markdown (python3 standard library only).

    report.py [RESULTS_DIR]      (default: the results/ directory beside this file)

Reads RESULTS_DIR/<server>/runs.tsv, runs-discarded.tsv, rss.txt and seed.json; prints per scenario the median
req/s, p50 and p99 over the measured runs, the ratio to PocketBase, errors and CPU shares,
then memory (peak RSS under load and including seeding) and the targets (>=10x PocketBase on get and insert, >=5x on list,
p99 < 10 ms, RSS < 100 MB).
"""

import csv
import json
import os
import statistics
import sys

SERVERS = [("brigade-sqlite", "Brigade (SQLite)"), ("brigade-postgres", "Brigade (PostgreSQL)"),
           ("pocketbase", "PocketBase")]
SCENARIOS = [("get", "GET by id"), ("list", "Filtered list (views>500, 50 per page, with total)"),
             ("insert", "Insert")]
RATIO_TARGET = {"get": 10, "list": 5, "insert": 10}
P99_TARGET_MS = 10
RSS_TARGET_MB = 100


def load(results):
    runs, rss, seed, discarded = {}, {}, {}, {}
    for server, _ in SERVERS:
        d = os.path.join(results, server)
        p = os.path.join(d, "runs.tsv")
        if not os.path.exists(p):
            continue
        with open(p) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                runs.setdefault((server, row["scenario"]), []).append(row)
        p = os.path.join(d, "runs-discarded.tsv")
        if os.path.exists(p):
            with open(p) as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    discarded.setdefault((server, row["scenario"]), []).append(row)
        if os.path.exists(os.path.join(d, "rss.txt")):
            with open(os.path.join(d, "rss.txt")) as f:
                rss[server] = dict(line.strip().split("=", 1) for line in f if "=" in line)
        if os.path.exists(os.path.join(d, "seed.json")):
            with open(os.path.join(d, "seed.json")) as f:
                seed[server] = json.load(f)
    return runs, rss, seed, discarded


def med(rows, key):
    return statistics.median(float(r[key]) for r in rows)


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    runs, rss, seed, discarded = load(results)
    present = [(s, n) for s, n in SERVERS if any(k[0] == s for k in runs)]
    out = []
    summary = {}
    for sc, title in SCENARIOS:
        out.append(f"### {title}\n")
        out.append("| server | req/s (median) | p50 ms | p99 ms | vs PocketBase (req/s) | req/s of each run | non-2xx | socket errors | CPU: server / db / wrk / others (% of 1 core) | noisy runs set aside |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |")
        pb = runs.get(("pocketbase", sc))
        pb_rps = med(pb, "rps") if pb else None
        for server, name in present:
            rows = runs.get((server, sc))
            if not rows:
                continue
            rps, p50, p99 = med(rows, "rps"), med(rows, "p50_ms"), med(rows, "p99_ms")
            summary[(server, sc)] = (rps, p50, p99, rps / pb_rps if pb_rps else None)
            ratio = f"{rps / pb_rps:.1f}x" if pb_rps else "n/a"
            each = ", ".join(f"{float(r['rps']):,.0f}" for r in rows)
            non2xx = sum(int(r["non2xx"]) for r in rows)
            sock = sum(int(r["socket_errors"]) for r in rows)
            cpu = " / ".join(f"{med(rows, k):.0f}" for k in ("server_cpu_pct", "db_cpu_pct", "wrk_cpu_pct", "other_cpu_pct"))
            aside = len(discarded.get((server, sc), []))
            out.append(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio} | {each} | {non2xx} | {sock} | {cpu} | {aside} |")
        out.append("")
    out.append("### Memory (server process) and seeding\n")
    out.append("| server | peak RSS under load MiB | under load per scenario: get / list / insert MiB | peak RSS incl. start and seeding MiB | RSS at end MiB | threads at end | seeding 100k via batch |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for server, name in present:
        r = rss.get(server, {})
        mib = lambda key: int(r[key]) / 1024 if key in r else None
        peak = mib("peak_rss_kb") or 0.0
        load_peak = mib("load_peak_rss_kb")
        end = mib("rss_at_end_kb") or 0.0
        extra = ""
        if "postgres_pss_kb_at_end" in r:
            extra = f" (+ PostgreSQL cluster PSS {int(r['postgres_pss_kb_at_end']) / 1024:.0f} MiB at end)"
        s = seed.get(server, {})
        seeded = f"{s.get('seed_seconds', '?')} s ({s.get('records_per_second', '?'):,} records/s)" if s else "?"
        summary[(server, "rss")] = load_peak
        summary[(server, "rss_all")] = peak
        lp = f"{load_peak:.1f}" if load_peak is not None else "n/a"
        per = " / ".join(f"{mib(f'load_peak_rss_{sc}_kb'):.0f}" if f"load_peak_rss_{sc}_kb" in r else "n/a"
                         for sc, _ in SCENARIOS)
        out.append(f"| {name} | {lp}{extra} | {per} | {peak:.1f} | {end:.1f} | {r.get('threads', '?')} | {seeded} |")
    out.append("")
    out.append("### Targets\n")
    for server, name in present:
        if server == "pocketbase":
            continue
        for sc, title in SCENARIOS:
            v = summary.get((server, sc))
            if not v:
                continue
            rps, p50, p99, ratio = v
            if ratio is not None:
                ok = ratio >= RATIO_TARGET[sc]
                out.append(f"- {name}, {sc}: >= {RATIO_TARGET[sc]}x PocketBase req/s: {'met' if ok else 'NOT met'} ({ratio:.1f}x)")
            ok = p99 < P99_TARGET_MS
            out.append(f"- {name}, {sc}: p99 < {P99_TARGET_MS} ms: {'met' if ok else 'NOT met'} ({p99:.2f} ms)")
        hwm, hwm_all = summary.get((server, "rss")), summary.get((server, "rss_all"))
        ok = lambda mib: "met" if mib * 1.048576 < RSS_TARGET_MB else "NOT met"
        if hwm is None and hwm_all:
            out.append(f"- {name}: peak RSS (whole run) < {RSS_TARGET_MB} MB: {ok(hwm_all)} ({hwm_all:.1f} MiB)")
        elif hwm:
            out.append(f"- {name}: peak RSS under load < {RSS_TARGET_MB} MB: {ok(hwm)} ({hwm:.1f} MiB); "
                       f"including seeding: {ok(hwm_all)} ({hwm_all:.1f} MiB)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
