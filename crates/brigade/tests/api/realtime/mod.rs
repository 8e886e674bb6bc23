//! Realtime over real sockets: SSE with reqwest's body chunks parsed as the EventSource spec
//! says, WebSocket with tokio-tungstenite. Every wait has a timeout, and "nothing more
//! arrives" is checked by waiting a little past the last expected message.

mod channels;
mod fanout;
mod limits;
mod protocol;
mod visibility;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestApp;

/// How long a message may take to arrive.
pub(crate) const ARRIVES: Duration = Duration::from_secs(5);
/// How long to wait before concluding nothing more comes.
pub(crate) const QUIET: Duration = Duration::from_millis(700);

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// An open SSE stream.
pub(crate) struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `/api/realtime` with `query`, as `token` (or anonymously), optionally resuming.
    pub(crate) async fn open(
        app: &TestApp,
        token: Option<&str>,
        query: &[(&str, &str)],
        last_event_id: Option<&str>,
    ) -> Result<Sse, (u16, String)> {
        let mut req = app.client.get(app.url_with("/api/realtime", query));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.expect("GET /api/realtime");
        if response.status() != 200 {
            let status = response.status().as_u16();
            return Err((status, response.text().await.unwrap_or_default()));
        }
        assert!(
            crate::helpers::content_type(&response).starts_with("text/event-stream"),
            "content type {}",
            crate::helpers::content_type(&response)
        );
        Ok(Sse {
            response,
            buffer: String::new(),
        })
    }

    /// Opens and returns the stream once every topic said `subscribed`.
    pub(crate) async fn subscribed(app: &TestApp, token: Option<&str>, topics: &str) -> Sse {
        let mut sse = Sse::open(app, token, &[("subscribe", topics)], None)
            .await
            .unwrap_or_else(|e| panic!("SSE refused: {e:?}"));
        for _ in topics.split(',') {
            let e = sse.next().await.expect("a subscribed event");
            assert_eq!(e.event, "subscribed", "{e:?}");
        }
        sse
    }

    /// The next message, or `None` after `wait` (or when the stream ended).
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue; // a comment (heartbeat)
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next message within [`ARRIVES`].
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(ARRIVES).await
    }

    /// The next record event (skipping nothing: any other message fails).
    pub(crate) async fn record_event(&mut self) -> SseEvent {
        self.next()
            .await
            .unwrap_or_else(|| panic!("no event within {ARRIVES:?}"))
    }

    /// Fails if anything but heartbeats arrives within [`QUIET`].
    pub(crate) async fn assert_quiet(&mut self, what: &str) {
        if let Some(e) = self.next_within(QUIET).await {
            panic!("{what}: unexpected {e:?}");
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = None;
    let mut data = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    Some(SseEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An open WebSocket.
pub(crate) struct Ws {
    socket: Socket,
    /// The close frame, once received: `(code, reason)`.
    pub(crate) closed: Option<(u16, String)>,
}

impl Ws {
    /// Connects to `/api/ws` (with `?token=` when given) and reads `ready`.
    pub(crate) async fn connect(app: &TestApp, token: Option<&str>) -> Ws {
        let url = match token {
            Some(t) => format!("ws://{}/api/ws?token={t}", app.addr),
            None => format!("ws://{}/api/ws", app.addr),
        };
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        let mut ws = Ws {
            socket,
            closed: None,
        };
        let ready = ws.recv().await.expect("ready");
        assert_eq!(ready["type"], "ready", "{ready}");
        ws
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// The next JSON message within `wait`; `None` on timeout or close.
    pub(crate) async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("JSON message"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    self.closed = Some(frame.map_or((1005, String::new()), |f| {
                        (f.code.into(), f.reason.to_string())
                    }));
                    return None;
                }
                Ok(Some(Ok(_))) => {}
                _ => return None,
            }
        }
    }

    pub(crate) async fn recv(&mut self) -> Option<Value> {
        self.recv_within(ARRIVES).await
    }

    /// The next message, which must be of `kind`.
    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        let m = self.recv().await.unwrap_or_else(|| {
            panic!("no `{kind}` within {ARRIVES:?} (closed: {:?})", self.closed)
        });
        assert_eq!(m["type"], kind, "{m}");
        m
    }

    /// Subscribes and waits for `subscribed`.
    pub(crate) async fn subscribe(&mut self, topic: &str, filter: Option<&str>) -> Value {
        let mut m = json!({"type": "subscribe", "topic": topic});
        if let Some(f) = filter {
            m["filter"] = json!(f);
        }
        self.send(m).await;
        self.expect("subscribed").await
    }

    /// Fails if any message arrives within [`QUIET`].
    pub(crate) async fn assert_quiet(&mut self, what: &str) {
        if let Some(m) = self.recv_within(QUIET).await {
            panic!("{what}: unexpected {m}");
        }
    }
}
