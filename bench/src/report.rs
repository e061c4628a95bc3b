//! Figures out: latency percentiles, the machine's load, a server's RSS,
//! and each result as one JSON line plus one Markdown table row.

use std::{sync::OnceLock, time::Instant};

use serde_json::{Value, json};

/// Nanoseconds since this process's first call: the clock for timestamps
/// in payloads (publisher and subscriber are this same process).
pub(crate) fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `/proc/loadavg`'s first three fields.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `VmRSS` of `pid` in kB.
pub(crate) fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The kernel's memory for sockets, machine-wide: (slab in KiB from
/// `/proc/meminfo`, TCP buffer pages from `/proc/net/sockstat`). A
/// process's RSS leaves out what the kernel keeps per socket; slab growth
/// over an idle run covers both ends of each loopback connection (the load
/// generator's socket and the server's), so half of it is the server's.
pub(crate) fn kernel_socket_memory() -> Option<(u64, u64)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let slab = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp_pages = sockstat
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .and_then(|fields| {
            let words: Vec<&str> = fields.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "mem")?;
            words.get(at + 1)?.parse().ok()
        })?;
    Some((slab, tcp_pages))
}

/// CPU time used so far by all threads of `pid` (`None`: this process),
/// from `/proc/PID/task/*/schedstat`. Wall-clock rates swing with
/// whatever else runs on a shared machine; CPU time per message does much
/// less, and comparing the server's with the load generator's shows which
/// side is the bottleneck.
///
/// Returns (time on a CPU, time runnable but waiting for a CPU), in ns; the
/// second is how much a busy machine held the process back.
pub(crate) fn sched_ns(pid: Option<u32>) -> Option<(u64, u64)> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}/task"),
        None => "/proc/self/task".into(),
    };
    let (mut run, mut wait) = (0, 0);
    for task in std::fs::read_dir(dir).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended meanwhile has no file any more: skip it.
        if let Ok(text) = std::fs::read_to_string(path) {
            let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
            run += fields.next()??;
            wait += fields.next()??;
        }
    }
    Some((run, wait))
}

/// CPU used by the server and by this process over a span of wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSpan {
    server: Option<(u64, u64)>,
    client: Option<(u64, u64)>,
    wall: Instant,
}

impl CpuSpan {
    pub(crate) fn start(server: Option<u32>) -> CpuSpan {
        CpuSpan {
            server: server.and_then(|p| sched_ns(Some(p))),
            client: sched_ns(None),
            wall: Instant::now(),
        }
    }

    /// The CPU used since `start`.
    pub(crate) fn finish(&self, server: Option<u32>) -> CpuUsed {
        let delta = |now: Option<(u64, u64)>, then: Option<(u64, u64)>| {
            now.zip(then)
                .map(|(b, a)| (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1)))
        };
        let server = delta(server.and_then(|p| sched_ns(Some(p))), self.server);
        let client = delta(sched_ns(None), self.client);
        CpuUsed {
            wall_ns: self.wall.elapsed().as_nanos() as u64,
            server_ns: server.map(|s| s.0),
            server_wait_ns: server.map(|s| s.1),
            client_ns: client.map(|c| c.0),
            client_wait_ns: client.map(|c| c.1),
        }
    }
}

/// What [`CpuSpan::finish`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUsed {
    wall_ns: u64,
    server_ns: Option<u64>,
    /// Summed over threads: runnable but not running (another process had
    /// the CPU).
    server_wait_ns: Option<u64>,
    client_ns: Option<u64>,
    client_wait_ns: Option<u64>,
}

impl CpuUsed {
    /// `{wall_ms, server_cpu_ms, client_cpu_ms, server_cpu_ns_per_<unit>,
    /// client_cpu_ns_per_<unit>}` for `n` units of work.
    pub(crate) fn json(&self, n: u64, unit: &str) -> Value {
        let ms = |ns: Option<u64>| ns.map(|ns| round(ns as f64 / 1e6));
        let per = |ns: Option<u64>| ns.filter(|_| n > 0).map(|ns| round(ns as f64 / n as f64));
        let mut out = json!({
            "wall_ms": round(self.wall_ns as f64 / 1e6),
            "server_cpu_ms": ms(self.server_ns),
            "client_cpu_ms": ms(self.client_ns),
            "server_runqueue_wait_ms": ms(self.server_wait_ns),
            "client_runqueue_wait_ms": ms(self.client_wait_ns),
        });
        out[format!("server_cpu_ns_per_{unit}")] = json!(per(self.server_ns));
        out[format!("client_cpu_ns_per_{unit}")] = json!(per(self.client_ns));
        out
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) count: usize,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Latency {
    /// From samples in nanoseconds (sorted here).
    pub(crate) fn from_ns(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i] as f64 / 1000.0
        };
        Latency {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[samples.len() - 1] as f64 / 1000.0,
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "samples": self.count,
            "p50_us": round(self.p50),
            "p99_us": round(self.p99),
            "p999_us": round(self.p999),
            "max_us": round(self.max),
        })
    }
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Prints one result: a JSON line, then a Markdown row of `cells`.
pub(crate) fn emit(mut result: Value, cells: &[String]) {
    result["loadavg"] = json!(loadavg());
    println!("{result}");
    println!("| {} | load {} |", cells.join(" | "), loadavg());
}

/// Median of `xs` (0 when empty).
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let l = Latency::from_ns(&mut s);
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
