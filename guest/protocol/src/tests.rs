use super::*;

/// Owned copy of what the decoder yielded, so results outlive the borrow.
type Decoded = Result<(u8, u32, Vec<u8>), DecodeError>;

/// Feeds `data` in chunks of `chunk` bytes and collects everything.
fn decode_stream(dec: &mut FrameDecoder, data: &[u8], chunk: usize) -> Vec<Decoded> {
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut input = piece;
        loop {
            let n = dec.feed(input);
            input = &input[n..];
            while let Some(r) = dec.next_frame() {
                out.push(r.map(|f| (f.msg_type, f.request_id, f.payload.to_vec())));
            }
            assert!(dec.buffered() <= MAX_FRAME_LEN);
            if input.is_empty() {
                break;
            }
            // Progress guarantee: after draining, feed takes at least a byte.
            assert!(dec.buffered() < MAX_FRAME_LEN);
        }
    }
    out
}

fn frames_only(results: &[Decoded]) -> Vec<(u8, u32, Vec<u8>)> {
    results.iter().filter_map(|r| r.clone().ok()).collect()
}

fn encode(msg: &Message, id: u32) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let n = msg.encode_frame(id, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn kernel_version(s: &str) -> [u8; KERNEL_VERSION_LEN] {
    let mut v = [0; KERNEL_VERSION_LEN];
    v[..s.len()].copy_from_slice(s.as_bytes());
    v
}

/// One message of every type, with values that exercise sign and width.
fn sample_messages() -> Vec<Message> {
    vec![
        Message::Hello { client_version: 1 },
        Message::RunBench {
            op: BenchOp::ForkMem,
            iters: 100_000,
            warmup: 1000,
            mem_mib: 512,
        },
        Message::Probe {
            flags: 0x0001_0000_0000_0f00,
            exit_signal: 17,
            use_clone3: true,
            uid: 1000,
            nproc_limit: u64::MAX,
            threads_max: 4096,
        },
        Message::Stats,
        Message::Sysctl {
            name: SysctlName::new(b"kernel.threads-max").unwrap(),
            value: None,
        },
        Message::Sysctl {
            name: SysctlName::new(&[b'x'; MAX_SYSCTL_NAME_LEN]).unwrap(),
            value: Some(u64::MAX),
        },
        Message::Rlimit {
            resource: 6,
            cur: 10,
            max: u64::MAX,
        },
        Message::Shutdown { status: 0xdead },
        Message::RunScale {
            op: BenchOp::CloneThread,
            mode: ScaleMode::Threads,
            workers: u16::MAX,
            duration_ms: 1000,
            mem_mib: 16,
        },
        Message::ScaleDone {
            op: BenchOp::ForkMem,
            mode: ScaleMode::Processes,
            workers: 2,
            errno: -11,
            elapsed_tsc: u64::MAX,
            ops: 12_345,
            min_worker_ops: 6000,
            max_worker_ops: 6345,
        },
        Message::HelloReply {
            protocol_version: PROTOCOL_VERSION,
            platform: 2,
            tsc_khz: 2_999_999,
            memory_bytes: 1 << 30,
            kernel_version: kernel_version("forkvm 0.1.0"),
        },
        Message::BenchSamples {
            op: BenchOp::CloneThread,
            metric: BenchMetric::CreateExitReap,
            first_index: 2048,
            total: 100_000,
            samples: Samples::from_slice(&[1, 2, u64::MAX]).unwrap(),
        },
        Message::BenchSamples {
            op: BenchOp::Fork,
            metric: BenchMetric::Create,
            first_index: 0,
            total: 0,
            samples: Samples::new(),
        },
        Message::BenchSamples {
            op: BenchOp::CloneEinval,
            metric: BenchMetric::Create,
            first_index: 0,
            total: 1024,
            samples: Samples::from_slice(&(0..1024).map(|i| i * 977).collect::<Vec<_>>()).unwrap(),
        },
        Message::BenchDone {
            op: BenchOp::RlimitEagain,
            total: 100_000,
            errno: -11,
        },
        Message::ProbeReply { result: -11 },
        Message::ProbeReply { result: 4242 },
        Message::StatsReply {
            free_frames: 123_456,
            total_frames: 262_144,
            tasks: 7,
            nr_threads: 9,
            max_threads: 4096,
            user_tasks: UserTasks::from_slice(&[(0, 3), (1000, u64::MAX)]).unwrap(),
        },
        Message::StatsReply {
            free_frames: 0,
            total_frames: 0,
            tasks: 0,
            nr_threads: 0,
            max_threads: 0,
            user_tasks: UserTasks::from_slice(&[(7, 7); MAX_USER_TASKS]).unwrap(),
        },
        Message::SysctlReply { value: 31_000 },
        Message::Ok,
        Message::Error {
            request_id: 77,
            code: ErrorCode::Busy,
            detail: 0xffff_ffff,
        },
    ]
}

// --- Test vectors: frames built independently (Python `struct` + `zlib.crc32`).

/// `Hello { client_version: 2 }`, request id 1.
const HELLO: &[u8] = &[
    0x46, 0x4b, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x2a, 0x95, 0x56,
    0x20,
];
/// `Stats`, request id 2 (empty payload).
const STATS: &[u8] = &[
    0x46, 0x4b, 0x02, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x98, 0xcc, 0xde, 0x4a,
];
/// `Error { request_id: 3, code: Malformed, detail: 7 }`, request id 3.
const ERROR_MALFORMED: &[u8] = &[
    0x46, 0x4b, 0x02, 0xff, 0x03, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x0a, 0x61, 0xd0, 0x19,
];
/// `Sysctl { name: "kernel.threads-max", value: Some(100) }`, request id 4.
const SYSCTL_WRITE: &[u8] = &[
    0x46, 0x4b, 0x02, 0x05, 0x04, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x12, 0x6b, 0x65, 0x72,
    0x6e, 0x65, 0x6c, 0x2e, 0x74, 0x68, 0x72, 0x65, 0x61, 0x64, 0x73, 0x2d, 0x6d, 0x61, 0x78, 0x01,
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7, 0xa2, 0x96, 0xa7,
];
/// `RunBench { op: Fork, iters: 1000, warmup: 10, mem_mib: 0 }`, request id 5.
const RUN_BENCH_FORK: &[u8] = &[
    0x46, 0x4b, 0x02, 0x02, 0x05, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe8, 0x03,
    0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcd, 0x4f, 0x91, 0xd6,
];
/// `RunBench { op: ForkThreaded, iters: 200, warmup: 20, mem_mib: 0 }`,
/// request id 13: operation 11 on the wire.
const RUN_BENCH_FORK_THREADED: &[u8] = &[
    0x46, 0x4b, 0x02, 0x02, 0x0d, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0b, 0x00, 0xc8, 0x00,
    0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xcc, 0x08, 0xc8,
];
/// `ProbeReply { result: -11 }` (EAGAIN), request id 6.
const PROBE_REPLY_EAGAIN: &[u8] = &[
    0x46, 0x4b, 0x02, 0x84, 0x06, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0xf5, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0x49, 0x55, 0x9a, 0x15,
];
/// `BenchSamples { op: Vfork, metric: Create, first_index: 1024, total:
/// 2000, samples: [25000, 0x1_0000_0001] }`, request id 7.
const BENCH_SAMPLES_VFORK_CREATE: &[u8] = &[
    0x46, 0x4b, 0x02, 0x82, 0x07, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x02, 0x00, 0xa8, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0b, 0xc1, 0x22, 0x05,
];
/// `RunScale { op: Fork, mode: Processes, workers: 2, duration_ms: 200,
/// mem_mib: 0 }`, request id 11.
const RUN_SCALE_FORK: &[u8] = &[
    0x46, 0x4b, 0x02, 0x08, 0x0b, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x00, 0xc8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0xc7, 0xc7, 0x20,
];
/// `ScaleDone { op: CloneThread, mode: Threads, workers: 2, errno: 0,
/// elapsed_tsc: 3_000_000, ops: 1234, min_worker_ops: 600, max_worker_ops:
/// 634 }`, request id 12.
const SCALE_DONE_THREADS: &[u8] = &[
    0x46, 0x4b, 0x02, 0x88, 0x0c, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x02,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xc6, 0x2d, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd2, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x58, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7a, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x2e, 0x3b, 0x54, 0x2c,
];
/// A `Hello` in protocol version 1, request id 9: intact but foreign.
const HELLO_V1: &[u8] = &[
    0x46, 0x4b, 0x01, 0x01, 0x09, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x89, 0x00, 0x65,
    0x9b,
];
/// Version 2, unknown type 0x42, request id 10, payload `00 01`.
const UNKNOWN_TYPE_0X42: &[u8] = &[
    0x46, 0x4b, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x6d, 0xd4,
    0x76, 0x7d,
];

fn vectors() -> Vec<(&'static [u8], u32, Message)> {
    vec![
        (HELLO, 1, Message::Hello { client_version: 2 }),
        (STATS, 2, Message::Stats),
        (
            ERROR_MALFORMED,
            3,
            Message::Error {
                request_id: 3,
                code: ErrorCode::Malformed,
                detail: 7,
            },
        ),
        (
            SYSCTL_WRITE,
            4,
            Message::Sysctl {
                name: SysctlName::new(b"kernel.threads-max").unwrap(),
                value: Some(100),
            },
        ),
        (
            RUN_BENCH_FORK,
            5,
            Message::RunBench {
                op: BenchOp::Fork,
                iters: 1000,
                warmup: 10,
                mem_mib: 0,
            },
        ),
        (
            RUN_BENCH_FORK_THREADED,
            13,
            Message::RunBench {
                op: BenchOp::ForkThreaded,
                iters: 200,
                warmup: 20,
                mem_mib: 0,
            },
        ),
        (PROBE_REPLY_EAGAIN, 6, Message::ProbeReply { result: -11 }),
        (
            BENCH_SAMPLES_VFORK_CREATE,
            7,
            Message::BenchSamples {
                op: BenchOp::Vfork,
                metric: BenchMetric::Create,
                first_index: 1024,
                total: 2000,
                samples: Samples::from_slice(&[25_000, 0x1_0000_0001]).unwrap(),
            },
        ),
        (
            RUN_SCALE_FORK,
            11,
            Message::RunScale {
                op: BenchOp::Fork,
                mode: ScaleMode::Processes,
                workers: 2,
                duration_ms: 200,
                mem_mib: 0,
            },
        ),
        (
            SCALE_DONE_THREADS,
            12,
            Message::ScaleDone {
                op: BenchOp::CloneThread,
                mode: ScaleMode::Threads,
                workers: 2,
                errno: 0,
                elapsed_tsc: 3_000_000,
                ops: 1234,
                min_worker_ops: 600,
                max_worker_ops: 634,
            },
        ),
    ]
}

/// Tiny deterministic LCG (Knuth's MMIX constants); no external crates.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // The low bits of an LCG are weak; mix the high half down.
        let x = self.0;
        (x >> 32) ^ (x << 32) ^ (x >> 17)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

fn random_message(rng: &mut Lcg) -> Message {
    let op = BenchOp::ALL[rng.below(BenchOp::ALL.len() as u64) as usize];
    match rng.below(17) {
        0 => Message::Hello {
            client_version: rng.byte(),
        },
        1 => Message::RunBench {
            op,
            iters: rng.next_u64() as u32,
            warmup: rng.next_u64() as u32,
            mem_mib: rng.next_u64() as u32,
        },
        2 => Message::Probe {
            flags: rng.next_u64(),
            exit_signal: rng.next_u64() as u32,
            use_clone3: rng.bool(),
            uid: rng.next_u64() as u32,
            nproc_limit: rng.next_u64(),
            threads_max: rng.next_u64(),
        },
        3 => Message::Stats,
        4 => {
            let len = rng.below(MAX_SYSCTL_NAME_LEN as u64 + 1) as usize;
            let name: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            Message::Sysctl {
                name: SysctlName::new(&name).unwrap(),
                value: rng.bool().then(|| rng.next_u64()),
            }
        }
        5 => Message::Rlimit {
            resource: rng.next_u64() as u32,
            cur: rng.next_u64(),
            max: rng.next_u64(),
        },
        6 => Message::Shutdown {
            status: rng.next_u64() as u32,
        },
        7 => {
            let mut kv = [0; KERNEL_VERSION_LEN];
            kv.iter_mut().for_each(|b| *b = rng.byte());
            Message::HelloReply {
                protocol_version: rng.byte(),
                platform: rng.next_u64() as u32,
                tsc_khz: rng.next_u64(),
                memory_bytes: rng.next_u64(),
                kernel_version: kv,
            }
        }
        8 => {
            let n = rng.below(MAX_SAMPLES_PER_FRAME as u64 + 1) as usize;
            let samples: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
            let metrics = op.metrics();
            Message::BenchSamples {
                op,
                metric: metrics[rng.below(metrics.len() as u64) as usize],
                first_index: rng.next_u64() as u32,
                total: rng.next_u64() as u32,
                samples: Samples::from_slice(&samples).unwrap(),
            }
        }
        9 => Message::BenchDone {
            op,
            total: rng.next_u64() as u32,
            errno: rng.next_u64() as i32,
        },
        10 => Message::ProbeReply {
            result: rng.next_u64() as i64,
        },
        11 => {
            let mut user_tasks = UserTasks::new();
            for _ in 0..rng.below(MAX_USER_TASKS as u64 + 1) {
                assert!(user_tasks.push((rng.next_u64() as u32, rng.next_u64())));
            }
            Message::StatsReply {
                free_frames: rng.next_u64(),
                total_frames: rng.next_u64(),
                tasks: rng.next_u64() as u32,
                nr_threads: rng.next_u64() as u32,
                max_threads: rng.next_u64() as u32,
                user_tasks,
            }
        }
        12 => Message::SysctlReply {
            value: rng.next_u64(),
        },
        13 => Message::Ok,
        14 => Message::RunScale {
            op,
            mode: ScaleMode::ALL[rng.below(2) as usize],
            workers: rng.next_u64() as u16,
            duration_ms: rng.next_u64() as u32,
            mem_mib: rng.next_u64() as u32,
        },
        15 => Message::ScaleDone {
            op,
            mode: ScaleMode::ALL[rng.below(2) as usize],
            workers: rng.next_u64() as u16,
            errno: rng.next_u64() as i32,
            elapsed_tsc: rng.next_u64(),
            ops: rng.next_u64(),
            min_worker_ops: rng.next_u64(),
            max_worker_ops: rng.next_u64(),
        },
        _ => Message::Error {
            request_id: rng.next_u64() as u32,
            code: ErrorCode::ALL[rng.below(ErrorCode::ALL.len() as u64) as usize],
            detail: rng.next_u64() as u32,
        },
    }
}

/// Random garbage that never contains the magic, so it cannot start a
/// frame; it may still end in a lone `F` right before a real frame.
fn random_garbage(rng: &mut Lcg, len: usize) -> Vec<u8> {
    let mut g: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    for i in 1..g.len() {
        if g[i - 1] == b'F' && g[i] == b'K' {
            g[i] = b'k';
        }
    }
    // Often begin with an 'F' (or be a lone 'F'): the trickiest prefix.
    if !g.is_empty() && rng.below(4) == 0 {
        let last = g.len() - 1;
        g[last] = b'F';
    }
    g
}

// --- CRC ---

#[test]
fn crc32_matches_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414f_a339
    );
}

// --- Messages ---

#[test]
fn every_message_round_trips() {
    let msgs = sample_messages();
    for ty in MessageType::ALL {
        assert!(
            msgs.iter().any(|m| m.msg_type() == ty),
            "no sample for {ty:?}"
        );
        assert_eq!(MessageType::from_u8(ty as u8), Some(ty));
    }
    for (i, msg) in msgs.iter().enumerate() {
        let mut buf = vec![0u8; MAX_PAYLOAD_LEN];
        let n = msg.encode(&mut buf).unwrap();
        assert_eq!(n, msg.payload_len(), "{msg:?}");
        assert_eq!(
            Message::decode(msg.msg_type() as u8, &buf[..n]).as_ref(),
            Ok(msg)
        );

        let wire = encode(msg, i as u32);
        assert_eq!(wire.len(), HEADER_LEN + n + CRC_LEN);
        let mut dec = FrameDecoder::new();
        assert_eq!(dec.feed(&wire), wire.len());
        let frame = dec.next_frame().unwrap().unwrap();
        assert_eq!(frame.request_id, i as u32);
        assert_eq!(frame.msg_type, msg.msg_type() as u8);
        assert_eq!(frame.message().as_ref(), Ok(msg));
        assert!(dec.next_frame().is_none());
        assert_eq!(dec.buffered(), 0);
    }
}

#[test]
fn encode_reports_short_buffers() {
    for msg in sample_messages() {
        let n = msg.payload_len();
        if n > 0 {
            let mut buf = vec![0u8; n - 1];
            assert_eq!(
                msg.encode(&mut buf),
                Err(EncodeError::BufferTooSmall { needed: n })
            );
        }
        let total = HEADER_LEN + n + CRC_LEN;
        let mut buf = vec![0u8; total - 1];
        assert_eq!(
            msg.encode_frame(1, &mut buf),
            Err(EncodeError::BufferTooSmall { needed: total })
        );
    }
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    let mut buf = vec![0u8; MAX_FRAME_LEN + 16];
    assert_eq!(
        write_frame(0x01, 0, &big, &mut buf),
        Err(EncodeError::PayloadTooLong {
            len: MAX_PAYLOAD_LEN + 1
        })
    );
    assert!(matches!(
        encode_bench_samples_frame(
            0,
            (BenchOp::Fork, BenchMetric::Create),
            0,
            0,
            &[0; 1025],
            &mut buf
        ),
        Err(EncodeError::PayloadTooLong { .. })
    ));
}

#[test]
fn bounded_containers_reject_overflow() {
    assert!(Samples::from_slice(&[0; MAX_SAMPLES_PER_FRAME + 1]).is_none());
    let mut s = Samples::from_slice(&[0; MAX_SAMPLES_PER_FRAME]).unwrap();
    assert!(!s.push(1));
    assert_eq!(s.len(), MAX_SAMPLES_PER_FRAME);
    assert!(UserTasks::from_slice(&[(0, 0); MAX_USER_TASKS + 1]).is_none());
    assert!(SysctlName::new(&[b'a'; MAX_SYSCTL_NAME_LEN + 1]).is_none());
    assert_eq!(
        SysctlName::new(b"vm.overcommit").unwrap().as_str(),
        Some("vm.overcommit")
    );
}

#[test]
fn test_vectors_encode_and_decode() {
    for (bytes, id, msg) in vectors() {
        assert_eq!(encode(&msg, id), bytes, "{msg:?}");
        let mut dec = FrameDecoder::new();
        dec.feed(bytes);
        let frame = dec.next_frame().unwrap().unwrap();
        assert_eq!(frame.request_id, id);
        assert_eq!(frame.message(), Ok(msg));
    }
}

#[test]
fn bench_samples_helper_matches_message_and_chunks_100k() {
    // Both metrics of one run, as the guest sends them: every chunk of
    // `create`, then every chunk of `create_exit_reap`.
    let create: Vec<u64> = (0..100_000u64).map(|i| i * 31 + 7).collect();
    let whole: Vec<u64> = create.iter().map(|c| c * 3).collect();
    let mut wire = Vec::new();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    for (metric, all) in [
        (BenchMetric::Create, &create),
        (BenchMetric::CreateExitReap, &whole),
    ] {
        for (k, chunk) in all.chunks(MAX_SAMPLES_PER_FRAME).enumerate() {
            let first = (k * MAX_SAMPLES_PER_FRAME) as u32;
            let op = (BenchOp::Vfork, metric);
            let n = encode_bench_samples_frame(9, op, first, 100_000, chunk, &mut buf).unwrap();
            let via_message = encode(
                &Message::BenchSamples {
                    op: BenchOp::Vfork,
                    metric,
                    first_index: first,
                    total: 100_000,
                    samples: Samples::from_slice(chunk).unwrap(),
                },
                9,
            );
            assert_eq!(&buf[..n], &via_message[..]);
            wire.extend_from_slice(&buf[..n]);
        }
    }
    wire.extend(encode(
        &Message::BenchDone {
            op: BenchOp::Vfork,
            total: 100_000,
            errno: 0,
        },
        9,
    ));

    let mut got = [Vec::new(), Vec::new()];
    let mut done = false;
    for r in decode_stream(&mut FrameDecoder::new(), &wire, 4093) {
        let (ty, id, payload) = r.unwrap();
        assert_eq!(id, 9);
        match Message::decode(ty, &payload).unwrap() {
            Message::BenchSamples {
                metric,
                first_index,
                samples,
                ..
            } => {
                let got = &mut got[metric as usize];
                assert_eq!(first_index as usize, got.len());
                got.extend_from_slice(samples.as_slice());
            }
            Message::BenchDone { total, errno, .. } => {
                assert_eq!((total, errno), (100_000, 0));
                done = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(done);
    assert_eq!(got, [create, whole]);
    // The largest chunk still fits a frame with room to spare.
    let largest = Message::BenchSamples {
        op: BenchOp::Fork,
        metric: BenchMetric::CreateExitReap,
        first_index: 0,
        total: 1024,
        samples: Samples::from_slice(&[u64::MAX; MAX_SAMPLES_PER_FRAME]).unwrap(),
    };
    assert_eq!(largest.payload_len(), 13 + 8 * MAX_SAMPLES_PER_FRAME);
    assert!(largest.payload_len() <= MAX_PAYLOAD_LEN);
}

// --- Streaming ---

#[test]
fn split_and_merged_streams() {
    let msgs = sample_messages();
    let mut wire = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        wire.extend(encode(m, 1000 + i as u32));
    }
    for chunk in [1, 2, 3, 7, 12, 13, 255, 4096, wire.len()] {
        let results = decode_stream(&mut FrameDecoder::new(), &wire, chunk);
        assert_eq!(results.len(), msgs.len(), "chunk {chunk}");
        for (i, (r, m)) in results.iter().zip(&msgs).enumerate() {
            let (ty, id, payload) = r.as_ref().unwrap();
            assert_eq!(*id, 1000 + i as u32);
            assert_eq!(Message::decode(*ty, payload).as_ref(), Ok(m));
        }
    }
}

#[test]
fn maximum_payload_frame_passes() {
    let payload: Vec<u8> = (0..MAX_PAYLOAD_LEN).map(|i| i as u8).collect();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    assert_eq!(write_frame(0x42, 5, &payload, &mut buf), Ok(MAX_FRAME_LEN));
    // Twice, so the second frame forces a compaction of the buffer.
    let mut wire = buf.clone();
    wire.extend_from_slice(&buf);
    for chunk in [1000, MAX_FRAME_LEN, wire.len()] {
        let results = decode_stream(&mut FrameDecoder::new(), &wire, chunk);
        assert_eq!(results.len(), 2);
        for r in results {
            assert_eq!(r, Ok((0x42, 5, payload.clone())));
        }
    }
}

#[test]
fn feed_takes_only_what_fits() {
    let mut dec = FrameDecoder::new();
    let big = vec![0u8; MAX_FRAME_LEN + 100];
    assert_eq!(dec.feed(&big), MAX_FRAME_LEN);
    assert_eq!(dec.feed(&big), 0);
    assert_eq!(
        dec.next_frame(),
        Some(Err(DecodeError::BadMagic {
            skipped: MAX_FRAME_LEN
        }))
    );
    assert_eq!(dec.feed(&big), MAX_FRAME_LEN);
    dec.reset();
    assert_eq!(dec.buffered(), 0);
}

// --- Every DecodeError path ---

#[test]
fn bad_magic_is_skipped_to_next_magic() {
    let mut wire = b"hello\r\nFx garbage F".to_vec();
    wire.extend_from_slice(STATS);
    let results = decode_stream(&mut FrameDecoder::new(), &wire, wire.len());
    // One error for the whole run of garbage, then the frame.
    assert_eq!(
        results,
        vec![
            Err(DecodeError::BadMagic { skipped: 19 }),
            Ok((0x04, 2, vec![]))
        ]
    );
    // Byte by byte the garbage is reported in pieces, but the frame survives.
    let results = decode_stream(&mut FrameDecoder::new(), &wire, 1);
    assert!(results[..results.len() - 1]
        .iter()
        .all(|r| matches!(r, Err(DecodeError::BadMagic { .. }))));
    let skipped: usize = results
        .iter()
        .map(|r| match r {
            Err(DecodeError::BadMagic { skipped }) => *skipped,
            _ => 0,
        })
        .sum();
    assert_eq!(skipped, 19);
    assert_eq!(results.last(), Some(&Ok((0x04, 2, vec![]))));
}

#[test]
fn lone_first_magic_byte_waits_for_more() {
    let mut dec = FrameDecoder::new();
    dec.feed(b"F");
    assert_eq!(dec.next_frame(), None);
    assert_eq!(dec.buffered(), 1);
    dec.feed(b"F");
    assert_eq!(
        dec.next_frame(),
        Some(Err(DecodeError::BadMagic { skipped: 1 }))
    );
    dec.feed(&STATS[1..]);
    assert_eq!(dec.next_frame().unwrap().unwrap().request_id, 2);
}

#[test]
fn too_long_is_rejected_and_resynced() {
    let mut wire = vec![0x46, 0x4b, 0x01, 0x01, 0, 0, 0, 0];
    wire.extend_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_le_bytes());
    wire.extend_from_slice(HELLO);
    let results = decode_stream(&mut FrameDecoder::new(), &wire, wire.len());
    assert_eq!(
        results,
        vec![
            Err(DecodeError::TooLong {
                len: MAX_PAYLOAD_LEN as u32 + 1
            }),
            Ok((0x01, 1, vec![2])),
        ]
    );
}

#[test]
fn bad_crc_is_rejected_and_resynced() {
    let mut corrupt = HELLO.to_vec();
    corrupt[12] ^= 0x80; // flip a payload bit
    let mut wire = corrupt.clone();
    wire.extend_from_slice(STATS);
    let results = decode_stream(&mut FrameDecoder::new(), &wire, 1);
    assert_eq!(
        results,
        vec![
            Err(DecodeError::BadCrc {
                expected: 0x2056_952a,
                computed: crc32(&corrupt[..13]),
            }),
            Ok((0x04, 2, vec![])),
        ]
    );

    // A corrupted length swallows the next frame; it is found again once the
    // bogus frame's CRC fails.
    let mut corrupt = STATS.to_vec();
    corrupt[8] = 20;
    let mut wire = corrupt;
    wire.extend_from_slice(HELLO);
    wire.extend_from_slice(&[0; 8]);
    let results = decode_stream(&mut FrameDecoder::new(), &wire, 3);
    assert!(matches!(results[0], Err(DecodeError::BadCrc { .. })));
    // The CRC failure resumes the scan at the next magic: no bytes of the
    // swallowed frame are lost, only the 8 bytes of padding are garbage.
    assert_eq!(results[1], Ok((0x01, 1, vec![2])));
    assert!(results[2..]
        .iter()
        .all(|r| matches!(r, Err(DecodeError::BadMagic { .. }))));
}

#[test]
fn bad_version_skips_whole_frame_and_keeps_id() {
    // Version 1 (before BenchSamples carried a metric) is foreign now.
    let mut wire = HELLO_V1.to_vec();
    wire.extend_from_slice(HELLO);
    let results = decode_stream(&mut FrameDecoder::new(), &wire, 5);
    let err = DecodeError::BadVersion {
        version: 1,
        msg_type: 0x01,
        request_id: 9,
    };
    assert_eq!(results, vec![Err(err), Ok((0x01, 1, vec![2]))]);
    assert_eq!(
        err.error_reply(0),
        Message::Error {
            request_id: 9,
            code: ErrorCode::BadVersion,
            detail: 1
        }
    );
}

#[test]
fn unknown_type_passes_framing_and_fails_decode() {
    let mut dec = FrameDecoder::new();
    dec.feed(UNKNOWN_TYPE_0X42);
    let frame = dec.next_frame().unwrap().unwrap();
    assert_eq!((frame.msg_type, frame.request_id), (0x42, 10));
    let err = frame.message().unwrap_err();
    assert_eq!(err, DecodeError::UnknownType { msg_type: 0x42 });
    assert_eq!(
        err.error_reply(frame.request_id),
        Message::Error {
            request_id: 10,
            code: ErrorCode::UnknownType,
            detail: 0x42
        }
    );
    for t in 0..=255u8 {
        assert_eq!(
            MessageType::from_u8(t).is_none(),
            Message::decode(t, &[]) == Err(DecodeError::UnknownType { msg_type: t })
        );
    }
}

#[test]
fn bad_length_for_every_type() {
    for msg in sample_messages() {
        let ty = msg.msg_type() as u8;
        let mut buf = vec![0u8; msg.payload_len() + 1];
        let n = msg.encode(&mut buf).unwrap();
        // One trailing byte too many.
        assert_eq!(
            Message::decode(ty, &buf[..n + 1]),
            Err(DecodeError::BadLength {
                msg_type: ty,
                len: n as u32 + 1
            }),
            "{msg:?}"
        );
        // Every truncation.
        for cut in 0..n {
            assert_eq!(
                Message::decode(ty, &buf[..cut]),
                Err(DecodeError::BadLength {
                    msg_type: ty,
                    len: cut as u32
                }),
                "{msg:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn bad_field_values() {
    let bad = |ty: MessageType, payload: &[u8], offset: u32| {
        assert_eq!(
            Message::decode(ty as u8, payload),
            Err(DecodeError::BadField {
                msg_type: ty as u8,
                offset
            }),
            "{ty:?}"
        );
    };
    // Unknown BenchOp.
    let mut p = [0u8; 14];
    p[0] = BenchOp::ALL.len() as u8;
    bad(MessageType::RunBench, &p, 0);
    bad(MessageType::BenchDone, &p[..10], 0);
    // bool that is neither 0 nor 1.
    let mut p = [0u8; 33];
    p[12] = 2;
    bad(MessageType::Probe, &p, 12);
    // Sysctl: name too long, bad has_value, non-canonical absent value.
    bad(MessageType::Sysctl, &[65; 75], 0);
    bad(MessageType::Sysctl, &[0, 2, 0, 0, 0, 0, 0, 0, 0, 0], 1);
    bad(MessageType::Sysctl, &[0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 2);
    // BenchSamples count above the per-frame maximum.
    let mut p = [0u8; 13];
    p[11..13].copy_from_slice(&1025u16.to_le_bytes());
    bad(MessageType::BenchSamples, &p, 11);
    // BenchSamples metric unknown, or not one the op reports (a failing
    // op has only `create`).
    let mut p = [0u8; 13];
    p[2] = BenchMetric::ALL.len() as u8;
    bad(MessageType::BenchSamples, &p, 2);
    p[0] = BenchOp::CloneEinval as u8;
    p[2] = BenchMetric::CreateExitReap as u8;
    bad(MessageType::BenchSamples, &p, 2);
    p[2] = BenchMetric::Create as u8;
    assert!(Message::decode(MessageType::BenchSamples as u8, &p).is_ok());
    // StatsReply with too many user entries.
    let mut p = vec![0u8; 29 + 17 * 12];
    p[28] = 17;
    bad(MessageType::StatsReply, &p, 28);
    // RunScale/ScaleDone: unknown op, unknown mode.
    let mut p = [0u8; 41];
    p[0] = 0xee;
    bad(MessageType::RunScale, &p[..13], 0);
    bad(MessageType::ScaleDone, &p, 0);
    p[0] = BenchOp::Fork as u8;
    p[2] = ScaleMode::ALL.len() as u8;
    bad(MessageType::RunScale, &p[..13], 2);
    bad(MessageType::ScaleDone, &p, 2);
    p[2] = ScaleMode::Threads as u8;
    assert!(Message::decode(MessageType::RunScale as u8, &p[..13]).is_ok());
    assert!(Message::decode(MessageType::ScaleDone as u8, &p).is_ok());
    // Unknown ErrorCode.
    bad(MessageType::Error, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4);
    bad(MessageType::Error, &[0, 0, 0, 0, 7, 0, 0, 0, 0, 0], 4);
    // These map to Malformed for the reply.
    assert_eq!(
        DecodeError::BadField {
            msg_type: 2,
            offset: 0
        }
        .code(),
        ErrorCode::Malformed
    );
}

#[test]
fn error_codes_for_decoder_errors() {
    let cases = [
        (
            DecodeError::BadMagic { skipped: 3 },
            ErrorCode::Malformed,
            3,
        ),
        (
            DecodeError::TooLong { len: 70_000 },
            ErrorCode::Malformed,
            70_000,
        ),
        (
            DecodeError::BadCrc {
                expected: 1,
                computed: 2,
            },
            ErrorCode::Malformed,
            2,
        ),
        (
            DecodeError::BadLength {
                msg_type: 1,
                len: 4,
            },
            ErrorCode::Malformed,
            4,
        ),
    ];
    for (err, code, detail) in cases {
        assert_eq!(
            err.error_reply(0),
            Message::Error {
                request_id: 0,
                code,
                detail
            }
        );
    }
}

// --- Resync, property and fuzz tests ---

#[test]
fn resync_after_garbage_with_false_magics() {
    // Garbage holding false magics: a header with a bad version and a huge
    // length, one with a small length and a bad CRC, and a torn frame.
    let mut wire = b"\x00\xffFK\x07\x01\xff\xff\xff\xff\xff\xff".to_vec();
    wire.extend_from_slice(b"FK\x01\x01\x00\x00\x00\x00\x02\x00\x00\x00ab\x00\x00\x00\x00");
    wire.extend_from_slice(&HELLO[..9]);
    for (bytes, _, _) in vectors() {
        wire.extend_from_slice(bytes);
    }
    for chunk in [1, 5, wire.len()] {
        let results = decode_stream(&mut FrameDecoder::new(), &wire, chunk);
        let frames = frames_only(&results);
        let ids: Vec<u32> = frames.iter().map(|f| f.1).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 13, 6, 7, 11, 12], "chunk {chunk}");
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(DecodeError::TooLong { .. }))));
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(DecodeError::BadCrc { .. }))));
    }
}

#[test]
fn randomized_messages_with_garbage_are_all_recovered_in_order() {
    let mut rng = Lcg(0x5eed);
    for round in 0..40 {
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for i in 0..rng.below(40) as u32 + 1 {
            if rng.below(3) == 0 {
                let len = rng.below(64) as usize;
                wire.extend(random_garbage(&mut rng, len));
            }
            let msg = random_message(&mut rng);
            let id = round * 1000 + i;
            wire.extend(encode(&msg, id));
            sent.push((id, msg));
        }
        let chunk = [1, 2, 17, 1 + rng.below(9000) as usize, wire.len()][rng.below(5) as usize];
        let results = decode_stream(&mut FrameDecoder::new(), &wire, chunk);
        let frames = frames_only(&results);
        assert_eq!(frames.len(), sent.len(), "round {round}");
        for ((ty, id, payload), (sent_id, msg)) in frames.iter().zip(&sent) {
            assert_eq!(id, sent_id);
            assert_eq!(Message::decode(*ty, payload).as_ref(), Ok(msg));
        }
        // Only garbage produces errors, and only BadMagic ones.
        assert!(results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(DecodeError::BadMagic { .. }))));
    }
}

#[test]
fn randomized_corruption_loses_only_corrupted_frames() {
    let mut rng = Lcg(42);
    for _ in 0..40 {
        let mut wire = Vec::new();
        let mut intact = Vec::new();
        for i in 0..rng.below(30) as u32 + 1 {
            let mut bytes = encode(&random_message(&mut rng), i);
            if rng.below(3) == 0 {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            } else {
                intact.push(i);
            }
            wire.extend(bytes);
        }
        // Padding lets a bogus frame whose corrupted length points past the
        // end complete and fail its CRC.
        wire.extend(vec![0u8; MAX_FRAME_LEN]);
        let chunk = 1 + rng.below(3000) as usize;
        let results = decode_stream(&mut FrameDecoder::new(), &wire, chunk);
        let ids: Vec<u32> = frames_only(&results).iter().map(|f| f.1).collect();
        assert_eq!(ids, intact);
    }
}

#[test]
fn fuzz_random_bytes_never_panics() {
    let mut rng = Lcg(7);
    let mut dec = FrameDecoder::new();
    let mut frames = 0;
    for _ in 0..300 {
        let len = rng.below(5000) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Sprinkle magics and plausible headers so the deeper paths run.
        for _ in 0..rng.below(8) {
            if data.len() >= 12 {
                let at = rng.below(data.len() as u64 - 11) as usize;
                data[at..at + 3].copy_from_slice(&[0x46, 0x4b, 1 + rng.below(2) as u8]);
                data[at + 8..at + 12].copy_from_slice(
                    &(rng.below(MAX_PAYLOAD_LEN as u64 + 10) as u32).to_le_bytes(),
                );
                if rng.bool() {
                    data[at + 9..at + 12].fill(0);
                }
            }
        }
        let chunk = 1 + rng.below(700) as usize;
        for (ty, _, payload) in frames_only(&decode_stream(&mut dec, &data, chunk)) {
            frames += 1;
            let _ = Message::decode(ty, &payload);
        }
        // Message::decode on arbitrary payloads must not panic either.
        let ty = rng.byte();
        let cut = rng.below(data.len() as u64 + 1) as usize;
        let _ = Message::decode(ty, &data[..cut]);
    }
    // Random bytes essentially never carry a valid CRC.
    assert!(frames <= 1);
}

#[test]
fn bench_op_wire_values_follow_all() {
    for (i, op) in BenchOp::ALL.into_iter().enumerate() {
        assert_eq!(op as u16 as usize, i, "{op:?}");
        assert_eq!(BenchOp::from_u16(i as u16), Some(op));
    }
    assert_eq!(BenchOp::from_u16(BenchOp::ALL.len() as u16), None);
    // fork of a threaded parent: a creating operation with both metrics.
    assert_eq!(BenchOp::from_u16(11), Some(BenchOp::ForkThreaded));
    assert!(!BenchOp::ForkThreaded.must_fail() && !BenchOp::ForkThreaded.is_ping_pong());
    assert_eq!(
        BenchOp::ForkThreaded.metrics(),
        &[BenchMetric::Create, BenchMetric::CreateExitReap]
    );
}
