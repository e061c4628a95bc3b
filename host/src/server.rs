//! Builds the shared state from a config, loads the modules, and serves
//! until the shutdown future resolves.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::{
    auth::Authenticator,
    broker::Broker,
    config::Config,
    gateway::{Fanout, Sessions},
    http,
    modules::{Registry, RuntimeSettings},
    signing::{Keyring, SeqStore},
    state::{AppState, Services},
};

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
    /// Serving failed.
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}

/// A host that has loaded its modules and is ready to serve.
pub struct Host {
    /// The shared state (for tests and the config watcher).
    pub state: Arc<AppState>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
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
        let auth = Authenticator::new(&config.auth).map_err(|e| StartError::Auth(e.to_string()))?;
        let registry = Registry::new(
            RuntimeSettings {
                modules: config.modules.clone(),
                queue: config.limits.module_queue,
                call_timeout: config.limits.call_timeout,
            },
            keyring,
            seqs,
        );
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(AppState {
            broker: Broker::new(registry.clone(), config.limits.max_params_bytes),
            config: ArcSwap::from_pointee(config),
            auth: ArcSwap::from_pointee(auth),
            fanout: Fanout::default(),
            sessions: Sessions::default(),
            registry: registry.clone(),
            started: std::time::SystemTime::now(),
            shutdown: shutdown_rx,
        });
        registry.set_services(Arc::new(Services(Arc::downgrade(&state))));
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
        Ok(Host { state, shutdown_tx })
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
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening: websocket at ws://{addr}/ws/, health at http://{addr}/health");
        let listener = listener.tap_io(|tcp| {
            // Small frames must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
        });
        let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let shutdown_tx = self.shutdown_tx;
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down: closing sessions and stopping modules");
            let _ = shutdown_tx.send(true);
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await?;
        sweeper.abort();
        let registry = state.registry.clone();
        let _ =
            tokio::task::spawn_blocking(move || registry.shutdown(Duration::from_secs(5))).await;
        tracing::info!("stopped");
        Ok(())
    }
}
