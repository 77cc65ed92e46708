//! The host end of the guest harness protocol ([`forkvm_protocol`]).
//!
//! [`GuestHarness::start`] boots the guest kernel in this process on a
//! background thread with the script `run harnessd; poweroff`, so the guest
//! program `harnessd` serves the protocol on the virtio console, and greets
//! it ([`GuestHarness::hello_info`]). Requests then go one at a time with
//! increasing request ids ([`GuestHarness::run_bench`], [`GuestHarness::stats`],
//! ...); [`GuestHarness::shutdown`] ends the VM and checks that it powered
//! off with status 0.
//!
//! The protocol logic lives in [`Client`], which runs over any
//! [`Transport`]: the VM's console ([`GuestHarness`]) or, in tests, a fake
//! guest over in-memory channels ([`ChannelTransport`]).
//!
//! Every wait for the guest is bounded by the client's [`ReplyTimeout`],
//! counted from the request and again from every frame received (a long
//! `RunBench` that keeps sending samples does not time out). A `RunBench`
//! does all its work before its first frame, so by default its limit grows
//! with the work it asks for ([`run_bench_allowance`]); a timeout names the
//! request, its parameters, how long the client waited and the guest's last
//! serial output.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forkvm_protocol::{
    BenchMetric, BenchOp, ErrorCode, FrameDecoder, Message, MessageType, ScaleMode, SysctlName,
    MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use vmm::{ExitCounters, GuestExit, KvmStats, Outcome, Timings, VmConfig, VmExits};

/// The guest script that starts the protocol server.
pub const HARNESS_SCRIPT: &str = "run harnessd; poweroff";
/// Default wait for the guest to boot and answer `Hello`.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default wait for any one reply (or the next frame of a `RunBench`); a
/// `RunBench` waits this plus [`run_bench_allowance`] by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on the whole life of the VM (a safety net so that a hung
/// guest cannot keep the VM thread alive forever).
pub const DEFAULT_VM_TIMEOUT: Duration = Duration::from_secs(600);
/// How long [`GuestHarness::start`] waits for each of its repeated Hellos
/// to a Linux guest.
const LINUX_HELLO_RETRY: Duration = Duration::from_secs(5);
/// Bytes of serial output quoted in error messages.
const SERIAL_TAIL: usize = 4096;

/// How long the client waits for a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyTimeout {
    /// `floor` for every request; a `RunBench` gets `floor` plus what its
    /// work may take ([`run_bench_allowance`]).
    Scaled { floor: Duration },
    /// The same limit for every request, whatever its work.
    Fixed(Duration),
}

impl ReplyTimeout {
    /// The limit of a request that does no measured work (`Hello`, `Stats`,
    /// ...).
    pub fn base(self) -> Duration {
        match self {
            ReplyTimeout::Scaled { floor } => floor,
            ReplyTimeout::Fixed(limit) => limit,
        }
    }

    /// The limit of a `RunBench` of `op` with these parameters.
    pub fn run_bench(self, op: BenchOp, iters: u32, warmup: u32, mem_mib: u32) -> Duration {
        match self {
            ReplyTimeout::Scaled { floor } => {
                floor + run_bench_allowance(op, iters, warmup, mem_mib)
            }
            ReplyTimeout::Fixed(limit) => limit,
        }
    }

    /// The limit of a `RunScale`: its duration, the workers' start and
    /// stop and the MiB touched first (only for `ForkMem`), on top of the
    /// floor.
    pub fn run_scale(self, op: BenchOp, workers: u16, duration_ms: u32, mem_mib: u32) -> Duration {
        match self {
            ReplyTimeout::Scaled { floor } => {
                let mib = if op == BenchOp::ForkMem { mem_mib } else { 0 };
                floor
                    + Duration::from_millis(u64::from(duration_ms))
                    + ITERATION_ALLOWANCE.saturating_mul(2 * u32::from(workers))
                    + TOUCHED_MIB_ALLOWANCE.saturating_mul(mib)
            }
            ReplyTimeout::Fixed(limit) => limit,
        }
    }

    fn is_scaled(self) -> bool {
        matches!(self, ReplyTimeout::Scaled { .. })
    }
}

impl From<Duration> for ReplyTimeout {
    /// Scaled with the work, at least `floor`.
    fn from(floor: Duration) -> Self {
        ReplyTimeout::Scaled { floor }
    }
}

/// Upper bound of one measured iteration (warm-up included) of any
/// operation: a `fork_exec` cycle takes ~1 ms (median; 9 ms at worst) in
/// the guest on PVM, where a trap costs ~30 us.
const ITERATION_ALLOWANCE: Duration = Duration::from_millis(10);
/// Upper bound of demand-faulting one MiB before the loop (`fork_mem`):
/// ~50 ms on PVM (1 GiB took ~50 s), ~150 ms with the machine's 2 cores
/// shared by ten busy processes.
const TOUCHED_MIB_ALLOWANCE: Duration = Duration::from_millis(500);
/// Upper bound of what each touched MiB adds to an iteration (`fork`
/// copies its page tables): ~10 us on PVM (a 1 GiB fork ~10 ms; the
/// first, on a loaded machine, 215 ms).
const TOUCHED_MIB_ITERATION_ALLOWANCE: Duration = Duration::from_micros(100);

/// What a `RunBench` may take beyond the floor of [`ReplyTimeout::Scaled`]:
/// its iterations, the MiB it touches first and their cost in every fork,
/// each at several times what it costs on the slowest machine we measured.
/// The guest sends nothing until all of it is done.
pub fn run_bench_allowance(op: BenchOp, iters: u32, warmup: u32, mem_mib: u32) -> Duration {
    let cycles = u64::from(iters) + u64::from(warmup);
    let mib = if op == BenchOp::ForkMem {
        u64::from(mem_mib)
    } else {
        0
    };
    let scaled = |unit: Duration, n: u64| unit.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
    scaled(ITERATION_ALLOWANCE, cycles)
        .saturating_add(scaled(TOUCHED_MIB_ALLOWANCE, mib))
        .saturating_add(scaled(
            TOUCHED_MIB_ITERATION_ALLOWANCE,
            cycles.saturating_mul(mib),
        ))
}

/// A `RunBench` for people: `fork_mem: 1000 iterations + 100 warm-up, 1024
/// MiB touched`.
fn describe_run_bench(op: BenchOp, iters: u32, warmup: u32, mem_mib: u32) -> String {
    let name = crate::host_linux::op_name(op);
    let mut what = format!("{name}: {iters} iterations + {warmup} warm-up");
    if op == BenchOp::ForkMem {
        what.push_str(&format!(", {mem_mib} MiB touched"));
    }
    what
}

/// The samples of one `RunBench` in guest TSC cycles, one per iteration;
/// element `i` of both metrics comes from iteration `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestRun {
    pub op: BenchOp,
    /// The first metric's samples: [`BenchMetric::Create`], until the call
    /// returned in the parent (for the failing operations: the refused
    /// call), or for the ping-pong operations [`BenchMetric::RoundTrip`].
    pub create: Vec<u64>,
    /// [`BenchMetric::CreateExitReap`]: until the child was reaped; `None`
    /// for the failing operations.
    pub create_exit_reap: Option<Vec<u64>>,
}

impl GuestRun {
    /// The samples of `metric`, if `op` reports it.
    pub fn samples(&self, metric: BenchMetric) -> Option<&[u64]> {
        match metric {
            BenchMetric::Create => (!self.op.is_ping_pong()).then_some(&self.create[..]),
            BenchMetric::CreateExitReap => self.create_exit_reap.as_deref(),
            BenchMetric::RoundTrip => self.op.is_ping_pong().then_some(&self.create[..]),
        }
    }
}

/// What the workers of one `RunScale` counted (see
/// [`Message::ScaleDone`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleCounts {
    /// Operations completed by all workers in the timed interval.
    pub ops: u64,
    /// The interval in guest TSC cycles.
    pub elapsed_tsc: u64,
    /// The fewest operations one worker completed.
    pub min_worker_ops: u64,
    /// The most operations one worker completed.
    pub max_worker_ops: u64,
}

/// Everything that can go wrong talking to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// The VMM could not start the VM.
    Vmm(String),
    /// The guest answered with an `Error` reply.
    Guest {
        request: MessageType,
        code: ErrorCode,
        detail: u32,
    },
    /// `RunBench` stopped early: the guest reported `errno`.
    BenchFailed {
        op: BenchOp,
        errno: i32,
        samples: u32,
    },
    /// No reply within the timeout.
    Timeout {
        request: MessageType,
        /// What the request asked for (its parameters), if anything.
        doing: String,
        /// How long the client waited for the last frame.
        waited: Duration,
        /// The limit, and whether it was scaled with the request's work.
        limit: Duration,
        scaled: bool,
        serial_tail: String,
    },
    /// The guest sent something the protocol does not allow here.
    Protocol(String),
    /// The VM ended (or its console went away) while a reply was expected,
    /// or did not end the way [`GuestHarness::shutdown`] expects.
    VmEnded {
        outcome: String,
        serial_tail: String,
    },
}

impl HarnessError {
    fn with_serial_tail(mut self, tail: String) -> Self {
        match &mut self {
            HarnessError::Timeout { serial_tail, .. }
            | HarnessError::VmEnded { serial_tail, .. } => *serial_tail = tail,
            _ => {}
        }
        self
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Vmm(e) => write!(f, "the VMM failed: {e}"),
            HarnessError::Guest {
                request,
                code,
                detail,
            } => write!(
                f,
                "the guest rejected {request:?}: {code:?} (detail {detail})"
            ),
            HarnessError::BenchFailed { op, errno, samples } => write!(
                f,
                "benchmark {op:?} stopped after {samples} samples with errno {errno} ({})",
                std::io::Error::from_raw_os_error(*errno)
            ),
            HarnessError::Timeout {
                request,
                doing,
                waited,
                limit,
                scaled,
                serial_tail,
            } => {
                write!(f, "no reply to {request:?}")?;
                if !doing.is_empty() {
                    write!(f, " ({doing})")?;
                }
                let how = if *scaled {
                    "scaled with the requested work"
                } else {
                    "fixed"
                };
                write!(
                    f,
                    " after waiting {:.1} s (limit {:.1} s, {how}); ",
                    waited.as_secs_f64(),
                    limit.as_secs_f64()
                )?;
                write_serial_tail(f, serial_tail)
            }
            HarnessError::Protocol(why) => write!(f, "protocol violation: {why}"),
            HarnessError::VmEnded {
                outcome,
                serial_tail,
            } => {
                write!(f, "the VM ended: {outcome}; ")?;
                write_serial_tail(f, serial_tail)
            }
        }
    }
}

/// The guest's last serial output, or that there was none.
fn write_serial_tail(f: &mut fmt::Formatter<'_>, tail: &str) -> fmt::Result {
    if tail.trim().is_empty() {
        write!(f, "the guest wrote nothing to its serial console")
    } else {
        write!(f, "the guest's serial output ends:\n{tail}")
    }
}

impl std::error::Error for HarnessError {}

/// Result of the harness calls.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// What a [`Transport::recv`] can report besides bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The other end is gone: no more bytes will come.
    Closed,
}

/// A byte stream to and from the guest.
pub trait Transport {
    /// Sends `bytes` to the guest.
    fn send(&mut self, bytes: &[u8]) -> Result<()>;
    /// The next bytes from the guest, waiting until `deadline` at most.
    fn recv(&mut self, deadline: Instant) -> std::result::Result<Vec<u8>, RecvError>;
}

/// What flows from the guest's side of a [`ChannelTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Bytes written by the guest.
    Data(Vec<u8>),
    /// The guest is gone (the VM ended).
    Closed,
}

/// How a [`ChannelTransport`] hands bytes to the guest.
type SendFn = Box<dyn FnMut(&[u8]) + Send>;

/// A [`Transport`] over a send function and a channel of [`Incoming`].
pub struct ChannelTransport {
    send: SendFn,
    incoming: Receiver<Incoming>,
}

impl ChannelTransport {
    /// Sends with `send`, receives from `incoming`.
    pub fn new(send: impl FnMut(&[u8]) + Send + 'static, incoming: Receiver<Incoming>) -> Self {
        Self {
            send: Box::new(send),
            incoming,
        }
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        (self.send)(bytes);
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> std::result::Result<Vec<u8>, RecvError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(wait) {
            Ok(Incoming::Data(bytes)) => Ok(bytes),
            Ok(Incoming::Closed) | Err(RecvTimeoutError::Disconnected) => Err(RecvError::Closed),
            Err(RecvTimeoutError::Timeout) => Err(RecvError::Timeout),
        }
    }
}

/// The guest's `HelloReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    pub protocol_version: u8,
    pub platform: u32,
    pub tsc_khz: u64,
    pub memory_bytes: u64,
    /// The kernel version string, NUL padding removed.
    pub kernel_version: String,
}

/// The guest's `StatsReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsInfo {
    pub free_frames: u64,
    pub total_frames: u64,
    pub tasks: u32,
    pub nr_threads: u32,
    pub max_threads: u32,
    /// `(uid, tasks)` pairs.
    pub user_tasks: Vec<(u32, u64)>,
}

/// Arguments of a `Probe` (one `clone`/`clone3` call in the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeArgs {
    pub flags: u64,
    pub exit_signal: u32,
    pub use_clone3: bool,
    pub uid: u32,
    pub nproc_limit: u64,
    pub threads_max: u64,
}

/// The protocol client over any [`Transport`].
pub struct Client<T: Transport> {
    transport: T,
    decoder: Box<FrameDecoder>,
    /// Decoded frames not consumed yet.
    frames: VecDeque<(u32, Message)>,
    next_id: u32,
    /// Requests given up on (timed out): late replies to them are dropped.
    abandoned: HashSet<u32>,
    timeout: ReplyTimeout,
    encode_buf: Vec<u8>,
}

impl<T: Transport> Client<T> {
    /// A client waiting at most `timeout` for each reply (a [`Duration`] is
    /// the floor of [`ReplyTimeout::Scaled`]).
    pub fn new(transport: T, timeout: impl Into<ReplyTimeout>) -> Self {
        Self {
            transport,
            decoder: Box::new(FrameDecoder::new()),
            frames: VecDeque::new(),
            next_id: 1,
            abandoned: HashSet::new(),
            timeout: timeout.into(),
            encode_buf: vec![0; MAX_FRAME_LEN],
        }
    }

    /// `Hello` again and again, each waiting at most `each`, until a
    /// `HelloReply` comes, for at most `limit`: a Linux guest's
    /// `/dev/hvc0` echoes and translates what arrives before `harnessd`
    /// makes it raw (and then flushes it), so a first Hello may be answered
    /// by its own echo or an Error, or lost. Replies to the earlier Hellos
    /// are dropped. The last error if none came, or at once if the VM ended.
    pub fn hello_until_ready(&mut self, limit: Duration, each: Duration) -> Result<HelloInfo> {
        let deadline = Instant::now() + limit;
        let timeout = self.timeout;
        self.timeout = ReplyTimeout::Fixed(each);
        let result = loop {
            let error = match self.hello() {
                Ok(info) => break Ok(info),
                Err(e) => e,
            };
            let ended = matches!(error, HarnessError::VmEnded { .. } | HarnessError::Vmm(_));
            if ended || Instant::now() >= deadline {
                break Err(error);
            }
            // Whatever answers the Hellos sent so far is stale now.
            self.abandon_sent();
        };
        self.timeout = timeout;
        result
    }

    /// Drops any reply still to come to the requests sent so far.
    pub fn abandon_sent(&mut self) {
        let sent = self.next_id;
        self.abandoned.extend(1..sent);
    }

    /// The per-reply timeout.
    pub fn timeout(&self) -> ReplyTimeout {
        self.timeout
    }

    /// Changes the per-reply timeout.
    pub fn set_timeout(&mut self, timeout: impl Into<ReplyTimeout>) {
        self.timeout = timeout.into();
    }

    /// The error for a wait of `limit` for `request` that ran out.
    fn timed_out(&self, request: MessageType, limit: Duration, since: Instant) -> HarnessError {
        HarnessError::Timeout {
            request,
            doing: String::new(),
            waited: since.elapsed(),
            limit,
            scaled: self.timeout.is_scaled() && request == MessageType::RunBench,
            serial_tail: String::new(),
        }
    }

    /// Sends `message` with a fresh request id and returns the id.
    fn send_request(&mut self, message: &Message) -> Result<u32> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let n = message
            .encode_frame(id, &mut self.encode_buf)
            .map_err(|e| HarnessError::Protocol(format!("cannot encode {message:?}: {e:?}")))?;
        self.transport.send(&self.encode_buf[..n])?;
        Ok(id)
    }

    /// Decodes `bytes` into `self.frames`.
    fn absorb(&mut self, mut input: &[u8]) -> Result<()> {
        loop {
            let taken = self.decoder.feed(input);
            input = &input[taken..];
            let mut produced = false;
            while let Some(result) = self.decoder.next_frame() {
                produced = true;
                let frame = result.map_err(|e| {
                    HarnessError::Protocol(format!("undecodable bytes from the guest: {e:?}"))
                })?;
                let id = frame.request_id;
                let message = frame.message().map_err(|e| {
                    HarnessError::Protocol(format!("bad frame from the guest (id {id}): {e:?}"))
                })?;
                self.frames.push_back((id, message));
            }
            if input.is_empty() {
                return Ok(());
            }
            if taken == 0 && !produced {
                return Err(HarnessError::Protocol(
                    "the frame decoder is stuck".to_owned(),
                ));
            }
        }
    }

    /// The next reply to request `id` (of type `request`), waiting at most
    /// `limit`. Error replies become [`HarnessError::Guest`].
    fn next_reply(&mut self, id: u32, request: MessageType, limit: Duration) -> Result<Message> {
        let since = Instant::now();
        let deadline = since + limit;
        loop {
            while let Some((frame_id, message)) = self.frames.pop_front() {
                if let Message::Error {
                    request_id,
                    code,
                    detail,
                } = message
                {
                    // The guest echoes the id in the frame and the payload; 0
                    // means it could not read our frame's id.
                    if frame_id == id || request_id == id || request_id == 0 {
                        return Err(HarnessError::Guest {
                            request,
                            code,
                            detail,
                        });
                    }
                }
                if frame_id == id {
                    return Ok(message);
                }
                if self.abandoned.contains(&frame_id) {
                    continue;
                }
                return Err(HarnessError::Protocol(format!(
                    "expected a reply to {request:?} (id {id}), got {:?} with id {frame_id}",
                    message.msg_type()
                )));
            }
            match self.transport.recv(deadline) {
                Ok(bytes) => self.absorb(&bytes)?,
                Err(RecvError::Timeout) => {
                    self.abandoned.insert(id);
                    return Err(self.timed_out(request, limit, since));
                }
                Err(RecvError::Closed) => {
                    return Err(HarnessError::VmEnded {
                        outcome: format!("the console closed while waiting for {request:?}"),
                        serial_tail: String::new(),
                    })
                }
            }
        }
    }

    fn unexpected<R>(request: MessageType, got: &Message) -> Result<R> {
        Err(HarnessError::Protocol(format!(
            "{request:?} answered with {:?}",
            got.msg_type()
        )))
    }

    /// One request, one reply.
    fn call(&mut self, message: &Message) -> Result<Message> {
        let request = message.msg_type();
        let id = self.send_request(message)?;
        self.next_reply(id, request, self.timeout.base())
    }

    /// `Hello`: the guest's identity.
    pub fn hello(&mut self) -> Result<HelloInfo> {
        let reply = self.call(&Message::Hello {
            client_version: PROTOCOL_VERSION,
        })?;
        match reply {
            Message::HelloReply {
                protocol_version,
                platform,
                tsc_khz,
                memory_bytes,
                kernel_version,
            } => {
                let end = kernel_version
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(kernel_version.len());
                Ok(HelloInfo {
                    protocol_version,
                    platform,
                    tsc_khz,
                    memory_bytes,
                    kernel_version: String::from_utf8_lossy(&kernel_version[..end]).into_owned(),
                })
            }
            other => Self::unexpected(MessageType::Hello, &other),
        }
    }

    /// `RunBench`: runs `op` `warmup` times untimed and `iters` times timed
    /// in the guest and returns the `iters` TSC samples of each of the op's
    /// metrics ([`BenchOp::metrics`]), in order.
    pub fn run_bench(
        &mut self,
        op: BenchOp,
        iters: u32,
        warmup: u32,
        mem_mib: u32,
    ) -> Result<GuestRun> {
        let id = self.send_request(&Message::RunBench {
            op,
            iters,
            warmup,
            mem_mib,
        })?;
        let limit = self.timeout.run_bench(op, iters, warmup, mem_mib);
        let result = self.collect_samples(id, op, iters, limit);
        result.map_err(|error| match error {
            HarnessError::Timeout {
                request,
                waited,
                limit,
                scaled,
                serial_tail,
                ..
            } => HarnessError::Timeout {
                request,
                doing: describe_run_bench(op, iters, warmup, mem_mib),
                waited,
                limit,
                scaled,
                serial_tail,
            },
            other => other,
        })
    }

    /// The samples and `BenchDone` of `RunBench` request `id`, each frame
    /// waited for at most `limit`.
    fn collect_samples(
        &mut self,
        id: u32,
        op: BenchOp,
        iters: u32,
        limit: Duration,
    ) -> Result<GuestRun> {
        let request = MessageType::RunBench;
        // One stream per metric of `op`; each metric's chunks come in order.
        let metrics = op.metrics();
        let mut streams: Vec<Vec<u64>> = vec![Vec::new(); metrics.len()];
        let mut announced_total: Option<u32> = None;
        loop {
            match self.next_reply(id, request, limit)? {
                Message::BenchSamples {
                    op: chunk_op,
                    metric,
                    first_index,
                    total,
                    samples: chunk,
                } => {
                    if chunk_op != op {
                        return Err(HarnessError::Protocol(format!(
                            "samples of {chunk_op:?} while running {op:?}"
                        )));
                    }
                    let Some(stream) = metrics
                        .iter()
                        .position(|&m| m == metric)
                        .map(|i| &mut streams[i])
                    else {
                        return Err(HarnessError::Protocol(format!(
                            "{metric:?} samples for {op:?}, which reports {metrics:?}"
                        )));
                    };
                    if *announced_total.get_or_insert(total) != total {
                        return Err(HarnessError::Protocol(format!(
                            "chunk at {first_index} announces {total} samples, earlier ones {}",
                            announced_total.unwrap_or_default()
                        )));
                    }
                    if total > iters {
                        return Err(HarnessError::Protocol(format!(
                            "{total} samples announced for {iters} iterations"
                        )));
                    }
                    if first_index as usize != stream.len() {
                        return Err(HarnessError::Protocol(format!(
                            "{metric:?} chunk starts at sample {first_index}, expected {} \
                             (missing or out-of-order chunk)",
                            stream.len()
                        )));
                    }
                    if stream.len() + chunk.len() > total as usize {
                        return Err(HarnessError::Protocol(format!(
                            "chunk at {first_index} with {} samples overruns the total {total}",
                            chunk.len()
                        )));
                    }
                    stream.extend_from_slice(chunk.as_slice());
                }
                Message::BenchDone {
                    op: done_op,
                    total,
                    errno,
                } => {
                    if done_op != op {
                        return Err(HarnessError::Protocol(format!(
                            "BenchDone for {done_op:?} while running {op:?}"
                        )));
                    }
                    for (metric, stream) in metrics.iter().zip(&streams) {
                        if total as usize != stream.len() {
                            return Err(HarnessError::Protocol(format!(
                                "BenchDone reports {total} samples, {} of {metric:?} \
                                 received (missing chunk)",
                                stream.len()
                            )));
                        }
                    }
                    if errno != 0 {
                        return Err(HarnessError::BenchFailed {
                            op,
                            errno,
                            samples: total,
                        });
                    }
                    if total != iters {
                        return Err(HarnessError::Protocol(format!(
                            "{op:?} finished with {total} of {iters} samples and no errno"
                        )));
                    }
                    let mut streams = streams.into_iter();
                    return Ok(GuestRun {
                        op,
                        create: streams.next().unwrap_or_default(),
                        create_exit_reap: streams.next(),
                    });
                }
                other => return Self::unexpected(request, &other),
            }
        }
    }

    /// `Probe`: one `clone`/`clone3` call; the pid or `-errno`.
    pub fn probe(&mut self, args: ProbeArgs) -> Result<i64> {
        let reply = self.call(&Message::Probe {
            flags: args.flags,
            exit_signal: args.exit_signal,
            use_clone3: args.use_clone3,
            uid: args.uid,
            nproc_limit: args.nproc_limit,
            threads_max: args.threads_max,
        })?;
        match reply {
            Message::ProbeReply { result } => Ok(result),
            other => Self::unexpected(MessageType::Probe, &other),
        }
    }

    /// `RunScale`: `workers` workers (processes or threads, `mode`) repeat
    /// `op` for `duration_ms` once each has completed an operation; what
    /// they counted. A run the guest could not complete is
    /// [`HarnessError::Guest`]'s `Internal` with the errno as detail.
    pub fn run_scale(
        &mut self,
        op: BenchOp,
        mode: ScaleMode,
        workers: u16,
        duration_ms: u32,
        mem_mib: u32,
    ) -> Result<ScaleCounts> {
        let id = self.send_request(&Message::RunScale {
            op,
            mode,
            workers,
            duration_ms,
            mem_mib,
        })?;
        let limit = self.timeout.run_scale(op, workers, duration_ms, mem_mib);
        match self.next_reply(id, MessageType::RunScale, limit)? {
            Message::ScaleDone {
                op: got_op,
                mode: got_mode,
                workers: got_workers,
                errno,
                elapsed_tsc,
                ops,
                min_worker_ops,
                max_worker_ops,
            } if (got_op, got_mode, got_workers) == (op, mode, workers) => {
                if errno != 0 {
                    return Err(HarnessError::Guest {
                        request: MessageType::RunScale,
                        code: ErrorCode::Internal,
                        detail: errno as u32,
                    });
                }
                Ok(ScaleCounts {
                    ops,
                    elapsed_tsc,
                    min_worker_ops,
                    max_worker_ops,
                })
            }
            other => Self::unexpected(MessageType::RunScale, &other),
        }
    }

    /// `Stats`: the guest kernel's counters.
    pub fn stats(&mut self) -> Result<StatsInfo> {
        match self.call(&Message::Stats)? {
            Message::StatsReply {
                free_frames,
                total_frames,
                tasks,
                nr_threads,
                max_threads,
                user_tasks,
            } => Ok(StatsInfo {
                free_frames,
                total_frames,
                tasks,
                nr_threads,
                max_threads,
                user_tasks: user_tasks.as_slice().to_vec(),
            }),
            other => Self::unexpected(MessageType::Stats, &other),
        }
    }

    /// `Sysctl`: reads `name` (`value` `None`; returns `Some(value)`) or
    /// writes it (returns what the guest answers: `None` for `Ok`).
    pub fn sysctl(&mut self, name: &str, value: Option<u64>) -> Result<Option<u64>> {
        let name = SysctlName::new(name.as_bytes())
            .ok_or_else(|| HarnessError::Protocol(format!("sysctl name '{name}' is too long")))?;
        match self.call(&Message::Sysctl { name, value })? {
            Message::SysctlReply { value } => Ok(Some(value)),
            Message::Ok if value.is_some() => Ok(None),
            other => Self::unexpected(MessageType::Sysctl, &other),
        }
    }

    /// `Rlimit`: sets a resource limit of the guest's benchmark process.
    pub fn rlimit(&mut self, resource: u32, cur: u64, max: u64) -> Result<()> {
        match self.call(&Message::Rlimit { resource, cur, max })? {
            Message::Ok => Ok(()),
            other => Self::unexpected(MessageType::Rlimit, &other),
        }
    }

    /// Sends `Shutdown` (which has no reply).
    pub fn send_shutdown(&mut self, status: u32) -> Result<()> {
        self.send_request(&Message::Shutdown { status }).map(|_| ())
    }

    /// Sends `bytes` as they are, for tests of the guest's handling of
    /// malformed input. Read the answers with [`Client::next_message`]: the
    /// request methods would take an `Error` with id 0 for their own.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.transport.send(bytes)
    }

    /// The next frame from the guest, whatever its id and type, waiting at
    /// most the timeout (`waiting_for` only names the wait in errors).
    pub fn next_message(&mut self, waiting_for: MessageType) -> Result<(u32, Message)> {
        let limit = self.timeout.base();
        let since = Instant::now();
        let deadline = since + limit;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(frame);
            }
            match self.transport.recv(deadline) {
                Ok(bytes) => self.absorb(&bytes)?,
                Err(RecvError::Timeout) => return Err(self.timed_out(waiting_for, limit, since)),
                Err(RecvError::Closed) => {
                    return Err(HarnessError::VmEnded {
                        outcome: format!("the console closed while waiting for {waiting_for:?}"),
                        serial_tail: String::new(),
                    })
                }
            }
        }
    }
}

/// How to boot the guest for [`GuestHarness::start`].
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Guest RAM in bytes.
    pub memory: u64,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// Guest kernel ELF.
    pub kernel: PathBuf,
    /// Longest wait for the boot and the first `Hello` reply.
    pub boot_timeout: Duration,
    /// Longest wait for each reply afterwards.
    pub request_timeout: ReplyTimeout,
    /// Limit on the whole life of the VM.
    pub vm_timeout: Duration,
    /// Boot `kernel` as a Linux bzImage with this initramfs (whose `/init`
    /// is `harnessd`) instead of forkvm's kernel with its script.
    pub linux: Option<LinuxGuestBoot>,
    /// An initramfs for forkvm's kernel (`forkvm --initrd`): its files
    /// (e.g. busybox for `exec_static` and `shell`) next to the built-in
    /// programs, which still run the harness.
    pub initrd: Option<PathBuf>,
}

/// How [`GuestHarness::start`] boots a Linux guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxGuestBoot {
    /// The initramfs.
    pub initrd: PathBuf,
    /// More of the kernel command line.
    pub append: Option<String>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            memory: vmm::config::DEFAULT_MEMORY,
            cpus: 1,
            kernel: PathBuf::from(vmm::BUILT_KERNEL),
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            request_timeout: ReplyTimeout::Scaled {
                floor: DEFAULT_REQUEST_TIMEOUT,
            },
            vm_timeout: DEFAULT_VM_TIMEOUT,
            linux: None,
            initrd: None,
        }
    }
}

type VmResult = std::result::Result<(Outcome, Timings), String>;

/// Serial output collected for error messages.
#[derive(Clone, Default)]
struct SerialLog(Arc<Mutex<Vec<u8>>>);

impl SerialLog {
    fn tail(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = bytes.len().saturating_sub(SERIAL_TAIL);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

impl Write for SerialLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running guest serving the harness protocol.
pub struct GuestHarness {
    client: Client<ChannelTransport>,
    serial: SerialLog,
    vm_thread: Option<JoinHandle<VmResult>>,
    /// The VM thread's result once it has been collected.
    vm_result: Option<VmResult>,
    hello: HelloInfo,
    request_timeout: ReplyTimeout,
    /// The vCPU's exit counters.
    exits: ExitCounters,
    /// KVM's statistics of the vCPU, if the host kernel has them.
    kvm_stats: Option<Arc<KvmStats>>,
}

impl GuestHarness {
    /// Boots the guest with `opts`, waits for `harnessd`, and greets it.
    pub fn start(opts: HarnessOptions) -> Result<Self> {
        let mut config = VmConfig::new(opts.kernel.clone());
        config.memory = opts.memory;
        config.cpus = opts.cpus;
        config.timeout = Some(opts.vm_timeout);
        match &opts.linux {
            None => {
                config.script = Some(HARNESS_SCRIPT.to_owned());
                config.initrd = opts.initrd.clone();
            }
            Some(linux) => {
                config.initrd = Some(linux.initrd.clone());
                config.append = linux.append.clone();
                // Linux's console is the serial port: nothing of ours
                // (forkbench's standard input) goes to it.
                config.console_input = false;
            }
        }

        let serial = SerialLog::default();
        let (incoming_tx, incoming_rx) = mpsc::channel::<Incoming>();
        let (console_tx, console_rx) = mpsc::channel();
        let vm_serial = serial.clone();
        let vm_incoming = incoming_tx.clone();
        let vm_thread = std::thread::Builder::new()
            .name("forkvm-harness-vm".into())
            .spawn(move || {
                let sink_tx = Mutex::new(incoming_tx);
                let result = vmm::run_with(&config, Box::new(vm_serial), |vm| {
                    vm.console().set_output_sink(move |bytes: &[u8]| {
                        if !bytes.is_empty() {
                            let tx = sink_tx.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = tx.send(Incoming::Data(bytes.to_vec()));
                        }
                    });
                    let _ = console_tx.send(vm.clone());
                })
                .map_err(|e| e.to_string());
                let _ = vm_incoming.send(Incoming::Closed);
                result
            })
            .map_err(|e| HarnessError::Vmm(format!("spawning the VM thread: {e}")))?;

        let vm = match console_rx.recv() {
            Ok(vm) => vm,
            Err(_) => {
                // The VM failed before it had a console.
                let result = vm_thread
                    .join()
                    .unwrap_or_else(|_| Err("the VM thread panicked".to_owned()));
                return Err(match result {
                    Err(e) => HarnessError::Vmm(e),
                    Ok((outcome, _)) => HarnessError::VmEnded {
                        outcome: format!("{outcome:?}"),
                        serial_tail: serial.tail(),
                    },
                });
            }
        };
        let exits = vm.exits().clone();
        let kvm_stats = vm.kvm_stats().cloned();
        let vm_tsc_khz = u64::from(vm.tsc_khz());
        let console = vm.console().clone();
        let transport = ChannelTransport::new(move |bytes| console.push_input(bytes), incoming_rx);
        let mut harness = GuestHarness {
            client: Client::new(transport, ReplyTimeout::Fixed(opts.boot_timeout)),
            serial,
            vm_thread: Some(vm_thread),
            vm_result: None,
            hello: HelloInfo {
                protocol_version: 0,
                platform: 0,
                tsc_khz: 0,
                memory_bytes: 0,
                kernel_version: String::new(),
            },
            request_timeout: opts.request_timeout,
            exits,
            kvm_stats,
        };
        harness.hello = match opts.linux {
            None => harness.hello()?,
            Some(_) => harness.hello_until_ready(opts.boot_timeout)?,
        };
        // A Linux guest's harnessd has no forkvm_info to ask for its TSC
        // rate: it is the vCPU's, as KVM set it.
        if harness.hello.tsc_khz == 0 && opts.linux.is_some() {
            harness.hello.tsc_khz = vm_tsc_khz;
        }
        harness.client.set_timeout(opts.request_timeout);
        Ok(harness)
    }

    /// See [`Client::hello_until_ready`].
    fn hello_until_ready(&mut self, limit: Duration) -> Result<HelloInfo> {
        let result = self.client.hello_until_ready(limit, LINUX_HELLO_RETRY);
        self.with_context(result)
    }

    /// The `HelloReply` received by [`GuestHarness::start`].
    pub fn hello_info(&self) -> &HelloInfo {
        &self.hello
    }

    /// Serial console output so far (at most the last 4 KiB).
    pub fn serial_tail(&self) -> String {
        self.serial.tail()
    }

    /// Changes the per-reply timeout.
    pub fn set_request_timeout(&mut self, timeout: impl Into<ReplyTimeout>) {
        self.request_timeout = timeout.into();
        self.client.set_timeout(self.request_timeout);
    }

    /// The vCPU's exits to the VMM so far, by reason (subtract two snapshots
    /// for the cost of what ran in between).
    pub fn vm_exits(&self) -> VmExits {
        self.exits.snapshot()
    }

    /// KVM's scalar statistics of the vCPU now (`exits` counts every VM
    /// exit, also those KVM handles without the VMM); `None` if the host
    /// kernel has no binary statistics or reading them failed.
    pub fn kvm_vcpu_stats(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        self.kvm_stats.as_ref()?.read().ok()
    }

    /// See [`Client::send_raw`].
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let result = self.client.send_raw(bytes);
        self.with_context(result)
    }

    /// See [`Client::next_message`].
    pub fn next_message(&mut self, waiting_for: MessageType) -> Result<(u32, Message)> {
        let result = self.client.next_message(waiting_for);
        self.with_context(result)
    }

    /// Collects the VM thread's result if it has ended (waiting up to
    /// `wait`).
    fn reap(&mut self, wait: Duration) -> Option<&VmResult> {
        let deadline = Instant::now() + wait;
        if let Some(thread) = &self.vm_thread {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let thread = self.vm_thread.take().expect("checked above");
                self.vm_result = Some(
                    thread
                        .join()
                        .unwrap_or_else(|_| Err("the VM thread panicked".to_owned())),
                );
            }
        }
        self.vm_result.as_ref()
    }

    /// Adds the serial output, and the VM's outcome if it has ended, to a
    /// client error.
    fn context(&mut self, error: HarnessError) -> HarnessError {
        let ended = matches!(
            error,
            HarnessError::Timeout { .. } | HarnessError::VmEnded { .. }
        );
        let error = if ended {
            match self.reap(Duration::from_millis(100)) {
                Some(Ok((outcome, _))) => HarnessError::VmEnded {
                    outcome: format!("{outcome:?}"),
                    serial_tail: String::new(),
                },
                Some(Err(e)) => HarnessError::Vmm(e.clone()),
                None => error,
            }
        } else {
            error
        };
        error.with_serial_tail(self.serial.tail())
    }

    fn with_context<R>(&mut self, result: Result<R>) -> Result<R> {
        result.map_err(|e| self.context(e))
    }

    /// See [`Client::hello`].
    pub fn hello(&mut self) -> Result<HelloInfo> {
        let result = self.client.hello();
        self.with_context(result)
    }

    /// See [`Client::run_bench`].
    pub fn run_bench(
        &mut self,
        op: BenchOp,
        iters: u32,
        warmup: u32,
        mem_mib: u32,
    ) -> Result<GuestRun> {
        let result = self.client.run_bench(op, iters, warmup, mem_mib);
        self.with_context(result)
    }

    /// See [`Client::run_scale`].
    pub fn run_scale(
        &mut self,
        op: BenchOp,
        mode: ScaleMode,
        workers: u16,
        duration_ms: u32,
        mem_mib: u32,
    ) -> Result<ScaleCounts> {
        let result = self
            .client
            .run_scale(op, mode, workers, duration_ms, mem_mib);
        self.with_context(result)
    }

    /// See [`Client::probe`].
    pub fn probe(&mut self, args: ProbeArgs) -> Result<i64> {
        let result = self.client.probe(args);
        self.with_context(result)
    }

    /// See [`Client::stats`].
    pub fn stats(&mut self) -> Result<StatsInfo> {
        let result = self.client.stats();
        self.with_context(result)
    }

    /// See [`Client::sysctl`].
    pub fn sysctl(&mut self, name: &str, value: Option<u64>) -> Result<Option<u64>> {
        let result = self.client.sysctl(name, value);
        self.with_context(result)
    }

    /// See [`Client::rlimit`].
    pub fn rlimit(&mut self, resource: u32, cur: u64, max: u64) -> Result<()> {
        let result = self.client.rlimit(resource, cur, max);
        self.with_context(result)
    }

    /// Asks `harnessd` to exit, waits (up to the request timeout) for the VM
    /// to end, and checks that it powered off with status 0.
    pub fn shutdown(mut self) -> Result<Timings> {
        let sent = self.client.send_shutdown(0);
        self.with_context(sent)?;
        let wait = self.request_timeout.base();
        let since = Instant::now();
        match self.reap(wait).cloned() {
            Some(Ok((Outcome::Guest(GuestExit::Poweroff(0)), timings))) => Ok(timings),
            Some(Ok((outcome, _))) => Err(HarnessError::VmEnded {
                outcome: format!("{outcome:?}, expected a power-off with status 0"),
                serial_tail: self.serial.tail(),
            }),
            Some(Err(e)) => Err(HarnessError::Vmm(e)),
            None => Err(HarnessError::Timeout {
                request: MessageType::Shutdown,
                doing: "waiting for the VM to power off".to_owned(),
                waited: since.elapsed(),
                limit: wait,
                scaled: false,
                serial_tail: self.serial.tail(),
            }),
        }
    }
}

impl Drop for GuestHarness {
    /// Without [`GuestHarness::shutdown`], still ask the guest to stop; a
    /// VM that does not is left to its `vm_timeout`.
    fn drop(&mut self) {
        if self.vm_thread.is_some() {
            let _ = self.client.send_shutdown(0);
            let _ = self.reap(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests;
