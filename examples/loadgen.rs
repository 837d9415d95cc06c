//! A load generator for the example server (or the bare axum endpoint), on this machine only.
//!
//! Against the engine it first creates, through the admin API, a program, the seed "Article
//! Read" connector with the chosen authentication and the seed rule of docs/http-api.md; then for
//! `--duration` seconds `--connections` keep-alive HTTP/1.1 connections each post one request
//! after another: one event a request (`--mode single`) or arrays of `--bulk-size` events
//! (`--mode bulk`). Every event has its own `eventId`, and the members cycle through
//! `--members` e-mail addresses. The payload is `benches/payload.json`, timestamped now.
//!
//! With `--stream-clients N`, N connections read the program's live stream during the load
//! (each event's delivery time, from the server's `receivedAt` to the reader, is measured);
//! with `--stalled-stream-clients N`, N connections open it and never read. With
//! `--webhook-endpoints N`, N webhook endpoints of the program point at a receiver in this
//! process (the server needs `--allow-private-webhook-targets`), which measures each delivery
//! from the change's time to its arrival; after the load it waits for the deliveries still
//! coming (`--webhook-drain`).
//!
//! With `--setup-only` it creates all that, prints one JSON line (`programId`, `connectorId`,
//! `path`: the ingestion path with its query, `headers`: what to send with every request) and
//! exits: `benches/run.sh` drives the load with `wrk` from there.
//!
//! Every second a progress line goes to stderr; at the end one JSON line goes to stdout:
//! events/s, requests/s, latency percentiles in ms, errors, and the server's RSS at the start
//! and the end when `--server-pid` is given.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --admin-token T \
//!     --duration 10 --connections 16 --mode single --auth query [--server-pid PID]
//! cargo run --release --example loadgen -- --target bare --url http://127.0.0.1:8090 ...
//! ```

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "loadgen/webhooks.rs"]
mod webhooks;

// A light client leaves more of the shared cores to the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOAD: &str = include_str!("../benches/payload.json");
const EVENT_ID_DIGITS: usize = 20;
const MEMBER_DIGITS: usize = 6;
const SEED_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The example server: set-up through the admin API, then `/v1/incoming/{cid}`.
    Engine,
    /// `examples/bare_axum.rs`: no set-up, the same requests.
    Bare,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Single,
    Bulk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Auth {
    /// `?token=...`
    Query,
    /// `X-Authorization: ...`
    Header,
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`
    Hub,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for the loyalty server (loopback only)"
)]
struct Args {
    /// Base URL of the server (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, value_enum, default_value_t = Target::Engine)]
    target: Target,
    /// The server's root token (for the set-up; not needed with `--target bare`).
    #[arg(long, env = "LOYALTY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before the measurement starts (not counted).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    mode: Mode,
    /// Events per request in `--mode bulk`.
    #[arg(long, default_value_t = 100)]
    bulk_size: usize,
    #[arg(long, value_enum, default_value_t = Auth::Query)]
    auth: Auth,
    /// Distinct members the events cycle through.
    #[arg(long, default_value_t = 1000)]
    members: u64,
    /// Worker threads of the generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The server's pid: its RSS (VmRSS) is read at the start and the end.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label copied into the result line.
    #[arg(long, default_value = "")]
    label: String,
    /// Connections reading the program's live stream during the load (the delivery latency
    /// is measured from each event's `receivedAt` to its arrival at the reader).
    #[arg(long, default_value_t = 0)]
    stream_clients: usize,
    /// Connections that open the live stream and never read from it.
    #[arg(long, default_value_t = 0)]
    stalled_stream_clients: usize,
    /// Webhook endpoints of the program, all pointing at a receiver in this process.
    #[arg(long, default_value_t = 0)]
    webhook_endpoints: usize,
    /// After the load, seconds to wait at most for the webhook deliveries still coming (the
    /// wait ends once none came for two seconds).
    #[arg(long, default_value_t = 60)]
    webhook_drain: u64,
    /// Only create the program, connector and rules, print them as one JSON line and exit
    /// (`--auth query` or `header`: a signature depends on each body).
    #[arg(long)]
    setup_only: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.bulk_size == 0 || args.members == 0 || args.duration == 0 {
        bail!("--connections, --bulk-size, --members and --duration must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// What a run needs to send requests.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `examples/bare_axum.rs`: every event counts as accepted.
    bare: bool,
    authority: String,
    /// Path and query of every request.
    path_and_query: String,
    auth: Auth,
    /// The token (query, header) or the hub secret.
    secret: String,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let uri: hyper::Uri = args.url.parse().context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be http://");
    }
    let authority = uri
        .authority()
        .context("--url has no host")?
        .as_str()
        .to_owned();
    let base = args.url.trim_end_matches('/').to_owned();
    let secret = format!("lg-secret-{}", Utc::now().timestamp_micros());
    let (program, connector) = match args.target {
        Target::Bare => (String::new(), "bare".to_owned()),
        Target::Engine => set_up(&base, &args, &secret).await?,
    };
    if args.setup_only {
        let path = format!(
            "{}/v1/incoming/{connector}",
            uri.path().trim_end_matches('/')
        );
        let (path, headers) = match args.auth {
            Auth::Query => (format!("{path}?token={secret}"), json!({})),
            Auth::Header => (path, json!({"X-Authorization": secret})),
            Auth::Hub => bail!("--setup-only needs --auth query or header"),
        };
        println!(
            "{}",
            json!({"programId": program, "connectorId": connector, "path": path, "headers": headers})
        );
        return Ok(());
    }
    let receiver = match args.webhook_endpoints {
        0 => None,
        count => {
            let receiver = webhooks::Receiver::start().await?;
            let root = args.admin_token.clone().unwrap_or_default();
            receiver.register(&base, &root, &program, count).await?;
            eprintln!("{count} webhook endpoints at {}", receiver.url);
            Some(receiver)
        }
    };
    let stream_latency = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let stream_messages = Arc::new(AtomicU64::new(0));
    let stream_ended = Arc::new(AtomicU64::new(0));
    if args.stream_clients + args.stalled_stream_clients > 0 {
        let root = args.admin_token.clone().unwrap_or_default();
        let path = format!(
            "{}/v1/programs/{program}/stream",
            uri.path().trim_end_matches('/')
        );
        for _ in 0..args.stalled_stream_clients {
            stalled_stream(&authority, &path, &root).await?;
        }
        for _ in 0..args.stream_clients {
            let stream = StreamReader {
                authority: authority.clone(),
                path: path.clone(),
                token: root.clone(),
                latency: stream_latency.clone(),
                messages: stream_messages.clone(),
                ended: stream_ended.clone(),
            };
            tokio::spawn(stream.run());
        }
        eprintln!(
            "{} stream clients reading, {} stream clients never reading",
            args.stream_clients, args.stalled_stream_clients
        );
    }
    let path = format!(
        "{}/v1/incoming/{connector}",
        uri.path().trim_end_matches('/')
    );
    let path_and_query = match args.auth {
        Auth::Query => format!("{path}?token={secret}"),
        Auth::Header | Auth::Hub => path,
    };
    let endpoint = Arc::new(Endpoint {
        bare: args.target == Target::Bare,
        authority,
        path_and_query,
        auth: args.auth,
        secret,
    });

    let items = match args.mode {
        Mode::Single => 1,
        Mode::Bulk => args.bulk_size,
    };
    let nonce = Utc::now().timestamp_micros();
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(args.warmup == 0));
    let next_id = Arc::new(AtomicU64::new(0));

    let rss_at_setup = args.server_pid.and_then(rss_kb);
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let template = Template::new(items, nonce, args.members);
        tasks.push(tokio::spawn(connection(
            endpoint.clone(),
            template,
            next_id.clone(),
            stats.clone(),
            stop.clone(),
            measuring.clone(),
        )));
    }

    if args.warmup > 0 {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        measuring.store(true, Ordering::SeqCst);
    }
    let rss_start = args.server_pid.and_then(rss_kb);
    let server_cpu_start = args.server_pid.and_then(cpu_seconds);
    let own_cpu_start = cpu_seconds(std::process::id());
    let webhooks_at_start = receiver.as_ref().map(webhooks::Receiver::count);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last_events = 0;
    for second in 1..=args.duration {
        ticker.tick().await;
        let events = stats.events.load(Ordering::Relaxed);
        let so_far = events as f64 / started.elapsed().as_secs_f64();
        let rss = args
            .server_pid
            .and_then(rss_kb)
            .map(|kb| format!(" server_rss={:.1}MiB", kb as f64 / 1024.0))
            .unwrap_or_default();
        eprintln!(
            "[{second:>4}s] {} events/s this second, {so_far:.0} events/s so far, errors {}{rss}",
            events - last_events,
            stats.errors(),
        );
        last_events = events;
    }
    measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let rss_end = args.server_pid.and_then(rss_kb);
    let server_cpu = args
        .server_pid
        .and_then(cpu_seconds)
        .zip(server_cpu_start)
        .map(|(end, start)| end - start);
    let own_cpu = cpu_seconds(std::process::id())
        .zip(own_cpu_start)
        .map(|(end, start)| end - start);

    let webhooks_measured = receiver
        .as_ref()
        .zip(webhooks_at_start)
        .map(|(r, start)| r.count() - start);
    let drain_started = Instant::now();
    if let Some(receiver) = &receiver {
        let mut last = (receiver.count(), Instant::now());
        while drain_started.elapsed() < Duration::from_secs(args.webhook_drain) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = receiver.count();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(2) {
                break;
            }
        }
    }
    let webhook_drain_s = receiver
        .as_ref()
        .map(|_| round3(drain_started.elapsed().as_secs_f64()));

    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        match task.await {
            Ok(histogram) => latency.add(histogram)?,
            Err(e) => eprintln!("a connection task failed: {e}"),
        }
    }
    let requests = stats.requests.load(Ordering::Relaxed);
    let events = stats.events.load(Ordering::Relaxed);
    let ms = |us: u64| us as f64 / 1000.0;
    let mut result = json!({
        "label": args.label,
        "target": format!("{:?}", args.target).to_lowercase(),
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "auth": format!("{:?}", args.auth).to_lowercase(),
        "connections": args.connections,
        "bulk_size": items,
        "members": args.members,
        "duration_s": (elapsed * 1000.0).round() / 1000.0,
        "requests": requests,
        "events": events,
        "events_per_sec": (events as f64 / elapsed).round(),
        "requests_per_sec": (requests as f64 / elapsed).round(),
        "p50_ms": ms(latency.value_at_quantile(0.50)),
        "p99_ms": ms(latency.value_at_quantile(0.99)),
        "p999_ms": ms(latency.value_at_quantile(0.999)),
        "max_ms": ms(latency.max()),
        "mean_ms": (latency.mean()).round() / 1000.0,
        "errors": stats.errors(),
        "http_errors": stats.http_errors.load(Ordering::Relaxed),
        "transport_errors": stats.transport_errors.load(Ordering::Relaxed),
        "not_accepted": stats.not_accepted.load(Ordering::Relaxed),
        // CPU the server used while measured: what one event costs it, whatever else runs.
        "server_cpu_cores": server_cpu.map(|cpu| round3(cpu / elapsed)),
        "server_cpu_us_per_event": server_cpu
            .filter(|_| events > 0)
            .map(|cpu| round3(cpu * 1e6 / events as f64)),
        "server_cpu_us_per_request": server_cpu
            .filter(|_| requests > 0)
            .map(|cpu| round3(cpu * 1e6 / requests as f64)),
        "loadgen_cpu_cores": own_cpu.map(|cpu| round3(cpu / elapsed)),
        "loadavg_1m": loadavg(),
        "server_rss_kb_setup": rss_at_setup,
        "server_rss_kb_start": rss_start,
        "server_rss_kb_end": rss_end,
        "stream_clients": args.stream_clients,
        "stalled_stream_clients": args.stalled_stream_clients,
        "stream_messages": stream_messages.load(Ordering::Relaxed),
        "streams_ended": stream_ended.load(Ordering::Relaxed),
        "stream_p50_ms": stream_p(&stream_latency, 0.50),
        "stream_p99_ms": stream_p(&stream_latency, 0.99),
    });
    let webhook_fields = json!({
        "webhook_endpoints": args.webhook_endpoints,
        // Deliveries that arrived while measured, and all of them, after the drain.
        "webhook_deliveries_measured": webhooks_measured,
        "webhook_deliveries_per_sec": webhooks_measured.map(|n| (n as f64 / elapsed).round()),
        "webhook_deliveries": receiver.as_ref().map(webhooks::Receiver::count),
        "webhook_drain_s": webhook_drain_s,
        "webhook_p50_ms": receiver.as_ref().and_then(|r| r.latency_ms(0.50)),
        "webhook_p99_ms": receiver.as_ref().and_then(|r| r.latency_ms(0.99)),
    });
    if let (Some(result), Value::Object(more)) = (result.as_object_mut(), webhook_fields) {
        result.extend(more);
    }
    println!("{result}");
    Ok(())
}

/// Creates a program, the seed connector with `args.auth`, the seed rule and a second rule
/// (one point a read of any theme, at most 50 a day); returns the program's and the connector's
/// ids.
async fn set_up(base: &str, args: &Args, secret: &str) -> anyhow::Result<(String, String)> {
    let root = args
        .admin_token
        .as_deref()
        .context("--admin-token is needed to set up the engine")?;
    let client = reqwest::Client::new();
    // The server may still be starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .get(format!("{base}/v1/programs"))
            .bearer_auth(root)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => break,
            Ok(response) => bail!("GET /v1/programs: {}", response.status()),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e).context("the server does not answer"),
        }
    }
    let post = |path: String, token: String, body: Value| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("POST {path}: {status} {body}");
            }
            anyhow::Ok(body)
        }
    };
    let program = post(
        "/v1/programs".into(),
        root.to_owned(),
        json!({"name": format!("Load test {}", Utc::now().to_rfc3339())}),
    )
    .await?;
    let program_id = program["id"].as_str().context("no program id")?.to_owned();
    let token = program["adminToken"]
        .as_str()
        .context("no program token")?
        .to_owned();
    let auth = match args.auth {
        Auth::Query => json!({"type": "queryToken", "param": "token", "token": secret}),
        Auth::Header => {
            json!({"type": "headerToken", "header": "X-Authorization", "token": secret})
        }
        Auth::Hub => json!({"type": "hubSignature", "header": "X-Hub-Signature-256",
                             "algorithm": "sha256", "secrets": [secret]}),
    };
    let connector = post(
        format!("/v1/programs/{program_id}/connectors"),
        token.clone(),
        json!({"name": "Article Read", "eventType": "custom.basic", "auth": auth,
               "mapping": SEED_MAPPING, "testMode": false, "maxEventAgeDays": 30}),
    )
    .await?;
    let connector_id = connector["id"]
        .as_str()
        .context("no connector id")?
        .to_owned();
    post(
        format!("/v1/programs/{program_id}/rules"),
        token.clone(),
        json!({
            "name": "Sport readers",
            "connectorId": connector_id,
            "conditions": {"all": [
                {"tag": "theme", "op": "eq", "value": "sport"},
                {"counter": "total", "op": "gte", "value": 5}]},
            "points": {"fixed": 10},
            "limits": [{"count": 1, "per": "day"}]
        }),
    )
    .await?;
    post(
        format!("/v1/programs/{program_id}/rules"),
        token,
        json!({
            "name": "Every read",
            "connectorId": connector_id,
            "conditions": {"all": [{"tag": "theme", "op": "exists"}]},
            "points": {"fixed": 1},
            "limits": [{"points": 50, "per": "day"}]
        }),
    )
    .await?;
    eprintln!(
        "set up program {program_id}, connector {connector_id} ({:?} auth), two rules",
        args.auth
    );
    Ok((program_id, connector_id))
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    events: AtomicU64,
    http_errors: AtomicU64,
    transport_errors: AtomicU64,
    not_accepted: AtomicU64,
}

impl Stats {
    fn errors(&self) -> u64 {
        self.http_errors.load(Ordering::Relaxed)
            + self.transport_errors.load(Ordering::Relaxed)
            + self.not_accepted.load(Ordering::Relaxed)
    }
}

/// The compact payload (one item or an array of them) with fixed-width event ids and member
/// numbers that are overwritten in place before each request.
#[derive(Debug)]
struct Template {
    body: Vec<u8>,
    slots: Vec<(usize, usize)>,
    members: u64,
}

impl Template {
    fn new(items: usize, nonce: i64, members: u64) -> Self {
        let mut value: Value = serde_json::from_str(PAYLOAD).expect("benches/payload.json");
        let id_prefix = format!("lg-{nonce}-");
        value["eventId"] = json!(format!("{id_prefix}{}", "0".repeat(EVENT_ID_DIGITS)));
        value["timestamp"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        value["profile"]["email"] =
            json!(format!("reader{}@example.com", "0".repeat(MEMBER_DIGITS)));
        let item = serde_json::to_string(&value).expect("JSON");
        let id_at = item.find(&id_prefix).expect("id") + id_prefix.len();
        let member_at = item.find("\"reader").expect("email") + "\"reader".len();
        let mut body = String::with_capacity(items * (item.len() + 1) + 2);
        if items > 1 {
            body.push('[');
        }
        let mut slots = Vec::with_capacity(items);
        for index in 0..items {
            if index > 0 {
                body.push(',');
            }
            slots.push((body.len() + id_at, body.len() + member_at));
            body.push_str(&item);
        }
        if items > 1 {
            body.push(']');
        }
        Self {
            body: body.into_bytes(),
            slots,
            members,
        }
    }

    /// New event ids from `next_id`; returns the body.
    fn next(&mut self, next_id: &AtomicU64) -> Bytes {
        let first = next_id.fetch_add(self.slots.len() as u64, Ordering::Relaxed);
        for (offset, &(id_at, member_at)) in self.slots.iter().enumerate() {
            let id = first + offset as u64;
            write_digits(&mut self.body[id_at..id_at + EVENT_ID_DIGITS], id);
            write_digits(
                &mut self.body[member_at..member_at + MEMBER_DIGITS],
                id % self.members,
            );
        }
        Bytes::copy_from_slice(&self.body)
    }
}

fn write_digits(out: &mut [u8], mut n: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The number after the last `"accepted":` of an ingestion response.
fn accepted_count(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"accepted\":";
    let at = body.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// One keep-alive connection posting requests back to back until `stop`; returns its latency
/// histogram in microseconds (measured requests only).
async fn connection(
    endpoint: Arc<Endpoint>,
    mut template: Template,
    next_id: Arc<AtomicU64>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let items = template.slots.len() as u64;
    let host = HeaderValue::from_str(&endpoint.authority).expect("authority");
    let auth_header = match endpoint.auth {
        Auth::Query => None,
        Auth::Header => Some(HeaderName::from_static("x-authorization")),
        Auth::Hub => Some(HeaderName::from_static("x-hub-signature-256")),
    };
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let stream = match tokio::net::TcpStream::connect(&endpoint.authority).await {
            Ok(stream) => stream,
            Err(_) => {
                stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(_) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let body = template.next(&next_id);
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(endpoint.path_and_query.as_str())
                .header(HOST, host.clone())
                .header(CONTENT_TYPE, "application/json");
            if let Some(name) = &auth_header {
                let value = match endpoint.auth {
                    Auth::Hub => hub_signature(&endpoint.secret, &body),
                    _ => endpoint.secret.clone(),
                };
                request = request.header(name, value);
            }
            let request = request.body(Full::new(body)).expect("a request");
            let sent = Instant::now();
            if sender.ready().await.is_err() {
                stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                continue 'reconnect;
            }
            let response = match sender.send_request(request).await {
                Ok(response) => response,
                Err(_) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    continue 'reconnect;
                }
            };
            let status = response.status();
            let bytes = match response.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    continue 'reconnect;
                }
            };
            let took = sent.elapsed();
            if !measuring.load(Ordering::Relaxed) {
                continue;
            }
            stats.requests.fetch_add(1, Ordering::Relaxed);
            if status != StatusCode::OK {
                stats.http_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let accepted = if endpoint.bare {
                items
            } else {
                accepted_count(&bytes).unwrap_or(0)
            };
            stats.events.fetch_add(accepted, Ordering::Relaxed);
            if accepted < items {
                stats
                    .not_accepted
                    .fetch_add(items - accepted, Ordering::Relaxed);
                report_not_accepted(&bytes);
            }
            let _ = histogram.record((took.as_micros() as u64).max(1));
        }
    }
    histogram
}

/// Says once, on stderr, why an item was not accepted.
fn report_not_accepted(body: &[u8]) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let response: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let first = response["results"]
        .as_array()
        .and_then(|results| results.iter().find(|r| r["status"] != "accepted"))
        .cloned()
        .unwrap_or(response);
    eprintln!("an item was not accepted (reported once): {first}");
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// User + system CPU time of a process (all its threads), in seconds, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some((utime + stime) as f64 / 100.0)
}

/// The machine's 1-minute load average: how much else was running.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The resident set of a process, from /proc/<pid>/status.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

fn stream_p(latency: &std::sync::Mutex<Histogram<u64>>, quantile: f64) -> Option<f64> {
    let latency = latency.lock().ok()?;
    (!latency.is_empty()).then(|| latency.value_at_quantile(quantile) as f64 / 1000.0)
}

/// Opens the stream on a raw socket and never reads: the server's writes to it fill the
/// socket's buffers, then wait.
async fn stalled_stream(authority: &str, path: &str, token: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    // Kept open, unread, until the process exits.
    std::mem::forget(socket);
    Ok(())
}

/// One stream client that reads as fast as it can and measures, for each logged event, the
/// time from the server's `receivedAt` to the message's arrival.
struct StreamReader {
    authority: String,
    path: String,
    token: String,
    latency: Arc<std::sync::Mutex<Histogram<u64>>>,
    messages: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
}

impl StreamReader {
    async fn run(self) {
        if let Err(error) = self.read().await {
            eprintln!("a stream client failed: {error}");
        }
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    async fn read(&self) -> anyhow::Result<()> {
        let socket = tokio::net::TcpStream::connect(&self.authority).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(socket)).await?;
        tokio::spawn(connection);
        let request = Request::get(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))?;
        let mut body = sender.send_request(request).await?.into_body();
        let mut pending = String::new();
        let marker = "\"receivedAt\":\"";
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            let now = Utc::now();
            pending.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = pending.find("\n\n") {
                let message: String = pending.drain(..end + 2).collect();
                if message.starts_with(':') {
                    continue;
                }
                self.messages.fetch_add(1, Ordering::Relaxed);
                if !message.contains("event: event") {
                    continue;
                }
                let Some(at) = message.find(marker) else {
                    continue;
                };
                let rest = &message[at + marker.len()..];
                let Some(text) = rest.split('"').next() else {
                    continue;
                };
                if let Ok(received) = chrono::DateTime::parse_from_rfc3339(text) {
                    let micros = (now - received.with_timezone(&Utc)).num_microseconds();
                    if let (Some(micros), Ok(mut latency)) = (micros, self.latency.lock()) {
                        let _ = latency.record(micros.max(1) as u64);
                    }
                }
            }
        }
        Ok(())
    }
}
