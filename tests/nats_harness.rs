//! A throw-away NATS server for the cluster tests: the real `nats-server`
//! (Debian package `nats-server`), started by each test on 127.0.0.1 with
//! free ports, JetStream on with a store in a temp folder, and its
//! monitoring port open so tests read the server's own counters
//! (`/connz`, `/subsz`, `/varz`). It starts in milliseconds, so each test
//! has its own; it is killed on drop. [`Member`] is a host of the cluster
//! started the way every other test starts a host.

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{TestHost, VERSION, Workspace, http};

/// Only a hung server takes this long to listen.
const START_WAIT: Duration = Duration::from_secs(30);

/// A running (or killed, to be restarted) server.
pub struct Nats {
    /// The client port on 127.0.0.1.
    pub port: u16,
    /// The monitoring port.
    pub monitor: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_bin() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = PathBuf::from(dir).join("nats-server");
        if candidate.exists() {
            return candidate;
        }
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    assert!(
        debian.exists(),
        "nats-server is not installed: apt-get install nats-server (.ci/run does)"
    );
    debian
}

impl Nats {
    pub fn start() -> Nats {
        let mut nats = Nats {
            port: free_port(),
            monitor: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.restart();
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same ports and store) and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.dir.path().join("nats.log")).unwrap();
        let child = Command::new(server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.monitor)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nats-server not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (as a crash would) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// A monitoring endpoint's JSON (`/connz?subs=1`, `/varz`, …).
    pub async fn monitor(&self, path: &str) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.monitor);
        let body = http().get(url).send().await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// The server's view of the client connection named `name` (from
    /// `/connz`, with its subscriptions); `Null` when it is not connected.
    pub async fn connection(&self, name: &str) -> Value {
        let connz = self.monitor("/connz?subs=1").await;
        connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `name` is connected with at least `subs` subscriptions
    /// for its clients' rooms (beside its [`OWN_SUBSCRIPTIONS`]): a host's
    /// interest reaches the server a moment after its client's subscribe
    /// is answered.
    pub async fn wait_subscriptions(&self, name: &str, subs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = self.connection(name).await;
            if c["subscriptions"].as_u64().unwrap_or(0) >= subs + OWN_SUBSCRIPTIONS {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: still not {subs} subscriptions: {c:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// NATS subscriptions a host holds whatever its clients do: where other
/// hosts ask for its parked sessions (`gateway/handover.rs`).
pub const OWN_SUBSCRIPTIONS: u64 = 1;

/// A host of the cluster, with its own folder.
pub struct Member {
    pub host: TestHost,
    /// The host's folder, removed with it.
    ws: Workspace,
}

impl Member {
    /// Starts a host named `name` on `nats`, with `extra` config appended.
    pub async fn start(nats: &Nats, name: &str, extra: &str) -> Member {
        Self::start_in(Workspace::new(), nats, name, extra).await
    }

    /// Hosts `a` then `b` on `nats`, both with `extra` config appended.
    pub async fn pair(nats: &Nats, extra: &str) -> (Member, Member) {
        let a = Self::start(nats, "a", extra).await;
        let b = Self::start(nats, "b", extra).await;
        (a, b)
    }

    /// Like [`Member::start`], with the bundled `modules` installed.
    pub async fn with_modules(nats: &Nats, name: &str, extra: &str, modules: &[&str]) -> Member {
        let mut ws = Workspace::new();
        for m in modules {
            ws.install(m, &format!("{m}.so"), m, VERSION, 1);
        }
        Self::start_in(ws, nats, name, extra).await
    }

    /// [`start`](Self::start) on `ws` (with modules installed, say).
    pub async fn start_in(ws: Workspace, nats: &Nats, name: &str, extra: &str) -> Member {
        let host = TestHost::start(&ws, &cluster_config(&nats.url(), name, extra)).await;
        Member { host, ws }
    }

    /// The host's folder (its plugins, config).
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }
}

/// `[cluster]` for a host named `name` on the server at `url`.
pub fn cluster_config(url: &str, name: &str, extra: &str) -> String {
    format!("{extra}\n[cluster]\nnats_url = \"{url}\"\nname = \"{name}\"\n")
}
