//! Typed messages and their payload encodings (layouts in the crate docs).

use core::fmt;

use crate::frame::{frame_len, seal_frame, DecodeError, EncodeError};
use crate::{
    HEADER_LEN, KERNEL_VERSION_LEN, MAX_SAMPLES_PER_FRAME, MAX_SYSCTL_NAME_LEN, MAX_USER_TASKS,
};

/// The `msg_type` byte. Replies have the top bit set so a capture of the
/// stream can be read without knowing who sent what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Hello = 0x01,
    RunBench = 0x02,
    Probe = 0x03,
    Stats = 0x04,
    Sysctl = 0x05,
    Rlimit = 0x06,
    Shutdown = 0x07,
    RunScale = 0x08,
    HelloReply = 0x81,
    BenchSamples = 0x82,
    BenchDone = 0x83,
    ProbeReply = 0x84,
    StatsReply = 0x85,
    SysctlReply = 0x86,
    Ok = 0x87,
    ScaleDone = 0x88,
    Error = 0xff,
}

impl MessageType {
    /// Every message type, in wire order.
    pub const ALL: [MessageType; 17] = [
        MessageType::Hello,
        MessageType::RunBench,
        MessageType::Probe,
        MessageType::Stats,
        MessageType::Sysctl,
        MessageType::Rlimit,
        MessageType::Shutdown,
        MessageType::RunScale,
        MessageType::HelloReply,
        MessageType::BenchSamples,
        MessageType::BenchDone,
        MessageType::ProbeReply,
        MessageType::StatsReply,
        MessageType::SysctlReply,
        MessageType::Ok,
        MessageType::ScaleDone,
        MessageType::Error,
    ];

    /// The type with wire value `value`, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u8 == value)
    }

    /// True for host-to-guest requests.
    pub fn is_request(self) -> bool {
        (self as u8) & 0x80 == 0
    }
}

/// The benchmark or probe scenario a `RunBench` asks for (`u16` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum BenchOp {
    Fork = 0,
    Vfork = 1,
    CloneThread = 2,
    CloneVm = 3,
    ForkExec = 4,
    ForkMem = 5,
    RlimitEagain = 6,
    MaxThreadsEagain = 7,
    CloneEinval = 8,
    /// Two processes hand the CPU back and forth with `sched_yield`
    /// (context-switch latency, lmbench `lat_ctx` style).
    YieldPingPong = 9,
    /// Two processes pass a byte back and forth through two pipes
    /// (lmbench `lat_pipe`).
    PipePingPong = 10,
    /// `fork` + `exit` + `wait4` (like `Fork`) of a parent that has
    /// [`FORK_THREADED_THREADS`] other threads running, busy on their own
    /// stacks: its address space is live on other CPUs, which is what
    /// makes Linux send TLB-shootdown IPIs when fork write-protects it.
    ForkThreaded = 11,
    /// `fork` + `execve` of a static program from the initramfs
    /// (`/bin/true`, busybox's applet) + `exit` + `wait4`.
    ExecStatic = 12,
    /// lmbench `lat_proc`'s "shell": `fork` + `execve("/bin/sh", ["sh",
    /// "-c", "exit"])` from the initramfs (busybox's sh) + `wait4`.
    Shell = 13,
}

/// The threads `BenchOp::ForkThreaded`'s parent runs besides itself
/// (guest and host alike; not on the wire).
pub const FORK_THREADED_THREADS: usize = 2;

impl BenchOp {
    /// Every operation, in wire order.
    pub const ALL: [BenchOp; 14] = [
        BenchOp::Fork,
        BenchOp::Vfork,
        BenchOp::CloneThread,
        BenchOp::CloneVm,
        BenchOp::ForkExec,
        BenchOp::ForkMem,
        BenchOp::RlimitEagain,
        BenchOp::MaxThreadsEagain,
        BenchOp::CloneEinval,
        BenchOp::YieldPingPong,
        BenchOp::PipePingPong,
        BenchOp::ForkThreaded,
        BenchOp::ExecStatic,
        BenchOp::Shell,
    ];

    /// The operation with wire value `value`, if any.
    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// True for the operations that must fail (the refused call is all
    /// there is to time).
    pub fn must_fail(self) -> bool {
        matches!(
            self,
            BenchOp::RlimitEagain | BenchOp::MaxThreadsEagain | BenchOp::CloneEinval
        )
    }

    /// True for the operations that run programs from an initramfs
    /// (`forkvm --initrd`): without one they fail with ENOENT.
    pub fn needs_archive(self) -> bool {
        matches!(self, BenchOp::ExecStatic | BenchOp::Shell)
    }

    /// True for the context-switch operations: no task is created per
    /// iteration, one round trip between two tasks is timed.
    pub fn is_ping_pong(self) -> bool {
        matches!(self, BenchOp::YieldPingPong | BenchOp::PipePingPong)
    }

    /// The metrics a `RunBench` of this operation reports, in the order the
    /// guest sends them: both for the creating operations, only
    /// [`BenchMetric::Create`] (the refused call) for the failing ones.
    pub fn metrics(self) -> &'static [BenchMetric] {
        if self.is_ping_pong() {
            &[BenchMetric::RoundTrip]
        } else if self.must_fail() {
            &[BenchMetric::Create]
        } else {
            &[BenchMetric::Create, BenchMetric::CreateExitReap]
        }
    }
}

/// What one sample of a `BenchSamples` chunk measures (`u8` on the wire).
/// Sample `i` of every metric of a run comes from the same iteration `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BenchMetric {
    /// From just before the creating call until it returns in the parent
    /// (`vfork`: once the child has exited; for the failing operations:
    /// until the refused call returns).
    Create = 0,
    /// From just before the call until the child has exited and the parent
    /// has reaped (a thread: joined) it, lmbench `lat_proc` style.
    CreateExitReap = 1,
    /// One round trip of a ping-pong: the first task hands over to the
    /// second and gets the CPU (or the byte) back.
    RoundTrip = 2,
}

impl BenchMetric {
    /// Every metric, in wire order.
    pub const ALL: [BenchMetric; 3] = [
        BenchMetric::Create,
        BenchMetric::CreateExitReap,
        BenchMetric::RoundTrip,
    ];

    /// The metric with wire value `value`, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// The metric's name in reports: `create`, `create_exit_reap`.
    pub fn name(self) -> &'static str {
        match self {
            BenchMetric::Create => "create",
            BenchMetric::CreateExitReap => "create_exit_reap",
            BenchMetric::RoundTrip => "round_trip",
        }
    }
}

/// How the workers of a `RunScale` run (`u8` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ScaleMode {
    /// Each worker is a process of its own (forked by the server).
    Processes = 0,
    /// Each worker is a thread of one process (the server's).
    Threads = 1,
}

impl ScaleMode {
    /// Every mode, in wire order.
    pub const ALL: [ScaleMode; 2] = [ScaleMode::Processes, ScaleMode::Threads];

    /// The mode with wire value `value`, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// The mode's name in reports: `processes`, `threads`.
    pub fn name(self) -> &'static str {
        match self {
            ScaleMode::Processes => "processes",
            ScaleMode::Threads => "threads",
        }
    }
}

/// Why a request failed (`u16` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The message type is unknown (detail: the type).
    UnknownType = 1,
    /// The frame's protocol version is not spoken (detail: the version).
    BadVersion = 2,
    /// The frame or payload is corrupt (detail: see [`DecodeError::detail`]).
    Malformed = 3,
    /// The request is well-formed but its arguments are not acceptable.
    BadArgument = 4,
    /// The guest cannot take this request now.
    Busy = 5,
    /// The guest failed while serving the request.
    Internal = 6,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::UnknownType,
        ErrorCode::BadVersion,
        ErrorCode::Malformed,
        ErrorCode::BadArgument,
        ErrorCode::Busy,
        ErrorCode::Internal,
    ];

    /// The code with wire value `value`, if any.
    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u16 == value)
    }
}

/// Up to `N` values of `T`, stored inline so no heap is needed (the guest's
/// protocol loop must not depend on one). Equality and `Debug` look only at
/// the values in use.
#[derive(Clone, Copy)]
pub struct InlineVec<T: Copy + Default, const N: usize> {
    len: usize,
    data: [T; N],
}

/// Up to [`MAX_SAMPLES_PER_FRAME`] TSC-cycle samples.
pub type Samples = InlineVec<u64, MAX_SAMPLES_PER_FRAME>;

/// Up to [`MAX_USER_TASKS`] `(uid, task count)` pairs.
pub type UserTasks = InlineVec<(u32, u64), MAX_USER_TASKS>;

impl<T: Copy + Default, const N: usize> InlineVec<T, N> {
    pub fn new() -> Self {
        Self {
            len: 0,
            data: [T::default(); N],
        }
    }

    /// `None` if `values` has more than `N` entries.
    pub fn from_slice(values: &[T]) -> Option<Self> {
        let mut v = Self::new();
        v.data.get_mut(..values.len())?.copy_from_slice(values);
        v.len = values.len();
        Some(v)
    }

    /// Appends a value; returns false (and drops it) when full.
    pub fn push(&mut self, value: T) -> bool {
        match self.data.get_mut(self.len) {
            Some(slot) => {
                *slot = value;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[T] {
        &self.data[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Copy + Default, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for InlineVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for InlineVec<T, N> {}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A sysctl name (e.g. `b"kernel.threads-max"`) of up to
/// [`MAX_SYSCTL_NAME_LEN`] bytes, stored inline.
#[derive(Clone, Copy)]
pub struct SysctlName {
    len: u8,
    bytes: [u8; MAX_SYSCTL_NAME_LEN],
}

impl SysctlName {
    /// `None` if `name` is longer than [`MAX_SYSCTL_NAME_LEN`].
    pub fn new(name: &[u8]) -> Option<Self> {
        let mut bytes = [0; MAX_SYSCTL_NAME_LEN];
        bytes.get_mut(..name.len())?.copy_from_slice(name);
        Some(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

impl PartialEq for SysctlName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SysctlName {}

impl fmt::Debug for SysctlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => fmt::Debug::fmt(s, f),
            None => fmt::Debug::fmt(self.as_bytes(), f),
        }
    }
}

/// Every request and reply. See the crate docs for the payload layouts.
///
/// `BenchSamples` makes this enum about 8 KiB; a guest short of stack can
/// send samples with [`encode_bench_samples_frame`] instead.
// Boxing the samples would need a heap, which the guest's protocol loop must
// not depend on; the size is documented above instead.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Host greeting; `client_version` is the highest protocol version the
    /// host speaks.
    Hello {
        client_version: u8,
    },
    /// Run `op` `warmup` times untimed, then `iters` times timed, with
    /// `mem_mib` MiB of touched memory in the parent (for `ForkMem`).
    RunBench {
        op: BenchOp,
        iters: u32,
        warmup: u32,
        mem_mib: u32,
    },
    /// Make one `clone`/`clone3` call with these arguments and limits.
    Probe {
        flags: u64,
        exit_signal: u32,
        use_clone3: bool,
        uid: u32,
        nproc_limit: u64,
        threads_max: u64,
    },
    /// Ask for kernel counters.
    Stats,
    /// Read a sysctl, or write it when `value` is `Some`.
    Sysctl {
        name: SysctlName,
        value: Option<u64>,
    },
    /// Set a resource limit of the benchmark process.
    Rlimit {
        resource: u32,
        cur: u64,
        max: u64,
    },
    /// Power the guest off with `status`; no reply.
    Shutdown {
        status: u32,
    },
    /// Start `workers` workers (processes or threads, `mode`), each
    /// repeating `op` (touching `mem_mib` MiB first for `ForkMem`) until
    /// `duration_ms` have passed with all of them running; answered by
    /// `ScaleDone`.
    RunScale {
        op: BenchOp,
        mode: ScaleMode,
        workers: u16,
        duration_ms: u32,
        mem_mib: u32,
    },
    HelloReply {
        protocol_version: u8,
        platform: u32,
        tsc_khz: u64,
        memory_bytes: u64,
        /// NUL-padded.
        kernel_version: [u8; KERNEL_VERSION_LEN],
    },
    /// Samples `first_index .. first_index + samples.len()` of `total` of
    /// one `metric` (one of `op.metrics()`).
    BenchSamples {
        op: BenchOp,
        metric: BenchMetric,
        first_index: u32,
        total: u32,
        samples: Samples,
    },
    /// End of a `RunBench`: `total` samples of each metric were sent;
    /// `errno` is 0 or why the run stopped early.
    BenchDone {
        op: BenchOp,
        total: u32,
        errno: i32,
    },
    /// `clone` result: a pid, or `-errno`.
    ProbeReply {
        result: i64,
    },
    StatsReply {
        free_frames: u64,
        total_frames: u64,
        tasks: u32,
        nr_threads: u32,
        max_threads: u32,
        user_tasks: UserTasks,
    },
    SysctlReply {
        value: u64,
    },
    /// Success without data (`Rlimit`, a sysctl write).
    Ok,
    /// End of a `RunScale`: the workers completed `ops` operations
    /// together in `elapsed_tsc` guest TSC cycles (the fewest and most of
    /// one worker: `min_worker_ops`, `max_worker_ops`); `errno` is 0 or
    /// why the run failed (then the counts are 0).
    ScaleDone {
        op: BenchOp,
        mode: ScaleMode,
        workers: u16,
        errno: i32,
        elapsed_tsc: u64,
        ops: u64,
        min_worker_ops: u64,
        max_worker_ops: u64,
    },
    /// The request with `request_id` failed.
    Error {
        request_id: u32,
        code: ErrorCode,
        detail: u32,
    },
}

impl Message {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Hello { .. } => MessageType::Hello,
            Message::RunBench { .. } => MessageType::RunBench,
            Message::Probe { .. } => MessageType::Probe,
            Message::Stats => MessageType::Stats,
            Message::Sysctl { .. } => MessageType::Sysctl,
            Message::Rlimit { .. } => MessageType::Rlimit,
            Message::Shutdown { .. } => MessageType::Shutdown,
            Message::RunScale { .. } => MessageType::RunScale,
            Message::HelloReply { .. } => MessageType::HelloReply,
            Message::BenchSamples { .. } => MessageType::BenchSamples,
            Message::BenchDone { .. } => MessageType::BenchDone,
            Message::ProbeReply { .. } => MessageType::ProbeReply,
            Message::StatsReply { .. } => MessageType::StatsReply,
            Message::SysctlReply { .. } => MessageType::SysctlReply,
            Message::Ok => MessageType::Ok,
            Message::ScaleDone { .. } => MessageType::ScaleDone,
            Message::Error { .. } => MessageType::Error,
        }
    }

    /// Length of the encoded payload in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::Hello { .. } => 1,
            Message::RunBench { .. } => 2 + 4 + 4 + 4,
            Message::Probe { .. } => 8 + 4 + 1 + 4 + 8 + 8,
            Message::Stats | Message::Ok => 0,
            Message::Sysctl { name, .. } => 1 + name.as_bytes().len() + 1 + 8,
            Message::Rlimit { .. } => 4 + 8 + 8,
            Message::Shutdown { .. } => 4,
            Message::RunScale { .. } => 2 + 1 + 2 + 4 + 4,
            Message::HelloReply { .. } => 1 + 4 + 8 + 8 + KERNEL_VERSION_LEN,
            Message::BenchSamples { samples, .. } => samples_payload_len(samples.len()),
            Message::BenchDone { .. } => 2 + 4 + 4,
            Message::ProbeReply { .. } | Message::SysctlReply { .. } => 8,
            Message::StatsReply { user_tasks, .. } => {
                8 + 8 + 4 + 4 + 4 + 1 + user_tasks.as_slice().len() * (4 + 8)
            }
            Message::ScaleDone { .. } => 2 + 1 + 2 + 4 + 8 * 4,
            Message::Error { .. } => 4 + 2 + 4,
        }
    }

    /// Writes the payload (not the frame) into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = self.payload_len();
        let mut w = Writer::new(buf, needed)?;
        match self {
            Message::Hello { client_version } => w.u8(*client_version),
            Message::RunBench {
                op,
                iters,
                warmup,
                mem_mib,
            } => {
                w.u16(*op as u16);
                w.u32(*iters);
                w.u32(*warmup);
                w.u32(*mem_mib);
            }
            Message::Probe {
                flags,
                exit_signal,
                use_clone3,
                uid,
                nproc_limit,
                threads_max,
            } => {
                w.u64(*flags);
                w.u32(*exit_signal);
                w.u8(u8::from(*use_clone3));
                w.u32(*uid);
                w.u64(*nproc_limit);
                w.u64(*threads_max);
            }
            Message::Stats | Message::Ok => {}
            Message::Sysctl { name, value } => {
                w.u8(name.as_bytes().len() as u8);
                w.bytes(name.as_bytes());
                // Fixed-size value slot: one layout for reads and writes.
                w.u8(u8::from(value.is_some()));
                w.u64(value.unwrap_or(0));
            }
            Message::Rlimit { resource, cur, max } => {
                w.u32(*resource);
                w.u64(*cur);
                w.u64(*max);
            }
            Message::Shutdown { status } => w.u32(*status),
            Message::RunScale {
                op,
                mode,
                workers,
                duration_ms,
                mem_mib,
            } => {
                w.u16(*op as u16);
                w.u8(*mode as u8);
                w.u16(*workers);
                w.u32(*duration_ms);
                w.u32(*mem_mib);
            }
            Message::ScaleDone {
                op,
                mode,
                workers,
                errno,
                elapsed_tsc,
                ops,
                min_worker_ops,
                max_worker_ops,
            } => {
                w.u16(*op as u16);
                w.u8(*mode as u8);
                w.u16(*workers);
                w.u32(*errno as u32);
                w.u64(*elapsed_tsc);
                w.u64(*ops);
                w.u64(*min_worker_ops);
                w.u64(*max_worker_ops);
            }
            Message::HelloReply {
                protocol_version,
                platform,
                tsc_khz,
                memory_bytes,
                kernel_version,
            } => {
                w.u8(*protocol_version);
                w.u32(*platform);
                w.u64(*tsc_khz);
                w.u64(*memory_bytes);
                w.bytes(kernel_version);
            }
            Message::BenchSamples {
                op,
                metric,
                first_index,
                total,
                samples,
            } => write_samples(
                &mut w,
                (*op, *metric),
                *first_index,
                *total,
                samples.as_slice(),
            ),
            Message::BenchDone { op, total, errno } => {
                w.u16(*op as u16);
                w.u32(*total);
                w.u32(*errno as u32);
            }
            Message::ProbeReply { result } => w.u64(*result as u64),
            Message::StatsReply {
                free_frames,
                total_frames,
                tasks,
                nr_threads,
                max_threads,
                user_tasks,
            } => {
                w.u64(*free_frames);
                w.u64(*total_frames);
                w.u32(*tasks);
                w.u32(*nr_threads);
                w.u32(*max_threads);
                w.u8(user_tasks.as_slice().len() as u8);
                for &(uid, count) in user_tasks.as_slice() {
                    w.u32(uid);
                    w.u64(count);
                }
            }
            Message::SysctlReply { value } => w.u64(*value),
            Message::Error {
                request_id,
                code,
                detail,
            } => {
                w.u32(*request_id);
                w.u16(*code as u16);
                w.u32(*detail);
            }
        }
        Ok(w.finish())
    }

    /// Writes a whole frame (header, payload, CRC) into `buf`; returns its
    /// length.
    pub fn encode_frame(&self, request_id: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = frame_len(self.payload_len())?;
        let out = buf
            .get_mut(..needed)
            .ok_or(EncodeError::BufferTooSmall { needed })?;
        let len = self.encode(&mut out[HEADER_LEN..])?;
        seal_frame(self.msg_type() as u8, request_id, len, out)
    }

    /// Decodes the payload of a frame of type `msg_type`. Strict: the length
    /// must match exactly and every enum, bool and count must be valid.
    pub fn decode(msg_type: u8, payload: &[u8]) -> Result<Message, DecodeError> {
        let ty = MessageType::from_u8(msg_type).ok_or(DecodeError::UnknownType { msg_type })?;
        let mut r = Reader {
            data: payload,
            pos: 0,
            msg_type,
        };
        let msg = match ty {
            MessageType::Hello => Message::Hello {
                client_version: r.u8()?,
            },
            MessageType::RunBench => Message::RunBench {
                op: r.bench_op()?,
                iters: r.u32()?,
                warmup: r.u32()?,
                mem_mib: r.u32()?,
            },
            MessageType::Probe => Message::Probe {
                flags: r.u64()?,
                exit_signal: r.u32()?,
                use_clone3: r.bool()?,
                uid: r.u32()?,
                nproc_limit: r.u64()?,
                threads_max: r.u64()?,
            },
            MessageType::Stats => Message::Stats,
            MessageType::Sysctl => {
                let at = r.pos;
                let len = usize::from(r.u8()?);
                if len > MAX_SYSCTL_NAME_LEN {
                    return Err(r.bad_field(at));
                }
                let name = SysctlName::new(r.bytes(len)?).ok_or(r.bad_field(at))?;
                let has_value = r.bool()?;
                let at = r.pos;
                let raw = r.u64()?;
                let value = match (has_value, raw) {
                    (true, v) => Some(v),
                    (false, 0) => None,
                    // Canonical encoding only: an absent value is zero.
                    (false, _) => return Err(r.bad_field(at)),
                };
                Message::Sysctl { name, value }
            }
            MessageType::Rlimit => Message::Rlimit {
                resource: r.u32()?,
                cur: r.u64()?,
                max: r.u64()?,
            },
            MessageType::Shutdown => Message::Shutdown { status: r.u32()? },
            MessageType::RunScale => Message::RunScale {
                op: r.bench_op()?,
                mode: r.scale_mode()?,
                workers: r.u16()?,
                duration_ms: r.u32()?,
                mem_mib: r.u32()?,
            },
            MessageType::ScaleDone => Message::ScaleDone {
                op: r.bench_op()?,
                mode: r.scale_mode()?,
                workers: r.u16()?,
                errno: r.u32()? as i32,
                elapsed_tsc: r.u64()?,
                ops: r.u64()?,
                min_worker_ops: r.u64()?,
                max_worker_ops: r.u64()?,
            },
            MessageType::HelloReply => Message::HelloReply {
                protocol_version: r.u8()?,
                platform: r.u32()?,
                tsc_khz: r.u64()?,
                memory_bytes: r.u64()?,
                kernel_version: r.array()?,
            },
            MessageType::BenchSamples => {
                let op = r.bench_op()?;
                let at = r.pos;
                let metric = BenchMetric::from_u8(r.u8()?)
                    .filter(|m| op.metrics().contains(m))
                    .ok_or(r.bad_field(at))?;
                let first_index = r.u32()?;
                let total = r.u32()?;
                let at = r.pos;
                let count = usize::from(r.u16()?);
                if count > MAX_SAMPLES_PER_FRAME {
                    return Err(r.bad_field(at));
                }
                // Check the length before reading so a short payload is a
                // length error, not a field error.
                if payload.len() != samples_payload_len(count) {
                    return Err(r.bad_length());
                }
                let mut samples = Samples::new();
                for _ in 0..count {
                    samples.push(r.u64()?);
                }
                Message::BenchSamples {
                    op,
                    metric,
                    first_index,
                    total,
                    samples,
                }
            }
            MessageType::BenchDone => Message::BenchDone {
                op: r.bench_op()?,
                total: r.u32()?,
                errno: r.u32()? as i32,
            },
            MessageType::ProbeReply => Message::ProbeReply {
                result: r.u64()? as i64,
            },
            MessageType::StatsReply => {
                let free_frames = r.u64()?;
                let total_frames = r.u64()?;
                let tasks = r.u32()?;
                let nr_threads = r.u32()?;
                let max_threads = r.u32()?;
                let at = r.pos;
                let count = usize::from(r.u8()?);
                if count > MAX_USER_TASKS {
                    return Err(r.bad_field(at));
                }
                let mut user_tasks = UserTasks::new();
                for _ in 0..count {
                    let uid = r.u32()?;
                    user_tasks.push((uid, r.u64()?));
                }
                Message::StatsReply {
                    free_frames,
                    total_frames,
                    tasks,
                    nr_threads,
                    max_threads,
                    user_tasks,
                }
            }
            MessageType::SysctlReply => Message::SysctlReply { value: r.u64()? },
            MessageType::Ok => Message::Ok,
            MessageType::Error => {
                let request_id = r.u32()?;
                let at = r.pos;
                let code = ErrorCode::from_u16(r.u16()?).ok_or(r.bad_field(at))?;
                Message::Error {
                    request_id,
                    code,
                    detail: r.u32()?,
                }
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Writes a `BenchSamples` frame of `metric` straight from a slice of
/// samples, without building an 8 KiB [`Message`] on the stack. Fails with
/// [`EncodeError::PayloadTooLong`] for more than [`MAX_SAMPLES_PER_FRAME`]
/// samples.
pub fn encode_bench_samples_frame(
    request_id: u32,
    (op, metric): (BenchOp, BenchMetric),
    first_index: u32,
    total: u32,
    samples: &[u64],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let payload_len = samples_payload_len(samples.len());
    if samples.len() > MAX_SAMPLES_PER_FRAME {
        return Err(EncodeError::PayloadTooLong { len: payload_len });
    }
    let needed = frame_len(payload_len)?;
    let out = buf
        .get_mut(..needed)
        .ok_or(EncodeError::BufferTooSmall { needed })?;
    let mut w = Writer::new(&mut out[HEADER_LEN..], payload_len)?;
    write_samples(&mut w, (op, metric), first_index, total, samples);
    let len = w.finish();
    seal_frame(MessageType::BenchSamples as u8, request_id, len, out)
}

fn samples_payload_len(count: usize) -> usize {
    2 + 1 + 4 + 4 + 2 + count * 8
}

fn write_samples(
    w: &mut Writer<'_>,
    (op, metric): (BenchOp, BenchMetric),
    first_index: u32,
    total: u32,
    samples: &[u64],
) {
    w.u16(op as u16);
    w.u8(metric as u8);
    w.u32(first_index);
    w.u32(total);
    w.u16(samples.len() as u16);
    for &s in samples {
        w.u64(s);
    }
}

/// Little-endian writer into a buffer already checked to hold the payload.
/// Writes past the end are dropped rather than panicking; `finish` reports
/// the bytes written, which the tests check against `payload_len`.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8], needed: usize) -> Result<Self, EncodeError> {
        let buf = buf
            .get_mut(..needed)
            .ok_or(EncodeError::BufferTooSmall { needed })?;
        Ok(Self { buf, pos: 0 })
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn finish(self) -> usize {
        self.pos
    }
}

/// Little-endian reader; running off the end is a [`DecodeError::BadLength`].
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    msg_type: u8,
}

impl<'a> Reader<'a> {
    fn bad_length(&self) -> DecodeError {
        DecodeError::BadLength {
            msg_type: self.msg_type,
            len: self.data.len() as u32,
        }
    }

    fn bad_field(&self, offset: usize) -> DecodeError {
        DecodeError::BadField {
            msg_type: self.msg_type,
            offset: offset as u32,
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(self.bad_length())?;
        let b = self.data.get(self.pos..end).ok_or(self.bad_length())?;
        self.pos = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad_field(at)),
        }
    }

    fn bench_op(&mut self) -> Result<BenchOp, DecodeError> {
        let at = self.pos;
        BenchOp::from_u16(self.u16()?).ok_or(self.bad_field(at))
    }

    fn scale_mode(&mut self) -> Result<ScaleMode, DecodeError> {
        let at = self.pos;
        ScaleMode::from_u8(self.u8()?).ok_or(self.bad_field(at))
    }

    /// Trailing bytes are an error too: they mean a layout mismatch.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(self.bad_length())
        }
    }
}
