//! Every error an HTTP client can see, in one shape:
//! `{"error": {"code": "snake_case", "message": "…"}}`. 5xx bodies are opaque;
//! their cause goes to the log.

use poem::{http::StatusCode, IntoResponse, Response};
use poem_openapi::{payload::Json, ApiResponse, Object};

#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// Stable, snake_case; safe to match on.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// For 422: the fields that failed validation.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
    /// For 409 `appointment_overlap`: the appointments holding the slot.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ConflictingAppointment>>,
}

/// An appointment in the way of another.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConflictingAppointment {
    pub id: uuid::Uuid,
    pub title: String,
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub end_time: chrono::DateTime<chrono::Utc>,
    pub status: String,
}

/// One invalid field of a request.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Where in the request, e.g. `items[0].quantity`.
    pub loc: String,
    pub msg: String,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
}

/// Errors of the `/api/v1` operations.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource is not in a state that allows this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request is well-formed but its content is invalid.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The database is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
    /// A server fault (details in the server log).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

pub fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            fields: None,
            conflicts: None,
        },
    })
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(body("not_found", format!("{what} not found")))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(body("conflict", message))
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(body(code, message))
    }

    /// 422 `invalid` naming the field.
    pub fn invalid(e: &crate::domain::Invalid) -> Self {
        Self::Unprocessable(Json(ErrorBody {
            error: ErrorDetail {
                code: "invalid".into(),
                message: e.to_string(),
                fields: Some(vec![FieldError {
                    loc: e.field.clone(),
                    msg: e.message.clone(),
                    kind: "value_error".into(),
                }]),
                conflicts: None,
            },
        }))
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }

    /// Logs the cause and answers 503 when the database is unreachable, else an
    /// opaque 500.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        // A value Postgres cannot hold (NUL in text, `\u0000` in JSON, an index
        // entry too large) is the client's input, not our fault.
        if find_sqlx(cause).is_some_and(|e| {
            crate::db::refuses_values(e) && !matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("23")))
        }) {
            tracing::info!(error.message = %cause, "request refused: a value cannot be stored");
            return Self::bad_request("invalid_value", "the request carries a value that cannot be stored (e.g. a NUL character)");
        }
        if is_unavailable(cause) {
            tracing::warn!(error.message = %cause, "database unavailable");
            return Self::Unavailable(body("database_unavailable", "the database is unreachable; retry later"));
        }
        tracing::error!(error.message = %cause, error.cause_chain = ?cause, "request failed");
        Self::Internal(body("internal", "internal server error"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<crate::engine::Error> for ApiError {
    fn from(e: crate::engine::Error) -> Self {
        Self::internal(&e)
    }
}

/// Whether an error chain means "database unreachable" (connection refused,
/// pool timeout, connection killed, database not accepting connections) rather
/// than a fault in our SQL.
pub fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    find_sqlx(e).is_some_and(sqlx_unavailable)
}

/// The database error in an error chain, if any.
fn find_sqlx<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a sqlx::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(e) = err.downcast_ref::<sqlx::Error>() {
            return Some(e);
        }
        // `#[error(transparent)]` wrappers skip the sqlx error in `source()`.
        if let Some(crate::engine::Error::Database(e)) = err.downcast_ref::<crate::engine::Error>() {
            return Some(e);
        }
        cur = err.source();
    }
    None
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        // 08: connection exception, 57P: operator intervention (shutdown,
        // terminated), 55000: database not accepting connections, 53300: too many.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "55000" || c == "53300"),
        _ => false,
    }
}

/// Turns any error poem produces (routing, parsing, auth) into the JSON shape.
pub async fn to_json_error(err: poem::Error) -> Response {
    let status = err.status();
    let resp = err.into_response();
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => ("unauthorized", "missing or invalid bearer token".to_string()),
        StatusCode::NOT_FOUND => ("not_found", if text.is_empty() { "no such resource".into() } else { text }),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this path".into()),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
        StatusCode::BAD_REQUEST => ("bad_request", text),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", text),
        s if s.is_server_error() => {
            tracing::error!(status = %s, error.message = %text, "request failed");
            ("internal", "internal server error".into())
        }
        _ => ("error", text),
    };
    let code = if status == StatusCode::SERVICE_UNAVAILABLE { "unavailable" } else { code };
    poem::web::Json(body(code, message).0)
        .with_status(status)
        .into_response()
}
