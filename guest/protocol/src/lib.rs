//! The host<->guest harness protocol of forkvm (`no_std`, no heap).
//!
//! The harness (`bench/`, through the VMM) and the guest talk over a
//! virtio-console byte stream. A byte stream has no message boundaries and
//! may be corrupted or start mid-message (for example when the host attaches
//! late), so every message travels in a self-delimiting, checksummed *frame*
//! and the receiver can always find the next frame again. Payloads are fixed
//! binary layouts: nothing is parsed from text.
//!
//! # Frame layout
//!
//! All integers are little endian (the byte order of both sides, so encoding
//! is a plain copy on x86).
//!
//! | Offset      | Size | Field        | Meaning                                            |
//! |-------------|------|--------------|----------------------------------------------------|
//! | 0           | 2    | `magic`      | `0x4b46`, the bytes `b"FK"`; resynchronisation mark |
//! | 2           | 1    | `version`    | protocol version, [`PROTOCOL_VERSION`] (2)         |
//! | 3           | 1    | `msg_type`   | a [`MessageType`]; requests `0x01..`, replies `0x81..` |
//! | 4           | 4    | `request_id` | chosen by the host; replies echo it                |
//! | 8           | 4    | `len`        | payload length, at most [`MAX_PAYLOAD_LEN`] (64 KiB) |
//! | 12          | len  | `payload`    | message body, layout per message type (below)      |
//! | 12 + len    | 4    | `crc`        | CRC-32 (IEEE 802.3) of bytes `0 .. 12 + len`       |
//!
//! A frame is therefore `HEADER_LEN + len + CRC_LEN` bytes, at most
//! [`MAX_FRAME_LEN`] (65 552). The header layout (magic, version, type, id,
//! length) is frozen across protocol versions so that a receiver can always
//! skip a whole frame of a version it does not speak and answer it with
//! [`ErrorCode::BadVersion`].
//!
//! # Payload layouts
//!
//! Fields are packed in the order listed, without padding. `bool` is one byte
//! that must be 0 or 1; [`BenchOp`] and [`ErrorCode`] are `u16`,
//! [`BenchMetric`] is `u8` and must be one of the op's
//! [`BenchOp::metrics`]. A payload
//! whose length does not match its type exactly is rejected
//! ([`DecodeError::BadLength`]) rather than truncated or zero-extended, so a
//! layout mismatch between host and guest shows up at once.
//!
//! | Type   | Message          | Payload                                                                 |
//! |--------|------------------|-------------------------------------------------------------------------|
//! | `0x01` | `Hello`          | `client_version: u8`                                                    |
//! | `0x02` | `RunBench`       | `op: u16, iters: u32, warmup: u32, mem_mib: u32`                        |
//! | `0x03` | `Probe`          | `flags: u64, exit_signal: u32, use_clone3: bool, uid: u32, nproc_limit: u64, threads_max: u64` |
//! | `0x04` | `Stats`          | empty                                                                   |
//! | `0x05` | `Sysctl`         | `name_len: u8 (<= 64), name: [u8; name_len], has_value: bool, value: u64` (value 0 when absent) |
//! | `0x06` | `Rlimit`         | `resource: u32, cur: u64, max: u64`                                     |
//! | `0x07` | `Shutdown`       | `status: u32`                                                           |
//! | `0x08` | `RunScale`       | `op: u16, mode: u8 (0 processes, 1 threads), workers: u16, duration_ms: u32, mem_mib: u32` |
//! | `0x81` | `HelloReply`     | `protocol_version: u8, platform: u32, tsc_khz: u64, memory_bytes: u64, kernel_version: [u8; 32]` |
//! | `0x82` | `BenchSamples`   | `op: u16, metric: u8, first_index: u32, total: u32, count: u16 (<= 1024), samples: [u64; count]` |
//! | `0x83` | `BenchDone`      | `op: u16, total: u32, errno: i32`                                       |
//! | `0x84` | `ProbeReply`     | `result: i64` (pid, or `-errno`)                                        |
//! | `0x85` | `StatsReply`     | `free_frames: u64, total_frames: u64, tasks: u32, nr_threads: u32, max_threads: u32, count: u8 (<= 16), [uid: u32, tasks: u64; count]` |
//! | `0x86` | `SysctlReply`    | `value: u64`                                                            |
//! | `0x87` | `Ok`             | empty                                                                   |
//! | `0x88` | `ScaleDone`      | `op: u16, mode: u8, workers: u16, errno: i32, elapsed_tsc: u64, ops: u64, min_worker_ops: u64, max_worker_ops: u64` |
//! | `0xff` | `Error`          | `request_id: u32, code: u16, detail: u32`                               |
//!
//! `Probe` leaves a limit unchanged when `nproc_limit` is `u64::MAX`
//! (RLIM_INFINITY) or `threads_max` is 0; `uid` 0 stays root, any other uid
//! becomes that uid and gid without capabilities. `HelloReply.memory_bytes`
//! is the memory the guest kernel manages (its frames), a little less than
//! the VM's RAM.
//!
//! # Conversation
//!
//! The host sends one request at a time and the guest answers with exactly
//! one reply carrying the same `request_id`, except `RunBench`, which is
//! answered by zero or more `BenchSamples` chunks (at most
//! [`MAX_SAMPLES_PER_FRAME`] samples each, so 100 000 samples take 98 frames
//! per metric and no side needs a large buffer) followed by one
//! `BenchDone`, and `Shutdown`, which has no reply (a `RunScale` is
//! answered by one `ScaleDone` once its workers have run for
//! `duration_ms` and stopped). Whatever goes wrong with a request (bad
//! CRC, unknown type or version, malformed payload, bad argument) the guest
//! answers with `Error` and keeps serving; [`DecodeError::error_reply`] builds
//! that reply.
//!
//! A successful `RunBench` sends `total` samples of every metric of
//! [`BenchOp::metrics`]: the creating operations both [`BenchMetric::Create`]
//! (until the call returns in the parent) and
//! [`BenchMetric::CreateExitReap`] (until the child is reaped), the failing
//! operations only `Create`, the ping-pong operations (`YieldPingPong`,
//! `PipePingPong`) only [`BenchMetric::RoundTrip`]. The guest sends all chunks of one metric, in
//! order, before the next metric; sample `i` of each metric comes from the
//! same iteration.
//!
//! # Versions
//!
//! Any change to a payload layout or to the conversation bumps
//! [`PROTOCOL_VERSION`]; the header stays as it is, so both sides can tell
//! a foreign frame from a corrupt one.
//!
//! - 1: the first version; `BenchSamples` had no `metric` (one sample
//!   stream: create+exit+reap, or the refused call).
//! - 2: `BenchSamples` carries a `metric`; creating operations report both
//!   `create` and `create_exit_reap`. Operations 9 and 10 (the
//!   ping-pongs) and metric 2 (`round_trip`) were added later without a
//!   bump: new values, no layout change; an older peer refuses them as
//!   unknown values. Operation 11 (`ForkThreaded`) likewise, and 12 and 13 (`ExecStatic`, `Shell`: programs from the initramfs). `RunScale`/`ScaleDone` (types 0x08, 0x88: the
//!   will-it-scale throughput of `forkbench scale`) were added the same
//!   way: an older guest answers `Error { UnknownType }`.
//!
//! # Receiving
//!
//! [`FrameDecoder`] owns one bounded buffer of [`MAX_FRAME_LEN`] bytes (no
//! heap; put it in a `static` in the guest):
//!
//! ```
//! use forkvm_protocol::{FrameDecoder, Message};
//!
//! let mut wire = [0u8; 64];
//! let n = Message::Stats.encode_frame(7, &mut wire).unwrap();
//!
//! let mut decoder = FrameDecoder::new();
//! let mut input = &wire[..n];
//! while !input.is_empty() {
//!     let taken = decoder.feed(input);
//!     input = &input[taken..];
//!     while let Some(result) = decoder.next_frame() {
//!         let frame = result.unwrap();
//!         assert_eq!(frame.request_id, 7);
//!         assert_eq!(frame.message(), Ok(Message::Stats));
//!     }
//! }
//! ```

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod crc;
mod frame;
mod message;

#[cfg(test)]
mod tests;

pub use crc::crc32;
pub use frame::{write_frame, DecodeError, EncodeError, Frame, FrameDecoder};
pub use message::{
    encode_bench_samples_frame, BenchMetric, BenchOp, ErrorCode, Message, MessageType, Samples,
    ScaleMode, SysctlName, UserTasks, FORK_THREADED_THREADS,
};

/// First two bytes of every frame (`b"FK"` on the wire).
pub const MAGIC: u16 = 0x4b46;
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Bytes before the payload: magic, version, type, request id, length.
pub const HEADER_LEN: usize = 12;
/// Bytes after the payload: the CRC-32.
pub const CRC_LEN: usize = 4;
/// Largest payload a frame may carry. Bounds the receive buffer.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Largest frame on the wire.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN;
/// Most TSC samples in one `BenchSamples` frame (8 KiB of payload).
pub const MAX_SAMPLES_PER_FRAME: usize = 1024;
/// Most `(uid, tasks)` pairs in a `StatsReply`.
pub const MAX_USER_TASKS: usize = 16;
/// Most workers a `RunScale` may ask for (the guest refuses more as
/// `BadArgument`).
pub const MAX_SCALE_WORKERS: u16 = 256;
/// Longest sysctl name, in bytes.
pub const MAX_SYSCTL_NAME_LEN: usize = 64;
/// Size of the NUL-padded kernel version string in `HelloReply`.
pub const KERNEL_VERSION_LEN: usize = 32;
