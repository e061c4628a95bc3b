//! Test harness, clients: an HTTP client, a websocket client speaking the
//! host's protocol, and a websocket client writing raw frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// An HTTP client. Its timeout only catches a hung host: a busy machine
/// must never make a test fail, so it is far above any expected wait.
pub fn http() -> reqwest::Client {
    // The host builds reqwest with rustls and no provider of its own (it
    // hands each client its config); a client built without one needs a
    // process default, or `build` panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A websocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a client waits for a frame it expects before the test fails:
/// only a hang, never a busy machine, should reach it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The subprotocol that selects modhost's extended dialect; the tests speak
/// it unless they test high-templar's (`Client::connect_legacy`).
pub const SUBPROTOCOL: &str = "modhost.v1";

/// A websocket request for `url` offering `protocol`, if any.
pub fn request(
    url: &str,
    protocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("a websocket URL");
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("a header value"));
    }
    req
}

impl Client {
    /// Connects speaking modhost's extended dialect (`modhost.v1`).
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(request(url, Some(SUBPROTOCOL)))
            .await
            .expect("websocket connects");
        Client { ws }
    }

    /// Connects offering no subprotocol: high-templar's dialect.
    pub async fn connect_legacy(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(request(url, None))
            .await
            .expect("websocket connects");
        Client { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send(&v.to_string()).await;
    }

    /// The next text frame (raw), or None on close / timeout.
    pub async fn next_text_within(&mut self, wait: Duration) -> Option<String> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(_))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn next_text(&mut self) -> String {
        self.next_text_within(WAIT).await.expect("a text frame")
    }

    /// The next JSON frame that is not a resource offer.
    pub async fn next(&mut self) -> Value {
        loop {
            let text = self.next_text().await;
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            if v["type"] != "resource_offer" {
                return v;
            }
        }
    }

    /// Nothing but resource offers arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let text = self.next_text_within(wait).await?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if v["type"] != "resource_offer" {
                return Some(v);
            }
        }
    }

    pub async fn subscribe(&mut self, room: Value, rid: &str) -> Value {
        self.send_json(serde_json::json!({"type": "subscribe", "room": room, "requestId": rid}))
            .await;
        self.next().await
    }

    pub async fn call(&mut self, module: &str, command: &str, params: Value, rid: &str) -> Value {
        self.send_json(serde_json::json!({"type":"call","module":module,"command":command,"params":params,"requestId":rid}))
            .await;
        self.next().await
    }

    /// Closes cleanly (a close frame): the session ends at once.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        self.close_frame().await.map(|(code, _)| code)
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| (f.code.into(), f.reason.to_string()));
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

impl Client {
    /// Connects to `addr` as `token`, asserts it is authorized, and skips
    /// the offer.
    pub async fn authorized_at(addr: std::net::SocketAddr, token: &str) -> Client {
        let mut c = Client::connect(&format!("ws://{addr}/ws/?token={token}")).await;
        let hello = c.next().await;
        assert_eq!(hello["is_authorized"], true, "{hello}");
        c
    }

    /// Connects with small socket buffers (as the host uses), for tests
    /// that open thousands of clients. `rcvbuf` shrinks the kernel receive
    /// buffer, so a client that never reads fills up quickly; it also caps
    /// the segment size at an Ethernet-like 1,400 bytes, since over
    /// loopback (64 KiB segments) the host's kernel send buffer autotunes to
    /// megabytes per connection, which no real network peer would cause.
    pub async fn connect_small(
        addr: std::net::SocketAddr,
        path: &str,
        rcvbuf: Option<u32>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        use std::os::fd::AsRawFd;
        use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size)?;
            let mss: libc::c_int = 1400;
            // SAFETY: setsockopt on a socket we own, with a c_int option.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_MAXSEG,
                    std::ptr::from_ref(&mss).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        let stream = socket.connect(addr).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(4096)
            .max_write_buffer_size(1 << 20);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            request(&format!("ws://{addr}{path}"), Some(SUBPROTOCOL)),
            MaybeTlsStream::Plain(stream),
            Some(config),
        )
        .await?;
        Ok(Client { ws })
    }
}

/// A websocket client that writes raw frames, for input no well-behaved
/// library would send (bad UTF-8, lying lengths, broken fragmentation).
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// Websocket opcodes.
pub mod op {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

impl RawWs {
    /// Upgrades `path` (e.g. `/ws/?token=alice-token`); `Err(status)` if the
    /// server answered anything but 101.
    pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Result<RawWs, u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.map_err(|_| 0u16)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.map_err(|_| 0u16)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .map_err(|_| 0u16)?
                .map_err(|_| 0u16)?;
            if n == 0 {
                return Err(0);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return Err(status);
        }
        buf.drain(..end);
        Ok(RawWs { stream, buf })
    }

    /// Sends one masked frame.
    pub async fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = Self::header(fin, opcode, payload.len() as u64);
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await
    }

    /// Sends only a frame header claiming `len` payload bytes (and the mask).
    pub async fn header_only(&mut self, fin: bool, opcode: u8, len: u64) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = Self::header(fin, opcode, len);
        out.extend_from_slice(&[1, 2, 3, 4]);
        self.stream.write_all(&out).await
    }

    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out
    }

    /// The next frame from the server (opcode, payload); None on EOF or
    /// after `wait`.
    pub async fn read_frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, used)) = Self::parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(buf: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
        if buf.len() < 2 {
            return None;
        }
        let opcode = buf[0] & 0x0f;
        let (len, mut at) = match buf[1] & 0x7f {
            126 => (
                u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if buf[1] & 0x80 != 0 {
            at += 4; // server frames are never masked; tolerate it anyway
        }
        let payload = buf.get(at..at + len)?.to_vec();
        Some(((opcode, payload), at + len))
    }

    /// Reads until a close frame and returns its code (None: the
    /// connection ended without one, or nothing came within `WAIT`).
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some((opcode, payload)) = self.read_frame(WAIT).await {
            if opcode == op::CLOSE {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
        None
    }

    /// The next text frame's text, skipping control frames.
    pub async fn next_text(&mut self) -> Option<String> {
        while let Some((opcode, payload)) = self.read_frame(WAIT).await {
            match opcode {
                op::TEXT => return Some(String::from_utf8_lossy(&payload).into_owned()),
                op::CLOSE => return None,
                _ => continue,
            }
        }
        None
    }

    /// The next JSON frame that is not a resource offer.
    pub async fn next_json(&mut self) -> Option<Value> {
        loop {
            let text = self.next_text().await?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if v["type"] != "resource_offer" {
                return Some(v);
            }
        }
    }
}
