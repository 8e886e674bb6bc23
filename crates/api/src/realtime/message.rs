//! What the server sends on a realtime connection, and how each transport writes it: a JSON
//! object per WebSocket text message, an `event:`/`id:`/`data:` block per SSE message. Record
//! and payload JSON is shared between subscribers as text and spliced in, not re-encoded.

use std::sync::Arc;

use axum::response::sse::Event;
use serde_json::json;

/// One message to one connection.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A subscription is live after event `position`: what follows is newer.
    Subscribed { topic: Arc<str>, position: i64 },
    /// A record of a subscribed collection changed.
    Event {
        id: i64,
        topic: Arc<str>,
        action: Arc<str>,
        /// The record's JSON.
        record: Arc<str>,
        at_ms: i64,
    },
    /// The events since the client's last id are no longer in the log: read the data again.
    Resync { topic: Arc<str> },
    /// A member of a joined channel broadcast a payload.
    Broadcast {
        id: i64,
        channel: Arc<str>,
        /// `{"id": …, "email": …}` or `null` for anonymous members, as JSON.
        from: Arc<str>,
        payload: Arc<str>,
        at_ms: i64,
    },
    /// Members joined or left a joined channel (`joins`, `leaves`: JSON arrays).
    Presence {
        id: i64,
        channel: Arc<str>,
        joins: Arc<str>,
        leaves: Arc<str>,
        at_ms: i64,
    },
    /// A join succeeded; `members` is the channel's presence list (JSON array).
    Joined {
        channel: Arc<str>,
        members: String,
        position: i64,
    },
    /// A channel was left.
    Left { channel: Arc<str> },
    /// A request failed; the connection stays open.
    Error {
        detail: String,
        /// The problem code (`invalid`, `forbidden`, `not_found`, …), as in problem+json.
        code: &'static str,
        /// The field errors, when the request was invalid.
        errors: Option<serde_json::Value>,
        /// The topic or channel the failed request named.
        topic: Option<Arc<str>>,
    },
    /// The answer to a client's `{"type": "ping"}`.
    Pong,
}

impl Outgoing {
    /// When the event was committed (Unix ms), for the delivery latency histogram.
    pub(crate) fn committed_at_ms(&self) -> Option<i64> {
        match self {
            Outgoing::Event { at_ms, .. }
            | Outgoing::Broadcast { at_ms, .. }
            | Outgoing::Presence { at_ms, .. } => Some(*at_ms),
            _ => None,
        }
    }

    /// The WebSocket text message.
    pub(crate) fn ws_text(&self) -> String {
        let s = |t: &str| serde_json::Value::String(t.to_string()).to_string();
        match self {
            Outgoing::Subscribed { topic, position } => format!(
                r#"{{"type":"subscribed","topic":{},"position":{position}}}"#,
                s(topic)
            ),
            Outgoing::Event {
                id,
                topic,
                action,
                record,
                ..
            } => format!(
                r#"{{"type":"event","id":{id},"topic":{},"action":{},"record":{record}}}"#,
                s(topic),
                s(action)
            ),
            Outgoing::Resync { topic } => format!(r#"{{"type":"resync","topic":{}}}"#, s(topic)),
            Outgoing::Broadcast {
                id,
                channel,
                from,
                payload,
                ..
            } => format!(
                r#"{{"type":"broadcast","id":{id},"channel":{},"from":{from},"payload":{payload}}}"#,
                s(channel)
            ),
            Outgoing::Presence {
                id,
                channel,
                joins,
                leaves,
                ..
            } => format!(
                r#"{{"type":"presence","id":{id},"channel":{},"joins":{joins},"leaves":{leaves}}}"#,
                s(channel)
            ),
            Outgoing::Joined {
                channel,
                members,
                position,
            } => format!(
                r#"{{"type":"joined","channel":{},"members":{members},"position":{position}}}"#,
                s(channel)
            ),
            Outgoing::Left { channel } => format!(r#"{{"type":"left","channel":{}}}"#, s(channel)),
            Outgoing::Error {
                detail,
                code,
                errors,
                topic,
            } => {
                let mut out = json!({"type": "error", "detail": detail, "code": code});
                if let Some(topic) = topic {
                    out["topic"] = json!(&**topic);
                }
                if let Some(errors) = errors {
                    out["errors"] = errors.clone();
                }
                out.to_string()
            }
            Outgoing::Pong => r#"{"type":"pong"}"#.to_string(),
        }
    }

    /// The SSE message (SSE carries record topics only).
    pub(crate) fn sse_event(&self) -> Event {
        match self {
            Outgoing::Subscribed { topic, position } => Event::default()
                .id(position.to_string())
                .event("subscribed")
                .data(format!(
                    r#"{{"topic":{},"position":{position}}}"#,
                    serde_json::Value::String(topic.to_string())
                )),
            Outgoing::Event {
                id,
                topic,
                action,
                record,
                ..
            } => Event::default()
                .id(id.to_string())
                .event(&**topic)
                .data(format!(
                    r#"{{"action":{},"record":{record}}}"#,
                    serde_json::Value::String(action.to_string())
                )),
            Outgoing::Resync { topic } => Event::default().event("resync").data(format!(
                r#"{{"topic":{}}}"#,
                serde_json::Value::String(topic.to_string())
            )),
            other => Event::default().event("message").data(other.ws_text()),
        }
    }
}
