//! Sessions whose client dropped and may come back with `?resume=<token>`
//! within the grace period. A parked session keeps its subscriptions, its
//! call log and its outbox, which collects what the client misses.
//!
//! Parked sessions hold no connection, so nothing a client pays for bounds
//! them: a user keeps at most [`MAX_PARKED_PER_USER`], and parking one
//! more drops that user's oldest (the caller forgets it and logs it).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use crate::auth::Principal;

use super::{
    calls::SessionCalls,
    outbox::{Outbox, OutboxReceiver},
};

/// Sessions one user may have parked at once: a browser with a few tabs
/// whose network dropped parks one per tab.
pub const MAX_PARKED_PER_USER: usize = 16;

/// A session waiting for its client.
pub struct Parked {
    /// Session number (subscriptions are indexed by it).
    pub id: u64,
    /// Who it belongs to: only they can resume it
    /// ([`Principal::may_resume_as`]).
    pub principal: Principal,
    /// Its outbox (subscriptions and running calls hold clones).
    pub outbox: Outbox,
    /// What it collected while parked.
    pub rx: OutboxReceiver,
    /// Its calls by requestId, so repeats after a resume still run once.
    pub calls: std::sync::Arc<SessionCalls>,
}

#[derive(Default)]
struct Table {
    by_token: HashMap<String, Parked>,
    /// Each user's resume tokens, oldest parked first.
    by_user: HashMap<String, VecDeque<String>>,
}

impl Table {
    fn remove(&mut self, token: &str) -> Option<Parked> {
        let parked = self.by_token.remove(token)?;
        if let Some(tokens) = self.by_user.get_mut(&parked.principal.user) {
            tokens.retain(|t| t != token);
            if tokens.is_empty() {
                self.by_user.remove(&parked.principal.user);
            }
        }
        Some(parked)
    }
}

/// Parked sessions by resume token.
#[derive(Default)]
pub struct ParkedSessions {
    table: Mutex<Table>,
}

/// Why a resume did not happen. The client is told the same in every case
/// (`unknown-or-expired`): whether a token exists for someone else is not
/// its business. The variants are for the server log.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No session is parked under that token (never was, or it expired).
    Unknown,
    /// The token belongs to another user's session, or to the same user
    /// on another static token (one that may have been revoked).
    OtherUser,
}

impl ParkedSessions {
    /// Parks `parked` under `token`. Returns the sessions of the same user
    /// dropped to stay within [`MAX_PARKED_PER_USER`], oldest first, for
    /// the caller to forget.
    pub fn park(&self, token: String, parked: Parked) -> Vec<Parked> {
        let mut table = self.lock();
        let user = parked.principal.user.clone();
        table.by_token.insert(token.clone(), parked);
        let tokens = table.by_user.entry(user.clone()).or_default();
        tokens.push_back(token);
        let excess = tokens.len().saturating_sub(MAX_PARKED_PER_USER);
        let oldest: Vec<String> = tokens.drain(..excess).collect();
        oldest
            .iter()
            .filter_map(|t| table.by_token.remove(t))
            .collect()
    }

    /// Takes the session parked under `token` for `principal`.
    pub fn take(&self, token: &str, principal: &Principal) -> Result<Parked, ResumeRefused> {
        let mut table = self.lock();
        match table.by_token.get(token) {
            None => Err(ResumeRefused::Unknown),
            Some(p) if !p.principal.may_resume_as(principal) => Err(ResumeRefused::OtherUser),
            Some(_) => Ok(table.remove(token).expect("present")),
        }
    }

    /// Removes the session parked under `token` if it is still session `id`
    /// (the grace period ended). Returns it.
    pub fn expire(&self, token: &str, id: u64) -> Option<Parked> {
        let mut table = self.lock();
        if table.by_token.get(token).is_some_and(|p| p.id == id) {
            table.remove(token)
        } else {
            None
        }
    }

    /// The sessions `user` has parked: each one's resume token, number and
    /// principal, oldest first (at most [`MAX_PARKED_PER_USER`]). For a
    /// caller that checks them without holding the table (the account
    /// store is read for each), then forgets those whose credential no
    /// longer stands with [`expire`](Self::expire).
    pub fn of_user(&self, user: &str) -> Vec<(String, u64, Principal)> {
        let table = self.lock();
        let Some(tokens) = table.by_user.get(user) else {
            return Vec::new();
        };
        tokens
            .iter()
            .filter_map(|t| {
                let parked = table.by_token.get(t)?;
                Some((t.clone(), parked.id, parked.principal.clone()))
            })
            .collect()
    }

    /// Session numbers of the parked sessions.
    pub fn ids(&self) -> std::collections::HashSet<u64> {
        self.lock().by_token.values().map(|p| p.id).collect()
    }

    /// Number of parked sessions.
    pub fn len(&self) -> usize {
        self.lock().by_token.len()
    }

    /// Whether no session is parked.
    pub fn is_empty(&self) -> bool {
        self.lock().by_token.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        crate::util::sync::lock(&self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Source;

    fn principal(user: &str, token: u8) -> Principal {
        Principal {
            user: user.into(),
            roles: Vec::new(),
            allowed_rooms: Vec::new(),
            source: Source::Static {
                token_digest: [token; 32],
            },
        }
    }

    fn parked(id: u64, principal: Principal) -> Parked {
        let (outbox, rx) = Outbox::new(8);
        Parked {
            id,
            principal,
            outbox,
            rx,
            calls: Default::default(),
        }
    }

    #[test]
    fn a_user_past_the_cap_loses_their_oldest_parked_session_and_others_keep_theirs() {
        let sessions = ParkedSessions::default();
        assert!(
            sessions
                .park("bob".into(), parked(1, principal("bob", 2)))
                .is_empty()
        );
        for id in 0..MAX_PARKED_PER_USER as u64 {
            let dropped = sessions.park(format!("a{id}"), parked(10 + id, principal("alice", 1)));
            assert!(dropped.is_empty());
        }
        let dropped = sessions.park("newest".into(), parked(99, principal("alice", 1)));
        let dropped: Vec<u64> = dropped.iter().map(|p| p.id).collect();
        assert_eq!(dropped, [10]);
        assert_eq!(sessions.len(), MAX_PARKED_PER_USER + 1);
        assert!(sessions.take("a0", &principal("alice", 1)).is_err());
        assert_eq!(
            sessions.take("newest", &principal("alice", 1)).unwrap().id,
            99
        );
        assert_eq!(sessions.take("bob", &principal("bob", 2)).unwrap().id, 1);
    }

    #[test]
    fn only_the_same_user_on_the_same_static_token_resumes() {
        let sessions = ParkedSessions::default();
        sessions.park("t".into(), parked(1, principal("alice", 1)));
        let refused = |p: Principal| sessions.take("t", &p).map(|p| p.id);
        assert_eq!(refused(principal("bob", 1)), Err(ResumeRefused::OtherUser));
        assert_eq!(
            refused(principal("alice", 2)),
            Err(ResumeRefused::OtherUser)
        );
        let mut jwt_alice = principal("alice", 1);
        jwt_alice.source = Source::Jwt {
            expires: std::time::SystemTime::now(),
        };
        assert_eq!(refused(jwt_alice), Err(ResumeRefused::OtherUser));
        assert_eq!(refused(principal("alice", 1)), Ok(1));
        assert_eq!(refused(principal("alice", 1)), Err(ResumeRefused::Unknown));
    }

    #[test]
    fn a_users_parked_sessions_are_listed_for_a_check_and_expired_by_token_and_id() {
        let sessions = ParkedSessions::default();
        sessions.park("a1".into(), parked(1, principal("alice", 1)));
        sessions.park("a2".into(), parked(2, principal("alice", 2)));
        sessions.park("b".into(), parked(3, principal("bob", 1)));
        let alice: Vec<(String, u64)> = sessions
            .of_user("alice")
            .into_iter()
            .map(|(token, id, p)| {
                assert_eq!(p.user, "alice");
                (token, id)
            })
            .collect();
        assert_eq!(alice, [("a1".to_owned(), 1), ("a2".to_owned(), 2)]);
        assert!(sessions.of_user("nobody").is_empty());
        assert_eq!(sessions.expire("a1", 1).map(|p| p.id), Some(1));
        assert_eq!(
            sessions.take("a1", &principal("alice", 1)).map(|p| p.id),
            Err(ResumeRefused::Unknown)
        );
        assert_eq!(
            sessions.take("a2", &principal("alice", 2)).map(|p| p.id),
            Ok(2)
        );
        assert_eq!(
            sessions.take("b", &principal("bob", 1)).map(|p| p.id),
            Ok(3)
        );
    }
}
