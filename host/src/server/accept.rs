//! The accept loop: one HTTP/1 connection task per accepted socket, with
//! the defences `axum::serve` does not have.
//!
//! - **Head size.** A request's line and headers are read into at most
//!   64 KiB (431 past it), so a pending connection holds little memory.
//! - **Header timeout.** A client has `[server] header_timeout_secs` to send
//!   a request's headers, and as long between requests on a kept-alive
//!   connection (hyper's `header_read_timeout`, which needs a timer). A
//!   half-sent request is closed then, instead of holding its socket and
//!   file descriptor forever (Slowloris).
//! - **Pending cap.** Connections that have not yet sent a request's
//!   headers are "pending". Past `[server] max_pending_connections` (and
//!   never more than half the open-files limit), the *oldest* pending
//!   connection is closed, not the new one: the oldest has had the longest
//!   to send a few hundred bytes of headers, so it is the likeliest to be an
//!   attacker, and a newcomer is never locked out by connections that came
//!   before it. Only one pending for at least [`MIN_PENDING_AGE`] is closed
//!   this way: in a burst of honest clients the accept loop runs ahead of
//!   the tasks that read their headers, and those clients have sent them.
//!   A connection stops being pending when its first request's headers are
//!   in; a websocket upgrade then ends the HTTP task, and the session has
//!   its own limits (`[limits] max_connections`, idle timeout).
//! - **Accept errors.** Out of file descriptors (`EMFILE`, `ENFILE`) the
//!   loop closes the oldest pending connection to get one back (and pauses
//!   1 ms for its task to let go of it); with none pending it waits (10 ms,
//!   doubling to 1 s while it lasts) rather than spinning. Established
//!   connections are never touched. Errors about one
//!   connection (reset before it was accepted) are skipped at once.
//!
//! With `[server] tls`, each socket's TLS handshake runs in its task and
//! must end within the header timeout too (a handshake left half done is
//! the same attack one layer down).
//!
//! Shutdown is graceful as with `axum::serve`: accepting stops, each
//! connection finishes its request in flight (hyper's `graceful_shutdown`),
//! and `serve` returns when every connection task has ended.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
};

use tokio_rustls::TlsAcceptor;

use crate::{state::AppState, util::sync::lock};

/// Longest pause after an accept error.
const MAX_BACKOFF: Duration = Duration::from_millis(1000);
/// First pause after an accept error.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Largest request head (request line and headers) read; past it the
/// client gets 431. Without it hyper reads up to its buffer's ~400 KiB,
/// which a few hundred pending connections could each fill. The credential
/// headers the host reads are bounded at 16 KiB each
/// (`auth::MAX_CREDENTIAL_HEADER_BYTES`); 64 KiB leaves room for the rest.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The pause after closing a pending connection to get a descriptor back.
const EVICTED_PAUSE: Duration = Duration::from_millis(1);
/// At most one warning about closed pending connections per this long: an
/// attack would otherwise write one line per connection.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a connection must have been pending before the cap closes it.
/// Honest clients send their headers with the connection; a host too busy
/// to read them within this long is overloaded anyway.
const MIN_PENDING_AGE: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` until `graceful` resolves, then waits for
/// the open connections to finish.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    graceful: impl Future<Output = ()>,
) {
    let pending = Arc::new(Pending::default());
    let fd_cap = open_files_limit().map(|n| (n / 2).max(1));
    // Every connection task holds a receiver; `closed()` resolves when the
    // last one is dropped.
    let (done_tx, done_rx) = watch::channel(());
    let mut backoff = FIRST_BACKOFF;
    tokio::pin!(graceful);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut graceful => break,
        };
        let (tcp, remote) = match accepted {
            Ok(conn) => {
                backoff = FIRST_BACKOFF;
                conn
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors: the oldest pending connection gives
                // one back, so the connection waiting in the backlog (maybe
                // a legitimate client) can be accepted.
                if pending.evict_oldest() {
                    tracing::debug!(
                        "accepting connections failed: {e}; the oldest connection still sending its headers was closed to make room"
                    );
                    // Only long enough for its task to drop the socket: the
                    // client at the head of the backlog may be honest.
                    tokio::time::sleep(EVICTED_PAUSE).await;
                    continue;
                }
                tracing::warn!(
                    "accepting connections failed: {e}; retrying in {backoff:?} (raise the open-files limit, `ulimit -n`, if this lasts)"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let server = state.config.load().server.clone();
        let cap = fd_cap.map_or(server.max_pending_connections, |fd| {
            fd.min(server.max_pending_connections)
        });
        let (id, evict) = pending.admit(cap, Instant::now());
        tokio::spawn(connection(
            tcp,
            tls.clone(),
            Connection {
                remote,
                app: app.clone(),
                header_timeout: server.header_timeout,
                pending: Slot {
                    pending: pending.clone(),
                    id,
                },
                evict,
                shutdown: state.shutdown.clone(),
                done: done_rx.clone(),
            },
        ));
    }
    drop(listener);
    drop(done_rx);
    done_tx.closed().await;
}

/// What an accepted socket's task needs.
struct Connection {
    remote: SocketAddr,
    app: Router,
    header_timeout: Duration,
    pending: Slot,
    /// Resolves with `Ok` when the accept loop closes this connection to
    /// make room (see [`Pending::admit`]).
    evict: oneshot::Receiver<()>,
    shutdown: watch::Receiver<bool>,
    done: watch::Receiver<()>,
}

/// Serves one connection until it closes, upgrades, is evicted while
/// pending, or has finished its request after the shutdown signal.
async fn connection(tcp: TcpStream, tls: Option<TlsAcceptor>, c: Connection) {
    // Small frames must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    match tls {
        None => serve_io(tcp, c).await,
        Some(acceptor) => {
            match tokio::time::timeout(c.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_io(stream, c).await,
                Ok(Err(e)) => tracing::debug!(remote = %c.remote, "TLS handshake failed: {e}"),
                Err(_) => {
                    tracing::debug!(remote = %c.remote, "TLS handshake not finished within the header timeout; closed")
                }
            }
        }
    }
}

/// Serves HTTP/1 on `io` (the socket, or the TLS stream over it).
async fn serve_io<I>(io: I, c: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        remote,
        app,
        header_timeout,
        pending,
        evict,
        mut shutdown,
        done,
        ..
    } = c;
    let router = TowerToHyperService::new(app);
    let slot = pending.id;
    let registry = pending.pending.clone();
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        // Its headers are in: no longer pending.
        registry.release(slot);
        req.extensions_mut().insert(ConnectInfo(remote));
        hyper::service::Service::call(&router, req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEAD_BYTES);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let evicted = async {
        // A dropped sender (the connection was released) is no eviction.
        if evict.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(evicted);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%remote, "connection ended: {e}");
                }
                break;
            }
            // Dropping `conn` closes the socket.
            () = &mut evicted => break,
            changed = shutdown.wait_for(|stop| *stop), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(pending);
    drop(done);
}

/// The pending connections, oldest first, each with the sender that
/// closes it.
#[derive(Default)]
struct Pending {
    inner: Mutex<PendingInner>,
}

#[derive(Default)]
struct PendingInner {
    next: u64,
    /// By id, so oldest first: when each was accepted, and its closer.
    waiting: BTreeMap<u64, (Instant, oneshot::Sender<()>)>,
    closed: u64,
    warned: Option<Instant>,
}

impl Pending {
    /// Registers a new connection; while that makes more than `cap`
    /// pending, closes the oldest ones that have been pending for
    /// [`MIN_PENDING_AGE`]. Returns its id and its eviction receiver.
    fn admit(&self, cap: usize, now: Instant) -> (u64, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = lock(&self.inner);
        let id = inner.next;
        inner.next += 1;
        inner.waiting.insert(id, (now, tx));
        // The new connection is the youngest, so it is never the one closed.
        while inner.waiting.len() > cap.max(1) {
            let Some(entry) = inner.waiting.first_entry() else {
                break;
            };
            if now.duration_since(entry.get().0) < MIN_PENDING_AGE {
                break;
            }
            let (_, oldest) = entry.remove();
            let _ = oldest.send(());
            inner.closed += 1;
        }
        if inner.closed > 0 && inner.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                closed = inner.closed,
                limit = cap,
                "connections still sending their request headers were closed to make room for new ones (raise [server] max_pending_connections if legitimate clients are slow to send headers)"
            );
            inner.closed = 0;
            inner.warned = Some(Instant::now());
        }
        (id, rx)
    }

    /// Closes the oldest pending connection, however young: out of file
    /// descriptors, someone is refused either way. `false` if there is none.
    fn evict_oldest(&self) -> bool {
        let oldest = lock(&self.inner).waiting.pop_first();
        oldest.is_some_and(|(_, (_, tx))| tx.send(()).is_ok())
    }

    /// `id` is no longer pending (its headers are in, or it ended).
    fn release(&self, id: u64) {
        lock(&self.inner).waiting.remove(&id);
    }
}

/// A connection's place in [`Pending`], released when the task ends.
struct Slot {
    pending: Arc<Pending>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pending.release(self.id);
    }
}

/// Errors about one connection that was reset before we accepted it: the
/// next one may be fine, so the loop goes on at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The soft open-files limit of this process, if it has one.
fn open_files_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then(|| usize::try_from(lim.rlim_cur).ok())?
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::sync::oneshot::error::TryRecvError;

    use super::{MIN_PENDING_AGE, Pending};

    #[test]
    fn past_the_cap_the_oldest_pending_connection_is_closed_once_it_had_its_chance() {
        let pending = Pending::default();
        let t0 = Instant::now();
        let (_, mut first) = pending.admit(2, t0);
        let (_, mut second) = pending.admit(2, t0);
        // A burst: over the cap, but nobody has been pending long.
        let (_, mut third) = pending.admit(2, t0 + Duration::from_millis(10));
        assert_eq!(first.try_recv(), Err(TryRecvError::Empty));
        // Later, the oldest goes, then the next oldest, never the newcomer.
        let later = t0 + MIN_PENDING_AGE;
        let (_, mut fourth) = pending.admit(2, later);
        assert_eq!(first.try_recv(), Ok(()));
        assert_eq!(second.try_recv(), Ok(()));
        assert_eq!(third.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(fourth.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(lock_len(&pending), 2, "the third and fourth wait");
    }

    #[test]
    fn a_released_connection_is_never_closed() {
        let pending = Pending::default();
        let t0 = Instant::now();
        let (id, mut released) = pending.admit(1, t0);
        pending.release(id);
        // Its closer is gone: the task reads that as "no eviction".
        assert_eq!(released.try_recv(), Err(TryRecvError::Closed));
        let (_, mut other) = pending.admit(1, t0 + MIN_PENDING_AGE * 2);
        assert_eq!(other.try_recv(), Err(TryRecvError::Empty));
        // Out of descriptors, the oldest goes however young.
        let (_, mut young) = pending.admit(1, t0 + MIN_PENDING_AGE * 2);
        assert_eq!(other.try_recv(), Err(TryRecvError::Empty));
        assert!(pending.evict_oldest());
        assert_eq!(other.try_recv(), Ok(()));
        assert!(pending.evict_oldest());
        assert_eq!(young.try_recv(), Ok(()));
        assert!(!pending.evict_oldest());
    }

    fn lock_len(pending: &Pending) -> usize {
        crate::util::sync::lock(&pending.inner).waiting.len()
    }
}
