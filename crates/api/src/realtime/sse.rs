//! `GET /api/realtime`: Server-Sent Events for record topics.
//!
//! `?subscribe=posts,posts/RECORD_ID` (or `collections/posts`), an optional `filter` applied
//! to each topic, and `Last-Event-ID` (or `?since=`) to resume. The stream opens with a
//! `subscribed` event per topic whose `id` is the position it is live after, so even a client
//! that saw no record event has an id to resume from. Heartbeat comments keep proxies from
//! closing an idle stream. The stream ends with a `close` event saying why: the token expired
//! or was revoked, the client read too slowly, or the server is restarting (with a short
//! `retry`, so `EventSource` reconnects at once).

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use super::Registration;
use super::connection::{Plans, Subscription};
use super::message::Outgoing;
use super::session::{RECHECK, Session};
use super::topic;
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::extract::{ApiQuery, presented_token};
use crate::state::AppState;

/// The query of `GET /api/realtime`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SseQuery {
    /// Comma-separated topics.
    subscribe: String,
    /// A filter every event must also match.
    filter: Option<String>,
    /// Resume after this event id (as `Last-Event-ID`).
    since: Option<i64>,
    /// An access token or API key, for clients that cannot send headers.
    #[allow(dead_code)]
    token: Option<String>,
}

/// Opens the stream.
pub(crate) async fn realtime(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(query): ApiQuery<SseQuery>,
) -> Result<Response, ApiError> {
    let session = match presented_token(&headers, uri.query())? {
        Some(token) => Session::from_token(&state, &token).await?,
        None => Session::anonymous(),
    };
    let hub = state.realtime().clone();
    let labels: Vec<&str> = query
        .subscribe
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if labels.is_empty() {
        return Err(ApiError::field(
            "subscribe",
            "name at least one topic, e.g. `subscribe=posts` or `subscribe=posts/RECORD_ID`",
        ));
    }
    if labels.len() > hub.settings().max_subscriptions {
        return Err(ApiError::field(
            "subscribe",
            format!(
                "at most {} topics per connection (realtime.max_subscriptions)",
                hub.settings().max_subscriptions
            ),
        ));
    }
    let mut subs = Vec::with_capacity(labels.len());
    for label in labels {
        let topic = topic::parse(label).map_err(|m| ApiError::field("subscribe", m))?;
        let plans = Plans::build(
            hub.store(),
            session.access(),
            &topic,
            query.filter.as_deref(),
        )?;
        subs.push(Subscription::new(
            label.into(),
            topic,
            query.filter.clone(),
            plans,
            hub.generation(),
        ));
    }
    let since = match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::parse::<i64>))
    {
        Some(Ok(Ok(id))) => Some(id),
        Some(_) => {
            return Err(ApiError::field(
                "Last-Event-ID",
                "must be the id of an event this server sent",
            ));
        }
        None => query.since,
    };
    let ip = ip.map_or(
        std::net::IpAddr::from([0, 0, 0, 0]),
        |Extension(ClientIp(ip))| ip,
    );
    let (registration, rx) = hub.register(session.clone(), ip)?;
    hub.subscribe(&registration.connection, subs, since).await?;
    let heartbeat = hub.settings().heartbeat;
    let stream = events(Live {
        killed: registration.connection.killed(),
        stopping: hub.stopping(),
        expires: session
            .expires_in()
            .map(|d| tokio::time::Instant::now() + d),
        recheck: tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK),
        state,
        session,
        registration,
        rx,
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

/// What a live stream holds.
struct Live {
    state: AppState,
    session: Session,
    /// Unregisters the connection when the stream is dropped.
    #[allow(dead_code)]
    registration: Registration,
    rx: tokio::sync::mpsc::Receiver<Outgoing>,
    killed: tokio::sync::watch::Receiver<Option<String>>,
    stopping: tokio::sync::watch::Receiver<bool>,
    expires: Option<tokio::time::Instant>,
    recheck: tokio::time::Interval,
}

fn events(live: Live) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(Some(live), |live| async move {
        let mut live = live?;
        loop {
            tokio::select! {
                biased;
                reason = kill_reason(&mut live.killed) => {
                    return Some((Ok(close(&reason, false)), None));
                }
                () = stopped(&mut live.stopping) => {
                    let event = close("The server is restarting; reconnect.", true).retry(Duration::from_secs(1));
                    return Some((Ok(event), None));
                }
                () = sleep_until_or_forever(live.expires) => {
                    return Some((Ok(close("The access token expired; refresh it and reconnect.", false)), None));
                }
                _ = live.recheck.tick() => {
                    if let Err(reason) = live.session.recheck(&live.state).await {
                        return Some((Ok(close(&reason, false)), None));
                    }
                }
                message = live.rx.recv() => {
                    let message = message?;
                    super::observe_delivery(&message);
                    return Some((Ok(message.sse_event()), Some(live)));
                }
            }
        }
    })
}

/// The last message of a stream.
fn close(reason: &str, reconnect: bool) -> Event {
    Event::default()
        .event("close")
        .data(json!({"reason": reason, "reconnect": reconnect}).to_string())
}

/// Resolves with the reason once the hub ends the connection.
pub(super) async fn kill_reason(
    killed: &mut tokio::sync::watch::Receiver<Option<String>>,
) -> String {
    let reason = match killed.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone(),
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// Resolves once the server starts shutting down.
pub(super) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let stopped = stopping.wait_for(|s| *s).await.is_ok();
    if !stopped {
        std::future::pending::<()>().await;
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
pub(super) async fn sleep_until_or_forever(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
