//! Web pages scraped with CSS selectors: one record per `item` match, one column per
//! `fields` selector, next pages found with `follow`. Scraping someone else's site must be
//! polite, so requests are spaced by `delay_ms` (or the site's `Crawl-delay`), bounded by
//! `max_pages`, and `robots.txt` is honoured unless `robots = false`. Requests, retries and
//! row lineage are shared with the JSON API extractor ([`super::http`]).
//!
//! `scraper::Html` is not `Send`: each page is parsed and read in one synchronous call
//! (`scrape`) that returns owned records, so nothing of it lives across an `.await`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Client, Url};
use scraper::{ElementRef, Html, Selector};
use serde_json::{Map, Value as Json};

use super::http::{
    Credentials, PageSink, Redactor, client, extract_error, fetch, parse_url, pause, send_all,
    status_error,
};
use super::{Context, Sender};
use crate::error::PipelineError;

const DEFAULT_MAX_PAGES: u32 = 10;
const DEFAULT_DELAY_MS: u64 = 500;
/// The longest `Crawl-delay` honoured; a site asking for more gets this.
const CRAWL_DELAY_CAP: Duration = Duration::from_secs(60);

/// Checks a CSS selector.
///
/// # Errors
/// Why the selector is invalid.
pub fn check_selector(selector: &str) -> Result<(), String> {
    scraper::Selector::parse(selector)
        .map(|_| ())
        .map_err(|e| format!("`{selector}` is not a valid CSS selector: {e}"))
}

/// `brigade/<version> (+https://github.com/brigade)`.
fn default_user_agent() -> String {
    format!(
        "brigade/{} (+https://github.com/brigade)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Scrapes the first page and the pages `follow` leads to, and sends their items' rows.
///
/// # Errors
/// An invalid selector or URL, a first page that `robots.txt` disallows, a 4xx status, a
/// request still failing after the retries (marked transient), or a bad row under
/// `on_bad_row = "fail"`.
pub async fn run(cx: &Context, tx: &Sender) -> Result<(), PipelineError> {
    let plan = Plan::of(cx)?;
    let mut url = parse_url(cx, &cx.expand(cx.spec.url.as_deref().unwrap_or_default())?)?;
    url.set_fragment(None);
    let agent = cx
        .spec
        .user_agent
        .clone()
        .unwrap_or_else(default_user_agent);
    let credentials =
        Credentials::new(cx, &url, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")?;
    let client = client(cx, &agent, &credentials)?;
    let redactor = Redactor::new(cx);
    let max_pages = cx.spec.max_pages.unwrap_or(DEFAULT_MAX_PAGES).max(1);
    let mut delay = Duration::from_millis(cx.spec.delay_ms.unwrap_or(DEFAULT_DELAY_MS));
    let honour_robots = cx.spec.robots.unwrap_or(true);
    let token = product_token(&agent);
    let mut robots: HashMap<String, Robots> = HashMap::new();
    let mut visited: HashSet<Url> = HashSet::new();
    let mut sink = PageSink::new(cx);
    let mut pages: u32 = 0;
    let mut shown = redactor.url(&url);
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        if honour_robots {
            let origin = url.origin().ascii_serialization();
            if !robots.contains_key(&origin) {
                let rules =
                    fetch_robots(cx, &client, &credentials, &redactor, &url, &token).await?;
                if let Some(wait) = rules.delay {
                    delay = delay.max(wait.min(CRAWL_DELAY_CAP));
                }
                robots.insert(origin.clone(), rules);
            }
            let allowed = robots
                .get(&origin)
                .is_none_or(|r| r.allows(&path_and_query(&url)));
            if !allowed {
                if pages == 0 {
                    return Err(extract_error(
                        cx,
                        &format!(
                            "{origin}/robots.txt does not allow user agent `{token}` to fetch {shown}; ask the site for permission, then set robots = false"
                        ),
                    ));
                }
                tracing::warn!(
                    extract = %cx.spec.name,
                    url = %shown,
                    "robots.txt disallows the next page; stopped following."
                );
                break;
            }
        }
        if pages > 0 {
            pause(cx, delay).await?;
        }
        visited.insert(url.clone());
        let headers = credentials.for_url(cx, &url, &shown);
        let fetched = fetch(cx, &client, &url, headers, &shown).await?;
        if !fetched.status.is_success() {
            return Err(status_error(cx, &url, &shown, &fetched, &credentials));
        }
        let mut landed = fetched.url.clone();
        landed.set_fragment(None);
        visited.insert(landed);
        let page = scrape(&fetched.body, &fetched.url, &plan);
        pages += 1;
        if page.records.is_empty() {
            tracing::warn!(
                extract = %cx.spec.name,
                url = %shown,
                item = %cx.spec.item.as_deref().unwrap_or_default(),
                "The item selector matched nothing on this page."
            );
        }
        let mut out = Vec::new();
        for record in page.records {
            sink.push(&shown, Json::Object(record), &mut out)?;
        }
        sink.end_page(&shown, &mut out);
        send_all(tx, out).await?;
        let Some(next) = page.next else {
            break;
        };
        if visited.contains(&next) {
            tracing::debug!(extract = %cx.spec.name, url = %redactor.url(&next), "The next page was already visited; stopped following.");
            break;
        }
        if pages >= max_pages {
            tracing::warn!(
                extract = %cx.spec.name,
                max_pages,
                next = %redactor.url(&next),
                "Stopped at max_pages although there are more pages; raise `max_pages` to read them."
            );
            break;
        }
        url = next;
        shown = redactor.url(&url);
    }
    let mut out = Vec::new();
    sink.finish(&shown, &mut out)?;
    send_all(tx, out).await
}

/// The compiled selectors of an extract.
struct Plan {
    item: Selector,
    /// Column, selector (`None`: the item itself), attribute (`None`: the text).
    fields: Vec<(String, Option<Selector>, Option<String>)>,
    /// The next-page link and its attribute.
    follow: Option<(Selector, String)>,
    base: Selector,
}

impl Plan {
    fn of(cx: &Context) -> Result<Plan, PipelineError> {
        let compile = |key: &str, selector: &str| -> Result<Selector, PipelineError> {
            Selector::parse(selector).map_err(|e| {
                extract_error(
                    cx,
                    &format!("`{key}`: `{selector}` is not a valid CSS selector: {e}"),
                )
            })
        };
        let item = cx.spec.item.as_deref().unwrap_or_default().trim();
        if item.is_empty() {
            return Err(extract_error(
                cx,
                "`item` is empty; set it to a CSS selector matching one element per row, e.g. \"article.post\"",
            ));
        }
        let item = compile("item", item)?;
        if cx.spec.fields.is_empty() {
            return Err(extract_error(
                cx,
                "`fields` is empty; map each column to a selector, e.g. { title = \"h2 a\", link = \"h2 a@href\" }",
            ));
        }
        let mut fields = Vec::with_capacity(cx.spec.fields.len());
        for (name, spec) in &cx.spec.fields {
            let key = format!("fields.{name}");
            let (selector, attr) = match spec.split_once('@') {
                Some((selector, attr)) => {
                    let attr = attr.trim();
                    if attr.is_empty() {
                        return Err(extract_error(
                            cx,
                            &format!(
                                "`{key}`: nothing after `@`; write `selector@attribute`, e.g. \"a@href\""
                            ),
                        ));
                    }
                    (selector.trim(), Some(attr.to_string()))
                }
                None => (spec.trim(), None),
            };
            let selector = if selector.is_empty() {
                None
            } else {
                Some(compile(&key, selector)?)
            };
            fields.push((name.clone(), selector, attr));
        }
        let follow = match cx.spec.follow.as_deref() {
            None => None,
            Some(spec) => {
                let (selector, attr) = spec.split_once('@').unwrap_or((spec, "href"));
                let attr = if attr.trim().is_empty() {
                    "href"
                } else {
                    attr.trim()
                };
                if selector.trim().is_empty() {
                    return Err(extract_error(
                        cx,
                        "`follow` needs the selector of the next-page link, e.g. \"a.next@href\"",
                    ));
                }
                Some((compile("follow", selector.trim())?, attr.to_string()))
            }
        };
        let base = compile("base", "base[href]")?;
        Ok(Plan {
            item,
            fields,
            follow,
            base,
        })
    }
}

/// What one page gave.
struct Page {
    records: Vec<Map<String, Json>>,
    /// The next page, absolute, without fragment.
    next: Option<Url>,
}

/// Parses `body` (fetched from `url`) and reads its items and next link.
fn scrape(body: &str, url: &Url, plan: &Plan) -> Page {
    let document = Html::parse_document(body);
    let base = document
        .select(&plan.base)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| url.join(href.trim()).ok())
        .unwrap_or_else(|| url.clone());
    let records = document
        .select(&plan.item)
        .map(|item| {
            let mut record = Map::with_capacity(plan.fields.len());
            for (name, selector, attr) in &plan.fields {
                let element = match selector {
                    None => Some(item),
                    Some(s) => item.select(s).next(),
                };
                let value = element.map_or(Json::Null, |e| field(e, attr.as_deref(), &base));
                record.insert(name.clone(), value);
            }
            record
        })
        .collect();
    let next = plan.follow.as_ref().and_then(|(selector, attr)| {
        let target = document
            .select(selector)
            .find_map(|e| e.value().attr(attr))?
            .trim();
        if target.is_empty() {
            return None;
        }
        let mut next = base.join(target).ok()?;
        next.set_fragment(None);
        matches!(next.scheme(), "http" | "https").then_some(next)
    });
    Page { records, next }
}

/// An element's text (whitespace collapsed) or attribute (links made absolute).
fn field(element: ElementRef<'_>, attr: Option<&str>, base: &Url) -> Json {
    match attr {
        None => Json::String(
            element
                .text()
                .flat_map(str::split_whitespace)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Some(attr) => match element.value().attr(attr) {
            None => Json::Null,
            Some(value) if matches!(attr.to_ascii_lowercase().as_str(), "href" | "src") => {
                let value = value.trim();
                Json::String(
                    base.join(value)
                        .map_or_else(|_| value.to_string(), String::from),
                )
            }
            Some(value) => Json::String(value.to_string()),
        },
    }
}

/// The path and query of `url`, as robots.txt rules match them.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The product token of a user agent (`brigade` of `brigade/0.1 (+https://...)`).
fn product_token(agent: &str) -> String {
    agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .find(|s| !s.is_empty())
        .unwrap_or("brigade")
        .to_ascii_lowercase()
}

/// Reads the robots.txt of `url`'s host; a missing one (4xx) allows everything.
async fn fetch_robots(
    cx: &Context,
    client: &Client,
    credentials: &Credentials,
    redactor: &Redactor,
    url: &Url,
    token: &str,
) -> Result<Robots, PipelineError> {
    let mut robots_url = url.clone();
    robots_url.set_path("/robots.txt");
    robots_url.set_query(None);
    robots_url.set_fragment(None);
    let shown = redactor.url(&robots_url);
    let mut headers = credentials.for_url(cx, &robots_url, &shown).clone();
    headers.insert(ACCEPT, HeaderValue::from_static("text/plain,*/*;q=0.5"));
    let fetched = fetch(cx, client, &robots_url, &headers, &shown).await?;
    if fetched.status.is_success() {
        Ok(Robots::parse(&fetched.body, token))
    } else {
        tracing::debug!(extract = %cx.spec.name, url = %shown, status = %fetched.status, "No robots.txt; every page is allowed.");
        Ok(Robots::default())
    }
}

/// The robots.txt rules for our user agent (RFC 9309).
#[derive(Debug, Default)]
struct Robots {
    /// (allow, path pattern)
    rules: Vec<(bool, String)>,
    delay: Option<Duration>,
}

#[derive(Default)]
struct Group {
    agents: Vec<String>,
    rules: Vec<(bool, String)>,
    delay: Option<Duration>,
}

impl Robots {
    /// The rules of the groups naming `token`, or else of the `*` groups.
    fn parse(text: &str, token: &str) -> Robots {
        let mut groups: Vec<Group> = Vec::new();
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push(Group::default());
                    }
                    in_agents = true;
                    if let Some(group) = groups.last_mut() {
                        group.agents.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(group) = groups.last_mut()
                        && !value.is_empty()
                    {
                        group.rules.push((key == "allow", value.to_string()));
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let Some(group) = groups.last_mut() {
                        group.delay = value
                            .parse::<f64>()
                            .ok()
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
                    }
                }
                _ => {}
            }
        }
        let names_us = |a: &String| a != "*" && a.split('/').next().is_some_and(|a| a == token);
        let mut chosen: Vec<&Group> = groups
            .iter()
            .filter(|g| g.agents.iter().any(names_us))
            .collect();
        if chosen.is_empty() {
            chosen = groups
                .iter()
                .filter(|g| g.agents.iter().any(|a| a == "*"))
                .collect();
        }
        Robots {
            rules: chosen.iter().flat_map(|g| g.rules.clone()).collect(),
            delay: chosen.iter().filter_map(|g| g.delay).max(),
        }
    }

    /// Whether `path` (with its query) may be fetched: the longest matching rule decides,
    /// `Allow` winning a tie; no matching rule allows.
    fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if !pattern_matches(pattern, path) {
                continue;
            }
            let length = pattern.len();
            if best.is_none_or(|(l, a)| length > l || (length == l && *allow && !a)) {
                best = Some((length, *allow));
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Whether a robots.txt path pattern (`*` any characters, a final `$` the end) matches the
/// start of `path`.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let first = parts[0];
    if !path.starts_with(first) {
        return false;
    }
    let mut pos = first.len();
    if parts.len() == 1 {
        return !anchored || path.len() == pos;
    }
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == last && anchored {
            return path.len() >= pos + part.len() && path.ends_with(part);
        }
        match path[pos..].find(part) {
            Some(j) => pos += j + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::StatusCode as AxumStatus;
    use axum::response::{Html as HtmlBody, IntoResponse};
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::extract::test_support::{Collected, collect, context, serve};

    /// Request counts by path.
    #[derive(Clone, Default)]
    struct Hits(Arc<std::sync::Mutex<HashMap<String, usize>>>);

    impl Hits {
        fn hit(&self, path: &str) {
            *self.0.lock().unwrap().entry(path.to_string()).or_default() += 1;
        }
        fn count(&self, path: &str) -> usize {
            self.0.lock().unwrap().get(path).copied().unwrap_or(0)
        }
        fn total(&self) -> usize {
            self.0.lock().unwrap().values().sum()
        }
    }

    async fn scrape_toml(toml: &str) -> Result<Collected, PipelineError> {
        let dir = std::env::temp_dir();
        collect(context(toml, &dir, None, &[]), run).await
    }

    /// A page of two items `n.1`, `n.2` linking to `next`.
    fn listing(n: usize, next: Option<&str>) -> String {
        let link = next.map_or(String::new(), |href| {
            format!("<a class=\"next\" href=\"{href}\">next</a>")
        });
        format!(
            "<html><body><ul>\
             <li class=\"row\"><b>{n}.1</b></li><li class=\"row\"><b>{n}.2</b></li>\
             </ul>{link}</body></html>"
        )
    }

    #[tokio::test]
    async fn items_and_fields_with_absolute_links() {
        let app = Router::new().route(
            "/list/",
            get(|| async {
                HtmlBody(
                    r#"<html><head><title>x</title></head><body>
                    <article class="post" data-id="1">
                      <h2><a href="/posts/1">  Hello
                          <em>big</em>   world </a></h2>
                      <time datetime="2024-01-02">Jan 2</time>
                      <img src="img/1.png">
                    </article>
                    <article class="post" data-id="2">
                      <h2><a href="https://other.example/x">Second</a></h2>
                    </article>
                    <article class="elsewhere"><h2>not an item</h2></article>
                    </body></html>"#,
                )
            }),
        );
        let base = serve(app).await;
        let got = scrape_toml(&format!(
            r#"name = "posts"
from = "html"
url = "{base}/list/"
item = "article.post"
delay_ms = 0
columns = {{ id = "integer" }}
fields = {{ title = "h2 a", link = "h2 a@href", id = "@data-id", published = "time@datetime", image = "img@src", missing = "span.nope", self_text = "" }}"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("title"),
            [json!("Hello big world"), json!("Second")]
        );
        assert_eq!(
            got.column("link"),
            [
                json!(format!("{base}/posts/1")),
                json!("https://other.example/x")
            ]
        );
        // Scraped values are text; `columns` types them.
        assert_eq!(got.column("id"), [json!(1), json!(2)]);
        assert_eq!(got.column("published")[0], json!("2024-01-02"));
        assert_eq!(got.column("published"), [json!("2024-01-02"), Json::Null]);
        assert_eq!(
            got.column("image"),
            [json!(format!("{base}/list/img/1.png")), Json::Null]
        );
        assert_eq!(got.column("missing"), [Json::Null, Json::Null]);
        assert_eq!(got.column("self_text")[0], json!("Hello big world Jan 2"));
        assert_eq!(
            got.sources,
            [format!("{base}/list/"), format!("{base}/list/")]
        );
        assert_eq!(got.done, Some(None));
    }

    #[tokio::test]
    async fn follow_stops_at_max_pages() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/page/{n}",
                get(|State(h): State<Hits>, Path(n): Path<usize>| async move {
                    h.hit(&format!("/page/{n}"));
                    HtmlBody(listing(n, Some(&format!("/page/{}", n + 1))))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = scrape_toml(&format!(
            r#"name = "pages"
from = "html"
url = "{base}/page/1"
item = "li.row"
fields = {{ label = "b" }}
follow = "a.next"
max_pages = 3
delay_ms = 0"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("label"),
            ["1.1", "1.2", "2.1", "2.2", "3.1", "3.2"].map(|s| json!(s))
        );
        assert_eq!(got.sources[2], format!("{base}/page/2"));
        assert_eq!(hits.count("/page/4"), 0);
        assert_eq!(hits.total(), 3);
    }

    #[tokio::test]
    async fn follow_stops_at_a_page_already_visited() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/a",
                get(|State(h): State<Hits>| async move {
                    h.hit("/a");
                    HtmlBody(listing(1, Some("b")))
                }),
            )
            .route(
                "/b",
                get(|State(h): State<Hits>| async move {
                    h.hit("/b");
                    HtmlBody(listing(2, Some("/a#top")))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = scrape_toml(&format!(
            r#"name = "cycle"
from = "html"
url = "{base}/a"
item = "li.row"
fields = {{ label = "b" }}
follow = "a.next@href"
delay_ms = 0"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("label"),
            ["1.1", "1.2", "2.1", "2.2"].map(|s| json!(s))
        );
        assert_eq!((hits.count("/a"), hits.count("/b")), (1, 1));
    }

    fn robots_site(hits: Hits) -> Router {
        let page = |path: &'static str, n: usize, next: Option<&'static str>| {
            get(move |State(h): State<Hits>| async move {
                h.hit(path);
                HtmlBody(listing(n, next))
            })
        };
        Router::new()
            .route(
                "/robots.txt",
                get(|State(h): State<Hits>| async move {
                    h.hit("/robots.txt");
                    "User-agent: otherbot\nDisallow: /\n\n\
                     User-agent: *\nDisallow: /private # members only\nAllow: /private/open\nCrawl-delay: 0.25\n"
                }),
            )
            .route("/public", page("/public", 1, Some("/private/open/1")))
            .route("/private/open/1", page("/private/open/1", 2, Some("/private/2")))
            .route("/private/2", page("/private/2", 3, None))
            .with_state(hits)
    }

    #[tokio::test]
    async fn robots_txt_is_honoured_unless_disabled() {
        let hits = Hits::default();
        let base = serve(robots_site(hits.clone())).await;
        let toml = |path: &str, robots: bool| {
            format!(
                r#"name = "polite"
from = "html"
url = "{base}{path}"
item = "li.row"
fields = {{ label = "b" }}
follow = "a.next"
delay_ms = 0
robots = {robots}"#
            )
        };
        let err = scrape_toml(&toml("/private/2", true))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("extract `polite`: "), "{err}");
        assert!(err.contains("robots.txt does not allow"), "{err}");
        assert!(err.contains("robots = false"), "{err}");
        assert_eq!(hits.count("/private/2"), 0);

        let got = scrape_toml(&toml("/private/2", false)).await.unwrap();
        assert_eq!(got.column("label"), [json!("3.1"), json!("3.2")]);
        assert_eq!(hits.count("/private/2"), 1);

        // Following: /private/open is allowed, /private/2 is not.
        let robots_before = hits.count("/robots.txt");
        let started = std::time::Instant::now();
        let got = scrape_toml(&toml("/public", true)).await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250),
            "Crawl-delay raises delay_ms: {took:?}"
        );
        assert_eq!(
            got.column("label"),
            ["1.1", "1.2", "2.1", "2.2"].map(|s| json!(s))
        );
        assert_eq!(hits.count("/private/2"), 1, "not fetched again");
        assert_eq!(
            hits.count("/robots.txt") - robots_before,
            1,
            "read once per run"
        );
    }

    #[tokio::test]
    async fn page_errors_fail_and_missing_robots_allows_everything() {
        let app = Router::new()
            .route(
                "/ok",
                get(|| async { HtmlBody(listing(1, Some("/missing"))) }),
            )
            .route(
                "/missing",
                get(|| async { (AxumStatus::NOT_FOUND, "nothing here").into_response() }),
            );
        let base = serve(app).await;
        let err = scrape_toml(&format!(
            r#"name = "broken"
from = "html"
url = "{base}/ok"
item = "li.row"
fields = {{ label = "b" }}
follow = "a.next"
delay_ms = 0"#
        ))
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(!err.is_transient(), "{text}");
        assert!(
            text.contains(&format!(
                "GET {base}/missing returned 404 Not Found: nothing here"
            )),
            "{text}"
        );
    }

    #[test]
    fn robots_rules_pick_our_group_and_the_longest_match() {
        let text = "User-agent: *\nDisallow: /\n\n\
                    User-agent: Brigade\nUser-agent: other\nDisallow: /private\nAllow: /private/open\n\
                    Disallow: /*.pdf$\nDisallow: /tmp*/x\nAllow: /same\nDisallow: /same\nCrawl-delay: 2\n";
        let ours = Robots::parse(text, "brigade");
        assert!(ours.allows("/"));
        assert!(!ours.allows("/private/x"));
        assert!(ours.allows("/private/open/x"));
        assert!(!ours.allows("/files/a.pdf"));
        assert!(ours.allows("/files/a.pdf?download=1"));
        assert!(!ours.allows("/tmp123/x/y"));
        assert!(ours.allows("/tmp123/y"));
        assert!(ours.allows("/same"), "Allow wins a tie");
        assert!(ours.allows("/robots.txt"));
        assert_eq!(ours.delay, Some(Duration::from_secs(2)));
        let others = Robots::parse(text, "crawler");
        assert!(!others.allows("/anything"));
        assert!(Robots::parse("", "brigade").allows("/x"));
        assert!(Robots::parse("User-agent: *\nDisallow:\n", "brigade").allows("/x"));
        assert_eq!(product_token(&default_user_agent()), "brigade");
    }
}
