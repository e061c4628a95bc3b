//! A throw-away RabbitMQ node for the AMQP tests: the real
//! `rabbitmq-server`, started by the test itself on 127.0.0.1 with free
//! ports, its own node name, cookie, data, logs and config in a temp folder,
//! and no plugins. It never touches a system RabbitMQ.
//!
//! Booting takes seconds (about 20 s on a busy 2-core machine), so one node
//! is shared by every test of the process ([`shared`]); each test uses its
//! own exchange. A test that stops and starts the broker's application
//! takes it [`exclusive`]ly, so no other test sees the outage.
//!
//! A static is never dropped, so the shared node is stopped by a watchdog
//! process: it waits for the test process to end (however it ends, a
//! panic or `kill -9` included), then runs `rabbitmqctl stop` and kills the
//! node's process group. Erlang's port mapper (epmd, port 4369) is started
//! on demand by the first node and left running, listening on 127.0.0.1
//! only (`ERL_EPMD_ADDRESS`); the next node registers with it.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How long a boot (or a restart of the application) may take before the
/// test fails: only a hung broker should reach it.
const BOOT_WAIT: Duration = Duration::from_secs(120);

/// The rabbitmqctl port range; the node's own distribution port avoids it.
const CTL_DIST_PORTS: std::ops::RangeInclusive<u16> = 35672..=35682;

/// A running node.
pub struct Rabbit {
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    node: String,
    dir: PathBuf,
    /// `None` once stopped.
    child: Mutex<Option<Child>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding it left the data as it was.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server script. Debian's `/usr/sbin/rabbitmq-server` is a wrapper
/// that switches to the `rabbitmq` user and its system folders; the script
/// behind it runs as whoever calls it, with the folders we give it.
fn server_bin() -> Option<PathBuf> {
    let debian = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if debian.exists() {
        return Some(debian.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("rabbitmq-server"))
        .find(|bin| bin.exists())
}

/// `rabbitmqctl`, next to the server script.
fn ctl_bin(server: &Path) -> PathBuf {
    server.with_file_name("rabbitmqctl")
}

/// A free port on 127.0.0.1 (free when asked; the node binds it soon after).
fn free_port(avoid: &std::ops::RangeInclusive<u16>) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !avoid.contains(&port) {
            return port;
        }
    }
}

impl Rabbit {
    /// Boots a node and waits until it speaks AMQP; `None` (after printing
    /// why) if `rabbitmq-server` is not installed.
    pub fn start() -> Option<Rabbit> {
        let Some(server) = server_bin() else {
            // CI installs it (.ci/run): there a missing broker is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "rabbitmq-server not installed, and CI is set: .ci/run should have installed it"
            );
            println!("SKIPPED: rabbitmq-server not installed (apt-get install rabbitmq-server)");
            return None;
        };
        let port = free_port(&CTL_DIST_PORTS);
        let dist = free_port(&CTL_DIST_PORTS);
        let dir = tempfile::Builder::new()
            .prefix("modhost-rabbit-")
            .tempdir()
            .expect("temp dir")
            .keep();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("rabbitmq.conf"), "").unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        let node = format!("modhost-test-{port}@localhost");
        let out = std::fs::File::create(dir.join("server.out")).unwrap();
        let mut cmd = Command::new(&server);
        Self::env(&mut cmd, &dir);
        cmd.env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own process group: the node's Erlang VM and helpers are
            // killed together at the end.
            .process_group(0);
        let child = cmd.spawn().expect("start rabbitmq-server");
        let rabbit = Rabbit {
            port,
            node,
            dir,
            child: Mutex::new(Some(child)),
        };
        rabbit.watch_over_us(&server);
        rabbit.wait_ready("boot");
        Some(rabbit)
    }

    /// What the server script and rabbitmqctl share: the Erlang cookie
    /// (made in `HOME` on first boot), no system env file, epmd on
    /// loopback only.
    fn env(cmd: &mut Command, dir: &Path) {
        cmd.env("HOME", dir)
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (guest works from loopback).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl -n <node> <args>`; panics with its output on failure.
    fn ctl(&self, args: &[&str]) {
        let server = server_bin().expect("rabbitmq-server is installed");
        let mut cmd = Command::new(ctl_bin(&server));
        Self::env(&mut cmd, &self.dir);
        let out = cmd
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the broker application (every connection is closed and the
    /// AMQP port stops accepting, as when the broker goes down); the
    /// Erlang node stays up so that [`Rabbit::start_app`] is quick.
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
        let start = Instant::now();
        while self.speaks_amqp() {
            assert!(start.elapsed() < BOOT_WAIT, "the AMQP port stays open");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker application again and waits until it speaks AMQP.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
        self.wait_ready("start_app");
    }

    fn wait_ready(&self, what: &str) {
        let start = Instant::now();
        while !self.speaks_amqp() {
            let exited = lock(&self.child)
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            assert!(
                !exited && start.elapsed() < BOOT_WAIT,
                "RabbitMQ not ready after {what} ({:?}, exited: {exited}):\n{}",
                start.elapsed(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port accepts a connection and answers the AMQP 0-9-1 protocol
    /// header with a method frame on channel 0 (connection.start): the
    /// broker, not just a socket, is there.
    fn speaks_amqp(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        if stream.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
            return false;
        }
        let mut head = [0u8; 3];
        stream.read_exact(&mut head).is_ok() && head == [1, 0, 0]
    }

    /// The end of the node's output and log, for failure messages.
    fn log_tail(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
        let log = self.dir.join("log").join(format!("{}.log", self.node));
        text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the watchdog that stops this node once the test process is
    /// gone; it lives in its own process group, so nothing kills it early.
    fn watch_over_us(&self, server: &Path) {
        let pgid = lock(&self.child).as_ref().map_or(0, Child::id);
        let script = r#"
            while kill -0 "$0" 2>/dev/null; do sleep 1; done
            timeout 30 "$1" -n "$2" stop >/dev/null 2>&1
            kill -9 -"$3" 2>/dev/null
            rm -rf "$4"
        "#;
        let mut cmd = Command::new("sh");
        Self::env(&mut cmd, &self.dir);
        cmd.arg("-c")
            .arg(script)
            .arg(std::process::id().to_string())
            .arg(ctl_bin(server))
            .arg(&self.node)
            .arg(pgid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // Not waited for: it outlives us on purpose.
        drop(cmd.spawn().expect("start the RabbitMQ watchdog"));
    }
}

impl Drop for Rabbit {
    /// `rabbitmqctl stop`, then the process group is killed whatever the
    /// stop did.
    fn drop(&mut self) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        if let Some(server) = server_bin() {
            let mut cmd = Command::new("timeout");
            Self::env(&mut cmd, &self.dir);
            let _ = cmd
                .arg("30")
                .arg(ctl_bin(&server))
                .arg("-n")
                .arg(&self.node)
                .arg("stop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // SAFETY: kill(2) on the process group we created for our child.
        unsafe {
            libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tests share the node; one that restarts it holds it alone.
static TURNS: RwLock<()> = RwLock::const_new(());

/// The node every test of this process shares, started on first use.
fn node() -> Option<&'static Rabbit> {
    static NODE: OnceLock<Option<Rabbit>> = OnceLock::new();
    NODE.get_or_init(Rabbit::start).as_ref()
}

/// The shared node, for a test that only publishes and consumes.
pub struct Shared {
    pub rabbit: &'static Rabbit,
    _turn: RwLockReadGuard<'static, ()>,
}

/// The shared node held alone, for a test that stops and starts it.
pub struct Exclusive {
    pub rabbit: &'static Rabbit,
    _turn: RwLockWriteGuard<'static, ()>,
}

impl Drop for Exclusive {
    /// The next test must find the broker running, whatever this one did.
    fn drop(&mut self) {
        if !self.rabbit.speaks_amqp() {
            self.rabbit.start_app();
        }
    }
}

/// The shared node; `None` (the test returns) without rabbitmq-server.
pub async fn shared() -> Option<Shared> {
    let rabbit = tokio::task::spawn_blocking(node).await.unwrap()?;
    Some(Shared {
        rabbit,
        _turn: TURNS.read().await,
    })
}

/// The shared node, held alone.
pub async fn exclusive() -> Option<Exclusive> {
    let rabbit = tokio::task::spawn_blocking(node).await.unwrap()?;
    Some(Exclusive {
        rabbit,
        _turn: TURNS.write().await,
    })
}
