//! Client websocket text frames: `protocol::decode` with any depth limit,
//! then what the session does next with a subscribe (`Room::parse`).
//! Input: first byte = max depth, the rest = the frame text (UTF-8 only, as
//! tungstenite hands the session nothing else).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modhost::{
    protocol::{self, ClientFrame, DecodeError},
    rooms::Room,
};

fuzz_target!(|data: &[u8]| {
    let Some((&depth, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let depth = usize::from(depth);
    match protocol::decode(text, depth) {
        Ok(frame) => {
            let _ = frame.request_id();
            if let ClientFrame::Subscribe { room, .. } = &frame
                && let Ok(room) = Room::parse(room)
            {
                // A parsed room survives its own canonical JSON.
                let again = Room::parse(&room.to_json()).expect("canonical room parses");
                assert!(again == room, "room changed on a round trip: {room}");
            }
        }
        Err(DecodeError::TooDeep { max_depth }) => assert!(max_depth <= 127),
        Err(_) => {}
    }
});
