//! `modhost-bench`: a load generator for servers that speak modhost's (and
//! high-templar's) websocket protocol.
//!
//! # Layout
//! - `ws`: a minimal websocket client (one read buffer, frames as slices)
//! - `http`: a keep-alive HTTP/1.1 client for `/trigger/` and `/api/modules`
//! - `report`: percentiles, load average, server RSS, JSON + Markdown output
//! - `fanout`, `idle`, `rpc` (with `reload`), `login`, `recover`: the scenarios
//!
//! Every scenario takes one or more `--target name=host:port[/pid]` and runs
//! them alternately, round after round, so a baseline and the host see the
//! same machine conditions. `BENCHMARKS.md` has the commands behind every
//! published figure.

mod fanout;
mod http;
mod idle;
mod login;
mod recover;
mod report;
mod rpc;
mod ws;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "modhost-bench",
    about = "Load generator for modhost and compatible servers"
)]
struct Cli {
    /// A server to measure: `name=host:port`, optionally `/pid` for RSS,
    /// and `@host:port` for another server of its cluster that `fanout`
    /// publishes through (cross-host delivery). Repeat to compare servers;
    /// they are measured alternately.
    #[arg(long = "target", global = true, value_parser = parse_target)]
    targets: Vec<Target>,
    /// Rounds (each target once per round).
    #[arg(long, global = true, default_value_t = 1)]
    rounds: usize,
    /// Websocket client token (`?token=`).
    #[arg(long, global = true, default_value = "bench-secret")]
    token: String,
    /// Bearer token for POST /trigger/.
    #[arg(long, global = true, default_value = "trigger-secret")]
    trigger_token: String,
    /// Admin token for GET /api/modules.
    #[arg(long, global = true, default_value = "change-me")]
    admin_token: String,
    /// Spread connections over source addresses 127.0.0.1 … 127.0.0.N
    /// (one address holds ~28k connections to one server port).
    #[arg(long, global = true, default_value_t = 1)]
    source_ips: u8,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Subscribers, rooms, publishes: deliveries/s, latency, losses.
    Fanout(fanout::FanoutArgs),
    /// Hold many idle connections: connects/s, server RSS per connection.
    Idle(idle::IdleArgs),
    /// Module calls over websockets: calls/s, round-trip latency.
    Rpc(rpc::RpcArgs),
    /// `rpc` while the module is replaced: lost/duplicated replies, blip.
    Reload(rpc::ReloadArgs),
    /// `POST /auth/login`: logins/s and their latency (argon2id + store).
    Login(login::LoginArgs),
    /// A client back after missing N publications: time to recover them.
    Recover(recover::RecoverArgs),
}

/// A server under test.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: Option<u32>,
    /// Where `fanout` publishes, when not at `addr` (a cluster member).
    pub(crate) publish_addr: Option<SocketAddr>,
}

fn parse_target(s: &str) -> Result<Target, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or("expected name=host:port[/pid][@host:port]")?;
    let (rest, publish_addr) = match rest.split_once('@') {
        Some((r, p)) => (r, Some(p.parse().map_err(|e| format!("{p}: {e}"))?)),
        None => (rest, None),
    };
    let (addr, pid) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p.parse().map_err(|e| format!("pid: {e}"))?)),
        None => (rest, None),
    };
    Ok(Target {
        name: name.to_owned(),
        addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        pid,
        publish_addr,
    })
}

/// What every scenario needs besides its own arguments.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    token: String,
    pub(crate) trigger_token: String,
    pub(crate) admin_token: String,
    source_ips: u8,
}

impl Ctx {
    pub(crate) fn ws_path(&self) -> String {
        format!("/ws/?token={}", self.token)
    }

    /// The source address for connection `i` (None: let the kernel pick).
    pub(crate) fn source(&self, i: usize) -> Option<IpAddr> {
        (self.source_ips > 1).then(|| {
            let n = (i % usize::from(self.source_ips)) as u8;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n))
        })
    }
}

/// Raises the open-files soft limit to the hard limit.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_nofile();
    if cli.targets.is_empty() {
        eprintln!("modhost-bench: give at least one --target name=host:port");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modhost-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        token: cli.token.clone(),
        trigger_token: cli.trigger_token.clone(),
        admin_token: cli.admin_token.clone(),
        source_ips: cli.source_ips.max(1),
    };
    report::now_ns();
    let result = rt.block_on(async {
        match &cli.scenario {
            Scenario::Fanout(a) => fanout::run(&cli.targets, a, cli.rounds, &ctx).await,
            Scenario::Idle(a) => idle::run(&cli.targets, a, cli.rounds, &ctx).await,
            Scenario::Rpc(a) => rpc::run(&cli.targets, a, cli.rounds, &ctx).await,
            Scenario::Reload(a) => rpc::reload(&cli.targets, a, &ctx).await,
            Scenario::Login(a) => login::run(&cli.targets, a, cli.rounds).await,
            Scenario::Recover(a) => recover::run(&cli.targets, a, cli.rounds, &ctx).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modhost-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
