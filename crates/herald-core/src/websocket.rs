//! RFC 6455 framing for the server side of a WebSocket, without I/O.
//!
//! Herald frames its own WebSocket traffic instead of going through a general
//! WebSocket library because of what an idle connection costs and what a
//! delivery costs: a [`Decoder`] holds no buffer while no frame is half-read
//! (the bytes of a read are parsed where they landed and only an incomplete
//! frame is copied aside), and the writer builds every frame of a wake-up,
//! header and payload, straight into one buffer for one `write`.
//!
//! What a server must check (RFC 6455 section 5): client frames are masked;
//! reserved bits are zero (no extension is ever negotiated); control frames are
//! final and at most 125 bytes; continuation frames continue a started message
//! and a new message does not start inside one; text is UTF-8; a close payload
//! is empty or a code plus UTF-8 reason. Any breach is a [`DecodeError`], after
//! which the connection is closed (1002, 1007 or 1009).

use std::collections::VecDeque;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes Herald sends (RFC 6455 section 7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// A complete message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// Binary messages are refused by AppSync Events; only the fact is kept.
    Binary,
    /// Must be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    Pong,
    /// The client's close code, if it sent one.
    Close(Option<u16>),
}

/// Why the client's bytes cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A framing rule was broken (close with 1002).
    Protocol(&'static str),
    /// A text message is not UTF-8 (close with 1007).
    InvalidUtf8,
    /// A frame or message is larger than allowed (close with 1009).
    TooBig { size: u64, max: usize },
}

impl DecodeError {
    /// The close code this error calls for.
    pub fn close_code(&self) -> u16 {
        match self {
            DecodeError::Protocol(_) => close_code::PROTOCOL_ERROR,
            DecodeError::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            DecodeError::TooBig { .. } => close_code::TOO_BIG,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
            DecodeError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            DecodeError::TooBig { size, max } => {
                write!(f, "message of {size} bytes is over the {max}-byte limit")
            }
        }
    }
}

/// Turns the bytes a server reads into complete client messages.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// Bytes of a frame not yet complete. Empty (and unallocated) between
    /// frames, which is where an idle connection sits.
    partial: Vec<u8>,
    /// A fragmented message being assembled: whether it is text, and its bytes.
    fragments: Option<(bool, Vec<u8>)>,
    /// Complete messages not yet taken. A read adds at most what fits in it.
    ready: VecDeque<Incoming>,
    /// Set once an error was returned: nothing more is parsed.
    failed: Option<DecodeError>,
    /// Total size of the incomplete frame at the end of the last parse, when
    /// its header was complete: `partial` is sized for it once.
    want: usize,
}

impl Decoder {
    /// `max_message`: the largest frame or reassembled message accepted.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: Vec::new(),
            fragments: None,
            ready: VecDeque::new(),
            failed: None,
            want: 0,
        }
    }

    /// The next complete message, if any.
    pub fn next_message(&mut self) -> Option<Incoming> {
        let m = self.ready.pop_front();
        if self.ready.is_empty() && self.ready.capacity() > 16 {
            self.ready = VecDeque::new();
        }
        m
    }

    /// The error a previous [`Decoder::feed`] returned, if any.
    pub fn failed(&self) -> Option<&DecodeError> {
        self.failed.as_ref()
    }

    /// Parse `data` (just read from the socket). Complete messages become
    /// available through [`Decoder::next_message`], in order, even when an
    /// error follows them in the same read.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.want = 0;
        let result = if self.partial.is_empty() {
            let (consumed, result) = self.parse(data);
            if result.is_ok() && consumed < data.len() {
                self.partial
                    .reserve_exact(self.want.max(data.len() - consumed));
                self.partial.extend_from_slice(&data[consumed..]);
            }
            result
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(data);
            let (consumed, result) = self.parse(&buf);
            if result.is_ok() && consumed < buf.len() {
                buf.drain(..consumed);
                buf.reserve_exact(self.want.saturating_sub(buf.len()));
                self.partial = buf;
            }
            result
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.partial = Vec::new();
        }
        result
    }

    /// Parse every complete frame at the start of `buf`; how many bytes they
    /// took.
    fn parse(&mut self, buf: &[u8]) -> (usize, Result<(), DecodeError>) {
        let mut at = 0;
        loop {
            match self.parse_frame(&buf[at..]) {
                Ok(Some(used)) => at += used,
                Ok(None) => return (at, Ok(())),
                Err(e) => return (at, Err(e)),
            }
        }
    }

    /// One frame from the start of `buf`: `Ok(None)` if it is not all there.
    fn parse_frame(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(DecodeError::Protocol("reserved bits set"));
        }
        let opcode = b0 & 0x0f;
        if b1 & 0x80 == 0 {
            return Err(DecodeError::Protocol("client frame not masked"));
        }
        let (len, mut header) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(DecodeError::Protocol("frame length over 2^63"));
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let is_control = opcode & 0x8 != 0;
        if is_control {
            if !fin {
                return Err(DecodeError::Protocol("fragmented control frame"));
            }
            if len > 125 {
                return Err(DecodeError::Protocol("control frame over 125 bytes"));
            }
        } else if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY) {
            return Err(DecodeError::Protocol("unknown opcode"));
        }
        // Refuse an oversize frame from its header, before buffering it.
        let assembled = self.fragments.as_ref().map_or(0, |(_, b)| b.len() as u64);
        if !is_control && assembled + len > self.max_message as u64 {
            return Err(DecodeError::TooBig {
                size: assembled + len,
                max: self.max_message,
            });
        }
        if buf.len() < header + 4 {
            return Ok(None);
        }
        let mask: [u8; 4] = buf[header..header + 4].try_into().expect("4 bytes");
        header += 4;
        let len = len as usize;
        if buf.len() < header + len {
            // Make room once for the whole frame rather than growing per read.
            self.want = header + len;
            return Ok(None);
        }
        let payload = &buf[header..header + len];
        match opcode {
            OP_PING => self.ready.push_back(Incoming::Ping(unmask(payload, mask))),
            OP_PONG => self.ready.push_back(Incoming::Pong),
            OP_CLOSE => self
                .ready
                .push_back(Incoming::Close(close_payload(&unmask(payload, mask))?)),
            OP_CONTINUATION => {
                let Some((_, bytes)) = self.fragments.as_mut() else {
                    return Err(DecodeError::Protocol("continuation without a message"));
                };
                unmask_into(bytes, payload, mask);
                if fin {
                    let (is_text, bytes) = self.fragments.take().expect("checked above");
                    self.finish_message(is_text, bytes)?;
                }
            }
            _ => {
                if self.fragments.is_some() {
                    return Err(DecodeError::Protocol("new message inside a fragmented one"));
                }
                let is_text = opcode == OP_TEXT;
                let bytes = unmask(payload, mask);
                if fin {
                    self.finish_message(is_text, bytes)?;
                } else {
                    self.fragments = Some((is_text, bytes));
                }
            }
        }
        Ok(Some(header + len))
    }

    fn finish_message(&mut self, is_text: bool, bytes: Vec<u8>) -> Result<(), DecodeError> {
        let message = if is_text {
            Incoming::Text(String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?)
        } else {
            Incoming::Binary
        };
        self.ready.push_back(message);
        Ok(())
    }
}

fn unmask(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    unmask_into(&mut out, payload, mask);
    out
}

fn unmask_into(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

fn close_payload(p: &[u8]) -> Result<Option<u16>, DecodeError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(DecodeError::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            // Codes a peer may send (RFC 6455 7.4); 1005, 1006 and 1015 are
            // only ever reported locally, so echoing them would be an error too.
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(DecodeError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(&p[2..]).is_err() {
                return Err(DecodeError::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

/// Append an unmasked, final server frame header for `len` payload bytes.
fn header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    header_bytes(out, 0x80 | opcode, 0, len);
}

/// First byte as given, then the mask bit (`0x80` or 0) with the length.
fn header_bytes(out: &mut Vec<u8>, first: u8, mask_bit: u8, len: usize) {
    out.push(first);
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
}

/// Append a masked client frame, as a browser sends it: for Herald's load
/// generator and tests. `mask` must be unpredictable per frame (RFC 6455
/// section 5.3) when talking to anything but a test server.
pub fn masked_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(payload.len() + 14);
    header_bytes(
        out,
        if fin { 0x80 } else { 0 } | opcode,
        0x80,
        payload.len(),
    );
    out.extend_from_slice(&mask);
    unmask_into(out, payload, mask);
}

/// Append a text frame whose payload is the concatenation of `pieces` (so a
/// frame can be built from shared parts without joining them first).
pub fn text_frame(out: &mut Vec<u8>, pieces: &[&str]) {
    let len = pieces.iter().map(|p| p.len()).sum();
    out.reserve(len + 10);
    header(out, OP_TEXT, len);
    for p in pieces {
        out.extend_from_slice(p.as_bytes());
    }
}

/// Append a pong answering a ping with `payload` (at most 125 bytes, as the
/// decoder guarantees).
pub fn pong_frame(out: &mut Vec<u8>, payload: &[u8]) {
    header(out, OP_PONG, payload.len());
    out.extend_from_slice(payload);
}

/// Append a close frame; the reason is cut to fit the 125-byte limit.
pub fn close_frame(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    header(out, OP_CLOSE, 2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        masked_frame(&mut out, fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d]);
        out
    }

    fn all(d: &mut Decoder) -> Vec<Incoming> {
        std::iter::from_fn(|| d.next_message()).collect()
    }

    #[test]
    fn messages_split_anywhere_come_out_whole_and_in_order() {
        let mut wire = client_frame(true, OP_TEXT, b"{\"type\":\"connection_init\"}");
        wire.extend(client_frame(true, OP_PING, b"hi"));
        wire.extend(client_frame(true, OP_TEXT, "é€😀".as_bytes()));
        let long = "x".repeat(70_000);
        wire.extend(client_frame(true, OP_TEXT, long.as_bytes()));
        wire.extend(client_frame(
            true,
            OP_CLOSE,
            &[0x03, 0xe8, b'b', b'y', b'e'],
        ));
        let expected = vec![
            Incoming::Text("{\"type\":\"connection_init\"}".into()),
            Incoming::Ping(b"hi".to_vec()),
            Incoming::Text("é€😀".into()),
            Incoming::Text(long.clone()),
            Incoming::Close(Some(1000)),
        ];
        for chunk in [1, 2, 3, 7, 100, 4096, wire.len()] {
            let mut d = Decoder::new(1 << 20);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                d.feed(piece).unwrap();
                got.extend(all(&mut d));
            }
            assert_eq!(got, expected, "chunk size {chunk}");
            assert_eq!(d.partial.capacity(), 0, "nothing kept between frames");
        }
    }

    /// Random traffic (sizes across all three length encodings, fragments with
    /// control frames between them) fed in random pieces comes out exactly as
    /// sent. A fixed-seed generator keeps failures reproducible.
    #[test]
    fn random_traffic_in_random_pieces() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..20 {
            let (mut wire, mut expected) = (Vec::new(), Vec::new());
            for _ in 0..60 {
                match rnd(4) {
                    0 => {
                        let p: Vec<u8> = (0..rnd(126)).map(|_| rnd(256) as u8).collect();
                        wire.extend(client_frame(true, OP_PING, &p));
                        expected.push(Incoming::Ping(p));
                    }
                    1 => {
                        wire.extend(client_frame(true, OP_BINARY, &[1, 2, 3]));
                        expected.push(Incoming::Binary);
                    }
                    _ => {
                        let len = [rnd(126), 126 + rnd(65_410), 65_536 + rnd(5_000)][rnd(3)];
                        let text: String = (0..len)
                            .map(|_| ['a', 'é', '€', '😀', '"'][rnd(5)])
                            .collect();
                        // Split on byte boundaries, even inside a character.
                        let bytes = text.as_bytes();
                        let parts = 1 + rnd(4);
                        let mut at = 0;
                        for k in 0..parts {
                            let end = if k + 1 == parts {
                                bytes.len()
                            } else {
                                (at + rnd(bytes.len() - at + 1)).min(bytes.len())
                            };
                            let op = if k == 0 { OP_TEXT } else { OP_CONTINUATION };
                            wire.extend(client_frame(k + 1 == parts, op, &bytes[at..end]));
                            if k + 1 < parts && rnd(2) == 0 {
                                wire.extend(client_frame(true, OP_PONG, b""));
                                expected.push(Incoming::Pong);
                            }
                            at = end;
                        }
                        expected.push(Incoming::Text(text));
                    }
                }
            }
            let mut d = Decoder::new(1 << 20);
            let mut got = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let end = (at + 1 + rnd(9_000)).min(wire.len());
                d.feed(&wire[at..end]).unwrap();
                got.extend(all(&mut d));
                at = end;
            }
            assert_eq!(got.len(), expected.len(), "round {round}");
            assert!(got == expected, "round {round}");
            assert_eq!(d.partial.capacity(), 0);
        }
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut wire = client_frame(false, OP_TEXT, b"{\"a\":");
        wire.extend(client_frame(true, OP_PING, b""));
        wire.extend(client_frame(false, OP_CONTINUATION, b"1"));
        wire.extend(client_frame(true, OP_CONTINUATION, b"}"));
        let mut d = Decoder::new(100);
        d.feed(&wire).unwrap();
        assert_eq!(
            all(&mut d),
            [Incoming::Ping(vec![]), Incoming::Text("{\"a\":1}".into())]
        );
    }

    #[test]
    fn binary_pong_and_bare_close() {
        let mut wire = client_frame(true, OP_BINARY, &[0, 1, 2]);
        wire.extend(client_frame(true, OP_PONG, b"x"));
        wire.extend(client_frame(true, OP_CLOSE, b""));
        let mut d = Decoder::new(100);
        d.feed(&wire).unwrap();
        assert_eq!(
            all(&mut d),
            [Incoming::Binary, Incoming::Pong, Incoming::Close(None)]
        );
    }

    fn error_of(wire: &[u8], max: usize) -> DecodeError {
        let mut d = Decoder::new(max);
        let e = d.feed(wire).unwrap_err();
        // Once failed, always failed.
        assert_eq!(d.feed(b"").unwrap_err(), e);
        e
    }

    #[test]
    fn protocol_breaches_are_refused() {
        let mut unmasked = client_frame(true, OP_TEXT, b"hi");
        unmasked[1] &= 0x7f;
        assert_eq!(
            error_of(&unmasked, 100),
            DecodeError::Protocol("client frame not masked")
        );
        let mut rsv = client_frame(true, OP_TEXT, b"hi");
        rsv[0] |= 0x40;
        assert_eq!(error_of(&rsv, 100).close_code(), 1002);
        assert_eq!(
            error_of(&client_frame(true, 0x3, b""), 100).close_code(),
            1002
        );
        assert_eq!(
            error_of(&client_frame(false, OP_PING, b""), 100),
            DecodeError::Protocol("fragmented control frame")
        );
        assert_eq!(
            error_of(&client_frame(true, OP_PING, &[0; 126]), 1000),
            DecodeError::Protocol("control frame over 125 bytes")
        );
        assert_eq!(
            error_of(&client_frame(true, OP_CONTINUATION, b"x"), 100),
            DecodeError::Protocol("continuation without a message")
        );
        let mut two = client_frame(false, OP_TEXT, b"a");
        two.extend(client_frame(true, OP_TEXT, b"b"));
        assert_eq!(error_of(&two, 100).close_code(), 1002);
        assert_eq!(
            error_of(&client_frame(true, OP_CLOSE, &[3]), 100).close_code(),
            1002
        );
        for code in [0u16, 999, 1005, 1006, 1015, 2000, 5000] {
            assert_eq!(
                error_of(&client_frame(true, OP_CLOSE, &code.to_be_bytes()), 100),
                DecodeError::Protocol("invalid close code"),
                "{code}"
            );
        }
        let mut d = Decoder::new(100);
        d.feed(&client_frame(true, OP_CLOSE, &4999u16.to_be_bytes()))
            .unwrap();
        assert_eq!(d.next_message(), Some(Incoming::Close(Some(4999))));
    }

    #[test]
    fn bad_utf8_is_1007() {
        let e = error_of(&client_frame(true, OP_TEXT, &[0xff, 0xfe]), 100);
        assert_eq!(e, DecodeError::InvalidUtf8);
        assert_eq!(e.close_code(), 1007);
        let e = error_of(&client_frame(true, OP_CLOSE, &[3, 232, 0xff]), 100);
        assert_eq!(e.close_code(), 1007);
    }

    #[test]
    fn oversize_is_refused_from_the_header_and_across_fragments() {
        let big = client_frame(true, OP_TEXT, &[b'a'; 1000]);
        // Only the header has arrived: already refused.
        assert_eq!(
            error_of(&big[..8], 999),
            DecodeError::TooBig {
                size: 1000,
                max: 999
            }
        );
        let mut frags = client_frame(false, OP_TEXT, &[b'a'; 600]);
        frags.extend(client_frame(true, OP_CONTINUATION, &[b'a'; 600]));
        assert_eq!(error_of(&frags, 1000).close_code(), 1009);
        let mut d = Decoder::new(1000);
        d.feed(&big).unwrap();
        assert_eq!(d.next_message(), Some(Incoming::Text("a".repeat(1000))));
    }

    #[test]
    fn messages_before_an_error_are_kept() {
        let mut wire = client_frame(true, OP_TEXT, b"first");
        wire.extend(client_frame(true, 0x3, b""));
        let mut d = Decoder::new(100);
        assert!(d.feed(&wire).is_err());
        assert_eq!(d.next_message(), Some(Incoming::Text("first".into())));
        assert!(d.failed().is_some());
    }

    #[test]
    fn server_frames() {
        let mut out = Vec::new();
        text_frame(&mut out, &["{\"a\":", "1}"]);
        assert_eq!(out, b"\x81\x07{\"a\":1}");
        out.clear();
        let long = "y".repeat(300);
        text_frame(&mut out, &[&long]);
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        assert_eq!(out.len(), 304);
        out.clear();
        let huge = "z".repeat(70_000);
        text_frame(&mut out, &[&huge]);
        assert_eq!(&out[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
        out.clear();
        pong_frame(&mut out, b"hi");
        assert_eq!(out, b"\x8a\x02hi");
        out.clear();
        close_frame(&mut out, 1008, &"é".repeat(100));
        assert_eq!(out[0], 0x88);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        assert_eq!(&out[2..4], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
