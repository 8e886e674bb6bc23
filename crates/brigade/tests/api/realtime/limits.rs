//! Limits of realtime connections: caps per address, a token that expires or is revoked ends
//! the connection with a reason, a client that does not read is disconnected rather than
//! allowed to grow the server's memory, and the realtime metrics are exported.

use std::time::Duration;

use serde_json::{Value, json};

use super::protocol::open_posts;
use super::{Sse, Ws};
use crate::helpers::{expect_json, expect_problem};
use crate::rules::user;

on_both_stores!(
    connections_are_capped_per_address,
    "[realtime]\nmax_connections_per_ip = 2\nmax_subscriptions = 2\n",
    |app| async move {
        open_posts(&app).await;
        let one = Sse::subscribed(&app, None, "posts").await;
        let mut two = Ws::connect(&app, None).await;
        let three = app
            .client
            .get(app.url_with("/api/realtime", &[("subscribe", "posts")]))
            .send()
            .await
            .unwrap();
        let problem = expect_problem(three, 429, None).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("max_connections_per_ip"),
            "{problem}"
        );
        drop(one);
        // The slot frees when the stream closes.
        let mut freed = false;
        for _ in 0..50 {
            if let Ok(sse) = Sse::open(&app, None, &[("subscribe", "posts")], None).await {
                drop(sse);
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed, "a closed connection frees its slot");
        // Subscriptions per connection are capped too.
        two.subscribe("collections/posts", None).await;
        let any = app.must_post_record("posts", json!({"title": "x"})).await;
        two.expect("event").await;
        two.subscribe(
            &format!("collections/posts/{}", any["id"].as_str().unwrap()),
            None,
        )
        .await;
        two.send(json!({"type": "subscribe", "topic": "posts/other"}))
            .await;
        let e = two.expect("error").await;
        assert!(
            e["detail"].as_str().unwrap().contains("max_subscriptions"),
            "{e}"
        );
        let too_many = app
            .client
            .get(app.url_with("/api/realtime", &[("subscribe", "posts,posts/a,posts/b")]))
            .send()
            .await
            .unwrap();
        expect_problem(too_many, 400, Some("subscribe")).await;
    }
);

on_both_stores!(
    an_expired_or_revoked_credential_ends_the_connection,
    "[auth]\nallow_registration = true\naccess_token_ttl = \"3s\"\n",
    |app| async move {
        open_posts(&app).await;
        let (_, short_lived) = user(&app, "brief@example.com").await;
        let mut sse = Sse::subscribed(&app, Some(&short_lived), "posts").await;
        let close = sse
            .next_within(Duration::from_secs(8))
            .await
            .expect("a close event");
        assert_eq!(close.event, "close", "{close:?}");
        assert!(
            close.data["reason"].as_str().unwrap().contains("expired"),
            "{close:?}"
        );
        assert_eq!(close.data["reconnect"], false);
        assert!(
            sse.next_within(Duration::from_secs(1)).await.is_none(),
            "the stream ended"
        );

        // A role change revokes the token: the WebSocket closes with a reason within seconds.
        let (uid, token) = user(&app, "demoted@example.com").await;
        let mut ws = Ws::connect(&app, Some(&token)).await;
        ws.subscribe("collections/posts", None).await;
        expect_json(
            app.patch(&format!("/api/users/{uid}"), json!({"roles": ["editor"]}))
                .await,
            200,
        )
        .await;
        let start = tokio::time::Instant::now();
        while ws.closed.is_none() && start.elapsed() < Duration::from_secs(8) {
            let _ = ws.recv_within(Duration::from_millis(500)).await;
        }
        let (code, reason) = ws.closed.clone().expect("closed within 8 s");
        assert_eq!(code, 1008, "{reason}");
        assert!(
            reason.contains("revoked") || reason.contains("expired"),
            "{reason}"
        );

        // A bad token is refused before the upgrade, and as a first message.
        let refused =
            tokio_tungstenite::connect_async(format!("ws://{}/api/ws?token=nonsense", app.addr))
                .await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .to_string();
                assert_eq!(response.status(), 401, "{body}");
            }
            other => panic!(
                "a bad token was not refused: {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
        let mut anon = Ws::connect(&app, None).await;
        anon.send(json!({"type": "auth", "token": "nonsense"}))
            .await;
        assert!(anon.recv().await.is_none());
        assert_eq!(anon.closed.as_ref().map(|c| c.0), Some(1008));
        // A good one as the first message makes the connection the account's.
        let (me, fresh) = user(&app, "late@example.com").await;
        let mut late = Ws::connect(&app, None).await;
        late.send(json!({"type": "auth", "token": fresh})).await;
        let ready = late.expect("ready").await;
        assert_eq!(ready["auth"]["id"], me.as_str());

        // An API key subscribes like a token (`?token=` for EventSource), and its stream ends
        // when the key is revoked.
        let key = expect_json(
            app.post(
                "/api/auth/keys",
                json!({"name": "dashboard", "roles": ["admin"]}),
            )
            .await,
            201,
        )
        .await;
        let secret = key["key"].as_str().unwrap();
        let mut keyed = Sse::open(
            &app,
            None,
            &[("subscribe", "posts"), ("token", secret)],
            None,
        )
        .await
        .expect("an API key subscribes");
        assert_eq!(keyed.next().await.unwrap().event, "subscribed");
        let revoked = app
            .delete(&format!("/api/auth/keys/{}", key["id"].as_str().unwrap()))
            .await;
        assert_eq!(revoked.status(), 204);
        let close = keyed
            .next_within(Duration::from_secs(8))
            .await
            .expect("a close event after the key was revoked");
        assert_eq!(close.event, "close", "{close:?}");
        assert!(
            close.data["reason"].as_str().unwrap().contains("API key"),
            "{close:?}"
        );
    }
);

on_both_stores!(
    a_client_that_does_not_read_is_disconnected,
    "[realtime]\nqueue = 16\n",
    |app| async move {
        open_posts(&app).await;
        let mut idle = Ws::connect(&app, None).await;
        idle.subscribe("collections/posts", None).await;
        let mut reader = Sse::subscribed(&app, None, "posts").await;
        // The reader keeps up while the writes go on.
        let reading = tokio::spawn(async move {
            for _ in 0..400 {
                reader.record_event().await;
            }
        });
        // ~24 MB of events: far more than the socket buffers hold.
        let body = "x".repeat(60_000);
        for _ in 0..40 {
            let requests: Vec<Value> = (0..10)
                .map(|_| json!({"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "big", "body": body}}))
                .collect();
            expect_json(
                app.post("/api/batch", json!({"requests": requests})).await,
                200,
            )
            .await;
        }
        // The reading client got everything.
        reading.await.expect("the reader got all 400 events");
        // The idle one was cut off with a reason.
        let mut received = 0;
        while idle.recv_within(Duration::from_secs(10)).await.is_some() {
            received += 1;
        }
        let (code, reason) = idle
            .closed
            .clone()
            .unwrap_or_else(|| panic!("closed after {received} messages"));
        assert_eq!(code, 1008);
        assert!(reason.contains("slow consumer"), "{reason}");
        assert!(received < 400, "{received}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        for name in [
            "realtime_connections",
            "realtime_subscriptions",
            "realtime_events_total",
            "realtime_dropped_total",
            "realtime_delivery_seconds_bucket",
        ] {
            assert!(metrics.contains(name), "{name} in /metrics");
        }
    }
);

on_both_stores!(
    idle_connections_get_heartbeats,
    "[realtime]\nheartbeat = \"1s\"\n",
    |app| async move {
        open_posts(&app).await;
        // SSE: a comment line every `realtime.heartbeat` (proxies close silent streams).
        let mut sse = app
            .client
            .get(app.url_with("/api/realtime", &[("subscribe", "posts")]))
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while !seen.contains("\n: heartbeat\n") {
            match tokio::time::timeout_at(deadline, sse.chunk()).await {
                Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("no heartbeat comment within 4 s ({other:?}): {seen:?}"),
            }
        }
        // WebSocket: a ping every `realtime.heartbeat`.
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", app.addr))
            .await
            .expect("upgrade");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Ping(_)))) => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("no ping within 4 s: {other:?}"),
            }
        }
    }
);
