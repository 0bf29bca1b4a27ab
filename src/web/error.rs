//! Errors of the web UI and API: a status, a stable code and a message. The API answers
//! them as JSON, `{"error": {"code": "not_found", "message": "no run 01J..."}}`; pages render
//! them as an HTML page ([`crate::web::pages::error_page`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::messages::control::ControlError;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebError {
    /// The HTTP status: 400 bad input, 401 no credentials, 403 wrong credentials or CSRF
    /// token, 404 unknown run/task/log, 409 refused by the node's state (retry of a task that
    /// succeeded), 413 body too large, 503 the node cannot answer now, 500 a bug.
    pub status: StatusCode,
    /// A stable snake_case code for scripts: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `too_large`, `unavailable`, `too_slow`, `internal`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl WebError {
    /// An error with `status` and `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        WebError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such run, task, attempt or page.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503: the node cannot answer now (stopping, restarting its scheduler).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a bug, described by `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 500: the node answered a request with a response of another kind (a bug).
    pub fn unexpected(r: &crate::messages::control::Response) -> Self {
        Self::internal(format!("unexpected answer from the node: {r:?}"))
    }

    /// The JSON body of this error.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<ControlError> for WebError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            ControlError::Refused(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            ControlError::BadRequest(_) => Self::bad_request(message),
            ControlError::Denied(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            ControlError::TooSlow(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_slow", message)
            }
            ControlError::Internal(_) => Self::internal(message),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.json())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"troupe\""),
            );
        }
        r
    }
}
