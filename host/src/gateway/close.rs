//! Close codes, and the close code for each kind of read error.

/// Close code for an idle client.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code when the host shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The reason `modhost.v1` clients get with [`CLOSE_GOING_AWAY`] (each
/// dialect says its own: `Dialect::shutdown_reason`).
pub use crate::protocol::SHUTDOWN_REASON;
/// The reason sent with 4003 to a session an operator disconnected (the
/// admin page): like a revoked credential, the session was let in and is
/// now ended, and the client may connect again.
pub const DISCONNECTED_REASON: &str = "disconnected by an operator";

/// The close code for a read error: the frame was too big (1009), not
/// UTF-8 (1007), or broke the protocol (1002). `None`: the connection
/// itself failed.
pub(super) fn read_error_close(error: &axum::Error) -> Option<(u16, &'static str)> {
    let text = error.to_string();
    // tungstenite files a dropped TCP connection under protocol errors.
    if text.contains("without closing handshake") {
        return None;
    }
    // Oversize messages and frames say "too long"; "Control frame too big"
    // is a protocol violation (RFC 6455 §5.5), not a size limit of ours.
    if text.contains("too long") || text.contains("Space limit") {
        Some((1009, "message too big"))
    } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
        Some((1007, "invalid UTF-8"))
    } else if text.contains("Protocol") || text.contains("protocol") {
        Some((1002, "protocol error"))
    } else {
        None
    }
}
