//! Errors of the HTTP API, rendered in one place.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use modhost_plugin_api::ErrorCode;

use crate::modules::CallFailure;

/// An HTTP API error: status, machine code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 for a missing or wrong token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400 for unusable input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }
}

impl From<CallFailure> for ApiError {
    fn from(f: CallFailure) -> Self {
        let status = match f.code {
            ErrorCode::UnknownModule | ErrorCode::UnknownCommand => StatusCode::NOT_FOUND,
            ErrorCode::MissingParam => StatusCode::BAD_REQUEST,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::ModuleError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ModulePanicked => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ModuleTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::ModuleUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        };
        Self::new(status, f.code.as_str(), f.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
