//! A parked session as it goes from one host of a cluster to another
//! (`gateway::handover` carries it over NATS): what the asking host sends
//! ([`Ask`]: the token and who presents it) and what the parking host
//! answers ([`Answer`]: the session's subscriptions, the frames it
//! collected while parked, rendered, and its call log), each bounded.
//!
//! What is kept of the call log: every `requestId` it remembers; the final
//! frames of finished calls while they fit the answer; a call still
//! running on the parking host counts as done without a frame (its reply
//! goes to that host, which no longer has the session), so a repeat is
//! refused (the call already ran) instead of run twice.

use std::{sync::Arc, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::{
    auth::{Principal, Source},
    rooms::Room,
};

use super::{outbox::Outgoing, parked::Parked};

/// What a host asks the host that parked a session.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ask {
    /// The resume token the client presented.
    pub token: String,
    /// The user the asking host authenticated.
    pub user: String,
    /// How: `static`, `jwt`, `oidc`, `bootstrap`, `account`.
    pub source: String,
    /// For a static token, the hex SHA-256 of the token.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Ask {
    /// The question for `token` presented by `principal`.
    pub fn new(token: &str, principal: &Principal) -> Self {
        let (source, digest) = match &principal.source {
            Source::Static { token_digest } => ("static", Some(hex::encode(token_digest))),
            Source::Jwt { .. } => ("jwt", None),
            Source::Oidc { .. } => ("oidc", None),
            Source::Bootstrap => ("bootstrap", None),
            Source::Account { .. } => ("account", None),
            Source::Anonymous => ("anonymous", None),
        };
        Self {
            token: token.to_owned(),
            user: principal.user.clone(),
            source: source.to_owned(),
            digest,
        }
    }

    /// The principal asking, as far as
    /// [`Principal::may_resume_as`] compares them (user and source; an
    /// expiry is the asking host's to enforce). `None` for a source that
    /// never resumes.
    pub fn principal(&self) -> Option<Principal> {
        let source = match self.source.as_str() {
            "static" => {
                let digest = hex::decode(self.digest.as_deref()?).ok()?;
                Source::Static {
                    token_digest: digest.try_into().ok()?,
                }
            }
            "jwt" => Source::Jwt {
                expires: SystemTime::now(),
            },
            "oidc" => Source::Oidc {
                expires: SystemTime::now(),
            },
            "bootstrap" => Source::Bootstrap,
            "account" => Source::Account {
                expires: SystemTime::now(),
                session: String::new(),
            },
            _ => return None,
        };
        Some(Principal {
            user: self.user.clone(),
            roles: Vec::new(),
            allowed_rooms: Vec::new(),
            source,
        })
    }
}

/// The parking host's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The session, now gone from the parking host.
    Moved(Moved),
    /// No session is parked under that token for that principal (the
    /// asking host tells its client `unknown-or-expired`).
    Refused,
}

/// A session handed over.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Moved {
    /// Its subscriptions: request id and room.
    pub rooms: Vec<(String, serde_json::Value)>,
    /// What it collected while parked, as the client gets it.
    pub frames: Vec<String>,
    /// Its call log ([`SessionCalls::export`](super::SessionCalls::export)).
    pub calls: Vec<(String, Option<String>)>,
    /// Nothing was dropped on the parking host: neither while parked nor
    /// to fit the answer.
    pub complete: bool,
}

impl Moved {
    /// Packs `parked` (already out of its host's table, its subscriptions
    /// `rooms` already removed, so nothing more arrives) into at most
    /// about `budget` bytes: the rooms always, then the call log, then the
    /// frames in order; a frame that does not fit and those after it are
    /// dropped (`complete` false), a call frame that does not fit leaves
    /// its id without a frame.
    pub fn pack(parked: Parked, rooms: Vec<(Arc<str>, Room)>, budget: usize) -> Self {
        let Parked {
            outbox,
            mut rx,
            calls,
            ..
        } = parked;
        let mut complete = !outbox.state().unpark();
        let mut left = budget;
        let mut take = |bytes: usize| {
            // Per item: quotes, commas and escapes.
            let cost = bytes + 16;
            left.checked_sub(cost).map(|rest| left = rest).is_some()
        };
        let mut kept_calls = Vec::new();
        for (id, frame) in calls.export() {
            if take(id.len()) {
                let frame = frame.filter(|f| take(f.len()));
                kept_calls.push((id, frame));
            }
        }
        let mut frames = Vec::new();
        while let Some(item) = rx.try_recv() {
            let text = match item {
                Outgoing::Text(text) | Outgoing::Reply(text) => text.as_str().to_owned(),
                Outgoing::Publish(frame, request_id) => frame.render(&request_id),
            };
            if !complete || !take(text.len()) {
                complete = false;
                continue;
            }
            frames.push(text);
        }
        Self {
            rooms: rooms
                .into_iter()
                .map(|(id, room)| (id.to_string(), room.to_json()))
                .collect(),
            frames,
            calls: kept_calls,
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::{Outbox, SessionCalls};

    fn principal(source: Source) -> Principal {
        Principal {
            user: "alice".into(),
            roles: Vec::new(),
            allowed_rooms: Vec::new(),
            source,
        }
    }

    #[test]
    fn an_ask_carries_what_decides_who_may_resume() {
        let alice = principal(Source::Static {
            token_digest: [7; 32],
        });
        let asked = Ask::new("t", &alice).principal().unwrap();
        assert!(alice.may_resume_as(&asked));
        let other_token = principal(Source::Static {
            token_digest: [8; 32],
        });
        assert!(!other_token.may_resume_as(&asked));
        let jwt = principal(Source::Jwt {
            expires: SystemTime::now(),
        });
        assert!(!jwt.may_resume_as(&asked));
        assert!(jwt.may_resume_as(&Ask::new("t", &jwt).principal().unwrap()));
        assert!(
            Ask::new("t", &principal(Source::Anonymous))
                .principal()
                .is_none()
        );
    }

    #[test]
    fn a_packed_session_keeps_its_frames_in_order_until_the_budget_ends() {
        let (outbox, rx) = Outbox::new(8);
        for n in 0..4 {
            assert!(outbox.text(format!("frame {n}")));
        }
        let parked = Parked {
            id: 1,
            principal: principal(Source::Bootstrap),
            outbox,
            rx,
            calls: Arc::new(SessionCalls::default()),
        };
        let moved = Moved::pack(parked, Vec::new(), 1024);
        assert_eq!(moved.frames, ["frame 0", "frame 1", "frame 2", "frame 3"]);
        assert!(moved.complete);

        let (outbox, rx) = Outbox::new(8);
        for n in 0..4 {
            outbox.text(format!("frame {n}"));
        }
        let parked = Parked {
            id: 2,
            principal: principal(Source::Bootstrap),
            outbox,
            rx,
            calls: Arc::new(SessionCalls::default()),
        };
        let moved = Moved::pack(parked, Vec::new(), 2 * (7 + 16));
        assert_eq!(moved.frames, ["frame 0", "frame 1"]);
        assert!(!moved.complete);
    }
}
