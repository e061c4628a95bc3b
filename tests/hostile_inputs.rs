//! Hostile inputs to the host's parsers: `/trigger/` bodies (the one parser
//! outsiders reach over plain HTTP) through the real route as a property
//! test against a running host, and the fuzzers' seeds and every input they
//! ever crashed on replayed through the fuzz targets' checks.

use serde_json::{Value, json};

use crate::harness::{Client, TRIGGER_TOKEN, TestHost, Workspace};
use crate::hostile_frames::still_serves;

// ---------------------------------------------------------------------------
// `/trigger/` bodies (the one parser outsiders reach over plain HTTP),
// through the real route: property test against a running host.

fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
        Just(json!("*")),
        Just(json!("message")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("target|customer|[a-z]{0,3}|\\PC{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_trigger_body() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let room = proptest::collection::btree_map(
        "target|customer|[a-z]{1,3}",
        prop_oneof![
            Just(json!("*")),
            Just(json!("message")),
            "[0-9a-z]{0,3}".prop_map(Value::String),
            any::<i32>().prop_map(|n| json!(n)),
            Just(Value::Null),
        ],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()));
    // The listener's rooms, with any customer value.
    let message = prop_oneof![
        Just(json!("*")),
        "[0-9a-z]{0,3}".prop_map(Value::String),
        any::<i32>().prop_map(|n| json!(n)),
        Just(Value::Null),
    ]
    .prop_map(|c| json!({"target": "message", "customer": c}));
    let room = prop_oneof![room, message];
    let rooms = prop_oneof![
        proptest::collection::vec(room, 0..5).prop_map(Value::Array),
        arb_json(),
    ];
    prop_oneof![
        // Well-formed shape, random content.
        (
            rooms,
            proptest::option::of(arb_json()),
            proptest::option::of(arb_json())
        )
            .prop_map(|(rooms, data, extra)| {
                let mut body = serde_json::Map::new();
                body.insert("rooms".into(), rooms);
                if let Some(d) = data {
                    body.insert("data".into(), d);
                }
                if let Some(e) = extra {
                    body.insert("extra".into(), e);
                }
                Value::Object(body).to_string()
            }),
        // Any JSON at all, and not JSON.
        arb_json().prop_map(|v| v.to_string()),
        "\\PC{0,200}",
        "[\\[\\]{}\":,a-z0-9 ]{0,200}",
    ]
}

#[test]
fn trigger_bodies_get_a_status_never_a_crash() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = Workspace::new();
    let host = rt.block_on(TestHost::start(&ws, ""));
    let mut listener = rt.block_on(Client::authorized_at(host.addr, "admin-token"));
    rt.block_on(listener.subscribe(json!({"target": "message", "customer": "*"}), "l"));
    let listener = std::cell::RefCell::new(listener);
    let delivered = std::cell::Cell::new(0u64);
    proptest!(ProptestConfig::with_cases(512), |(body in arb_trigger_body())| {
        let (status, text) = rt.block_on(host.trigger(Some(TRIGGER_TOKEN), &body));
        prop_assert!(
            matches!(status, 200 | 400),
            "{status} {text} for {body}"
        );
        if status == 200 {
            let n = serde_json::from_str::<Value>(&text).unwrap()["delivered"].as_u64();
            prop_assert!(n.is_some(), "{text}");
            // Whatever was delivered arrives.
            for _ in 0..n.unwrap() {
                let v = rt.block_on(listener.borrow_mut().next());
                prop_assert_eq!(&v["type"], "publish", "{}", v);
            }
            delivered.set(delivered.get() + n.unwrap());
        }
    });
    eprintln!("trigger bodies: {} publishes delivered", delivered.get());
    let mut listener = listener.into_inner();
    // The trigger fuzzer's seeds and regressions, too.
    for (path, body) in fuzz_inputs("trigger_body") {
        let body = String::from_utf8_lossy(&body);
        let (status, text) = rt.block_on(host.trigger(Some(TRIGGER_TOKEN), &body));
        assert!(
            matches!(status, 200 | 400 | 413),
            "{path:?}: {status} {text}"
        );
        if status == 200 {
            let n = serde_json::from_str::<Value>(&text).unwrap()["delivered"]
                .as_u64()
                .unwrap();
            for _ in 0..n {
                rt.block_on(listener.next());
            }
        }
    }
    rt.block_on(still_serves(&mut listener));
    rt.block_on(host.stop());
}

// ---------------------------------------------------------------------------
// The fuzzers' seeds and every input they ever crashed on
// (`fuzz/regressions/<target>/`), replayed through the same checks as the
// fuzz targets, on every `cargo test`.

fn fuzz_inputs(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let bytes = std::fs::read(entry.path()).unwrap();
            inputs.push((entry.path(), bytes));
        }
    }
    inputs
}

#[test]
fn fuzz_seeds_and_regressions_replay() {
    use modhost::{
        protocol::{self, ClientFrame},
        rooms::{Room, RoomIndex},
        signing::Envelope,
    };
    let mut replayed = 0;
    for (path, data) in fuzz_inputs("frame_decode") {
        let Some((&depth, rest)) = data.split_first() else {
            continue;
        };
        if let Ok(text) = std::str::from_utf8(rest)
            && let Ok(ClientFrame::Subscribe { room, .. }) = protocol::decode(text, depth.into())
            && let Ok(room) = Room::parse(&room)
        {
            assert!(Room::parse(&room.to_json()).unwrap() == room, "{path:?}");
        }
        replayed += 1;
    }
    for (path, data) in fuzz_inputs("room_match") {
        let rooms: Vec<Room> = serde_json::Deserializer::from_slice(&data)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .take(64)
            .filter_map(|v| Room::parse(&v).ok())
            .collect();
        let (subs, published) = rooms.split_at(rooms.len() / 2);
        let mut index: RoomIndex<usize> = RoomIndex::new();
        for (i, room) in subs.iter().enumerate() {
            index
                .subscribe(0, i.to_string().into(), room.clone(), i)
                .unwrap();
        }
        let mut got = Vec::new();
        index.for_each_match(published, |_, _, _, &i| got.push(i));
        got.sort_unstable();
        let want: Vec<usize> = (0..subs.len())
            .filter(|&i| published.iter().any(|p| p.matches(&subs[i])))
            .collect();
        assert_eq!(got, want, "{path:?}");
        replayed += 1;
    }
    for (path, data) in fuzz_inputs("envelope_parse") {
        if let Ok(text) = std::str::from_utf8(&data)
            && let Ok(env) = Envelope::parse(text)
        {
            assert_eq!(Envelope::parse(&env.to_toml()).unwrap(), env, "{path:?}");
        }
        replayed += 1;
    }
    for (_, data) in fuzz_inputs("config_parse") {
        if let Ok(text) = std::str::from_utf8(&data)
            && let Err(e) = modhost::config::parse(text, std::path::Path::new("/fuzz/config.toml"))
        {
            let _ = e.to_string();
        }
        replayed += 1;
    }
    assert!(replayed >= 10, "the fuzz seeds are missing: {replayed}");
}
