//! Owner fields: a relation to accounts (`"collection": "users"`), written as the caller's
//! id, checked against `_users`, and expanded to a public profile that shows the email only
//! to the account itself and to superusers.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{expect_json, expect_problem};
use crate::rules::{call, user};

const MINE: &str = "owner = @request.auth.id";

on_both_stores!(
    owner_relations_expand_to_public_profiles,
    crate::rules::OPEN,
    |app| async move {
        app.must_create_collection(json!({
        "name": "notes",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "owner", "type": "relation", "required": true, "options": {"collection": "users"}},
        ],
        "rules": {"list": "", "view": "", "create": MINE, "update": MINE, "delete": MINE},
    }))
    .await;
        let (alice, alice_token) = user(&app, "alice@example.com").await;
        let (bob, bob_token) = user(&app, "bob@example.com").await;

        let note = expect_json(
            call(
                &app,
                Some(&alice_token),
                Method::POST,
                "/api/collections/notes/records",
                Some(json!({"title": "Alice's", "owner": alice})),
            )
            .await,
            201,
        )
        .await;
        // Bob cannot write a note as Alice, and no one can point at an account that does not exist.
        expect_problem(
            call(
                &app,
                Some(&bob_token),
                Method::POST,
                "/api/collections/notes/records",
                Some(json!({"title": "forged", "owner": alice})),
            )
            .await,
            403,
            None,
        )
        .await;
        let missing = expect_problem(
            app.post(
                "/api/collections/notes/records",
                json!({"title": "x", "owner": "no-such-account"}),
            )
            .await,
            400,
            Some("owner"),
        )
        .await;
        assert!(
            missing["errors"]["owner"]
                .as_str()
                .unwrap()
                .contains("no account"),
            "{missing}"
        );

        let path = format!(
            "/api/collections/notes/records/{}?expand=owner",
            note["id"].as_str().unwrap()
        );
        let as_alice = expect_json(
            call(&app, Some(&alice_token), Method::GET, &path, None).await,
            200,
        )
        .await;
        let profile = &as_alice["expand"]["owner"];
        assert_eq!(profile["id"], alice.as_str(), "{as_alice}");
        assert_eq!(
            profile["email"], "alice@example.com",
            "the owner sees their own email: {as_alice}"
        );
        assert_eq!(
            profile["profile"]["name"], "alice@example.com",
            "{as_alice}"
        );

        for (who, token) in [("bob", Some(bob_token.as_str())), ("anonymous", None)] {
            let seen = expect_json(call(&app, token, Method::GET, &path, None).await, 200).await;
            let profile = seen["expand"]["owner"]
                .as_object()
                .unwrap_or_else(|| panic!("{who}: {seen}"));
            assert_eq!(profile["id"], alice.as_str(), "{who}: {seen}");
            assert!(
                !profile.contains_key("email"),
                "{who} sees Alice's email: {seen}"
            );
            for secret in ["password_hash", "roles", "token_version"] {
                assert!(!profile.contains_key(secret), "{who} sees {secret}: {seen}");
            }
            let text = seen.to_string();

            assert!(!text.contains("argon2"), "{who}: {text}");
        }
        let as_admin = expect_json(app.get(&path).await, 200).await;
        assert_eq!(
            as_admin["expand"]["owner"]["email"], "alice@example.com",
            "{as_admin}"
        );

        // Lists expand too, with one lookup for all the owners.
        expect_json(
            call(
                &app,
                Some(&bob_token),
                Method::POST,
                "/api/collections/notes/records",
                Some(json!({"title": "Bob's", "owner": bob})),
            )
            .await,
            201,
        )
        .await;
        let list = expect_json(
            call(
                &app,
                Some(&bob_token),
                Method::GET,
                "/api/collections/notes/records?expand=owner&sort=title",
                None,
            )
            .await,
            200,
        )
        .await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{list}");
        assert_eq!(items[0]["expand"]["owner"]["id"], alice.as_str());
        assert!(items[0]["expand"]["owner"].get("email").is_none(), "{list}");
        assert_eq!(
            items[1]["expand"]["owner"]["email"], "bob@example.com",
            "{list}"
        );

        // The owner filter selects one's own notes.
        let mine = expect_json(
            call(
                &app,
                Some(&bob_token),
                Method::GET,
                &format!("/api/collections/notes/records?filter=owner%20%3D%20'{bob}'"),
                None,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(mine["total_items"], 1, "{mine}");

        // An account cannot be expanded further, and no collection can take the accounts' name.
        expect_problem(app.get(&format!("{path}.email")).await, 400, Some("expand")).await;
        let taken = expect_problem(
            app.create_collection(
                json!({"name": "users", "fields": [{"name": "x", "type": "text"}]}),
            )
            .await,
            400,
            Some("name"),
        )
        .await;
        assert!(taken.to_string().contains("accounts"), "{taken}");
    }
);
