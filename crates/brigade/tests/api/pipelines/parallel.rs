//! Parallel steps: on PostgreSQL independent extracts run at the same time (`threads`);
//! SQLite, with its one writer, runs them one after the other; either way a step starts
//! only after the steps it reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::support::*;
use crate::helpers::Backend;

/// An API whose `/a` and `/b` each wait (up to 5 s) for a request to the other: the
/// returned counter is the highest number of requests that were in flight together.
async fn rendezvous_api() -> (String, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        move || {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..50 {
                    if in_flight.load(Ordering::SeqCst) >= 2 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Keep the overlap visible to the other request before leaving.
                tokio::time::sleep(Duration::from_millis(200)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                axum::Json(serde_json::json!([{"id": 1}, {"id": 2}]))
            }
        }
    };
    let router = axum::Router::new()
        .route("/a", axum::routing::get(handler.clone()))
        .route("/b", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, peak)
}

backend_test!(
    independent_extracts_run_together_on_postgres,
    |backend| async move {
        let (url, peak) = rendezvous_api().await;
        let pipeline = format!(
            "threads = 2\n\n[[extract]]\nname = \"raw_a\"\nfrom = \"http\"\nurl = \"{url}/a\"\n\n\
             [[extract]]\nname = \"raw_b\"\nfrom = \"http\"\nurl = \"{url}/b\"\n\n\
             [[model]]\nname = \"total\"\nquery = \"SELECT (SELECT count(*) FROM {{{{ ref('raw_a') }}}}) + (SELECT count(*) FROM {{{{ ref('raw_b') }}}}) AS n\"\n"
        );
        let files = [("pipelines/par.toml", pipeline.as_bytes())];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "par", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            query(&app, "SELECT n FROM total").await[0]["n"],
            4,
            "the model ran after both extracts"
        );
        let expected = if backend == Backend::Postgres { 2 } else { 1 };
        assert_eq!(
            peak.load(Ordering::SeqCst),
            expected,
            "extracts in flight together on {backend:?}"
        );
    }
);
