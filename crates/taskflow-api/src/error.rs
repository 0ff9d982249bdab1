//! The API's one error type, its one JSON envelope, and its mapping to HTTP statuses.
//!
//! Every error response, including the router's own 404 and 405, has the shape
//! `{"error": {"code": "...", "message": "...", "field": "..."?}}`.
//! Status codes: malformed requests (bad JSON syntax, ids, cursors, query parameters) get 400;
//! well-formed JSON whose content breaks a rule (wrong type, missing or too long title, payload
//! not an object) gets 422; an action the resource's state does not allow gets 409. Internal
//! causes are logged here, once, and never sent to the client.

use salvo::http::StatusCode;
use salvo::oapi::{Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: bad JSON syntax, a bad id, a bad query parameter.
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<&'static str>,
    },
    /// The JSON is well formed but a value breaks a rule.
    #[error("{message}")]
    Validation {
        message: String,
        field: Option<&'static str>,
    },
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Authenticated or not, this request is not allowed (e.g. a WebSocket from a foreign origin).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is valid but the resource is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// The WebSocket connection limit of this process is reached.
    #[error("too many WebSocket clients on this server; retry later or elsewhere")]
    TooManyClients,
    /// A dependency cannot be reached right now: the client may retry (503).
    #[error("a dependency is unavailable; retry shortly")]
    Unavailable(anyhow::Error),
    /// The database connection failed after the task's INSERT was sent: it may or may not be
    /// stored. Unlike 503, this does not say "nothing stored".
    #[error(
        "the database did not confirm storing task {task_id}; it may exist: read it with GET \
         /tasks/{task_id}, or retry with the same Idempotency-Key"
    )]
    OutcomeUnknown {
        task_id: taskflow_core::domain::TaskId,
        cause: anyhow::Error,
    },
    /// Anything else. The cause is logged, the client sees a generic text.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    /// Database connection failures become 503 (retry later), everything else 500.
    fn from(err: anyhow::Error) -> Self {
        if taskflow_core::db::is_unreachable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: Option<&'static str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field,
        }
    }

    pub fn validation(message: impl Into<String>, field: Option<&'static str>) -> Self {
        Self::Validation {
            message: message.into(),
            field,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyClients => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::OutcomeUnknown { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Validation { .. } => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyClients => "too_many_clients",
            Self::Unavailable(_) => "unavailable",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Internal(_) => "internal_error",
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest { field, .. } | Self::Validation { field, .. } => *field,
            _ => None,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "ErrorEnvelope"))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "ErrorBody"))]
pub struct ErrorBody {
    /// Stable, machine-readable: bad_request, validation_failed, unauthorized, not_found,
    /// method_not_allowed, conflict, payload_too_large, unsupported_media_type, unavailable,
    /// internal_error.
    pub code: &'static str,
    /// For people; never contains internal details.
    pub message: String,
    /// The request field the error concerns, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// Every endpoint may fail with 500 (unexpected); the errors particular to an endpoint are
/// listed on it.
impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        operation.responses.insert(
            "500",
            salvo::oapi::Response::new("Unexpected error; the cause is in the server log.")
                .add_content("application/json", ErrorEnvelope::to_schema(components)),
        );
    }
}

impl Scribe for ApiError {
    fn render(self, res: &mut Response) {
        let message = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "internal error; the cause is in the server log".to_owned()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "request failed: dependency unavailable"
                );
                self.to_string()
            }
            Self::OutcomeUnknown { task_id, cause } => {
                tracing::warn!(%task_id, error = format!("{cause:#}"), "task storage in doubt");
                self.to_string()
            }
            other => other.to_string(),
        };
        write_envelope(
            res,
            self.status(),
            ErrorBody {
                code: self.code(),
                message,
                field: self.field(),
            },
        );
    }
}

fn write_envelope(res: &mut Response, status: StatusCode, body: ErrorBody) {
    res.status_code(status);
    res.render(Json(ErrorEnvelope { error: body }));
}

/// Gives the router's own error responses (unknown route 404, wrong method 405, …) the same
/// envelope as the handlers' errors.
#[handler]
pub async fn envelope_catcher(res: &mut Response, ctrl: &mut FlowCtrl) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "bad_request",
        _ => "internal_error",
    };
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    write_envelope(
        res,
        status,
        ErrorBody {
            code,
            message,
            field: None,
        },
    );
    ctrl.skip_rest();
}
