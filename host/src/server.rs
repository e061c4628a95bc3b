//! Builds the shared state from a config, loads the modules, and serves
//! until the shutdown future resolves.
//!
//! Two watchers run beside the server, each on a thread of its own (loading
//! a library or reading files must never block a tokio worker): the modules
//! folder (`modules::ModuleWatcher`: builds loaded, swapped and removed
//! live) and config.toml (`config::watch::ConfigWatcher`, applied here by
//! [`apply_config`]). Both start before the first modules are loaded, so no
//! file dropped during start-up is missed, and stop before the modules do.
//! The AMQP source (`trigger::AmqpSource`) runs beside the server as a task
//! while it serves.
//!
//! # Layout
//! - `accept`: the accept loop: header timeout, the cap on connections
//!   still sending headers, back-off on accept errors, graceful shutdown
//! - `account_events`: the account watcher: store changes (from this host
//!   or the `modhost user` CLI) revoke sessions and become module events
//! - `tls`: `[server] tls`: the rustls acceptor and the certificate pair,
//!   reloaded when its files change
//! - this file: building the state, serving, applying config reloads

mod accept;
pub mod account_events;
pub mod tls;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, Weak},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use axum::Extension;
use tokio::net::TcpListener;

use crate::{
    accounts::Accounts,
    auth::{ApiTokens, Authenticator},
    broker::{Broker, Endpoints},
    cluster::Cluster,
    config::{
        self, Config,
        watch::{ConfigWatcher, ReloadStatus, one_line},
    },
    external::External,
    fanout::{
        ClusterError, FanoutEngine, History, MemoryEngine, NatsEngine, SNAPSHOT_FILE, Streams,
        now_ms,
    },
    http,
    jobs::Jobs,
    modules::{ModuleWatcher, Registry, RuntimeSettings},
    sessions::Sessions,
    signing::{Keyring, SeqStore},
    state::{AppState, Services},
    trigger::AmqpSource,
    util::sync::lock,
};

pub use crate::http::ConfigStatus;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The verify keys could not be read.
    #[error("verify keys: {0}")]
    Keys(String),
    /// The state dir could not be opened.
    #[error("state dir: {0}")]
    State(String),
    /// The auth configuration is unusable.
    #[error("auth: {0}")]
    Auth(String),
    /// The account store or its token key could not be opened.
    #[error("accounts: {0}")]
    Accounts(#[from] crate::accounts::AccountsError),
    /// `[cluster]` could not be set up (not a server that is down: that
    /// is retried).
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
    /// `[server] tls` names files that do not make a usable pair.
    #[error("server.tls: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A host that has loaded its modules and is ready to serve.
pub struct Host {
    /// The shared state (for tests and the config watcher).
    pub state: Arc<AppState>,
    /// What config.toml reloads did (also at `GET /api/config`).
    pub config_status: ConfigStatus,
    /// External modules on `/module` (also one of the broker's sources),
    /// handed to the routes as an `Extension`, like `config_status`: the
    /// shared state does not know them, so they can hold it.
    pub external: Arc<External>,
    /// The job launcher, handed to the routes as an `Extension` for
    /// `/metrics` (jobs by status); it holds the shared state, not the
    /// other way round.
    pub jobs: Arc<Jobs>,
    /// With `[cluster]`: calls to and from other hosts' modules, handed to
    /// the routes as an `Extension` for `/metrics`.
    pub cluster: Option<Arc<Cluster>>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    watchers: Watchers,
}

/// The file watchers of a running host (either may be missing: the host
/// then runs without that kind of live reload, and says so in the log).
#[derive(Default)]
struct Watchers {
    modules: Option<ModuleWatcher>,
    config: Option<ConfigWatcher>,
}

impl Watchers {
    /// Stops both (blocking: each may finish a load in progress).
    fn stop(self) {
        if let Some(w) = self.config {
            w.stop();
        }
        if let Some(w) = self.modules {
            w.stop();
        }
    }
}

impl Host {
    /// Builds the state and loads every module in the modules folder.
    pub async fn build(config: Config) -> Result<Host, StartError> {
        let keyring = Keyring::load(&config.modules.verify_keys)
            .map_err(|e| StartError::Keys(e.to_string()))?;
        for warning in keyring.warnings() {
            tracing::warn!("verify keys: {warning}");
        }
        let seqs = SeqStore::open(&config.modules.state_dir)
            .map_err(|e| StartError::State(e.to_string()))?;
        let accounts = if Accounts::wanted(&config.auth.accounts, &config.modules.state_dir) {
            Some(Arc::new(Accounts::open(
                &config.modules.state_dir,
                &config.auth.accounts,
            )?))
        } else {
            None
        };
        let auth = Authenticator::new(&config.auth)
            .map_err(|e| StartError::Auth(e.to_string()))?
            .with_accounts(accounts.clone());
        let registry = Registry::new(
            RuntimeSettings {
                modules: config.modules.clone(),
                queue: config.limits.module_queue,
                call_timeout: config.limits.call_timeout,
            },
            keyring,
            seqs,
        );
        // A cluster's history is its JetStream stream, not a snapshot.
        let history = match &config.cluster {
            Some(_) => NatsEngine::history(&config.history),
            None => open_history(&config),
        };
        let local = MemoryEngine::with_history(history);
        let fanout: Box<dyn FanoutEngine> = match &config.cluster {
            Some(cluster) => {
                tracing::info!(name = %cluster.name, "cluster: fan-out across hosts through NATS");
                Box::new(NatsEngine::connect(cluster, &config.history, local).await?)
            }
            None => Box::new(local),
        };
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let external = Arc::new(External::default());
        let jobs = Jobs::new(&config.modules.state_dir);
        // The built-in `jobs` first: no module takes its name. Then the
        // in-process modules: a module connecting from outside never
        // shadows a signed build loaded here.
        let mut endpoints = Endpoints::new(jobs.clone())
            .with(registry.clone())
            .with(external.clone());
        // Other hosts' modules last: a module served here is called here.
        let cluster = match &config.cluster {
            Some(c) => Some(Cluster::connect(c, config.limits.max_frame_bytes).await?),
            None => None,
        };
        if let Some(cluster) = &cluster {
            endpoints = endpoints.with_remote(cluster.source());
        }
        let state = Arc::new(AppState {
            broker: Broker::with_endpoints(endpoints, config.limits.max_params_bytes),
            api_tokens: ArcSwap::from_pointee(ApiTokens::new(&config)),
            accounts,
            config: ArcSwap::from_pointee(config),
            auth: ArcSwap::from_pointee(auth),
            fanout,
            sessions: Sessions::default(),
            registry: registry.clone(),
            started: std::time::SystemTime::now(),
            shutdown: shutdown_rx,
            config_applied: tokio::sync::watch::Sender::new(()),
        });
        registry.set_services(Arc::new(Services(Arc::downgrade(&state))));
        // In a cluster, sessions parked here may resume on another host.
        if state.fanout.nats().is_some() {
            tokio::spawn(crate::gateway::serve_handovers(Arc::downgrade(&state)));
        }
        jobs.attach(&state);
        if let Some(cluster) = &cluster {
            cluster.attach(&state, external.clone());
        }
        let config_status = ConfigStatus::default();
        let watchers = {
            let (state, status) = (Arc::downgrade(&state), config_status.clone());
            tokio::task::spawn_blocking(move || start_watchers(state, status))
                .await
                .unwrap_or_default()
        };
        let loader = registry.clone();
        let loaded = tokio::task::spawn_blocking(move || loader.load_all())
            .await
            .unwrap_or(0);
        let refused = registry
            .list()
            .iter()
            .filter(|m| m.state == "refused")
            .count();
        tracing::info!(loaded, refused, "modules loaded");
        Ok(Host {
            state,
            config_status,
            external,
            jobs,
            cluster,
            shutdown_tx,
            watchers,
        })
    }

    /// Binds `[metrics] listen` and serves `/metrics` there through the
    /// same accept loop as the main listener (header timeouts, pending
    /// cap), until the shutdown signal.
    async fn serve_metrics(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio::task::JoinHandle<()>, StartError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on metrics.listen = {addr}: {e}; free the port or pick another"
                ),
            )
        })?;
        tracing::info!(addr = %listener.local_addr()?, "metrics at http://{addr}/metrics");
        let app = http::metrics_router(self.state.clone())
            .layer(Extension(self.config_status.clone()))
            .layer(Extension(self.jobs.clone()))
            .layer(Extension(self.cluster.clone()));
        let mut stop = self.state.shutdown.clone();
        let graceful = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        Ok(tokio::spawn(accept::serve(
            listener,
            app,
            self.state.clone(),
            None,
            graceful,
        )))
    }

    /// Serves on `listener` until `shutdown` resolves, then closes sessions
    /// and stops modules.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let state = self.state.clone();
        let sweeper = {
            let registry = state.registry.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tick.tick().await;
                    registry.expire_overdue();
                }
            })
        };
        // Here, not in `build`: it ends with the shutdown signal sent below,
        // and a host that is built but never served holds no broker
        // connection.
        let amqp = AmqpSource::spawn(state.clone());
        let account_events = account_events::spawn(&state, &self.external);
        let addr = listener.local_addr()?;
        // Held while serving: dropping it stops the certificate watcher.
        let tls = match &state.config.load().server.tls {
            Some(files) => Some(tls::Tls::start(files)?),
            None => None,
        };
        let (ws, web) = if tls.is_some() {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        tracing::info!(%addr, "listening: websocket at {ws}://{addr}/ws/, health at {web}://{addr}/health");
        let metrics = match state.config.load().metrics.listen {
            Some(addr) => Some(self.serve_metrics(addr).await?),
            None => None,
        };
        let app = http::router(state.clone())
            .layer(Extension(self.config_status.clone()))
            .layer(Extension(self.external.clone()))
            .layer(Extension(self.jobs.clone()))
            .layer(Extension(self.cluster.clone()));
        let watchers = self.watchers;
        let cluster = self.cluster;
        let shutdown_tx = self.shutdown_tx;
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down: closing sessions and stopping modules");
            let _ = shutdown_tx.send(true);
        };
        let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
        accept::serve(listener, app, state.clone(), acceptor, graceful).await;
        if let Some(cluster) = &cluster {
            cluster.stopped(Duration::from_secs(2)).await;
        }
        drop(tls);
        sweeper.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if let Some(watcher) = account_events {
            watcher.abort();
        }
        // The shutdown signal has reached it: it closes its connection.
        amqp.stopped(Duration::from_secs(10)).await;
        let registry = state.registry.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // No load may start once the modules are being stopped.
            watchers.stop();
            registry.shutdown(Duration::from_secs(5));
        })
        .await;
        if let Some(cluster) = cluster {
            cluster.close();
        }
        if state.config.load().history.persist {
            let path = state.config.load().modules.state_dir.join(SNAPSHOT_FILE);
            match state.fanout.save_history(&path) {
                Ok(true) => {
                    tracing::info!(file = %path.display(), "room history saved for the next start")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("room history not saved: {e}"),
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The room history `[history]` asks for, with what the last clean stop
/// saved when `persist` is on.
///
/// A snapshot this start does not read is removed all the same: this run
/// publishes without recording, so a later start that read it would tell
/// clients they had missed nothing since.
fn open_history(config: &Config) -> Option<Box<dyn History>> {
    let path = config.modules.state_dir.join(SNAPSHOT_FILE);
    let streams = Streams::new(&config.history).filter(|_| config.history.persist);
    let Some(mut streams) = streams else {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), "an old room history snapshot was removed: [history] persist is off or no [[history.rooms]] are set")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), "an old room history snapshot could not be removed: {e}; remove it before turning [history] persist on")
            }
        }
        return Streams::new(&config.history).map(|s| Box::new(s) as Box<dyn History>);
    };
    match streams.restore(&path, now_ms()) {
        Ok(0) => {}
        Ok(rooms) => tracing::info!(rooms, file = %path.display(), "room history restored"),
        Err(e) => tracing::warn!("room history not restored: {e}"),
    }
    Some(Box::new(streams))
}

/// Starts the modules folder watcher and, when the config came from a file,
/// the config.toml watcher. A watcher that cannot start is logged; the host
/// runs on without it.
fn start_watchers(state: Weak<AppState>, status: ConfigStatus) -> Watchers {
    let Some(app) = state.upgrade() else {
        return Watchers::default();
    };
    let modules = match ModuleWatcher::start(app.registry.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "modules folder not watched: {e}; new builds load only at the next start"
            );
            None
        }
    };
    let source = app.config.load().source.clone();
    drop(app);
    let config = source.and_then(|file| {
        {
            let mut st = lock(&status);
            st.file = Some(file.display().to_string());
        }
        let watched = status.clone();
        let started = ConfigWatcher::start(file.clone(), move |outcome| {
            if let Some(state) = state.upgrade() {
                apply_config(&state, &watched, outcome);
            }
        });
        match started {
            Ok(w) => {
                lock(&status).watching = true;
                Some(w)
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), "config.toml not watched: {e}; edits apply at the next start");
                None
            }
        }
    });
    Watchers { modules, config }
}

/// Applies a new version of config.toml, or keeps the running config and
/// logs why not (one line: file, line, reason).
///
/// Applied live: tokens, JWT and bootstrap settings (a new authenticator),
/// limits (read where they are used; new connections get the new ones),
/// module enable/disable, module config tables (sent to the running
/// instance), call timeouts, verify key folders, `allow_rollback`, the admin
/// and trigger tokens, `[trigger.amqp]` (the AMQP source reconnects with the
/// new settings: `config_applied` tells it), `[apps]` (read at each launch;
/// running jobs keep what they were launched with). Settings that need a restart (`server.listen`, the
/// modules and state folders, the diagnostics route) keep their running
/// values, with a warning.
pub fn apply_config(
    state: &AppState,
    status: &Mutex<ReloadStatus>,
    outcome: Result<Config, config::ConfigError>,
) {
    let file_config = match outcome {
        Ok(c) => c,
        Err(e) => {
            let line = one_line(&e.to_string());
            let mut st = lock(status);
            // One line per bad version, not one per event.
            if st.last_error.as_deref() != Some(line.as_str()) {
                tracing::error!("config.toml not applied, the running config is kept: {line}");
            }
            st.last_error = Some(line);
            st.last_error_line = e.line();
            return;
        }
    };
    let old = state.config.load_full();
    let restart = config::restart_required(&old, &file_config);
    let mut next = file_config.clone();
    next.server.listen = old.server.listen;
    next.modules.dir.clone_from(&old.modules.dir);
    next.modules.state_dir.clone_from(&old.modules.state_dir);
    next.diagnostics
        .ws_echo_path
        .clone_from(&old.diagnostics.ws_echo_path);
    let source = file_config
        .source
        .as_ref()
        .map_or_else(|| "config.toml".to_owned(), |p| p.display().to_string());

    let mut st = lock(status);
    let new_restart: Vec<String> = restart
        .iter()
        .map(|f| (*f).to_owned())
        .filter(|f| !st.restart_pending.contains(f))
        .collect();
    if !new_restart.is_empty() {
        for line in config::describe_changes(&old, &file_config)
            .into_iter()
            .filter(|l| new_restart.iter().any(|f| l.starts_with(&format!("{f} "))))
        {
            tracing::warn!(file = %source, "config.toml changed a setting that needs a restart: {line}; the host keeps running with the old value until modhost is restarted");
        }
    }
    st.restart_pending = restart.iter().map(|f| (*f).to_owned()).collect();
    if next == *old {
        st.last_error = None;
        st.last_error_line = None;
        return;
    }
    // The file was checked with its own `listen`; what goes live runs on
    // the running one.
    if let Some(reason) = config::published_secret_error(&next) {
        let line = one_line(&format!("{source}: {reason}"));
        if st.last_error.as_deref() != Some(line.as_str()) {
            tracing::error!("config.toml not applied, the running config is kept: {line}");
        }
        st.last_error = Some(line);
        st.last_error_line = None;
        return;
    }
    let auth = match Authenticator::renewed(&next.auth, Some(&state.auth.load())) {
        Ok(auth) => auth.with_accounts(state.accounts.clone()),
        Err(e) => {
            let line = one_line(&format!("{source}: [auth]: {e}"));
            if st.last_error.as_deref() != Some(line.as_str()) {
                tracing::error!("config.toml not applied, the running config is kept: {line}");
            }
            st.last_error = Some(line);
            st.last_error_line = None;
            return;
        }
    };
    let changes = config::describe_changes(&old, &next);
    state.auth.store(Arc::new(auth));
    state
        .broker
        .set_max_params_bytes(next.limits.max_params_bytes);
    let settings = RuntimeSettings {
        modules: next.modules.clone(),
        queue: next.limits.module_queue,
        call_timeout: next.limits.call_timeout,
    };
    state.api_tokens.store(Arc::new(ApiTokens::new(&next)));
    state.config.store(Arc::new(next));
    state.config_applied.send_replace(());
    for line in &changes {
        tracing::info!(file = %source, "config change applied: {line}");
    }
    tracing::info!(file = %source, "config.toml reloaded: {} change(s) applied", changes.len());
    st.applied += 1;
    st.applied_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs());
    st.last_changes = changes;
    st.last_error = None;
    st.last_error_line = None;
    drop(st);
    // Module changes last: loading a module that was switched on blocks.
    state.registry.apply_settings(settings);
}
