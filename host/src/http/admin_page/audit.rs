//! The audit of the page's logins, logouts and actions.

use super::sessions::PageSession;
use crate::state::AppState;

/// Records an admin page action: always a `tracing` line with target
/// `modhost::audit`; when the host keeps accounts, also an entry in the
/// account store's audit log (`actor` the account's name or
/// `admin-token`, `detail` what was done and the client's address).
pub(super) async fn audit(
    state: &AppState,
    session: &PageSession,
    client: std::net::IpAddr,
    action: &'static str,
    subject: Option<&str>,
    detail: Option<&str>,
) {
    let actor = session.actor();
    tracing::info!(
        target: "modhost::audit",
        actor = %actor, client = %client, action, subject = subject.unwrap_or(""),
        detail = detail.unwrap_or(""), "audit: admin page action"
    );
    let Some(accounts) = state.accounts.clone() else {
        return;
    };
    let subject = subject.map(str::to_owned);
    let detail = match detail {
        Some(d) => format!("{d} (from {client})"),
        None => format!("from {client}"),
    };
    let written = tokio::task::spawn_blocking(move || {
        accounts
            .store()
            .audit(&actor, action, subject.as_deref(), Some(&detail))
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("admin page: the audit entry was not written: {e}"),
        Err(e) => tracing::error!("admin page: the audit entry was not written: {e}"),
    }
}
