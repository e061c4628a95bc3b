//! The job registry: one row per job in the host's SQLite store
//! (`state_dir/modhost.db`, the accounts' file; schema version 2 adds the
//! table). Each status change is written before it is published, so a
//! host killed at any moment finds every job it may have left running.

use std::path::{Path, PathBuf};

use rusqlite::{Row, params};

use super::{
    job::{Job, Status},
    process::Plan,
};
use crate::{
    accounts::{Store, StoreError},
    util::sync::lock,
};

/// Most finished jobs read back at start (the newest), besides every
/// active one.
const MAX_LOADED: u32 = 1000;

/// The registry.
#[derive(Debug)]
pub(super) struct Registry {
    store: Store,
}

const COLUMNS: &str = "job_id, owner, app, port, protocol, host, job_dir, config, hash_algorithm, \
     created_at, status, pid, start_ticks, exit_code, restarts, message, plan";

impl Registry {
    /// Opens (making it if missing) the store in `state_dir`.
    pub(super) fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open_in(state_dir)?,
        })
    }

    /// Writes `job` (and how it is started) as it is now.
    pub(super) fn save(&self, job: &Job, plan: &Plan) -> Result<(), StoreError> {
        let plan = serde_json::to_string(plan).unwrap_or_else(|_| "{}".to_owned());
        let conn = lock(&self.store.conn);
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO jobs ({COLUMNS}, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, strftime('%s','now'))"
            ),
            params![
                job.job_id,
                job.owner,
                job.app,
                job.port,
                job.protocol,
                job.host,
                job.job_dir.display().to_string(),
                job.config.as_ref().map(|p| p.display().to_string()),
                job.hash_algorithm,
                job.created_secs(),
                job.status.as_str(),
                job.pid,
                job.start_ticks.map(|t| t as i64),
                job.exit_code,
                job.restarts,
                job.message,
                plan,
            ],
        )?;
        Ok(())
    }

    /// Every active job and the newest finished ones, oldest first.
    pub(super) fn load(&self) -> Result<Vec<(Job, Plan)>, StoreError> {
        let conn = lock(&self.store.conn);
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ('starting', 'running') \
             OR job_id IN (SELECT job_id FROM jobs ORDER BY created_at DESC LIMIT {MAX_LOADED}) \
             ORDER BY created_at, job_id"
        ))?;
        let rows = stmt.query_map([], read)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn read(row: &Row<'_>) -> rusqlite::Result<(Job, Plan)> {
    let status: String = row.get(10)?;
    let plan: String = row.get(16)?;
    let job = Job {
        job_id: row.get(0)?,
        owner: row.get(1)?,
        app: row.get(2)?,
        port: row.get(3)?,
        protocol: row.get(4)?,
        host: row.get(5)?,
        job_dir: PathBuf::from(row.get::<_, String>(6)?),
        config: row.get::<_, Option<String>>(7)?.map(PathBuf::from),
        hash_algorithm: row.get(8)?,
        created: Job::created_from(row.get(9)?),
        // A status this build does not know: treat the job as gone.
        status: Status::parse(&status).unwrap_or(Status::Lost),
        pid: row.get(11)?,
        start_ticks: row.get::<_, Option<i64>>(12)?.map(|t| t as u64),
        exit_code: row.get(13)?,
        restarts: row.get(14)?,
        message: row.get(15)?,
    };
    let plan = serde_json::from_str(&plan).unwrap_or(Plan {
        command: String::new(),
        args: Vec::new(),
        cwd: job.job_dir.clone(),
        env: Default::default(),
    });
    Ok((job, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let job = Job {
            job_id: "job_1".into(),
            app: "echo".into(),
            owner: "alice".into(),
            port: 20001,
            protocol: "https".into(),
            host: "box".into(),
            job_dir: dir.path().join("jobs/job_1"),
            config: None,
            hash_algorithm: "argon2id".into(),
            created: Job::created_from(1_700_000_000),
            status: Status::Running,
            pid: Some(42),
            start_ticks: Some(7),
            exit_code: None,
            restarts: 1,
            message: None,
        };
        let plan = Plan {
            command: "/bin/app".into(),
            args: vec!["a b".into(), ";".into()],
            cwd: dir.path().into(),
            env: [("K".to_owned(), "v".to_owned())].into(),
        };
        let reg = Registry::open(dir.path()).unwrap();
        reg.save(&job, &plan).unwrap();
        drop(reg);
        let reg = Registry::open(dir.path()).unwrap();
        assert_eq!(reg.load().unwrap(), vec![(job.clone(), plan.clone())]);
        let mut ended = job.clone();
        ended.status = Status::Stopped;
        reg.save(&ended, &plan).unwrap();
        assert_eq!(reg.load().unwrap(), vec![(ended, plan)], "one row per job");
        drop(reg);
        // The registry shares the accounts' file: its jobs alone must not
        // turn accounts on at the next start.
        let config = crate::config::parse("", Path::new("/tmp/modhost-test/config.toml"));
        let unset = config.unwrap().auth.accounts;
        assert_eq!(unset.enabled, None);
        assert!(!crate::accounts::Accounts::wanted(&unset, dir.path()));
    }
}
