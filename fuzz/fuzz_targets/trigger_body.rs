//! `POST /trigger/` bodies, through the host's real router and handler
//! (in process, no socket), with subscriptions in place so that parsed
//! rooms reach the fan-out. Any status is fine; a panic or a 5xx is not.
#![no_main]

use std::{path::PathBuf, sync::Arc, sync::OnceLock};

use axum::{Router, body::Body, http::Request};
use libfuzzer_sys::fuzz_target;
use modhost::{gateway::Outbox, rooms::Room, server::Host};
use tokio::{runtime::Runtime, sync::mpsc};
use tower::ServiceExt;

struct World {
    runtime: Runtime,
    router: Router,
    _host: Host,
    outboxes: std::sync::Mutex<Vec<mpsc::Receiver<modhost::gateway::Outgoing>>>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("modhost-fuzz-trigger-{}", std::process::id()));
        for sub in ["plugins", "verify"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let text = r#"
[server]
listen = "127.0.0.1:0"
[trigger]
tokens = ["fuzz"]
[modules]
dir = "plugins"
verify_keys = ["verify"]
state_dir = "state"
"#;
        let config = modhost::config::parse(text, &PathBuf::from(&dir).join("config.toml"))
            .expect("fuzz config parses");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = runtime.block_on(Host::build(config)).expect("host builds");
        let state = host.state.clone();
        let mut outboxes = Vec::new();
        let rooms = [
            r#"{"target":"message","customer":"1"}"#,
            r#"{"target":"message","customer":"*"}"#,
            r#"{"target":"*"}"#,
            r#"{"a":1,"b":null,"c":true}"#,
            r#"{}"#,
        ];
        for (i, room) in rooms.iter().enumerate() {
            let room = Room::parse(&serde_json::from_str(room).unwrap()).unwrap();
            let (outbox, rx, _overflow) = Outbox::new(16);
            state
                .fanout
                .subscribe(i as u64, Arc::from("r"), room, outbox)
                .unwrap();
            outboxes.push(rx);
        }
        let router = modhost::http::router(state);
        World {
            runtime,
            router,
            _host: host,
            outboxes: std::sync::Mutex::new(outboxes),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let request = Request::post("/trigger/")
        .header("authorization", "Bearer fuzz")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .unwrap();
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .unwrap();
    let status = response.status();
    assert!(
        status == 200 || status == 400 || status == 413,
        "unexpected status {status}"
    );
    // Keep the subscribers' outboxes from filling up.
    for rx in world.outboxes.lock().unwrap().iter_mut() {
        while rx.try_recv().is_ok() {}
    }
});
