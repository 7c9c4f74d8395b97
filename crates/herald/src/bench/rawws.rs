//! A minimal WebSocket client for the load generator: no allocation per
//! received frame, so one core can read a million frames a second. It speaks
//! just enough RFC 6455 for AppSync Events: the upgrade with subprotocols, masked
//! text frames out, unmasked frames in (text, ping, close).

use base64::Engine as _;
use herald_core::websocket;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Join, Sink};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

pub struct RawWs<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// The reading half of a split connection. Its writes (answers to pings) go
/// nowhere: AppSync servers keep connections alive with `ka` text frames, not
/// pings, so a split publisher never needs to answer one.
pub type ReadHalf = RawWs<Join<OwnedReadHalf, Sink>>;

/// What the frame reader saw.
pub enum Frame<'a> {
    Text(&'a [u8]),
    Close,
}

impl RawWs {
    /// Open a socket (from `source` if given), upgrade, and offer the AppSync
    /// subprotocol with an API key auth header.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        api_key: &str,
        source: Option<IpAddr>,
    ) -> std::io::Result<RawWs> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let auth = serde_json::json!({"host": host, "x-api-key": api_key}).to_string();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth);
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let req = format!(
            "GET /event/realtime HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: aws-appsync-event-ws, header-{header}\r\n\r\n"
        );
        let mut ws = RawWs {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        };
        ws.stream.write_all(req.as_bytes()).await?;
        // Read the response head.
        loop {
            let n = ws.stream.read(&mut ws.buf[ws.end..]).await?;
            if n == 0 {
                return Err(std::io::Error::other(
                    "connection closed during the upgrade",
                ));
            }
            ws.end += n;
            if let Some(pos) = ws.buf[..ws.end].windows(4).position(|w| w == b"\r\n\r\n") {
                if !ws.buf.starts_with(b"HTTP/1.1 101") {
                    return Err(std::io::Error::other(format!(
                        "upgrade refused: {}",
                        String::from_utf8_lossy(&ws.buf[..pos])
                    )));
                }
                ws.start = pos + 4;
                return Ok(ws);
            }
            if ws.end == ws.buf.len() {
                return Err(std::io::Error::other("upgrade response too long"));
            }
        }
    }

    /// Split into a frame reader and a raw writer (for [`text_frame`]s), so one
    /// task can keep sending while another reads the answers.
    pub fn into_split(self) -> (ReadHalf, OwnedWriteHalf) {
        let (r, w) = self.stream.into_split();
        let reader = RawWs {
            stream: tokio::io::join(r, tokio::io::sink()),
            buf: self.buf,
            start: self.start,
            end: self.end,
        };
        (reader, w)
    }
}

/// A masked client text frame carrying `text`.
pub fn text_frame(text: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    websocket::masked_frame(
        &mut frame,
        true,
        websocket::OP_TEXT,
        text.as_bytes(),
        rand::random(),
    );
    frame
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawWs<S> {
    /// Send a masked text frame.
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.stream.write_all(&text_frame(text)).await
    }

    /// Read frames, calling `on_frame` for each, until it returns `false` or the
    /// connection ends. Pings are answered; other control frames ignored.
    pub async fn read_frames(
        &mut self,
        mut on_frame: impl FnMut(Frame<'_>) -> bool,
    ) -> std::io::Result<()> {
        loop {
            // Parse every complete frame in the buffer.
            loop {
                let avail = &self.buf[self.start..self.end];
                if avail.len() < 2 {
                    break;
                }
                let opcode = avail[0] & 0x0f;
                let (len, header) = match avail[1] & 0x7f {
                    126 if avail.len() >= 4 => {
                        (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4)
                    }
                    127 if avail.len() >= 10 => (
                        u64::from_be_bytes(avail[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => break,
                    n => (n as usize, 2),
                };
                if avail.len() < header + len {
                    if header + len > self.buf.len() {
                        self.buf.resize(header + len, 0);
                    }
                    break;
                }
                let payload_start = self.start + header;
                self.start += header + len;
                match opcode {
                    0x1 | 0x0 => {
                        let keep =
                            on_frame(Frame::Text(&self.buf[payload_start..payload_start + len]));
                        if !keep {
                            return Ok(());
                        }
                    }
                    0x8 => {
                        on_frame(Frame::Close);
                        return Ok(());
                    }
                    0x9 => {
                        let data = self.buf[payload_start..payload_start + len].to_vec();
                        let mut pong = vec![0x8a, 0x80 | data.len() as u8, 0, 0, 0, 0];
                        pong.extend(data);
                        self.stream.write_all(&pong).await?;
                    }
                    _ => {}
                }
            }
            // Compact, then read more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                on_frame(Frame::Close);
                return Ok(());
            }
            self.end += n;
        }
    }
}

/// Find `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The publish timestamp (µs since the epoch) in a `data` frame whose event is
/// `{"t":<µs>,...}` (so `\"t\":` in the frame's escaped string).
pub fn timestamp_us(frame: &[u8]) -> Option<u64> {
    let at = find(frame, br#"\"t\":"#)? + 6;
    let mut v = 0u64;
    let mut any = false;
    for &b in &frame[at..] {
        if b.is_ascii_digit() {
            v = v * 10 + (b - b'0') as u64;
            any = true;
        } else {
            break;
        }
    }
    any.then_some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        let f = br#"{"type":"data","id":"s","event":"{\"t\":1732700000123456,\"p\":\"x\"}"}"#;
        assert_eq!(super::timestamp_us(f), Some(1732700000123456));
        assert_eq!(super::timestamp_us(br#"{"type":"ka"}"#), None);
    }
}
