//! The decoder invariants checked on arbitrary input, shared by the
//! cargo-fuzz target (`fuzz_targets/decoder.rs`) and the corpus replay test
//! (`guest/protocol/tests/fuzz_corpus.rs`), which include this file as a
//! module. A violated invariant panics: that is what the fuzzer looks for.
//!
//! For any bytes, whatever the chunking:
//! - the decoder never panics, never holds more than one maximal frame, and
//!   always makes progress (a drained decoder accepts more bytes);
//! - every stream error is one of the four framing errors with consistent
//!   fields, and its `Error` reply encodes and decodes back unchanged;
//! - the intact frames found are the same however the bytes are split;
//! - every frame's payload either decodes to a message of the frame's type
//!   that re-encodes to exactly the same frame (decoding is strict, so the
//!   encoding is canonical) and decodes again to an equal message, or fails
//!   with a typed payload error (unknown type, length, field inside it).

use std::cell::RefCell;

use forkvm_protocol::{
    DecodeError, FrameDecoder, Message, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, PROTOCOL_VERSION,
};

/// An intact frame, copied out of the decoder: type, id, payload.
type OwnedFrame = (u8, u32, Vec<u8>);

thread_local! {
    // Reused across calls: a fresh 64 KiB decoder and frame buffer per
    // input would dominate the fuzzer's time (more so under ASan).
    static STREAM: RefCell<Box<FrameDecoder>> = RefCell::new(Box::new(FrameDecoder::new()));
    static ROUND_TRIP: RefCell<(Box<FrameDecoder>, Vec<u8>)> =
        RefCell::new((Box::new(FrameDecoder::new()), vec![0; MAX_FRAME_LEN]));
}

/// What [`check`] found in its input (the replay test compares it with
/// what each corpus file is meant to contain).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Intact frames of the current version.
    pub frames: usize,
    /// Of those, frames whose payload decoded to a message.
    pub messages: usize,
}

/// Checks every invariant above on `data`; panics on a violation.
pub fn check(data: &[u8]) -> Summary {
    let whole = STREAM.with_borrow_mut(|decoder| {
        decoder.reset();
        let whole = decode(decoder, data, data.len().max(1));
        // A chunk size taken from the input itself, so the fuzzer explores
        // splits too; plus the worst case, one byte at a time, for short
        // inputs.
        let chunk = usize::from(data.first().copied().unwrap_or(0) % 61) + 1;
        decoder.reset();
        assert_eq!(decode(decoder, data, chunk), whole, "chunks of {chunk}");
        if data.len() <= 4096 {
            decoder.reset();
            assert_eq!(decode(decoder, data, 1), whole, "byte by byte");
        }
        whole
    });
    let mut summary = Summary {
        frames: whole.len(),
        messages: 0,
    };
    for (msg_type, request_id, payload) in &whole {
        if check_payload(*msg_type, *request_id, payload) {
            summary.messages += 1;
        }
    }
    // The payload decoder on its own: first byte the type, the rest the
    // payload (most of the input space never survives the CRC).
    if let Some((&msg_type, payload)) = data.split_first() {
        if payload.len() <= MAX_PAYLOAD_LEN {
            check_payload(msg_type, 0, payload);
        }
    }
    summary
}

/// Feeds `data` in `chunk`-byte pieces; returns the intact frames.
fn decode(decoder: &mut FrameDecoder, data: &[u8], chunk: usize) -> Vec<OwnedFrame> {
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        let mut input = piece;
        loop {
            let taken = decoder.feed(input);
            input = &input[taken..];
            while let Some(result) = decoder.next_frame() {
                match result {
                    Ok(frame) => {
                        assert!(frame.payload.len() <= MAX_PAYLOAD_LEN);
                        frames.push((frame.msg_type, frame.request_id, frame.payload.to_vec()));
                    }
                    Err(e) => check_stream_error(e),
                }
            }
            assert!(decoder.buffered() <= MAX_FRAME_LEN);
            if input.is_empty() {
                break;
            }
            // Drained, so the next feed must take at least one byte.
            assert!(decoder.buffered() < MAX_FRAME_LEN, "decoder stuck");
        }
    }
    frames
}

/// An error from `next_frame`: only framing errors, with sane fields.
fn check_stream_error(e: DecodeError) {
    match e {
        DecodeError::BadMagic { skipped } => assert!(skipped > 0, "{e:?}"),
        DecodeError::TooLong { len } => assert!(len as usize > MAX_PAYLOAD_LEN, "{e:?}"),
        DecodeError::BadCrc { expected, computed } => assert_ne!(expected, computed),
        DecodeError::BadVersion { version, .. } => assert_ne!(version, PROTOCOL_VERSION),
        other => panic!("payload error from the frame decoder: {other:?}"),
    }
    check_error_reply(e);
}

/// The `Error` reply for `e` is a valid message that round-trips.
fn check_error_reply(e: DecodeError) {
    let reply = e.error_reply(0x1234_5678);
    let Message::Error { code, detail, .. } = reply else {
        panic!("error_reply is not an Error: {reply:?}");
    };
    assert_eq!((code, detail), (e.code(), e.detail()));
    let (bytes, decoded) = round_trip(&reply, 1);
    assert_eq!(decoded, reply, "{bytes:?}");
}

/// A payload of type `msg_type` decodes strictly and canonically; returns
/// whether it decoded.
fn check_payload(msg_type: u8, request_id: u32, payload: &[u8]) -> bool {
    match Message::decode(msg_type, payload) {
        Ok(message) => {
            assert_eq!(message.msg_type() as u8, msg_type, "{message:?}");
            assert_eq!(message.payload_len(), payload.len(), "{message:?}");
            let (bytes, again) = round_trip(&message, request_id);
            assert_eq!(again, message, "re-decoded message differs");
            assert_eq!(
                &bytes[forkvm_protocol::HEADER_LEN..bytes.len() - forkvm_protocol::CRC_LEN],
                payload,
                "{message:?} re-encodes to other bytes"
            );
            true
        }
        Err(e) => {
            match e {
                DecodeError::UnknownType { msg_type: t } => assert_eq!(t, msg_type),
                DecodeError::BadLength { msg_type: t, len } => {
                    assert_eq!((t, len as usize), (msg_type, payload.len()))
                }
                DecodeError::BadField {
                    msg_type: t,
                    offset,
                } => {
                    assert_eq!(t, msg_type);
                    assert!((offset as usize) < payload.len(), "{e:?}");
                }
                other => panic!("framing error from Message::decode: {other:?}"),
            }
            check_error_reply(e);
            false
        }
    }
}

/// Encodes `message` as a frame, decodes that frame again; returns both.
fn round_trip(message: &Message, request_id: u32) -> (Vec<u8>, Message) {
    ROUND_TRIP.with_borrow_mut(|(decoder, buf)| {
        let n = message
            .encode_frame(request_id, buf)
            .unwrap_or_else(|e| panic!("{message:?} does not encode: {e:?}"));
        decoder.reset();
        assert_eq!(decoder.feed(&buf[..n]), n);
        let frame = decoder
            .next_frame()
            .expect("a whole frame")
            .expect("an intact frame");
        assert_eq!(
            (frame.msg_type, frame.request_id),
            (message.msg_type() as u8, request_id)
        );
        let decoded = frame.message().expect("our own encoding decodes");
        assert!(
            decoder.next_frame().is_none(),
            "one frame, nothing after it"
        );
        (buf[..n].to_vec(), decoded)
    })
}
