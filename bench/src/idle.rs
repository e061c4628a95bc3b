//! `idle`: open N connections as fast as the server takes them, hold them,
//! and read the server's RSS (`/proc/PID/status`) before and after.
//! Reports connects per second and server memory per connection.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::{
    Target,
    report::{emit, kernel_socket_memory, rss_kb},
    ws::Ws,
};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 19_000)]
    conns: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Also subscribe each connection to a room of its own.
    #[arg(long)]
    subscribe: bool,
    /// Seconds to hold the connections before reading the RSS again.
    #[arg(long, default_value_t = 3)]
    hold_secs: u64,
}

pub(crate) async fn run(
    targets: &[Target],
    args: &IdleArgs,
    rounds: usize,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    for round in 1..=rounds {
        for target in targets {
            run_once(target, args, round, ctx).await?;
            // The server needs a moment to close the previous run's sockets.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}

async fn run_once(
    target: &Target,
    args: &IdleArgs,
    round: usize,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    let before = target.pid.and_then(rss_kb);
    let kernel_before = kernel_socket_memory();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let cpu = crate::report::CpuSpan::start(target.pid);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (addr, path, src, gate) = (target.addr, ctx.ws_path(), ctx.source(i), gate.clone());
        let subscribe = args.subscribe;
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            // A small read buffer: idle connections read nothing after this.
            let mut ws = Ws::connect(addr, &path, src, 1024).await?;
            ws.expect(br#""is_authorized":true"#, 0).await?;
            if subscribe {
                let sub = format!(
                    r#"{{"type":"subscribe","room":{{"target":"bench","room":"idle{i}"}},"requestId":"1"}}"#
                );
                ws.send_text(sub.as_bytes()).await?;
                ws.expect(br#""code":"success""#, 4).await?;
            }
            Ok::<_, std::io::Error>(ws)
        }));
    }
    let mut held = Vec::with_capacity(args.conns);
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await.map_err(|e| e.to_string())? {
            Ok(ws) => held.push(ws),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    let cpu = cpu.finish(target.pid).json(held.len() as u64, "connect");
    let rate = held.len() as f64 / connect_secs;
    let right_after = target.pid.and_then(rss_kb);
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let after = target.pid.and_then(rss_kb);
    let kernel_after = kernel_socket_memory();
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if !held.is_empty() => {
            Some((a.saturating_sub(b) * 1024) as f64 / held.len() as f64)
        }
        _ => None,
    };
    let opened = held.len();
    // Slab per connection counts both ends of each loopback connection.
    let slab_per_conn = match (kernel_before, kernel_after) {
        (Some((b, _)), Some((a, _))) if opened > 0 => {
            Some((a.saturating_sub(b) * 1024) as f64 / opened as f64)
        }
        _ => None,
    };
    drop(held);
    emit(
        json!({
            "scenario": "idle",
            "target": target.name,
            "round": round,
            "conns": args.conns,
            "opened": opened,
            "failed": failed,
            "first_error": first_error,
            "subscribed": args.subscribe,
            "connect_secs": (connect_secs * 1000.0).round() / 1000.0,
            "connects_per_s": rate.round(),
            "rss_before_kb": before,
            "rss_connected_kb": right_after,
            "rss_after_hold_kb": after,
            "bytes_per_conn": per_conn.map(f64::round),
            "kernel_slab_kb_before": kernel_before.map(|k| k.0),
            "kernel_slab_kb_after": kernel_after.map(|k| k.0),
            "kernel_slab_bytes_per_conn_both_ends": slab_per_conn.map(f64::round),
            "tcp_mem_pages_before": kernel_before.map(|k| k.1),
            "tcp_mem_pages_after": kernel_after.map(|k| k.1),
            "cpu": cpu,
        }),
        &[
            "idle".into(),
            target.name.clone(),
            format!("{opened}/{} conns", args.conns),
            format!("{rate:.0} connects/s"),
            per_conn.map_or("RSS n/a".into(), |b| format!("{:.2} KB/conn", b / 1000.0)),
            slab_per_conn.map_or("kernel n/a".into(), |b| {
                format!("kernel slab {:.2} KB/conn (both ends)", b / 1000.0)
            }),
            format!("failed {failed}"),
            format!("server {} ns CPU/connect", cpu["server_cpu_ns_per_connect"]),
        ],
    );
    Ok(())
}
