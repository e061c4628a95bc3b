//! A job's log: stdout and stderr go to `job.log` in its directory, opened
//! append-only by the job itself, and the host rotates it once it passes
//! `log_max_bytes` (`job.log` → `job.log.1` → … → `job.log.<log_files>`,
//! the oldest dropped).
//!
//! A file rather than a pipe to the host: a job must outlive the host
//! (re-adopted after a restart), and a pipe whose reader died would kill
//! it with SIGPIPE at its next line. Rotation copies the file then
//! truncates it; the job's `O_APPEND` descriptor goes on at the new end.
//! So the cap holds at each check ([`CHECK_EVERY`]): a job can pass it by
//! what it writes between two checks, and lines written between the copy
//! and the truncation are lost.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

/// The current log's name in the job directory.
pub const LOG_FILE: &str = "job.log";

/// How often a job's log size is checked.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Most lines `jobs.logs` returns.
pub(super) const MAX_TAIL_LINES: usize = 1000;

/// Most bytes `jobs.logs` reads.
pub(super) const MAX_TAIL_BYTES: u64 = 64 * 1024;

/// The log, opened for the job's stdout and stderr (append-only, 0600).
pub(super) fn open_for_job(job_dir: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(job_dir.join(LOG_FILE))
}

fn rotated(job_dir: &Path, n: u32) -> PathBuf {
    job_dir.join(format!("{LOG_FILE}.{n}"))
}

/// Rotates the log if it has passed `max_bytes`, keeping `files` old ones.
pub(super) fn rotate_if_over(job_dir: &Path, max_bytes: u64, files: u32) -> std::io::Result<bool> {
    let current = job_dir.join(LOG_FILE);
    let Ok(meta) = fs::metadata(&current) else {
        return Ok(false);
    };
    if meta.len() <= max_bytes {
        return Ok(false);
    }
    for n in (1..files).rev() {
        let from = rotated(job_dir, n);
        if from.exists() {
            fs::rename(&from, rotated(job_dir, n + 1))?;
        }
    }
    fs::copy(&current, rotated(job_dir, 1))?;
    fs::OpenOptions::new()
        .write(true)
        .open(&current)?
        .set_len(0)?;
    Ok(true)
}

/// The last `lines` lines of the log (from the newest rotated file too if
/// the current one is short), at most [`MAX_TAIL_BYTES`] read.
pub(super) fn tail(job_dir: &Path, lines: usize) -> Vec<String> {
    let lines = lines.min(MAX_TAIL_LINES);
    let mut text = last_bytes(&job_dir.join(LOG_FILE), MAX_TAIL_BYTES);
    if text.iter().filter(|b| **b == b'\n').count() < lines {
        let mut older = last_bytes(&rotated(job_dir, 1), MAX_TAIL_BYTES - text.len() as u64);
        older.extend_from_slice(&text);
        text = older;
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

fn last_bytes(path: &Path, most: u64) -> Vec<u8> {
    let Ok(mut file) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(most);
    let mut out = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(most).read_to_end(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn rotation_keeps_the_cap_and_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_for_job(dir.path()).unwrap();
        for round in 0..10 {
            for i in 0..50 {
                writeln!(log, "round {round} line {i} {}", "x".repeat(20)).unwrap();
            }
            rotate_if_over(dir.path(), 1000, 2).unwrap();
        }
        writeln!(log, "last").unwrap();
        assert!(fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() <= 1000);
        assert!(rotated(dir.path(), 2).exists());
        assert!(
            !rotated(dir.path(), 3).exists(),
            "only log_files old logs are kept"
        );
        let tail = tail(dir.path(), 3);
        assert_eq!(tail.last().map(String::as_str), Some("last"));
        assert_eq!(tail.len(), 3, "{tail:?}");
        assert!(tail[0].starts_with("round 9 line 4"), "{tail:?}");
    }
}
