#!/usr/bin/env python3
"""Seeding helper for bench/load.sh (python3 standard library only).

    seed.py setup --kind brigade|pocketbase --base http://127.0.0.1:PORT \
        --records 100000 --ids FILE
        logs in as the superuser, creates the `posts` collection (title text required,
        views integer/number with an index, status select draft|live), inserts the records
        through the batch endpoint (1000 a request, one transaction each), checks the count,
        writes every created id to FILE (one a line) and prints a JSON summary.
    seed.py token --kind brigade|pocketbase --base http://127.0.0.1:PORT
        prints the value of the Authorization header to send ("Bearer <jwt>" for Brigade,
        the bare token for PocketBase).

The superuser's email and password come from BENCH_EMAIL / BENCH_PASSWORD. The data is the
same for every server: a fixed random seed (42) drives titles, views (0..1000) and status.
Only 127.0.0.1 is ever contacted.
"""

import argparse
import http.client
import json
import os
import random
import sys
import time
from urllib.parse import urlsplit

WORDS = (
    "rust sqlite postgres index query batch record stream async tokio axum lambda vector "
    "search cache shard replica cluster schema migration pipeline bronze silver gold model "
    "token auth realtime socket event filter sort page latency throughput memory disk "
    "kernel thread worker queue lock commit rollback snapshot backup restore deploy"
).split()
BATCH = 1000


class Client:
    def __init__(self, base):
        u = urlsplit(base)
        if u.hostname != "127.0.0.1" or u.scheme != "http":
            sys.exit(f"seed.py: refusing to contact {base!r}: only http://127.0.0.1 is allowed")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        self.auth = None

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.auth:
            headers["Authorization"] = self.auth
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status not in ok:
            sys.exit(f"seed.py: {method} {path} -> {resp.status}: {raw[:600]!r}")
        return json.loads(raw) if raw else None


def login(c, kind):
    email, password = os.environ["BENCH_EMAIL"], os.environ["BENCH_PASSWORD"]
    if kind == "brigade":
        r = c.call("POST", "/api/auth/login", {"email": email, "password": password})
        return "Bearer " + r["access_token"]
    r = c.call(
        "POST",
        "/api/collections/_superusers/auth-with-password",
        {"identity": email, "password": password},
    )
    return r["token"]  # PocketBase takes the token without a scheme


def create_collection(c, kind):
    if kind == "brigade":
        c.call(
            "POST",
            "/api/collections",
            {
                "name": "posts",
                "fields": [
                    {"name": "title", "type": "text", "required": True},
                    {"name": "views", "type": "integer"},
                    {"name": "status", "type": "select", "options": {"values": ["draft", "live"]}},
                ],
                "indexes": [["views"]],
            },
        )
        return
    # PocketBase: allow 1000 requests per batch (the server default is 50) and a generous
    # timeout for the seeding batches; rate limits stay at their default (disabled).
    c.call("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": BATCH, "timeout": 120}})
    # Rules stay null (superuser only): every benchmark request carries the superuser token,
    # like Brigade, where the collection's default rules are admin-only too.
    # created/updated autodate fields match Brigade's system fields.
    c.call(
        "POST",
        "/api/collections",
        {
            "name": "posts",
            "type": "base",
            "fields": [
                {"name": "title", "type": "text", "required": True},
                {"name": "views", "type": "number", "onlyInt": True},
                {"name": "status", "type": "select", "maxSelect": 1, "values": ["draft", "live"]},
                {"name": "created", "type": "autodate", "onCreate": True},
                {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
            ],
            "indexes": ["CREATE INDEX idx_posts_views ON posts (views)"],
        },
    )


def records(n):
    rng = random.Random(42)
    for i in range(n):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) + f" #{i}"
        yield {"title": title, "views": rng.randint(0, 1000), "status": rng.choice(("draft", "live"))}


def count(c, kind):
    if kind == "brigade":
        return c.call("GET", "/api/collections/posts/records?per_page=1")["total_items"]
    return c.call("GET", "/api/collections/posts/records?perPage=1")["totalItems"]


def setup(args):
    c = Client(args.base)
    c.auth = login(c, args.kind)
    create_collection(c, args.kind)
    ids = []
    started = time.monotonic()
    chunk = []
    for rec in records(args.records):
        chunk.append({"method": "POST", "url": "/api/collections/posts/records", "body": rec})
        if len(chunk) == BATCH:
            ids.extend(send_batch(c, chunk))
            chunk = []
    if chunk:
        ids.extend(send_batch(c, chunk))
    seconds = time.monotonic() - started
    total = count(c, args.kind)
    if total != args.records or len(ids) != args.records:
        sys.exit(f"seed.py: expected {args.records} records, server has {total}, got {len(ids)} ids")
    with open(args.ids, "w") as f:
        f.write("\n".join(ids) + "\n")
    print(json.dumps({"records": total, "seed_seconds": round(seconds, 2),
                      "records_per_second": round(total / seconds)}))


def send_batch(c, chunk):
    out = c.call("POST", "/api/batch", {"requests": chunk})
    ids = []
    for item in out:
        if item.get("status") not in (200, 201):
            sys.exit(f"seed.py: batch item failed: {json.dumps(item)[:600]}")
        ids.append(str(item["body"]["id"]))
    return ids


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["setup", "token"])
    p.add_argument("--kind", choices=["brigade", "pocketbase"], required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--ids")
    args = p.parse_args()
    if args.command == "token":
        print(login(Client(args.base), args.kind))
    else:
        if not args.ids:
            p.error("setup needs --ids FILE")
        setup(args)


if __name__ == "__main__":
    main()
