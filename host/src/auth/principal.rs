//! Who an authenticated client is: the result of every auth mode.

/// The role that makes a principal an administrator (e.g. may ask `status`).
pub const ADMIN_ROLE: &str = "admin";

/// An authenticated client.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user id (static token `user`, JWT user claim, the bootstrap
    /// reply's user id, or `anonymous-<16 random hex digits>`, new for each
    /// connection, when the bootstrap reply names nobody).
    pub user: String,
    /// Role names, e.g. `["user"]` or `["admin"]`.
    pub roles: Vec<String>,
    /// Room patterns this client may subscribe to; each is a JSON object
    /// (the auth modes refuse anything else).
    pub allowed_rooms: Vec<serde_json::Value>,
}

impl Principal {
    /// Whether this principal has the [`ADMIN_ROLE`] role.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// Whether this principal has role `role` (exact, case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
