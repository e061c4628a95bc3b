//! A module client for `/module` that sends what sse-platform's own client
//! sends (`client_examples/socket_client.py` and `signing.py`, dev branch):
//! the upgrade as a GET with a JSON body and `Content-Length` (tornado's
//! `HTTPRequest(..., body=..., allow_nonstandard_methods=True)`), frames
//! encoded by tornado's `json_encode` (Python's `json.dumps` spacing,
//! `", "` and `": "`, keys in insertion order, `</` escaped), signed with
//! PyNaCl's `SigningKey.sign(..., encoder=Base64Encoder)`: base64 of the
//! 64-byte signature followed by the message.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::Role},
};

use crate::harness::{Client, TestHost, WAIT, Workspace};

/// `[external]` for the tests: on, with a templates folder in the workspace.
pub fn external_config(ws: &Workspace, extra: &str) -> String {
    let templates = ws.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    format!("[external]\nenabled = true\ntemplates = \"templates\"\n{extra}\n")
}

/// A host with `/module` on (and `extra` in `[external]`).
pub async fn host(ws: &Workspace, extra: &str) -> TestHost {
    TestHost::start(ws, &external_config(ws, extra)).await
}

/// A user's call of `pymod.divide` under `rid`, as the tests' module
/// (`ModuleClient::serve`) and the Python example both serve it.
pub async fn divide(
    user: &mut Client,
    dividend: impl Into<Value>,
    divisor: impl Into<Value>,
    rid: &str,
) -> Value {
    let params = json!({"dividend": dividend.into(), "divisor": divisor.into()});
    user.call("pymod", "divide", params, rid).await
}

/// Starts a user's streamed call of `pymod.count` to `n` under `rid`; the
/// caller reads the items (they may interleave with publishes).
pub async fn start_count(user: &mut Client, n: u64, rid: &str) {
    user.send_json(json!({"type": "call", "module": "pymod", "command": "count", "params": {"n": n}, "requestId": rid}))
        .await;
}

/// Python's `json.dumps` of `v` (default separators, `ensure_ascii`),
/// with tornado's `</` escape.
pub fn py_json(v: &Value) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(k, out);
                    out.push_str(": ");
                    walk(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    walk(v, out);
                }
                out.push(']');
            }
            Value::String(s) => string(s, out),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    walk(v, &mut out);
    out.replace("</", "<\\/")
}

/// `json.dumps` of a dict built in this key order.
pub fn py_dict(pairs: &[(&str, Value)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", py_json(&json!(k)), py_json(v)))
        .collect();
    format!("{{{}}}", parts.join(", ")).replace("</", "<\\/")
}

/// A uuid4 as Python's `str(uuid.uuid4())` writes it.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One module connection.
pub struct ModuleClient {
    pub ws: WebSocketStream<TcpStream>,
    pub key: SigningKey,
    pub name: String,
    /// The host's challenge, in `challenge = "required"` mode.
    pub challenge: Option<String>,
    /// Frames sent and received, for the closing note's transcript.
    pub transcript: Vec<String>,
    /// Frames that arrived while waiting for another.
    pub queued: Vec<Value>,
}

/// The upgrade request sse-platform's client sends, byte for byte as its
/// `socket_client.py` on tornado 6.6.1 wrote it to a socket (header names
/// and order, `Content-Length`, the body); tornado draws a new
/// `Sec-Websocket-Key` each time, this is one it sent.
pub fn upgrade_request(host: &str, path: &str, body: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-Websocket-Key: SiFT+AxM61ot5Fz826vTTQ==\r\nSec-Websocket-Version: 13\r\n\
         Host: {host}\r\nUser-Agent: Tornado/6.6.1\r\nContent-Length: {}\r\n\
         Accept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `request` and reads the response head: the status, and the
/// stream if it was 101.
pub async fn raw_upgrade(addr: std::net::SocketAddr, request: &str) -> (u16, Option<TcpStream>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be taken from the socket.
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return (0, None),
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, (status == 101).then_some(stream))
}

impl ModuleClient {
    /// Connects as sse-platform's client does, claiming `name` in the body.
    pub async fn connect(host: &TestHost, name: &str, key: SigningKey) -> ModuleClient {
        let body = py_dict(&[
            ("type", json!("module_socket_connect")),
            ("module", json!(name)),
        ]);
        let request = upgrade_request(&host.addr.to_string(), "/module", &body);
        let (status, stream) = raw_upgrade(host.addr, &request).await;
        assert_eq!(status, 101, "the upgrade with a JSON body is accepted");
        let ws = WebSocketStream::from_raw_socket(stream.unwrap(), Role::Client, None).await;
        ModuleClient {
            ws,
            key,
            name: name.to_owned(),
            challenge: None,
            transcript: vec![format!("> {request}")],
            queued: Vec::new(),
        }
    }

    /// A frame as `Client.write` builds it: `message` plus `origin` and a
    /// fresh `resolve_id`, signed by `key` under the name `origin`.
    pub fn frame_as(
        key: &SigningKey,
        origin: &str,
        message: &[(&str, Value)],
        challenge: Option<&str>,
    ) -> (String, String) {
        let rid = uuid4();
        let mut pairs: Vec<(&str, Value)> = message.to_vec();
        if let Some(c) = challenge {
            pairs.push(("challenge", json!(c)));
        }
        (Self::signed(key, origin, pairs, &rid), rid)
    }

    /// A frame signed by `key` as `origin` under a given `resolve_id`.
    pub fn frame_with_id(
        key: &SigningKey,
        origin: &str,
        message: &[(&str, Value)],
        rid: &str,
    ) -> String {
        Self::signed(key, origin, message.to_vec(), rid)
    }

    fn signed(key: &SigningKey, origin: &str, mut pairs: Vec<(&str, Value)>, rid: &str) -> String {
        pairs.push(("origin", json!(origin)));
        pairs.push(("resolve_id", json!(rid)));
        let inner = py_dict(&pairs);
        let mut signed = key.sign(inner.as_bytes()).to_bytes().to_vec();
        signed.extend_from_slice(inner.as_bytes());
        py_dict(&[
            ("signed_msg", json!(BASE64.encode(signed))),
            ("origin", json!(origin)),
            ("resolve_id", json!(rid)),
        ])
    }

    /// This module's own frame for `message`.
    pub fn frame(&self, message: &[(&str, Value)]) -> (String, String) {
        Self::frame_as(&self.key, &self.name, message, self.challenge.as_deref())
    }

    pub async fn send_text(&mut self, text: &str) {
        self.transcript.push(format!("> {text}"));
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next frame from the host (None: closed or nothing in `WAIT`).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.queued.is_empty() {
            return Some(self.queued.remove(0));
        }
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.transcript.push(format!("< {t}"));
                    return serde_json::from_str(&t).ok();
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    self.transcript.push(format!("< close {c:?}"));
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT).await.expect("a frame from the host")
    }

    /// The host's answer to the frame `rid` (other frames are queued).
    pub async fn answer_to(&mut self, rid: &str) -> Value {
        if let Some(at) = self.queued.iter().position(|v| v["resolve_id"] == rid) {
            return self.queued.remove(at);
        }
        loop {
            let v = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.transcript.push(format!("< {t}"));
                    serde_json::from_str::<Value>(&t).unwrap()
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => panic!("no answer to {rid}: {other:?}"),
            };
            if v["resolve_id"] == rid {
                return v;
            }
            self.queued.push(v);
        }
    }

    /// Sends `message` signed and waits for its answer.
    pub async fn request(&mut self, message: &[(&str, Value)]) -> Value {
        let (text, rid) = self.frame(message);
        self.send_text(&text).await;
        self.answer_to(&rid).await
    }

    /// A publish of `data` to `rooms`, for the call `call` is handling if
    /// given; its answer.
    pub async fn publish(&mut self, rooms: Value, data: Value, call: Option<Value>) -> Value {
        let mut message = vec![("type", json!("publish")), ("rooms", rooms), ("data", data)];
        message.extend(call.map(|id| ("call", id)));
        self.request(&message).await
    }

    /// `module_start` as sse-platform's modules send it.
    pub async fn start(&mut self) -> Value {
        let name = self.name.clone();
        self.request(&[
            ("type", json!("module_start")),
            ("module_name", json!(name)),
            ("port", json!(8000)),
        ])
        .await
    }

    /// `register` with `commands`.
    pub async fn register(&mut self, commands: Value) -> Value {
        self.request(&[
            ("type", json!("register")),
            (
                "manifest",
                json!({"version": "1.0.0", "commands": commands}),
            ),
        ])
        .await
    }

    /// A started and registered module serving `divide`, `count` (a stream
    /// of `n` items) and `slow` (never answered).
    pub async fn serving(host: &TestHost, ws: &mut Workspace, name: &str) -> ModuleClient {
        let mut m = ModuleClient::connect(host, name, ws.key(name)).await;
        assert_eq!(m.start().await["status"], "recognized");
        let r = m
            .register(json!([
                {"name": "divide", "params": ["dividend", "divisor"]},
                {"name": "count", "params": ["n"], "streams": true},
                {"name": "slow"},
            ]))
            .await;
        assert_eq!(r["success"], true, "{r}");
        m
    }

    /// Answers calls as `serving` declares, until the host closes or
    /// `calls` have been answered; returns the callers seen.
    pub async fn serve(mut self, calls: usize) -> (ModuleClient, Vec<Value>) {
        let mut callers = Vec::new();
        while callers.len() < calls {
            let Some(frame) = self.next_within(WAIT).await else {
                break;
            };
            if frame["type"] != "call" {
                continue;
            }
            callers.push(frame["caller"].clone());
            let id = frame["id"].clone();
            let p = &frame["params"];
            match frame["command"].as_str().unwrap() {
                "divide" => {
                    let q = p["dividend"].as_f64().unwrap() / p["divisor"].as_f64().unwrap();
                    let text = self
                        .frame(&[
                            ("type", json!("reply")),
                            ("id", id),
                            ("result", json!({"quotient": q})),
                        ])
                        .0;
                    self.send_quiet(&text).await;
                }
                "count" => {
                    let n = p["n"].as_u64().unwrap();
                    for i in 1..=n {
                        let text = self
                            .frame(&[
                                ("type", json!("reply")),
                                ("id", id.clone()),
                                ("result", json!(i)),
                                ("done", json!(i == n)),
                            ])
                            .0;
                        self.send_quiet(&text).await;
                    }
                }
                _ => {}
            }
        }
        (self, callers)
    }

    /// Sends without keeping a transcript line (load tests).
    pub async fn send_quiet(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }
}
