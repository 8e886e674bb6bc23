//! The SSE and WebSocket protocols on one server: what a subscriber gets for creates,
//! updates and deletes, in commit order with consecutive ids; record topics and filters; clear
//! errors; resuming from `Last-Event-ID` and `since`, and `resync` past the replay log.

use serde_json::{Value, json};

use super::{Sse, Ws};
use crate::helpers::{TestApp, expect_json, expect_problem};

const OPEN_RULES: &str = r#"{"list": "", "view": "", "create": "", "update": "", "delete": ""}"#;

pub(crate) async fn open_posts(app: &TestApp) {
    let rules: Value = serde_json::from_str(OPEN_RULES).unwrap();
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}],
        "rules": rules,
    }))
    .await;
}

fn id_of(e: &super::SseEvent) -> i64 {
    e.id.as_deref().unwrap().parse().unwrap()
}

on_both_stores!(
    record_changes_arrive_in_commit_order_over_sse_and_websocket,
    "",
    |app| async move {
        open_posts(&app).await;
        let mut sse = Sse::subscribed(&app, None, "posts").await;
        let mut ws = Ws::connect(&app, None).await;
        ws.subscribe("collections/posts", None).await;

        let a = app.must_post_record("posts", json!({"title": "a"})).await;
        let a_id = a["id"].as_str().unwrap();
        expect_json(
            app.patch(
                &format!("/api/collections/posts/records/{a_id}"),
                json!({"title": "a2"}),
            )
            .await,
            200,
        )
        .await;
        let b = app.must_post_record("posts", json!({"title": "b"})).await;
        let del = app
            .delete(&format!("/api/collections/posts/records/{a_id}"))
            .await;
        assert_eq!(del.status(), 204);

        let want = [
            ("create", "a"),
            ("update", "a2"),
            ("create", "b"),
            ("delete", "a2"),
        ];
        let mut last = None;
        for (action, title) in want {
            let e = sse.record_event().await;
            assert_eq!(e.event, "posts", "{e:?}");
            assert_eq!(e.data["action"], action, "{e:?}");
            assert_eq!(e.data["record"]["title"], title, "{e:?}");
            let id = id_of(&e);
            if let Some(last) = last {
                assert_eq!(id, last + 1, "ids are consecutive in commit order");
            }
            last = Some(id);
            let m = ws.expect("event").await;
            assert_eq!(
                (m["topic"].as_str(), m["action"].as_str(), m["id"].as_i64()),
                (Some("collections/posts"), Some(action), Some(id)),
                "{m}"
            );
            assert_eq!(m["record"], e.data["record"]);
        }
        assert_eq!(b["title"], "b");
        sse.assert_quiet("after the four changes").await;
        ws.assert_quiet("after the four changes").await;
    }
);

on_both_stores!(
    record_topics_and_filters_narrow_what_arrives,
    "",
    |app| async move {
        open_posts(&app).await;
        let target = app
            .must_post_record("posts", json!({"title": "watched"}))
            .await;
        let target_id = target["id"].as_str().unwrap().to_string();
        let mut one = Sse::subscribed(&app, None, &format!("posts/{target_id}")).await;
        let mut ws = Ws::connect(&app, None).await;
        ws.subscribe("collections/posts", Some("title ~ 'rust'"))
            .await;

        app.must_post_record("posts", json!({"title": "about go"}))
            .await;
        let rust = app
            .must_post_record("posts", json!({"title": "Rust news"}))
            .await;
        expect_json(
            app.patch(
                &format!("/api/collections/posts/records/{target_id}"),
                json!({"title": "watched, and about rust"}),
            )
            .await,
            200,
        )
        .await;

        let e = one.record_event().await;
        assert_eq!(e.event, format!("posts/{target_id}"));
        assert_eq!(
            (e.data["action"].as_str(), e.data["record"]["id"].as_str()),
            (Some("update"), Some(target_id.as_str()))
        );
        one.assert_quiet("only the watched record").await;

        let first = ws.expect("event").await;
        assert_eq!(first["record"]["id"], rust["id"]);
        let second = ws.expect("event").await;
        assert_eq!(
            (second["action"].as_str(), second["record"]["id"].as_str()),
            (Some("update"), Some(target_id.as_str()))
        );
        ws.assert_quiet("only records matching the filter").await;
    }
);

on_both_stores!(bad_subscriptions_are_clear_errors, "", |app| async move {
    open_posts(&app).await;
    let (status, body) = Sse::open(&app, None, &[("subscribe", "nope")], None)
        .await
        .err()
        .expect("unknown collection");
    assert_eq!(status, 404, "{body}");
    let bad_filter = app
        .client
        .get(app.url_with(
            "/api/realtime",
            &[("subscribe", "posts"), ("filter", "title = ")],
        ))
        .send()
        .await
        .unwrap();
    expect_problem(bad_filter, 400, Some("filter")).await;
    let no_topic = app
        .client
        .get(app.url_with("/api/realtime", &[("subscribe", " ")]))
        .send()
        .await
        .unwrap();
    expect_problem(no_topic, 400, Some("subscribe")).await;
    let bad_resume = app
        .client
        .get(app.url_with("/api/realtime", &[("subscribe", "posts")]))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    expect_problem(bad_resume, 400, Some("Last-Event-ID")).await;

    let mut ws = Ws::connect(&app, None).await;
    ws.send(json!({"type": "subscribe", "topic": "collections/nope"}))
        .await;
    let e = ws.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["topic"].as_str()),
        (Some("not_found"), Some("collections/nope")),
        "{e}"
    );
    ws.send(json!({"type": "subscribe", "topic": "collections/posts", "filter": "nope = 1"}))
        .await;
    let e = ws.expect("error").await;
    assert!(
        e["errors"]["filter"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{e}"
    );
    ws.send(json!({"type": "dance"})).await;
    let e = ws.expect("error").await;
    assert!(e["detail"].as_str().unwrap().contains("dance"), "{e}");
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
    // Still open and usable after the errors.
    ws.subscribe("collections/posts", None).await;
    ws.send(json!({"type": "subscribe", "topic": "collections/posts"}))
        .await;
    ws.expect("error").await;
    ws.send(json!({"type": "unsubscribe", "topic": "collections/posts"}))
        .await;
    // Messages are handled in order: the pong says the unsubscribe is done.
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
    app.must_post_record("posts", json!({"title": "after unsubscribing"}))
        .await;
    ws.assert_quiet("unsubscribed").await;
});

on_both_stores!(
    a_client_resumes_where_it_left_off_or_is_told_to_resync,
    "[realtime]\nreplay = 100\n",
    |app| async move {
        open_posts(&app).await;
        let mut sse = Sse::open(&app, None, &[("subscribe", "posts")], None)
            .await
            .unwrap();
        let subscribed = sse.next().await.unwrap();
        assert_eq!(subscribed.event, "subscribed");
        let start = subscribed.id.clone().unwrap();
        let first = app
            .must_post_record("posts", json!({"title": "seen"}))
            .await;
        let seen = sse.record_event().await;
        assert_eq!(seen.data["record"]["id"], first["id"]);
        drop(sse);

        // Missed while disconnected.
        let mut missed = Vec::new();
        for i in 0..3 {
            missed.push(
                app.must_post_record("posts", json!({"title": format!("missed {i}")}))
                    .await["id"]
                    .clone(),
            );
        }
        let mut sse = Sse::open(&app, None, &[("subscribe", "posts")], seen.id.as_deref())
            .await
            .unwrap();
        let subscribed = sse.next().await.unwrap();
        assert_eq!(
            (subscribed.event.as_str(), subscribed.id.as_deref()),
            ("subscribed", seen.id.as_deref())
        );
        for id in &missed {
            let e = sse.record_event().await;
            assert_eq!(&e.data["record"]["id"], id, "replayed in order");
        }
        let live = app
            .must_post_record("posts", json!({"title": "live"}))
            .await;
        assert_eq!(sse.record_event().await.data["record"]["id"], live["id"]);
        sse.assert_quiet("each event once").await;

        // The WebSocket resumes the same way, per subscription.
        let mut ws = Ws::connect(&app, None).await;
        ws.send(json!({"type": "subscribe", "topic": "collections/posts", "since": start.parse::<i64>().unwrap()})).await;
        ws.expect("subscribed").await;
        let mut replayed = Vec::new();
        for _ in 0..5 {
            replayed.push(ws.expect("event").await["record"]["id"].clone());
        }
        let mut all = vec![first["id"].clone()];
        all.extend(missed);
        all.push(live["id"].clone());
        assert_eq!(replayed, all);
        ws.assert_quiet("each event once").await;

        // Further back than the log keeps: resync.
        let batch: Vec<Value> = (0..120)
            .map(|i| json!({"method": "POST", "url": "/api/collections/posts/records", "body": {"title": format!("bulk {i}")}}))
            .collect();
        expect_json(
            app.post("/api/batch", json!({"requests": batch})).await,
            200,
        )
        .await;
        let mut late = Sse::open(&app, None, &[("subscribe", "posts")], Some(&start))
            .await
            .unwrap();
        let first = late.next().await.unwrap();
        assert_eq!(
            (first.event.as_str(), first.data["topic"].as_str()),
            ("resync", Some("posts"))
        );
        let subscribed = late.next().await.unwrap();
        assert_eq!(subscribed.event, "subscribed");
        late.assert_quiet("a resync replays nothing").await;
    }
);
