//! The HTTP limit of the machine: a bare axum server whose one endpoint only reads the body,
//! parses it as JSON (`serde_json::Value`) and answers `{"ok":true}`. The load generator
//! (`examples/loadgen.rs --target bare`) posts to it exactly what it posts to the engine, so
//! the two rates compare the engine's whole pipeline with HTTP and JSON parsing alone.
//!
//! ```sh
//! cargo run --release --example bare_axum -- --listen 127.0.0.1:8090
//! ```

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use clap::Parser;

// The example server's allocator: the two servers differ only in what they do with a request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "bare_axum",
    about = "A parse-only axum endpoint, for comparison"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
}

/// `POST /v1/incoming/{id}`: the same path as the engine's, so the load generator's requests
/// are the same bytes either way.
async fn incoming(Path(_id): Path<String>, body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            std::hint::black_box(value);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"ok":true}"#,
            )
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ok":false}"#,
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Router::new().route("/v1/incoming/{id}", post(incoming));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    println!("bare_axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let interrupt = tokio::signal::ctrl_c();
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = interrupt => {},
                _ = terminate.recv() => {},
            }
        })
        .await?;
    Ok(())
}
