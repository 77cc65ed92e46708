//! The guest side of the harness protocol (`forkvm-protocol`), served by
//! `harnessd` over the virtio console (feature `heap`).
//!
//! [`Server::serve`] reads bytes from a [`Link`], feeds them to one
//! [`FrameDecoder`] and answers every frame as the protocol's Conversation
//! section says, until a `Shutdown` (whose status it returns, with no reply)
//! or the end of the input. Anything wrong with a request is answered with
//! `Error` and serving goes on. The link is a trait so host tests can drive
//! the server with frames in memory.
//!
//! - `Hello` -> `HelloReply`: platform, TSC rate and memory from
//!   `forkvm_info` (zeros where that fails, as on Linux), kernel version
//!   `sysname release` from `uname`.
//! - `RunBench` -> the op's samples ([`latency::sample`], `warmup` cycles
//!   excluded) in `BenchSamples` chunks, every chunk of `create` first, then
//!   those of `create_exit_reap` (creating operations only), then
//!   `BenchDone` with errno 0. If
//!   the run fails, no samples and `BenchDone { total: 0, errno }`; a failing
//!   op that succeeds reports errno -1, a child that ends abnormally
//!   `ECHILD`. `iters == 0` or an unsupported `mem_mib` is `BadArgument`.
//! - `RunScale` -> `ScaleDone`: `workers` processes or threads each
//!   repeat `op` (fork, fork_mem, vfork, clone_thread or clone_vm) for
//!   `duration_ms` once each has completed an operation
//!   ([`crate::scale`]); their operations, the interval in TSC cycles and the least and most of one worker. A
//!   failure is `ScaleDone` with its errno and zero counts; another op, 0
//!   or more than [`scale::MAX_WORKERS`] workers, a zero or over-long
//!   duration are `BadArgument`.
//! - `Probe` -> `ProbeReply` (pid or `-errno`), made in a forked child that
//!   first sets `RLIMIT_NPROC` to `nproc_limit` (unless `RLIM_INFINITY`)
//!   and `kernel.threads-max` to `threads_max` (unless 0; restored by the
//!   parent afterwards), then becomes `uid` (unless 0).
//! - `Stats` -> `StatsReply`: frames and tasks of `forkvm_info`, one entry
//!   per thread of the task list (`nr_threads`, per-uid counts, at most 16
//!   uids), `kernel.threads-max` (0 if unreadable).
//! - `Sysctl` -> `SysctlReply` (a read) or `Ok` (a write).
//! - `Rlimit` -> `prlimit64` on this process -> `Ok`.
//! - A failing system call is `Error { code: BadArgument, detail: errno }`
//!   for `EINVAL`/`ENOENT`/`EPERM`, else `Internal`.

extern crate alloc as alloc_crate;

use alloc_crate::boxed::Box;
use alloc_crate::vec;
use alloc_crate::vec::Vec;

use forkvm_protocol::{
    encode_bench_samples_frame, BenchMetric, BenchOp, ErrorCode, FrameDecoder, Message, ScaleMode,
    UserTasks, KERNEL_VERSION_LEN, MAX_FRAME_LEN, MAX_SAMPLES_PER_FRAME, MAX_USER_TASKS,
    PROTOCOL_VERSION,
};

use crate::clone_probe::{
    clone3_exit0, clone_exit0, close_pidfd, reap, CloneArea, CloneArgs, CLONE_ARGS_SIZE_VER2,
};
use crate::errno::Errno;
use crate::forkvm::{self, TaskInfo};
use crate::latency::{self, format_u64, Op, Options};
use crate::scale;
use crate::syscall::{self, c_field, exit, fork, pipe2, wait4};

/// Largest `iters` a `RunBench` may ask for (the samples are kept in memory).
pub const MAX_ITERS: u32 = 10_000_000;
/// Largest `mem_mib` a `RunBench` may ask for.
pub const MAX_MEM_MIB: u32 = 64 * 1024;
/// Longest `duration_ms` a `RunScale` may ask for (ten minutes).
pub const MAX_SCALE_DURATION_MS: u32 = 600_000;
const THREADS_MAX: &[u8] = b"kernel.threads-max";

/// The byte stream the server talks over.
pub trait Link {
    /// Reads at least one byte into `buf`; 0 means the stream ended.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno>;
    /// Writes all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Errno>;
}

/// A [`Link`] over a file descriptor (the virtio console).
pub struct FdLink(pub i32);

impl Link for FdLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match syscall::read(self.0, buf) {
                Err(Errno::EINTR) => {}
                other => return other,
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Errno> {
        syscall::write_all(self.0, buf)
    }
}

/// How serving ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A `Shutdown` with this status.
    Shutdown(u32),
    /// The input ended.
    Eof,
}

/// The protocol server: the decoder, the output frame buffer and the
/// `HelloReply` (built once: nothing in it changes while the kernel runs,
/// so a Hello costs only the round trip it is there to measure).
pub struct Server {
    decoder: Box<FrameDecoder>,
    out: Vec<u8>,
    hello: Message,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

/// What serving one frame asks of the loop.
enum Next {
    Continue,
    Shutdown(u32),
}

impl Server {
    /// A server with an empty decoder.
    pub fn new() -> Server {
        Server {
            decoder: Box::new(FrameDecoder::new()),
            out: vec![0; MAX_FRAME_LEN],
            hello: hello_reply(),
        }
    }

    /// Serves requests from `link` until `Shutdown` or the end of the input;
    /// `Err` only if the link fails.
    pub fn serve<L: Link>(&mut self, link: &mut L) -> Result<End, Errno> {
        let mut input = vec![0u8; 4096];
        loop {
            let n = link.read(&mut input)?;
            if n == 0 {
                return Ok(End::Eof);
            }
            let mut rest = &input[..n];
            while !rest.is_empty() {
                let taken = self.decoder.feed(rest);
                rest = &rest[taken..];
                loop {
                    // Copy the frame out so the decoder is free again while
                    // the request runs.
                    let request = match self.decoder.next_frame() {
                        None => break,
                        Some(Ok(frame)) => (frame.request_id, frame.message()),
                        Some(Err(e)) => (0, Err(e)),
                    };
                    let (id, message) = request;
                    let next = match message {
                        Ok(message) => self.answer(link, id, message)?,
                        Err(e) => {
                            // A version mismatch names its own request id.
                            let reply = e.error_reply(id);
                            let id = match reply {
                                Message::Error { request_id, .. } => request_id,
                                _ => id,
                            };
                            self.send(link, id, &reply)?;
                            Next::Continue
                        }
                    };
                    if let Next::Shutdown(status) = next {
                        return Ok(End::Shutdown(status));
                    }
                }
            }
        }
    }

    fn send<L: Link>(&mut self, link: &mut L, id: u32, message: &Message) -> Result<(), Errno> {
        let n = message
            .encode_frame(id, &mut self.out)
            .map_err(|_| Errno::EOVERFLOW)?;
        link.write_all(&self.out[..n])
    }

    fn error<L: Link>(
        &mut self,
        link: &mut L,
        id: u32,
        code: ErrorCode,
        detail: u32,
    ) -> Result<Next, Errno> {
        let reply = Message::Error {
            request_id: id,
            code,
            detail,
        };
        self.send(link, id, &reply)?;
        Ok(Next::Continue)
    }

    fn sys_error<L: Link>(&mut self, link: &mut L, id: u32, e: Errno) -> Result<Next, Errno> {
        let code = match e {
            Errno::EINVAL | Errno::ENOENT | Errno::EPERM => ErrorCode::BadArgument,
            _ => ErrorCode::Internal,
        };
        self.error(link, id, code, e.0 as u32)
    }

    fn reply<L: Link>(&mut self, link: &mut L, id: u32, message: Message) -> Result<Next, Errno> {
        self.send(link, id, &message)?;
        Ok(Next::Continue)
    }

    fn answer<L: Link>(&mut self, link: &mut L, id: u32, message: Message) -> Result<Next, Errno> {
        match message {
            Message::Hello { .. } => self.reply(link, id, self.hello.clone()),
            Message::RunBench {
                op,
                iters,
                warmup,
                mem_mib,
            } => self.run_bench(link, id, op, iters, warmup, mem_mib),
            Message::Probe {
                flags,
                exit_signal,
                use_clone3,
                uid,
                nproc_limit,
                threads_max,
            } => {
                let setup = ProbeSetup {
                    uid,
                    nproc_limit,
                    threads_max,
                };
                match probe(flags, exit_signal, use_clone3, setup) {
                    Ok(result) => self.reply(link, id, Message::ProbeReply { result }),
                    Err(e) => self.sys_error(link, id, e),
                }
            }
            Message::Stats => match stats() {
                Ok(reply) => self.reply(link, id, reply),
                Err(e) => self.sys_error(link, id, e),
            },
            Message::Sysctl { name, value } => {
                let mut text = [0u8; 24];
                let value_text = value.map(|v| {
                    let n = format_u64(v, &mut text);
                    &text[..n]
                });
                let mut out = [0u8; 32];
                match forkvm::sysctl(name.as_bytes(), value_text, &mut out) {
                    Ok(_) if value.is_some() => self.reply(link, id, Message::Ok),
                    Ok(n) => match parse_u64(&out[..n]) {
                        Some(value) => self.reply(link, id, Message::SysctlReply { value }),
                        None => self.error(link, id, ErrorCode::Internal, 0),
                    },
                    Err(e) => self.sys_error(link, id, e),
                }
            }
            Message::Rlimit { resource, cur, max } => {
                let limit = crate::cred::Rlimit { cur, max };
                match crate::cred::prlimit64(0, resource, Some(limit)) {
                    Ok(_) => self.reply(link, id, Message::Ok),
                    Err(e) => self.sys_error(link, id, e),
                }
            }
            Message::RunScale {
                op,
                mode,
                workers,
                duration_ms,
                mem_mib,
            } => self.run_scale(link, id, op, mode, workers, duration_ms, mem_mib),
            Message::Shutdown { status } => Ok(Next::Shutdown(status)),
            // A reply sent to the guest is a request it does not know.
            other => self.error(
                link,
                id,
                ErrorCode::UnknownType,
                u32::from(other.msg_type() as u8),
            ),
        }
    }

    /// `RunScale`: the workers' counts in one `ScaleDone` (see
    /// [`crate::scale`]); a failure is a `ScaleDone` with its errno and
    /// zero counts, as a failed `RunBench` is a `BenchDone` with one.
    #[allow(clippy::too_many_arguments)]
    fn run_scale<L: Link>(
        &mut self,
        link: &mut L,
        id: u32,
        op: BenchOp,
        mode: ScaleMode,
        workers: u16,
        duration_ms: u32,
        mem_mib: u32,
    ) -> Result<Next, Errno> {
        let repeated = match op {
            BenchOp::Fork | BenchOp::ForkMem => Op::Fork,
            BenchOp::Vfork => Op::Vfork,
            BenchOp::CloneThread => Op::Thread,
            BenchOp::CloneVm => Op::CloneVm,
            _ => return self.error(link, id, ErrorCode::BadArgument, op as u32),
        };
        if workers == 0 || usize::from(workers) > scale::MAX_WORKERS {
            return self.error(link, id, ErrorCode::BadArgument, u32::from(workers));
        }
        if duration_ms == 0 || duration_ms > MAX_SCALE_DURATION_MS || mem_mib > MAX_MEM_MIB {
            return self.error(link, id, ErrorCode::BadArgument, duration_ms);
        }
        let mem = if op == BenchOp::ForkMem { mem_mib } else { 0 };
        let how = match mode {
            ScaleMode::Processes => scale::Mode::Processes,
            ScaleMode::Threads => scale::Mode::Threads,
        };
        let duration_ns = u64::from(duration_ms) * 1_000_000;
        let result = scale::run(repeated, mem as usize, how, workers.into(), duration_ns);
        let (counts, errno) = match result {
            Ok(counts) => (counts, 0),
            Err(e) => (scale::Counts::default(), e.0),
        };
        let done = Message::ScaleDone {
            op,
            mode,
            workers,
            errno,
            elapsed_tsc: counts.elapsed_tsc,
            ops: counts.ops,
            min_worker_ops: counts.min_worker_ops,
            max_worker_ops: counts.max_worker_ops,
        };
        self.reply(link, id, done)
    }

    fn run_bench<L: Link>(
        &mut self,
        link: &mut L,
        id: u32,
        op: BenchOp,
        iters: u32,
        warmup: u32,
        mem_mib: u32,
    ) -> Result<Next, Errno> {
        if iters == 0 || iters > MAX_ITERS {
            return self.error(link, id, ErrorCode::BadArgument, iters);
        }
        if mem_mib > MAX_MEM_MIB || warmup > MAX_ITERS {
            return self.error(link, id, ErrorCode::BadArgument, mem_mib.max(warmup));
        }
        let (op_, mem) = match op {
            BenchOp::Fork => (Op::Fork, 0),
            BenchOp::Vfork => (Op::Vfork, 0),
            BenchOp::CloneThread => (Op::Thread, 0),
            BenchOp::CloneVm => (Op::CloneVm, 0),
            BenchOp::ForkExec => (Op::ForkExec, 0),
            BenchOp::ForkMem => (Op::Fork, mem_mib),
            BenchOp::RlimitEagain => (Op::RlimitEagain, 0),
            BenchOp::MaxThreadsEagain => (Op::MaxThreadsEagain, 0),
            BenchOp::CloneEinval => (Op::CloneEinval, 0),
            BenchOp::YieldPingPong => (Op::YieldPingPong, 0),
            BenchOp::PipePingPong => (Op::PipePingPong, 0),
            BenchOp::ForkThreaded => (Op::ForkThreaded, 0),
            BenchOp::ExecStatic => (Op::ExecStatic, 0),
            BenchOp::Shell => (Op::Shell, 0),
        };
        let options = Options {
            op: op_,
            iters: iters as usize,
            mem_mib: mem as usize,
        };
        // A failing op's one metric, `create`, is the refused call: the
        // whole cycle.
        let keep_create = op.metrics().contains(&BenchMetric::CreateExitReap);
        let mut create = vec![0u64; if keep_create { iters as usize } else { 0 }];
        let mut total = vec![0u64; iters as usize];
        let mut out = latency::Samples {
            create: keep_create.then_some(&mut create[..]),
            total: &mut total,
        };
        if let Err(e) = latency::sample(&options, warmup as usize, &mut out) {
            let errno = e.errno();
            let done = Message::BenchDone {
                op,
                total: 0,
                errno,
            };
            return self.reply(link, id, done);
        }
        let streams: [&[u64]; 2] = if keep_create {
            [&create, &total]
        } else {
            [&total, &[]]
        };
        for (&metric, samples) in op.metrics().iter().zip(streams) {
            for (i, chunk) in samples.chunks(MAX_SAMPLES_PER_FRAME).enumerate() {
                let first = (i * MAX_SAMPLES_PER_FRAME) as u32;
                let n = encode_bench_samples_frame(
                    id,
                    (op, metric),
                    first,
                    iters,
                    chunk,
                    &mut self.out,
                )
                .map_err(|_| Errno::EOVERFLOW)?;
                link.write_all(&self.out[..n])?;
            }
        }
        let done = Message::BenchDone {
            op,
            total: iters,
            errno: 0,
        };
        self.reply(link, id, done)
    }
}

/// The `HelloReply` for this kernel.
pub fn hello_reply() -> Message {
    let info = forkvm::system_info().unwrap_or_default();
    let mut kernel_version = [0u8; KERNEL_VERSION_LEN];
    if let Ok(u) = syscall::uname() {
        let parts = [c_field(&u.sysname), b" ", c_field(&u.release)];
        let text = parts.iter().flat_map(|p| p.iter()).copied();
        for (slot, byte) in kernel_version.iter_mut().zip(text) {
            *slot = byte;
        }
    }
    Message::HelloReply {
        protocol_version: PROTOCOL_VERSION,
        platform: info.platform,
        tsc_khz: info.tsc_khz,
        memory_bytes: info.total_frames.saturating_mul(4096),
        kernel_version,
    }
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    core::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// `kernel.threads-max` through forkvm's sysctl.
fn threads_max() -> Result<u64, Errno> {
    let mut out = [0u8; 32];
    let n = forkvm::sysctl(THREADS_MAX, None, &mut out)?;
    parse_u64(&out[..n]).ok_or(Errno::EINVAL)
}

fn set_threads_max(value: u64) -> Result<(), Errno> {
    let mut text = [0u8; 24];
    let n = format_u64(value, &mut text);
    let mut out = [0u8; 32];
    forkvm::sysctl(THREADS_MAX, Some(&text[..n]), &mut out).map(|_| ())
}

/// The `StatsReply` for this kernel (`ENOSYS` on Linux).
pub fn stats() -> Result<Message, Errno> {
    let info = forkvm::system_info()?;
    let mut tasks = vec![TaskInfo::default(); (info.tasks as usize).max(16) + 16];
    let n = loop {
        let n = forkvm::tasks(&mut tasks)?;
        if n < tasks.len() {
            break n;
        }
        let len = tasks.len() * 2;
        tasks.resize(len, TaskInfo::default());
    };
    let mut user_tasks = UserTasks::new();
    let mut counts: [(u32, u64); MAX_USER_TASKS] = [(0, 0); MAX_USER_TASKS];
    let mut users = 0;
    for task in &tasks[..n] {
        if let Some(entry) = counts[..users].iter_mut().find(|(uid, _)| *uid == task.uid) {
            entry.1 += 1;
        } else if users < MAX_USER_TASKS {
            counts[users] = (task.uid, 1);
            users += 1;
        }
    }
    for &pair in &counts[..users] {
        user_tasks.push(pair);
    }
    Ok(Message::StatsReply {
        free_frames: info.free_frames,
        total_frames: info.total_frames,
        tasks: info.tasks as u32,
        nr_threads: n as u32,
        max_threads: threads_max().unwrap_or(0) as u32,
        user_tasks,
    })
}

/// The limits a probe runs under (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSetup {
    /// The uid the probing child becomes (0: stays root).
    pub uid: u32,
    /// The child's `RLIMIT_NPROC` (`RLIM_INFINITY`: unchanged).
    pub nproc_limit: u64,
    /// `kernel.threads-max` during the probe (0: unchanged).
    pub threads_max: u64,
}

/// One `clone` (or `clone3`) with `flags` and `exit_signal` in a child set
/// up as `setup` says: the new pid, or `-errno`. `Err` if the setup failed.
/// `kernel.threads-max` is set by the child (before it gives up root) and
/// restored here once the child is gone.
pub fn probe(
    flags: u64,
    exit_signal: u32,
    use_clone3: bool,
    setup: ProbeSetup,
) -> Result<i64, Errno> {
    let saved = match setup.threads_max {
        0 => None,
        _ => Some(threads_max()?),
    };
    let result = probe_in_child(flags, exit_signal, use_clone3, setup);
    if let Some(original) = saved {
        let restored = set_threads_max(original);
        let result = result?;
        restored?;
        return Ok(result);
    }
    result
}

fn probe_in_child(
    flags: u64,
    exit_signal: u32,
    use_clone3: bool,
    setup: ProbeSetup,
) -> Result<i64, Errno> {
    let [read_end, write_end] = pipe2(0)?;
    let pid = match fork() {
        Ok(0) => {
            let _ = syscall::close(read_end);
            // [kind, value]: kind 0 = clone result, 1 = setup errno.
            let report = match probe_setup(setup) {
                Err(e) => [1, i64::from(e.0)],
                Ok(()) => [0, probe_once(flags, exit_signal, use_clone3)],
            };
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&report[0].to_le_bytes());
            bytes[8..].copy_from_slice(&report[1].to_le_bytes());
            let status = match syscall::write_all(write_end, &bytes) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            exit(status)
        }
        Ok(pid) => pid,
        Err(e) => {
            let _ = syscall::close(read_end);
            let _ = syscall::close(write_end);
            return Err(e);
        }
    };
    let _ = syscall::close(write_end);
    let mut bytes = [0u8; 16];
    let mut got = 0;
    while got < bytes.len() {
        match syscall::read(read_end, &mut bytes[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    let _ = syscall::close(read_end);
    while let Err(Errno::EINTR) = wait4(pid as i32, 0) {}
    if got < bytes.len() {
        return Err(Errno::ECHILD);
    }
    let kind = i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let value = i64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
    match kind {
        0 => Ok(value),
        _ => Err(Errno(value as i32)),
    }
}

fn probe_setup(setup: ProbeSetup) -> Result<(), Errno> {
    if setup.nproc_limit != crate::cred::RLIM_INFINITY {
        let limit = crate::cred::Rlimit {
            cur: setup.nproc_limit,
            max: setup.nproc_limit,
        };
        crate::cred::prlimit64(0, crate::cred::RLIMIT_NPROC, Some(limit))?;
    }
    if setup.threads_max != 0 {
        set_threads_max(setup.threads_max)?;
    }
    if setup.uid != 0 {
        crate::cred::setgid(setup.uid)?;
        crate::cred::setuid(setup.uid)?;
    }
    Ok(())
}

/// The clone itself (in the probing child): pid or `-errno`; the new child
/// is reaped (or its area leaked if it may still run).
fn probe_once(flags: u64, exit_signal: u32, use_clone3: bool) -> i64 {
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(e) => return -i64::from(e.0),
    };
    let result = if use_clone3 {
        let args = CloneArgs {
            flags,
            pidfd: area.pidfd().as_ptr() as u64,
            child_tid: area.ctid().as_ptr() as u64,
            parent_tid: area.ptid().as_ptr() as u64,
            exit_signal: u64::from(exit_signal),
            stack: area.stack_base(),
            stack_size: area.stack_size(),
            tls: area.tls(),
            ..CloneArgs::default()
        };
        let bytes = args.to_bytes();
        // SAFETY: the args point at the area's words and stack, unused by
        // anyone else; the child touches no stack and writes only `ran`.
        unsafe { clone3_exit0(bytes.as_ptr(), CLONE_ARGS_SIZE_VER2, area.ran().as_ptr()) }
    } else {
        clone_exit0(flags | u64::from(exit_signal), &area, area.tls())
    };
    match result {
        Ok(pid) => {
            let word = if use_clone3 {
                area.pidfd()
            } else {
                area.ptid()
            };
            close_pidfd(flags, word);
            let reaped = reap(flags, pid, Some(area.ctid()));
            if !reaped.area_free(flags) {
                area.leak();
            }
            i64::from(pid)
        }
        Err(e) => -i64::from(e.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forkvm_protocol::{Frame, SysctlName};

    /// Frames in, frames out.
    struct Memory {
        input: Vec<u8>,
        pos: usize,
        output: Vec<u8>,
    }

    impl Link for Memory {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
            // Small reads, to exercise frames split across reads.
            let n = buf.len().min(7).min(self.input.len() - self.pos);
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }

        fn write_all(&mut self, buf: &[u8]) -> Result<(), Errno> {
            self.output.extend_from_slice(buf);
            Ok(())
        }
    }

    fn frame(id: u32, message: &Message) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let n = message.encode_frame(id, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// Serves `input`; returns how it ended and the replies.
    fn run(input: Vec<u8>) -> (End, Vec<(u32, Message)>) {
        let mut link = Memory {
            input,
            pos: 0,
            output: Vec::new(),
        };
        let end = Server::new().serve(&mut link).unwrap();
        let mut decoder = FrameDecoder::new();
        let mut replies = Vec::new();
        let mut rest = &link.output[..];
        while !rest.is_empty() {
            let taken = decoder.feed(rest);
            rest = &rest[taken..];
            while let Some(result) = decoder.next_frame() {
                let f: Frame<'_> = result.unwrap();
                replies.push((f.request_id, f.message().unwrap()));
            }
        }
        (end, replies)
    }

    #[test]
    fn hello() {
        let (end, replies) = run(frame(3, &Message::Hello { client_version: 1 }));
        assert_eq!(end, End::Eof);
        assert_eq!(replies.len(), 1);
        let (
            id,
            Message::HelloReply {
                protocol_version,
                kernel_version,
                ..
            },
        ) = &replies[0]
        else {
            panic!("{replies:?}");
        };
        assert_eq!(*id, 3);
        assert_eq!(*protocol_version, PROTOCOL_VERSION);
        assert!(kernel_version.starts_with(b"Linux "), "{kernel_version:?}");
    }

    // The host's Linux has no forkvm_info: Stats is an Internal error with
    // ENOSYS, and serving goes on.
    #[test]
    fn stats_without_forkvm_info() {
        let mut input = frame(4, &Message::Stats);
        input.extend(frame(5, &Message::Shutdown { status: 0 }));
        let (end, replies) = run(input);
        assert_eq!(end, End::Shutdown(0));
        assert_eq!(
            replies,
            [(
                4,
                Message::Error {
                    request_id: 4,
                    code: ErrorCode::Internal,
                    detail: Errno::ENOSYS.0 as u32
                }
            )]
        );
        let sysctl = Message::Sysctl {
            name: SysctlName::new(THREADS_MAX).unwrap(),
            value: None,
        };
        let (_, replies) = run(frame(6, &sysctl));
        assert!(matches!(
            replies[..],
            [(
                6,
                Message::Error {
                    code: ErrorCode::Internal,
                    ..
                }
            )]
        ));
    }

    #[test]
    fn malformed_frame_then_more_service() {
        let mut bad = frame(9, &Message::Stats);
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // break the CRC
        bad.extend(frame(10, &Message::Hello { client_version: 1 }));
        bad.extend(frame(11, &Message::Shutdown { status: 7 }));
        bad.extend(frame(12, &Message::Hello { client_version: 1 }));
        let (end, replies) = run(bad);
        assert_eq!(end, End::Shutdown(7));
        assert_eq!(replies.len(), 2, "{replies:?}");
        assert!(matches!(
            replies[0],
            (
                0,
                Message::Error {
                    request_id: 0,
                    code: ErrorCode::Malformed,
                    ..
                }
            )
        ));
        assert!(matches!(replies[1], (10, Message::HelloReply { .. })));
    }

    #[test]
    fn unknown_version() {
        let mut input = frame(21, &Message::Stats);
        input[2] = 9; // version; the CRC covers it
        let crc_at = input.len() - 4;
        let crc = forkvm_protocol::crc32(&input[..crc_at]);
        input[crc_at..].copy_from_slice(&crc.to_le_bytes());
        let (_, replies) = run(input);
        assert_eq!(
            replies,
            [(
                21,
                Message::Error {
                    request_id: 21,
                    code: ErrorCode::BadVersion,
                    detail: 9
                }
            )]
        );
    }

    #[test]
    fn clone_einval_samples() {
        let bench = Message::RunBench {
            op: BenchOp::CloneEinval,
            iters: 5,
            warmup: 2,
            mem_mib: 0,
        };
        let (_, replies) = run(frame(30, &bench));
        assert_eq!(replies.len(), 2, "{replies:?}");
        let (
            30,
            Message::BenchSamples {
                op: BenchOp::CloneEinval,
                metric: BenchMetric::Create,
                first_index: 0,
                total: 5,
                samples,
            },
        ) = &replies[0]
        else {
            panic!("{replies:?}");
        };
        assert_eq!(samples.len(), 5);
        assert!(samples.as_slice().iter().all(|&s| s > 0));
        assert_eq!(
            replies[1],
            (
                30,
                Message::BenchDone {
                    op: BenchOp::CloneEinval,
                    total: 5,
                    errno: 0
                }
            )
        );
    }

    // A creating op sends every `create` chunk, then every
    // `create_exit_reap` chunk, then BenchDone; each iteration's create
    // ends before its child is reaped.
    #[test]
    fn fork_sends_both_metrics() {
        let bench = Message::RunBench {
            op: BenchOp::Fork,
            iters: 4,
            warmup: 1,
            mem_mib: 0,
        };
        let (_, replies) = run(frame(31, &bench));
        assert_eq!(replies.len(), 3, "{replies:?}");
        let mut streams = Vec::new();
        for (reply, metric) in replies.iter().zip(BenchOp::Fork.metrics()) {
            let (
                31,
                Message::BenchSamples {
                    op: BenchOp::Fork,
                    metric: got,
                    first_index: 0,
                    total: 4,
                    samples,
                },
            ) = reply
            else {
                panic!("{replies:?}");
            };
            assert_eq!(got, metric);
            assert_eq!(samples.len(), 4);
            streams.push(samples.as_slice().to_vec());
        }
        for (create, total) in streams[0].iter().zip(&streams[1]) {
            assert!(0 < *create && create < total, "{streams:?}");
        }
        assert_eq!(
            replies[2],
            (
                31,
                Message::BenchDone {
                    op: BenchOp::Fork,
                    total: 4,
                    errno: 0
                }
            )
        );
    }

    #[test]
    fn bad_bench_op_and_zero_iters() {
        let mut input = frame(
            40,
            &Message::RunBench {
                op: BenchOp::Fork,
                iters: 1,
                warmup: 0,
                mem_mib: 0,
            },
        );
        input[12] = 0xee; // op, low byte: no such op; reseal the CRC
        let crc_at = input.len() - 4;
        let crc = forkvm_protocol::crc32(&input[..crc_at]);
        input[crc_at..].copy_from_slice(&crc.to_le_bytes());
        input.extend(frame(
            41,
            &Message::RunBench {
                op: BenchOp::Fork,
                iters: 0,
                warmup: 0,
                mem_mib: 0,
            },
        ));
        let (_, replies) = run(input);
        assert_eq!(replies.len(), 2, "{replies:?}");
        assert!(matches!(
            replies[0],
            (
                40,
                Message::Error {
                    request_id: 40,
                    code: ErrorCode::Malformed,
                    ..
                }
            )
        ));
        assert_eq!(
            replies[1],
            (
                41,
                Message::Error {
                    request_id: 41,
                    code: ErrorCode::BadArgument,
                    detail: 0
                }
            )
        );
    }

    // RunScale: one ScaleDone with the workers' counts; what cannot be
    // scaled is BadArgument and serving goes on.
    #[test]
    fn run_scale_counts_and_refusals() {
        let scale = |id, op, workers, duration_ms| {
            frame(
                id,
                &Message::RunScale {
                    op,
                    mode: ScaleMode::Threads,
                    workers,
                    duration_ms,
                    mem_mib: 0,
                },
            )
        };
        let mut input = scale(60, BenchOp::Fork, 2, 50);
        input.extend(scale(61, BenchOp::CloneEinval, 1, 50));
        input.extend(scale(62, BenchOp::Fork, 0, 50));
        input.extend(scale(63, BenchOp::Fork, 1, 0));
        input.extend(frame(64, &Message::Hello { client_version: 2 }));
        let (_, replies) = run(input);
        assert_eq!(replies.len(), 5, "{replies:?}");
        let (
            60,
            Message::ScaleDone {
                op: BenchOp::Fork,
                mode: ScaleMode::Threads,
                workers: 2,
                errno: 0,
                elapsed_tsc,
                ops,
                min_worker_ops,
                max_worker_ops,
            },
        ) = replies[0]
        else {
            panic!("{replies:?}");
        };
        assert!(elapsed_tsc > 0 && min_worker_ops > 0, "{replies:?}");
        assert!(min_worker_ops <= max_worker_ops && min_worker_ops + max_worker_ops == ops);
        for (reply, (id, detail)) in replies[1..4].iter().zip([(61, 8), (62, 0), (63, 0)]) {
            assert_eq!(
                *reply,
                (
                    id,
                    Message::Error {
                        request_id: id,
                        code: ErrorCode::BadArgument,
                        detail
                    }
                )
            );
        }
        assert!(matches!(replies[4], (64, Message::HelloReply { .. })));
    }

    #[test]
    fn rlimit_on_self() {
        let current = crate::cred::getrlimit(crate::cred::RLIMIT_NOFILE).unwrap();
        let request = Message::Rlimit {
            resource: crate::cred::RLIMIT_NOFILE,
            cur: current.cur,
            max: current.max,
        };
        let (_, replies) = run(frame(50, &request));
        assert_eq!(replies, [(50, Message::Ok)]);
    }
}
