//! Where a plugin's stdout and stderr go: a small buffer that keeps only the
//! most recent bytes. A chatty plugin never blocks or fails on a full pipe,
//! and the tail (a Rust panic message, say) can be attached to a trap.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A cheap-to-clone handle to one instance's captured output.
#[derive(Clone, Debug)]
pub(crate) struct TailBuffer {
    inner: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl TailBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        TailBuffer {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let mut buf = self.inner.lock();
        let overflow = (buf.len() + bytes.len()).saturating_sub(self.capacity);
        let overflow = overflow.min(buf.len());
        buf.drain(..overflow);
        buf.extend(bytes);
    }

    /// The last `n` bytes written, as text on one line.
    pub(crate) fn tail(&self, n: usize) -> String {
        let buf = self.inner.lock();
        let skip = buf.len().saturating_sub(n);
        let bytes: Vec<u8> = buf.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Forgets what was written, so the next trap shows only its own output.
    pub(crate) fn clear(&self) {
        self.inner.lock().clear();
    }
}

impl IsTerminal for TailBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailBuffer {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for TailBuffer {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(self.capacity)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TailBuffer {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for TailBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let buf = TailBuffer::new(8);
        buf.push(b"0123456789");
        buf.push(b"ab");
        assert_eq!(buf.tail(100), "456789ab");
        buf.clear();
        buf.push(b"x\n\ny");
        assert_eq!(buf.tail(100), "x | y");
    }
}
