//! The error codes of `{"code":"error","message":…}` replies: one enum, so
//! no command spells a code by hand. Call errors (`{"type":"error",…}`) use
//! the module ABI's [`ErrorCode`](modhost_plugin_api::ErrorCode) instead.

/// Why a client frame was refused. [`WireError::as_str`] is the wire text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Not JSON, or JSON but not an object.
    NonJson,
    /// Nested deeper than `[limits] max_json_depth`.
    TooDeep,
    /// A subscribe, unsubscribe or call without a `requestId`.
    NoRequestId,
    /// A `requestId` longer than `MAX_REQUEST_ID_BYTES` (256); not echoed.
    RequestIdTooLong,
    /// Unsubscribe of a `requestId` that holds no subscription.
    NotSubscribed,
    /// A frame `type` that is missing or unknown.
    MessageTypeNotAllowed,
    /// A subscribe whose `room` is missing or not an object of scalars.
    InvalidRoom,
    /// A room the user is not allowed.
    RoomNotFound,
    /// More subscriptions than `[limits] max_subscriptions`.
    TooManySubscriptions,
    /// A subscription `requestId` already in use in this session.
    RequestIdInUse,
    /// The user may not do this (`status` where `[gateway] status` is
    /// `admins` and the user is not one, or `off`).
    Forbidden,
    /// A subscription the host ended: the user's rights no longer allow
    /// its room (sent unasked, with the subscription's `requestId`).
    SubscriptionRevoked,
}

impl WireError {
    /// The code as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            WireError::NonJson => "non-json-message",
            WireError::TooDeep => "too-deep",
            WireError::NoRequestId => "no-request-id",
            WireError::RequestIdTooLong => "request-id-too-long",
            WireError::NotSubscribed => "not-subscribed",
            WireError::MessageTypeNotAllowed => "message-type-not-allowed",
            WireError::InvalidRoom => "invalid-room",
            WireError::RoomNotFound => "room-not-found",
            WireError::TooManySubscriptions => "too-many-subscriptions",
            WireError::RequestIdInUse => "request-id-in-use",
            WireError::Forbidden => "forbidden",
            WireError::SubscriptionRevoked => "subscription-revoked",
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
