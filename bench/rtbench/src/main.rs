//! rtbench: realtime fan-out load, the shape of ../shared/peers/realtime/rtbench.py in Rust, so
//! the tool spends little of the machine's two cores and both servers meet the same load.
//!
//! 1. Opens N subscribers to the `posts` collection: SSE (PocketBase: `GET /api/realtime`,
//!    PB_CONNECT, `POST /api/realtime` with the subscription; Brigade:
//!    `GET /api/realtime?subscribe=posts`) or, for Brigade, WebSocket (`/api/ws`, `subscribe`).
//! 2. Creates records at a steady open-loop rate R for D seconds as a superuser; each title is
//!    `SEQ:SEND_TIME_US`.
//! 3. Receives until every expected event arrived, nothing arrived for 3 s, or 30 s passed.
//! 4. Prints one JSON object: delivered events/s in the send window, the delivered fraction,
//!    write-to-receive latency percentiles, the server's CPU and RSS (from /proc/PID), its RSS
//!    per idle connection, and the tool's own CPU.
//!
//! usage: rtbench --server brigade|pocketbase --transport sse|ws --base URL -n N -r R
//!        [--duration S] [--email E --password P] [--pid SERVER_PID]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Clone)]
struct Args {
    server: String,
    transport: String,
    base: String,
    host_port: String,
    n: usize,
    rate: f64,
    duration: f64,
    email: String,
    password: String,
    pid: Option<u32>,
    connect_conc: usize,
    writer_conc: usize,
}

fn args() -> Args {
    let mut a = Args {
        server: "brigade".into(),
        transport: "sse".into(),
        base: "http://127.0.0.1:8090".into(),
        host_port: String::new(),
        n: 1000,
        rate: 50.0,
        duration: 20.0,
        email: "admin@example.com".into(),
        password: "Passw0rd!2345".into(),
        pid: None,
        connect_conc: 200,
        writer_conc: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => a.server = value(),
            "--transport" => a.transport = value(),
            "--base" => a.base = value(),
            "-n" => a.n = value().parse().expect("-n N"),
            "-r" => a.rate = value().parse().expect("-r RATE"),
            "--duration" => a.duration = value().parse().expect("--duration S"),
            "--email" => a.email = value(),
            "--password" => a.password = value(),
            "--pid" => a.pid = Some(value().parse().expect("--pid PID")),
            "--connect-conc" => a.connect_conc = value().parse().expect("N"),
            "--writer-conc" => a.writer_conc = value().parse().expect("N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a.host_port = a
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    a
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What every subscriber adds to.
struct Shared {
    delivered: AtomicU64,
    in_window: AtomicU64,
    window_open: AtomicBool,
    window_closed: AtomicBool,
    /// Each subscriber's latency samples (µs), read at the end.
    latencies: std::sync::Mutex<Vec<Arc<std::sync::Mutex<Vec<u32>>>>>,
    disconnects: AtomicU64,
    /// Milliseconds since `epoch` of the last event (an atomic: every subscriber task writes it).
    last_event_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn touch(&self) {
        self.last_event_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_event_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Finds every `"title":"SEQ:TS"` in `text` and records its latency.
fn scan(text: &[u8], shared: &Shared, local: &std::sync::Mutex<Vec<u32>>) -> u64 {
    const NEEDLE: &[u8] = b"\"title\":\"";
    let now = now_us();
    let mut found = 0;
    let mut i = 0;
    while let Some(at) = find(&text[i..], NEEDLE) {
        let start = i + at + NEEDLE.len();
        let rest = &text[start..];
        let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
        if let Some((_, ts)) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|t| t.split_once(':'))
            && let Ok(ts) = ts.parse::<u64>()
        {
            local
                .lock()
                .unwrap()
                .push(now.saturating_sub(ts).min(u32::MAX as u64) as u32);
            found += 1;
        }
        i = start + end;
    }
    if found > 0 {
        shared.delivered.fetch_add(found, Ordering::Relaxed);
        if shared.window_open.load(Ordering::Relaxed)
            && !shared.window_closed.load(Ordering::Relaxed)
        {
            shared.in_window.fetch_add(found, Ordering::Relaxed);
        }
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One SSE subscriber: returns once subscribed, keeps reading in a task.
async fn sse(
    a: &Args,
    token: &str,
    shared: Arc<Shared>,
    client: &reqwest::Client,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(&a.host_port)
        .await
        .map_err(|e| e.to_string())?;
    let path = if a.server == "brigade" {
        "/api/realtime?subscribe=posts"
    } else {
        "/api/realtime"
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nUser-Agent: rtbench\r\n\r\n",
        a.host_port
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    // Read until the stream says it is live.
    let ready: &[u8] = if a.server == "brigade" {
        b"event: subscribed"
    } else {
        b"\"clientId\":\""
    };
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before it was live".into());
        }
        head.extend_from_slice(&buf[..n]);
        if !head.starts_with(b"HTTP/1.1 200") && head.len() > 12 {
            return Err(String::from_utf8_lossy(&head[..head.len().min(200)]).into());
        }
        if let Some(at) = find(&head, ready) {
            if a.server == "pocketbase" {
                let rest = &head[at + ready.len()..];
                let Some(end) = rest.iter().position(|&b| b == b'"') else {
                    continue;
                };
                let client_id = String::from_utf8_lossy(&rest[..end]).to_string();
                let res = client
                    .post(format!("{}/api/realtime", a.base))
                    .header("Authorization", token)
                    .json(&json!({"clientId": client_id, "subscriptions": ["posts"]}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !res.status().is_success() {
                    return Err(format!("subscribe: {}", res.status()));
                }
            }
            break;
        }
    }
    let local = Arc::new(std::sync::Mutex::new(Vec::new()));
    shared.latencies.lock().unwrap().push(local.clone());
    tokio::spawn(async move {
        let mut carry: Vec<u8> = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    carry.extend_from_slice(&buf[..n]);
                    // Scan complete events only; keep the tail.
                    if let Some(end) = carry.windows(2).rposition(|w| w == b"\n\n") {
                        let found = scan(&carry[..end], &shared, &local);
                        if found > 0 {
                            shared.touch();
                        }
                        carry.drain(..end + 2);
                    }
                }
            }
        }
        shared.disconnects.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// One WebSocket subscriber (Brigade).
async fn ws(a: &Args, token: &str, shared: Arc<Shared>) -> Result<(), String> {
    let url = format!("ws://{}/api/ws?token={token}", a.host_port);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    use tokio_tungstenite::tungstenite::Message;
    socket
        .send(Message::Text(
            json!({"type": "subscribe", "topic": "collections/posts"})
                .to_string()
                .into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"subscribed\"") => break,
            Some(Ok(_)) => {}
            other => return Err(format!("closed before subscribed: {other:?}")),
        }
    }
    let local = Arc::new(std::sync::Mutex::new(Vec::new()));
    shared.latencies.lock().unwrap().push(local.clone());
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(t) = message
                && scan(t.as_bytes(), &shared, &local) > 0
            {
                shared.touch();
            }
        }
        shared.disconnects.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

fn proc_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.writer_conc)
        .build()
        .unwrap();
    // Superuser token.
    let token = if a.server == "brigade" {
        let login: Value = client
            .post(format!("{}/api/auth/login", a.base))
            .json(&json!({"email": a.email, "password": a.password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().expect("a token").to_string()
    } else {
        let login: Value = client
            .post(format!(
                "{}/api/collections/_superusers/auth-with-password",
                a.base
            ))
            .json(&json!({"identity": a.email, "password": a.password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["token"].as_str().expect("a token").to_string()
    };
    let auth = if a.server == "brigade" {
        format!("Bearer {token}")
    } else {
        token.clone()
    };
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        in_window: AtomicU64::new(0),
        window_open: AtomicBool::new(false),
        window_closed: AtomicBool::new(false),
        latencies: std::sync::Mutex::new(Vec::new()),
        disconnects: AtomicU64::new(0),
        last_event_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let rss_before = a.pid.and_then(|p| proc_field(p, "VmRSS:"));

    // Phase 1: subscribers.
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(a.connect_conc));
    let mut joins = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let (a, auth, token, shared, client, sem) = (
            a.clone(),
            auth.clone(),
            token.clone(),
            shared.clone(),
            client.clone(),
            sem.clone(),
        );
        joins.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            if a.transport == "ws" {
                ws(&a, &token, shared).await
            } else {
                sse(&a, &auth, shared, &client).await
            }
        }));
    }
    let mut errors = Vec::new();
    for j in joins {
        if let Err(e) = j.await.unwrap() {
            errors.push(e);
        }
    }
    let subscribed = a.n - errors.len();
    let subscribe_s = started.elapsed().as_secs_f64();
    eprintln!(
        "[rtbench] subscribed {subscribed}/{} in {subscribe_s:.1}s ({} errors: {:?})",
        a.n,
        errors.len(),
        errors.first()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = a.pid.and_then(|p| proc_field(p, "VmRSS:"));

    // Phase 2: steady writes.
    let server_cpu0 = a.pid.map(|p| cpu_ticks(&p.to_string()));
    let tool_cpu0 = cpu_ticks("self");
    // `-r 0`: a pure listener (another rtbench writes).
    let total = (a.rate * a.duration).round() as usize;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let rest_lat = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let wsem = Arc::new(Semaphore::new(a.writer_conc));
    let window = Instant::now();
    shared.window_open.store(true, Ordering::Relaxed);
    let mut writes = Vec::with_capacity(total);
    let url = format!("{}/api/collections/posts/records", a.base);
    let mut max_lag = 0.0f64;
    for i in 0..total {
        let target = window + Duration::from_secs_f64(i as f64 / a.rate);
        tokio::time::sleep_until(target.into()).await;
        let permit = wsem.clone().acquire_owned().await.unwrap();
        max_lag = max_lag.max(target.elapsed().as_secs_f64());
        let (client, url, auth, ok, failed, rest_lat) = (
            client.clone(),
            url.clone(),
            auth.clone(),
            ok.clone(),
            failed.clone(),
            rest_lat.clone(),
        );
        writes.push(tokio::spawn(async move {
            let body = format!(r#"{{"title":"{i}:{}","views":{i}}}"#, now_us());
            let t = Instant::now();
            let res = client
                .post(&url)
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    ok.fetch_add(1, Ordering::Relaxed);
                    rest_lat
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_micros() as u32);
                }
                Ok(r) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("create: {}", r.status());
                    }
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("create: {e}");
                    }
                }
            }
            drop(permit);
        }));
    }
    let issue_s = window.elapsed().as_secs_f64();
    tokio::time::sleep_until((window + Duration::from_secs_f64(a.duration)).into()).await;
    shared.window_closed.store(true, Ordering::Relaxed);
    let window_s = window.elapsed().as_secs_f64();
    let server_cpu1 = a.pid.map(|p| cpu_ticks(&p.to_string()));
    let tool_cpu1 = cpu_ticks("self");
    for w in writes {
        let _ = w.await;
    }
    // Phase 3: drain.
    let created = ok.load(Ordering::Relaxed);
    let expected = if a.rate > 0.0 {
        created * subscribed as u64
    } else {
        u64::MAX
    };
    let drain = Instant::now();
    loop {
        if shared.delivered.load(Ordering::Relaxed) >= expected {
            break;
        }
        let quiet = shared.quiet_for();
        if quiet > Duration::from_secs(3) || drain.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_peak = a.pid.and_then(|p| proc_field(p, "VmHWM:"));
    let mut lat: Vec<u32> = Vec::new();
    for local in shared.latencies.lock().unwrap().iter() {
        lat.append(&mut local.lock().unwrap());
    }
    lat.sort_unstable();
    let mut rest = std::mem::take(&mut *rest_lat.lock().unwrap());
    rest.sort_unstable();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let ticks = 100.0; // CLK_TCK on Linux
    let out = json!({
        "server": a.server, "transport": a.transport, "subscribers": subscribed,
        "subscribe_errors": errors.len(), "subscribe_s": (subscribe_s * 10.0).round() / 10.0,
        "rate_offered": a.rate, "duration_s": a.duration, "created": created,
        "create_errors": failed.load(Ordering::Relaxed),
        "writer_max_lag_s": (max_lag * 1000.0).round() / 1000.0, "issue_s": (issue_s * 100.0).round() / 100.0,
        "delivered": delivered, "expected": expected,
        "delivered_fraction": if expected > 0 && expected < u64::MAX { delivered as f64 / expected as f64 } else { 0.0 },
        "delivered_per_s_window": (shared.in_window.load(Ordering::Relaxed) as f64 / window_s).round(),
        "latency_ms": {"samples": lat.len(), "p50": percentile(&lat, 50.0), "p90": percentile(&lat, 90.0),
                        "p99": percentile(&lat, 99.0), "max": percentile(&lat, 100.0)},
        "create_latency_ms": {"p50": percentile(&rest, 50.0), "p99": percentile(&rest, 99.0)},
        "disconnects": shared.disconnects.load(Ordering::Relaxed),
        "server_cpu_pct": server_cpu0.zip(server_cpu1).map(|(x, y)| ((y - x) as f64 / ticks / window_s * 1000.0).round() / 10.0),
        "tool_cpu_pct": ((tool_cpu1 - tool_cpu0) as f64 / ticks / window_s * 1000.0).round() / 10.0,
        "server_rss_mb": {"before": rss_before.map(|k| k / 1024), "idle_subscribed": rss_idle.map(|k| k / 1024), "peak": rss_peak.map(|k| k / 1024)},
        "server_kb_per_idle_connection": rss_before.zip(rss_idle).map(|(b, i)| ((i.saturating_sub(b)) as f64 / subscribed.max(1) as f64 * 10.0).round() / 10.0),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    std::process::exit(0);
}
