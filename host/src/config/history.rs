//! `[history]` validation: which rooms keep their recent publications for
//! clients that come back (`[[history.rooms]]`), and the bound on all of
//! them together, from their raw structs into [`HistoryConfig`].
//!
//! Like `[auth]`, a list of rooms rather than settings with a default
//! each, so it is checked by hand here; the keys are declared once, by the
//! raw structs. The defaults are the constants below, which config.toml
//! shows (commented out). The history is built at start: changes need a
//! restart.

use std::time::Duration;

use serde::Deserialize;

use super::{
    auth::room_pattern,
    codec::bounded,
    declare::keyed,
    error::{KeyPath, Problem},
    model::{HistoryConfig, HistoryRule},
};

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawHistory {
        pub(super) max_bytes: Option<u64>,
        pub(super) persist: Option<bool>,
        pub(super) rooms: Vec<RawHistoryRoom>,
    }
}

keyed! {
    #[derive(Debug, Deserialize)]
    pub(super) struct RawHistoryRoom {
        pub(super) room: toml::Value,
        #[serde(default)]
        pub(super) size: Option<u64>,
        #[serde(default)]
        pub(super) age_secs: Option<u64>,
    }
}

/// All history together is kept under 64 MiB unless `max_bytes` says
/// otherwise.
const DEFAULT_HISTORY_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Publications a room keeps unless its entry says otherwise.
const DEFAULT_HISTORY_SIZE: u64 = 100;
/// How long a publication is kept unless its entry says otherwise (5 min).
const DEFAULT_HISTORY_AGE_SECS: u64 = 300;
const MIB: u64 = 1024 * 1024;

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_bytes: usize::try_from(DEFAULT_HISTORY_MAX_BYTES).unwrap_or(usize::MAX),
            persist: false,
            rooms: Vec::new(),
        }
    }
}

pub(super) fn validate_history(raw: RawHistory) -> Result<HistoryConfig, Problem> {
    let table = KeyPath::default().key("history");
    let max_bytes = bounded(
        &table.key("max_bytes"),
        raw.max_bytes.unwrap_or(DEFAULT_HISTORY_MAX_BYTES),
        MIB,
        64 * 1024 * MIB,
        "bytes all rooms' history may take together, at least 1 MiB (default 67108864, 64 MiB)",
    )?;
    let mut rooms = Vec::with_capacity(raw.rooms.len());
    for (i, r) in raw.rooms.into_iter().enumerate() {
        let entry = table.key("rooms").index(i);
        let room = room_pattern(&entry.key("room"), &r.room)?;
        let size = bounded(
            &entry.key("size"),
            r.size.unwrap_or(DEFAULT_HISTORY_SIZE),
            1,
            1_000_000,
            "publications each matching room keeps, 1 to 1000000 (default 100)",
        )?;
        let age = bounded(
            &entry.key("age_secs"),
            r.age_secs.unwrap_or(DEFAULT_HISTORY_AGE_SECS),
            1,
            30 * 86_400,
            "seconds each publication is kept, at most 30 days (default 300)",
        )?;
        rooms.push(HistoryRule {
            room,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            age: Duration::from_secs(age),
        });
    }
    Ok(HistoryConfig {
        max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        persist: raw.persist.unwrap_or(false),
        rooms,
    })
}
