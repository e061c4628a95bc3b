//! Test harness: plugins built once per test process, keys generated per
//! test, a host started in-process on 127.0.0.1:0, and small clients.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::Engine;
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use modhost::{config, server::Host, signing};
use serde_json::Value;
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

pub const ADMIN_TOKEN: &str = "admin-api-token";
pub const TRIGGER_TOKEN: &str = "trigger-token";

/// The cargo target profile folder this test binary was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    // target/debug/deps/integration-xxxx
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

/// The cargo target folder this test binary was built into: builds the
/// tests start share it, so they reuse what is already compiled.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target dir").to_owned()
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = target_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let status = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .arg("build")
        .arg("--quiet")
        .args(args)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Builds the plugin libraries the tests load (once per test process) and
/// returns the folder that holds them.
pub fn plugins_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(&[
            "-p",
            "modhost-echo",
            "-p",
            "modhost-notes",
            "-p",
            "modhost-divide",
            "-p",
            "modhost-relay",
            "-p",
            "modhost-fixture-bad-start",
            "-p",
            "modhost-fixture-hostile",
            "-p",
            "modhost-fixture-stamp",
        ]);
        // Built against a changed interface: the host must refuse it.
        cargo_build(&[
            "-p",
            "modhost-fixture-abi-drift",
            "--features",
            "modhost-plugin-api/__test-abi-drift",
        ]);
        // Built without the inline entry point's symbol: it must still load.
        cargo_build(&[
            "-p",
            "modhost-fixture-pre-inline",
            "--features",
            "modhost-plugin-api/__test-pre-inline",
        ]);
        profile_dir()
    })
}

/// The `modhost` binary, built on first use.
pub fn modhost_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["-p", "modhost", "--bin", "modhost"]);
            plugins_built();
            profile_dir().join("modhost")
        })
        .clone()
}

/// The built library of `lib` (e.g. `echo` → `libecho.so`).
pub fn built_lib(lib: &str) -> PathBuf {
    plugins_built().join(format!("lib{lib}.so"))
}

/// Keys and folders of one test host.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    keys: std::collections::HashMap<String, SigningKey>,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["plugins", "verify", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self {
            dir,
            keys: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugins(&self) -> PathBuf {
        self.path().join("plugins")
    }

    /// The signing key of `module`, trusted by the host (created on first use).
    pub fn key(&mut self, module: &str) -> SigningKey {
        if let Some(k) = self.keys.get(module) {
            return k.clone();
        }
        let mut seed = [0u8; 32];
        getrandom_fill(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let public =
            base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
        let pub_file = self.path().join("verify").join(format!("{module}.pub"));
        let mut text = std::fs::read_to_string(&pub_file).unwrap_or_default();
        text.push_str(&format!("{public}\n"));
        std::fs::write(&pub_file, text).unwrap();
        self.keys.insert(module.to_owned(), key.clone());
        key
    }

    /// Copies the built `lib` into plugins/ as `file` and signs it as
    /// `module` `version` with `seq` using `module`'s key.
    pub fn install(
        &mut self,
        lib: &str,
        file: &str,
        module: &str,
        version: &str,
        seq: u64,
    ) -> PathBuf {
        let key = self.key(module);
        self.install_with_key(
            lib,
            file,
            module,
            version,
            seq,
            &key,
            modhost_plugin_api::abi::ABI,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn install_with_key(
        &mut self,
        lib: &str,
        file: &str,
        module: &str,
        version: &str,
        seq: u64,
        key: &SigningKey,
        abi: &str,
    ) -> PathBuf {
        let dest = self.plugins().join(file);
        let bytes = std::fs::read(built_lib(lib)).expect("built plugin");
        let envelope = signing::sign(&bytes, key, module, version, seq, abi);
        let tmp = self.plugins().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &dest).unwrap();
        std::fs::write(sig_path(&dest), envelope.to_toml()).unwrap();
        dest
    }

    /// Installs the bundled modules (echo, notes, divide, relay).
    pub fn install_bundled(&mut self) {
        for m in ["echo", "notes", "divide", "relay"] {
            self.install(m, &format!("{m}.so"), m, VERSION, 1);
        }
    }

    pub fn config_text(&self, extra: &str) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
idle_timeout_secs = 300
[admin]
token = "{ADMIN_TOKEN}"
[[auth.tokens]]
token = "alice-token"
user = "alice"
roles = ["user"]
allowed_rooms = [{{ target = "message", customer = "*" }}, {{ target = "notes", user = "alice" }}, {{ target = "flood" }}]
[[auth.tokens]]
token = "bob-token"
user = "bob"
roles = ["user"]
allowed_rooms = [{{ target = "message", customer = "2" }}]
[[auth.tokens]]
token = "admin-token"
user = "root"
roles = ["admin", "user"]
allowed_rooms = [{{ target = "*", customer = "*" }}]
[trigger]
tokens = ["{TRIGGER_TOKEN}"]
[modules]
dir = "plugins"
verify_keys = ["verify"]
state_dir = "state"
{extra}
"#
        )
    }
}

/// Hot reload helpers: distinct builds, signing without installing, atomic
/// publishing, and the config file on disk.
impl Workspace {
    /// The bytes of the built `lib` with `padding` zero bytes appended: a
    /// second, distinct build of the same module (the loader ignores bytes
    /// after the ELF image, the signature covers them).
    pub fn build_bytes(lib: &str, padding: usize) -> Vec<u8> {
        let mut bytes = std::fs::read(built_lib(lib)).expect("built plugin");
        bytes.resize(bytes.len() + padding, 0);
        bytes
    }

    /// The `.sig` text for `bytes` as `module` `version` `seq`, signed with
    /// `module`'s trusted key.
    pub fn sign_bytes(&mut self, bytes: &[u8], module: &str, version: &str, seq: u64) -> String {
        let key = self.key(module);
        signing::sign(
            bytes,
            &key,
            module,
            version,
            seq,
            modhost_plugin_api::abi::ABI,
        )
        .to_toml()
    }

    /// Publishes like a careful deploy tool: the `.so`, then its `.sig`,
    /// each written to a hidden temp file and renamed into place.
    pub fn publish_bytes(&self, file: &str, bytes: &[u8], sig: &str) -> PathBuf {
        let dest = self.plugins().join(file);
        write_atomic(&dest, bytes);
        write_atomic(&sig_path(&dest), sig.as_bytes());
        dest
    }

    /// Signs and publishes `bytes` as `module` `VERSION` `seq`.
    pub fn publish(&mut self, file: &str, bytes: &[u8], module: &str, seq: u64) -> PathBuf {
        let sig = self.sign_bytes(bytes, module, VERSION, seq);
        self.publish_bytes(file, bytes, &sig)
    }

    /// Writes `config.toml` (the file a host started by `TestHost::start`
    /// watches) with `extra` appended; returns the text.
    pub fn write_config(&self, extra: &str) -> String {
        let text = self.config_text(extra);
        write_atomic(&self.path().join("config.toml"), text.as_bytes());
        text
    }
}

/// Writes `bytes` to a hidden temp file next to `dest` and renames it over
/// `dest`, so a watcher never sees half a file under the final name.
pub fn write_atomic(dest: &Path, bytes: &[u8]) {
    let name = dest.file_name().unwrap().to_string_lossy();
    let tmp = dest.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Version of the bundled modules (all crates share the workspace version).
pub const VERSION: &str = "0.1.0";

pub fn sig_path(lib: &Path) -> PathBuf {
    let mut s = lib.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("urandom");
}

/// A host running in this process.
pub struct TestHost {
    pub addr: std::net::SocketAddr,
    pub state: Arc<modhost::state::AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestHost {
    /// Starts a host on `ws`'s folder with `extra` config appended.
    pub async fn start(ws: &Workspace, extra: &str) -> TestHost {
        Self::start_text(ws, &ws.config_text(extra)).await
    }

    /// Starts a host on `ws`'s folder with the whole config `text`.
    pub async fn start_text(ws: &Workspace, text: &str) -> TestHost {
        plugins_built();
        let config =
            config::parse(text, &ws.path().join("config.toml")).expect("test config parses");
        let host = Host::build(config).await.expect("host builds");
        let state = host.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            host.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("host serves");
        });
        TestHost {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }

    /// `GET /api/modules`.
    pub async fn modules(&self) -> Vec<Value> {
        api_modules(&self.url("")).await
    }

    /// The admin list row of module `name` (running) or refused file `file`.
    pub async fn module(&self, name: &str) -> Option<Value> {
        self.modules().await.into_iter().find(|m| m["name"] == name)
    }

    /// `POST /api/call`; returns (status, body).
    pub async fn call(&self, module: &str, command: &str, params: Value) -> (u16, Value) {
        admin_call(&self.url("/api/call"), module, command, params).await
    }

    /// Polls `GET /api/modules` until the row named `name` satisfies
    /// `done` (a missing row is `Value::Null`); panics with `what` and the
    /// last rows after a generous wait.
    pub async fn wait_module(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.modules().await;
            let row = rows
                .iter()
                .find(|m| m["name"] == name && m["state"] != "refused" && m["state"] != "disabled")
                .cloned()
                .unwrap_or(Value::Null);
            if done(&row) {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: still not {what}: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The refused or disabled files `GET /api/modules` lists (each row's
    /// `refused_builds`), each with its row's `name`.
    pub async fn refusals(&self) -> Vec<Value> {
        self.modules()
            .await
            .into_iter()
            .flat_map(|m| {
                let builds = m["refused_builds"].as_array().cloned().unwrap_or_default();
                builds.into_iter().map(move |mut b| {
                    b["name"] = m["name"].clone();
                    b
                })
            })
            .collect()
    }

    /// `GET /api/config`.
    pub async fn config_status(&self) -> Value {
        let resp = http()
            .get(self.url("/api/config"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }

    /// `POST /api/modules/{module}/reset`; returns (status, body).
    pub async fn reset(&self, module: &str) -> (u16, Value) {
        let resp = http()
            .post(self.url(&format!("/api/modules/{module}/reset")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /trigger/` with a token; returns (status, body text).
    pub async fn trigger(&self, token: Option<&str>, body: &str) -> (u16, String) {
        let mut req = http().post(self.url("/trigger/")).body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn ws(&self, token: &str) -> Client {
        Client::connect(&format!("ws://{}/ws/?token={token}", self.addr)).await
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Rows of `GET /api/modules` from the host at `base` (`http://addr`).
pub async fn api_modules(base: &str) -> Vec<Value> {
    let resp = http()
        .get(format!("{base}/api/modules"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Rows of `GET /api/connections` from the host at `base` (`http://addr`).
pub async fn api_connections(base: &str) -> Vec<Value> {
    http()
        .get(format!("{base}/api/connections"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// An HTTP client. Its timeout only catches a hung host: a busy machine
/// must never make a test fail, so it is far above any expected wait.
pub fn http() -> reqwest::Client {
    // The host builds reqwest with rustls and no provider of its own (it
    // hands each client its config); a client built without one needs a
    // process default, or `build` panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Waits until `done()` holds, checking every 10 ms; fails the test with
/// `what` only after 60 s, so that a busy machine is never mistaken for a
/// bug (tests wait for what must happen instead of sleeping a guess).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not {what} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A websocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a client waits for a frame it expects before the test fails:
/// only a hang, never a busy machine, should reach it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The subprotocol that selects modhost's extended dialect; the tests speak
/// it unless they test high-templar's (`Client::connect_legacy`).
pub const SUBPROTOCOL: &str = "modhost.v1";

/// A websocket request for `url` offering `protocol`, if any.
pub fn request(
    url: &str,
    protocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("a websocket URL");
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("a header value"));
    }
    req
}

impl Client {
    /// Connects speaking modhost's extended dialect (`modhost.v1`).
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(request(url, Some(SUBPROTOCOL)))
            .await
            .expect("websocket connects");
        Client { ws }
    }

    /// Connects offering no subprotocol: high-templar's dialect.
    pub async fn connect_legacy(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(request(url, None))
            .await
            .expect("websocket connects");
        Client { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send(&v.to_string()).await;
    }

    /// The next text frame (raw), or None on close / timeout.
    pub async fn next_text_within(&mut self, wait: Duration) -> Option<String> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(_))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn next_text(&mut self) -> String {
        self.next_text_within(WAIT).await.expect("a text frame")
    }

    /// The next JSON frame that is not a resource offer.
    pub async fn next(&mut self) -> Value {
        loop {
            let text = self.next_text().await;
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            if v["type"] != "resource_offer" {
                return v;
            }
        }
    }

    /// Nothing but resource offers arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let text = self.next_text_within(wait).await?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if v["type"] != "resource_offer" {
                return Some(v);
            }
        }
    }

    /// Connects as `token`, asserts it is authorized, and skips the offer.
    pub async fn authorized(host: &TestHost, token: &str) -> Client {
        let mut c = host.ws(token).await;
        let hello = c.next().await;
        assert_eq!(hello["is_authorized"], true, "{hello}");
        c
    }

    pub async fn subscribe(&mut self, room: Value, rid: &str) -> Value {
        self.send_json(serde_json::json!({"type": "subscribe", "room": room, "requestId": rid}))
            .await;
        self.next().await
    }

    pub async fn call(&mut self, module: &str, command: &str, params: Value, rid: &str) -> Value {
        self.send_json(serde_json::json!({"type":"call","module":module,"command":command,"params":params,"requestId":rid}))
            .await;
        self.next().await
    }

    /// Connects as `token` (plus `query`), returns the client and its first
    /// frame (`is_authorized`, session, resume token).
    pub async fn hello(host: &TestHost, token: &str, query: &str) -> (Client, Value) {
        let mut c = Client::connect(&format!("ws://{}/ws/?token={token}{query}", host.addr)).await;
        let hello: Value = serde_json::from_str(&c.next_text().await).unwrap();
        (c, hello)
    }

    /// Closes cleanly (a close frame): the session ends at once.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        self.close_frame().await.map(|(code, _)| code)
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| (f.code.into(), f.reason.to_string()));
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reliability helpers (tests/hostile.rs, tests/durability.rs).

/// Resident memory of process `pid` in KiB (`VmRSS` in /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's soft open-files limit to `want` (at most the hard
/// limit); returns the soft limit now in force. Children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Strips ANSI colour sequences from log text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Resource limits for a [`ProcessHost`] (setrlimit before exec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    /// RLIMIT_AS, bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
}

/// The real `modhost` binary running on a workspace, as a child process:
/// its memory is its own (RSS is measured without the test's clients), and
/// it can be killed with SIGKILL.
pub struct ProcessHost {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    log: PathBuf,
}

impl ProcessHost {
    /// Writes `ws`'s config with `extra` appended and starts the binary on
    /// it; waits until it listens.
    pub fn start(ws: &Workspace, extra: &str) -> ProcessHost {
        Self::start_with(ws, extra, ProcessLimits::default())
    }

    /// Like `start`, with rlimits set on the host process.
    pub fn start_with(ws: &Workspace, extra: &str, limits: ProcessLimits) -> ProcessHost {
        let mut host = Self::spawn_with(ws, extra, limits);
        host.addr = host
            .wait_listening(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("modhost did not start:\n{}", host.log()));
        host
    }

    /// Starts the binary without waiting for it (for kill-at-any-moment).
    pub fn spawn(ws: &Workspace, extra: &str) -> ProcessHost {
        Self::spawn_with(ws, extra, ProcessLimits::default())
    }

    fn spawn_with(ws: &Workspace, extra: &str, limits: ProcessLimits) -> ProcessHost {
        use std::os::unix::process::CommandExt;
        let bin = modhost_bin();
        let config = ws.path().join("config.toml");
        std::fs::write(&config, ws.config_text(extra)).unwrap();
        let log = ws.path().join(format!("host-{}.log", unique()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .env(
                "MODHOST_LOG",
                std::env::var("MODHOST_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if limits != ProcessLimits::default() {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let set = |resource, value: u64| {
                        let lim = libc::rlimit {
                            rlim_cur: value,
                            rlim_max: value,
                        };
                        if libc::setrlimit(resource, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    };
                    if let Some(v) = limits.address_space {
                        set(libc::RLIMIT_AS, v)?;
                    }
                    if let Some(v) = limits.open_files {
                        set(libc::RLIMIT_NOFILE, v)?;
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("start modhost");
        ProcessHost {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        }
    }

    /// Waits for the "listening" log line; None if the process exited or
    /// `wait` passed.
    pub fn wait_listening(&mut self, wait: Duration) -> Option<std::net::SocketAddr> {
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            let log = self.log();
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("listening"))
                .and_then(listen_addr)
            {
                return Some(addr);
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The host's log so far (colours stripped).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws/?token={token}", self.addr)
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `wait` for the exit; None if still running
    /// (it is then killed).
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// `GET /api/modules`.
    pub async fn modules(&self) -> Vec<Value> {
        api_modules(&self.url("")).await
    }

    /// `POST /api/call`; returns (status, body).
    pub async fn call(&self, module: &str, command: &str, params: Value) -> (u16, Value) {
        admin_call(&self.url("/api/call"), module, command, params).await
    }

    /// `POST /trigger/`; returns the status.
    pub async fn trigger(&self, body: &Value) -> u16 {
        http()
            .post(self.url("/trigger/"))
            .bearer_auth(TRIGGER_TOKEN)
            .body(body.to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// The admin `status` frame (counters), over a websocket.
    pub async fn status(&self) -> Value {
        let mut c = Client::connect(&self.ws_url("admin-token")).await;
        c.next().await;
        c.send_json(serde_json::json!({"type": "status"})).await;
        c.next().await
    }
}

/// The address in the host's "listening" line, as text (`addr=…`) or as
/// JSON (`[log] format = "json"`: `fields.addr`).
fn listen_addr(line: &str) -> Option<std::net::SocketAddr> {
    match serde_json::from_str::<Value>(line) {
        Ok(json) => json["fields"]["addr"].as_str()?.parse().ok(),
        Err(_) => line
            .split("addr=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok(),
    }
}

impl Drop for ProcessHost {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// `POST /api/call` against `url`.
pub async fn admin_call(url: &str, module: &str, command: &str, params: Value) -> (u16, Value) {
    let resp = http()
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"module": module, "command": command, "params": params}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl TestHost {
    /// Stops the host; true if it finished within `wait` (modules included).
    pub async fn stop_within(mut self, wait: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => tokio::time::timeout(wait, task).await.is_ok(),
            None => true,
        }
    }
}

impl Client {
    /// Connects to `addr` as `token`, asserts it is authorized, and skips
    /// the offer.
    pub async fn authorized_at(addr: std::net::SocketAddr, token: &str) -> Client {
        let mut c = Client::connect(&format!("ws://{addr}/ws/?token={token}")).await;
        let hello = c.next().await;
        assert_eq!(hello["is_authorized"], true, "{hello}");
        c
    }

    /// Connects with small socket buffers (as the host uses), for tests
    /// that open thousands of clients. `rcvbuf` shrinks the kernel receive
    /// buffer, so a client that never reads fills up quickly; it also caps
    /// the segment size at an Ethernet-like 1,400 bytes, since over
    /// loopback (64 KiB segments) the host's kernel send buffer autotunes to
    /// megabytes per connection, which no real network peer would cause.
    pub async fn connect_small(
        addr: std::net::SocketAddr,
        path: &str,
        rcvbuf: Option<u32>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        use std::os::fd::AsRawFd;
        use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size)?;
            let mss: libc::c_int = 1400;
            // SAFETY: setsockopt on a socket we own, with a c_int option.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_MAXSEG,
                    std::ptr::from_ref(&mss).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        let stream = socket.connect(addr).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(4096)
            .max_write_buffer_size(1 << 20);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            request(&format!("ws://{addr}{path}"), Some(SUBPROTOCOL)),
            MaybeTlsStream::Plain(stream),
            Some(config),
        )
        .await?;
        Ok(Client { ws })
    }
}

/// A websocket client that writes raw frames, for input no well-behaved
/// library would send (bad UTF-8, lying lengths, broken fragmentation).
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// Websocket opcodes.
pub mod op {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

impl RawWs {
    /// Upgrades `path` (e.g. `/ws/?token=alice-token`); `Err(status)` if the
    /// server answered anything but 101.
    pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Result<RawWs, u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.map_err(|_| 0u16)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.map_err(|_| 0u16)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .map_err(|_| 0u16)?
                .map_err(|_| 0u16)?;
            if n == 0 {
                return Err(0);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return Err(status);
        }
        buf.drain(..end);
        Ok(RawWs { stream, buf })
    }

    /// Sends one masked frame.
    pub async fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = Self::header(fin, opcode, payload.len() as u64);
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await
    }

    /// Sends only a frame header claiming `len` payload bytes (and the mask).
    pub async fn header_only(&mut self, fin: bool, opcode: u8, len: u64) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = Self::header(fin, opcode, len);
        out.extend_from_slice(&[1, 2, 3, 4]);
        self.stream.write_all(&out).await
    }

    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out
    }

    /// The next frame from the server (opcode, payload); None on EOF or
    /// after `wait`.
    pub async fn read_frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, used)) = Self::parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(buf: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
        if buf.len() < 2 {
            return None;
        }
        let opcode = buf[0] & 0x0f;
        let (len, mut at) = match buf[1] & 0x7f {
            126 => (
                u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if buf[1] & 0x80 != 0 {
            at += 4; // server frames are never masked; tolerate it anyway
        }
        let payload = buf.get(at..at + len)?.to_vec();
        Some(((opcode, payload), at + len))
    }

    /// Reads until a close frame and returns its code (None: the
    /// connection ended without one, or nothing came within `WAIT`).
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some((opcode, payload)) = self.read_frame(WAIT).await {
            if opcode == op::CLOSE {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
        None
    }

    /// The next text frame's text, skipping control frames.
    pub async fn next_text(&mut self) -> Option<String> {
        while let Some((opcode, payload)) = self.read_frame(WAIT).await {
            match opcode {
                op::TEXT => return Some(String::from_utf8_lossy(&payload).into_owned()),
                op::CLOSE => return None,
                _ => continue,
            }
        }
        None
    }

    /// The next JSON frame that is not a resource offer.
    pub async fn next_json(&mut self) -> Option<Value> {
        loop {
            let text = self.next_text().await?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if v["type"] != "resource_offer" {
                return Some(v);
            }
        }
    }
}
