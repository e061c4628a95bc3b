//! Test harness: keys generated per test, a host started in-process on
//! 127.0.0.1:0, its workspace and config. The plugin builds, the clients
//! and the host as a child process are in `harness_build`,
//! `harness_client` and `harness_process`, re-exported here so tests name
//! every helper as `crate::harness::…`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::Engine;
use ed25519_dalek::SigningKey;
use modhost::{config, server::Host, signing};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

pub use crate::harness_build::{built_lib, cargo_build, modhost_bin, plugins_built, target_dir};
pub use crate::harness_client::{Client, RawWs, SUBPROTOCOL, WAIT, http, op, request};

pub const ADMIN_TOKEN: &str = "admin-api-token";
pub const TRIGGER_TOKEN: &str = "trigger-token";

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

/// A number no earlier call in this process returned (log file names).
pub fn unique() -> u64 {
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

/// Clients of a [`TestHost`]: connected through its address.
impl Client {
    /// Connects as `token`, asserts it is authorized, and skips the offer.
    pub async fn authorized(host: &TestHost, token: &str) -> Client {
        let mut c = host.ws(token).await;
        let hello = c.next().await;
        assert_eq!(hello["is_authorized"], true, "{hello}");
        c
    }

    /// Connects as `token` (plus `query`), returns the client and its first
    /// frame (`is_authorized`, session, resume token).
    pub async fn hello(host: &TestHost, token: &str, query: &str) -> (Client, Value) {
        let mut c = Client::connect(&format!("ws://{}/ws/?token={token}{query}", host.addr)).await;
        let hello: Value = serde_json::from_str(&c.next_text().await).unwrap();
        (c, hello)
    }
}
