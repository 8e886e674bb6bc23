//! Two servers on one database: every subscriber gets every event once, in commit order,
//! whichever server took the write; owner rules hold across servers; channel presence and
//! broadcasts span them; and a client whose server stops resumes on the other from its last id.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::channels::CHANNELS;
use super::protocol::open_posts;
use super::{Sse, Ws};
use crate::helpers::{TestApp, expect_json, two_servers, until_ok};
use crate::rules::{call, user};

/// Writers on both servers at once: each creates records and updates each once.
async fn write_from_both(first: &TestApp, second: &TestApp, per_writer: usize) -> Vec<String> {
    let writer = |app: &TestApp, name: String| {
        let client = app.client.clone();
        let base = app.url("/api/collections/posts/records");
        async move {
            let mut ids = Vec::new();
            for i in 0..per_writer {
                let created: Value = client
                    .post(&base)
                    .json(&json!({"title": format!("{name} {i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"].as_str().unwrap().to_string();
                let updated = client
                    .patch(format!("{base}/{id}"))
                    .json(&json!({"body": "edited"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(updated.status(), 200);
                ids.push(id);
            }
            ids
        }
    };
    let (a, b, c, d) = tokio::join!(
        writer(first, "first-a".into()),
        writer(first, "first-b".into()),
        writer(second, "second-a".into()),
        writer(second, "second-b".into()),
    );
    [a, b, c, d].concat()
}

/// Checks a subscriber's events: each record created then updated, each event once, ids
/// strictly increasing.
fn check_stream(what: &str, events: &[(i64, String, String)], ids: &[String]) {
    let mut last = 0;
    let mut seen = HashSet::new();
    for (id, action, record) in events {
        assert!(
            *id > last,
            "{what}: ids in commit order ({id} after {last})"
        );
        last = *id;
        assert!(seen.insert(*id), "{what}: event {id} twice");
        let created = events
            .iter()
            .position(|(_, a, r)| a == "create" && r == record);
        let updated = events
            .iter()
            .position(|(_, a, r)| a == "update" && r == record);
        assert!(
            created < updated,
            "{what}: {record} created before it was updated ({action})"
        );
    }
    let got: HashSet<&String> = events.iter().map(|(_, _, r)| r).collect();
    let want: HashSet<&String> = ids.iter().collect();
    assert_eq!(got, want, "{what}: every record");
    assert_eq!(
        events.len(),
        ids.len() * 2,
        "{what}: one create and one update each"
    );
}

backend_test!(
    events_reach_every_subscriber_once_whichever_server_wrote,
    |backend| async move {
        let Some((first, second)) = two_servers(backend, "").await else {
            return;
        };
        open_posts(&first).await;
        // The second server learns of the collection within its schema poll.
        until_ok("the second server never saw `posts`", || async {
            second
                .anon_get("/api/collections/posts/records")
                .await
                .status()
        })
        .await;
        let mut sse_first = Sse::subscribed(&first, None, "posts").await;
        let mut sse_second = Sse::subscribed(&second, None, "posts").await;
        let mut ws_second = Ws::connect(&second, None).await;
        ws_second.subscribe("collections/posts", None).await;

        let per_writer = 15;
        let ids = write_from_both(&first, &second, per_writer).await;
        let total = ids.len() * 2;
        for (what, sse) in [
            ("SSE on the first", &mut sse_first),
            ("SSE on the second", &mut sse_second),
        ] {
            let mut events = Vec::new();
            for _ in 0..total {
                let e = sse.record_event().await;
                events.push((
                    e.id.unwrap().parse().unwrap(),
                    e.data["action"].as_str().unwrap().to_string(),
                    e.data["record"]["id"].as_str().unwrap().to_string(),
                ));
            }
            check_stream(what, &events, &ids);
            sse.assert_quiet(what).await;
        }
        let mut events = Vec::new();
        for _ in 0..total {
            let m = ws_second.expect("event").await;
            events.push((
                m["id"].as_i64().unwrap(),
                m["action"].as_str().unwrap().to_string(),
                m["record"]["id"].as_str().unwrap().to_string(),
            ));
        }
        check_stream("WebSocket on the second", &events, &ids);
        ws_second.assert_quiet("WebSocket on the second").await;
    }
);

const MINE: &str = "owner = @request.auth.id";

backend_test!(
    owner_rules_and_channels_hold_across_servers,
    |backend| async move {
        let Some((first, second)) = two_servers(backend, CHANNELS).await else {
            return;
        };
        first
        .must_create_collection(json!({
            "name": "notes",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "required": true, "options": {"collection": "users"}},
            ],
            "rules": {"list": MINE, "view": MINE, "create": MINE, "update": MINE, "delete": MINE},
        }))
        .await;
        let (alice, alice_token) = user(&first, "alice@example.com").await;
        let (bob, bob_token) = user(&first, "bob@example.com").await;
        until_ok("the second server never saw `notes`", || async {
            call(
                &second,
                Some(&alice_token),
                Method::GET,
                "/api/collections/notes/records",
                None,
            )
            .await
            .status()
        })
        .await;
        let mut alice_ws = Ws::connect(&second, Some(&alice_token)).await;
        alice_ws.subscribe("collections/notes", None).await;
        let mut bob_sse = Sse::subscribed(&second, Some(&bob_token), "notes").await;
        for (token, owner, title) in [
            (&bob_token, &bob, "bob's"),
            (&alice_token, &alice, "alice's"),
            (&bob_token, &bob, "bob's again"),
        ] {
            expect_json(
                call(
                    &first,
                    Some(token),
                    Method::POST,
                    "/api/collections/notes/records",
                    Some(json!({"title": title, "owner": owner})),
                )
                .await,
                201,
            )
            .await;
        }
        assert_eq!(alice_ws.expect("event").await["record"]["title"], "alice's");
        alice_ws
            .assert_quiet("Bob's notes, written on the other server")
            .await;
        assert_eq!(
            bob_sse.record_event().await.data["record"]["title"],
            "bob's"
        );
        assert_eq!(
            bob_sse.record_event().await.data["record"]["title"],
            "bob's again"
        );
        bob_sse
            .assert_quiet("Alice's note, written on the other server")
            .await;

        // Presence and broadcasts span the servers.
        let mut alice_chat = Ws::connect(&first, Some(&alice_token)).await;
        alice_chat
            .send(json!({"type": "join", "channel": "room-9", "meta": {"name": "Alice"}}))
            .await;
        alice_chat.expect("joined").await;
        let mut bob_chat = Ws::connect(&second, Some(&bob_token)).await;
        bob_chat
            .send(json!({"type": "join", "channel": "room-9", "meta": {"name": "Bob"}}))
            .await;
        let joined = bob_chat.expect("joined").await;
        let names: HashSet<String> = joined["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["meta"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            HashSet::from(["Alice".to_string(), "Bob".to_string()]),
            "{joined}"
        );
        let seen = alice_chat.expect("presence").await;
        assert_eq!(seen["joins"][0]["meta"]["name"], "Bob", "{seen}");
        bob_chat
            .send(json!({"type": "broadcast", "channel": "room-9", "payload": {"typing": true}}))
            .await;
        let got = alice_chat.expect("broadcast").await;
        assert_eq!(
            (
                got["payload"]["typing"].as_bool(),
                got["from"]["id"].as_str()
            ),
            (Some(true), Some(bob.as_str()))
        );
        bob_chat.expect("broadcast").await;

        // The second server stops: Bob's presence leaves with it, and his WebSocket is told to
        // reconnect (1012).
        let mut bob_resume = Sse::subscribed(&second, Some(&bob_token), "notes").await;
        let last_id = bob_resume
            .next_within(crate::realtime::QUIET)
            .await
            .and_then(|e| e.id);
        assert!(last_id.is_none(), "nothing new yet");
        let (_dir, _url, _log) = second.stop().await;
        assert!(bob_chat.recv().await.is_none());
        assert_eq!(
            bob_chat.closed.as_ref().map(|c| c.0),
            Some(1012),
            "{:?}",
            bob_chat.closed
        );
        let gone = alice_chat.expect("presence").await;
        assert_eq!(gone["leaves"][0]["meta"]["name"], "Bob", "{gone}");
        let close = bob_resume.next().await.expect("a close event");
        assert_eq!(
            (close.event.as_str(), close.data["reconnect"].as_bool()),
            ("close", Some(true)),
            "{close:?}"
        );
    }
);

backend_test!(a_client_resumes_on_the_other_server, |backend| async move {
    let Some((first, second)) = two_servers(backend, "").await else {
        return;
    };
    open_posts(&first).await;
    until_ok("the second server never saw `posts`", || async {
        second
            .anon_get("/api/collections/posts/records")
            .await
            .status()
    })
    .await;
    let mut sse = Sse::subscribed(&first, None, "posts").await;
    let seen = second
        .must_post_record("posts", json!({"title": "seen"}))
        .await;
    let e = sse.record_event().await;
    assert_eq!(e.data["record"]["id"], seen["id"]);
    let last = e.id.unwrap();
    // The first server dies without a goodbye; writes go on through the second.
    drop(sse);
    drop(first);
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            second
                .must_post_record("posts", json!({"title": format!("missed {i}")}))
                .await["id"]
                .clone(),
        );
    }
    let mut resumed = Sse::open(&second, None, &[("subscribe", "posts")], Some(&last))
        .await
        .unwrap();
    assert_eq!(resumed.next().await.unwrap().event, "subscribed");
    for id in &missed {
        assert_eq!(&resumed.record_event().await.data["record"]["id"], id);
    }
    resumed.assert_quiet("each missed event once").await;
});
