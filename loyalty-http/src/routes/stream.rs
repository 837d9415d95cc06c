//! `/v1/programs/{pid}/stream`: the live stream of the program's changes (server-sent
//! events), served from this process's hub for the program (`crate::stream`).

use crate::error::{ApiError, ApiResult};
use crate::extract::{query_value, AdminQuery, ProgramAdmin};
use crate::stream::StreamItem;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::StreamExt;
use loyalty_core::feed::FeedPosition;
use loyalty_core::ids::MemberId;
use std::convert::Infallible;
use std::time::Duration;

/// A comment line every 15 seconds, so that proxies and clients see the connection alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// A cursor: the decimal `id:` of a message received before.
fn cursor_of(value: &str, name: &str) -> ApiResult<FeedPosition> {
    let valid = !value.is_empty() && value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit());
    valid
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::InvalidField {
            path: name.into(),
            message: format!("{name} must be the id of a message of this stream (digits)"),
        })
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    AdminQuery(pairs): AdminQuery,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let member = query_value(&pairs, "memberId")?.map(MemberId::new);
    // An EventSource sends Last-Event-ID when it reconnects, while its URL keeps the first
    // `after`: the header is the newer.
    let mut after = query_value(&pairs, "after")?
        .map(|v| cursor_of(v, "after"))
        .transpose()?;
    if let Some(header) = headers.get("last-event-id") {
        let text = header.to_str().map_err(|_| ApiError::InvalidField {
            path: "Last-Event-ID".into(),
            message: "Last-Event-ID must be the id of a message of this stream (digits)".into(),
        })?;
        after = Some(cursor_of(text.trim(), "Last-Event-ID")?);
    }
    let head = state.engine.feed_head(&program_id).await?;
    let items = state
        .streams
        .client(&state.engine, program_id, head, after, member);
    let events = items.map(|item| Ok::<Event, Infallible>(event_of(item)));
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"));
    // Proxies that buffer answers (nginx) pass this one through as it comes.
    let unbuffered = [(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    )];
    Ok((unbuffered, sse))
}

fn event_of(item: StreamItem) -> Event {
    match item {
        StreamItem::Change(frame) => Event::default()
            .id(frame.position.to_string())
            .event(frame.kind.as_str())
            .data(&frame.data),
        StreamItem::Reset => Event::default()
            .event("reset")
            .data(r#"{"reason":"cursor_expired"}"#),
        StreamItem::Dropped(reason) => Event::default()
            .event("dropped")
            .data(format!(r#"{{"reason":"{reason}"}}"#)),
    }
}
