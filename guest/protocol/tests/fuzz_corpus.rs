//! Replays the fuzzer's corpus (`fuzz/corpus/decoder/`) through the same
//! invariant check as the cargo-fuzz target, so every `cargo test` exercises
//! it without nightly or libFuzzer. Crashes the fuzzer finds are added to the
//! corpus as files and stay checked here.
//!
//! The seed files are written by `write_seed_corpus` below (ignored; run it
//! with `cargo test -p forkvm-protocol --test fuzz_corpus -- --ignored` after
//! a layout change). Payloads are spelled out byte by byte after the layout
//! table in the crate docs, so the seeds do not depend on the encoder they
//! test. A file's name says what it holds, and `replay_corpus` checks that
//! too: `valid-*` hold intact frames, `payload-*` one intact frame with a bad
//! payload, `frame-*` no intact frame at all.

#[path = "../fuzz/src/invariants.rs"]
mod invariants;

use std::path::PathBuf;

use forkvm_protocol::{write_frame, MAX_FRAME_LEN, PROTOCOL_VERSION};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decoder")
}

#[test]
fn replay_corpus() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    // Guard against replaying nothing (a moved or emptied corpus).
    assert!(files.len() >= 30, "only {} corpus files", files.len());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        let summary = invariants::check(&data);
        if name.starts_with("valid-") {
            assert!(summary.frames >= 1, "{name}: {summary:?}");
        } else if name.starts_with("payload-") {
            assert_eq!(summary.frames, 1, "{name}: {summary:?}");
            assert_eq!(summary.messages, 0, "{name}: {summary:?}");
        } else if name.starts_with("frame-") {
            assert_eq!(summary.frames, 0, "{name}: {summary:?}");
        }
    }
}

/// Little-endian payload builder.
#[derive(Default)]
struct Payload(Vec<u8>);

impl Payload {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

fn p() -> Payload {
    Payload::default()
}

fn frame(msg_type: u8, request_id: u32, payload: Payload) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_LEN];
    let n = write_frame(msg_type, request_id, &payload.0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Re-seals `frame` after its header was edited (new CRC).
fn reseal(mut frame: Vec<u8>) -> Vec<u8> {
    let body = frame.len() - 4;
    let crc = forkvm_protocol::crc32(&frame[..body]);
    frame[body..].copy_from_slice(&crc.to_le_bytes());
    frame
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let sysctl_name = b"kernel.threads-max";
    let mut kernel_version = [0u8; 32];
    kernel_version[..12].copy_from_slice(b"forkvm 0.1.0");
    let hello = frame(0x01, 1, p().u8(PROTOCOL_VERSION));
    let stats = frame(0x04, 2, p());
    let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) | 1).collect();
    let mut seeds = vec![
        // One intact frame of every type.
        ("valid-hello", hello.clone()),
        (
            "valid-run-bench",
            frame(0x02, 3, p().u16(0).u32(1000).u32(10).u32(0)),
        ),
        (
            "valid-run-bench-fork-threaded",
            frame(0x02, 13, p().u16(11).u32(200).u32(20).u32(0)),
        ),
        (
            "valid-probe",
            frame(
                0x03,
                4,
                p().u64(0x11).u32(17).u8(1).u32(1000).u64(u64::MAX).u64(0),
            ),
        ),
        ("valid-stats", stats.clone()),
        (
            "valid-sysctl-read",
            frame(
                0x05,
                5,
                p().u8(sysctl_name.len() as u8)
                    .bytes(sysctl_name)
                    .u8(0)
                    .u64(0),
            ),
        ),
        (
            "valid-sysctl-write",
            frame(
                0x05,
                6,
                p().u8(sysctl_name.len() as u8)
                    .bytes(sysctl_name)
                    .u8(1)
                    .u64(4096),
            ),
        ),
        ("valid-rlimit", frame(0x06, 7, p().u32(6).u64(10).u64(20))),
        ("valid-shutdown", frame(0x07, 8, p().u32(0))),
        (
            "valid-hello-reply",
            frame(
                0x81,
                1,
                p().u8(1)
                    .u32(2)
                    .u64(2_000_000)
                    .u64(256 << 20)
                    .bytes(&kernel_version),
            ),
        ),
        (
            "valid-bench-samples",
            frame(
                0x82,
                3,
                p().u16(0)
                    .u8(1)
                    .u32(0)
                    .u32(3)
                    .u16(3)
                    .u64(100)
                    .u64(200)
                    .u64(300),
            ),
        ),
        (
            "valid-bench-samples-empty",
            frame(0x82, 3, p().u16(8).u8(0).u32(0).u32(0).u16(0)),
        ),
        (
            "valid-bench-done",
            frame(0x83, 3, p().u16(0).u32(3).u32(-11i32 as u32)),
        ),
        ("valid-probe-reply", frame(0x84, 4, p().u64(-22i64 as u64))),
        (
            "valid-stats-reply",
            frame(
                0x85,
                2,
                p().u64(1000)
                    .u64(65536)
                    .u32(3)
                    .u32(3)
                    .u32(4096)
                    .u8(2)
                    .u32(0)
                    .u64(2)
                    .u32(1000)
                    .u64(1),
            ),
        ),
        ("valid-sysctl-reply", frame(0x86, 5, p().u64(4096))),
        ("valid-ok", frame(0x87, 6, p())),
        ("valid-error", frame(0xff, 9, p().u32(9).u16(4).u32(22))),
        ("valid-two-frames", [hello.clone(), stats.clone()].concat()),
        (
            "valid-after-garbage",
            [garbage.clone(), hello.clone()].concat(),
        ),
        (
            "valid-after-bad-crc",
            [bad_crc(stats.clone()), hello.clone()].concat(),
        ),
        // Framing failures: nothing intact.
        ("frame-garbage-only", garbage.clone()),
        ("frame-lone-magic-byte", b"F".to_vec()),
        ("frame-magic-only", b"FK".to_vec()),
        ("frame-truncated-header", hello[..7].to_vec()),
        ("frame-truncated-payload", {
            let f = frame(0x03, 4, p().u64(0).u32(17).u8(0).u32(0).u64(0).u64(0));
            f[..f.len() - 9].to_vec()
        }),
        ("frame-truncated-crc", hello[..hello.len() - 1].to_vec()),
        ("frame-bad-crc", bad_crc(hello.clone())),
        ("frame-version-0", reseal(with_byte(&hello, 2, 0))),
        // The next version, which this one cannot read.
        (
            "frame-version-next",
            reseal(with_byte(&hello, 2, PROTOCOL_VERSION + 1)),
        ),
        ("frame-oversized-length", oversized(0x0001_0001)),
        ("frame-oversized-length-max", oversized(u32::MAX)),
        // Exactly the largest payload announced, but only the header sent.
        (
            "frame-max-length-header-only",
            oversized(0x0001_0000)[..12].to_vec(),
        ),
        (
            "frame-false-magics",
            b"xxFKFK\x01\x01\x00\x00\x00\x00\xff\xff\xff\xffFKF".to_vec(),
        ),
        // Intact frames whose payload is wrong for their type.
        ("payload-unknown-type", frame(0x42, 10, p().u8(1))),
        ("payload-hello-too-long", frame(0x01, 11, p().u8(1).u8(1))),
        ("payload-stats-not-empty", frame(0x04, 12, p().u8(0))),
        (
            "payload-bench-op-unknown",
            frame(0x02, 13, p().u16(999).u32(1).u32(0).u32(0)),
        ),
        (
            "valid-run-scale",
            frame(0x08, 20, p().u16(0).u8(1).u16(2).u32(1000).u32(0)),
        ),
        (
            "valid-scale-done",
            frame(
                0x88,
                21,
                p().u16(2)
                    .u8(0)
                    .u16(2)
                    .u32(0)
                    .u64(3_000_000)
                    .u64(1234)
                    .u64(600)
                    .u64(634),
            ),
        ),
        (
            "payload-run-scale-mode-unknown",
            frame(0x08, 22, p().u16(0).u8(2).u16(2).u32(1000).u32(0)),
        ),
        (
            "payload-probe-bool-2",
            frame(0x03, 14, p().u64(0).u32(17).u8(2).u32(0).u64(0).u64(0)),
        ),
        (
            "payload-sysctl-name-too-long",
            frame(0x05, 15, p().u8(65).bytes(&[b'a'; 65]).u8(0).u64(0)),
        ),
        (
            "payload-sysctl-absent-value-nonzero",
            frame(
                0x05,
                16,
                p().u8(sysctl_name.len() as u8)
                    .bytes(sysctl_name)
                    .u8(0)
                    .u64(7),
            ),
        ),
        (
            "payload-bench-samples-count-too-big",
            frame(0x82, 17, p().u16(0).u8(0).u32(0).u32(1025).u16(1025)),
        ),
        (
            "payload-bench-samples-count-mismatch",
            frame(0x82, 17, p().u16(0).u8(0).u32(0).u32(2).u16(2).u64(1)),
        ),
        // Metric 7 does not exist; clone_einval (8) has no create_exit_reap (1).
        (
            "payload-bench-samples-metric-unknown",
            frame(0x82, 17, p().u16(0).u8(7).u32(0).u32(1).u16(1).u64(1)),
        ),
        (
            "payload-bench-samples-metric-foreign",
            frame(0x82, 17, p().u16(8).u8(1).u32(0).u32(1).u16(1).u64(1)),
        ),
        (
            "payload-stats-reply-too-many-users",
            frame(0x85, 18, p().u64(0).u64(0).u32(0).u32(0).u32(0).u8(17)),
        ),
        (
            "payload-error-code-unknown",
            frame(0xff, 19, p().u32(19).u16(0).u32(0)),
        ),
    ];
    seeds.sort_by_key(|(name, _)| *name);
    seeds
}

fn with_byte(frame: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at] = value;
    f
}

fn bad_crc(mut frame: Vec<u8>) -> Vec<u8> {
    *frame.last_mut().unwrap() ^= 0x80;
    frame
}

/// A Stats header announcing `len` bytes of payload, and 16 bytes after it.
fn oversized(len: u32) -> Vec<u8> {
    let mut f = vec![0x46, 0x4b, PROTOCOL_VERSION, 0x04, 20, 0, 0, 0];
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&[0x5a; 16]);
    f
}

/// Writes the seed files (run with `--ignored`; files of the same name are
/// overwritten, others, such as crashes the fuzzer found, are kept).
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
