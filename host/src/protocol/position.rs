//! [`StreamPosition`]: where a client is in a room's history, as the
//! `modhost.v1` frames carry it (`"offset"` and `"epoch"`).

use std::sync::Arc;

use serde_json::Value;

/// Longest `epoch` a client may send back, in bytes. The host's epochs are
/// 16 hex digits; anything longer is not one of them.
pub const MAX_EPOCH_BYTES: usize = 64;

/// A position in one history stream: the last `offset` seen and the
/// stream's `epoch`. Offsets of one epoch count up from 1 with no gaps; a
/// new epoch means the history before it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// The last publication seen (0: none).
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: Arc<str>,
}

impl StreamPosition {
    /// From `{"offset": <u64>, "epoch": "<text>"}`; `None` for anything
    /// else (an offset that is not a whole number, an epoch that is not a
    /// short string).
    pub fn from_json(value: &Value) -> Option<StreamPosition> {
        let offset = value.get("offset")?.as_u64()?;
        let epoch = value.get("epoch")?.as_str()?;
        (epoch.len() <= MAX_EPOCH_BYTES).then(|| StreamPosition {
            offset,
            epoch: Arc::from(epoch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_offset_and_epoch_and_nothing_else() {
        let p = StreamPosition::from_json(&json!({"offset": 7, "epoch": "ab"})).unwrap();
        assert_eq!((p.offset, &*p.epoch), (7, "ab"));
        for bad in [
            json!({"offset": -1, "epoch": "ab"}),
            json!({"offset": 1.5, "epoch": "ab"}),
            json!({"offset": "7", "epoch": "ab"}),
            json!({"offset": 7}),
            json!({"offset": 7, "epoch": 3}),
            json!({"offset": 7, "epoch": "x".repeat(MAX_EPOCH_BYTES + 1)}),
            json!([7, "ab"]),
        ] {
            assert_eq!(StreamPosition::from_json(&bad), None, "{bad}");
        }
    }
}
