//! Login limits against a distributed guessing attack: per-account lockout with backoff
//! (both stores), `X-Forwarded-For` believed only from `server.trusted_proxies` (rightmost
//! untrusted hop), and IPv6 clients budgeted per /64.

use std::time::Duration;

use reqwest::Response;
use serde_json::json;

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, expect_json, expect_problem,
    spawn_app_with_config,
};

/// Four failures lock an account for 2 s (then 4 s, 8 s...); the per-IP auth budget is 3 a
/// minute, and loopback is a trusted proxy so each request can come from another client.
const BEHIND_PROXY: &str = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
    [rate_limit]\nauth = \"3/min\"\nlogin_failures = 4\nlogin_lockout = \"2s\"\n";

/// `POST /api/auth/login` as the client at `client` (through the trusted proxy).
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn retry_after(res: &Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After on {}", res.status()))
}

/// Twelve clients of `network` (`203.0.113`), two guesses each, at one account: the
/// statuses in order.
async fn guess_from_twelve_addresses(app: &TestApp, network: &str, email: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for client in 0..12 {
        for guess in 0..2 {
            let client = format!("{network}.{client}");
            let res = login_from(app, &client, email, &format!("guess number {guess}")).await;
            let status = res.status().as_u16();
            if status == 429 {
                assert!(retry_after(&res) >= 1);
                expect_problem(res, 429, None).await;
            }
            statuses.push(status);
        }
    }
    statuses
}

on_both_stores!(
    guesses_spread_over_many_addresses_lock_the_account,
    BEHIND_PROXY,
    |app| async move {
        // The superuser is the target. No single address goes over its budget...
        let statuses = guess_from_twelve_addresses(&app, "203.0.113", ADMIN_EMAIL).await;
        assert_eq!(statuses[..5], [401, 401, 401, 401, 429], "{statuses:?}");
        assert!(!statuses.contains(&200), "{statuses:?}");
        // ...and the lock, not the addresses, is what answers 429 (a lock that ended during
        // the round lets one more guess through, which locks it again for longer).
        assert!(
            statuses.iter().filter(|s| **s == 401).count() <= 6,
            "{statuses:?}"
        );

        // While locked, the right password is refused too, from a fresh address.
        let res = login_from(&app, "198.51.100.1", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let wait = retry_after(&res);
        let problem = expect_problem(res, 429, None).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("locked"),
            "{problem}"
        );
        // Other accounts are not locked, and that address has budget left.
        let res = login_from(&app, "198.51.100.2", "someone@example.com", "x").await;
        expect_problem(res, 401, None).await;

        // An account nobody has behaves exactly the same: no oracle of who has an account.
        let unknown = guess_from_twelve_addresses(&app, "192.0.2", "nobody@example.com").await;
        assert_eq!(unknown[..5], statuses[..5], "{unknown:?}");

        // When the backoff has passed the right password works, and that resets the count.
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 300)).await;
        let res = login_from(&app, "198.51.100.3", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        expect_json(res, 200).await;
        let res = login_from(&app, "198.51.100.4", ADMIN_EMAIL, "wrong again").await;
        expect_problem(res, 401, None).await;
        let res = login_from(&app, "198.51.100.5", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        expect_json(res, 200).await;
    }
);

on_both_stores!(
    each_failure_after_a_lock_doubles_it,
    BEHIND_PROXY,
    |app| async move {
        let email = "victim@example.com";
        for n in 0..4 {
            let res = login_from(&app, &format!("192.0.2.{n}"), email, "guess").await;
            expect_problem(res, 401, None).await;
        }
        let res = login_from(&app, "192.0.2.10", email, "guess").await;
        let first = retry_after(&res);
        assert!((1..=2).contains(&first), "{first}");
        tokio::time::sleep(Duration::from_millis(first * 1000 + 300)).await;
        // One more failure after the lock ended: locked again, for twice as long.
        let res = login_from(&app, "192.0.2.11", email, "guess").await;
        expect_problem(res, 401, None).await;
        let res = login_from(&app, "192.0.2.12", email, "guess").await;
        let second = retry_after(&res);
        assert!((3..=4).contains(&second), "{second}");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_ip_budget() {
    // Loopback is not a trusted proxy here: the header is the client's own claim.
    let settings = "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[rate_limit]\nauth = \"3/min\"\n";
    let app = spawn_app_with_config(Backend::Sqlite, settings)
        .await
        .expect("SQLite app"); // the harness's own login used 1 of 3
    let mut statuses = Vec::new();
    for n in 0..4 {
        let email = format!("user{n}@example.com");
        let res = login_from(&app, &format!("203.0.113.{n}"), &email, "guess").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_rightmost_hop_is_the_client_and_ipv6_counts_per_64() {
    let settings = "[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n\
                    [rate_limit]\nauth = \"2/min\"\nlogin_failures = \"off\"\n";
    let app = spawn_app_with_config(Backend::Sqlite, settings)
        .await
        .expect("SQLite app");
    let status = |client: &'static str| {
        let app = &app;
        async move {
            login_from(app, client, "who@example.com", "guess")
                .await
                .status()
                .as_u16()
        }
    };
    // Whatever the client writes to the left of what its proxy appended is ignored.
    assert_eq!(status("1.1.1.1, 198.51.100.9").await, 401);
    assert_eq!(status("2.2.2.2, 198.51.100.9, 10.0.0.7").await, 401);
    assert_eq!(status("3.3.3.3, 198.51.100.9").await, 429);
    // Another client behind the same proxy has a budget of its own.
    assert_eq!(status("198.51.100.10").await, 401);
    // Addresses of one IPv6 /64 share a budget; the next /64 is another client.
    assert_eq!(status("2001:db8:1:2::1").await, 401);
    assert_eq!(status("2001:db8:1:2:ffff::2").await, 401);
    assert_eq!(status("2001:db8:1:2:abcd::3").await, 429);
    assert_eq!(status("2001:db8:1:3::1").await, 401);
    // The audit log (written in the background) names the client, not the proxy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ips: Vec<String> = loop {
        let audit = crate::helpers::expect_json(
            app.get("/api/audit?filter=action%20%3D%20'auth.login_failed'&per_page=100")
                .await,
            200,
        )
        .await;
        let ips: Vec<String> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["ip"].as_str().map(str::to_string))
            .collect();
        if ips.len() >= 5 || std::time::Instant::now() > deadline {
            break ips;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(ips.iter().any(|ip| ip == "198.51.100.10"), "{ips:?}");
    assert!(!ips.iter().any(|ip| ip == "127.0.0.1"), "{ips:?}");
}

on_both_stores!(
    concurrent_guesses_are_counted_one_by_one,
    "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
     [rate_limit]\nauth = \"3/min\"\nlogin_failures = 4\nlogin_lockout = \"1m\"\n",
    |app| async move {
        // Twenty guesses at once, each from its own address: only four get to try a password.
        let clients: Vec<String> = (0..20).map(|n| format!("198.51.100.{n}")).collect();
        let answers = crate::helpers::join_all(
            clients
                .iter()
                .map(|client| login_from(&app, client, ADMIN_EMAIL, "a guess")),
        )
        .await;
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        statuses.sort_unstable();
        let mut expected = vec![401; 4];
        expected.extend([429; 16]);
        assert_eq!(statuses, expected);
    }
);
