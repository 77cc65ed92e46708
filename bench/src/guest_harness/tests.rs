//! The client against a fake guest over in-memory channels.

use std::sync::mpsc;
use std::time::Duration;

use forkvm_protocol::{
    BenchMetric, BenchOp, ErrorCode, FrameDecoder, Message, Samples, MAX_FRAME_LEN,
};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Encodes one frame.
fn frame(id: u32, message: &Message) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_LEN];
    let n = message.encode_frame(id, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A `BenchSamples` frame of `create` samples starting at `first`.
fn chunk(id: u32, op: BenchOp, first: u32, total: u32, samples: &[u64]) -> Vec<u8> {
    chunk_of(id, (op, BenchMetric::Create), first, total, samples)
}

/// A `BenchSamples` frame of `metric` samples starting at `first`.
fn chunk_of(
    id: u32,
    (op, metric): (BenchOp, BenchMetric),
    first: u32,
    total: u32,
    samples: &[u64],
) -> Vec<u8> {
    frame(
        id,
        &Message::BenchSamples {
            op,
            metric,
            first_index: first,
            total,
            samples: Samples::from_slice(samples).unwrap(),
        },
    )
}

/// The fake guest's sample `i` of `metric`: `i` for `create`, `10 * i + 1`
/// for `create_exit_reap` (larger, as a whole cycle is).
fn fake_sample(metric: BenchMetric, i: u64) -> u64 {
    match metric {
        BenchMetric::Create => i,
        BenchMetric::CreateExitReap => 10 * i + 1,
        BenchMetric::RoundTrip => 3 * i + 2,
    }
}

/// A client whose guest answers each request with the byte strings
/// `handler` returns (each sent as its own write).
fn fake_guest(
    mut handler: impl FnMut(u32, Message) -> Vec<Vec<u8>> + Send + 'static,
) -> Client<ChannelTransport> {
    let (to_guest, guest_rx) = mpsc::channel::<Vec<u8>>();
    let (guest_tx, from_guest) = mpsc::channel::<Incoming>();
    std::thread::spawn(move || {
        let mut decoder = Box::new(FrameDecoder::new());
        while let Ok(bytes) = guest_rx.recv() {
            let mut input = &bytes[..];
            while !input.is_empty() {
                let taken = decoder.feed(input);
                input = &input[taken..];
                let mut requests = Vec::new();
                while let Some(result) = decoder.next_frame() {
                    let frame = result.unwrap();
                    requests.push((frame.request_id, frame.message().unwrap()));
                }
                for (id, request) in requests {
                    let shutdown = matches!(request, Message::Shutdown { .. });
                    for reply in handler(id, request) {
                        if guest_tx.send(Incoming::Data(reply)).is_err() {
                            return;
                        }
                    }
                    if shutdown {
                        let _ = guest_tx.send(Incoming::Closed);
                        return;
                    }
                }
            }
        }
    });
    let transport = ChannelTransport::new(
        move |bytes| {
            let _ = to_guest.send(bytes.to_vec());
        },
        from_guest,
    );
    Client::new(transport, TIMEOUT)
}

/// A guest answering `RunBench` with `iters` samples of each of the op's
/// metrics ([`fake_sample`]) in chunks of `per_chunk`, and everything else
/// like a healthy `harnessd`.
fn healthy(per_chunk: usize) -> impl FnMut(u32, Message) -> Vec<Vec<u8>> + Send {
    move |id, request| match request {
        Message::Hello { .. } => vec![frame(
            id,
            &Message::HelloReply {
                protocol_version: 1,
                platform: 2,
                tsc_khz: 3_000_000,
                memory_bytes: 256 << 20,
                kernel_version: *b"forkvm 0.1.0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            },
        )],
        Message::RunBench { op, iters, .. } => {
            let mut out = Vec::new();
            for &metric in op.metrics() {
                let all: Vec<u64> = (0..u64::from(iters))
                    .map(|i| fake_sample(metric, i))
                    .collect();
                out.extend(
                    all.chunks(per_chunk)
                        .enumerate()
                        .map(|(i, c)| chunk_of(id, (op, metric), (i * per_chunk) as u32, iters, c)),
                );
            }
            out.push(frame(
                id,
                &Message::BenchDone {
                    op,
                    total: iters,
                    errno: 0,
                },
            ));
            out
        }
        Message::Stats => vec![frame(
            id,
            &Message::StatsReply {
                free_frames: 10,
                total_frames: 20,
                tasks: 3,
                nr_threads: 4,
                max_threads: 100,
                user_tasks: forkvm_protocol::UserTasks::from_slice(&[(0, 3)]).unwrap(),
            },
        )],
        Message::Probe { .. } => vec![frame(id, &Message::ProbeReply { result: -11 })],
        Message::Sysctl { value: None, .. } => vec![frame(id, &Message::SysctlReply { value: 7 })],
        Message::Sysctl { .. } | Message::Rlimit { .. } => vec![frame(id, &Message::Ok)],
        Message::Shutdown { .. } => vec![],
        other => panic!("fake guest got {other:?}"),
    }
}

#[test]
fn hello_stats_probe_sysctl_rlimit() {
    let mut client = fake_guest(healthy(1024));
    let hello = client.hello().unwrap();
    assert_eq!(hello.kernel_version, "forkvm 0.1.0");
    assert_eq!(hello.tsc_khz, 3_000_000);
    let stats = client.stats().unwrap();
    assert_eq!(stats.user_tasks, vec![(0, 3)]);
    assert_eq!(stats.max_threads, 100);
    assert_eq!(client.probe(ProbeArgs::default()).unwrap(), -11);
    assert_eq!(client.sysctl("kernel.threads-max", None).unwrap(), Some(7));
    assert_eq!(client.sysctl("kernel.threads-max", Some(9)).unwrap(), None);
    client.rlimit(6, 10, 10).unwrap();
    client.send_shutdown(0).unwrap();
}

#[test]
fn request_ids_increase() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut inner = healthy(1024);
    let mut client = fake_guest(move |id, request| {
        log.lock().unwrap().push(id);
        inner(id, request)
    });
    client.hello().unwrap();
    client.stats().unwrap();
    client.run_bench(BenchOp::Fork, 3, 0, 0).unwrap();
    let ids = seen.lock().unwrap().clone();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn reassembles_chunks_in_order() {
    for per_chunk in [1, 7, 1024] {
        let mut client = fake_guest(healthy(per_chunk));
        let run = client.run_bench(BenchOp::Fork, 2500, 10, 0).unwrap();
        for &metric in BenchOp::Fork.metrics() {
            let expected: Vec<u64> = (0..2500).map(|i| fake_sample(metric, i)).collect();
            assert_eq!(run.samples(metric), Some(&expected[..]), "{per_chunk}");
        }
    }
    // A failing op has only `create`.
    let mut client = fake_guest(healthy(1024));
    let run = client.run_bench(BenchOp::CloneEinval, 3, 0, 0).unwrap();
    assert_eq!(run.create, vec![0, 1, 2]);
    assert_eq!(run.create_exit_reap, None);
    // No samples at all is a valid (empty) run.
    let run = client.run_bench(BenchOp::CloneEinval, 0, 0, 0).unwrap();
    assert!(run.create.is_empty());
    // A ping-pong has only `round_trip`.
    let run = client.run_bench(BenchOp::PipePingPong, 3, 0, 0).unwrap();
    assert_eq!(run.samples(BenchMetric::RoundTrip), Some(&[2, 5, 8][..]));
    assert_eq!(run.samples(BenchMetric::Create), None);
    assert_eq!(run.samples(BenchMetric::CreateExitReap), None);
}

#[test]
fn metrics_may_interleave_but_each_stays_in_order() {
    let mut client = fake_guest(|id, request| match request {
        Message::RunBench { op, .. } => {
            let reap = (op, BenchMetric::CreateExitReap);
            vec![
                chunk_of(id, reap, 0, 3, &[10]),
                chunk(id, op, 0, 3, &[1, 2]),
                chunk_of(id, reap, 1, 3, &[20, 30]),
                chunk(id, op, 2, 3, &[3]),
                done(id, op, 3, 0),
            ]
        }
        other => panic!("{other:?}"),
    });
    let run = client.run_bench(BenchOp::CloneVm, 3, 0, 0).unwrap();
    assert_eq!(run.create, vec![1, 2, 3]);
    assert_eq!(run.create_exit_reap, Some(vec![10, 20, 30]));
}

#[test]
fn detects_missing_or_foreign_metrics() {
    // A creating op without its create_exit_reap samples.
    let e = bench_error(|id, op| vec![chunk(id, op, 0, 4, &[1, 2, 3, 4]), done(id, op, 4, 0)]);
    assert!(
        matches!(&e, HarnessError::Protocol(why) if why.contains("CreateExitReap")),
        "{e}"
    );
    // A metric twice over: the second copy overruns the total.
    let e = bench_error(|id, op| {
        vec![
            chunk(id, op, 0, 4, &[1, 2, 3, 4]),
            chunk(id, op, 0, 4, &[1, 2, 3, 4]),
            done(id, op, 4, 0),
        ]
    });
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
}

#[test]
fn many_chunks_in_one_write() {
    let mut client = fake_guest(|id, request| match request {
        Message::RunBench { op, .. } => {
            let reap = (op, BenchMetric::CreateExitReap);
            let mut bytes = chunk(id, op, 0, 3, &[1, 2]);
            bytes.extend(chunk(id, op, 2, 3, &[3]));
            bytes.extend(chunk_of(id, reap, 0, 3, &[4, 5, 6]));
            bytes.extend(frame(
                id,
                &Message::BenchDone {
                    op,
                    total: 3,
                    errno: 0,
                },
            ));
            // Split at an awkward place as a byte stream may.
            let (a, b) = bytes.split_at(13);
            vec![a.to_vec(), b.to_vec()]
        }
        other => panic!("{other:?}"),
    });
    let run = client.run_bench(BenchOp::Vfork, 3, 0, 0).unwrap();
    assert_eq!(run.create, vec![1, 2, 3]);
    assert_eq!(run.create_exit_reap, Some(vec![4, 5, 6]));
}

fn bench_error(replies: fn(u32, BenchOp) -> Vec<Vec<u8>>) -> HarnessError {
    let mut client = fake_guest(move |id, request| match request {
        Message::RunBench { op, .. } => replies(id, op),
        other => panic!("{other:?}"),
    });
    client.run_bench(BenchOp::Fork, 4, 0, 0).unwrap_err()
}

fn done(id: u32, op: BenchOp, total: u32, errno: i32) -> Vec<u8> {
    frame(id, &Message::BenchDone { op, total, errno })
}

#[test]
fn detects_out_of_order_chunks() {
    let e = bench_error(|id, op| {
        vec![
            chunk(id, op, 2, 4, &[3, 4]),
            chunk(id, op, 0, 4, &[1, 2]),
            done(id, op, 4, 0),
        ]
    });
    assert!(
        matches!(&e, HarnessError::Protocol(why) if why.contains("out-of-order")),
        "{e}"
    );
}

#[test]
fn detects_missing_chunks() {
    // A gap in the middle.
    let e = bench_error(|id, op| {
        vec![
            chunk(id, op, 0, 4, &[1]),
            chunk(id, op, 2, 4, &[3, 4]),
            done(id, op, 4, 0),
        ]
    });
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
    // A missing last chunk.
    let e = bench_error(|id, op| vec![chunk(id, op, 0, 4, &[1, 2]), done(id, op, 4, 0)]);
    assert!(
        matches!(&e, HarnessError::Protocol(why) if why.contains("missing")),
        "{e}"
    );
    // Fewer samples than iterations without an errno.
    let e = bench_error(|id, op| vec![chunk(id, op, 0, 2, &[1, 2]), done(id, op, 2, 0)]);
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
}

#[test]
fn detects_inconsistent_chunks() {
    // Totals disagree.
    let e = bench_error(|id, op| {
        vec![
            chunk(id, op, 0, 4, &[1, 2]),
            chunk(id, op, 2, 5, &[3, 4]),
            done(id, op, 4, 0),
        ]
    });
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
    // More samples than announced.
    let e = bench_error(|id, op| vec![chunk(id, op, 0, 2, &[1, 2, 3]), done(id, op, 3, 0)]);
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
    // Another op.
    let e = bench_error(|id, _| {
        vec![
            chunk(id, BenchOp::Vfork, 0, 4, &[1, 2, 3, 4]),
            done(id, BenchOp::Vfork, 4, 0),
        ]
    });
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");
}

#[test]
fn bench_errno_is_typed() {
    let e = bench_error(|id, op| {
        let reap = (op, BenchMetric::CreateExitReap);
        vec![
            chunk(id, op, 0, 4, &[1]),
            chunk_of(id, reap, 0, 4, &[2]),
            done(id, op, 1, 11),
        ]
    });
    assert_eq!(
        e,
        HarnessError::BenchFailed {
            op: BenchOp::Fork,
            errno: 11,
            samples: 1
        }
    );
    assert!(e.to_string().contains("errno 11"), "{e}");
}

#[test]
fn error_replies_are_typed() {
    let mut client = fake_guest(|id, _| {
        vec![frame(
            id,
            &Message::Error {
                request_id: id,
                code: ErrorCode::BadArgument,
                detail: 42,
            },
        )]
    });
    assert_eq!(
        client.stats().unwrap_err(),
        HarnessError::Guest {
            request: MessageType::Stats,
            code: ErrorCode::BadArgument,
            detail: 42
        }
    );
    // Also in the middle of a RunBench.
    assert!(matches!(
        client.run_bench(BenchOp::Fork, 4, 0, 0).unwrap_err(),
        HarnessError::Guest {
            request: MessageType::RunBench,
            code: ErrorCode::BadArgument,
            ..
        }
    ));
}

#[test]
fn mismatched_ids_and_types_are_violations() {
    let mut client = fake_guest(|id, _| vec![frame(id + 100, &Message::Ok)]);
    let e = client.stats().unwrap_err();
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");

    let mut client = fake_guest(|id, _| vec![frame(id, &Message::Ok)]);
    let e = client.hello().unwrap_err();
    assert!(matches!(e, HarnessError::Protocol(_)), "{e}");

    let mut client = fake_guest(|_, _| vec![b"FK\x01garbage that is no frame at all".to_vec()]);
    client.set_timeout(Duration::from_millis(200));
    assert!(client.stats().is_err());
}

#[test]
fn timeouts_and_late_replies() {
    // The first request gets no answer; the second gets the late answer to
    // the first, then its own.
    let mut first: Option<u32> = None;
    let mut client = fake_guest(move |id, request| match (first, request) {
        (None, _) => {
            first = Some(id);
            vec![]
        }
        (Some(old), Message::Stats) => vec![
            frame(old, &Message::SysctlReply { value: 1 }),
            frame(
                id,
                &Message::StatsReply {
                    free_frames: 1,
                    total_frames: 2,
                    tasks: 1,
                    nr_threads: 1,
                    max_threads: 1,
                    user_tasks: Default::default(),
                },
            ),
        ],
        (_, other) => panic!("{other:?}"),
    });
    client.set_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let e = client.sysctl("kernel.threads-max", None).unwrap_err();
    assert!(
        matches!(
            e,
            HarnessError::Timeout {
                request: MessageType::Sysctl,
                ..
            }
        ),
        "{e}"
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
    client.set_timeout(TIMEOUT);
    assert_eq!(client.stats().unwrap().total_frames, 2);
}

#[test]
fn closed_console_is_vm_ended() {
    let mut client = fake_guest(healthy(1024));
    client.send_shutdown(0).unwrap();
    let e = client.stats().unwrap_err();
    assert!(matches!(e, HarnessError::VmEnded { .. }), "{e}");
}

/// A guest that answers a `RunBench` only after `delay` (the guest sends
/// nothing until the whole measurement is done) and everything else at
/// once.
fn slow_bench_guest(delay: Duration) -> Client<ChannelTransport> {
    let mut healthy = healthy(1024);
    fake_guest(move |id, request| {
        if matches!(request, Message::RunBench { .. }) {
            std::thread::sleep(delay);
        }
        healthy(id, request)
    })
}

#[test]
fn a_run_bench_waits_for_the_work_it_asked_for() {
    // Touching 4 MiB is allowed far more than the floor of 100 ms: a reply
    // after 400 ms is in time.
    let mut client = slow_bench_guest(Duration::from_millis(400));
    client.set_timeout(Duration::from_millis(100));
    let run = client.run_bench(BenchOp::ForkMem, 2, 0, 4).unwrap();
    assert_eq!(run.create.len(), 2);
    // A fixed limit does not grow with the work, and the error says what
    // was running, with what, how long the client waited and that the
    // guest printed nothing.
    let mut client = slow_bench_guest(Duration::from_millis(400));
    client.set_timeout(ReplyTimeout::Fixed(Duration::from_millis(100)));
    let start = Instant::now();
    let e = client.run_bench(BenchOp::ForkMem, 2, 1, 4).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(100));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "no reply to RunBench (fork_mem: 2 iterations + 1 warm-up, 4 MiB touched) \
             after waiting 0.1 s (limit 0.1 s, fixed); "
        ),
        "{text}"
    );
    assert!(
        text.ends_with("the guest wrote nothing to its serial console"),
        "{text}"
    );
    let e = e.with_serial_tail("harnessd: touching memory\n".to_owned());
    assert!(
        e.to_string()
            .ends_with("the guest's serial output ends:\nharnessd: touching memory\n"),
        "{e}"
    );
}

#[test]
fn the_allowance_covers_a_gib_of_fork_mem() {
    // Demand-faulting 1 GiB took ~50 s in the guest on PVM.
    let gib = run_bench_allowance(BenchOp::ForkMem, 1000, 100, 1024);
    assert!(gib >= Duration::from_secs(150), "{gib:?}");
    // Other operations touch nothing, whatever `mem_mib` says.
    let fork = run_bench_allowance(BenchOp::Fork, 1000, 100, 1024);
    assert_eq!(fork, run_bench_allowance(BenchOp::Fork, 1000, 100, 0));
    assert!(fork < gib);
    // The limit is the floor plus the allowance; a fixed one ignores both.
    let floor = Duration::from_secs(30);
    let scaled = ReplyTimeout::from(floor);
    assert_eq!(
        scaled.run_bench(BenchOp::ForkMem, 1000, 100, 1024),
        floor + gib
    );
    assert_eq!(scaled.base(), floor);
    let fixed = ReplyTimeout::Fixed(Duration::from_secs(7));
    assert_eq!(
        fixed.run_bench(BenchOp::ForkMem, 1000, 100, 1024),
        Duration::from_secs(7)
    );
}

/// A Linux guest's tty before `harnessd` makes it raw: the first Hello
/// comes back as its own echo; later ones are answered. A plain `hello`
/// takes the echo for the reply; `hello_until_ready` asks again.
#[test]
fn hello_until_ready_outlasts_a_cooked_tty_echoing_the_first_hello() {
    let echoing = || {
        let mut answer = healthy(64);
        move |id, request: Message| {
            if id == 1 {
                vec![frame(id, &request)]
            } else {
                answer(id, request)
            }
        }
    };
    let mut plain = fake_guest(echoing());
    let err = plain.hello().unwrap_err();
    assert!(matches!(err, HarnessError::Protocol(_)), "{err:?}");

    let mut client = fake_guest(echoing());
    let info = client
        .hello_until_ready(Duration::from_secs(10), Duration::from_millis(200))
        .unwrap();
    assert_eq!(info.tsc_khz, 3_000_000);
    // The client's own timeout is back, and it goes on normally.
    assert_eq!(client.timeout(), ReplyTimeout::from(TIMEOUT));
    assert!(client.stats().is_ok());
}

/// A guest that never answers: the retries end at the limit with the
/// last timeout.
#[test]
fn hello_until_ready_gives_up_at_its_limit() {
    let mut client = fake_guest(|_, _| Vec::new());
    let started = Instant::now();
    let err = client
        .hello_until_ready(Duration::from_millis(500), Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, HarnessError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

// RunScale: the counts of a matching ScaleDone; its errno as a typed guest
// error; a ScaleDone for another op, mode or K as a protocol violation.
#[test]
fn run_scale_counts_errno_and_mismatch() {
    let mut client = fake_guest(|id, request| {
        let Message::RunScale {
            op, mode, workers, ..
        } = request
        else {
            return vec![];
        };
        let (workers, errno) = match workers {
            1 => (1, 0),
            2 => (2, 12),
            k => (k + 1, 0),
        };
        vec![frame(
            id,
            &Message::ScaleDone {
                op,
                mode,
                workers,
                errno,
                elapsed_tsc: 3_000_000,
                ops: 10,
                min_worker_ops: 10,
                max_worker_ops: 10,
            },
        )]
    });
    let counts = client
        .run_scale(BenchOp::Fork, ScaleMode::Threads, 1, 1, 0)
        .unwrap();
    assert_eq!((counts.ops, counts.elapsed_tsc), (10, 3_000_000));
    let errno = client.run_scale(BenchOp::Fork, ScaleMode::Threads, 2, 1, 0);
    assert!(
        matches!(
            errno,
            Err(HarnessError::Guest {
                request: MessageType::RunScale,
                code: ErrorCode::Internal,
                detail: 12
            })
        ),
        "{errno:?}"
    );
    let other = client.run_scale(BenchOp::Fork, ScaleMode::Threads, 3, 1, 0);
    assert!(matches!(other, Err(HarnessError::Protocol(_))), "{other:?}");
}

#[test]
fn a_run_scale_waits_for_its_duration_and_workers() {
    let scaled = ReplyTimeout::Scaled { floor: TIMEOUT };
    let limit = scaled.run_scale(BenchOp::ForkMem, 64, 60_000, 1024);
    assert!(limit >= TIMEOUT + Duration::from_secs(60) + TOUCHED_MIB_ALLOWANCE * 1024);
    let fork = scaled.run_scale(BenchOp::Fork, 1, 1000, 1024);
    assert!(fork < TIMEOUT + Duration::from_secs(2), "{fork:?}");
    let fixed = ReplyTimeout::Fixed(Duration::from_secs(3));
    assert_eq!(
        fixed.run_scale(BenchOp::Fork, 8, 60_000, 0),
        Duration::from_secs(3)
    );
}
