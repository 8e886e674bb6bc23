//! The realtime routes: the SSE stream, the WebSocket upgrade and channel history. The
//! WebSocket's message protocol is described in prose (OpenAPI has no vocabulary for it).

use serde_json::{Map, Value, json};

use super::op::{Access, op, path_item, path_param};

pub(super) fn add(paths: &mut Map<String, Value>) {
    let int = json!({"type": "integer", "format": "int64"});
    paths.insert(
        "/api/realtime".into(),
        path_item([(
            "get",
            op("realtime", "realtime_sse", "Server-Sent Events of record changes")
                .access(Access::Optional)
                .describe(
                    "Opens an event stream. Each topic (`posts`, `posts/RECORD_ID`, or \
                     `collections/posts`) first sends `event: subscribed` with the position it is \
                     live after (its `id:`), then `event: TOPIC` / `data: {\"action\", \"record\"}` \
                     for every change the collection's view rule and the optional `filter` admit \
                     for the caller. Resume with `Last-Event-ID` (or `since`); a gap the log no \
                     longer holds sends `event: resync`. Heartbeat comments every \
                     `realtime.heartbeat`; the stream ends with `event: close` and a reason.",
                )
                .query(
                    "subscribe",
                    "Comma-separated topics",
                    json!({"type": "string", "minLength": 1}),
                )
                .query("filter", "A filter each event must also match", json!({"type": "string"}))
                .query("since", "Resume after this event id", int.clone())
                .query(
                    "token",
                    "An access token or API key, for clients that cannot send headers",
                    json!({"type": "string"}),
                )
                .media(200, "An event stream", "text/event-stream", json!({"type": "string"}))
                .error(404, "A topic names no collection")
                .build(),
        )]),
    );
    paths.insert(
        "/api/ws".into(),
        path_item([(
            "get",
            op(
                "realtime",
                "realtime_ws",
                "WebSocket: record changes, channels, presence",
            )
            .access(Access::Optional)
            .describe(
                "Upgrades to a WebSocket of JSON text messages. Client: `subscribe` (`topic`, \
                     `filter`, `since`), `unsubscribe`, `join` (`channel`, `meta`), `leave`, \
                     `broadcast` (`channel`, `payload`), `ping`, and `auth` (`token`) as the first \
                     message when the upgrade carried no credential. Server: `ready`, \
                     `subscribed`, `event`, `resync`, `joined`, `left`, `broadcast`, `presence`, \
                     `error`, `pong`. Closes with 1008 and a reason when the token expires or \
                     is revoked or the client reads too slowly, 1012 when the server restarts.",
            )
            .query(
                "token",
                "An access token or API key",
                json!({"type": "string"}),
            )
            .empty(101, "Switching protocols")
            .error(426, "Not a WebSocket upgrade request")
            .build(),
        )]),
    );
    paths.insert(
        "/api/channels/{channel}/messages".into(),
        path_item([(
            "get",
            op(
                "realtime",
                "channel_messages",
                "Stored messages of a persistent channel",
            )
            .access(Access::Optional)
            .describe("Newest first, for whoever the channel's join rule admits.")
            .param(path_param("channel", "The channel name"))
            .query("before", "Only messages older than this id", int)
            .query(
                "limit",
                "At most this many (default 50)",
                json!({"type": "integer", "minimum": 1, "maximum": 500}),
            )
            .query(
                "token",
                "An access token or API key",
                json!({"type": "string"}),
            )
            .ok(
                200,
                "The messages",
                json!({"type": "object", "required": ["channel", "items"], "properties": {
                        "channel": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "object",
                            "required": ["id", "channel", "from", "payload", "created"],
                            "properties": {
                                "id": {"type": "integer"},
                                "channel": {"type": "string"},
                                "from": {"type": "object"},
                                "payload": {},
                                "created": {"type": "string", "format": "date-time"}}}}}}),
            )
            .error(
                404,
                "No `[[channels]]` entry covers the channel, or it keeps no history",
            )
            .build(),
        )]),
    );
}
