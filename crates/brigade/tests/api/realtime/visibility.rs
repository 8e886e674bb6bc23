//! One enforcement point: every event is checked against each subscriber's view rule. Two
//! users with owner rules never see each other's private records through a collection topic,
//! a record topic or a filter; a rule tightened while they are subscribed applies at once;
//! anonymous callers are refused where the rule is superusers-only.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Sse, Ws};
use crate::helpers::{expect_json, expect_problem};
use crate::rules::{call, user};

const MINE: &str = "owner = @request.auth.id";

on_both_stores!(
    owners_never_see_each_others_records_through_any_topic_or_filter,
    crate::rules::OPEN,
    |app| async move {
        app.must_create_collection(json!({
            "name": "notes",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "required": true, "options": {"collection": "users"}},
            ],
            "rules": {"list": MINE, "view": MINE, "create": MINE, "update": MINE, "delete": MINE},
        }))
        .await;
        let (alice, alice_token) = user(&app, "alice@example.com").await;
        let (bob, bob_token) = user(&app, "bob@example.com").await;
        let note = |token: &str, owner: &str, title: &str| {
            let (token, body) = (token.to_string(), json!({"title": title, "owner": owner}));
            let app = &app;
            async move {
                expect_json(
                    call(
                        app,
                        Some(&token),
                        Method::POST,
                        "/api/collections/notes/records",
                        Some(body),
                    )
                    .await,
                    201,
                )
                .await
            }
        };
        let bobs_first = note(&bob_token, &bob, "bob's first").await;
        let bobs_id = bobs_first["id"].as_str().unwrap().to_string();

        // Alice listens every way she can: the collection, Bob's record, a filter that would
        // match Bob's titles, over SSE and WebSocket.
        let mut alice_sse =
            Sse::subscribed(&app, Some(&alice_token), &format!("notes,notes/{bobs_id}")).await;
        let mut alice_ws = Ws::connect(&app, Some(&alice_token)).await;
        alice_ws
            .subscribe("collections/notes", Some("title ~ 'bob'"))
            .await;
        alice_ws
            .subscribe(&format!("collections/notes/{bobs_id}"), None)
            .await;
        let mut alice_all = Ws::connect(&app, Some(&alice_token)).await;
        alice_all.subscribe("collections/notes", None).await;
        let mut bob_ws = Ws::connect(&app, Some(&bob_token)).await;
        bob_ws.subscribe("collections/notes", None).await;
        // Anonymous: refused, the view rule needs an account to pass.
        let mut anon = Ws::connect(&app, None).await;
        anon.subscribe("collections/notes", None).await;

        let mut alice_ids = Vec::new();
        let mut bob_ids = Vec::new();
        for i in 0..3 {
            alice_ids.push(
                note(&alice_token, &alice, &format!("alice {i} (mentions bob)")).await["id"]
                    .clone(),
            );
            bob_ids.push(note(&bob_token, &bob, &format!("bob {i}")).await["id"].clone());
        }
        expect_json(
            call(
                &app,
                Some(&bob_token),
                Method::PATCH,
                &format!("/api/collections/notes/records/{bobs_id}"),
                Some(json!({"title": "bob's, edited"})),
            )
            .await,
            200,
        )
        .await;

        // Each sees exactly their own, once, in order.
        for want in &alice_ids {
            let e = alice_sse.record_event().await;
            assert_eq!((e.event.as_str(), &e.data["record"]["id"]), ("notes", want));
            assert_eq!(&alice_all.expect("event").await["record"]["id"], want);
            assert_eq!(
                &alice_ws.expect("event").await["record"]["id"],
                want,
                "Alice's titles mention bob"
            );
        }
        alice_sse
            .assert_quiet("Bob's records stay hidden from Alice's SSE")
            .await;
        alice_ws
            .assert_quiet("Bob's records stay hidden from Alice's filter and record topic")
            .await;
        alice_all
            .assert_quiet("Bob's records stay hidden from Alice")
            .await;
        let mut bob_got = Vec::new();
        for _ in 0..4 {
            let m = bob_ws.expect("event").await;
            assert_eq!(m["record"]["owner"], bob.as_str(), "{m}");
            bob_got.push(m["record"]["id"].clone());
        }
        bob_ids.push(Value::String(bobs_id.clone()));
        assert_eq!(bob_got, bob_ids);
        bob_ws
            .assert_quiet("Alice's records stay hidden from Bob")
            .await;
        anon.assert_quiet("nothing reaches an anonymous subscriber")
            .await;

        // An owner rule filters what anonymous subscribers get (nothing); a superusers-only
        // rule refuses them, and every account but a superuser, when they subscribe.
        let superusers_only = json!({"rules": {"list": null, "view": null, "create": MINE, "update": MINE, "delete": MINE}});
        expect_json(
            app.patch("/api/collections/notes", superusers_only).await,
            200,
        )
        .await;
        // The tightened rule applies to the open subscriptions at once.
        note(&bob_token, &bob, "after the rule change").await;
        bob_ws
            .assert_quiet("a superusers-only view rule stops delivery to Bob")
            .await;
        let refused = app
            .client
            .get(app.url_with("/api/realtime", &[("subscribe", "notes")]))
            .send()
            .await
            .unwrap();
        expect_problem(refused, 401, None).await;
        let refused = call(
            &app,
            Some(&alice_token),
            Method::GET,
            "/api/realtime?subscribe=notes",
            None,
        )
        .await;
        expect_problem(refused, 403, None).await;
    }
);

const IN_MY_ROOM: &str = "room.owner = @request.auth.id";

on_both_stores!(
    a_rule_that_walks_a_relation_is_checked_against_the_related_record_of_each_event,
    crate::rules::OPEN,
    |app| async move {
        app.must_create_collection(json!({
            "name": "rooms",
            "fields": [
                {"name": "name", "type": "text"},
                {"name": "owner", "type": "relation", "required": true, "options": {"collection": "users"}},
            ],
            "rules": {"list": MINE, "view": MINE, "create": MINE, "update": null, "delete": null},
        }))
        .await;
        app.must_create_collection(json!({
            "name": "messages",
            "fields": [
                {"name": "room", "type": "relation", "required": true, "options": {"collection": "rooms"}},
                {"name": "text", "type": "text"},
            ],
            "rules": {"list": IN_MY_ROOM, "view": IN_MY_ROOM, "create": IN_MY_ROOM, "update": null, "delete": null},
        }))
        .await;
        let (alice, alice_token) = user(&app, "alice@example.com").await;
        let (bob, bob_token) = user(&app, "bob@example.com").await;
        let post = |token: &str, path: &str, body: Value| {
            let (token, path) = (token.to_string(), path.to_string());
            let app = &app;
            async move {
                expect_json(
                    call(app, Some(&token), Method::POST, &path, Some(body)).await,
                    201,
                )
                .await
            }
        };
        let rooms = "/api/collections/rooms/records";
        let alices_room =
            post(&alice_token, rooms, json!({"name": "a", "owner": alice})).await["id"].clone();
        let bobs_room =
            post(&bob_token, rooms, json!({"name": "b", "owner": bob})).await["id"].clone();

        let mut alice_ws = Ws::connect(&app, Some(&alice_token)).await;
        alice_ws.subscribe("collections/messages", None).await;
        let mut bob_sse = Sse::subscribed(&app, Some(&bob_token), "messages").await;
        let messages = "/api/collections/messages/records";
        post(
            &bob_token,
            messages,
            json!({"room": bobs_room, "text": "bob 1"}),
        )
        .await;
        post(
            &alice_token,
            messages,
            json!({"room": alices_room, "text": "alice 1"}),
        )
        .await;
        post(
            &bob_token,
            messages,
            json!({"room": bobs_room, "text": "bob 2"}),
        )
        .await;
        assert_eq!(alice_ws.expect("event").await["record"]["text"], "alice 1");
        alice_ws.assert_quiet("messages in Bob's room").await;
        for want in ["bob 1", "bob 2"] {
            assert_eq!(bob_sse.record_event().await.data["record"]["text"], want);
        }
        bob_sse.assert_quiet("messages in Alice's room").await;

        // The room changes hands: the next message is checked against the room as it is now,
        // not as it was when the subscription opened.
        expect_json(
            app.patch(
                &format!("{rooms}/{}", bobs_room.as_str().unwrap()),
                json!({"owner": alice}),
            )
            .await,
            200,
        )
        .await;
        expect_json(
            app.post(messages, json!({"room": bobs_room, "text": "handed over"}))
                .await,
            201,
        )
        .await;
        assert_eq!(
            alice_ws.expect("event").await["record"]["text"],
            "handed over"
        );
        bob_sse.assert_quiet("a room that is no longer Bob's").await;
    }
);
