//! Malformed input against the real guest: `harnessd` under KVM must answer
//! every bad frame with a typed `Error` reply (as the protocol's
//! Conversation section says) and keep serving. Runs whenever /dev/kvm
//! exists; skips (with a note) only without it.

use bench::boot::kvm_available;
use bench::guest_harness::{GuestHarness, HarnessError, HarnessOptions};
use forkvm_protocol::{
    crc32, write_frame, BenchOp, ErrorCode, Message, MessageType, ScaleMode, CRC_LEN, HEADER_LEN,
    MAGIC, MAX_PAYLOAD_LEN, PROTOCOL_VERSION,
};

/// Request ids of the raw frames below; the harness client counts its own
/// ids up from 1, so these cannot be mistaken for its requests.
const MARKER_ID: u32 = 0x7000_0000;

/// A whole frame of `msg_type` around `payload` (current version).
fn frame(msg_type: u8, request_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN + payload.len() + CRC_LEN];
    let n = write_frame(msg_type, request_id, payload, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Sends `bytes` and then a Hello with `MARKER_ID`, and returns what the
/// guest sent before the HelloReply to it: the answers to `bytes`, since
/// harnessd serves frames in order. Everything it sent must be an `Error`.
fn answers_to(guest: &mut GuestHarness, bytes: &[u8]) -> Vec<(u32, ErrorCode, u32)> {
    let hello = frame(MessageType::Hello as u8, MARKER_ID, &[PROTOCOL_VERSION]);
    guest.send_raw(bytes).unwrap();
    guest.send_raw(&hello).unwrap();
    let mut errors = Vec::new();
    loop {
        let (id, message) = guest.next_message(MessageType::Hello).unwrap();
        match message {
            Message::HelloReply { .. } if id == MARKER_ID => return errors,
            Message::Error {
                request_id,
                code,
                detail,
            } => {
                // The payload names the request answered; so does the frame.
                assert_eq!(id, request_id, "frame id vs payload id");
                errors.push((request_id, code, detail));
            }
            other => panic!("expected an Error reply, got {other:?} (id {id})"),
        }
    }
}

#[test]
fn malformed_frames_get_typed_errors_and_service_goes_on() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let info = guest.hello_info().clone();

    // Garbage (no 'F' byte, so no false magic): skipped and reported as
    // Malformed with no request id; the guest may see it in several reads,
    // so one or more errors, together counting every byte.
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i * 31 % 251) as u8)
        .filter(|&b| b != b'F')
        .collect();
    let errors = answers_to(&mut guest, &garbage);
    assert!(!errors.is_empty(), "garbage went unanswered");
    for &(id, code, _) in &errors {
        assert_eq!((id, code), (0, ErrorCode::Malformed), "{errors:?}");
    }
    let skipped: u32 = errors.iter().map(|&(_, _, skipped)| skipped).sum();
    assert_eq!(skipped as usize, garbage.len(), "{errors:?}");

    // A Stats frame with its CRC damaged: the id cannot be trusted, so the
    // answer carries 0 and the CRC the guest computed; the decoder skips
    // the rest of the frame silently (up to the next magic).
    let mut bad_crc = frame(MessageType::Stats as u8, MARKER_ID + 1, &[]);
    let good_crc = crc32(&bad_crc[..body_len(&bad_crc)]);
    *bad_crc.last_mut().unwrap() ^= 0x55;
    assert_eq!(
        answers_to(&mut guest, &bad_crc),
        [(0, ErrorCode::Malformed, good_crc)]
    );

    // An intact frame of the next protocol version: skipped whole and
    // answered BadVersion with its own id and the version.
    let next = PROTOCOL_VERSION + 1;
    let mut foreign = frame(MessageType::Hello as u8, MARKER_ID + 2, &[next]);
    foreign[2] = next;
    let at = body_len(&foreign);
    let crc = crc32(&foreign[..at]);
    foreign[at..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        answers_to(&mut guest, &foreign),
        [(MARKER_ID + 2, ErrorCode::BadVersion, u32::from(next))]
    );

    // A message type that does not exist, and a reply type sent as a
    // request: UnknownType with the type as detail.
    assert_eq!(
        answers_to(&mut guest, &frame(0x42, MARKER_ID + 3, &[1, 2, 3])),
        [(MARKER_ID + 3, ErrorCode::UnknownType, 0x42)]
    );
    let ok = MessageType::Ok as u8;
    assert_eq!(
        answers_to(&mut guest, &frame(ok, MARKER_ID + 4, &[])),
        [(MARKER_ID + 4, ErrorCode::UnknownType, u32::from(ok))]
    );

    // A header announcing 1 MiB of payload (more than MAX_PAYLOAD_LEN): a
    // false magic; Malformed with the length, the rest skipped silently.
    // Only the 12 header bytes are sent: the guest must not wait for the
    // payload.
    let too_long = 1u32 << 20;
    assert!(too_long as usize > MAX_PAYLOAD_LEN);
    let mut header = Vec::new();
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&[PROTOCOL_VERSION, MessageType::Stats as u8]);
    header.extend_from_slice(&(MARKER_ID + 5).to_le_bytes());
    header.extend_from_slice(&too_long.to_le_bytes());
    assert_eq!(
        answers_to(&mut guest, &header),
        [(0, ErrorCode::Malformed, too_long)]
    );

    // An intact frame whose payload does not fit its type: Hello with two
    // bytes instead of one is Malformed, detail the length.
    assert_eq!(
        answers_to(
            &mut guest,
            &frame(MessageType::Hello as u8, MARKER_ID + 6, &[1, 1])
        ),
        [(MARKER_ID + 6, ErrorCode::Malformed, 2)]
    );

    // A RunScale with a mode that does not exist (byte 2 of its payload):
    // Malformed, detail the field's offset.
    let run_scale = [0, 0, 7, 1, 0, 200, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        answers_to(
            &mut guest,
            &frame(MessageType::RunScale as u8, MARKER_ID + 7, &run_scale)
        ),
        [(MARKER_ID + 7, ErrorCode::Malformed, 2)]
    );
    // Well-formed RunScales it cannot run: an operation workers cannot
    // repeat (detail: the op), no workers (detail: 0).
    for (op, workers, detail) in [(BenchOp::CloneEinval, 1, 8), (BenchOp::Fork, 0, 0)] {
        match guest.run_scale(op, ScaleMode::Processes, workers, 10, 0) {
            Err(HarnessError::Guest {
                request: MessageType::RunScale,
                code: ErrorCode::BadArgument,
                detail: got,
            }) => assert_eq!(got, detail),
            other => panic!("RunScale of {op:?} x{workers}: {other:?}"),
        }
    }

    // Well-formed requests with bad arguments: BadArgument with the errno.
    match guest.sysctl("kernel.no-such-sysctl", None) {
        Err(HarnessError::Guest {
            request: MessageType::Sysctl,
            code: ErrorCode::BadArgument,
            detail,
        }) => assert_eq!(detail, libc::ENOENT as u32),
        other => panic!("unknown sysctl: {other:?}"),
    }
    // Soft limit above the hard one (Linux: EINVAL).
    match guest.rlimit(libc::RLIMIT_NPROC, 10, 5) {
        Err(HarnessError::Guest {
            request: MessageType::Rlimit,
            code: ErrorCode::BadArgument,
            detail,
        }) => assert_eq!(detail, libc::EINVAL as u32),
        other => panic!("rlimit cur > max: {other:?}"),
    }

    // Still serving normally.
    assert_eq!(guest.hello().unwrap(), info);
    let stats = guest.stats().unwrap();
    assert!(stats.tasks >= 1, "{stats:?}");
    guest.shutdown().unwrap();
}

/// Header plus payload length of an encoded frame.
fn body_len(frame: &[u8]) -> usize {
    frame.len() - CRC_LEN
}
