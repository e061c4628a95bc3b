//! One task per job, from spawn to its final status: the readiness check
//! (`starting → running`), the exit (`exited` or `failed` with its exit
//! code), the restart policy, and `jobs.stop` (the stop signal to the whole
//! process group, the grace period, then SIGKILL to the group).
//!
//! A job re-adopted after a host restart is not this host's child: its exit
//! is seen by polling its pid and start time, and its exit code is unknown.

use std::{os::unix::process::ExitStatusExt as _, sync::Arc, time::Duration};

use tokio::{process::Child, time::Instant};

use super::{Jobs, Slot, job::Status, logs, process};
use crate::config::RestartPolicy;

/// How often a re-adopted job's process is looked for.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

/// The job's process as this host holds it.
pub(super) enum Proc {
    /// Started by this host: its exit status is ours to collect.
    Own(Child),
    /// Found running at start: only its pid and start time are known.
    Adopted {
        /// Its pid (and process group).
        pid: u32,
        /// Its start time.
        ticks: u64,
    },
}

/// How the process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Code(i32),
    Signal(i32),
    Unknown,
}

impl Proc {
    /// Waits until the process ends (cancel-safe).
    async fn wait(&mut self) -> Ended {
        match self {
            Proc::Own(child) => match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => Ended::Code(code),
                    (None, Some(signal)) => Ended::Signal(signal),
                    _ => Ended::Unknown,
                },
                Err(_) => Ended::Unknown,
            },
            Proc::Adopted { pid, ticks } => {
                while process::same_process(*pid, *ticks) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                Ended::Unknown
            }
        }
    }
}

/// Why a run of the job ended.
enum End {
    Exited(Ended),
    NotReady,
    Stop,
}

/// Supervises `slot`'s job until its final status.
pub(super) async fn run(jobs: Arc<Jobs>, slot: Arc<Slot>, mut proc: Proc) {
    let rotation = tokio::spawn(keep_log_capped(slot.clone()));
    loop {
        let (pid, port) = {
            let job = slot.job();
            (job.pid.unwrap_or(0), job.port)
        };
        let deadline = Instant::now() + slot.rules.ready_timeout;
        let mut checked = slot.job().status == Status::Running;
        let end = loop {
            tokio::select! {
                ended = proc.wait() => break End::Exited(ended),
                _ = slot.stop_requested() => break End::Stop,
                ready = process::ready(port, slot.rules.ready_path.as_deref(), deadline), if !checked => {
                    checked = true;
                    if !ready {
                        break End::NotReady;
                    }
                    jobs.update(&slot, |job| job.status = Status::Running);
                }
            }
        };
        let failure = match end {
            End::Stop => {
                let ended = stop_group(pid, &slot, &mut proc).await;
                jobs.update(&slot, |job| {
                    job.status = Status::Stopped;
                    job.exit_code = code_of(ended);
                    job.message = None;
                });
                break;
            }
            End::NotReady => {
                process::signal_group(pid, libc::SIGKILL);
                let ended = proc.wait().await;
                let ms = slot.rules.ready_timeout.as_millis();
                (
                    code_of(ended),
                    format!("not ready within {ms} ms (ready_timeout_ms); killed"),
                )
            }
            End::Exited(ended) => {
                // Workers it left behind go with it.
                process::signal_group(pid, libc::SIGKILL);
                match ended {
                    Ended::Code(0) => {
                        jobs.update(&slot, |job| {
                            job.status = Status::Exited;
                            job.exit_code = Some(0);
                            job.message = None;
                        });
                        break;
                    }
                    Ended::Code(code) => (Some(code), format!("exited with code {code}")),
                    Ended::Signal(signal) => (None, format!("killed by signal {signal}")),
                    Ended::Unknown => {
                        jobs.update(&slot, |job| {
                            job.status = Status::Exited;
                            job.exit_code = None;
                            job.message = Some(
                                "ended while re-adopted: this host did not start it, so its exit code is unknown"
                                    .to_owned(),
                            );
                        });
                        break;
                    }
                }
            }
        };
        let (exit_code, message) = failure;
        let restarts = slot.job().restarts;
        let retry = match slot.rules.restart {
            RestartPolicy::OnFailure { max_tries, backoff } if restarts < max_tries => {
                Some(backoff.saturating_mul(1 << restarts.min(16)))
            }
            _ => None,
        };
        jobs.update(&slot, |job| {
            job.status = Status::Failed;
            job.exit_code = exit_code;
            job.message = Some(match retry {
                Some(wait) => format!("{message}; restarting in {} ms", wait.as_millis()),
                None => message.clone(),
            });
        });
        let Some(wait) = retry else {
            break;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = slot.stop_requested() => {}
        }
        // A stop asked as the wait ended is not lost to the restart.
        if slot.stopping.load(std::sync::atomic::Ordering::Acquire) {
            jobs.update(&slot, |job| job.status = Status::Stopped);
            break;
        }
        match jobs.respawn(&slot) {
            Ok(next) => proc = next,
            Err(e) => {
                jobs.update(&slot, |job| {
                    job.status = Status::Failed;
                    job.message = Some(format!("restart failed: {e}"));
                });
                break;
            }
        }
    }
    jobs.finished(&slot);
    rotation.abort();
}

fn code_of(ended: Ended) -> Option<i32> {
    match ended {
        Ended::Code(code) => Some(code),
        _ => None,
    }
}

/// The stop signal to the group, up to the grace period for the job to
/// end, then SIGKILL to the group (workers that ignored the signal).
async fn stop_group(pid: u32, slot: &Slot, proc: &mut Proc) -> Ended {
    process::signal_group(pid, slot.rules.stop_signal);
    let ended = tokio::time::timeout(slot.rules.stop_grace, proc.wait()).await;
    process::signal_group(pid, libc::SIGKILL);
    match ended {
        Ok(ended) => ended,
        Err(_) => proc.wait().await,
    }
}

/// Rotates the job's log while it runs.
async fn keep_log_capped(slot: Arc<Slot>) {
    let dir = slot.job().job_dir.clone();
    let (max, files) = (slot.rules.log_max_bytes, slot.rules.log_files);
    let mut tick = tokio::time::interval(logs::CHECK_EVERY);
    loop {
        tick.tick().await;
        let dir = dir.clone();
        let rotated =
            tokio::task::spawn_blocking(move || logs::rotate_if_over(&dir, max, files)).await;
        if let Ok(Err(e)) = rotated {
            tracing::warn!(job = %slot.job().job_id, "cannot rotate the job's log: {e}");
        }
    }
}
