//! Property tests (proptest) for what neither the randomized unit tests nor
//! the fuzzer reach well: intact frames (a correct CRC, which random bytes
//! and byte mutations almost never produce) carrying payloads that are
//! *nearly* valid: lengths around each type's layout and field bytes biased
//! towards the edge values (0, 1, 0xff) that enums, bools and counts care
//! about. Every such frame must satisfy the fuzz target's invariants: decode
//! strictly and canonically (re-encoding gives the same bytes) or fail with a
//! typed error; and a stream of them must decode the same however it is cut.

#[path = "../fuzz/src/invariants.rs"]
mod invariants;

use forkvm_protocol::{write_frame, MessageType, MAX_FRAME_LEN, PROTOCOL_VERSION};
use proptest::prelude::*;

/// A byte as fields see it: mostly the values that validity hinges on.
fn field_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(0xffu8), any::<u8>()]
}

/// A message type byte: mostly known types, sometimes anything.
fn msg_type() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(MessageType::ALL.to_vec()).prop_map(|t| t as u8),
        1 => any::<u8>(),
    ]
}

/// A payload as long as a layout (at most a few samples or user entries)
/// give or take a little.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(field_byte(), 0..=80)
}

/// A sealed frame: correct CRC, version mostly current.
fn sealed(version: u8, msg_type: u8, request_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_LEN];
    let n = write_frame(msg_type, request_id, payload, &mut buf).unwrap();
    buf.truncate(n);
    if version != PROTOCOL_VERSION {
        buf[2] = version;
        let body = n - 4;
        let crc = forkvm_protocol::crc32(&buf[..body]);
        buf[body..].copy_from_slice(&crc.to_le_bytes());
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One sealed frame: framing accepts it (unless the version is foreign)
    /// and its payload decodes canonically or fails with a typed error.
    #[test]
    fn sealed_frames_with_near_valid_payloads(
        version in prop_oneof![4 => Just(PROTOCOL_VERSION), 1 => any::<u8>()],
        ty in msg_type(),
        id in any::<u32>(),
        payload in payload(),
    ) {
        let frame = sealed(version, ty, id, &payload);
        let summary = invariants::check(&frame);
        prop_assert_eq!(summary.frames, usize::from(version == PROTOCOL_VERSION));
    }

    /// Several sealed frames, maybe with noise between them: each is found
    /// (the invariant check also compares whole, chunked and byte-wise
    /// decoding of the stream).
    #[test]
    fn streams_of_sealed_frames(
        frames in proptest::collection::vec((msg_type(), any::<u32>(), payload()), 1..6),
        noise in proptest::collection::vec(any::<u8>().prop_filter("no magic", |b| *b != b'F'), 0..20),
    ) {
        let mut stream = noise.clone();
        for (ty, id, payload) in &frames {
            stream.extend(sealed(PROTOCOL_VERSION, *ty, *id, payload));
            stream.extend(&noise);
        }
        let summary = invariants::check(&stream);
        prop_assert_eq!(summary.frames, frames.len());
    }
}
