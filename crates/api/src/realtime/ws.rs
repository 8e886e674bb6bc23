//! `GET /api/ws`: the WebSocket protocol (JSON text messages; see API.md, Realtime).
//!
//! Client → server: `subscribe` (topic, optional `filter` and `since`), `unsubscribe`,
//! `join` (channel, `meta`), `leave`, `broadcast` (channel, `payload`), `ping`, and `auth`
//! (a token, for clients that cannot send one with the upgrade request: only as the first
//! message). Server → client: `ready`, `subscribed`, `event`, `resync`, `joined`, `left`,
//! `broadcast`, `presence`, `error`, `pong`. The server pings every `realtime.heartbeat` and
//! closes a connection that has not answered two pings; it closes with a reason (1008) when
//! the token expires or is revoked or the client reads too slowly, and with 1012 ("service
//! restart": reconnect) when the server stops.

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures::SinkExt;
use serde::Deserialize;
use serde_json::Value;

use super::connection::{Connection, Plans, Subscription};
use super::message::Outgoing;
use super::session::{RECHECK, Session};
use super::sse::{kill_reason, sleep_until_or_forever, stopped};
use super::{Hub, topic};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::extract::presented_token;
use crate::state::AppState;

/// Largest message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Socket read chunk and the write buffer's flush threshold.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 16 * 1024;
/// Most queued messages written before one flush (one system call for a burst).
const BURST: usize = 64;

/// A client message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Incoming {
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
        filter: Option<String>,
        since: Option<i64>,
    },
    Unsubscribe {
        topic: String,
    },
    Join {
        channel: String,
        #[serde(default)]
        meta: Value,
    },
    Leave {
        channel: String,
    },
    Broadcast {
        channel: String,
        payload: Value,
    },
    Ping,
}

/// Upgrades the connection. A token in the header or `?token=` is checked first (401 as for
/// any request).
pub(crate) async fn ws(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let session = match presented_token(&headers, uri.query())? {
        Some(token) => Some(Session::from_token(&state, &token).await?),
        None => None,
    };
    let ip = ip.map_or(
        std::net::IpAddr::from([0, 0, 0, 0]),
        |Extension(ClientIp(ip))| ip,
    );
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        // tungstenite's defaults (128 KiB each) would make every idle connection cost a
        // quarter of a megabyte; messages are small, and larger ones still work.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| run(state, socket, session, ip)))
}

/// A registered connection with what its loop watches.
struct Live {
    registration: super::Registration,
    rx: tokio::sync::mpsc::Receiver<Outgoing>,
    killed: tokio::sync::watch::Receiver<Option<String>>,
    session: Session,
    expires: Option<tokio::time::Instant>,
}

/// Registers `session` and sends `ready`; `Err` when the socket must close (with what to
/// send).
async fn attach(
    hub: &std::sync::Arc<Hub>,
    socket: &mut WebSocket,
    session: Session,
    ip: std::net::IpAddr,
) -> Result<Live, Option<(u16, String)>> {
    let (registration, rx) = hub
        .register(session.clone(), ip)
        .map_err(|e| Some((close_code::AGAIN, e.detail)))?;
    let ready = serde_json::json!({
        "type": "ready",
        "auth": session.principal().map(|p| serde_json::json!({"id": p.id})),
    });
    socket
        .send(Message::Text(ready.to_string().into()))
        .await
        .map_err(|_| None)?;
    Ok(Live {
        killed: registration.connection.killed(),
        expires: session
            .expires_in()
            .map(|d| tokio::time::Instant::now() + d),
        registration,
        rx,
        session,
    })
}

async fn run(
    state: AppState,
    mut socket: WebSocket,
    session: Option<Session>,
    ip: std::net::IpAddr,
) {
    let hub = state.realtime().clone();
    // Without a credential on the upgrade, the first message may be `auth`.
    let mut may_authenticate = session.is_none();
    let mut live = match attach(
        &hub,
        &mut socket,
        session.unwrap_or_else(Session::anonymous),
        ip,
    )
    .await
    {
        Ok(live) => live,
        Err(Some((code, reason))) => return close(socket, code, &reason).await,
        Err(None) => return,
    };
    let mut stopping = hub.stopping();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let heartbeat = hub.settings().heartbeat;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut unanswered = 0u32;
    loop {
        tokio::select! {
            biased;
            reason = kill_reason(&mut live.killed) => {
                return close(socket, close_code::POLICY, &reason).await;
            }
            () = stopped(&mut stopping) => {
                return close(socket, close_code::RESTART, "The server is restarting; reconnect.").await;
            }
            () = sleep_until_or_forever(live.expires) => {
                return close(socket, close_code::POLICY, "The access token expired; refresh it and reconnect.").await;
            }
            _ = recheck.tick() => {
                if let Err(reason) = live.session.recheck(&state).await {
                    return close(socket, close_code::POLICY, &reason).await;
                }
            }
            _ = ping.tick() => {
                if unanswered >= 2 {
                    return close(socket, close_code::AWAY, "No answer to two pings.").await;
                }
                unanswered += 1;
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            message = live.rx.recv() => {
                let Some(first) = message else { return };
                // What is already queued goes out with it, flushed once.
                let mut next = Some(first);
                let mut written = 0;
                while let Some(message) = next.take() {
                    super::observe_delivery(&message);
                    if socket.feed(Message::Text(message.ws_text().into())).await.is_err() {
                        return;
                    }
                    written += 1;
                    if written < BURST {
                        next = live.rx.try_recv().ok();
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    unanswered = 0;
                    if std::mem::take(&mut may_authenticate)
                        && let Ok(Incoming::Auth { token }) = serde_json::from_str::<Incoming>(&text)
                    {
                        let session = match Session::from_token(&state, &token).await {
                            Ok(session) => session,
                            Err(e) => return close(socket, close_code::POLICY, &e.detail).await,
                        };
                        // The anonymous registration ends; the account's begins.
                        drop(live);
                        live = match attach(&hub, &mut socket, session, ip).await {
                            Ok(live) => live,
                            Err(Some((code, reason))) => return close(socket, code, &reason).await,
                            Err(None) => return,
                        };
                        continue;
                    }
                    handle(&hub, &live.registration.connection, text.as_str()).await;
                }
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => unanswered = 0,
                Some(Ok(Message::Binary(_))) => {
                    live.registration.connection.send(error("Send JSON text messages, not binary ones.", None));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
        }
    }
}

/// Closes with `code` and `reason` (cut to the 123 bytes a close frame holds).
async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn error(detail: impl Into<String>, topic: Option<&str>) -> Outgoing {
    Outgoing::Error {
        detail: detail.into(),
        code: crate::error::ErrorCode::ValidationFailed.as_str(),
        errors: None,
        topic: topic.map(Into::into),
    }
}

/// The `error` message for a refused request: what its problem+json would say.
fn refused(e: ApiError, topic: Option<&str>) -> Outgoing {
    Outgoing::Error {
        code: e.code().as_str(),
        errors: e.errors.as_ref().map(|errors| {
            Value::Object(
                errors
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        }),
        detail: e.detail,
        topic: topic.map(Into::into),
    }
}

/// Acts on one client message; answers go through the connection's queue, in order with
/// its events.
async fn handle(hub: &Hub, connection: &Connection, text: &str) {
    let message = match serde_json::from_str::<Incoming>(text) {
        Ok(m) => m,
        Err(e) => {
            connection.send(error(
                format!("Not a message this server understands: {e}. See /api/docs."),
                None,
            ));
            return;
        }
    };
    match message {
        Incoming::Auth { .. } => {
            connection.send(error(
                "Authenticate with the first message, or with the upgrade request; reconnect to change accounts.",
                None,
            ));
        }
        Incoming::Subscribe {
            topic: label,
            filter,
            since,
        } => subscribe(hub, connection, label, filter, since).await,
        Incoming::Unsubscribe { topic } => {
            if connection.remove(&topic) == 0 {
                connection.send(error("Not subscribed to this topic.", Some(&topic)));
            }
        }
        Incoming::Join { channel, meta } => {
            if let Err(e) = hub.channels.join(hub, connection, &channel, meta).await {
                connection.send(refused(e, Some(&channel)));
            }
        }
        Incoming::Leave { channel } => {
            if let Err(e) = hub.channels.leave(hub, connection, &channel).await {
                connection.send(refused(e, Some(&channel)));
            }
        }
        Incoming::Broadcast { channel, payload } => {
            if let Err(e) = hub
                .channels
                .broadcast(hub, connection, &channel, payload)
                .await
            {
                connection.send(refused(e, Some(&channel)));
            }
        }
        Incoming::Ping => {
            connection.send(Outgoing::Pong);
        }
    }
}

async fn subscribe(
    hub: &Hub,
    connection: &Connection,
    label: String,
    filter: Option<String>,
    since: Option<i64>,
) {
    if connection.labels().iter().any(|l| **l == *label) {
        connection.send(error("Already subscribed to this topic.", Some(&label)));
        return;
    }
    if connection.subscription_count() >= hub.settings().max_subscriptions {
        connection.send(error(
            format!(
                "At most {} subscriptions and channels per connection (realtime.max_subscriptions).",
                hub.settings().max_subscriptions
            ),
            Some(&label),
        ));
        return;
    }
    let topic = match topic::parse(&label) {
        Ok(t) => t,
        Err(m) => {
            connection.send(error(m, Some(&label)));
            return;
        }
    };
    let plans = match Plans::build(
        hub.store(),
        connection.session.access(),
        &topic,
        filter.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => {
            connection.send(refused(e.into(), Some(&label)));
            return;
        }
    };
    let sub = Subscription::new(
        label.as_str().into(),
        topic,
        filter,
        plans,
        hub.generation(),
    );
    if let Err(e) = hub.subscribe(connection, vec![sub], since).await {
        connection.send(refused(e.into(), Some(&label)));
    }
}
