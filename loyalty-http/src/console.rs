//! The admin console at `/console`: static files (HTML, CSS, JavaScript modules) compiled into
//! the binary, so the server needs no directory, no build step and no network to serve it. The
//! console is only a client of the public API (it signs in with an admin token and calls the
//! `/v1` routes), so its files are not in the API's route table nor in the OpenAPI document.
//!
//! Every answer carries a strict Content-Security-Policy: nothing from another origin, no
//! inline script or style, no framing, and Trusted Types required, so the browser itself
//! refuses any HTML built from strings (the console renders sender-controlled data as text
//! only). Files are revalidated on each load (`no-cache` with a strong `ETag`): they change
//! only with the binary, and a 304 costs one round trip.

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One file of the console.
#[derive(Debug)]
pub struct Asset {
    /// Under `/console/`.
    pub path: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }),*]
    };
}

/// Every file of `loyalty-http/console/` (a test checks that none is left out).
pub static ASSETS: &[Asset] = assets![
    "index.html",
    "app.css",
    "icon.svg",
    "js/main.js",
    "js/api.js",
    "js/dom.js",
    "js/signature.js",
    "js/stream.js",
    "js/screens/programs.js",
    "js/screens/connectors.js",
    "js/screens/playground.js",
    "js/screens/rules.js",
    "js/screens/testing.js",
    "js/screens/events.js",
    "js/screens/members.js",
    "js/screens/replays.js",
];

/// `form-action 'none'`: the console's forms are handled by script; should one ever be
/// submitted by the browser, its fields (a token) must not end up in a URL.
/// `require-trusted-types-for 'script'` with no policy allowed: `innerHTML` and its kin throw
/// when given a string, so data can only be rendered as text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    require-trusted-types-for 'script'; trusted-types 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Strong entity tags, one per asset (in the order of [`ASSETS`]), computed on first use.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| format!("\"{}\"", &hex::encode(Sha256::digest(asset.body))[..32]))
            .collect()
    })
}

/// The console's routes: `/console` (the page), `/console/` (redirected to it) and the files
/// under `/console/`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/console/", get(|| async { Redirect::permanent("/console") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move { serve(&path, &headers) }),
        )
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return ApiError::RouteNotFound.into_response();
    };
    let etag = &etags()[index];
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = ASSETS[index].body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `console/` so that a file added there and not to [`ASSETS`] fails here rather
    /// than as a 404 in the browser.
    #[test]
    fn every_console_file_is_served() {
        fn walk(dir: &std::path::Path, prefix: &str, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path(), &format!("{name}/"), found);
                } else {
                    found.push(name);
                }
            }
        }
        let mut found = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        walk(&root, "", &mut found);
        found.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        served.sort();
        assert_eq!(found, served);
        for asset in ASSETS {
            assert_ne!(
                content_type(asset.path),
                "application/octet-stream",
                "{}",
                asset.path
            );
        }
    }
}
