//! `/v1/programs/{pid}/webhooks`: outbound webhook endpoints, their deliveries, a test
//! message, secret rotation and manual retries.

use super::members::limit_of;
use super::Items;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    deserialize, query_value, AdminQuery, JsonBody, PathIds, ProgramAdmin, RequestBody,
};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{MemberId, MessageId, WebhookId};
use loyalty_core::ledger::Page;
use loyalty_core::secret::Secret;
use loyalty_core::webhooks::{
    Attempt, Delivery, DeliveryState, RotationSpec, TargetPolicy, WebhookSpec, WebhookView,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A webhook body: a JSON object (serde would read a struct from an array too), then read
/// into its spec.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct ObjectBody(serde_json::Map<String, serde_json::Value>);

impl RequestBody for ObjectBody {}

impl ObjectBody {
    fn into_spec<T: serde::de::DeserializeOwned>(self) -> ApiResult<T> {
        deserialize(serde_json::Value::Object(self.0))
    }
}

#[derive(Deserialize)]
pub(crate) struct WebhookPath {
    webhook_id: String,
}

#[derive(Deserialize)]
pub(crate) struct DeliveryPath {
    webhook_id: String,
    message_id: String,
}

/// An endpoint as answered, with its secret when one was just generated (shown only then).
#[derive(Debug, Serialize)]
pub(crate) struct WebhookAnswer {
    #[serde(flatten)]
    view: WebhookView,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookAnswer {
    fn new(view: WebhookView, secret: Option<Secret>) -> Self {
        Self {
            view,
            secret: secret.map(|s| s.expose().to_owned()),
        }
    }
}

/// A delivery as answered: the message (its `webhook-id`, type and body) and every attempt.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryAnswer {
    /// The `webhook-id` the message is sent with, the same on every attempt.
    webhook_id: MessageId,
    endpoint_id: WebhookId,
    #[serde(rename = "type")]
    message_type: String,
    state: DeliveryState,
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: Option<MemberId>,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    attempts: Vec<Attempt>,
    /// The body sent, as JSON.
    payload: Box<RawValue>,
}

impl From<Delivery> for DeliveryAnswer {
    fn from(delivery: Delivery) -> Self {
        let message = delivery.message;
        let payload = RawValue::from_string(message.body)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
        Self {
            webhook_id: message.id,
            endpoint_id: message.webhook_id,
            message_type: message.message_type,
            state: delivery.state,
            member_id: message.member_id,
            created_at: message.created_at,
            next_attempt_at: delivery.next_attempt_at,
            attempts: delivery.attempts,
            payload,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryPage {
    items: Vec<DeliveryAnswer>,
    next_cursor: Option<String>,
}

fn policy(state: &AppState) -> TargetPolicy {
    TargetPolicy {
        allow_private: state.config.allow_private_webhook_targets,
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    JsonBody(body): JsonBody<ObjectBody>,
) -> ApiResult<(StatusCode, Json<WebhookAnswer>)> {
    let spec: WebhookSpec = body.into_spec()?;
    state.engine.get_program(&program_id).await?;
    // A name is resolved here (I/O), before the engine checks the rest and stores.
    let policy = policy(&state);
    if let Err(message) = crate::webhooks::check_at_creation(&spec.url, policy).await {
        return Err(ApiError::InvalidField {
            path: "/url".into(),
            message,
        });
    }
    let (view, secret) = state
        .engine
        .create_webhook(&program_id, spec, policy)
        .await?;
    Ok((StatusCode::CREATED, Json(WebhookAnswer::new(view, secret))))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
) -> ApiResult<Json<Items<WebhookAnswer>>> {
    let items = state.engine.list_webhooks(&program_id).await?;
    Ok(Json(Items::new(
        items
            .into_iter()
            .map(|view| WebhookAnswer::new(view, None))
            .collect(),
    )))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<WebhookPath>,
) -> ApiResult<Json<WebhookAnswer>> {
    let view = state
        .engine
        .get_webhook(&program_id, &WebhookId::new(path.webhook_id))
        .await?;
    Ok(Json(WebhookAnswer::new(view, None)))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<WebhookPath>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_webhook(&program_id, &WebhookId::new(path.webhook_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn deliveries(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<WebhookPath>,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<Json<DeliveryPage>> {
    let page: Page<Delivery> = state
        .engine
        .list_deliveries(
            &program_id,
            &WebhookId::new(path.webhook_id),
            limit_of(&pairs)?,
            query_value(&pairs, "cursor")?,
        )
        .await?;
    Ok(Json(DeliveryPage {
        items: page.items.into_iter().map(DeliveryAnswer::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

pub(crate) async fn test(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<WebhookPath>,
) -> ApiResult<(StatusCode, Json<DeliveryAnswer>)> {
    let delivery = state
        .engine
        .send_test_message(&program_id, &WebhookId::new(path.webhook_id))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<WebhookPath>,
    JsonBody(body): JsonBody<ObjectBody>,
) -> ApiResult<Json<WebhookAnswer>> {
    let spec: RotationSpec = body.into_spec()?;
    let (view, secret) = state
        .engine
        .rotate_webhook_secret(&program_id, &WebhookId::new(path.webhook_id), spec)
        .await?;
    Ok(Json(WebhookAnswer::new(view, secret)))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<DeliveryPath>,
) -> ApiResult<(StatusCode, Json<DeliveryAnswer>)> {
    let delivery = state
        .engine
        .retry_delivery(
            &program_id,
            &WebhookId::new(path.webhook_id),
            &MessageId::new(path.message_id),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}
