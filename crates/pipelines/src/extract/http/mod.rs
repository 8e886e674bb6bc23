//! JSON APIs: one request, or pages followed by page number, offset, cursor or `Link`
//! header, each response's records fed through the [`Shaper`] like NDJSON. APIs fail in
//! passing (timeouts, 429s, 5xx during deploys), so every request is retried with backoff
//! before the step gives up; the request and retry code is shared with the HTML scraper.
//!
//! The extract's `headers` are sent only to the origin of its `url`; next pages elsewhere
//! are requested without them (see [`Credentials`]).
//!
//! Secrets stay out of lineage, logs and errors: header values are never shown, and URLs
//! are shown with passwords, secret-looking query parameters and the values of
//! secret-looking `${VAR}`s masked (see `Redactor`).

use std::time::Duration;

use brigade_store::Row;
use reqwest::Url;
use reqwest::header::LINK;
use serde_json::{Map, Value as Json};

use super::shape::{Shaper, flatten};
use super::{Batcher, Context, Message, Rejected, Sender, infer};
use crate::error::PipelineError;
use crate::spec::PaginationKind;

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
    let mut paging = Paging::of(cx)?;
    let max_pages = cx.spec.max_pages.unwrap_or(DEFAULT_MAX_PAGES).max(1);
    let mut sink = PageSink::new(cx);
    let mut url = paging.first(cx, &template)?;
    let credentials = Credentials::new(cx, &url, "application/json")?;
    let client = client(cx, &default_user_agent(), &credentials)?;
    let mut pages: u32 = 0;
    let mut shown = redactor.url(&url);
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let headers = credentials.for_url(cx, &url, &shown);
        let fetched = fetch(cx, &client, &url, headers, &shown).await?;
        if !fetched.status.is_success() {
            return Err(status_error(cx, &url, &shown, &fetched, &credentials));
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
            shaper: Shaper::new(cx.overrides(), cursor).known(cx.existing.as_deref()),
            batcher: Batcher::for_context(cx),
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
            self.batcher
                .notes
                .push(format!("0 rows: {source} returned no records"));
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
        Ok(match p.kind {
            PaginationKind::Page => Paging::Page {
                page: p.start.unwrap_or(1),
            },
            PaginationKind::Offset => {
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
            PaginationKind::Cursor => Paging::Cursor {
                next: p.next.clone().ok_or_else(|| {
                    extract_error(
                        cx,
                        "cursor pagination needs `paginate.next`, the path of the next cursor in each response (e.g. \"meta.next\")",
                    )
                })?,
                previous: None,
            },
            PaginationKind::LinkHeader => Paging::LinkHeader,
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

mod client;
pub(crate) use client::*;

#[cfg(test)]
mod cross_origin_tests;
#[cfg(test)]
mod tests;
