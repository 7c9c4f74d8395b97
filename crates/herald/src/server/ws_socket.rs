//! The socket of one WebSocket connection: reads bytes into the I/O-free
//! [`Decoder`] and writes frames built by the caller.
//!
//! Buffers are per worker thread, not per connection, so an idle connection
//! keeps none: a read lands in the thread's read buffer and is parsed there
//! (only an incomplete frame is copied aside by the decoder); the frames of a
//! write are built in the thread's write buffer and handed to the socket in
//! one call, and only what the socket does not take at once is copied into a
//! buffer owned by the connection until it is written. Neither thread buffer
//! is borrowed across an `.await`: both are used inside a single poll.

use herald_core::websocket::{DecodeError, Decoder, Incoming};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes asked for per read. Larger messages simply take several reads.
const READ_CHUNK: usize = 16 * 1024;
/// A thread's write buffer grows to the largest write it has built; past this
/// it is released after the write instead of being kept.
const KEEP_WRITE_BUFFER: usize = 1024 * 1024;

thread_local! {
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
    static WRITE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why no message could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the TCP connection.
    Closed,
    Io(io::Error),
    /// The client broke the protocol or a limit; close with its code.
    Decode(DecodeError),
}

pub struct WsSocket<S> {
    io: S,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsSocket<S> {
    /// `max_message`: the largest frame or message accepted from the client.
    pub fn new(io: S, max_message: usize) -> WsSocket<S> {
        WsSocket {
            io,
            decoder: Decoder::new(max_message),
        }
    }

    /// The next message from the client. Cancel-safe (all state lives in
    /// `self`), so it can sit in a `select!`. Messages that arrived before a
    /// protocol error are returned before the error.
    pub async fn next(&mut self) -> Result<Incoming, ReadError> {
        loop {
            if let Some(m) = self.decoder.next_message() {
                return Ok(m);
            }
            if let Some(e) = self.decoder.failed() {
                return Err(ReadError::Decode(e.clone()));
            }
            std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
        }
    }

    /// Read once into the thread's buffer and parse what came.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        let got = ready!(self.poll_read_chunk(cx, |decoder, data| {
            // A decode error is kept by the decoder and reported by `next`
            // after the messages before it.
            let _ = decoder.feed(data);
            data.len()
        }));
        match got {
            Ok(0) => Poll::Ready(Err(ReadError::Closed)),
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(ReadError::Io(e))),
        }
    }

    /// Read once into the thread's buffer and hand the bytes (none at end of
    /// stream) to `f`, inside this poll.
    fn poll_read_chunk<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Decoder, &[u8]) -> R,
    ) -> Poll<io::Result<R>> {
        READ_BUF.with_borrow_mut(|buf| {
            let mut rb = ReadBuf::new(buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            Poll::Ready(Ok(f(&mut self.decoder, rb.filled())))
        })
    }

    /// After a decode error: read and discard until the client closes, so the
    /// close frame already sent is not lost to a reset (closing a socket with
    /// unread input makes the kernel send RST). The caller bounds the time.
    pub async fn discard_input(&mut self) {
        loop {
            let read = std::future::poll_fn(|cx| self.poll_read_chunk(cx, |_, data| data.len()));
            if !matches!(read.await, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// Write the frames `build` appends to a buffer, then flush. In the common
    /// case the socket takes them all at once and nothing is allocated.
    ///
    /// The deadline is on *progress*, not on the whole write: the write fails
    /// with `TimedOut` only when the socket accepts no byte for `stall`, so a
    /// client reading slowly but steadily is never cut off mid-stream.
    pub async fn send(
        &mut self,
        stall: Duration,
        build: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<()> {
        let mut build = Some(build);
        let rest = std::future::poll_fn(|cx| {
            Poll::Ready(WRITE_BUF.with_borrow_mut(|buf| {
                buf.clear();
                if let Some(build) = build.take() {
                    build(buf);
                }
                let mut written = 0;
                while written < buf.len() {
                    match Pin::new(&mut self.io).poll_write(cx, &buf[written..]) {
                        Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Ready(Err(e)) => return Err(e),
                        Poll::Pending => break,
                    }
                }
                // Empty (no allocation) when everything was written.
                let rest = buf[written..].to_vec();
                if buf.capacity() > KEEP_WRITE_BUFFER {
                    *buf = Vec::new();
                }
                Ok(rest)
            }))
        })
        .await?;
        let stalled = || io::Error::new(io::ErrorKind::TimedOut, "the client accepted no bytes");
        let mut pos = 0;
        while pos < rest.len() {
            match tokio::time::timeout(stall, self.io.write(&rest[pos..])).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => pos += n,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(stalled()),
            }
        }
        tokio::time::timeout(stall, self.io.flush())
            .await
            .map_err(|_| stalled())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that reads `chunk` bytes every `every` (or nothing, when
    /// `every` is `None`), and never sends.
    struct SlowReader {
        chunk: usize,
        every: Option<Duration>,
        next: Option<Pin<Box<tokio::time::Sleep>>>,
        taken: usize,
    }

    impl AsyncRead for SlowReader {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for SlowReader {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let Some(every) = self.every else {
                return Poll::Pending;
            };
            let next = self
                .next
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            ready!(next.as_mut().poll(cx));
            self.next = None;
            let n = data.len().min(self.chunk);
            self.taken += n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    use std::future::Future;

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        // 1 KiB every 500 ms: 100 KiB takes 50 s, far past a 1 s stall deadline.
        let io = SlowReader {
            chunk: 1024,
            every: Some(Duration::from_millis(500)),
            next: None,
            taken: 0,
        };
        let mut ws = WsSocket::new(io, 1 << 20);
        let started = tokio::time::Instant::now();
        ws.send(Duration::from_secs(1), |buf| {
            buf.extend_from_slice(&[b'x'; 100 * 1024])
        })
        .await
        .expect("a reader making progress keeps its connection");
        assert_eq!(ws.io.taken, 100 * 1024);
        assert!(started.elapsed() >= Duration::from_secs(49));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_takes_nothing_times_out() {
        let io = SlowReader {
            chunk: 0,
            every: None,
            next: None,
            taken: 0,
        };
        let mut ws = WsSocket::new(io, 1 << 20);
        let started = tokio::time::Instant::now();
        let err = ws
            .send(Duration::from_secs(1), |buf| {
                buf.extend_from_slice(b"hello")
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
