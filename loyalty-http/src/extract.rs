//! Request plumbing shared by the handlers: admin authorisation and JSON bodies as
//! extractors (whose rejections are problem documents), query strings, bounded bodies.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use loyalty_core::ids::ProgramId;
use loyalty_core::program::program_of_token;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Who is calling an admin route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Root,
    Program(ProgramId),
}

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(ApiError::Unauthorized)?;
    if values.next().is_some() {
        return Err(ApiError::Unauthorized);
    }
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized);
    }
    Ok(token.trim())
}

/// Authenticates the caller: the root token, or a program's own token.
async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let token = bearer(headers)?;
    if state.config.root_token_hash.matches(token.as_bytes()) {
        return Ok(Caller::Root);
    }
    let program = program_of_token(token).ok_or(ApiError::Unauthorized)?;
    if state.engine.verify_program_token(&program, token).await? {
        Ok(Caller::Program(program))
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// A request authorised with any admin token, the root's or a program's: who it is.
#[derive(Clone, Debug)]
pub struct AnyAdmin(pub Caller);

impl FromRequestParts<AppState> for AnyAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        caller(state, &parts.headers).await.map(AnyAdmin)
    }
}

/// A request authorised with the root token; a program's token is 403.
#[derive(Clone, Copy, Debug)]
pub struct RootAdmin;

impl FromRequestParts<AppState> for RootAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match caller(state, &parts.headers).await? {
            Caller::Root => Ok(RootAdmin),
            Caller::Program(_) => Err(ApiError::Forbidden),
        }
    }
}

/// A request authorised for the program named by the path's `{program_id}`: the root token
/// or that program's own token (another program's token is 403). Holds the program's id.
#[derive(Clone, Debug)]
pub struct ProgramAdmin(pub ProgramId);

impl FromRequestParts<AppState> for ProgramAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let PathIds(ProgramPath { program_id }) =
            PathIds::<ProgramPath>::from_request_parts(parts, state).await?;
        let program = ProgramId::new(program_id);
        match caller(state, &parts.headers).await? {
            Caller::Root => Ok(ProgramAdmin(program)),
            Caller::Program(own) if own == program => Ok(ProgramAdmin(program)),
            Caller::Program(_) => Err(ApiError::Forbidden),
        }
    }
}

#[derive(Deserialize)]
struct ProgramPath {
    program_id: String,
}

/// The ids in a route's path, by name (a struct whose fields are the route's parameters,
/// any subset of them). A segment that is not UTF-8 once decoded names nothing: 404, as for
/// an unknown route.
#[derive(Clone, Debug)]
pub struct PathIds<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PathIds<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(ids)) => Ok(PathIds(ids)),
            Err(_) => Err(ApiError::RouteNotFound),
        }
    }
}

/// What an admin route's JSON body may be.
pub trait RequestBody: DeserializeOwned {
    /// Whether the body is stored: a stored body may not hold a NUL character (see
    /// `json_body`); a body that is only evaluated (a simulation's payload) may hold anything
    /// an ingested item may.
    const STORED: bool = true;
}

impl RequestBody for loyalty_core::program::ProgramSpec {}
impl RequestBody for loyalty_core::connector::ConnectorSpec {}
impl RequestBody for loyalty_core::rules::RuleSpec {}

/// An admin route's JSON body, read within the admin body limit: a body over it is 413, one
/// that is not JSON 400 with line and column, one of the wrong shape 422 with the JSON path
/// of the field (all problem documents, from `error.rs`).
#[derive(Clone, Debug)]
pub struct JsonBody<T>(pub T);

impl<T: RequestBody> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(&parts.headers, body, state.config.max_admin_body_bytes).await?;
        let value = if T::STORED {
            json_body(&bytes)?
        } else {
            parse_body(&bytes)?
        };
        Ok(JsonBody(value))
    }
}

/// Parses the JSON body of an object to store; a syntax error is 400 with line and column, a
/// shape error is 422 with the JSON path of the field, and so is a NUL character anywhere in
/// it: PostgreSQL's text cannot hold one, so no store takes one (an ingested item's raw JSON
/// keeps its `\u0000` escapes as written). A number written with a zero fraction (`30.0`) is
/// the integer it equals, as JSON Schema (and so the OpenAPI document) reads it.
fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut value = parse_json(bytes)?;
    if let Some(path) = nul_character_at(&value, &mut String::new()) {
        return Err(ApiError::InvalidField {
            path,
            message: "NUL characters (\\u0000) are not allowed here".into(),
        });
    }
    whole_numbers_as_integers(&mut value);
    deserialize(value)
}

/// Rewrites every number with a zero fraction that fits an `i64` or a `u64` as that integer.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    // 2^63 and 2^64: the first numbers past i64::MAX and u64::MAX, exactly as f64s.
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64()) {
                if float.fract() == 0.0 && (-TWO_TO_63..TWO_TO_63).contains(&float) {
                    *value = Value::from(float as i64);
                } else if float.fract() == 0.0 && (0.0..TWO_TO_64).contains(&float) {
                    *value = Value::from(float as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// The JSON pointer of the first string or key with a NUL character.
fn nul_character_at(value: &serde_json::Value, path: &mut String) -> Option<String> {
    use serde_json::Value;
    fn escaped(segment: &str) -> String {
        segment.replace('~', "~0").replace('/', "~1")
    }
    match value {
        Value::String(text) if text.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let length = path.len();
            path.push_str(&format!("/{index}"));
            let found = nul_character_at(item, path);
            path.truncate(length);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let length = path.len();
            path.push('/');
            path.push_str(&escaped(key));
            let found = if key.contains('\0') {
                Some(path.clone())
            } else {
                nul_character_at(item, path)
            };
            path.truncate(length);
            found
        }),
        _ => None,
    }
}

/// Parses a JSON body; a syntax error is 400 with line and column, a shape error is 422 with
/// the JSON path of the field.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    deserialize(parse_json(bytes)?)
}

/// The body's JSON syntax: 400 with line and column when it is not JSON.
fn parse_json(bytes: &[u8]) -> ApiResult<serde_json::Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidBody {
            message: "the body is empty".into(),
            line: 1,
            column: 1,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidBody {
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
    })
}

/// Deserializes a parsed body; a shape error is 422 with the JSON path of the field.
pub(crate) fn deserialize<T: DeserializeOwned>(syntax: serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(syntax).map_err(|e| {
        let path = e.path().to_string();
        let pointer = if path == "." {
            String::new()
        } else {
            format!("/{}", path.replace(['.', '['], "/").replace(']', ""))
        };
        ApiError::InvalidField {
            path: pointer,
            message: strip_position(&e.into_inner().to_string()),
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The query string as (name, value) pairs, decoded.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An admin route's query string as decoded (name, value) pairs. Put it after the admin
/// extractor, so that it is read once the caller is authorised: a NUL character is refused
/// (400), as no id or filter holds one and PostgreSQL's text cannot.
#[derive(Clone, Debug)]
pub struct AdminQuery(pub Vec<(String, String)>);

impl FromRequestParts<AppState> for AdminQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> ApiResult<Self> {
        admin_query_pairs(parts.uri.query()).map(AdminQuery)
    }
}

fn admin_query_pairs(query: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let pairs = query_pairs(query);
    if pairs
        .iter()
        .any(|(key, value)| key.contains('\0') || value.contains('\0'))
    {
        return Err(ApiError::BadRequest(
            "a NUL character (%00) is not allowed in the query".into(),
        ));
    }
    Ok(pairs)
}

/// The single value of a query parameter; given twice is an error.
pub fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> ApiResult<Option<&'a str>> {
    let mut found = None;
    for (key, value) in pairs {
        if key == name {
            if found.is_some() {
                return Err(ApiError::InvalidField {
                    path: name.into(),
                    message: format!("the query parameter {name} is given more than once"),
                });
            }
            found = Some(value.as_str());
        }
    }
    Ok(found)
}

/// `true`/`false`/`1`/`0` for a query flag.
pub fn query_flag(pairs: &[(String, String)], name: &str) -> ApiResult<Option<bool>> {
    match query_value(pairs, name)? {
        None => Ok(None),
        Some("true" | "1" | "") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(ApiError::InvalidField {
            path: name.into(),
            message: format!("expected true or false, found {other:?}"),
        }),
    }
}

/// Reads a body of at most `limit` bytes. A declared `Content-Length` over the limit is refused
/// before reading; a chunked body is cut off as soon as it passes the limit.
pub async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> ApiResult<axum::body::Bytes> {
    let too_large = || ApiError::Engine(loyalty_core::Error::PayloadTooLarge { limit });
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes fails either on the limit or on a broken connection.
        let text = e.to_string();
        if text.contains("length limit") {
            too_large()
        } else {
            ApiError::BadRequest(format!("the body could not be read: {text}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_are_integers_and_fractions_stay() {
        let mut value = json!({"a": 30.0, "b": [-2.0, 2.5, 1e300, -0.0], "c": {"d": 1.8446744073709552e19, "e": 7}});
        whole_numbers_as_integers(&mut value);
        assert_eq!(
            value,
            json!({"a": 30, "b": [-2, 2.5, 1e300, 0], "c": {"d": 1.8446744073709552e19, "e": 7}})
        );
        assert!(value["a"].is_i64() && value["b"][3].is_i64());
        let big = 9_223_372_036_854_775_808.0_f64;
        let mut value = json!(big);
        whole_numbers_as_integers(&mut value);
        assert_eq!(value.as_u64(), Some(9_223_372_036_854_775_808));
    }
}
