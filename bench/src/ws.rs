//! A minimal websocket client, just enough to drive a server at full speed.
//!
//! Why not tokio-tungstenite: the load generator shares one core with
//! nothing else and must read several hundred thousand small frames per
//! second. A general client allocates a message per frame and parses
//! headers it does not need. This one reads whatever the kernel has into one
//! buffer, then hands out frame payloads as slices of it; the caller finds
//! the few fields it wants by byte search. A read of a batched flush from
//! the server therefore costs one syscall for many frames.
//!
//! Limits, on purpose: no TLS, no extensions, no fragmented messages (the
//! servers under test never fragment), text frames only on the send side.
//! Outgoing frames are masked with an all-zero key: RFC 6455 requires the
//! mask bit, not an unpredictable key, from anything but a browser, and a
//! zero key leaves the payload as is (no per-byte XOR).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    ops::Range,
    os::fd::AsRawFd,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Opcodes we care about.
pub(crate) const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One client connection.
pub(crate) struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
}

/// Opens a TCP connection from `source` (any port) to `server`. Setting
/// `IP_BIND_ADDRESS_NO_PORT` defers the port choice to `connect`, so each
/// source address can reuse ports across destinations and we are not held
/// to ~28k sockets per address.
pub(crate) async fn tcp_connect(
    server: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to an int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Ws {
    /// Connects and performs the upgrade for `path` (with its query).
    pub(crate) async fn connect(
        server: SocketAddr,
        path: &str,
        source: Option<IpAddr>,
        buf_size: usize,
    ) -> io::Result<Ws> {
        let mut stream = tcp_connect(server, source).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: modhost.v1\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut ws = Ws {
            stream,
            buf: vec![0; buf_size.max(512)],
            start: 0,
            end: 0,
            out: Vec::with_capacity(256),
        };
        // Read the response head; anything after it is already frames.
        loop {
            if let Some(pos) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                let head = &ws.buf[..pos];
                if !head.starts_with(b"HTTP/1.1 101") {
                    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                    return Err(io::Error::other(format!(
                        "upgrade refused: {}",
                        String::from_utf8_lossy(line)
                    )));
                }
                ws.start = pos + 4;
                return Ok(ws);
            }
            if ws.end == ws.buf.len() {
                return Err(io::Error::other("upgrade response too long"));
            }
            let n = ws.stream.read(&mut ws.buf[ws.end..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            ws.end += n;
        }
    }

    /// The next complete frame already in the buffer: its opcode and where
    /// its payload lies in [`Ws::bytes`]. Control frames are handled here
    /// (a ping queues a pong; see [`Ws::flush`]). `Err` on close or a
    /// frame we do not support.
    pub(crate) fn next_frame(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (avail[0], avail[1]);
            let masked = b1 & 0x80 != 0;
            let (len, mut header) = match b1 & 0x7f {
                126 if avail.len() >= 4 => (u64::from(u16::from_be_bytes([avail[2], avail[3]])), 4),
                127 if avail.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&avail[2..10]);
                    (u64::from_be_bytes(n), 10)
                }
                126 | 127 => return Ok(None),
                n => (u64::from(n), 2),
            };
            if masked {
                header += 4;
            }
            let len = usize::try_from(len).map_err(|_| io::Error::other("frame too long"))?;
            if avail.len() < header + len {
                // Make room for the whole frame if it is bigger than what is left.
                let need = header + len;
                if need > self.buf.len() - self.start {
                    self.compact();
                    if need > self.buf.len() {
                        self.buf.resize(need, 0);
                    }
                }
                return Ok(None);
            }
            let payload = self.start + header..self.start + header + len;
            self.start += header + len;
            if masked {
                return Err(io::Error::other("server sent a masked frame"));
            }
            if b0 & 0x80 == 0 {
                return Err(io::Error::other("fragmented messages are not supported"));
            }
            match b0 & 0x0f {
                OP_TEXT | OP_BINARY => return Ok(Some((b0 & 0x0f, payload))),
                OP_PING => {
                    let data = self.buf[payload].to_vec();
                    self.queue(OP_PONG, &data);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let code = self.buf[payload.clone()]
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(
                        self.buf
                            .get(payload.start + 2..payload.end)
                            .unwrap_or_default(),
                    )
                    .into_owned();
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("server closed: {code:?} {reason}"),
                    ));
                }
                op => return Err(io::Error::other(format!("unexpected opcode {op}"))),
            }
        }
    }

    /// The buffer that [`Ws::next_frame`] ranges point into.
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads more from the socket. `Err(UnexpectedEof)` when it closed.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.compact();
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Waits for the next text or binary frame and returns its payload range.
    pub(crate) async fn recv(&mut self) -> io::Result<Range<usize>> {
        loop {
            if let Some((_, range)) = self.next_frame()? {
                return Ok(range);
            }
            self.flush().await?;
            self.fill().await?;
        }
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Queues a text frame; [`Ws::flush`] sends everything queued.
    pub(crate) fn queue_text(&mut self, payload: &[u8]) {
        self.queue(OP_TEXT, payload);
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        self.out.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            self.out.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.out.push(0x80 | 126);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(0x80 | 127);
            self.out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // All-zero masking key: the payload goes out unchanged.
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(payload);
    }

    /// Writes every queued frame.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends one text frame now.
    pub(crate) async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.queue_text(payload);
        self.flush().await
    }

    /// Waits for a frame containing `needle`, skipping others (up to `skip`).
    pub(crate) async fn expect(&mut self, needle: &[u8], skip: usize) -> io::Result<()> {
        for _ in 0..=skip {
            let range = self.recv().await?;
            if find(self.bytes(range), needle).is_some() {
                return Ok(());
            }
        }
        Err(io::Error::other(format!(
            "no frame with {} arrived",
            String::from_utf8_lossy(needle)
        )))
    }
}

/// Leaving says goodbye: a close frame (code 1000, masked with the zero key)
/// written without waiting, if the socket takes it. A server that offers
/// session resume (modhost parks a dropped client's session, with its
/// subscriptions, for `resume_grace_secs`) would otherwise keep fanning out
/// to every connection of the previous run.
impl Drop for Ws {
    fn drop(&mut self) {
        const CLOSE_1000: [u8; 8] = [0x80 | OP_CLOSE, 0x80 | 2, 0, 0, 0, 0, 0x03, 0xe8];
        let _ = self.stream.try_write(&CLOSE_1000);
    }
}

/// Position of `needle` in `hay` (memchr on the first byte, then compare).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[i + 1..i + needle.len()] == rest {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// The unsigned integer right after `key` (e.g. `"t":`) in `hay`.
pub(crate) fn find_u64(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(hay, key)? + key.len();
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_numbers() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(
            find_u64(br#"{"data":{"t":123,"s":4},"requestId":"9"}"#, br#""t":"#),
            Some(123)
        );
        assert_eq!(
            find_u64(br#"{"requestId":"17"}"#, br#""requestId":""#),
            Some(17)
        );
        assert_eq!(find_u64(br#"{"t":x}"#, br#""t":"#), None);
    }
}
