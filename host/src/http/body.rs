//! Request bodies, read only once the caller is authenticated, and bounded
//! in size and in time.
//!
//! A handler that takes `Bytes` has its body read by axum *before* it runs,
//! so an unauthenticated client could make the host buffer 2 MiB (axum's
//! default limit) per connection, as slowly as it liked. The handlers that
//! take a body (`/trigger/`, `/api/call`) take an unread [`Body`] instead,
//! check the token on the headers, and then call [`read`], which refuses a
//! declared `Content-Length` past the route's limit before reading a byte,
//! stops reading at the limit, and gives up after `[server]
//! body_timeout_secs`. Whatever was read is freed with the request.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header},
};
use futures_util::StreamExt;

use super::ApiError;

/// The body of a request, at most `limit` bytes, read within `timeout`.
///
/// Errors: 413 `too-large` past the limit (declared or sent), 408
/// `body-timeout` when the client is too slow, 400 when the body breaks
/// off (the connection closed or was malformed).
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!(
                "the request body is larger than this endpoint's limit of {limit} bytes; send less (the limit follows [limits] in config.toml)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = async {
        let mut stream = body.into_data_stream();
        // Grown as bytes arrive: a declared length costs nothing until sent.
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(timeout, collect)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the request body did not arrive within {} s ([server] body_timeout_secs); send it at once",
                    timeout.as_secs()
                ),
            ))
        })
}
