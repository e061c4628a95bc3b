//! Resume across the hosts of a cluster: a client whose connection to host
//! A dropped comes back to host B with A's resume token, and B takes the
//! session over from A through NATS.
//!
//! - In a cluster, a resume token is 32 random hex digits followed by the
//!   [`host_tag`] of the host that issued it (16 hex digits of the SHA-256
//!   of its `[cluster] name`). Alone, a host's tokens are the 32 random
//!   digits, as before. The random part alone makes a token unguessable;
//!   the tag only says where to ask.
//! - B authenticates the client itself, then asks A on
//!   `<subject_prefix>.session.<A's tag>` with the token and who presents
//!   it (the hosts trust one another through their NATS credentials). A
//!   takes the session out of its parked table (under its lock, so of two
//!   hosts racing for one token exactly one gets it, as with two clients
//!   on one host) if [`Principal::may_resume_as`] allows, removes its
//!   subscriptions and forgets it, and answers with what
//!   [`Moved`] carries: its subscriptions, the frames it collected while
//!   parked, its call log.
//! - B starts a session of its own with them: the collected frames first,
//!   then each subscription made again as the client's subscribe would be
//!   (its allowed rooms and limits checked on B, a `success` reply per
//!   subscription, then live messages), and the call log, so a repeated
//!   `requestId` is not run again.
//! - No answer within [`HANDOVER_WAIT`] (A is gone, or NATS is), a refusal,
//!   or an answer that does not parse: the client is told
//!   `unknown-or-expired`, as for an expired token, and recovers with
//!   `since`. An answer lost after A let go loses the session: A keeps
//!   nothing once it answered.
//!
//! Why the resume says `complete:false` when the session had any
//! subscription: the window around the handover is not closed.
//! - A publication made between A removing the subscriptions and B's own
//!   subscription reaching the NATS server (when B did not listen on the
//!   room already) reaches neither: it is missing.
//! - A publication that reached both hosts just before the handover may be
//!   in what A packed and, when B had received it but its listener had
//!   not yet handed it to its rooms, delivered live by B as well: it
//!   arrives twice (the first copy among the collected frames).
//!
//! Neither host can tell whether either happened (closing it would need B
//! to listen before asking and drop what A packed by each publication's
//! origin and sequence, which the frames do not carry). So the client is
//! told, and a room with history is brought back exactly by subscribing
//! again with `since`; a duplicate there carries the same `offset`
//! (offsets are the stream's, the same on every host).

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::{
    auth::Principal,
    cmd::{Session, Subscribe},
    sessions::{
        ResumeRefused,
        handover::{Answer, Ask, Moved},
    },
    state::AppState,
};

/// How long a host waits for the host that parked a session.
pub const HANDOVER_WAIT: Duration = Duration::from_millis(1500);

/// Hex digits of a token's random part.
const RANDOM_HEX: usize = 32;

/// Hex digits of a token's host tag.
const TAG_HEX: usize = 16;

/// Bytes of an ask a host reads (a token and a user name).
const MAX_ASK_BYTES: usize = 4096;

/// Bytes the frames and calls of an answer may take when the NATS server
/// does not say its payload limit (its default is 1 MiB).
const DEFAULT_PAYLOAD: usize = 1 << 20;

/// This host's tag in resume tokens; `None` alone.
fn host_tag(state: &AppState) -> Option<String> {
    let config = state.config.load();
    let name = &config.cluster.as_ref()?.name;
    let digest = Sha256::digest(name.as_bytes());
    Some(hex::encode(&digest[..TAG_HEX / 2]))
}

/// A new, unguessable resume token, followed in a cluster by this host's
/// tag.
pub(super) fn resume_token(state: &AppState) -> String {
    let mut bytes = [0u8; RANDOM_HEX / 2];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness a token could be guessed: make it unusable.
        return String::new();
    }
    hex::encode(bytes) + host_tag(state).as_deref().unwrap_or_default()
}

/// The tag of the host that parked `token`'s session, when that is another
/// host of this cluster.
fn elsewhere(state: &AppState, token: &str) -> Option<String> {
    let own = host_tag(state)?;
    let tag = token.get(RANDOM_HEX..).filter(|t| t.len() == TAG_HEX)?;
    (tag != own).then(|| tag.to_ascii_lowercase())
}

fn subject(prefix: &str, tag: &str) -> String {
    format!("{prefix}.session.{tag}")
}

/// Asks the host tagged `tag` for `token`'s session on behalf of
/// `principal`; `None` if it is not handed over (see the module docs).
async fn fetch(state: &AppState, tag: &str, token: &str, principal: &Principal) -> Option<Moved> {
    let (client, prefix) = state.fanout.nats()?;
    let ask = serde_json::to_vec(&Ask::new(token, principal)).ok()?;
    let asked = client.request(subject(prefix, tag), ask.into());
    let reply = match tokio::time::timeout(HANDOVER_WAIT, asked).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            tracing::info!(user = %principal.user, "resume refused: the host that parked the session did not answer ({e}); the client recovers with since");
            return None;
        }
        Err(_) => {
            tracing::info!(user = %principal.user, "resume refused: the host that parked the session did not answer within {} ms; the client recovers with since", HANDOVER_WAIT.as_millis());
            return None;
        }
    };
    match serde_json::from_slice::<Answer>(&reply.payload) {
        Ok(Answer::Moved(moved)) => Some(moved),
        Ok(Answer::Refused) => None,
        Err(e) => {
            tracing::warn!(
                "resume refused: the host that parked the session answered something unreadable ({e}); are both hosts the same version?"
            );
            None
        }
    }
}

/// The answer of the host that parked `token`'s session when another host
/// of the cluster did (`Some(None)`: it did not hand it over); `None` when
/// the token is this host's.
pub(super) async fn from_elsewhere(
    state: &AppState,
    token: &str,
    principal: &Principal,
) -> Option<Option<Moved>> {
    let tag = elsewhere(state, token)?;
    Some(fetch(state, &tag, token, principal).await)
}

/// Makes `session` (new on this host) the one another host handed over:
/// what it collected first, then its subscriptions made again as the
/// client's subscribes would be, and its call log. Returns whether the
/// resume is complete (see `handover` for why a session with
/// subscriptions is not).
pub(super) fn take_over(session: &mut Session, moved: Moved) -> bool {
    let limits = &session.limits;
    let Moved {
        rooms,
        frames,
        calls,
        complete,
    } = moved;
    let mut complete = complete && rooms.is_empty();
    // Bounded by this host's limits too: what another host sends is not
    // trusted to be small.
    let frames_cap = limits.resume_buffer.min(limits.send_queue);
    complete &= frames.len() <= frames_cap && rooms.len() <= limits.max_subscriptions;
    for frame in frames.into_iter().take(frames_cap) {
        session.outbox.text(frame);
    }
    let rooms_cap = limits.max_subscriptions;
    for (rid, room) in rooms.into_iter().take(rooms_cap) {
        Subscribe::from_frame(room, Some(rid), None).apply(session);
    }
    session.calls.import(calls);
    tracing::info!(session = %session.name, user = %session.principal.user, complete, "session taken over from another host");
    complete
}

/// Answers other hosts' asks for the sessions parked here, until the host
/// shuts down (its parked sessions are then refused elsewhere, as
/// expired). Started once per host in a cluster.
pub async fn serve(state: Weak<AppState>) {
    let Some((client, on, mut shutdown)) = state.upgrade().and_then(|state| {
        let tag = host_tag(&state)?;
        let (client, prefix) = state.fanout.nats()?;
        Some((client, subject(prefix, &tag), state.shutdown.clone()))
    }) else {
        return;
    };
    let mut asks = match client.subscribe(on.clone()).await {
        Ok(asks) => asks,
        Err(e) => {
            tracing::warn!(
                "cluster: cannot answer resumes on other hosts: listening on {on} failed ({e})"
            );
            return;
        }
    };
    loop {
        let message = tokio::select! {
            _ = shutdown.changed() => return,
            message = asks.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        let Some(state) = state.upgrade() else {
            return;
        };
        let Some(reply) = message.reply else {
            continue;
        };
        let limit = match client.server_info().max_payload {
            0 => DEFAULT_PAYLOAD,
            n => n,
        };
        let answer = answer(&state, &message.payload, limit);
        drop(state);
        let Ok(payload) = serde_json::to_vec(&answer) else {
            continue;
        };
        if let Err(e) = client.publish(reply, payload.into()).await {
            tracing::warn!(
                "cluster: a session handed over to another host was lost: the answer was not sent ({e})"
            );
        }
    }
}

/// The answer to one ask, within `limit` bytes.
fn answer(state: &Arc<AppState>, payload: &[u8], limit: usize) -> Answer {
    if payload.len() > MAX_ASK_BYTES {
        return Answer::Refused;
    }
    let Ok(ask) = serde_json::from_slice::<Ask>(payload) else {
        tracing::warn!(
            "cluster: an ask for a parked session was unreadable; are all hosts the same version?"
        );
        return Answer::Refused;
    };
    let Some(principal) = ask.principal() else {
        return Answer::Refused;
    };
    let parked = match state.sessions.parked.take(&ask.token, &principal) {
        Ok(parked) => parked,
        Err(why) => {
            if why == ResumeRefused::OtherUser {
                tracing::info!(user = %principal.user, "resume on another host refused: the token belongs to another user's session (or to another static token)");
            }
            return Answer::Refused;
        }
    };
    let id = parked.id;
    // Removed before the outbox is emptied: nothing arrives after.
    let rooms = state.fanout.session_rooms(id);
    state.fanout.remove_session(id);
    state.sessions.remove(id);
    let rooms_bytes: usize = rooms
        .iter()
        .map(|(rid, room)| rid.len() + room.to_json().to_string().len() + 16)
        .sum();
    let budget = limit.saturating_sub(rooms_bytes + 1024);
    let moved = Moved::pack(parked, rooms, budget);
    tracing::info!(
        session = %crate::sessions::session_name(id), user = %principal.user,
        complete = moved.complete, "parked session handed over to another host"
    );
    Answer::Moved(moved)
}
