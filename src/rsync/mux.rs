//! Multiplexed frames: the 4-byte header codec, message tags, and a demultiplexing reader.
//!
//! After protocol setup both directions carry frames `((tag + 7) << 24) | len` (LE) followed
//! by `len` payload bytes. MSG_DATA payloads form the protocol byte stream; the other tags
//! are out-of-band messages handled in arrival order.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::{ProtoError, Result};
use super::wire;

/// Message tags (the subset that appears on a daemon connection).
#[allow(missing_docs)]
pub mod tag {
    pub const DATA: u8 = 0;
    pub const ERROR_XFER: u8 = 1;
    pub const INFO: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const WARNING: u8 = 4;
    pub const IO_ERROR: u8 = 22;
    pub const IO_TIMEOUT: u8 = 33;
    pub const NOOP: u8 = 42;
    pub const ERROR_EXIT: u8 = 86;
    pub const SUCCESS: u8 = 100;
    pub const DELETED: u8 = 101;
    pub const NO_SEND: u8 = 102;
}

/// Largest payload a frame header can describe.
pub const MAX_FRAME: usize = 0xFF_FFFF;
/// Largest text message we accept from a peer.
pub const MAX_TEXT: usize = 8 * 1024;
/// [`MuxReader::read_data_into`] reads from the socket directly into the caller's buffer
/// when at least this much is wanted and nothing is buffered.
const DIRECT_READ_MIN: usize = 16 * 1024;

/// Encode a frame header.
pub fn encode_header(tag: u8, len: usize) -> [u8; 4] {
    debug_assert!(len <= MAX_FRAME);
    ((u32::from(tag) + 7) << 24 | len as u32).to_le_bytes()
}

/// Decode a frame header into `(tag, len)`.
pub fn decode_header(h: [u8; 4]) -> Result<(u8, usize)> {
    let v = u32::from_le_bytes(h);
    let t = v >> 24;
    if t < 7 {
        return Err(ProtoError::invalid(format!(
            "bad multiplex header {v:#010x}"
        )));
    }
    Ok(((t - 7) as u8, (v & 0xFF_FFFF) as usize))
}

/// Append one complete frame to `out`, splitting payloads longer than [`MAX_FRAME`].
pub fn push_frame(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    if payload.is_empty() {
        out.extend_from_slice(&encode_header(tag, 0));
    }
    for chunk in payload.chunks(MAX_FRAME) {
        out.extend_from_slice(&encode_header(tag, chunk.len()));
        out.extend_from_slice(chunk);
    }
}

/// An out-of-band message received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Text for the log: (tag, text).
    Text(u8, String),
    /// The sender could not open file `ndx` and sends no data for it.
    NoSend(i32),
    /// The sender had read errors (bit mask).
    IoError(i32),
    /// The peer is exiting with this code (or acknowledges ours with `None`).
    ErrorExit(Option<i32>),
    /// The peer deleted a path (payload as sent).
    Deleted(Vec<u8>),
    /// The peer confirms file `ndx` (only with --remove-source-files).
    Success(i32),
}

/// Decode a non-data frame payload into a [`Control`]; `None` for keepalives.
pub fn decode_control(tag: u8, payload: &[u8]) -> Result<Option<Control>> {
    let int =
        |p: &[u8]| wire::get_i32(&mut &p[..]).map_err(|_| ProtoError::invalid("short message"));
    Ok(Some(match tag {
        tag::ERROR_XFER | tag::INFO | tag::ERROR | tag::WARNING => {
            Control::Text(tag, String::from_utf8_lossy(payload).trim_end().to_string())
        }
        tag::IO_ERROR => Control::IoError(int(payload)?),
        tag::NO_SEND => Control::NoSend(int(payload)?),
        tag::SUCCESS => Control::Success(int(payload)?),
        tag::ERROR_EXIT if payload.is_empty() => Control::ErrorExit(None),
        tag::ERROR_EXIT => Control::ErrorExit(Some(int(payload)?)),
        tag::DELETED => Control::Deleted(payload.to_vec()),
        tag::NOOP | tag::IO_TIMEOUT => return Ok(None),
        other => {
            return Err(ProtoError::invalid(format!(
                "unexpected message tag {other}"
            )))
        }
    }))
}

/// Reads frames from `R` and exposes the MSG_DATA bytes as a buffered stream.
///
/// Control messages are queued in [`MuxReader::controls`] in arrival order; the protocol
/// code checks the queue after each record it reads.
pub struct MuxReader<R> {
    inner: R,
    raw: BytesMut,
    data: BytesMut,
    /// Bytes of the current MSG_DATA frame not yet moved to `data`.
    frame_left: usize,
    /// Out-of-band messages received so far and not yet taken.
    pub controls: VecDeque<Control>,
    /// Total bytes read from the socket.
    pub raw_bytes: u64,
    /// Give up when the peer sends nothing for this long.
    pub idle_timeout: Option<std::time::Duration>,
}

impl<R: AsyncRead + Unpin> MuxReader<R> {
    /// Wrap a reader; `leftover` are bytes already read past the setup phase.
    pub fn new(inner: R, leftover: &[u8]) -> Self {
        let mut raw = BytesMut::with_capacity(256 * 1024);
        raw.extend_from_slice(leftover);
        MuxReader {
            inner,
            raw,
            data: BytesMut::with_capacity(256 * 1024),
            frame_left: 0,
            controls: VecDeque::new(),
            raw_bytes: 0,
            idle_timeout: None,
        }
    }

    /// The buffered data bytes not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Consume `n` buffered data bytes.
    pub fn consume(&mut self, n: usize) {
        self.data.advance(n);
    }

    async fn read_raw(&mut self) -> Result<()> {
        if self.raw.capacity() - self.raw.len() < 64 * 1024 {
            self.raw.reserve(256 * 1024);
        }
        let n = read_some(self.idle_timeout, self.inner.read_buf(&mut self.raw)).await?;
        self.raw_bytes += n as u64;
        Ok(())
    }

    /// Read and process frames until at least one more data byte is buffered or a control
    /// message was queued.
    pub async fn fill_more(&mut self) -> Result<()> {
        self.fill_more_upto(usize::MAX).await
    }

    /// As [`fill_more`](Self::fill_more), moving at most `limit` (>= 1) data bytes into the
    /// buffer; the rest stays in the raw buffer for [`read_data_into`](Self::read_data_into).
    async fn fill_more_upto(&mut self, limit: usize) -> Result<()> {
        if !self.next_data_frame().await? {
            return Ok(());
        }
        if self.raw.is_empty() {
            self.read_raw().await?;
        }
        let n = self.frame_left.min(self.raw.len()).min(limit.max(1));
        self.data.extend_from_slice(&self.raw[..n]);
        self.raw.advance(n);
        self.frame_left -= n;
        Ok(())
    }

    /// Make sure a data frame is open (`true`), processing frame headers and control
    /// messages; `false` when a control message was queued instead.
    async fn next_data_frame(&mut self) -> Result<bool> {
        while self.frame_left == 0 {
            while self.raw.len() < 4 {
                self.read_raw().await?;
            }
            let (t, len) = decode_header([self.raw[0], self.raw[1], self.raw[2], self.raw[3]])?;
            if t == tag::DATA {
                self.raw.advance(4);
                self.frame_left = len;
                continue;
            }
            if len > MAX_TEXT {
                return Err(ProtoError::Limit(format!("message tag {t} of {len} bytes")));
            }
            while self.raw.len() < 4 + len {
                self.read_raw().await?;
            }
            let payload = self.raw[4..4 + len].to_vec();
            self.raw.advance(4 + len);
            if let Some(c) = decode_control(t, &payload)? {
                self.controls.push_back(c);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Append up to `max` bytes of the data stream to `out`, reading large pieces straight
    /// from the socket into `out`'s spare capacity (no intermediate copy). Returns the number
    /// appended; 0 means a control message was queued (check [`controls`](Self::controls)).
    pub async fn read_data_into(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize> {
        if !self.data.is_empty() {
            let k = max.min(self.data.len());
            out.extend_from_slice(&self.data[..k]);
            self.data.advance(k);
            return Ok(k);
        }
        if max == 0 || !self.next_data_frame().await? {
            return Ok(0);
        }
        let want = max.min(self.frame_left);
        if self.raw.is_empty() && want >= DIRECT_READ_MIN {
            out.reserve(want);
            let mut dst = (&mut *out).limit(want);
            let n = read_some(self.idle_timeout, self.inner.read_buf(&mut dst)).await?;
            self.raw_bytes += n as u64;
            self.frame_left -= n;
            return Ok(n);
        }
        if self.raw.is_empty() {
            self.read_raw().await?;
        }
        let k = want.min(self.raw.len());
        out.extend_from_slice(&self.raw[..k]);
        self.raw.advance(k);
        self.frame_left -= k;
        Ok(k)
    }

    /// Ensure at least `n` data bytes are buffered.
    pub async fn fill(&mut self, n: usize) -> Result<()> {
        while self.data.len() < n {
            self.fill_more().await?;
        }
        Ok(())
    }

    /// Run a pure decoder over the buffered data, reading more until it stops asking.
    /// Records larger than `max` bytes are refused.
    pub async fn decode<T>(
        &mut self,
        max: usize,
        mut f: impl FnMut(&mut &[u8]) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mut c = &self.data[..];
            match f(&mut c) {
                Ok(v) => {
                    let used = self.data.len() - c.len();
                    self.data.advance(used);
                    return Ok(v);
                }
                Err(ProtoError::Incomplete) => {
                    if self.data.len() >= max {
                        return Err(ProtoError::Limit(format!("record longer than {max} bytes")));
                    }
                    // Never buffer past the record: bulk data stays in `raw` for
                    // read_data_into.
                    self.fill_more_upto(max - self.data.len()).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read a little-endian i32 from the data stream.
    pub async fn read_i32(&mut self) -> Result<i32> {
        self.decode(4, wire::get_i32).await
    }

    /// Read raw frames (discarding data) until the peer's empty MSG_ERROR_EXIT or EOF.
    pub async fn drain_until_error_exit(&mut self) -> Result<()> {
        loop {
            self.data.clear();
            if let Some(i) = self
                .controls
                .iter()
                .position(|c| *c == Control::ErrorExit(None))
            {
                self.controls.drain(..=i);
                return Ok(());
            }
            self.fill_more().await?;
        }
    }

    /// Give back the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Awaits one socket read under the idle timeout; end of stream is an error (the peer left in
/// the middle of the protocol).
async fn read_some(
    idle: Option<std::time::Duration>,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize> {
    let n = match idle {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .map_err(|_| ProtoError::Timeout("waiting for the peer"))??,
        None => read.await?,
    };
    if n == 0 {
        return Err(ProtoError::Eof("mid-stream"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_examples() {
        assert_eq!(encode_header(tag::DATA, 0x3b), [0x3b, 0, 0, 7]);
        assert_eq!(encode_header(tag::ERROR_EXIT, 4), [4, 0, 0, 0x5d]);
        assert_eq!(
            decode_header([0x04, 0, 0, 0x6d]).unwrap(),
            (tag::NO_SEND, 4)
        );
        assert!(decode_header([0, 0, 0, 6]).is_err());
    }

    #[tokio::test]
    async fn demux_splits_data_and_controls() {
        let mut wirebytes = vec![];
        push_frame(&mut wirebytes, tag::DATA, &[1, 2]);
        push_frame(&mut wirebytes, tag::NO_SEND, &7i32.to_le_bytes());
        push_frame(&mut wirebytes, tag::DATA, &[]);
        push_frame(&mut wirebytes, tag::NOOP, &[]);
        push_frame(&mut wirebytes, tag::DATA, &[3, 4, 5, 6]);
        let mut r = MuxReader::new(&wirebytes[..], &[]);
        assert_eq!(
            r.read_i32().await.unwrap(),
            i32::from_le_bytes([1, 2, 3, 4])
        );
        assert_eq!(r.controls.pop_front(), Some(Control::NoSend(7)));
        r.fill(2).await.unwrap();
        assert_eq!(r.data(), &[5, 6]);
        r.consume(2);
        assert!(matches!(r.fill(1).await, Err(ProtoError::Eof(_))));
    }

    #[tokio::test]
    async fn bulk_reads_bypass_the_buffer_and_respect_frames() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = vec![];
        push_frame(&mut w, tag::DATA, &[9, 9, 9, 9]);
        push_frame(&mut w, tag::DATA, &payload[..40_000]);
        push_frame(&mut w, tag::INFO, b"hi");
        push_frame(&mut w, tag::DATA, &payload[40_000..]);
        push_frame(&mut w, tag::DATA, &[7]);
        // A reader that hands out at most 20 000 bytes per read, so direct reads happen.
        let (client, mut server) = tokio::io::duplex(20_000);
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            server.write_all(&w).await.unwrap();
        });
        let mut r = MuxReader::new(client, &[]);
        // A small record is decoded without pulling bulk data into the buffer.
        assert_eq!(r.read_i32().await.unwrap(), 0x0909_0909);
        assert!(r.data().is_empty());
        let mut out = Vec::with_capacity(1 << 20);
        while out.len() < payload.len() {
            let want = (payload.len() - out.len()).min(30_000);
            let n = r.read_data_into(&mut out, want).await.unwrap();
            assert!(n <= want);
        }
        assert_eq!(out, payload);
        assert_eq!(
            r.controls.pop_front(),
            Some(Control::Text(tag::INFO, "hi".into()))
        );
        r.fill(1).await.unwrap();
        assert_eq!(r.data(), &[7]);
        feed.await.unwrap();
    }

    #[tokio::test]
    async fn unknown_tag_is_an_error() {
        let mut w = vec![];
        push_frame(&mut w, 77, b"x");
        let mut r = MuxReader::new(&w[..], &[]);
        assert!(matches!(r.fill(1).await, Err(ProtoError::Invalid(_))));
    }
}
