//! The account watcher: reads the store's changes a few times a second
//! (`accounts::ChangeFeed`, the audit log after the last entry seen), so
//! a change made by this host (a logout) or by another process (`modhost
//! user disable`, `user role --remove`) reaches the running host within
//! [`POLL`] plus a session's wake:
//!
//! - the user's sessions check their credential again
//!   (`gateway::recheck_account_user`): closed with 4003 when the user is
//!   disabled or their login session ended, downgraded when roles changed;
//!   parked sessions that no longer stand are forgotten;
//! - `user_login`, `user_logout`, `user_disabled` and `user_roles_changed`
//!   go to every in-process module (`Module::on_event`) and every started
//!   external module (`{"type": "user_logout", "user", "roles"}`), with
//!   the user's name as modules see it in `caller.user`
//!   (`account:<name>`) and its roles now: never a token or session id.
//!
//! Each poll is one indexed read of the store on the blocking pool; no
//! sending waits (a module with no room loses the event, logged).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use crate::{
    accounts::{Accounts, Change, ChangeFeed},
    auth::ACCOUNT_PREFIX,
    external::External,
    gateway,
    state::AppState,
};

/// How often the store is read for changes.
pub const POLL: Duration = Duration::from_millis(200);

/// Starts the watcher when the host keeps accounts; it ends when the host
/// shuts down.
pub(super) fn spawn(
    state: &Arc<AppState>,
    external: &Arc<External>,
) -> Option<tokio::task::JoinHandle<()>> {
    let accounts = state.accounts.clone()?;
    let feed = match ChangeFeed::from_now(accounts.store()) {
        Ok(feed) => feed,
        Err(e) => {
            tracing::error!(
                "account changes are not watched: {e}; disabled users keep their open sockets until they reconnect"
            );
            return None;
        }
    };
    let (state, external) = (state.clone(), external.clone());
    Some(tokio::spawn(run(state, external, accounts, feed)))
}

async fn run(
    state: Arc<AppState>,
    external: Arc<External>,
    accounts: Arc<Accounts>,
    mut feed: ChangeFeed,
) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (state, external, accounts) = (state.clone(), external.clone(), accounts.clone());
        let polled = tokio::task::spawn_blocking(move || {
            let changes = feed.poll(accounts.store());
            if let Ok(changes) = &changes {
                for change in changes {
                    apply(&state, &external, &accounts, change);
                }
            }
            (feed, changes.map(|_| ()))
        })
        .await;
        let Ok((back, outcome)) = polled else {
            tracing::error!("the account watcher stopped: its poll panicked");
            return;
        };
        feed = back;
        match outcome {
            // Once per outage, not five times a second.
            Err(e) if !failing => {
                tracing::warn!("account store changes cannot be read: {e}; retrying");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
}

/// Acts on one change: the user's sessions, then the modules.
fn apply(state: &AppState, external: &External, accounts: &Accounts, change: &Change) {
    let user = format!("{ACCOUNT_PREFIX}{}", change.user);
    if change.kind.needs_recheck() {
        let done = gateway::recheck_account_user(state, &change.user);
        if done.asked + done.parked_dropped > 0 {
            tracing::info!(
                user = %user, reason = ?change.kind, sessions = done.asked,
                parked_dropped = done.parked_dropped,
                "account changed: its sessions check their rights again"
            );
        }
    }
    let Some(event) = change.kind.event_name() else {
        return;
    };
    let roles = match accounts.store().user(&change.user) {
        Ok(Some(u)) => u.roles,
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(user = %user, event, "event not sent: the account store cannot be read: {e}");
            return;
        }
    };
    let data = json!({"user": user, "roles": roles});
    state.registry.broadcast_event(event, &data.to_string());
    external.broadcast(&json!({"type": event, "user": user, "roles": roles}));
}
