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
}

/// The shared part of a pipe.
pub struct Pipe {
    state: Mutex<PipeState>,
    /// Readers wait here for data or the last writer to go.
    readable: WaitQueue,
    /// Writers wait here for room or the last reader to go.
    writable: WaitQueue,
}

/// Result of a pipe operation that may have to wait.
pub enum PipeIo {
    Done(usize),
    /// A write with no reader left (EPIPE).
    Broken,
    /// Woken by a fatal signal before anything happened.
    Interrupted,
}

impl Pipe {
    /// A pipe with one read end and one write end open.
    pub fn new() -> Pipe {
        Pipe {
            state: Mutex::new(PipeState {
                buffer: VecDeque::new(),
                readers: 1,
                writers: 1,
            }),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        }
    }

    /// Reads up to `out.len()` bytes, waiting for the first one unless no
    /// writer is left (then 0: end of file).
    pub fn read(&self, out: &mut [u8]) -> PipeIo {
        let mut n = 0;
        let done = self.readable.wait_until(|| {
            let mut state = self.state.lock();
            if state.buffer.is_empty() && state.writers > 0 {
                return false;
            }
            n = out.len().min(state.buffer.len());
            for (slot, byte) in out.iter_mut().zip(state.buffer.drain(..n)) {
                *slot = byte;
            }
            true
        });
        if !done {
            return PipeIo::Interrupted;
        }
        if n > 0 {
            self.writable.wake_all();
        }
        PipeIo::Done(n)
    }

    /// Writes all of `data` (waiting for room as needed); a write that an
    /// interruption or a vanished reader cuts short reports what it wrote.
    pub fn write(&self, data: &[u8]) -> PipeIo {
        let mut written = 0;
        let mut broken = false;
        while written < data.len() {
            let done = self.writable.wait_until(|| {
                let mut state = self.state.lock();
                if state.readers == 0 {
                    broken = true;
                    return true;
                }
                let room = PIPE_CAPACITY - state.buffer.len();
                if room == 0 {
                    return false;
                }
                let n = room.min(data.len() - written);
                state.buffer.extend(&data[written..written + n]);
                written += n;
                true
            });
            self.readable.wake_all();
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
