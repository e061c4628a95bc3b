//! The audit of the page's logins, logouts and actions, and the answer
//! to an audited post.

use axum::{http::StatusCode, response::Response};

use super::{form::Post, html, sessions::PageSession};
use crate::state::AppState;

impl Post {
    /// `action` on `subject` done: audited with `detail`, answered with a
    /// redirect to `back`, its view.
    pub(super) async fn done(
        &self,
        action: &'static str,
        subject: Option<&str>,
        detail: Option<&str>,
        back: &'static str,
    ) -> Response {
        self.audit(action, subject, detail).await;
        html::redirect(back)
    }

    /// `action` on `subject` done (`Ok`, its detail) or refused (`Err`,
    /// with its status and message): either way audited, a refusal as
    /// `failed: <message>` and answered with the error page.
    pub(super) async fn answer(
        &self,
        action: &'static str,
        subject: &str,
        outcome: Result<String, (StatusCode, String)>,
        back: &'static str,
    ) -> Response {
        match outcome {
            Ok(detail) => self.done(action, Some(subject), Some(&detail), back).await,
            Err((status, message)) => {
                let failed = format!("failed: {message}");
                self.audit(action, Some(subject), Some(&failed)).await;
                html::error(status, &message, back)
            }
        }
    }

    /// [`audit`] by this post's session, from its client.
    async fn audit(&self, action: &'static str, subject: Option<&str>, detail: Option<&str>) {
        audit(
            &self.state,
            &self.session,
            self.client,
            action,
            subject,
            detail,
        )
        .await;
    }
}

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
