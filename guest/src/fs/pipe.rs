//! Pipes: a bounded byte buffer between a read end and a write end.

use alloc::collections::VecDeque;

use spin::Mutex;

use crate::sched::wait::WaitQueue;

/// Capacity of a pipe (Linux's default: 16 pages).
pub const PIPE_CAPACITY: usize = 16 * 4096;

struct PipeState {
    buffer: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// A reader is copying bytes out (they are still in `buffer`).
    reading: bool,
}

/// The shared part of a pipe.
pub struct Pipe {
    /// Its inode number (`st_ino`, and `pipe:[N]` in `/proc/PID/fd`).
    pub ino: u64,
    state: Mutex<PipeState>,
    /// Readers wait here for data or the last writer to go.
    readable: WaitQueue,
    /// Writers wait here for room or the last reader to go.
    writable: WaitQueue,
}

/// Result of a pipe read.
pub enum PipeRead {
    /// This many bytes were delivered (0: end of file).
    Done(usize),
    /// The delivery failed with this errno; the bytes stay in the pipe.
    Failed(i32),
    /// Woken by a signal before any byte came.
    Interrupted,
    /// Non-blocking, and nothing to read yet (EAGAIN).
    WouldBlock,
}

/// Result of a pipe write, which may have to wait.
pub enum PipeIo {
    Done(usize),
    /// A write with no reader left (EPIPE).
    Broken,
    /// Woken by a fatal signal before anything happened.
    Interrupted,
    /// Non-blocking, and no room for the write (EAGAIN).
    WouldBlock,
}

/// Writes of at most this many bytes are atomic: never interleaved with
/// another writer's bytes, so they wait for room for all of them (Linux
/// `PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;

impl Pipe {
    /// Bytes waiting to be read (`FIONREAD`).
    pub fn available(&self) -> usize {
        self.state.lock().buffer.len()
    }

    /// A pipe with one read end and one write end open.
    pub fn new() -> Pipe {
        Pipe {
            ino: crate::fs::inode::next_ino(),
            state: Mutex::new(PipeState {
                buffer: VecDeque::new(),
                readers: 1,
                writers: 1,
                reading: false,
            }),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        }
    }

    /// Reads up to `out.len()` bytes, waiting for the first one unless no
    /// writer is left (then 0: end of file), and hands them to `deliver`
    /// (the copy to the reader's memory). As in Linux, the bytes leave the
    /// pipe only once delivered: a failed copy (EFAULT) leaves them for the
    /// next read. One reader at a time (Linux's pipe mutex): `deliver` may
    /// sleep in a page fault while the bytes are still queued. With
    /// `nonblock` an empty pipe that still has a writer is `WouldBlock`.
    pub fn read(
        &self,
        out: &mut [u8],
        nonblock: bool,
        deliver: impl FnOnce(&[u8]) -> Result<(), i32>,
    ) -> PipeRead {
        let mut n = 0;
        let mut would_block = false;
        let done = self.readable.wait_until(|| {
            let mut state = self.state.lock();
            if state.reading || (state.buffer.is_empty() && state.writers > 0) {
                if nonblock {
                    would_block = true;
                    return true;
                }
                return false;
            }
            n = out.len().min(state.buffer.len());
            for (slot, byte) in out.iter_mut().zip(state.buffer.iter()) {
                *slot = *byte;
            }
            state.reading = true;
            true
        });
        if !done {
            return PipeRead::Interrupted;
        }
        if would_block {
            return PipeRead::WouldBlock;
        }
        let delivered = deliver(&out[..n]);
        {
            let mut state = self.state.lock();
            state.reading = false;
            if delivered.is_ok() {
                state.buffer.drain(..n);
            }
        }
        // Readers waiting for their turn, and writers for room.
        self.readable.wake_all();
        if n > 0 && delivered.is_ok() {
            self.writable.wake_all();
        }
        match delivered {
            Ok(()) => PipeRead::Done(n),
            Err(errno) => PipeRead::Failed(errno),
        }
    }

    /// Writes all of `data` (waiting for room as needed); a write that an
    /// interruption or a vanished reader cuts short reports what it wrote.
    /// Up to [`PIPE_BUF`] bytes go in at once or not at all. With
    /// `nonblock` it never waits: it writes what fits now (all or nothing
    /// up to PIPE_BUF), and `WouldBlock` if that is nothing (Linux
    /// `pipe_write`).
    pub fn write(&self, data: &[u8], nonblock: bool) -> PipeIo {
        let mut written = 0;
        let mut broken = false;
        let mut would_block = false;
        let atomic = data.len() <= PIPE_BUF;
        while written < data.len() {
            let done = self.writable.wait_until(|| {
                let mut state = self.state.lock();
                if state.readers == 0 {
                    broken = true;
                    return true;
                }
                let room = PIPE_CAPACITY - state.buffer.len();
                if room == 0 || (atomic && room < data.len()) {
                    if nonblock {
                        would_block = true;
                        return true;
                    }
                    return false;
                }
                let n = room.min(data.len() - written);
                state.buffer.extend(&data[written..written + n]);
                written += n;
                true
            });
            self.readable.wake_all();
            if would_block {
                return if written > 0 {
                    PipeIo::Done(written)
                } else {
                    PipeIo::WouldBlock
                };
            }
            if broken {
                return if written > 0 {
                    PipeIo::Done(written)
                } else {
                    PipeIo::Broken
                };
            }
            if !done {
                return if written > 0 {
                    PipeIo::Done(written)
                } else {
                    PipeIo::Interrupted
                };
            }
        }
        PipeIo::Done(written)
    }

    /// What `poll` sees of the read end (`read_end`) or the write end
    /// (Linux `pipe_poll`), and the queue to wait on for a change. The
    /// read end is readable with bytes in it and hung up once no writer is
    /// left; the write end writable while a page of the buffer is free
    /// (Linux counts its buffer in page slots) and in error once no reader
    /// is left.
    pub fn poll(&self, read_end: bool) -> (u16, &WaitQueue) {
        use super::poll::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
        let state = self.state.lock();
        let mut mask = 0;
        if read_end {
            if !state.buffer.is_empty() {
                mask |= POLLIN | POLLRDNORM;
            }
            if state.writers == 0 {
                mask |= POLLHUP;
            }
            (mask, &self.readable)
        } else {
            if state.buffer.len().div_ceil(4096) < PIPE_CAPACITY / 4096 {
                mask |= POLLOUT | POLLWRNORM;
            }
            if state.readers == 0 {
                mask |= POLLERR;
            }
            (mask, &self.writable)
        }
    }

    /// The last descriptor of the read (`true`) or write end went away.
    pub fn close_end(&self, read_end: bool) {
        {
            let mut state = self.state.lock();
            if read_end {
                state.readers -= 1;
            } else {
                state.writers -= 1;
            }
        }
        // Readers see end of file, writers see EPIPE.
        self.readable.wake_all();
        self.writable.wake_all();
    }
}

impl Default for Pipe {
    fn default() -> Self {
        Self::new()
    }
}
