//! JSON APIs: one request, or pages followed by page number, offset, cursor or `Link`
//! header, each response's records fed through the [`Shaper`] like NDJSON. APIs fail in
//! passing (timeouts, 429s, 5xx during deploys), so every request is retried with backoff
//! before the step gives up; the request and retry code is shared with the HTML scraper.
//!
//! Secrets stay out of lineage, logs and errors: header values are never shown, and URLs
//! are shown with passwords, secret-looking query parameters and the values of
//! secret-looking `${VAR}`s masked (see `Redactor`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brigade_store::conn::Row;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, LINK, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Map, Value as Json};

use super::shape::{Shaper, flatten};
use super::{Batcher, Context, Message, Rejected, Sender, infer};
use crate::error::PipelineError;

/// Seconds per request (connect to last byte) unless `timeout_secs` says otherwise.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Pages per run unless `max_pages` says otherwise: a bound against endless pagination.
const DEFAULT_MAX_PAGES: u32 = 1000;
/// Retries after the first attempt, on connection errors, timeouts, 429 and 5xx.
const RETRIES: u32 = 5;
/// The first retry delay, doubled each retry (tests use a short one).
const BACKOFF_START: Duration = if cfg!(test) {
    Duration::from_millis(5)
} else {
    Duration::from_millis(200)
};
/// The longest delay between two attempts computed by backoff.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// The longest `Retry-After` we wait; a server asking for more gets this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// Characters of a response body quoted in errors.
const SNIPPET: usize = 200;

/// Requests every page of the extract and sends its records' rows.
///
/// # Errors
/// A bad URL or header, a response that is not JSON or lacks `records`, a 4xx status, a
/// request still failing after the retries (marked transient), or a bad record under
/// `on_bad_row = "fail"`.
pub async fn run(cx: &Context, tx: &Sender) -> Result<(), PipelineError> {
    let template = cx.expand(cx.spec.url.as_deref().unwrap_or_default())?;
    let redactor = Redactor::new(cx);
    let client = client(cx, &default_user_agent())?;
    let mut headers = headers(cx)?;
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    }
    let mut paging = Paging::of(cx)?;
    let max_pages = cx.spec.max_pages.unwrap_or(DEFAULT_MAX_PAGES).max(1);
    let mut sink = PageSink::new(cx);
    let mut url = paging.first(cx, &template)?;
    let mut pages: u32 = 0;
    let mut shown = redactor.url(&url);
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let fetched = fetch(cx, &client, &url, &headers, &shown).await?;
        if !fetched.status.is_success() {
            return Err(status_error(cx, &shown, &fetched));
        }
        let body: Json = serde_json::from_str(&fetched.body).map_err(|e| {
            extract_error(
                cx,
                &format!(
                    "GET {shown} did not return JSON ({e}); it starts with: {}",
                    snippet(&fetched.body)
                ),
            )
        })?;
        let next_cursor = match &paging {
            Paging::Cursor { next, .. } => lookup(&body, next).and_then(cursor_text),
            _ => None,
        };
        let records = records_of(cx, body, &shown)?;
        let count = records.len();
        let mut out = Vec::new();
        for record in records {
            sink.push(&shown, record, &mut out)?;
        }
        sink.end_page(&shown, &mut out);
        send_all(tx, out).await?;
        pages += 1;
        tracing::debug!(extract = %cx.spec.name, url = %shown, records = count, "Fetched a page.");
        let Some(next) = paging.next(cx, &template, &fetched, count, next_cursor)? else {
            break;
        };
        if pages >= max_pages {
            tracing::warn!(
                extract = %cx.spec.name,
                max_pages,
                next = %redactor.url(&next),
                "Stopped at max_pages although the API has more pages; raise `max_pages` to read them."
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

/// Feeds the records of successive pages through a [`Shaper`] and labels every row with
/// the page (URL) it came from. The Shaper keeps its first records as a type sample and
/// turns them into rows all at once, possibly many pages later; the sink remembers which
/// page each sampled record came from and splits those rows by page.
pub(crate) struct PageSink {
    shaper: Shaper,
    batcher: Batcher,
    /// The sampled records, flattened, with the index of their page in `sources`.
    sample: Vec<(usize, Map<String, Json>)>,
    sources: Vec<String>,
    settled: bool,
    /// Records so far, the `line` of rejected ones.
    records: u64,
}

impl PageSink {
    /// A sink for the extract's records (type overrides, incremental cursor, bad rows).
    pub(crate) fn new(cx: &Context) -> PageSink {
        let cursor = cx
            .spec
            .incremental
            .as_ref()
            .map(|i| (i.cursor.clone(), cx.since.clone()));
        PageSink {
            shaper: Shaper::new(cx.overrides(), cursor),
            batcher: Batcher {
                range: cx.range.clone(),
                ..Batcher::new(&cx.spec.name, cx.spec.on_bad_row)
            },
            sample: Vec::new(),
            sources: Vec::new(),
            settled: false,
            records: 0,
        }
    }

    /// Takes one record of the page at `source`; messages to send go to `out`.
    ///
    /// # Errors
    /// A bad record under `on_bad_row = "fail"`, or a missing cursor column.
    pub(crate) fn push(
        &mut self,
        source: &str,
        record: Json,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        self.records += 1;
        let Json::Object(record) = record else {
            return self.batcher.bad(Rejected {
                source: source.to_string(),
                line: self.records,
                error: "not a JSON object".into(),
                raw: record.to_string(),
            });
        };
        if self.settled {
            self.shaper
                .push(source, self.records, record, &mut self.batcher, out)?;
            if self.batcher.full() {
                out.extend(self.batcher.drain(source));
            }
            return Ok(());
        }
        if self.sources.last().map(String::as_str) != Some(source) {
            self.sources.push(source.to_string());
        }
        self.sample
            .push((self.sources.len() - 1, flatten(record.clone())));
        let before = out.len();
        self.shaper
            .push(source, self.records, record, &mut self.batcher, out)?;
        if out[before..]
            .iter()
            .any(|m| matches!(m, Message::Columns(_)))
        {
            self.split(source, out);
        }
        Ok(())
    }

    /// Ends the page at `source`: its rows go out.
    pub(crate) fn end_page(&mut self, source: &str, out: &mut Vec<Message>) {
        if self.settled {
            out.extend(self.batcher.drain(source));
        }
    }

    /// Ends the source (`source` is the last page): the sample's rows if the source was
    /// smaller than a sample, the rest, and `Done`.
    ///
    /// # Errors
    /// As [`PageSink::push`].
    pub(crate) fn finish(
        &mut self,
        source: &str,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        if !self.settled && self.sample.is_empty() {
            // No records: no columns. (The Shaper would look for the incremental cursor
            // among them and fail, yet nothing new is the usual incremental outcome.)
            out.push(Message::Columns(Vec::new()));
        } else if !self.settled {
            self.shaper.finish(&mut self.batcher, out)?;
            self.split(source, out);
        }
        out.extend(self.batcher.drain(source));
        out.push(self.batcher.done());
        Ok(())
    }

    /// Sends the rows of the sample just converted, each under its page. Which records made
    /// a row is worked out again the way the Shaper and the Batcher decide it (conversion
    /// to every column's type, then the cursor); should the counts ever disagree, the rows
    /// go out under `source`, the current page.
    fn split(&mut self, source: &str, out: &mut Vec<Message>) {
        self.settled = true;
        let sample = std::mem::take(&mut self.sample);
        let sources = std::mem::take(&mut self.sources);
        let columns = self.shaper.columns();
        let mut filter = self.batcher.cursor.clone();
        let mut counts = vec![0usize; sources.len()];
        for (page, record) in &sample {
            let row: Option<Row> = columns
                .iter()
                .map(|c| infer::json_to(record.get(&c.name).unwrap_or(&Json::Null), c.ty).ok())
                .collect();
            if let Some(row) = row
                && filter.as_mut().is_none_or(|f| f.keep(&row))
            {
                counts[*page] += 1;
            }
        }
        if counts.iter().sum::<usize>() != self.batcher.rows.len() {
            tracing::debug!(
                source,
                "Could not tell the sampled rows' pages apart; labelling them with the current page."
            );
            out.extend(self.batcher.drain(source));
            return;
        }
        let mut rows = std::mem::take(&mut self.batcher.rows).into_iter();
        for (page, n) in sources.into_iter().zip(counts) {
            if n > 0 {
                out.push(Message::Rows {
                    source: page,
                    rows: rows.by_ref().take(n).collect(),
                });
            }
        }
        if !self.batcher.rejected.is_empty() {
            out.push(Message::Rejected(std::mem::take(
                &mut self.batcher.rejected,
            )));
        }
    }
}

/// How the next request is found.
enum Paging {
    /// One request.
    Single,
    /// `{page}` counts up until a page has no records.
    Page { page: i64 },
    /// `{offset}` steps by `size` until a page has fewer than `size` records.
    Offset { offset: i64, size: i64 },
    /// `{cursor}` (or `cursor=`) comes from the previous response at `next`.
    Cursor {
        next: String,
        previous: Option<String>,
    },
    /// RFC 8288 `Link: <...>; rel="next"`.
    LinkHeader,
}

impl Paging {
    fn of(cx: &Context) -> Result<Paging, PipelineError> {
        let Some(p) = &cx.spec.paginate else {
            return Ok(Paging::Single);
        };
        Ok(match p.kind.as_str() {
            "page" => Paging::Page {
                page: p.start.unwrap_or(1),
            },
            "offset" => {
                let size = p.size.unwrap_or(100);
                if size <= 0 {
                    return Err(extract_error(
                        cx,
                        "paginate.size must be a positive number of records per page",
                    ));
                }
                Paging::Offset {
                    offset: p.start.unwrap_or(0),
                    size,
                }
            }
            "cursor" => Paging::Cursor {
                next: p.next.clone().ok_or_else(|| {
                    extract_error(
                        cx,
                        "cursor pagination needs `paginate.next`, the path of the next cursor in each response (e.g. \"meta.next\")",
                    )
                })?,
                previous: None,
            },
            "link_header" => Paging::LinkHeader,
            other => {
                return Err(extract_error(
                    cx,
                    &format!(
                        "unknown pagination `{other}`; use page | offset | cursor | link_header"
                    ),
                ));
            }
        })
    }

    /// The first URL.
    fn first(&self, cx: &Context, template: &str) -> Result<Url, PipelineError> {
        match self {
            Paging::Single | Paging::LinkHeader => {
                parse_url(cx, &fill(template, &[("cursor", String::new())]))
            }
            Paging::Page { page } => page_url(cx, template, *page),
            Paging::Offset { offset, size } => offset_url(cx, template, *offset, *size),
            Paging::Cursor { .. } => parse_url(cx, &fill(template, &[("cursor", String::new())])),
        }
    }

    /// The URL after the page just read, or `None` at the end.
    fn next(
        &mut self,
        cx: &Context,
        template: &str,
        fetched: &Fetched,
        count: usize,
        next_cursor: Option<String>,
    ) -> Result<Option<Url>, PipelineError> {
        match self {
            Paging::Single => Ok(None),
            Paging::Page { page } => {
                if count == 0 {
                    return Ok(None);
                }
                *page += 1;
                page_url(cx, template, *page).map(Some)
            }
            Paging::Offset { offset, size } => {
                if (count as i64) < *size {
                    return Ok(None);
                }
                *offset += *size;
                offset_url(cx, template, *offset, *size).map(Some)
            }
            Paging::Cursor { previous, .. } => {
                let Some(cursor) = next_cursor else {
                    return Ok(None);
                };
                if previous.as_deref() == Some(cursor.as_str()) {
                    tracing::warn!(extract = %cx.spec.name, "The API returned the same cursor twice; stopping.");
                    return Ok(None);
                }
                *previous = Some(cursor.clone());
                if cursor.starts_with("http://") || cursor.starts_with("https://") {
                    // Some APIs give the next page's whole URL as the cursor.
                    return parse_url(cx, &cursor).map(Some);
                }
                if template.contains("{cursor}") {
                    parse_url(cx, &fill(template, &[("cursor", encode(&cursor))])).map(Some)
                } else {
                    let mut url = parse_url(cx, template)?;
                    set_param(&mut url, "cursor", &cursor);
                    Ok(Some(url))
                }
            }
            Paging::LinkHeader => {
                let Some(target) = fetched
                    .headers
                    .get_all(LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link)
                else {
                    return Ok(None);
                };
                let url = fetched.url.join(&target).map_err(|e| {
                    extract_error(
                        cx,
                        &format!("the Link header's next URL `{target}` is not valid: {e}"),
                    )
                })?;
                if url == fetched.url {
                    return Ok(None);
                }
                Ok(Some(url))
            }
        }
    }
}

fn page_url(cx: &Context, template: &str, page: i64) -> Result<Url, PipelineError> {
    if template.contains("{page}") {
        parse_url(cx, &fill(template, &[("page", page.to_string())]))
    } else {
        let mut url = parse_url(cx, template)?;
        set_param(&mut url, "page", &page.to_string());
        Ok(url)
    }
}

fn offset_url(cx: &Context, template: &str, offset: i64, size: i64) -> Result<Url, PipelineError> {
    let text = fill(
        template,
        &[("offset", offset.to_string()), ("limit", size.to_string())],
    );
    let mut url = parse_url(cx, &text)?;
    if !template.contains("{offset}") {
        set_param(&mut url, "offset", &offset.to_string());
    }
    if !template.contains("{limit}") {
        set_param(&mut url, "limit", &size.to_string());
    }
    Ok(url)
}

/// Replaces `{name}` placeholders.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Parses an http(s) URL of the extract.
///
/// # Errors
/// Not a URL, or not http:// or https://.
pub(crate) fn parse_url(cx: &Context, text: &str) -> Result<Url, PipelineError> {
    let url = Url::parse(text).map_err(|e| {
        extract_error(
            cx,
            &format!("`url` is not a valid URL ({e}); it should look like https://host/path?page={{page}}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(extract_error(
            cx,
            &format!(
                "`url` must be an http:// or https:// URL, not {}://",
                url.scheme()
            ),
        ));
    }
    Ok(url)
}

/// Sets query parameter `name` to `value`, replacing an existing one.
fn set_param(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value at a dot path (`meta.next`, `result.items`, `data.0`).
fn lookup<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, key| match v {
            Json::Object(map) => map.get(key),
            Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// The value at a dot path, to take it out.
fn lookup_mut<'a>(value: &'a mut Json, path: &str) -> Option<&'a mut Json> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, key| match v {
            Json::Object(map) => map.get_mut(key),
            Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        })
}

/// A cursor as text; missing, null, empty and `false` end the pages.
fn cursor_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The records of one response: the array at `records`, or the body itself.
fn records_of(cx: &Context, body: Json, shown: &str) -> Result<Vec<Json>, PipelineError> {
    let mut body = body;
    let value = match cx.spec.records.as_deref().filter(|p| !p.is_empty()) {
        None => body,
        Some(path) => {
            let Some(found) = lookup_mut(&mut body, path) else {
                let keys = match &body {
                    Json::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
                    _ => "none, it is not an object".into(),
                };
                return Err(extract_error(
                    cx,
                    &format!(
                        "the response of GET {shown} has nothing at `records = \"{path}\"` (its top-level keys: {keys}); set `records` to the dot path of the array of records"
                    ),
                ));
            };
            std::mem::take(found)
        }
    };
    match value {
        Json::Array(items) => Ok(items),
        Json::Null => Ok(Vec::new()),
        Json::Object(_) => Ok(vec![value]),
        other => Err(extract_error(
            cx,
            &format!(
                "the records of GET {shown} are neither an array nor an object but `{}`; set `records` to the dot path of the array of records",
                snippet(&other.to_string())
            ),
        )),
    }
}

/// The target of the `rel="next"` link of one `Link` header value (RFC 8288).
fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        // Parameters run to the next comma outside quotes.
        let params_start = end + 1;
        let mut in_quotes = false;
        let mut params_end = rest.len();
        for (i, c) in rest[params_start..].char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    params_end = params_start + i;
                    break;
                }
                _ => {}
            }
        }
        let is_next = rest[params_start..params_end].split(';').any(|param| {
            let Some((key, value)) = param.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_string());
        }
        rest = &rest[params_end..];
    }
}

/// Sends `messages` in order.
///
/// # Errors
/// [`PipelineError::Cancelled`] when the receiver is gone.
pub(crate) async fn send_all(tx: &Sender, messages: Vec<Message>) -> Result<(), PipelineError> {
    for m in messages {
        tx.send(Ok(m)).await.map_err(|_| PipelineError::Cancelled)?;
    }
    Ok(())
}

pub(crate) fn extract_error(cx: &Context, message: &str) -> PipelineError {
    PipelineError::Extract(format!("extract `{}`: {message}", cx.spec.name))
}

/// `brigade/<version>`.
pub(crate) fn default_user_agent() -> String {
    format!("brigade/{}", env!("CARGO_PKG_VERSION"))
}

/// A client with the extract's timeout and the user agent `agent`.
///
/// # Errors
/// An invalid user agent, or TLS that cannot be set up.
pub(crate) fn client(cx: &Context, agent: &str) -> Result<Client, PipelineError> {
    let timeout = Duration::from_secs(cx.spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
    let agent = HeaderValue::from_str(agent).map_err(|_| {
        extract_error(
            cx,
            "`user_agent` must be printable ASCII without line breaks",
        )
    })?;
    Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(agent)
        .build()
        .map_err(|e| extract_error(cx, &format!("cannot set up the HTTP client: {}", chain(&e))))
}

/// The extract's `headers` with `${VAR}` expanded, marked sensitive.
///
/// # Errors
/// An unset variable, or a name or value HTTP does not allow (the value is not shown).
pub(crate) fn headers(cx: &Context) -> Result<HeaderMap, PipelineError> {
    let mut map = HeaderMap::new();
    for (name, value) in &cx.spec.headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            extract_error(cx, &format!("`headers.{name}` is not a valid header name"))
        })?;
        let mut value = HeaderValue::from_str(cx.expand(value)?.trim()).map_err(|_| {
            extract_error(
                cx,
                &format!("the value of `headers.{name}` (after ${{VAR}} expansion) has characters HTTP does not allow, such as a line break"),
            )
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// Masks secrets in URLs shown in lineage, logs and errors.
pub(crate) struct Redactor {
    /// (value, its `${VAR}`), longest first.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Collects the values of the `${VAR}`s of the extract's headers (all of them) and URL
    /// (those whose name looks secret: `TOKEN`, `KEY`, `SECRET`, `PASS`...).
    pub(crate) fn new(cx: &Context) -> Redactor {
        let mut secrets: Vec<(String, String)> = Vec::new();
        let mut collect = |text: &str, all: bool| {
            for name in vars(text) {
                if !(all || secret_name(&name)) {
                    continue;
                }
                if let Some(value) = (cx.env)(&name)
                    && value.len() >= 4
                    && !secrets.iter().any(|(v, _)| *v == value)
                {
                    secrets.push((value, format!("${{{name}}}")));
                }
            }
        };
        for value in cx.spec.headers.values() {
            collect(value, true);
        }
        collect(cx.spec.url.as_deref().unwrap_or_default(), false);
        secrets.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        Redactor { secrets }
    }

    /// `url` without its password and secret query values.
    pub(crate) fn url(&self, url: &Url) -> String {
        let mut url = url.clone();
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        if url.query_pairs().any(|(k, _)| secret_name(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret_name(&k) {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.text(url.as_str())
    }

    /// `text` with every known secret value replaced by its `${VAR}`.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, var) in &self.secrets {
            out = out.replace(value.as_str(), var);
            let encoded = encode(value);
            if encoded != *value {
                out = out.replace(&encoded, var);
            }
        }
        out
    }
}

/// The names of the `${VAR}`s in `text`.
fn vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Whether a variable or query parameter name suggests a credential.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "key",
        "secret",
        "pass",
        "pwd",
        "auth",
        "credential",
        "signature",
        "sig",
        "session",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// A response read to the end.
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    /// The final URL, after redirects (the base for relative links).
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// GETs `url` and reads the body, retrying connection errors, timeouts, 429 and 5xx up to
/// five times with exponential backoff (200 ms doubling, at most 10 s, plus jitter), or
/// after the server's `Retry-After` when it sends one. Other statuses, 4xx included, are
/// returned for the caller to judge. `shown` is the URL as it may appear in logs.
///
/// # Errors
/// Still failing after the retries (the message says "(transient)"), a request that cannot
/// be built, or a cancelled run.
pub(crate) async fn fetch(
    cx: &Context,
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
    shown: &str,
) -> Result<Fetched, PipelineError> {
    let mut retry: u32 = 0;
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let (problem, wait) = match attempt(client, url, headers).await {
            Ok(f) if !retryable(f.status) => return Ok(f),
            Ok(f) => (
                format!("HTTP {}: {}", f.status, snippet(&f.body)),
                retry_after(&f.headers, SystemTime::now()),
            ),
            Err(e) if e.is_timeout() => (
                format!(
                    "timed out after {} s (raise `timeout_secs` if the server is slow)",
                    cx.spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
                ),
                None,
            ),
            Err(e) if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() => {
                (chain(&e.without_url()), None)
            }
            Err(e) => {
                return Err(extract_error(
                    cx,
                    &format!("GET {shown} failed: {}", chain(&e.without_url())),
                ));
            }
        };
        if retry >= RETRIES {
            return Err(extract_error(
                cx,
                &format!(
                    "GET {shown} failed {} times, last with {problem} (transient)",
                    retry + 1
                ),
            ));
        }
        let delay = wait.unwrap_or_else(|| backoff(retry, BACKOFF_START) + jitter());
        retry += 1;
        tracing::warn!(
            extract = %cx.spec.name,
            url = %shown,
            problem = %problem,
            retry,
            delay_ms = delay.as_millis() as u64,
            "Request failed; retrying."
        );
        pause(cx, delay).await?;
    }
}

async fn attempt(
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
) -> Result<Fetched, reqwest::Error> {
    let response = client
        .get(url.clone())
        .headers(headers.clone())
        .send()
        .await?;
    let status = response.status();
    let final_url = response.url().clone();
    let headers = response.headers().clone();
    let body = response.text().await?;
    Ok(Fetched {
        status,
        url: final_url,
        headers,
        body,
    })
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The delay before retry number `retry + 1`: `start` doubled `retry` times, capped.
fn backoff(retry: u32, start: Duration) -> Duration {
    start
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(BACKOFF_CAP)
}

/// Up to 100 ms, so clients retrying together drift apart.
fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos.wrapping_mul(2_654_435_761) % 100))
}

/// `Retry-After` in seconds or as an HTTP date, capped.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(seconds) = text.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
        let at = SystemTime::from(at.with_timezone(&chrono::Utc));
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(RETRY_AFTER_CAP))
}

/// Sleeps `delay`, waking every 100 ms to notice a cancelled run.
///
/// # Errors
/// [`PipelineError::Cancelled`].
pub(crate) async fn pause(cx: &Context, delay: Duration) -> Result<(), PipelineError> {
    let end = tokio::time::Instant::now() + delay;
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
}

/// The error for a response that is not a success (and was not retried).
pub(crate) fn status_error(cx: &Context, shown: &str, fetched: &Fetched) -> PipelineError {
    let hint = match fetched.status.as_u16() {
        401 | 403 => {
            "; check the credentials in `headers` (e.g. Authorization = \"Bearer ${TOKEN}\")"
        }
        404 | 410 => "; check `url`",
        300..=399 => "; the redirect was not followed, check `url`",
        _ => "",
    };
    extract_error(
        cx,
        &format!(
            "GET {shown} returned {}: {}{hint}",
            fetched.status,
            snippet(&fetched.body)
        ),
    )
}

/// The first characters of a body, on one line.
pub(crate) fn snippet(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".into();
    }
    if flat.chars().count() > SNIPPET {
        format!("{}…", flat.chars().take(SNIPPET).collect::<String>())
    } else {
        flat
    }
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;
