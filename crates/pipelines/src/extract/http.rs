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
            batcher: Batcher::new(&cx.spec.name, cx.spec.on_bad_row),
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
pub(crate) mod test_support {
    //! Helpers shared by the extractor tests: contexts from TOML and collected messages.

    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use brigade_store::conn::Row;
    use brigade_store::warehouse::Column;
    use tokio::sync::mpsc;

    use crate::error::PipelineError;
    use crate::extract::{Context, Message, Rejected, Sender};
    use crate::spec::Extract;

    /// A context for the `[[extract]]` body `toml`.
    pub(crate) fn context(
        toml: &str,
        dir: &Path,
        since: Option<serde_json::Value>,
        env: &[(&str, &str)],
    ) -> Context {
        let spec: Extract = toml::from_str(toml).expect("extract TOML");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Context {
            dir: dir.to_path_buf(),
            spec,
            since,
            env: Arc::new(move |name| env.get(name).cloned()),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// What an extractor sent, by kind.
    #[derive(Debug, Default)]
    pub(crate) struct Collected {
        pub(crate) columns: Vec<Column>,
        pub(crate) column_messages: usize,
        pub(crate) rows: Vec<Row>,
        /// The source of each row.
        pub(crate) sources: Vec<String>,
        pub(crate) rejected: Vec<Rejected>,
        pub(crate) done: Option<Option<serde_json::Value>>,
    }

    impl Collected {
        /// The values of column `name`, as JSON.
        pub(crate) fn column(&self, name: &str) -> Vec<serde_json::Value> {
            let i = self
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
            self.rows
                .iter()
                .map(|r| r.get(i).map_or(serde_json::Value::Null, |v| v.to_json()))
                .collect()
        }
    }

    /// Runs an extractor to the end and collects what it sent; `Done` must come last.
    pub(crate) async fn collect<F>(cx: Context, run: F) -> Result<Collected, PipelineError>
    where
        F: AsyncFnOnce(&Context, &Sender) -> Result<(), PipelineError>,
    {
        let (tx, mut rx) = mpsc::channel(64);
        let producer = async move {
            let result = run(&cx, &tx).await;
            drop(tx);
            result
        };
        let consumer = async {
            let mut got = Collected::default();
            while let Some(m) = rx.recv().await {
                assert!(got.done.is_none(), "a message after Done: {m:?}");
                match m.expect("extractors send errors by returning them") {
                    Message::Columns(c) => {
                        got.columns = c;
                        got.column_messages += 1;
                    }
                    Message::Rows { source, rows } => {
                        assert!(!got.columns.is_empty(), "rows before columns");
                        got.sources.extend(rows.iter().map(|_| source.clone()));
                        got.rows.extend(rows);
                    }
                    Message::Rejected(r) => got.rejected.extend(r),
                    Message::Done { cursor } => got.done = Some(cursor),
                }
            }
            got
        };
        let (result, got) = tokio::join!(producer, consumer);
        result?;
        assert!(got.done.is_some(), "no Done message");
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use serde_json::json;

    use super::test_support::{collect, context};
    use super::*;

    type Params = Query<std::collections::HashMap<String, String>>;

    #[derive(Clone, Default)]
    struct Hits(Arc<AtomicUsize>);

    impl Hits {
        fn next(&self) -> usize {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Serves `app` on 127.0.0.1 and returns its base URL.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }

    fn param(q: &Params, name: &str) -> Option<i64> {
        q.get(name).and_then(|v| v.parse().ok())
    }

    async fn run_toml(toml: &str) -> Result<super::test_support::Collected, PipelineError> {
        run_env(toml, None, &[]).await
    }

    async fn run_env(
        toml: &str,
        since: Option<Json>,
        env: &[(&str, &str)],
    ) -> Result<super::test_support::Collected, PipelineError> {
        let dir = std::env::temp_dir();
        collect(context(toml, &dir, since, env), run).await
    }

    #[tokio::test]
    async fn page_pagination_stops_at_an_empty_page() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/rates",
                get(|State(h): State<Hits>, q: Params| async move {
                    h.next();
                    let page = param(&q, "page").unwrap_or(0);
                    let data: Vec<Json> = if (1..=3).contains(&page) {
                        (0..2)
                            .map(|i| json!({"id": page * 10 + i, "meta": {"page": page}}))
                            .collect()
                    } else {
                        vec![]
                    };
                    axum::Json(json!({"data": data}))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = run_toml(&format!(
            r#"name = "rates"
from = "http"
url = "{base}/rates?page={{page}}"
records = "data"
paginate = {{ kind = "page" }}"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("id"),
            [
                json!(10),
                json!(11),
                json!(20),
                json!(21),
                json!(30),
                json!(31)
            ]
        );
        assert_eq!(got.column("meta_page")[5], json!(3));
        assert_eq!(hits.count(), 4, "pages 1..3 and the empty page 4");
        assert_eq!(got.sources[0], format!("{base}/rates?page=1"));
        assert_eq!(got.sources[5], format!("{base}/rates?page=3"));
        assert_eq!(got.done, Some(None));
    }

    #[tokio::test]
    async fn rows_keep_their_page_url_across_the_type_sample() {
        // 3 pages of 300: the Shaper's 500-record sample ends inside page 2.
        let app = Router::new().route(
            "/big",
            get(|q: Params| async move {
                let page = param(&q, "page").unwrap_or(0);
                let data: Vec<Json> = if (1..=3).contains(&page) {
                    (0..300)
                        .map(|i| {
                            let id = (page - 1) * 300 + i;
                            let v = if id % 97 == 0 { json!("x") } else { json!(id) };
                            json!({"id": id, "v": v})
                        })
                        .collect()
                } else {
                    vec![]
                };
                axum::Json(json!({"data": data}))
            }),
        );
        let base = serve(app).await;
        let got = run_env(
            &format!(
                r#"name = "big"
from = "http"
url = "{base}/big?page={{page}}"
records = "data"
paginate = {{ kind = "page" }}
incremental = {{ cursor = "id" }}
columns = {{ v = "integer" }}
on_bad_row = "quarantine""#
            ),
            Some(json!(100)),
            &[],
        )
        .await
        .unwrap();
        let ids = got.column("id");
        let expected: Vec<Json> = (101..900)
            .filter(|i| i % 97 != 0)
            .map(|i| json!(i))
            .collect();
        assert_eq!(ids, expected);
        for (id, source) in ids.iter().zip(&got.sources) {
            let page = id.as_i64().unwrap() / 300 + 1;
            assert_eq!(*source, format!("{base}/big?page={page}"), "row {id}");
        }
        let rejected: Vec<u64> = got.rejected.iter().map(|r| r.line).collect();
        assert_eq!(
            rejected,
            (0..900)
                .filter(|i| i % 97 == 0)
                .map(|i| i + 1)
                .collect::<Vec<u64>>()
        );
        assert_eq!(got.done, Some(Some(json!(899))));
    }

    #[tokio::test]
    async fn offset_pagination_stops_at_a_short_page() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/items",
                get(|State(h): State<Hits>, q: Params| async move {
                    h.next();
                    let offset = param(&q, "offset").unwrap_or(-1);
                    let limit = param(&q, "limit").unwrap_or(-1);
                    let items: Vec<Json> = (offset..(offset + limit).min(5))
                        .map(|i| json!({"n": i}))
                        .collect();
                    axum::Json(json!({"result": {"items": items}}))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = run_toml(&format!(
            r#"name = "items"
from = "http"
url = "{base}/items?offset={{offset}}&limit={{limit}}"
records = "result.items"
paginate = {{ kind = "offset", size = 2 }}"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("n"),
            [json!(0), json!(1), json!(2), json!(3), json!(4)]
        );
        assert_eq!(hits.count(), 3, "offsets 0, 2 and 4 (short)");
    }

    #[tokio::test]
    async fn cursor_pagination_with_and_without_placeholder() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let app = Router::new()
            .route(
                "/events",
                get(
                    |State(seen): State<Arc<std::sync::Mutex<Vec<String>>>>, q: Params| async move {
                        let cursor = q.get("cursor").cloned();
                        seen.lock().unwrap().push(format!("{cursor:?}"));
                        let (items, next) = match cursor.as_deref() {
                            None | Some("") => (json!([{"id": 1}, {"id": 2}]), json!("a b/c")),
                            Some("a b/c") => (json!([{"id": 3}]), json!(7)),
                            Some("7") => (json!([{"id": 4}]), json!(null)),
                            Some(_) => (json!([]), json!("unexpected")),
                        };
                        axum::Json(json!({"items": items, "meta": {"next": next}}))
                    },
                ),
            )
            .with_state(seen.clone());
        let base = serve(app).await;
        for url in [
            format!("{base}/events?cursor={{cursor}}"),
            format!("{base}/events"),
        ] {
            seen.lock().unwrap().clear();
            let got = run_toml(&format!(
                r#"name = "events"
from = "http"
url = "{url}"
records = "items"
paginate = {{ kind = "cursor", next = "meta.next" }}"#
            ))
            .await
            .unwrap();
            assert_eq!(
                got.column("id"),
                [json!(1), json!(2), json!(3), json!(4)],
                "{url}"
            );
            let first = if url.contains("{cursor}") {
                "Some(\"\")"
            } else {
                "None"
            };
            assert_eq!(
                *seen.lock().unwrap(),
                [first, "Some(\"a b/c\")", "Some(\"7\")"],
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn link_header_pagination_resolves_relative_links() {
        let app = Router::new().route(
            "/v1/list",
            get(|q: Params, headers: AxumHeaders| async move {
                let p = param(&q, "p").unwrap_or(1);
                let host = headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut response = axum::Json(json!([{"p": p}])).into_response();
                let link = match p {
                    1 => Some("<list?p=2>; rel=\"next\", <list?p=3>; rel=\"last\"".to_string()),
                    2 => Some(format!(
                        "<http://{host}/v1/list?p=1>; rel=\"prev first\", <http://{host}/v1/list?p=3>; rel=\"next\""
                    )),
                    _ => None,
                };
                if let Some(link) = link {
                    response
                        .headers_mut()
                        .insert("link", link.parse().unwrap());
                }
                response
            }),
        );
        let base = serve(app).await;
        let got = run_toml(&format!(
            r#"name = "list"
from = "http"
url = "{base}/v1/list"
paginate = {{ kind = "link_header" }}"#
        ))
        .await
        .unwrap();
        assert_eq!(got.column("p"), [json!(1), json!(2), json!(3)]);
        assert_eq!(got.sources[1], format!("{base}/v1/list?p=2"));
    }

    #[tokio::test]
    async fn max_pages_bounds_endless_pagination() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/forever",
                get(|State(h): State<Hits>, q: Params| async move {
                    h.next();
                    axum::Json(json!([{"page": param(&q, "page")}]))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = run_toml(&format!(
            r#"name = "forever"
from = "http"
url = "{base}/forever"
paginate = {{ kind = "page", start = 5 }}
max_pages = 3"#
        ))
        .await
        .unwrap();
        assert_eq!(got.column("page"), [json!(5), json!(6), json!(7)]);
        assert_eq!(hits.count(), 3);
    }

    #[tokio::test]
    async fn single_object_response_is_one_record_and_incremental_filters() {
        let app = Router::new()
            .route(
                "/one",
                get(|| async { axum::Json(json!({"id": 7, "name": "x"})) }),
            )
            .route(
                "/many",
                get(|| async {
                    axum::Json(json!({"data": [{"id": 1}, {"id": 4}, {"id": 3}, {"id": 2}]}))
                }),
            );
        let base = serve(app).await;
        let got = run_toml(&format!(
            "name = \"one\"\nfrom = \"http\"\nurl = \"{base}/one\""
        ))
        .await
        .unwrap();
        assert_eq!(got.column("name"), [json!("x")]);
        let got = run_env(
            &format!(
                "name = \"many\"\nfrom = \"http\"\nurl = \"{base}/many\"\nrecords = \"data\"\nincremental = {{ cursor = \"id\" }}"
            ),
            Some(json!(2)),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(got.column("id"), [json!(4), json!(3)]);
        assert_eq!(got.done, Some(Some(json!(4))));
    }

    #[tokio::test]
    async fn empty_source_still_sends_columns_and_done() {
        let app = Router::new().route("/none", get(|| async { axum::Json(json!({"data": []})) }));
        let base = serve(app).await;
        let got = run_toml(&format!(
            "name = \"none\"\nfrom = \"http\"\nurl = \"{base}/none\"\nrecords = \"data\""
        ))
        .await
        .unwrap();
        assert_eq!(got.column_messages, 1);
        assert!(got.columns.is_empty() && got.rows.is_empty());
        assert_eq!(got.done, Some(None));
        // Nothing new is no error for an incremental extract either.
        let got = run_env(
            &format!(
                "name = \"none\"\nfrom = \"http\"\nurl = \"{base}/none\"\nrecords = \"data\"\nincremental = {{ cursor = \"id\" }}"
            ),
            Some(json!(5)),
            &[],
        )
        .await
        .unwrap();
        assert!(got.columns.is_empty() && got.rows.is_empty());
        assert_eq!(got.done, Some(None));
    }

    #[tokio::test]
    async fn non_object_records_are_quarantined_and_missing_records_path_explained() {
        let app = Router::new().route(
            "/mixed",
            get(|| async { axum::Json(json!({"data": [{"id": 1}, 5, {"id": 2}]})) }),
        );
        let base = serve(app).await;
        let got = run_toml(&format!(
            "name = \"mixed\"\nfrom = \"http\"\nurl = \"{base}/mixed\"\nrecords = \"data\"\non_bad_row = \"quarantine\""
        ))
        .await
        .unwrap();
        assert_eq!(got.column("id"), [json!(1), json!(2)]);
        assert_eq!(got.rejected.len(), 1);
        assert_eq!(
            (got.rejected[0].line, got.rejected[0].raw.as_str()),
            (2, "5")
        );
        let err = run_toml(&format!(
            "name = \"mixed\"\nfrom = \"http\"\nurl = \"{base}/mixed\"\nrecords = \"items\""
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("extract `mixed`"), "{err}");
        assert!(err.contains("top-level keys: data"), "{err}");
    }

    #[tokio::test]
    async fn retries_after_503_and_429_with_retry_after() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/flaky",
                get(|State(h): State<Hits>| async move {
                    match h.next() {
                        1 => (AxumStatus::SERVICE_UNAVAILABLE, "deploying").into_response(),
                        _ => axum::Json(json!([{"ok": true}])).into_response(),
                    }
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let got = run_toml(&format!(
            "name = \"flaky\"\nfrom = \"http\"\nurl = \"{base}/flaky\""
        ))
        .await
        .unwrap();
        assert_eq!(got.column("ok"), [json!(true)]);
        assert_eq!(hits.count(), 2);

        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/limited",
                get(|State(h): State<Hits>| async move {
                    match h.next() {
                        1 => (
                            AxumStatus::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            "slow down",
                        )
                            .into_response(),
                        _ => axum::Json(json!([{"ok": 1}])).into_response(),
                    }
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let started = Instant::now();
        let got = run_toml(&format!(
            "name = \"limited\"\nfrom = \"http\"\nurl = \"{base}/limited\""
        ))
        .await
        .unwrap();
        let waited = started.elapsed();
        assert_eq!(got.column("ok"), [json!(1)]);
        assert_eq!(hits.count(), 2);
        assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[tokio::test]
    async fn persistent_5xx_is_transient_and_404_fails_at_once() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/down",
                get(|State(h): State<Hits>| async move {
                    h.next();
                    (AxumStatus::BAD_GATEWAY, "upstream down")
                }),
            )
            .route(
                "/gone",
                get(|State(h): State<Hits>| async move {
                    h.next();
                    (AxumStatus::NOT_FOUND, "no such thing here")
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let err = run_toml(&format!(
            "name = \"down\"\nfrom = \"http\"\nurl = \"{base}/down\""
        ))
        .await
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
        assert_eq!(hits.count(), 6, "one attempt and five retries");

        let hits_before = hits.count();
        let err = run_toml(&format!(
            "name = \"gone\"\nfrom = \"http\"\nurl = \"{base}/gone\""
        ))
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(!err.is_transient(), "{text}");
        assert!(text.starts_with("extract `gone`: GET "), "{text}");
        assert!(text.contains("404 Not Found: no such thing here"), "{text}");
        assert!(text.contains("check `url`"), "{text}");
        assert_eq!(hits.count() - hits_before, 1, "no retry on 404");
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        // A port that was just free: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = run_toml(&format!(
            "name = \"nobody\"\nfrom = \"http\"\nurl = \"http://{addr}/x\""
        ))
        .await
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("failed 6 times"), "{err}");
    }

    #[tokio::test]
    async fn headers_expand_env_and_secrets_stay_out_of_lineage() {
        let app = Router::new().route(
            "/secure",
            get(|headers: AxumHeaders, q: Params| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                let agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
                if auth != Some("Bearer s3cr3t-token")
                    || q.get("api_key").map(String::as_str) != Some("k3y-value")
                {
                    return (AxumStatus::UNAUTHORIZED, "bad credentials").into_response();
                }
                axum::Json(json!([{"agent": agent}])).into_response()
            }),
        );
        let base = serve(app).await;
        let toml = format!(
            r#"name = "secure"
from = "http"
url = "{base}/secure?api_key=${{API_KEY}}"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}"#
        );
        let got = run_env(
            &toml,
            None,
            &[("TOKEN", "s3cr3t-token"), ("API_KEY", "k3y-value")],
        )
        .await
        .unwrap();
        assert_eq!(
            got.column("agent"),
            [json!(format!("brigade/{}", env!("CARGO_PKG_VERSION")))]
        );
        assert!(!got.sources[0].contains("k3y-value"), "{}", got.sources[0]);
        assert!(got.sources[0].starts_with(&format!("{base}/secure?api_key=")));

        let err = run_env(
            &toml,
            None,
            &[("TOKEN", "wrong-token"), ("API_KEY", "k3y-value")],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("401 Unauthorized"), "{err}");
        assert!(err.contains("credentials in `headers`"), "{err}");
        assert!(
            !err.contains("k3y-value") && !err.contains("wrong-token"),
            "{err}"
        );

        let err = run_env(&toml, None, &[("API_KEY", "k3y-value")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("`TOKEN` is not set"), "{err}");
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_before_the_next_request() {
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/slow",
                get(|State(h): State<Hits>| async move {
                    h.next();
                    axum::Json(json!([{"id": 1}]))
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let cx = context(
            &format!(
                "name = \"slow\"\nfrom = \"http\"\nurl = \"{base}/slow\"\npaginate = {{ kind = \"page\" }}"
            ),
            &std::env::temp_dir(),
            None,
            &[],
        );
        cx.cancelled.store(true, Ordering::Relaxed);
        let err = collect(cx, run).await.unwrap_err();
        assert!(matches!(err, PipelineError::Cancelled), "{err}");
        assert_eq!(hits.count(), 0);
    }

    #[test]
    fn link_headers_parse_per_rfc_8288() {
        assert_eq!(
            next_link(r#"<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last""#),
            Some("https://a/x?p=2".into())
        );
        assert_eq!(
            next_link(r#"<https://a/x?p=1>; rel="prev"; title="a, b", <y>; rel=next"#),
            Some("y".into())
        );
        assert_eq!(next_link(r#"<z>; rel="NEXT last""#), Some("z".into()));
        assert_eq!(next_link(r#"<https://a/x?p=1>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn backoff_doubles_from_200_ms_up_to_10_s() {
        let start = Duration::from_millis(200);
        let delays: Vec<u128> = (0..8).map(|r| backoff(r, start).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert!(jitter() < Duration::from_millis(100));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let now = SystemTime::now();
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        let base = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers, base), Some(Duration::from_secs(10)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers, now), Some(RETRY_AFTER_CAP));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn dot_paths_and_placeholders() {
        let body = json!({"meta": {"next": "abc"}, "data": [{"x": 1}]});
        assert_eq!(lookup(&body, "meta.next"), Some(&json!("abc")));
        assert_eq!(lookup(&body, "data.0.x"), Some(&json!(1)));
        assert_eq!(lookup(&body, "meta.nope"), None);
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        let mut url = Url::parse("http://h/x?a=1&cursor=old").unwrap();
        set_param(&mut url, "cursor", "n");
        assert_eq!(url.as_str(), "http://h/x?a=1&cursor=n");
    }
}
