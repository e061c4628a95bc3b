//! `rpc`: module calls over K websockets, each keeping `depth` calls in
//! flight; calls per second and round-trip latency. `reload`: the same
//! load while a freshly signed build of the module is renamed into the
//! plugins folder; lost and duplicated replies and the latency blip.
//!
//! Each connection numbers its calls 1, 2, 3, … (the `requestId`), keeps
//! the send time of each in a ring, and marks answered ids in a bitmap, so
//! a second answer to one id is counted as a duplicate and an id never
//! answered by the end is lost.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    Target,
    http::Http,
    report::{self, Latency, emit, now_ns, round},
    ws::{Ws, find, find_u64},
};

/// Send times are kept for this many ids per connection (more than any
/// sensible `depth`).
const RING: usize = 1 << 14;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RpcArgs {
    /// Websocket connections.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Calls in flight per connection.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Module to call.
    #[arg(long, default_value = "echo")]
    module: String,
    /// Command to call.
    #[arg(long, default_value = "echo")]
    command: String,
    /// Params of each call (JSON).
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    params: String,
    /// Send the calls to this websocket echo path instead (the host's
    /// `[diagnostics] ws_echo_path`): the same frames come back untouched,
    /// which measures the websocket round trip without the module hop.
    #[arg(long)]
    raw_echo: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ReloadArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    /// The server's plugins folder.
    #[arg(long)]
    plugins_dir: PathBuf,
    /// The build to put in place (e.g. target/release/libecho.so).
    #[arg(long)]
    so: PathBuf,
    /// The module's signing key.
    #[arg(long)]
    key: PathBuf,
    /// The modhost binary (for `modhost sign`).
    #[arg(long, default_value = "target/release/modhost")]
    modhost: PathBuf,
    /// Seconds into the measured window when the module is replaced.
    #[arg(long, default_value_t = 2.0)]
    at: f64,
    /// Seconds to wait for the host to serve the new generation.
    #[arg(long, default_value_t = 20.0)]
    swap_timeout: f64,
}

#[derive(Default)]
struct ConnResult {
    sent: u64,
    replies: u64,
    errors: u64,
    duplicates: u64,
    unknown: u64,
    first_error: Option<String>,
    /// (receive time, latency) in ns, for calls sent and answered in the
    /// measured window.
    samples: Vec<(u64, u64)>,
}

struct Window {
    measure_from: u64,
    send_until: u64,
    give_up: u64,
}

async fn conn(
    i: usize,
    target: Target,
    ctx: crate::Ctx,
    args: RpcArgs,
    window: Window,
) -> Result<ConnResult, String> {
    let path = args.raw_echo.clone().unwrap_or_else(|| ctx.ws_path());
    let mut ws = Ws::connect(target.addr, &path, ctx.source(i), 64 * 1024)
        .await
        .map_err(|e| format!("rpc conn {i}: {e}"))?;
    if args.raw_echo.is_none() {
        ws.expect(br#""is_authorized":true"#, 0)
            .await
            .map_err(|e| format!("rpc conn {i}: {e}"))?;
    }
    let reply_marker: &[u8] = if args.raw_echo.is_some() {
        br#""type":"call""#
    } else {
        br#""type":"reply""#
    };
    let head = format!(
        r#"{{"type":"call","module":"{}","command":"{}","params":{},"requestId":""#,
        args.module, args.command, args.params
    );
    let mut out = ConnResult::default();
    let mut sent_at = vec![0u64; RING];
    let mut answered: Vec<u64> = Vec::new();
    let mut next_id: u64 = 1;
    let mut in_flight = 0usize;
    let mut frame = Vec::with_capacity(head.len() + 24);
    let mut send = |ws: &mut Ws, next_id: &mut u64, sent_at: &mut [u64]| {
        frame.clear();
        frame.extend_from_slice(head.as_bytes());
        frame.extend_from_slice(next_id.to_string().as_bytes());
        frame.extend_from_slice(b"\"}");
        ws.queue_text(&frame);
        sent_at[*next_id as usize % RING] = now_ns();
        *next_id += 1;
    };
    while in_flight < args.depth.max(1) {
        send(&mut ws, &mut next_id, &mut sent_at);
        in_flight += 1;
    }
    loop {
        loop {
            let range = match ws.next_frame() {
                Ok(Some((_, range))) => range,
                Ok(None) => break,
                Err(e) => return Err(format!("rpc conn {i}: {e}")),
            };
            let now = now_ns();
            let bytes = ws.bytes(range);
            let Some(id) = find_u64(bytes, br#""requestId":""#) else {
                continue; // resource offers and the like
            };
            if id == 0 || id >= next_id {
                out.unknown += 1;
                continue;
            }
            let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
            if answered.len() <= word {
                answered.resize(word + 1, 0);
            }
            if answered[word] & bit != 0 {
                out.duplicates += 1;
                continue;
            }
            answered[word] |= bit;
            in_flight -= 1;
            if find(bytes, reply_marker).is_some() {
                out.replies += 1;
                let sent = sent_at[id as usize % RING];
                if sent >= window.measure_from && sent < window.send_until {
                    out.samples.push((now, now.saturating_sub(sent)));
                }
            } else {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(String::from_utf8_lossy(bytes).into_owned());
                }
            }
            if now < window.send_until {
                send(&mut ws, &mut next_id, &mut sent_at);
                in_flight += 1;
            }
        }
        if in_flight == 0 && now_ns() >= window.send_until {
            break;
        }
        ws.flush().await.map_err(|e| format!("rpc conn {i}: {e}"))?;
        let left = window.give_up.saturating_sub(now_ns());
        match tokio::time::timeout(Duration::from_nanos(left), ws.fill()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("rpc conn {i}: {e}")),
            Err(_) => break, // gave up on what is still in flight
        }
    }
    out.sent = next_id - 1;
    Ok(out)
}

/// Summed results of all connections of one run.
struct RpcRun {
    cpu: Value,
    calls_per_s: f64,
    latency: Latency,
    sent: u64,
    replies: u64,
    errors: u64,
    lost: u64,
    duplicates: u64,
    unknown: u64,
    first_error: Option<String>,
    samples: Vec<(u64, u64)>,
    measure_from: u64,
}

async fn run_load(target: &Target, args: &RpcArgs, ctx: &crate::Ctx) -> Result<RpcRun, String> {
    // Connections get a moment to open before the clock starts.
    let t0 = now_ns() + 500_000_000;
    let measure_from = t0 + (args.warmup * 1e9) as u64;
    let send_until = measure_from + (args.secs * 1e9) as u64;
    let mut tasks = Vec::new();
    for i in 0..args.conns.max(1) {
        let window = Window {
            measure_from,
            send_until,
            give_up: send_until + 10_000_000_000,
        };
        tasks.push(tokio::spawn(conn(
            i,
            target.clone(),
            ctx.clone(),
            args.clone(),
            window,
        )));
    }
    let cpu = {
        let pid = target.pid;
        tokio::spawn(async move {
            let at = |ns: u64| {
                tokio::time::Instant::now() + Duration::from_nanos(ns.saturating_sub(now_ns()))
            };
            tokio::time::sleep_until(at(measure_from)).await;
            let span = report::CpuSpan::start(pid);
            tokio::time::sleep_until(at(send_until)).await;
            span.finish(pid)
        })
    };
    let mut total = ConnResult::default();
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string())??;
        total.sent += r.sent;
        total.replies += r.replies;
        total.errors += r.errors;
        total.duplicates += r.duplicates;
        total.unknown += r.unknown;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
        total.samples.extend_from_slice(&r.samples);
    }
    let mut lat: Vec<u64> = total.samples.iter().map(|s| s.1).collect();
    let measured = lat.len();
    let cpu = cpu
        .await
        .map_err(|e| e.to_string())?
        .json(measured as u64, "call");
    Ok(RpcRun {
        cpu,
        calls_per_s: measured as f64 / args.secs,
        latency: Latency::from_ns(&mut lat),
        sent: total.sent,
        replies: total.replies,
        errors: total.errors,
        lost: total.sent - total.replies - total.errors,
        duplicates: total.duplicates,
        unknown: total.unknown,
        first_error: total.first_error,
        samples: total.samples,
        measure_from,
    })
}

fn counts_json(run: &RpcRun) -> Value {
    json!({
        "calls_per_s": run.calls_per_s.round(),
        "latency": run.latency.json(),
        "sent": run.sent,
        "replies": run.replies,
        "errors": run.errors,
        "first_error": run.first_error,
        "lost": run.lost,
        "duplicated": run.duplicates,
        "unknown_ids": run.unknown,
        "cpu": run.cpu,
    })
}

pub(crate) async fn run(
    targets: &[Target],
    args: &RpcArgs,
    rounds: usize,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    for round in 1..=rounds {
        for target in targets {
            let r = run_load(target, args, ctx).await?;
            let mut out = counts_json(&r);
            out["scenario"] = json!("rpc");
            out["target"] = json!(target.name);
            out["round"] = json!(round);
            out["conns"] = json!(args.conns);
            out["depth"] = json!(args.depth);
            out["call"] = json!(match &args.raw_echo {
                Some(path) => format!("raw websocket echo at {path}"),
                None => format!("{}.{}", args.module, args.command),
            });
            emit(
                out,
                &[
                    match &args.raw_echo {
                        Some(path) => format!("ws echo {path}"),
                        None => format!("rpc {}.{}", args.module, args.command),
                    },
                    target.name.clone(),
                    format!("{} ws × depth {}", args.conns, args.depth),
                    format!("{:.0} calls/s", r.calls_per_s),
                    format!("p50 {:.1} µs, p99 {:.1} µs", r.latency.p50, r.latency.p99),
                    format!("errors {} lost {} dup {}", r.errors, r.lost, r.duplicates),
                    format!("server {} ns CPU/call", r.cpu["server_cpu_ns_per_call"]),
                ],
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}

/// The generation the host reports for `module` (admin API).
async fn generation(
    target: &Target,
    ctx: &crate::Ctx,
    module: &str,
) -> Result<Option<u64>, String> {
    let mut http = Http::connect(target.addr)
        .await
        .map_err(|e| format!("admin api: {e}"))?;
    let (status, body) = http
        .request("GET", "/api/modules", &ctx.admin_token, b"")
        .await
        .map_err(|e| format!("admin api: {e}"))?;
    if status != 200 {
        return Err(format!("GET /api/modules answered {status}"));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|e| format!("admin api: {e}"))?;
    Ok(list.as_array().and_then(|rows| {
        rows.iter()
            .find(|r| r["name"] == module && r["state"] == "running")
            .and_then(|r| r["generation"].as_u64())
    }))
}

/// Signs a copy of `args.so` with a seq above any before and renames the
/// pair into the plugins folder (library first, then its signature), as a
/// deploy would. The copy is signed in a staging folder beside the plugins
/// folder (same file system, so the renames are atomic), where the host's
/// watcher does not look.
fn replace_module(args: &ReloadArgs) -> Result<(), String> {
    let module = &args.rpc.module;
    let staging = args
        .plugins_dir
        .parent()
        .unwrap_or(&args.plugins_dir)
        .join(".bench-reload-staging");
    std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let tmp = staging.join(format!("{module}.so"));
    let tmp_sig = staging.join(format!("{module}.so.sig"));
    std::fs::copy(&args.so, &tmp).map_err(|e| format!("copy {}: {e}", args.so.display()))?;
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let status = std::process::Command::new(&args.modhost)
        .arg("sign")
        .arg(&tmp)
        .arg("--key")
        .arg(&args.key)
        .arg("--seq")
        .arg(seq.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", args.modhost.display()))?;
    if !status.success() {
        return Err("modhost sign failed".into());
    }
    std::fs::rename(&tmp, args.plugins_dir.join(format!("{module}.so")))
        .map_err(|e| format!("rename: {e}"))?;
    std::fs::rename(&tmp_sig, args.plugins_dir.join(format!("{module}.so.sig")))
        .map_err(|e| format!("rename: {e}"))?;
    Ok(())
}

pub(crate) async fn reload(
    targets: &[Target],
    args: &ReloadArgs,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    let target = targets.first().ok_or("reload needs a --target")?;
    let module = args.rpc.module.clone();
    let before = generation(target, ctx, &module).await?;
    let load = {
        let (target, rpc, ctx) = (target.clone(), args.rpc.clone(), ctx.clone());
        tokio::spawn(async move { run_load(&target, &rpc, &ctx).await })
    };
    // Same clock as run_load: measuring starts 0.5 s + warm-up from now.
    let started = Instant::now();
    let replace_at = Duration::from_secs_f64(0.5 + args.rpc.warmup + args.at);
    tokio::time::sleep(replace_at.saturating_sub(started.elapsed())).await;
    let replaced_ns = now_ns();
    {
        let args = args.clone();
        tokio::task::spawn_blocking(move || replace_module(&args))
            .await
            .map_err(|e| e.to_string())??;
    }
    let signed_ns = now_ns();
    let mut swapped_ns = None;
    let mut after = before;
    let deadline = Instant::now() + Duration::from_secs_f64(args.swap_timeout);
    while Instant::now() < deadline {
        after = generation(target, ctx, &module).await?;
        if after.is_some() && after != before {
            swapped_ns = Some(now_ns());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = load.await.map_err(|e| e.to_string())??;

    // Latency per 100 ms of receive time: the worst bucket is the blip.
    let bucket = 100_000_000u64;
    let mut buckets: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for &(at, lat) in &run.samples {
        buckets
            .entry((at.saturating_sub(run.measure_from)) / bucket)
            .or_default()
            .push(lat);
    }
    let mut worst = (0u64, Latency::default());
    let mut p99s = Vec::new();
    for (b, lats) in &mut buckets {
        let l = Latency::from_ns(lats);
        p99s.push(l.p99);
        if l.max > worst.1.max {
            worst = (*b, l);
        }
    }
    let steady_p99 = crate::report::median(&mut p99s);
    // Calls answered from 250 ms before to 250 ms after the host reported
    // the new generation (the swap happened inside that window: the poll
    // runs every 20 ms).
    let around_swap = swapped_ns.map(|at| {
        let mut lats: Vec<u64> = run
            .samples
            .iter()
            .filter(|(t, _)| t.abs_diff(at) <= 250_000_000)
            .map(|s| s.1)
            .collect();
        Latency::from_ns(&mut lats).json()
    });
    let ms = |ns: u64| round(ns.saturating_sub(run.measure_from) as f64 / 1e6);
    let reloaded = swapped_ns.is_some();
    let mut out = counts_json(&run);
    out["scenario"] = json!("reload");
    out["target"] = json!(target.name);
    out["conns"] = json!(args.rpc.conns);
    out["depth"] = json!(args.rpc.depth);
    out["generation_before"] = json!(before);
    out["generation_after"] = json!(after);
    out["reloaded"] = json!(reloaded);
    out["replaced_at_ms"] = json!(ms(replaced_ns));
    out["renamed_at_ms"] = json!(ms(signed_ns));
    out["swapped_at_ms"] = json!(swapped_ns.map(ms));
    out["median_100ms_p99_us"] = json!(round(steady_p99));
    out["worst_100ms"] = json!({"from_ms": worst.0 * 100, "latency": worst.1.json()});
    out["around_swap_500ms"] = json!(around_swap);
    if !reloaded {
        out["note"] = json!(format!(
            "the host kept serving generation {before:?} for {} s after the new build was renamed in: it does not hot-reload",
            args.swap_timeout
        ));
    }
    emit(
        out,
        &[
            "reload under rpc".into(),
            target.name.clone(),
            format!("{} ws × depth {}", args.rpc.conns, args.rpc.depth),
            if reloaded {
                format!("generation {before:?} → {after:?}")
            } else {
                "NOT reloaded (no hot reload)".into()
            },
            format!(
                "lost {} dup {} errors {}",
                run.lost, run.duplicates, run.errors
            ),
            format!(
                "±250 ms around the swap: p99 {} µs, max {} µs; worst 100 ms: max {:.0} µs (median 100 ms p99 {:.0} µs)",
                around_swap
                    .as_ref()
                    .map_or(Value::Null, |l| l["p99_us"].clone()),
                around_swap
                    .as_ref()
                    .map_or(Value::Null, |l| l["max_us"].clone()),
                worst.1.max,
                steady_p99
            ),
        ],
    );
    Ok(())
}
