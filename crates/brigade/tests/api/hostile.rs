//! Hostile input in every place a client controls: query parameters (`filter`, `sort`,
//! `fields`, `expand`, `page`, `per_page`, `skip_total`), the collection name and record id
//! in the path, raw query strings and paths, JSON keys and values in bodies, whole bodies,
//! and the `Authorization` header.
//!
//! Each request must be answered, 4xx (problem+json) or 2xx where the input is legitimately
//! valid, never 5xx and never by hanging. After every group the server is still alive and the
//! seeded data is exactly as it was. All offending requests of a run are reported together.

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::*;

/// Longer than this without an answer counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const POSTS: &str = "/api/collections/posts/records";
const SINK: &str = "/api/collections/sink/records";
/// The longest URL the client can send (`http::Uri` stops at 64 KiB); longer ones are skipped.
const MAX_URL: usize = 65_000;

/// The fields of `posts` and of `sink`, where hostile bodies that are valid get written.
fn fields(title_required: bool) -> Value {
    json!([
        { "name": "title", "type": "text", "required": title_required },
        { "name": "slug", "type": "text", "unique": true },
        { "name": "views", "type": "integer" },
        { "name": "score", "type": "number" },
        { "name": "data", "type": "json" },
        { "name": "email", "type": "email" },
        { "name": "site", "type": "url" },
        { "name": "status", "type": "select", "options": { "values": ["draft", "published"] } },
        { "name": "when", "type": "datetime" },
        { "name": "flag", "type": "bool" },
        { "name": "author", "type": "relation", "options": { "collection": "authors" } },
        { "name": "parent", "type": "relation", "options": { "collection": "posts" } },
    ])
}

/// Text-like fields whose accepted values must read back exactly as sent.
const VERBATIM_FIELDS: [&str; 3] = ["title", "slug", "data"];

/// Hostile strings, with a short label for reports.
fn payloads() -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = [
        ("sql-or", "' OR 1=1 --"),
        ("sql-drop", "\"; DROP TABLE posts; --"),
        ("sql-drop-single", "'; DROP TABLE posts; --"),
        ("sql-union", "x' UNION SELECT * FROM _users --"),
        ("sql-backslash", "\\' OR 1=1 --"),
        ("nul", "\u{0}"),
        ("nul-inside", "ti\u{0}tle"),
        ("pct00", "%00"),
        ("pct-ff", "%FF%FE"),
        ("rtl", "\u{202E}eltit\u{202C}\u{200F}\u{200E}"),
        ("emoji", "😀🚀👨‍👩‍👧‍👦"),
        ("zero-width", "\u{FEFF}\u{200B}title"),
        ("noncharacter", "\u{FFFF}\u{10FFFF}"),
        ("crlf", "a\r\nb: c"),
        ("fullwidth-digits", "１２"),
        ("dots", "../../etc/passwd"),
        ("minus-zero", "-0"),
        ("1e400", "1e400"),
        ("i64-max+1", "9223372036854775808"),
        ("i64-min-1", "-9223372036854775809"),
        ("u64-max+1", "18446744073709551616"),
        ("nan", "NaN"),
        ("infinity", "-Infinity"),
        ("hex", "0x10"),
        ("empty", ""),
        ("space", " "),
        ("comma", ",,,"),
        ("minus", "-"),
    ]
    .into_iter()
    .map(|(label, s)| (label, s.to_owned()))
    .collect();
    p.push(("5000-chars", "x".repeat(5000)));
    p.push(("5000-quotes", "'".repeat(5000)));
    p.push(("5000-emoji", "😀".repeat(5000)));
    p.push((
        "parens-1000",
        format!("{}title = 'a'{}", "(".repeat(1000), ")".repeat(1000)),
    ));
    p.push(("open-parens-1000", "(".repeat(1000)));
    p.push(("not-1000", format!("{}title = 'a'", "!".repeat(1000))));
    p.push(("and-1000", vec!["title = 'a'"; 1000].join(" && ")));
    p.push((
        "relation-path-1000",
        format!("{}title", "parent.".repeat(1000)),
    ));
    p.push(("relation-path-30", format!("{}title", "parent.".repeat(30))));
    p.push(("expand-path-1000", vec!["parent"; 1000].join(".")));
    p.push(("expand-path-30", vec!["parent"; 30].join(".")));
    p.push(("list-1000", vec!["title"; 1000].join(",")));
    p.push(("sort-list-1000", vec!["-parent"; 1000].join(",")));
    p
}

/// Numbers (as raw JSON) for numeric fields.
const NUMBERS: [&str; 16] = [
    "1e400",
    "-1e400",
    "-0",
    "-0.0",
    "1e-400",
    "5e-324",
    "1.7976931348623157e308",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "1e2",
    "1.0",
    "0.1e1",
    "123456789012345678901234567890",
];

/// Percent-encodes every byte outside RFC 3986's unreserved set, for a path segment.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `depth` nested arrays around `1`.
fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects `{"a": ...}` around `1`.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// A request body.
enum Body {
    Json(Value),
    /// Raw bytes sent as `application/json`.
    Raw(Vec<u8>),
}

/// Sends hostile requests and collects every answer that breaks the rules.
struct Prober<'a> {
    app: &'a TestApp,
    /// 5xx, hangs and dropped connections.
    server_errors: Vec<String>,
    /// Other broken expectations (a 4xx that is not problem+json, data altered on the way).
    other: Vec<String>,
    sent: usize,
    /// Requests whose URL the client cannot send.
    skipped: usize,
    /// `GET /api/collections/posts/records?sort=id&per_page=500` and authors, as seeded.
    snapshot: (Value, Value),
    /// One seeded post, fetched alone.
    seed: Value,
}

/// At most `max` chars of `s`, noting the full length when cut.
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({n} chars in all)")
}

impl<'a> Prober<'a> {
    /// Sends one request; `None` (recorded) for a 5xx or no answer, else the status and body.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Body>,
        auth: Option<HeaderValue>,
    ) -> Option<(u16, String)> {
        if url.len() > MAX_URL {
            self.skipped += 1;
            return None;
        }
        let body_text = match &body {
            None => String::new(),
            Some(Body::Json(v)) => format!(" {}", shorten(&v.to_string(), 200)),
            Some(Body::Raw(bytes)) => {
                format!(" {}", shorten(&String::from_utf8_lossy(bytes), 200))
            }
        };
        let what = format!("{method} {}{body_text}", shorten(url, 200));
        let req = self
            .app
            .client
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(
                AUTHORIZATION,
                auth.unwrap_or_else(|| {
                    HeaderValue::from_str(&format!("Bearer {}", self.app.token)).unwrap()
                }),
            );
        let req = match body {
            None => req,
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Raw(bytes)) => req.header(CONTENT_TYPE, "application/json").body(bytes),
        };
        self.send_request(&what, req).await
    }

    /// Sends a prepared request described as `what`; records 5xx, hangs and non-problem 4xx.
    async fn send_request(
        &mut self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Option<(u16, String)> {
        self.sent += 1;
        let res = match req.send().await {
            Ok(res) => res,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {REQUEST_TIMEOUT:?}")
                } else {
                    format!("no answer: {}", e.without_url())
                };
                self.server_errors.push(format!("{what}\n    -> {why}"));
                return None;
            }
        };
        let content_type = content_type(&res);
        let (status, text) = status_and_text(res).await;
        if !(200..300).contains(&status) && !(400..500).contains(&status) {
            let finding = format!("{what}\n    -> {status} {}", shorten(&text, 300));
            if !self.server_errors.contains(&finding) {
                self.server_errors.push(finding);
            }
            return None;
        }
        // hyper answers 414/431 itself, before any route; 405 comes from the router.
        if (400..500).contains(&status)
            && ![405, 414, 431].contains(&status)
            && !content_type.starts_with(PROBLEM_JSON)
        {
            self.other.push(format!(
                "{what}\n    -> {status} with content-type {content_type:?}: {}",
                shorten(&text, 200)
            ));
        }
        Some((status, text))
    }

    async fn get(&mut self, url: &str) -> Option<(u16, String)> {
        self.send(Method::GET, url, None, None).await
    }

    /// Fails the test (with everything found so far) unless the server is alive and the
    /// seeded data is unchanged.
    async fn check_intact(&mut self, group: &str) {
        let alive = self
            .app
            .client
            .get(self.app.url("/healthz"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map(|res| res.status().as_u16());
        if !matches!(alive, Ok(200)) {
            panic!(
                "the server is not healthy after the {group} group ({alive:?}).\n{}\
                 \n--- server log (tail) ---\n{}",
                self.report(),
                log_tail(&self.app.logs(), 4000)
            );
        }
        let snapshot = snapshot(self.app).await;
        assert_eq!(
            snapshot,
            self.snapshot,
            "the seeded data changed during the {group} group.\n{}",
            self.report()
        );
        let seed = expect_json(self.app.get(&record_path(&self.seed)).await, 200).await;
        assert_eq!(seed, self.seed, "the seeded post changed during {group}");
        // What the hostile requests legitimately wrote must stay readable.
        let sink = self.list_url("sink", "per_page", "500");
        self.get(&sink).await;
    }

    fn report(&self) -> String {
        let mut out = String::new();
        if !self.server_errors.is_empty() {
            out.push_str(&format!(
                "{} of {} hostile requests got a 5xx or no answer:\n{}\n",
                self.server_errors.len(),
                self.sent,
                self.server_errors.join("\n")
            ));
        }
        if !self.other.is_empty() {
            out.push_str(&format!(
                "{} other broken expectations:\n{}\n",
                self.other.len(),
                self.other.join("\n")
            ));
        }
        out
    }

    /// A list URL with one query parameter.
    fn list_url(&self, collection: &str, param: &str, value: &str) -> String {
        self.app
            .url_with(
                &format!("/api/collections/{collection}/records"),
                &[(param, value)],
            )
            .to_string()
    }
}

fn record_path(record: &Value) -> String {
    let id = record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {record}"));
    format!("{POSTS}/{id}")
}

/// Every post (in id order) and every author, as the API lists them.
async fn snapshot(app: &TestApp) -> (Value, Value) {
    let posts = app
        .must_list("posts", &[("sort", "id"), ("per_page", "500")])
        .await;
    let authors = app
        .must_list("authors", &[("sort", "id"), ("per_page", "500")])
        .await;
    (posts, authors)
}

/// `authors`, `posts` (with a self-relation) and `sink`; one author and a chain of three posts.
async fn seed(app: &TestApp) -> Value {
    app.must_create_collection(json!({
        "name": "authors",
        "fields": [{ "name": "name", "type": "text", "required": true }],
    }))
    .await;
    app.must_create_collection(json!({ "name": "posts", "fields": fields(true) }))
        .await;
    app.must_create_collection(json!({ "name": "sink", "fields": fields(false) }))
        .await;
    let ada = app
        .must_post_record("authors", json!({ "name": "Ada" }))
        .await;
    let first = app
        .must_post_record(
            "posts",
            json!({
                "title": "alpha", "slug": "alpha", "views": 10, "score": 1.5,
                "data": { "k": [1, "two", null] }, "email": "ada@example.com",
                "site": "https://example.com/", "status": "published",
                "when": "2026-01-02T03:04:05Z", "flag": true, "author": ada["id"],
            }),
        )
        .await;
    let second = app
        .must_post_record(
            "posts",
            json!({ "title": "beta", "slug": "beta", "parent": first["id"] }),
        )
        .await;
    app.must_post_record(
        "posts",
        json!({ "title": "gamma", "slug": "gamma", "parent": second["id"] }),
    )
    .await;
    first
}

/// Whether `s` follows the naming rule for collections and fields: a letter, then letters,
/// digits and underscores, at most 63 in all.
fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The quote character not in `s`, to make `s` a filter string literal; `None` if both are.
fn quote_for(s: &str) -> Option<char> {
    if !s.contains('\'') {
        Some('\'')
    } else if !s.contains('"') {
        Some('"')
    } else {
        None
    }
}

async fn query_parameters(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    let seed_path = record_path(&p.seed);
    for (_, payload) in payloads {
        for param in [
            "filter",
            "sort",
            "fields",
            "expand",
            "page",
            "per_page",
            "skip_total",
        ] {
            let url = p.list_url("posts", param, payload);
            p.get(&url).await;
        }
        for param in ["fields", "expand"] {
            let url = p
                .app
                .url_with(&seed_path, &[(param, payload.as_str())])
                .to_string();
            p.get(&url).await;
        }
        // The audit log is listed with the same parameters (a 404 is fine where it is absent).
        for param in ["filter", "sort", "page", "per_page"] {
            let url = p
                .app
                .url_with("/api/audit", &[(param, payload.as_str())])
                .to_string();
            p.get(&url).await;
        }
    }
    // Paging at the edges of the integer types.
    for page in [
        "0",
        "-1",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "99999999999999999999999",
        "1.5",
        "1e3",
    ] {
        for per_page in [
            "1",
            "500",
            "501",
            "0",
            "-1",
            "4294967296",
            "9223372036854775807",
        ] {
            let url = p
                .app
                .url_with(POSTS, &[("page", page), ("per_page", per_page)])
                .to_string();
            p.get(&url).await;
        }
    }
}

/// Payloads inside string literals are data: the filter is valid and matches nothing.
async fn filter_literals(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    for (label, payload) in payloads {
        let Some(q) = quote_for(payload) else {
            continue;
        };
        for filter in [
            format!("title = {q}{payload}{q}"),
            format!("title ~ {q}{payload}{q} || slug !~ {q}{payload}{q} && views > 1000"),
            format!("data = {q}{payload}{q}"),
            format!("author.name = {q}{payload}{q}"),
            format!("parent.parent.title ~ {q}{payload}{q}"),
            format!("id = {q}{payload}{q}"),
            format!("when > {q}{payload}{q}"),
            format!("status = {q}{payload}{q}"),
        ] {
            let url = p.list_url("posts", "filter", &filter);
            if let Some((200, text)) = p.get(&url).await {
                let page: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                // `~ ''` (contains the empty string) legitimately matches everything.
                let legit = filter.starts_with("when") || payload.trim().is_empty();
                if page["items"] != json!([]) && !legit {
                    p.other.push(format!(
                        "filter {} with payload {label} matched records: {}",
                        shorten(&filter, 100),
                        shorten(&text, 200)
                    ));
                }
            }
        }
    }
    for number in NUMBERS {
        for filter in [
            format!("views = {number}"),
            format!("score < {number}"),
            format!("views > -{number}"),
        ] {
            let url = p.list_url("posts", "filter", &filter);
            p.get(&url).await;
        }
    }
}

async fn paths(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    let seed_id = p.seed["id"].as_str().unwrap().to_owned();
    let mut segments: Vec<String> = payloads
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(_, s)| encode_segment(s))
        .collect();
    // Raw, undecoded forms: NUL, invalid UTF-8, dot segments, huge segments.
    segments.extend(
        [
            "%00",
            "posts%00",
            "%00posts",
            "%FF%FE",
            "%C0%AE%C0%AE",
            "..",
            "%2e%2e",
            "..%2f..%2fposts",
            "%",
            "%zz",
            "posts%20",
            "POSTS",
        ]
        .map(str::to_owned),
    );
    segments.push(format!("{seed_id}%00"));
    segments.push(format!("{seed_id}%00' OR 1=1 --"));
    segments.push("a".repeat(5000));
    segments.push("a".repeat(60_000));
    segments.push("%00".repeat(5000));

    for segment in &segments {
        // The client itself resolves dot segments (`/records/..` is `/api/collections/posts`),
        // so writes to those would not be hostile input but real requests: only read.
        let dot = matches!(
            segment.to_ascii_lowercase().as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        );
        let collection_paths = [
            format!("/api/collections/{segment}"),
            format!("/api/collections/{segment}/records"),
            format!("/api/collections/{segment}/records/{seed_id}"),
        ];
        for path in &collection_paths {
            p.get(&p.app.url(path)).await;
        }
        if dot {
            p.get(&p.app.url(&format!("{POSTS}/{segment}"))).await;
            continue;
        }
        // Writes: none of these names is `posts`, so nothing may change.
        let url = p.app.url(&format!("/api/collections/{segment}/records"));
        p.send(
            Method::POST,
            &url,
            Some(Body::Json(json!({ "title": "x" }))),
            None,
        )
        .await;
        if !segment.eq_ignore_ascii_case("posts") && !segment.eq_ignore_ascii_case("sink") {
            let url = p.app.url(&format!("/api/collections/{segment}"));
            p.send(
                Method::PATCH,
                &url,
                Some(Body::Json(json!({ "fields": [] }))),
                None,
            )
            .await;
            p.send(Method::DELETE, &url, None, None).await;
        }
        let url = p.app.url(&format!("{POSTS}/{segment}"));
        p.get(&url).await;
        p.send(
            Method::PATCH,
            &url,
            Some(Body::Json(json!({ "title": "pwned" }))),
            None,
        )
        .await;
        p.send(Method::DELETE, &url, None, None).await;
    }
    // Raw query strings the URL encoder would never produce.
    for query in [
        "filter=%00",
        "filter=title%20%3D%20%27%00%27",
        "filter=%FF%FE",
        "filter=%zz",
        "filter=%",
        "sort=%00",
        "fields=%00",
        "expand=%00",
        "page=%00",
        "page=%FF",
        "per_page=1%00",
        "page=1&page=2",
        "filter",
        "=",
        "&&&",
        "filter=title%3D%27a%27&filter=%27%20OR%201%3D1",
    ] {
        p.get(&p.app.url(&format!("{POSTS}?{query}"))).await;
        p.get(&p.app.url(&format!("{POSTS}/{seed_id}?{query}")))
            .await;
    }
    for path in [
        "//api//collections//posts//records",
        "/api/collections/posts/records/",
        "/api/collections/posts/records/a/b/c",
        "/api/collections//records",
        "/api/collections/posts/records/%2F",
    ] {
        p.get(&p.app.url(path)).await;
    }
    let deep = format!("/api/collections/posts/records/{}", "a/".repeat(1000));
    p.get(&p.app.url(&deep)).await;
}

/// Hostile values for every field of `sink` (POST, then PATCH of one sink record); accepted
/// text-like values must read back verbatim.
async fn body_values(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    let target = match p
        .send(
            Method::POST,
            &p.app.url(SINK),
            Some(Body::Json(json!({ "title": "target" }))),
            None,
        )
        .await
    {
        Some((201, text)) => serde_json::from_str::<Value>(&text).unwrap(),
        other => panic!("cannot create the PATCH target in sink: {other:?}"),
    };
    let target_url = p
        .app
        .url(&format!("{SINK}/{}", target["id"].as_str().unwrap()));
    let fields = [
        "title", "slug", "views", "score", "data", "email", "site", "status", "when", "flag",
        "author", "parent",
    ];
    for (label, payload) in payloads {
        for field in fields {
            // A fresh slug per request, so that unique conflicts do not hide other answers.
            let body = json!({ field: payload });
            for (method, url) in [
                (Method::POST, p.app.url(SINK)),
                (Method::PATCH, target_url.clone()),
            ] {
                let answer = p
                    .send(method.clone(), &url, Some(Body::Json(body.clone())), None)
                    .await;
                let Some((status @ (200 | 201), text)) = answer else {
                    continue;
                };
                let record: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if VERBATIM_FIELDS.contains(&field) && record[field] != json!(payload) {
                    p.other.push(format!(
                        "{method} {field} = {label}: {status}, but the value came back altered: \
                         {}",
                        shorten(&record[field].to_string(), 120)
                    ));
                }
                if method == Method::POST
                    && let Some(id) = record["id"].as_str()
                {
                    let url = p.app.url(&format!("{SINK}/{id}"));
                    if let Some((200, text)) = p.get(&url).await {
                        let stored: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if stored != record {
                            p.other.push(format!(
                                "POST {field} = {label}: read back differs from the 201 body"
                            ));
                        }
                    }
                }
                if field == "slug" && method == Method::POST {
                    // Free the unique value for the PATCH that follows.
                    if let Some(id) = record["id"].as_str() {
                        let url = p.app.url(&format!("{SINK}/{id}"));
                        p.send(Method::DELETE, &url, None, None).await;
                    }
                }
            }
        }
        // The payload as a key, alone and next to a valid field.
        for body in [
            json!({ payload: "x" }),
            json!({ "title": "ok", payload: 1 }),
        ] {
            p.send(
                Method::POST,
                &p.app.url(SINK),
                Some(Body::Json(body.clone())),
                None,
            )
            .await;
            p.send(Method::PATCH, &target_url, Some(Body::Json(body)), None)
                .await;
        }
    }
}

/// Raw JSON bodies: extreme numbers, deep nesting, duplicate keys, broken encodings.
async fn raw_bodies(p: &mut Prober<'_>) {
    let sink = p.app.url(SINK);
    for number in NUMBERS {
        for field in ["views", "score", "data"] {
            let body = format!("{{\"title\":\"n\",\"{field}\":{number}}}");
            let answer = p
                .send(
                    Method::POST,
                    &sink,
                    Some(Body::Raw(body.clone().into_bytes())),
                    None,
                )
                .await;
            if let Some((201, text)) = answer {
                let record: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let back = &record[field];
                let same = match (number.parse::<i128>(), back.as_i64(), back.as_u64()) {
                    (Ok(sent), Some(b), _) => i128::from(b) == sent,
                    (Ok(sent), _, Some(b)) => i128::from(b) == sent,
                    _ => {
                        let sent: f64 = number.parse().unwrap();
                        back.as_f64()
                            .is_some_and(|b| b == sent || (b - sent).abs() <= sent.abs() * 1e-15)
                    }
                };
                if !same {
                    p.other.push(format!(
                        "POST {SINK} {body}\n    -> 201 but {field} came back as {}",
                        record[field]
                    ));
                }
            }
        }
    }
    for (label, nested) in [
        ("10k nested arrays", nested_arrays(10_000)),
        ("10k nested objects", nested_objects(10_000)),
        ("129 nested arrays", nested_arrays(129)),
        ("100 nested arrays", nested_arrays(100)),
        ("100 nested objects", nested_objects(100)),
    ] {
        // As a json field value.
        let body = format!("{{\"title\":\"deep\",\"data\":{nested}}}");
        let answer = p
            .send(
                Method::POST,
                &sink,
                Some(Body::Raw(body.into_bytes())),
                None,
            )
            .await;
        if let Some((201, text)) = answer {
            let record: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let sent: Value = serde_json::from_str(&nested).unwrap_or(Value::Null);
            if record["data"] != sent {
                p.other.push(format!(
                    "POST {SINK} with data = {label}: 201 but data altered"
                ));
            }
        }
        // As the whole body, to every endpoint that takes one.
        for (method, path) in [
            (Method::POST, SINK.to_owned()),
            (Method::PATCH, record_path(&p.seed)),
            (Method::POST, "/api/collections".to_owned()),
            (Method::PATCH, "/api/collections/posts".to_owned()),
            (Method::POST, "/api/batch".to_owned()),
            (Method::POST, "/api/auth/login".to_owned()),
            (Method::POST, "/api/auth/refresh".to_owned()),
        ] {
            let url = p.app.url(&path);
            p.send(
                method,
                &url,
                Some(Body::Raw(nested.clone().into_bytes())),
                None,
            )
            .await;
        }
        let batch = format!(
            "{{\"requests\":[{{\"method\":\"POST\",\"url\":\"{SINK}\",\"body\":{{\"data\":{nested}}}}}]}}"
        );
        let url = p.app.url("/api/batch");
        p.send(
            Method::POST,
            &url,
            Some(Body::Raw(batch.into_bytes())),
            None,
        )
        .await;
    }
    // Duplicate keys: either rejected or one of the values wins.
    for (body, field, allowed) in [
        (r#"{"title":"a","title":"b"}"#, "title", json!(["a", "b"])),
        (r#"{"views":1,"views":"x"}"#, "views", json!([1])),
        (r#"{"title":"a","title":{"$ne":1}}"#, "title", json!(["a"])),
    ] {
        let answer = p
            .send(
                Method::POST,
                &sink,
                Some(Body::Raw(body.as_bytes().to_vec())),
                None,
            )
            .await;
        if let Some((201, text)) = answer {
            let record: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !allowed.as_array().unwrap().contains(&record[field]) {
                p.other.push(format!(
                    "POST {SINK} {body}\n    -> 201 with {field} = {}",
                    record[field]
                ));
            }
        }
    }
    let many_keys: String = format!(
        "{{{}}}",
        (0..10_000)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for body in [
        b"{\"title\":\"\xff\xfe\"}".to_vec(),
        b"{\"\xc0\xae\":1}".to_vec(),
        br#"{"title":"\ud800"}"#.to_vec(),
        br#"{"title":"\udc00\ud800"}"#.to_vec(),
        br#"{"title":"\u0000"}"#.to_vec(),
        br#"{"data":"\u0000","title":"nul in json"}"#.to_vec(),
        br#"{"data":{"\u0000":1},"title":"nul key in json"}"#.to_vec(),
        br#"{"title":"x"} trailing"#.to_vec(),
        b"\xef\xbb\xbf{\"title\":\"bom\"}".to_vec(),
        b"{\"title\":\"a\"\x00}".to_vec(),
        br#"{"title": NaN}"#.to_vec(),
        br#"{"views": Infinity}"#.to_vec(),
        br#"{"views": 0x10}"#.to_vec(),
        many_keys.into_bytes(),
        format!("{{\"data\":[{}]}}", vec!["1"; 100_000].join(",")).into_bytes(),
    ] {
        p.send(Method::POST, &sink, Some(Body::Raw(body.clone())), None)
            .await;
        let url = p.app.url(&record_path(&p.seed));
        // Only bodies that cannot be valid go to the seeded post.
        if body.starts_with(b"{\"title\":\"\xff") || body.starts_with(b"{\"title\":\"\\ud") {
            p.send(Method::PATCH, &url, Some(Body::Raw(body)), None)
                .await;
        }
    }
}

/// Hostile header values: content types, request ids, authorization schemes.
async fn headers(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    let url = p.app.url(SINK);
    let long = "x".repeat(5000);
    let mut content_types: Vec<String> = [
        "application/json; charset=utf-16",
        "application/json; charset=\"' OR 1=1 --\"",
        "application/json;;;;",
        "application/x+json",
        "application/+json",
        "APPLICATION/JSON",
        "multipart/form-data; boundary=x",
        "",
    ]
    .map(str::to_owned)
    .to_vec();
    content_types.push(format!("application/json; {long}"));
    for content_type in content_types {
        let Ok(value) = HeaderValue::from_str(&content_type) else {
            continue;
        };
        let req = p
            .app
            .client
            .post(&url)
            .bearer_auth(&p.app.token)
            .header(CONTENT_TYPE, value)
            .body(r#"{"title":"content type"}"#)
            .timeout(REQUEST_TIMEOUT);
        p.send_request(
            &format!(
                "POST {SINK} with Content-Type: {}",
                shorten(&content_type, 60)
            ),
            req,
        )
        .await;
    }
    let mut values: Vec<String> = payloads.iter().map(|(_, s)| s.clone()).collect();
    values.push(long.clone());
    for value in values {
        let Ok(header) = HeaderValue::from_bytes(value.as_bytes()) else {
            continue;
        };
        let req = p
            .app
            .client
            .get(p.app.url(POSTS))
            .bearer_auth(&p.app.token)
            .header("x-request-id", header.clone())
            .timeout(REQUEST_TIMEOUT);
        p.send_request(
            &format!("GET {POSTS} with x-request-id: {}", shorten(&value, 60)),
            req,
        )
        .await;
        for scheme in ["Basic", "Bearer", "Token", ""] {
            let Ok(auth) = HeaderValue::from_bytes(format!("{scheme} {value}").as_bytes()) else {
                continue;
            };
            let url = p.app.url(POSTS);
            if let Some((status, _)) = p.send(Method::GET, &url, None, Some(auth)).await
                && status != 401
            {
                p.other.push(format!(
                    "GET {POSTS} with `Authorization: {scheme} {}` -> {status}, not 401",
                    shorten(&value, 60)
                ));
            }
        }
    }
}

/// Hostile names and definitions for collections, batch requests, login and tokens.
async fn other_endpoints(p: &mut Prober<'_>, payloads: &[(&str, String)]) {
    let collections = p.app.url("/api/collections");
    let batch = p.app.url("/api/batch");
    let login = p.app.url("/api/auth/login");
    for (_, payload) in payloads {
        for body in [
            json!({ "name": payload, "fields": [{ "name": "a", "type": "text" }] }),
            json!({ "name": "hostile_c", "fields": [{ "name": payload, "type": "text" }] }),
            json!({ "name": "hostile_c", "fields": [{ "name": "a", "type": payload }] }),
            json!({ "name": "hostile_c", "fields": [{ "name": "a", "type": "relation",
                    "options": { "collection": payload } }] }),
            json!({ "name": "hostile_c", "fields": [{ "name": "a", "type": "text" }],
                    "indexes": [[payload]] }),
        ] {
            if let Some((201, text)) = p
                .send(
                    Method::POST,
                    &collections,
                    Some(Body::Json(body.clone())),
                    None,
                )
                .await
            {
                let created: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let name = encode_segment(created["name"].as_str().unwrap_or("hostile_c"));
                let url = p.app.url(&format!("/api/collections/{name}"));
                p.send(Method::DELETE, &url, None, None).await;
                // `NaN` is a fine name: only names outside the naming rule are a finding.
                if is_identifier(payload) {
                    continue;
                }
                p.other.push(format!(
                    "POST /api/collections {}\n    -> 201: a hostile definition was accepted",
                    shorten(&body.to_string(), 200)
                ));
            }
        }
        let seeded = record_path(&p.seed);
        // A blank payload would turn `{seeded}{payload}` into a valid write of the seed.
        let requests = if payload.trim().is_empty() {
            vec![]
        } else {
            vec![
                json!({ "method": payload, "url": POSTS, "body": { "title": "x" } }),
                json!({ "method": "POST", "url": payload, "body": { "title": "x" } }),
                json!({ "method": "DELETE", "url": format!("{POSTS}/{payload}") }),
                json!({ "method": "PATCH", "url": format!("{seeded}{payload}"), "body": { "title": "x" } }),
                json!({ "method": "POST", "url": format!("/api/collections/{payload}/records"), "body": {} }),
                json!({ "method": "POST", "url": POSTS, "body": { payload: "x" } }),
                json!({ "method": "POST", "url": POSTS, "body": { "title": "x", "views": payload } }),
            ]
        };
        for request in requests {
            // The last request of each batch is hostile; the first would be a valid write.
            let body = json!({ "requests": [
                { "method": "POST", "url": POSTS, "body": { "title": "must not stay" } },
                request,
            ] });
            p.send(Method::POST, &batch, Some(Body::Json(body)), None)
                .await;
        }
        for body in [
            json!({ "email": payload, "password": payload }),
            json!({ "email": ADMIN_EMAIL, "password": payload }),
            json!({ "email": format!("{payload}@example.com"), "password": ADMIN_PASSWORD }),
        ] {
            let answer = p
                .send(Method::POST, &login, Some(Body::Json(body.clone())), None)
                .await;
            if let Some((200, _)) = answer {
                p.other.push(format!(
                    "POST /api/auth/login {body}\n    -> 200: logged in"
                ));
            }
        }
        let refresh = p.app.url("/api/auth/refresh");
        p.send(
            Method::POST,
            &refresh,
            Some(Body::Json(json!({ "refresh_token": payload }))),
            None,
        )
        .await;
        // As a bearer token, where it can be a header value at all.
        if let Ok(header) = HeaderValue::from_bytes(format!("Bearer {payload}").as_bytes()) {
            let url = p.app.url(POSTS);
            if let Some((status, _)) = p.send(Method::GET, &url, None, Some(header)).await
                && status != 401
            {
                p.other.push(format!(
                    "GET {POSTS} with `Authorization: Bearer {}` -> {status}, not 401",
                    shorten(payload, 60)
                ));
            }
        }
    }
}

/// Rate limits off: the auth endpoints would answer 429 before seeing the hostile input.
const CONFIG: &str = "[rate_limit]\nauth = \"off\"\ndefault = \"off\"\n";

mod hostile_input_never_breaks_the_server {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}

async fn run(backend: Backend) {
    let Some(app) = spawn_app_with_config(backend, CONFIG).await else {
        return;
    };
    let started = std::time::Instant::now();
    let seed = seed(&app).await;
    let snapshot = snapshot(&app).await;
    let mut p = Prober {
        app: &app,
        server_errors: Vec::new(),
        other: Vec::new(),
        sent: 0,
        skipped: 0,
        snapshot,
        seed,
    };
    let payloads = payloads();

    query_parameters(&mut p, &payloads).await;
    p.check_intact("query parameter").await;
    filter_literals(&mut p, &payloads).await;
    p.check_intact("filter literal").await;
    paths(&mut p, &payloads).await;
    p.check_intact("path").await;
    body_values(&mut p, &payloads).await;
    p.check_intact("body value").await;
    raw_bodies(&mut p).await;
    p.check_intact("raw body").await;
    other_endpoints(&mut p, &payloads).await;
    p.check_intact("collections, batch and auth").await;
    headers(&mut p, &payloads).await;
    p.check_intact("header").await;

    let report = p.report();
    assert!(
        report.is_empty(),
        "{report}\nThe server logged these internal errors:\n{}\n({} requests, {} too long to \
         send, in {:?})",
        internal_errors(&app.logs()).join("\n"),
        p.sent,
        p.skipped,
        started.elapsed()
    );
    // The log must not have recorded a panic.
    let logs = app.logs();
    assert!(
        !logs.to_lowercase().contains("panicked"),
        "the server log shows a panic:\n{}",
        log_tail(&logs, 4000)
    );
}
