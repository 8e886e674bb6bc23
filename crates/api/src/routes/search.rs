//! `/api/search` and `/api/rag`: search an index by keywords, meaning or both, manage its
//! documents (superusers), and answer questions with their sources. Who may search an index
//! is its rule (path and API indexes) or its collection's list rule (collection indexes).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use brigade_search::SearchError;
use brigade_search::document::Format;
use brigade_search::ingest::NewDocument;
use brigade_search::query::Mode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Routes;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, ApiQuery, Caller, JsonBody, JsonObject};
use crate::state::AppState;
use crate::views::DocumentsIngestedView;

/// Documents accepted in one request.
const MAX_DOCUMENTS: usize = 1000;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/search", list_indexes)
        .get("/api/search/{index}", search)
        .get("/api/search/{index}/documents", list_documents)
        .post("/api/search/{index}/documents", post_documents)
        .delete("/api/search/{index}/documents/{*id}", delete_document)
        .post("/api/rag/{index}", answer)
}

async fn list_indexes(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "items": state.search().list().await? })))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    k: Option<String>,
    mode: Option<String>,
    filter: Option<String>,
}

/// A whole-number query parameter; when sent, it is a number (`?k=` is refused, not read
/// as the default).
fn number(field: &str, value: Option<&str>, default: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if v.starts_with('+') => Err(not_whole(field, v)),
        Some(v) => v.parse::<usize>().map_err(|_| not_whole(field, v)),
    }
}

fn not_whole(field: &str, v: &str) -> ApiError {
    ApiError::field(field, format!("`{v}` is not a positive whole number"))
}

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(index): ApiPath<String>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let search = state.search();
    search.index(&index)?;
    let k = number("k", q.k.as_deref(), 10)?;
    let mode = match q.mode.as_deref() {
        None => Mode::Hybrid,
        Some(m) => Mode::parse(m)?,
    };
    let text = q.q.unwrap_or_default();
    let hits = search
        .search(
            &index,
            &text,
            k,
            mode,
            q.filter.as_deref(),
            &caller.access(),
        )
        .await?;
    Ok(Json(json!({ "hits": hits })))
}

fn string(doc: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, ApiError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(&format!("{at}{key}"), "must be a string")),
    }
}

/// One posted document: `{id?, title?, text | content_base64, format?, path_or_url?,
/// metadata?}`.
fn new_document(doc: &Value, at: &str) -> Result<NewDocument, ApiError> {
    let Value::Object(doc) = doc else {
        return Err(ApiError::field(
            at.trim_end_matches('.'),
            "must be an object",
        ));
    };
    const KEYS: &[&str] = &[
        "id",
        "title",
        "text",
        "content_base64",
        "format",
        "path_or_url",
        "url",
        "metadata",
    ];
    if let Some(k) = doc.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::field(
            &format!("{at}{k}"),
            format!("unknown key; a document has {}", KEYS.join(", ")),
        ));
    }
    let format = match string(doc, "format", at)? {
        None => Format::Markdown,
        Some(f) => Format::from_name(&f).ok_or_else(|| {
            ApiError::field(
                &format!("{at}format"),
                format!("`{f}` is not one of markdown, text, html, pdf"),
            )
        })?,
    };
    let body = match (string(doc, "text", at)?, string(doc, "content_base64", at)?) {
        (Some(_), None) if format == Format::Pdf => {
            return Err(ApiError::field(
                &format!("{at}content_base64"),
                "a PDF is sent as `content_base64`",
            ));
        }
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| {
                ApiError::field(
                    &format!("{at}content_base64"),
                    format!("is not base64: {e}"),
                )
            })?,
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                &format!("{at}text"),
                "send `text` or `content_base64`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::field(
                &format!("{at}text"),
                "is required (or `content_base64` for a PDF)",
            ));
        }
    };
    let id = match string(doc, "id", at)? {
        Some(id) if id.trim().is_empty() || id.len() > 512 || id.contains('\0') => {
            return Err(ApiError::field(
                &format!("{at}id"),
                "must be 1 to 512 characters",
            ));
        }
        Some(id) => id,
        None => uuid::Uuid::now_v7().to_string(),
    };
    let metadata = match doc.get("metadata") {
        None | Some(Value::Null) => Value::Null,
        Some(m @ Value::Object(_)) => m.clone(),
        Some(_) => {
            return Err(ApiError::field(
                &format!("{at}metadata"),
                "must be an object",
            ));
        }
    };
    let path_or_url = string(doc, "path_or_url", at)?
        .or(string(doc, "url", at)?)
        .unwrap_or_else(|| id.clone());
    Ok(NewDocument {
        title: string(doc, "title", at)?,
        path_or_url,
        format,
        body,
        metadata,
        id,
    })
}

async fn post_documents(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(index): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<DocumentsIngestedView>), ApiError> {
    let search = state.search();
    search.index(&index)?;
    let (items, at): (Vec<Value>, &str) = match body {
        Value::Array(items) => (items, ""),
        Value::Object(mut map) if map.contains_key("documents") => match map.remove("documents") {
            Some(Value::Array(items)) => (items, "documents."),
            _ => {
                return Err(ApiError::field(
                    "documents",
                    "must be an array of documents",
                ));
            }
        },
        doc @ Value::Object(_) => (vec![doc], ""),
        _ => {
            return Err(ApiError::field(
                "body",
                "send a document object, an array, or {\"documents\": [...]}",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::field("documents", "is empty"));
    }
    if items.len() > MAX_DOCUMENTS {
        return Err(ApiError::field(
            "documents",
            format!(
                "{} documents; send at most {MAX_DOCUMENTS} per request",
                items.len()
            ),
        ));
    }
    let many = items.len() > 1 || !at.is_empty();
    let docs = items
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let at = if many {
                format!("{at}{i}.")
            } else {
                String::new()
            };
            new_document(d, &at)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
    let report = search.put_documents(&index, docs).await?;
    let status = if report.indexed > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DocumentsIngestedView {
            ids,
            indexed: report.indexed,
            skipped: report.skipped,
            chunks: report.chunks,
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<String>,
    per_page: Option<String>,
}

async fn list_documents(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(index): ApiPath<String>,
    ApiQuery(p): ApiQuery<Paging>,
) -> Result<Json<Value>, ApiError> {
    // The paging rules of every list (page 1..=1,000,000, per_page 1..=500).
    let params = brigade_store::query::ListParams {
        page: p.page,
        per_page: p.per_page,
        ..Default::default()
    };
    let (page, per_page, _) = params.paging()?;
    let (items, total) = state.search().documents(&index, page, per_page).await?;
    Ok(Json(json!({
        "page": page,
        "per_page": per_page,
        "total_items": total,
        "items": items,
    })))
}

async fn delete_document(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((index, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.search().delete_document(&index, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(SearchError::UnknownDocument(id).into())
    }
}

/// `n` as a non-negative whole number, whether written `20` or `20.0` (larger ones saturate).
fn whole_number(n: &serde_json::Number) -> Option<u64> {
    if let Some(k) = n.as_u64() {
        return Some(k);
    }
    let f = n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0)?;
    // `as` saturates at u64::MAX, which every caller refuses as out of range.
    Some(f as u64)
}

async fn answer(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(index): ApiPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let search = state.search();
    search.index(&index)?;
    if let Some(k) = body
        .keys()
        .find(|k| !["question", "k"].contains(&k.as_str()))
    {
        return Err(ApiError::field(
            k,
            "unknown key; send {\"question\": \"...\", \"k\": 5}",
        ));
    }
    let question = match body.get("question") {
        Some(Value::String(q)) => q.clone(),
        None | Some(Value::Null) => return Err(ApiError::field("question", "is required")),
        Some(_) => return Err(ApiError::field("question", "must be a string")),
    };
    let k = match body.get("k") {
        None | Some(Value::Null) => None,
        // JSON does not tell `20` from `20.0`: both are the whole number 20.
        Some(Value::Number(n)) => match whole_number(n) {
            Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
            None => return Err(ApiError::field("k", "must be a positive whole number")),
        },
        Some(_) => return Err(ApiError::field("k", "must be a number")),
    };
    let answer = search
        .answer(&index, &question, k, &caller.access())
        .await?;
    Ok(Json(
        serde_json::to_value(answer).map_err(ApiError::internal)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_may_be_written_with_a_fraction_of_zero() {
        let n = |v: Value| whole_number(v.as_number().expect("a number"));
        assert_eq!(n(json!(20)), Some(20));
        assert_eq!(n(json!(20.0)), Some(20));
        assert_eq!(n(json!(20.5)), None);
        assert_eq!(n(json!(-1)), None);
        assert_eq!(n(json!(1e300)), Some(u64::MAX));
    }

    #[test]
    fn query_numbers_are_numbers_when_sent() {
        assert_eq!(number("k", None, 10).unwrap(), 10);
        assert_eq!(number("k", Some("7"), 10).unwrap(), 7);
        for bad in ["", " 7", "+7", "7.0", "x"] {
            assert!(number("k", Some(bad), 10).is_err(), "{bad:?}");
        }
    }
}
