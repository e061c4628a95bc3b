//! `[server] tls` (issue 20 item 3): wss with the host's own certificate,
//! a certificate renewed on disk served to the next connection without a
//! restart, the 1001 close with its reconnect hint, and `modhost dev-cert`.

use std::{os::unix::fs::PermissionsExt, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use modhost::{config::TlsFiles, server::tls::dev_cert};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{SUBPROTOCOL, TestHost, Workspace, modhost_bin, request, write_atomic};

fn cert_der(files: &TlsFiles) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(&files.cert).expect("a PEM certificate")
}

/// A client trusting exactly `trusted`.
fn connector(trusted: &[&TlsFiles]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for files in trusted {
        roots.add(cert_der(files)).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A verified TLS connection to the host as `localhost`.
async fn tls(host: &TestHost, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(host.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// The certificate the host presents to a new connection.
async fn served(host: &TestHost, connector: &TlsConnector) -> CertificateDer<'static> {
    let stream = tls(host, connector).await;
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn host_with_tls(ws: &Workspace) -> TestHost {
    let text = ws.config_text("").replacen(
        "idle_timeout_secs = 300\n",
        "idle_timeout_secs = 300\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\n",
        1,
    );
    TestHost::start_text(ws, &text).await
}

#[tokio::test]
async fn wss_works_and_a_certificate_renewed_on_disk_is_served_without_a_restart() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let first = dev_cert(&ws.path().join("tls"), &[]).unwrap();
    let renewed = dev_cert(&ws.path().join("renewed"), &[]).unwrap();
    let host = host_with_tls(&ws).await;
    let trusting_both = connector(&[&first, &renewed]);

    // A websocket over TLS, verified against the host's certificate.
    let stream = tls(&host, &connector(&[&first])).await;
    let url = format!("wss://localhost:{}/ws/?token=alice-token", host.addr.port());
    let (mut client, _) = tokio_tungstenite::client_async(request(&url, Some(SUBPROTOCOL)), stream)
        .await
        .expect("wss upgrade");
    let next = async |client: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>| loop {
        match client.next().await.expect("a frame").expect("no error") {
            // The module list a client gets after its hello is not news here.
            Message::Text(t) if t.contains("\"resource_offer\"") => continue,
            Message::Text(t) => return serde_json::from_str::<Value>(&t).unwrap(),
            Message::Close(f) => {
                return json!({"close": f.map(|f| (u16::from(f.code), f.reason.to_string()))});
            }
            _ => continue,
        }
    };
    assert_eq!(next(&mut client).await["is_authorized"], true);
    let call = json!({"type": "call", "module": "echo", "command": "echo", "params": {"x": 7}, "requestId": "c"});
    client.send(Message::text(call.to_string())).await.unwrap();
    let answer = next(&mut client).await;
    assert_eq!(answer["result"]["x"], 7, "{answer}");

    // Plain HTTP on the TLS port gets no page.
    let plain = crate::harness::http().get(host.url("/health")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // The renewed pair is written over the old files: the next handshake
    // gets it, the host never restarted.
    assert_eq!(served(&host, &trusting_both).await, cert_der(&first));
    write_atomic(&first.key, &std::fs::read(&renewed.key).unwrap());
    write_atomic(&first.cert, &std::fs::read(&renewed.cert).unwrap());
    let want = cert_der(&renewed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while served(&host, &trusting_both).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate is never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken pair on disk is refused; the renewed one stays.
    write_atomic(&first.cert, b"not a certificate");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served(&host, &trusting_both).await, want);

    // Shutting down: 1001 with the reconnect hint.
    host.stop().await;
    let close = next(&mut client).await;
    assert_eq!(
        close["close"],
        json!([1001, modhost::gateway::SHUTDOWN_REASON]),
        "{close}"
    );
}

#[test]
fn dev_cert_writes_a_pair_with_a_private_key_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let run = || {
        std::process::Command::new(modhost_bin())
            .args(["dev-cert", "--out"])
            .arg(&out)
            .args(["--name", "dev.example"])
            .output()
            .unwrap()
    };
    let made = run();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("key.pem"), 0o600);
    let files = TlsFiles {
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
    };
    modhost::server::tls::load(&files).expect("the pair loads");
    let before = std::fs::read(&files.cert).unwrap();
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("remove the old pair first"));
    assert_eq!(std::fs::read(&files.cert).unwrap(), before);
}
