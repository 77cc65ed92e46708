//! Framing: writing frames and the streaming, resynchronising decoder.

use crate::message::{ErrorCode, Message};
use crate::{crc32, CRC_LEN, HEADER_LEN, MAGIC, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, PROTOCOL_VERSION};

const MAGIC_BYTES: [u8; 2] = MAGIC.to_le_bytes();

/// Why a message or frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than `needed` bytes.
    BufferTooSmall { needed: usize },
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    PayloadTooLong { len: usize },
}

/// Why bytes from the stream, or a frame's payload, were rejected.
///
/// The first four variants come from [`FrameDecoder::next_frame`], which has
/// already skipped the offending bytes when it reports them; the last three
/// come from [`Message::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// `skipped` bytes that do not start a frame were discarded.
    BadMagic { skipped: usize },
    /// The header announces a payload longer than [`MAX_PAYLOAD_LEN`].
    TooLong { len: u32 },
    /// The checksum does not match: the frame was corrupted (or was not a
    /// frame at all but garbage that happened to contain the magic).
    BadCrc { expected: u32, computed: u32 },
    /// An intact frame of another protocol version; it was skipped whole.
    BadVersion {
        version: u8,
        msg_type: u8,
        request_id: u32,
    },
    /// An intact frame whose message type this crate does not know.
    UnknownType { msg_type: u8 },
    /// The payload length is wrong for the message type.
    BadLength { msg_type: u8, len: u32 },
    /// A field holds an invalid value (enum, bool or count) at `offset` bytes
    /// into the payload.
    BadField { msg_type: u8, offset: u32 },
}

impl DecodeError {
    /// The [`ErrorCode`] to report to the peer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadVersion { .. } => ErrorCode::BadVersion,
            DecodeError::UnknownType { .. } => ErrorCode::UnknownType,
            _ => ErrorCode::Malformed,
        }
    }

    /// A number that narrows the error down for whoever reads the reply: the
    /// offending version, type, length, or payload offset.
    pub fn detail(&self) -> u32 {
        match *self {
            DecodeError::BadMagic { skipped } => skipped as u32,
            DecodeError::TooLong { len } => len,
            DecodeError::BadCrc { computed, .. } => computed,
            DecodeError::BadVersion { version, .. } => version.into(),
            DecodeError::UnknownType { msg_type } => msg_type.into(),
            DecodeError::BadLength { len, .. } => len,
            DecodeError::BadField { offset, .. } => offset,
        }
    }

    /// The `Error` message answering this error. `request_id` is the id of
    /// the frame being answered, or 0 when no trustworthy id exists (bad
    /// magic, length or CRC); a version mismatch carries its own id.
    pub fn error_reply(&self, request_id: u32) -> Message {
        let request_id = match *self {
            DecodeError::BadVersion { request_id: id, .. } => id,
            _ => request_id,
        };
        Message::Error {
            request_id,
            code: self.code(),
            detail: self.detail(),
        }
    }
}

/// One intact frame of the current protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Raw message type; may be one this crate does not know (then
    /// [`Frame::message`] reports [`DecodeError::UnknownType`]).
    pub msg_type: u8,
    pub request_id: u32,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Decodes the payload into a typed message.
    pub fn message(&self) -> Result<Message, DecodeError> {
        Message::decode(self.msg_type, self.payload)
    }
}

/// Writes header, `payload` and CRC into `buf`; returns the frame length.
pub fn write_frame(
    msg_type: u8,
    request_id: u32,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let needed = frame_len(payload.len())?;
    let out = buf
        .get_mut(..needed)
        .ok_or(EncodeError::BufferTooSmall { needed })?;
    out[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    seal_frame(msg_type, request_id, payload.len(), out)
}

/// Total frame length for a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> Result<usize, EncodeError> {
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(EncodeError::PayloadTooLong { len: payload_len });
    }
    Ok(HEADER_LEN + payload_len + CRC_LEN)
}

/// Fills in header and CRC around a payload already placed at
/// `buf[HEADER_LEN..]`. Writing the payload in place first lets messages be
/// encoded straight into the transmit buffer, without a copy.
pub(crate) fn seal_frame(
    msg_type: u8,
    request_id: u32,
    payload_len: usize,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let needed = frame_len(payload_len)?;
    let out = buf
        .get_mut(..needed)
        .ok_or(EncodeError::BufferTooSmall { needed })?;
    out[0..2].copy_from_slice(&MAGIC_BYTES);
    out[2] = PROTOCOL_VERSION;
    out[3] = msg_type;
    out[4..8].copy_from_slice(&request_id.to_le_bytes());
    out[8..12].copy_from_slice(&(payload_len as u32).to_le_bytes());
    let body = HEADER_LEN + payload_len;
    let crc = crc32(&out[..body]);
    out[body..].copy_from_slice(&crc.to_le_bytes());
    Ok(needed)
}

/// Streaming frame decoder with a fixed buffer of [`MAX_FRAME_LEN`] bytes.
///
/// Feed it bytes as they arrive with [`feed`](Self::feed), then call
/// [`next_frame`](Self::next_frame) until it returns `None`. Chunks may split
/// frames anywhere or hold several frames. Anything that is not an intact
/// frame is reported once as a [`DecodeError`] and skipped by scanning for
/// the next magic, so one corrupted byte costs at most the frames it touches.
///
/// Because the buffer holds a whole maximal frame, `next_frame` always makes
/// progress on a full buffer, and once it has returned `None` the next `feed`
/// accepts at least one byte. The decoder never panics on any input.
pub struct FrameDecoder {
    buf: [u8; MAX_FRAME_LEN],
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// An empty decoder. `const` so the guest can keep one in a `static`.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME_LEN],
            start: 0,
            end: 0,
        }
    }

    /// Copies as much of `data` as fits into the buffer and returns how many
    /// bytes were taken; feed the rest after draining
    /// [`next_frame`](Self::next_frame).
    pub fn feed(&mut self, data: &[u8]) -> usize {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < data.len() && self.start > 0 {
            // Compact only when needed: most frames are consumed whole, and
            // the copy is at most one partial frame.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = data.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    /// Number of bytes buffered but not yet returned as a frame or error.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Drops all buffered bytes.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next frame or error, or `None` if more bytes are needed. A
    /// returned frame borrows the buffer until the next call.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, DecodeError>> {
        let avail = &self.buf[self.start..self.end];
        if avail.is_empty() {
            return None;
        }
        if !avail.starts_with(&MAGIC_BYTES) {
            if avail == &MAGIC_BYTES[..1] {
                // Possibly the first half of a magic; wait for the next byte.
                return None;
            }
            let skipped = next_magic(avail, 1);
            self.start += skipped;
            return Some(Err(DecodeError::BadMagic { skipped }));
        }
        if avail.len() < HEADER_LEN {
            return None;
        }
        let version = avail[2];
        let msg_type = avail[3];
        let request_id = u32::from_le_bytes([avail[4], avail[5], avail[6], avail[7]]);
        let len = u32::from_le_bytes([avail[8], avail[9], avail[10], avail[11]]);
        if len as usize > MAX_PAYLOAD_LEN {
            // The magic was a false one (or the header is corrupt): resume
            // the scan right after it, silently skipping to the next magic.
            self.start += next_magic(avail, 1);
            return Some(Err(DecodeError::TooLong { len }));
        }
        let body = HEADER_LEN + len as usize;
        let total = body + CRC_LEN;
        if avail.len() < total {
            return None;
        }
        let computed = crc32(&avail[..body]);
        let expected = u32::from_le_bytes([
            avail[body],
            avail[body + 1],
            avail[body + 2],
            avail[body + 3],
        ]);
        if computed != expected {
            // Do not trust the length: a real frame may start inside.
            self.start += next_magic(avail, 1);
            return Some(Err(DecodeError::BadCrc { expected, computed }));
        }
        let frame_start = self.start;
        self.start += total;
        if version != PROTOCOL_VERSION {
            // Intact but foreign: the frozen header layout lets us skip it
            // whole and answer it.
            return Some(Err(DecodeError::BadVersion {
                version,
                msg_type,
                request_id,
            }));
        }
        Some(Ok(Frame {
            msg_type,
            request_id,
            payload: &self.buf[frame_start + HEADER_LEN..frame_start + body],
        }))
    }
}

/// Index of the first possible frame start in `bytes` at or after `from`: a
/// full magic, or a lone first magic byte at the very end. `bytes.len()` if
/// there is none.
fn next_magic(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == MAGIC_BYTES[0] && bytes.get(i + 1).is_none_or(|&b| b == MAGIC_BYTES[1]) {
            return i;
        }
        i += 1;
    }
    bytes.len()
}
