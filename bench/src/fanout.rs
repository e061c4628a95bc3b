//! `fanout`: N subscribers over R rooms, M publishes (burst or paced) via
//! `/trigger/` or a module's `publish` command. Reports deliveries per
//! second, end-to-end latency from the timestamp in each payload, losses.
//!
//! Subscriber `i` holds one subscription, to room `{"target":"bench",
//! "room":"r<i mod R>"}`; publish `k` goes to room `r<k mod R>` and carries
//! `{"bench_seq":k,"bench_ts":<ns>}`, so every subscriber knows how many
//! deliveries to expect.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::{
    Target,
    http::Http,
    report::{self, Latency, emit, now_ns},
    ws::{Ws, find, find_u64},
};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Rooms the subscribers are spread over.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Publishes per run.
    #[arg(long, default_value_t = 1000)]
    publishes: usize,
    /// Publishes per second in total; 0 = burst (each publisher sends its
    /// next publish as soon as the previous one was accepted).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How publishes reach the server: `trigger` (POST /trigger/) or
    /// `module` (the echo module's `publish` command over a websocket).
    #[arg(long, default_value = "trigger")]
    via: String,
    /// Concurrent publishers (HTTP connections or websockets).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Extra payload bytes per publish.
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Seconds to wait for outstanding deliveries after the last publish.
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
}

/// One run against one server.
pub(crate) struct FanoutRun {
    pub(crate) rate: f64,
    pub(crate) latency: Latency,
    pub(crate) expected: u64,
    pub(crate) received: u64,
    pub(crate) server_delivered: u64,
    pub(crate) elapsed: Duration,
    pub(crate) publish_elapsed: Duration,
    /// Server and client CPU over the run (see `report::CpuSpan`).
    pub(crate) cpu: serde_json::Value,
}

fn room_json(r: usize) -> String {
    format!(r#"{{"target":"bench","room":"r{r}"}}"#)
}

struct SubResult {
    received: u64,
    last_ns: u64,
    latencies: Vec<u64>,
}

pub(crate) async fn run_once(
    target: &Target,
    args: &FanoutArgs,
    ctx: &crate::Ctx,
) -> Result<FanoutRun, String> {
    let rooms = args.rooms.max(1);
    let per_room =
        |r: usize| (args.publishes / rooms + usize::from(r < args.publishes % rooms)) as u64;
    let expected: u64 = (0..args.conns).map(|i| per_room(i % rooms)).sum();

    // Connect and subscribe everyone before the first publish.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) =
        tokio::sync::mpsc::channel::<Result<(), String>>(args.conns.max(1));
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut subs = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (addr, path, src) = (target.addr, ctx.ws_path(), ctx.source(i));
        let ready = ready_tx.clone();
        let gate = gate.clone();
        let mut stop = stop_rx.clone();
        let want = per_room(i % rooms);
        let sub = format!(
            r#"{{"type":"subscribe","room":{},"requestId":"1"}}"#,
            room_json(i % rooms)
        );
        subs.push(tokio::spawn(async move {
            let mut ws = {
                let _permit = gate.acquire().await;
                let opened = async {
                    let mut ws = Ws::connect(addr, &path, src, 16 * 1024).await?;
                    ws.expect(br#""is_authorized":true"#, 0).await?;
                    ws.send_text(sub.as_bytes()).await?;
                    ws.expect(br#""code":"success""#, 4).await?;
                    Ok::<_, std::io::Error>(ws)
                }
                .await;
                match opened {
                    Ok(ws) => {
                        let _ = ready.send(Ok(())).await;
                        ws
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("subscriber {i}: {e}"))).await;
                        return None;
                    }
                }
            };
            drop(ready);
            let mut out = SubResult {
                received: 0,
                last_ns: 0,
                latencies: Vec::with_capacity(want as usize),
            };
            while out.received < want {
                loop {
                    let frame = match ws.next_frame() {
                        Ok(Some((_, range))) => range,
                        Ok(None) => break,
                        Err(e) => {
                            eprintln!("subscriber {i}: {e}");
                            return Some(out);
                        }
                    };
                    let now = now_ns();
                    if let Some(ts) = find_u64(ws.bytes(frame), br#""bench_ts":"#) {
                        out.received += 1;
                        out.last_ns = now;
                        out.latencies.push(now.saturating_sub(ts));
                    }
                }
                if out.received >= want {
                    break;
                }
                if let Err(e) = ws.flush().await {
                    eprintln!("subscriber {i}: {e}");
                    return Some(out);
                }
                tokio::select! {
                    biased;
                    r = ws.fill() => if let Err(e) = r {
                        eprintln!("subscriber {i}: {e}");
                        return Some(out);
                    },
                    _ = stop.changed() => return Some(out),
                }
            }
            Some(out)
        }));
    }
    drop(ready_tx);
    for _ in 0..args.conns {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let _ = stop_tx.send(true);
                return Err(e);
            }
            None => return Err("subscribers vanished".into()),
        }
    }

    // Publish.
    let cpu = report::CpuSpan::start(target.pid);
    let start_ns = now_ns();
    let start = Instant::now();
    let publishers = args.publishers.max(1).min(args.publishes.max(1));
    let mut pubs = Vec::new();
    for p in 0..publishers {
        let addr = target.publish_addr.unwrap_or(target.addr);
        let (args, ctx) = (args.clone(), ctx.clone());
        pubs.push(tokio::spawn(async move {
            publisher(p, publishers, &args, &ctx, addr, start).await
        }));
    }
    let mut server_delivered = 0;
    for p in pubs {
        server_delivered += p.await.map_err(|e| e.to_string())??;
    }
    let publish_elapsed = start.elapsed();

    // Wait for the subscribers (each stops at its expected count).
    let stopper = {
        let drain = Duration::from_secs(args.drain_secs);
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            let _ = stop_tx.send(true);
        })
    };
    let mut received = 0;
    let mut last_ns = start_ns;
    let mut latencies = Vec::with_capacity(expected as usize);
    for s in subs {
        if let Some(r) = s.await.map_err(|e| e.to_string())? {
            received += r.received;
            last_ns = last_ns.max(r.last_ns);
            latencies.extend_from_slice(&r.latencies);
        }
    }
    stopper.abort();
    let cpu = cpu.finish(target.pid).json(received, "delivery");
    let elapsed = Duration::from_nanos(last_ns - start_ns);
    Ok(FanoutRun {
        rate: received as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: Latency::from_ns(&mut latencies),
        expected,
        received,
        server_delivered,
        elapsed,
        publish_elapsed,
        cpu,
    })
}

/// Publisher `p` of `n` sends publishes p, p+n, p+2n, …; returns the
/// server's summed delivery counts.
async fn publisher(
    p: usize,
    n: usize,
    args: &FanoutArgs,
    ctx: &crate::Ctx,
    addr: std::net::SocketAddr,
    start: Instant,
) -> Result<u64, String> {
    let pad = "x".repeat(args.pad);
    let rooms = args.rooms.max(1);
    let body = |k: usize| {
        format!(
            r#"{{"rooms":[{}],"data":{{"bench_seq":{k},"bench_ts":{},"pad":"{pad}"}}}}"#,
            room_json(k % rooms),
            now_ns()
        )
    };
    let pace = |k: usize| async move {
        if args.rate > 0.0 {
            let at = start + Duration::from_secs_f64(k as f64 / args.rate);
            tokio::time::sleep_until(at.into()).await;
        }
    };
    let mut delivered = 0;
    match args.via.as_str() {
        "trigger" => {
            let mut http = Http::connect(addr)
                .await
                .map_err(|e| format!("trigger: {e}"))?;
            for k in (p..args.publishes).step_by(n) {
                pace(k).await;
                let (status, reply) = http
                    .request("POST", "/trigger/", &ctx.trigger_token, body(k).as_bytes())
                    .await
                    .map_err(|e| format!("trigger: {e}"))?;
                if status != 200 {
                    return Err(format!(
                        "trigger answered {status}: {}",
                        String::from_utf8_lossy(&reply)
                    ));
                }
                delivered += find_u64(&reply, br#""delivered":"#).unwrap_or(0);
            }
        }
        "module" => {
            let mut ws = Ws::connect(addr, &ctx.ws_path(), None, 16 * 1024)
                .await
                .map_err(|e| format!("publisher: {e}"))?;
            ws.expect(br#""is_authorized":true"#, 0)
                .await
                .map_err(|e| format!("publisher: {e}"))?;
            for k in (p..args.publishes).step_by(n) {
                pace(k).await;
                let b = body(k);
                let call = format!(
                    r#"{{"type":"call","module":"echo","command":"publish","params":{b},"requestId":"{k}"}}"#
                );
                ws.send_text(call.as_bytes())
                    .await
                    .map_err(|e| format!("publisher: {e}"))?;
                let id = format!(r#""requestId":"{k}""#);
                loop {
                    let range = ws.recv().await.map_err(|e| format!("publisher: {e}"))?;
                    let frame = ws.bytes(range);
                    if find(frame, id.as_bytes()).is_some() {
                        if find(frame, br#""type":"error""#).is_some() {
                            return Err(format!(
                                "module publish failed: {}",
                                String::from_utf8_lossy(frame)
                            ));
                        }
                        delivered += find_u64(frame, br#""delivered":"#).unwrap_or(0);
                        break;
                    }
                }
            }
        }
        other => return Err(format!("--via {other}: expected trigger or module")),
    }
    Ok(delivered)
}

/// Runs every target once per round, alternating, and reports each run and
/// the medians (with the ratio to the first target named `node`, if any).
pub(crate) async fn run(
    targets: &[Target],
    args: &FanoutArgs,
    rounds: usize,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut p99s: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mode = if args.rate > 0.0 {
        format!("paced {}/s", args.rate)
    } else {
        "burst".into()
    };
    for round in 1..=rounds {
        for (t, target) in targets.iter().enumerate() {
            let run = run_once(target, args, ctx).await?;
            let lost = run.expected.saturating_sub(run.received);
            emit(
                json!({
                    "scenario": "fanout",
                    "target": target.name,
                    "round": round,
                    "conns": args.conns,
                    "rooms": args.rooms,
                    "publishes": args.publishes,
                    "publishers": args.publishers,
                    "mode": mode,
                    "via": args.via,
                    "deliveries_per_s": run.rate.round(),
                    "expected": run.expected,
                    "received": run.received,
                    "lost": lost,
                    "extra": run.received.saturating_sub(run.expected),
                    "server_delivered": run.server_delivered,
                    "elapsed_ms": report::round(run.elapsed.as_secs_f64() * 1e3),
                    "publish_ms": report::round(run.publish_elapsed.as_secs_f64() * 1e3),
                    "latency": run.latency.json(),
                    "cpu": run.cpu,
                }),
                &[
                    format!("fanout {mode} via {}", args.via),
                    target.name.clone(),
                    format!(
                        "{} conns / {} rooms / {} pubs",
                        args.conns, args.rooms, args.publishes
                    ),
                    format!("{:.0} deliveries/s", run.rate),
                    format!(
                        "p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
                        run.latency.p50, run.latency.p99, run.latency.p999
                    ),
                    format!("lost {lost}"),
                    format!(
                        "server {} ns CPU/delivery",
                        run.cpu["server_cpu_ns_per_delivery"]
                    ),
                ],
            );
            rates[t].push(run.rate);
            p99s[t].push(run.latency.p99);
            // Let the server finish closing the last run's sockets.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let node = targets.iter().position(|t| t.name == "node");
    let node_rate = node.map(|n| report::median(&mut rates[n].clone()));
    for (t, target) in targets.iter().enumerate() {
        let rate = report::median(&mut rates[t]);
        let p99 = report::median(&mut p99s[t]);
        let ratio = node_rate.filter(|n| *n > 0.0).map(|n| rate / n);
        emit(
            json!({
                "scenario": "fanout-summary",
                "target": target.name,
                "rounds": rounds,
                "mode": mode,
                "median_deliveries_per_s": rate.round(),
                "median_p99_us": report::round(p99),
                "ratio_to_node": ratio.map(|r| report::round(r * 100.0) / 100.0),
            }),
            &[
                format!("fanout {mode} median of {rounds}"),
                target.name.clone(),
                format!("{rate:.0} deliveries/s"),
                format!("p99 {p99:.0} µs"),
                ratio.map_or("-".into(), |r| format!("{r:.2}× node")),
            ],
        );
    }
    Ok(())
}
