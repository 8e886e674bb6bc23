//! The realtime routes: SSE, WebSocket and channel history.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{sse, ws};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::routes::Routes;
use crate::state::AppState;

/// Most messages per history page.
const MAX_PAGE: u32 = 500;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .get("/api/realtime", sse::realtime)
        .get("/api/ws", ws::ws)
        .get("/api/channels/{channel}/messages", history)
}

/// The query of `GET /api/channels/{channel}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// Only messages older than this id (the `id` of the oldest message of the last page).
    before: Option<i64>,
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
    /// An access token or API key, as for every route.
    #[allow(dead_code)]
    token: Option<String>,
}

/// Stored messages of a persistent channel, newest first, for whoever may join it.
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(channel): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let hub = state.realtime();
    hub.channels.readable(&caller.access(), &channel)?;
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=MAX_PAGE) => n,
        Some(_) => {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
    };
    let messages = state
        .store()
        .channels()
        .history(&channel, query.before, limit)
        .await?;
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let items: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "channel": channel,
                "from": parse(&m.sender),
                "payload": parse(&m.payload),
                "created": m.created,
            })
        })
        .collect();
    Ok(Json(json!({ "channel": channel, "items": items })))
}
