//! `POST /auth/login`, `/auth/refresh` and `/auth/logout`: the host's own
//! users (`accounts`), served when the host keeps them.
//!
//! Bodies are JSON only (`Content-Type: application/json`, else 415), at
//! most [`MAX_BODY_BYTES`], read within `[server] body_timeout_secs`.
//! Every refusal of credentials is the same 401 whatever the reason (no
//! such user, wrong password, disabled), so the answer tells nobody which
//! names exist; a name or address past its failed-login limit gets 429,
//! for names that exist or not alike. Neither passwords nor tokens are
//! ever logged: the log and the audit entries name the user and the
//! client's address only.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, de::DeserializeOwned};

use super::{ApiError, body};
use crate::{
    accounts::{Accounts, LoginError},
    state::AppState,
};

/// Largest body of these routes: a name, a password and a token fit in a
/// fraction of it.
pub(crate) const MAX_BODY_BYTES: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (accounts, form) = match read::<LoginBody>(&state, &headers, body).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    answer(
        accounts
            .login(&form.username, &form.password, client.ip())
            .await,
        "invalid-credentials",
        "wrong user name or password",
    )
}

pub(super) async fn refresh(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (accounts, form) = match read::<RefreshBody>(&state, &headers, body).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    answer(
        accounts.refresh(&form.refresh_token, client.ip()).await,
        "invalid-token",
        "the refresh token is not valid (unknown, used, expired, or its session ended); log in again",
    )
}

pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (accounts, form) = match read::<RefreshBody>(&state, &headers, body).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    let ended = accounts
        .logout(&form.refresh_token, client.ip())
        .await
        .map(|_| serde_json::json!({ "logged_out": true }));
    answer(
        ended,
        "invalid-token",
        "the refresh token is not valid, or its session has ended already",
    )
}

/// The accounts, and the body as `T`: 415 unless JSON, 413 past the limit,
/// 400 if it is not `T`.
async fn read<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Arc<Accounts>, T), ApiError> {
    let accounts = state.accounts.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no-accounts",
            "this host keeps no accounts; see [auth.accounts] in config.toml",
        )
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json-only",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let timeout = state.config.load().server.body_timeout;
    let bytes = body::read(body, headers, MAX_BODY_BYTES, timeout).await?;
    // The parser's message may quote the body (a password): never pass it on.
    let form = serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::bad_request("the body is not the JSON object this endpoint takes; see the README's Accounts section")
    })?;
    Ok((accounts, form))
}

/// 200 with `done` as JSON, or the error: 401 with `code`/`message` for
/// any refusal, 429 when rate-limited, 503 when the store failed.
fn answer<T: serde::Serialize>(
    done: Result<T, LoginError>,
    code: &'static str,
    message: &'static str,
) -> Response {
    match done {
        Ok(body) => {
            let mut response = Json(body).into_response();
            // Tokens must not be kept by caches on the way.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(LoginError::Refused(_)) => {
            ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response()
        }
        Err(LoginError::RateLimited(_)) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "too many failed logins; wait a few minutes before trying again",
        )
        .into_response(),
        Err(e @ LoginError::Unavailable(_)) => {
            tracing::error!("accounts: {e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the account store cannot be used now; try again later",
            )
            .into_response()
        }
    }
}
