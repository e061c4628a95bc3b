//! `login`: `POST /auth/login` with one user's right password, `--logins`
//! times, `--concurrency` at once (each on a keep-alive connection of its
//! own). Every login hashes the password (argon2id, m = 19 MiB, t = 2) and
//! writes its session to the store (one fsync), so this is the host's
//! accounts throughput, not its HTTP's. The user must exist:
//! `modhost user add NAME --password-stdin` before the host starts.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use serde_json::json;

use crate::{
    Target,
    http::Http,
    report::{CpuSpan, Latency, emit},
};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoginArgs {
    /// The user to log in as.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Its password (a throw-away one made for the benchmark).
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Logins per round and target.
    #[arg(long, default_value_t = 40)]
    logins: usize,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

pub(crate) async fn run(targets: &[Target], args: &LoginArgs, rounds: usize) -> Result<(), String> {
    for round in 1..=rounds {
        for target in targets {
            run_once(target, args, round).await?;
        }
    }
    Ok(())
}

async fn run_once(target: &Target, args: &LoginArgs, round: usize) -> Result<(), String> {
    let body = json!({"username": args.user, "password": args.password}).to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(args.logins)));
    let cpu = CpuSpan::start(target.pid);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (next, samples, body) = (next.clone(), samples.clone(), body.clone());
        let (addr, logins) = (target.addr, args.logins);
        workers.push(tokio::spawn(async move {
            let mut http = Http::connect(addr).await.map_err(|e| e.to_string())?;
            while next.fetch_add(1, Ordering::Relaxed) < logins {
                let t = Instant::now();
                let (status, answer) = http
                    .request("POST", "/auth/login", "", body.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!(
                        "login answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                }
                let ns = t.elapsed().as_nanos() as u64;
                samples.lock().map_err(|e| e.to_string())?.push(ns);
            }
            Ok::<(), String>(())
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    let used = cpu.finish(target.pid);
    let mut samples = std::mem::take(&mut *samples.lock().map_err(|e| e.to_string())?);
    let latency = Latency::from_ns(&mut samples);
    let rate = args.logins as f64 / secs;
    let result = json!({
        "scenario": "login",
        "target": target.name,
        "round": round,
        "logins": args.logins,
        "concurrency": args.concurrency,
        "secs": (secs * 1000.0).round() / 1000.0,
        "logins_per_s": (rate * 10.0).round() / 10.0,
        "latency": latency.json(),
        "cpu": used.json(args.logins as u64, "login"),
    });
    emit(
        result,
        &[
            target.name.clone(),
            format!("{} logins, {} at once", args.logins, args.concurrency),
            format!("{rate:.1} logins/s"),
            format!(
                "p50 {:.1} ms, max {:.1} ms",
                latency.p50 / 1000.0,
                latency.max / 1000.0
            ),
        ],
    );
    Ok(())
}
