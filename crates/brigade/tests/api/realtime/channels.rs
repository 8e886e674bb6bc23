//! Channels declared in brigade.toml: join and broadcast rules, presence lists and changes,
//! broadcasts to members only, stored history trimmed to `history`, and leaving on close.

use serde_json::{Value, json};

use super::Ws;
use crate::helpers::{expect_json, expect_problem};
use crate::rules::user;

pub(crate) const CHANNELS: &str = r#"
[auth]
allow_registration = true

[[channels]]
name = "room-*"
join = "@request.auth.id != null"
broadcast = "@request.auth.id != null"
persist = true
history = 3

[[channels]]
name = "news"
join = ""
"#;

fn keys(list: &Value) -> Vec<String> {
    let mut keys: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

on_both_stores!(
    members_join_broadcast_and_see_presence,
    CHANNELS,
    |app| async move {
        let (alice, alice_token) = user(&app, "alice@example.com").await;
        let (bob, bob_token) = user(&app, "bob@example.com").await;
        let mut a = Ws::connect(&app, Some(&alice_token)).await;
        let mut b = Ws::connect(&app, Some(&bob_token)).await;

        a.send(json!({"type": "join", "channel": "room-1", "meta": {"name": "Alice"}}))
            .await;
        let joined = a.expect("joined").await;
        assert_eq!(joined["members"].as_array().unwrap().len(), 1, "{joined}");
        assert_eq!(joined["members"][0]["id"], alice.as_str());
        assert_eq!(joined["members"][0]["meta"]["name"], "Alice");
        let alice_key = joined["members"][0]["key"].as_str().unwrap().to_string();
        // A member gets the changes after the list `joined` carried, not its own join.

        b.send(json!({"type": "join", "channel": "room-1", "meta": {"name": "Bob"}}))
            .await;
        let joined = b.expect("joined").await;
        assert_eq!(joined["members"].as_array().unwrap().len(), 2, "{joined}");
        let bob_key = joined["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == bob.as_str())
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        let seen_by_alice = a.expect("presence").await;
        assert_eq!(
            keys(&seen_by_alice["joins"]),
            std::slice::from_ref(&bob_key)
        );
        assert_eq!(seen_by_alice["channel"], "room-1");

        // A broadcast reaches every member, the sender too, with who sent it.
        b.send(
            json!({"type": "broadcast", "channel": "room-1", "payload": {"text": "hi <b>all</b>"}}),
        )
        .await;
        for ws in [&mut a, &mut b] {
            let m = ws.expect("broadcast").await;
            assert_eq!(m["payload"]["text"], "hi <b>all</b>");
            assert_eq!(
                (m["from"]["id"].as_str(), m["from"]["key"].as_str()),
                (Some(bob.as_str()), Some(bob_key.as_str()))
            );
        }
        // Not a member of room-2: nothing from it, and no broadcasting into it.
        let (_, carol_token) = user(&app, "carol@example.com").await;
        let mut c = Ws::connect(&app, Some(&carol_token)).await;
        c.send(json!({"type": "broadcast", "channel": "room-1", "payload": "sneaky"}))
            .await;
        let e = c.expect("error").await;
        assert_eq!(e["code"], "validation_failed", "{e}");
        c.send(json!({"type": "join", "channel": "room-2"})).await;
        c.expect("joined").await;
        c.send(json!({"type": "broadcast", "channel": "room-2", "payload": "elsewhere"}))
            .await;
        c.expect("broadcast").await;
        a.assert_quiet("room-2 is not Alice's").await;

        // The join rule: anonymous callers may not join rooms; `news` is open to anyone, but its
        // broadcast rule is unset: superusers only. Undeclared channels do not exist.
        let mut anon = Ws::connect(&app, None).await;
        anon.send(json!({"type": "join", "channel": "room-1"}))
            .await;
        assert_eq!(anon.expect("error").await["code"], "unauthenticated");
        anon.send(json!({"type": "join", "channel": "news"})).await;
        anon.expect("joined").await;
        anon.send(json!({"type": "broadcast", "channel": "news", "payload": 1}))
            .await;
        assert_eq!(anon.expect("error").await["code"], "unauthenticated");
        anon.send(json!({"type": "join", "channel": "secret"}))
            .await;
        assert_eq!(anon.expect("error").await["code"], "not_found");
        anon.send(json!({"type": "join", "channel": "bad name!"}))
            .await;
        assert!(anon.expect("error").await["errors"]["channel"].is_string());

        // History: newest first, the last three only, for those who may join.
        for i in 0..3 {
            a.send(json!({"type": "broadcast", "channel": "room-1", "payload": {"n": i}}))
                .await;
            a.expect("broadcast").await;
            assert_eq!(b.expect("broadcast").await["payload"]["n"], i);
        }
        let history = expect_json(
            crate::rules::call(
                &app,
                Some(&bob_token),
                reqwest::Method::GET,
                "/api/channels/room-1/messages",
                None,
            )
            .await,
            200,
        )
        .await;
        let ns: Vec<Value> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["payload"]["n"].clone())
            .collect();
        assert_eq!(ns, [json!(2), json!(1), json!(0)], "{history}");
        let page = expect_json(
            crate::rules::call(
                &app,
                Some(&bob_token),
                reqwest::Method::GET,
                &format!(
                    "/api/channels/room-1/messages?limit=1&before={}",
                    history["items"][0]["id"]
                ),
                None,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(page["items"][0]["payload"]["n"], 1);
        expect_problem(
            app.anon_get("/api/channels/room-1/messages").await,
            401,
            None,
        )
        .await;
        expect_problem(app.anon_get("/api/channels/news/messages").await, 404, None).await;
        expect_problem(
            app.get("/api/channels/room-1/messages?limit=0").await,
            400,
            Some("limit"),
        )
        .await;

        // Closing leaves, and leaving tells the others.
        drop(a);
        let gone = b.expect("presence").await;
        assert_eq!(
            (keys(&gone["leaves"]), keys(&gone["joins"])),
            (vec![alice_key], vec![])
        );
        b.send(json!({"type": "leave", "channel": "room-1"})).await;
        b.expect("left").await;
        b.send(json!({"type": "leave", "channel": "room-1"})).await;
        assert_eq!(b.expect("error").await["errors"]["channel"], "not joined");
        let mut watcher = Ws::connect(&app, Some(&bob_token)).await;
        watcher
            .send(json!({"type": "join", "channel": "room-1"}))
            .await;
        let joined = watcher.expect("joined").await;
        assert_eq!(
            joined["members"].as_array().unwrap().len(),
            1,
            "only the watcher: {joined}"
        );
        assert!(!keys(&joined["members"]).contains(&bob_key));
    }
);
