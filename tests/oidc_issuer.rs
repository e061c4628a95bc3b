//! A local OpenID Connect issuer for the `[auth.oidc]` tests: an axum
//! server on 127.0.0.1 serving a discovery document and a JWKS of Ed25519
//! keys made for the test, counting the requests it gets, and able to
//! answer the way a broken or hostile issuer would; over http, or https
//! with a certificate from a CA made for the test ([`Issuer::start_https`]).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// base64url without padding, as JWTs and JWKS use.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn random_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("urandom");
}

/// An Ed25519 key pair made for this test run, with its `kid`.
#[derive(Clone)]
pub struct EdKey {
    pub kid: String,
    /// PKCS#8 v1 DER of the private key, as jsonwebtoken's signer wants it.
    pkcs8: Vec<u8>,
    pub public: [u8; 32],
}

impl EdKey {
    pub fn generate(kid: &str) -> EdKey {
        let mut seed = [0u8; 32];
        random_fill(&mut seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        // RFC 8410: a fixed 16-byte prefix, then the seed.
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend_from_slice(&seed);
        EdKey {
            kid: kid.to_owned(),
            pkcs8,
            public,
        }
    }

    pub fn jwk(&self) -> Value {
        json!({"kid": self.kid, "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "x": b64(&self.public)})
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// `claims` signed with this key but naming `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

/// How the issuer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Discovery and JWKS as a real issuer serves them.
    Normal,
    /// 503 to everything.
    Down,
    /// A discovery document of 1 MiB, streamed without a length.
    Huge,
    /// A discovery document dripped one byte every 200 ms.
    Slow,
    /// A discovery document naming another issuer.
    OtherIssuer,
}

pub struct IssuerState {
    pub issuer: String,
    pub keys: Mutex<Vec<EdKey>>,
    pub mode: Mutex<Mode>,
    pub discovery_requests: AtomicUsize,
    pub jwks_requests: AtomicUsize,
}

/// A running issuer; stops when dropped.
pub struct Issuer {
    pub state: Arc<IssuerState>,
    task: JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Issuer {
    /// An issuer on a free port of 127.0.0.1 with `keys` in its JWKS.
    pub async fn start(keys: Vec<EdKey>) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, keys)
    }

    /// An issuer on `addr` (a port an earlier issuer or a test reserved).
    pub async fn start_on(addr: SocketAddr, keys: Vec<EdKey>) -> Issuer {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, keys)
    }

    /// An issuer on `https://127.0.0.1:<port>/realms/test`, its
    /// certificate signed by a CA made for this call (nothing any system
    /// trusts); returns it and that CA's certificate as PEM, for `ca_file`.
    pub async fn start_https(keys: Vec<EdKey>) -> (Issuer, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        };
        let issuer = Self::serve_on(listener, format!("https://{addr}/realms/test"), keys);
        (issuer, ca_cert.pem())
    }

    fn serve(listener: tokio::net::TcpListener, keys: Vec<EdKey>) -> Issuer {
        let issuer = issuer_url(listener.local_addr().unwrap());
        Self::serve_on(listener, issuer, keys)
    }

    fn serve_on(
        listener: impl axum::serve::Listener<Addr = SocketAddr>,
        issuer: String,
        keys: Vec<EdKey>,
    ) -> Issuer {
        let state = Arc::new(IssuerState {
            issuer,
            keys: Mutex::new(keys),
            mode: Mutex::new(Mode::Normal),
            discovery_requests: AtomicUsize::new(0),
            jwks_requests: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/realms/test/protocol/openid-connect/certs", get(jwks))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Issuer { state, task }
    }

    pub fn url(&self) -> String {
        self.state.issuer.clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_keys(&self, keys: Vec<EdKey>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn discovery_requests(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// Claims valid for an hour for user `sub`, for audience `modhost`.
    pub fn claims(&self, sub: &str) -> Value {
        json!({"iss": self.url(), "aud": "modhost", "sub": sub, "exp": now() + 3600, "iat": now(),
               "realm_access": {"roles": ["user"]}})
    }
}

/// TCP connections that completed a TLS handshake; failed handshakes (a
/// client that does not trust the certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// The issuer URL of a test issuer at `addr`, Keycloak-shaped.
pub fn issuer_url(addr: SocketAddr) -> String {
    format!("http://{addr}/realms/test")
}

/// The `[auth.oidc]` table for `issuer` (plus `extra` lines).
pub fn oidc_table(issuer: &str, extra: &str) -> String {
    format!("[auth.oidc]\nissuer = \"{issuer}\"\naudience = \"modhost\"\n{extra}\n")
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_requests.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    let doc = |issuer: &str| {
        json!({"issuer": issuer, "jwks_uri": format!("{}/protocol/openid-connect/certs", state.issuer),
               "id_token_signing_alg_values_supported": ["EdDSA"]})
    };
    match mode {
        Mode::Normal => Json(doc(&state.issuer)).into_response(),
        Mode::OtherIssuer => Json(doc("http://evil.example/realms/test")).into_response(),
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Huge => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let chunks = (0..16).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        Mode::Slow => {
            let body = doc(&state.issuer).to_string().into_bytes();
            let drip = futures_util::stream::unfold(body.into_iter(), |mut bytes| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let b = bytes.next()?;
                Some((Ok::<_, std::io::Error>(Bytes::from(vec![b])), bytes))
            });
            Body::from_stream(drip).into_response()
        }
    }
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if *state.mode.lock().unwrap() == Mode::Down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys: Vec<Value> = state.keys.lock().unwrap().iter().map(EdKey::jwk).collect();
    // Keycloak lists its encryption key too; the host must skip it.
    let mut keys = keys;
    keys.push(json!({"kid": "enc-1", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}));
    Json(json!({ "keys": keys })).into_response()
}
