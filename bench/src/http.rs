//! A keep-alive HTTP/1.1 client for `POST /trigger/` and the admin API:
//! one request at a time per connection, `Content-Length` bodies only
//! (both servers under test answer that way).

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::ws::{find, tcp_connect};

pub(crate) struct Http {
    server: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl Http {
    pub(crate) async fn connect(server: SocketAddr) -> io::Result<Http> {
        Ok(Http {
            server,
            stream: tcp_connect(server, None).await?,
            buf: Vec::with_capacity(4096),
            req: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and returns the status and body.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: &str,
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        self.req.clear();
        self.req.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {bearer}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.server,
                body.len()
            )
            .as_bytes(),
        );
        self.req.extend_from_slice(body);
        self.stream.write_all(&self.req).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("bad status line"))?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other("response without content-length"))?;
        while self.buf.len() < head_end + len {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + len].to_vec()))
    }
}
